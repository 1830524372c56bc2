"""``meshctl nodes``: the mesh as the local agent sees it (or, with ``--server``, as the
web service's inventory has it), as a table or JSON."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from meshagent.cli.api_client import add_server_options
from meshagent.cli.control_client import add_socket_arguments, call_agent
from meshagent.cli.server_nodes import nodes_from_server
from meshagent.cli.times import parse_duration

HELP = "list the mesh's nodes: state, address, version, last seen, route"

COLUMNS = [("NODE", "node"), ("HOST", "host"), ("STATE", "state"), ("ADDRESS", "address"),
           ("VERSION", "version"), ("LAST SEEN", "last_seen"), ("ROUTE", "route")]


def configure(parser: argparse.ArgumentParser) -> None:
    add_socket_arguments(parser)
    add_server_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the nodes as one JSON array (full node ids, raw times)")
    parser.add_argument("--state", action="append", default=[], metavar="STATE",
                        help="only nodes in this state (alive, suspect, unreachable, left, "
                             "asleep, off); repeat or separate with commas")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="only nodes whose record has this tag; repeat to require all")
    parser.add_argument("--cert-expiring", type=parse_duration, metavar="DURATION",
                        help="only nodes whose certificate ends within this time (30d, 12h) "
                             "or has ended: the machines to renew")


def run(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    states = [s.strip().lower() for arg in args.state for s in arg.split(",") if s.strip()]
    if states:
        params["state"] = states
    if args.tag:
        tags = {}
        for item in args.tag:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"meshctl nodes: --tag wants KEY=VALUE, got {item!r}")
            tags[key] = value
        params["tags"] = tags
    nodes = nodes_from_server(args, params) if args.server else call_agent(args, "nodes", params)
    if args.cert_expiring is not None:
        nodes = cert_expiring(nodes, args.cert_expiring)
    if args.json:
        print(json.dumps(nodes, indent=2, sort_keys=True))
    else:
        print(format_table(nodes))
    return 0


def cert_expiring(nodes: list[dict[str, Any]], within_s: float,
                  now: float | None = None) -> list[dict[str, Any]]:
    """The nodes whose certificate ends within ``within_s`` (or has ended), soonest first.
    A node whose record carries no certificate summary (reported by an older agent) is
    left out."""
    limit = (time.time() if now is None else now) + within_s
    ending = [n for n in nodes if (n.get("certificate") or {}).get("expires", limit + 1) <= limit]
    return sorted(ending, key=lambda n: n["certificate"]["expires"])


def format_table(nodes: list[dict[str, Any]], now: float | None = None) -> str:
    """The human table: short ids, relative times, the route in words."""
    now = time.time() if now is None else now
    rows = [[_cell(node, key, now) for _, key in COLUMNS] for node in nodes]
    widths = [max([len(title)] + [len(row[i]) for row in rows])
              for i, (title, _) in enumerate(COLUMNS)]
    lines = ["  ".join(title.ljust(width) for (title, _), width in zip(COLUMNS, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.append(f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}")
    return "\n".join(line.rstrip() for line in lines)


def _cell(node: dict[str, Any], key: str, now: float) -> str:
    if key == "node":
        return str(node.get("node_id", ""))[:12] + ("*" if node.get("self") else "")
    if key == "last_seen":
        return _ago(node.get("last_seen"), now)
    if key == "route":
        return _route(node.get("route"))
    value = node.get(key)
    return "-" if value in (None, "") else str(value)


def _ago(moment: float | None, now: float) -> str:
    if moment is None:
        return "-"
    seconds = max(0.0, now - moment)
    if seconds < 1.5:
        return "now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _route(route: dict[str, Any] | None) -> str:
    if not route:
        return "-"
    kind = route.get("kind")
    if kind == "self":
        return "self"
    if kind == "direct":
        return "direct"
    via = route.get("via_host") or str(route.get("via", ""))[:12]
    return f"via {via} ({route.get('metric')} hops)"
