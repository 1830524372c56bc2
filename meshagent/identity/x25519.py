"""X25519 (RFC 7748) key agreement through ``meshagent.core`` (OpenSSL's EVP in the C
core, pycryptodome in the pure-Python twin).

Used for a node's static key and for the handshake's ephemeral keys. Public keys are
the raw 32-byte u-coordinate; a malformed or low-order peer key raises
KeyAgreementError instead of yielding an all-zero secret.
"""

from __future__ import annotations

from Crypto.Random import get_random_bytes

from meshagent import core
from meshagent.identity.errors import KeyAgreementError

__all__ = ["X25519Key", "X25519_KEY_BYTES"]

X25519_KEY_BYTES = 32


class X25519Key:
    """An X25519 private key; ``public`` is its raw 32-byte public key."""

    def __init__(self, private: bytes) -> None:
        self._private = private
        self._key = core.X25519Private(private)
        self.public: bytes = self._key.public

    @classmethod
    def generate(cls) -> X25519Key:
        # Any 32 random bytes are a key: RFC 7748 clamps them when the key is used.
        return cls(get_random_bytes(X25519_KEY_BYTES))

    @classmethod
    def from_private_bytes(cls, private: bytes) -> X25519Key:
        if len(private) != X25519_KEY_BYTES:
            raise KeyAgreementError(f"X25519 private key must be {X25519_KEY_BYTES} bytes")
        return cls(bytes(private))

    @property
    def private_bytes(self) -> bytes:
        return self._private

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte shared secret with ``peer_public``."""
        if len(peer_public) != X25519_KEY_BYTES:
            raise KeyAgreementError(f"X25519 public key must be {X25519_KEY_BYTES} bytes")
        try:
            return self._key.exchange(peer_public)
        except core.WeakPublicKey as exc:
            raise KeyAgreementError("invalid or low-order X25519 public key") from exc
