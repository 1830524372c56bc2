from __future__ import annotations

import asyncio
import time

import pytest

from meshagent.commands import (
    ActionSpec,
    CommandExecutor,
    CommandInbox,
    CommandResult,
    ResultStatus,
    SeenCommands,
    Target,
)
from meshagent.identity import NodeIdentity

from .conftest import Mesh


def _inbox(mesh: Mesh, seen, **executor_kwargs) -> CommandInbox:
    return CommandInbox(mesh.policy(seen), mesh.executor(seen, **executor_kwargs))


async def test_command_runs_and_tags_reach_the_agent(mesh: Mesh, seen):
    result = await _inbox(mesh, seen).receive(
        mesh.command("tags", {"set": {"ring": "canary"}}, target=Target.tagged({"site": "lab"}))
        .to_wire())
    assert result.status is ResultStatus.OK
    verified = CommandResult.verify(result.to_wire(), mesh.node_certificate())
    assert verified.output["tags"]["ring"] == "canary"
    assert mesh.changes == [{"site": "lab", "ring": "canary"}]


async def test_redelivery_gets_the_original_result_and_does_not_rerun(mesh: Mesh, seen):
    inbox = _inbox(mesh, seen)
    wire = mesh.command("tags", {"set": {"n": "1"}}).to_wire()
    first = await inbox.receive(wire)
    mesh.tags.apply({}, ["n"])
    again = await inbox.receive(wire)
    assert again is not None and again.to_wire() == first.to_wire()
    assert "n" not in mesh.tags.current()


async def test_redelivery_while_running_returns_nothing_yet(mesh: Mesh, seen):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(args, ctx):
        started.set()
        await release.wait()
        return "done"

    inbox = _inbox(mesh, seen, actions={"ping": ActionSpec("ping", "read", slow)})
    wire = mesh.command("ping").to_wire()
    first = asyncio.create_task(inbox.receive(wire))
    await asyncio.wait_for(started.wait(), 5)
    assert await inbox.receive(wire) is None
    release.set()
    assert (await asyncio.wait_for(first, 5)).output == "done"


async def test_refused_command_gets_a_signed_rejected_result(mesh: Mesh, seen):
    other = NodeIdentity.generate()
    result = await _inbox(mesh, seen).receive(
        mesh.command(target=Target.node(other.node_id)).to_wire())
    assert result.status is ResultStatus.REJECTED and result.output["reason"] == "wrong_target"
    expired = await _inbox(mesh, seen).receive(
        mesh.command(ttl=1, now=time.time() - 100).to_wire())
    assert expired.output["reason"] == "expired"


async def test_garbage_gets_no_result(mesh: Mesh, seen):
    assert await _inbox(mesh, seen).receive(b"\x00garbage") is None


def test_policy_and_executor_must_share_the_store(mesh: Mesh, seen, tmp_path):
    with SeenCommands(tmp_path / "other.db") as other:
        with pytest.raises(ValueError):
            CommandInbox(mesh.policy(seen), CommandExecutor(
                mesh.node.sign_key, mesh.node.node_id, other, mesh.context()))
