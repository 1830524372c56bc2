"""The web service's early check of a submitted command, before it is queued.

Agents are the authority (``CommandPolicy`` on each node checks everything again,
including the allowlist, scopes, target and replay). The service refuses up front what
no agent would ever run, so forged or stale commands are not queued, relayed, or
counted as pending, and each refusal gets an audit entry naming the command:

* the bytes are a ``SignedCommand`` with a well-formed envelope (MalformedCommand);
* its mesh is registered with this service (UnknownMesh);
* the signer's authority (``check_authority``, the same check every node applies): the
  envelope's signature verifies and its issuer is its signer (ForgedCommand); the attached
  operator certificate is the mesh root's, for that key, valid now and not revoked in
  the newest revocation list the service holds (UnknownOperator, OperatorExpired,
  OperatorRevoked);
* it has not expired (CommandExpired).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshagent.commands import (
    CommandEnvelope,
    CommandExpired,
    CommandRejected,
    OperatorCertificate,
    SignedCommand,
    check_authority,
)
from meshagent.identity import MeshTrust, RevocationList

__all__ = ["CheckedCommand", "UnknownMesh", "check_submission"]


class UnknownMesh(CommandRejected):
    """The command is for a mesh this service does not serve."""

    reason = "unknown_mesh"


@dataclass(frozen=True)
class CheckedCommand:
    wire: bytes
    command: SignedCommand
    envelope: CommandEnvelope
    operator: OperatorCertificate


def check_submission(wire: bytes, trusts: Mapping[bytes, MeshTrust], now: float,
                     revocations: Mapping[bytes, RevocationList] | None = None
                     ) -> CheckedCommand:
    """The parsed command if it passes the checks above; a CommandRejected subclass
    (with ``command_id`` set once the envelope parsed) otherwise."""
    command = SignedCommand.from_wire(wire)
    envelope = command.envelope()
    try:
        trust = trusts.get(envelope.mesh_id)
        if trust is None:
            raise UnknownMesh(f"mesh {envelope.mesh_id.hex()} is not served here")
        operator = check_authority(command, envelope, trust, now,
                                   (revocations or {}).get(envelope.mesh_id))
        if now >= envelope.expires:
            raise CommandExpired(f"command expired at {envelope.expires:.0f}, now {now:.0f}")
    except CommandRejected as rejection:
        rejection.command_id = rejection.command_id or envelope.id
        raise
    return CheckedCommand(wire, command, envelope, operator)
