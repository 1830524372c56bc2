"""``meshagent status``: what the local agent is and how it sees the mesh, in brief."""

from __future__ import annotations

import argparse
import json
from typing import Any

from meshagent.cli.control_client import add_socket_arguments, call_agent
from meshagent.cli.times import utc_time

HELP = "show the running agent's identity, mesh view, sessions and routes"


def configure(parser: argparse.ArgumentParser) -> None:
    add_socket_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.add_argument("--check-certificate", action="store_true",
                        help="have the agent look at node.cert first (a renewal written "
                             "there is adopted now, not at its next periodic look)")


def run(args: argparse.Namespace) -> int:
    if args.check_certificate:
        call_agent(args, "certificate", {"check": True})
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
    certificate = status.get("certificate")
    if certificate:
        lines.append(_certificate_line(certificate))
    return "\n".join(lines)


def _certificate_line(certificate: dict[str, Any]) -> str:
    left = certificate["expires_in_s"]
    when = (f"expires {utc_time(certificate['expires'])} (in {left / 86400:.1f} days)"
            if left > 0 else f"EXPIRED {utc_time(certificate['expires'])}: the mesh refuses "
                             "this node until it adopts a renewal (pushed to a member, or "
                             "written to node.cert)")
    line = f"cert      serial {certificate['serial']}, {when}"
    if left <= 0 and certificate.get("last_ask") is not None:
        line += (f"; asks of members for a renewal: {certificate['renewal_asks']}, last "
                 f"{utc_time(certificate['last_ask'])}")
    if certificate.get("last_refusal"):
        line += f"; renewal refused: {certificate['last_refusal']}"
    return line
