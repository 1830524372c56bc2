"""The routing table in plain Python: a dict, written to be obviously correct.

Twin of ``csrc/route.c`` (see ``meshagent.core.route`` for the rules and the contract).
Property tests drive both with the same operations and demand the same results, errors
included; ``MESHAGENT_BACKEND=python`` makes it the table the agent uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from meshagent.core.route import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_NEIGHBOURS,
    METRIC_INFINITY,
    NO_NEXT_HOP,
    Route,
    capacity_full,
    check_capacity,
    check_max_neighbours,
    check_metric,
    check_next_hop,
    check_node_id,
    check_packed_ids,
    check_u32,
    neighbours_full,
    seq_newer,
)

__all__ = ["RouteTable"]


class RouteTable:
    """Destination node id -> best known ``Route``, at most ``capacity`` of them, through at
    most ``max_neighbours`` distinct next hops."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY,
                 max_neighbours: int = DEFAULT_MAX_NEIGHBOURS) -> None:
        self._capacity = check_capacity(capacity)
        self._max_neighbours = check_max_neighbours(max_neighbours)
        self._routes: dict[bytes, Route] = {}
        self._hop_users: Counter[bytes] = Counter()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_neighbours(self) -> int:
        return self._max_neighbours

    def __len__(self) -> int:
        return len(self._routes)

    def update(self, node_id: bytes, next_hop: bytes, metric: int, seq: int,
               expires: int) -> bool:
        node_id = check_node_id(node_id)
        next_hop = check_next_hop(next_hop)
        metric = check_metric(metric)
        seq = check_u32("seq", seq)
        expires = check_u32("expires", expires)
        old = self._routes.get(node_id)
        if old is None:
            if len(self._routes) == self._capacity:
                raise capacity_full(self._capacity)
        elif not (seq_newer(seq, old.seq)
                  or (seq == old.seq and (metric < old.metric or next_hop == old.next_hop))):
            return False
        if next_hop not in self._hop_users and len(self._hop_users) == self._max_neighbours:
            raise neighbours_full(self._max_neighbours)
        self._hop_users[next_hop] += 1
        if old is not None:
            self._release(old.next_hop)
        self._routes[node_id] = Route(node_id, next_hop, metric, seq, expires)
        return True

    def _release(self, next_hop: bytes) -> None:
        self._hop_users[next_hop] -= 1
        if not self._hop_users[next_hop]:
            del self._hop_users[next_hop]

    def withdraw(self, node_id: bytes, seq: int) -> bool:
        node_id = check_node_id(node_id)
        seq = check_u32("seq", seq)
        old = self._routes.get(node_id)
        if old is None:
            return False
        if not (seq_newer(seq, old.seq) or (seq == old.seq and old.reachable)):
            return False
        self._routes[node_id] = old._replace(metric=METRIC_INFINITY, seq=seq)
        return True

    def expire(self, now: int) -> int:
        now = check_u32("now", now)
        stale = [node_id for node_id, route in self._routes.items() if route.expires <= now]
        for node_id in stale:
            self._release(self._routes.pop(node_id).next_hop)
        return len(stale)

    def lookup(self, node_id: bytes) -> Route | None:
        return self._routes.get(check_node_id(node_id))

    def lookup_many(self, node_ids: Iterable[bytes]) -> list[Route | None]:
        checked = [check_node_id(node_id) for node_id in node_ids]
        return [self._routes.get(node_id) for node_id in checked]

    def next_hops(self, packed_ids: bytes) -> bytes:
        packed = bytes(check_packed_ids(packed_ids))
        hops = []
        for start in range(0, len(packed), len(NO_NEXT_HOP)):
            route = self._routes.get(packed[start:start + len(NO_NEXT_HOP)])
            hops.append(route.next_hop if route is not None and route.reachable else NO_NEXT_HOP)
        return b"".join(hops)

    def dump(self) -> list[Route]:
        return sorted(self._routes.values())
