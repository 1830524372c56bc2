"""``meshctl run / results / leader / audit / nodes --server`` against a real web service
and real agent processes (the console side of the leader's relay)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshagent.cli.meshctl import main as meshctl
from meshagent.leaderlab import LAB_PASSWORD, LeaderLab, free_port

COUNT = 3


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LeaderLab]:
    lab = LeaderLab.create(tmp_path / "mesh", COUNT, service_port=free_port(),
                           first_address=random.randrange(2, 60_000),
                           actions=["ping", "inventory", "tags"])
    lab.operator.save(tmp_path / "op.key")
    lab.operator_cert.save(tmp_path / "op.cert")
    async with lab.running():
        await lab.settled(COUNT, timeout=30)
        yield lab


async def ctl(lab: LeaderLab, capsys: pytest.CaptureFixture[str], *argv: str,
              server: bool = True) -> tuple[int, str]:
    """Run meshctl in a thread (it blocks; the service runs on this loop)."""
    options = ["--server", lab.url, "--pin", lab.pin.hex(), "--token", LAB_PASSWORD] \
        if server else []
    verb, *rest = argv
    code = await asyncio.to_thread(meshctl, [verb, *options, *rest])
    return code, capsys.readouterr().out


async def test_run_waits_for_every_result_and_results_and_audit_show_them(
        lab: LeaderLab, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    keys = ["--key", str(tmp_path / "op.key"), "--cert", str(tmp_path / "op.cert")]
    code, out = await ctl(lab, capsys, "run", "ping", "--all", "--arg", "echo=hi", *keys,
                          "--json")
    assert code == 0
    outcome = json.loads(out)
    assert len(outcome["results"]) == COUNT
    assert {r["status"] for r in outcome["results"]} == {"ok"}
    assert {r["output"]["echo"] for r in outcome["results"]} == {"hi"}

    code, out = await ctl(lab, capsys, "results", outcome["id"])
    assert code == 0 and out.count(" ok ") == COUNT and f"{COUNT} results" in out

    code, out = await ctl(lab, capsys, "audit", "--command", outcome["id"], "--json")
    events = [entry["event"] for entry in json.loads(out)]
    assert events.count("command_done") == COUNT and "command_submitted" in events

    host = lab.mesh.nodes[1].name
    code, out = await ctl(lab, capsys, "run", "ping", "--node", host, *keys)
    assert code == 0 and "queued for 1 node" in out and "1 result" in out


async def test_run_of_a_refused_action_exits_non_zero_with_rejections(
        lab: LeaderLab, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = await ctl(lab, capsys, "run", "power", "--all", "--arg", "operation=restart",
                          "--key", str(tmp_path / "op.key"), "--cert", str(tmp_path / "op.cert"))
    assert code == 1
    assert out.count("rejected") == COUNT and "not_allowlisted" in out


async def test_leader_is_shown_by_the_service_and_by_the_agent(
        lab: LeaderLab, capsys: pytest.CaptureFixture[str]) -> None:
    held = await lab.leader()
    assert held is not None
    code, out = await ctl(lab, capsys, "leader", "--json")
    meshes = json.loads(out)
    assert code == 0 and meshes[0]["leader"]["node"] == held.node_id.hex()
    assert meshes[0]["leader"]["term"] == held.term and meshes[0]["leader"]["connected"]

    socket = lab.agent_of(held.node_id).node.socket
    code, out = await ctl(lab, capsys, "leader", "--socket", str(socket), server=False)
    assert code == 0
    assert held.node_id.hex() in out and "<- this node" in out and "connected" in out


async def test_nodes_from_the_service_inventory(lab: LeaderLab,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out = await ctl(lab, capsys, "nodes", "--json", "--state", "alive")
    nodes = json.loads(out)
    assert code == 0 and len(nodes) == COUNT
    assert {n["host"] for n in nodes} == {node.name for node in lab.mesh.nodes}
    code, out = await ctl(lab, capsys, "nodes", "--tag", "demo=yes")
    assert f"{COUNT} nodes" in out
    # Whose certificate ends soon: the demo's certificates run for a year.
    assert all(n["certificate"]["expires"] > time.time() + 300 * 86400 for n in nodes)
    code, out = await ctl(lab, capsys, "nodes", "--json", "--cert-expiring", "400d")
    assert code == 0 and len(json.loads(out)) == COUNT
    code, out = await ctl(lab, capsys, "nodes", "--json", "--cert-expiring", "30d")
    assert code == 0 and json.loads(out) == []
