"""A node's end of command delivery: signed command bytes in, signed result out.

Whoever brings commands to this node (the relay from the leader, the local control
socket) calls ``CommandInbox.receive(wire)`` and sends back what it returns:

* an admitted command is executed; the result is stored durably before it is returned;
* a refused command gets a node-signed ``rejected`` result naming the audit reason
  (None if the bytes did not even carry a command id);
* a command delivered again (leader failover, a relay retry) is not run again: if it has
  finished, the stored original result is returned, so a re-delivery is answered exactly
  like the first delivery; if it is still running, None (its result will follow).
"""

from __future__ import annotations

from meshagent.commands.executor import CommandExecutor
from meshagent.commands.policy import CommandPolicy
from meshagent.commands.rejections import CommandRejected, ReplayedCommand
from meshagent.commands.result import CommandResult
from meshagent.log import get_logger
from meshagent.signing import Signed

__all__ = ["CommandInbox"]

log = get_logger(__name__)


class CommandInbox:
    """Joins the policy and the executor of one node (they must share its SeenCommands)."""

    def __init__(self, policy: CommandPolicy, executor: CommandExecutor) -> None:
        if policy.seen is not executor.seen:
            raise ValueError("policy and executor must share one SeenCommands store")
        self.policy = policy
        self.executor = executor

    async def receive(self, wire: bytes, now: float | None = None) -> CommandResult | None:
        try:
            envelope = self.policy.check(wire, now)
        except ReplayedCommand as rejection:
            return self._earlier_result(rejection)
        except CommandRejected as rejection:
            return self.executor.reject(rejection, now)
        return await self.executor.execute(envelope)

    def _earlier_result(self, rejection: ReplayedCommand) -> CommandResult | None:
        assert rejection.command_id is not None  # set once the envelope parsed
        entry = self.policy.seen.get(rejection.command_id)
        if entry is None or entry.result is None:
            return None
        log.event("command_result_resent", command_id=rejection.command_id.hex())
        return CommandResult.from_signed(Signed.from_wire(entry.result))
