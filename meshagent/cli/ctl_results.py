"""``meshctl results``: signed results the web service holds, newest first.

    meshctl results                      # the latest results of every command
    meshctl results COMMAND_ID           # every node's result for one command
    meshctl results --node 3f2a9c… --json
"""

from __future__ import annotations

import argparse
from typing import Any

from meshagent.cli.api_client import add_server_options, client_from_args
from meshagent.cli.tables import ago, compact, print_json, render, short_id

HELP = "show command results stored by the web service"

COLUMNS = ["COMMAND", "NODE", "STATUS", "RECEIVED", "OUTPUT"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("command", nargs="?", help="only this command (hex id)")
    parser.add_argument("--node", help="only this node (hex id)")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON (with the signed result, base64)")


def result_rows(results: list[dict[str, Any]], now: float | None = None) -> list[list[str]]:
    """Table rows (command, node, status, received, output) of the service's results."""
    return [[short_id(r.get("id")), short_id(r.get("node")), str(r.get("status", "-")),
             ago(r.get("received"), now), _output(r)] for r in results]


def _output(result: dict[str, Any]) -> str:
    output = result.get("output")
    if result.get("status") == "rejected" and isinstance(output, dict):
        return f"{output.get('reason')}: {output.get('detail', '')}"[:60]
    if result.get("status") == "error" and isinstance(output, dict):
        return f"{output.get('code')}: {output.get('error', '')}"[:60]
    return compact(output)


def run(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    results = client.results(command=args.command, node=args.node, limit=args.limit)
    if args.json:
        print_json(results)
    else:
        print(render(COLUMNS, result_rows(results),
                     f"{len(results)} result{'s' if len(results) != 1 else ''}"))
    return 0
