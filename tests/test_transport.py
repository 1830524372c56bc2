"""Transports: datagrams, channel-tagged streams, crash/pause/partition, virtual time."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest

from meshagent import transport as transport_module
from meshagent.transport import (
    CHANNEL_MEMBERSHIP,
    CHANNEL_SESSION,
    UDP_RECEIVE_BUFFER,
    MemoryNetwork,
    MessageStream,
    StreamClosed,
    StreamRefused,
    StreamTimeout,
    UdpTransport,
    VirtualClockLoop,
    parse_address,
)

A, B, C = ("10.0.0.1", 7946), ("10.0.0.2", 7946), ("10.0.0.3", 7946)


async def _echo_server(transport: object, channel: int = CHANNEL_MEMBERSHIP) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   peer: tuple[str, int]) -> None:
        stream = MessageStream(reader, writer)
        while True:
            try:
                await stream.send(await stream.recv())
            except StreamClosed:
                return

    transport.set_stream_handler(channel, echo)  # type: ignore[attr-defined]


async def _memory_pair(**options: float) -> tuple[MemoryNetwork, object, object, list]:
    network = MemoryNetwork(seed=1, **options)
    a, b = network.transport(A), network.transport(B)
    received: list[tuple[bytes, tuple[str, int]]] = []
    b.set_datagram_handler(lambda data, source: received.append((data, source)))
    await a.start()
    await b.start()
    return network, a, b, received


async def test_memory_datagrams_arrive_with_their_source() -> None:
    _, a, _, received = await _memory_pair()
    a.send_datagram(b"hello", B)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert received == [(b"hello", A)]


async def test_memory_partition_and_block_stop_datagrams_until_healed() -> None:
    network, a, _, received = await _memory_pair()
    network.partition([A], [B])
    a.send_datagram(b"lost", B)
    network.heal()
    network.block(A, B)
    a.send_datagram(b"lost too", B)
    network.heal()
    a.send_datagram(b"through", B)
    for _ in range(3):
        await asyncio.sleep(0)
    assert [data for data, _ in received] == [b"through"]
    assert network.counters["dropped_partition"] == 2


async def test_memory_loss_is_seeded_and_partial() -> None:
    _, a, _, received = await _memory_pair(loss=0.5)
    for index in range(200):
        a.send_datagram(bytes([index % 256]), B)
    for _ in range(3):
        await asyncio.sleep(0)
    assert 60 < len(received) < 140


async def test_memory_pause_holds_datagrams_until_resume() -> None:
    network, a, _, received = await _memory_pair()
    network.pause(B)
    a.send_datagram(b"held", B)
    await asyncio.sleep(0.01)
    assert received == []
    network.resume(B)
    assert received == [(b"held", A)]


async def test_memory_stream_echo_and_crash_resets_it() -> None:
    network, a, b, _ = await _memory_pair()
    await _echo_server(b)
    reader, writer = await a.open_stream(B, CHANNEL_MEMBERSHIP, 1.0)
    stream = MessageStream(reader, writer)
    await stream.send(b"ping")
    assert await stream.recv(1.0) == b"ping"
    network.crash(B)
    with pytest.raises(StreamClosed):
        await stream.recv(1.0)
    with pytest.raises(StreamRefused):
        await a.open_stream(B, CHANNEL_MEMBERSHIP, 1.0)


async def test_memory_stream_to_paused_node_times_out() -> None:
    network, a, b, _ = await _memory_pair()
    network.pause(B)
    with pytest.raises(StreamTimeout):
        await a.open_stream(B, CHANNEL_MEMBERSHIP, 0.05)


async def test_stream_with_unregistered_channel_is_closed() -> None:
    _, a, b, _ = await _memory_pair()
    await _echo_server(b, CHANNEL_MEMBERSHIP)
    reader, writer = await a.open_stream(B, CHANNEL_SESSION, 1.0)
    with pytest.raises(StreamClosed):
        await MessageStream(reader, writer).recv(1.0)
    assert b.counters["streams_dropped_preamble"] == 1


async def test_oversize_stream_message_is_refused() -> None:
    _, a, b, _ = await _memory_pair()
    await _echo_server(b)
    reader, writer = await a.open_stream(B, CHANNEL_MEMBERSHIP, 1.0)
    writer.write((1 << 30).to_bytes(4, "big"))
    with pytest.raises(StreamClosed):
        await MessageStream(reader, writer, max_message=1 << 20).recv(1.0)


async def test_udp_transport_datagrams_and_streams_share_one_port() -> None:
    a, b = UdpTransport("127.0.0.1"), UdpTransport("127.0.0.2")
    got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
    b.set_datagram_handler(lambda data, source: got.put_nowait((data, source)))
    await _echo_server(b)
    await a.start()
    await b.start()
    try:
        a.send_datagram(b"over udp", b.local_address)
        data, source = await asyncio.wait_for(got.get(), 2.0)
        assert data == b"over udp" and source == a.local_address
        reader, writer = await a.open_stream(b.local_address, CHANNEL_MEMBERSHIP, 2.0)
        stream = MessageStream(reader, writer)
        await stream.send(b"over tcp")
        assert await stream.recv(2.0) == b"over tcp"
        stream.close()
    finally:
        await a.close()
        await b.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="the forced buffer size needs root")
async def test_udp_socket_gets_the_large_receive_buffer() -> None:
    """A privileged agent's UDP socket holds a burst of 2 MiB however small the system's
    default and maximum are (Linux reports twice the size asked, for its bookkeeping)."""
    transport = UdpTransport("127.0.0.1")
    await transport.start()
    try:
        sock = transport._udp.get_extra_info("socket")  # type: ignore[union-attr]
        assert transport.receive_buffer == sock.getsockopt(socket.SOL_SOCKET,
                                                           socket.SO_RCVBUF)
        assert transport.receive_buffer >= UDP_RECEIVE_BUFFER
    finally:
        await transport.close()


class _CappedSocket:
    """A socket as an unprivileged process sees it under a small net.core.rmem_max."""

    def __init__(self) -> None:
        self.size = 212_992

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if option != socket.SO_RCVBUF:
            raise PermissionError("SO_RCVBUFFORCE needs CAP_NET_ADMIN")
        self.size = 2 * min(value, 212_992)

    def getsockopt(self, level: int, option: int) -> int:
        return self.size


def test_a_capped_receive_buffer_is_taken_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        granted = transport_module._enlarge_receive_buffer(_CappedSocket())
    assert granted == 425_984
    assert "udp_receive_buffer_small" in caplog.text and "rmem_max" in caplog.text


async def test_udp_transport_refused_connect_means_nobody_listens() -> None:
    a, b = UdpTransport("127.0.0.1"), UdpTransport("127.0.0.3")
    await a.start()
    await b.start()
    address = b.local_address
    await b.close()
    try:
        with pytest.raises(StreamRefused):
            await a.open_stream(address, CHANNEL_MEMBERSHIP, 2.0)
    finally:
        await a.close()


async def test_udp_transport_close_resets_open_streams() -> None:
    a, b = UdpTransport("127.0.0.1"), UdpTransport("127.0.0.4")
    await _echo_server(b)
    await a.start()
    await b.start()
    try:
        reader, writer = await a.open_stream(b.local_address, CHANNEL_MEMBERSHIP, 2.0)
        stream = MessageStream(reader, writer)
        await stream.send(b"x")
        assert await stream.recv(2.0) == b"x"
        await b.close()
        with pytest.raises(StreamClosed):
            await stream.recv(2.0)
    finally:
        await a.close()


async def test_udp_transport_drops_connections_with_a_bad_preamble() -> None:
    b = UdpTransport("127.0.0.5")
    await _echo_server(b)
    await b.start()
    try:
        reader, writer = await asyncio.open_connection(*b.local_address)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        assert b.counters["streams_dropped_preamble"] == 1
        writer.close()
    finally:
        await b.close()


def test_virtual_clock_runs_long_waits_instantly() -> None:
    async def long_wait() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - start

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        assert runner.run(asyncio.wait_for(long_wait(), 7200)) == pytest.approx(3600)


@pytest.mark.parametrize(("text", "expected"), [
    ("10.1.2.3", ("10.1.2.3", 7946)), ("10.1.2.3:80", ("10.1.2.3", 80)),
    ("[fe80::1]:99", ("fe80::1", 99)), ("host.example", ("host.example", 7946))])
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, 7946) == expected


@pytest.mark.parametrize("text", ["", ":80", "10.0.0.1:0", "10.0.0.1:x", "[::1]:70000"])
def test_parse_address_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text, 7946)

