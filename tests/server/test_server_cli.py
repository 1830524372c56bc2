"""``meshagent server init / add-mesh / show / run`` end to end: the directory they make
serves a real service whose pin, admin password and console key work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meshagent.cli.api_client import ApiClient
from meshagent.cli.main import main
from meshagent.commands import OperatorKey, authorise_operator
from meshagent.identity import MeshRoot
from meshagent.leaderlab import free_port
from tests.polling import wait_for


def test_init_refuses_to_overwrite_and_add_mesh_checks_the_console_cert(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "srv"
    assert main(["server", "init", "--dir", str(directory), "--admin-password", "pw"]) == 0
    assert main(["server", "init", "--dir", str(directory)]) == 1  # exists: ConfigError
    root = MeshRoot.create()
    root.trust.save(tmp_path / "mesh.trust")
    stranger = OperatorKey.generate("someone-else")
    authorise_operator(root, stranger.public, "x", ["*"], 3600.0).save(tmp_path / "bad.cert")
    assert main(["server", "add-mesh", "--dir", str(directory), str(tmp_path / "mesh.trust"),
                 "--console-cert", str(tmp_path / "bad.cert")]) == 1
    assert "another key" in capsys.readouterr().err


async def test_initialised_directory_runs_a_service_with_login_and_console_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "srv"
    assert main(["server", "init", "--dir", str(directory)]) == 0
    printed = capsys.readouterr().out
    password = printed.split("admin password (shown once): ")[1].split()[0]
    root = MeshRoot.create()
    root.trust.save(tmp_path / "mesh.trust")
    console = OperatorKey.load(directory / "console-operator.key")
    authorise_operator(root, console.public, "web-console", ["*"], 3600.0).save(
        tmp_path / "console.cert")
    assert main(["server", "add-mesh", "--dir", str(directory), str(tmp_path / "mesh.trust"),
                 "--name", "lab", "--console-cert", str(tmp_path / "console.cert")]) == 0
    capsys.readouterr()
    assert main(["server", "show", "--dir", str(directory), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["meshes"] == [{"mesh": root.mesh_id.hex(), "name": "lab",
                                "console_can_sign": True}]

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "meshagent.cli.main", "server", "run", "--dir", str(directory),
         "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        client = ApiClient(f"https://127.0.0.1:{port}", bytes.fromhex(shown["pin"]), password)
        meshes = await wait_for(lambda: _meshes(client), timeout=30)
        assert meshes[0]["name"] == "lab" and meshes[0]["console_can_sign"]
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0].decode()
    assert process.returncode == 0, output
    assert (directory / "service.db").exists()


def _meshes(client: ApiClient) -> list | None:
    try:
        return client.meshes()
    except Exception:
        return None
