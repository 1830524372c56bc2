"""One-time join tokens: enrollment without the root key online.

The root signs a token document (kind ``join-token``): token id, a fresh token public
key, the roles and certificate lifetime it grants, a serial, a validity window and the
mesh id. The operator receives the token *private* key together with that document as
one string (``JoinToken.encode``, prefix ``mjt1_``) and hands it to the new machine over
a channel they trust. The machine makes its own keys and signs its own membership
certificate with the token key; the certificate carries the root-signed token document
as its chain (see ``certificate``). Members accept such a certificate only within the
token's terms, and record token id -> node id (``RedeemedTokens``): a token presented by
a second node is burnt, both nodes are refused everywhere in the mesh.

Why offline rather than an online issuer: the mesh has no always-on server and the root
key should live offline; a token works on an isolated network the moment any member is
reachable, and a leaked token is bounded by its expiry, its roles, one-node
redemption and revocation of its serial (which also revokes the certificate made with
it, since that certificate carries the token's serial).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any

from meshagent import codec
from meshagent.errors import DecodeError
from meshagent.identity.errors import (
    JoinTokenExpired,
    MalformedJoinToken,
    UntrustedJoinToken,
    WrongMesh,
)
from meshagent.identity.fields import require, require_roles
from meshagent.identity.keys import MESH_ID_BYTES, MeshTrust
from meshagent.signing import PUBLIC_KEY_BYTES, SignatureError, Signed, SigningKey, sign, verify

__all__ = ["JoinToken", "TOKEN_ID_BYTES", "TOKEN_PREFIX", "DEFAULT_TOKEN_CERT_LIFETIME_S"]

KIND = "join-token"
TOKEN_ID_BYTES = 16
TOKEN_PREFIX = "mjt1_"
DEFAULT_TOKEN_CERT_LIFETIME_S = 365 * 86400
MAX_CLOCK_SKEW_S = 300


@dataclass(frozen=True)
class JoinToken:
    """A root-signed join token; ``secret`` is the token private key (None when the
    token was read from a certificate chain, where only the public part travels)."""

    token_id: bytes
    mesh_id: bytes
    token_public: bytes
    roles: tuple[str, ...]
    serial: int
    not_before: int
    expires: int
    cert_lifetime_s: int
    signed: Signed
    secret: SigningKey | None = None

    @classmethod
    def issue(cls, root_key: SigningKey, mesh_id: bytes, roles: tuple[str, ...] | list[str],
              lifetime_s: int, cert_lifetime_s: int = DEFAULT_TOKEN_CERT_LIFETIME_S,
              now: float | None = None) -> JoinToken:
        """Make and sign a new token. Only the root (``MeshRoot``) calls this."""
        start = int(time.time() if now is None else now)
        secret = SigningKey.generate()
        body = {"v": 1, "token": secrets.token_bytes(TOKEN_ID_BYTES), "mesh": mesh_id,
                "key": secret.public, "roles": list(require_roles(roles, MalformedJoinToken)),
                "serial": secrets.randbits(63), "nbf": start, "exp": start + int(lifetime_s),
                "life": int(cert_lifetime_s)}
        return cls._from_body(sign(root_key, KIND, body), body, secret)

    @classmethod
    def verify(cls, signed: Signed, trust: MeshTrust, secret: SigningKey | None = None,
               ) -> JoinToken:
        """Check the document is this mesh's root's token; no expiry check here (a
        certificate made while the token was valid stays checkable after)."""
        body, mesh = _body_and_mesh(signed)
        if mesh != trust.mesh_id:
            raise WrongMesh(f"join token is for mesh {mesh.hex()}, not {trust.mesh_id.hex()}")
        try:
            verify(signed, KIND, trust.root_public)
        except SignatureError as exc:
            raise UntrustedJoinToken(f"join token not signed by this mesh's root: {exc}") from exc
        token = cls._from_body(signed, body, secret)
        if secret is not None and secret.public != token.token_public:
            raise UntrustedJoinToken("token secret does not match the token's public key")
        return token

    @classmethod
    def _from_body(cls, signed: Signed, body: Any, secret: SigningKey | None) -> JoinToken:
        return cls(
            token_id=require(body, "token", bytes, MalformedJoinToken, size=TOKEN_ID_BYTES),
            mesh_id=require(body, "mesh", bytes, MalformedJoinToken, size=MESH_ID_BYTES),
            token_public=require(body, "key", bytes, MalformedJoinToken, size=PUBLIC_KEY_BYTES),
            roles=require_roles(body.get("roles"), MalformedJoinToken),
            serial=require(body, "serial", int, MalformedJoinToken),
            not_before=require(body, "nbf", int, MalformedJoinToken),
            expires=require(body, "exp", int, MalformedJoinToken),
            cert_lifetime_s=require(body, "life", int, MalformedJoinToken),
            signed=signed, secret=secret)

    def check_redeemable(self, now: float | None = None) -> None:
        """Raise JoinTokenExpired unless ``now`` is inside the token's validity."""
        moment = time.time() if now is None else now
        if not self.not_before - MAX_CLOCK_SKEW_S <= moment <= self.expires:
            raise JoinTokenExpired(f"join token {self.token_id.hex()} expired or not yet valid")

    def encode(self) -> str:
        """The string handed to the operator: token document plus token private key."""
        if self.secret is None:
            raise MalformedJoinToken("this token has no secret to hand out")
        payload = codec.pack({"t": self.signed.to_wire(), "k": self.secret.seed})
        return TOKEN_PREFIX + base64.urlsafe_b64encode(payload).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, trust: MeshTrust | None = None) -> JoinToken:
        """Parse an ``encode``d token and check it against ``trust``.

        With ``trust=None`` the trust is taken from the token itself (the root key that
        signed it, the mesh id it names): the token string is a secret delivered over a
        channel the operator trusts, so it may bootstrap trust on a fresh machine.
        """
        text = text.strip()
        if not text.startswith(TOKEN_PREFIX):
            raise MalformedJoinToken(f"a join token starts with {TOKEN_PREFIX!r}")
        raw = text[len(TOKEN_PREFIX):]
        try:
            payload = codec.unpack(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            signed = Signed.from_wire(require(payload, "t", bytes, MalformedJoinToken))
            secret = SigningKey.from_seed(require(payload, "k", bytes, MalformedJoinToken))
        except (binascii.Error, ValueError, DecodeError) as exc:
            raise MalformedJoinToken(f"join token does not parse: {exc}") from exc
        if trust is None:
            trust = _self_declared_trust(signed)
        return cls.verify(signed, trust, secret)

    def trust(self) -> MeshTrust:
        """The trust anchor this token was verified under (mesh id and root key)."""
        return MeshTrust(self.mesh_id, self.signed.signer)


def _self_declared_trust(signed: Signed) -> MeshTrust:
    """The mesh id and root key a token names for itself (see ``JoinToken.decode``)."""
    _, mesh = _body_and_mesh(signed)
    if len(signed.signer) != PUBLIC_KEY_BYTES:
        raise MalformedJoinToken("join token signer is not an Ed25519 key")
    return MeshTrust(mesh, signed.signer)


def _body_and_mesh(signed: Signed) -> tuple[Any, bytes]:
    """A token's body and the mesh id it names, neither checked against any trust yet."""
    try:
        body = codec.unpack(signed.body)
    except DecodeError as exc:
        raise MalformedJoinToken(f"token body does not parse: {exc}") from exc
    mesh = require(body, "mesh", bytes, MalformedJoinToken, size=MESH_ID_BYTES)
    return body, mesh
