"""Identity and enrollment: who belongs to a mesh, and how a node proves it.

Contract (what the rest of the agent relies on):

* A mesh is a 16-byte mesh id plus a root Ed25519 key (``MeshRoot``, kept offline,
  written owner-only). Every agent holds the public part, ``MeshTrust``.
* A node has an Ed25519 signing key and an X25519 static key (``NodeIdentity``, file
  0600); its node id is ``node_id_of(sign_public)`` = SHA-256(sign_public)[:16].
* A ``MembershipCertificate`` (kind ``membership-cert``) binds both keys, mesh id,
  roles, hostname, serial and validity. It is signed by the root, or made by the node
  itself under a root-signed one-time join token (``JoinToken``, ``redeem_join_token``)
  and then carries the token as its chain. ``MembershipCertificate.verify`` is the only
  acceptance check; it raises ``CertificateError`` subclasses and logs each rejection.
* ``RevocationList`` (kind ``revocations``) is root-signed and versioned; ``merge`` keeps
  the higher version, so gossiped copies converge. ``RedeemedTokens`` records which node
  redeemed each join token and is fed by verified certificates; a token presented by two
  nodes is burnt (both refused), with both certificates kept as evidence to spread.
* Documents are canonical msgpack ``Signed`` bodies (``meshagent.signing``); files are
  written atomically, private ones created 0600 (``files``).
"""

from meshagent.identity.certificate import DEFAULT_CERT_LIFETIME_S, MembershipCertificate
from meshagent.identity.enrollment import (
    CERTIFICATE_FILE,
    IDENTITY_FILE,
    REDEEMED_FILE,
    REVOCATIONS_FILE,
    TRUST_FILE,
    NodeCredentials,
    load_certificate,
    redeem_join_token,
    save_certificate,
)
from meshagent.identity.errors import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    IdentityFileError,
    JoinTokenError,
    JoinTokenExpired,
    JoinTokenReused,
    KeyAgreementError,
    MalformedCertificate,
    MalformedJoinToken,
    UntrustedCertificate,
    UntrustedJoinToken,
    WeakNodeKey,
    WrongMesh,
)
from meshagent.identity.jointoken import DEFAULT_TOKEN_CERT_LIFETIME_S, JoinToken
from meshagent.identity.keys import (
    MESH_ID_BYTES,
    NODE_ID_BYTES,
    MeshTrust,
    NodeIdentity,
    node_id_of,
)
from meshagent.identity.redeemed import RedeemedTokens
from meshagent.identity.revocation import RevocationList
from meshagent.identity.root import MeshRoot
from meshagent.identity.x25519 import X25519_KEY_BYTES, X25519Key

__all__ = [
    "NODE_ID_BYTES", "MESH_ID_BYTES", "X25519_KEY_BYTES", "DEFAULT_CERT_LIFETIME_S",
    "DEFAULT_TOKEN_CERT_LIFETIME_S", "IDENTITY_FILE", "CERTIFICATE_FILE", "TRUST_FILE",
    "REVOCATIONS_FILE", "REDEEMED_FILE",
    "node_id_of", "MeshTrust", "MeshRoot", "NodeIdentity", "X25519Key",
    "MembershipCertificate", "RevocationList", "JoinToken", "RedeemedTokens",
    "NodeCredentials", "load_certificate", "save_certificate", "redeem_join_token",
    "CertificateError", "MalformedCertificate", "UntrustedCertificate", "WrongMesh",
    "CertificateExpired", "CertificateNotYetValid", "CertificateRevoked", "JoinTokenError",
    "MalformedJoinToken", "UntrustedJoinToken", "JoinTokenExpired", "JoinTokenReused",
    "KeyAgreementError", "IdentityFileError", "WeakNodeKey",
]
