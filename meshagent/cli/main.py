"""``meshagent``: the agent executable's verbs."""

from __future__ import annotations

import sys

from meshagent.cli.dispatch import run_program

VERBS = [
    "meshagent.cli.agent_mesh",
    "meshagent.cli.agent_amt_sim",
    "meshagent.cli.agent_server",
    "meshagent.cli.agent_run",
    "meshagent.cli.agent_status",
    "meshagent.cli.agent_demo",
    "meshagent.cli.agent_selftest",
    "meshagent.cli.agent_bench",
]


def main(argv: list[str] | None = None) -> int:
    return run_program("meshagent", "The meshagent agent.", VERBS, argv)


if __name__ == "__main__":
    sys.exit(main())
