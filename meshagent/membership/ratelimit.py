"""Per-source token buckets: one address cannot flood an agent's receive path.

Checked before any decryption or signature work. Sources are keyed by IP address (a
flood from many ports of one host is one source). The table is bounded: when full, the
buckets that were idle longest are forgotten (they would be full again anyway).
"""

from __future__ import annotations

__all__ = ["SourceRateLimiter"]

_MAX_SOURCES = 4096


class SourceRateLimiter:
    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, last time)

    def allow(self, source: str, now: float, cost: float = 1.0) -> bool:
        tokens, last = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if len(self._buckets) >= _MAX_SOURCES:
            for stale in list(self._buckets)[: _MAX_SOURCES // 4]:
                del self._buckets[stale]
        self._buckets[source] = (tokens, now)  # re-inserted last: dict order = recency
        return allowed
