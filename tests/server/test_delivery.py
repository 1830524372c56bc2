"""The per-node command queue: exactly-once bookkeeping across leader failover and a
restart of the web service, offline targets, expiry. Both database back ends."""

from __future__ import annotations

import asyncio

import pytest

from meshagent.commands import Target
from meshagent.server.db import CommandState, DatabaseUnavailable, NodeFilter
from meshagent.server.testkit import SimulatedLeader
from meshagent.uplink import NodeReport
from tests.polling import wait_for

from .conftest import Harness


async def _submit(harness: Harness, target: Target, ttl: float = 600.0) -> str:
    signed = harness.mesh.command(target, ttl=ttl)
    answer = await harness.submit(signed.to_wire())
    return answer["id"]


async def _states(harness: Harness, command_id: str) -> list[str]:
    status = await harness.call("GET", f"/api/commands/{command_id}")
    return [t["state"] for t in status["targets"]]


async def _all_nodes_known(harness: Harness) -> bool:
    rows = await harness.service.db.nodes(NodeFilter())
    return len(rows) == len(harness.mesh.nodes)


async def _leader_knowing_all_nodes(harness: Harness, term: int) -> SimulatedLeader:
    """The first node leading at ``term``, once the service has every node from its
    inventory."""
    leader = harness.leader(term=term)
    await leader.connected()
    await wait_for(lambda: _all_nodes_known(harness))
    return leader


async def _report_state(harness: Harness, leader: SimulatedLeader, node_id: bytes, state: str,
                        at: float) -> None:
    """The leader reports ``node_id`` in ``state``; returns once the service shows it."""
    assert leader.uplink is not None
    await leader.uplink.report([NodeReport(node_id, state, at)])
    await wait_for(lambda: _state(harness, node_id, state))


async def test_failover_redelivers_unanswered_commands_and_keeps_one_result(
        harness: Harness) -> None:
    first = await _leader_knowing_all_nodes(harness, term=1)
    target = harness.mesh.nodes[2]
    answered = await _submit(harness, Target.node(target.node_id))
    pending = await _submit(harness, Target.node(target.node_id))
    got = {(await asyncio.wait_for(first.delivered.get(), 10)).command_id.hex()
           for _ in range(2)}
    assert got == {answered, pending}
    assert first.uplink is not None
    await first.uplink.send_result(bytes.fromhex(answered), target.node_id,
                                   target.result(bytes.fromhex(answered)))
    await wait_for(lambda: len(first.uplink.spool) == 0)

    # The leader dies with one command unanswered; a new leader takes over at term 2.
    await first.stop()
    second = harness.leader(term=2, index=1)
    await second.connected()
    again = await asyncio.wait_for(second.delivered.get(), 10)
    assert again.command_id.hex() == pending  # the answered one is not sent again
    assert second.delivered.empty()

    # Both the old leader's late copy and the new one's reach the service: one is kept.
    wire = target.result(again.command_id)
    assert second.uplink is not None
    await second.uplink.send_result(again.command_id, target.node_id, wire)
    await second.uplink.send_result(again.command_id, target.node_id,
                                    target.result(again.command_id, output={"late": True}))
    await wait_for(lambda: len(second.uplink.spool) == 0)
    rows = await harness.service.db.commands(command_id=again.command_id)
    assert [(r.state, r.attempts, r.sent_term) for r in rows] == [(CommandState.DONE, 2, 2)]
    results = await harness.service.db.results(command_id=again.command_id)
    assert len(results) == 1 and results[0].result == wire


async def test_restart_of_the_service_loses_nothing(harness: Harness) -> None:
    leader = await _leader_knowing_all_nodes(harness, term=3)
    target = harness.mesh.nodes[1]
    command_id = await _submit(harness, Target.node(target.node_id))
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert leader.uplink is not None
    connects = leader.uplink.connects

    await harness.stop()  # the service goes down before the result is in
    await leader.uplink.send_result(delivered.command_id, target.node_id,
                                    target.result(delivered.command_id))
    assert len(leader.uplink.spool) == 1  # kept on disk until the service acknowledges it
    queued_while_down = harness.mesh.command(Target.node(target.node_id))

    await harness.start()  # same port, same database
    await wait_for(lambda: leader.uplink.connects > connects)
    await wait_for(lambda: len(leader.uplink.spool) == 0)
    assert await _states(harness, command_id) == ["done"]
    # The leader's login re-queued what it had been sent; the done command stays done.
    assert leader.delivered.empty()
    await harness.submit(queued_while_down.to_wire())
    later = await asyncio.wait_for(leader.delivered.get(), 10)
    assert later.command_id != delivered.command_id
    leaders = await harness.service.db.leaders()
    assert [(lead.term, lead.connected) for lead in leaders] == [(3, True)]


async def test_offline_target_gets_its_command_when_it_returns(harness: Harness) -> None:
    leader = await _leader_knowing_all_nodes(harness, term=1)
    sleeper = harness.mesh.nodes[3]
    assert leader.uplink is not None
    await _report_state(harness, leader, sleeper.node_id, "asleep", 1.0)

    command_id = await _submit(harness, Target.node(sleeper.node_id))
    assert await _states(harness, command_id) == ["queued"]
    assert leader.delivered.empty()

    await leader.uplink.report([NodeReport(sleeper.node_id, "alive", 2.0)])
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert delivered.command_id.hex() == command_id
    assert await _states(harness, command_id) == ["sent"]


async def test_command_expires_before_its_target_returns(harness: Harness) -> None:
    leader = await _leader_knowing_all_nodes(harness, term=1)
    sleeper = harness.mesh.nodes[2]
    assert leader.uplink is not None
    await _report_state(harness, leader, sleeper.node_id, "off", 1.0)

    # Long enough to be accepted at submit on a loaded machine, short enough to expire
    # while its target is away.
    command_id = await _submit(harness, Target.node(sleeper.node_id), ttl=3.0)
    await wait_for(lambda: _has_state(harness, command_id, "expired"), timeout=15)
    await _report_state(harness, leader, sleeper.node_id, "alive", 5.0)
    assert leader.delivered.empty()
    audit = await harness.service.db.audit_log(command_id=bytes.fromhex(command_id))
    assert "command_expired" in [a.event for a in audit]


async def test_nack_keeps_the_command_queued_until_the_target_is_back(harness: Harness) -> None:
    leader = await _leader_knowing_all_nodes(harness, term=1)
    target = harness.mesh.nodes[1]
    command_id = await _submit(harness, Target.node(target.node_id))
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert leader.uplink is not None
    await leader.uplink.nack(delivered.command_id, target.node_id, "no route")
    await wait_for(lambda: _has_state(harness, command_id, "queued"))
    await leader.uplink.report([NodeReport(target.node_id, "alive", 9.0)])
    again = await asyncio.wait_for(leader.delivered.get(), 10)
    assert again.command_id == delivered.command_id


async def test_nacked_command_is_offered_again_while_its_target_stays_alive(
        harness: Harness) -> None:
    """The leader nacks a target it found no route to, but keeps reporting it alive (its
    sessions are still forming): no inventory update will show it back, so the command
    is offered again after the retry wait, and the wait doubles with each nack."""
    leader = await _leader_knowing_all_nodes(harness, term=1)
    harness.service.nack_retry_min_s = 0.2
    target = harness.mesh.nodes[3]
    command_id = await _submit(harness, Target.node(target.node_id))
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert leader.uplink is not None
    await leader.uplink.nack(delivered.command_id, target.node_id, "no route")
    again = await asyncio.wait_for(leader.delivered.get(), 10)
    assert again.command_id == delivered.command_id
    assert await _states(harness, command_id) == ["sent"]
    await leader.uplink.nack(again.command_id, target.node_id, "no route")
    await wait_for(lambda: _has_state(harness, command_id, "queued"))
    attached = harness.service._attached[harness.mesh.root.trust.mesh_id]
    assert attached.retries[target.node_id].wait == 0.4
    third = await asyncio.wait_for(leader.delivered.get(), 10)
    assert third.command_id == delivered.command_id
    audit = await harness.service.db.audit_log(command_id=delivered.command_id)
    assert [a.event for a in audit].count("command_requeued") == 2


async def test_nack_retry_that_met_a_database_outage_is_kept_for_the_next_tick(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    leader = await _leader_knowing_all_nodes(harness, term=1)
    service = harness.service
    service.nack_retry_min_s = 0.0
    target = harness.mesh.nodes[1]
    await _submit(harness, Target.node(target.node_id))
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    attached = service._attached[harness.mesh.root.trust.mesh_id]

    async def unavailable(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailable("database down")

    with monkeypatch.context() as patch:  # no tick may offer it before the outage ends
        patch.setattr(service.db, "take_deliverable", unavailable)
        assert leader.uplink is not None
        await leader.uplink.nack(delivered.command_id, target.node_id, "no route")
        await wait_for(lambda: target.node_id in attached.retries, what="the nack")
        with pytest.raises(DatabaseUnavailable):
            await service.retry_nacked()
        assert attached.retries[target.node_id].due is not None
    again = await asyncio.wait_for(leader.delivered.get(), 10)
    assert again.command_id == delivered.command_id


async def test_nacked_command_waits_while_its_target_is_reported_unreachable(
        harness: Harness) -> None:
    leader = await _leader_knowing_all_nodes(harness, term=1)
    harness.service.nack_retry_min_s = 0.1
    target = harness.mesh.nodes[2]
    await _submit(harness, Target.node(target.node_id))
    delivered = await asyncio.wait_for(leader.delivered.get(), 10)
    assert leader.uplink is not None
    await _report_state(harness, leader, target.node_id, "unreachable", 9.0)
    await leader.uplink.nack(delivered.command_id, target.node_id, "no route")
    attached = harness.service._attached[harness.mesh.root.trust.mesh_id]
    await wait_for(lambda: target.node_id in attached.retries
                   and attached.retries[target.node_id].due is None, what="the retry")
    assert leader.delivered.empty()  # offered, but the node is not deliverable
    await _report_state(harness, leader, target.node_id, "alive", 10.0)
    again = await asyncio.wait_for(leader.delivered.get(), 10)
    assert again.command_id == delivered.command_id
    assert target.node_id not in attached.retries


async def test_tag_selector_queues_one_entry_per_matching_node(harness: Harness) -> None:
    await _leader_knowing_all_nodes(harness, term=1)
    command_id = await _submit(harness, Target.tagged({"index": "2"}))
    status = await harness.call("GET", f"/api/commands/{command_id}")
    assert [t["node"] for t in status["targets"]] == [harness.mesh.nodes[2].node_id.hex()]
    everyone = await _submit(harness, Target.all())
    status = await harness.call("GET", f"/api/commands/{everyone}")
    assert len(status["targets"]) == len(harness.mesh.nodes)


async def _state(harness: Harness, node_id: bytes, state: str) -> bool:
    row = await harness.service.db.node(node_id)
    return row is not None and row.state == state


async def _has_state(harness: Harness, command_id: str, state: str) -> bool:
    rows = await harness.service.db.commands(command_id=bytes.fromhex(command_id))
    return bool(rows) and all(r.state == state for r in rows)
