"""The uplink protocol between a mesh's leader and the web service (one WebSocket).

Every message is one binary WebSocket frame holding a canonical msgpack map with a
type field ``t``; at most ``MAX_UPLINK_MESSAGE_BYTES``. Text frames, oversize frames,
unknown types and ill-typed fields end the connection with ``Close.MALFORMED`` (or
1009 for size) after an ``error`` message; nothing from such a message is stored.

    service -> leader  challenge {nonce: 32B, server: SHA-256 of the service's TLS cert (DER),
                                  v: PROTOCOL_VERSION}
    leader  -> service hello     {cert: membership cert wire, term: int,
                                  auth: Signed wire, kind "leader-auth", by the cert's key, over
                                  {nonce, server, mesh, node, term}}
    service -> leader  welcome   {mesh, term}                  (or close, see ``Close``)
    leader  -> service inventory {full: bool, nodes: [{node: 16B, state: str, seen: float,
                                  record: signed node-record wire | nil}]}
                                  full=true starts a complete listing (it may continue over
                                  more full=false messages): nodes never listed become
                                  "unreported". record nil keeps the stored record.
    service -> leader  commands  {items: [{id: 16B, node: 16B, cmd: SignedCommand wire}]}
    either             document  {name: "revocations"|"allowlist", doc: root-signed wire}
                                  (``trustdocs``) kept if newer than the receiver's: the
                                  service sends what it holds after welcome and whenever an
                                  admin uploads a newer one (the leader's mesh adopts and
                                  spreads it); the leader sends the mesh's on connect and
                                  whenever the mesh adopts a newer one. The service refuses
                                  logins, records and commands of what the revocation list
                                  revokes (a revoked leader is disconnected)
    leader  -> service revocations {list: root-signed revocation list wire}  the same as a
                                  ``document`` of kind revocations (older leaders)
    leader  -> service nack      {items: [{id, node, reason: str}]}  target unreachable now:
                                  the service keeps it queued until the target is back
    leader  -> service results   {items: [{id, node, result: signed command-result wire}]}
    service -> leader  ack       {items: [{id, node}]}  each result stored (or a duplicate /
                                  refused for good): the leader may forget it
    either             error     {reason: str}  sent just before a close

The ``server`` hash in the challenge and in the signed auth binds a leader's login to
the service whose certificate it pinned, so a login cannot be relayed to another service.
Fencing: per mesh the highest term wins (see ``Database.claim_leadership``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from meshagent import codec
from meshagent.errors import DecodeError
from meshagent.signing import Signed, SigningKey, sign

__all__ = [
    "AUTH_KIND", "Close", "LeaderAuth", "MAX_UPLINK_MESSAGE_BYTES", "MAX_ITEMS", "NONCE_BYTES",
    "PROTOCOL_VERSION", "items_of",
    "ProtocolError", "decode_message", "encode_message", "leader_auth_body", "sign_leader_auth",
    "require",
]

PROTOCOL_VERSION = 1
AUTH_KIND = "leader-auth"
NONCE_BYTES = 32
# One uplink message; larger inventories are sent in several messages.
MAX_UPLINK_MESSAGE_BYTES = codec.MAX_MESSAGE_BYTES
# Items per inventory/commands/results message.
MAX_ITEMS = 2000


class Close(enum.IntEnum):
    """WebSocket close codes the service uses (4000-4999 are for applications)."""

    MESSAGE_TOO_BIG = 1009
    MALFORMED = 4400
    AUTH_FAILED = 4401
    UNKNOWN_MESH = 4403
    STALE_TERM = 4409       # lower term, or the same term held by another node
    SUPERSEDED = 4410       # a leader with a newer term took over this mesh
    DB_UNAVAILABLE = 4503   # the service cannot store right now; retry with backoff
    SHUTTING_DOWN = 1001

    @property
    def retry(self) -> bool:
        """Whether a leader should reconnect after this close (with backoff)."""
        return self in (Close.DB_UNAVAILABLE, Close.SHUTTING_DOWN, Close.MESSAGE_TOO_BIG)


class ProtocolError(DecodeError):
    """A message that does not follow this protocol."""


def encode_message(kind: str, **fields: Any) -> bytes:
    return codec.pack({"t": kind, **fields})


def decode_message(data: bytes) -> tuple[str, dict[str, Any]]:
    """(type, fields) of one frame; ProtocolError for anything else than a typed map."""
    try:
        value = codec.unpack(data, MAX_UPLINK_MESSAGE_BYTES)
    except DecodeError as exc:
        raise ProtocolError(str(exc)) from exc
    if not isinstance(value, dict) or not isinstance(value.get("t"), str):
        raise ProtocolError("message is not a map with a text type field 't'")
    return value["t"], value


def require(fields: dict[str, Any], key: str, kind: type | tuple[type, ...],
            size: int | None = None) -> Any:
    """``fields[key]`` if it has type ``kind`` (and length ``size``); ProtocolError otherwise."""
    value = fields.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ProtocolError(f"field {key!r} is missing or has the wrong type")
    if size is not None and len(value) != size:
        raise ProtocolError(f"field {key!r} must be {size} bytes")
    return value


def items_of(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The bounded list of maps under ``items`` (or ``nodes``)."""
    key = "nodes" if "nodes" in fields else "items"
    items = require(fields, key, list)
    if len(items) > MAX_ITEMS or not all(isinstance(item, dict) for item in items):
        raise ProtocolError(f"{key!r} must be a list of at most {MAX_ITEMS} maps")
    return items


@dataclass(frozen=True)
class LeaderAuth:
    nonce: bytes
    server: bytes
    mesh: bytes
    node: bytes
    term: int


def leader_auth_body(auth: LeaderAuth) -> dict[str, Any]:
    return {"nonce": auth.nonce, "server": auth.server, "mesh": auth.mesh, "node": auth.node,
            "term": auth.term}


def sign_leader_auth(key: SigningKey, auth: LeaderAuth) -> Signed:
    """The leader's proof of holding its certificate's key for this login."""
    return sign(key, AUTH_KIND, leader_auth_body(auth))

