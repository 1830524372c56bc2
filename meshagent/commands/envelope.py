"""The command envelope an operator signs, and the target selectors it may name.

A ``CommandEnvelope`` says who (``issuer``: operator id), to whom (``target``), what
(``action`` + ``args``), when (``not_before`` .. ``expires``, unix seconds) and once
(``id``: 16 random bytes, plus a random ``nonce`` so two otherwise identical commands never
share signed bytes). It also names the mesh, so an operator authorised in two meshes
cannot have a command for one replayed into the other. It is signed by the operator's key
(kind ``"command"``) and travels as a ``SignedCommand`` together with the operator's
root-signed certificate, so any agent can check the whole chain with the root key alone.

Parsing here only checks shape (``MalformedCommand``); authority, time, target and replay
are ``CommandPolicy``'s job.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshagent import codec
from meshagent.commands.operator import OPERATOR_ID_BYTES, OperatorCertificate, OperatorKey
from meshagent.commands.rejections import MalformedCommand
from meshagent.errors import ConfigError, DecodeError
from meshagent.signing import Signed, SigningKey, sign

__all__ = ["Target", "CommandEnvelope", "SignedCommand", "sign_command", "COMMAND_KIND",
           "MAX_COMMAND_LIFETIME_S", "COMMAND_ID_BYTES"]

COMMAND_KIND = "command"
COMMAND_ID_BYTES = 16
NONCE_BYTES = 16
NODE_ID_BYTES = 16
# Longest window a command may be valid for; seen ids are kept until expiry, so this
# also bounds how long the replay store remembers one.
MAX_COMMAND_LIFETIME_S = 30 * 24 * 3600.0
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MAX_TARGET_NODES = 100_000
_MAX_TAG_TEXT = 256


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("times must be numbers of seconds")
    return float(value)


@dataclass(frozen=True)
class Target:
    """Which nodes a command is for: every node, a list of node ids, or all tag pairs given.

    Exactly one selector is set. ``tags`` matches a node whose tags contain every
    key/value pair listed (AND).
    """

    everyone: bool = False
    nodes: frozenset[bytes] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def all(cls) -> Target:
        return cls(everyone=True)

    @classmethod
    def node(cls, *node_ids: bytes) -> Target:
        return cls(nodes=frozenset(node_ids))

    @classmethod
    def tagged(cls, tags: Mapping[str, str]) -> Target:
        return cls(tags=dict(tags))

    def matches(self, node_id: bytes, node_tags: Mapping[str, str]) -> bool:
        if self.everyone:
            return True
        if self.nodes:
            return node_id in self.nodes
        return bool(self.tags) and all(node_tags.get(k) == v for k, v in self.tags.items())

    def to_value(self) -> dict[str, Any]:
        if self.everyone:
            return {"all": True}
        if self.nodes:
            return {"nodes": sorted(self.nodes)}
        return {"tags": dict(self.tags)}

    @classmethod
    def from_value(cls, value: Any) -> Target:
        """Parse a selector; DecodeError unless exactly one well-formed selector is given."""
        if not isinstance(value, dict) or len(value) != 1:
            raise DecodeError("target must have exactly one selector")
        if value.get("all") is True:
            return cls.all()
        nodes = value.get("nodes")
        if isinstance(nodes, list) and 0 < len(nodes) <= _MAX_TARGET_NODES:
            if all(isinstance(n, bytes) and len(n) == NODE_ID_BYTES for n in nodes):
                return cls(nodes=frozenset(nodes))
        tags = value.get("tags")
        if isinstance(tags, dict) and tags and all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= _MAX_TAG_TEXT
                and len(v) <= _MAX_TAG_TEXT for k, v in tags.items()):
            return cls(tags=dict(tags))
        raise DecodeError(f"malformed target selector {sorted(value)!r}")

    def describe(self) -> str:
        """Short text for logs and tables."""
        if self.everyone:
            return "all"
        if self.nodes:
            return ",".join(sorted(n.hex() for n in self.nodes))
        return ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))


@dataclass(frozen=True)
class CommandEnvelope:
    """What an operator signs. Times are unix seconds."""

    id: bytes
    mesh_id: bytes
    issuer: bytes
    target: Target
    action: str
    args: Mapping[str, Any]
    not_before: float
    expires: float
    nonce: bytes

    def to_value(self) -> dict[str, Any]:
        return {"id": self.id, "mesh": self.mesh_id, "issuer": self.issuer,
                "target": self.target.to_value(), "action": self.action, "args": dict(self.args),
                "nb": self.not_before, "exp": self.expires, "nonce": self.nonce}

    @classmethod
    def from_value(cls, value: Any) -> CommandEnvelope:
        """Parse a decoded body; MalformedCommand for any missing or ill-typed field."""
        if not isinstance(value, dict):
            raise MalformedCommand("command body is not a map")
        command_id = value.get("id")
        if not (isinstance(command_id, bytes) and len(command_id) == COMMAND_ID_BYTES):
            raise MalformedCommand("command id must be 16 bytes")
        try:
            envelope = cls(command_id, value["mesh"], value["issuer"],
                           Target.from_value(value["target"]), value["action"], value["args"],
                           _seconds(value["nb"]), _seconds(value["exp"]), value["nonce"])
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise MalformedCommand(f"command envelope: {exc}", command_id) from exc
        problem = envelope._shape_problem()
        if problem:
            raise MalformedCommand(f"command envelope: {problem}", command_id)
        return envelope

    def _shape_problem(self) -> str | None:
        if not (isinstance(self.mesh_id, bytes) and isinstance(self.issuer, bytes)
                and len(self.issuer) == OPERATOR_ID_BYTES):
            return "mesh or issuer has the wrong type"
        if not (isinstance(self.action, str) and _ACTION_RE.match(self.action)):
            return "action name is malformed"
        if not (isinstance(self.args, dict) and all(isinstance(k, str) for k in self.args)):
            return "args must be a map with text keys"
        if not (isinstance(self.nonce, bytes) and len(self.nonce) == NONCE_BYTES):
            return "nonce must be 16 bytes"
        if not 0 < self.expires - self.not_before <= MAX_COMMAND_LIFETIME_S:
            return "validity window is empty or longer than the maximum"
        return None

    @classmethod
    def from_signed(cls, signed: Signed) -> CommandEnvelope:
        """Parse the body WITHOUT checking the signature."""
        if signed.kind != COMMAND_KIND:
            raise MalformedCommand(f"expected a command, got a {signed.kind!r} document")
        try:
            return cls.from_value(signed.value())
        except DecodeError as exc:
            raise MalformedCommand(f"command body does not decode: {exc}") from exc


@dataclass(frozen=True)
class SignedCommand:
    """A signed envelope plus the issuing operator's root-signed certificate."""

    command: Signed
    operator_cert: Signed

    def to_wire(self) -> bytes:
        return codec.pack({"cmd": self.command.to_wire(), "op": self.operator_cert.to_wire()})

    @classmethod
    def from_wire(cls, data: bytes) -> SignedCommand:
        try:
            obj = codec.unpack(data)
            return cls(Signed.from_wire(obj["cmd"]), Signed.from_wire(obj["op"]))
        except (DecodeError, KeyError, TypeError) as exc:
            raise MalformedCommand(f"not a signed command: {exc}") from exc

    def envelope(self) -> CommandEnvelope:
        """The envelope, parsed but NOT verified (for queues and tables)."""
        return CommandEnvelope.from_signed(self.command)


def sign_command(operator_key: OperatorKey | SigningKey, operator_cert: OperatorCertificate,
                 target: Target, action: str, args: Mapping[str, Any] | None = None,
                 ttl: float = 600.0, *, now: float | None = None,
                 not_before: float | None = None) -> SignedCommand:
    """Build and sign a command as the console does. ``ttl`` counts from ``not_before``.

    ConfigError if the key is not the certificate's, or the envelope would be malformed
    (so a console never sends what every agent would refuse).
    """
    key = operator_key.key if isinstance(operator_key, OperatorKey) else operator_key
    if key.public != operator_cert.public:
        raise ConfigError("operator key does not match the operator certificate")
    try:  # the agents' parser decides what a valid selector is
        Target.from_value(target.to_value())
    except DecodeError as exc:
        raise ConfigError(f"command target: {exc}") from exc
    now = time.time() if now is None else now
    start = now if not_before is None else not_before
    envelope = CommandEnvelope(secrets.token_bytes(COMMAND_ID_BYTES), operator_cert.mesh_id,
                               operator_cert.operator_id, target, action, dict(args or {}),
                               float(start), float(start + ttl),
                               secrets.token_bytes(NONCE_BYTES))
    problem = envelope._shape_problem()
    if problem:
        raise ConfigError(f"command: {problem}")
    return SignedCommand(sign(key, COMMAND_KIND, envelope.to_value()), operator_cert.signed)

