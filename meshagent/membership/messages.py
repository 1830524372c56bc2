"""Membership messages inside sealed datagrams.

A datagram's plaintext is the canonical msgpack of a list of messages; each message is a
list whose first item is its type. Several messages share one datagram (a ping plus
piggybacked gossip). Decoding checks every field's type and size; a bad message raises
``MessageError`` with the counter name it is dropped under and leaves the others of the
datagram usable.

====  ===========  ==========================================================
type  name         fields
====  ===========  ==========================================================
1     Ping         seq, target node id, suspected incarnation (0: not suspected;
                   Lifeguard's buddy system: the suspect learns it and refutes)
2     Ack          seq
3     PingReq      seq, target node id, suspected incarnation: "ping it for me"
4     Nack         seq: "I asked, it did not answer" (Lifeguard)
5     Alive        signed node record (its incarnation is the claim)
6     Suspect      node id, incarnation, accuser node id
7     Dead         node id, incarnation, accuser node id, crashed (port refused)
8     Power        node id, incarnation, "asleep"|"off", reporter (AMT bridge)
9     Document     kind, version: "I hold this root-signed document" (``trustdocs``)
10    Announce     node id, incarnation: "I hold this record" (gossiped)
11    Fetch        node id: "send me your record of it" (answered by Alive)
12    Digest       member count, 8-byte hash of every (node id, incarnation) held:
                   rides on pings and acks; a member whose view has stopped changing
                   but differs from a peer's repairs it with a state exchange
====  ===========  ==========================================================

Records (about 600 bytes with their certificate) are not gossiped themselves: gossip
carries 25-byte ``Announce``s and a member that learns of a newer incarnation fetches the
record once from the announcer. Dissemination then costs each member one record per
change instead of log(n) copies of it, and a datagram carries dozens of announcements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter, call
from typing import Any, ClassVar

import msgpack

from meshagent import codec
from meshagent.errors import DecodeError, MeshError

__all__ = ["Message", "Ping", "Ack", "PingReq", "Nack", "Alive", "Suspect", "Dead", "Power",
           "Document", "Announce", "Fetch", "Digest", "MessageError", "encode_messages",
           "decode_messages", "encode_one", "pack_encoded", "POWER_STATES"]

NODE_ID_BYTES = 16
MAX_WIRE_FIELD = 16384
MAX_MESSAGES = 256
POWER_STATES = ("asleep", "off")
MAX_DOCUMENT_KIND = 32


class MessageError(MeshError):
    """One message of a datagram is unusable; ``reason`` is its drop counter."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def _seq(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
        raise MessageError("sequence number out of range")
    return value


def _incarnation(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise MessageError("incarnation out of range")
    return value


def _node(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != NODE_ID_BYTES:
        raise MessageError("node id must be 16 bytes")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise MessageError("flag must be a boolean")
    return value


def _blob(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) > MAX_WIRE_FIELD:
        raise MessageError("document must be bytes within the size limit")
    return value


def _power_state(value: Any) -> str:
    if value not in POWER_STATES:
        raise MessageError(f"power state must be one of {POWER_STATES}")
    return value


def _document_kind(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_DOCUMENT_KIND:
        raise MessageError("document kind must be a short string")
    return value


def _view_digest(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 8:
        raise MessageError("view digest must be 8 bytes")
    return value


class _Wire:
    """Encoding shared by every message: ``[TYPE, field, ...]`` in dataclass field order,
    each field checked on decode by the checker at the same place in ``FIELDS``."""

    __slots__ = ()
    TYPE: ClassVar[int]
    FIELDS: ClassVar[tuple[Callable[[Any], Any], ...]]

    def encode(self) -> list[Any]:
        return [self.TYPE, *_FIELD_VALUES[self.TYPE](self)]

    @classmethod
    def decode(cls, fields: list[Any]) -> Any:
        """``fields`` has the message's arity (``decode_messages`` checks it first)."""
        return _DECODERS[cls.TYPE]([cls.TYPE, *fields])


@dataclass(frozen=True, slots=True)
class Ping(_Wire):
    TYPE = 1
    FIELDS = (_seq, _node, _incarnation)
    seq: int
    target: bytes
    suspected: int = 0


@dataclass(frozen=True, slots=True)
class Ack(_Wire):
    TYPE = 2
    FIELDS = (_seq,)
    seq: int


@dataclass(frozen=True, slots=True)
class PingReq(_Wire):
    TYPE = 3
    FIELDS = (_seq, _node, _incarnation)
    seq: int
    target: bytes
    suspected: int = 0


@dataclass(frozen=True, slots=True)
class Nack(_Wire):
    TYPE = 4
    FIELDS = (_seq,)
    seq: int


@dataclass(frozen=True, slots=True)
class Alive(_Wire):
    TYPE = 5
    FIELDS = (_blob,)
    record: bytes


@dataclass(frozen=True, slots=True)
class Suspect(_Wire):
    TYPE = 6
    FIELDS = (_node, _incarnation, _node)
    node: bytes
    incarnation: int
    accuser: bytes


@dataclass(frozen=True, slots=True)
class Dead(_Wire):
    TYPE = 7
    FIELDS = (_node, _incarnation, _node, _flag)
    node: bytes
    incarnation: int
    accuser: bytes
    crashed: bool = False


@dataclass(frozen=True, slots=True)
class Power(_Wire):
    TYPE = 8
    FIELDS = (_node, _incarnation, _power_state, _node)
    node: bytes
    incarnation: int
    state: str
    reporter: bytes


@dataclass(frozen=True, slots=True)
class Document(_Wire):
    """News of a root-signed document (revocations, allowlist): whoever holds an older
    version fetches the documents from the sender over a stream, so a document of any
    size spreads by gossip without riding in datagrams."""

    TYPE = 9
    FIELDS = (_document_kind, _incarnation)
    kind: str
    version: int


@dataclass(frozen=True, slots=True)
class Announce(_Wire):
    TYPE = 10
    FIELDS = (_node, _incarnation)
    node: bytes
    incarnation: int


@dataclass(frozen=True, slots=True)
class Fetch(_Wire):
    TYPE = 11
    FIELDS = (_node,)
    node: bytes


@dataclass(frozen=True, slots=True)
class Digest(_Wire):
    TYPE = 12
    FIELDS = (_seq, _view_digest)
    count: int
    digest: bytes


Message = (Ping | Ack | PingReq | Nack | Alive | Suspect | Dead | Power | Document
           | Announce | Fetch | Digest)
_TYPES: dict[int, Any] = {kind.TYPE: kind for kind in
                          (Ping, Ack, PingReq, Nack, Alive, Suspect, Dead, Power, Document,
                           Announce, Fetch, Digest)}
_ARITY = {kind.TYPE: len(kind.__slots__) for kind in _TYPES.values()}


def _decoder(kind: Any) -> Callable[[list[Any]], Any]:
    """The message of a whole wire list ``[TYPE, field, ...]`` of ``kind``'s arity,
    spelled out per arity: every datagram carries dozens of announcements, and a generic
    ``kind(*map(call, FIELDS, item[1:]))`` costs twice this."""
    checks = kind.FIELDS
    if len(checks) == 1:
        (c1,) = checks
        return lambda item: kind(c1(item[1]))
    if len(checks) == 2:
        c1, c2 = checks
        return lambda item: kind(c1(item[1]), c2(item[2]))
    if len(checks) == 3:
        c1, c2, c3 = checks
        return lambda item: kind(c1(item[1]), c2(item[2]), c3(item[3]))
    return lambda item: kind(*map(call, checks, item[1:]))


_DECODERS = {kind.TYPE: _decoder(kind) for kind in _TYPES.values()}
# The field values of a message in wire order, one C-level call (gossip's hot path).
_FIELD_VALUES = {kind.TYPE: (lambda m, get=attrgetter(*kind.__slots__): (get(m),))
                 if len(kind.__slots__) == 1 else attrgetter(*kind.__slots__)
                 for kind in _TYPES.values()}


def encode_messages(messages: list[Message]) -> bytes:
    return pack_encoded([encode_one(message) for message in messages])


def pack_encoded(parts: list[bytes]) -> bytes:
    """A datagram plaintext from messages already packed one by one (``encode_one``):
    a msgpack array header followed by the parts is the same bytes as packing the list."""
    count = len(parts)
    header = bytes([0x90 | count]) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return header + b"".join(parts)


def encode_one(message: Message) -> bytes:
    """One message's bytes, to budget piggybacked gossip against the datagram size.

    Messages are lists of integers, booleans, strings and bytes (no maps), so plain
    msgpack is already ``codec.pack``'s canonical form; this is the hot path of gossip."""
    return msgpack.packb(message.encode(), use_bin_type=True)


def decode_messages(plaintext: bytes) -> tuple[list[Message], list[MessageError]]:
    """All usable messages of a datagram plus one error per unusable one.

    Raises MessageError only when the datagram as a whole is not a list of messages.
    """
    try:
        items = codec.unpack(plaintext)
    except DecodeError as exc:
        raise MessageError(f"datagram does not parse: {exc}") from exc
    if not isinstance(items, list) or len(items) > MAX_MESSAGES:
        raise MessageError("datagram is not a list of messages")
    messages: list[Message] = []
    errors: list[MessageError] = []
    for item in items:
        if not isinstance(item, list) or not item or not isinstance(item[0], int):
            errors.append(MessageError("message is not a typed list"))
            continue
        decode = _DECODERS.get(item[0])
        if decode is None:
            errors.append(MessageError(f"unknown message type {item[0]}", "unknown_type"))
            continue
        if len(item) - 1 != _ARITY[item[0]]:
            errors.append(MessageError(f"message type {item[0]} has {len(item) - 1} fields"))
            continue
        try:
            messages.append(decode(item))
        except MessageError as exc:
            errors.append(exc)
    return messages, errors
