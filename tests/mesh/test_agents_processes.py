"""Agents as separate ``meshagent run`` processes on 127.x addresses, driven through their
control sockets: what ``meshctl`` and the demo see."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from meshagent.demo import AgentProcess, agent_command, create_mesh, query, wait_for
from meshagent.eventloop import uvloop_factory
from tests.mesh.meshkit import free_loopback_subnet

pytestmark = pytest.mark.slow


@pytest.fixture(params=["asyncio"] + (["uvloop"] if uvloop_factory() else []))
async def processes(tmp_path: Path, request: pytest.FixtureRequest):
    """Four agents on the event loop of the parameter (``runtime.event_loop``)."""
    subnet = free_loopback_subnet("127.2", 4, 17946)
    mesh = create_mesh(tmp_path / "mesh", 4, addresses=[
        (f"{subnet}.{i + 1}", 17946) for i in range(4)], seeds=1,
        extra_config=f'[runtime]\nevent_loop = "{request.param}"\n')
    agents = [AgentProcess(node) for node in mesh.nodes]
    try:
        for agent in agents:
            agent.start()
        await asyncio.gather(*(agent.wait_ready() for agent in agents))
        for agent in agents:
            assert (await query(agent.node.socket, "status"))["event_loop"] == request.param
        yield agents
    finally:
        for agent in agents:
            agent.stop()


async def _states(agent: AgentProcess) -> dict[str, str]:
    return {n["host"]: n["state"] for n in await query(agent.node.socket, "nodes")}


async def _everyone_sees(agents: list[AgentProcess], host: str, states: set[str]) -> bool:
    for agent in agents:
        if (await _states(agent)).get(host) not in states:
            return False
    return True


async def _converged(agents: list[AgentProcess]) -> bool:
    for agent in agents:
        nodes = await query(agent.node.socket, "nodes")
        if sorted(n["state"] for n in nodes) != ["alive"] * len(agents):
            return False
        if any(n["route"] is None for n in nodes):
            return False
    return True


async def test_killed_agent_is_seen_failed_quickly_and_rejoins_after_restart(
        processes: list[AgentProcess]) -> None:
    await wait_for(lambda: _converged(processes), 20, "convergence")
    victim, others = processes[-1], processes[:-1]
    victim.kill()
    killed = time.monotonic()
    await wait_for(lambda: _everyone_sees(others, victim.node.name, {"unreachable"}), 10,
                   "every peer to mark the killed agent unreachable")
    assert time.monotonic() - killed < 2.0
    for agent in others:
        routed = {n["host"]: n["route"] for n in await query(agent.node.socket, "nodes")}
        assert routed[victim.node.name] is None
    victim.start()
    await victim.wait_ready()
    await wait_for(lambda: _converged(processes), 20, "the restarted agent to rejoin")


async def test_stopped_agent_is_seen_as_left(processes: list[AgentProcess]) -> None:
    await wait_for(lambda: _converged(processes), 20, "convergence")
    leaver, others = processes[0], processes[1:]
    leaver.stop()
    await wait_for(lambda: _everyone_sees(others, leaver.node.name, {"left"}), 10,
                   "every peer to see the agent leave")


async def test_paused_agent_is_marked_unreachable_and_recovers_when_resumed(
        processes: list[AgentProcess]) -> None:
    await wait_for(lambda: _converged(processes), 20, "convergence")
    sleeper, others = processes[1], [p for i, p in enumerate(processes) if i != 1]
    sleeper.pause()
    paused = time.monotonic()
    try:
        await wait_for(lambda: _everyone_sees(others, sleeper.node.name, {"unreachable"}),
                       15, "every peer to mark the silent agent unreachable")
        assert time.monotonic() - paused < 6.0
    finally:
        sleeper.resume()
    await wait_for(lambda: _converged(processes), 20, "the resumed agent to refute")


def test_agent_processes_start_the_frozen_executable_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen executable has no ``-m``: its demo and test meshes start agents and the
    web service with the executable itself (CI runs the frozen demo end to end)."""
    assert agent_command() == [sys.executable, "-m", "meshagent.cli.main"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/meshagent/meshagent")
    assert agent_command() == ["/opt/meshagent/meshagent"]
