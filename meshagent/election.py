"""Leader election with terms and leases, over membership's signed node records.

Every node publishes a ``Candidacy`` in its signed node record (field ``election``):
the highest term it knows, whether it leads at that term, its configured preference,
when its agent started, and whether it may lead (``Reach``). Records travel by gossip and
full-state exchange, so every node sees every candidacy, and nobody can speak for another
node: a claim of leadership is signed by the claimant.

Each node runs the same deterministic rule over its membership view (``decide``):

1. **Incumbency.** A *live* member (ALIVE or SUSPECT) that claims leadership holds the
   lease of its term. If several claim, the highest (term, priority) wins and the others
   step down the moment they see it. A better candidate joining changes nothing: the
   incumbent keeps its lease for as long as it lives, so there is no churn.
2. **Lease end.** The lease ends when membership declares the leader UNREACHABLE (a crash
   is seen at once, its sessions reset; a silent node after Lifeguard suspicion) or LEFT.
3. **Succession.** With no live claimant, the eligible ALIVE members are ranked by
   ``priority``; the first claims term = (highest term it has ever seen) + 1 at once, the
   n-th only after n x ``claim_stagger_s`` without a claim (in case the first sees the
   mesh differently). The new term is written to disk before it is published, so no node
   ever claims the same term twice, and terms only grow across the mesh and restarts.
   A node that has just started claims nothing for ``startup_grace_s``: it first learns
   the mesh (and its incumbent) from its seeds.

Priority, best first: may reach the web service (``Reach.OK`` above ``Reach.FAILING``:
a node whose uplink keeps failing is a last resort), then on AC power, then the configured
``preference``, then capability (certificate role ``"leader"``), then uptime (earlier
start), then the lower node id.

At most one leader per term acts: a node claims a term only above every term it knows,
and the web service fences by term (``Database.claim_leadership``: a lower term, or the
same term held by another node, is refused; a higher one supersedes). In a partition
each side may elect its own leader, with different terms; the service keeps the higher.
When the halves merge, the lower term sees the higher claim and steps down.

Fencing refusals come back through ``fenced``: the leader takes a new term above every
term it knows (jumping further on each consecutive refusal, so it overtakes a service
that remembers terms this mesh forgot), after a back-off that grows while it stays
leader, so two partitions that both reach the service do not fight faster than that.

``Election`` runs on the event loop; ``on_change`` listeners and ``leader`` read its
decision. It never raises for what peers publish: a malformed candidacy is ignored with
a rate-limited log line.

Cost: membership reports every change of every member (hundreds per second while a mesh
joins), and the rule reads the whole view. Changes therefore only mark the view changed.
Leadership news (a change of the leader, of a member claiming or knowing a higher term, of
this node, or any change while this node could claim: leaderless, eligible, past its
start-up grace) is evaluated on the next turn of the event loop, with every change
reported before it: a dead leader is replaced on the turn after membership declares it.
Any other change cannot move the leader, so it waits up to ``view_settle_s`` with the
changes that follow it; a mass join of N members costs a few evaluations instead of one
per datagram (O(N) each, so O(N^2) per agent). Candidacies
and priorities are decoded once per record (``CandidacyBook``), and the periodic tick
evaluates only while the decision depends on time (no leader yet, or a FAILING mark that
will lapse): with a leader in place, nothing but a change of the view can change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meshagent import codec
from meshagent.atomicfile import write_atomically
from meshagent.errors import DecodeError, MeshError
from meshagent.log import get_logger
from meshagent.membership import Member, MemberState
from meshagent.record import NodeRecord

__all__ = [
    "Candidacy", "CandidacyBook", "Election", "ElectionSettings", "ElectionStateError",
    "LeaderView", "Reach", "TermStore", "decide", "priority", "LEADER_ROLE",
]

log = get_logger(__name__)

LEADER_ROLE = "leader"
_FORMAT = 1
_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class ElectionStateError(DecodeError):
    """A candidacy that does not parse (a peer's record carries garbage)."""


class Reach(enum.IntEnum):
    """Whether a node may lead: can it (as far as it knows) reach the web service?"""

    NONE = 0      # no uplink configured, or leading disabled: never a candidate
    FAILING = 1   # led recently and could not reach the service: last resort
    OK = 2        # configured, not known to fail


@dataclass(frozen=True)
class Candidacy:
    """What a node publishes about itself for the election (signed inside its record)."""

    term: int
    leading: bool
    preference: int
    started: float
    reach: Reach

    def encode(self) -> bytes:
        return codec.pack([_FORMAT, self.term, self.leading, self.preference,
                           round(self.started, 3), int(self.reach)])

    @classmethod
    def decode(cls, data: bytes) -> Candidacy:
        try:
            value = codec.unpack(data, 256)
            version, term, leading, preference, started, reach = value
            if version != _FORMAT:
                raise ElectionStateError(f"candidacy format {version!r} is not {_FORMAT}")
            if type(term) is not int or not 0 <= term < 1 << 62:
                raise ElectionStateError("term must be a non-negative integer")
            if type(preference) is not int or not -(1 << 31) <= preference < 1 << 31:
                raise ElectionStateError("preference must be a 32-bit integer")
            if not isinstance(leading, bool) or isinstance(started, bool) or \
                    not isinstance(started, (int, float)):
                raise ElectionStateError("leading must be a flag and started a time")
            return cls(term, leading, preference, float(started), Reach(reach))
        except ElectionStateError:
            raise
        except (DecodeError, ValueError, TypeError) as exc:
            raise ElectionStateError(f"candidacy does not parse: {exc}") from exc


@dataclass(frozen=True)
class LeaderView:
    """The leader as one node sees it."""

    node_id: bytes
    term: int
    is_self: bool
    hostname: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id.hex(), "term": self.term, "self": self.is_self,
                "hostname": self.hostname}


@dataclass(frozen=True)
class ElectionSettings:
    """Knobs of one node's election. ``eligible`` False never leads (no uplink configured)."""

    eligible: bool = True
    preference: int = 0
    claim_stagger_s: float = 1.0
    startup_grace_s: float = 2.0
    tick_s: float = 0.25
    # How long a change that cannot move the leader waits for the changes that follow it.
    view_settle_s: float = 0.25
    # How long a FAILING mark lasts before the node presents itself as OK again.
    failing_for_s: float = 300.0
    # Back-off after a fencing refusal: first delay, and the ceiling it doubles up to.
    refused_retry_min_s: float = 0.2
    refused_retry_max_s: float = 60.0


def priority(member: Member, candidacy: Candidacy) -> tuple[Any, ...]:
    """Sort key of a candidate: greater is better (see the module docstring)."""
    record: NodeRecord = member.record
    return (int(candidacy.reach), record.power_source == "ac", candidacy.preference,
            LEADER_ROLE in record.cert.roles, -candidacy.started,
            -int.from_bytes(member.node_id, "big"))  # the lower node id


def candidacy_of(record: NodeRecord) -> Candidacy | None:
    """The candidacy a record carries; None if it carries none (or garbage, logged)."""
    if not record.election:
        return None
    try:
        return Candidacy.decode(record.election)
    except ElectionStateError as exc:
        log.warn_limited("candidacy_malformed", key=record.node_id,
                         node=record.node_id.hex(), error=str(exc))
        return None


class CandidacyBook:
    """The candidacy and priority of each member, decoded once per record.

    A record is immutable and replaced whole when its node publishes a new one, so an
    entry stays valid for as long as the member holds the same record object. Entries of
    members no longer held are dropped when the book outgrows the view it was last read
    with, so it never holds more than about the members held."""

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[NodeRecord, Candidacy | None, tuple[Any, ...]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def candidacy(self, member: Member) -> Candidacy | None:
        """The candidacy ``member``'s record carries (decoded once per record)."""
        entry = self._entries.get(member.node_id)
        if entry is None or entry[0] is not member.record:
            candidacy = candidacy_of(member.record)
            entry = (member.record, candidacy,
                     () if candidacy is None else priority(member, candidacy))
            self._entries[member.node_id] = entry
        return entry[1]

    def read(self, members: Iterable[Member],
             ) -> Iterator[tuple[Member, Candidacy, tuple[Any, ...]]]:
        """(member, candidacy, priority) for each member whose record carries one."""
        entries = self._entries
        held: list[bytes] = []
        for member in members:
            held.append(member.node_id)
            entry = entries.get(member.node_id)
            if entry is None or entry[0] is not member.record:
                self.candidacy(member)
                entry = entries[member.node_id]
            if entry[1] is not None:
                yield member, entry[1], entry[2]
        if len(entries) > len(held):
            self._entries = {node_id: entries[node_id] for node_id in held}


@dataclass(frozen=True)
class Decision:
    """The outcome of ``decide`` for one node's view."""

    leader: LeaderView | None
    highest_term: int
    claim: bool          # this node should claim ``highest_term + 1`` now
    step_down: bool      # this node leads but a better claim exists
    ranked: tuple[bytes, ...]  # eligible live members, best first (for status)


def decide(members: Iterable[Member], own_id: bytes, leaderless_for: float,
           claim_stagger_s: float, known_term: int = 0,
           book: CandidacyBook | None = None) -> Decision:
    """The election rule over one membership view (pure, so it is tested directly).
    ``book`` remembers decoded candidacies between calls; it never changes the outcome."""
    highest = known_term
    claims: list[tuple[tuple[int, tuple[Any, ...]], Member, Candidacy]] = []
    candidates: list[tuple[tuple[Any, ...], Member]] = []
    leading_self = False
    for member, candidacy, rank in (CandidacyBook() if book is None else book).read(members):
        if candidacy.term > highest:
            highest = candidacy.term
        live = member.is_self or member.state in _LIVE
        if candidacy.leading and live:
            claims.append(((candidacy.term, rank), member, candidacy))
            leading_self = leading_self or member.is_self
        if candidacy.reach != Reach.NONE and (member.is_self or member.state == MemberState.ALIVE):
            candidates.append((rank, member))
    candidates.sort(key=lambda item: item[0], reverse=True)
    ranked = tuple(member.node_id for _, member in candidates)
    if claims:
        _, winner, candidacy = max(claims, key=lambda item: item[0])
        view = LeaderView(winner.node_id, candidacy.term, winner.is_self,
                          winner.record.hostname)
        return Decision(view, highest, False, leading_self and not winner.is_self, ranked)
    rank = ranked.index(own_id) if own_id in ranked else None
    claim = rank is not None and leaderless_for >= rank * claim_stagger_s
    return Decision(None, highest, claim, False, ranked)


class MembershipView(Protocol):
    """What the election needs of ``Membership``."""

    node_id: bytes

    @property
    def record(self) -> NodeRecord: ...

    def members(self) -> list[Member]: ...

    def update_record(self, *, push: bool = False, **fields: Any) -> NodeRecord: ...

    def on_change(self, callback: Callable[..., Any]) -> Callable[[], None]: ...


class TermStore:
    """The highest term this node has seen or claimed, on disk (written before it is
    published, atomically), so a restarted node never claims a term it used before."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise ElectionError(f"{self.path}: cannot read the election term: {exc}") from exc
        if not text.isdigit():
            log.warning("term_file_corrupt", path=str(self.path))
            return 0
        return int(text)

    def save(self, term: int) -> None:
        try:
            write_atomically(self.path, f"{term}\n".encode("ascii"), mode=0o666)
        except OSError as exc:
            raise ElectionError(f"{self.path}: cannot write the election term: {exc}") from exc


class ElectionError(MeshError):
    """The election could not persist its state."""


LeaderListener = Callable[[LeaderView | None], None]


class Election:
    """One node's participation in its mesh's election."""

    def __init__(self, membership: MembershipView, settings: ElectionSettings | None = None,
                 *, store: TermStore | None = None,
                 clock: Callable[[], float] | None = None,
                 started: float | None = None) -> None:
        self.membership = membership
        self.node_id = membership.node_id
        self.settings = settings or ElectionSettings()
        self.store = store
        # The event loop's clock by default, so a virtual-clock loop drives it in tests.
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.started = time.time() if started is None else started
        self.known_term = store.load() if store is not None else 0
        self.leader: LeaderView | None = None
        self._reach = Reach.OK if self.settings.eligible else Reach.NONE
        self._failing_until = 0.0
        self._leaderless_since: float | None = None
        self._published: Candidacy | None = None
        self._listeners: list[LeaderListener] = []
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._refusals = 0
        self._ranked: tuple[bytes, ...] = ()
        self._evaluating = False
        self._again = False
        self._pending: asyncio.Handle | None = None
        self._pending_soon = False  # ``_pending`` runs on the next turn, not after a settle
        self._book = CandidacyBook()
        self._claims_from = 0.0
        self._timed = asyncio.Event()  # set while time alone can change the outcome

    # --- public -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.leader is not None and self.leader.is_self

    @property
    def term(self) -> int:
        """The term this node leads at (0 when it does not lead)."""
        return self.leader.term if self.is_leader and self.leader else 0

    def on_change(self, listener: LeaderListener) -> None:
        """Call ``listener(leader or None)`` whenever the leader (or its term) changes."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._publish(self._candidacy(leading=False, term=self.known_term))
        self._claims_from = self.clock() + self.settings.startup_grace_s
        self._unsubscribe = self.membership.on_change(self._view_changed)
        self._task = asyncio.create_task(self._tick(), name="election")
        self.evaluate()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def report_reach(self, ok: bool) -> None:
        """The uplink connected (``ok``) or has failed for too long. A failing leader
        steps down if another eligible node, not known to fail, is alive to take over."""
        if ok:
            self._refusals = 0
            if self._reach == Reach.FAILING:
                self._set_reach(Reach.OK)
            return
        if self._reach != Reach.OK:
            return
        self._failing_until = self.clock() + self.settings.failing_for_s
        self._set_reach(Reach.FAILING)
        if self.is_leader and self._healthy_alternative():
            log.warning("leader_stepping_down", term=self.term, reason="web service unreachable")
            self._publish(self._candidacy(leading=False, term=self.known_term))
        self.evaluate()

    def fenced(self, term_hint: int = 0) -> float:
        """The web service refused (or superseded) our uplink at our term. Takes a new
        term above every term known (and ``term_hint``), jumping 2^k on the k-th refusal
        in a row; returns the delay the caller waits before connecting with it."""
        if not self.is_leader:
            return 0.0
        self._refusals += 1
        jump = 1 << min(self._refusals - 1, 20)
        term = max(self.known_term, term_hint) + jump
        self._take_term(term)
        self._publish(self._candidacy(leading=True, term=term))
        self.evaluate()
        return min(self.settings.refused_retry_max_s,
                   self.settings.refused_retry_min_s * (1 << min(self._refusals - 1, 30)))

    def status(self) -> dict[str, Any]:
        """For the control socket and ``meshctl leader``."""
        return {"leader": self.leader.to_dict() if self.leader else None,
                "self": self.node_id.hex(), "known_term": self.known_term,
                "reach": self._reach.name.lower(), "eligible": self.settings.eligible,
                "candidates": [node.hex() for node in self._ranked]}

    # --- the rule ------------------------------------------------------------------

    def evaluate(self) -> None:
        """Apply ``decide`` to the current view and act on it (claim, step down, notify).

        Publishing our record notifies membership listeners, this one included: a call
        made while evaluating only asks for one more round. An evaluation covers every
        change reported before it, so one still scheduled for them is cancelled."""
        if self._evaluating:
            self._again = True
            return
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._evaluating = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._evaluate_once()
        finally:
            self._evaluating = False

    def _view_changed(self, member: Member, *_: Any) -> None:
        """Membership's change listener: one evaluation for however many changes arrive
        before it (a full-state merge reports every member at once); on the next loop turn
        for leadership news, else after ``view_settle_s`` (see the module docstring)."""
        if self._evaluating:
            self._again = True
            return
        soon = self._leadership_news(member)
        if self._pending is not None and (self._pending_soon or not soon):
            return
        if self._pending is not None:
            self._pending.cancel()
        loop = asyncio.get_running_loop()
        self._pending_soon = soon
        self._pending = (loop.call_soon(self._evaluate_pending) if soon else
                         loop.call_later(self.settings.view_settle_s, self._evaluate_pending))

    def _leadership_news(self, member: Member) -> bool:
        """Whether a change of ``member`` may change the leader, the terms or our claim."""
        if member.is_self or (self.leader is not None
                              and member.node_id == self.leader.node_id):
            return True
        if self.leader is None and self._reach != Reach.NONE and \
                self.clock() >= self._claims_from:
            return True  # leaderless: any change may reorder the succession
        # (Still in the start-up grace nobody claims; the tick evaluates at its end.)
        candidacy = self._book.candidacy(member)
        return candidacy is not None and (candidacy.leading
                                          or candidacy.term > self.known_term)

    def _evaluate_pending(self) -> None:
        self._pending = None
        self.evaluate()

    def _evaluate_once(self) -> None:
        now = self.clock()
        if self._reach == Reach.FAILING and now >= self._failing_until:
            self._set_reach(Reach.OK)
        members = self.membership.members()
        # Succession delays count from the end of the start-up grace, so that nodes that
        # start together do not all find their turn has come when it ends.
        leaderless_for = 0.0 if self._leaderless_since is None else \
            max(0.0, now - max(self._leaderless_since, self._claims_from))
        decision = decide(members, self.node_id, leaderless_for, self.settings.claim_stagger_s,
                          self.known_term, self._book)
        self._ranked = decision.ranked
        if decision.highest_term > self.known_term:
            self._take_term(decision.highest_term)
        if decision.step_down:
            log.event("leader_stepping_down", term=self.term,
                      successor=decision.leader.node_id.hex() if decision.leader else None)
            self._publish(self._candidacy(leading=False, term=self.known_term))
        if decision.claim and now >= self._claims_from:
            term = self.known_term + 1
            self._take_term(term)
            self._refusals = 0
            self._publish(self._candidacy(leading=True, term=term))
            log.event("leader_claimed", term=term, leaderless_s=round(leaderless_for, 3))
            decision = decide(self.membership.members(), self.node_id, 0.0,
                              self.settings.claim_stagger_s, self.known_term, self._book)
        self._leaderless_since = None if decision.leader else (
            self._leaderless_since if self._leaderless_since is not None else now)
        self._set_leader(decision.leader)
        if self._time_matters():
            self._timed.set()

    # --- helpers --------------------------------------------------------------------

    def _healthy_alternative(self) -> bool:
        return any(not member.is_self and member.state == MemberState.ALIVE
                   and candidacy.reach == Reach.OK
                   for member, candidacy, _ in self._book.read(self.membership.members()))

    def _candidacy(self, *, leading: bool, term: int) -> Candidacy:
        return Candidacy(term, leading, self.settings.preference, self.started, self._reach)

    def _own(self) -> Candidacy | None:
        return candidacy_of(self.membership.record)

    def _set_reach(self, reach: Reach) -> None:
        self._reach = reach
        if self._time_matters():
            self._timed.set()
        own = self._own()
        leading = own.leading if own is not None else False
        self._publish(self._candidacy(leading=leading, term=self.known_term))

    def _take_term(self, term: int) -> None:
        """Remember ``term`` as seen, on disk first (a claim must survive a restart)."""
        if term <= self.known_term:
            return
        if self.store is not None:
            self.store.save(term)
        self.known_term = term

    def _publish(self, candidacy: Candidacy) -> None:
        if candidacy == self._published:
            return
        # Leadership news (a claim, a new term, a step-down) is pushed to every live
        # member: failover must not wait for gossip to reach the last of them.
        leadership = candidacy.leading or (self._published is not None
                                           and self._published.leading)
        self._published = candidacy
        self.membership.update_record(election=candidacy.encode(), push=leadership)

    def _set_leader(self, leader: LeaderView | None) -> None:
        if leader == self.leader:
            return
        old, self.leader = self.leader, leader
        log.event("leader_changed", leader=leader.node_id.hex() if leader else None,
                  term=leader.term if leader else None,
                  previous=old.node_id.hex() if old else None, self_leads=self.is_leader)
        for listener in list(self._listeners):
            try:
                listener(leader)
            except MeshError as exc:
                log.warning("leader_listener_failed", error=f"{type(exc).__name__}: {exc}")

    def _time_matters(self) -> bool:
        """Whether waiting alone can change the outcome: our turn to claim comes with time
        while leaderless and eligible, and a FAILING mark lapses."""
        return (self.leader is None and self.node_id in self._ranked) or \
            self._reach == Reach.FAILING

    async def _tick(self) -> None:
        """Time-driven steps: succession while leaderless (stagger, start-up grace) and
        the end of a FAILING mark. Changes of the view are evaluated as they come; with a
        leader and a reachable service nothing here is due, and the task sleeps."""
        while True:
            if not self._time_matters():
                self._timed.clear()
                await self._timed.wait()
            await asyncio.sleep(self.settings.tick_s)
            if self._time_matters():
                self.evaluate()

