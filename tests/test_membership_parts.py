"""The pieces of membership on their own: messages, piggyback queue, Lifeguard timers,
rate limiter, profiles, pairwise sealing, the rule that follows ring successors with
watches."""

from __future__ import annotations

import math
import random
import types
from typing import Any

import pytest

from meshagent import codec
from meshagent.identity import MeshRoot, NodeIdentity
from meshagent.membership import sealing
from meshagent.membership.broadcast import BroadcastQueue
from meshagent.membership.messages import (
    Ack,
    Dead,
    Ping,
    Power,
    decode_messages,
    encode_messages,
    encode_one,
    pack_encoded,
)
from meshagent.membership.ratelimit import SourceRateLimiter
from meshagent.membership.sealing import PeerKeys, SealError
from meshagent.membership.state import MemberState
from meshagent.membership.streams import (
    WATCH_SETTLE_MAX_PROBES,
    WATCH_SETTLE_PROBES,
    StreamService,
)
from meshagent.membership.suspicion import LocalHealth, Suspicion
from meshagent.profiles import Profile
from meshagent.record import RecordVerifier

N1, N2 = b"\x01" * 16, b"\x02" * 16

# ---------------------------------------------------------------- messages


def test_messages_round_trip_and_packed_parts_equal_packed_list() -> None:
    messages = [Ping(5, N1, 7), Ack(5), Dead(N1, 9, N2, True), Power(N2, 3, "off", N1)]
    assert decode_messages(encode_messages(messages)) == (messages, [])
    for count in (0, 3, 15, 16, 40):
        parts = [encode_one(Ack(i)) for i in range(count)]
        assert pack_encoded(parts) == codec.pack([[2, i] for i in range(count)])


@pytest.mark.parametrize(("items", "reason"), [
    ([[42, 1]], "unknown_type"), ([[1, 1, N1]], "malformed"), ([[1, -1, N1, False]], "malformed"),
    ([[1, 1, b"short", False]], "malformed"), ([[8, N1, 1, "dozing", N2]], "malformed"),
    (["not a list"], "malformed"), ([[]], "malformed")])
def test_bad_messages_are_reported_one_by_one(items: list, reason: str) -> None:
    messages, errors = decode_messages(codec.pack([*items, [2, 7]]))
    assert messages == [Ack(7)]
    assert [error.reason for error in errors] == [reason]


# ---------------------------------------------------------------- piggyback queue


def test_queue_prefers_least_sent_and_newest_and_retires_after_limit() -> None:
    queue = BroadcastQueue()
    queue.enqueue("a", b"A" * 10)
    queue.enqueue("b", b"B" * 10)
    assert queue.take(15, limit=2) == [b"B" * 10]
    assert queue.take(15, limit=2) == [b"A" * 10]
    assert sorted(queue.take(100, limit=2)) == [b"A" * 10, b"B" * 10]
    assert len(queue) == 0


class _SlowQueue:
    """The piggyback queue's contract, obviously: every item in one dict, candidates
    sorted by sends, then newest first; items too big are skipped until more than 32 were."""

    def __init__(self) -> None:
        self.items: dict[str, list] = {}  # subject -> [encoded, sends, stamp]
        self.stamp = 0

    def enqueue(self, subject: str, encoded: bytes, sent: int = 0) -> None:
        self.stamp += 1
        self.items[subject] = [encoded, sent, self.stamp]

    def discard(self, subject: str) -> None:
        self.items.pop(subject, None)

    def take(self, budget: int, limit: int, overhead: int) -> list[bytes]:
        order = sorted(self.items, key=lambda s: (self.items[s][1], -self.items[s][2]))
        taken: list[str] = []
        misses = 0
        for subject in order:
            if budget <= overhead or misses > 32:
                break
            size = len(self.items[subject][0]) + overhead
            if size > budget:
                misses += 1
                continue
            budget -= size
            taken.append(subject)
        encoded = [self.items[subject][0] for subject in taken]
        for subject in taken:
            self.stamp += 1
            item = self.items[subject]
            item[1] += 1
            item[2] = self.stamp
            if item[1] >= limit:
                del self.items[subject]
        return encoded


def test_queue_takes_what_its_slow_twin_takes() -> None:
    rng = random.Random(7)
    for _ in range(200):
        queue, twin = BroadcastQueue(), _SlowQueue()
        for _ in range(rng.randrange(1, 120)):
            action = rng.random()
            subject = f"s{rng.randrange(60)}"
            if action < 0.6:
                encoded = subject.encode() + bytes(rng.randrange(0, 50))
                sent = rng.choice((0, 0, 0, 1, 3))
                queue.enqueue(subject, encoded, sent)
                twin.enqueue(subject, encoded, sent)
            elif action < 0.7:
                queue.discard(subject)
                twin.discard(subject)
            else:
                budget, limit, overhead = rng.randrange(0, 400), rng.randrange(1, 6), \
                    rng.randrange(0, 3)
                assert queue.take(budget, limit, overhead) == twin.take(budget, limit, overhead)
            assert len(queue) == len(twin.items)


def test_newer_news_replaces_older_about_the_same_subject() -> None:
    queue = BroadcastQueue()
    queue.enqueue("node", b"suspect")
    queue.take(100, limit=5)
    queue.enqueue("node", b"dead")
    assert queue.take(100, limit=5) == [b"dead"]
    queue.discard("node")
    assert queue.take(100, limit=5) == []


# ---------------------------------------------------------------- Lifeguard


def test_suspicion_shrinks_with_confirmations_to_its_minimum() -> None:
    suspicion = Suspicion(N1, started=100.0, min_s=2.0, max_s=8.0, wanted=3)
    assert suspicion.deadline == 108.0
    assert suspicion.confirm(N2) and not suspicion.confirm(N2)
    expected = 8.0 - 6.0 * math.log(2) / math.log(4)
    assert suspicion.timeout() == pytest.approx(expected)
    suspicion.confirm(b"\x03" * 16)
    suspicion.confirm(b"\x04" * 16)
    assert suspicion.timeout() == 2.0
    assert not suspicion.confirm(b"\x05" * 16)


def test_local_health_scales_timeouts_within_bounds() -> None:
    health = LocalHealth(limit=4)
    health.apply(10)
    assert health.scale(0.5) == 2.0
    health.apply(-10)
    assert health.scale(0.5) == 0.5


def test_rate_limiter_allows_burst_then_rate() -> None:
    limiter = SourceRateLimiter(rate_per_s=10, burst=5)
    assert sum(limiter.allow("1.2.3.4", 0.0) for _ in range(20)) == 5
    assert limiter.allow("5.6.7.8", 0.0)
    assert sum(limiter.allow("1.2.3.4", 1.0) for _ in range(20)) == 5  # refilled to burst


def test_profiles_give_the_documented_timeouts() -> None:
    lan = Profile.named("lan")
    assert lan.suspicion_min_s(1000) == 3 * 3 * 0.5
    assert lan.suspicion_max_s(100) == lan.suspicion_max_mult * lan.suspicion_min_s(100)
    assert lan.confirmations_wanted(100) == 1 and lan.confirmations_wanted(2) == 0
    assert lan.retransmit_limit(100) == 4 * 3
    assert lan.push_pull_scaled_s(10) == 30.0 and lan.push_pull_scaled_s(128) == 90.0
    # The SIGSTOP budget: first probe, indirect probe, suspicion, dissemination < 6 s.
    assert 2 * lan.probe_interval_s + lan.suspicion_max_s(100) < 6.0
    assert lan.suspicion_min_s(50) > 2.0 + lan.probe_interval_s  # a 2 s pause refutes
    with pytest.raises(ValueError):
        Profile.named("moon")


# ---------------------------------------------------------------- sealing


@pytest.fixture(scope="module")
def mesh() -> tuple[MeshRoot, list[tuple[NodeIdentity, object]]]:
    root = MeshRoot.create()
    nodes = []
    for name in ("a", "b", "c"):
        identity = NodeIdentity.generate()
        nodes.append((identity, root.issue_certificate(identity.sign_public,
                                                       identity.dh_public, ["member"], name,
                                                       lifetime_s=3600)))
    return root, nodes


def _keys(mesh: tuple, index: int, revocations: object = None) -> PeerKeys:
    root, nodes = mesh
    identity, cert = nodes[index]
    return PeerKeys(identity, cert, RecordVerifier(root.trust), lambda: revocations)


def test_first_datagram_carries_the_certificate_then_not(mesh: tuple) -> None:
    a, b = _keys(mesh, 0), _keys(mesh, 1)
    a.learn(mesh[1][1][1])
    first = a.seal(b.node_id, b"hello")
    assert b.open(first) == (a.node_id, b"hello")
    reply = b.seal(a.node_id, b"hi")
    assert a.open(reply) == (b.node_id, b"hi")
    second = a.seal(b.node_id, b"again")
    assert len(second) < len(first) - 100
    assert b.open(second) == (a.node_id, b"again")


def _reason(keys: PeerKeys, datagram: bytes) -> str:
    with pytest.raises(SealError) as caught:
        keys.open(datagram)
    return caught.value.reason


def test_sealing_rejects_replay_tamper_misdirection_and_strangers(mesh: tuple) -> None:
    a, b, c = _keys(mesh, 0), _keys(mesh, 1), _keys(mesh, 2)
    a.learn(mesh[1][1][1])
    datagram = a.seal(b.node_id, b"x")
    b.open(datagram)
    assert _reason(b, datagram) == "replay"
    tampered = bytearray(a.seal(b.node_id, b"y"))
    tampered[-3] ^= 0x40
    assert _reason(b, bytes(tampered)) == "auth"
    assert _reason(c, a.seal(b.node_id, b"z")) == "misdirected"
    a.learn(mesh[1][2][1])
    a._peers[c.node_id].knows_me = True  # pretend c knew us: no certificate attached
    assert _reason(c, a.seal(c.node_id, b"who")) == "unknown_sender"
    assert _reason(b, b"\x01" * 20) == "malformed"


def _counter(datagram: bytes) -> int:
    return int.from_bytes(datagram[2 + 16 + 16 + 8:2 + 16 + 16 + 8 + 4], "big")


def test_renewal_of_a_peer_keeps_the_nonce_counter_and_the_replay_window(mesh: tuple) -> None:
    """A renewal keeps the peer's keys, so the pair key stays the same: restarting our
    counter for it would seal two datagrams under one AES-GCM nonce, and a fresh replay
    window would take its earlier datagrams again."""
    root, nodes = mesh
    a, b = _keys(mesh, 0), _keys(mesh, 1)
    a.learn(nodes[1][1])
    b.learn(nodes[0][1])
    before = a.seal(b.node_id, b"one")
    assert b.open(before) == (a.node_id, b"one")
    earlier = b.seal(a.node_id, b"earlier")
    assert a.open(earlier) == (b.node_id, b"earlier")
    identity = nodes[1][0]
    a.learn(root.issue_certificate(identity.sign_public, identity.dh_public, ["member"],
                                   "node1", lifetime_s=7200))
    after = a.seal(b.node_id, b"two")
    assert _counter(after) == _counter(before) + 1
    assert b.open(after) == (a.node_id, b"two")
    assert _reason(a, earlier) == "replay"
    # Forgotten (dropped from the view) and learnt again: the same.
    a.forget(b.node_id)
    assert _reason(a, b.seal(a.node_id, b"dropped")) == "unknown_sender"
    a.learn(nodes[1][1])
    again = a.seal(b.node_id, b"three")
    assert _counter(again) == _counter(after) + 1
    assert b.open(again) == (a.node_id, b"three")
    assert _reason(a, earlier) == "replay"


def test_forgetting_more_peers_than_are_kept_moves_the_epoch_on(
        mesh: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "MAX_RETIRED", 1)
    root, nodes = mesh
    a, b = _keys(mesh, 0), _keys(mesh, 1)
    a.learn(nodes[1][1])
    a.learn(nodes[2][1])
    first = a.seal(b.node_id, b"one")
    epoch = a.epoch
    a.forget(nodes[2][0].node_id)  # kept
    assert a.epoch == epoch
    a.forget(b.node_id)  # over the bound: nothing kept, a fresh nonce space
    assert a.epoch > epoch
    a.learn(nodes[1][1])
    assert (a.epoch, _counter(a.seal(b.node_id, b"two"))) != (epoch, _counter(first))


def test_older_epoch_of_a_live_peer_is_refused(mesh: tuple) -> None:
    root, nodes = mesh
    b = _keys(mesh, 1)
    old = PeerKeys(nodes[0][0], nodes[0][1], RecordVerifier(root.trust), epoch=5)
    new = PeerKeys(nodes[0][0], nodes[0][1], RecordVerifier(root.trust), epoch=6)
    for keys in (old, new):
        keys.learn(nodes[1][1])
    stale = old.seal(b.node_id, b"old run")
    b.open(new.seal(b.node_id, b"new run"))
    assert _reason(b, stale) == "replay"
    b.accept_older_epoch = lambda node_id: True  # membership: that node is gone
    assert b.open(stale) == (old.node_id, b"old run")


def test_certificate_of_revoked_node_is_refused(mesh: tuple) -> None:
    root, nodes = mesh
    revocations = root.revoke(node_ids=[nodes[0][0].node_id])
    a, b = _keys(mesh, 0), _keys(mesh, 1, revocations)
    a.learn(nodes[1][1])
    assert _reason(b, a.seal(b.node_id, b"let me in")) == "revoked"


def test_certificate_of_another_mesh_is_refused(mesh: tuple) -> None:
    other_root = MeshRoot.create()
    identity = NodeIdentity.generate()
    cert = other_root.issue_certificate(identity.sign_public, identity.dh_public, ["m"], "x",
                                        lifetime_s=3600)
    stranger = PeerKeys(identity, cert, RecordVerifier(other_root.trust))
    b = _keys(mesh, 1)
    stranger.learn(mesh[1][1][1])
    assert _reason(b, stranger.seal(b.node_id, b"hi")) == "wrong_mesh"


def test_attached_certificate_must_be_the_senders(mesh: tuple) -> None:
    a, b = _keys(mesh, 0), _keys(mesh, 1)
    a.learn(mesh[1][1][1])
    a.certificate_wire = mesh[1][2][1].to_wire()  # c's certificate on a's datagram
    assert _reason(b, a.seal(b.node_id, b"x")) == "bad_certificate"


def test_node_id_field_is_authenticated(mesh: tuple) -> None:
    a, b = _keys(mesh, 0), _keys(mesh, 1)
    a.learn(mesh[1][1][1])
    b.open(a.seal(b.node_id, b"x"))
    a.open(b.seal(a.node_id, b"ok"))  # now a sends without its certificate
    datagram = bytearray(a.seal(b.node_id, b"y"))
    datagram[2:18] = mesh[1][2][0].node_id  # claim to be c
    b.learn(mesh[1][2][1])
    assert _reason(b, bytes(datagram)) == "auth"


def test_new_certificates_are_checked_at_a_bounded_rate(mesh: tuple) -> None:
    """Forged certificates from spoofed sources cannot buy unbounded signature checks."""
    root, nodes = mesh
    b = _keys(mesh, 1)
    b._certificate_checks = SourceRateLimiter(rate_per_s=0.0, burst=3)
    reasons = []
    for _ in range(5):
        identity = NodeIdentity.generate()
        forged_root = MeshRoot.create()
        cert = forged_root.issue_certificate(identity.sign_public, identity.dh_public, ["m"],
                                             "x", lifetime_s=3600)
        stranger = PeerKeys(identity, cert, RecordVerifier(forged_root.trust))
        stranger.learn(nodes[1][1])
        reasons.append(_reason(b, stranger.seal(b.node_id, b"hi")))
    assert reasons == ["wrong_mesh"] * 3 + ["flood"] * 2


def test_every_message_type_checks_each_field_and_round_trips() -> None:
    from meshagent.membership import messages

    node, other = b"n" * 16, b"o" * 16
    samples = [messages.Ping(1, node, 2), messages.Ack(3), messages.PingReq(4, node, 0),
               messages.Nack(5), messages.Alive(b"record"), messages.Suspect(node, 6, other),
               messages.Dead(node, 7, other, True), messages.Power(node, 8, "off", other),
               messages.Document("allowlist", 9), messages.Announce(node, 10),
               messages.Fetch(node), messages.Digest(11, b"d" * 8)]
    assert {type(m) for m in samples} == set(messages._TYPES.values())
    for sample in samples:
        assert len(type(sample).FIELDS) == len(type(sample).__slots__)
    decoded, errors = decode_messages(encode_messages(samples))
    assert decoded == samples and errors == []
    # A field of the wrong kind, in any position, spoils only its own message.
    for sample in samples:
        for index in range(1, len(sample.encode())):
            broken = sample.encode()
            broken[index] = 3.5
            decoded, errors = decode_messages(codec.pack([broken, messages.Ack(1).encode()]))
            assert decoded == [messages.Ack(1)] and len(errors) == 1


# ---------------------------------------------------------------- watch reconciliation


class _Ring:
    """What ``StreamService.reconcile_watches`` reads of a membership: the live members,
    the profile, event-loop time; the watches it spawns are recorded, not run
    (``_service``)."""

    def __init__(self, members: int) -> None:
        self.profile = Profile.LAN
        self.running = True
        self.now = 100.0
        self.node_id = bytes([0x80]) * 16
        self._members: dict[bytes, types.SimpleNamespace] = {}
        self._digest = types.SimpleNamespace(count_changed_at=self.now)
        self.spawned: list[bytes] = []
        for index in range(members):
            self.add(bytes([0x81 + 4 * index]) * 16)
        self.add(self.node_id)

    def add(self, node_id: bytes) -> None:
        self._members[node_id] = types.SimpleNamespace(state=MemberState.ALIVE)
        self._digest.count_changed_at = self.now

    def _now(self) -> float:
        return self.now

    def _spawn(self, watched: bytes) -> Any:
        self.spawned.append(watched)
        return types.SimpleNamespace(cancel=lambda: None)


def _service(ring: _Ring) -> StreamService:
    """A stream service over ``ring`` whose watches are the watched node ids themselves,
    handed to ``ring._spawn`` instead of a coroutine."""
    service = StreamService(ring)  # type: ignore[arg-type]
    service._watch = lambda node_id: node_id  # type: ignore[assignment,method-assign,return-value]
    return service


def _successors(ring: _Ring) -> set[bytes]:
    ids = sorted(ring._members)
    start = ids.index(ring.node_id)
    return {ids[(start + step) % len(ids)] for step in (1, 2)}


def test_watches_wait_until_the_successors_hold_still() -> None:
    """A mass join moves our successors with nearly every arrival: no watch is opened
    while they move, the final ones once they have held still for the settle time."""
    ring = _Ring(members=4)
    service = _service(ring)
    interval = ring.profile.probe_interval_s
    service.reconcile_watches()
    for arrival in range(WATCH_SETTLE_MAX_PROBES // 2):
        # A new member between us and our successors at every probe round.
        ring.add(bytes([0x80]) * 15 + bytes([0xF0 - arrival]))
        ring.now += interval
        service.reconcile_watches()
    assert ring.spawned == []
    ring.now += (WATCH_SETTLE_PROBES - 1) * interval
    service.reconcile_watches()
    assert ring.spawned == []  # still one probe interval short of the settle time
    ring.now += interval
    service.reconcile_watches()
    assert set(ring.spawned) == _successors(ring) and len(ring.spawned) == 2


def test_watches_wait_until_the_view_stops_growing() -> None:
    """Settled successors are not enough while members still arrive elsewhere on the
    ring: the view of a mass join grows until its end."""
    ring = _Ring(members=4)
    service = _service(ring)
    interval = ring.profile.probe_interval_s
    service.reconcile_watches()
    successors = _successors(ring)
    for arrival in range(2 * WATCH_SETTLE_PROBES):
        ring.add(bytes([0x01 + arrival]) * 16)  # before our predecessor: not a successor
        ring.now += interval
        service.reconcile_watches()
    assert _successors(ring) == successors and ring.spawned == []
    ring.now += WATCH_SETTLE_PROBES * interval
    service.reconcile_watches()
    assert set(ring.spawned) == successors


def test_successors_that_never_hold_still_are_watched_that_much_late() -> None:
    ring = _Ring(members=4)
    service = _service(ring)
    interval = ring.profile.probe_interval_s
    service.reconcile_watches()
    started = ring.now
    arrival = 0
    while not ring.spawned:
        arrival += 1
        assert arrival <= WATCH_SETTLE_MAX_PROBES + 1, "never watched"
        ring.add(bytes([0x80]) * 15 + bytes([0xF0 - arrival]))
        ring.now += interval
        service.reconcile_watches()
    assert ring.now - started >= WATCH_SETTLE_MAX_PROBES * interval
    assert set(ring.spawned) == _successors(ring)


def _watched_then_failed(ring: _Ring) -> tuple[StreamService, bytes]:
    """A service whose successors settled and were watched; then one watch failed."""
    service = _service(ring)
    service.reconcile_watches()
    ring.now += WATCH_SETTLE_PROBES * ring.profile.probe_interval_s
    service.reconcile_watches()
    assert len(ring.spawned) == 2
    failed = ring.spawned[0]
    del service._outgoing[failed]  # what ``_watch`` does when its stream cannot open
    return service, failed


def test_a_failed_watch_of_settled_successors_is_opened_again_at_once() -> None:
    ring = _Ring(members=4)
    service, failed = _watched_then_failed(ring)
    interval = ring.profile.probe_interval_s
    ring.now += interval
    service.reconcile_watches()
    assert ring.spawned[2:] == [failed]


def test_a_failed_watch_waits_while_the_view_grows() -> None:
    ring = _Ring(members=4)
    service, failed = _watched_then_failed(ring)
    interval = ring.profile.probe_interval_s
    ring.add(bytes([0x01]) * 16)  # a member arrives elsewhere on the ring
    ring.now += interval
    service.reconcile_watches()
    assert ring.spawned[2:] == []
    ring.now += WATCH_SETTLE_PROBES * interval
    service.reconcile_watches()
    assert ring.spawned[2:] == [failed]
