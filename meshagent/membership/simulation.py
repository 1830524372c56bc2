"""Whole meshes in one process: the scale harness behind bench_membership_scale.py.

``run_scale(n)`` starts ``n`` members at once on a ``MemoryNetwork`` under a
``VirtualClockLoop`` (so protocol time costs no waiting), each seeded with one random
member started before it, and measures in protocol time and in probe rounds:

* ``join``: until every member sees every other alive;
* ``failure``: one member crashes; until every other member sees it unreachable;
* ``update``: one member changes its record; until every member holds the new one.

Everything is the real protocol (sealed datagrams, signed records, state exchange over
in-memory streams) except, by default, the X25519 + HKDF pair-key agreement: thousands
of simulated members would otherwise spend the run on n^2 key agreements that a real
agent does once per peer. ``SimulatedKeyAgreement`` derives pair keys from the public
keys alone (both ends agree, nobody else in the process cares); it must never be used
outside simulations. ``real_keys=True`` keeps the real agreement for small runs.

Lean mode (``lean=True``, the default) makes 5,000 members fit in one process: simulating
is O(n^2) in memory (every member holds an entry, an address and peer state for every
other), so state that n members would hold as n equal copies is held once, per-peer
state is made only for peers a member actually exchanges datagrams with, and the
per-peer replay window is a small counter window. Simulation only, like
``SimulatedKeyAgreement``; agents never use it:

* ``SimulationCache``: one address tuple per endpoint (each record's endpoints parsed
  once) and one certificate digest per certificate, shared by every simulated member
  (records are already shared: the mesh's one ``RecordVerifier`` hands every member the
  same parsed ``NodeRecord``);
* ``LeanPeerKeys``: a learnt certificate is all a member holds about a peer until it
  seals for it or hears from it; then a slotted per-peer object. Its replay window
  (``PeerKeys._new_window``) is ``CounterWindow`` (the highest counter and a bitmap as
  long as the counters seen: tens of bytes) instead of the 1 KiB RFC 6479 window, with
  the same span and contract. The in-memory network never replays,
  but it delivers datagrams due at the same instant in any order (its timer heap does
  not order equal deadlines): a member answering a burst of fetches sends one peer
  dozens of datagrams in one instant, so a bare high-water mark, or a 64-counter
  window, drops some.

Messages, gossip, probes, suspicion, state exchange, AES-GCM sealing and record
signatures stay the real ones in both modes.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from meshagent import core
from meshagent.identity import MembershipCertificate, MeshRoot, NodeIdentity
from meshagent.membership.sealing import PeerKeys, _Peer
from meshagent.membership.sealing import _digest as sealing_digest
from meshagent.membership.state import Member, MemberState
from meshagent.membership.swim import Membership
from meshagent.profiles import Profile
from meshagent.record import NodeRecord, RecordVerifier
from meshagent.transport import Address, MemoryNetwork, VirtualClockLoop

__all__ = ["SimulatedKeyAgreement", "SimulationCache", "CounterWindow", "LeanPeerKeys",
           "LeanSimulatedKeys", "ScaleResult", "run_scale", "issue_member",
           "simulated_address"]


# Certificates are checked against the wall clock, and 5,000 members take hours of it.
_RUN_CERTIFICATE_LIFETIME_S = 7 * 24 * 3600


def issue_member(root: MeshRoot, hostname: str, lifetime_s: float = 3600,
                 ) -> tuple[NodeIdentity, MembershipCertificate]:
    """A fresh node identity with a root-signed certificate (one hour by default)."""
    identity = NodeIdentity.generate()
    return identity, root.issue_certificate(identity.sign_public, identity.dh_public,
                                            ["member"], hostname, lifetime_s=lifetime_s)


def simulated_address(index: int) -> Address:
    return (f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}", 7946)


class SimulatedKeyAgreement(PeerKeys):
    """Pair keys from public keys only: for in-process simulations, never for agents."""

    def _secret(self, peer: Any) -> bytes:
        # Not kept per peer: only stream setups (rare) and the one datagram key
        # derivation below ask for it.
        publics = sorted((self.identity.dh_public, peer.cert.dh_public))
        return hashlib.sha256(b"simulation" + publics[0] + publics[1]).digest()

    def _pair_keys(self, peer: Any) -> tuple[bytes, bytes]:
        if peer.keys is None:
            secret = self._secret(peer)
            to_peer = hashlib.sha256(secret + self.node_id + peer.cert.node_id).digest()
            from_peer = hashlib.sha256(secret + peer.cert.node_id + self.node_id).digest()
            peer.keys = (to_peer, from_peer)
        return peer.keys


class SimulationCache:
    """Values every simulated member of one mesh would otherwise hold its own copy of
    (lean mode; see the module docs). Results depend on the values only."""

    def __init__(self) -> None:
        self._addresses: dict[Address, Address] = {}
        self._record_addresses: dict[tuple[tuple[str, ...], int], Address | None] = {}
        self._certificate_digests: dict[bytes, bytes] = {}

    def address(self, address: Address) -> Address:
        return self._addresses.setdefault(address, address)

    def record_address(self, endpoints: tuple[str, ...], default_port: int,
                       parse: Callable[[], Address | None]) -> Address | None:
        """The address ``parse`` makes of a record's ``endpoints``, parsed once per mesh
        (every member parses every record: n^2 times)."""
        key = (endpoints, default_port)
        if key not in self._record_addresses:
            address = parse()
            self._record_addresses[key] = None if address is None else self.address(address)
        return self._record_addresses[key]

    def certificate_digest(self, cert: MembershipCertificate) -> bytes:
        """What ``PeerKeys`` keeps to recognise a peer's attached certificate."""
        key = cert.signed.signature  # unique per signed certificate
        digest = self._certificate_digests.get(key)
        if digest is None:
            digest = self._certificate_digests[key] = sealing_digest(cert.to_wire())
        return digest


class CounterWindow:
    """Replay check for simulated peers, with ``core.ReplayWindow``'s contract: accepts
    each counter once, refuses counters more than ``REPLAY_WINDOW_SPAN`` behind the
    highest accepted one and counters at or past ``REKEY_AFTER_MESSAGES``. The bitmap is
    a Python int as long as the counters seen so far: a few bytes for the handful of
    datagrams most pairs of a simulated mesh exchange, where the C window is 1 KiB."""

    __slots__ = ("highest", "bitmap")
    SPAN = core.REPLAY_WINDOW_SPAN

    def __init__(self) -> None:
        self.highest = -1
        self.bitmap = 0  # bit i: counter highest - i was accepted

    def accepts(self, counter: int) -> bool:
        if counter > self.highest:
            return counter < core.REKEY_AFTER_MESSAGES
        behind = self.highest - counter
        return behind <= self.SPAN and not self.bitmap >> behind & 1

    def check_and_update(self, counter: int) -> None:
        """Accept ``counter`` or raise ReplayError (and change nothing)."""
        if not self.accepts(counter):
            raise core.ReplayError(f"counter {counter} replayed or behind the window")
        if counter > self.highest:
            self.bitmap = (self.bitmap << (counter - self.highest) | 1) & _SPAN_MASK
            self.highest = counter
        else:
            self.bitmap |= 1 << (self.highest - counter)


_SPAN_MASK = (1 << (CounterWindow.SPAN + 1)) - 1
# PeerKeys' per-peer state with the same fields, slotted (no __dict__ per peer).
_LeanPeer = make_dataclass("_LeanPeer", [
    (item.name, item.type, field(default=item.default, default_factory=item.default_factory,
                                 repr=item.repr)) for item in fields(_Peer)], slots=True)


class _LazyPeers(dict[bytes, Any]):
    """node id -> per-peer state, made on first use: until this node seals for a peer,
    hears from it or asks about it, a learnt certificate (shared) is all it holds. Most
    members of a big mesh never exchange a datagram with most others."""

    def __init__(self, shared: SimulationCache) -> None:
        super().__init__()
        self._shared = shared

    def _made(self, node_id: bytes, value: Any) -> Any:
        if type(value) is _LeanPeer:
            return value
        peer = self[node_id] = _LeanPeer(value, self._shared.certificate_digest(value))
        return peer

    def get(self, node_id: bytes, default: Any = None) -> Any:  # type: ignore[override]
        value = dict.get(self, node_id)
        return default if value is None else self._made(node_id, value)

    def __getitem__(self, node_id: bytes) -> Any:
        return self._made(node_id, dict.__getitem__(self, node_id))

    def values(self) -> Any:  # type: ignore[override]
        return [self[node_id] for node_id in list(self)]


class LeanPeerKeys(PeerKeys):
    """``PeerKeys`` with lean per-peer state (see the module docs): simulations only.

    Per-peer state is made on first use, slotted; the replay check is ``CounterWindow``.
    Certificates, keys and sealing are ``PeerKeys``' own."""

    def __init__(self, identity: NodeIdentity, certificate: MembershipCertificate,
                 verifier: RecordVerifier, revocations: Callable[[], Any],
                 shared: SimulationCache) -> None:
        super().__init__(identity, certificate, verifier, revocations)
        self._peers = _LazyPeers(shared)

    def learn(self, cert: MembershipCertificate) -> None:
        known = dict.get(self._peers, cert.node_id)
        held = known.cert if type(known) is _LeanPeer else known
        if held is None or held.serial != cert.serial:
            self._peers[cert.node_id] = cert

    def _new_window(self) -> CounterWindow:
        return CounterWindow()


class LeanSimulatedKeys(LeanPeerKeys, SimulatedKeyAgreement):
    """Simulated pair keys and lean per-peer state: the default of ``run_scale``."""


class _SimulatedMembership(Membership):
    """A member of a simulated mesh: counts its view for the harness without snapshots
    (a member snapshot, once made, is kept until the member changes: n^2 of them for a
    whole mesh), and in lean mode holds its peers' addresses as the shared tuples."""

    shared: SimulationCache | None = None

    def alive_count(self) -> int:
        """Members this node holds ALIVE, itself included."""
        return sum(entry.state is MemberState.ALIVE for entry in self._members.values())

    def _address_of(self, record: NodeRecord) -> Address | None:
        if self.shared is None:
            return super()._address_of(record)
        return self.shared.record_address(record.addresses, self.transport.local_address[1],
                                          lambda: super(_SimulatedMembership,
                                                        self)._address_of(record))


@dataclass
class ScaleResult:
    members: int
    profile: str
    real_keys: bool
    lean: bool
    join_s: float
    failure_s: float
    update_s: float
    probe_interval_s: float
    wall_s: float
    cpu_s: float  # process CPU time: the cost of simulating, whatever else the machine runs
    datagrams: int
    datagrams_per_member_s: float
    peak_rss_mib: float  # of the whole process so far (ru_maxrss)
    counters: dict[str, int] = field(default_factory=dict)

    def rounds(self, seconds: float) -> float:
        return seconds / self.probe_interval_s

    def to_dict(self) -> dict[str, Any]:
        return {"members": self.members, "profile": self.profile, "real_keys": self.real_keys,
                "lean": self.lean,
                "join_s": round(self.join_s, 3), "join_rounds": round(self.rounds(self.join_s), 1),
                "failure_s": round(self.failure_s, 3),
                "failure_rounds": round(self.rounds(self.failure_s), 1),
                "update_s": round(self.update_s, 3),
                "update_rounds": round(self.rounds(self.update_s), 1),
                "wall_s": round(self.wall_s, 1), "cpu_s": round(self.cpu_s, 1),
                "datagrams": self.datagrams,
                "datagrams_per_member_s": round(self.datagrams_per_member_s, 2),
                "peak_rss_mib": round(self.peak_rss_mib),
                "dropped_replay": self.counters.get("dropped_replay", 0)}


def _holding(nodes: list[_SimulatedMembership], subject: bytes,
             holds: Callable[[Member], bool]) -> Callable[[], int]:
    """How many of ``nodes`` hold ``subject`` in a state that ``holds``."""
    def count() -> int:
        return sum(1 for node in nodes
                   if (member := node.member(subject)) is not None and holds(member))
    return count


_PROGRESS_EVERY_S = 60.0  # wall seconds between progress lines while a phase runs


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _until(phase: str, count: Callable[[], int], goal: int, limit_s: float,
                 step_s: float, progress: Callable[[str], None]) -> float:
    """Protocol seconds until ``count()`` reaches ``goal`` (looked at every ``step_s``);
    a progress line at most every minute of wall time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reported = time.perf_counter()
    while (counted := count()) != goal:
        if loop.time() - started > limit_s:
            raise TimeoutError(f"no convergence within {limit_s} s of protocol time")
        if time.perf_counter() - reported > _PROGRESS_EVERY_S:
            reported = time.perf_counter()
            progress(f"{phase}: {counted / goal:.1%} after {loop.time() - started:.2f} s "
                     f"of protocol time, peak RSS {_peak_rss_mib():.0f} MiB")
        await asyncio.sleep(step_s)
    return loop.time() - started


def _peer_keys(real_keys: bool, lean: bool, identity: NodeIdentity,
               cert: MembershipCertificate, verifier: RecordVerifier,
               revocations: Callable[[], Any], shared: SimulationCache) -> PeerKeys | None:
    if lean:
        kind = LeanPeerKeys if real_keys else LeanSimulatedKeys
        return kind(identity, cert, verifier, revocations, shared)
    return None if real_keys else SimulatedKeyAgreement(identity, cert, verifier, revocations)


async def _scenario(n: int, profile: Profile, seed: int, real_keys: bool, lean: bool,
                    latency_s: float, limit_s: float, progress: Callable[[str], None],
                    ) -> ScaleResult:
    rng = random.Random(seed)
    root = MeshRoot.create()
    network = MemoryNetwork(seed=seed, latency=latency_s)
    verifier = RecordVerifier(root.trust)  # one cache for all: results depend on bytes only
    shared = SimulationCache()
    nodes: list[_SimulatedMembership] = []
    for index in range(n):
        identity, cert = issue_member(root, f"node{index}", _RUN_CERTIFICATE_LIFETIME_S)
        cell: list[Membership] = []
        keys = _peer_keys(real_keys, lean, identity, cert, verifier,
                          lambda cell=cell: cell[0].revocations if cell else None, shared)
        seeds = [simulated_address(rng.randrange(index))] if index else []
        node = _SimulatedMembership(identity, cert, root.trust,
                                    network.transport(simulated_address(index)),
                                    profile=profile, seeds=seeds, verifier=verifier,
                                    rng=random.Random(rng.random()), peer_keys=keys)
        if lean:
            node.shared = shared
        cell.append(node)
        nodes.append(node)
    progress(f"{n} members created")
    wall, cpu = time.perf_counter(), time.process_time()
    for node in nodes:
        await node.start()
    step = profile.probe_interval_s / 4
    join_s = await _until("join", lambda: sum(node.alive_count() for node in nodes), n * n,
                          limit_s, step, progress)
    progress(f"join converged after {join_s:.2f} s of protocol time, "
             f"peak RSS {_peak_rss_mib():.0f} MiB")

    victim = nodes[rng.randrange(1, n)]
    survivors = [node for node in nodes if node is not victim]
    network.crash(victim.transport.local_address)
    dead = _holding(survivors, victim.node_id,
                    lambda member: member.state == MemberState.UNREACHABLE)
    failure_s = await _until("crash", dead, n - 1, limit_s, step / 4, progress)
    progress(f"crash seen everywhere after {failure_s:.2f} s, "
             f"peak RSS {_peak_rss_mib():.0f} MiB")

    author = survivors[rng.randrange(len(survivors))]
    record = author.update_record(tags={"scale": "updated"})
    updated = _holding(survivors, author.node_id,
                       lambda member: member.incarnation >= record.incarnation)
    update_s = await _until("update", updated, len(survivors), limit_s, step / 4, progress)
    progress(f"record update everywhere after {update_s:.2f} s, "
             f"peak RSS {_peak_rss_mib():.0f} MiB")

    loop_s = asyncio.get_running_loop().time()
    totals: Counter[str] = Counter()
    for node in nodes:
        totals.update(node.counters)
    result = ScaleResult(
        members=n, profile=profile.name, real_keys=real_keys, lean=lean, join_s=join_s,
        failure_s=failure_s, update_s=update_s, probe_interval_s=profile.probe_interval_s,
        wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
        datagrams=network.counters["datagrams"],
        datagrams_per_member_s=network.counters["datagrams"] / n / max(loop_s, 1e-9),
        peak_rss_mib=_peak_rss_mib(),
        counters=dict(totals))
    await asyncio.gather(*(node.stop() for node in survivors), return_exceptions=True)
    return result


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After each full collection, hide its survivors from the next ones (``gc.freeze``).
    A run's member tables only grow, and full collections re-scan millions of
    long-lived entries (pauses of 6.9 s over a 500-member run, 1.3 s with this; about
    3 % of its CPU); this way each object is scanned by at most one of them. Cycles
    among frozen objects wait for the end of the run (``gc.unfreeze``)."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def run_scale(n: int, *, profile: Profile = Profile.LAN, seed: int = 1,
              real_keys: bool = False, lean: bool = True, latency_s: float = 0.0005,
              limit_s: float = 300.0, progress: Callable[[str], None] = lambda line: None,
              ) -> ScaleResult:
    """Run the three scenarios for ``n`` members in virtual time (see the module docs)."""
    gc.callbacks.append(_freeze_survivors)
    try:
        with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
            return runner.run(_scenario(n, profile, seed, real_keys, lean, latency_s,
                                        limit_s, progress))
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()
