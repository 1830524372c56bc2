"""The root-signed revocation list, and how copies of it converge across the mesh.

A list (kind ``revocations``) names revoked certificate serials and node ids for one
mesh, with a version the root increases on every change; each new version contains
everything the previous one did (``MeshRoot.revoke`` builds it from the previous list).
Nodes gossip the list; ``merge`` keeps the higher version, so every copy converges on
the newest list the root signed, whatever order copies arrive in. Version 0 is the empty
list every node starts from; it is not signed and never sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from meshagent import codec
from meshagent.errors import DecodeError
from meshagent.identity.certificate import MembershipCertificate
from meshagent.identity.errors import (
    CertificateError,
    MalformedCertificate,
    UntrustedCertificate,
    WrongMesh,
)
from meshagent.identity.fields import require
from meshagent.identity.files import read_document, write_document
from meshagent.identity.keys import MESH_ID_BYTES, NODE_ID_BYTES, MeshTrust
from meshagent.log import get_logger
from meshagent.signing import SignatureError, Signed, SigningKey, sign, verify

__all__ = ["RevocationList"]

log = get_logger(__name__)

KIND = "revocations"
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class RevocationList:
    mesh_id: bytes
    version: int = 0
    serials: frozenset[int] = field(default_factory=frozenset)
    node_ids: frozenset[bytes] = field(default_factory=frozenset)
    issued: int = 0
    signed: Signed | None = None

    @classmethod
    def empty(cls, mesh_id: bytes) -> RevocationList:
        return cls(mesh_id)

    @classmethod
    def issue(cls, root_key: SigningKey, mesh_id: bytes, *, serials: Iterable[int] = (),
              node_ids: Iterable[bytes] = (), previous: RevocationList | None = None,
              now: float | None = None) -> RevocationList:
        """Sign the next version: ``previous``'s entries plus the new ones. Root only."""
        base = previous if previous is not None else cls.empty(mesh_id)
        body = {"v": 1, "mesh": mesh_id, "version": base.version + 1,
                "serials": sorted(base.serials | set(serials)),
                "nodes": sorted(base.node_ids | set(node_ids)),
                "issued": int(time.time() if now is None else now)}
        return cls._from_body(sign(root_key, KIND, body), body)

    @classmethod
    def verify(cls, doc: Signed | bytes, trust: MeshTrust) -> RevocationList:
        """Accept a list signed by ``trust``'s root for its mesh, or raise (and log)."""
        try:
            signed = doc if isinstance(doc, Signed) else Signed.from_wire(doc)
            body = codec.unpack(signed.body)
            mesh = require(body, "mesh", bytes, MalformedCertificate, size=MESH_ID_BYTES)
            if mesh != trust.mesh_id:
                raise WrongMesh(f"revocation list is for mesh {mesh.hex()}")
            try:
                verify(signed, KIND, trust.root_public)
            except SignatureError as exc:
                raise UntrustedCertificate(f"revocation list signature: {exc}") from exc
            return cls._from_body(signed, body)
        except DecodeError as exc:
            log.warn_limited("revocations_rejected", key="malformed", reason="malformed",
                             detail=str(exc))
            raise MalformedCertificate(f"revocation list does not parse: {exc}") from exc
        except CertificateError as exc:
            log.warn_limited("revocations_rejected", key=type(exc).__name__,
                             reason=type(exc).__name__, detail=str(exc))
            raise

    @classmethod
    def _from_body(cls, signed: Signed, body: object) -> RevocationList:
        serials = require(body, "serials", list, MalformedCertificate)
        nodes = require(body, "nodes", list, MalformedCertificate)
        if len(serials) + len(nodes) > MAX_ENTRIES:
            raise MalformedCertificate("revocation list too long")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in serials) or not all(
                isinstance(n, bytes) and len(n) == NODE_ID_BYTES for n in nodes):
            raise MalformedCertificate("revocation entries have the wrong types")
        version = require(body, "version", int, MalformedCertificate)
        if version < 1:
            raise MalformedCertificate("a signed revocation list has version >= 1")
        return cls(mesh_id=require(body, "mesh", bytes, MalformedCertificate,
                                   size=MESH_ID_BYTES),
                   version=version, serials=frozenset(serials), node_ids=frozenset(nodes),
                   issued=require(body, "issued", int, MalformedCertificate), signed=signed)

    def is_revoked(self, cert: MembershipCertificate) -> bool:
        return cert.serial in self.serials or cert.node_id in self.node_ids

    def merge(self, other: RevocationList) -> RevocationList:
        """The newer of the two (ties keep ``self``). Both must already be verified."""
        return other if other.version > self.version else self

    def to_wire(self) -> bytes:
        if self.signed is None:
            raise ValueError("the empty revocation list (version 0) is never sent")
        return self.signed.to_wire()

    def save(self, path: str | os.PathLike[str]) -> None:
        write_document(path, "revocations", {"doc": self.to_wire()}, private=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], trust: MeshTrust) -> RevocationList:
        doc = read_document(path, "revocations")
        return cls.verify(require(doc, "doc", bytes, MalformedCertificate), trust)
