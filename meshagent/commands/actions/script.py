"""``script``: run a script the root approved by SHA-256, with a timeout and bounded output.

``args``: ``content`` (bytes, the exact script), optional ``name`` (for logs), ``argv``
(list of text arguments), ``timeout_s`` (capped by ``ActionContext.script_timeout_s``).
The policy has already checked the hash against the allowlist; the check is repeated here
against the node's current allowlist so this module is safe to call on its own.

The script is written to a private temporary directory (0700) and run by the interpreter
its ``#!`` line names, else by ``/bin/sh``. It runs in its own session so a timeout
or cancellation kills its whole process group. Standard output and error are each kept
up to ``max_output_bytes``; the rest is read and dropped (counted in ``*_dropped``).
When the script exits its process group is killed too. A timeout is an ``ActionError``
with code ``timeout`` carrying the output so far; a non-zero exit is an ``ActionError``
with code ``script_failed`` carrying the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec
from meshagent.commands.allowlist import SCRIPT_ACTION, script_hash
from meshagent.log import get_logger

__all__ = ["ACTION"]

log = get_logger(__name__)

_MAX_ARGS = 256
_READ_CHUNK = 65536
_DRAIN_S = 2.0


class _ScriptProtocol(asyncio.SubprocessProtocol):
    """Keeps the first ``limit`` bytes of stdout and stderr, counts the rest, and signals
    the script's exit separately from its pipes closing (a background child may hold
    them open; ``Process.wait`` would wait for that)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = {1: bytearray(), 2: bytearray()}
        self.dropped = {1: 0, 2: 0}
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        kept = self.kept[fd]
        room = self.limit - len(kept)
        kept += raw[:room]
        self.dropped[fd] += max(0, len(raw) - room)

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def _interpreter(content: bytes) -> list[str]:
    """The ``#!`` line as a command (kernel rules: one optional argument), else ``/bin/sh``.

    The interpreter is started explicitly, so scripts run from a ``noexec`` temp directory.
    """
    if not content.startswith(b"#!"):
        return ["/bin/sh"]
    line = content[2:].split(b"\n", 1)[0].decode(errors="replace").strip()
    program, _, argument = line.partition(" ")
    if not program:
        raise ActionError("bad_args", "the script's #! line names no interpreter")
    return [program, argument.strip()] if argument.strip() else [program]


def _parse(args: Mapping[str, Any], ctx: ActionContext) -> tuple[bytes, list[str], float]:
    content = args.get("content")
    argv = args.get("argv", [])
    timeout_s = args.get("timeout_s", ctx.script_timeout_s)
    if not isinstance(content, bytes) or not content:
        raise ActionError("bad_args", "content must be the script's bytes")
    if not (isinstance(argv, list) and len(argv) <= _MAX_ARGS
            and all(isinstance(a, str) and "\0" not in a for a in argv)):
        raise ActionError("bad_args", f"argv must be a list of at most {_MAX_ARGS} strings")
    if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise ActionError("bad_args", "timeout_s must be a positive number")
    allowlist = ctx.allowlist()
    if allowlist is None:
        raise ActionError("not_allowlisted", "this node holds no allowlist")
    allowlist.check(SCRIPT_ACTION, args)  # NotAllowlisted is a MeshError: executor reports it
    return content, argv, min(float(timeout_s), ctx.script_timeout_s)


async def run(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    content, argv, timeout_s = _parse(args, ctx)
    name = str(args.get("name", script_hash(content).hex()[:16]))
    with tempfile.TemporaryDirectory(prefix="meshagent-script-") as workdir:
        path = Path(workdir) / "script"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        command = [*_interpreter(content), str(path), *argv]
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.subprocess_exec(
                lambda: _ScriptProtocol(ctx.max_output_bytes), *command, cwd=workdir,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise ActionError("spawn_failed", f"cannot start {command[0]}: {exc}") from exc
        pid = transport.get_pid()
        log.event("script_started", script=name, pid=pid, timeout_s=timeout_s)
        timed_out = False
        try:
            await asyncio.wait_for(proto.exited.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
        finally:
            # The whole group, also after a normal exit: background children must not
            # outlive the script (they would also hold its output pipes open).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):  # a descendant that left the group
                await asyncio.wait_for(proto.closed.wait(), _DRAIN_S)  # may keep the pipes
            transport.close()
        code = transport.get_returncode()
    output = {"name": name, "exit_code": code, "stdout": bytes(proto.kept[1]),
              "stderr": bytes(proto.kept[2]), "stdout_dropped": proto.dropped[1],
              "stderr_dropped": proto.dropped[2]}
    if timed_out:
        raise ActionError("timeout", f"script {name} ran over {timeout_s:g} s", **output)
    log.event("script_finished", script=name, exit_code=code)
    if code != 0:
        raise ActionError("script_failed", f"script {name} exited with {code}", **output)
    return output


ACTION = ActionSpec(SCRIPT_ACTION, "script", run)
