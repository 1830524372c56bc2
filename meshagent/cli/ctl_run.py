"""``meshctl run ACTION``: sign a command with an operator key, queue it at the web service,
and (unless ``--no-wait``) wait for every target's signed result.

    meshctl run ping --all --key alice.key --cert alice.cert
    meshctl run tags --node 3f2a9c --arg set='{"site":"lab"}'
    meshctl run script --tag site=lab --arg content=@cleanup.sh --ttl 1h --json

Targets: ``--all``, ``--node ID`` (repeatable: a full hex id, a unique prefix, or a host
name the service knows) or ``--tag KEY=VALUE`` (repeatable: all must match). Arguments:
``--arg KEY=VALUE`` (VALUE read as JSON when it parses, ``@FILE`` for a file's bytes,
else as text) and ``--args JSON``. The command is signed here; the service, the leader and
every target check the signature, so the key never leaves this machine.

Exit status: 0 when every target answered ``ok``; 1 otherwise (an error, a rejection, or
targets still without a result at ``--timeout``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from meshagent.cli.api_client import ApiClient, add_server_options, client_from_args
from meshagent.cli.ctl_results import result_rows
from meshagent.cli.operator_credentials import add_operator_options, load_operator
from meshagent.cli.tables import print_json, render
from meshagent.cli.times import parse_duration
from meshagent.commands import Target, sign_command
from meshagent.errors import ConfigError

HELP = "sign a command and run it on nodes through the web service and the mesh's leader"

POLL_S = 0.2


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("action", help="action name on the allowlist (ping, inventory, ...)")
    target = parser.add_argument_group("target (one kind)")
    target.add_argument("--all", action="store_true", help="every node of the mesh")
    target.add_argument("--node", action="append", default=[], metavar="ID",
                        help="a node: hex id, unique id prefix, or host name; repeatable")
    target.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="nodes with this tag; repeat to require several")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="one argument: VALUE as JSON if it parses, @FILE for a file's bytes")
    parser.add_argument("--args", metavar="JSON", help="all arguments as one JSON object")
    parser.add_argument("--ttl", type=parse_duration, default=600.0,
                        help="how long the command stays valid (default 10m)")
    add_operator_options(parser)
    parser.add_argument("--no-wait", action="store_true", help="queue and return at once")
    parser.add_argument("--timeout", type=parse_duration, default=30.0,
                        help="how long to wait for results (default 30s)")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def parse_args_options(pairs: list[str], blob: str | None) -> dict[str, Any]:
    """The command's arguments from ``--args`` and ``--arg`` (which win)."""
    args: dict[str, Any] = {}
    if blob:
        try:
            parsed = json.loads(blob)
        except ValueError as exc:
            raise ConfigError(f"--args: not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ConfigError("--args: must be a JSON object")
        args.update(parsed)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--arg wants KEY=VALUE, got {pair!r}")
        if value.startswith("@"):
            try:
                args[key] = Path(value[1:]).read_bytes()
            except OSError as exc:
                raise ConfigError(f"--arg {key}: cannot read {value[1:]}: {exc}") from None
            continue
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


def resolve_target(client: ApiClient, args: argparse.Namespace) -> Target:
    kinds = sum(1 for chosen in (args.all, args.node, args.tag) if chosen)
    if kinds != 1:
        raise ConfigError("name the targets with exactly one of --all, --node, --tag")
    if args.all:
        return Target.all()
    if args.tag:
        tags = {}
        for item in args.tag:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--tag wants KEY=VALUE, got {item!r}")
            tags[key] = value
        return Target.tagged(tags)
    return Target.node(*(resolve_node(client, spec) for spec in args.node))


def resolve_node(client: ApiClient, spec: str) -> bytes:
    """A full hex id as given; else the one node whose id starts with, or whose host
    name is, ``spec``."""
    if len(spec) == 32:
        try:
            return bytes.fromhex(spec)
        except ValueError:
            pass
    nodes = client.nodes(limit=10_000)
    matches = {n["node"] for n in nodes
               if n["node"].startswith(spec.lower()) or
               (n.get("record") or {}).get("hostname") == spec}
    if len(matches) != 1:
        raise ConfigError(f"--node {spec!r} matches {len(matches)} nodes the service knows")
    return bytes.fromhex(matches.pop())


def run(args: argparse.Namespace) -> int:
    key, cert = load_operator(args)
    client = client_from_args(args)
    target = resolve_target(client, args)
    command = sign_command(key, cert, target, args.action,
                           parse_args_options(args.arg, args.args), args.ttl)
    answer = client.submit_command(command.to_wire())
    command_id, targets = answer["id"], answer["nodes"]
    if args.no_wait:
        outcome: dict[str, Any] = {"id": command_id, "nodes": targets, "results": []}
    else:
        outcome = wait_for_results(client, command_id, len(targets), args.timeout)
    if args.json:
        print_json(outcome)
    else:
        print(f"command {command_id} ({args.action}) queued for {len(targets)} "
              f"node{'s' if len(targets) != 1 else ''}")
        if not args.no_wait:
            rows = result_rows(outcome["results"])
            waiting = len(targets) - len(rows)
            print(render(["NODE", "STATUS", "OUTPUT"], [[r[1], r[2], r[4]] for r in rows],
                         f"{len(rows)} result{'s' if len(rows) != 1 else ''}"
                         + (f", {waiting} still waiting" if waiting else "")))
    if args.no_wait:
        return 0
    results = outcome["results"]
    return 0 if len(results) == len(targets) and all(r.get("status") == "ok"
                                                     for r in results) else 1


def wait_for_results(client: ApiClient, command_id: str, expected: int,
                     timeout: float) -> dict[str, Any]:
    """The command's status from the service once ``expected`` results are in, or at
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.command(command_id)
        if len(status["results"]) >= expected or time.monotonic() >= deadline:
            return status
        time.sleep(POLL_S)

