"""The agent's local control socket: JSON lines over a Unix socket, for this host only.

    server = ControlServer(path, {"nodes": list_nodes})
    await server.start()                       # socket created 0600 in a 0700 directory
    server.register("status", status)          # upper layers add their own methods
    result = await call(path, "nodes", {"state": "alive"})
    result = request(path, "nodes")            # the same, for synchronous CLI code

Wire: one JSON object per line each way. Request ``{"id": n, "method": "nodes",
"params": {...}}``; response ``{"id": n, "result": ...}`` or ``{"id": n, "error":
{"type": "NoRoute", "message": "..."}}``. A connection may carry many requests, answered in
order. Lines are limited to ``MAX_LINE_BYTES``.

Who may connect: the socket file is created owner-only (mode 0600, in a directory that is
created 0700 if missing), and on Linux each connection's peer credentials are checked too:
only the agent's own user and root are served. Anything else is closed with a log line.

Handlers take the ``params`` dict and return a JSON-serialisable value (or an awaitable of
one). A ``MeshError`` they raise becomes an ``error`` response; ``ValueError``/``KeyError``/
``TypeError`` from bad params becomes ``BadRequest``. Nothing a client sends stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from meshagent.errors import MeshError
from meshagent.eventloop import write_unless_closing
from meshagent.log import get_logger

__all__ = ["ControlServer", "ControlError", "ControlUnavailable", "RemoteError", "call",
           "request", "MAX_LINE_BYTES"]

log = get_logger(__name__)

MAX_LINE_BYTES = 1 << 20

Handler = Callable[[dict[str, Any]], Any | Awaitable[Any]]


class ControlError(MeshError):
    """The control socket could not be used."""


class ControlUnavailable(ControlError):
    """No agent answers on the socket (not running, wrong path, or no permission)."""


class RemoteError(ControlError):
    """The agent answered with an error; ``.kind`` is its type name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class ControlServer:
    """Serves JSON-line requests on a Unix socket to this host's owner and root."""

    def __init__(self, path: Path, handlers: dict[str, Handler] | None = None) -> None:
        self.path = Path(path)
        self._handlers: dict[str, Handler] = dict(handlers or {})
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def register(self, method: str, handler: Handler) -> None:
        """Add (or replace) a method; may be called while serving."""
        self._handlers[method] = handler

    @property
    def methods(self) -> list[str]:
        return sorted(self._handlers)

    async def start(self) -> None:
        self._prepare_path()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The socket is born 0600, never briefly wider. The umask is process-wide, so it is
        # narrowed only around the synchronous bind: no other task can run (and create
        # files or directories under the narrow mask) until it is restored.
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        self._server = await asyncio.start_unix_server(
            self._serve, sock=listener, limit=MAX_LINE_BYTES)
        os.chmod(self.path, 0o600)
        log.event("control_listening", path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _prepare_path(self) -> None:
        """Create the directory owner-only; remove a stale socket, refuse a live one."""
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ControlError(f"{self.path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.path))
            except OSError:
                self.path.unlink()  # left by an agent that died
            else:
                raise ControlError(f"another agent is serving {self.path}")
            finally:
                probe.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            if not _peer_allowed(writer):
                log.warn_limited("control_peer_refused", key="peer")
                return
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    log.warn_limited("control_line_too_long", key="line")
                    write_unless_closing(writer, _encode({"id": None, "error": {
                        "type": "BadRequest", "message": "line too long"}}))
                    return
                if not write_unless_closing(writer, _encode(await self._answer(line))):
                    return  # the client left before its answer
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(None, "BadRequest", "not a JSON line")
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return _error(None, "BadRequest", "request needs a string 'method'")
        req_id = req.get("id")
        params = req.get("params") or {}
        handler = self._handlers.get(req["method"])
        if handler is None:
            return _error(req_id, "UnknownMethod", f"no method {req['method']!r}; known: "
                          + ", ".join(self.methods))
        if not isinstance(params, dict):
            return _error(req_id, "BadRequest", "'params' must be an object")
        try:
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except MeshError as exc:
            return _error(req_id, type(exc).__name__, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(req_id, "BadRequest", f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # A bug in one method must not cost the client its answer or its connection.
            log.warn_limited("control_method_failed", key=req["method"], method=req["method"],
                             error=f"{type(exc).__name__}: {exc}")
            return _error(req_id, "InternalError", f"{type(exc).__name__}: {exc}")
        return {"id": req_id, "result": result}


def _error(req_id: Any, kind: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "error": {"type": kind, "message": message}}


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def _peer_allowed(writer: asyncio.StreamWriter) -> bool:
    """On Linux, only our own uid and root; elsewhere the file mode is the guard."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (0, os.getuid())


async def call(path: Path, method: str, params: dict[str, Any] | None = None,
               timeout: float = 5.0) -> Any:
    """One request to the agent at ``path``; its result, or RemoteError/ControlUnavailable."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=MAX_LINE_BYTES), timeout)
    except (OSError, TimeoutError) as exc:
        raise ControlUnavailable(f"no agent at {path}: {exc}") from None
    try:
        writer.write(_encode({"id": 1, "method": method, "params": params or {}}))
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
        reply = json.loads(line)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            json.JSONDecodeError) as exc:
        raise ControlUnavailable(f"agent at {path} did not answer: {exc!r}") from None
    finally:
        writer.close()
    if not isinstance(reply, dict):
        raise ControlUnavailable(f"agent at {path} sent a malformed reply")
    if "error" in reply:
        error = reply["error"] if isinstance(reply["error"], dict) else {}
        raise RemoteError(str(error.get("type", "Error")), str(error.get("message", "")))
    return reply.get("result")


def request(path: Path, method: str, params: dict[str, Any] | None = None,
            timeout: float = 5.0) -> Any:
    """``call`` for synchronous code (the CLI)."""
    return asyncio.run(call(path, method, params, timeout))
