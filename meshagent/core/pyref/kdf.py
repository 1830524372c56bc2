"""HKDF-SHA256 through pycryptodome: the twin of ``csrc/kdf.c``."""

from __future__ import annotations

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from meshagent.core._checks import hkdf_arguments

__all__ = ["hkdf_sha256"]


def hkdf_sha256(secret: bytes, length: int, salt: bytes = b"", info: bytes = b"") -> bytes:
    """RFC 5869 HKDF-SHA256: ``length`` bytes from ``secret``, ``salt`` and ``info``."""
    secret, salt, info = hkdf_arguments(secret, length, salt, info)
    # pycryptodome reads an empty salt as RFC 5869's default (a block of zeros), as
    # OpenSSL does when none is set.
    return HKDF(bytes(secret), length, bytes(salt), SHA256, context=bytes(info))
