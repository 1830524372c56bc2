"""The contract every action module meets, and what the executor hands it.

An action module defines ``ACTION = ActionSpec(name, scope, run)``. ``run(args, ctx)`` is a
coroutine that returns the output (any msgpack-encodable value) or raises ``ActionError``
with a short ``code``; it must not block the event loop (blocking work goes through
``asyncio.to_thread``) and must clean up if cancelled (the executor cancels it on timeout).
``scope`` is the operator scope word that covers the action (see ``operator.scopes_allow``).

``args`` come from a command that passed the policy, so they are authorised, but their
shape is still checked by the action: a well-signed command can still be malformed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshagent.errors import MeshError

if TYPE_CHECKING:
    from meshagent.commands.actions.power import PowerControl
    from meshagent.commands.actions.tags import TagStore
    from meshagent.commands.actions.wake import AmtPower
    from meshagent.commands.allowlist import Allowlist

__all__ = ["ActionSpec", "ActionContext", "ActionError", "ActionRun"]


class ActionError(MeshError):
    """An action could not do what was asked. ``code`` is short and stable for results."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


@dataclass
class ActionContext:
    """The node-side services actions use; built once by the agent."""

    node_id: bytes
    allowlist: Callable[[], Allowlist | None]
    power: PowerControl
    tags: TagStore
    max_output_bytes: int = 64 * 1024
    script_timeout_s: float = 300.0
    amt: AmtPower | None = None  # the AMT bridge, for wake and sleep (None: no bridge)


ActionRun = Callable[[Mapping[str, Any], ActionContext], Awaitable[Any]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    scope: str
    run: ActionRun
