"""SessionManager's choice of when to dial, without sockets."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from meshagent import sessions
from meshagent.sessions import PeerCandidate, SessionManager


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(sessions.time, "monotonic", clock)
    return clock


def _manager() -> SessionManager:
    return SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                          candidates=list, on_up=print, on_down=print, on_frames=print,
                          settle=0.25, settle_max=2.0, spread_per_change=0.0)


def test_dials_wait_until_the_view_has_been_quiet(clock: _Clock) -> None:
    manager = _manager()
    assert not manager._settling(clock.now)  # nothing happened yet
    manager.view_changed()
    assert manager._settling(clock.now)
    clock.now += 0.2
    assert manager._settling(clock.now)
    clock.now += 0.1
    assert not manager._settling(clock.now)


def test_a_long_burst_of_news_delays_dials_at_most_settle_max(clock: _Clock) -> None:
    manager = _manager()
    settling = []
    for _ in range(40):  # news every 0.1 s for 4 s: never quiet
        manager.view_changed()
        settling.append(manager._settling(clock.now))
        clock.now += 0.1
    assert all(settling[:20]) and not any(settling[21:])


async def test_a_burst_of_news_is_looked_at_per_settle_not_per_change(clock: _Clock) -> None:
    """Each look at the candidates is O(members), and a mass join brings every member a
    change per member: nothing is looked at while the burst lasts, once when it has
    settled."""
    looks: list[int] = []

    def candidates() -> list:
        looks.append(1)
        return []

    manager = SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                             candidates=candidates, on_up=print, on_down=print,
                             on_frames=print, settle=0.25, settle_max=2.0,
                             spread_per_change=0.0)
    task = asyncio.create_task(manager._maintain())
    for _ in range(30):  # thirty changes within 30 ms
        manager.view_changed()
        clock.now += 0.001
        for _ in range(3):
            await asyncio.sleep(0)  # let the maintenance loop run if it was woken
    assert looks == []
    clock.now += 0.3  # quiet for a settle interval
    manager._dial_wanted()
    assert len(looks) == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_urgent_dials_also_wait_while_the_view_settles(clock: _Clock) -> None:
    """In a mass join every member is unrouted (no session exists yet): dialling them all
    as urgent during the join was the handshake storm that slowed it. Once the view is
    quiet the urgent member is dialled first."""
    urgent = PeerCandidate(b"\xee" * 16, (("127.0.0.9", 7946),), urgent=True)
    dialled: list[bytes] = []

    async def dial(candidate: PeerCandidate) -> None:
        dialled.append(candidate.node_id)

    manager = SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                             candidates=lambda: [urgent], on_up=print, on_down=print,
                             on_frames=print, settle=0.25, settle_max=2.0,
                             spread_per_change=0.0)
    manager._dial = dial  # type: ignore[method-assign]
    manager.view_changed()
    manager._dial_wanted()
    await asyncio.sleep(0)
    assert dialled == [] and not manager._dialling
    clock.now += 0.3
    manager._dial_wanted()
    await asyncio.sleep(0)
    assert dialled == [urgent.node_id]


@pytest.mark.parametrize(("changes", "spread"), [(50, 1.0), (1, 0.02), (500, 2.0)])
def test_first_dials_after_a_burst_are_spread_by_its_size(
        clock: _Clock, monkeypatch: pytest.MonkeyPatch, changes: int, spread: float) -> None:
    """Members of a mass join settle together; dialling together they saturated the
    CPUs. Each waits a random part (here half) of 0.04 s per change the burst brought,
    at most 4 s; one member joining brings a change or two."""
    monkeypatch.setattr(sessions.random, "random", lambda: 0.5)
    manager = SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                             candidates=list, on_up=print, on_down=print, on_frames=print,
                             settle=0.25, settle_max=100.0)
    for _ in range(changes):
        manager.view_changed()
        assert manager._settling(clock.now)
        clock.now += 0.001
    clock.now += 0.25  # quiet for a settle interval
    assert manager._settling(clock.now)
    clock.now += spread - 0.01
    assert manager._settling(clock.now)
    assert manager._next_look() == pytest.approx(0.01)  # looks again when the wait ends
    clock.now += 0.02
    assert not manager._settling(clock.now)
    manager.view_changed()  # the next burst is measured on its own: one change
    assert manager._settling(clock.now)
    clock.now += 0.26
    assert manager._settling(clock.now)
    clock.now += 0.03
    assert not manager._settling(clock.now)


def test_a_peer_reporting_a_different_view_keeps_the_view_settling(clock: _Clock) -> None:
    """The agent calls ``view_differs`` for every differing digest a peer gossips (news
    still spreading), so dials wait for the mesh to agree, not only for our own view to
    stop changing, and still at most ``settle_max``."""
    manager = _manager()
    manager.view_changed()  # our view changed once
    settling = []
    for _ in range(30):  # then peers' digests differ every 0.1 s for 3 s
        clock.now += 0.1
        settling.append(manager._settling(clock.now))
        manager.view_differs()
    assert all(settling[:19]) and not any(settling[20:])


def test_differing_views_do_not_stretch_the_spread_of_first_dials(
        clock: _Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spread counts our view's changes only: one member joined (one change), while
    forty gossip datagrams carried digests that differed from ours. The first dial waits
    half of 0.04 s, not half of 1.64 s."""
    monkeypatch.setattr(sessions.random, "random", lambda: 0.5)
    manager = SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                             candidates=list, on_up=print, on_down=print, on_frames=print,
                             settle=0.25, settle_max=100.0)
    manager.view_changed()
    for _ in range(40):
        manager.view_differs()
        assert manager._settling(clock.now)
        clock.now += 0.001
    clock.now += 0.25  # quiet for a settle interval: the spread begins
    assert manager._settling(clock.now)
    clock.now += 0.03
    assert not manager._settling(clock.now)


def test_an_unrouted_member_keeps_the_dial_check_ticking(clock: _Clock) -> None:
    """A member routing cannot reach becomes urgent after a grace time; until then the
    upkeep loop must keep looking at the short tick, not the keepalive's."""
    unrouted = PeerCandidate(b"\xee" * 16, (("127.0.0.9", 7946),), urgent=False)
    routed = PeerCandidate(b"\x01" * 16, (("127.0.0.8", 7946),), urgent=False)
    offered = [routed]
    manager = SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                             candidates=lambda: offered, on_up=print, on_down=print,
                             on_frames=print, is_unrouted=lambda peer: peer == unrouted.node_id,
                             max_peers=0)
    manager._dial_wanted()
    assert not manager._dials_waiting  # nothing that time could change
    offered.append(unrouted)
    manager._dial_wanted()
    assert manager._dials_waiting


def test_a_burst_longer_than_settle_max_is_still_looked_at_every_settle(
        clock: _Clock) -> None:
    """Changes during a burst do not wake the upkeep loop, so it must keep its short look
    for as long as the burst lasts, also once dials no longer wait for it to end."""
    manager = _manager()
    manager._dials_waiting = False  # every member routed, nothing backing off
    assert manager._next_look() == manager.keepalive / 4
    for _ in range(40):  # news every 0.1 s for 4 s: past settle_max (2 s)
        manager.view_changed()
        manager._dial_wanted()
        clock.now += 0.1
    assert not manager._settling(clock.now - 0.1)
    assert manager._next_look() == manager.settle
    clock.now += 1.0  # quiet: the burst is over
    manager._dial_wanted()
    assert manager._next_look() == manager.keepalive / 4


class _FakeSession:
    def __init__(self, peer_id: bytes) -> None:
        self.peer_id = peer_id
        self.closed: str | None = None

    def close(self, reason: str) -> None:
        self.closed = reason


def _full_manager(has_alternative, max_peers: int = 2) -> tuple[SessionManager, list]:
    manager = SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                             candidates=list, on_up=print, on_down=print, on_frames=print,
                             is_unrouted=lambda peer: peer == b"\xee" * 16,
                             has_alternative=has_alternative, max_peers=max_peers)
    peers = [_FakeSession(bytes([index]) * 16) for index in range(1, max_peers + 1)]
    manager.sessions = {session.peer_id: session for session in peers}
    return manager, peers


def test_room_for_an_unrouted_newcomer_prefers_a_peer_reached_another_way(clock: _Clock) -> None:
    manager, (first, second) = _full_manager(lambda peer: peer == b"\x02" * 16)
    assert manager._make_room(b"\xee" * 16)
    assert (first.closed, second.closed) == (None, "evicted")


def test_a_cycle_that_hides_every_alternative_still_makes_room_for_a_split_off_part(
        clock: _Clock) -> None:
    # In a cycle of five or more, routing shows no alternative for any peer; without a
    # fallback the dialled node refuses the other part of the mesh forever.
    manager, peers = _full_manager(lambda peer: False)
    assert manager._make_room(b"\xee" * 16)
    assert sum(session.closed == "evicted" for session in peers) == 1


def test_a_routed_newcomer_evicts_nothing_and_evictions_are_rate_limited(clock: _Clock) -> None:
    manager, peers = _full_manager(lambda peer: False)
    assert not manager._make_room(b"\x07" * 16)  # reachable through the mesh already
    assert all(session.closed is None for session in peers)
    assert manager._make_room(b"\xee" * 16)
    assert not manager._make_room(b"\xee" * 16)  # again at once: refused, not a storm


def test_dialling_out_never_cuts_a_session_without_an_alternative(clock: _Clock) -> None:
    manager, peers = _full_manager(lambda peer: False)
    assert not manager._evict()
    assert all(session.closed is None for session in peers)
