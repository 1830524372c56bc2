"""Finding and calling the local agent's control socket, shared by the verbs that use it.

The socket is, in order of precedence: ``--socket PATH``; the ``MESHAGENT_SOCKET``
environment variable; the ``[control] socket`` of ``--config FILE``; the default
configuration's (``/var/lib/meshagent/control.sock``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from meshagent.config import AgentConfig, load_config
from meshagent.control import request

__all__ = ["add_socket_arguments", "socket_path", "call_agent", "SOCKET_ENV"]

SOCKET_ENV = "MESHAGENT_SOCKET"


def add_socket_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, metavar="PATH",
                        help=f"the agent's control socket (default: ${SOCKET_ENV}, or the "
                             "one named by --config, or /var/lib/meshagent/control.sock)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="read the socket path from this agent configuration")


def socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if os.environ.get(SOCKET_ENV):
        return Path(os.environ[SOCKET_ENV])
    if args.config is not None:
        return load_config(args.config).control_socket
    return AgentConfig().control_socket


def call_agent(args: argparse.Namespace, method: str, params: dict[str, Any] | None = None,
               ) -> Any:
    """One request to the agent the arguments name; ControlError when it cannot answer."""
    return request(socket_path(args), method, params)
