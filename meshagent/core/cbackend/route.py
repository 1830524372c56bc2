"""Routing table over ``csrc/route.c`` (rules and contract: ``meshagent.core.route``).

Routes cross the boundary as ``mesh_route`` records, read back in bulk with ``struct``
(``_RECORD`` mirrors the C layout, checked against cffi at import). ``next_hops`` is the
forwarding path: one call resolves a whole batch of destinations into packed next hops.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from meshagent.core._native import ffi, lib
from meshagent.core.errors import ensure
from meshagent.core.route import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_NEIGHBOURS,
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
)
from meshagent.core.wire import NODE_ID_BYTES

__all__ = ["RouteTable"]

# mesh_route: node_id, next_hop, seq, expires, metric, reserved (native order, no padding).
_RECORD = struct.Struct("=16s16sIIHH")
if _RECORD.size != ffi.sizeof("mesh_route"):  # pragma: no cover - a build/ABI mismatch
    raise ImportError(f"mesh_route is {ffi.sizeof('mesh_route')} bytes, expected {_RECORD.size}")


def _route(record: tuple[bytes, bytes, int, int, int, int]) -> Route:
    node_id, next_hop, seq, expires, metric, _reserved = record
    return Route(node_id, next_hop, metric, seq, expires)


def _accepted(status: int) -> bool:
    if status < 0:
        ensure(status)
    return status == lib.MESH_ROUTE_ACCEPTED


class RouteTable:
    """Destination node id -> best known ``Route``, at most ``capacity`` of them, through at
    most ``max_neighbours`` distinct next hops, in C."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY,
                 max_neighbours: int = DEFAULT_MAX_NEIGHBOURS) -> None:
        capacity = check_capacity(capacity)
        max_neighbours = check_max_neighbours(max_neighbours)
        seed = int.from_bytes(os.urandom(8), "little")
        table = lib.mesh_route_table_new(capacity, max_neighbours, seed)
        if table == ffi.NULL:
            raise MemoryError(f"cannot allocate a route table of {capacity} routes")
        self._memory_bytes = int(lib.mesh_route_table_memory_bytes(table))
        self._table = ffi.gc(table, lib.mesh_route_table_free, size=self._memory_bytes)
        self._capacity = capacity
        self._max_neighbours = max_neighbours
        self._one = ffi.new("mesh_route *")

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_neighbours(self) -> int:
        return self._max_neighbours

    @property
    def memory_bytes(self) -> int:
        """Bytes the C table allocated (records and slots), whatever its fill."""
        return self._memory_bytes

    def __len__(self) -> int:
        return int(lib.mesh_route_table_size(self._table))

    def update(self, node_id: bytes, next_hop: bytes, metric: int, seq: int,
               expires: int) -> bool:
        node_id = check_node_id(node_id)
        status = lib.mesh_route_update(
            self._table, node_id, check_next_hop(next_hop), check_metric(metric),
            check_u32("seq", seq), check_u32("expires", expires))
        if status == lib.MESH_ERR_TABLE_FULL:
            new_destination = lib.mesh_route_lookup(self._table, node_id, self._one) == 0
            if new_destination and len(self) == self._capacity:
                raise capacity_full(self._capacity)
            raise neighbours_full(self._max_neighbours)
        return _accepted(status)

    def withdraw(self, node_id: bytes, seq: int) -> bool:
        return _accepted(lib.mesh_route_withdraw(
            self._table, check_node_id(node_id), check_u32("seq", seq)))

    def expire(self, now: int) -> int:
        removed = lib.mesh_route_expire(self._table, check_u32("now", now))
        if removed < 0:
            ensure(removed)
        return int(removed)

    def lookup(self, node_id: bytes) -> Route | None:
        found = lib.mesh_route_lookup(self._table, check_node_id(node_id), self._one)
        if found < 0:
            ensure(found)
        return _route(_RECORD.unpack(ffi.buffer(self._one))) if found else None

    def lookup_many(self, node_ids: Iterable[bytes]) -> list[Route | None]:
        packed = b"".join(check_node_id(node_id) for node_id in node_ids)
        count = len(packed) // NODE_ID_BYTES
        records = ffi.new("mesh_route[]", count)
        found = ffi.new("uint8_t[]", count)
        status = lib.mesh_route_lookup_batch(self._table, packed, count, records, found)
        if status < 0:
            ensure(status)
        return [_route(record) if hit else None
                for record, hit in zip(_RECORD.iter_unpack(ffi.buffer(records)),
                                       bytes(ffi.buffer(found)))]

    def next_hops(self, packed_ids: bytes) -> bytes:
        view = check_packed_ids(packed_ids)
        out = bytearray(len(view))
        if view:
            status = lib.mesh_route_next_hops(self._table, ffi.from_buffer(view),
                                              len(view) // NODE_ID_BYTES, ffi.from_buffer(out))
            if status < 0:
                ensure(status)
        return bytes(out)

    def dump(self) -> list[Route]:
        size = len(self)
        records = ffi.new("mesh_route[]", size)
        copied = lib.mesh_route_dump(self._table, records, size)
        return sorted(map(_route, _RECORD.iter_unpack(ffi.buffer(records, copied * _RECORD.size))))
