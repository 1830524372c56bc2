"""Choosing the agent's event loop, and writes that behave alike on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

from meshagent.config import parse_config
from meshagent.errors import ConfigError
from meshagent.eventloop import (
    BatchAcceptServer,
    loop_factory,
    loop_name,
    start_stream_server,
    uvloop_factory,
    write_unless_closing,
)

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed here")


def _without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import then raises ImportError


def test_asyncio_is_asyncios_own_loop_and_uvloop_is_uvloops() -> None:
    assert loop_factory("asyncio") is None
    assert loop_factory("uvloop") is uvloop.new_event_loop


def test_uvloop_where_it_cannot_be_imported_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _without_uvloop(monkeypatch)
    assert uvloop_factory() is None
    with pytest.raises(ConfigError, match="uvloop cannot be imported"):
        loop_factory("uvloop")
    assert loop_factory("asyncio") is None


def test_unknown_choice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="auto, asyncio, uvloop"):
        loop_factory("trio")


def test_config_takes_the_choice_and_refuses_others() -> None:
    assert parse_config({}).runtime.event_loop == "auto"
    assert parse_config({"runtime": {"event_loop": "uvloop"}}).runtime.event_loop == "uvloop"
    with pytest.raises(ConfigError, match="runtime.event_loop"):
        parse_config({"runtime": {"event_loop": "trio"}})


def test_auto_is_uvloop_where_it_is_installed_and_asyncio_elsewhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert loop_factory("auto") is uvloop.new_event_loop
    _without_uvloop(monkeypatch)
    assert loop_factory("auto") is None  # asyncio's own, not an error


def _on(factory: Callable[[], asyncio.AbstractEventLoop] | None, main: Any) -> Any:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_write_to_a_closed_stream_is_dropped_on_either_loop(choice: str) -> None:
    async def main() -> tuple[str, bool, bool, bytes]:
        received = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())
            writer.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = write_unless_closing(writer, b"before")
        writer.close()
        await writer.wait_closed()
        late = write_unless_closing(writer, b"after")
        data = await asyncio.wait_for(received, 5)
        server.close()
        await server.wait_closed()
        return loop_name(asyncio.get_running_loop()), sent, late, data

    name, sent, late, data = _on(loop_factory(choice), main)
    assert (name, sent, late, data) == (choice, True, False, b"before")


def test_uvloop_raises_where_asyncio_drops_which_is_why_writes_are_guarded() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        writer.close()
        await writer.wait_closed()
        try:
            with pytest.raises(RuntimeError, match="closed"):
                writer.write(b"late")
        finally:
            server.close()
            await server.wait_closed()

    _on(uvloop.new_event_loop, main)


def _pending_connections(count: int, port: int) -> list[socket.socket]:
    """``count`` connections the kernel completed and the server has not accepted yet
    (blocking connects from the loop's thread: the loop does not run meanwhile)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_a_burst_of_connections_is_served_on_either_loop(choice: str) -> None:
    """Every one of 40 connections made at once is handed over and answered."""
    async def main() -> list[bytes]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()
        server = await start_stream_server(echo, "127.0.0.1", 0, backlog=64,
                                           family=socket.AF_INET)
        port = server.sockets[0].getsockname()[1]
        clients = _pending_connections(40, port)
        streams = [await asyncio.open_connection(sock=client) for client in clients]
        for index, (_reader, writer) in enumerate(streams):
            writer.write(b"%04d" % index)
        answers = [await asyncio.wait_for(reader.read(), 5) for reader, _ in streams]
        for _reader, writer in streams:
            writer.close()
        server.close()
        await server.wait_closed()
        return answers

    assert _on(loop_factory(choice), main) == [b"%04d" % i for i in range(40)]


def test_uvloop_listener_takes_every_pending_connection_at_once() -> None:
    """uvloop's own servers accept one connection per loop iteration (libuv#3696); ours
    takes all that are pending, as asyncio's do, whenever the socket is readable."""
    async def main() -> tuple[type, int]:
        connected = asyncio.Event()
        served: list[asyncio.StreamWriter] = []

        def handed_over(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(writer)
            if len(served) == 25:
                connected.set()
        server = await start_stream_server(handed_over, "127.0.0.1", 0, backlog=64,
                                           family=socket.AF_INET)
        assert isinstance(server, BatchAcceptServer)
        clients = _pending_connections(25, server.sockets[0].getsockname()[1])
        accepted = server.accept_pending()  # one readiness event's worth
        await asyncio.wait_for(connected.wait(), 5)
        for writer in served:
            writer.close()
        for client in clients:
            client.close()
        server.close()
        await server.wait_closed()
        return type(server), accepted

    kind, accepted = _on(uvloop.new_event_loop, main)
    assert (kind, accepted) == (BatchAcceptServer, 25)


def test_out_of_descriptors_pauses_accepting_with_a_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE from accept stops listening for a second (accepting again at once would
    spin), says so once, then listens again."""
    class Exhausted:
        def __init__(self, fd: int) -> None:
            self.fd = fd

        def fileno(self) -> int:
            return self.fd

        def accept(self) -> tuple[socket.socket, object]:
            raise OSError(errno.EMFILE, "Too many open files")

    async def main() -> tuple[int, bool, float, bool]:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        server = BatchAcceptServer(loop, Exhausted(left.fileno()), lambda r, w: None, 8)
        again = asyncio.Event()
        listen_again = server._listen_again

        def listened_again() -> None:
            listen_again()
            again.set()
        server._listen_again = listened_again  # type: ignore[method-assign]
        started = loop.time()
        accepted = server.accept_pending()
        paused = not loop.remove_reader(left.fileno())
        await asyncio.wait_for(again.wait(), 5)
        waited = loop.time() - started
        listening = loop.remove_reader(left.fileno())
        left.close()
        right.close()
        return accepted, paused, waited, listening

    with caplog.at_level(logging.WARNING):
        accepted, paused, waited, listening = _on(None, main)
    assert (accepted, paused, listening) == (0, True, True)
    assert 0.9 <= waited < 2.0
    assert sum("accept_failed" in r.getMessage() for r in caplog.records) == 1
