"""Where a renewal for a node out of the mesh is held, and where that node looks for it
(``certdelivery.holder_order``). The delivery itself runs between whole agents in
``tests/mesh/test_agents_sockets.py``."""

from __future__ import annotations

import hashlib

from meshagent.certdelivery import HOLDERS, SEEK_FANOUT, holder_order


def _ids(count: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.blake2b(salt + i.to_bytes(4, "big"), digest_size=16).digest()
            for i in range(count)]


def test_holder_order_is_the_same_wherever_it_is_computed() -> None:
    node, members = _ids(1, b"node")[0], _ids(50)
    assert holder_order(node, members) == holder_order(node, list(reversed(members)))
    assert sorted(holder_order(node, members)) == sorted(members)
    # Another node's holders are another part of the mesh: the load spreads.
    other = _ids(1, b"other")[0]
    assert holder_order(node, members)[:HOLDERS] != holder_order(other, members)[:HOLDERS]


def test_a_member_joining_or_leaving_moves_no_other() -> None:
    node, members = _ids(1, b"node")[0], _ids(40)
    before = holder_order(node, members)
    gone = before[3]
    assert holder_order(node, [m for m in members if m != gone]) == \
        [m for m in before if m != gone]
    newcomer = _ids(1, b"newcomer")[0]
    after = holder_order(node, [*members, newcomer])
    assert [m for m in after if m != newcomer] == before


def test_a_node_with_an_old_view_asks_a_holder_in_its_first_round() -> None:
    """The node was away: since then 5 of the 200 members it knew left and 5 joined. The
    pusher (today's view) hands ``HOLDERS`` copies; the node asks the first
    ``SEEK_FANOUT`` of its own (old) order, for a thousand different nodes."""
    known_then = _ids(200)
    left = set(known_then[::40])
    today = [m for m in known_then if m not in left] + _ids(5, b"joined since")
    misses = 0
    for node in _ids(1000, b"node"):
        holders = set(holder_order(node, today)[:HOLDERS])
        misses += not holders & set(holder_order(node, known_then)[:SEEK_FANOUT])
    assert misses == 0
