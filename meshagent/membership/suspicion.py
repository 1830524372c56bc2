"""Lifeguard: dynamic suspicion timeouts and the local health multiplier.

``Suspicion`` follows Lifeguard (Dadgar et al., 2018, section IV-B) as memberlist does:
a suspicion starts with the longest timeout and shrinks towards the shortest as
independent members confirm it,

    timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1))

where c is the number of distinct confirming members and k the number wanted. The owner
(``Membership``) re-arms its timer with ``deadline`` after each ``confirm``.

``LocalHealth`` is Lifeguard's local health multiplier (section IV-A): a node that misses
nacks or has to refute suspicions about itself is probably the slow one, so it stretches
its own probe timeouts instead of accusing others.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "LocalHealth"]


class Suspicion:
    def __init__(self, accuser: bytes, *, started: float, min_s: float, max_s: float,
                 wanted: int) -> None:
        self.started = started
        self.min_s = min_s
        self.max_s = max(max_s, min_s)
        self.wanted = wanted
        self.confirmers: set[bytes] = {accuser}

    @property
    def confirmations(self) -> int:
        return len(self.confirmers) - 1

    def confirm(self, accuser: bytes) -> bool:
        """Count an independent suspicion; True if it was new (the deadline moved)."""
        if accuser in self.confirmers or self.confirmations >= self.wanted:
            return False
        self.confirmers.add(accuser)
        return True

    def timeout(self) -> float:
        if self.wanted <= 0:
            return self.min_s
        fraction = math.log(self.confirmations + 1) / math.log(self.wanted + 1)
        return max(self.min_s, self.max_s - (self.max_s - self.min_s) * fraction)

    @property
    def deadline(self) -> float:
        return self.started + self.timeout()


class LocalHealth:
    """A score in [0, limit - 1]; timeouts are multiplied by score + 1."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(self.limit - 1, max(0, self.score + delta))

    def scale(self, duration: float) -> float:
        return duration * (self.score + 1)
