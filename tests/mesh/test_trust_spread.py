"""Root-signed documents spreading through a mesh.

In memory: the newest revocation list or allowlist adopted at one member reaches every
member (also one far too big for a datagram, which travels by announcement and fetch), is
written to each node's directory, and a revoked member is cut off everywhere; forged,
foreign, old and garbage documents from a member change nothing anywhere and are counted.

Whole agents in this process over real sockets: an allowlist adopted at one agent
reaches every agent's command policy, and one revocation list refuses an operator at
every policy and cuts a revoked agent's sessions.

Agents as real processes behind the real web service: an allowlist pushed with meshctl's
client turns a refused action into one every agent runs, and a pushed revocation list
cuts the revoked agent off from every other; old or forged uploads are refused.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from meshagent.agent import Agent
from meshagent.cli.api_client import ApiClient, ApiError
from meshagent.commands import (
    Allowlist,
    CommandRejected,
    OperatorKey,
    SignedCommand,
    Target,
    authorise_operator,
    build_allowlist,
    sign_command,
)
from meshagent.config import load_config
from meshagent.control import call
from meshagent.demo import ROOT_FILE, create_mesh
from meshagent.identity import MeshRoot, NodeIdentity, RevocationList, redeem_join_token
from meshagent.leaderlab import LAB_PASSWORD, LeaderLab, free_port
from meshagent.membership import Membership
from meshagent.membership.messages import Document
from meshagent.transport import MemoryNetwork
from meshagent.trustdocs import ALLOWLIST, REVOCATIONS, TrustDocuments
from tests.polling import wait_for

from .meshkit import (
    FAST,
    MeshKit,
    converged,
    free_loopback_subnet,
    memory_mesh,
    run_virtual,
    wait_until,
)

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


def test_newer_document_news_heard_during_a_fetch_is_fetched_next() -> None:
    """News of version 1 starts a fetch; news of version 2 arrives while it runs. Version
    2 is fetched after it, with no gossip, digest repair or push-pull to fall back on
    (before, the second news was dropped and the member stayed on version 1)."""
    quiet = FAST.with_changes(repair_interval_s=1000.0, push_pull_interval_s=1000.0,
                              fast_sync_rounds=0)

    async def scenario() -> int:
        kit = MeshKit(profile=quiet)
        nodes = await _mesh(kit, seed=35, count=3)
        holder_of_first, holder_of_second, late = nodes
        first = kit.root.revoke(serials=[1])
        second = kit.root.revoke(serials=[2], previous=first)
        for holder, listing in ((holder_of_first, first), (holder_of_second, second)):
            assert holder.documents.offer(REVOCATIONS, listing.to_wire())
            holder._queue.discard(b"document:" + REVOCATIONS.encode())  # no gossip
        exchanges = late.counters["view_repairs"] + late.counters["syncs"]
        late._on_document_news(Document(REVOCATIONS, 1), holder_of_first.node_id)
        late._on_document_news(Document(REVOCATIONS, 2), holder_of_second.node_id)
        await wait_until(lambda: late.documents.version(REVOCATIONS) == 2, 5, "version 2")
        exchanges = late.counters["view_repairs"] + late.counters["syncs"] - exchanges
        await kit.stop_all()
        return exchanges

    assert run_virtual(scenario()) == 0  # neither a repair nor a push-pull delivered it


def test_document_whose_news_was_lost_is_repaired_through_the_view_digest() -> None:
    """A member adopts a revocation list and its news is lost. The view digest covers the
    documents held, so the others' digests differ from its own and a digest repair's
    state exchange carries the list, long before a push-pull."""
    quiet = FAST.with_changes(push_pull_interval_s=1000.0, fast_sync_rounds=0)

    async def scenario() -> float:
        kit = MeshKit(profile=quiet)
        nodes = await _mesh(kit, seed=36, count=5)
        holder = nodes[2]
        assert holder.documents.offer(REVOCATIONS, kit.root.revoke(serials=[1]).to_wire())
        holder._queue.discard(b"document:" + REVOCATIONS.encode())  # the news is lost
        took = await wait_until(lambda: _everywhere(nodes, REVOCATIONS, 1), 30,
                                "the list everywhere")
        await kit.stop_all()
        return took

    assert run_virtual(scenario()) < 4 * FAST.repair_interval_s


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


def test_join_token_redeemed_on_both_sides_of_a_partition_is_burnt_everywhere() -> None:
    async def scenario() -> None:
        kit = MeshKit()
        network = MemoryNetwork(seed=35)
        nodes = memory_mesh(kit, network, 8)
        for node in nodes:
            await node.start()
        await wait_until(lambda: converged(nodes), 20, "convergence")
        left, right = nodes[:4], nodes[4:]
        sides = ((left, ("10.0.1.1", 7946)), (right, ("10.0.2.1", 7946)))
        network.partition(*([*[n.transport.local_address for n in side], address]
                            for side, address in sides))
        token = kit.root.issue_join_token(["member"], lifetime_s=600)
        joiners = []
        for side, address in sides:
            joined = redeem_join_token(token.encode(), NodeIdentity.generate(), "joiner",
                                       kit.root.trust)
            joiner = Membership(joined.identity, joined.certificate, kit.root.trust,
                                network.transport(address), profile=kit.profile,
                                seeds=[side[0].transport.local_address])
            kit.nodes.append(joiner)
            await joiner.start()
            joiners.append(joiner)
        await wait_until(lambda: all(n.member(joiners[0].node_id) for n in left) and all(
            n.member(joiners[1].node_id) for n in right), 10, "each side admits its joiner")
        network.heal()
        await wait_until(lambda: all(n.redeemed.is_burnt(token.token_id) for n in nodes), 20,
                         "token burnt everywhere")
        await wait_until(lambda: all(n.member(j.node_id) is None for n in nodes
                                     for j in joiners), 10, "both joiners dropped")
        # A member that never met either joiner learns the burn from the evidence alone.
        for joiner in joiners:
            await joiner.stop()
        late = kit.node(network.transport(("10.0.3.1", 7946)),
                        seeds=[nodes[0].transport.local_address])
        await late.start()
        await wait_until(lambda: late.redeemed.is_burnt(token.token_id), 10, "late learns")
        assert set(late.redeemed.burnt_evidence()) == set(nodes[0].redeemed.burnt_evidence())
        await kit.stop_all()

    run_virtual(scenario())


# --- whole agents in this process, real sockets ---------------------------------------------


@pytest.fixture
async def agents(tmp_path: Path):
    subnet = free_loopback_subnet("127.2", 4, 17946)
    mesh = create_mesh(tmp_path / "mesh", 4, addresses=[
        (f"{subnet}.{i + 1}", 17946) for i in range(4)], seeds=1)
    started: list[Agent] = []
    try:
        for node in mesh.nodes:
            agent = Agent(load_config(node.config_path))
            await agent.start()
            started.append(agent)
        yield MeshRoot.load(mesh.directory / ROOT_FILE), started
    finally:
        for agent in started:
            await agent.stop(leave=False)


def _refusal(agent: Agent, command: SignedCommand) -> str | None:
    """The reason ``agent``'s policy refuses ``command``, None if it admits it."""
    try:
        agent.leadership.policy.check(command.to_wire())
    except CommandRejected as rejection:
        return rejection.reason
    return None


async def test_documents_adopted_at_one_agent_change_every_agents_policy_and_sessions(
        agents: tuple[MeshRoot, list[Agent]]) -> None:
    root, started = agents
    await wait_until(lambda: all(len(a.sessions.sessions) == 3 for a in started), 20,
                     "sessions between all agents")
    operator = OperatorKey.generate("alice")
    cert = authorise_operator(root, operator.public, "alice", ["*"], 3600.0)

    def ping() -> SignedCommand:
        return sign_command(operator, cert, Target.all(), "ping")

    assert {_refusal(a, ping()) for a in started} == {"not_allowlisted"}
    started[0].documents.offer(ALLOWLIST, build_allowlist(root, ["ping"]).to_wire())
    await wait_until(lambda: all(a.leadership.policy.allowlist is not None
                                 for a in started), 10, "allowlist at every agent")
    assert {_refusal(a, ping()) for a in started} == {None}

    # One list revokes the operator and the last agent: every policy refuses the operator,
    # every other agent drops the revoked one and closes its sessions with it.
    revoked = started[3]
    listing = root.revoke(node_ids=[operator.operator_id, revoked.node_id])
    started[1].documents.offer(REVOCATIONS, listing.to_wire())
    others = started[:3]
    await wait_until(lambda: all(a.documents.version(REVOCATIONS) == 1 for a in others), 10,
                     "revocation list at every agent")
    assert {_refusal(a, ping()) for a in others} == {"operator_revoked"}
    await wait_until(lambda: all(revoked.node_id not in a.sessions.sessions and
                                 a.membership.member(revoked.node_id) is None
                                 for a in others), 10, "revoked agent cut off")
    assert all(len(a.sessions.sessions) == 2 for a in others)


# --- agents as processes, documents pushed at the web service -----------------------------

AGENTS = 4


async def _statuses(lab: LeaderLab, action: str) -> dict[bytes, tuple[str, str | None]]:
    """Run ``action`` on every node through the service: node -> (status, reason)."""
    command = lab.command(Target.all(), action)
    await lab.submit(command)
    command_id = command.envelope().id

    async def arrived() -> bool:
        return len(await lab.results(command_id)) >= AGENTS
    await wait_for(arrived, 30, f"{action} results")
    return {row.node_id: (row.summary["status"], row.summary["output"].get("reason"))
            for row in await lab.results(command_id)}


@pytest.fixture
async def lab(tmp_path: Path):
    lab = LeaderLab.create(tmp_path / "mesh", AGENTS, service_port=free_port(),
                           agent_port=17946, first_address=random.randrange(2, 60_000),
                           actions=["inventory"])
    async with lab.running():
        yield lab


async def test_documents_pushed_at_the_web_service_reach_every_agent(lab: LeaderLab) -> None:
    session = await lab.settled(AGENTS, timeout=30)
    assert set((await _statuses(lab, "ping")).values()) == {("rejected", "not_allowlisted")}

    client = ApiClient(lab.url, lab.pin, LAB_PASSWORD)
    wider = build_allowlist(lab.root, ["inventory", "ping"], version=2)
    assert await asyncio.to_thread(client.push_document, ALLOWLIST, wider.to_wire())
    assert not await asyncio.to_thread(client.push_document, ALLOWLIST, wider.to_wire())
    files = [node.directory / "state" / "allowlist" for node in lab.mesh.nodes]

    async def everywhere() -> bool:
        return all(Allowlist.load(path).version == 2 for path in files)
    await wait_for(everywhere, 20, "allowlist v2 in every node directory")
    assert {status for status, _ in (await _statuses(lab, "ping")).values()} == {"ok"}

    older = build_allowlist(lab.root, ["inventory", "ping", "power"], version=1)
    with pytest.raises(ApiError) as stale:
        await asyncio.to_thread(client.push_document, ALLOWLIST, older.to_wire())
    assert (stale.value.status, stale.value.code) == (409, "stale_allowlist")
    impostor = MeshRoot(lab.root.mesh_id, MeshRoot.create().key)
    with pytest.raises(ApiError) as forged:
        await asyncio.to_thread(client.push_document, ALLOWLIST,
                                build_allowlist(impostor, ["power"], version=9).to_wire())
    assert (forged.value.status, forged.value.code) == (403, "untrusted_allowlist")

    revoked = next(n for n in lab.mesh.nodes if lab.mesh.node_ids[n.name] != session.node_id)
    revoked_id = lab.mesh.node_ids[revoked.name]
    others = [n for n in lab.mesh.nodes if n is not revoked]
    listing = lab.root.revoke(node_ids=[revoked_id])
    assert await asyncio.to_thread(client.push_document, REVOCATIONS, listing.to_wire())

    async def cut_off() -> bool:
        for node in others:
            nodes = await call(node.socket, "nodes")
            sessions = await call(node.socket, "sessions")
            if any(bytes.fromhex(entry["node_id"]) == revoked_id
                   for entry in [*nodes, *sessions]):
                return False
        return True
    await wait_for(cut_off, 20, "revoked agent cut off everywhere")
    for node in others:
        kept = RevocationList.load(node.directory / "state" / "revocations", lab.root.trust)
        assert revoked_id in kept.node_ids
