"""Route table update rules, on the backend MESHAGENT_BACKEND selects."""

from __future__ import annotations

import pytest

from meshagent.core import (
    BACKEND,
    METRIC_INFINITY,
    NO_NEXT_HOP,
    InvalidArgument,
    Route,
    RouteTable,
    RouteTableFull,
    cbackend,
    pyref,
    seq_newer,
)
from meshagent.core.route import CAPACITY_MAX, NEIGHBOURS_MAX

DEST = bytes.fromhex("00112233445566778899aabbccddeeff")
OTHER = bytes.fromhex("ffeeddccbbaa99887766554433221100")
HOP_A = b"\xaa" * 16
HOP_B = b"\xbb" * 16
U32 = 1 << 32


@pytest.fixture
def table() -> RouteTable:
    return RouteTable(8)


def test_backend_switch_picks_the_route_table() -> None:
    expected = cbackend.RouteTable if BACKEND == "c" else pyref.RouteTable
    assert RouteTable is expected


def test_new_destination_is_inserted_and_found(table: RouteTable) -> None:
    assert table.update(DEST, HOP_A, 10, 5, 1000) is True
    assert table.lookup(DEST) == Route(DEST, HOP_A, 10, 5, 1000)
    assert table.lookup(OTHER) is None
    assert len(table) == 1


def test_newer_sequence_number_wins_even_with_worse_metric(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    assert table.update(DEST, HOP_B, 500, 6, 2000) is True
    assert table.lookup(DEST) == Route(DEST, HOP_B, 500, 6, 2000)


def test_older_sequence_number_is_rejected(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    assert table.update(DEST, HOP_B, 1, 4, 2000) is False
    assert table.lookup(DEST) == Route(DEST, HOP_A, 10, 5, 1000)


def test_equal_sequence_number_lower_metric_wins(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    assert table.update(DEST, HOP_B, 10, 5, 2000) is False
    assert table.update(DEST, HOP_B, 11, 5, 2000) is False
    assert table.update(DEST, HOP_B, 9, 5, 2000) is True
    assert table.lookup(DEST) == Route(DEST, HOP_B, 9, 5, 2000)


def test_current_next_hop_may_restate_a_worse_metric_at_the_same_seq(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    assert table.update(DEST, HOP_A, 40, 5, 3000) is True
    assert table.lookup(DEST) == Route(DEST, HOP_A, 40, 5, 3000)


def test_sequence_numbers_wrap_around(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, U32 - 1, 1000)
    assert table.update(DEST, HOP_B, 50, 0, 1000) is True
    assert table.update(DEST, HOP_A, 1, U32 - 1, 1000) is False
    assert table.lookup(DEST).seq == 0


def test_seq_newer_is_modulo_2_32_and_undecided_half_way() -> None:
    assert seq_newer(1, 0) and not seq_newer(0, 1)
    assert seq_newer(0, U32 - 1) and seq_newer(10, U32 - 10)
    assert not seq_newer(7, 7)
    assert not seq_newer(1 << 31, 0) and not seq_newer(0, 1 << 31)


def test_withdrawal_makes_the_route_unreachable_and_keeps_its_seq(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    assert table.withdraw(DEST, 5) is True
    route = table.lookup(DEST)
    assert route == Route(DEST, HOP_A, METRIC_INFINITY, 5, 1000)
    assert not route.reachable
    assert table.next_hops(DEST) == NO_NEXT_HOP
    assert table.withdraw(DEST, 5) is False


def test_withdrawn_route_refuses_older_announcements_but_not_current_ones(
        table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    table.withdraw(DEST, 7)
    assert table.update(DEST, HOP_B, 1, 6, 1000) is False
    assert table.update(DEST, HOP_B, 1, 7, 1000) is True
    assert table.lookup(DEST).reachable


def test_stale_or_unknown_withdrawal_changes_nothing(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 10, 5, 1000)
    assert table.withdraw(DEST, 4) is False
    assert table.withdraw(OTHER, 9) is False
    assert table.lookup(OTHER) is None
    assert table.dump() == [Route(DEST, HOP_A, 10, 5, 1000)]


def test_expire_removes_routes_due_at_or_before_now(table: RouteTable) -> None:
    ids = [bytes([n]) * 16 for n in range(1, 7)]
    for n, node_id in enumerate(ids):
        table.update(node_id, HOP_A, 1, 1, 100 + n)
    assert table.expire(99) == 0
    assert table.expire(102) == 3
    assert [route.node_id for route in table.dump()] == ids[3:]
    assert all(table.lookup(node_id) is None for node_id in ids[:3])


def test_full_table_refuses_new_destinations_but_updates_known_ones() -> None:
    table = RouteTable(3)
    ids = [bytes([n]) * 16 for n in range(1, 4)]
    for node_id in ids:
        table.update(node_id, HOP_A, 1, 1, 100)
    with pytest.raises(RouteTableFull, match="capacity 3"):
        table.update(OTHER, HOP_A, 1, 1, 100)
    assert table.lookup(OTHER) is None
    assert table.update(ids[0], HOP_B, 1, 2, 100) is True
    table.expire(100)
    assert table.update(OTHER, HOP_A, 1, 1, 200) is True


def test_a_next_hop_beyond_max_neighbours_is_refused_until_one_is_free() -> None:
    table = RouteTable(8, max_neighbours=2)
    hop_c = b"\xcc" * 16
    table.update(DEST, HOP_A, 1, 1, 10)
    table.update(OTHER, HOP_B, 1, 1, 20)
    with pytest.raises(RouteTableFull, match="2 next hops in use"):
        table.update(b"\x01" * 16, hop_c, 1, 1, 30)
    with pytest.raises(RouteTableFull):
        table.update(OTHER, hop_c, 1, 2, 20)
    assert table.lookup(OTHER) == Route(OTHER, HOP_B, 1, 1, 20)
    assert table.expire(20) == 2
    assert table.update(b"\x01" * 16, hop_c, 1, 1, 30) is True


def test_next_hops_resolves_a_packed_batch(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 1, 1, 100)
    table.update(OTHER, HOP_B, 1, 1, 100)
    third = b"\x01" * 16
    table.update(third, HOP_B, 1, 1, 100)
    table.withdraw(third, 2)
    packed = DEST + b"\x77" * 16 + OTHER + third + DEST
    assert table.next_hops(packed) == HOP_A + NO_NEXT_HOP + HOP_B + NO_NEXT_HOP + HOP_A
    assert table.next_hops(b"") == b""


def test_lookup_many_matches_single_lookups(table: RouteTable) -> None:
    table.update(DEST, HOP_A, 3, 1, 100)
    table.update(OTHER, HOP_B, 4, 2, 100)
    table.withdraw(OTHER, 2)
    ids = [OTHER, b"\x01" * 16, DEST, DEST]
    assert table.lookup_many(ids) == [table.lookup(node_id) for node_id in ids]
    assert table.lookup_many([]) == []


def test_dump_is_sorted_by_node_id(table: RouteTable) -> None:
    for node_id in (OTHER, DEST, b"\x80" * 16):
        table.update(node_id, HOP_A, 1, 1, 100)
    assert [route.node_id for route in table.dump()] == sorted([OTHER, DEST, b"\x80" * 16])


@pytest.mark.parametrize("call", [
    lambda t: t.update(DEST[:15], HOP_A, 1, 1, 1),
    lambda t: t.update("x" * 16, HOP_A, 1, 1, 1),
    lambda t: t.update(DEST, NO_NEXT_HOP, 1, 1, 1),
    lambda t: t.update(DEST, HOP_A, METRIC_INFINITY, 1, 1),
    lambda t: t.update(DEST, HOP_A, -1, 1, 1),
    lambda t: t.update(DEST, HOP_A, 1, U32, 1),
    lambda t: t.update(DEST, HOP_A, 1, 1, -1),
    lambda t: t.update(DEST, HOP_A, 1, 1, 1.5),
    lambda t: t.withdraw(DEST + b"\x00", 1),
    lambda t: t.expire(U32),
    lambda t: t.lookup(None),
    lambda t: t.lookup_many([DEST, b"short"]),
    lambda t: t.next_hops(DEST + b"\x00"),
], ids=["short-id", "str-id", "zero-hop", "infinite-metric", "negative-metric", "seq-2^32",
        "negative-expiry", "float-expiry", "long-id", "now-2^32", "none-id", "short-in-batch",
        "ragged-batch"])
def test_bad_arguments_raise_invalid_argument_and_change_nothing(table: RouteTable,
                                                                 call) -> None:
    table.update(OTHER, HOP_A, 1, 1, 100)
    with pytest.raises(InvalidArgument):
        call(table)
    assert table.dump() == [Route(OTHER, HOP_A, 1, 1, 100)]


@pytest.mark.parametrize("limits", [(0, 1), (-1, 1), (CAPACITY_MAX + 1, 1), (2.0, 1),
                                    (2, 0), (2, NEIGHBOURS_MAX + 1)])
def test_limits_outside_their_range_are_refused(limits: tuple[object, object]) -> None:
    with pytest.raises(InvalidArgument):
        RouteTable(*limits)


def test_a_million_routes_take_at_most_64_bytes_each() -> None:
    capacity = 1_000_000
    table = cbackend.RouteTable(capacity)
    assert table.capacity == capacity
    assert table.memory_bytes <= 64 * capacity
