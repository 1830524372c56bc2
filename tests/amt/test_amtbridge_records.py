"""Sealed guest grants and signed 3PDS records, without devices: who can open and what
is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent import codec
from meshagent.amtbridge import AmtGrant, BadRecordSignature, GarbageRecord, GrantError
from meshagent.amtbridge.amtrecord import (
    BLOCK_BYTES,
    decode_block,
    encode_block,
    sign_amt_record,
    verify_amt_record,
)
from meshagent.amtbridge.grant import open_grant, seal_grant
from meshagent.identity import MeshRoot, NodeIdentity, RevocationList
from meshagent.record import NodeRecord, RecordVerifier

ROOT = MeshRoot.create()


def _member(name: str) -> tuple[NodeIdentity, object]:
    identity = NodeIdentity.generate()
    return identity, ROOT.issue_certificate(identity.sign_public, identity.dh_public,
                                            ["member"], name)


OWNER, OWNER_CERT = _member("owner")
PEER, PEER_CERT = _member("peer")
OTHER, OTHER_CERT = _member("other")
GRANT = AmtGrant(OWNER.node_id, 7, "10.0.0.5", 16992, False, b"", "mesh-guest", "pw-guest",
                 "mesh-waker", "pw-waker")


def test_grant_opens_only_for_its_recipient() -> None:
    wire = seal_grant(OWNER, PEER_CERT, GRANT)
    assert open_grant(PEER, wire, OWNER_CERT) == GRANT
    assert b"pw-guest" not in wire
    with pytest.raises(GrantError):
        open_grant(OTHER, wire, OWNER_CERT)  # not addressed to it
    with pytest.raises(GrantError):
        open_grant(PEER, wire, OTHER_CERT)  # not signed by that member


def test_grant_with_a_flipped_ciphertext_bit_is_refused() -> None:
    doc = codec.unpack(seal_grant(OWNER, PEER_CERT, GRANT))
    body = codec.unpack(doc["b"])
    body["box"] = bytes([body["box"][0] ^ 1]) + body["box"][1:]
    doc["b"] = codec.pack(body)
    doc["sig"] = OWNER.sign_key.sign_raw(b"meshagent/amt-guest\0" + doc["b"])
    with pytest.raises(GrantError, match="decrypt"):
        open_grant(PEER, codec.pack(doc), OWNER_CERT)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_never_a_grant(data: bytes) -> None:
    with pytest.raises(GrantError):
        open_grant(PEER, data, OWNER_CERT)


def _record(identity: NodeIdentity, cert: object) -> NodeRecord:
    return NodeRecord.sign(identity, cert, incarnation=1, hostname="owner",  # type: ignore
                           tags={"site": "lab"})


def test_amt_record_round_trips_through_a_block() -> None:
    record = _record(OWNER, OWNER_CERT)
    wire = sign_amt_record(OWNER, record, [(PEER.node_id, "10.0.0.6:7946")], "sleep")
    block = encode_block(wire)
    assert len(block) == BLOCK_BYTES
    accepted = verify_amt_record(decode_block(block), OWNER_CERT, RecordVerifier(ROOT.trust))
    assert accepted.record.tags == {"site": "lab"} and accepted.reason == "sleep"
    assert accepted.peers == ((PEER.node_id, "10.0.0.6:7946"),)


def test_record_of_a_revoked_node_is_refused() -> None:
    wire = sign_amt_record(OWNER, _record(OWNER, OWNER_CERT), [], "sleep")
    revoked = RevocationList.issue(ROOT.key, ROOT.mesh_id, node_ids=[OWNER.node_id])
    with pytest.raises(BadRecordSignature):
        verify_amt_record(wire, OWNER_CERT, RecordVerifier(ROOT.trust), revoked)


def test_record_read_for_another_member_is_refused() -> None:
    wire = sign_amt_record(OWNER, _record(OWNER, OWNER_CERT), [], "sleep")
    with pytest.raises(BadRecordSignature):
        verify_amt_record(wire, PEER_CERT, RecordVerifier(ROOT.trust))


@given(st.binary(max_size=2048))
def test_arbitrary_blocks_are_garbage_or_refused(data: bytes) -> None:
    with pytest.raises((GarbageRecord, BadRecordSignature)):
        verify_amt_record(decode_block(data), OWNER_CERT, RecordVerifier(ROOT.trust))


def test_header_announcing_more_than_the_block_is_garbage() -> None:
    with pytest.raises(GarbageRecord):
        decode_block(b"MAR1" + (BLOCK_BYTES).to_bytes(4, "big") + bytes(100))
