"""Typed errors of ``meshagent.identity``.

Every rejection of a certificate, token or revocation list raises one of these, after a
log line from the code that decided (see ``certificate.verify``). Callers that only care
that "this peer is not a member" catch ``CertificateError``.
"""

from __future__ import annotations

from meshagent.errors import DecodeError, MeshError

__all__ = [
    "CertificateError", "MalformedCertificate", "UntrustedCertificate", "WrongMesh",
    "CertificateExpired", "CertificateNotYetValid", "CertificateRevoked", "WeakNodeKey",
    "JoinTokenError", "MalformedJoinToken", "UntrustedJoinToken", "JoinTokenExpired",
    "JoinTokenReused", "KeyAgreementError", "IdentityFileError",
]


class CertificateError(MeshError):
    """A membership certificate (or a document vouching for one) is not acceptable."""


class MalformedCertificate(CertificateError, DecodeError):
    """The bytes are not a well-formed certificate, token or revocation list."""


class UntrustedCertificate(CertificateError):
    """Not signed by this mesh's root (or by a join token the root signed), or the
    signature does not verify, or a token-signed certificate exceeds its token's terms."""


class WrongMesh(CertificateError):
    """The document belongs to another mesh."""


class CertificateExpired(CertificateError):
    """``now`` is past the certificate's ``expires``."""


class CertificateNotYetValid(CertificateError):
    """``now`` is before ``not_before`` (beyond the allowed clock skew)."""


class CertificateRevoked(CertificateError):
    """The certificate's serial or node id is on the root-signed revocation list."""


class WeakNodeKey(CertificateError):
    """The node's Ed25519 key has a low-order component or is of small order: no member
    certifies it (verifiers could disagree on its signatures, or anyone could forge
    some). A generated key never is; the root refuses it, and so does every verifier of
    a certificate a node made itself under a join token."""


class JoinTokenError(CertificateError):
    """A join token, or a certificate issued under one, is not acceptable."""


class MalformedJoinToken(JoinTokenError, DecodeError):
    """The join token string or document does not parse."""


class UntrustedJoinToken(JoinTokenError):
    """The join token is not signed by this mesh's root (forged or from elsewhere)."""


class JoinTokenExpired(JoinTokenError):
    """The join token was redeemed (or is being redeemed) after its expiry."""


class JoinTokenReused(JoinTokenError):
    """The join token was already redeemed by another node; ``node_id`` is the node
    refused."""

    def __init__(self, message: str, node_id: bytes = b"") -> None:
        super().__init__(message)
        self.node_id = node_id


class KeyAgreementError(MeshError):
    """An X25519 public key is malformed or of low order (no shared secret)."""


class IdentityFileError(MeshError):
    """A key, certificate or trust file is missing, unreadable or of the wrong type."""
