"""Root-signed documents spreading through a mesh over the in-memory transport: the
newest revocation list or allowlist adopted at one member reaches every member (also one
far too big for a datagram, which travels by announcement and fetch), is written to each
node's directory, and a revoked member is cut off everywhere; forged, foreign, old and
garbage documents from a member change nothing anywhere and are counted."""

from __future__ import annotations

from pathlib import Path

from meshagent.commands import build_allowlist
from meshagent.identity import MeshRoot, RevocationList
from meshagent.membership import Membership
from meshagent.membership.messages import Document
from meshagent.transport import MemoryNetwork
from meshagent.trustdocs import ALLOWLIST, REVOCATIONS, TrustDocuments

from .meshkit import MeshKit, converged, memory_mesh, run_virtual, wait_until

COUNT = 12


async def _mesh(kit: MeshKit, seed: int, count: int = COUNT) -> list[Membership]:
    nodes = memory_mesh(kit, MemoryNetwork(seed=seed), count)
    for node in nodes:
        await node.start()
    await wait_until(lambda: converged(nodes), 20, "convergence")
    return nodes


def _everywhere(nodes: list[Membership], kind: str, version: int) -> bool:
    return all(node.documents.version(kind) == version for node in nodes)


def test_revocation_issued_at_one_member_reaches_all_and_cuts_the_member_off() -> None:
    async def scenario() -> None:
        kit = MeshKit()
        nodes = await _mesh(kit, seed=31)
        revoked, issuer = nodes[3], nodes[7]
        others = [n for n in nodes if n is not revoked]
        listing = kit.root.revoke(node_ids=[revoked.node_id])
        assert issuer.documents.offer(REVOCATIONS, listing.to_wire(), "admin")
        await wait_until(lambda: _everywhere(others, REVOCATIONS, 1), 10, "revocation list")
        await wait_until(lambda: all(o.member(revoked.node_id) is None for o in others), 10,
                         "revoked member dropped")
        # It cannot come back: its records and sealed datagrams are refused everywhere.
        revoked.update_record(tags={"try": "again"})
        await wait_until(lambda: sum(o.counters["dropped_revoked"] + o.counters[
            "dropped_auth"] for o in others) > 0, 10, "revoked member refused")
        assert all(o.member(revoked.node_id) is None for o in others)
        await kit.stop_all()

    run_virtual(scenario())


def test_allowlist_too_big_for_a_datagram_reaches_every_member_and_their_files(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        kit = MeshKit()
        directories = [tmp_path / f"node{i}" for i in range(COUNT)]
        for directory in directories:
            directory.mkdir()
        network = MemoryNetwork(seed=32)
        addresses = [(f"10.1.0.{i + 1}", 7946) for i in range(COUNT)]
        nodes = [kit.node(network.transport(address), seeds=[addresses[0]] if i else [],
                          documents=TrustDocuments(kit.root.trust, directories[i]))
                 for i, address in enumerate(addresses)]
        for node in nodes:
            await node.start()
        await wait_until(lambda: converged(nodes), 20, "convergence")
        scripts = {f"script-{i}.sh": f"echo {i}\n".encode() for i in range(400)}
        allowlist = build_allowlist(kit.root, ["ping", "script"], scripts)
        assert len(allowlist.to_wire()) > kit.profile.max_datagram
        assert nodes[5].documents.offer(ALLOWLIST, allowlist.to_wire())
        await wait_until(lambda: _everywhere(nodes, ALLOWLIST, 1), 10, "allowlist")
        for directory in directories:
            reloaded = TrustDocuments.load(kit.root.trust, directory)
            assert reloaded.current(ALLOWLIST).scripts == allowlist.scripts
        await kit.stop_all()

    run_virtual(scenario())


def test_member_that_was_away_gets_the_newest_documents_when_it_rejoins() -> None:
    async def scenario() -> None:
        kit = MeshKit()
        nodes = await _mesh(kit, seed=33, count=6)
        away = nodes[4]
        await away.stop()
        first = kit.root.revoke(serials=[1])
        second = kit.root.revoke(serials=[2], previous=first)
        nodes[0].documents.offer(REVOCATIONS, first.to_wire())
        nodes[1].documents.offer(REVOCATIONS, second.to_wire())
        present = [n for n in nodes if n is not away]
        await wait_until(lambda: _everywhere(present, REVOCATIONS, 2), 10, "newest list")
        back = kit.node(away.transport, seeds=[nodes[0].transport.local_address],
                        hostname="back")
        await back.start()
        await wait_until(lambda: back.documents.version(REVOCATIONS) == 2, 10, "catch up")
        await kit.stop_all()

    run_virtual(scenario())


def test_bad_documents_from_a_member_change_nothing_and_are_counted() -> None:
    async def scenario() -> None:
        kit = MeshKit()
        nodes = await _mesh(kit, seed=34, count=5)
        liar, victim = nodes[0], nodes[1]
        impostor = MeshRoot(kit.root.mesh_id, MeshRoot.create().key)
        current = kit.root.revoke(serials=[7], previous=kit.root.revoke(serials=[6]))
        assert victim.documents.offer(REVOCATIONS, current.to_wire())
        await wait_until(lambda: _everywhere(nodes, REVOCATIONS, 2), 10, "v2 everywhere")
        older = RevocationList.issue(kit.root.key, kit.root.mesh_id, serials=[6])
        bad = {
            "untrusted": impostor.revoke(node_ids=[victim.node_id], previous=current).to_wire(),
            "foreign": MeshRoot.create().revoke(node_ids=[victim.node_id]).to_wire(),
            "stale": older.to_wire(),
            "malformed": b"\x92\x01garbage",
        }
        for reason, wire in [*bad.items(), ("unknown_kind", b"")]:
            kind = "firmware" if reason == "unknown_kind" else REVOCATIONS
            before = victim.counters[f"dropped_document_{reason}"]
            assert not victim.offer_document(kind, wire, f"member:{liar.node_id.hex()}")
            assert victim.counters[f"dropped_document_{reason}"] == before + 1
        # The liar's (forged) holding, announced by gossip: fetched, refused, nothing moves.
        liar.documents._held[REVOCATIONS] = RevocationList.verify(bad["untrusted"],
                                                                  impostor.trust)
        liar._broadcast(b"forged", Document(REVOCATIONS, 3), urgent=True)
        await wait_until(lambda: sum(n.counters["dropped_document_untrusted"]
                                     for n in nodes[2:]) > 0, 10, "forged list refused")
        assert all(n.documents.version(REVOCATIONS) == 2 for n in nodes[1:])
        assert all(n.member(victim.node_id) is not None for n in nodes[2:])
        await kit.stop_all()

    run_virtual(scenario())
