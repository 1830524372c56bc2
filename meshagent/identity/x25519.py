"""X25519 (RFC 7748) key agreement through pycryptodome.

Used for a node's static key and for the handshake's ephemeral keys. Public keys are
the raw 32-byte u-coordinate; a malformed or low-order peer key raises
KeyAgreementError instead of yielding an all-zero secret.
"""

from __future__ import annotations

from Crypto.Protocol import DH
from Crypto.PublicKey import ECC

from meshagent.identity.errors import KeyAgreementError

__all__ = ["X25519Key", "X25519_KEY_BYTES"]

X25519_KEY_BYTES = 32


class X25519Key:
    """An X25519 private key; ``public`` is its raw 32-byte public key."""

    def __init__(self, key: ECC.EccKey) -> None:
        self._key = key
        self.public: bytes = key.public_key().export_key(format="raw")

    @classmethod
    def generate(cls) -> X25519Key:
        return cls(ECC.generate(curve="X25519"))

    @classmethod
    def from_private_bytes(cls, private: bytes) -> X25519Key:
        if len(private) != X25519_KEY_BYTES:
            raise KeyAgreementError(f"X25519 private key must be {X25519_KEY_BYTES} bytes")
        return cls(DH.import_x25519_private_key(private))

    @property
    def private_bytes(self) -> bytes:
        return self._key.seed

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte shared secret with ``peer_public``."""
        if len(peer_public) != X25519_KEY_BYTES:
            raise KeyAgreementError(f"X25519 public key must be {X25519_KEY_BYTES} bytes")
        try:
            peer = DH.import_x25519_public_key(peer_public)
            return bytes(DH.key_agreement(static_priv=self._key, static_pub=peer,
                                          kdf=lambda secret: secret))
        except ValueError as exc:
            raise KeyAgreementError("invalid or low-order X25519 public key") from exc
