"""The gate every command passes on the node before it runs.

``CommandPolicy.check(signed, now)`` returns the envelope of a command this node must run,
or raises exactly one ``CommandRejected`` subclass, checking in this order (the first
failure wins, so the audit reason is deterministic):

1. ``MalformedCommand`` — not a signed command with a well-formed envelope;
2. ``ForgedCommand``    — the envelope's signature fails, or its issuer is not its signer;
3. ``UnknownOperator``  — the attached operator certificate is not this mesh root's, or
   is for another key;
4. ``OperatorRevoked`` / ``OperatorExpired`` — on the root's revocation list / outside its
   validity window;
5. ``NotAllowlisted``   — the action, or a script's SHA-256, is not on the held allowlist;
6. ``OutOfScope``       — the operator's scopes do not cover the action;
7. ``NotYetValid`` / ``CommandExpired`` — outside the command's window (± ``clock_skew_s``);
8. ``WrongTarget``      — another mesh, or a selector that does not match this node;
9. ``ReplayedCommand``  — the id is already in ``SeenCommands``.

The last step CLAIMS the id durably (see ``seen.py``): a command that passes ``check`` is
admitted exactly once, even across restarts, and the caller must hand it to the executor,
which records it done. Every rejection is logged (rate-limited per reason and issuer, since
the input may be hostile) with its audit ``reason``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from meshagent.commands.actions import BUILTIN_ACTIONS, ActionSpec
from meshagent.commands.allowlist import Allowlist, AllowlistError
from meshagent.commands.envelope import COMMAND_KIND, CommandEnvelope, SignedCommand
from meshagent.commands.operator import OperatorCertificate, operator_id_of
from meshagent.commands.rejections import (
    CommandExpired,
    CommandRejected,
    ForgedCommand,
    NotAllowlisted,
    NotYetValid,
    OutOfScope,
    ReplayedCommand,
    UnknownOperator,
    WrongTarget,
)
from meshagent.commands.seen import SeenCommands
from meshagent.errors import DecodeError
from meshagent.identity import MeshTrust, RevocationList
from meshagent.log import EventLogger
from meshagent.signing import SignatureError, Signed, verify

__all__ = ["CommandPolicy", "check_authority", "DEFAULT_CLOCK_SKEW_S"]

DEFAULT_CLOCK_SKEW_S = 30.0


def check_authority(command: SignedCommand, envelope: CommandEnvelope, trust: MeshTrust,
                    now: float, revocations: RevocationList | None = None) -> OperatorCertificate:
    """Checks 2-4 above: the envelope is signed by its issuer, whom this mesh's root
    authorised, unrevoked and unexpired. The operator's certificate, or ForgedCommand,
    UnknownOperator, OperatorRevoked, OperatorExpired.

    Shared by the node's policy and by anyone who must refuse a forged command early (the
    web service before queueing it).
    """
    try:
        verify(command.command, COMMAND_KIND)
    except (SignatureError, DecodeError) as exc:
        raise ForgedCommand(f"command signature: {exc}") from exc
    if operator_id_of(command.command.signer) != envelope.issuer:
        raise ForgedCommand("command issuer is not the key that signed it")
    cert = OperatorCertificate.verify(command.operator_cert, trust, now, revocations)
    if cert.public != command.command.signer:
        raise UnknownOperator("operator certificate is for another key")
    return cert


class CommandPolicy:
    """Decides whether this node runs a command. One per agent; not thread-safe.

    ``allowlist`` changes only through ``update_allowlist`` (verified, higher version wins);
    ``revocations`` is the mesh's verified, merged ``RevocationList``, which the agent
    assigns whenever it adopts a newer one; ``tags`` returns the node's current tags.
    """

    def __init__(self, trust: MeshTrust, node_id: bytes, seen: SeenCommands, *,
                 allowlist: Allowlist | None = None,
                 revocations: RevocationList | None = None,
                 tags: Callable[[], Mapping[str, str]] = dict,
                 actions: Mapping[str, ActionSpec] = BUILTIN_ACTIONS,
                 clock_skew_s: float = DEFAULT_CLOCK_SKEW_S) -> None:
        self.trust = trust
        self.node_id = node_id
        self.seen = seen
        self.allowlist = allowlist
        self.revocations = revocations
        self.tags = tags
        self.actions = actions
        self.clock_skew_s = clock_skew_s
        # Own logger state: the rate limit is per policy, not shared process-wide.
        self._log = EventLogger(logging.getLogger(__name__))

    def update_allowlist(self, signed: Signed | bytes) -> bool:
        """Adopt a root-signed allowlist if newer than the one held; AllowlistError if invalid."""
        try:
            candidate = Allowlist.verify(signed, self.trust)
        except AllowlistError as exc:
            self._log.warn_limited("allowlist_rejected", key="invalid", reason=exc.reason,
                                   detail=str(exc))
            raise
        if candidate.newer(self.allowlist) is not candidate:
            return False
        self.allowlist = candidate
        self._log.event("allowlist_adopted", version=candidate.version)
        return True

    def check(self, signed: SignedCommand | bytes, now: float | None = None) -> CommandEnvelope:
        """The envelope of an admitted (and now claimed) command, or CommandRejected.

        SeenStoreError (the replay store cannot be written) is not a rejection: the
        command was not admitted and may be retried once the disk recovers.
        """
        envelope: CommandEnvelope | None = None
        try:
            command = signed if isinstance(signed, SignedCommand) else \
                SignedCommand.from_wire(signed)
            envelope = command.envelope()
            self._admit(command, envelope, time.time() if now is None else now)
        except CommandRejected as rejection:
            if envelope is not None and rejection.command_id is None:
                rejection.command_id = envelope.id
            self._log.warn_limited(
                "command_rejected", key=(rejection.reason, envelope and envelope.issuer),
                reason=rejection.reason, detail=rejection.detail,
                command_id=envelope.id.hex() if envelope else "-",
                issuer=envelope.issuer.hex() if envelope else "-",
                action=envelope.action if envelope else "-")
            raise
        self._log.event("command_accepted", command_id=envelope.id.hex(),
                        issuer=envelope.issuer.hex(), action=envelope.action)
        return envelope

    def _admit(self, command: SignedCommand, envelope: CommandEnvelope, now: float) -> None:
        cert = check_authority(command, envelope, self.trust, now, self.revocations)
        if self.allowlist is None:
            raise NotAllowlisted("this node holds no allowlist")
        self.allowlist.check(envelope.action, envelope.args)

        spec = self.actions.get(envelope.action)
        if not cert.allows(envelope.action, spec.scope if spec else None):
            raise OutOfScope(f"operator {cert.name} scopes {','.join(cert.scopes)} do not "
                             f"cover {envelope.action!r}")

        if now < envelope.not_before - self.clock_skew_s:
            raise NotYetValid(f"command valid from {envelope.not_before:.0f}, now {now:.0f}")
        if now >= envelope.expires + self.clock_skew_s:
            raise CommandExpired(f"command expired at {envelope.expires:.0f}, now {now:.0f}")

        if envelope.mesh_id != self.trust.mesh_id:
            raise WrongTarget("command is for another mesh")
        if not envelope.target.matches(self.node_id, self.tags()):
            raise WrongTarget(f"target {envelope.target.describe()} does not select this node")

        if not self.seen.claim(envelope.id, envelope.expires + self.clock_skew_s, now):
            raise ReplayedCommand(f"command {envelope.id.hex()} was already seen")
