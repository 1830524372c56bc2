"""Ed25519 checks and X25519 agreement through pycryptodome: the twin of ``csrc/pubkey.c``."""

from __future__ import annotations

from Crypto.Protocol import DH
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from meshagent.core._checks import bytes_of_length, readonly_view
from meshagent.core.errors import WeakPublicKey
from meshagent.core.wire import ED25519_PUBLIC_BYTES, ED25519_SIGNATURE_BYTES, X25519_BYTES

__all__ = ["X25519Private", "ed25519_verify"]


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public``'s RFC 8032 signature of ``message``."""
    public = bytes_of_length(public, ED25519_PUBLIC_BYTES, "public")
    signature = bytes_of_length(signature, ED25519_SIGNATURE_BYTES, "signature")
    view = readonly_view(message, "message")
    try:
        eddsa.new(eddsa.import_public_key(public), "rfc8032").verify(bytes(view), signature)
    except ValueError:  # not a curve point, or the signature does not verify
        return False
    return True


class X25519Private:
    """An X25519 private key (any 32 bytes, clamped per RFC 7748)."""

    def __init__(self, private: bytes) -> None:
        private = bytes_of_length(private, X25519_BYTES, "private")
        self._key: ECC.EccKey = DH.import_x25519_private_key(private)
        self.public: bytes = self._key.public_key().export_key(format="raw")

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte shared secret; WeakPublicKey for a small-order ``peer_public``."""
        peer_public = bytes_of_length(peer_public, X25519_BYTES, "peer_public")
        try:
            peer = DH.import_x25519_public_key(peer_public)
            return bytes(DH.key_agreement(static_priv=self._key, static_pub=peer,
                                          kdf=lambda secret: secret))
        except ValueError as exc:  # small-order point, or an all-zero result
            raise WeakPublicKey("X25519 peer key of small order") from exc
