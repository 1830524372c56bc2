"""Argument checks shared by both backends, so both refuse bad arguments identically.

These guard the public API against caller mistakes (raising InvalidArgument); bytes from
the network are judged by the codecs themselves (raising FrameError and friends).
"""

from __future__ import annotations

from meshagent.core.errors import InvalidArgument
from meshagent.core.wire import (
    GCM_MAX_NONCE_BYTES,
    GCM_MIN_TAG_BYTES,
    HKDF_MAX_OUTPUT_BYTES,
    TAG_BYTES,
)

__all__ = ["U32_MAX", "U64_MAX", "bytes_of_length", "gcm_arguments", "hkdf_arguments",
           "int_in_range", "readonly_view", "writable_view"]

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
GCM_KEY_LENGTHS = (16, 24, 32)


def readonly_view(value: object, name: str) -> memoryview:
    """A flat read-only byte view of a bytes-like ``value``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgument(f"{name} must be bytes-like, not {type(value).__name__}")
    return memoryview(value).cast("B").toreadonly()


def writable_view(value: object, name: str) -> memoryview:
    """A flat writable byte view of a bytearray or writable, contiguous memoryview."""
    if not isinstance(value, bytearray | memoryview):
        raise InvalidArgument(f"{name} must be a bytearray or memoryview, "
                              f"not {type(value).__name__}")
    view = memoryview(value)
    if view.readonly or not view.c_contiguous:
        raise InvalidArgument(f"{name} must be writable and contiguous")
    return view.cast("B")


def bytes_of_length(value: object, length: int, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != length:
        raise InvalidArgument(f"{name} must be {length} bytes")
    return bytes(value)


def int_in_range(value: object, top: int, name: str, bottom: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not bottom <= value <= top:
        raise InvalidArgument(f"{name} must be an integer in [{bottom}, {top}]")
    return value


def _input_view(value: object, name: str) -> bytes | memoryview:
    return value if type(value) is bytes else readonly_view(value, name)


def gcm_arguments(key: object, nonce: object, aad: object, data: object,
                  tag_bytes: object) -> tuple[bytes | memoryview, ...]:
    """Views of the raw AES-GCM arguments, checked against the lengths wire.h allows.

    ``bytes`` arguments are passed as they are: already flat and read-only, and every
    membership datagram makes two of these calls."""
    views = (_input_view(key, "key"), _input_view(nonce, "nonce"), _input_view(aad, "aad"),
             _input_view(data, "data"))
    if len(views[0]) not in GCM_KEY_LENGTHS:
        raise InvalidArgument("key must be 16, 24 or 32 bytes")
    if not 1 <= len(views[1]) <= GCM_MAX_NONCE_BYTES:
        raise InvalidArgument(f"nonce must be 1 to {GCM_MAX_NONCE_BYTES} bytes")
    int_in_range(tag_bytes, TAG_BYTES, "tag_bytes", bottom=GCM_MIN_TAG_BYTES)
    return views


def hkdf_arguments(secret: object, length: object, salt: object, info: object,
                   ) -> tuple[bytes | memoryview, ...]:
    """Views of the HKDF inputs, and an output length RFC 5869 allows (1 to 255 blocks)."""
    int_in_range(length, HKDF_MAX_OUTPUT_BYTES, "length", bottom=1)
    return (_input_view(secret, "secret"), _input_view(salt, "salt"), _input_view(info, "info"))
