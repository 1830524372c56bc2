"""Agents as real processes on 127.x behind the real web service (SQLite, TLS): a signed
command runs on every node through the elected leader; the leader is killed (-9) and a
new one takes over at a higher term; a command queued meanwhile arrives; the web service
goes down while a result is on its way and gets it when it comes back; a command the
nodes refuse comes back as signed rejections in the audit log."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshagent.commands import Target
from meshagent.control import call
from meshagent.leaderlab import LeaderLab, free_port
from meshagent.server.db import CommandState
from tests.polling import wait_for

SLOW_SCRIPT = b"#!/bin/sh\nsleep 1\necho slow done\n"
COUNT = 4


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LeaderLab]:
    # Everything but "power" is allowlisted, so power commands are refused by the nodes.
    lab = LeaderLab.create(tmp_path / "mesh", COUNT, service_port=free_port(),
                           agent_port=17946, first_address=random.randrange(2, 60_000),
                           actions=["ping", "inventory", "script", "tags"],
                           scripts={"slow.sh": SLOW_SCRIPT}, log_level="info")
    async with lab.running():
        yield lab


async def _leader_with_inventory(lab: LeaderLab, nodes: int, above_term: int = 0):
    """The leader row once the service holds a session above ``above_term`` whose
    inventory shows ``nodes`` alive."""
    session = await lab.settled(nodes, above_term=above_term, timeout=30)
    row = await lab.leader()
    assert row is not None and row.term == session.term and row.connected
    return row


async def _results(lab: LeaderLab, command_id: bytes, count: int) -> dict[bytes, dict]:
    async def arrived() -> bool:
        return len(await lab.results(command_id)) >= count
    await wait_for(arrived, 30, f"{count} results")
    return {row.node_id: row.summary for row in await lab.results(command_id)}


async def _admitted(lab: LeaderLab) -> dict[str, int]:
    counts = {}
    for agent in lab.agents:
        if agent.running:
            status = await call(agent.node.socket, "leader")
            counts[agent.node.name] = status["relay"]["admitted"]
    return counts


async def test_commands_run_everywhere_through_the_leader_and_survive_its_death(
        lab: LeaderLab) -> None:
    leader = await _leader_with_inventory(lab, COUNT)
    first = lab.command(Target.all(), "ping", {"echo": "first"})
    await lab.submit(first)
    results = await _results(lab, first.envelope().id, COUNT)
    assert set(results) == set(lab.mesh.node_ids.values())
    assert {r["status"] for r in results.values()} == {"ok"}

    # kill -9 the leader; a command queued right away for a survivor reaches it through
    # the next leader, and nothing runs twice.
    victim = lab.agent_of(leader.node_id)
    victim.kill()
    killed = time.monotonic()
    survivor = next(n for n in lab.mesh.node_ids.values() if n != leader.node_id)
    queued = lab.command(Target.node(survivor), "ping", {"echo": "queued"})
    await lab.submit(queued)
    new_leader = await _leader_with_inventory(lab, COUNT - 1, above_term=leader.term)
    took = time.monotonic() - killed
    assert new_leader.node_id != leader.node_id
    assert took < 10
    queued_results = await _results(lab, queued.envelope().id, 1)
    assert queued_results[survivor]["status"] == "ok"
    admitted = await _admitted(lab)
    assert sum(admitted.values()) == (COUNT - 1) + 1  # first (survivors) + queued, once each


async def test_result_waits_in_the_leaders_spool_while_the_service_is_down(
        lab: LeaderLab) -> None:
    leader = await _leader_with_inventory(lab, COUNT)
    target = next(n for n in lab.mesh.node_ids.values() if n != leader.node_id)
    command = lab.command(Target.node(target), "script", {"content": SLOW_SCRIPT})
    command_id = command.envelope().id
    await lab.submit(command)

    async def sent() -> bool:
        rows = await lab.service.db.commands(command_id=command_id)
        return bool(rows) and rows[0].state == CommandState.SENT
    await wait_for(sent, 10, "the command handed to the leader")
    await lab.stop_service()  # the script still runs for about a second

    socket = lab.agent_of(leader.node_id).node.socket

    async def spooled() -> bool:
        status = await call(socket, "leader")
        return status["uplink"]["results_spooled"] >= 1
    await wait_for(spooled, 15, "the result in the leader's spool")
    await lab.start_service()
    results = await _results(lab, command_id, 1)
    assert results[target]["status"] == "ok"
    assert bytes.fromhex(results[target]["output"]["stdout"]) == b"slow done\n"


async def test_command_the_nodes_refuse_comes_back_rejected_and_audited(lab: LeaderLab) -> None:
    await _leader_with_inventory(lab, COUNT)
    command = lab.command(Target.all(), "power", {"operation": "restart"})
    command_id = command.envelope().id
    await lab.submit(command)
    results = await _results(lab, command_id, COUNT)
    assert {r["status"] for r in results.values()} == {"rejected"}
    assert {r["output"]["reason"] for r in results.values()} == {"not_allowlisted"}
    audit = await lab.service.db.audit_log(command_id=command_id, limit=100)
    done = [entry for entry in audit if entry.event == "command_done"]
    assert len(done) == COUNT and {e.detail["status"] for e in done} == {"rejected"}


async def test_offline_target_gets_its_command_when_it_returns(lab: LeaderLab) -> None:
    leader = await _leader_with_inventory(lab, COUNT)
    target = next(n for n in lab.mesh.node_ids.values() if n != leader.node_id)
    agent = lab.agent_of(target)
    agent.kill()
    await lab.settled(COUNT - 1, timeout=30)  # the leader has reported it gone
    command = lab.command(Target.node(target), "ping", {"echo": "while you were out"})
    command_id = command.envelope().id
    await lab.submit(command)
    rows = await lab.service.db.commands(command_id=command_id)
    assert rows[0].state == CommandState.QUEUED
    assert not await lab.results(command_id)

    agent.start()
    await agent.wait_ready()
    results = await _results(lab, command_id, 1)
    assert results[target]["status"] == "ok"
    assert results[target]["output"]["echo"] == "while you were out"
