"""The canonical encoding: maps sorted, the map-free shortcut giving the same bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent import codec
from meshagent.errors import DecodeError

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                     st.binary(max_size=40), st.text(max_size=20))
_PLAIN = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.tuples(inner, inner)), max_leaves=30)


@given(_PLAIN)
def test_map_free_values_pack_to_the_canonical_bytes(value: object) -> None:
    assert codec.pack_plain(value) == codec.pack(value)


def test_maps_are_packed_with_sorted_keys_at_every_depth() -> None:
    assert codec.pack({"b": 1, "a": [{"d": 2, "c": 3}]}) == \
        codec.pack({"a": [{"c": 3, "d": 2}], "b": 1})
    assert codec.unpack(codec.pack({"b": 1, "a": 2})) == {"a": 2, "b": 1}


@pytest.mark.parametrize("data", [b"", b"\xc1", codec.pack([1]) + b"\x00"])
def test_malformed_or_trailing_bytes_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.unpack(data)
