"""Leader election over the in-memory network: priority, no churn, failover, partitions,
fencing by term, and bad candidacies. Deterministic (seeded network, virtual clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshagent import election as election_module
from meshagent.election import (
    Candidacy,
    CandidacyBook,
    Election,
    ElectionSettings,
    ElectionStateError,
    Reach,
    TermStore,
    candidacy_of,
    decide,
)
from meshagent.membership import Membership
from meshagent.server.db import open_database
from meshagent.transport import MemoryNetwork
from tests.mesh.meshkit import MeshKit, converged, run_virtual, wait_until


class Mesh:
    """Membership + election per node on one in-memory network."""

    def __init__(self, seed: int = 0) -> None:
        self.kit = MeshKit()
        self.network = MemoryNetwork(seed=seed)
        self.nodes: list[Membership] = []
        self.elections: list[Election] = []

    async def add(self, *, power: str = "battery", preference: int = 0, eligible: bool = True,
                  store: TermStore | None = None, started: float | None = None) -> Election:
        index = len(self.nodes)
        address = (f"10.0.0.{index + 1}", 7946)
        seeds = [self.nodes[0].transport.local_address] if self.nodes else []
        node = self.kit.node(self.network.transport(address), seeds=seeds,
                             record_fields={"power_source": power})
        await node.start()
        election = Election(node, ElectionSettings(eligible=eligible, preference=preference),
                            store=store, started=1000.0 + index if started is None else started)
        await election.start()
        self.nodes.append(node)
        self.elections.append(election)
        return election

    def live(self) -> list[Election]:
        return [e for e in self.elections if e.membership.running]

    def agreed(self, elections: list[Election] | None = None) -> tuple[bytes, int] | None:
        """The (leader, term) every given node believes in, or None if they disagree."""
        views = {(e.leader.node_id, e.leader.term) if e.leader else None
                 for e in (elections or self.live())}
        return views.pop() if len(views) == 1 and None not in views else None

    async def settle(self, elections: list[Election] | None = None,
                     timeout: float = 10.0) -> tuple[bytes, int]:
        await wait_until(lambda: converged([e.membership for e in elections or self.live()])
                         and self.agreed(elections) is not None, timeout, "one agreed leader")
        agreed = self.agreed(elections)
        assert agreed is not None
        return agreed

    async def crash(self, election: Election) -> None:
        self.network.crash(election.membership.transport.local_address)
        await election.stop()
        await election.membership.stop()

    async def stop(self) -> None:
        for election in self.elections:
            await election.stop()
        await self.kit.stop_all()


def test_node_on_ac_power_wins_over_a_preferred_one_on_battery() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=1)
        await mesh.add(power="battery", preference=10)
        on_ac = await mesh.add(power="ac")
        await mesh.add(power="battery")
        leader, term = await mesh.settle()
        assert leader == on_ac.node_id and term == 1
        await mesh.stop()

    run_virtual(scenario())


def test_preference_then_uptime_then_node_id_decide_among_equals() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=2)
        await mesh.add(power="ac", started=500.0)
        preferred = await mesh.add(power="ac", preference=5, started=900.0)
        await mesh.add(power="ac", started=100.0)
        leader, _ = await mesh.settle()
        assert leader == preferred.node_id
        ranked = preferred.status()["candidates"]
        # Among equal preference the longest running (earliest start) ranks first.
        assert ranked[1] == mesh.elections[2].node_id.hex()
        assert ranked[2] == mesh.elections[0].node_id.hex()
        await mesh.stop()

    run_virtual(scenario())


def test_ineligible_nodes_never_lead() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=3)
        await mesh.add(power="ac", preference=100, eligible=False)
        only = await mesh.add(power="battery")
        leader, _ = await mesh.settle()
        assert leader == only.node_id
        await mesh.stop()

    run_virtual(scenario())


def test_better_candidate_joining_does_not_take_over() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=4)
        for _ in range(3):
            await mesh.add(power="battery")
        incumbent = await mesh.settle()
        better = await mesh.add(power="ac", preference=100)
        assert await mesh.settle() == incumbent
        # Time passes; still no churn.
        await asyncio.sleep(5.0)
        assert mesh.agreed() == incumbent
        assert not better.is_leader
        await mesh.stop()

    run_virtual(scenario())


def test_crashed_leader_is_replaced_by_the_next_best_at_a_higher_term() -> None:
    async def scenario() -> float:
        mesh = Mesh(seed=5)
        for index in range(8):
            await mesh.add(power="ac", preference=index)
        leader_id, term = await mesh.settle()
        assert leader_id == mesh.elections[7].node_id
        loop = asyncio.get_running_loop()
        killed = loop.time()
        await mesh.crash(mesh.elections[7])
        new_id, new_term = await mesh.settle(mesh.live())
        took = loop.time() - killed
        assert new_id == mesh.elections[6].node_id
        assert new_term == term + 1
        await mesh.stop()
        return took

    assert run_virtual(scenario()) < 1.0


def test_partition_elects_one_leader_per_side_and_the_service_keeps_the_higher_term(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=6)
        for index in range(6):
            await mesh.add(power="ac", preference=index)
        first_id, first_term = await mesh.settle()
        left, right = mesh.elections[:3], mesh.elections[3:]  # the leader (5) is on the right
        mesh.network.partition([e.membership.transport.local_address for e in left],
                               [e.membership.transport.local_address for e in right])
        await wait_until(lambda: mesh.agreed(left) not in (None, (first_id, first_term)), 30,
                         "a leader on the left")
        left_id, left_term = await mesh.settle(left)
        assert mesh.agreed(right) == (first_id, first_term)  # the right keeps its leader
        assert left_id == mesh.elections[2].node_id and left_term == first_term + 1

        db = await open_database(f"sqlite://{tmp_path}/service.db")
        try:
            mesh_id = mesh.kit.root.mesh_id
            await db.add_mesh(mesh_id, mesh.kit.root.trust.root_public, "lab", 0.0)
            assert (await db.claim_leadership(mesh_id, first_id, first_term, 1.0)).accepted
            assert (await db.claim_leadership(mesh_id, left_id, left_term, 2.0)).accepted
            stale = await db.claim_leadership(mesh_id, first_id, first_term, 3.0)
            assert not stale.accepted and stale.holder.term == left_term
        finally:
            await db.close()

        # Healed: the higher term wins everywhere and the lower leader steps down.
        mesh.network.heal()
        assert await mesh.settle(timeout=30) == (left_id, left_term)
        assert not mesh.elections[5].is_leader
        await mesh.stop()

    run_virtual(scenario())


def test_fenced_leader_takes_a_higher_term_and_keeps_leading() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=7)
        for _ in range(3):
            await mesh.add(power="ac")
        leader_id, term = await mesh.settle()
        leader = next(e for e in mesh.elections if e.node_id == leader_id)
        delay_1 = leader.fenced(term_hint=40)
        assert leader.term == 41 and leader.is_leader
        delay_2 = leader.fenced()
        assert leader.term == 43  # jumps 2 on the second refusal in a row
        assert delay_2 > delay_1
        assert await mesh.settle() == (leader_id, 43)
        await mesh.stop()

    run_virtual(scenario())


def test_leader_that_cannot_reach_the_service_hands_over() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=8)
        for index in range(3):
            await mesh.add(power="ac", preference=index)
        leader_id, term = await mesh.settle()
        leader = next(e for e in mesh.elections if e.node_id == leader_id)
        leader.report_reach(False)
        new_id, new_term = await wait_settled_elsewhere(mesh, leader_id)
        assert new_term == term + 1
        assert candidacy_of(leader.membership.record).reach == Reach.FAILING
        await mesh.stop()

    run_virtual(scenario())


async def wait_settled_elsewhere(mesh: Mesh, old: bytes) -> tuple[bytes, int]:
    await wait_until(lambda: (mesh.agreed() or (old, 0))[0] != old, 10, "a new leader")
    agreed = mesh.agreed()
    assert agreed is not None
    return agreed


def test_restarted_node_never_reuses_a_term(tmp_path: Path) -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=9)
        store = TermStore(tmp_path / "term")
        first = await mesh.add(power="ac", store=store)
        _, term = await mesh.settle()
        assert store.load() == term
        await mesh.crash(first)
        # The same node's disk, a fresh process alone: it claims above its old term.
        again = Mesh(seed=10)
        reborn = await again.add(power="ac", store=TermStore(tmp_path / "term"))
        _, new_term = await again.settle()
        assert reborn.is_leader and new_term == term + 1
        await again.stop()
        await mesh.stop()

    run_virtual(scenario())


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x93\x01\x02\x03",
                                  Candidacy(1, True, 0, 1.0, Reach.OK).encode()[:-1],
                                  b"\x96\x02\x01\xc3\x00\xcb" + b"\x00" * 8 + b"\x02",
                                  b"\x96\x01\xff\xc3\x00\x01\x02", b"\x96\x01\x01\xc3\x00\x01\x07"])
def test_malformed_candidacy_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(ElectionStateError):
        Candidacy.decode(data)


def test_candidacy_round_trips() -> None:
    candidacy = Candidacy(7, True, -3, 1234.5, Reach.FAILING)
    assert Candidacy.decode(candidacy.encode()) == candidacy


def test_peer_with_a_garbage_candidacy_is_ignored_not_fatal() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=11)
        honest = await mesh.add(power="battery")
        liar = await mesh.add(power="ac", preference=100)
        await liar.stop()
        liar.membership.update_record(election=b"\x93garbage")
        await asyncio.sleep(1.0)
        leader, _ = await wait_leader_of(honest)
        assert leader == honest.node_id
        await mesh.stop()

    run_virtual(scenario())


async def wait_leader_of(election: Election) -> tuple[bytes, int]:
    await wait_until(lambda: election.leader is not None, 10, "a leader")
    assert election.leader is not None
    return election.leader.node_id, election.leader.term


def test_silent_leader_is_replaced_after_suspicion_and_steps_down_when_it_wakes() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=12)
        for index in range(5):
            await mesh.add(power="ac", preference=index)
        leader_id, term = await mesh.settle()
        sleeper = mesh.elections[4]
        assert leader_id == sleeper.node_id
        mesh.network.pause(sleeper.membership.transport.local_address)  # SIGSTOP
        others = mesh.elections[:4]
        await wait_until(lambda: mesh.agreed(others) not in (None, (leader_id, term)), 30,
                         "a successor")
        successor = mesh.agreed(others)
        assert successor == (mesh.elections[3].node_id, term + 1)
        mesh.network.resume(sleeper.membership.transport.local_address)  # SIGCONT
        assert await mesh.settle(timeout=30) == successor
        assert not sleeper.is_leader
        await mesh.stop()

    run_virtual(scenario())


def test_changes_reported_in_one_loop_turn_are_evaluated_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=13)
        for _ in range(4):
            await mesh.add()
        agreed = await mesh.settle()
        watched = mesh.elections[1]
        evaluated: list[bytes] = []

        def counting_decide(members, own_id, *args):  # type: ignore[no-untyped-def]
            evaluated.append(own_id)
            return decide(members, own_id, *args)

        monkeypatch.setattr(election_module, "decide", counting_decide)
        for step in range(20):  # twenty changes reported within one turn of the loop
            watched.membership.update_record(tags={"step": str(step)})
        assert watched.node_id not in evaluated
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert evaluated.count(watched.node_id) == 1
        await asyncio.sleep(2.0)  # ticks with a leader in place and nothing new: no work
        assert evaluated.count(watched.node_id) == 1
        assert mesh.agreed() == agreed
        await mesh.stop()

    run_virtual(scenario())


def test_changes_that_cannot_move_the_leader_wait_for_the_view_to_settle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A mass join reports each member in its own datagram: with a leader in place, such
    changes are evaluated together after ``view_settle_s``, not once per loop turn; a
    change of the leader itself is still evaluated on the next turn."""
    async def scenario() -> None:
        mesh = Mesh(seed=15)
        for _ in range(4):
            await mesh.add()
        leader_id, _ = await mesh.settle()
        watcher = next(e for e in mesh.elections if e.node_id != leader_id)
        other = next(e for e in mesh.elections if e.node_id not in (leader_id,
                                                                     watcher.node_id))
        evaluated: list[float] = []

        def counting_decide(members, own_id, *args):  # type: ignore[no-untyped-def]
            if own_id == watcher.node_id:
                evaluated.append(asyncio.get_running_loop().time())
            return decide(members, own_id, *args)

        monkeypatch.setattr(election_module, "decide", counting_decide)
        member = watcher.membership.member(other.node_id)
        assert member is not None
        started = asyncio.get_running_loop().time()
        for _ in range(20):  # twenty changes, each in its own turn of the loop
            watcher._view_changed(member, member.state, member.state)
            await asyncio.sleep(0.001)
        assert evaluated == []
        await wait_until(lambda: bool(evaluated), 2, "the settled evaluation")
        assert len(evaluated) == 1
        assert evaluated[0] - started > watcher.settings.view_settle_s - 1e-6

        leader = watcher.membership.member(leader_id)
        assert leader is not None
        evaluated.clear()
        watcher._view_changed(member, member.state, member.state)  # waits to settle...
        watcher._view_changed(leader, leader.state, leader.state)  # ...the leader cannot
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(evaluated) == 1
        await asyncio.sleep(watcher.settings.view_settle_s * 2)
        assert len(evaluated) == 1  # the earlier change was covered by that evaluation
        await mesh.stop()

    run_virtual(scenario())


def test_a_fleet_starting_together_evaluates_after_its_view_settles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents that all start at once (a building switched on) are leaderless and in their
    start-up grace, when nobody may claim: the changes of that mass join are not
    leadership news either (the tick evaluates the grace's end)."""
    async def scenario() -> None:
        mesh = Mesh(seed=16)
        for _ in range(3):
            await mesh.add()
        await wait_until(lambda: converged(mesh.nodes), 1, "convergence")
        watcher = mesh.elections[0]
        assert watcher.leader is None and watcher.clock() < watcher._claims_from
        evaluated: list[bytes] = []

        def counting_decide(members, own_id, *args):  # type: ignore[no-untyped-def]
            if own_id == watcher.node_id:
                evaluated.append(own_id)
            return decide(members, own_id, *args)

        monkeypatch.setattr(election_module, "decide", counting_decide)
        member = watcher.membership.member(mesh.elections[1].node_id)
        assert member is not None
        for _ in range(20):  # twenty changes, each in its own turn of the loop
            watcher._view_changed(member, member.state, member.state)
            await asyncio.sleep(0.001)
        assert len(evaluated) <= 1  # at most one tick of the grace in those 20 ms
        settled = await mesh.settle()  # the grace ends and the best node claims
        assert settled[1] == 1
        await mesh.stop()

    run_virtual(scenario())


def test_candidacy_book_holds_only_the_members_it_last_read() -> None:
    async def scenario() -> None:
        mesh = Mesh(seed=14)
        for _ in range(5):
            await mesh.add()
        await mesh.settle()
        members = mesh.elections[0].membership.members()
        book = CandidacyBook()
        own = mesh.elections[0].node_id
        assert decide(members, own, 0.0, 1.0, 0, book) == decide(members, own, 0.0, 1.0)
        assert len(book) == 5
        assert decide(members[:2], own, 0.0, 1.0, 0, book) == \
            decide(members[:2], own, 0.0, 1.0)
        assert len(book) == 2
        await mesh.stop()

    run_virtual(scenario())


def test_election_with_nobody_eligible_does_no_timed_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaderless but ineligible: waiting cannot make this node lead, so its tick sleeps
    (view changes are still evaluated as they come)."""
    async def scenario() -> None:
        mesh = Mesh(seed=17)
        for _ in range(3):
            await mesh.add(eligible=False)
        await wait_until(lambda: converged(mesh.nodes), 10, "convergence")
        await wait_until(lambda: all(e._pending is None for e in mesh.elections), 2,
                         "the join's changes evaluated")
        evaluated: list[bytes] = []

        def counting_decide(members, own_id, *args):  # type: ignore[no-untyped-def]
            evaluated.append(own_id)
            return decide(members, own_id, *args)

        monkeypatch.setattr(election_module, "decide", counting_decide)
        await asyncio.sleep(5.0)  # 20 ticks of idle, virtual time
        assert evaluated == []
        assert all(e.leader is None for e in mesh.elections)
        mesh.nodes[1].update_record(tags={"seen": "yes"})
        await wait_until(lambda: mesh.elections[0].node_id in evaluated, 2,
                         "a view change evaluated")
        await mesh.stop()

    run_virtual(scenario())
