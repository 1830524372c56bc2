"""Root-signed, versioned trust documents: one rule for how every copy of them converges.

The mesh root signs the documents that change what every agent trusts or runs:

===========  ==========================  ============  ===============================
kind         class                       signing kind  file in the node directory
===========  ==========================  ============  ===============================
revocations  ``identity.RevocationList``  revocations   ``revocations``
allowlist    ``commands.Allowlist``       allowlist     ``allowlist``
===========  ==========================  ============  ===============================

Each body names its mesh (``mesh``) and carries a ``version`` the root raises on every
change (the root builds each version from the previous one). ``TrustDocuments`` holds the
newest document of each kind that one party (an agent, or the web service per mesh) has,
and applies one rule whatever carried the document -- membership gossip and state
exchanges, the leader's uplink, the web service's REST API, a file at start:

1. parse the signed envelope and peek at kind, mesh and version (MalformedDocument);
2. another mesh -> ForeignDocument; a version below the one held -> StaleDocument; the
   version held -> ``False`` and nothing else (copies of what we hold arrive all the time);
3. the root's signature for this kind -> UntrustedDocument; the kind's own body checks ->
   MalformedDocument;
4. adopt: write the file first (when a directory is given), then call the ``on_adopted``
   callbacks (membership spreads it and drops revoked members, the command policy applies
   it, the agent closes revoked sessions, the leader's uplink reports it to the web
   service). A holder that stores elsewhere first (the web service, in its database) runs
   ``check``, stores, then ``adopt``.

The version is checked before the signature, so replayed old documents cost a parse, not a
signature check. The root must never sign two different documents of one kind at the same
version (``meshctl ... sign`` always moves above the previous file): copies of a version
are not compared, so two such documents would both stay where they first arrived.

Every refusal is a ``TrustDocumentError`` subclass with a ``reason``, counted in
``counters["rejected_<reason>"]`` and logged rate-limited per reason and source: the input
may be hostile. Not thread-safe; one event loop owns an instance.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meshagent import codec
from meshagent.errors import ConfigError, DecodeError, MeshError
from meshagent.identity import REVOCATIONS_FILE, MeshTrust, RevocationList
from meshagent.identity.files import read_document
from meshagent.log import get_logger
from meshagent.signing import SignatureError, Signed, verify

__all__ = [
    "TrustDocument", "DocumentKind", "DOCUMENT_KINDS", "REVOCATIONS", "ALLOWLIST",
    "TrustDocuments", "AdoptedCallback", "TrustDocumentError", "MalformedDocument",
    "UnknownDocumentKind", "ForeignDocument", "StaleDocument", "UntrustedDocument",
    "peek_document", "read_document_file",
]

log = get_logger(__name__)

REVOCATIONS = "revocations"
ALLOWLIST = "allowlist"
MAX_KIND_CHARS = 32


class TrustDocumentError(MeshError):
    """A document that is not adopted; ``reason`` names the counter and the log key."""

    reason = "invalid"


class MalformedDocument(TrustDocumentError):
    """Not a signed document of the expected kind, or a body that does not parse."""

    reason = "malformed"


class UnknownDocumentKind(TrustDocumentError):
    """A kind this party does not hold (a newer agent's, or garbage)."""

    reason = "unknown_kind"


class ForeignDocument(TrustDocumentError):
    """A document of another mesh."""

    reason = "foreign"


class StaleDocument(TrustDocumentError):
    """A lower version than the one held: replaying an older (wider) list changes nothing."""

    reason = "stale"


class UntrustedDocument(TrustDocumentError):
    """Not signed by this mesh's root (for this kind)."""

    reason = "untrusted"


class TrustDocument(Protocol):
    """What ``RevocationList`` and ``Allowlist`` have in common."""

    mesh_id: bytes
    version: int

    def to_wire(self) -> bytes: ...

    def save(self, path: str | os.PathLike[str]) -> None: ...


@dataclass(frozen=True)
class DocumentKind:
    """One kind of root-signed document. ``parse`` builds the object from an envelope
    whose root signature, mesh and version are already checked; it raises MeshError (or
    ValueError/TypeError/KeyError) for a body it cannot use."""

    name: str
    signing_kind: str
    file_name: str
    parse: Callable[[Signed, MeshTrust], TrustDocument]


def _parse_revocations(signed: Signed, trust: MeshTrust) -> TrustDocument:
    return RevocationList.verify(signed, trust)


def _parse_allowlist(signed: Signed, trust: MeshTrust) -> TrustDocument:
    # Imported here, not at the top: meshagent.commands imports the AMT bridge, which
    # imports membership, which imports this module.
    from meshagent.commands.allowlist import Allowlist

    return Allowlist.from_signed(signed)


DOCUMENT_KINDS: Mapping[str, DocumentKind] = {
    kind.name: kind for kind in (
        DocumentKind(REVOCATIONS, "revocations", REVOCATIONS_FILE, _parse_revocations),
        DocumentKind(ALLOWLIST, "allowlist", "allowlist", _parse_allowlist),
    )}

AdoptedCallback = Callable[[str, TrustDocument], Any]


def peek_document(kind: DocumentKind, wire: bytes) -> tuple[Signed, bytes, int]:
    """(envelope, mesh id, version) of ``wire`` WITHOUT checking the signature."""
    try:
        signed = Signed.from_wire(wire)
        body = codec.unpack(signed.body)
    except DecodeError as exc:
        raise MalformedDocument(f"{kind.name}: not a signed document: {exc}") from exc
    if signed.kind != kind.signing_kind:
        raise MalformedDocument(f"a {signed.kind!r} document where {kind.name!r} was expected")
    mesh = body.get("mesh") if isinstance(body, dict) else None
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(mesh, bytes) or not isinstance(version, int) or isinstance(
            version, bool) or not 1 <= version < 1 << 63:
        raise MalformedDocument(f"{kind.name}: body lacks a mesh id or a version >= 1")
    return signed, mesh, version


def read_document_file(kind: str, path: str | os.PathLike[str]) -> bytes:
    """The signed wire of a document file as ``save`` wrote it (``meshctl ... push``)."""
    found = DOCUMENT_KINDS.get(kind)
    if found is None:
        raise UnknownDocumentKind(f"no document kind {kind!r}")
    try:
        doc = read_document(path, found.name).get("doc")
    except MeshError as exc:
        raise MalformedDocument(f"{path}: {exc}") from exc
    if not isinstance(doc, bytes):
        raise MalformedDocument(f"{path}: no signed {kind} in the file")
    return doc


class TrustDocuments:
    """The newest root-signed document of each kind held by one party of one mesh.

    ``state_dir`` given: adopted documents are written there (``DocumentKind.file_name``)
    before the callbacks run, and ``load`` reads them back at start."""

    def __init__(self, trust: MeshTrust, state_dir: str | os.PathLike[str] | None = None,
                 kinds: Iterable[DocumentKind] = DOCUMENT_KINDS.values()) -> None:
        self.trust = trust
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.kinds = {kind.name: kind for kind in kinds}
        self.counters: Counter[str] = Counter()
        self._held: dict[str, TrustDocument] = {}
        self._callbacks: list[tuple[str | None, AdoptedCallback]] = []

    @classmethod
    def load(cls, trust: MeshTrust, state_dir: str | os.PathLike[str]) -> TrustDocuments:
        """The documents kept in ``state_dir``; ConfigError for a file that is not a valid
        document of this mesh (an agent must not start on a tampered allowlist)."""
        documents = cls(trust, state_dir)
        for kind in documents.kinds.values():
            path = Path(state_dir) / kind.file_name
            if not path.exists():
                continue
            try:
                documents._held[kind.name] = documents.verify(kind.name,
                                                              read_document_file(kind.name, path))
            except TrustDocumentError as exc:
                raise ConfigError(f"{path}: not a valid {kind.name} document of this mesh: "
                                  f"{exc}") from None
        return documents

    # --- reading ----------------------------------------------------------------------

    def current(self, kind: str) -> Any:
        """The held document of ``kind`` (a RevocationList, an Allowlist), or None."""
        return self._held.get(kind)

    def version(self, kind: str) -> int:
        held = self._held.get(kind)
        return held.version if held is not None else 0

    def versions(self) -> dict[str, int]:
        return {kind: doc.version for kind, doc in self._held.items()}

    def wires(self) -> dict[str, bytes]:
        """Every held document's signed wire, by kind (what carriers send)."""
        return {kind: doc.to_wire() for kind, doc in self._held.items()}

    def wants(self, kind: str, version: int) -> bool:
        """Whether a document of ``kind`` at ``version`` would be news (for announcements)."""
        return kind in self.kinds and version > self.version(kind)

    def on_adopted(self, callback: AdoptedCallback, kind: str | None = None) -> Callable[[], None]:
        """Call ``callback(kind, document)`` after each adoption (of ``kind`` only, if
        given). Returns an unsubscribe function."""
        entry = (kind, callback)
        self._callbacks.append(entry)
        return lambda: self._callbacks.remove(entry) if entry in self._callbacks else None

    # --- adopting ---------------------------------------------------------------------

    def verify(self, kind: str, wire: bytes) -> TrustDocument:
        """Steps 1-3 of the rule without the version check: the document, or the error."""
        found = self._kind(kind)
        signed, mesh = self._peek(found, wire)[:2]
        return self._check(found, signed, mesh)

    def offer(self, kind: str, wire: bytes, source: str = "local") -> bool:
        """Adopt ``wire`` if it is this mesh's root-signed ``kind`` at a higher version
        than held: True if adopted, False if that version is already held; otherwise a
        TrustDocumentError subclass (counted and logged). ``source`` names the carrier and
        peer for the log."""
        document = self.check(kind, wire, source)
        return document is not None and self.adopt(kind, document, source)

    def check(self, kind: str, wire: bytes, source: str = "local") -> TrustDocument | None:
        """Steps 1-3 of the rule: the document if it would be adopted now, None if that
        version is held, else a TrustDocumentError subclass (counted and logged). For a
        holder that must store elsewhere first (the web service): check, store, adopt."""
        try:
            found = self._kind(kind)
            signed, mesh, version = self._peek(found, wire)
            held = self.version(kind)
            if mesh == self.trust.mesh_id and version == held:
                return None
            if mesh == self.trust.mesh_id and version < held:
                raise StaleDocument(f"{kind} version {version} is older than the held {held}")
            return self._check(found, signed, mesh)
        except TrustDocumentError as exc:
            self.counters[f"rejected_{exc.reason}"] += 1
            log.warn_limited("trust_document_rejected", key=(exc.reason, source),
                             kind=str(kind)[:MAX_KIND_CHARS], reason=exc.reason, source=source,
                             detail=str(exc))
            raise

    def adopt(self, kind: str, document: TrustDocument, source: str = "local") -> bool:
        """Step 4 for a document ``check`` returned: False if one as new arrived since."""
        if document.version <= self.version(kind):
            return False
        self._adopt(self._kind(kind), document, source)
        return True

    def _kind(self, kind: str) -> DocumentKind:
        found = self.kinds.get(kind)
        if found is None:
            raise UnknownDocumentKind(f"no document kind {str(kind)[:MAX_KIND_CHARS]!r}")
        return found

    def _peek(self, kind: DocumentKind, wire: bytes) -> tuple[Signed, bytes, int]:
        if not isinstance(wire, bytes):
            raise MalformedDocument(f"{kind.name}: document is not bytes")
        return peek_document(kind, wire)

    def _check(self, kind: DocumentKind, signed: Signed, mesh: bytes) -> TrustDocument:
        if mesh != self.trust.mesh_id:
            raise ForeignDocument(f"{kind.name} is for mesh {mesh.hex()}, not "
                                  f"{self.trust.mesh_id.hex()}")
        try:
            verify(signed, kind.signing_kind, self.trust.root_public)
        except SignatureError as exc:
            raise UntrustedDocument(f"{kind.name} is not signed by this mesh's root: "
                                    f"{exc}") from exc
        except DecodeError as exc:
            raise MalformedDocument(f"{kind.name} body: {exc}") from exc
        try:
            return kind.parse(signed, self.trust)
        except (MeshError, ValueError, TypeError, KeyError) as exc:
            raise MalformedDocument(f"{kind.name} body: {exc}") from exc

    def _adopt(self, kind: DocumentKind, document: TrustDocument, source: str) -> None:
        previous = self.version(kind.name)
        if self.state_dir is not None:
            try:
                document.save(self.state_dir / kind.file_name)
            except OSError as exc:
                # Still adopted: a revocation must take effect even on a full disk. After
                # a restart the older file is read and gossip brings this one back.
                self.counters["persist_failed"] += 1
                log.error("trust_document_unsaved", kind=kind.name, version=document.version,
                          error=str(exc))
        self._held[kind.name] = document
        self.counters[f"adopted_{kind.name}"] += 1
        log.event("trust_document_adopted", kind=kind.name, version=document.version,
                  previous=previous, source=source)
        for wanted, callback in list(self._callbacks):
            if wanted is not None and wanted != kind.name:
                continue
            try:
                callback(kind.name, document)
            except Exception as exc:  # one listener's bug must not stop the others
                log.error("trust_document_callback_failed", kind=kind.name,
                          callback=repr(callback), error=repr(exc))
