"""Root-signed trust documents: the one adoption rule (newer version of this mesh's root
wins), persistence, callbacks, and a typed, counted, logged refusal for every bad input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from meshagent import codec
from meshagent.commands import build_allowlist
from meshagent.errors import ConfigError
from meshagent.identity import MeshRoot, RevocationList
from meshagent.signing import sign
from meshagent.trustdocs import (
    ALLOWLIST,
    REVOCATIONS,
    ForeignDocument,
    MalformedDocument,
    StaleDocument,
    TrustDocuments,
    UnknownDocumentKind,
    UntrustedDocument,
    read_document_file,
)

NODE = bytes(range(16))


@pytest.fixture
def root() -> MeshRoot:
    return MeshRoot.create()


def _lists(root: MeshRoot, count: int) -> list[RevocationList]:
    lists = [root.revoke(node_ids=[NODE])]
    while len(lists) < count:
        lists.append(root.revoke(serials=[len(lists)], previous=lists[-1]))
    return lists


def test_newer_document_is_adopted_saved_and_reported(root: MeshRoot, tmp_path: Path) -> None:
    documents = TrustDocuments(root.trust, tmp_path)
    seen: list[tuple[str, int]] = []
    documents.on_adopted(lambda kind, doc: seen.append((kind, doc.version)))
    first, second = _lists(root, 2)
    assert documents.offer(REVOCATIONS, first.to_wire(), "test")
    assert documents.offer(REVOCATIONS, second.to_wire(), "test")
    assert documents.version(REVOCATIONS) == 2
    assert NODE in documents.current(REVOCATIONS).node_ids
    assert seen == [(REVOCATIONS, 1), (REVOCATIONS, 2)]
    assert RevocationList.load(tmp_path / "revocations", root.trust).version == 2
    assert documents.counters["adopted_revocations"] == 2


def test_the_held_version_again_is_not_news(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    listing = _lists(root, 1)[0]
    assert documents.offer(REVOCATIONS, listing.to_wire())
    assert not documents.offer(REVOCATIONS, listing.to_wire())
    assert documents.wires() == {REVOCATIONS: listing.to_wire()}
    assert not documents.wants(REVOCATIONS, 1) and documents.wants(REVOCATIONS, 2)
    assert not documents.wants("unheard-of", 5)


def test_older_version_is_refused_as_stale_counted_and_logged(
        root: MeshRoot, caplog: pytest.LogCaptureFixture) -> None:
    documents = TrustDocuments(root.trust)
    older, newer = _lists(root, 2)
    documents.offer(REVOCATIONS, newer.to_wire())
    with caplog.at_level(logging.WARNING), pytest.raises(StaleDocument):
        documents.offer(REVOCATIONS, older.to_wire(), "peer-a")
    assert documents.version(REVOCATIONS) == 2
    assert documents.counters["rejected_stale"] == 1
    assert "trust_document_rejected" in caplog.text and "peer-a" in caplog.text


def test_older_allowlist_cannot_widen_what_runs(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    wide = build_allowlist(root, ["ping", "power"])
    narrow = build_allowlist(root, ["ping"], previous=wide)
    documents.offer(ALLOWLIST, narrow.to_wire())
    with pytest.raises(StaleDocument):
        documents.offer(ALLOWLIST, wide.to_wire())
    assert documents.current(ALLOWLIST).actions == frozenset({"ping"})


def test_document_not_signed_by_the_root_is_refused(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    impostor = MeshRoot(root.mesh_id, MeshRoot.create().key)
    with pytest.raises(UntrustedDocument):
        documents.offer(REVOCATIONS, impostor.revoke(node_ids=[NODE]).to_wire())
    with pytest.raises(UntrustedDocument):
        documents.offer(ALLOWLIST, build_allowlist(impostor, ["power"]).to_wire())
    assert documents.versions() == {}
    assert documents.counters["rejected_untrusted"] == 2


def test_document_of_another_mesh_is_refused(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    other = MeshRoot.create()
    with pytest.raises(ForeignDocument):
        documents.offer(ALLOWLIST, build_allowlist(other, ["ping"], version=99).to_wire())
    assert documents.current(ALLOWLIST) is None
    assert documents.counters["rejected_foreign"] == 1


@pytest.mark.parametrize("wire", [
    b"", b"\xc1", os.urandom(64), codec.pack({"k": "revocations"}), codec.pack([1, 2, 3]),
])
def test_garbage_is_refused_as_malformed(root: MeshRoot, wire: bytes) -> None:
    documents = TrustDocuments(root.trust)
    with pytest.raises(MalformedDocument):
        documents.offer(REVOCATIONS, wire, "peer-b")
    assert documents.counters["rejected_malformed"] == 1


def test_document_of_another_kind_or_without_version_is_malformed(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    allowlist = build_allowlist(root, ["ping"])
    with pytest.raises(MalformedDocument):
        documents.offer(REVOCATIONS, allowlist.to_wire())
    unversioned = sign(root.key, "revocations", {"mesh": root.mesh_id, "version": True})
    with pytest.raises(MalformedDocument):
        documents.offer(REVOCATIONS, unversioned.to_wire())
    # Root-signed, right mesh and version, but a body the kind cannot use.
    bad_body = sign(root.key, "revocations", {"mesh": root.mesh_id, "version": 3,
                                              "serials": "all", "nodes": [], "issued": 0})
    with pytest.raises(MalformedDocument):
        documents.offer(REVOCATIONS, bad_body.to_wire())
    assert documents.versions() == {}


def test_unknown_kind_is_refused(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    with pytest.raises(UnknownDocumentKind):
        documents.offer("firmware", _lists(root, 1)[0].to_wire())
    assert documents.counters["rejected_unknown_kind"] == 1


def test_load_reads_back_what_was_adopted(root: MeshRoot, tmp_path: Path) -> None:
    writer = TrustDocuments(root.trust, tmp_path)
    writer.offer(REVOCATIONS, _lists(root, 3)[2].to_wire())
    writer.offer(ALLOWLIST, build_allowlist(root, ["ping"], version=7).to_wire())
    reader = TrustDocuments.load(root.trust, tmp_path)
    assert reader.versions() == {REVOCATIONS: 3, ALLOWLIST: 7}
    assert read_document_file(ALLOWLIST, tmp_path / "allowlist") == writer.wires()[ALLOWLIST]


def test_load_refuses_a_file_signed_by_someone_else(root: MeshRoot, tmp_path: Path) -> None:
    impostor = MeshRoot(root.mesh_id, MeshRoot.create().key)
    build_allowlist(impostor, ["power"]).save(tmp_path / "allowlist")
    with pytest.raises(ConfigError, match="allowlist"):
        TrustDocuments.load(root.trust, tmp_path)


def test_check_then_adopt_keeps_the_newest(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    older, newer = _lists(root, 2)
    checked_older = documents.check(REVOCATIONS, older.to_wire())
    checked_newer = documents.check(REVOCATIONS, newer.to_wire())
    assert checked_older is not None and checked_newer is not None
    assert documents.adopt(REVOCATIONS, checked_newer)
    assert not documents.adopt(REVOCATIONS, checked_older)
    assert documents.version(REVOCATIONS) == 2


def test_a_failing_listener_does_not_stop_the_others(root: MeshRoot) -> None:
    documents = TrustDocuments(root.trust)
    seen: list[str] = []

    def broken(kind: str, doc: object) -> None:
        raise RuntimeError("listener bug")

    documents.on_adopted(broken)
    unsubscribe = documents.on_adopted(lambda kind, doc: seen.append(kind), ALLOWLIST)
    documents.offer(REVOCATIONS, _lists(root, 1)[0].to_wire())
    documents.offer(ALLOWLIST, build_allowlist(root, ["ping"]).to_wire())
    unsubscribe()
    documents.offer(ALLOWLIST, build_allowlist(root, ["ping"], version=2).to_wire())
    assert seen == [ALLOWLIST]
    assert documents.version(ALLOWLIST) == 2
