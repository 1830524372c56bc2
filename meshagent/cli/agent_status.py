"""``meshagent status``: what the local agent is and how it sees the mesh, in brief."""

from __future__ import annotations

import argparse
import json
from typing import Any

from meshagent.cli.control_client import add_socket_arguments, call_agent

HELP = "show the running agent's identity, mesh view, sessions and routes"


def configure(parser: argparse.ArgumentParser) -> None:
    add_socket_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> int:
    status = call_agent(args, "status")
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(format_status(status))
    return 0


def format_status(status: dict[str, Any]) -> str:
    states = status.get("members", {})
    lines = [
        f"node      {status.get('node_id')}  ({status.get('hostname')})",
        f"mesh      {status.get('mesh_id')}",
        f"version   {status.get('version')}",
        f"listening {status.get('address')}",
        f"uptime    {status.get('uptime_s', 0):.0f}s",
        "members   " + (", ".join(f"{count} {state}" for state, count in sorted(states.items()))
                        or "none"),
        f"sessions  {status.get('sessions', 0)} of at most {status.get('max_peers')}",
        f"routes    {status.get('routes', 0)}",
        "trust     " + (", ".join(f"{kind} v{version}" for kind, version in sorted(
            status.get("documents", {}).get("versions", {}).items()))
                        or "no revocation list, no allowlist"),
    ]
    return "\n".join(lines)
