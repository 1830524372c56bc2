"""The one encoding of structured data on the mesh: canonical MessagePack.

Everything signed (certificates, node records, commands, results, allowlists) is
carried as the exact bytes that were signed, never re-encoded before checking:
``meshagent.signing.Signed`` (body, signer, signature). ``pack`` sorts map keys so that the same
value always gives the same bytes; ``unpack`` bounds size and nesting and turns every
parser failure into ``DecodeError``.
"""

from __future__ import annotations

from typing import Any

import msgpack

from meshagent.errors import DecodeError

__all__ = ["pack", "pack_plain", "unpack", "MAX_MESSAGE_BYTES"]

# Largest structured message accepted from outside; bulk data travels as frames.
MAX_MESSAGE_BYTES = 1 << 20


_CONTAINERS = (dict, list, tuple)


def _canonical(value: Any) -> Any:
    # Scalars are taken as they are without a call each: a full-state exchange is a
    # list of thousands of small lists of bytes, strings and integers.
    if isinstance(value, dict):
        return {key: _canonical(item) if isinstance(item := value[key], _CONTAINERS)
                else item for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) if isinstance(item, _CONTAINERS) else item
                for item in value]
    return value


def pack(value: Any) -> bytes:
    """Encode ``value`` canonically (sorted map keys, bytes as bin, str as str)."""
    return msgpack.packb(_canonical(value), use_bin_type=True)


def pack_plain(value: Any) -> bytes:
    """``pack`` for a value with no map anywhere in it (lists, tuples, bytes, str, ints,
    bools, None): already canonical, so encoded without the walk that sorts map keys.
    The same bytes as ``pack``; for per-message hot paths (routing updates, session and
    relay control). A map inside would be encoded in insertion order: callers pass none."""
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode one value; anything malformed, trailing or oversize raises DecodeError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(f"message of {len(data)} bytes exceeds {max_bytes}")
    try:
        return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise DecodeError(f"malformed message: {exc}") from exc
