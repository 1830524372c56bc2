"""The mesh root: the one key that says who belongs.

Kept offline by the operator (``meshagent mesh init`` writes it owner-only); used to issue
certificates, join tokens and revocation lists. Agents hold only ``MeshRoot.trust``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from meshagent.errors import MeshError
from meshagent.identity.certificate import DEFAULT_CERT_LIFETIME_S, MembershipCertificate
from meshagent.identity.errors import IdentityFileError
from meshagent.identity.files import read_document, write_document
from meshagent.identity.jointoken import DEFAULT_TOKEN_CERT_LIFETIME_S, JoinToken
from meshagent.identity.keys import MESH_ID_BYTES, MeshTrust
from meshagent.identity.revocation import RevocationList
from meshagent.signing import SigningKey

__all__ = ["MeshRoot"]


@dataclass(frozen=True)
class MeshRoot:
    mesh_id: bytes
    key: SigningKey

    @classmethod
    def create(cls) -> MeshRoot:
        return cls(secrets.token_bytes(MESH_ID_BYTES), SigningKey.generate())

    @property
    def trust(self) -> MeshTrust:
        return MeshTrust(self.mesh_id, self.key.public)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the root key and mesh id owner-only (0600)."""
        write_document(path, "mesh-root", {"mesh": self.mesh_id, "seed": self.key.seed},
                       private=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MeshRoot:
        doc = read_document(path, "mesh-root", private=True)
        mesh, seed = doc.get("mesh"), doc.get("seed")
        if not isinstance(mesh, bytes) or len(mesh) != MESH_ID_BYTES or not isinstance(
                seed, bytes):
            raise IdentityFileError(f"{path}: mesh id or key missing")
        try:
            return cls(mesh, SigningKey.from_seed(seed))
        except MeshError as exc:
            raise IdentityFileError(f"{path}: invalid root key") from exc

    def issue_certificate(self, sign_public: bytes, dh_public: bytes,
                          roles: Iterable[str], hostname: str,
                          lifetime_s: int = DEFAULT_CERT_LIFETIME_S,
                          now: float | None = None) -> MembershipCertificate:
        return MembershipCertificate.issue(
            self.key, mesh_id=self.mesh_id, sign_public=sign_public, dh_public=dh_public,
            roles=list(roles), hostname=hostname, lifetime_s=lifetime_s, now=now)

    def issue_join_token(self, roles: Iterable[str], lifetime_s: int,
                         cert_lifetime_s: int = DEFAULT_TOKEN_CERT_LIFETIME_S,
                         now: float | None = None) -> JoinToken:
        return JoinToken.issue(self.key, self.mesh_id, list(roles), lifetime_s,
                               cert_lifetime_s, now)

    def revoke(self, serials: Iterable[int] = (), node_ids: Iterable[bytes] = (),
               previous: RevocationList | None = None,
               now: float | None = None) -> RevocationList:
        """The next revocation list: ``previous`` plus these serials and node ids."""
        return RevocationList.issue(self.key, self.mesh_id, serials=serials,
                                    node_ids=node_ids, previous=previous, now=now)
