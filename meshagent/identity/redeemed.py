"""Which node redeemed which join token; a token presented by two nodes is burnt.

Every member keeps one of these and feeds it every token-made certificate it accepts
(``MembershipCertificate.verify(..., redeemed=...)``: records, handshakes). The evidence
for an entry is the certificate itself, which the mesh already gossips inside node
records, so entries need no signature of their own: ``merge`` takes certificates,
verifies them, and claims.

Two different nodes with the same token means the token leaked (or was used twice). The
token is then burnt: both certificates are refused from then on (JoinTokenReused), and
the two certificates, which prove the conflict to anyone, are kept (``burnt_evidence``)
and spread with membership's state exchanges, so every member burns the token whatever
order it saw the nodes in, on whichever side of the mesh each one redeemed it. Refusing
both is deliberate: which of the two is the legitimate machine cannot be told from the
certificates (the token holder chooses every field), and a thief must not be able to
keep a seat. The operator re-enrolls the legitimate machine and should revoke the
token's serial. ``on_burnt`` listeners (membership) drop the members holding it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from meshagent.identity.certificate import MembershipCertificate
from meshagent.identity.errors import CertificateError, IdentityFileError, JoinTokenReused
from meshagent.identity.files import read_document, write_document
from meshagent.identity.keys import MeshTrust
from meshagent.log import get_logger

__all__ = ["RedeemedTokens"]

log = get_logger(__name__)


class RedeemedTokens:
    """token id -> node id of the node seen redeeming it, plus the burnt tokens.

    With ``path`` (set by ``load``), every change is written there at once."""

    def __init__(self, entries: dict[bytes, bytes] | None = None, *,
                 path: str | os.PathLike[str] | None = None) -> None:
        self._owner: dict[bytes, bytes] = dict(entries or {})
        self._certs: dict[bytes, bytes] = {}  # token id -> the owner's certificate wire
        self._burnt: dict[bytes, tuple[bytes, bytes]] = {}  # token id -> two cert wires
        self._listeners: list[Callable[[bytes], Any]] = []
        self.path = Path(path) if path is not None else None

    def claim(self, cert: MembershipCertificate) -> None:
        """Record ``cert``'s token for its node; JoinTokenReused if the token is burnt or
        another node holds it (which burns it).

        ``cert`` must already be verified (``MembershipCertificate.verify`` calls this
        after its checks)."""
        token = cert.token_id
        if token is None:
            return
        if token in self._burnt:
            raise JoinTokenReused(f"join token {token.hex()} was redeemed by two nodes and "
                                  f"is burnt", cert.node_id)
        owner = self._owner.setdefault(token, cert.node_id)
        if owner == cert.node_id:
            if token not in self._certs:
                self._certs[token] = cert.to_wire()
                self._save()
            return
        self._burnt[token] = (self._certs.get(token, b""), cert.to_wire())
        log.warning("join_token_reused", token=token.hex(), holder=owner.hex(),
                    refused=cert.node_id.hex(), detail="token burnt: both nodes refused")
        self._save()
        for listener in list(self._listeners):
            listener(token)
        raise JoinTokenReused(f"join token {token.hex()} was redeemed by node "
                              f"{owner.hex()}", cert.node_id)

    def owner(self, token_id: bytes) -> bytes | None:
        return self._owner.get(token_id)

    def is_burnt(self, token_id: bytes | None) -> bool:
        return token_id is not None and token_id in self._burnt

    def on_burnt(self, listener: Callable[[bytes], Any]) -> None:
        """Call ``listener(token_id)`` when a token is burnt."""
        self._listeners.append(listener)

    def entries(self) -> dict[bytes, bytes]:
        """A copy of token id -> node id, for gossip digests and display."""
        return dict(self._owner)

    def burnt_evidence(self) -> list[bytes]:
        """The certificate wires proving each burnt token (for state exchanges)."""
        return [wire for pair in self._burnt.values() for wire in pair if wire]

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

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.save(self.path)
        except OSError as exc:  # still enforced in memory; evidence comes back by gossip
            log.error("redeemed_tokens_unsaved", path=str(self.path), error=str(exc))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_document(path, "redeemed-tokens", {
            "entries": [[t, n, self._certs.get(t, b"")] for t, n in sorted(self._owner.items())],
            "burnt": [[t, *pair] for t, pair in sorted(self._burnt.items())]}, private=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RedeemedTokens:
        doc = read_document(path, "redeemed-tokens")
        entries, burnt = doc.get("entries"), doc.get("burnt", [])
        if not isinstance(entries, list) or not all(
                isinstance(e, list) and len(e) in (2, 3) and all(isinstance(x, bytes) for x in e)
                for e in entries) or not isinstance(burnt, list) or not all(
                isinstance(b, list) and len(b) == 3 and all(isinstance(x, bytes) for x in b)
                for b in burnt):
            raise IdentityFileError(f"{path}: malformed entries")
        redeemed = cls({entry[0]: entry[1] for entry in entries}, path=path)
        redeemed._certs = {entry[0]: entry[2] for entry in entries if len(entry) == 3
                           and entry[2]}
        redeemed._burnt = {token: (first, second) for token, first, second in burnt}
        return redeemed
