"""``meshagent amt-sim`` serves a device a client can use, and keeps its state in a file."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

from amt import AmtClient, PowerState
from meshagent.cli.main import main


async def start_sim(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meshagent.cli.main", "amt-sim", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    return process, line


async def stop_sim(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 20)


async def test_amt_sim_serves_and_persists(tmp_path):
    state = tmp_path / "amt.json"
    process, line = await start_sim("--admin-password", "Sim-pass1", "--state", str(state),
                                    "--hostname", "sim-host")
    try:
        match = re.match(r"amt-sim listening on http://127\.0\.0\.1:(\d+)/wsman "
                         r"realm=(Digest:[0-9A-F]{32})", line)
        assert match, line
        async with AmtClient("127.0.0.1", int(match.group(1)), "admin", "Sim-pass1") as amt:
            assert (await amt.general_settings()).hostname == "sim-host"
            assert await amt.get_power_state() is PowerState.ON
    finally:
        assert await stop_sim(process) == 0
    assert state.exists()
    process, line = await start_sim("--state", str(state))  # no password needed any more
    try:
        assert match.group(2) in line
    finally:
        await stop_sim(process)


def test_new_device_without_password_is_a_config_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MESHAGENT_AMT_ADMIN_PASSWORD", raising=False)
    assert main(["amt-sim", "--state", str(tmp_path / "none.json")]) == 1
    assert "ConfigError" in capsys.readouterr().err
