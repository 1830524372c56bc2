"""Ed25519 checks and X25519 agreement through pycryptodome: the twin of ``csrc/pubkey.c``."""

from __future__ import annotations

from Crypto.Protocol import DH
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from meshagent.core._checks import bytes_of_length, readonly_view
from meshagent.core.errors import WeakPublicKey
from meshagent.core.wire import ED25519_PUBLIC_BYTES, ED25519_SIGNATURE_BYTES, X25519_BYTES

__all__ = ["X25519Private", "ed25519_verify", "ed25519_weak_key"]

# The order of Ed25519's prime-order subgroup (RFC 8032, 5.1: L).
_ED25519_L = 2**252 + 27742317777372353535851937790883648493


def _low_order_component(point: ECC.EccPoint) -> bool:
    return not (point * _ED25519_L).is_point_at_infinity()


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public``'s RFC 8032 signature of ``message``.

    RFC 8032 (5.1.7) allows two checks: pycryptodome's cofactored [8][S]B = [8]R + [8][k]A
    and OpenSSL's cofactorless [S]B = R + [k]A. They differ only when the key A or the
    signature's R has a low-order component, which no generated key or honest signature
    has. This twin refuses such an A or R outright, so it decides as OpenSSL does for
    every key without a low-order component, the only keys a mesh certifies
    (``ed25519_weak_key``)."""
    public = bytes_of_length(public, ED25519_PUBLIC_BYTES, "public")
    signature = bytes_of_length(signature, ED25519_SIGNATURE_BYTES, "signature")
    view = readonly_view(message, "message")
    try:
        key = eddsa.import_public_key(public)
        if _low_order_component(key.pointQ) or _low_order_component(
                eddsa.import_public_key(signature[:32]).pointQ):
            return False
        eddsa.new(key, "rfc8032").verify(bytes(view), signature)
    except ValueError:  # not a curve point, or the signature does not verify
        return False
    return True


def ed25519_weak_key(public: bytes) -> bool:
    """True unless ``public`` encodes a point of the prime-order subgroup other than the
    identity: a key with a low-order component (verifiers may disagree on its signatures)
    or of small order (anyone can forge some of its signatures). Not a curve point is
    weak too. OpenSSL has no such check; both cores use this one (pycryptodome)."""
    public = bytes_of_length(public, ED25519_PUBLIC_BYTES, "public")
    try:
        point = eddsa.import_public_key(public).pointQ
    except ValueError:
        return True
    return point.is_point_at_infinity() or _low_order_component(point)


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
