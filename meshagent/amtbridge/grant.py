"""Guest credentials for a node's AMT, sealed to one mesh member at a time.

A node shares the accounts it created on its own AMT (``policy.py``) with each member in
an ``AmtGrant``, sent over the mesh as a ``Signed`` document of kind ``amt-guest``, signed
by the owner's node key::

    body = {v: 1, from: owner id, to: recipient id, epoch, salt: 16 B, nonce: 12 B,
            box: AES-256-GCM(key, nonce, aad, pack(grant))}
    key  = HKDF-SHA256(X25519(owner static, recipient static), 32, salt,
                       info = "meshagent/amt-guest" | from | to | epoch)
    aad  = "meshagent/amt-guest" | from | to | epoch

The X25519 keys are the ones in both members' membership certificates, so only the named
recipient can open the box and only the owner can have sealed it; the signature also lets
the recipient check, before any decryption, that the grant comes from the member whose
AMT it describes. A fresh random salt per grant gives a fresh key, so the random nonce is
never reused under one key. ``epoch`` only grows (rotation): a recipient keeps the grant
of the highest epoch per owner, so a replayed old grant changes nothing.

Nothing here is home-made cryptography: X25519 is the identity's, HKDF and AES-GCM are
``meshagent.core``'s (OpenSSL, or its pycryptodome twin).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from meshagent import codec
from meshagent.amtbridge.errors import GrantError
from meshagent.core import CoreError, aes_gcm_open, aes_gcm_seal, hkdf_sha256
from meshagent.errors import DecodeError
from meshagent.identity import MembershipCertificate, NodeIdentity
from meshagent.identity.errors import KeyAgreementError
from meshagent.signing import SignatureError, Signed, sign, verify

__all__ = ["AmtGrant", "GRANT_KIND", "MAX_GRANT_BYTES", "grant_sender", "open_grant",
           "seal_grant"]

GRANT_KIND = "amt-guest"
MAX_GRANT_BYTES = 4096
_INFO = b"meshagent/amt-guest"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_MAX_TEXT = 255


@dataclass(frozen=True)
class AmtGrant:
    """Where a member's AMT answers and the accounts it lends; ``waker_user`` is empty
    when the owner's policy does not share wake."""

    owner: bytes
    epoch: int
    host: str
    port: int
    tls: bool
    cert_sha256: bytes
    guest_user: str
    guest_password: str
    waker_user: str = ""
    waker_password: str = ""

    @property
    def can_wake(self) -> bool:
        return bool(self.waker_user)

    def to_value(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "tls": self.tls,
                "pin": self.cert_sha256, "guest": [self.guest_user, self.guest_password],
                "waker": [self.waker_user, self.waker_password]}

    @classmethod
    def from_value(cls, owner: bytes, epoch: int, value: object) -> AmtGrant:
        try:
            assert isinstance(value, dict)
            host, port, tls, pin = value["host"], value["port"], value["tls"], value["pin"]
            guest, waker = value["guest"], value["waker"]
            texts = [host, *guest, *waker]
            assert all(isinstance(t, str) and len(t) <= _MAX_TEXT for t in texts)
            assert len(guest) == 2 and len(waker) == 2 and guest[0] and guest[1]
            assert isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536
            assert isinstance(tls, bool) and isinstance(pin, bytes) and len(pin) in (0, 32)
        except (AssertionError, KeyError, TypeError) as exc:
            raise GrantError(f"grant contents are malformed ({type(exc).__name__})") from None
        return cls(owner, epoch, host, port, tls, pin, guest[0], guest[1], waker[0], waker[1])


def _context(sender: bytes, recipient: bytes, epoch: int) -> bytes:
    return _INFO + sender + recipient + struct.pack(">Q", epoch)


def _key(shared: bytes, salt: bytes, context: bytes) -> bytes:
    return hkdf_sha256(shared, 32, salt, context)


def seal_grant(owner: NodeIdentity, recipient: MembershipCertificate, grant: AmtGrant) -> bytes:
    """The signed, sealed wire of ``grant`` for ``recipient``."""
    if grant.owner != owner.node_id:
        raise ValueError("a node can only grant access to its own AMT")
    context = _context(owner.node_id, recipient.node_id, grant.epoch)
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    key = _key(owner.dh(recipient.dh_public), salt, context)
    box = aes_gcm_seal(key, nonce, context, codec.pack(grant.to_value()))
    body = {"v": 1, "from": owner.node_id, "to": recipient.node_id, "epoch": grant.epoch,
            "salt": salt, "nonce": nonce, "box": box}
    return sign(owner.sign_key, GRANT_KIND, body).to_wire()


def grant_sender(wire: bytes) -> bytes:
    """The claimed sender of a grant (unverified; used to look up its certificate)."""
    try:
        if len(wire) > MAX_GRANT_BYTES:
            raise GrantError("grant exceeds the size limit")
        sender = codec.unpack(Signed.from_wire(wire).body).get("from")
    except (DecodeError, AttributeError) as exc:
        raise GrantError(f"grant does not parse: {exc}") from None
    if not isinstance(sender, bytes) or len(sender) != 16:
        raise GrantError("grant names no sender")
    return sender


def open_grant(recipient: NodeIdentity, wire: bytes, sender: MembershipCertificate) -> AmtGrant:
    """Check and open a grant from ``sender`` (a certificate the caller already verified
    against the mesh trust and revocations). GrantError for anything not acceptable."""
    if not isinstance(wire, bytes) or len(wire) > MAX_GRANT_BYTES:
        raise GrantError("grant is not bytes or exceeds the size limit")
    try:
        body = verify(Signed.from_wire(wire), GRANT_KIND, sender.sign_public)
    except SignatureError as exc:
        raise GrantError(f"grant signature: {exc}") from None
    except DecodeError as exc:
        raise GrantError(f"grant does not parse: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != 1:
        raise GrantError("grant body is not a version 1 map")
    epoch, salt, nonce, box = body.get("epoch"), body.get("salt"), body.get("nonce"), \
        body.get("box")
    if body.get("from") != sender.node_id or body.get("to") != recipient.node_id:
        raise GrantError("grant is not from that member to this node")
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch < 1 << 63
            and isinstance(salt, bytes) and len(salt) == _SALT_BYTES
            and isinstance(nonce, bytes) and len(nonce) == _NONCE_BYTES
            and isinstance(box, bytes)):
        raise GrantError("grant fields have the wrong types or sizes")
    context = _context(sender.node_id, recipient.node_id, epoch)
    try:
        key = _key(recipient.dh(sender.dh_public), salt, context)
        plain = aes_gcm_open(key, nonce, context, box)
        value = codec.unpack(plain)
    except (CoreError, KeyAgreementError, DecodeError) as exc:
        raise GrantError(f"grant does not decrypt: {type(exc).__name__}") from None
    return AmtGrant.from_value(sender.node_id, epoch, value)
