"""Why a command was refused: one typed error per check, each with a short audit code.

``CommandPolicy.check`` raises exactly one of these. ``reason`` is a stable snake_case
code meant for the audit log and for the ``rejected`` result a node sends back
(``"forged"``, ``"replayed"``...); ``str(error)`` is the human detail. ``command_id`` is
set once the envelope has been parsed, so an audit entry can name the command.
"""

from __future__ import annotations

from meshagent.errors import MeshError

__all__ = [
    "CommandRejected", "MalformedCommand", "ForgedCommand", "UnknownOperator",
    "OperatorRevoked", "OperatorExpired", "NotAllowlisted", "OutOfScope", "NotYetValid",
    "CommandExpired", "WrongTarget", "ReplayedCommand", "REJECTION_REASONS",
]


class CommandRejected(MeshError):
    """A command that must not run. ``reason`` is the audit code of the failed check."""

    reason = "rejected"

    def __init__(self, detail: str, command_id: bytes | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.command_id = command_id


class MalformedCommand(CommandRejected):
    """The bytes are not a signed command with a well-formed envelope."""

    reason = "malformed"


class ForgedCommand(CommandRejected):
    """The envelope's signature does not verify, or names an issuer other than its signer."""

    reason = "forged"


class UnknownOperator(CommandRejected):
    """The signer has no operator certificate from this mesh's root."""

    reason = "unknown_operator"


class OperatorRevoked(CommandRejected):
    """The operator's key is on the root's operator revocation list."""

    reason = "operator_revoked"


class OperatorExpired(CommandRejected):
    """The operator's certificate is outside its validity window."""

    reason = "operator_expired"


class NotAllowlisted(CommandRejected):
    """The action (or the script, by hash) is not on the mesh's signed allowlist."""

    reason = "not_allowlisted"


class OutOfScope(CommandRejected):
    """The operator's certificate does not grant a scope that covers the action."""

    reason = "out_of_scope"


class NotYetValid(CommandRejected):
    """The command's not-before time has not been reached."""

    reason = "not_yet_valid"


class CommandExpired(CommandRejected):
    """The command's expiry time has passed."""

    reason = "expired"


class WrongTarget(CommandRejected):
    """The command is for another mesh or does not select this node."""

    reason = "wrong_target"


class ReplayedCommand(CommandRejected):
    """This node has already seen (and claimed) a command with this id."""

    reason = "replayed"


REJECTION_REASONS: frozenset[str] = frozenset(
    cls.reason for cls in (MalformedCommand, ForgedCommand, UnknownOperator, OperatorRevoked,
                           OperatorExpired, NotAllowlisted, OutOfScope, NotYetValid,
                           CommandExpired, WrongTarget, ReplayedCommand))
