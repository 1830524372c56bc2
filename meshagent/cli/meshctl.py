"""``meshctl``: the administrators' console.

It talks to the web service's REST API when one is configured (``--server`` or
``MESHCTL_SERVER``) and otherwise to the local agent's control socket.
"""

from __future__ import annotations

import sys

from meshagent.cli.dispatch import run_program

VERBS = [
    "meshagent.cli.ctl_keys",
    "meshagent.cli.ctl_allowlist",
    "meshagent.cli.ctl_revocations",
    "meshagent.cli.ctl_nodes",
    "meshagent.cli.ctl_certificates",
    "meshagent.cli.ctl_run",
    "meshagent.cli.ctl_results",
    "meshagent.cli.ctl_leader",
    "meshagent.cli.ctl_audit",
    "meshagent.cli.ctl_wake",
]


def main(argv: list[str] | None = None) -> int:
    return run_program("meshctl", "The meshagent console.", VERBS, argv)


if __name__ == "__main__":
    sys.exit(main())
