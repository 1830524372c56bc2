"""What a node reports back for a command, signed by the node (kind ``"command-result"``).

Anyone holding the node's membership certificate (already verified against the root) can
check a result: the signer must be the certificate's signing key and the result must
name the certificate's node id. Status is ``ok`` (output is the action's answer),
``error`` (the action failed; output has ``error`` and a ``code``) or ``rejected`` (the
policy refused it; output has the audit ``reason`` and ``detail``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshagent.errors import DecodeError, MeshError
from meshagent.signing import SignatureError, Signed, SigningKey, sign, verify

__all__ = ["CommandResult", "ResultStatus", "ResultError", "NodeKey", "RESULT_KIND"]

RESULT_KIND = "command-result"


class ResultError(MeshError):
    """A result that does not parse, is not signed by the node it names, or is forged."""


class NodeKey(Protocol):
    """What verifying a result needs from a (verified) membership certificate."""

    node_id: bytes
    sign_public: bytes


class ResultStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command on one node. Times are unix seconds."""

    command_id: bytes
    node_id: bytes
    status: ResultStatus
    output: Any
    started: float
    finished: float
    signed: Signed | None = field(default=None, compare=False, repr=False)

    def sign(self, key: SigningKey) -> CommandResult:
        """A copy carrying the node's signature."""
        body = {"id": self.command_id, "node": self.node_id, "status": self.status.value,
                "output": self.output, "started": self.started, "finished": self.finished}
        signed = sign(key, RESULT_KIND, body)
        return CommandResult(self.command_id, self.node_id, self.status, self.output,
                             self.started, self.finished, signed)

    def to_wire(self) -> bytes:
        if self.signed is None:
            raise ResultError("an unsigned result cannot be shipped")
        return self.signed.to_wire()

    @classmethod
    def from_signed(cls, signed: Signed) -> CommandResult:
        """Parse the body WITHOUT checking the signature."""
        try:
            body = signed.value()
            result = cls(body["id"], body["node"], ResultStatus(body["status"]), body["output"],
                         float(body["started"]), float(body["finished"]), signed)
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise ResultError(f"command result does not parse: {exc}") from exc
        if not (isinstance(result.command_id, bytes) and isinstance(result.node_id, bytes)):
            raise ResultError("command result ids have the wrong types")
        return result

    @classmethod
    def verify(cls, signed: Signed | bytes, node: NodeKey) -> CommandResult:
        """Check that ``node`` signed this result about itself; ResultError otherwise."""
        try:
            if isinstance(signed, bytes):
                signed = Signed.from_wire(signed)
            verify(signed, RESULT_KIND, node.sign_public)
        except (SignatureError, DecodeError) as exc:
            raise ResultError(f"command result not signed by node "
                              f"{node.node_id.hex()}: {exc}") from exc
        result = cls.from_signed(signed)
        if result.node_id != node.node_id:
            raise ResultError("command result names another node than its signer")
        return result
