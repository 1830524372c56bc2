"""``power``: put the node to sleep, restart it or shut it down — or, in dry-run, say so.

``args``: ``{"operation": "sleep" | "restart" | "shutdown"}``. Before a sleep or a
shutdown the agent's AMT bridge (if any) writes the node's record into AMT, where peers
read it while the node is down. The operation is scheduled
``delay_s`` after the action returns, so the executor can write and send the signed
result first (a node that powers off before reporting would look like a lost command).

Dry-run (``PowerControl(dry_run=True)`` or environment ``MESHAGENT_POWER_DRY_RUN=1``)
records each request with the command line it would have run and logs it; nothing is
executed. Tests always use it. A real run goes through ``runner`` (default: spawn the
platform's command), which tests replace to check scheduling without touching the host.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec
from meshagent.log import get_logger

__all__ = ["ACTION", "PowerControl", "PowerRequest", "OPERATIONS", "DRY_RUN_ENV",
           "power_command"]

log = get_logger(__name__)

DRY_RUN_ENV = "MESHAGENT_POWER_DRY_RUN"
OPERATIONS = ("sleep", "restart", "shutdown")
_COMMANDS: dict[str, dict[str, list[str]]] = {
    "linux": {"sleep": ["systemctl", "suspend"], "restart": ["systemctl", "reboot"],
              "shutdown": ["systemctl", "poweroff"]},
    "darwin": {"sleep": ["pmset", "sleepnow"], "restart": ["shutdown", "-r", "now"],
               "shutdown": ["shutdown", "-h", "now"]},
    "win32": {"sleep": ["rundll32.exe", "powrprof.dll,SetSuspendState", "0,1,0"],
              "restart": ["shutdown", "/r", "/t", "0"],
              "shutdown": ["shutdown", "/s", "/t", "0"]},
}

Runner = Callable[[list[str]], Awaitable[int]]


def power_command(operation: str, platform: str = sys.platform) -> list[str]:
    """The command line for ``operation`` on ``platform``; ActionError if there is none."""
    commands = _COMMANDS.get("linux" if platform.startswith("linux") else platform)
    if commands is None or operation not in commands:
        raise ActionError("unsupported", f"no {operation!r} command on {platform}")
    return list(commands[operation])


async def _spawn(argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
    return await proc.wait()


@dataclass(frozen=True)
class PowerRequest:
    operation: str
    argv: list[str]
    requested: float
    dry_run: bool


class PowerControl:
    """Carries out (or, in dry-run, records) power operations for the ``power`` action."""

    def __init__(self, dry_run: bool | None = None, delay_s: float = 2.0,
                 runner: Runner = _spawn) -> None:
        if dry_run is None:
            dry_run = os.environ.get(DRY_RUN_ENV, "").lower() in ("1", "true", "yes")
        self.dry_run = dry_run
        self.delay_s = delay_s
        self.requests: list[PowerRequest] = []
        self._runner = runner
        self._pending: set[asyncio.Task[None]] = set()

    def request(self, operation: str) -> PowerRequest:
        """Record ``operation`` and, unless dry-run, run it ``delay_s`` from now."""
        request = PowerRequest(operation, power_command(operation), time.time(), self.dry_run)
        self.requests.append(request)
        log.warning("power_requested", operation=operation, dry_run=self.dry_run,
                    command=" ".join(request.argv))
        if not self.dry_run:
            task = asyncio.get_running_loop().create_task(self._run_later(request))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return request

    async def wait_pending(self) -> None:
        """Wait for scheduled operations (tests with a fake runner; agent shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _run_later(self, request: PowerRequest) -> None:
        await asyncio.sleep(self.delay_s)  # lets the result leave the node first
        try:
            code = await self._runner(request.argv)
        except OSError as exc:
            log.error("power_failed", operation=request.operation, error=str(exc))
            return
        log.event("power_command_ran", operation=request.operation, exit_code=code)


async def run(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    operation = args.get("operation")
    if operation not in OPERATIONS:
        raise ActionError("bad_args", f"operation must be one of {', '.join(OPERATIONS)}")
    if operation in ("sleep", "shutdown") and ctx.amt is not None:
        await ctx.amt.prepare_for_sleep()  # the freshest record stays in AMT's 3PDS block
    request = ctx.power.request(operation)
    return {"operation": operation, "dry_run": request.dry_run, "command": request.argv,
            "delay_s": ctx.power.delay_s}


ACTION = ActionSpec("power", "power", run)
