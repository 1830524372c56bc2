"""Signed commands: who may tell a node to do what, and the node's signed answer.

Trust chain: mesh root --signs--> ``OperatorCertificate`` (scopes, expiry) --its key
signs--> ``CommandEnvelope`` (target, action, args, window, id, nonce), shipped as a
``SignedCommand`` with the certificate attached. The root also signs the ``Allowlist``
(accepted actions, approved scripts by SHA-256) and the mesh's ``identity.RevocationList``,
which also withdraws operators by key id.

On a node: ``CommandPolicy.check`` admits a command (or raises a ``CommandRejected``
subclass with an audit ``reason``), claiming its id in ``SeenCommands``;
``CommandExecutor.execute`` runs the action and returns a node-signed ``CommandResult``
stored durably first; ``CommandInbox.receive`` joins the two (bytes in, signed result
out, re-deliveries answered with the original result). On the console: ``sign_command``;
for the root: ``authorise_operator``, ``MeshRoot.revoke(node_ids=[operator_id])``,
``build_allowlist``.
"""

from meshagent.commands.actions import BUILTIN_ACTIONS, ActionContext, ActionError, ActionSpec
from meshagent.commands.actions.power import PowerControl
from meshagent.commands.actions.tags import TagStore
from meshagent.commands.allowlist import Allowlist, AllowlistError, build_allowlist, script_hash
from meshagent.commands.envelope import CommandEnvelope, SignedCommand, Target, sign_command
from meshagent.commands.executor import CommandExecutor
from meshagent.commands.inbox import CommandInbox
from meshagent.commands.operator import (
    OperatorCertificate,
    OperatorKey,
    authorise_operator,
    operator_id_of,
)
from meshagent.commands.policy import CommandPolicy, check_authority
from meshagent.commands.rejections import (
    CommandExpired,
    CommandRejected,
    ForgedCommand,
    MalformedCommand,
    NotAllowlisted,
    NotYetValid,
    OperatorExpired,
    OperatorRevoked,
    OutOfScope,
    ReplayedCommand,
    UnknownOperator,
    WrongTarget,
)
from meshagent.commands.result import CommandResult, ResultError, ResultStatus
from meshagent.commands.seen import SeenCommands, SeenStoreError

__all__ = [
    "BUILTIN_ACTIONS", "ActionContext", "ActionError", "ActionSpec", "PowerControl", "TagStore",
    "Allowlist", "AllowlistError", "build_allowlist", "script_hash",
    "CommandEnvelope", "SignedCommand", "Target", "sign_command",
    "CommandExecutor", "CommandInbox",
    "OperatorCertificate", "OperatorKey", "authorise_operator", "operator_id_of",
    "CommandPolicy", "check_authority",
    "CommandRejected", "MalformedCommand", "ForgedCommand", "UnknownOperator",
    "OperatorRevoked", "OperatorExpired", "NotAllowlisted", "OutOfScope", "NotYetValid",
    "CommandExpired", "WrongTarget", "ReplayedCommand",
    "CommandResult", "ResultError", "ResultStatus",
    "SeenCommands", "SeenStoreError",
]
