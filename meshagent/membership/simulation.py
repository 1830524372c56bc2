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
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshagent.identity import MembershipCertificate, MeshRoot, NodeIdentity
from meshagent.membership.sealing import PeerKeys
from meshagent.membership.state import Member, MemberState
from meshagent.membership.swim import Membership
from meshagent.profiles import Profile
from meshagent.record import RecordVerifier
from meshagent.transport import Address, MemoryNetwork, VirtualClockLoop

__all__ = ["SimulatedKeyAgreement", "ScaleResult", "run_scale", "issue_member",
           "simulated_address"]


def issue_member(root: MeshRoot, hostname: str,
                 ) -> tuple[NodeIdentity, MembershipCertificate]:
    """A fresh node identity with a root-signed certificate (one hour)."""
    identity = NodeIdentity.generate()
    return identity, root.issue_certificate(identity.sign_public, identity.dh_public,
                                            ["member"], hostname, lifetime_s=3600)


def simulated_address(index: int) -> Address:
    return (f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}", 7946)


class SimulatedKeyAgreement(PeerKeys):
    """Pair keys from public keys only: for in-process simulations, never for agents."""

    def _secret(self, peer: Any) -> bytes:
        if peer.secret is None:
            publics = sorted((self.identity.dh_public, peer.cert.dh_public))
            peer.secret = hashlib.sha256(b"simulation" + publics[0] + publics[1]).digest()
        return peer.secret

    def _pair_keys(self, peer: Any) -> tuple[bytes, bytes]:
        if peer.keys is None:
            secret = self._secret(peer)
            to_peer = hashlib.sha256(secret + self.node_id + peer.cert.node_id).digest()
            from_peer = hashlib.sha256(secret + peer.cert.node_id + self.node_id).digest()
            peer.keys = (to_peer, from_peer)
        return peer.keys


@dataclass
class ScaleResult:
    members: int
    profile: str
    real_keys: bool
    join_s: float
    failure_s: float
    update_s: float
    probe_interval_s: float
    wall_s: float
    datagrams: int
    datagrams_per_member_s: float
    counters: dict[str, int] = field(default_factory=dict)

    def rounds(self, seconds: float) -> float:
        return seconds / self.probe_interval_s

    def to_dict(self) -> dict[str, Any]:
        return {"members": self.members, "profile": self.profile, "real_keys": self.real_keys,
                "join_s": round(self.join_s, 3), "join_rounds": round(self.rounds(self.join_s), 1),
                "failure_s": round(self.failure_s, 3),
                "failure_rounds": round(self.rounds(self.failure_s), 1),
                "update_s": round(self.update_s, 3),
                "update_rounds": round(self.rounds(self.update_s), 1),
                "wall_s": round(self.wall_s, 1), "datagrams": self.datagrams,
                "datagrams_per_member_s": round(self.datagrams_per_member_s, 2)}


class _Tally:
    """Counts (observer, subject) pairs satisfying a predicate, from change events only
    (polling n members' views would cost n^2 per look)."""

    def __init__(self, nodes: list[Membership], holds: Callable[[Member], bool]) -> None:
        self.count = 0
        self.holds = holds
        self._seen: set[tuple[bytes, bytes]] = set()
        for node in nodes:
            node.on_change(self._callback(node.node_id))
            for member in node.members():
                self._update(node.node_id, member)

    def _callback(self, observer: bytes) -> Callable[[Member, Any, Any], None]:
        return lambda member, old, new: self._update(observer, member)

    def _update(self, observer: bytes, member: Member) -> None:
        key = (observer, member.node_id)
        if self.holds(member):
            if key not in self._seen:
                self._seen.add(key)
                self.count += 1
        elif key in self._seen:
            self._seen.discard(key)
            self.count -= 1


async def _until(condition: Callable[[], bool], limit_s: float, step_s: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        if loop.time() - started > limit_s:
            raise TimeoutError(f"no convergence within {limit_s} s of protocol time")
        await asyncio.sleep(step_s)
    return loop.time() - started


async def _scenario(n: int, profile: Profile, seed: int, real_keys: bool, latency_s: float,
                    limit_s: float, progress: Callable[[str], None]) -> ScaleResult:
    rng = random.Random(seed)
    root = MeshRoot.create()
    network = MemoryNetwork(seed=seed, latency=latency_s)
    verifier = RecordVerifier(root.trust)  # one cache for all: results depend on bytes only
    nodes: list[Membership] = []
    for index in range(n):
        identity, cert = issue_member(root, f"node{index}")
        cell: list[Membership] = []
        keys = None if real_keys else SimulatedKeyAgreement(
            identity, cert, verifier, lambda cell=cell: cell[0].revocations if cell else None)
        seeds = [simulated_address(rng.randrange(index))] if index else []
        node = Membership(identity, cert, root.trust, network.transport(simulated_address(index)),
                          profile=profile, seeds=seeds, verifier=verifier,
                          rng=random.Random(rng.random()), peer_keys=keys)
        cell.append(node)
        nodes.append(node)
    progress(f"{n} members created")
    wall = time.perf_counter()
    for node in nodes:
        await node.start()
    alive = _Tally(nodes, lambda member: member.state == MemberState.ALIVE)
    step = profile.probe_interval_s / 4
    join_s = await _until(lambda: alive.count == n * n, limit_s, step)
    progress(f"join converged after {join_s:.2f} s of protocol time")

    victim = nodes[rng.randrange(1, n)]
    dead = _Tally([node for node in nodes if node is not victim],
                  lambda member: member.node_id == victim.node_id
                  and member.state == MemberState.UNREACHABLE)
    network.crash(victim.transport.local_address)
    failure_s = await _until(lambda: dead.count == n - 1, limit_s, step / 4)
    progress(f"crash seen everywhere after {failure_s:.2f} s")

    survivors = [node for node in nodes if node is not victim]
    author = survivors[rng.randrange(len(survivors))]
    record = author.update_record(tags={"scale": "updated"})
    updated = _Tally(survivors, lambda member: member.node_id == author.node_id
                     and member.incarnation >= record.incarnation)
    update_s = await _until(lambda: updated.count == len(survivors), limit_s, step / 4)
    progress(f"record update everywhere after {update_s:.2f} s")

    loop_s = asyncio.get_running_loop().time()
    totals: Counter[str] = Counter()
    for node in nodes:
        totals.update(node.counters)
    result = ScaleResult(
        members=n, profile=profile.name, real_keys=real_keys, join_s=join_s,
        failure_s=failure_s, update_s=update_s, probe_interval_s=profile.probe_interval_s,
        wall_s=time.perf_counter() - wall, datagrams=network.counters["datagrams"],
        datagrams_per_member_s=network.counters["datagrams"] / n / max(loop_s, 1e-9),
        counters=dict(totals))
    await asyncio.gather(*(node.stop() for node in survivors), return_exceptions=True)
    return result


def run_scale(n: int, *, profile: Profile = Profile.LAN, seed: int = 1,
              real_keys: bool = False, latency_s: float = 0.0005, limit_s: float = 300.0,
              progress: Callable[[str], None] = lambda line: None) -> ScaleResult:
    """Run the three scenarios for ``n`` members in virtual time (see the module docs)."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(_scenario(n, profile, seed, real_keys, latency_s, limit_s,
                                    progress))
