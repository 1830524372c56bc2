"""``meshagent run --config FILE``: run the agent until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from meshagent.config import load_config
from meshagent.eventloop import loop_factory
from meshagent.heap import freeze_startup_heap

HELP = "run the agent (discovery, membership, sessions, routing, control socket)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML configuration (see examples/agent.toml)")


def run(args: argparse.Namespace) -> int:
    from meshagent.agent import Agent  # the whole agent loads only for this verb

    config = load_config(args.config)
    if not args.verbose:  # -v on the command line wins over the file
        logging.getLogger().setLevel(config.log.level.upper())
    factory = loop_factory(config.runtime.event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_serve(Agent(config)))


async def _serve(agent: Any) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    freeze_startup_heap()  # imported and built: the collector's passes skip all that
    await agent.start()
    print(f"meshagent: node {agent.node_id.hex()} listening on {agent.address}; "
          f"control socket {agent.control_socket}", flush=True)
    try:
        await stop.wait()
    finally:
        await agent.stop()
    return 0
