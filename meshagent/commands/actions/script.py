"""``script``: run a script the root approved by SHA-256, with a timeout and bounded output.

``args``: ``content`` (bytes, the exact script), optional ``name`` (for logs), ``argv``
(list of text arguments), ``timeout_s`` (capped by ``ActionContext.script_timeout_s``).
The policy has already checked the hash against the allowlist; the check is repeated here
against the node's current allowlist so this module is safe to call on its own.

The script is written to a private temporary directory (0700) and executed: through its
``#!`` line if it has one, else by ``/bin/sh``. It runs in its own session so a timeout
or cancellation kills its whole process group. Standard output and error are each kept
up to ``max_output_bytes``; the rest is read and dropped (counted in ``*_dropped``).
A non-zero exit is an ``ActionError`` with code ``script_failed`` carrying the output.
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


async def _read_bounded(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, int]:
    kept, dropped = bytearray(), 0
    while chunk := await stream.read(_READ_CHUNK):
        room = limit - len(kept)
        kept += chunk[:room]
        dropped += max(0, len(chunk) - room)
    return bytes(kept), dropped


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
        command = [str(path), *argv] if content.startswith(b"#!") else \
            ["/bin/sh", str(path), *argv]
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        log.event("script_started", name=name, pid=proc.pid, timeout_s=timeout_s)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            (out, out_dropped), (err, err_dropped), code = await asyncio.wait_for(
                asyncio.gather(_read_bounded(proc.stdout, ctx.max_output_bytes),
                               _read_bounded(proc.stderr, ctx.max_output_bytes), proc.wait()),
                timeout_s)
        except TimeoutError:
            raise ActionError("timeout", f"script {name} ran over {timeout_s:g} s") from None
        finally:
            # The whole group: a script's background children must not outlive it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    output = {"name": name, "exit_code": code, "stdout": out, "stderr": err,
              "stdout_dropped": out_dropped, "stderr_dropped": err_dropped}
    log.event("script_finished", name=name, exit_code=code)
    if code != 0:
        raise ActionError("script_failed", f"script {name} exited with {code}", **output)
    return output


ACTION = ActionSpec(SCRIPT_ACTION, "script", run)
