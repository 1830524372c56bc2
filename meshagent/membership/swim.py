"""SWIM membership with Lifeguard, over sealed datagrams, with signed node records.

Pipeline of one received datagram (``_on_datagram``, runs in the event loop, never raises):

    per-source token bucket -> size limit -> PeerKeys.open (version, receiver, sender
    certificate, epoch, AES-GCM tag, replay window) -> decode_messages -> one handler per
    message. Every drop increments ``counters["dropped_<reason>"]`` and writes a
    rate-limited log line; nothing from outside can raise out of this path.

Failure detection (SWIM, Das et al. 2002; Lifeguard, Dadgar et al. 2018):

* ``_probe_loop``: every probe interval, ping the next member of a shuffled round robin.
  No ack within the probe timeout -> ask ``indirect_checks`` members to ping it (they nack
  if it does not answer, so a node that hears no nacks blames itself: local health) and
  try a TCP ping. A refused TCP connect proves the agent is gone: UNREACHABLE at once.
  No ack by the end of the interval -> SUSPECT, gossiped.
* A suspicion expires after Lifeguard's dynamic timeout (``Suspicion``), shortened by
  independent confirmations; then UNREACHABLE, gossiped as Dead.
* A suspected node refutes by signing its record again at a higher incarnation. Pings to
  a suspect carry the suspicion (buddy system), so it learns and refutes at once.
* A probe whose timers fired late (this process did not get the CPU) is inconclusive: it
  raises our local health score instead of a suspicion.
* Crash fast path: every node keeps liveness streams ("watches", ``streams.py``) to its
  successors on a ring of node ids. When one ends without a goodbye, or a session layer
  calls ``report_connection_lost``, the node checks at once: TCP refused -> Dead
  (crashed); no answer -> suspect now instead of at the next probe.

Dissemination: every message about a member goes into the ``BroadcastQueue`` and rides on
pings, acks and gossip datagrams (``gossip_fanout`` random members per gossip interval,
immediately when the news is urgent). New records travel as small ``Announce``s; a member
that lacks the announced incarnation ``Fetch``es the record from the announcer, and if no
reply comes within the probe timeout, from another member that announced it meanwhile.
``update_record(push=True)`` also sends the record straight to every live member (rare,
urgent news: a leadership claim), so it does not wait on an epidemic's luck. Full state
is exchanged over TCP (``streams.py``): on join, quickly while the view keeps changing,
then every push-pull interval; unreachable members are retried now and then, which merges
healed partitions. Pings, acks and gossip carry a ``Digest`` of the records held; a
member whose view has been still for ``repair_interval_s`` but differs from a peer's, or
whose record count has stood still for a probe interval below a peer's, exchanges state
with it (rate limited), which repairs what lost datagrams left out.

Records: only records that verify (``RecordVerifier``: certificate against the mesh trust
and revocation list, signature by the certificate's key) and carry a higher incarnation
than the one held are accepted. A member is dropped when its certificate expires, at that
moment (``_check_expiry``), as when a revocation list names it; ``adopt_certificate`` takes
a renewal of our own certificate while we run.

Root-signed documents (revocation list, allowlist; see ``meshagent.trustdocs``) are held in
``documents``. A newly adopted one is announced by gossip (``Document``: kind, version); a
member holding an older version fetches the documents from the announcer over a stream,
and every state exchange carries them too, so the newest version reaches every member
whatever its size. A newer revocation list drops the members it revokes.

Join tokens: every token-made certificate in an accepted record claims its token in
``redeemed`` (``identity.RedeemedTokens``); a token presented by two nodes is burnt, its
holders dropped and refused, and the two certificates proving it travel in every state
exchange, so every member burns it, on whichever side of the mesh each node redeemed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from meshagent.identity import (
    CertificateError,
    JoinTokenReused,
    MembershipCertificate,
    MeshTrust,
    NodeIdentity,
    RedeemedTokens,
    RevocationList,
    UntrustedCertificate,
)
from meshagent.log import get_logger
from meshagent.membership.broadcast import BroadcastQueue
from meshagent.membership.messages import (
    POWER_STATES,
    Ack,
    Alive,
    Announce,
    Dead,
    Digest,
    Document,
    Fetch,
    Message,
    MessageError,
    Nack,
    Ping,
    PingReq,
    Power,
    Suspect,
    decode_messages,
    encode_one,
    pack_encoded,
)
from meshagent.membership.ratelimit import SourceRateLimiter
from meshagent.membership.sealing import DATAGRAM_OVERHEAD, PeerKeys, SealError
from meshagent.membership.state import (
    Member,
    MemberChange,
    MemberEntry,
    MemberState,
    SampleSet,
    ViewDigest,
)
from meshagent.membership.streams import StreamService
from meshagent.membership.suspicion import LocalHealth, Suspicion
from meshagent.profiles import Profile
from meshagent.record import (
    MAX_RECORD_BYTES,
    NodeRecord,
    RecordError,
    RecordVerifier,
    initial_incarnation,
)
from meshagent.transport import (
    CHANNEL_MEMBERSHIP,
    Address,
    Transport,
    format_address,
    parse_address,
)
from meshagent.trustdocs import REVOCATIONS, TrustDocumentError, TrustDocuments

__all__ = ["Membership", "ChangeCallback"]

log = get_logger(__name__)

ChangeCallback = Callable[[Member, MemberState | None, MemberState], Any]
MAX_DATAGRAM_IN = 2 * MAX_RECORD_BYTES + 4096
_SEQ_MOD = 1 << 32
SYNCED_RECORD_SENDS = 2
MAX_FETCHES = 256  # records being fetched at once
MAX_FETCH_HOLDERS = 4  # members remembered per fetch, to ask again if its reply is lost
MAX_SEEDS = 64  # seeds kept, configured ones and those of joins that reached nobody


class _Fetch:
    """A record we asked a member for: when, and which members announced it meanwhile
    (they hold it; asked in turn, the latest first, while no reply comes back)."""

    __slots__ = ("asked", "holders", "retries")

    def __init__(self, asked: float) -> None:
        self.asked = asked
        self.holders: list[bytes] = []
        self.retries = 0

    def add_holder(self, node_id: bytes) -> None:
        if node_id not in self.holders and len(self.holders) < MAX_FETCH_HOLDERS:
            self.holders.append(node_id)


class _Probe:
    """An outstanding ping (ours, or one we relay for a ping-req)."""

    __slots__ = ("acked", "nacks", "on_ack")

    def __init__(self, on_ack: Callable[[], None] | None = None) -> None:
        self.acked = asyncio.Event()
        self.nacks = 0
        self.on_ack = on_ack


class Membership:
    """One node's membership: who is in the mesh, in which state, with which record.

    ``seeds`` are contacted at start and whenever this node is alone; ``advertise`` are
    the "host:port" endpoints put in our record (default: the transport's address);
    ``record_fields`` the initial ``NodeRecord`` fields. ``verifier`` may be shared by
    nodes of one mesh in one process, ``rng`` makes runs reproducible, and ``peer_keys``
    replaces the pair-key agreement (simulations only, see ``simulation.py``).
    """

    def __init__(self, identity: NodeIdentity, certificate: MembershipCertificate,
                 trust: MeshTrust, transport: Transport, *, profile: Profile = Profile.LAN,
                 seeds: Sequence[Address] = (), advertise: Sequence[str] = (),
                 record_fields: dict[str, Any] | None = None,
                 revocations: RevocationList | None = None,
                 verifier: RecordVerifier | None = None,
                 rng: random.Random | None = None,
                 peer_keys: PeerKeys | None = None,
                 documents: TrustDocuments | None = None,
                 redeemed: RedeemedTokens | None = None) -> None:
        if certificate.node_id != identity.node_id:
            raise CertificateError("the certificate is not this node's")
        self.identity = identity
        self.certificate = certificate
        self.trust = trust
        self.transport = transport
        self.profile = profile
        self.seeds = list(seeds)
        self.node_id = identity.node_id
        self.counters: Counter[str] = Counter()
        # Root-signed documents; ``revocations`` mirrors the held list for the hot paths.
        self.documents = documents or TrustDocuments(trust)
        if revocations is not None and revocations.signed is not None and \
                revocations.version > self.documents.version(REVOCATIONS):
            self.documents.offer(REVOCATIONS, revocations.to_wire(), "start")
        self.revocations: RevocationList = self.documents.current(REVOCATIONS) or \
            RevocationList.empty(trust.mesh_id)
        self.documents.on_adopted(self._document_adopted)
        # Kinds being fetched from an announcer -> the newest (version, announcer) heard
        # meanwhile, fetched next.
        self._document_fetches: dict[str, tuple[int, bytes] | None] = {}
        self.redeemed = redeemed if redeemed is not None else RedeemedTokens()
        self.redeemed.on_burnt(self._token_burnt)
        with contextlib.suppress(JoinTokenReused):  # logged; the mesh refuses us then
            self.redeemed.claim(certificate)
        self.verifier = verifier or RecordVerifier(trust)
        self.random = rng or random.Random()
        self.health = LocalHealth(profile.max_health_multiplier)
        self.keys = peer_keys or PeerKeys(identity, certificate, self.verifier,
                                          lambda: self.revocations)
        self.keys.accept_older_epoch = self._may_have_restarted
        self.streams = StreamService(self)
        self._advertise = list(advertise)
        self._record_fields = dict(record_fields or {})
        self._members: dict[bytes, MemberEntry] = {}
        self._known_wires: dict[bytes, bytes] = {}
        self._fetching: dict[bytes, _Fetch] = {}  # node id -> our request for its record
        self._checking: set[bytes] = set()  # members whose port we are checking now
        self._fetches: list[Message] = []  # to send back to the sender of this datagram
        self._fetched: list[bytes] = []  # records it asked us for
        self._live = SampleSet()  # members in a probed state, this node included
        self._digest = ViewDigest()
        self._digested_documents = self.documents.versions()
        for kind, version in self._digested_documents.items():
            self._digest.toggle_document(kind, version, 0.0)
        self._last_repair = float("-inf")
        # Since when, and until when last, peers' digests have differed from ours.
        self._differs_since = self._differs_seen = float("-inf")
        # Since when peers have held more records than we do (our count standing still),
        # and the timer that repairs it when no digest comes to say so (``_on_digest``).
        self._deficit_since = float("-inf")
        self._deficit_timer: asyncio.TimerHandle | None = None
        self._queue = BroadcastQueue()
        self._limiter = SourceRateLimiter(profile.flood_rate_per_s, profile.flood_burst)
        self._probes: dict[int, _Probe] = {}
        self._seq = self.random.randrange(_SEQ_MOD)
        self._probe_order: list[bytes] = []
        self._callbacks: list[ChangeCallback] = []
        self._difference_callbacks: list[Callable[[], None]] = []
        self._subscribers: list[asyncio.Queue[MemberChange]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._urgent = asyncio.Event()
        self._gossip_due = asyncio.Event()  # something queued or being fetched
        self._resync = asyncio.Event()  # wakes the sync loop
        self._exchange_now = False  # ... to exchange at once, not to plan again
        self._view_changed = True
        self._fast_syncs_left = profile.fast_sync_rounds
        self._rejoining = False  # a join reached nobody: retrying soon while alone
        self._next_expiry = math.inf  # wall-clock time the next certificate held expires
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._own_expiry_logged = False
        # Who holds a renewal for a node whose certificate has ended (``streams``' renewal
        # request): the certificate's wire bytes, or None. Set by whoever keeps them.
        self.renewal_for: Callable[[MembershipCertificate], bytes | None] = \
            lambda certificate: None
        self._running = False
        self._leaving = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ================================================================ public API

    @property
    def record(self) -> NodeRecord:
        return self._members[self.node_id].record

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Listen, sign our record, start the protocol loops and join the seeds."""
        self._loop = asyncio.get_running_loop()
        self.transport.set_datagram_handler(self._on_datagram)
        self.transport.set_stream_handler(CHANNEL_MEMBERSHIP, self.streams.accept)
        await self.transport.start()
        endpoints = self._advertise or [format_address(self.transport.local_address)]
        # The seed list every agent of a mesh shares names the seeds themselves too.
        self.seeds = [address for address in self.seeds if not self._is_own(address)]
        fields = {"hostname": self.certificate.hostname} | self._record_fields
        record = NodeRecord.sign(self.identity, self.certificate,
                                 incarnation=initial_incarnation(), addresses=endpoints,
                                 **fields)
        self._members[self.node_id] = MemberEntry(
            record, self.transport.local_address, MemberState.ALIVE,
            state_since=time.time(), state_incarnation=record.incarnation,
            last_seen=time.time())
        self._index_record(None, record)
        self._live.add(self.node_id)
        self._running = True
        self._watch_expiry(self.certificate.expires)
        for loop_body in (self._probe_loop, self._gossip_loop, self._sync_loop,
                          self._maintenance_loop):
            self._spawn(loop_body())
        if self.seeds:
            self._spawn(self.join(self.seeds))

    async def join(self, addresses: Iterable[Address]) -> int:
        """Exchange full state with each address; returns how many answered.

        When none answered (the mesh is down, or a seed too busy to answer a burst of
        joins in time), the addresses are kept as seeds and tried again soon while this
        node is alone: after two probe intervals, doubling; once the wait reaches the
        reconnect interval the maintenance loop takes over, as for configured seeds
        (serf's retry_join). At 100 agents on 2 cores the seed now and then failed one of
        99 simultaneous joins; waiting a whole reconnect interval (5-15 s) for the retry
        set the join time of the whole mesh."""
        joined = await self._join_once(addresses)
        if not joined and not self._rejoining and self._running:
            self._rejoining = True
            self._spawn(self._rejoin_soon())
        return joined

    def _is_own(self, address: Address) -> bool:
        return address == self.transport.local_address or \
            format_address(address) in self._advertise

    async def _join_once(self, addresses: Iterable[Address]) -> int:
        addresses = [address for address in addresses if not self._is_own(address)]
        results = await asyncio.gather(*(self.streams.sync(address) for address in addresses))
        joined = sum(1 for ok in results if ok)
        if joined:
            self._converge_quickly()
        else:
            for address in addresses:
                if address not in self.seeds and len(self.seeds) < MAX_SEEDS:
                    self.seeds.append(address)
        return joined

    async def _rejoin_soon(self) -> None:
        delay = 2 * self.profile.probe_interval_s
        try:
            while delay < self.profile.reconnect_interval_s:
                await asyncio.sleep(delay * (0.5 + self.random.random()))
                if not self._running or self._alive_count() > 1 or not self.seeds:
                    return
                self.counters["joins_retried"] += 1
                if await self._join_once(self.seeds):
                    return
                delay *= 2
        finally:
            self._rejoining = False

    async def stop(self) -> None:
        """Stop without saying goodbye (peers notice the departure as a crash)."""
        if not self._running:
            return
        self._running = False
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self._deficit_timer is not None:
            self._deficit_timer.cancel()
        while self._tasks:  # tasks may spawn tasks while they wind down
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for entry in self._members.values():
            if entry.timer is not None:
                entry.timer.cancel()
        await self.transport.close()

    async def leave(self, timeout: float = 2.0) -> None:
        """Tell the mesh we are leaving (signed), give gossip a moment, then stop."""
        if not self._running:
            return
        self._leaving = True
        me = self._replace_own_record(leaving=True)
        self._set_state(me, MemberState.LEFT)
        self._announce(me.record)
        targets = self._random_members(self.profile.gossip_fanout * 2)
        for node_id in targets:
            self._send(node_id, [Alive(me.record.wire)], piggyback=False)
        await self.streams.say_goodbye()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self._queue) and self._alive_count() > 1:
                    self._urgent.set()
                    await asyncio.sleep(self.profile.gossip_interval_s)
        await self.stop()

    def members(self) -> list[Member]:
        """Every member we know of, this node included (``is_self``)."""
        return [entry.snapshot(node_id == self.node_id)
                for node_id, entry in self._members.items()]

    def member(self, node_id: bytes) -> Member | None:
        entry = self._members.get(node_id)
        return entry.snapshot(node_id == self.node_id) if entry is not None else None

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(member, old_state, new_state)`` on every state change (a
        coroutine function is scheduled as a task). Returns an unsubscribe function."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def on_view_difference(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` whenever a member's view digest differs from ours: news is
        still spreading (or a view needs repair). Returns an unsubscribe function."""
        self._difference_callbacks.append(callback)
        return lambda: (self._difference_callbacks.remove(callback)
                        if callback in self._difference_callbacks else None)

    async def changes(self) -> AsyncIterator[MemberChange]:
        """Every change from now on, in order, for as long as the caller iterates."""
        queue: asyncio.Queue[MemberChange] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    def update_record(self, *, push: bool = False, **fields: Any) -> NodeRecord:
        """Change our record (hostname, os, addresses, agent_version, power_source, load,
        amt_present, tags, election), sign it at the next incarnation and gossip it.

        ``push`` also sends the signed record straight to every live member, at once: for
        rare news that must reach everyone now (a leadership claim). Gossip alone is an
        epidemic: each holder announces to ``retransmit_limit`` random members, so now and
        then a member hears nothing until a digest repair, ``repair_interval_s`` later.
        A push costs one record-sized datagram per live member; members it misses (lost
        datagrams) still learn by the gossip the others start when they accept it."""
        me = self._replace_own_record(**fields)
        self._announce(me.record)
        if push:
            self._push_own_record()
        self._notify(me, MemberState.ALIVE)
        return me.record

    def mark_asleep(self, node_id: bytes, power_state: str = "asleep",
                    record: Any = None) -> None:
        """The AMT bridge confirmed ``node_id`` sleeps ("asleep") or is off ("off").

        Stops suspicion of it, keeps ``record`` (the AMT-side evidence) on the member and
        gossips the state; the node's agent refutes when it wakes.
        """
        if power_state not in POWER_STATES:
            raise ValueError(f"power state must be one of {POWER_STATES}")
        entry = self._members.get(node_id)
        if entry is None or node_id == self.node_id:
            raise KeyError(f"no member {node_id.hex()}")
        entry.power_record = record  # set first: listeners of the change see the evidence
        before = entry.state
        self._on_power(Power(node_id, entry.state_incarnation, power_state, self.node_id))
        if entry.state == before and before in (MemberState.ASLEEP, MemberState.OFF):
            self._notify(entry, before)  # same state, new evidence (as for a new record)

    def update_revocations(self, revocations: RevocationList) -> bool:
        """Adopt a newer root-signed revocation list (spread, applied); True if newer."""
        if revocations.signed is None or revocations.version <= self.revocations.version:
            return False
        return self.documents.offer(REVOCATIONS, revocations.to_wire())

    def adopt_certificate(self, certificate: MembershipCertificate) -> None:
        """Take a renewed certificate for this node without a restart.

        It must be for this node's keys, of this mesh, valid now, not revoked and not of
        a burnt join token: else a ``CertificateError`` (typed, logged by the caller) and
        nothing changes. Then our record is signed again with it at the next incarnation
        and announced, our next datagram to every peer and every stream hello carry it,
        and a state exchange follows at once: peers that dropped us when the old one
        expired take us back from it."""
        if (certificate.sign_public != self.identity.sign_public
                or certificate.dh_public != self.identity.dh_public):
            raise UntrustedCertificate("certificate is for other keys than this node's")
        MembershipCertificate.verify(certificate.to_wire(), self.trust,
                                     revocations=self.revocations)
        self.redeemed.claim(certificate)
        self.certificate = certificate
        self.keys.use_certificate(certificate)
        self._own_expiry_logged = False
        self.counters["certificates_adopted"] += 1
        if not self._running:
            return  # start() signs the first record with it
        me = self._replace_own_record(certificate=certificate)
        self._announce(me.record)
        self._notify(me, MemberState.ALIVE)
        self._watch_expiry(certificate.expires)
        self._spawn(self._exchange_after_renewal())

    async def _exchange_after_renewal(self) -> None:
        """Exchange state now with a live member or, when our certificate had expired
        long enough for us to hold every peer unreachable (nobody answered us), with one
        of those: waiting for the maintenance loop's next turn left us out for up to a
        reconnect interval after the renewal. The seeds when we know nobody."""
        live = self._random_members(1)
        unreachable = [node_id for node_id, entry in self._members.items()
                       if entry.state == MemberState.UNREACHABLE]
        target = live[0] if live else (self.random.choice(unreachable) if unreachable
                                       else None)
        if target is not None and await self.streams.sync_with(target):
            self._converge_quickly()  # as after a join: a few fast rounds follow
        elif self.seeds:
            await self._join_once(self.seeds)

    def offer_document(self, kind: str, wire: bytes, source: str) -> bool:
        """A root-signed document from a peer: adopted if newer (True). A refused one is
        counted as ``dropped_document_<reason>`` (the store logs it) and changes nothing."""
        try:
            return self.documents.offer(kind, wire, source)
        except TrustDocumentError as exc:
            self.counters[f"dropped_document_{exc.reason}"] += 1
            return False

    def report_connection_lost(self, node_id: bytes) -> None:
        """A stream to ``node_id`` ended unexpectedly (reset or EOF): check it now."""
        entry = self._members.get(node_id)
        if (self._running and entry is not None and entry.state.probed
                and node_id not in self._checking):
            self._checking.add(node_id)
            self._spawn(self._check_lost(node_id))

    # ================================================================ receive path

    def _on_datagram(self, data: bytes, source: Address) -> None:
        loop = self._loop
        if loop is None or not self._running:
            return
        if not self._limiter.allow(source[0], loop.time()):
            self._drop("flood", source)
            return
        if len(data) > MAX_DATAGRAM_IN:
            self._drop("oversize", source)
            return
        try:
            sender, plaintext = self.keys.open(data)
            messages, errors = decode_messages(plaintext)
        except (SealError, MessageError) as exc:
            self._drop(exc.reason, source, str(exc))
            return
        for error in errors:
            self._drop(error.reason, source, str(error))
        self.counters["datagrams_received"] += 1
        entry = self._members.get(sender)
        if entry is not None:
            entry.last_seen = time.time()
            if entry.address != source and entry.state.probed:
                entry.address = source  # the member moved (new network, NAT rebinding)
        self._fetches, self._fetched = [], []
        if entry is None:
            # A member that knows us before we know it: ask for its record.
            self._on_announce(Announce(sender, 0), sender)
        for message in messages:
            self._dispatch(message, sender, source)
        self._answer_fetches(sender, source)

    def _answer_fetches(self, sender: bytes, source: Address) -> None:
        """Send the fetches and fetched records one datagram produced, batched."""
        if not self._fetches and not self._fetched:
            return
        if self._fetches:
            self._send(sender, self._fetches, address=source)
        budget = self.profile.max_datagram - DATAGRAM_OVERHEAD - 8
        batch: list[Message] = []
        used = 0
        for wire in self._fetched:
            if batch and used + len(wire) + 8 > budget:
                self._send(sender, batch, piggyback=False, address=source)
                batch, used = [], 0
            batch.append(Alive(wire))
            used += len(wire) + 8
        if batch:
            self._send(sender, batch, address=source)
        self._fetches, self._fetched = [], []

    def _dispatch(self, message: Message, sender: bytes, source: Address) -> None:
        # Most frequent first: a join's datagrams are mostly announcements and records.
        if isinstance(message, Announce):
            self._on_announce(message, sender)
        elif isinstance(message, Alive):
            self.accept_record(message.record, source, from_owner_at=sender)
        elif isinstance(message, Fetch):
            entry = self._members.get(message.node)
            if entry is not None and len(self._fetched) < MAX_FETCHES:
                self._fetched.append(entry.record.wire)
        elif isinstance(message, Dead):
            self._on_dead(message)
        elif isinstance(message, Digest):
            self._on_digest(message, sender)
        elif isinstance(message, Ping):
            self._on_ping(message, sender, source)
        elif isinstance(message, Ack):
            probe = self._probes.get(message.seq)
            if probe is not None:
                probe.acked.set()
                if probe.on_ack is not None:
                    probe.on_ack()
        elif isinstance(message, PingReq):
            self._on_ping_req(message, sender)
        elif isinstance(message, Nack):
            probe = self._probes.get(message.seq)
            if probe is not None:
                probe.nacks += 1
        elif isinstance(message, Suspect):
            self._on_suspect(message)
        elif isinstance(message, Power):
            self._on_power(message)
        elif isinstance(message, Document):
            self._on_document_news(message, sender)

    def _drop(self, reason: str, source: Address | None, detail: str = "") -> None:
        self.counters[f"dropped_{reason}"] += 1
        peer = format_address(source) if source is not None else "-"
        log.warn_limited("membership_input_dropped", key=(reason, peer), reason=reason,
                         peer=peer, detail=detail)

    # ---------------------------------------------------------------- probes answered

    def _on_ping(self, ping: Ping, sender: bytes, source: Address) -> None:
        """Ack. A prober that suspects us learns our refutation in the same datagram:
        gossip spends its few sends of the news within a fraction of a second, and a
        member it missed would otherwise time us out (a 2 s pause seen as a failure)."""
        messages: list[Message] = [Ack(ping.seq), self._view_digest()]
        if ping.suspected:
            self._refute(ping.suspected)
            me = self._members[self.node_id]
            if me.state_incarnation > ping.suspected:
                messages.insert(1, Alive(me.record.wire))
        self._send(sender, messages, address=source)

    def _on_ping_req(self, request: PingReq, requester: bytes) -> None:
        target = self._members.get(request.target)
        if target is None or not self.keys.knows(request.target) or request.target in (
                self.node_id, requester):
            self._send(requester, [Nack(request.seq)])
            return
        seq = self._next_seq()

        def relay_ack() -> None:
            self._send(requester, [Ack(request.seq)])

        probe = _Probe(relay_ack)
        self._probes[seq] = probe
        self._send(request.target, [Ping(seq, request.target, request.suspected)])
        self._spawn(self._nack_later(seq, probe, requester, request.seq))

    async def _nack_later(self, seq: int, probe: _Probe, requester: bytes,
                          requester_seq: int) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.profile.probe_timeout_s * 0.8):
                    await probe.acked.wait()
            if not probe.acked.is_set():
                self._send(requester, [Nack(requester_seq)])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.profile.probe_interval_s):
                    await probe.acked.wait()
        finally:
            self._probes.pop(seq, None)

    # ---------------------------------------------------------------- state claims

    def node_of_wire(self, wire: bytes) -> bytes | None:
        """The member whose current record is exactly ``wire`` (no parsing), if any."""
        return self._known_wires.get(wire)

    def accept_record(self, wire: bytes, source: Address | None = None,
                      from_owner_at: bytes | None = None, rebroadcast: bool = True) -> bool:
        """Take a record (gossip, state exchange, beacon) if it is valid and newer.

        ``source`` is where the bytes came from (for drop logs); when ``from_owner_at``
        names the record's own node, ``source`` is also where that node can be reached.
        Accepted records are announced by gossip (``Announce``; members fetch them).
        ``rebroadcast=False`` for records learnt in a full-state exchange: they also spread
        by those exchanges, so they are announced only ``SYNCED_RECORD_SENDS`` times,
        behind fresh news (the record of ``from_owner_at`` itself in full: that is a join).
        """
        if wire in self._known_wires:
            return False
        entry = None
        try:
            record = self.verifier.parse(wire)
            if record.node_id == self.node_id:
                self._on_own_record(record)
                return False
            entry = self._members.get(record.node_id)
            if entry is not None and record.incarnation <= entry.state_incarnation:
                return False
            record = self.verifier.verify(record, self.revocations)
            self.redeemed.claim(record.cert)
        except RecordError as exc:
            self._drop(exc.reason, source, str(exc))
            return False
        except JoinTokenReused as exc:
            self._drop("token_reused", source, str(exc))
            return False
        self.keys.learn(record.cert)
        new_state = MemberState.LEFT if record.leaving else MemberState.ALIVE
        direct = source if from_owner_at == record.node_id else None
        if entry is None:
            address = direct or self._address_of(record)
            if address is None:
                self._drop("malformed_record", source, "record has no usable address")
                return False
        self._index_record(entry.record if entry is not None else None, record)
        if entry is None:
            # state_since and last_seen are wall-clock (shown to people, and compared
            # with the reap ages); grace_until is event-loop time, like the probes.
            entry = MemberEntry(record, address, new_state, state_since=time.time(),
                                state_incarnation=record.incarnation,
                                last_seen=time.time(),
                                grace_until=self._now() + self._probe_grace())
            self._members[record.node_id] = entry
            if new_state.probed:
                self._live.add(record.node_id)
            else:
                self._digest.toggle_state(record.node_id, new_state, self._now())
            self._probe_order.insert(self.random.randrange(len(self._probe_order) + 1),
                                     record.node_id)
            self._view_changed = True
            self._notify(entry, None)
        else:
            entry.record = record
            entry.state_incarnation = record.incarnation
            if direct is not None:
                entry.address = direct
            entry.grace_until = self._now() + self._probe_grace()  # fresh proof of life
            self._clear_suspicion(entry)
            if entry.state != new_state:
                self._set_state(entry, new_state)
            else:
                self._notify(entry, new_state)
        self._fetching.pop(record.node_id, None)
        self._watch_expiry(record.cert.expires)
        if rebroadcast or record.node_id == from_owner_at:
            self._announce(record)
        else:
            self._announce(record, urgent=False,
                           sent=max(0, self._retransmit_limit() - SYNCED_RECORD_SENDS))
        return True

    def _on_announce(self, announce: Announce, sender: bytes) -> None:
        """Fetch the announced record from ``sender`` if it is newer than ours (the fetches
        of one datagram leave together, see ``_answer_fetches``)."""
        if announce.node == self.node_id:
            if announce.incarnation > self._members[self.node_id].state_incarnation:
                self._refute(announce.incarnation)  # a record of an earlier run of ours
            return
        entry = self._members.get(announce.node)
        if entry is not None and announce.incarnation <= entry.state_incarnation:
            return
        if not self.keys.knows(sender):
            return
        now = self._now()
        timeout = self._fetch_timeout()
        pending = self._fetching.get(announce.node)
        if pending is not None and now - pending.asked < timeout:
            pending.add_holder(sender)  # asked already; ask this one if no reply comes
            return
        if pending is None and len(self._fetching) >= MAX_FETCHES:
            for node_id, fetch in list(self._fetching.items()):
                if now - fetch.asked >= timeout:
                    del self._fetching[node_id]
            if len(self._fetching) >= MAX_FETCHES:
                self.counters["fetches_deferred"] += 1
                return
        if pending is None:
            pending = self._fetching[announce.node] = _Fetch(now)
            pending.add_holder(sender)  # asked again last, if nobody else announces it
            self._gossip_due.set()  # the gossip loop retries it if no reply comes
        pending.asked = now
        self._fetches.append(Fetch(announce.node))

    def _fetch_timeout(self) -> float:
        """A fetch is one round trip, like a ping: unanswered after the probe timeout
        (scaled by our local health), its request or reply is presumed lost."""
        return self.health.scale(self.profile.probe_timeout_s)

    def _retry_overdue_fetches(self) -> None:
        """Ask again for records whose fetch went unanswered, of a member that announced
        them meanwhile. Without this a lost datagram left the news to a digest repair,
        seconds later: the announcements that came while we waited were all dropped, and
        gossip spends its few sends of an item within the first rounds. Each retry waits
        twice as long as the one before: on a loaded machine a reply is more often late
        than lost, and retrying at every timeout used up the announcers within a second
        (then the fetch was abandoned, ``fetches_abandoned``) while adding datagrams."""
        now = self._now()
        timeout = self._fetch_timeout()
        for node_id, pending in list(self._fetching.items()):
            if now - pending.asked < timeout * (1 << pending.retries):
                continue
            if not pending.holders:
                del self._fetching[node_id]  # a later announcement starts a new fetch
                self.counters["fetches_abandoned"] += 1
                continue
            pending.asked = now
            pending.retries += 1
            self.counters["fetches_retried"] += 1
            self._send(pending.holders.pop(), [Fetch(node_id)])

    def _view_digest(self) -> Digest:
        return Digest(self._digest.count, self._digest.value)

    def _on_digest(self, digest: Digest, sender: bytes) -> None:
        """Repair a view that gossip left incomplete: ours has been still for a while,
        yet differs from the sender's. Rate limited; a full state is O(n) bytes.

        A sender holding more records than we do knows a member we have never heard of.
        News in flight looks the same, but then our own count keeps growing; a deficit
        that has lasted a probe interval with our count standing still is a record gossip
        spent without reaching us, repaired then, however much else of our view changes
        (record updates, settled states). At 100 agents on 2 cores the last member of a
        mass join to learn of someone used to wait 3-5 s for that: the refutations and
        updates that follow a join kept its view from ever being still. A timer repairs
        at the end of that probe interval, and gossip datagrams carry digests too: with
        digests on pings alone, the deficit was often seen 0.8 s after our count stopped,
        and the repair waited for the next ping after the interval, all of it added to
        the join.

        Any other difference must have lasted a probe interval and our view must have
        been still for a repair interval: news in flight shows first as a differing
        digest (the sender has it, we do not yet, or the other way round) and arrives
        within a few gossip intervals. In a quiet mesh every record update used to start
        several full-state exchanges this way."""
        if (digest.count, digest.digest) == (self._digest.count, self._digest.value):
            return
        for callback in self._difference_callbacks:
            callback()
        now = self._now()
        quiet = self.profile.repair_interval_s
        if digest.count > self._digest.count:
            # Since when peers have held more records than we, our count standing still.
            # Only a change of our count ends it, not a gap between such digests: they
            # ride on the pings we receive, a second or more apart on a loaded machine.
            if self._deficit_since < self._digest.count_changed_at:
                self._deficit_since = now
                if self._deficit_timer is not None:
                    self._deficit_timer.cancel()
                assert self._loop is not None
                self._deficit_timer = self._loop.call_later(
                    self.profile.probe_interval_s, self._repair_deficit, sender, now)
            if (now - self._deficit_since >= self.profile.probe_interval_s
                    and now - self._last_repair >= quiet):
                self._repair(sender, now)
            return
        # A difference is new if our view changed since it began, or none was seen for a
        # probe interval (peers with matching digests in between do not end it: during
        # news some peers have it and some do not).
        if (self._differs_since < self._digest.changed_at
                or now - self._differs_seen > self.profile.probe_interval_s):
            self._differs_since = now
        self._differs_seen = now
        if (now - self._digest.changed_at < quiet or now - self._last_repair < quiet
                or now - self._differs_since < self.profile.probe_interval_s):
            return
        self._repair(sender, now)

    def _repair_deficit(self, sender: bytes, since: float) -> None:
        """A probe interval after ``sender``'s digest showed more records than ours: repair
        with it, unless our count has moved since (the news came) or a repair ran."""
        self._deficit_timer = None
        now = self._now()
        if (not self._running or self._deficit_since != since
                or self._digest.count_changed_at > since
                or now - self._last_repair < self.profile.repair_interval_s):
            return
        self._repair(sender, now)

    def _repair(self, sender: bytes, now: float) -> None:
        self._last_repair = now
        self.counters["view_repairs"] += 1
        self._spawn(self.streams.sync_with(sender))

    def _on_own_record(self, record: NodeRecord) -> None:
        me = self._members[self.node_id]
        if record.incarnation > me.state_incarnation and record.wire != me.record.wire:
            self._refute(record.incarnation)  # a record from an earlier run of ours

    def _on_suspect(self, claim: Suspect) -> None:
        if claim.node == self.node_id:
            self._refute(claim.incarnation)
            return
        entry = self._members.get(claim.node)
        if entry is None or claim.incarnation < entry.state_incarnation:
            return
        if entry.state == MemberState.SUSPECT:
            if entry.suspicion is not None and entry.suspicion.confirm(claim.accuser):
                self._arm_suspicion(entry)
                self._broadcast(claim.node, claim)
            return
        if entry.state != MemberState.ALIVE:
            return
        alive = self._alive_count()
        entry.state_incarnation = claim.incarnation
        entry.suspicion = Suspicion(
            claim.accuser, started=self._now(), min_s=self.profile.suspicion_min_s(alive),
            max_s=self.profile.suspicion_max_s(alive),
            wanted=self.profile.confirmations_wanted(alive))
        self._arm_suspicion(entry)
        self._set_state(entry, MemberState.SUSPECT)
        self._broadcast(claim.node, claim)

    def _arm_suspicion(self, entry: MemberEntry) -> None:
        """Time the suspicion out at its deadline, after a last call one probe timeout
        before it: a direct ping marked ``suspected``, which a live member answers with
        its refuting record (``_on_ping``). The refutation's gossip may have missed us
        (it is spent within a fraction of a second); the last call adds no delay when the
        member is really gone."""
        if entry.timer is not None:
            entry.timer.cancel()
        assert self._loop is not None and entry.suspicion is not None
        last_call = entry.suspicion.deadline - self.profile.probe_timeout_s
        if last_call > self._now():
            entry.timer = self._loop.call_at(last_call, self._suspicion_last_call,
                                             entry.node_id, entry.state_incarnation)
        else:
            entry.timer = self._loop.call_at(entry.suspicion.deadline,
                                             self._suspicion_expired, entry.node_id,
                                             entry.state_incarnation)

    def _suspicion_last_call(self, node_id: bytes, incarnation: int) -> None:
        entry = self._members.get(node_id)
        if entry is None or entry.state != MemberState.SUSPECT or (
                entry.state_incarnation != incarnation) or entry.suspicion is None:
            return
        assert self._loop is not None
        self.counters["suspicion_last_calls"] += 1
        self._send(node_id, [Ping(self._next_seq(), node_id, incarnation)])
        entry.timer = self._loop.call_at(entry.suspicion.deadline, self._suspicion_expired,
                                         node_id, incarnation)

    def _suspicion_expired(self, node_id: bytes, incarnation: int) -> None:
        entry = self._members.get(node_id)
        if entry is None or entry.state != MemberState.SUSPECT or (
                entry.state_incarnation != incarnation):
            return
        self._on_dead(Dead(node_id, incarnation, self.node_id, False))

    def _clear_suspicion(self, entry: MemberEntry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = None
        entry.suspicion = None

    def _on_dead(self, claim: Dead) -> None:
        if claim.node == self.node_id:
            if not self._leaving:
                self._refute(claim.incarnation)
            return
        entry = self._members.get(claim.node)
        if entry is None:
            return
        if claim.incarnation < entry.state_incarnation:
            if claim.crashed:
                # Stale by incarnation, but a crash is cheap to check for ourselves.
                self.report_connection_lost(claim.node)
            return
        if entry.state in (MemberState.UNREACHABLE, MemberState.LEFT, MemberState.ASLEEP,
                           MemberState.OFF):
            return
        entry.state_incarnation = claim.incarnation
        self._clear_suspicion(entry)
        self._set_state(entry, MemberState.UNREACHABLE)
        self.keys.peer_forgot_me(claim.node)
        self._broadcast(claim.node, claim, urgent=True)
        if claim.crashed:
            self.counters["crashes_detected"] += 1

    def _on_power(self, claim: Power) -> None:
        if claim.node == self.node_id:
            self._refute(claim.incarnation)
            return
        entry = self._members.get(claim.node)
        if entry is None or claim.incarnation < entry.state_incarnation:
            return
        state = MemberState.ASLEEP if claim.state == "asleep" else MemberState.OFF
        if entry.state in (state, MemberState.LEFT):
            return
        entry.state_incarnation = claim.incarnation
        self._clear_suspicion(entry)
        self._set_state(entry, state)
        self._broadcast(claim.node, claim)

    def _on_document_news(self, news: Document, sender: bytes) -> None:
        """``sender`` holds a document version we lack: fetch from it, one fetch per kind
        at a time. Newer news heard during a fetch is fetched after it (dropped, it left
        us on the older version until a repair); a failed fetch is retried on the next
        news, a digest repair or a state exchange."""
        if not self.documents.wants(news.kind, news.version):
            return
        if news.kind in self._document_fetches:
            waiting = self._document_fetches[news.kind]
            if waiting is None or news.version > waiting[0]:
                self._document_fetches[news.kind] = (news.version, sender)
            return
        self._document_fetches[news.kind] = None
        self._spawn(self._fetch_documents(news.kind, sender))

    async def _fetch_documents(self, kind: str, sender: bytes) -> None:
        try:
            while True:
                await self.streams.fetch_documents(sender)
                waiting = self._document_fetches.get(kind)
                if waiting is None or not self.documents.wants(kind, waiting[0]):
                    return
                self._document_fetches[kind] = None
                sender = waiting[1]
        finally:
            self._document_fetches.pop(kind, None)

    def _document_adopted(self, kind: str, document: Any) -> None:
        """A newer document was adopted (from us, a peer, the uplink, a file): announce
        it; a revocation list also drops the members it revokes."""
        self._broadcast(b"document:" + kind.encode(), Document(kind, document.version),
                        urgent=True)
        now = self._now() if self._loop is not None else 0.0
        if kind in self._digested_documents:
            self._digest.toggle_document(kind, self._digested_documents[kind], now)
        self._digested_documents[kind] = document.version
        self._digest.toggle_document(kind, document.version, now)
        if kind != REVOCATIONS:
            return
        self.revocations = document
        for node_id, entry in list(self._members.items()):
            if node_id != self.node_id and self.revocations.is_revoked(entry.record.cert):
                self._drop_member(node_id, "revoked")
        if self.revocations.is_revoked(self.certificate):
            log.error("own_certificate_revoked", node=self.node_id.hex())

    def _watch_expiry(self, expires: float) -> None:
        """A certificate held (a member's, or ours) expires at ``expires``: check then."""
        if expires < self._next_expiry:
            self._next_expiry = expires
            self._arm_expiry_check()

    def _arm_expiry_check(self) -> None:
        """Time the next expiry check, once it is near: the maintenance loop calls this
        every turn, so an expiry further away than two of its turns needs no timer yet.
        The event loop's clock stops while a laptop sleeps; the wall clock certificates
        expire by does not, and the next turn after a wake-up sees that."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        remaining = self._next_expiry - time.time()
        if not self._running or remaining > 2 * self.profile.reconnect_interval_s:
            return
        assert self._loop is not None
        # Expired means past ``expires`` (as RecordVerifier judges): just after it.
        self._expiry_timer = self._loop.call_later(max(0.0, remaining) + 0.01,
                                                   self._check_expiry)

    def _check_expiry(self) -> None:
        """Drop every member whose certificate has expired. Like a revoked member it
        can no longer prove membership: its records, datagrams, streams and sessions are
        refused as they come, and this ends what it already had. Ours expiring is logged
        (the mesh drops us; ``adopt_certificate`` brings us back)."""
        self._expiry_timer = None
        now = time.time()
        upcoming = math.inf
        for node_id, entry in list(self._members.items()):
            expires = entry.record.cert.expires
            if now <= expires:
                upcoming = min(upcoming, expires)
            elif node_id == self.node_id:
                if not self._own_expiry_logged:
                    log.error("own_certificate_expired", node=node_id.hex(), expired=expires)
                    self._own_expiry_logged = True
            else:
                log.warning("member_certificate_expired", node=node_id.hex(), expired=expires)
                self._drop_member(node_id, "certificate_expired")
        self._next_expiry = upcoming
        self._arm_expiry_check()

    def _token_burnt(self, token_id: bytes) -> None:
        """A join token was presented by two nodes: drop every member holding it."""
        for node_id, entry in list(self._members.items()):
            if node_id != self.node_id and entry.record.cert.token_id == token_id:
                self._drop_member(node_id, "token_reused")
        if self.certificate.token_id == token_id:
            log.error("own_join_token_burnt", node=self.node_id.hex(), token=token_id.hex())

    def _refute(self, accused_incarnation: int) -> None:
        """Someone thinks we are suspect/dead/asleep at ``accused_incarnation``: outbid
        them with a new record (once: older accusations are already refuted)."""
        me = self._members[self.node_id]
        if self._leaving or accused_incarnation < me.state_incarnation:
            return
        me = self._replace_own_record(
            incarnation=max(me.state_incarnation, accused_incarnation) + 1)
        self.health.apply(1)
        self.counters["refutations"] += 1
        self._announce(me.record)

    def _replace_own_record(self, **changes: Any) -> MemberEntry:
        me = self._members[self.node_id]
        old = me.record
        me.record = me.record.updated(self.identity, **changes)
        me.state_incarnation = me.record.incarnation
        self._index_record(old, me.record)
        return me

    def _index_record(self, old: NodeRecord | None, new: NodeRecord | None) -> None:
        """Keep the exact-bytes index and the view digest in step with the records held."""
        now = self._now()
        if old is not None:
            self._known_wires.pop(old.wire, None)
        if new is not None:
            self._known_wires[new.wire] = new.node_id
        if old is not None and new is not None:
            self._digest.replace(new.node_id, old.incarnation, new.incarnation, now)
        elif old is not None:
            self._digest.remove(old.node_id, old.incarnation, now)
        elif new is not None:
            self._digest.add(new.node_id, new.incarnation, now)

    def _drop_member(self, node_id: bytes, reason: str) -> None:
        entry = self._members.pop(node_id, None)
        if entry is None:
            return
        self._index_record(entry.record, None)
        if entry.state.settled:
            self._digest.toggle_state(node_id, entry.state, self._now())
        self._live.discard(node_id)
        self._clear_suspicion(entry)
        self.keys.forget(node_id)
        self._queue.discard(node_id)
        with contextlib.suppress(ValueError):
            self._probe_order.remove(node_id)
        old = entry.state
        entry.state = MemberState.LEFT
        self.counters[f"members_dropped_{reason}"] += 1
        self._notify(entry, old)

    # ---------------------------------------------------------------- state changes

    def _set_state(self, entry: MemberEntry, state: MemberState) -> None:
        old = entry.state
        entry.state = state
        now = self._now()
        if old.settled:
            self._digest.toggle_state(entry.node_id, old, now)
        if state.settled:
            self._digest.toggle_state(entry.node_id, state, now)
        entry.state_since = time.time()
        if state.probed:
            self._live.add(entry.node_id)
        else:
            self._live.discard(entry.node_id)
        self._view_changed = True
        self._notify(entry, old)

    def _notify(self, entry: MemberEntry, old: MemberState | None) -> None:
        if not self._callbacks and not self._subscribers:
            return
        member = entry.snapshot(entry.node_id == self.node_id)
        change = MemberChange(member, old, member.state)
        for queue in self._subscribers:
            queue.put_nowait(change)
        for callback in list(self._callbacks):
            try:
                result = callback(member, old, member.state)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception as exc:  # a listener's bug must not break membership
                log.warn_limited("change_callback_failed", key=repr(callback),
                                 error=repr(exc))

    # ================================================================ send path

    def _announce(self, record: NodeRecord, urgent: bool = True, sent: int = 0) -> None:
        """Gossip that we hold ``record`` (members fetch it from us if it is news)."""
        self._enqueue(record.node_id, encode_one(Announce(record.node_id,
                                                          record.incarnation)), urgent, sent)

    def _broadcast(self, subject: Any, message: Message, urgent: bool = False) -> None:
        self._enqueue(subject, encode_one(message), urgent)

    def _enqueue(self, subject: Any, encoded: bytes, urgent: bool, sent: int = 0) -> None:
        self._queue.enqueue(subject, encoded, sent)
        self._gossip_due.set()
        if urgent:
            self._urgent.set()

    def _push_own_record(self) -> None:
        """Send our record to every live member (``update_record(push=True)``)."""
        self.counters["records_pushed"] += self._push(Alive(self.record.wire))

    def _push(self, message: Message, skip: bytes | None = None) -> int:
        """Send ``message`` alone to every live member but ``skip``; how many. For news
        with a deadline of seconds: gossip spends its few sends of an item within a
        fraction of a second, and now and then misses a member."""
        targets = [node_id for node_id, entry in self._members.items()
                   if node_id not in (self.node_id, skip) and entry.state.probed]
        for node_id in targets:
            self._send(node_id, [message], piggyback=False)
        return len(targets)

    def _send(self, node_id: bytes, messages: list[Message], piggyback: bool = True,
              address: Address | None = None) -> None:
        """Seal ``messages`` (plus piggybacked gossip) to a member, at ``address`` if given
        (a reply goes where the request came from, even before we know the sender)."""
        entry = self._members.get(node_id)
        if address is None:
            if entry is None:
                return
            address = entry.address
        parts = [encode_one(message) for message in messages]
        if piggyback:
            budget = (self.profile.max_datagram - DATAGRAM_OVERHEAD - 8
                      - sum(len(part) for part in parts))
            if not self.keys.knows_me(node_id):
                budget -= len(self.keys.certificate_wire) + 2
            parts += self._queue.take(budget, self._retransmit_limit())
        self._send_parts(node_id, address, parts)

    def _send_parts(self, node_id: bytes, address: Address, parts: list[bytes]) -> None:
        try:
            datagram = self.keys.seal(node_id, pack_encoded(parts))
        except SealError as exc:
            self.counters[f"unsent_{exc.reason}"] += 1
            return
        self.transport.send_datagram(datagram, address)

    def _retransmit_limit(self) -> int:
        return self.profile.retransmit_limit(self._alive_count())

    # ================================================================ loops

    async def _probe_loop(self) -> None:
        while self._running:
            started = self._now()
            target = self._next_probe_target()
            if target is not None:
                await self._probe(target)
            self.streams.reconcile_watches()
            interval = self.health.scale(self.profile.probe_interval_s)
            await asyncio.sleep(max(0.0, started + interval - self._now()))

    def _next_probe_target(self) -> bytes | None:
        for _ in range(2):
            while self._probe_order:
                node_id = self._probe_order.pop()
                entry = self._members.get(node_id)
                if entry is not None and entry.state.probed and node_id != self.node_id:
                    return node_id
            self._probe_order = [node_id for node_id, entry in self._members.items()
                                 if node_id != self.node_id and entry.state.probed]
            self.random.shuffle(self._probe_order)
        return None

    async def _probe(self, node_id: bytes, second: bool = False) -> None:
        """One SWIM probe of ``node_id`` (direct, then indirect and TCP), Lifeguard-aware.

        A probe whose timers fired late (this process did not get the CPU: a loaded
        machine, or we were stopped ourselves) proves nothing about the target: it counts
        against our own health instead of raising a suspicion.

        Nor does a failed probe that no helper nacked: a live helper that cannot reach the
        target says so (Lifeguard's nack), so silence from all of them means they, or we,
        are not getting the CPU or the network, which is what the missed nacks add to our
        health score. Such a probe is made once more at once (``second``), on the same
        timing (the missed nacks are scored on the second probe, so a really silent
        member costs one probe interval, not a stretched one), and only its failure
        raises the suspicion.
        At 100 agents on 2 cores the failed probes of a mass join were nearly all of this
        kind: the prober healthy, none of three helpers answering within the probe
        interval. A member that is really silent is suspected one probe interval later;
        with a helper's nack (a healthy mesh: a SIGSTOP, a cut link) at once."""
        entry = self._members[node_id]
        seq = self._next_seq()
        again = False  # failed without a nack: probe once more before suspecting
        probe = _Probe()
        self._probes[seq] = probe
        timeout = self.health.scale(self.profile.probe_timeout_s)
        started = self._now()
        deadline = started + self.health.scale(self.profile.probe_interval_s)
        try:
            suspected = (entry.state_incarnation if entry.state == MemberState.SUSPECT
                         else 0)
            self._send(node_id, [Ping(seq, node_id, suspected), self._view_digest()])
            if await self._wait(probe.acked, timeout):
                self.health.apply(-1)
                return
            lag = self._now() - (started + timeout)
            helpers = self._random_members(self.profile.indirect_checks, exclude=node_id)
            for helper in helpers:
                self._send(helper, [PingReq(seq, node_id, suspected)])
            tcp = self._spawn(self.streams.ping(node_id))
            await self._wait(probe.acked, max(0.0, deadline - self._now()))
            lag = max(lag, self._now() - deadline)
            verdict = tcp.result() if tcp.done() and not tcp.cancelled() else None
            tcp.cancel()
            if probe.acked.is_set() or verdict == "ack":
                self.health.apply(-1)
                return
            if verdict == "refused":
                self._declare_crashed(node_id)
                return
            missed = len(helpers) - probe.nacks if helpers else 1
            current = self._members.get(node_id)
            again = (current is not None and bool(helpers) and not probe.nacks
                     and not second and lag <= timeout / 2
                     and started >= current.grace_until)
            if again:  # probed again on the same timing; that probe scores our health
                self.counters["probes_unnacked"] += 1
            else:
                self._probe_failed(node_id, current, started,
                                   max(1 if lag > timeout / 2 else 0, missed),
                                   inconclusive=lag > timeout / 2,
                                   witnessed=bool(helpers) and probe.nacks >= len(helpers))
        finally:
            self._probes.pop(seq, None)
        if again and self._running:
            await self._probe(node_id, second=True)

    def _probe_failed(self, node_id: bytes, current: MemberEntry | None, started: float,
                      penalty: int, inconclusive: bool, witnessed: bool) -> None:
        """Score a failed probe against our health, then suspect the target unless the
        probe proves nothing (our timers fired late) or the target is in its grace.

        The grace spares a target that may only be starved of CPU; it does not hold
        against a ``witnessed`` failure, one that every helper nacked: members that answer
        us at once could not reach the target either, so the mesh is not the slow part."""
        self.health.apply(penalty)
        if inconclusive:
            self.counters["probes_inconclusive"] += 1
            return
        if current is not None and started < current.grace_until:
            if not witnessed:
                self.counters["probes_failed_in_grace"] += 1
                return
            self.counters["probes_witnessed_in_grace"] += 1
        if current is not None:
            self.counters["probes_failed"] += 1
            self.keys.peer_forgot_me(node_id)
            self._on_suspect(Suspect(node_id, current.state_incarnation, self.node_id))

    async def _check_lost(self, node_id: bytes) -> None:
        try:
            verdict = await self.streams.ping(node_id)
        finally:
            self._checking.discard(node_id)
        entry = self._members.get(node_id)
        if entry is None or not entry.state.probed:
            return
        if verdict == "refused":
            self._declare_crashed(node_id)
        elif verdict != "ack":
            await self._probe(node_id)  # no proof either way: a full probe decides

    def _probe_grace(self) -> float:
        """How long a member that just joined our view, or whose newer record we just
        accepted (a refutation, an update), is spared suspicions from our own failed
        probes (see ``Profile.probe_grace_s``)."""
        return self.profile.probe_grace_s(self._alive_count())

    def _declare_crashed(self, node_id: bytes) -> None:
        """Its port refused us: the agent is gone. Only the one or two members that see
        this tell everyone directly (the crash budget is two seconds at any mesh size);
        gossip carries it too, for what a lost datagram missed."""
        entry = self._members.get(node_id)
        if entry is not None and entry.state.probed:
            claim = Dead(node_id, entry.state_incarnation, self.node_id, True)
            self._on_dead(claim)
            self.counters["crashes_pushed"] += self._push(claim, skip=node_id)

    async def _gossip_loop(self) -> None:
        """Every gossip interval (at once for urgent news, at most every quarter interval)
        while news is queued or a record fetch may need retrying; asleep otherwise, so an
        idle agent's event loop wakes only for probes. News that wakes it goes out on the
        next turn of the event loop, with everything queued in the same turn."""
        spacing = self.profile.gossip_interval_s / 4
        while self._running:
            if not len(self._queue) and not self._fetching:
                self._gossip_due.clear()
                await self._gossip_due.wait()
            else:
                await self._wait(self._urgent, self.profile.gossip_interval_s)
            self._urgent.clear()
            self._retry_overdue_fetches()
            if len(self._queue):
                # Each gossip datagram carries our digest too: a member that missed a
                # record hears of its deficit within a gossip interval, not at its next
                # ping (``_on_digest``), while news is spreading, when it matters.
                for node_id in self._random_members(self.profile.gossip_fanout):
                    self._send(node_id, [self._view_digest()])
                    if not len(self._queue):
                        break
            await asyncio.sleep(spacing)

    def _converge_quickly(self, exchange_now: bool = False) -> None:
        """After a join or a healed partition: announce ourselves, and do a few fast
        full-state exchanges. The sync loop, asleep for a push-pull interval, is woken
        to plan them (the first one fast-sync interval later, or at once when
        ``exchange_now``): waiting out that sleep left a joiner with what the seed knew
        when it answered, and the rest to gossip and repairs."""
        self._announce(self._members[self.node_id].record)
        self._view_changed = True
        self._fast_syncs_left = self.profile.fast_sync_rounds
        self._exchange_now = self._exchange_now or exchange_now
        self._resync.set()

    async def _sync_loop(self) -> None:
        """Full-state exchange: a few fast rounds while the view changes after a join or
        heal (bounded: a full state is O(mesh size)), then every push-pull interval."""
        while self._running:
            fast = self._view_changed and self._fast_syncs_left > 0
            delay = (self.profile.fast_sync_interval_s if fast
                     else self.profile.push_pull_scaled_s(self._alive_count()))
            woken = await self._wait(self._resync, delay * (0.5 + self.random.random()))
            self._resync.clear()
            if woken and not self._exchange_now:
                continue  # a join or heal: plan the fast rounds
            self._exchange_now = False
            if fast:
                self._fast_syncs_left -= 1
            self._view_changed = False
            targets = self._random_members(1)
            if targets:
                await self.streams.sync_with(targets[0])
            elif self.seeds:
                await self._join_once(self.seeds)

    async def _maintenance_loop(self) -> None:
        """Retry unreachable members (heals partitions) and forget long-gone ones."""
        while self._running:
            await asyncio.sleep(self.profile.reconnect_interval_s * (0.5 + self.random.random()))
            self._arm_expiry_check()
            now = time.time()
            unreachable = []
            for node_id, entry in list(self._members.items()):
                age = now - entry.state_since
                if entry.state == MemberState.UNREACHABLE:
                    if age > self.profile.reap_unreachable_s:
                        self._drop_member(node_id, "reaped")
                    else:
                        unreachable.append(node_id)
                elif entry.state == MemberState.LEFT and age > self.profile.reap_left_s:
                    self._drop_member(node_id, "reaped")
            if unreachable and await self.streams.sync_with(self.random.choice(unreachable)):
                self._converge_quickly(exchange_now=True)
            if self._alive_count() <= 1 and self.seeds:
                await self._join_once(self.seeds)

    # ================================================================ helpers

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % _SEQ_MOD
        return self._seq

    def _alive_count(self) -> int:
        return len(self._live)

    def _random_members(self, count: int, exclude: bytes | None = None) -> list[bytes]:
        """Up to ``count`` distinct random live members other than us and ``exclude``."""
        return self._live.sample(self.random, count, (self.node_id, exclude))

    def _address_of(self, record: NodeRecord) -> Address | None:
        for endpoint in record.addresses:
            with contextlib.suppress(ValueError):
                return parse_address(endpoint, self.transport.local_address[1])
        return None

    def _may_have_restarted(self, node_id: bytes) -> bool:
        entry = self._members.get(node_id)
        return entry is None or not entry.state.probed

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters["internal_errors"] += 1
            log.warn_limited("membership_task_failed", key=repr(task.exception()),
                             error=repr(task.exception()))

    async def _wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
        return event.is_set()
