"""Joining a mesh: a node's credentials on disk, and redeeming a join token for them."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from meshagent.identity.certificate import MembershipCertificate
from meshagent.identity.errors import (
    CertificateError,
    IdentityFileError,
    MalformedJoinToken,
    UntrustedCertificate,
)
from meshagent.identity.files import read_document, write_document
from meshagent.identity.jointoken import JoinToken
from meshagent.identity.keys import MeshTrust, NodeIdentity
from meshagent.log import get_logger

__all__ = ["NodeCredentials", "load_certificate", "save_certificate", "redeem_join_token",
           "IDENTITY_FILE", "CERTIFICATE_FILE", "TRUST_FILE", "REVOCATIONS_FILE",
           "REDEEMED_FILE"]

log = get_logger(__name__)

# The files of a node directory (``--node-dir``).
IDENTITY_FILE = "node.key"
CERTIFICATE_FILE = "node.cert"
TRUST_FILE = "mesh.trust"
REVOCATIONS_FILE = "revocations"
REDEEMED_FILE = "redeemed-tokens"


@dataclass(frozen=True)
class NodeCredentials:
    """Everything a node proves itself with: its keys, its certificate, its mesh."""

    identity: NodeIdentity
    certificate: MembershipCertificate
    trust: MeshTrust

    def __post_init__(self) -> None:
        if (self.certificate.sign_public != self.identity.sign_public
                or self.certificate.dh_public != self.identity.dh_public):
            raise UntrustedCertificate("certificate is for other keys than this identity")

    def save(self, node_dir: str | os.PathLike[str]) -> None:
        """Write key (0600), certificate and trust into ``node_dir`` (made 0700)."""
        path = Path(node_dir)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.identity.save(path / IDENTITY_FILE)
        save_certificate(path / CERTIFICATE_FILE, self.certificate.to_wire())
        self.trust.save(path / TRUST_FILE)

    @classmethod
    def load(cls, node_dir: str | os.PathLike[str]) -> NodeCredentials:
        """Read a node directory; the certificate is parsed, not judged (it may have
        expired: the caller decides, usually by ``MembershipCertificate.verify``)."""
        path = Path(node_dir)
        return cls(NodeIdentity.load(path / IDENTITY_FILE),
                   load_certificate(path / CERTIFICATE_FILE), MeshTrust.load(path / TRUST_FILE))


def load_certificate(path: str | os.PathLike[str]) -> MembershipCertificate:
    """A certificate file (a node's node.cert, or one exported or renewed), parsed, not
    judged. Raises IdentityFileError, a CertificateError or OSError."""
    wire = read_document(path, "membership-cert").get("cert")
    if not isinstance(wire, bytes):
        raise IdentityFileError(f"{path}: certificate missing")
    return MembershipCertificate.from_wire(wire)


def save_certificate(path: str | os.PathLike[str], wire: bytes) -> None:
    """Write a certificate file (public; atomically, so a reader never sees half)."""
    write_document(path, "membership-cert", {"cert": wire}, private=False)


def redeem_join_token(token: JoinToken | str, identity: NodeIdentity, hostname: str,
                      trust: MeshTrust | None = None, now: float | None = None,
                      ) -> NodeCredentials:
    """Make ``identity``'s certificate under a join token, offline.

    ``token`` is the operator's string (or a decoded token with its secret). With
    ``trust`` given, the token must be signed by that mesh's root; without, the trust
    named by the token is adopted (see ``JoinToken.decode``). Raises
    UntrustedJoinToken (forged), WrongMesh, JoinTokenExpired, MalformedJoinToken.
    Whether another node redeemed the token first is for members to decide: they
    refuse the second node (``RedeemedTokens``).
    """
    moment = time.time() if now is None else now
    try:
        if isinstance(token, str):
            token = JoinToken.decode(token, trust)
        elif trust is not None:
            token = JoinToken.verify(token.signed, trust, token.secret)
        if token.secret is None:
            raise MalformedJoinToken("join token has no secret: cannot redeem it")
        token.check_redeemable(moment)
    except CertificateError as exc:
        log.warning("join_token_rejected", reason=type(exc).__name__, detail=str(exc))
        raise
    cert = MembershipCertificate.issue(
        token.secret, mesh_id=token.mesh_id, sign_public=identity.sign_public,
        dh_public=identity.dh_public, roles=token.roles, hostname=hostname,
        lifetime_s=token.cert_lifetime_s, now=moment, serial=token.serial, token=token)
    log.event("join_token_redeemed", token=token.token_id.hex(),
              node=identity.node_id.hex())
    return NodeCredentials(identity, cert, token.trust())
