"""Timing profiles of membership, in the spirit of memberlist's Default{LAN,WAN,Local}Config.

``Profile.LAN`` is the default. ``Profile.LOCAL`` is for many agents on one machine
(demos, tests, benchmarks on loopback). ``Profile.WAN`` trades detection speed for fewer
false suspicions on slow, lossy links. ``Profile.named("lan")`` maps config names.

How the knobs combine (n = members believed alive):

* every ``probe_interval_s`` a node probes one member (round robin over a shuffled list):
  a direct ping, answered within ``probe_timeout_s``, else ``indirect_checks`` members are
  asked to ping it (ping-req) and a TCP ping is tried; no ack by the end of the interval
  makes the member *suspect*. Both durations are multiplied by the Lifeguard local health
  score + 1 (at most ``max_health_multiplier``) when this node itself is slow.
* a suspicion expires after ``suspicion_min_s(n)`` = max(``suspicion_floor_s``,
  ``suspicion_mult`` x log10(n) x ``probe_interval_s``) once ``suspicion_mult - 2``
  independent members confirmed it, and after ``suspicion_max_mult`` x that with none
  (Lifeguard's dynamic suspicion timeout); then the member is *unreachable*. A paused
  member that wakes before that refutes with a higher incarnation.
* our own failed probe of a member that joined our view, or whose newer record (a
  refutation, an update) we accepted, less than ``probe_grace_s(n)`` (=
  ``suspicion_min_s(n)``) ago raises no suspicion (mass joins on a loaded machine),
  unless every helper nacked it.
* a member whose agent has crashed (its watch stream ends and its port refuses TCP) is
  unreachable at once, without waiting for suspicion.
* gossip goes out every ``gossip_interval_s`` to ``gossip_fanout`` members, and at once
  when there is urgent news (a death, a refutation, a new member); each item is sent
  ``retransmit_mult`` x ceil(log10(n + 1)) times.
* full state is exchanged over TCP with one random member every ``push_pull_interval_s``
  (scaled up beyond 32 members like memberlist), and, after a join or a healed partition,
  up to ``fast_sync_rounds`` times every ``fast_sync_interval_s`` while the view is still
  changing (joins converge in a few exchanges; bounded because a full state is O(n)).
  Pings, acks and gossip carry a digest of the records held; a member whose records have
  not changed for ``repair_interval_s`` but differ from a peer's exchanges state with it,
  once the difference has lasted ``probe_interval_s`` (so news in flight starts no
  repair); a peer holding more records (it knows a member we never heard of) is enough
  once that has lasted ``probe_interval_s`` with our record count still, whatever else
  changes (a timer ends that wait, no later digest needed). At most
  once per ``repair_interval_s``: what gossip lost is repaired within seconds.
* each node keeps ``watch_peers`` liveness streams to its successors on a ring of node ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

__all__ = ["Profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    probe_interval_s: float
    probe_timeout_s: float
    indirect_checks: int
    suspicion_mult: float
    suspicion_floor_s: float
    suspicion_max_mult: float
    gossip_interval_s: float
    gossip_fanout: int
    retransmit_mult: int
    push_pull_interval_s: float
    fast_sync_interval_s: float
    reconnect_interval_s: float
    stream_timeout_s: float
    watch_peers: int
    max_datagram: int
    fast_sync_rounds: int = 4
    repair_interval_s: float = 2.0
    max_health_multiplier: int = 8
    flood_rate_per_s: float = 2000.0
    flood_burst: float = 4000.0
    reap_unreachable_s: float = 24 * 3600.0
    reap_left_s: float = 3600.0

    LAN: ClassVar[Profile]
    WAN: ClassVar[Profile]
    LOCAL: ClassVar[Profile]

    @classmethod
    def named(cls, name: str) -> Profile:
        try:
            return {"lan": cls.LAN, "wan": cls.WAN, "local": cls.LOCAL}[name.lower()]
        except KeyError:
            raise ValueError(f"unknown membership profile {name!r}") from None

    def with_changes(self, **changes: float | int | str) -> Profile:
        return replace(self, **changes)  # type: ignore[arg-type]

    def suspicion_min_s(self, alive: int) -> float:
        scale = max(1.0, math.log10(max(1, alive)))
        return max(self.suspicion_floor_s, self.suspicion_mult * scale * self.probe_interval_s)

    def probe_grace_s(self, alive: int) -> float:
        """How long a member that just joined our view, or just signed a newer record (a
        refutation is one), is spared suspicions raised by our own failed probes: one
        minimum suspicion timeout. A newer record is the member's own, fresh word that it
        is alive, stronger evidence than one missed probe.

        In a mass join every process is busy learning the mesh (state exchanges, record
        checks), and on a loaded machine probes time out because the target waits for the
        CPU, not because it failed. Each such suspicion costs a refutation: a new signed
        record that every member fetches and checks, which is more work for the same
        starved CPUs (a suspicion storm). The grace used to apply only while our own
        Lifeguard health score was above zero; but the prober is often healthy while its
        target is the starved one, and at 100 agents on 2 cores the join then raised over
        1,300 false suspicions and took 11 s, against 95-249 and 5.0 s with the grace
        always on (BENCHMARKS.md). A crash is still seen at once (a refused TCP probe or a
        watch stream that ends), and suspicions raised by other members are still
        accepted. Nor does the grace hold against a failed probe that every helper nacked:
        members that answer at once could not reach the target either, so it is not the
        mesh that is starved. A member that goes silent right after it joined or
        re-signed its record (a candidacy, a tag) is thus still found unreachable within
        the usual bound; in a mass join the starved helpers do not all nack, and the
        grace holds."""
        return self.suspicion_min_s(alive)

    def suspicion_max_s(self, alive: int) -> float:
        return self.suspicion_max_mult * self.suspicion_min_s(alive)

    def confirmations_wanted(self, alive: int) -> int:
        """Lifeguard's k: independent suspicions that shorten the timeout to its minimum."""
        wanted = int(self.suspicion_mult) - 2
        return wanted if alive - 2 >= wanted else 0

    def retransmit_limit(self, alive: int) -> int:
        return self.retransmit_mult * max(1, math.ceil(math.log10(alive + 1)))

    def push_pull_scaled_s(self, alive: int) -> float:
        """memberlist's pushPullScale: slower full-state exchange in large meshes."""
        if alive <= 32:
            return self.push_pull_interval_s
        return self.push_pull_interval_s * (math.ceil(math.log2(alive) - math.log2(32)) + 1)


Profile.LAN = Profile(
    name="lan", probe_interval_s=0.5, probe_timeout_s=0.25, indirect_checks=3,
    suspicion_mult=3, suspicion_floor_s=3.0, suspicion_max_mult=1.5,
    gossip_interval_s=0.1, gossip_fanout=3, retransmit_mult=4,
    push_pull_interval_s=30.0, fast_sync_interval_s=0.25, reconnect_interval_s=10.0,
    stream_timeout_s=2.0, watch_peers=2, max_datagram=1400)

Profile.LOCAL = Profile(
    name="local", probe_interval_s=0.5, probe_timeout_s=0.2, indirect_checks=3,
    suspicion_mult=3, suspicion_floor_s=3.0, suspicion_max_mult=1.5,
    gossip_interval_s=0.05, gossip_fanout=4, retransmit_mult=3,
    push_pull_interval_s=15.0, fast_sync_interval_s=0.2, reconnect_interval_s=5.0,
    stream_timeout_s=1.0, watch_peers=2, max_datagram=8192)

Profile.WAN = Profile(
    name="wan", probe_interval_s=3.0, probe_timeout_s=1.5, indirect_checks=4,
    suspicion_mult=6, suspicion_floor_s=15.0, suspicion_max_mult=3.0,
    gossip_interval_s=0.5, gossip_fanout=4, retransmit_mult=4,
    push_pull_interval_s=60.0, fast_sync_interval_s=1.0, reconnect_interval_s=30.0,
    stream_timeout_s=10.0, watch_peers=2, max_datagram=1200, flood_rate_per_s=500.0,
    flood_burst=1000.0)
