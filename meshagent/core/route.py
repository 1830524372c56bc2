"""The routing table's contract, the ``Route`` value and the checks both backends share.

``RouteTable(capacity)`` maps a destination node id to its best known ``Route``: next hop
(a neighbour's node id), metric, sequence number and expiry. Both backends implement it
(``meshagent.core.cbackend.route`` over ``csrc/route.c``, ``meshagent.core.pyref.route``
in plain Python); ``meshagent.core.RouteTable`` is the one ``MESHAGENT_BACKEND`` picks.

Rules (DSDV, and Babel as in RFC 8966 section 3.5):

- Sequence numbers are u32 compared modulo 2^32 (``seq_newer``): a newer one wins whatever
  its metric; an older one loses.
- At an equal sequence number a lower metric wins; the current next hop may also restate
  its route (same seq, same next hop: accepted, worse metric or not, refreshing the expiry).
- ``withdraw(node_id, seq)`` sets the metric to ``METRIC_INFINITY``: accepted when seq is
  newer than the stored one, or equal to it while the route is still reachable. A withdrawn
  route stays until it expires, so older announcements cannot bring it back; any finite
  metric at its seq or a newer one does. Unknown destinations are not inserted.
- ``expire(now)`` removes routes whose ``expires <= now``. Times are u32 seconds on the
  caller's monotonic clock.
- Limits are fixed at creation: ``capacity`` destinations (1..``CAPACITY_MAX``) and
  ``max_neighbours`` distinct next hops in use (1..``NEIGHBOURS_MAX``; next hops are direct
  neighbours). A new destination in a full table, or a next hop not in use while
  ``max_neighbours`` are, raises ``RouteTableFull`` and changes nothing (an update the
  rules reject is rejected first; known destinations and next hops still update).

Calls: ``update(node_id, next_hop, metric, seq, expires) -> bool`` (accepted?),
``withdraw(node_id, seq) -> bool``, ``expire(now) -> int`` (removed), ``lookup(node_id)``
and ``lookup_many(node_ids)`` (withdrawn routes included: check ``Route.reachable``),
``next_hops(packed_ids) -> bytes`` (the forwarding path: NODE_ID_BYTES of next hop per id,
``NO_NEXT_HOP`` where there is no reachable route), ``dump()`` (sorted by node id),
``len()``, ``capacity``, ``max_neighbours``. Bad arguments raise ``InvalidArgument``.
A table belongs to one thread (the agent's event loop).
"""

from __future__ import annotations

from typing import NamedTuple

from meshagent.core._checks import U32_MAX, bytes_of_length, int_in_range, readonly_view
from meshagent.core._native import lib
from meshagent.core.errors import CoreError, InvalidArgument, error_for
from meshagent.core.wire import NODE_ID_BYTES

__all__ = [
    "CAPACITY_MAX", "DEFAULT_CAPACITY", "DEFAULT_MAX_NEIGHBOURS", "METRIC_INFINITY",
    "NEIGHBOURS_MAX", "NO_NEXT_HOP", "Route", "capacity_full", "check_capacity",
    "check_max_neighbours", "check_metric", "check_next_hop", "check_node_id",
    "check_packed_ids", "check_u32", "neighbours_full", "seq_newer",
]

METRIC_INFINITY: int = lib.MESH_ROUTE_METRIC_INFINITY
CAPACITY_MAX: int = lib.MESH_ROUTE_CAPACITY_MAX
NEIGHBOURS_MAX: int = lib.MESH_ROUTE_NEIGHBOURS_MAX
DEFAULT_CAPACITY = 1 << 20
DEFAULT_MAX_NEIGHBOURS = 1024
NO_NEXT_HOP = bytes(NODE_ID_BYTES)


class Route(NamedTuple):
    """One destination's route. Tuples order by node id first, so sorting a dump is cheap."""

    node_id: bytes
    next_hop: bytes
    metric: int
    seq: int
    expires: int

    @property
    def reachable(self) -> bool:
        return self.metric != METRIC_INFINITY


def seq_newer(a: int, b: int) -> bool:
    """Whether sequence number ``a`` is newer than ``b`` modulo 2^32 (RFC 8966 3.2.1);
    numbers exactly 2^31 apart are neither newer nor older."""
    return 0 < (a - b) % (1 << 32) < (1 << 31)


def check_node_id(value: object, name: str = "node_id") -> bytes:
    return bytes_of_length(value, NODE_ID_BYTES, name)


def check_next_hop(value: object) -> bytes:
    next_hop = bytes_of_length(value, NODE_ID_BYTES, "next_hop")
    if next_hop == NO_NEXT_HOP:
        raise InvalidArgument("next_hop must not be all zero (it means 'no route')")
    return next_hop


def check_metric(value: object) -> int:
    """Metrics of announcements are 0..METRIC_INFINITY-1; infinity is ``withdraw``'s."""
    return int_in_range(value, METRIC_INFINITY - 1, "metric")


def check_u32(name: str, value: object) -> int:
    return int_in_range(value, U32_MAX, name)


def check_capacity(value: object) -> int:
    return int_in_range(value, CAPACITY_MAX, "capacity", bottom=1)


def check_max_neighbours(value: object) -> int:
    return int_in_range(value, NEIGHBOURS_MAX, "max_neighbours", bottom=1)


def capacity_full(capacity: int) -> CoreError:
    """The RouteTableFull of a new destination in a full table (same text from both backends)."""
    return error_for(lib.MESH_ERR_TABLE_FULL, f"capacity {capacity}")


def neighbours_full(max_neighbours: int) -> CoreError:
    """The RouteTableFull of one next hop too many."""
    return error_for(lib.MESH_ERR_TABLE_FULL, f"{max_neighbours} next hops in use")


def check_packed_ids(value: object) -> memoryview:
    """Node ids laid end to end, NODE_ID_BYTES each."""
    view = readonly_view(value, "packed_ids")
    if len(view) % NODE_ID_BYTES:
        raise InvalidArgument(f"packed_ids must be a multiple of {NODE_ID_BYTES} bytes")
    return view
