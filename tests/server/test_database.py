"""The storage contract (``meshagent/server/db/base.py``), the same tests on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from meshagent.server.batching import GroupCommit
from meshagent.server.db import (
    AuditEntry,
    CommandState,
    Database,
    DuplicateCommand,
    InventoryReport,
    NewCommand,
    NodeFilter,
    NodeUpdate,
    ResultRow,
    open_database,
)

MESH = b"M" * 16
LEADER = b"L" * 16
NODE_A, NODE_B = b"A" * 16, b"B" * 16


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await open_database(db_url)
    try:
        yield database
    finally:
        await database.close()


def _command(command_id: bytes, node: bytes, expires: float = 1000.0) -> NewCommand:
    return NewCommand(command_id, MESH, node, b"wire", "ping", b"O" * 16, 10.0, expires)


def _audit(command_id: bytes) -> AuditEntry:
    return AuditEntry("tester", "command_submitted", command_id, {}, 10.0)


async def _alive(db: Database, *nodes: bytes) -> None:
    await db.apply_inventory([InventoryReport(MESH, LEADER, [
        NodeUpdate(n, "alive", 5.0, b"record", {"hostname": f"pc-{n.decode()[:1]}"})
        for n in nodes])])


async def test_fencing_term_never_goes_back_even_after_reopening(db_url: str) -> None:
    db = await open_database(db_url)
    assert (await db.claim_leadership(MESH, NODE_A, 3, 1.0)).accepted
    assert (await db.claim_leadership(MESH, NODE_A, 3, 2.0)).accepted  # reconnect
    assert not (await db.claim_leadership(MESH, NODE_B, 3, 3.0)).accepted
    await db.close()
    db = await open_database(db_url)
    try:
        refused = await db.claim_leadership(MESH, NODE_B, 2, 4.0)
        assert not refused.accepted and refused.holder.term == 3
        assert (await db.claim_leadership(MESH, NODE_B, 4, 5.0)).accepted
        await db.leader_disconnected(MESH, NODE_A, 3, 6.0)  # the old one: no effect
        assert [(r.node_id, r.term, r.connected) for r in await db.leaders()] == [
            (NODE_B, 4, True)]
    finally:
        await db.close()


async def test_full_inventory_marks_unlisted_nodes_unreported(db: Database) -> None:
    await _alive(db, NODE_A, NODE_B)
    await db.apply_inventory([InventoryReport(MESH, LEADER, [NodeUpdate(NODE_A, "alive", 6.0)],
                                              full=True)])
    assert await db.node_states(MESH) == {NODE_A: "alive", NODE_B: "unreported"}
    kept = await db.node(NODE_A)
    assert kept is not None and kept.record == b"record"  # a state-only update keeps it
    assert [n.node_id for n in await db.nodes(NodeFilter(text="PC-a"))] == [NODE_A]


async def test_queued_command_is_taken_once_and_only_for_a_deliverable_target(
        db: Database) -> None:
    await db.enqueue([_command(b"1" * 16, NODE_A), _command(b"1" * 16, NODE_B)], _audit(b"1"))
    assert await db.take_deliverable(MESH, 1, 20.0) == []  # targets never seen yet
    await _alive(db, NODE_A)
    taken = await db.take_deliverable(MESH, 1, 20.0)
    assert [(c.node_id, c.state, c.attempts) for c in taken] == [
        (NODE_A, CommandState.SENT, 1)]
    assert await db.take_deliverable(MESH, 1, 21.0) == []
    assert await db.requeue(MESH) == 1
    again = await db.take_deliverable(MESH, 2, 22.0)
    assert [(c.sent_term, c.attempts) for c in again] == [(2, 2)]


async def test_duplicate_command_is_refused_whole(db: Database) -> None:
    await db.enqueue([_command(b"2" * 16, NODE_A)], _audit(b"2" * 16))
    with pytest.raises(DuplicateCommand):
        await db.enqueue([_command(b"3" * 16, NODE_A), _command(b"2" * 16, NODE_A)],
                         _audit(b"3" * 16))
    assert [c.command_id for c in await db.commands()] == [b"2" * 16]


async def test_first_result_wins_and_unknown_commands_store_nothing(db: Database) -> None:
    await db.enqueue([_command(b"4" * 16, NODE_A)], _audit(b"4" * 16))
    first = ResultRow(b"4" * 16, NODE_A, b"first", {"status": "ok"}, 30.0)
    second = ResultRow(b"4" * 16, NODE_A, b"second", {"status": "ok"}, 31.0)
    unknown = ResultRow(b"5" * 16, NODE_A, b"x", {"status": "ok"}, 31.0)
    assert await db.store_results([first]) == [True]
    assert await db.store_results([second, unknown]) == [False, False]
    assert [r.result for r in await db.results()] == [b"first"]
    (row,) = await db.commands(command_id=b"4" * 16)
    assert row.state == CommandState.DONE and row.done_at == 30.0
    done = [a for a in await db.audit_log() if a.event == "command_done"]
    assert len(done) == 1 and done[0].actor == f"node:{NODE_A.hex()}"


async def test_expiry_of_queued_and_of_sent_after_grace(db: Database) -> None:
    await _alive(db, NODE_B)
    await db.enqueue([_command(b"6" * 16, NODE_A, expires=100.0),
                      _command(b"7" * 16, NODE_B, expires=100.0)], _audit(b"6" * 16))
    assert len(await db.take_deliverable(MESH, 1, 50.0)) == 1  # NODE_B's is sent
    assert [c.node_id for c in await db.expire_due(100.0)] == [NODE_A]
    assert await db.expire_due(110.0) == []  # sent: within the grace period
    assert [c.node_id for c in await db.expire_due(200.0)] == [NODE_B]
    assert {c.state for c in await db.commands()} == {CommandState.EXPIRED}


async def test_audit_log_pages_newest_first(db: Database) -> None:
    ids = [await db.audit("tester", f"event-{i}", None, {"i": i}, float(i)) for i in range(5)]
    assert ids == sorted(ids)
    page = await db.audit_log(after_id=ids[2], limit=10)
    assert [a.event for a in page] == ["event-4", "event-3"]


async def test_group_commit_batches_concurrent_writes_and_shares_failures() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def write(items: list[int]) -> None:
        batches.append(items)
        await release.wait()
        if 99 in items:
            raise RuntimeError("disk on fire")

    group: GroupCommit[int] = GroupCommit(write)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)  # the first write starts alone
    rest = [asyncio.create_task(group.submit(i)) for i in (1, 2, 99)]
    release.set()
    await first
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert batches == [[0], [1, 2, 99]]
    assert all(isinstance(r, RuntimeError) for r in results)
