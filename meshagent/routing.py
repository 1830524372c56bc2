"""Routes to every member over peer sessions, and multi-hop delivery along them.

Each agent holds sessions with a bounded set of peers (``meshagent.sessions``); this module
makes every other member reachable through them. It runs a distance-vector protocol in the
manner of Babel (RFC 8966), over the sessions' frames, and installs the chosen routes into
the C routing table (``core.RouteTable``), which the forwarding path reads.

Protocol (channel ``ROUTING_CHANNEL``, one hop only: never forwarded)::

    update   [1, [[origin: 16 B, seqno: u32, metric: u16], ...]]
    request  [2, origin: 16 B, seqno: u32, hops_left: u8]      (seqno request)

- Every node originates a route to itself with metric 0 and a sequence number ``seqno`` that
  only it increases. It starts from the wall clock in seconds, so that a restarted node comes
  back with a newer number than the one its peers remember.
- The metric is a hop count: a route learned from neighbour N that advertises metric m costs
  m + 1. Routes longer than ``max_hops`` are not used; ``METRIC_INFINITY`` is a withdrawal.
- Loop freedom is Babel's feasibility condition: for each origin the node remembers the
  best (seqno, metric) it has itself advertised (its feasibility distance, FD). An update
  (s, m) may be selected only if s is newer than FD's seqno, or equal with m < FD's metric.
  When only unfeasible routes remain, the node asks for a newer seqno with a request that
  travels toward the origin; the origin answers with an update carrying a bumped seqno.
- Updates: a full table to every neighbour each ``update_interval`` (with jitter), and a
  triggered update for every origin whose route changed or was lost. What takes something
  away or answers a question goes at once (coalesced within one event-loop turn): a
  retraction, a longer metric, a newer seqno (the answer to a seqno request on its way
  back), a change of next hop at the same metric (the old one failed). What only offers
  something better (a route to an origin we had none to, a shorter one at the same seqno)
  waits up to ``update_delay`` so that the changes of many sessions coming up leave as
  one update per neighbour; an urgent update takes the waiting ones along. Delaying good
  news cannot form a loop (the feasibility condition holds whatever the delays) and
  failures never wait. Routes whose next hop is the receiving neighbour are advertised as
  unreachable (poison reverse). A route not refreshed within ``hold_time`` expires; a
  neighbour whose session closes takes all its routes with it at once. Sessions are
  reliable and ordered (TCP), so a triggered update is never lost and the periodic table
  is only a safety net: the defaults (30 s, 120 s) keep it to about 1 KB/s per agent
  with 20 peers at N = 50.

Data (any other channel): ``Frame(src, dst, hop_limit, channel, payload)``. A node that is not
the destination decrements the hop limit and forwards along its route; at zero the frame is
dropped and counted. Frames received from one session are forwarded as one batch per next
hop. ``Router.send`` is the entry point for upper layers; ``Router.on_message(channel, fn)``
registers the receive hook of a channel.

Channels: 0 belongs to the session layer (keepalive, goodbye), 1 to routing, 2 to the echo
service below; 16 and up are free for upper layers, each taking a named constant in its own
module (``channel`` 16+ is never interpreted here).

Concurrency: every method runs on the event loop thread; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from meshagent import codec
from meshagent.core import (
    MAX_FRAME_PAYLOAD,
    METRIC_INFINITY,
    NO_NEXT_HOP,
    NODE_ID_BYTES,
    Frame,
    RouteTable,
    RouteTableFull,
    seq_newer,
)
from meshagent.errors import DecodeError, MeshError
from meshagent.log import get_logger
from meshagent.sessions import SESSION_CHANNEL, SESSION_FRAME_TYPE

__all__ = [
    "Router", "NeighbourLink", "Message", "RouteView", "RoutingError", "NoRoute",
    "MessageTooLarge", "ROUTING_CHANNEL", "ECHO_CHANNEL", "FIRST_FREE_CHANNEL",
    "METRIC_INFINITY", "seqno_newer",
]

log = get_logger(__name__)

ROUTING_CHANNEL = 1
ECHO_CHANNEL = 2
FIRST_FREE_CHANNEL = 16

SEQNO_MODULUS = 1 << 32

_UPDATE = 1
_REQUEST = 2
_ECHO_REQUEST = 0
_ECHO_REPLY = 1

# A source-table entry outlives any route it protected: Babel's 3 minutes.
SOURCE_GC_S = 180.0
# The same seqno request is not repeated to the same neighbour sooner than this.
REQUEST_INTERVAL_S = 1.0
# How long good news (a new or shorter route) may wait for more to join its update.
UPDATE_DELAY_S = 0.05
# Encoded size bound of one update entry: array(1) + bin16(18) + u32(5) + u16(3).
_ENTRY_BYTES = 27
_ENTRIES_PER_FRAME = max(1, (MAX_FRAME_PAYLOAD - 16) // _ENTRY_BYTES)


class RoutingError(MeshError):
    """A message could not be routed."""


class NoRoute(RoutingError):
    """No session and no route leads to the destination."""


class MessageTooLarge(RoutingError):
    """The payload does not fit in one frame."""


class NoEcho(RoutingError):
    """An echo got no reply in time: the destination, or its route back, is missing."""


def seqno_newer(a: int, b: int) -> bool:
    """True if seqno ``a`` is newer than ``b`` modulo 2^32 (RFC 8966 section 3.2.1); the
    same rule as the route table's."""
    return seq_newer(a, b)


class NeighbourLink(Protocol):
    """What the router needs of a peer session: who is at the other end, and a queue."""

    @property
    def peer_id(self) -> bytes: ...

    def send_frames(self, frames: Sequence[Frame]) -> None:
        """Queue frames for sending, without blocking; drop them if the session is gone."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message delivered to an upper layer's channel hook."""

    src: bytes
    channel: int
    payload: bytes
    hops: int  # links travelled (1 = from a direct neighbour, 0 = from this node)


@dataclass(frozen=True, slots=True)
class RouteView:
    """A selected route, as shown by ``meshctl nodes`` and the control socket."""

    node_id: bytes
    next_hop: bytes
    metric: int
    seqno: int

    @property
    def direct(self) -> bool:
        return self.node_id == self.next_hop


@dataclass(slots=True)
class _Candidate:
    """A route to an origin as advertised by one neighbour."""

    seqno: int
    metric: int  # as advertised; ours through this neighbour is metric + 1
    expires: float


@dataclass(slots=True)
class _Source:
    """Feasibility distance for an origin: the best (seqno, metric) we advertised."""

    seqno: int
    metric: int
    last_used: float


MessageHandler = Callable[[Message], None]


class Router:
    """Babel-style distance-vector routing over peer sessions for one node."""

    def __init__(self, node_id: bytes, *, max_hops: int = 16, update_interval: float = 30.0,
                 hold_time: float = 120.0, capacity: int = 4096,
                 clock: Callable[[], float] = time.monotonic,
                 initial_seqno: int | None = None,
                 update_delay: float = UPDATE_DELAY_S) -> None:
        if len(node_id) != NODE_ID_BYTES:
            raise ValueError("node id must be 16 bytes")
        self.node_id = bytes(node_id)
        self.max_hops = max_hops
        self.update_interval = update_interval
        self.hold_time = hold_time
        self.update_delay = update_delay
        self._clock = clock
        self._table = RouteTable(capacity)
        self._capacity = capacity
        self._seqno = (int(time.time()) if initial_seqno is None else initial_seqno) \
            % SEQNO_MODULUS
        self._links: dict[bytes, NeighbourLink] = {}
        self._candidates: dict[bytes, dict[bytes, _Candidate]] = {}
        self._selected: dict[bytes, RouteView] = {}
        self._sources: dict[bytes, _Source] = {}
        self._retracted: dict[bytes, int] = {}  # origin -> seqno of a pending retraction
        self._dirty: set[bytes] = set()
        # The pending triggered update: at the next loop turn (urgent) or after
        # ``update_delay`` (good news only), or None.
        self._flush_handle: asyncio.Handle | None = None
        self._flush_urgent = False
        self._last_request: dict[bytes, dict[tuple[int, bytes, bytes], float]] = {}
        self._handlers: dict[int, MessageHandler] = {}
        self._frame_seq = itertools.count(1)
        self._echo_waiters: dict[bytes, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._route_listeners: list[Callable[[bytes, RouteView | None], None]] = []
        self.counters: dict[str, int] = dict.fromkeys(
            ("delivered", "forwarded", "dropped_hop_limit", "dropped_no_route",
             "dropped_unknown_channel", "malformed", "updates_sent", "requests_sent",
             "offers_kept_as_backup", "routes_refreshed"), 0)
        self._handlers[ECHO_CHANNEL] = self._on_echo

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the periodic updates and expiry; call once, on the loop that will run it."""
        if self._task is None:
            self._task = asyncio.create_task(self._periodic(), name="router-periodic")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for waiter in self._echo_waiters.values():
            waiter.cancel()

    # ------------------------------------------------------------------ sessions

    def attach(self, link: NeighbourLink) -> None:
        """A session to a neighbour is up: exchange full tables at once."""
        self._links[link.peer_id] = link
        self._send_full_update(link)
        if link.peer_id in self._selected or link.peer_id in self._candidates:
            self._reselect(link.peer_id)

    def detach(self, peer_id: bytes, link: NeighbourLink | None = None) -> None:
        """A session closed: forget every route learned through it, now.

        With ``link``, only if it is still the current session to that peer (a replaced
        session closing late must not take the new one's routes).
        """
        if link is not None and self._links.get(peer_id) is not link:
            return
        self._links.pop(peer_id, None)
        affected = [origin for origin, cands in self._candidates.items()
                    if cands.pop(peer_id, None) is not None]
        for origin in affected:
            self._reselect(origin)

    @property
    def neighbours(self) -> list[bytes]:
        return list(self._links)

    # ------------------------------------------------------------------ upper layers

    def on_message(self, channel: int, handler: MessageHandler) -> None:
        """Deliver messages addressed to this node on ``channel`` to ``handler``.

        Handlers run on the event loop and must not block; one handler per channel.
        """
        if channel in (SESSION_CHANNEL, ROUTING_CHANNEL) or not 0 <= channel < 1 << 32:
            raise ValueError(f"channel {channel} is reserved or out of range")
        self._handlers[channel] = handler

    def on_route_change(self, listener: Callable[[bytes, RouteView | None], None]) -> None:
        """Call ``listener(origin, route or None)`` whenever a selected route changes."""
        self._route_listeners.append(listener)

    def send(self, dst: bytes, channel: int, payload: bytes) -> None:
        """Send one message to node ``dst`` over the mesh (best effort, no ack).

        Raises NoRoute when there is no session or route to ``dst``, MessageTooLarge when the
        payload exceeds one frame. Delivery to this node itself goes through the hook.
        """
        self.send_many(dst, channel, [payload])

    def send_many(self, dst: bytes, channel: int, payloads: Sequence[bytes]) -> None:
        """Send several messages to one destination as one batch."""
        if channel == ROUTING_CHANNEL or channel == SESSION_CHANNEL:
            raise ValueError(f"channel {channel} is reserved")
        for payload in payloads:
            if len(payload) > MAX_FRAME_PAYLOAD:
                raise MessageTooLarge(f"{len(payload)} bytes > {MAX_FRAME_PAYLOAD}")
        if dst == self.node_id:
            for payload in payloads:
                asyncio.get_running_loop().call_soon(
                    self._deliver, Message(self.node_id, channel, bytes(payload), 0))
            return
        link = self._link_toward(dst)
        if link is None:
            raise NoRoute(f"no route to {dst.hex()}")
        link.send_frames([self._frame(dst, channel, payload) for payload in payloads])

    async def ping(self, dst: bytes, timeout: float = 2.0) -> float:
        """Round-trip time in seconds of an echo to ``dst`` through the mesh.

        One echo, best effort: NoRoute when there is no way there, NoEcho when no reply
        came within ``timeout`` (``dst`` is gone, or has no route back to this node yet).
        """
        token = os.urandom(8)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._echo_waiters[token] = future
        started = time.perf_counter()
        try:
            self.send(dst, ECHO_CHANNEL, codec.pack_plain([_ECHO_REQUEST, token]))
            async with asyncio.timeout(timeout):
                await future
            return time.perf_counter() - started
        except TimeoutError:
            raise NoEcho(f"no echo from {dst.hex()} within {timeout:g} s") from None
        finally:
            self._echo_waiters.pop(token, None)

    def route_to(self, dst: bytes) -> RouteView | None:
        """The selected route to ``dst``; a session without a route yet counts as direct."""
        route = self._selected.get(dst)
        if route is None and dst in self._links:
            return RouteView(dst, dst, 1, 0)
        return route

    def has_alternative(self, peer: bytes) -> bool:
        """True if a neighbour other than ``peer`` offers a usable route to it (poison
        reverse keeps routes through this node out): dropping the direct session with
        ``peer`` would leave it reachable."""
        now = self._clock()
        return any(neighbour != peer and candidate.expires > now
                   and candidate.metric + 1 <= self.max_hops
                   for neighbour, candidate in self._candidates.get(peer, {}).items())

    def routes(self) -> list[RouteView]:
        return list(self._selected.values())

    @property
    def seqno(self) -> int:
        return self._seqno

    @property
    def updates_pending(self) -> bool:
        """True while a triggered update is scheduled and not sent yet."""
        return self._flush_handle is not None

    # ------------------------------------------------------------------ receive path

    def receive(self, peer_id: bytes, frames: Iterable[Frame]) -> None:
        """Frames that arrived on the session with ``peer_id`` (sessions call this).

        Frames for other nodes are looked up in one call to the table and leave as one
        batch per next hop.
        """
        transit: list[Frame] = []
        for frame in frames:
            if frame.channel == ROUTING_CHANNEL:
                self._on_routing(peer_id, bytes(frame.payload))
            elif frame.channel == SESSION_CHANNEL:
                continue  # the session layer's own business
            elif frame.dst == self.node_id:
                self._deliver(Message(frame.src, frame.channel, bytes(frame.payload),
                                      self.max_hops - frame.hop_limit + 1))
            elif frame.hop_limit <= 1:
                self.counters["dropped_hop_limit"] += 1
                log.warn_limited("frame_hop_limit", key=peer_id, dst=frame.dst.hex(),
                                 src=frame.src.hex())
            else:
                transit.append(frame)
        if transit:
            self._forward(transit)

    def _forward(self, frames: list[Frame]) -> None:
        hops = self._table.next_hops(b"".join(frame.dst for frame in frames))
        outgoing: dict[bytes, list[Frame]] = {}
        for index, frame in enumerate(frames):
            next_hop = frame.dst if frame.dst in self._links else \
                hops[index * NODE_ID_BYTES:(index + 1) * NODE_ID_BYTES]
            if next_hop == NO_NEXT_HOP or next_hop not in self._links:
                self.counters["dropped_no_route"] += 1
                log.warn_limited("frame_no_route", key=frame.dst, dst=frame.dst.hex())
                continue
            outgoing.setdefault(next_hop, []).append(Frame(
                type=frame.type, flags=frame.flags, src=frame.src, dst=frame.dst,
                hop_limit=frame.hop_limit - 1, channel=frame.channel, seq=frame.seq,
                payload=frame.payload))
        for next_hop, batch in outgoing.items():
            self.counters["forwarded"] += len(batch)
            self._links[next_hop].send_frames(batch)

    def _deliver(self, message: Message) -> None:
        handler = self._handlers.get(message.channel)
        if handler is None:
            self.counters["dropped_unknown_channel"] += 1
            log.warn_limited("message_unknown_channel", key=message.channel,
                             channel=message.channel, src=message.src.hex())
            return
        self.counters["delivered"] += 1
        try:
            handler(message)
        except MeshError as exc:
            log.warn_limited("message_rejected", key=message.channel, channel=message.channel,
                             src=message.src.hex(), error=f"{type(exc).__name__}: {exc}")

    def _on_echo(self, message: Message) -> None:
        try:
            kind, token = codec.unpack(message.payload, 64)
            if not isinstance(token, bytes):
                raise DecodeError("echo token is not bytes")
        except (DecodeError, ValueError, TypeError):
            self.counters["malformed"] += 1
            return
        if kind == _ECHO_REQUEST:
            try:
                self.send(message.src, ECHO_CHANNEL, codec.pack_plain([_ECHO_REPLY, token]))
            except RoutingError:
                # No route back yet (routes form one direction at a time): the asker's
                # ping ends in NoEcho; counted here so the asymmetry can be seen.
                self.counters["dropped_no_route"] += 1
        elif kind == _ECHO_REPLY:
            waiter = self._echo_waiters.get(token)
            if waiter is not None and not waiter.done():
                waiter.set_result(0.0)

    def _link_toward(self, dst: bytes) -> NeighbourLink | None:
        link = self._links.get(dst)
        if link is not None:
            return link
        route = self._table.lookup(dst)
        if route is None or not route.reachable:
            return None
        return self._links.get(route.next_hop)

    # ------------------------------------------------------------------ routing protocol

    def _on_routing(self, peer_id: bytes, payload: bytes) -> None:
        if peer_id not in self._links:
            return  # a late frame from a session already closed
        try:
            message = codec.unpack(payload, MAX_FRAME_PAYLOAD)
            if not isinstance(message, list) or not message:
                raise DecodeError("routing message is not a list")
            if message[0] == _UPDATE and len(message) == 2 and isinstance(message[1], list):
                entries = [_check_entry(entry) for entry in message[1]]
                for origin, seqno, metric in entries:
                    self._on_update(peer_id, origin, seqno, metric)
            elif message[0] == _REQUEST and len(message) == 4:
                origin, seqno, hops = _check_entry(message[1:4], metric_max=0xFF)
                self._on_request(peer_id, origin, seqno, hops)
            else:
                raise DecodeError(f"unknown routing message {message[0]!r}")
        except DecodeError as exc:
            self.counters["malformed"] += 1
            log.warn_limited("routing_message_malformed", key=peer_id, peer=peer_id.hex(),
                             error=str(exc))

    def _on_update(self, neighbour: bytes, origin: bytes, seqno: int, metric: int) -> None:
        if origin == self.node_id:
            if seqno_newer(seqno, self._seqno):
                # We restarted with a clock behind our old seqno: overtake it.
                self._seqno = (seqno + 1) % SEQNO_MODULUS
                self._mark_dirty(self.node_id, urgent=True)
            return
        candidates = self._candidates.setdefault(origin, {})
        if metric >= METRIC_INFINITY:
            if candidates.pop(neighbour, None) is None:
                if not candidates:
                    del self._candidates[origin]
                return
        else:
            if origin not in self._selected and len(self._selected) >= self._capacity:
                log.warn_limited("route_table_full", key=None, capacity=self._capacity)
                return
            now = self._clock()
            known = candidates.get(neighbour)
            offer = candidates[neighbour] = _Candidate(seqno, metric, now + self.hold_time)
            route = self._selected.get(origin)
            if route is not None and self._route_stands(origin, route, now):
                if neighbour != route.next_hop and metric + 1 >= route.metric:
                    # A backup offer no better than the installed route (ties keep the
                    # route): the choice cannot change. Most offers in a full table or a
                    # mass join are these.
                    self.counters["offers_kept_as_backup"] += 1
                    return
                if neighbour == route.next_hop and known is not None and \
                        known.seqno == seqno and known.metric == metric:
                    # Our next hop repeats its offer: the route stands, refreshed.
                    self.counters["routes_refreshed"] += 1
                    self._install(origin, neighbour, offer, route)
                    return
        self._reselect(origin)

    def _route_stands(self, origin: bytes, route: RouteView, now: float) -> bool:
        """Whether the installed route's own offer is still held (live link, not expired),
        so that it would win a reselection against anything no better than itself."""
        held = self._candidates[origin].get(route.next_hop)
        return held is not None and held.expires > now and route.next_hop in self._links

    def _next_hop(self, origin: bytes) -> bytes | None:
        route = self._selected.get(origin)
        return route.next_hop if route is not None else None

    def _on_request(self, neighbour: bytes, origin: bytes, seqno: int, hops: int) -> None:
        if origin == self.node_id:
            if not seqno_newer(self._seqno, seqno):
                self._seqno = seqno if seqno_newer(seqno, self._seqno + 1) \
                    else (self._seqno + 1) % SEQNO_MODULUS
            self._mark_dirty(self.node_id, urgent=True)
            return
        route = self._selected.get(origin)
        if route is None:
            return
        if not seqno_newer(seqno, route.seqno) and route.next_hop != neighbour:
            self._send_entries(self._links[neighbour], [self._entry(origin, neighbour)])
        elif hops > 1 and route.next_hop != neighbour and \
                self._may_request(origin, seqno, route.next_hop, neighbour):
            self._send_request(self._links.get(route.next_hop), origin, seqno, hops - 1)

    def _feasible(self, origin: bytes, candidate: _Candidate) -> bool:
        source = self._sources.get(origin)
        return source is None or seqno_newer(candidate.seqno, source.seqno) or (
            candidate.seqno == source.seqno and candidate.metric < source.metric)

    def _reselect(self, origin: bytes) -> None:
        """Choose the best feasible route to ``origin`` and install it (or withdraw)."""
        old = self._selected.get(origin)
        now = self._clock()
        best: tuple[tuple[int, bool, bytes], bytes, _Candidate] | None = None
        unfeasible: list[bytes] = []
        for neighbour, candidate in self._candidates.get(origin, {}).items():
            if candidate.expires <= now or neighbour not in self._links:
                continue
            if candidate.metric + 1 > self.max_hops:
                continue
            if not self._feasible(origin, candidate):
                unfeasible.append(neighbour)
                continue
            rank = (candidate.metric + 1, old is None or neighbour != old.next_hop, neighbour)
            if best is None or rank < best[0]:
                best = (rank, neighbour, candidate)
        if best is not None:
            _, neighbour, candidate = best
            self._install(origin, neighbour, candidate, old)
        elif old is not None:
            self._uninstall(origin, old)
        if best is None and unfeasible:
            source = self._sources[origin]
            wanted = (source.seqno + 1) % SEQNO_MODULUS
            for neighbour in unfeasible:
                if self._may_request(origin, wanted, neighbour):
                    self._send_request(self._links[neighbour], origin, wanted, self.max_hops)
        if not self._candidates.get(origin, True):
            del self._candidates[origin]
        if origin not in self._candidates:
            self._last_request.pop(origin, None)  # unreachable: the next offer is news

    def _install(self, origin: bytes, next_hop: bytes, candidate: _Candidate,
                 old: RouteView | None) -> None:
        route = RouteView(origin, next_hop, candidate.metric + 1, candidate.seqno)
        expires = int(candidate.expires) + 1
        try:
            accepted = self._table.update(origin, next_hop, route.metric, route.seqno, expires)
            if not accepted:
                # Same seqno, another neighbour, worse metric: the table keeps its stricter
                # rule; withdraw the old entry at this seqno so the switch is accepted.
                self._table.withdraw(origin, route.seqno)
                accepted = self._table.update(origin, next_hop, route.metric, route.seqno,
                                              expires)
        except RouteTableFull:
            log.warn_limited("route_table_full", key=None, capacity=self._capacity)
            return
        if not accepted:
            log.warning("route_install_rejected", origin=origin.hex(), seqno=route.seqno)
            return
        self._selected[origin] = route
        self._retracted.pop(origin, None)
        self._last_request.pop(origin, None)
        source = self._sources.get(origin)
        newer = source is not None and seqno_newer(route.seqno, source.seqno)
        if source is None or newer or (
                route.seqno == source.seqno and route.metric < source.metric):
            self._sources[origin] = _Source(route.seqno, route.metric, self._clock())
        else:
            source.last_used = self._clock()
        if old != route:
            # A new next hop changes what poison reverse tells the old and new one.
            good_news = (old is None and not newer) or (
                old is not None and route.seqno == old.seqno and route.metric < old.metric)
            self._mark_dirty(origin, urgent=not good_news)
            self._notify(origin, route)

    def _uninstall(self, origin: bytes, old: RouteView) -> None:
        self._table.withdraw(origin, old.seqno)
        del self._selected[origin]
        self._retracted[origin] = old.seqno
        self._mark_dirty(origin, urgent=True)
        self._notify(origin, None)

    def _notify(self, origin: bytes, route: RouteView | None) -> None:
        log.debug("route_changed", origin=origin.hex(),
                  via=route.next_hop.hex() if route else None,
                  metric=route.metric if route else None)
        for listener in self._route_listeners:
            listener(origin, route)

    def _may_request(self, origin: bytes, seqno: int, to: bytes, for_neighbour: bytes = b"",
                     ) -> bool:
        """Rate limit of seqno requests: the same request (origin, seqno, on behalf of the
        same neighbour or ourselves) goes to the same neighbour at most once per
        ``REQUEST_INTERVAL_S``. Installing a route to the origin, or losing every offer of one,
        forgets its requests: what follows is a new situation."""
        now = self._clock()
        sent = self._last_request.setdefault(origin, {})
        key = (seqno, to, for_neighbour)
        if now - sent.get(key, float("-inf")) < REQUEST_INTERVAL_S:
            return False
        if len(self._last_request) > self._capacity:
            self._last_request = {origin: sent}
        sent[key] = now
        return True

    # ------------------------------------------------------------------ sending updates

    def _entry(self, origin: bytes, to: bytes) -> list[object]:
        if origin == self.node_id:
            return [origin, self._seqno, 0]
        route = self._selected.get(origin)
        if route is None:
            return [origin, self._retracted.get(origin, 0), METRIC_INFINITY]
        metric = METRIC_INFINITY if route.next_hop == to else route.metric
        return [origin, route.seqno, metric]

    def _mark_dirty(self, origin: bytes, *, urgent: bool) -> None:
        """Queue ``origin`` for the next triggered update: on the next loop turn if
        ``urgent``, else within ``update_delay`` (see the module docstring)."""
        self._dirty.add(origin)
        if self._flush_handle is not None and (self._flush_urgent or not urgent):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (unit use without one): flush now
            self._flush()
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()  # good news waiting: it leaves with this one
        self._flush_urgent = urgent or self.update_delay <= 0
        self._flush_handle = loop.call_soon(self._flush) if self._flush_urgent else \
            loop.call_later(self.update_delay, self._flush)

    def _flush(self) -> None:
        """Triggered updates: every changed origin to every neighbour, in one batch each."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for link in list(self._links.values()):
            self._send_entries(link, [self._entry(origin, link.peer_id) for origin in dirty])
        for origin in dirty:
            if origin not in self._selected:
                self._retracted.pop(origin, None)

    def _send_full_update(self, link: NeighbourLink) -> None:
        origins = [self.node_id, *self._selected]
        self._send_entries(link, [self._entry(origin, link.peer_id) for origin in origins])

    def _send_entries(self, link: NeighbourLink, entries: list[list[object]]) -> None:
        if not entries:
            return
        per = _ENTRIES_PER_FRAME
        frames = [self._frame(link.peer_id, ROUTING_CHANNEL,
                              codec.pack_plain([_UPDATE, entries[start:start + per]]),
                              hop_limit=1)
                  for start in range(0, len(entries), per)]
        self.counters["updates_sent"] += len(frames)
        link.send_frames(frames)

    def _send_request(self, link: NeighbourLink | None, origin: bytes, seqno: int,
                      hops: int) -> None:
        if link is None:
            return
        self.counters["requests_sent"] += 1
        link.send_frames([self._frame(link.peer_id, ROUTING_CHANNEL,
                                      codec.pack_plain([_REQUEST, origin, seqno, hops]),
                                      hop_limit=1)])

    def _frame(self, dst: bytes, channel: int, payload: bytes,
               hop_limit: int | None = None) -> Frame:
        return Frame(type=SESSION_FRAME_TYPE, flags=0, src=self.node_id, dst=dst,
                     hop_limit=self.max_hops if hop_limit is None else hop_limit,
                     channel=channel, seq=next(self._frame_seq) & 0xFFFFFFFF,
                     payload=bytes(payload))

    # ------------------------------------------------------------------ timers

    async def _periodic(self) -> None:
        """The full table every ``update_interval`` (jittered), and expiry every eighth
        of the hold time: a lapsed offer is the fallback path (a lost neighbour retracts
        its routes at once), so it may be noticed that late; an idle agent wakes seldom."""
        expire_every = self.hold_time / 8
        next_full = next_expiry = self._clock() + min(1.0, self.update_interval / 2)
        while True:
            await asyncio.sleep(max(0.0, min(next_full, next_expiry) - self._clock()))
            now = self._clock()
            if now >= next_expiry:
                self.expire(now)
                next_expiry = now + expire_every
            if now >= next_full:
                self.advertise()
                next_full = now + self.update_interval * random.uniform(0.75, 1.0)

    def advertise(self) -> None:
        """Send the full table to every neighbour (the periodic update)."""
        for link in list(self._links.values()):
            self._send_full_update(link)

    def expire(self, now: float | None = None) -> None:
        """Drop routes not refreshed within the hold time and forget old sources."""
        now = self._clock() if now is None else now
        for origin in list(self._candidates):
            candidates = self._candidates[origin]
            stale = [n for n, c in candidates.items() if c.expires <= now]
            if stale:
                for neighbour in stale:
                    del candidates[neighbour]
                self._reselect(origin)
        self._table.expire(int(now))
        for origin in [o for o, s in self._sources.items()
                       if now - s.last_used > SOURCE_GC_S and o not in self._selected]:
            del self._sources[origin]


def _check_entry(entry: object, metric_max: int = METRIC_INFINITY) -> tuple[bytes, int, int]:
    """(origin, seqno, metric) from an untrusted list, or DecodeError."""
    if not isinstance(entry, list) or len(entry) != 3:
        raise DecodeError("route entry is not a 3-item list")
    origin, seqno, metric = entry
    if not isinstance(origin, bytes) or len(origin) != NODE_ID_BYTES:
        raise DecodeError("route origin is not a node id")
    if type(seqno) is not int or not 0 <= seqno < SEQNO_MODULUS:
        raise DecodeError("route seqno out of range")
    if type(metric) is not int or not 0 <= metric <= metric_max:
        raise DecodeError("route metric out of range")
    return origin, seqno, metric
