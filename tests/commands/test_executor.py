from __future__ import annotations

import asyncio
import logging

from meshagent.commands import (
    ActionError,
    ActionSpec,
    CommandResult,
    MalformedCommand,
    ReplayedCommand,
    ResultStatus,
)
from meshagent.commands.seen import SeenState

from .conftest import Mesh


def _spec(name, run):
    return ActionSpec(name, "read", run)


async def test_admitted_command_runs_and_its_signed_result_is_stored_first(mesh: Mesh, seen):
    envelope = mesh.policy(seen).check(mesh.command("ping", {"echo": "x"}))
    result = await mesh.executor(seen).execute(envelope)
    assert result.status is ResultStatus.OK and result.output["echo"] == "x"
    assert CommandResult.verify(result.to_wire(), mesh.node_certificate()) == result
    entry = seen.get(envelope.id)
    assert entry.state is SeenState.DONE and entry.result == result.to_wire()


async def test_action_error_becomes_an_error_result(mesh: Mesh, seen, caplog):
    async def failing(args, ctx):
        raise ActionError("disk_full", "no space left", free_bytes=0)

    envelope = mesh.policy(seen).check(mesh.command("ping"))
    executor = mesh.executor(seen, actions={"ping": _spec("ping", failing)})
    with caplog.at_level(logging.INFO):
        result = await executor.execute(envelope)
    assert result.status is ResultStatus.ERROR
    assert result.output == {"code": "disk_full", "error": "no space left", "free_bytes": 0}
    assert any("action_failed" in r.getMessage() for r in caplog.records)


async def test_crashing_action_is_contained(mesh: Mesh, seen):
    async def crashing(args, ctx):
        raise ZeroDivisionError("bug")

    envelope = mesh.policy(seen).check(mesh.command("ping"))
    result = await mesh.executor(seen, actions={"ping": _spec("ping", crashing)}).execute(envelope)
    assert result.status is ResultStatus.ERROR and result.output["code"] == "internal"


async def test_action_over_its_timeout_is_cancelled(mesh: Mesh, seen):
    cancelled = asyncio.Event()

    async def hanging(args, ctx):
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    envelope = mesh.policy(seen).check(mesh.command("ping"))
    executor = mesh.executor(seen, actions={"ping": _spec("ping", hanging)}, timeout_s=0.05)
    result = await executor.execute(envelope)
    assert result.output["code"] == "timeout" and cancelled.is_set()


async def test_oversize_or_unencodable_output_becomes_an_error(mesh: Mesh, seen):
    async def huge(args, ctx):
        return b"x" * (600 * 1024)

    async def odd(args, ctx):
        return object()

    policy = mesh.policy(seen)
    for run, code in ((huge, "output_too_large"), (odd, "internal")):
        envelope = policy.check(mesh.command("ping"))
        result = await mesh.executor(seen, actions={"ping": _spec("ping", run)}).execute(envelope)
        assert result.output["code"] == code


async def test_action_unknown_to_this_agent_is_an_error(mesh: Mesh, seen):
    envelope = mesh.policy(seen).check(mesh.command("ping"))
    result = await mesh.executor(seen, actions={}).execute(envelope)
    assert result.output["code"] == "unknown_action"


async def test_interrupted_command_is_reported_not_rerun(mesh: Mesh):
    command = mesh.command("tags", {"set": {"x": "1"}})
    first = mesh.open_seen()
    mesh.policy(first).check(command)
    first.close()  # the agent dies before the executor finishes
    seen = mesh.open_seen()
    try:
        results = mesh.executor(seen).recover_interrupted()
        assert [r.output["code"] for r in results] == ["interrupted"]
        assert seen.get(command.envelope().id).state is SeenState.DONE
        assert mesh.executor(seen).recover_interrupted() == []
        assert mesh.changes == []  # never run
    finally:
        seen.close()


def test_rejection_gets_a_signed_rejected_result(mesh: Mesh, seen):
    policy = mesh.policy(seen)
    command = mesh.command()
    policy.check(command)
    try:
        policy.check(command)
    except ReplayedCommand as rejection:
        result = mesh.executor(seen).reject(rejection)
    assert result.status is ResultStatus.REJECTED
    assert result.output["reason"] == "replayed"
    assert CommandResult.verify(result.signed, mesh.node_certificate()).command_id == \
        command.envelope().id


def test_rejection_without_an_id_gets_no_result(mesh: Mesh, seen):
    assert mesh.executor(seen).reject(MalformedCommand("junk")) is None


