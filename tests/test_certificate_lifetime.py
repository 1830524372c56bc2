"""A certificate's lifetime in a running mesh: a member whose certificate expires is dropped
and stays out; a renewal is taken without a restart, by the member and by its peers; a bad
renewal changes nothing. The expiry tests run in real time (certificates expire by the wall
clock), on the in-memory network; the rest in virtual time."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import msgpack
import pytest

from meshagent.certwatch import WARN_EVERY_S, CertificateWatch
from meshagent.identity import (
    CertificateExpired,
    CertificateRevoked,
    MembershipCertificate,
    MeshRoot,
    NodeCredentials,
    NodeIdentity,
    UntrustedCertificate,
    WrongMesh,
    save_certificate,
)
from meshagent.membership import Membership, MemberState
from meshagent.profiles import Profile
from meshagent.transport import MemoryNetwork
from tests.mesh.meshkit import (
    FAST,
    MeshKit,
    converged,
    memory_mesh,
    run_virtual,
    state_of,
    wait_until,
)


def _certificate(root: MeshRoot, identity: NodeIdentity, lifetime_s: int = 7200,
                 now: float | None = None) -> MembershipCertificate:
    return root.issue_certificate(identity.sign_public, identity.dh_public, ["member"],
                                  "laptop", lifetime_s=lifetime_s, now=now)


def _short_lived(kit: MeshKit, network: MemoryNetwork, lifetime_s: int,
                 profile: Profile = FAST, seeds: bool = True) -> Membership:
    identity = NodeIdentity.generate()
    node = Membership(identity, _certificate(kit.root, identity, lifetime_s), kit.root.trust,
                      network.transport(("10.0.0.99", 7946)), profile=profile,
                      seeds=[("10.0.0.1", 7946)] if seeds else [], verifier=kit.verifier)
    kit.nodes.append(node)
    return node


def test_member_whose_certificate_expires_is_dropped_until_it_adopts_a_renewal(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        kit, network = MeshKit(), MemoryNetwork(seed=3)
        peers = memory_mesh(kit, network, 4)
        laptop = _short_lived(kit, network, lifetime_s=3)
        for node in [*peers, laptop]:
            await node.start()
        await wait_until(lambda: converged([*peers, laptop]), 5, "convergence")
        expires = laptop.certificate.expires

        await wait_until(lambda: all(p.member(laptop.node_id) is None for p in peers),
                         expires - time.time() + 2, "the expired member dropped")
        assert time.time() > expires
        assert all(p.counters["members_dropped_certificate_expired"] == 1 for p in peers)
        # It keeps talking; what it sends now is refused (its certificate, attached again
        # once its probes fail, no longer verifies), and it does not come back.
        await wait_until(lambda: sum(p.counters["dropped_bad_certificate"] for p in peers) > 0,
                         5, "the expired member's datagrams refused")
        assert all(p.member(laptop.node_id) is None for p in peers)

        renewal = _certificate(kit.root, laptop.identity)
        before = laptop.record.incarnation
        laptop.adopt_certificate(renewal)
        assert laptop.record.cert.serial == renewal.serial
        assert laptop.record.incarnation > before
        await wait_until(lambda: all(state_of(p, laptop) == MemberState.ALIVE
                                     and p.member(laptop.node_id).record.cert.serial
                                     == renewal.serial for p in peers), 5,
                         "the renewed member back everywhere")
        await kit.stop_all()

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert "member_certificate_expired" in caplog.text
    assert "own_certificate_expired" in caplog.text


def test_member_renewed_after_a_long_expiry_takes_its_view_back_at_once() -> None:
    """Expired long enough to hold every peer unreachable (nobody answered it), with no
    seeds (found by multicast, say): the renewal exchanges state with one of them at once,
    not a maintenance turn later (here 30 s)."""
    async def scenario() -> None:
        kit, network = MeshKit(), MemoryNetwork(seed=7)
        peers = memory_mesh(kit, network, 3)
        for node in peers:
            await node.start()
        laptop = _short_lived(kit, network, lifetime_s=3, seeds=False,
                              profile=FAST.with_changes(reconnect_interval_s=30.0))
        await laptop.start()
        await laptop.join([("10.0.0.1", 7946)])
        await wait_until(lambda: converged([*peers, laptop]), 5, "convergence")
        await wait_until(lambda: all(state_of(laptop, p) == MemberState.UNREACHABLE
                                     for p in peers), 15,
                         "the expired member holding every peer unreachable")
        laptop.adopt_certificate(_certificate(kit.root, laptop.identity))
        took = await wait_until(lambda: converged([*peers, laptop]), 5, "the mesh whole again")
        assert took < 2.0
        await kit.stop_all()

    asyncio.run(scenario())


def test_renewal_reaches_every_peer_without_disturbing_the_member() -> None:
    async def scenario() -> None:
        kit, network = MeshKit(), MemoryNetwork(seed=4)
        nodes = memory_mesh(kit, network, 6)
        for node in nodes:
            await node.start()
        await wait_until(lambda: converged(nodes), 10, "convergence")
        laptop, peers = nodes[3], [n for i, n in enumerate(nodes) if i != 3]
        seen: list[MemberState] = []
        for peer in peers:
            peer.on_change(lambda member, old, new: seen.append(new)
                           if member.node_id == laptop.node_id else None)
        renewal = _certificate(kit.root, laptop.identity, lifetime_s=2 * 365 * 86400)
        laptop.adopt_certificate(renewal)
        await wait_until(lambda: all(p.member(laptop.node_id).record.cert.serial
                                     == renewal.serial for p in peers), 5, "the renewal")
        # An observation window, not a wait: ten probe intervals of virtual time in which
        # no peer may suspect it or drop it.
        await asyncio.sleep(10 * FAST.probe_interval_s)
        assert set(seen) == {MemberState.ALIVE}
        assert converged(nodes)
        await kit.stop_all()

    run_virtual(scenario())


def test_unusable_certificate_is_refused_and_changes_nothing() -> None:
    async def scenario() -> None:
        kit, network = MeshKit(), MemoryNetwork(seed=5)
        nodes = memory_mesh(kit, network, 2)
        for node in nodes:
            await node.start()
        await wait_until(lambda: converged(nodes), 5, "convergence")
        laptop = nodes[1]
        record, certificate = laptop.record, laptop.certificate
        stranger = NodeIdentity.generate()
        revoked = _certificate(kit.root, laptop.identity)
        laptop.update_revocations(kit.root.revoke(serials=[revoked.serial]))
        refusals = [
            (_certificate(kit.root, stranger), UntrustedCertificate),
            (_certificate(MeshRoot.create(), laptop.identity), WrongMesh),
            (_certificate(kit.root, laptop.identity, lifetime_s=60,
                          now=time.time() - 3600), CertificateExpired),
            (revoked, CertificateRevoked),
        ]
        for bad, error in refusals:
            with pytest.raises(error):
                laptop.adopt_certificate(bad)
            assert laptop.certificate is certificate
            assert laptop.record.wire == record.wire
        assert laptop.counters["certificates_adopted"] == 0
        await kit.stop_all()

    run_virtual(scenario())


def test_member_whose_certificate_ended_may_ask_for_its_renewal_and_nothing_else() -> None:
    """A stream presenting a certificate that has ended (this mesh's, not revoked) is
    served one thing: the node's renewal, where a member holds one. Its state exchange is
    refused and counted, and teaches the member nothing; a revoked one gets nothing."""
    async def scenario() -> None:
        kit, network = MeshKit(), MemoryNetwork(seed=8)
        peers = memory_mesh(kit, network, 2)
        for node in peers:
            await node.start()
        await wait_until(lambda: converged(peers), 5, "convergence")
        identity = NodeIdentity.generate()
        ended = _certificate(kit.root, identity, lifetime_s=600, now=time.time() - 3600)
        laptop = Membership(identity, ended, kit.root.trust,
                            network.transport(("10.0.0.99", 7946)), profile=FAST,
                            verifier=kit.verifier)
        kit.nodes.append(laptop)
        await laptop.start()
        seed = ("10.0.0.1", 7946)
        renewal = _certificate(kit.root, identity)
        held: dict[bytes, MembershipCertificate] = {}
        asked: list[MembershipCertificate] = []

        def renewal_for(certificate: MembershipCertificate) -> bytes | None:
            asked.append(certificate)
            found = held.get(certificate.node_id)
            return found.to_wire() if found is not None else None
        peers[0].renewal_for = renewal_for

        assert await laptop.streams.ask_renewal(seed) is None  # nothing held yet
        held[identity.node_id] = renewal
        assert await laptop.streams.ask_renewal(seed) == renewal.to_wire()
        assert [c.serial for c in asked] == [ended.serial, ended.serial]
        assert peers[0].counters["renewals_handed"] == 1
        assert peers[0].counters["renewals_not_held"] == 1

        assert not await laptop.streams.sync(seed)
        assert peers[0].counters["dropped_bad_certificate"] == 1
        assert peers[0].member(identity.node_id) is None
        assert laptop.member(peers[0].node_id) is None  # it learnt nothing either
        assert not peers[0].keys.knows(identity.node_id)  # nor its datagrams' key

        peers[0].update_revocations(kit.root.revoke(serials=[ended.serial]))
        assert await laptop.streams.ask_renewal(seed) is None
        assert peers[0].counters["dropped_revoked"] == 1
        assert len(asked) == 2
        await kit.stop_all()

    run_virtual(scenario())


def test_seed_does_not_join_itself() -> None:
    """The seed list every agent of a mesh shares names the seeds too: a seed leaves its
    own address out (no failed exchange with itself, no bad-input log), and a stream to
    itself by another road is counted, not dropped as bad input."""
    async def scenario() -> None:
        kit, network = MeshKit(), MemoryNetwork(seed=9)
        seed_address = ("10.0.0.1", 7946)
        identity = NodeIdentity.generate()
        seed = Membership(identity, _certificate(kit.root, identity), kit.root.trust,
                          network.transport(seed_address), profile=FAST,
                          seeds=[seed_address], verifier=kit.verifier)
        kit.nodes.append(seed)
        await seed.start()
        assert seed.seeds == []
        assert await seed.join([seed_address]) == 0
        assert not await seed.streams.sync(seed_address)  # around the filter
        assert seed.counters["streams_from_self"] == 1
        assert not any(name.startswith("dropped_") for name in seed.counters)
        assert seed.counters["syncs_failed"] == 1  # that one only
        await kit.stop_all()

    run_virtual(scenario())


# ------------------------------------------------------------------ the agent's watch

class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _write_certificate(node_dir: Path, certificate: MembershipCertificate) -> None:
    save_certificate(node_dir / "node.cert", certificate.to_wire())


async def _watched(tmp_path: Path, lifetime_s: int = 7200, clock: _Clock | None = None,
                   ) -> tuple[MeshKit, Membership, CertificateWatch, list[NodeCredentials]]:
    kit, network = MeshKit(), MemoryNetwork(seed=6)
    identity = NodeIdentity.generate()
    credentials = NodeCredentials(identity, _certificate(kit.root, identity, lifetime_s),
                                  kit.root.trust)
    credentials.save(tmp_path)
    node = Membership(identity, credentials.certificate, kit.root.trust,
                      network.transport(("10.0.0.1", 7946)), profile=FAST)
    kit.nodes.append(node)
    await node.start()
    renewed: list[NodeCredentials] = []
    watch = CertificateWatch(tmp_path, node, credentials, renewed.append,
                             warn_s=30 * 86400, clock=clock or time.time)
    return kit, node, watch, renewed


def test_watch_adopts_a_renewed_node_cert(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        kit, node, watch, renewed = await _watched(tmp_path)
        assert not watch.check()  # nothing new
        renewal = _certificate(kit.root, node.identity, lifetime_s=365 * 86400)
        _write_certificate(tmp_path, renewal)
        with caplog.at_level(logging.INFO):
            assert watch.check()
        assert node.certificate.serial == renewal.serial
        assert node.record.cert.serial == renewal.serial
        assert [c.certificate.serial for c in renewed] == [renewal.serial]
        assert watch.status()["renewals"] == 1
        assert "certificate_renewed" in caplog.text
        assert not watch.check()  # read once
        await kit.stop_all()

    run_virtual(scenario())


@pytest.mark.parametrize("bad", ["garbage", "another node's", "expired", "removed"])
def test_watch_refuses_a_bad_node_cert_and_keeps_the_one_it_has(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str) -> None:
    async def scenario() -> None:
        kit, node, watch, renewed = await _watched(tmp_path)
        before = node.record.wire
        path = tmp_path / "node.cert"
        if bad == "garbage":
            path.write_bytes(b"\x00not a certificate")
        elif bad == "another node's":
            _write_certificate(tmp_path, _certificate(kit.root, NodeIdentity.generate()))
        elif bad == "expired":
            _write_certificate(tmp_path, _certificate(kit.root, node.identity, lifetime_s=60,
                                                      now=time.time() - 3600))
        else:
            path.unlink()
        with caplog.at_level(logging.WARNING):
            assert not watch.check()
        assert node.record.wire == before
        assert renewed == []
        assert watch.status()["last_refusal"]
        assert "certificate_renewal_refused" in caplog.text
        await kit.stop_all()

    run_virtual(scenario())


def test_certificates_offered_by_peers_are_refused_counted_and_logged_once_per_peer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Any member can send an agent certificates (``meshctl certificates push``): garbage,
    another node's, a stale one of its own, a hundred times over. Each is refused and
    counted, the log has one line per sender, and the certificate held is unchanged."""
    async def scenario() -> None:
        kit, node, watch, renewed = await _watched(tmp_path)
        before = node.record.wire
        held = node.certificate
        stale = _certificate(kit.root, node.identity, lifetime_s=60)
        offers = [b"\x00garbage", _certificate(kit.root, NodeIdentity.generate()).to_wire(),
                  stale.to_wire()]
        with caplog.at_level(logging.WARNING):
            for _ in range(100):
                for wire in offers:
                    assert not watch.offer(wire, "peer:flooder")
            assert "does not end later" in watch.last_refusal
            assert not watch.offer(b"\x00garbage", "peer:another")
        assert watch.status()["refusals"] == 301
        assert caplog.text.count("certificate_renewal_refused") == 2
        assert node.record.wire == before and node.certificate is held and renewed == []
        assert watch.last_refusal.startswith("MalformedCertificate")
        await kit.stop_all()

    run_virtual(scenario())


def test_the_certificate_held_offered_again_in_another_encoding_is_no_refusal(
        tmp_path: Path) -> None:
    """A certificate keeps the bytes it came in; the one held, sent back re-encoded (an
    extra map key, the keys in another order), is still the one held: ignored quietly,
    not refused as a stale renewal."""
    async def scenario() -> None:
        kit, node, watch, renewed = await _watched(tmp_path)
        held = node.certificate
        again = msgpack.packb({"x": 1, "cert": held.signed.to_wire()}, use_bin_type=True)
        assert again != held.to_wire()
        assert not watch.offer(again, "peer:echo")
        assert watch.status()["refusals"] == 0 and renewed == []
        assert node.certificate is held
        await kit.stop_all()

    run_virtual(scenario())


def test_watch_warns_once_a_day_before_the_certificate_ends(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = _Clock()
        kit, node, watch, _ = await _watched(tmp_path, lifetime_s=40 * 86400, clock=clock)
        with caplog.at_level(logging.WARNING):
            watch.check()
            assert "certificate_expires_soon" not in caplog.text  # 40 days left
            clock.now += 11 * 86400
            watch.check()
            assert caplog.text.count("certificate_expires_soon") == 1
            clock.now += WARN_EVERY_S / 2
            watch.check()
            assert caplog.text.count("certificate_expires_soon") == 1
            clock.now += WARN_EVERY_S / 2
            watch.check()
            assert caplog.text.count("certificate_expires_soon") == 2
        assert 0 < watch.status()["expires_in_s"] < 30 * 86400
        await kit.stop_all()

    run_virtual(scenario())
