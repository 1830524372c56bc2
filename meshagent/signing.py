"""Ed25519 signatures over exact bytes, with a domain per kind of document.

Every signed thing in the mesh (membership certificates, node records, revocations,
commands, results, allowlists, beacons, 3PDS records) is a ``Signed``: the canonical
``codec.pack`` bytes of its body, the signer's raw 32-byte public key and a 64-byte
RFC 8032 signature over ``b"meshagent/" + kind + b"\\0" + body``. The ``kind`` prefix
keeps a signature made for one purpose from being accepted for another (a node record
replayed as a command). Verification checks the bytes as received; bodies are never
re-encoded before checking.

Keys and signing come from pycryptodome; checking goes through ``meshagent.core``
(OpenSSL's EVP in the C core, pycryptodome in the pure-Python twin), since every peer's
certificate and record is a check. Nothing here is cryptography of our own.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from meshagent import codec, core
from meshagent.errors import DecodeError, MeshError

__all__ = ["SigningKey", "Signed", "SignatureError", "sign", "verify", "check",
           "PUBLIC_KEY_BYTES", "SIGNATURE_BYTES"]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
# Signatures found good, remembered by a digest of (key, signature, message) so the same
# document checked again (a certificate in every handshake, datagram and record of its
# node) costs a hash. A check depends on those bytes only, so the answer cannot change;
# only successes are kept, and the least recently used go first.
_VERIFIED_LIMIT = 8192


class SignatureError(MeshError):
    """A signature does not verify, or is by a key other than the one required."""


class SigningKey:
    """An Ed25519 private key. ``public`` is the raw 32-byte public key."""

    def __init__(self, key: ECC.EccKey) -> None:
        self._key = key
        self.public: bytes = key.public_key().export_key(format="raw")

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ECC.generate(curve="ed25519"))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != SEED_BYTES:
            raise DecodeError(f"Ed25519 seed must be {SEED_BYTES} bytes, got {len(seed)}")
        return cls(eddsa.import_private_key(seed))

    @property
    def seed(self) -> bytes:
        return self._key.seed

    def sign_raw(self, message: bytes) -> bytes:
        return eddsa.new(self._key, "rfc8032").sign(message)


def _message(kind: str, body: bytes) -> bytes:
    return b"meshagent/" + kind.encode() + b"\0" + body


class _VerifiedSignatures:
    """Bounded LRU set of digests of signatures that verified (see ``_VERIFIED_LIMIT``)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._digests: OrderedDict[bytes, None] = OrderedDict()

    @staticmethod
    def digest(public: bytes, message: bytes, signature: bytes) -> bytes:
        # Key and signature have fixed lengths, so the concatenation is unambiguous.
        return hashlib.sha256(public + signature + message).digest()

    def __contains__(self, digest: bytes) -> bool:
        if digest in self._digests:
            self._digests.move_to_end(digest)
            return True
        return False

    def add(self, digest: bytes) -> None:
        self._digests[digest] = None
        if len(self._digests) > self._limit:
            self._digests.popitem(last=False)


_verified = _VerifiedSignatures(_VERIFIED_LIMIT)


def verify_raw(public: bytes, message: bytes, signature: bytes) -> None:
    """Raise SignatureError unless ``signature`` is ``public``'s signature of ``message``."""
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise SignatureError("malformed key or signature length")
    digest = _verified.digest(public, message, signature)
    if digest in _verified:
        return
    if not core.ed25519_verify(public, message, signature):
        raise SignatureError("signature does not verify")
    _verified.add(digest)


@dataclass(frozen=True)
class Signed:
    """A signed document: the exact body bytes, who signed them, and the signature."""

    kind: str
    body: bytes
    signer: bytes
    signature: bytes

    def value(self) -> Any:
        """The decoded body. Only meaningful after ``verify``."""
        return codec.unpack(self.body)

    def message(self) -> bytes:
        """The exact bytes the signature covers (the kind, then the body)."""
        return _message(self.kind, self.body)

    def to_wire(self) -> bytes:
        return codec.pack({"k": self.kind, "b": self.body, "s": self.signer,
                           "sig": self.signature})

    @classmethod
    def from_wire(cls, data: bytes) -> Signed:
        obj = codec.unpack(data)
        try:
            signed = cls(obj["k"], obj["b"], obj["s"], obj["sig"])
        except (TypeError, KeyError) as exc:
            raise DecodeError("signed document lacks kind, body, signer or signature") from exc
        if not (isinstance(signed.kind, str) and isinstance(signed.body, bytes)
                and isinstance(signed.signer, bytes) and isinstance(signed.signature, bytes)):
            raise DecodeError("signed document fields have the wrong types")
        return signed


def sign(key: SigningKey, kind: str, value: Any) -> Signed:
    body = codec.pack(value)
    return Signed(kind, body, key.public, key.sign_raw(_message(kind, body)))


def verify(signed: Signed, kind: str, signer: bytes | None = None) -> Any:
    """Check kind, signer (when given) and signature; return the decoded body.

    Raises SignatureError for a wrong kind, a different signer or a bad signature, and
    DecodeError for a body that does not parse.
    """
    check(signed, kind, signer)
    return signed.value()


def check(signed: Signed, kind: str, signer: bytes | None = None) -> None:
    """``verify`` for a document whose body the caller decoded already (a node record, a
    membership certificate): the same checks and SignatureError, without decoding the
    body a second time. A joining agent checks two such signatures per member."""
    if signed.kind != kind:
        raise SignatureError(f"expected a {kind!r} document, got {signed.kind!r}")
    if signer is not None and signed.signer != signer:
        raise SignatureError("signed by an unexpected key")
    verify_raw(signed.signer, signed.message(), signed.signature)
