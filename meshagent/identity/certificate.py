"""Membership certificates: the proof that a node belongs to a mesh.

A certificate is a ``Signed`` document of kind ``membership-cert`` whose body binds a
node's Ed25519 key (and so its node id), its X25519 static key, the mesh id, roles,
hostname, a serial and a validity window. It is signed either

* by the mesh root (``MeshRoot.issue_certificate``), or
* by a join token's key, and then it travels with the root-signed token document as its
  ``chain`` (see ``jointoken``): the chain proves the root authorised the token key, the
  certificate must stay within the token's roles, window and lifetime, and it carries the
  token's id and serial (revoking that serial revokes the certificate).

``MembershipCertificate.verify`` is the one acceptance check every part of the agent uses
(handshake, gossip, commands); it logs each rejection (rate limited, the input may come
from an attacker) and raises a ``CertificateError`` subclass.

Wire form: canonical msgpack ``{"cert": <Signed wire>, "chain": <Signed wire>}`` with
``chain`` absent for root-signed certificates.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshagent import codec, core
from meshagent.errors import DecodeError
from meshagent.identity.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    JoinTokenExpired,
    MalformedCertificate,
    UntrustedCertificate,
    WeakNodeKey,
    WrongMesh,
)
from meshagent.identity.fields import MAX_HOSTNAME_CHARS, require, require_roles
from meshagent.identity.jointoken import MAX_CLOCK_SKEW_S, TOKEN_ID_BYTES, JoinToken
from meshagent.identity.keys import MESH_ID_BYTES, NODE_ID_BYTES, MeshTrust, node_id_of
from meshagent.identity.x25519 import X25519_KEY_BYTES
from meshagent.log import get_logger
from meshagent.signing import PUBLIC_KEY_BYTES, SignatureError, Signed, SigningKey, sign
from meshagent.signing import check as check_signed

if TYPE_CHECKING:
    from meshagent.identity.redeemed import RedeemedTokens
    from meshagent.identity.revocation import RevocationList

__all__ = ["MembershipCertificate", "KIND", "DEFAULT_CERT_LIFETIME_S"]

log = get_logger(__name__)

KIND = "membership-cert"
DEFAULT_CERT_LIFETIME_S = 365 * 86400


@dataclass(frozen=True)
class MembershipCertificate:
    """A parsed certificate. Fields are trustworthy only once ``verify`` returned it."""

    node_id: bytes
    mesh_id: bytes
    sign_public: bytes
    dh_public: bytes
    roles: tuple[str, ...]
    hostname: str
    serial: int
    not_before: int
    expires: int
    token_id: bytes | None
    signed: Signed
    chain: Signed | None = None
    # The bytes it was parsed from (``to_wire`` gives them back without encoding again:
    # every member learnt hands its certificate's bytes to the datagram keys).
    wire: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def via_token(self) -> bool:
        """True for a certificate a node made itself under a join token."""
        return self.chain is not None

    # -- making -----------------------------------------------------------------------

    @classmethod
    def issue(cls, signer: SigningKey, *, mesh_id: bytes, sign_public: bytes,
              dh_public: bytes, roles: tuple[str, ...] | list[str], hostname: str,
              lifetime_s: int, now: float | None = None, serial: int | None = None,
              token: JoinToken | None = None) -> MembershipCertificate:
        """Sign a certificate with ``signer`` (the root key, or ``token.secret`` with
        ``token`` given). Callers: ``MeshRoot.issue_certificate``, ``redeem_join_token``."""
        if core.ed25519_weak_key(sign_public):
            log.warning("certificate_refused", reason="WeakNodeKey",
                        node=node_id_of(sign_public).hex())
            raise WeakNodeKey("the node's signing key has a low-order component")
        start = int(time.time() if now is None else now)
        body: dict[str, Any] = {
            "v": 1, "node": node_id_of(sign_public), "mesh": mesh_id, "sign": sign_public,
            "dh": dh_public, "roles": list(require_roles(roles, MalformedCertificate)),
            "host": _checked_hostname(hostname),
            "serial": secrets.randbits(63) if serial is None else serial,
            "nbf": start, "exp": start + int(lifetime_s)}
        if token is not None:
            body["token"] = token.token_id
        return cls._from_body(sign(signer, KIND, body), body,
                              None if token is None else token.signed)

    # -- wire -------------------------------------------------------------------------

    def to_wire(self) -> bytes:
        if self.wire is not None:
            return self.wire
        doc = {"cert": self.signed.to_wire()}
        if self.chain is not None:
            doc["chain"] = self.chain.to_wire()
        return codec.pack(doc)

    @classmethod
    def from_wire(cls, data: bytes) -> MembershipCertificate:
        """Parse the structure only (no trust decision): use ``verify`` to accept one."""
        try:
            doc = codec.unpack(data)
            signed = Signed.from_wire(require(doc, "cert", bytes, MalformedCertificate))
            chain_wire = doc.get("chain")
            if chain_wire is not None and not isinstance(chain_wire, bytes):
                raise MalformedCertificate("certificate chain is not bytes")
            chain = None if chain_wire is None else Signed.from_wire(chain_wire)
            body = codec.unpack(signed.body)
        except DecodeError as exc:
            raise MalformedCertificate(f"certificate does not parse: {exc}") from exc
        return cls._from_body(signed, body, chain, bytes(data))

    @classmethod
    def _from_body(cls, signed: Signed, body: Any, chain: Signed | None,
                   wire: bytes | None = None) -> MembershipCertificate:
        if signed.kind != KIND:
            raise MalformedCertificate(f"expected a {KIND!r} document, got {signed.kind!r}")
        token_id = body.get("token") if isinstance(body, dict) else None
        if token_id is not None and (not isinstance(token_id, bytes)
                                     or len(token_id) != TOKEN_ID_BYTES):
            raise MalformedCertificate("field 'token' must be a 16-byte token id")
        if (token_id is None) != (chain is None):
            raise MalformedCertificate("a token id and a token chain go together")
        return cls(
            node_id=require(body, "node", bytes, MalformedCertificate, size=NODE_ID_BYTES),
            mesh_id=require(body, "mesh", bytes, MalformedCertificate, size=MESH_ID_BYTES),
            sign_public=require(body, "sign", bytes, MalformedCertificate,
                                size=PUBLIC_KEY_BYTES),
            dh_public=require(body, "dh", bytes, MalformedCertificate, size=X25519_KEY_BYTES),
            roles=require_roles(body.get("roles"), MalformedCertificate),
            hostname=_checked_hostname(require(body, "host", str, MalformedCertificate)),
            serial=require(body, "serial", int, MalformedCertificate),
            not_before=require(body, "nbf", int, MalformedCertificate),
            expires=require(body, "exp", int, MalformedCertificate),
            token_id=token_id, signed=signed, chain=chain, wire=wire)

    # -- acceptance -------------------------------------------------------------------

    @classmethod
    def verify(cls, cert: MembershipCertificate | Signed | bytes, trust: MeshTrust,
               now: float | None = None, revocations: RevocationList | None = None, *,
               redeemed: RedeemedTokens | None = None) -> MembershipCertificate:
        """Accept ``cert`` as a member of ``trust``'s mesh at ``now``, or raise.

        Checks, in order: structure (MalformedCertificate), mesh id (WrongMesh), signer and
        signature -- the root's, or a root-signed join token's within its terms
        (UntrustedCertificate, JoinTokenExpired) --, for a token-made certificate a
        signing key without a low-order component (WeakNodeKey; the root checks the keys
        it certifies itself), node id = hash of its signing key,
        validity window with ``MAX_CLOCK_SKEW_S`` of slack before ``not_before``
        (CertificateNotYetValid, CertificateExpired), ``revocations``
        (CertificateRevoked). With ``redeemed``, a token-made certificate also claims its
        token there and fails with JoinTokenReused if another node holds it.
        """
        parsed: MembershipCertificate | None = None
        try:
            parsed = cls._parse_any(cert)
            parsed._check(trust, time.time() if now is None else now, revocations)
            if redeemed is not None and parsed.via_token:
                redeemed.claim(parsed)
        except CertificateError as exc:
            node = parsed.node_id.hex() if parsed is not None else "?"
            log.warn_limited("certificate_rejected", key=(type(exc).__name__, node),
                             reason=type(exc).__name__, node=node, detail=str(exc))
            raise
        return parsed

    @classmethod
    def _parse_any(cls, cert: MembershipCertificate | Signed | bytes) -> MembershipCertificate:
        if isinstance(cert, MembershipCertificate):
            return cert
        if isinstance(cert, Signed):
            try:
                return cls._from_body(cert, codec.unpack(cert.body), None)
            except DecodeError as exc:
                raise MalformedCertificate(f"certificate body does not parse: {exc}") from exc
        return cls.from_wire(cert)

    def _check(self, trust: MeshTrust, now: float,
               revocations: RevocationList | None) -> None:
        if self.mesh_id != trust.mesh_id:
            raise WrongMesh(f"certificate is for mesh {self.mesh_id.hex()}, "
                            f"not {trust.mesh_id.hex()}")
        expected_signer = trust.root_public
        if self.chain is not None:
            token = JoinToken.verify(self.chain, trust)
            self._check_within_token(token)
            expected_signer = token.token_public
            if core.ed25519_weak_key(self.sign_public):  # no root saw this key
                raise WeakNodeKey("the node's signing key has a low-order component")
        try:
            check_signed(self.signed, KIND, expected_signer)
        except SignatureError as exc:
            raise UntrustedCertificate(f"certificate signature: {exc}") from exc
        if self.node_id != node_id_of(self.sign_public):
            raise UntrustedCertificate("node id is not the hash of the signing key")
        if now < self.not_before - MAX_CLOCK_SKEW_S:
            raise CertificateNotYetValid(f"certificate valid from {self.not_before}")
        if now > self.expires:
            raise CertificateExpired(f"certificate expired at {self.expires}")
        if revocations is not None and revocations.is_revoked(self):
            raise CertificateRevoked(f"certificate serial {self.serial} of node "
                                     f"{self.node_id.hex()} is revoked")

    def _check_within_token(self, token: JoinToken) -> None:
        if self.token_id != token.token_id or self.serial != token.serial:
            raise UntrustedCertificate("certificate does not carry its token's id and serial")
        if not set(self.roles) <= set(token.roles):
            raise UntrustedCertificate("certificate claims roles its join token does not grant")
        if not token.not_before - MAX_CLOCK_SKEW_S <= self.not_before <= token.expires:
            raise JoinTokenExpired("certificate was made outside its join token's validity")
        if self.expires - self.not_before > token.cert_lifetime_s:
            raise UntrustedCertificate("certificate outlives what its join token grants")


def _checked_hostname(hostname: str) -> str:
    if not isinstance(hostname, str) or len(hostname) > MAX_HOSTNAME_CHARS:
        raise MalformedCertificate(f"hostname must be at most {MAX_HOSTNAME_CHARS} characters")
    return hostname
