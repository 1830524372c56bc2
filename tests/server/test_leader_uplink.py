"""Leaders against the web service over real TLS WebSockets: login, fencing, inventory,
command delivery and results, on both database back ends."""

from __future__ import annotations

import asyncio

import pytest

from meshagent.commands import Target
from meshagent.server.db import NodeFilter
from meshagent.server.protocol import Close
from meshagent.uplink import NodeReport, UplinkRefused
from tests.polling import wait_for

from .conftest import Harness


async def test_leader_logs_in_and_inventory_is_stored(harness: Harness) -> None:
    leader = harness.leader(term=1)
    await leader.connected()
    db = harness.service.db
    rows = await wait_for(lambda: _nodes(harness, 4))
    assert {r.node_id for r in rows} == {n.node_id for n in harness.mesh.nodes}
    assert all(r.state == "alive" for r in rows)
    assert rows[0].via_leader == harness.mesh.nodes[0].node_id
    assert rows[0].summary["hostname"].startswith("node-")
    leaders = await db.leaders()
    assert [(lead.term, lead.connected) for lead in leaders] == [(1, True)]


async def _nodes(harness: Harness, count: int, state: str | None = None) -> list | None:
    rows = await harness.service.db.nodes(NodeFilter(state=state))
    return rows if len(rows) == count else None


async def test_inventory_deltas_keep_states_current(harness: Harness) -> None:
    leader = harness.leader(term=1)
    await leader.connected()
    node = harness.mesh.nodes[2]
    assert leader.uplink is not None
    assert await leader.uplink.report([NodeReport(node.node_id, "asleep", 123.0)])
    row = await wait_for(lambda: _state_is(harness, node.node_id, "asleep"))
    assert row.record is not None  # a state-only delta keeps the stored record
    assert row.last_seen == 123.0


async def _state_is(harness: Harness, node_id: bytes, state: str):
    row = await harness.service.db.node(node_id)
    return row if row is not None and row.state == state else None


async def test_stale_term_is_refused_and_newer_term_takes_over(harness: Harness) -> None:
    first = harness.leader(term=5, index=0)
    await first.connected()

    stale = harness.leader(term=4, index=1)
    with pytest.raises(UplinkRefused) as refused:
        await stale.connected()
    assert refused.value.code == Close.STALE_TERM

    same_term_other_node = harness.leader(term=5, index=2)
    with pytest.raises(UplinkRefused) as refused:
        await same_term_other_node.connected()
    assert refused.value.code == Close.STALE_TERM

    newer = harness.leader(term=6, index=1)
    await newer.connected()
    assert first.task is not None
    with pytest.raises(UplinkRefused) as superseded:
        await asyncio.wait_for(first.task, 10)
    assert superseded.value.code == Close.SUPERSEDED
    leaders = await harness.service.db.leaders()
    assert [(lead.node_id, lead.term) for lead in leaders] == [
        (harness.mesh.nodes[1].node_id, 6)]
    events = [a.event for a in await harness.service.db.audit_log()]
    assert events.count("leader_refused") == 2


async def test_command_is_delivered_and_its_result_stored(harness: Harness) -> None:
    leader = harness.leader(term=1)
    await leader.connected()
    await wait_for(lambda: _nodes(harness, 4))
    target = harness.mesh.nodes[3]
    signed = harness.mesh.command(Target.node(target.node_id))
    answer = await harness.submit(signed.to_wire())
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert delivered.command_id.hex() == answer["id"]
    assert delivered.node_id == target.node_id
    assert delivered.wire == signed.to_wire()

    assert leader.uplink is not None
    await leader.uplink.send_result(delivered.command_id, target.node_id,
                                    target.result(delivered.command_id))
    await wait_for(lambda: len(leader.uplink.spool) == 0)  # acked, so forgotten
    status = await harness.call("GET", f"/api/commands/{answer['id']}")
    assert [t["state"] for t in status["targets"]] == ["done"]
    assert status["results"][0]["status"] == "ok"
    assert status["results"][0]["output"] == {"pong": True}


async def test_forged_result_is_refused_and_not_stored(harness: Harness) -> None:
    leader = harness.leader(term=1)
    await leader.connected()
    await wait_for(lambda: _nodes(harness, 4))
    target, impostor = harness.mesh.nodes[1], harness.mesh.nodes[2]
    signed = harness.mesh.command(Target.node(target.node_id))
    await harness.submit(signed.to_wire())
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert leader.uplink is not None
    # Signed by another node than the target it is filed under.
    await leader.uplink.send_result(delivered.command_id, target.node_id,
                                    impostor.result(delivered.command_id))
    await wait_for(lambda: len(leader.uplink.spool) == 0)
    assert await harness.service.db.results(command_id=delivered.command_id) == []
    refused = await harness.service.db.audit_log(command_id=delivered.command_id)
    assert "result_refused" in [a.event for a in refused]


async def test_stop_returns_at_once_while_a_connect_hangs(harness: Harness) -> None:
    # A "service" that takes the TCP connection and never answers the TLS handshake: a
    # leader stepping down must not stay stuck in that connect until some timeout.
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    leader = harness.leader(term=1)
    await leader.stop()  # the harness's own leader is not the one under test
    leader.url = f"wss://127.0.0.1:{port}/uplink"
    leader.start()
    try:
        await asyncio.wait_for(accepted.wait(), 10)
        assert leader.uplink is not None and leader.task is not None
        await asyncio.wait_for(leader.uplink.stop(), 3)
        await asyncio.wait_for(leader.task, 3)
        assert not leader.uplink.connected.is_set()
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
