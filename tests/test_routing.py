"""Distance-vector routing over in-memory links: routes, relaying, loop freedom, repair."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import deque
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagent import codec
from meshagent.core import Frame
from meshagent.routing import (
    FIRST_FREE_CHANNEL,
    METRIC_INFINITY,
    ROUTING_CHANNEL,
    UPDATE_DELAY_S,
    Message,
    MessageTooLarge,
    NoEcho,
    NoRoute,
    Router,
    RouteView,
    seqno_newer,
)
from tests.mesh.meshkit import run_virtual

APP = FIRST_FREE_CHANNEL


def node_id(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()[:16]


class Link:
    """One direction of an in-memory session: frames arrive one loop turn later."""

    def __init__(self, net: Net, src: Router, dst: Router) -> None:
        self.net, self.src, self.dst = net, src, dst
        self.up = True

    @property
    def peer_id(self) -> bytes:
        return self.dst.node_id

    def send_frames(self, frames: Sequence[Frame]) -> None:
        if self.up:
            self.net.pending += 1
            asyncio.get_running_loop().call_soon(self._arrive, list(frames))

    def _arrive(self, frames: list[Frame]) -> None:
        self.net.pending -= 1
        if self.up:
            self.dst.receive(self.src.node_id, frames)
            self.net.after_delivery()


class Net:
    """Routers joined by links that can be cut and healed; checks invariants as it runs."""

    def __init__(self, names: Sequence[str], *, max_hops: int = 16,
                 check_loops: bool = False) -> None:
        self.routers = {name: Router(node_id(name), max_hops=max_hops) for name in names}
        self.names = {r.node_id: name for name, r in self.routers.items()}
        self.links: dict[tuple[str, str], Link] = {}
        self.pending = 0
        self.check_loops = check_loops
        self.inbox: dict[str, list[Message]] = {name: [] for name in names}
        for name, router in self.routers.items():
            router.on_message(APP, self.inbox[name].append)

    def __getitem__(self, name: str) -> Router:
        return self.routers[name]

    def connect(self, a: str, b: str) -> None:
        ab = Link(self, self[a], self[b])
        ba = Link(self, self[b], self[a])
        self.links[a, b], self.links[b, a] = ab, ba
        self[a].attach(ab)
        self[b].attach(ba)

    def cut(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            link = self.links.pop((x, y))
            link.up = False
            self[x].detach(self[y].node_id, link)

    def isolate(self, name: str) -> None:
        for a, b in list(self.links):
            if a == name:
                self.cut(a, b)

    async def settle(self) -> None:
        """Run the loop until no frame is in flight and no router has updates queued
        (waiting out the delay of batched good news)."""
        for _ in range(100_000):
            await asyncio.sleep(0)
            if self.pending:
                continue
            if not any(r.updates_pending for r in self.routers.values()):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("routing did not settle")

    def after_delivery(self) -> None:
        if self.check_loops:
            assert_loop_free(self)

    def next_hop_name(self, src: str, dst: str) -> str | None:
        route = self[src].route_to(self[dst].node_id)
        return self.names[route.next_hop] if route else None

    def shortest(self, src: str) -> dict[str, int]:
        """Hop counts by breadth-first search over the links that are up."""
        dist = {src: 0}
        queue = deque([src])
        while queue:
            here = queue.popleft()
            for a, b in self.links:
                if a == here and b not in dist:
                    dist[b] = dist[here] + 1
                    queue.append(b)
        return dist


def assert_loop_free(net: Net) -> None:
    """Following selected next hops toward any destination never revisits a node."""
    for dst in net.routers:
        for src in net.routers:
            seen = {src}
            here = src
            while here != dst:
                nxt = net.next_hop_name(here, dst)
                if nxt is None:
                    break
                assert nxt not in seen, f"loop toward {dst} through {here}->{nxt}"
                seen.add(nxt)
                here = nxt


async def test_line_relays_through_the_middle() -> None:
    net = Net("abc")
    net.connect("a", "b")
    net.connect("b", "c")
    await net.settle()
    route = net["a"].route_to(net["c"].node_id)
    assert route is not None and route.next_hop == net["b"].node_id and route.metric == 2
    net["a"].send(net["c"].node_id, APP, b"hello")
    await net.settle()
    assert [(m.src, m.payload, m.hops) for m in net.inbox["c"]] == [
        (net["a"].node_id, b"hello", 2)]
    assert net["b"].counters["forwarded"] == 1


async def test_two_subnets_joined_by_a_dual_homed_member() -> None:
    net = Net(["a1", "a2", "a3", "m", "b1", "b2", "b3"])
    for subnet in (["a1", "a2", "a3", "m"], ["m", "b1", "b2", "b3"]):
        for x, y in itertools.combinations(subnet, 2):
            net.connect(x, y)
    await net.settle()
    for a, b in itertools.product(["a1", "a2", "a3"], ["b1", "b2", "b3"]):
        assert net.next_hop_name(a, b) == "m"
        assert net[a].route_to(net[b].node_id).metric == 2
        net[a].send(net[b].node_id, APP, a.encode())
        net[b].send(net[a].node_id, APP, b.encode())
    await net.settle()
    assert sorted(m.payload for m in net.inbox["b2"]) == [b"a1", b"a2", b"a3"]
    assert sorted(m.payload for m in net.inbox["a3"]) == [b"b1", b"b2", b"b3"]


async def test_cut_link_reroutes_around_it() -> None:
    net = Net("abcd", check_loops=True)
    for x, y in ["ab", "bc", "cd", "da"]:
        net.connect(x, y)
    await net.settle()
    assert net.next_hop_name("a", "c") in ("b", "d")
    first = net.next_hop_name("a", "c")
    net.cut("a", first)
    await net.settle()
    other = "d" if first == "b" else "b"
    assert net.next_hop_name("a", "c") == other
    net["a"].send(net["c"].node_id, APP, b"around")
    await net.settle()
    assert [m.payload for m in net.inbox["c"]] == [b"around"]


async def test_departed_node_is_withdrawn_everywhere() -> None:
    net = Net("abcde", check_loops=True)
    for x, y in ["ab", "bc", "cd", "de", "ea", "ac"]:
        net.connect(x, y)
    await net.settle()
    net.isolate("c")
    await net.settle()
    for name in "abde":
        assert net[name].route_to(net["c"].node_id) is None
        with pytest.raises(NoRoute):
            net[name].send(net["c"].node_id, APP, b"x")
    # No counting to infinity: a handful of updates, not one per metric step.
    assert sum(r.counters["updates_sent"] for r in net.routers.values()) < 200


async def test_unfeasible_alternative_is_unlocked_by_a_seqno_request() -> None:
    # a-b-d is the short way; a-c-e-d the long one. When b-d breaks, a's only route
    # (via c, advertised metric 2) is not below a's feasibility distance (2): a asks d
    # for a newer seqno, and switches once it arrives.
    net = Net("abcde", check_loops=True)
    for x, y in ["ab", "bd", "ac", "ce", "ed"]:
        net.connect(x, y)
    await net.settle()
    assert net.next_hop_name("a", "d") == "b"
    seqno_before = net["d"].seqno
    net.cut("b", "d")
    await net.settle()
    route = net["a"].route_to(net["d"].node_id)
    assert route is not None and net.names[route.next_hop] == "c" and route.metric == 3
    assert seqno_newer(net["d"].seqno, seqno_before)
    assert sum(r.counters["requests_sent"] for r in net.routers.values()) >= 1


async def test_routes_longer_than_the_hop_limit_are_not_kept() -> None:
    net = Net("abcd", max_hops=2)
    for x, y in ["ab", "bc", "cd"]:
        net.connect(x, y)
    await net.settle()
    assert net["a"].route_to(net["c"].node_id) is not None
    assert net["a"].route_to(net["d"].node_id) is None
    with pytest.raises(NoRoute):
        net["a"].send(net["d"].node_id, APP, b"too far")


async def test_frame_whose_hop_limit_runs_out_is_dropped() -> None:
    net = Net("abc")
    net.connect("a", "b")
    net.connect("b", "c")
    await net.settle()
    spent = Frame(type=1, flags=0, src=net["a"].node_id, dst=net["c"].node_id, hop_limit=1,
                  channel=APP, seq=1, payload=b"late")
    net["b"].receive(net["a"].node_id, [spent])
    await net.settle()
    assert net.inbox["c"] == []
    assert net["b"].counters["dropped_hop_limit"] == 1


async def test_restarted_node_with_an_older_seqno_is_reachable_again() -> None:
    net = Net("abc")
    net.connect("a", "b")
    net.connect("b", "c")
    await net.settle()
    net.isolate("c")
    await net.settle()
    restarted = Router(net["c"].node_id, initial_seqno=(net["c"].seqno - 1000) % (1 << 32))
    restarted.on_message(APP, net.inbox["c"].append)
    net.routers["c"] = restarted
    net.connect("b", "c")
    await net.settle()
    assert net["a"].route_to(restarted.node_id) is not None
    net["a"].send(restarted.node_id, APP, b"welcome back")
    await net.settle()
    assert [m.payload for m in net.inbox["c"]] == [b"welcome back"]


async def test_malformed_routing_messages_are_counted_and_ignored() -> None:
    net = Net("ab")
    net.connect("a", "b")
    await net.settle()
    bad_payloads = [b"\xc1", codec.pack("x"), codec.pack([1, [[b"short", 1, 1]]]),
                    codec.pack([1, [[node_id("z"), -1, 1]]]),
                    codec.pack([1, [[node_id("z"), 1, METRIC_INFINITY + 1]]]),
                    codec.pack([9]), codec.pack([2, node_id("z"), 1, 999])]
    frames = [Frame(type=1, flags=0, src=net["b"].node_id, dst=net["a"].node_id, hop_limit=1,
                    channel=ROUTING_CHANNEL, seq=i, payload=p)
              for i, p in enumerate(bad_payloads)]
    net["a"].receive(net["b"].node_id, frames)
    assert net["a"].counters["malformed"] == len(bad_payloads)
    assert net["a"].route_to(net["b"].node_id) is not None
    assert net["a"].route_to(node_id("z")) is None


async def test_routes_expire_when_no_longer_refreshed() -> None:
    now = [1000.0]
    a = Router(node_id("a"), clock=lambda: now[0], hold_time=10.0, update_interval=3.0)
    b = Router(node_id("b"), clock=lambda: now[0])
    net = Net([])
    net.routers = {"a": a, "b": b}
    net.names = {a.node_id: "a", b.node_id: "b"}
    net.connect("a", "b")
    await net.settle()
    assert a.route_to(b.node_id) is not None
    net.links["b", "a"].up = False  # b goes silent without the session closing
    now[0] += 11
    a.expire()
    assert b.node_id not in {r.node_id for r in a.routes()}


async def test_ping_measures_a_round_trip_through_a_relay() -> None:
    net = Net("abc")
    net.connect("a", "b")
    net.connect("b", "c")
    await net.settle()
    rtt = await net["a"].ping(net["c"].node_id, timeout=5)
    assert 0 <= rtt < 5


async def test_ping_without_a_route_back_is_a_typed_no_echo() -> None:
    net = Net("abc")
    net.connect("a", "b")
    net.connect("b", "c")
    await net.settle()
    # c loses its session to b while b still reaches c: a's echo arrives, its reply cannot go.
    net["c"].detach(net["b"].node_id, net.links["c", "b"])
    assert net["c"].route_to(net["a"].node_id) is None
    dropped = net["c"].counters["dropped_no_route"]
    with pytest.raises(NoEcho, match=net["c"].node_id.hex()):
        await net["a"].ping(net["c"].node_id, timeout=0.2)
    assert net["c"].counters["dropped_no_route"] == dropped + 1


async def test_oversize_message_is_refused_before_sending() -> None:
    net = Net("ab")
    net.connect("a", "b")
    with pytest.raises(MessageTooLarge):
        net["a"].send(net["b"].node_id, APP, bytes(1 << 17))


async def test_message_to_self_goes_to_the_hook() -> None:
    net = Net("a")
    net["a"].send(net["a"].node_id, APP, b"me")
    await net.settle()
    assert [(m.payload, m.hops) for m in net.inbox["a"]] == [(b"me", 0)]


def test_reserved_channels_cannot_be_hooked() -> None:
    router = Router(node_id("a"))
    with pytest.raises(ValueError):
        router.on_message(ROUTING_CHANNEL, print)


_EDGES = list(itertools.combinations("abcdef", 2))


@settings(max_examples=40, deadline=None)
@given(initial=st.sets(st.sampled_from(_EDGES), min_size=3),
       changes=st.lists(st.sampled_from(_EDGES), min_size=1, max_size=8))
def test_random_topology_changes_stay_loop_free_and_converge_to_shortest_paths(
        initial: set[tuple[str, str]], changes: list[tuple[str, str]]) -> None:
    async def scenario() -> None:
        net = Net("abcdef", check_loops=True)
        for x, y in sorted(initial):
            net.connect(x, y)
        await net.settle()
        for x, y in changes:  # toggle each link in turn
            if (x, y) in net.links:
                net.cut(x, y)
            else:
                net.connect(x, y)
            await net.settle()
        for src in net.routers:
            dist = net.shortest(src)
            for dst in net.routers:
                if dst == src:
                    continue
                route = net[src].route_to(net[dst].node_id)
                if dst in dist:
                    assert route is not None, f"{src} has no route to {dst}"
                    assert route.metric == dist[dst], f"{src}->{dst}"
                else:
                    assert route is None, f"{src} keeps a route to unreachable {dst}"

    run_virtual(scenario())  # the batching delay of good news passes in virtual time


async def test_repeated_offer_from_a_backup_neighbour_keeps_the_backup_alive() -> None:
    """A neighbour we do not route through repeats the same offer (full tables): it only
    refreshes that offer, which must still be there, unexpired, when the next hop fails."""
    now = [1000.0]
    names = "axyc"
    routers = {name: Router(node_id(name), clock=lambda: now[0], hold_time=10.0,
                            update_interval=3.0) for name in names}
    net = Net([])
    net.routers = routers
    net.names = {r.node_id: name for name, r in routers.items()}
    for left, right in (("a", "x"), ("a", "y"), ("x", "c"), ("y", "c")):
        net.connect(left, right)
    await net.settle()
    a, c = routers["a"], routers["c"]
    first = a.route_to(c.node_id)
    assert first is not None and first.metric == 2
    backup = "y" if first.next_hop == routers["x"].node_id else "x"
    for _ in range(4):  # 12 s: past the hold time, refreshed by full tables only
        now[0] += 3
        for router in routers.values():
            router.advertise()
        await net.settle()
        a.expire()
    assert a.route_to(c.node_id) == first  # the same choice all along
    via = net.names[first.next_hop]
    net.links["a", via].up = net.links[via, "a"].up = False
    a.detach(first.next_hop)
    route = a.route_to(c.node_id)
    assert route is not None and route.next_hop == routers[backup].node_id


class Recorder:
    """A session that keeps what the router sends on it."""

    def __init__(self, peer: bytes) -> None:
        self.peer_id = peer
        self.frames: list[Frame] = []

    def send_frames(self, frames: Sequence[Frame]) -> None:
        self.frames.extend(frames)

    def updates(self) -> list[list[list[object]]]:
        """The entries of each routing update sent, one list per message."""
        messages = [codec.unpack(frame.payload, 1 << 16) for frame in self.frames
                    if frame.channel == ROUTING_CHANNEL]
        return [message[1] for message in messages if message[0] == 1]


def routing_frame(src: bytes, dst: bytes, entries: list[list[object]]) -> Frame:
    return Frame(type=1, flags=0, src=src, dst=dst, hop_limit=1, channel=ROUTING_CHANNEL,
                 seq=1, payload=codec.pack([1, entries]))


def router_with_neighbours(count: int) -> tuple[Router, Recorder, list[bytes]]:
    """Router "a" with a watching neighbour "w" and ``count`` neighbours whose sessions
    have come up but who have not advertised themselves yet."""
    a = Router(node_id("a"))
    watcher = Recorder(node_id("w"))
    a.attach(watcher)
    peers = [node_id(f"p{index}") for index in range(count)]
    for peer in peers:
        a.attach(Recorder(peer))
    watcher.frames.clear()
    return a, watcher, peers


def test_news_from_many_sessions_leaves_as_one_update_per_neighbour() -> None:
    async def scenario() -> None:
        a, watcher, peers = router_with_neighbours(10)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for peer in peers:  # one advertisement per loop turn, as sessions come up
            a.receive(peer, [routing_frame(peer, a.node_id, [[peer, 7, 0]])])
            await asyncio.sleep(0)
        assert len(a.routes()) == 10 and watcher.frames == []  # installed, not yet told
        while a.updates_pending:
            await asyncio.sleep(UPDATE_DELAY_S / 10)
        assert loop.time() - start <= UPDATE_DELAY_S * 1.5
        updates = watcher.updates()
        assert len(updates) == 1
        assert sorted(entry[0] for entry in updates[0]) == sorted(peers)
        assert all(entry[2] == 1 for entry in updates[0])
        await a.stop()

    run_virtual(scenario())


def test_withdrawal_goes_at_once_and_takes_waiting_news_along() -> None:
    async def scenario() -> None:
        a, watcher, peers = router_with_neighbours(3)
        a.update_delay = 3600.0  # good news alone would wait an hour
        loop = asyncio.get_running_loop()
        start = loop.time()
        for peer in peers[:2]:
            a.receive(peer, [routing_frame(peer, a.node_id, [[peer, 7, 0]])])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert watcher.frames == [] and a.updates_pending
        a.receive(peers[2], [routing_frame(peers[2], a.node_id, [[peers[2], 7, 0]])])
        a.detach(peers[0])  # a session closes: its route is withdrawn
        while a.updates_pending:
            await asyncio.sleep(0)
        assert loop.time() == start  # no time passed: nothing waited for the delay
        (update,) = watcher.updates()
        sent = {bytes(entry[0]): entry[2] for entry in update}
        assert sent == {peers[0]: METRIC_INFINITY, peers[1]: 1, peers[2]: 1}
        await a.stop()

    run_virtual(scenario())


def test_failures_and_seqno_requests_do_not_wait_for_the_batching_delay() -> None:
    # The seqno scenario above, with good news held back for an hour once the mesh has
    # converged: the withdrawal, the request and its answer all travel at once.
    async def scenario() -> None:
        net = Net("abcde", check_loops=True)
        for x, y in ["ab", "bd", "ac", "ce", "ed"]:
            net.connect(x, y)
        await net.settle()
        for router in net.routers.values():
            router.update_delay = 3600.0
        seqno_before = net["d"].seqno
        start = asyncio.get_running_loop().time()
        net.cut("b", "d")
        await asyncio.sleep(1.0)  # virtual: every update sent at once has been delivered
        route = net["a"].route_to(net["d"].node_id)
        assert route is not None and net.names[route.next_hop] == "c" and route.metric == 3
        assert net["b"].route_to(net["d"].node_id) is not None
        assert seqno_newer(net["d"].seqno, seqno_before)
        assert asyncio.get_running_loop().time() - start < 2.0
        for router in net.routers.values():
            await router.stop()

    run_virtual(scenario())


_OFFER = st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3),
                   st.sampled_from([0, 1, 2, 3, 5, METRIC_INFINITY]), st.integers(0, 4))


@settings(max_examples=200, deadline=None)
@given(st.lists(_OFFER, min_size=1, max_size=60))
def test_offers_taken_without_reselection_choose_what_reselection_would(
        offers: list[tuple[int, int, int, int, int]]) -> None:
    """The shortcuts for backup offers no better than the route and for our next hop
    repeating itself choose exactly what a full reselection would, offer after offer
    (seqnos, retractions, links going down, hold times lapsing included)."""
    now = [1000.0]
    fast = Router(node_id("a"), clock=lambda: now[0], hold_time=10.0)
    full = Router(node_id("a"), clock=lambda: now[0], hold_time=10.0)
    full._route_stands = lambda *_: False  # type: ignore[method-assign]
    neighbours = [node_id(f"n{index}") for index in range(4)]
    origins = [node_id(f"o{index}") for index in range(3)]
    for router in (fast, full):
        for neighbour in neighbours:
            router.attach(Recorder(neighbour))
    for neighbour, origin, seqno, metric, event in offers:
        for router in (fast, full):
            if event == 4 and neighbours[neighbour] in router.neighbours:
                router.detach(neighbours[neighbour])
            elif neighbours[neighbour] in router.neighbours:
                router.receive(neighbours[neighbour], [routing_frame(
                    neighbours[neighbour], router.node_id,
                    [[origins[origin], seqno, metric]])])
        if event == 3:
            now[0] += 4.0  # offers lapse after two of these without a refresh
            fast.expire()
            full.expire()
        assert {o: fast.route_to(o) for o in origins} == \
            {o: full.route_to(o) for o in origins}


def test_backup_and_repeated_offers_skip_reselection() -> None:
    """In a full table most offers are backups no better than the route, or our next hop
    repeating itself: neither needs the candidates scanned again."""
    now = [1000.0]
    a = Router(node_id("a"), clock=lambda: now[0], hold_time=10.0)
    x, y, c = node_id("x"), node_id("y"), node_id("c")
    a.attach(Recorder(x))
    a.attach(Recorder(y))
    a.receive(x, [routing_frame(x, a.node_id, [[c, 7, 1]])])
    assert a.route_to(c) == RouteView(c, x, 2, 7)
    scans: list[bytes] = []
    reselect = a._reselect
    a._reselect = lambda origin: (scans.append(origin), reselect(origin))  # type: ignore
    a.receive(y, [routing_frame(y, a.node_id, [[c, 7, 1]])])  # as good: the route stays
    now[0] += 5
    a.receive(x, [routing_frame(x, a.node_id, [[c, 7, 1]])])  # the next hop again
    assert scans == []
    assert a.counters["offers_kept_as_backup"] == 1 and a.counters["routes_refreshed"] == 1
    now[0] += 6  # past the first offers' hold time: the refresh kept the route
    a.expire()  # y's lapsed backup offer goes (a reselection, as expiry always made)
    assert a.route_to(c) == RouteView(c, x, 2, 7)
    scans.clear()
    a.receive(y, [routing_frame(y, a.node_id, [[c, 7, 0]])])  # better: reselected
    assert scans == [c] and a.route_to(c) == RouteView(c, y, 1, 7)
