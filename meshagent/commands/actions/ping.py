"""``ping``: proves the node is reachable and runs commands; echoes an optional token."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from meshagent import __version__
from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec

__all__ = ["ACTION"]

_MAX_ECHO = 1024


async def run(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    echo = args.get("echo", "")
    if not isinstance(echo, str) or len(echo) > _MAX_ECHO:
        raise ActionError("bad_args", f"echo must be text of at most {_MAX_ECHO} characters")
    return {"pong": True, "echo": echo, "node_id": ctx.node_id, "time": time.time(),
            "agent_version": __version__}


ACTION = ActionSpec("ping", "read", run)
