"""A node's signed, versioned description of itself, and the check every receiver applies.

A ``NodeRecord`` is a ``Signed`` document of kind ``node-record``, signed by the node's
own Ed25519 key and carrying the node's membership certificate, so any member can check
it without asking anyone: the certificate must verify against the mesh trust and the
current revocation list, the record must be signed by the certificate's key and name
the certificate's node id.

``incarnation`` is both the record's version and the node's SWIM incarnation: the node
bumps it whenever it changes its record (``NodeRecord.updated``), refutes a suspicion,
or leaves (``leaving=True``). Receivers keep only the highest incarnation they have seen
for a node, so an old record replayed by anyone is ignored. A restarted agent starts from
the wall clock in milliseconds, above anything its previous run can have used.

Body (canonical msgpack map): ``v`` (1), ``node`` (16 bytes), ``inc``, ``host``, ``os``,
``addr`` (list of "host:port" endpoints where the node's membership transport listens,
preferred first), ``ver`` (agent version), ``power`` ("ac"|"battery"|"unknown"),
``load`` (float, 1-minute load per core), ``amt`` (bool), ``tags`` (str -> str),
``leaving`` (bool), ``cert`` (certificate wire bytes), and ``elect`` (bytes, at most
``MAX_ELECTION_BYTES``; present only when non-empty): the node's leader-election state,
opaque here and read by ``meshagent.election``. At most ``MAX_RECORD_BYTES``.

``RecordVerifier`` holds the trust anchor and caches verified certificates and record
signatures by their exact bytes (verification is pure; expiry and revocation are checked
again on every use), so a record gossiped a hundred times costs one signature check.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshagent import codec
from meshagent.errors import DecodeError, MeshError
from meshagent.identity import (
    CertificateError,
    CertificateExpired,
    CertificateRevoked,
    MembershipCertificate,
    MeshTrust,
    NodeIdentity,
    RevocationList,
    WrongMesh,
)
from meshagent.signing import SignatureError, Signed, check, sign

__all__ = ["NodeRecord", "RecordVerifier", "RecordError", "MalformedRecord",
           "RecordRejected", "RECORD_KIND", "MAX_RECORD_BYTES", "MAX_ELECTION_BYTES",
           "POWER_SOURCES", "initial_incarnation"]

RECORD_KIND = "node-record"
MAX_RECORD_BYTES = 4096
POWER_SOURCES = ("ac", "battery", "unknown")
MAX_TAGS = 64
MAX_TEXT = 255
MAX_ADDRESSES = 16
MAX_ELECTION_BYTES = 256
_CACHE_LIMIT = 20_000


class RecordError(MeshError):
    """A node record was refused. ``reason`` names the counter it is dropped under."""

    reason = "bad_record"


class MalformedRecord(RecordError, DecodeError):
    reason = "malformed_record"


class RecordRejected(RecordError):
    """The record parses but is not acceptable (signature, certificate, revocation)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def initial_incarnation() -> int:
    """Where a starting agent counts from: above any incarnation of its previous runs."""
    return int(time.time() * 1000)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise MalformedRecord(f"record field {name!r} must be a string of at most {MAX_TEXT}")
    return value


@dataclass(frozen=True)
class NodeRecord:
    node_id: bytes
    incarnation: int
    hostname: str
    os: str
    addresses: tuple[str, ...]
    agent_version: str
    power_source: str
    load: float
    amt_present: bool
    tags: Mapping[str, str]
    leaving: bool
    cert: MembershipCertificate
    election: bytes
    signed: Signed = field(repr=False, compare=False)
    wire: bytes = field(repr=False, compare=False)

    FIELDS = ("hostname", "os", "addresses", "agent_version", "power_source", "load",
              "amt_present", "tags", "election")

    # -- making -----------------------------------------------------------------------

    @classmethod
    def sign(cls, identity: NodeIdentity, certificate: MembershipCertificate, *,
             incarnation: int, hostname: str = "", os: str = "",
             addresses: Sequence[str] = (), agent_version: str = "",
             power_source: str = "unknown", load: float = 0.0, amt_present: bool = False,
             tags: Mapping[str, str] | None = None, leaving: bool = False,
             election: bytes = b"") -> NodeRecord:
        """Sign a record for this node. Raises MalformedRecord for out-of-range fields."""
        body = {"v": 1, "node": identity.node_id, "inc": int(incarnation),
                "host": hostname, "os": os, "addr": list(addresses), "ver": agent_version,
                "power": power_source, "load": float(load), "amt": bool(amt_present),
                "tags": dict(tags or {}), "leaving": bool(leaving),
                "cert": certificate.to_wire()}
        if election:
            body["elect"] = bytes(election)
        record = cls._from_body(body, certificate, sign(identity.sign_key, RECORD_KIND, body))
        if len(record.wire) > MAX_RECORD_BYTES:
            raise MalformedRecord(f"record of {len(record.wire)} bytes exceeds "
                                  f"{MAX_RECORD_BYTES}")
        return record

    def updated(self, identity: NodeIdentity, *, incarnation: int | None = None,
                leaving: bool | None = None, certificate: MembershipCertificate | None = None,
                **fields: Any) -> NodeRecord:
        """A copy with ``fields`` changed (and ``certificate``, a renewal), re-signed at a
        higher incarnation."""
        unknown = set(fields) - set(self.FIELDS)
        if unknown:
            raise MalformedRecord(f"unknown record fields {sorted(unknown)}")
        values = {name: getattr(self, name) for name in self.FIELDS} | fields
        return NodeRecord.sign(
            identity, certificate or self.cert,
            incarnation=self.incarnation + 1 if incarnation is None else incarnation,
            leaving=self.leaving if leaving is None else leaving, **values)

    # -- parsing ----------------------------------------------------------------------

    @classmethod
    def from_wire(cls, data: bytes) -> NodeRecord:
        """Structure only, no trust decision: use ``RecordVerifier.verify`` to accept."""
        if not isinstance(data, bytes) or len(data) > MAX_RECORD_BYTES:
            raise MalformedRecord("record is not bytes or exceeds the size limit")
        try:
            signed = Signed.from_wire(data)
            body = codec.unpack(signed.body)
            if not isinstance(body, dict) or not isinstance(body.get("cert"), bytes):
                raise MalformedRecord("record body is not a map with a certificate")
            cert = MembershipCertificate.from_wire(body["cert"])
        except (DecodeError, CertificateError) as exc:
            raise MalformedRecord(f"record does not parse: {exc}") from exc
        if signed.kind != RECORD_KIND:
            raise MalformedRecord(f"expected a {RECORD_KIND!r} document, got {signed.kind!r}")
        return cls._from_body(body, cert, signed, data)

    @classmethod
    def _from_body(cls, body: dict[str, Any], cert: MembershipCertificate, signed: Signed,
                   wire: bytes | None = None) -> NodeRecord:
        try:
            node_id, incarnation = body["node"], body["inc"]
            addresses, tags, load = body["addr"], body["tags"], body["load"]
            power, amt, leaving = body["power"], body["amt"], body["leaving"]
        except KeyError as exc:
            raise MalformedRecord(f"record lacks field {exc}") from None
        if not isinstance(node_id, bytes) or len(node_id) != 16:
            raise MalformedRecord("record node id must be 16 bytes")
        if not isinstance(incarnation, int) or isinstance(incarnation, bool) or not (
                0 <= incarnation < 1 << 63):
            raise MalformedRecord("record incarnation must be a non-negative integer")
        if not isinstance(addresses, list) or len(addresses) > MAX_ADDRESSES:
            raise MalformedRecord(f"record addresses must be a list of at most {MAX_ADDRESSES}")
        if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
            raise MalformedRecord(f"record tags must be a map of at most {MAX_TAGS}")
        if power not in POWER_SOURCES:
            raise MalformedRecord(f"record power source must be one of {POWER_SOURCES}")
        if not isinstance(load, (int, float)) or isinstance(load, bool) or not (
                0.0 <= load < 1e6):
            raise MalformedRecord("record load must be a non-negative number")
        if not isinstance(amt, bool) or not isinstance(leaving, bool):
            raise MalformedRecord("record flags must be booleans")
        election = body.get("elect", b"")
        if not isinstance(election, bytes) or len(election) > MAX_ELECTION_BYTES:
            raise MalformedRecord(f"record election state must be at most "
                                  f"{MAX_ELECTION_BYTES} bytes")
        return cls(
            node_id=node_id, incarnation=incarnation,
            hostname=_text(body.get("host"), "host"), os=_text(body.get("os"), "os"),
            addresses=tuple(_text(a, "addr") for a in addresses),
            agent_version=_text(body.get("ver"), "ver"), power_source=power,
            load=float(load), amt_present=amt,
            tags={_text(k, "tags"): _text(v, "tags") for k, v in tags.items()},
            leaving=leaving, cert=cert, election=election, signed=signed,
            wire=signed.to_wire() if wire is None else wire)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for the control socket and ``meshctl nodes --json``."""
        return {"node_id": self.node_id.hex(), "incarnation": self.incarnation,
                "hostname": self.hostname, "os": self.os, "addresses": list(self.addresses),
                "agent_version": self.agent_version, "power_source": self.power_source,
                "load": self.load, "amt_present": self.amt_present, "tags": dict(self.tags),
                "leaving": self.leaving, "roles": list(self.cert.roles),
                "certificate": {"serial": self.cert.serial, "expires": self.cert.expires}}


class _BoundedCache(dict[bytes, Any]):
    def remember(self, key: bytes, value: Any) -> None:
        if len(self) >= _CACHE_LIMIT:
            for stale in list(self)[: _CACHE_LIMIT // 4]:  # oldest first (insertion order)
                del self[stale]
        self[key] = value


def _certificate_key(cert: MembershipCertificate) -> bytes:
    return b"\0" + cert.signed.signature + cert.signed.body


class RecordVerifier:
    """Acceptance checks for certificates and records of one mesh, with caches.

    One instance per agent (tests and scale runs may share one between in-process
    nodes of the same mesh: results depend only on the bytes, the trust and the time).
    Parsed and verified records are cached by their exact bytes, so the same record
    arriving again (gossip, state exchanges) costs a lookup; the record keeps those bytes
    as its ``wire``, which the verified cache shares, and Python hashes a bytes object
    once (a record accepted by every member of a simulated mesh is hashed once per copy
    received, not three times).
    """

    def __init__(self, trust: MeshTrust) -> None:
        self.trust = trust
        self._certificates = _BoundedCache()  # wire bytes or signature + body -> cert
        self._parsed = _BoundedCache()  # record bytes -> NodeRecord
        self._verified = _BoundedCache()  # record bytes -> True

    def certificate(self, cert: bytes | MembershipCertificate,
                    revocations: RevocationList | None = None,
                    now: float | None = None) -> MembershipCertificate:
        """Verify a certificate (cached by its exact signed bytes); raises RecordRejected."""
        key = cert if isinstance(cert, bytes) else _certificate_key(cert)
        now = time.time() if now is None else now
        cached: MembershipCertificate | None = self._certificates.get(key)
        if cached is None:
            try:
                cached = MembershipCertificate.verify(cert, self.trust, now=now)
            except WrongMesh as exc:
                raise RecordRejected(str(exc), "wrong_mesh") from exc
            except CertificateError as exc:
                raise RecordRejected(str(exc), "bad_certificate") from exc
            # Remember it both by the bytes it came in and by what it signs, so the same
            # certificate arriving in a datagram header and inside a record is checked once.
            self._certificates.remember(key, cached)
            self._certificates.remember(_certificate_key(cached), cached)
        if now > cached.expires:
            raise RecordRejected(str(CertificateExpired("certificate expired")),
                                 "bad_certificate")
        if revocations is not None and revocations.is_revoked(cached):
            raise RecordRejected(str(CertificateRevoked(f"node {cached.node_id.hex()} is "
                                                        "revoked")), "revoked")
        return cached

    def parse(self, data: bytes) -> NodeRecord:
        """Structure only (MalformedRecord), cached: use ``verify`` before trusting it."""
        if not isinstance(data, bytes):
            raise MalformedRecord("record is not bytes")
        record: NodeRecord | None = self._parsed.get(data)
        if record is None:
            record = NodeRecord.from_wire(data)
            self._parsed.remember(record.wire, record)
        return record

    def verify(self, data: bytes | NodeRecord, revocations: RevocationList | None = None,
               now: float | None = None) -> NodeRecord:
        """Accept a record (bytes or parsed) or raise MalformedRecord / RecordRejected."""
        record = data if isinstance(data, NodeRecord) else self.parse(data)
        cert = self.certificate(record.cert, revocations, now)
        if record.wire in self._verified:
            return record
        if cert.node_id != record.node_id:
            raise RecordRejected("record names another node than its certificate",
                                 "bad_signature")
        try:
            check(record.signed, RECORD_KIND, cert.sign_public)
        except SignatureError as exc:
            raise RecordRejected(f"record signature: {exc}", "bad_signature") from exc
        self._verified.remember(record.wire, True)
        return record
