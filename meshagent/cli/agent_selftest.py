"""``meshagent selftest``: known-answer tests and round trips of the core, where it runs.

Runs ``meshagent.core.selftest`` (NIST AES-GCM vectors shipped as package data, frames,
tunnel, replay window and route table on the C core and on the pure-Python twin) and prints
one line per check. Exit status 0 when every check passed, 1 otherwise. In a frozen
executable this proves the bundled C core and libcrypto are the ones built for it.
"""

from __future__ import annotations

import argparse
import json
import logging

from meshagent.core import BACKEND
from meshagent.core.selftest import run_selftest

HELP = "run the core's known-answer tests and round trips (exit 1 on any failure)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    # The checks feed forged and replayed records on purpose; their rejection log lines
    # would read like failures.
    core_log = logging.getLogger("meshagent.core")
    level = core_log.level
    core_log.setLevel(logging.ERROR)
    try:
        results = run_selftest()
    finally:
        core_log.setLevel(level)
    failed = [result for result in results if not result.passed]
    if args.json:
        print(json.dumps({"backend": BACKEND, "passed": len(results) - len(failed),
                          "failed": len(failed),
                          "checks": [vars(result) for result in results]}))
    else:
        width = max(len(result.name) for result in results)
        for result in results:
            status = "ok  " if result.passed else "FAIL"
            print(f"{status} {result.name:<{width}}  {result.detail}")
        print(f"selftest: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
