"""Node records: signing, the acceptance check, and its caches."""

from __future__ import annotations

import dataclasses

import pytest

from meshagent.identity import MeshRoot, NodeIdentity
from meshagent.record import (
    MAX_RECORD_BYTES,
    MalformedRecord,
    NodeRecord,
    RecordRejected,
    RecordVerifier,
)
from meshagent.signing import Signed, sign


@pytest.fixture(scope="module")
def root() -> MeshRoot:
    return MeshRoot.create()


def _node(root: MeshRoot, hostname: str = "laptop") -> tuple[NodeIdentity, object]:
    identity = NodeIdentity.generate()
    return identity, root.issue_certificate(identity.sign_public, identity.dh_public,
                                            ["member"], hostname, lifetime_s=3600)


def _record(root: MeshRoot, **fields: object) -> tuple[NodeIdentity, NodeRecord]:
    identity, cert = _node(root)
    values = {"hostname": "laptop", "os": "linux", "addresses": ["10.0.0.1:7946"],
              "agent_version": "0.1", "power_source": "battery", "load": 0.5,
              "amt_present": True, "tags": {"site": "lab"}} | fields
    return identity, NodeRecord.sign(identity, cert, incarnation=7,  # type: ignore[arg-type]
                                     **values)  # type: ignore[arg-type]


def test_signed_record_verifies_with_every_field(root: MeshRoot) -> None:
    identity, record = _record(root)
    accepted = RecordVerifier(root.trust).verify(record.wire)
    assert accepted.node_id == identity.node_id
    assert (accepted.incarnation, accepted.hostname, accepted.power_source) == (7, "laptop",
                                                                                "battery")
    assert accepted.tags == {"site": "lab"} and accepted.amt_present
    assert accepted.to_dict()["node_id"] == identity.node_id.hex()


def test_updated_record_has_higher_incarnation_and_new_fields(root: MeshRoot) -> None:
    identity, record = _record(root)
    newer = record.updated(identity, load=2.0, tags={})
    assert newer.incarnation == 8 and newer.load == 2.0 and newer.tags == {}
    assert newer.hostname == record.hostname
    assert RecordVerifier(root.trust).verify(newer.wire).incarnation == 8
    with pytest.raises(MalformedRecord):
        record.updated(identity, colour="red")


def test_tampered_signature_is_rejected(root: MeshRoot) -> None:
    _, record = _record(root)
    forged = dataclasses.replace(record.signed, signature=bytes(64)).to_wire()
    with pytest.raises(RecordRejected) as caught:
        RecordVerifier(root.trust).verify(forged)
    assert caught.value.reason == "bad_signature"


def test_record_signed_by_another_key_is_rejected(root: MeshRoot) -> None:
    _, record = _record(root)
    other, _ = _node(root)
    forged = Signed(record.signed.kind, record.signed.body, other.sign_public,
                    other.sign_key.sign_raw(b"meshagent/node-record\0" + record.signed.body))
    with pytest.raises(RecordRejected) as caught:
        RecordVerifier(root.trust).verify(forged.to_wire())
    assert caught.value.reason == "bad_signature"


def test_record_of_another_mesh_is_rejected(root: MeshRoot) -> None:
    _, record = _record(MeshRoot.create())
    with pytest.raises(RecordRejected) as caught:
        RecordVerifier(root.trust).verify(record.wire)
    assert caught.value.reason == "wrong_mesh"


def test_record_of_revoked_node_is_rejected_even_after_caching(root: MeshRoot) -> None:
    identity, record = _record(root)
    verifier = RecordVerifier(root.trust)
    verifier.verify(record.wire)
    revocations = root.revoke(node_ids=[identity.node_id])
    with pytest.raises(RecordRejected) as caught:
        verifier.verify(record.wire, revocations)
    assert caught.value.reason == "revoked"


def test_record_with_expired_certificate_is_rejected(root: MeshRoot) -> None:
    identity = NodeIdentity.generate()
    cert = root.issue_certificate(identity.sign_public, identity.dh_public, ["member"],
                                  "old", lifetime_s=10, now=1_000_000)
    record = NodeRecord.sign(identity, cert, incarnation=1)
    with pytest.raises(RecordRejected) as caught:
        RecordVerifier(root.trust).verify(record.wire)
    assert caught.value.reason == "bad_certificate"


def test_record_kind_is_checked(root: MeshRoot) -> None:
    identity, record = _record(root)
    beacon = sign(identity.sign_key, "beacon", record.signed.value()).to_wire()
    with pytest.raises(MalformedRecord):
        RecordVerifier(root.trust).verify(beacon)


@pytest.mark.parametrize("fields", [
    {"power_source": "nuclear"}, {"load": -1.0}, {"hostname": "x" * 300},
    {"tags": {str(i): "v" for i in range(100)}}, {"addresses": ["a"] * 20},
    {"tags": {"big": "x" * 250, **{f"k{i}": "y" * 250 for i in range(20)}}}])
def test_out_of_range_fields_are_refused_at_signing(root: MeshRoot, fields: dict) -> None:
    with pytest.raises(MalformedRecord):
        _record(root, **fields)


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x93\x01\x02\x03", b"x" * (MAX_RECORD_BYTES + 1)])
def test_garbage_is_malformed(root: MeshRoot, data: bytes) -> None:
    with pytest.raises(MalformedRecord):
        RecordVerifier(root.trust).verify(data)


def test_verifier_checks_each_signature_once(root: MeshRoot, monkeypatch: pytest.MonkeyPatch,
                                             ) -> None:
    _, record = _record(root)
    verifier = RecordVerifier(root.trust)
    calls = []
    import meshagent.record as module
    real = module.check
    monkeypatch.setattr(module, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(5):
        verifier.verify(record.wire)
    assert len(calls) == 1
