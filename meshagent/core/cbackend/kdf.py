"""HKDF-SHA256 over ``csrc/kdf.c`` (OpenSSL EVP)."""

from __future__ import annotations

from meshagent.core._checks import hkdf_arguments
from meshagent.core._native import ffi, lib
from meshagent.core.errors import ensure

__all__ = ["hkdf_sha256"]


def hkdf_sha256(secret: bytes, length: int, salt: bytes = b"", info: bytes = b"") -> bytes:
    """RFC 5869 HKDF-SHA256: ``length`` bytes from ``secret``, ``salt`` and ``info``."""
    secret, salt, info = hkdf_arguments(secret, length, salt, info)
    out = ffi.new("uint8_t[]", length)
    ensure(lib.mesh_hkdf_sha256(ffi.from_buffer(secret), len(secret), ffi.from_buffer(salt),
                                len(salt), ffi.from_buffer(info), len(info), out, length))
    return bytes(ffi.buffer(out))
