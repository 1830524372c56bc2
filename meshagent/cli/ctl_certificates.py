"""``meshctl certificates``: renew a fleet's certificates without touching each machine.

    meshctl certificates export [--cert-expiring 30d] --out DIR   # NODE_ID.cert per member
    meshctl certificates push CERTFILE...                          # to their nodes
    meshctl certificates pending                                   # not taken yet

Between the two, on the offline machine with the root key: ``meshagent mesh renew --dir
MESH --out RENEWED DIR/*.cert``. Both talk to the local agent's control socket; the
agent carries each pushed certificate to its node over the mesh (see
``meshagent.certdelivery``).
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

from meshagent.cli.control_client import add_socket_arguments, call_agent
from meshagent.cli.times import parse_duration, utc_time
from meshagent.identity import load_certificate, save_certificate

HELP = "export members' certificates, push renewed ones to their nodes"

DELIVERED = ("sent", "adopted")


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write every member's certificate to a "
                                "directory (NODE_ID.cert), to renew them offline")
    add_socket_arguments(export)
    export.add_argument("--out", required=True, type=Path, help="directory to write to")
    export.add_argument("--cert-expiring", type=parse_duration, metavar="DURATION",
                        help="only certificates that end within this time (30d) or ended")
    export.set_defaults(action_run=_export)
    push = actions.add_parser("push", help="deliver renewed certificates to their nodes")
    add_socket_arguments(push)
    push.add_argument("certificates", nargs="+", type=Path, metavar="CERTFILE")
    push.set_defaults(action_run=_push)
    pending = actions.add_parser("pending", help="pushed certificates their nodes have not "
                                 "taken yet (the agent sends them when each is reachable)")
    add_socket_arguments(pending)
    pending.set_defaults(action_run=_pending)


def run(args: argparse.Namespace) -> int:
    return int(args.action_run(args))


def _export(args: argparse.Namespace) -> int:
    params = {} if args.cert_expiring is None else {"within_s": args.cert_expiring}
    certificates = call_agent(args, "certificates", params)
    args.out.mkdir(parents=True, exist_ok=True)
    for item in certificates:
        save_certificate(args.out / f"{item['node_id']}.cert", base64.b64decode(item["wire"]))
        print(f"{item['node_id'][:12]}  {item['hostname']:<20}  serial {item['serial']}  "
              f"expires {utc_time(item['expires'])}")
    print(f"{len(certificates)} certificate(s) written to {args.out}")
    return 0


def _push(args: argparse.Namespace) -> int:
    """Exit status 1 when some certificate was refused (the reasons are printed)."""
    wires = [load_certificate(path).to_wire() for path in args.certificates]
    outcomes = call_agent(args, "certificates_push", {
        "certificates": [base64.b64encode(wire).decode() for wire in wires]})
    for node, outcome in outcomes.items():
        print(f"{node[:12]:<12}  {outcome}")
    sent = sum(1 for outcome in outcomes.values() if outcome in DELIVERED)
    waiting = sum(1 for outcome in outcomes.values() if outcome.startswith("pending"))
    refused = len(outcomes) - sent - waiting
    print(f"{sent} sent, {waiting} pending (sent when each node is reachable), {refused} "
          "refused; `meshctl certificates pending` lists those not taken yet")
    return 0 if refused == 0 else 1


def _pending(args: argparse.Namespace) -> int:
    pending = call_agent(args, "certificates_pending")
    for item in pending:
        origin = item.get("origin", "push")
        print(f"{item['node_id'][:12]}  {item['hostname']:<20}  serial {item['serial']}  "
              f"expires {utc_time(item['expires'])}  "
              f"{'pushed here' if origin == 'push' else 'held for ' + origin[5:17]}")
    print(f"{len(pending)} pending")
    return 0
