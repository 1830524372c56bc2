"""Datagram and stream plumbing under membership, discovery and peer sessions.

One agent listens on one port for both kinds of traffic (``network.port``):

* **datagrams** (UDP): membership probes and gossip. ``send_datagram`` is fire and
  forget; network errors are counted, never raised, because SWIM treats every datagram
  as possibly lost anyway.
* **streams** (TCP): several protocols share the listener. The opener writes a 6-byte
  preamble, ``b"MESH" + version + channel``, and the listener hands the connection to the
  handler registered for that channel (``CHANNEL_MEMBERSHIP`` for full-state exchange and
  liveness watches, ``CHANNEL_SESSION`` for encrypted peer sessions). A connection with a
  bad preamble or an unknown channel is closed and counted.

Two implementations of the ``Transport`` protocol:

* ``UdpTransport``: real sockets (asyncio datagram endpoint + a TCP listener,
  ``eventloop.start_stream_server``).
  A connect that the peer's kernel refuses raises ``StreamRefused``: on a live host that
  means no agent is listening, which membership treats as proof that an agent crashed.
* ``MemoryNetwork`` / ``MemoryTransport``: the same behaviour inside one process for
  fast deterministic tests and scale runs: seeded loss, latency, partitions, a crash
  (streams reset, connects refused) and a pause (the SIGSTOP analogue: datagrams to the
  node are held until it resumes, connects hang). Streams are real ``asyncio``
  ``StreamReader``/``StreamWriter`` pairs so code above cannot tell the difference.

``VirtualClockLoop`` is an event loop whose clock jumps to the next timer instead of
sleeping; with ``MemoryNetwork`` it runs thousands of nodes through minutes of protocol
time in seconds. It must not be used with real sockets.

``MessageStream`` frames length-prefixed messages over a reader/writer pair
(``MAX_STREAM_MESSAGE`` bounds what a peer can make us buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import selectors
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from meshagent.errors import MeshError
from meshagent.eventloop import StreamServer, start_stream_server, write_unless_closing
from meshagent.log import get_logger

__all__ = [
    "Address", "Transport", "UdpTransport", "MemoryNetwork", "MemoryTransport",
    "VirtualClockLoop", "MessageStream", "TransportError", "StreamRefused", "StreamTimeout",
    "StreamClosed", "CHANNEL_MEMBERSHIP", "CHANNEL_SESSION", "MAX_STREAM_MESSAGE",
    "DatagramHandler", "StreamHandler", "format_address", "parse_address",
]

log = get_logger(__name__)

Address = tuple[str, int]
DatagramHandler = Callable[[bytes, Address], None]
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Address], Awaitable[None]]

# Kernel receive buffer asked for the UDP socket (memberlist asks the same). The usual
# default (208 KiB) overflows when a process waits for the CPU during a burst: at 100
# agents on 2 cores a mass join lost 146 datagrams that way (UdpRcvbufErrors), each a lost
# ack, fetch or record, seen as false suspicions and as a member learnt seconds late.
# SO_RCVBUFFORCE (root, as a managed agent runs) passes net.core.rmem_max; otherwise the
# kernel caps SO_RCVBUF at it. ``UdpTransport.receive_buffer`` says what was granted.
UDP_RECEIVE_BUFFER = 2 * 1024 * 1024

CHANNEL_MEMBERSHIP = 1
CHANNEL_SESSION = 2
_CHANNELS = frozenset({CHANNEL_MEMBERSHIP, CHANNEL_SESSION})
_PREAMBLE = b"MESH\x01"
_PREAMBLE_BYTES = len(_PREAMBLE) + 1
_PREAMBLE_TIMEOUT_S = 5.0
MAX_STREAM_MESSAGE = 8 << 20
MAX_DATAGRAM = 65507
_LENGTH = struct.Struct(">I")


class TransportError(MeshError):
    """A stream could not be opened or broke."""


class StreamRefused(TransportError):
    """The peer's host answered but nothing listens on the port (a crashed agent)."""


class StreamTimeout(TransportError):
    """No answer in time (host down, partition, or a paused process)."""


class StreamClosed(TransportError):
    """The other end closed or reset the stream."""


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, default_port: int) -> Address:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port); DecodeError-free ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, default_port
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad address {text!r}")
    return host, port


class Transport(Protocol):
    """What membership and sessions need from the network (see the module docstring)."""

    local_address: Address
    counters: Counter[str]

    async def start(self) -> None: ...

    def set_datagram_handler(self, handler: DatagramHandler) -> None: ...

    def set_stream_handler(self, channel: int, handler: StreamHandler) -> None: ...

    def send_datagram(self, data: bytes, address: Address) -> None: ...

    async def open_stream(self, address: Address, channel: int, timeout: float,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...

    async def close(self) -> None: ...


class MessageStream:
    """Length-prefixed messages over a reader/writer pair; every failure is StreamClosed.
    With ``counters``, the bytes written are added to its ``stream_bytes_sent``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_message: int = MAX_STREAM_MESSAGE,
                 counters: Counter[str] | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.max_message = max_message
        self.counters = counters

    async def send(self, message: bytes) -> None:
        try:
            if not self.send_nowait(message):
                raise StreamClosed("write failed: the stream is closing")
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise StreamClosed(f"write failed: {exc}") from exc

    def send_nowait(self, message: bytes) -> bool:
        """Queue a message without waiting for the socket; False if the stream is closing
        (``eventloop.write_unless_closing``). ConnectionError / OSError pass through."""
        data = _LENGTH.pack(len(message)) + message
        if not write_unless_closing(self.writer, data):
            return False
        if self.counters is not None:
            self.counters["stream_bytes_sent"] += len(data)
        return True

    async def recv(self, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                (length,) = _LENGTH.unpack(await self.reader.readexactly(_LENGTH.size))
                if length > self.max_message:
                    raise StreamClosed(f"message of {length} bytes exceeds {self.max_message}")
                return await self.reader.readexactly(length)
        except TimeoutError as exc:
            raise StreamTimeout("no message in time") from exc
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            raise StreamClosed(f"stream ended: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _StreamDispatcher:
    """The channel table shared by both transports: preamble checks and handler calls."""

    def __init__(self, counters: Counter[str]) -> None:
        self.counters = counters
        self.handlers: dict[int, StreamHandler] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def register(self, channel: int, handler: StreamHandler) -> None:
        if channel not in _CHANNELS:
            raise ValueError(f"unknown stream channel {channel}")
        self.handlers[channel] = handler

    def spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
              peer: Address) -> None:
        """Serve one accepted connection in a task of ours (cancelled on close)."""
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer, peer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: Address) -> None:
        try:
            try:
                async with asyncio.timeout(_PREAMBLE_TIMEOUT_S):
                    preamble = await reader.readexactly(_PREAMBLE_BYTES)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
                self.counters["streams_dropped_preamble"] += 1
                return
            handler = self.handlers.get(preamble[-1])
            if preamble[:-1] != _PREAMBLE or handler is None:
                self.counters["streams_dropped_preamble"] += 1
                log.warn_limited("stream_rejected", key=peer[0], peer=format_address(peer),
                                 reason="bad preamble or channel")
                return
            try:
                await handler(reader, writer, peer)
            except Exception as exc:  # a handler bug must not take the listener down
                self.counters["stream_handler_errors"] += 1
                log.warn_limited("stream_handler_failed", key=type(exc).__name__,
                                 peer=format_address(peer), error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _preamble_for(channel: int) -> bytes:
    return _PREAMBLE + bytes([channel])


# --------------------------------------------------------------------------- real sockets


class _DatagramEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._deliver(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.owner.counters["datagram_errors"] += 1


def _enlarge_receive_buffer(sock: Any) -> int:
    """Ask for ``UDP_RECEIVE_BUFFER`` (forced when privileged); the size granted."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            break
        except OSError:  # not privileged for the forced option: the capped one then
            continue
    granted = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    if granted < UDP_RECEIVE_BUFFER:
        log.warning("udp_receive_buffer_small", granted=granted, wanted=UDP_RECEIVE_BUFFER,
                    hint="raise net.core.rmem_max or run the agent privileged")
    return granted


class UdpTransport:
    """UDP datagrams and a TCP listener on the same ``host``/``port`` (0 = pick one)."""

    def __init__(self, host: str, port: int = 0, *, backlog: int = 256,
                 max_datagram: int = MAX_DATAGRAM) -> None:
        self._host = host
        self._port = port
        self._backlog = backlog
        self.max_datagram = max_datagram
        self.counters: Counter[str] = Counter()
        self.local_address: Address = (host, port)
        self._on_datagram: DatagramHandler | None = None
        self._streams = _StreamDispatcher(self.counters)
        self._udp: asyncio.DatagramTransport | None = None
        self._server: StreamServer | None = None
        self._opened: set[asyncio.StreamWriter] = set()
        self.receive_buffer = 0  # bytes the kernel granted the UDP socket (see start)

    def set_datagram_handler(self, handler: DatagramHandler) -> None:
        self._on_datagram = handler

    def set_stream_handler(self, channel: int, handler: StreamHandler) -> None:
        self._streams.register(channel, handler)

    async def start(self) -> None:
        """Bind UDP first, then TCP on the same port (retrying when port 0 collides)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        for _attempt in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramEndpoint(self), local_addr=(self._host, self._port),
                family=family)
            port = udp.get_extra_info("sockname")[1]
            try:
                self._server = await start_stream_server(
                    self._accept, self._host, port, backlog=self._backlog, family=family)
            except OSError:
                udp.close()
                if self._port:
                    raise
                continue
            self._udp = udp
            self.local_address = (self._host, port)
            self.receive_buffer = _enlarge_receive_buffer(udp.get_extra_info("socket"))
            return
        raise TransportError(f"no free port on {self._host} for both UDP and TCP")

    def _deliver(self, data: bytes, source: Address) -> None:
        if self._on_datagram is None:
            return
        try:
            self._on_datagram(data, source)
        except Exception as exc:  # the receive path must survive any input
            self.counters["datagram_handler_errors"] += 1
            log.warn_limited("datagram_handler_failed", key=type(exc).__name__,
                             error=repr(exc))

    def send_datagram(self, data: bytes, address: Address) -> None:
        if self._udp is None or self._udp.is_closing() or len(data) > self.max_datagram:
            self.counters["datagrams_unsent"] += 1
            return
        try:
            self._udp.sendto(data, address)
            self.counters["datagrams_sent"] += 1
            self.counters["bytes_sent"] += len(data)
        except OSError:
            self.counters["datagrams_unsent"] += 1

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        self._streams.spawn(reader, writer, (peer[0], peer[1]))

    async def open_stream(self, address: Address, channel: int, timeout: float,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(address[0], address[1])
        except ConnectionRefusedError as exc:
            raise StreamRefused(f"{format_address(address)} refused the connection") from exc
        except TimeoutError as exc:
            raise StreamTimeout(f"no connection to {format_address(address)} in time") from exc
        except OSError as exc:
            raise TransportError(f"connect to {format_address(address)}: {exc}") from exc
        if not write_unless_closing(writer, _preamble_for(channel)):
            raise StreamClosed(f"{format_address(address)} closed the connection at once")
        self._opened = {w for w in self._opened if not w.is_closing()}
        self._opened.add(writer)
        return reader, writer

    async def close(self) -> None:
        """Stop listening and reset every stream (peers see the connection end at once)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._opened):
            if not writer.is_closing():
                writer.transport.abort()
        self._opened.clear()
        await self._streams.cancel_all()
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


# --------------------------------------------------------------------------- in memory


class _MemoryPipe(asyncio.Transport):
    """One direction of an in-memory stream: writes feed the other end's reader."""

    def __init__(self, network: MemoryNetwork, peer_reader: asyncio.StreamReader) -> None:
        super().__init__()
        self._network = network
        self._peer_reader = peer_reader
        self._closing = False
        self.partner: _MemoryPipe | None = None
        self.owner_pipes: set[_MemoryPipe] | None = None
        self._protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        payload = bytes(data)
        self._network.loop.call_soon(self._feed, payload)

    def _feed(self, payload: bytes) -> None:
        if not self._peer_reader.at_eof():
            self._peer_reader.feed_data(payload)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self.owner_pipes is not None:
            self.owner_pipes.discard(self)
        self._network.loop.call_soon(self._eof)
        if self.partner is not None:
            self.partner.close()

    def abort(self) -> None:
        self.close()

    def _eof(self) -> None:
        if not self._peer_reader.at_eof():
            self._peer_reader.feed_eof()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class MemoryNetwork:
    """An in-process network of ``MemoryTransport``s with fault controls.

    Deterministic for a given ``seed`` and call order. ``latency`` is one-way seconds
    per datagram, ``loss`` the probability of dropping one. Partitions are groups of
    addresses; traffic crosses no group boundary until ``heal()``.
    """

    def __init__(self, *, seed: int = 0, latency: float = 0.0, loss: float = 0.0) -> None:
        self.random = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.nodes: dict[Address, MemoryTransport] = {}
        self._group: dict[Address, int] = {}
        self._blocked: set[tuple[Address, Address]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters: Counter[str] = Counter()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def transport(self, address: Address) -> MemoryTransport:
        return MemoryTransport(self, address)

    # fault controls -------------------------------------------------------------------

    def partition(self, *groups: Iterable[Address]) -> None:
        """Split the network: each group only reaches itself; unlisted nodes reach nobody
        in a group."""
        self._group = {address: index for index, group in enumerate(groups)
                       for address in group}

    def heal(self) -> None:
        self._group.clear()
        self._blocked.clear()

    def block(self, a: Address, b: Address) -> None:
        """Cut the link between ``a`` and ``b`` in both directions."""
        self._blocked |= {(a, b), (b, a)}

    def crash(self, address: Address) -> None:
        """The process dies: its streams reset, connects are refused, datagrams vanish."""
        node = self.nodes.get(address)
        if node is not None:
            node._crash()

    def pause(self, address: Address) -> None:
        """The process stops (SIGSTOP): datagrams to it wait, its own sends are lost."""
        node = self.nodes.get(address)
        if node is not None:
            node.paused = True

    def resume(self, address: Address) -> None:
        node = self.nodes.get(address)
        if node is not None:
            node._resume()

    def reachable(self, source: Address, destination: Address) -> bool:
        if (source, destination) in self._blocked:
            return False
        if self._group:
            group = self._group.get(source, -1)
            if group != self._group.get(destination, -2):
                return False
        return True

    # delivery -------------------------------------------------------------------------

    def _send(self, data: bytes, source: Address, destination: Address) -> None:
        sender = self.nodes.get(source)
        if sender is None or sender.paused:
            self.counters["dropped_sender_stopped"] += 1
            return
        if not self.reachable(source, destination):
            self.counters["dropped_partition"] += 1
            return
        if self.loss and self.random.random() < self.loss:
            self.counters["dropped_loss"] += 1
            return
        self.counters["datagrams"] += 1
        if self.latency:
            self.loop.call_later(self.latency, self._arrive, data, source, destination)
        else:
            self.loop.call_soon(self._arrive, data, source, destination)

    def _arrive(self, data: bytes, source: Address, destination: Address) -> None:
        node = self.nodes.get(destination)
        if node is None:
            self.counters["dropped_no_listener"] += 1
            return
        node._receive(data, source)

    async def _connect(self, source: Address, destination: Address, channel: int,
                       timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = self.loop
        node = self.nodes.get(destination)
        if self.latency:
            await asyncio.sleep(self.latency)
        if not self.reachable(source, destination) or (node is not None and node.paused):
            await asyncio.sleep(timeout)
            raise StreamTimeout(f"no connection to {format_address(destination)} in time")
        if node is None:
            raise StreamRefused(f"{format_address(destination)} refused the connection")
        client_reader = asyncio.StreamReader(loop=loop)
        server_reader = asyncio.StreamReader(loop=loop)
        to_server = _MemoryPipe(self, server_reader)
        to_client = _MemoryPipe(self, client_reader)
        to_server.partner, to_client.partner = to_client, to_server
        client_protocol = asyncio.StreamReaderProtocol(client_reader, loop=loop)
        server_protocol = asyncio.StreamReaderProtocol(server_reader, loop=loop)
        to_server.set_protocol(client_protocol)
        to_client.set_protocol(server_protocol)
        client_writer = asyncio.StreamWriter(to_server, client_protocol, client_reader, loop)
        server_writer = asyncio.StreamWriter(to_client, server_protocol, server_reader, loop)
        client = self.nodes.get(source)
        if client is not None:
            client._pipes.add(to_server)
            to_server.owner_pipes = client._pipes
        node._pipes.add(to_client)
        to_client.owner_pipes = node._pipes
        client_writer.write(_preamble_for(channel))
        node._accept(server_reader, server_writer, source)
        return client_reader, client_writer


class MemoryTransport:
    """One node's endpoint on a ``MemoryNetwork``; same contract as ``UdpTransport``."""

    def __init__(self, network: MemoryNetwork, address: Address) -> None:
        self.network = network
        self.local_address = address
        self.counters: Counter[str] = Counter()
        self.paused = False
        self.max_datagram = MAX_DATAGRAM
        self._on_datagram: DatagramHandler | None = None
        self._streams = _StreamDispatcher(self.counters)
        self._held: list[tuple[bytes, Address]] = []
        self._pipes: set[_MemoryPipe] = set()

    def set_datagram_handler(self, handler: DatagramHandler) -> None:
        self._on_datagram = handler

    def set_stream_handler(self, channel: int, handler: StreamHandler) -> None:
        self._streams.register(channel, handler)

    async def start(self) -> None:
        if self.local_address in self.network.nodes:
            raise TransportError(f"{format_address(self.local_address)} is already in use")
        self.network.nodes[self.local_address] = self

    def send_datagram(self, data: bytes, address: Address) -> None:
        if len(data) > self.max_datagram:
            self.counters["datagrams_unsent"] += 1
            return
        self.counters["datagrams_sent"] += 1
        self.counters["bytes_sent"] += len(data)
        self.network._send(data, self.local_address, address)

    def _receive(self, data: bytes, source: Address) -> None:
        if self.paused:
            self._held.append((data, source))
            return
        if self._on_datagram is None:
            return
        try:
            self._on_datagram(data, source)
        except Exception as exc:  # same guarantee as the socket transport
            self.counters["datagram_handler_errors"] += 1
            log.warn_limited("datagram_handler_failed", key=type(exc).__name__,
                             error=repr(exc))

    def _resume(self) -> None:
        self.paused = False
        held, self._held = self._held, []
        for data, source in held:
            self._receive(data, source)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                peer: Address) -> None:
        self._streams.spawn(reader, writer, peer)

    async def open_stream(self, address: Address, channel: int, timeout: float,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.paused:
            await asyncio.sleep(timeout)
            raise StreamTimeout("this node is paused")
        return await self.network._connect(self.local_address, address, channel, timeout)

    def _crash(self) -> None:
        if self.network.nodes.get(self.local_address) is self:
            del self.network.nodes[self.local_address]
        for pipe in list(self._pipes):
            pipe.close()
        self._pipes.clear()
        for task in list(self._streams.tasks):
            task.cancel()

    async def close(self) -> None:
        self._crash()
        await self._streams.cancel_all()


# --------------------------------------------------------------------------- virtual time


class _VirtualSelector(selectors.BaseSelector):
    """Polls the real selector without blocking, and advances the loop's clock instead."""

    def __init__(self, loop_clock: list[float]) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = loop_clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:
            return self._real.select(None)  # nothing scheduled: wait for a real wake-up
        self._clock[0] += timeout
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is virtual: idle waits cost no real time."""

    def __init__(self) -> None:
        self._virtual_clock = [0.0]
        super().__init__(_VirtualSelector(self._virtual_clock))

    def time(self) -> float:
        return self._virtual_clock[0]
