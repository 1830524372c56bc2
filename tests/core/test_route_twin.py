"""The C route table and its pure-Python twin, driven by the same random operations.

Each operation runs on both tables; return values, raised exception classes and messages,
and the full dump afterwards must be identical. Ids, next hops and sequence numbers come
from small pools (with values around the 2^32 wrap and the 2^31 half-way point) so updates
collide, tables fill, and the rules are exercised far more often than by uniform draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagent.core import Route, cbackend, pyref

U32 = 1 << 32
METRIC_MAX = 0xFFFE
node_ids = st.sampled_from([b"\x01" * 16, b"\x02" * 16, bytes(range(16))])
next_hops = st.sampled_from([b"\xa1" * 16, b"\xa2" * 16, b"\xa4" * 16])
metrics = st.sampled_from([0, 1, METRIC_MAX])
seqs = st.sampled_from([0, 1, 1 << 31, U32 - 1])
times = st.integers(0, 12) | st.just(U32 - 1)
seq_steps = st.sampled_from([0, 0, 1, -1, 1 << 31])
metric_steps = st.sampled_from([-1, 0, 1])
bad_ids = st.sampled_from([b"", b"\x01" * 15, b"\x01" * 17, "not bytes", None])
bad_u32 = st.sampled_from([-1, U32, 1.0, "1"])

Operation = Callable[[Any], object]


def _stored(table: Any, index: int) -> Route | None:
    """One of the routes the table holds (both tables hold the same ones, in the same order)."""
    routes = table.dump()
    return routes[index % len(routes)] if routes else None


def _answer_update(index: int, seq_step: int, metric_step: int, same_hop: bool,
                   expires: int) -> Operation:
    """An announcement for a stored destination at its seq or next to it, with a metric
    next to its metric, from its next hop or another: where the update rules bite."""
    def run(table: Any) -> object:
        route = _stored(table, index)
        if route is None:
            return None
        hop = route.next_hop if same_hop else bytes(b ^ 0x03 for b in route.next_hop)
        metric = min(max(route.metric + metric_step, 0), METRIC_MAX)
        return table.update(route.node_id, hop, metric, (route.seq + seq_step) % U32, expires)
    return run


def _answer_withdraw(index: int, seq_step: int) -> Operation:
    def run(table: Any) -> object:
        route = _stored(table, index)
        return None if route is None else table.withdraw(route.node_id,
                                                         (route.seq + seq_step) % U32)
    return run


# (weight, strategy): mostly changes, with enough reads to compare what each table answers.
weighted_operations = [
    (3, st.builds(lambda i, h, m, s, e: lambda t: t.update(i, h, m, s, e),
                  node_ids, next_hops, metrics, seqs, times)),
    (4, st.builds(_answer_update, st.integers(0, 7), seq_steps, metric_steps, st.booleans(),
                  times)),
    (2, st.builds(_answer_withdraw, st.integers(0, 7), seq_steps)),
    (1, st.builds(lambda i, s: lambda t: t.withdraw(i, s), node_ids, seqs)),
    (1, st.builds(lambda now: lambda t: t.expire(now), st.integers(0, 12))),
    (1, st.builds(lambda i: lambda t: t.lookup(i), node_ids)),
    (1, st.builds(lambda ids: lambda t: t.lookup_many(ids), st.lists(node_ids, max_size=6))),
    (1, st.builds(lambda ids: lambda t: t.next_hops(b"".join(ids)),
                  st.lists(node_ids, max_size=6))),
    (1, st.just(lambda t: len(t))),
    # Bad arguments: each must raise InvalidArgument and change nothing, on both sides.
    (1, st.one_of(
        st.builds(lambda i: lambda t: t.update(i, b"\xa1" * 16, 1, 1, 1), bad_ids),
        st.builds(lambda h: lambda t: t.update(b"\x01" * 16, h, 1, 1, 1),
                  bad_ids | st.just(bytes(16))),
        st.builds(lambda m: lambda t: t.update(b"\x01" * 16, b"\xa1" * 16, m, 1, 1),
                  bad_u32 | st.just(METRIC_MAX + 1)),
        st.builds(lambda s: lambda t: t.update(b"\x01" * 16, b"\xa1" * 16, 1, s, 1), bad_u32),
        st.builds(lambda e: lambda t: t.update(b"\x01" * 16, b"\xa1" * 16, 1, 1, e), bad_u32),
        st.builds(lambda i, s: lambda t: t.withdraw(i, s), bad_ids | node_ids, bad_u32),
        st.builds(lambda now: lambda t: t.expire(now), bad_u32),
        st.builds(lambda i: lambda t: t.lookup(i), bad_ids),
        st.builds(lambda ids: lambda t: t.lookup_many(ids), st.lists(bad_ids, min_size=1)),
        st.builds(lambda tail: lambda t: t.next_hops(b"\x01" * 16 + tail),
                  st.binary(min_size=1, max_size=15)),
    )),
]
_by_ticket = [strategy for weight, strategy in weighted_operations for _ in range(weight)]
operations = st.integers(0, len(_by_ticket) - 1).flatmap(lambda ticket: _by_ticket[ticket])


def outcome(operation: Operation, table: object) -> tuple[str, object]:
    try:
        return "ok", operation(table)
    except Exception as exc:  # the class and message are what we compare
        return type(exc).__name__, str(exc)


# More examples than the profile's default: each one is a whole operation sequence.
@settings(max_examples=max(300, settings().max_examples))
@given(capacity=st.integers(1, 8), max_neighbours=st.integers(1, 3),
       ops=st.lists(operations, min_size=5, max_size=80))
def test_c_table_and_python_twin_agree_on_every_operation(capacity: int, max_neighbours: int,
                                                          ops: list[Operation]) -> None:
    c_table = cbackend.RouteTable(capacity, max_neighbours)
    py_table = pyref.RouteTable(capacity, max_neighbours)
    for step, operation in enumerate(ops):
        c_result, py_result = outcome(operation, c_table), outcome(operation, py_table)
        assert c_result == py_result, f"step {step}"
        assert c_table.dump() == py_table.dump(), f"step {step}"
    assert len(c_table) == len(py_table) <= capacity


@pytest.mark.parametrize("limits", [(0, 1), (-1, 1), (1 << 30, 1), ("8", 1), (8.0, 1),
                                    (True, 1), (8, 0), (8, 1 << 16), (8, None)])
def test_limit_errors_agree(limits: tuple[object, object]) -> None:
    assert outcome(lambda _: cbackend.RouteTable(*limits), None) == \
        outcome(lambda _: pyref.RouteTable(*limits), None)
