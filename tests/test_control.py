"""The local control socket: owner-only, JSON lines, typed errors, survives bad clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from meshagent.control import (
    ControlError,
    ControlServer,
    ControlUnavailable,
    RemoteError,
    call,
)
from meshagent.errors import MeshError


class Refused(MeshError):
    pass


async def _echo(params: dict[str, Any]) -> dict[str, Any]:
    return {"echo": params}


def _refuse(params: dict[str, Any]) -> None:
    raise Refused("not today")


async def _broken(params: dict[str, Any]) -> None:
    raise RuntimeError("a bug in a method")


@pytest.fixture
async def server(tmp_path: Path):
    control = ControlServer(tmp_path / "run" / "control.sock",
                            {"echo": _echo, "refuse": _refuse,
                             "needs": lambda params: params["x"], "broken": _broken})
    await control.start()
    try:
        yield control
    finally:
        await control.stop()


async def test_socket_and_directory_are_owner_only(server: ControlServer) -> None:
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o700


async def test_request_gets_the_handler_result(server: ControlServer) -> None:
    assert await call(server.path, "echo", {"a": [1, 2]}) == {"echo": {"a": [1, 2]}}


async def test_sync_handler_and_late_registration(server: ControlServer) -> None:
    server.register("answer", lambda params: 42)
    assert await call(server.path, "answer") == 42


async def test_mesh_error_becomes_a_typed_remote_error(server: ControlServer) -> None:
    with pytest.raises(RemoteError) as caught:
        await call(server.path, "refuse")
    assert caught.value.kind == "Refused"


async def test_failing_method_is_answered_and_logged_and_the_connection_serves_on(
        server: ControlServer, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.path))

    async def ask(method: str) -> dict[str, Any]:
        writer.write(json.dumps({"id": 7, "method": method}).encode() + b"\n")
        return json.loads(await asyncio.wait_for(reader.readline(), 5))
    try:
        assert (await ask("broken"))["error"] == {
            "type": "InternalError", "message": "RuntimeError: a bug in a method"}
        assert await ask("echo") == {"id": 7, "result": {"echo": {}}}
    finally:
        writer.close()
    assert "control_method_failed" in caplog.text


async def test_missing_param_is_a_bad_request(server: ControlServer) -> None:
    with pytest.raises(RemoteError) as caught:
        await call(server.path, "needs")
    assert caught.value.kind == "BadRequest"


async def test_unknown_method_lists_the_known_ones(server: ControlServer) -> None:
    with pytest.raises(RemoteError, match="echo") as caught:
        await call(server.path, "nope")
    assert caught.value.kind == "UnknownMethod"


async def test_garbage_lines_get_errors_and_the_connection_keeps_serving(
        server: ControlServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b"{not json\n[1,2]\n{\"id\":7,\"method\":\"echo\",\"params\":{\"k\":1}}\n")
    first = await reader.readline()
    second = await reader.readline()
    third = await reader.readline()
    writer.close()
    assert b"BadRequest" in first and b"BadRequest" in second
    assert third.startswith(b'{"id":7,"result":{"echo":{"k":1}}')


async def test_overlong_line_is_refused_without_stopping_the_server(
        server: ControlServer) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(b"x" * (2 << 20) + b"\n")
    answer = await reader.readline()
    writer.close()
    assert b"line too long" in answer
    assert await call(server.path, "echo") == {"echo": {}}


async def test_no_agent_is_control_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ControlUnavailable):
        await call(tmp_path / "absent.sock", "echo", timeout=1.0)


async def test_stale_socket_is_replaced_but_a_live_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    first = ControlServer(path, {"echo": _echo})
    await first.start()
    with pytest.raises(ControlError, match="another agent"):
        await ControlServer(path).start()
    await first.stop()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on, as a killed agent leaves
    stale.close()
    second = ControlServer(path, {"echo": _echo})
    await second.start()
    try:
        assert await call(path, "echo") == {"echo": {}}
    finally:
        await second.stop()
    assert not path.exists()


async def test_concurrent_starts_leave_the_process_umask_as_it_was(tmp_path: Path) -> None:
    # The umask is process-wide. Narrowing it across an await lets two agents starting in
    # one process interleave their save/restore and leave the narrow mask behind for good,
    # after which every new directory is 0600 and cannot be entered.
    servers = [ControlServer(tmp_path / f"run{index}" / "control.sock", {"echo": _echo})
               for index in range(3)]
    old_umask = os.umask(0o022)
    try:
        await asyncio.gather(*(server.start() for server in servers))
        assert os.umask(0o022) == 0o022
        directory = tmp_path / "made-after"
        directory.mkdir(mode=0o755)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
        assert all(stat.S_IMODE(os.stat(server.path).st_mode) == 0o600 for server in servers)
    finally:
        os.umask(old_umask)
        await asyncio.gather(*(server.stop() for server in servers))
