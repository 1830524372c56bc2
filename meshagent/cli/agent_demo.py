"""``meshagent demo``: a mesh of agent processes on this machine, shown converging, losing
a member and getting it back; then, behind a local web service, a signed command run on
every node through the elected leader, the leader killed and replaced, a queued command
arriving; then left running. ``--stop`` stops a running demo."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from meshagent.demo import DEMO_STEPS, run_demo, stop_demo

HELP = "run a local demo mesh of agent processes (no root needed)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("demo-mesh"), metavar="DIR",
                        help="where the demo mesh lives (default: ./demo-mesh)")
    parser.add_argument("--nodes", type=int, default=5, metavar="N",
                        help="number of agents (default 5)")
    parser.add_argument("--port", type=int, default=17946,
                        help="port of every agent (each has its own 127.0.0.x address)")
    parser.add_argument("--detach", action="store_true",
                        help="return once the demo has run, leaving the agents running")
    parser.add_argument("--stop", action="store_true",
                        help="stop the agents of a demo left running in --dir")


def run(args: argparse.Namespace) -> int:
    if args.stop:
        stop_demo(args.dir)
        return 0
    if not 2 <= args.nodes <= 200:
        raise SystemExit("meshagent demo: --nodes must be between 2 and 200")
    # The leader steps bring the web service (aiohttp): loaded only for this verb, since
    # every `meshagent` command builds its parser from all the verbs.
    from meshagent.leaderdemo import with_leader_steps

    return asyncio.run(run_demo(args.dir, count=args.nodes, port=args.port,
                                detach=args.detach, steps=with_leader_steps(DEMO_STEPS)))
