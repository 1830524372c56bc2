"""The piggyback queue: gossip waiting to ride on probes and gossip datagrams.

Like memberlist's TransmitLimitedQueue: one item per subject (a newer item about the same
node replaces the older one, so stale news is never sent), each item sent at most
``limit`` times (``Profile.retransmit_limit``: a multiple of log10 of the mesh size, which
is what epidemic dissemination needs to reach everyone with high probability), and the
least-sent items first so fresh news spreads before old news is repeated. Items are kept
in buckets by send count, so taking a datagram's worth is cheap even with thousands
queued (a mass join).
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["BroadcastQueue"]

_MAX_MISSES = 32  # items too big for the space left before a datagram counts as full
_NOTHING_QUEUED = 1 << 62


class BroadcastQueue:
    def __init__(self) -> None:
        self._buckets: list[dict[Hashable, bytes]] = [{}]
        self._count: dict[Hashable, int] = {}
        # No item ever queued was smaller: a datagram with less room left is full (a
        # lower bound, never raised, so it holds for whatever is queued now).
        self._smallest = _NOTHING_QUEUED

    def __len__(self) -> int:
        return len(self._count)

    def enqueue(self, subject: Hashable, encoded: bytes, sent: int = 0) -> None:
        """Queue one packed message about ``subject``, replacing older news about it.

        ``sent`` counts sends as already done: news that also spreads another way is
        queued with fewer sends left and behind fresher news."""
        old = self._count.pop(subject, None)
        if old is not None:
            del self._buckets[old][subject]
        while len(self._buckets) <= sent:
            self._buckets.append({})
        self._buckets[sent][subject] = encoded
        self._count[subject] = sent
        if len(encoded) < self._smallest:
            self._smallest = len(encoded)

    def discard(self, subject: Hashable) -> None:
        old = self._count.pop(subject, None)
        if old is not None:
            del self._buckets[old][subject]

    def take(self, budget: int, limit: int, per_item_overhead: int = 0) -> list[bytes]:
        """Messages fitting ``budget`` bytes, least sent (then newest) first; each taken
        message counts one send and leaves the queue after ``limit`` sends."""
        taken: list[bytes] = []
        moves: list[tuple[Hashable, int]] = []
        misses = 0
        full = self._smallest + per_item_overhead  # less room than this: nothing fits
        for count, bucket in enumerate(self._buckets):
            if budget < full or misses > _MAX_MISSES:
                break
            for subject, encoded in reversed(bucket.items()):
                size = len(encoded) + per_item_overhead
                if size > budget:
                    misses += 1
                    if misses > _MAX_MISSES:
                        break
                    continue
                budget -= size
                taken.append(encoded)
                moves.append((subject, count))
                if budget < full:
                    break
        for subject, count in moves:
            encoded = self._buckets[count].pop(subject)
            if count + 1 >= limit:
                del self._count[subject]
                continue
            if count + 1 == len(self._buckets):
                self._buckets.append({})
            self._buckets[count + 1][subject] = encoded
            self._count[subject] = count + 1
        return taken
