"""Runs admitted commands and turns every outcome into a signed, durably stored result.

Pipeline on a node::

    bytes --CommandPolicy.check--> envelope (id claimed)  --execute--> CommandResult
      |                                                                 (signed, stored DONE
      +-- CommandRejected --reject--> CommandResult(status=rejected)     in SeenCommands,
                                                                          then returned)

``execute`` never raises for a failing action: an ``ActionError`` becomes an ``error``
result with its code, a timeout the code ``timeout``, any other exception ``internal``
(logged). The result is written to ``SeenCommands`` (synced) BEFORE ``execute`` returns, so
a caller that acknowledges or sends it can never lose it; if that write fails
(``SeenStoreError``) the command stays CLAIMED and is reported as interrupted after restart.

``recover_interrupted`` is called once at start-up: commands claimed but not finished
before a crash are not run again (they may have had effects) and get an ``error`` result
with code ``interrupted``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from meshagent import codec
from meshagent.commands.actions import BUILTIN_ACTIONS, ActionContext, ActionError, ActionSpec
from meshagent.commands.envelope import CommandEnvelope
from meshagent.commands.rejections import CommandRejected
from meshagent.commands.result import CommandResult, ResultStatus
from meshagent.commands.seen import SeenCommands
from meshagent.errors import MeshError
from meshagent.log import get_logger
from meshagent.signing import SigningKey

__all__ = ["CommandExecutor", "DEFAULT_ACTION_TIMEOUT_S", "MAX_RESULT_OUTPUT_BYTES"]

log = get_logger(__name__)

DEFAULT_ACTION_TIMEOUT_S = 600.0
# Results travel as one structured message (codec.MAX_MESSAGE_BYTES); leave room for framing.
MAX_RESULT_OUTPUT_BYTES = 512 * 1024


def _error(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "error": message, **details}


class CommandExecutor:
    """Executes admitted commands on this node with a per-action timeout."""

    def __init__(self, node_key: SigningKey, node_id: bytes, seen: SeenCommands,
                 context: ActionContext, *, actions: Mapping[str, ActionSpec] = BUILTIN_ACTIONS,
                 timeout_s: float = DEFAULT_ACTION_TIMEOUT_S) -> None:
        self.node_key = node_key
        self.node_id = node_id
        self.seen = seen
        self.context = context
        self.actions = actions
        self.timeout_s = timeout_s

    async def execute(self, envelope: CommandEnvelope) -> CommandResult:
        """Run a command admitted by the policy; the signed result, already stored."""
        started = time.time()
        status, output = await self._run(envelope)
        try:
            packed_size = len(codec.pack(output))
        except (TypeError, ValueError) as exc:
            status, output = ResultStatus.ERROR, _error("internal", f"unencodable output: {exc}")
        else:
            if packed_size > MAX_RESULT_OUTPUT_BYTES:
                status, output = ResultStatus.ERROR, _error(
                    "output_too_large", f"output of {packed_size} bytes exceeds "
                    f"{MAX_RESULT_OUTPUT_BYTES}")
        result = CommandResult(envelope.id, self.node_id, status, output, started,
                               time.time()).sign(self.node_key)
        self.seen.finish(envelope.id, result.to_wire(), result.finished)
        log.event("command_finished", command_id=envelope.id.hex(), action=envelope.action,
                  status=status.value, seconds=round(result.finished - started, 3))
        return result

    def reject(self, rejection: CommandRejected, now: float | None = None) -> CommandResult | None:
        """A signed ``rejected`` result naming the audit reason; None if the id is unknown.

        Not stored in SeenCommands: a rejected command was never claimed (and a replay must
        not overwrite the original's result).
        """
        if rejection.command_id is None:
            return None
        now = time.time() if now is None else now
        return CommandResult(rejection.command_id, self.node_id, ResultStatus.REJECTED,
                             {"reason": rejection.reason, "detail": rejection.detail},
                             now, now).sign(self.node_key)

    def recover_interrupted(self, now: float | None = None) -> list[CommandResult]:
        """Finish every command a crash interrupted with an ``interrupted`` error result."""
        results = []
        for entry in self.seen.interrupted():
            finished = time.time() if now is None else now
            result = CommandResult(entry.command_id, self.node_id, ResultStatus.ERROR,
                                   _error("interrupted", "the agent stopped while the command "
                                          "ran; it is not run again"),
                                   entry.claimed, finished).sign(self.node_key)
            self.seen.finish(entry.command_id, result.to_wire(), finished)
            log.warning("command_interrupted", command_id=entry.command_id.hex())
            results.append(result)
        return results

    async def _run(self, envelope: CommandEnvelope) -> tuple[ResultStatus, Any]:
        spec = self.actions.get(envelope.action)
        if spec is None:
            return ResultStatus.ERROR, _error("unknown_action",
                                              f"this agent has no action {envelope.action!r}")
        try:
            output = await asyncio.wait_for(spec.run(envelope.args, self.context), self.timeout_s)
        except ActionError as exc:
            log.event("action_failed", command_id=envelope.id.hex(), action=envelope.action,
                      code=exc.code, error=str(exc))
            return ResultStatus.ERROR, _error(exc.code, str(exc), **exc.details)
        except TimeoutError:
            log.warning("action_timed_out", command_id=envelope.id.hex(),
                        action=envelope.action, timeout_s=self.timeout_s)
            return ResultStatus.ERROR, _error("timeout", f"{envelope.action} ran over "
                                              f"{self.timeout_s:g} s")
        except MeshError as exc:
            code = getattr(exc, "reason", "error")
            log.event("action_failed", command_id=envelope.id.hex(), action=envelope.action,
                      code=code, error=str(exc))
            return ResultStatus.ERROR, _error(code, str(exc))
        except Exception as exc:  # an action bug must not take the agent down
            log.logger.exception("action_crashed command_id=%s action=%s",
                                 envelope.id.hex(), envelope.action)
            return ResultStatus.ERROR, _error("internal", f"{type(exc).__name__}: {exc}")
        return ResultStatus.OK, output
