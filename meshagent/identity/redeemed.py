"""Which node redeemed which join token: first wins.

Every member keeps one of these and feeds it every token-made certificate it accepts
(``MembershipCertificate.verify(..., redeemed=...)``). The evidence for an entry is the
certificate itself, which the mesh already gossips inside node records, so entries need
no signature of their own: ``merge`` takes certificates, verifies them, and claims.

Two different nodes with the same token means the token leaked (or was used twice): the
second one seen is refused with JoinTokenReused and a warning is logged; the operator
should revoke the token's serial, which revokes both certificates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from meshagent.identity.certificate import MembershipCertificate
from meshagent.identity.errors import CertificateError, IdentityFileError, JoinTokenReused
from meshagent.identity.files import read_document, write_document
from meshagent.identity.keys import MeshTrust
from meshagent.log import get_logger

__all__ = ["RedeemedTokens"]

log = get_logger(__name__)


class RedeemedTokens:
    """token id -> node id of the first node seen redeeming it."""

    def __init__(self, entries: dict[bytes, bytes] | None = None) -> None:
        self._owner: dict[bytes, bytes] = dict(entries or {})

    def claim(self, cert: MembershipCertificate) -> None:
        """Record ``cert``'s token for its node; JoinTokenReused if another node has it.

        ``cert`` must already be verified (``MembershipCertificate.verify`` calls this
        after its checks)."""
        if cert.token_id is None:
            return
        owner = self._owner.setdefault(cert.token_id, cert.node_id)
        if owner != cert.node_id:
            log.warning("join_token_reused", token=cert.token_id.hex(),
                        holder=owner.hex(), refused=cert.node_id.hex())
            raise JoinTokenReused(f"join token {cert.token_id.hex()} was redeemed by node "
                                  f"{owner.hex()}", cert.node_id)

    def owner(self, token_id: bytes) -> bytes | None:
        return self._owner.get(token_id)

    def entries(self) -> dict[bytes, bytes]:
        """A copy of token id -> node id, for gossip digests and display."""
        return dict(self._owner)

    def merge(self, certificates: Iterable[bytes | MembershipCertificate],
              trust: MeshTrust, now: float | None = None) -> list[bytes]:
        """Claim tokens for certificates learnt from peers; returns node ids refused."""
        refused = []
        for wire in certificates:
            try:
                MembershipCertificate.verify(wire, trust, now=now, redeemed=self)
            except JoinTokenReused as exc:
                refused.append(exc.node_id)
            except CertificateError:
                continue  # logged by verify; a bad certificate is no evidence
        return refused

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._owner

    def save(self, path: str | os.PathLike[str]) -> None:
        write_document(path, "redeemed-tokens",
                       {"entries": [[t, n] for t, n in sorted(self._owner.items())]},
                       private=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RedeemedTokens:
        doc = read_document(path, "redeemed-tokens")
        entries = doc.get("entries")
        if not isinstance(entries, list) or not all(
                isinstance(e, list) and len(e) == 2 and all(isinstance(x, bytes) for x in e)
                for e in entries):
            raise IdentityFileError(f"{path}: malformed entries")
        return cls({token: node for token, node in entries})
