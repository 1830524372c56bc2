"""What a node leaves in its AMT's 3PDS block for peers to read while it sleeps.

An ``AmtRecord`` is a ``Signed`` document of kind ``amt-record``, signed by the node's own
key::

    {v: 1, node: 16 B, record: the node's signed node-record wire, peers: [[node id,
     "host:port"], ...] (members it knew, at most MAX_PEERS), written: UNIX time,
     reason: "periodic" | "sleep" | "start"}

The block holds ``MAGIC | length (u32, big-endian) | wire`` and zeros after it. A reader
takes the length from the header first and reads no further than that, and at most
``BLOCK_BYTES``.

Trust: the block's bytes come from a device any LAN host may have written to with the
right account, so nothing in it counts until ``verify_amt_record`` has checked the
document's signature against the *member's certificate key as the mesh already knows it*
(never a key the block brings along), that it names that member, and that the node record
inside passes the same check membership applies to gossip (mesh trust, revocations,
signature) and names the same node. Anything else is ``GarbageRecord`` or
``BadRecordSignature``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from meshagent.amtbridge.errors import BadRecordSignature, GarbageRecord
from meshagent.errors import DecodeError
from meshagent.identity import MembershipCertificate, NodeIdentity, RevocationList
from meshagent.record import MalformedRecord, NodeRecord, RecordRejected, RecordVerifier
from meshagent.signing import SignatureError, Signed, sign, verify

__all__ = ["AMT_RECORD_KIND", "AmtRecord", "BLOCK_BYTES", "HEADER_BYTES", "MAGIC",
           "MAX_PEERS", "REASONS", "block_length", "decode_block", "encode_block",
           "sign_amt_record", "verify_amt_record"]

AMT_RECORD_KIND = "amt-record"
MAGIC = b"MAR1"
HEADER_BYTES = 8
BLOCK_BYTES = 8192  # two 4 KB allocation units: a full node record plus the peer list
MAX_PEERS = 64
REASONS = ("periodic", "sleep", "start")
_MAX_ADDRESS = 255


@dataclass(frozen=True)
class AmtRecord:
    node_id: bytes
    record: NodeRecord
    peers: tuple[tuple[bytes, str], ...]
    written: float
    reason: str
    wire: bytes

    def to_dict(self) -> dict[str, object]:
        return {"node_id": self.node_id.hex(), "written": self.written, "reason": self.reason,
                "peers": [{"node_id": n.hex(), "address": a} for n, a in self.peers],
                "record": self.record.to_dict()}


def sign_amt_record(identity: NodeIdentity, record: NodeRecord,
                    peers: Sequence[tuple[bytes, str]], reason: str = "periodic",
                    now: float | None = None) -> bytes:
    """The signed wire for this node's block; the newest MAX_PEERS peers are kept."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS}")
    if record.node_id != identity.node_id:
        raise ValueError("a node writes only its own record")
    body = {"v": 1, "node": identity.node_id, "record": record.wire,
            "peers": [[node, address[:_MAX_ADDRESS]] for node, address in peers[:MAX_PEERS]],
            "written": time.time() if now is None else float(now), "reason": reason}
    wire = sign(identity.sign_key, AMT_RECORD_KIND, body).to_wire()
    if len(wire) > BLOCK_BYTES - HEADER_BYTES:
        raise ValueError(f"amt record of {len(wire)} bytes does not fit the block")
    return wire


def encode_block(wire: bytes, size: int = BLOCK_BYTES) -> bytes:
    """``wire`` framed for a block of ``size`` bytes (zero padded)."""
    if len(wire) > size - HEADER_BYTES:
        raise ValueError("record does not fit the block")
    framed = MAGIC + struct.pack(">I", len(wire)) + wire
    return framed + bytes(size - len(framed))


def block_length(header: bytes, size: int = BLOCK_BYTES) -> int:
    """The record length a block header announces; GarbageRecord if it is not a header."""
    if len(header) < HEADER_BYTES or header[:4] != MAGIC:
        raise GarbageRecord("3PDS block does not start with a record header")
    (length,) = struct.unpack(">I", header[4:HEADER_BYTES])
    if not 0 < length <= size - HEADER_BYTES:
        raise GarbageRecord(f"3PDS block announces {length} bytes, outside 1..{size - 8}")
    return length


def decode_block(block: bytes) -> bytes:
    """The record wire of a whole block (header, then exactly the announced bytes)."""
    length = block_length(block[:HEADER_BYTES], max(len(block), HEADER_BYTES))
    wire = block[HEADER_BYTES:HEADER_BYTES + length]
    if len(wire) != length:
        raise GarbageRecord("3PDS block is shorter than its header says")
    return wire


def verify_amt_record(wire: bytes, member: MembershipCertificate, verifier: RecordVerifier,
                      revocations: RevocationList | None = None) -> AmtRecord:
    """Accept ``wire`` as ``member``'s record, or raise GarbageRecord/BadRecordSignature.

    ``member`` is the certificate the caller already holds for that node (from its
    verified gossip record)."""
    try:
        signed = Signed.from_wire(wire)
    except DecodeError as exc:
        raise GarbageRecord(f"3PDS record does not parse: {exc}") from None
    try:
        body = verify(signed, AMT_RECORD_KIND, member.sign_public)
    except SignatureError as exc:
        raise BadRecordSignature(f"3PDS record of {member.node_id.hex()}: {exc}") from None
    except DecodeError as exc:
        raise GarbageRecord(f"3PDS record body does not parse: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != 1:
        raise GarbageRecord("3PDS record body is not a version 1 map")
    if body.get("node") != member.node_id:
        raise BadRecordSignature("3PDS record names another node")
    inner, peers, written, reason = (body.get("record"), body.get("peers"),
                                     body.get("written"), body.get("reason"))
    if not (isinstance(inner, bytes) and isinstance(peers, list) and len(peers) <= MAX_PEERS
            and isinstance(written, (int, float)) and not isinstance(written, bool)
            and reason in REASONS):
        raise GarbageRecord("3PDS record fields have the wrong types")
    parsed_peers = []
    for item in peers:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)
                and len(item[0]) == 16 and isinstance(item[1], str)
                and len(item[1]) <= _MAX_ADDRESS):
            raise GarbageRecord("3PDS record peer list is malformed")
        parsed_peers.append((item[0], item[1]))
    try:
        record = verifier.verify(inner, revocations)
    except MalformedRecord as exc:
        raise GarbageRecord(f"node record in 3PDS: {exc}") from None
    except RecordRejected as exc:
        raise BadRecordSignature(f"node record in 3PDS: {exc}") from None
    if record.node_id != member.node_id:
        raise BadRecordSignature("node record in 3PDS names another node")
    return AmtRecord(member.node_id, record, tuple(parsed_peers), float(written), reason, wire)
