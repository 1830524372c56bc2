"""Choosing the agent's event loop, and writes that behave alike on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest

from meshagent.config import parse_config
from meshagent.errors import ConfigError
from meshagent.eventloop import loop_factory, loop_name, uvloop_factory, write_unless_closing

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
    with pytest.raises(ConfigError, match="asyncio, uvloop"):
        loop_factory("trio")


def test_config_takes_the_choice_and_refuses_others() -> None:
    assert parse_config({}).runtime.event_loop == "asyncio"
    assert parse_config({"runtime": {"event_loop": "uvloop"}}).runtime.event_loop == "uvloop"
    with pytest.raises(ConfigError, match="runtime.event_loop"):
        parse_config({"runtime": {"event_loop": "auto"}})


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
