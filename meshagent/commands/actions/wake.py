"""``wake``: power on another member, asleep or off, through its Intel AMT.

``args``: ``{"node": <node id, 32 hex digits or 16 bytes>}``. The command is addressed to
a peer on the sleeping node's network (its own agent is not running, so it cannot take
commands); that peer asks the node's AMT with the wake account the node shared with the
mesh (``meshagent.amtbridge``). The node's agent starts when the host is up and rejoins
the mesh by itself. Output: ``{node_id, power_state_before, powered_on}``.

Errors: ``unsupported`` (no AMT bridge on this agent), ``bad_args``, ``no_grant`` (the node
never shared AMT credentials with this peer), ``wake_failed`` (AMT unreachable, stalled or
refused; or the node's policy does not share wake).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from meshagent.amtbridge.errors import NoGrant
from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec
from meshagent.errors import MeshError

__all__ = ["ACTION", "AmtPower", "parse_node"]

NODE_ID_BYTES = 16


class AmtPower(Protocol):
    """What power actions need of the agent's AMT bridge (``meshagent.amtbridge``)."""

    async def wake(self, node_id: bytes) -> dict[str, Any]:
        """Power ``node_id`` on; raises NoGrant / WakeFailed (MeshError subclasses)."""
        ...

    async def prepare_for_sleep(self) -> bool:
        """Write this node's record into its AMT before the host sleeps; never raises."""
        ...


def parse_node(value: Any) -> bytes:
    """A node id from the command's args; ActionError ``bad_args`` otherwise."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            value = b""
    if not isinstance(value, bytes) or len(value) != NODE_ID_BYTES:
        raise ActionError("bad_args", "node must be a node id (32 hex digits)")
    return value


async def run(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    node_id = parse_node(args.get("node"))
    if node_id == ctx.node_id:
        raise ActionError("bad_args", "a node cannot wake itself")
    if ctx.amt is None:
        raise ActionError("unsupported", "this agent has no AMT bridge")
    try:
        return await ctx.amt.wake(node_id)
    except MeshError as exc:
        code = "no_grant" if isinstance(exc, NoGrant) else "wake_failed"
        raise ActionError(code, str(exc), node=node_id.hex()) from exc


ACTION = ActionSpec("wake", "power", run)
