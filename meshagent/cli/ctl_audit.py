"""``meshctl audit``: the web service's audit log, newest first — commands submitted,
refused, requeued, done, expired; leaders connected and refused.

    meshctl audit
    meshctl audit --command 9c1e… --json
    meshctl audit --after 1200          # only entries newer than id 1200
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from meshagent.cli.api_client import add_server_options, client_from_args
from meshagent.cli.tables import compact, print_json, render, short_id

HELP = "show the web service's audit log"

COLUMNS = ["ID", "TIME", "ACTOR", "EVENT", "COMMAND", "DETAIL"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("--command", help="only entries about this command (hex id)")
    parser.add_argument("--after", type=int, default=0, help="only entries newer than this id")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    parser.add_argument("--json", action="store_true", help="print the entries as JSON")


def audit_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(e.get("audit_id")), time.strftime("%Y-%m-%d %H:%M:%S",
                                                   time.localtime(e.get("time") or 0)),
             str(e.get("actor", "-"))[:24], str(e.get("event", "-")),
             short_id(e.get("command")), compact(e.get("detail") or {}, 70)]
            for e in entries]


def run(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    entries = client.audit(command=args.command, after=args.after or None, limit=args.limit)
    if args.json:
        print_json(entries)
    else:
        print(render(COLUMNS, audit_rows(entries),
                     f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'}"))
    return 0
