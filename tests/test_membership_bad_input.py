"""Hostile and broken input to a running member: each is dropped with a counter and a log
line, and the member's view and service are unchanged afterwards."""

from __future__ import annotations

import asyncio
import logging

import pytest

from meshagent import codec
from meshagent.membership import Membership
from meshagent.membership.messages import Alive, Digest, encode_one, pack_encoded
from meshagent.membership.swim import MAX_DATAGRAM_IN
from meshagent.record import MAX_RECORD_BYTES, NodeRecord
from meshagent.transport import CHANNEL_MEMBERSHIP, MemoryNetwork, MemoryTransport
from tests.mesh.meshkit import MeshKit, converged, memory_mesh, run_virtual, wait_until

ATTACKER = ("10.6.6.6", 7946)


async def _mesh(count: int = 4, attacker_address: tuple[str, int] = ATTACKER,
                ) -> tuple[MeshKit, MemoryNetwork, list[Membership], MemoryTransport]:
    kit, network = MeshKit(), MemoryNetwork(seed=21)
    nodes = memory_mesh(kit, network, count)
    for node in nodes:
        await node.start()
    await wait_until(lambda: converged(nodes), 10, "convergence")
    attacker = network.transport(attacker_address)
    await attacker.start()
    return kit, network, nodes, attacker


async def _still_healthy(kit: MeshKit, nodes: list[Membership]) -> None:
    """The victim still answers probes and holds the same view."""
    await asyncio.sleep(1.0)
    assert converged(nodes)
    assert all(n.counters["internal_errors"] == 0 for n in nodes)
    await kit.stop_all()


def _attack(payloads: list[bytes], counter: str, expected: int | None = None,
            attacker_address: tuple[str, int] = ATTACKER) -> None:
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh(attacker_address=attacker_address)
        victim = nodes[1]
        for payload in payloads:
            attacker.send_datagram(payload, victim.transport.local_address)
        await asyncio.sleep(0.05)
        assert victim.counters[counter] == (expected if expected is not None
                                            else len(payloads))
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_truncated_and_garbage_datagrams_are_dropped() -> None:
    _attack([b"", b"\x01", b"\x00" * 40, b"\xff" * 200], "dropped_malformed")


def test_oversize_datagram_is_dropped() -> None:
    _attack([b"\x01" * (MAX_DATAGRAM_IN + 1)], "dropped_oversize")


def test_flood_from_one_address_is_rate_limited() -> None:
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh()
        victim = nodes[1]
        for _ in range(20_000):
            attacker.send_datagram(b"\x01" * 100, victim.transport.local_address)
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_flood"] > 10_000
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_tampered_datagram_fails_authentication() -> None:
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh()
        sender, victim = nodes[0], nodes[1]
        sealed = bytearray(sender.keys.seal(victim.node_id, codec.pack([])))
        sealed[-1] ^= 1
        attacker.send_datagram(bytes(sealed), victim.transport.local_address)
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_auth"] == 1
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_replayed_datagram_is_rejected() -> None:
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh()
        sender, victim = nodes[0], nodes[1]
        sealed = sender.keys.seal(victim.node_id, codec.pack([]))
        attacker.send_datagram(sealed, victim.transport.local_address)
        attacker.send_datagram(sealed, victim.transport.local_address)
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_replay"] == 1
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_inflated_digests_start_at_most_one_repair_per_interval() -> None:
    """A member claiming to hold more records than anyone gets a repair after a probe
    interval of stillness, but its stream of such claims gets no more than one full state
    exchange per repair interval."""
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh()
        sender, victim = nodes[0], nodes[1]
        await asyncio.sleep(victim.profile.repair_interval_s)  # a still view
        before = victim.counters["view_repairs"]
        claim = pack_encoded([encode_one(Digest(10_000, bytes(8)))])
        for _ in range(40):  # every 50 ms for 2 s: one repair interval
            attacker.send_datagram(sender.keys.seal(victim.node_id, claim),
                                   victim.transport.local_address)
            await asyncio.sleep(0.05)
        assert victim.counters["view_repairs"] - before == 1
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_unknown_message_type_and_bad_fields_are_dropped_individually() -> None:
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh()
        sender, victim = nodes[0], nodes[1]
        plaintext = codec.pack([[99, 1], [1, "not a seq", b"x", True], [2]])
        attacker.send_datagram(sender.keys.seal(victim.node_id, plaintext),
                               victim.transport.local_address)
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_unknown_type"] == 1
        assert victim.counters["dropped_malformed"] == 2
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_record_with_bad_signature_is_dropped() -> None:
    async def scenario() -> None:
        kit, _, nodes, attacker = await _mesh()
        sender, victim, subject = nodes[0], nodes[1], nodes[2]
        record = subject.record
        tampered = record.signed.__class__(record.signed.kind, record.signed.body,
                                           record.signed.signer, bytes(64)).to_wire()
        plaintext = codec.pack([Alive(tampered).encode()])
        attacker.send_datagram(sender.keys.seal(victim.node_id, plaintext),
                               victim.transport.local_address)
        await asyncio.sleep(0.05)
        # Same incarnation as the one held: ignored before any signature work.
        newer = NodeRecord.sign(subject.identity, subject.certificate,
                                incarnation=record.incarnation + 1, hostname="x")
        forged = newer.signed.__class__(newer.signed.kind, newer.signed.body,
                                        newer.signed.signer, bytes(64)).to_wire()
        plaintext = codec.pack([Alive(forged).encode()])
        attacker.send_datagram(sender.keys.seal(victim.node_id, plaintext),
                               victim.transport.local_address)
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_bad_signature"] == 1
        assert victim.member(subject.node_id).record.incarnation == record.incarnation
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_node_of_another_mesh_is_refused() -> None:
    async def scenario() -> None:
        kit, network, nodes, _ = await _mesh()
        stranger_kit = MeshKit()
        stranger = stranger_kit.node(network.transport(("10.9.9.9", 7946)),
                                     seeds=[nodes[0].transport.local_address])
        await stranger.start()
        await asyncio.sleep(1.0)
        assert nodes[0].member(stranger.node_id) is None
        assert nodes[0].counters["dropped_wrong_mesh"] >= 1
        assert len(stranger.members()) == 1
        await stranger.stop()
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_revoked_node_is_dropped_and_its_datagrams_refused() -> None:
    async def scenario() -> None:
        kit, _, nodes, _ = await _mesh()
        victim, revoked = nodes[1], nodes[3]
        victim.update_revocations(kit.root.revoke(node_ids=[revoked.node_id]))
        await wait_until(lambda: all(n.member(revoked.node_id) is None
                                     for n in nodes if n is not revoked), 5, "revocation")
        revoked.keys.peer_forgot_me(victim.node_id)  # attach its certificate again
        revoked._send_parts(victim.node_id, victim.transport.local_address, [])
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_revoked"] >= 1
        assert victim.member(revoked.node_id) is None
        await revoked.stop()
        await _still_healthy(kit, [n for n in nodes if n is not revoked])

    run_virtual(scenario())


def test_junk_streams_are_dropped() -> None:
    async def scenario() -> None:
        kit, network, nodes, attacker = await _mesh()
        victim = nodes[1]
        address = victim.transport.local_address
        reader, writer = await attacker.open_stream(address, CHANNEL_MEMBERSHIP, 1.0)
        writer.write(b"\x00\x00\x00\x05hello")
        await asyncio.sleep(0.05)
        assert victim.counters["dropped_malformed"] == 1
        writer.close()
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_drops_are_logged_with_a_rate_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="meshagent.membership.swim")
    _attack([b"\x01" * 10] * 50, "dropped_malformed", attacker_address=("10.6.6.7", 7946))
    lines = [r for r in caplog.records if "membership_input_dropped" in r.getMessage()]
    assert 1 <= len(lines) < 5


def test_malformed_state_exchange_entries_are_dropped_one_by_one() -> None:
    """A member's full state with broken entries: each is dropped with a counter, the
    well-formed one is merged, and the answer is still the victim's state (less the entry
    the sender holds exactly). A state that is not a list is dropped whole."""
    async def scenario() -> None:
        kit, _, nodes, _ = await _mesh()
        sender, victim = nodes[0], nodes[1]
        held = victim._members[nodes[2].node_id]
        good = [held.record.wire, held.state.value, held.state_incarnation]
        broken = ["not an entry", [held.record.wire, "alive"], ["text", "alive", 1],
                  [held.record.wire, "dancing", 1], [held.record.wire, "alive", True],
                  [held.record.wire, "alive", -1]]
        before = victim.counters["dropped_malformed"]

        async def exchange(state: object) -> list[list[object]]:
            sealed = await sender.streams._open(victim.transport.local_address,
                                                victim.node_id)
            try:
                await sealed.send(codec.pack({"op": "sync", "state": state}))
                answer = codec.unpack(await sealed.recv(1.0))
            finally:
                sealed.close()
            return answer["state"]

        answered = await exchange([*broken, [b"\x01garbage", "alive", 1], good])
        assert victim.counters["dropped_malformed"] - before == len(broken)
        assert victim.counters["dropped_malformed_record"] == 1
        assert held.record.wire not in [entry[0] for entry in answered]
        assert len(answered) == len(victim.members()) - 1

        answered = await exchange("not a list")
        assert victim.counters["dropped_malformed"] - before == len(broken) + 1
        assert len(answered) == len(victim.members())
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_malformed_versions_are_dropped_one_by_one() -> None:
    """A ``versions`` request with broken entries: each is dropped with a counter, the
    well-formed one spares the sender that record, and versions that are not a list are
    dropped whole (the answer is then the full state). A last message that is not a
    state is dropped as malformed. The member stays healthy."""
    async def scenario() -> None:
        kit, _, nodes, _ = await _mesh()
        sender, victim = nodes[0], nodes[1]
        held = victim._members[nodes[2].node_id]
        node_id = nodes[2].node_id
        good = [node_id, held.state.value, held.state_incarnation, held.record.incarnation]
        broken = ["not an entry", [node_id, "alive", 1], [b"short", "alive", 1, 1],
                  [node_id, "dancing", 1, 1], [node_id, "alive", True, 1],
                  [node_id, "alive", 1, -1]]
        before = victim.counters["dropped_malformed"]

        async def exchange(versions: object, last: object = None) -> dict[str, object]:
            sealed = await sender.streams._open(victim.transport.local_address,
                                                victim.node_id)
            try:
                await sealed.send(codec.pack({"op": "versions", "held": versions,
                                              "state": []}))
                answer = codec.unpack(await sealed.recv(1.0))
                if last is not None:
                    await sealed.send(codec.pack(last))
            finally:
                sealed.close()
            return answer

        answer = await exchange([*broken, good])
        assert victim.counters["dropped_malformed"] - before == len(broken)
        assert held.record.wire not in [entry[0] for entry in answer["state"]]
        assert len(answer["state"]) == len(victim.members()) - 1
        assert "want" not in answer

        answer = await exchange("not a list")
        assert victim.counters["dropped_malformed"] - before == len(broken) + 1
        assert len(answer["state"]) == len(victim.members())

        # A member the victim lacks: it asks, and gets garbage back.
        stranger = [b"\x07" * 16, "alive", 1, 1]
        answer = await exchange([stranger], last={"op": "ping"})
        assert answer["want"] == [stranger[0]]
        await wait_until(lambda: victim.counters["dropped_malformed"] - before
                         == len(broken) + 2, 1.0, "the last message dropped")
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_a_responder_asking_for_garbage_gets_only_entries_we_hold() -> None:
    """The ``want`` of a versions answer comes from the responder: anything in it that
    is not the node id of a member we hold is passed over, and a ``want`` that is not a
    list asks for nothing. At most as many entries are looked up as we hold members."""
    class Captured:
        def __init__(self) -> None:
            self.sent: list[object] = []

        async def send(self, data: bytes) -> None:
            self.sent.append(codec.unpack(data))

    async def scenario() -> None:
        kit, _, nodes, _ = await _mesh()
        opener, held = nodes[0], nodes[0]._members[nodes[2].node_id]
        captured = Captured()
        await opener.streams._send_wanted(captured, "not a list")
        assert captured.sent == []
        await opener.streams._send_wanted(
            captured, ["text", [1], held.node_id, b"\x07" * 16, {"a": 1}, held.node_id])
        assert captured.sent == [{"op": "state", "state": [
            [held.record.wire, held.state.value, held.state_incarnation]]}]
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_a_stream_hello_with_malformed_features_is_dropped() -> None:
    """``features`` in a stream hello must be a short list of short names: anything else
    drops the stream as malformed, with a counter; a hello without it (an older agent)
    is taken, with no features."""
    async def scenario() -> None:
        kit, _, nodes, _ = await _mesh()
        opener, victim = nodes[0], nodes[1]
        before = victim.counters["dropped_malformed"]
        for features in (5, ["versions", 7], ["x" * 33], ["f"] * 33):
            opener.keys.features = features  # type: ignore[assignment]
            assert not await opener.streams.sync_with(victim.node_id)
        assert victim.counters["dropped_malformed"] - before == 4
        opener.keys.features = ()
        assert await opener.streams.sync_with(victim.node_id)
        sealed = await victim.streams._open(opener.transport.local_address, opener.node_id)
        assert sealed.peer_features == frozenset()
        sealed.close()
        await _still_healthy(kit, nodes)

    run_virtual(scenario())


def test_a_stream_hello_record_that_is_not_the_openers_own_is_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The record in a stream hello must be its opener's own and verify like any record:
    another node's record, a forged one, or one that does not parse is dropped with a
    counter and admits nobody, and the exchange itself goes on; a record that is not
    bytes, or longer than a record may be, drops the stream as malformed."""
    async def scenario() -> None:
        kit, network, nodes, _ = await _mesh()
        opener, victim = nodes[0], nodes[1]
        stranger = kit.node(network.transport(("10.0.9.3", 7946)))  # never started
        strangers_record = NodeRecord.sign(stranger.identity, stranger.certificate,
                                           incarnation=1, hostname="stranger",
                                           addresses=["10.0.9.3:7946"])
        own = opener.record
        forged = NodeRecord.sign(opener.identity, opener.certificate,
                                 incarnation=own.incarnation + 1, hostname="forged")
        forged_wire = forged.signed.__class__(forged.signed.kind, forged.signed.body,
                                              forged.signed.signer, bytes(64)).to_wire()
        counters = ("dropped_malformed_record", "dropped_bad_signature", "dropped_malformed")
        before = {name: victim.counters[name] for name in counters}
        for record in (strangers_record.wire, forged_wire, b"\x01garbage"):
            sealed = await opener.streams._open(victim.transport.local_address,
                                                victim.node_id, record)
            sealed.close()
        await wait_until(lambda: victim.counters["dropped_malformed_record"]
                         - before[counters[0]] >= 2 and victim.counters[
                             "dropped_bad_signature"] - before[counters[1]] >= 1, 1.0,
                         "the three hello records dropped")
        assert victim.member(stranger.node_id) is None
        assert victim.member(opener.node_id).record.wire == own.wire
        assert victim.counters["dropped_malformed_record"] - before[counters[0]] == 2
        assert victim.counters["dropped_bad_signature"] - before[counters[1]] == 1

        hello = opener.keys._hello
        for bad in (12345, bytes(MAX_RECORD_BYTES + 1)):  # not bytes; oversize
            monkeypatch.setattr(opener.keys, "_hello", lambda nonce, record=None, bad=bad:
                                codec.pack({**codec.unpack(hello(nonce)), "record": bad}))
            assert not await opener.streams.sync_with(victim.node_id)
        assert victim.counters["dropped_malformed"] - before[counters[2]] == 2
        monkeypatch.undo()
        assert await opener.streams.sync_with(victim.node_id)  # the exchange goes on
        await _still_healthy(kit, nodes)

    run_virtual(scenario())
