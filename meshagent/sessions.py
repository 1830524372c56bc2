"""Encrypted TCP sessions with a bounded set of peers: dial, accept, watch, redial.

Pipeline of one session::

    transport stream (CHANNEL_SESSION) -> handshake (Noise XX, certificates) -> core.Tunnel
    send:    frames --seal_frames--> records --> socket          (one write per batch)
    receive: socket --> Tunnel.feed (reassemble, open) --> frames
                     --> channel 0 here (keepalive, goodbye) | everything else: on_frames()

Contract:
- At most ``max_peers`` sessions at once, inbound and outbound together. The manager dials
  toward up to ``max_peers // 2`` (at least 1) of the candidates it is given, chosen by a
  pair affinity hash so that each pair of nodes agrees on its preference and the resulting
  graph is random but stable; inbound sessions fill the rest. Candidates marked ``urgent``
  (the caller found no route to them: the session graph is split) are dialled first and
  beyond that target, so the graph heals. A refused or failed dial backs
  off exponentially (``reconnect_min`` doubling to ``reconnect_max``) and the next
  candidate is tried.
- No dial, urgent or not, while the membership view is settling: until ``settle`` seconds
  passed with no change to our view and no peer reporting a view that differs from ours
  (``view_changed``), at most ``settle_max`` seconds after the burst began. In a mass join
  the handshakes would otherwise take the CPU the membership protocol needs to converge.
- One session per peer. When both sides dial each other at once, the session initiated
  by the lower node id is kept. A new session from the same initiator replaces the old
  one (make-before-break, used to rekey).
- A peer that closes without saying goodbye (its agent crashed or was killed: the kernel
  closes or resets its sockets), or whose tunnel fails, is reported with
  ``on_down(session, crashed=True)`` the moment the socket says so. A goodbye (graceful
  stop, replaced or refused session) gives ``crashed=False``. A session silent for three
  keepalive intervals is closed as crashed.
- Frames of channel 0 belong to this module; all others go to ``on_frames(peer, frames)``.
- A tunnel that needs a rekey is replaced by a fresh handshake by its initiator.

Everything runs on one event loop; callbacks must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshagent import codec
from meshagent.core import CoreError, Frame, RekeyRequired, Tunnel
from meshagent.errors import DecodeError, MeshError
from meshagent.eventloop import write_unless_closing
from meshagent.log import get_logger
from meshagent.transport import (
    CHANNEL_SESSION,
    Address,
    Transport,
    TransportError,
    format_address,
)

__all__ = [
    "SessionManager", "Session", "PeerCandidate", "HandshakeResult", "Handshake",
    "SESSION_CHANNEL", "SESSION_FRAME_TYPE",
]

log = get_logger(__name__)

# Frame channel of the session layer's own messages (not the transport's stream channel).
SESSION_CHANNEL = 0
# Frame type of every frame the agent sends inside a tunnel (type 0 is reserved).
SESSION_FRAME_TYPE = 1

_KEEPALIVE = 0
_GOODBYE = 1
_READ_BYTES = 256 * 1024
# A peer that cannot keep up loses frames rather than growing our memory without bound.
_WRITE_BUFFER_LIMIT = 8 * 1024 * 1024
_TICK_S = 0.5
# After a burst of news has settled, first dials are spread over a window of this much per
# change in the burst (``spread_per_change``), at most _SPREAD_MAX_S (see ``_settling``).
_SPREAD_PER_CHANGE_S = 0.04
_SPREAD_MAX_S = 4.0
# At most one eviction per this many seconds, so that mending a split graph cannot churn.
_EVICTION_INTERVAL_S = 2.0
# A session that lasted this long resets its peer's redial backoff.
_STABLE_SESSION_S = 10.0
# Goodbye reason of a responder that is full: the dialler backs off as after a failure.
_FULL = "full"


@dataclass(frozen=True, slots=True)
class PeerCandidate:
    """A member we may hold a session with, and where its agent listens."""

    node_id: bytes
    addresses: tuple[Address, ...]
    urgent: bool = False  # no route reaches it: dial even past the outbound target


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    tunnel: Tunnel
    peer_id: bytes
    peer_info: Any = None  # the peer's verified membership certificate


class Handshake(Protocol):
    """Authenticates a fresh TCP stream and returns the tunnel keyed for it.

    Raises MeshError (a HandshakeError or CertificateError subclass) on any rejection,
    after logging it; ``expected_peer`` (when dialling) must match the peer's node id.
    """

    def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 initiator: bool, expected_peer: bytes | None) -> Awaitable[HandshakeResult]:
        ...


class Session:
    """One authenticated session; the router's ``NeighbourLink`` to that peer."""

    def __init__(self, manager: SessionManager, result: HandshakeResult,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 initiator: bool, address: Address) -> None:
        self._manager = manager
        self._tunnel = result.tunnel
        self.peer_info = result.peer_info
        self._reader = reader
        self._writer = writer
        self.initiator = initiator
        self.address = address
        self.established = time.time()
        self._peer_id = result.peer_id
        self._last_sent = self._last_heard = time.monotonic()
        self._goodbye_heard = False
        self.peer_goodbye = ""  # the reason the peer gave when it said goodbye
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.frames_dropped = 0

    @property
    def peer_id(self) -> bytes:
        return self._peer_id

    @property
    def closed(self) -> bool:
        return self._closed

    def send_frames(self, frames: Sequence[Frame]) -> None:
        if self._closed or not frames:
            return
        if self._writer.transport.get_write_buffer_size() > _WRITE_BUFFER_LIMIT:
            self.frames_dropped += len(frames)
            log.warn_limited("session_backlog_drop", key=self._peer_id,
                             peer=self._peer_id.hex(), frames=len(frames))
            return
        try:
            data = self._tunnel.seal_frames(frames)
        except RekeyRequired:
            self._manager._rekey(self)
            return
        if not write_unless_closing(self._writer, data):
            return  # the stream is going; its reader ends the session
        self._manager.stats.bytes_sent += len(data)
        self._last_sent = time.monotonic()

    def _control(self, kind: int, *fields: Any) -> Frame:
        return Frame(type=SESSION_FRAME_TYPE, src=self._manager.node_id, dst=self._peer_id,
                     hop_limit=1, channel=SESSION_CHANNEL,
                     payload=codec.pack_plain([kind, *fields]))

    def keepalive_due(self, now: float, interval: float) -> bool:
        return now - self._last_sent >= interval

    def silent_for(self, now: float) -> float:
        return now - self._last_heard

    def needs_rekey(self) -> bool:
        return self._tunnel.needs_rekey

    async def _run(self) -> None:
        """Read until the stream ends; report how it ended."""
        crashed = True
        reason = "eof"
        try:
            while True:
                data = await self._reader.read(_READ_BYTES)
                if not data:
                    break
                self._last_heard = time.monotonic()
                self._manager.stats.bytes_received += len(data)
                frames = self._tunnel.feed(data)
                forward = [f for f in frames if f.channel != SESSION_CHANNEL]
                for frame in frames:
                    if frame.channel == SESSION_CHANNEL:
                        self._on_control(frame)
                if forward:
                    self._manager._on_frames(self._peer_id, forward)
                if self._goodbye_heard:
                    break
        except (ConnectionError, OSError) as exc:
            reason = type(exc).__name__
        except CoreError as exc:  # tampered, replayed or malformed stream: cannot continue
            reason = type(exc).__name__
            log.warn_limited("session_stream_rejected", key=self._peer_id,
                             peer=self._peer_id.hex(), error=str(exc))
        except asyncio.CancelledError:
            crashed = False
            reason = "closed"
        if self._goodbye_heard:
            crashed, reason = False, "goodbye"
        self._finish(crashed, reason)

    def _on_control(self, frame: Frame) -> None:
        try:
            message = codec.unpack(bytes(frame.payload), 1024)
            kind = message[0] if isinstance(message, list) and message else None
        except DecodeError:
            kind = None
        if kind == _GOODBYE:
            self._goodbye_heard = True
            reason = message[1] if isinstance(message, list) and len(message) > 1 else ""
            self.peer_goodbye = reason if isinstance(reason, str) else ""
        elif kind != _KEEPALIVE:
            log.warn_limited("session_control_unknown", key=self._peer_id,
                             peer=self._peer_id.hex())

    def close(self, reason: str) -> None:
        """Say goodbye and close; the peer will not count this as a crash."""
        if self._closed:
            return
        with contextlib.suppress(MeshError, ConnectionError, OSError):
            write_unless_closing(self._writer,
                                 self._tunnel.seal_frames([self._control(_GOODBYE, reason)]))
        self._finish(False, reason)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def _finish(self, crashed: bool, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.close()
        self._tunnel.close()
        self._manager._on_session_closed(self, crashed, reason)


@dataclass(slots=True)
class _Backoff:
    delay: float
    not_before: float = 0.0
    failures: int = 0


@dataclass
class SessionStats:
    dials: int = 0
    dial_failures: int = 0
    accepted: int = 0
    refused_full: int = 0
    handshake_failures: int = 0
    crashes_seen: int = 0
    evictions: int = 0
    rekeys: int = 0  # fresh handshakes started to replace an ageing session
    replaced: int = 0  # sessions superseded by a newer one to the same peer
    bytes_sent: int = 0  # sealed session bytes, keepalives included
    bytes_received: int = 0


class SessionManager:
    """Keeps this node's bounded set of peer sessions."""

    def __init__(self, node_id: bytes, transport: Transport, handshake: Handshake, *,
                 candidates: Callable[[], Iterable[PeerCandidate]],
                 on_up: Callable[[Session], None],
                 on_down: Callable[[Session, bool], None],
                 on_frames: Callable[[bytes, list[Frame]], None],
                 is_unrouted: Callable[[bytes], bool] = lambda peer: False,
                 has_alternative: Callable[[bytes], bool] = lambda peer: False,
                 max_peers: int = 20, connect_timeout: float = 3.0,
                 handshake_timeout: float = 5.0, keepalive: float = 10.0,
                 reconnect_min: float = 0.5, reconnect_max: float = 30.0,
                 settle: float = 1.0, settle_max: float = 6.0,
                 spread_per_change: float = _SPREAD_PER_CHANGE_S) -> None:
        self.node_id = node_id
        self._transport = transport
        self._handshake = handshake
        self._candidates = candidates
        self._on_up = on_up
        self._on_down = on_down
        self._on_frames = on_frames
        self._is_unrouted = is_unrouted
        self._has_alternative = has_alternative
        self._last_eviction = float("-inf")
        self.max_peers = max_peers
        self.outbound_target = max(1, max_peers // 2)
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.keepalive = keepalive
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.sessions: dict[bytes, Session] = {}
        self._dialling: dict[bytes, asyncio.Task[None]] = {}
        self._pending_inbound = 0
        self._backoff: dict[bytes, _Backoff] = {}
        self._all: set[Session] = set()  # established and not yet finished
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.settle = settle
        self.settle_max = settle_max
        self._affinities: dict[bytes, bytes] = {}
        self._view_changed_at = float("-inf")
        self._burst_since: float | None = None
        self.spread_per_change = spread_per_change
        self._burst_changes = 0
        self._settled_at: float | None = None  # the burst's news stopped (or settle_max)
        self._spread = 0.0
        self._dials_waiting = True  # a wanted dial waits on time, not on an event
        self.stats = SessionStats()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the transport's session streams and start dialling candidates."""
        self._transport.set_stream_handler(CHANNEL_SESSION, self._accept)
        self._task = asyncio.create_task(self._maintain(), name="sessions-maintain")
        log.event("sessions_started", max_peers=self.max_peers)

    async def stop(self) -> None:
        """Say goodbye on every session and stop listening and dialling."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Let dials in flight finish (they close with a goodbye): a dial cancelled just
        # after its handshake would leave the peer holding a session that ends in silence,
        # which it would take for a crash.
        dials = list(self._dialling.values())
        if dials:
            _done, pending = await asyncio.wait(
                dials, timeout=self.connect_timeout + self.handshake_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for session in list(self.sessions.values()):
            session.close("stopping")
        tasks = [s._task for s in self._all if s._task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """Candidates changed: look at them now rather than at the next tick."""
        self._wake.set()

    def view_changed(self) -> None:
        """The membership view changed (a member came, went or changed state): look at the
        candidates again, dialling once the view settles (``_settling``).
        The first change of a burst is looked at now; while the burst lasts the loop looks
        every ``settle`` seconds, not once per change: a look is O(members), and a mass join
        brings a change per member to every member."""
        self._burst_changes += 1
        self.view_differs()

    def view_differs(self) -> None:
        """A peer's view differs from ours: news is still spreading, so the burst goes
        on (``view_changed``), but it is no change of ours. The spread of first dials
        counts changes only: every gossip datagram carries a digest, and counting each
        differing one would stretch the spread after even a small join."""
        self._view_changed_at = time.monotonic()
        if self._burst_since is None:
            self._wake.set()

    def _settling(self, now: float) -> bool:
        """True while a burst of membership news (a join) is still arriving: dials wait
        until the view has been quiet for ``settle`` seconds, at most ``settle_max``
        seconds after the burst began. Ranking then sees the whole view, so fewer sessions
        are dialled only to be refused or dropped, and handshakes do not take the CPU the
        membership protocol needs to converge. Urgent dials wait too: during a mass join
        every member is unrouted (no session exists yet), and dialling them all at once
        was the storm this rule prevents. Measured at 50 agents on 2 cores: the join
        converged in 1.15-1.24 s with this rule, 2.67-2.70 s when sessions were dialled
        during it (BENCHMARKS.md).

        Then each agent waits a random part of a spread window, ``spread_per_change``
        seconds per change the burst brought (at most ``_SPREAD_MAX_S``). The members of a mass
        join all settle within moments of each other (``settle_max`` ends every burst
        at the same time), and dialling together they saturated the machine's CPUs: at
        100 agents on 2 cores a crash that happened then took up to 2.3 s to reach every
        agent, against 0.25 s otherwise. One member joining brings a change or two, so
        its sessions wait a few tens of milliseconds more."""
        if self._burst_since is None:
            if now - self._view_changed_at >= self.settle:
                return False
            self._burst_since, self._settled_at = now, None
        quiet = now - self._view_changed_at >= self.settle
        if self._settled_at is None:
            if not quiet and now - self._burst_since < self.settle_max:
                return True
            self._settled_at = now
            self._spread = random.random() * min(
                _SPREAD_MAX_S, self.spread_per_change * self._burst_changes)
        if now - self._settled_at < self._spread:
            return True
        if quiet:  # over; news that goes on past settle_max keeps the burst (_next_look)
            self._burst_since = None
            self._burst_changes = 0
        return False

    # ------------------------------------------------------------------ choosing peers

    def _affinity(self, peer: bytes) -> bytes:
        """The pair's rank key (both ends compute the same); remembered, as candidates are
        ranked on every look (bounded: entries of members no longer offered are dropped)."""
        affinity = self._affinities.get(peer)
        if affinity is None:
            low, high = sorted((self.node_id, peer))
            affinity = self._affinities[peer] = hashlib.sha256(low + high).digest()
        return affinity

    async def _maintain(self) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation
        # that stop() sends when it races with the timeout, and the loop would never end.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_look()):
                    await self._wake.wait()
            self._wake.clear()
            try:
                self._dial_wanted()
                self._keep_alive()
            except MeshError as exc:  # never let one bad candidate stop the loop
                log.warning("sessions_maintain_failed", error=f"{type(exc).__name__}: {exc}")

    def _next_look(self) -> float:
        """Seconds until the upkeep loop looks again unless woken. During a burst of view
        changes (which do not wake it) every settle interval; while a dial waits on time
        (a back-off, an unrouted member turning urgent) soon; otherwise only keepalives
        are due, and the first change of a burst, ended dials and ended sessions wake it."""
        if self._burst_since is not None:
            if self._settled_at is not None:  # dials wait out the spread, then go at once
                remaining = self._settled_at + self._spread - time.monotonic()
                if remaining > 0:
                    return min(_TICK_S, self.settle, remaining)
            return min(_TICK_S, self.settle)
        if self._dials_waiting:
            return _TICK_S
        return self.keepalive / 4

    def _dial_wanted(self) -> None:
        """Dial the best-ranked candidates up to the outbound target; urgent ones (members
        routing cannot reach) first and past that target, within ``max_peers``."""
        now = time.monotonic()
        if self._settling(now):
            return  # nothing is dialled, nor ranked, until the view settles (_next_look)
        outbound = sum(1 for s in self.sessions.values() if s.initiator) + len(self._dialling)
        total = len(self.sessions) + len(self._dialling) + self._pending_inbound
        offered = list(self._candidates())
        # A member routing cannot reach becomes urgent after a grace time: look again soon.
        self._dials_waiting = any(
            not c.urgent and c.node_id not in self.sessions and self._is_unrouted(c.node_id)
            for c in offered)
        if len(self._affinities) > 2 * len(offered) + 64:
            self._affinities = {c.node_id: self._affinities[c.node_id] for c in offered
                                if c.node_id in self._affinities}
        ranked = sorted((c for c in offered if c.node_id != self.node_id and c.addresses),
                        key=lambda c: (not c.urgent, self._affinity(c.node_id)))
        for candidate in ranked:
            peer = candidate.node_id
            if peer in self.sessions or peer in self._dialling:
                continue
            backoff = self._backoff.get(peer)
            if backoff is not None and backoff.not_before > now:
                self._dials_waiting = True
                continue
            if candidate.urgent and total >= self.max_peers and self._evict():
                total -= 1  # made room for a member routing cannot reach
            if total >= self.max_peers or (outbound >= self.outbound_target
                                           and not candidate.urgent):
                return
            self._dialling[peer] = asyncio.create_task(self._dial(candidate),
                                                       name=f"dial-{peer.hex()[:8]}")
            outbound += 1
            total += 1

    def _keep_alive(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if session.silent_for(now) > 3 * self.keepalive:
                log.event("session_silent", peer=session.peer_id.hex())
                session._finish(True, "silent")
            elif session.keepalive_due(now, self.keepalive):
                session.send_frames([session._control(_KEEPALIVE)])
            elif session.initiator and session.needs_rekey():
                self._rekey(session)

    def _rekey(self, session: Session) -> None:
        """Make-before-break: the initiator dials a fresh session that replaces this one."""
        peer = session.peer_id
        if session.initiator and peer not in self._dialling and not self._stopping:
            candidate = PeerCandidate(peer, (session.address,))
            self.stats.rekeys += 1
            self._dialling[peer] = asyncio.create_task(self._dial(candidate),
                                                       name=f"rekey-{peer.hex()[:8]}")

    # ------------------------------------------------------------------ establishing

    async def _dial(self, candidate: PeerCandidate) -> None:
        peer = candidate.node_id
        self.stats.dials += 1
        try:
            for address in candidate.addresses:
                try:
                    reader, writer = await self._transport.open_stream(
                        address, CHANNEL_SESSION, self.connect_timeout)
                except TransportError as exc:
                    log.debug("session_connect_failed", peer=peer.hex(),
                              address=format_address(address), error=type(exc).__name__)
                    continue
                if await self._establish(reader, writer, True, address, peer):
                    return
            self._failed(peer)
        finally:
            if self._dialling.get(peer) is asyncio.current_task():
                del self._dialling[peer]
                self.wake()  # a failed dial leaves room for the next candidate

    def _failed(self, peer: bytes) -> None:
        self.stats.dial_failures += 1
        backoff = self._backoff.setdefault(peer, _Backoff(self.reconnect_min))
        backoff.failures += 1
        backoff.not_before = time.monotonic() + backoff.delay * random.uniform(0.8, 1.2)
        backoff.delay = min(backoff.delay * 2, self.reconnect_max)
        if len(self._backoff) > 16 * self.max_peers + 1024:
            oldest = min(self._backoff, key=lambda p: self._backoff[p].not_before)
            del self._backoff[oldest]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      address: Address) -> None:
        """Serve one inbound session until it ends (the transport closes the stream then)."""
        # One slot beyond max_peers for handshakes in flight: a peer that no route reaches
        # may still be admitted by eviction (see _make_room), decided once we know who it is.
        if self._stopping or len(self.sessions) + len(self._dialling) \
                + self._pending_inbound >= self.max_peers + 1:
            self.stats.refused_full += 1
            return
        self._pending_inbound += 1
        try:
            session = await self._establish(reader, writer, False, address, None)
        finally:
            self._pending_inbound -= 1
        if session is not None and session._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(session._task)

    async def _establish(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         initiator: bool, address: Address,
                         expected: bytes | None) -> Session | None:
        try:
            async with asyncio.timeout(self.handshake_timeout):
                result = await self._handshake(reader, writer, initiator=initiator,
                                               expected_peer=expected)
        except (MeshError, OSError, ConnectionError, TimeoutError,
                asyncio.IncompleteReadError) as exc:
            self.stats.handshake_failures += 1
            log.warn_limited("session_handshake_failed", key=address[0], address=address[0],
                             initiator=initiator, error=f"{type(exc).__name__}: {exc}")
            writer.close()
            return None
        if result.peer_id == self.node_id:
            result.tunnel.close()
            writer.close()
            return None
        session = Session(self, result, reader, writer, initiator, address)
        self._all.add(session)
        if self._stopping:
            session.close("stopping")
            return None
        if not initiator and result.peer_id not in self.sessions \
                and self._held_slots(result.peer_id) >= self.max_peers \
                and not self._make_room(result.peer_id):
            self.stats.refused_full += 1
            session.close(_FULL)
            return None
        if not self._admit(session):
            session.close("duplicate")
            return None
        if not initiator:
            self.stats.accepted += 1
        session._task = asyncio.create_task(session._run(),
                                            name=f"session-{result.peer_id.hex()[:8]}")
        log.event("session_up", peer=result.peer_id.hex(), address=f"{address[0]}:{address[1]}",
                  initiator=initiator)
        self._on_up(session)
        return session

    def _held_slots(self, newcomer: bytes) -> int:
        """Slots taken, as an inbound ``newcomer`` sees them: sessions, and dials in flight
        to other peers. A dial holds its slot from ``_dial_wanted`` until it ends; an
        inbound session admitted meanwhile would take it, and the dial's session, admitted
        when it completes, would go past ``max_peers``."""
        return len(self.sessions) + sum(1 for peer in self._dialling
                                        if peer != newcomer and peer not in self.sessions)

    def _make_room(self, newcomer: bytes) -> bool:
        """When full: evict a session for ``newcomer`` if no route reaches it (it is in
        another part of a split session graph), preferring a peer that routing reaches
        another way. HyParView makes room for joiners the same way.

        If no session has a known alternative, any one is evicted: in a cycle of five or
        more nodes the distance vector hides the way round, so every peer looks
        irreplaceable and the graph would stay split for good. Cutting one cycle edge
        leaves a path (still connected) and joins the newcomer's part to ours. Only the
        dialled side does this, and at most once per eviction interval; a node dialling
        out never cuts its own sessions this way."""
        if not self._is_unrouted(newcomer):
            return False
        return self._evict(any_peer=True)

    def _evict(self, any_peer: bool = False) -> bool:
        now = time.monotonic()
        if now - self._last_eviction < _EVICTION_INTERVAL_S:
            return False
        victims = [s for s in self.sessions.values() if self._has_alternative(s.peer_id)]
        if not victims and any_peer:
            victims = list(self.sessions.values())
        if not victims:
            return False
        self._last_eviction = now
        victim = random.choice(victims)
        self.stats.evictions += 1
        log.event("session_evicted", peer=victim.peer_id.hex())
        victim.close("evicted")
        return True

    def _admit(self, session: Session) -> bool:
        """Decide between a new session and an existing one to the same peer."""
        old = self.sessions.get(session.peer_id)
        if old is not None:
            if old.initiator != session.initiator:
                # Both dialled: keep the one the lower node id initiated.
                lower_is_us = self.node_id < session.peer_id
                if session.initiator != lower_is_us:
                    return False
            self.sessions[session.peer_id] = session
            self.stats.replaced += 1
            old.close("replaced")
            return True
        self.sessions[session.peer_id] = session
        return True

    # ------------------------------------------------------------------ closing

    def _on_session_closed(self, session: Session, crashed: bool, reason: str) -> None:
        self._all.discard(session)
        if self.sessions.get(session.peer_id) is not session:
            return  # a replaced or refused session: the peer is still connected
        del self.sessions[session.peer_id]
        if crashed:
            self.stats.crashes_seen += 1
        log.event("session_down", peer=session.peer_id.hex(), reason=reason, crashed=crashed)
        self._on_down(session, crashed)
        if not self._stopping:
            if time.time() - session.established > _STABLE_SESSION_S:
                self._backoff.pop(session.peer_id, None)  # it worked: start afresh
            if crashed or session.peer_goodbye in (_FULL, "evicted"):
                self._failed(session.peer_id)  # do not redial at once; longer each time
            self.wake()

    def close_peer(self, peer: bytes, reason: str) -> None:
        """Close the session to ``peer`` (it left the mesh or was revoked)."""
        session = self.sessions.get(peer)
        if session is not None:
            session.close(reason)
