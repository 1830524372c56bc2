"""Which event loop runs the agent, and the one place where loops differ for our code.

``meshagent run`` runs on uvloop where it is installed (a dependency on Linux and macOS;
the frozen agent carries it) and on asyncio's own loop elsewhere: ``runtime.event_loop``
is ``auto`` unless the configuration names ``asyncio`` or ``uvloop``. uvloop spends less
CPU per event, which is what a mass join is made of (BENCHMARKS.md has the figures).
Naming ``uvloop`` where it cannot be imported is a configuration error, not a fallback.

    factory = loop_factory("auto")      # uvloop.new_event_loop here; None for asyncio's
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())

The loops differ in two ways that matter here:

* asyncio drops a write to a stream that is closing, uvloop raises RuntimeError. Every
  stream write that can race with a peer going away (sessions, handshakes, the control
  socket) goes through ``write_unless_closing``, so both loops behave like asyncio's.
* asyncio's TCP servers accept every pending connection (up to the backlog) when the
  listening socket is readable; uvloop's accept one per loop iteration (since
  libuv#3696). A seed on uvloop, busy with a mass join, took seconds to accept 99
  joiners, and a quarter of their hellos timed out. ``start_stream_server`` gives both
  loops asyncio's behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol

from meshagent.errors import ConfigError
from meshagent.log import get_logger

__all__ = ["EVENT_LOOPS", "loop_factory", "loop_name", "uvloop_factory",
           "write_unless_closing", "cancel_and_wait", "start_stream_server",
           "StreamServer"]

log = get_logger(__name__)

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]
# Out of descriptors or memory: accepting again at once would spin, so wait a moment.
_ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_RETRY_S = 1.0

EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None where uvloop is not installed (or is Windows)."""
    if sys.platform == "win32":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``asyncio.Runner`` (None: asyncio's default loop): ``auto`` is
    uvloop where it can be imported, else asyncio's. ConfigError for an unknown choice or
    for ``uvloop`` named where it cannot be imported."""
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}")
    if choice == "asyncio":
        return None
    factory = uvloop_factory()
    if choice == "auto":
        return factory
    if factory is None:
        raise ConfigError("event_loop = \"uvloop\" but uvloop cannot be imported here")
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what ``meshagent status`` reports."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def write_unless_closing(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write ``data`` unless the stream is closing (its peer went away, or we closed it);
    False if it was. The bytes would be lost either way; this keeps uvloop from raising
    where asyncio silently drops them."""
    if writer.is_closing():
        return False
    writer.write(data)
    return True


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Stop a component's background task and wait until it has ended (its cancellation
    is not an error for the caller). ``None``: nothing was started."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class StreamServer(Protocol):
    """What ``start_stream_server`` returns: asyncio's ``Server`` or ``BatchAcceptServer``."""

    @property
    def sockets(self) -> Any: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


async def start_stream_server(client_connected: ClientConnected, host: str, port: int, *,
                              backlog: int, family: int) -> StreamServer:
    """A TCP listener on ``host``:``port`` that hands each connection to
    ``client_connected(reader, writer)`` like ``asyncio.start_server``, accepting every
    pending connection whenever the socket is readable, on either loop."""
    loop = asyncio.get_running_loop()
    if loop_name(loop) == "asyncio":
        return await asyncio.start_server(client_connected, host, port, backlog=backlog,
                                          reuse_address=True, family=family)
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((host, port))
        listener.listen(backlog)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return BatchAcceptServer(loop, listener, client_connected, backlog)


class BatchAcceptServer:
    """Accepts up to ``backlog`` pending connections each time ``listener`` is readable,
    as asyncio's own servers do, and serves each as ``asyncio.start_server`` would."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: socket.socket,
                 client_connected: ClientConnected, backlog: int) -> None:
        self._loop = loop
        self._listener = listener
        self._client_connected = client_connected
        self._backlog = backlog
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        loop.add_reader(listener.fileno(), self.accept_pending)

    def accept_pending(self) -> int:
        """Accept what is pending (up to the backlog); how many were accepted."""
        accepted = 0
        for _ in range(self._backlog):
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue  # gone before we took it
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRORS:
                    raise
                log.warn_limited("accept_failed", key=str(exc.errno), error=str(exc),
                                 retry_s=_ACCEPT_RETRY_S)
                self._loop.remove_reader(self._listener.fileno())
                self._loop.call_later(_ACCEPT_RETRY_S, self._listen_again)
                break
            connection.setblocking(False)
            task = self._loop.create_task(self._serve(connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            accepted += 1
        return accepted

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket, as ``asyncio.Server.sockets`` gives it."""
        return () if self._closed else (self._listener,)

    def _listen_again(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._listener.fileno(), self.accept_pending)

    async def _serve(self, connection: socket.socket) -> None:
        reader = asyncio.StreamReader(loop=self._loop)
        protocol = asyncio.StreamReaderProtocol(reader, self._client_connected,
                                                loop=self._loop)
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, connection)
        except OSError:
            connection.close()

    def close(self) -> None:
        """Stop listening (connections already handed over go on)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._listener.fileno())
        self._listener.close()

    async def wait_closed(self) -> None:
        for task in list(self._tasks):
            await cancel_and_wait(task)
