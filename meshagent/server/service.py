"""The web service's core: leaders, inventory, the per-node command queue, results.

Transport-free: ``ws.py`` feeds it leader sessions and messages, ``api.py`` the console's
submissions; both only translate. Everything here stores before it acknowledges.

Delivery (exactly once, with the agents' help):

* A command is queued per target node (``NewCommand``) after ``check_submission``.
* It is handed to the mesh's current leader when its target is deliverable (alive or
  suspect in the leader's inventory): at once if so, else when an inventory update
  shows the node back. It is marked ``sent`` under the leader's term in the same
  transaction that selects it, so one session never gets it twice.
* When a leader session starts (a reconnect, a new leader after failover, a restart of
  this service), every ``sent`` command of the mesh without a result goes back to
  ``queued`` and is delivered again: the previous leader may have lost it. Agents run an
  id at most once (``SeenCommands``), and the first result stored wins, so a re-delivery
  can never run a command twice nor overwrite its result.
* A leader's ``nack`` (target unreachable from the mesh) re-queues just that command. It
  goes out again when an inventory update shows the node back, or, while the leader
  still reports the node deliverable (alive but not routable yet: its sessions are
  forming), after ``nack_retry_min_s``, doubling per nack up to ``nack_retry_max_s``.
* Expired commands never leave the queue (``expire_due`` runs every second).

Root-signed documents (``trustdocs``: revocation list, allowlist), per mesh: adopted from
admins (REST) or leaders when newer, stored before they are adopted, audited, and sent to
the mesh's leader (at once, and on every connect), which spreads them through the mesh.
The revocation list also applies here: to leader logins, records and submissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshagent.commands import (
    CommandRejected,
    CommandResult,
    OperatorCertificate,
    OperatorKey,
    ResultError,
    SignedCommand,
    Target,
    sign_command,
)
from meshagent.errors import MeshError
from meshagent.identity import MeshTrust, RevocationList, node_id_of
from meshagent.log import get_logger
from meshagent.record import RecordError
from meshagent.server.batching import GroupCommit
from meshagent.server.db import (
    DELIVERABLE_STATES,
    AuditEntry,
    CommandRow,
    Database,
    InventoryReport,
    LeaderClaim,
    NewCommand,
    NodeFilter,
    NodeUpdate,
    ResultRow,
)
from meshagent.server.events import EventFeed
from meshagent.server.records import MeshRecords, display_value
from meshagent.server.submission import CheckedCommand, check_submission
from meshagent.signing import Signed
from meshagent.trustdocs import REVOCATIONS, TrustDocuments

__all__ = ["ConsoleSigner", "LeaderSession", "MeshConfig", "MeshService", "NoMatchingNode",
           "ResultItem", "ServiceError"]

log = get_logger(__name__)

EXPIRY_INTERVAL_S = 1.0
# A nacked command is offered again after this long (doubling per nack of the same node,
# up to the maximum) if no inventory update shows its node back first: a leader nacks a
# target it found no route to within its grace (relay.RelaySettings.no_route_grace_s,
# 12 s), which an alive member may still be in while its sessions form. Without the
# retry such a command waited for the node's next change of state, however long.
NACK_RETRY_MIN_S = 15.0
NACK_RETRY_MAX_S = 300.0
DISPATCH_BATCH = 500


class ServiceError(MeshError):
    """A request the service refuses; the message says why."""


class NoMatchingNode(ServiceError):
    """A command's target selects no node the service knows."""


class LeaderSession(Protocol):
    """One authenticated leader connection (implemented by ``ws.LeaderConnection``)."""

    mesh_id: bytes
    node_id: bytes
    term: int

    async def send_commands(self, commands: Sequence[CommandRow]) -> None: ...

    async def close_superseded(self, term: int) -> None: ...

    async def close_revoked(self) -> None: ...

    async def send_document(self, kind: str, wire: bytes) -> None: ...


@dataclass(frozen=True)
class MeshConfig:
    """A mesh this service serves, and the console's operator certificate for it."""

    trust: MeshTrust
    name: str
    console_cert: OperatorCertificate | None = None


@dataclass(frozen=True)
class ResultItem:
    command_id: bytes
    node_id: bytes
    wire: bytes


@dataclass
class ConsoleSigner:
    """The console operator key: signs commands that logged-in admins issue from the
    web page (the browser holds no key). Its certificate per mesh comes from the root
    like any operator's, so agents check console commands exactly like others."""

    key: OperatorKey
    certs: dict[bytes, OperatorCertificate] = field(default_factory=dict)

    def sign(self, mesh_id: bytes, target: Target, action: str, args: Mapping[str, Any],
             ttl: float) -> SignedCommand:
        cert = self.certs.get(mesh_id)
        if cert is None:
            raise ServiceError(f"the console has no operator certificate for mesh "
                               f"{mesh_id.hex()}; see `meshagent server add-mesh --console-cert`")
        return sign_command(self.key, cert, target, action, args, ttl)


@dataclass
class _NackRetry:
    """When a nacked node's commands are next offered (None: offered, no nack since),
    and the wait that took, which the next nack doubles."""

    due: float | None
    wait: float


@dataclass
class _Attached:
    session: LeaderSession
    states: dict[bytes, str]
    retries: dict[bytes, _NackRetry] = field(default_factory=dict)


class MeshService:
    def __init__(self, db: Database, meshes: Iterable[MeshConfig], *,
                 events: EventFeed | None = None, console: ConsoleSigner | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.meshes = {m.trust.mesh_id: m for m in meshes}
        # The newest root-signed documents per mesh, adopted from leaders or admins.
        self.documents = {mesh_id: TrustDocuments(m.trust) for mesh_id, m in self.meshes.items()}
        self.events = events or EventFeed()
        self.console = console
        self.clock = clock
        self.records = MeshRecords()
        self._inventory: GroupCommit[InventoryReport] = GroupCommit(self.db.apply_inventory)
        self._attached: dict[bytes, _Attached] = {}
        self._mesh_locks: dict[bytes, asyncio.Lock] = {}
        self._expiry_task: asyncio.Task[None] | None = None
        self.nack_retry_min_s = NACK_RETRY_MIN_S
        self.nack_retry_max_s = NACK_RETRY_MAX_S

    @property
    def revocations(self) -> dict[bytes, RevocationList]:
        """The newest revocation list per mesh (nodes and operators) held."""
        return {mesh_id: documents.current(REVOCATIONS)
                for mesh_id, documents in self.documents.items()
                if documents.current(REVOCATIONS) is not None}

    @property
    def trusts(self) -> dict[bytes, MeshTrust]:
        return {mesh_id: m.trust for mesh_id, m in self.meshes.items()}

    def _lock(self, mesh_id: bytes) -> asyncio.Lock:
        return self._mesh_locks.setdefault(mesh_id, asyncio.Lock())

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        now = self.clock()
        for mesh in self.meshes.values():
            await self.db.add_mesh(mesh.trust.mesh_id, mesh.trust.root_public, mesh.name, now)
        for mesh_id, kind, wire in await self.db.documents():
            documents = self.documents.get(mesh_id)
            if documents is not None:
                try:
                    documents.offer(kind, wire, "database")
                except MeshError as exc:  # stored by us after verifying: log, do not stop
                    log.error("stored_document_invalid", mesh=mesh_id.hex(), kind=kind,
                              error=str(exc))
        self._expiry_task = asyncio.create_task(self._expire_forever(), name="expire-commands")

    async def stop(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task

    async def _expire_forever(self) -> None:
        while True:
            try:
                await self.expire_due()
                await self.retry_nacked()
            except MeshError as exc:  # database down: try again next tick
                log.warn_limited("expiry_failed", error=str(exc))
            await asyncio.sleep(EXPIRY_INTERVAL_S)

    async def expire_due(self) -> int:
        now = self.clock()
        expired = await self.db.expire_due(now)
        for row in expired:
            await self.db.audit("service", "command_expired", row.command_id,
                                {"node": row.node_id.hex(), "was": "queued" if row.sent_at is
                                 None else "sent", "expires": row.expires}, now)
        if expired:
            self.events.publish("commands", "audit")
        return len(expired)

    # --- root-signed documents -------------------------------------------------------

    async def adopt_document(self, mesh_id: bytes, kind: str, wire: bytes, actor: str) -> bool:
        """Keep a root-signed document (``trustdocs`` kind) if newer than the one held:
        stored, audited (``<kind>_adopted``), sent to the mesh's leader; True if so, False
        if that version is held. ``trustdocs.TrustDocumentError`` subclasses otherwise
        (StaleDocument for an older version). A revocation list that revokes the mesh's
        leader disconnects it instead."""
        documents = self.documents.get(mesh_id)
        if documents is None:
            raise ServiceError(f"mesh {mesh_id.hex()} is not served here")
        document = documents.check(kind, wire, actor)
        if document is None:
            return False
        await self.db.set_document(mesh_id, kind, document.version, wire)
        if not documents.adopt(kind, document, actor):
            return False
        detail: dict[str, Any] = {"mesh": mesh_id.hex(), "version": document.version}
        if isinstance(document, RevocationList):
            detail |= {"nodes": len(document.node_ids), "serials": len(document.serials)}
        await self.db.audit(actor, f"{kind}_adopted", None, detail, self.clock())
        self.events.publish("audit", "meshes")
        attached = self._attached.get(mesh_id)
        if attached is None:
            return True  # the next leader gets it on connect (``held_documents``)
        if isinstance(document, RevocationList) and attached.session.node_id in \
                document.node_ids:
            await attached.session.close_revoked()
        else:
            await attached.session.send_document(kind, wire)
        return True

    async def adopt_revocations(self, mesh_id: bytes, wire: bytes, actor: str) -> bool:
        return await self.adopt_document(mesh_id, REVOCATIONS, wire, actor)

    def held_documents(self, mesh_id: bytes) -> dict[str, bytes]:
        """Every root-signed document held for the mesh, by kind (sent to each leader)."""
        documents = self.documents.get(mesh_id)
        return documents.wires() if documents is not None else {}

    # --- leaders --------------------------------------------------------------------

    def leader_of(self, mesh_id: bytes) -> LeaderSession | None:
        attached = self._attached.get(mesh_id)
        return attached.session if attached else None

    async def attach_leader(self, session: LeaderSession) -> LeaderClaim:
        """Fence and register an authenticated leader; refused if its term is stale.

        On acceptance a previous session of the mesh is closed as superseded and the
        commands it may have lost are re-queued. They are sent once the leader's first
        full inventory has been stored (``apply_inventory``), so that target states are
        current and results the leader spooled while disconnected are in first."""
        async with self._lock(session.mesh_id):
            now = self.clock()
            claim = await self.db.claim_leadership(session.mesh_id, session.node_id,
                                                   session.term, now)
            detail = {"node": session.node_id.hex(), "term": session.term,
                      "holder": claim.holder.node_id.hex(), "holder_term": claim.holder.term}
            if not claim.accepted:
                await self.db.audit(f"leader:{session.node_id.hex()}", "leader_refused", None,
                                    detail, now)
                self.events.publish("audit")
                return claim
            previous = self._attached.get(session.mesh_id)
            states = await self.db.node_states(session.mesh_id)
            self._attached[session.mesh_id] = _Attached(session, states)
            if previous is not None and previous.session is not session:
                await previous.session.close_superseded(session.term)
            requeued = await self.db.requeue(session.mesh_id)
            await self.db.audit(f"leader:{session.node_id.hex()}", "leader_connected", None,
                                {**detail, "requeued": requeued}, now)
        self.events.publish("leaders", "audit", "commands")
        return claim

    async def detach_leader(self, session: LeaderSession) -> None:
        """The session ended; its sent commands are re-queued when a leader next attaches."""
        async with self._lock(session.mesh_id):
            attached = self._attached.get(session.mesh_id)
            if attached is None or attached.session is not session:
                return  # superseded: the newer session owns the mesh
            del self._attached[session.mesh_id]
            await self.db.leader_disconnected(session.mesh_id, session.node_id, session.term,
                                              self.clock())
        self.events.publish("leaders")

    def _current(self, session: LeaderSession) -> _Attached:
        attached = self._attached.get(session.mesh_id)
        if attached is None or attached.session is not session:
            raise ServiceError("leader session is no longer the mesh's uplink")
        return attached

    # --- inventory ------------------------------------------------------------------

    async def apply_inventory(self, session: LeaderSession, full: bool,
                              nodes: Sequence[tuple[bytes, str, float, bytes | None]]) -> int:
        """Store (node id, state, last seen, record wire|None) reports; returns how many
        were refused (bad record: that node's update is skipped, the rest stored)."""
        attached = self._current(session)
        trust = self.meshes[session.mesh_id].trust
        updates, refused = [], 0
        for node_id, state, seen, record in nodes:
            summary = None
            if record is not None:
                try:
                    summary = self.records.summary(record, node_id, trust,
                                                   self.revocations.get(session.mesh_id))
                except RecordError as exc:
                    refused += 1
                    log.warn_limited("record_rejected", key=session.node_id,
                                     leader=session.node_id.hex(), detail=str(exc))
                    continue
            updates.append(NodeUpdate(node_id, state, seen, record, summary))
        await self._inventory.submit(InventoryReport(session.mesh_id, session.node_id,
                                                     updates, full))
        if full:
            attached.states = {n: "unreported" for n in attached.states}
            attached.retries.clear()  # everything deliverable is offered below
        back = [u.node_id for u in updates if u.state in DELIVERABLE_STATES
                and attached.states.get(u.node_id) not in DELIVERABLE_STATES]
        for node_id in back:
            attached.retries.pop(node_id, None)
        for update in updates:
            attached.states[update.node_id] = update.state
        self.events.publish("nodes")
        if full:  # the start of a session, or a resync: states are current now
            await self.dispatch(session.mesh_id)
        elif back:
            await self.dispatch(session.mesh_id, back)
        return refused

    # --- commands -------------------------------------------------------------------

    async def dispatch(self, mesh_id: bytes, node_ids: Sequence[bytes] | None = None) -> int:
        """Send the mesh's leader every deliverable queued command (for ``node_ids``)."""
        sent = 0
        while (attached := self._attached.get(mesh_id)) is not None:
            session = attached.session
            batch = await self.db.take_deliverable(mesh_id, session.term, self.clock(),
                                                   node_ids, DISPATCH_BATCH)
            if not batch:
                break
            await session.send_commands(batch)
            sent += len(batch)
            if len(batch) < DISPATCH_BATCH:
                break
        if sent:
            self.events.publish("commands")
        return sent

    async def submit(self, wire: bytes, actor: str) -> tuple[CheckedCommand, list[bytes]]:
        """Check, audit and queue a signed command; returns it and its target node ids.

        Refusals raise (CommandRejected subclasses, NoMatchingNode, DuplicateCommand) after
        an audit entry naming the command where it could be parsed."""
        now = self.clock()
        try:
            checked = check_submission(wire, self.trusts, now, self.revocations)
            targets = await self._targets(checked)
        except (CommandRejected, NoMatchingNode) as exc:
            reason = getattr(exc, "reason", "no_matching_node")
            command_id = getattr(exc, "command_id", None)
            await self.db.audit(actor, "command_refused", command_id,
                                {"reason": reason, "detail": str(exc)}, now)
            self.events.publish("audit")
            log.warn_limited("command_refused", key=(actor, reason), actor=actor, reason=reason,
                             detail=str(exc))
            raise
        envelope = checked.envelope
        await self.db.enqueue(
            [NewCommand(envelope.id, envelope.mesh_id, node, wire, envelope.action,
                        envelope.issuer, now, envelope.expires) for node in targets],
            AuditEntry(actor, "command_submitted", envelope.id,
                       {"action": envelope.action, "operator": checked.operator.name,
                        "target": envelope.target.describe(), "nodes": len(targets),
                        "expires": envelope.expires}, now))
        self.events.publish("commands", "audit")
        await self.dispatch(envelope.mesh_id, targets)
        return checked, targets

    async def submit_console(self, mesh_id: bytes, target: Target, action: str,
                             args: Mapping[str, Any], ttl: float, actor: str
                             ) -> tuple[CheckedCommand, list[bytes]]:
        """Sign with the console operator key for a logged-in admin, then ``submit``."""
        if self.console is None:
            raise ServiceError("no console operator key is configured")
        try:
            signed = self.console.sign(mesh_id, target, action, args, ttl)
        except MeshError as exc:
            raise ServiceError(str(exc)) from exc
        return await self.submit(signed.to_wire(), actor)

    async def _targets(self, checked: CheckedCommand) -> list[bytes]:
        """Per-node queue entries: listed node ids as given (an unknown node gets its
        command when it first appears); a tag or everyone selector is resolved against
        the nodes known now."""
        target = checked.envelope.target
        if target.nodes:
            return sorted(target.nodes)
        known = await self.db.nodes(NodeFilter(mesh_id=checked.envelope.mesh_id,
                                               limit=1_000_000))
        chosen = [n.node_id for n in known
                  if target.matches(n.node_id, n.summary.get("tags") or {})]
        if not chosen:
            raise NoMatchingNode(f"target {target.describe()} selects no known node")
        return chosen

    async def requeue_unreachable(self, session: LeaderSession,
                                  keys: Sequence[tuple[bytes, bytes]], reason: str) -> None:
        attached = self._current(session)
        count = await self.db.requeue(session.mesh_id, keys)
        now = self.clock()
        for command_id, node_id in keys:
            attached.states[node_id] = "unreachable"
            retry = attached.retries.get(node_id)
            if retry is None or retry.due is None:  # a pending retry covers this nack too
                wait = self.nack_retry_min_s if retry is None else min(
                    self.nack_retry_max_s, 2 * retry.wait)
                attached.retries[node_id] = _NackRetry(now + wait, wait)
            await self.db.audit(f"leader:{session.node_id.hex()}", "command_requeued",
                                command_id, {"node": node_id.hex(), "reason": reason},
                                self.clock())
        if count:
            self.events.publish("commands", "audit")

    async def retry_nacked(self) -> int:
        """Offer again the nacked commands whose retry is due (see ``NACK_RETRY_MIN_S``);
        ``take_deliverable`` sends them only if the node is still deliverable as the
        leader last reported it. Returns how many were sent."""
        now, sent = self.clock(), 0
        for mesh_id, attached in list(self._attached.items()):
            due = [node_id for node_id, retry in attached.retries.items()
                   if retry.due is not None and retry.due <= now]
            if not due:
                continue
            for node_id in due:
                attached.retries[node_id].due = None
            try:
                count = await self.dispatch(mesh_id, due)
            except MeshError:  # database down: offer them at the next tick instead
                for node_id in due:
                    retry = attached.retries.get(node_id)
                    if retry is not None and retry.due is None:
                        retry.due = now
                raise
            if count:
                log.event("nacked_commands_retried", mesh=mesh_id.hex(), nodes=len(due),
                          commands=count)
            sent += count
        return sent

    # --- results --------------------------------------------------------------------

    async def store_results(self, session: LeaderSession,
                            items: Sequence[ResultItem]) -> list[ResultItem]:
        """Verify and store results; returns the items the leader may forget (stored now,
        stored before, or refused for good). Raises DatabaseUnavailable before acking."""
        self._current(session)
        now = self.clock()
        rows, refused = [], []
        for item in items:
            try:
                rows.append(self._verified_result(item, now))
            except ResultError as exc:
                refused.append(item)
                await self.db.audit(f"leader:{session.node_id.hex()}", "result_refused",
                                    item.command_id, {"node": item.node_id.hex(),
                                                      "detail": str(exc)}, now)
        await self.db.store_results(rows)
        self.events.publish("results", "commands", "audit")
        return list(items)

    def _verified_result(self, item: ResultItem, now: float) -> ResultRow:
        try:
            signed = Signed.from_wire(item.wire)
        except MeshError as exc:
            raise ResultError(f"result does not parse: {exc}") from exc
        if node_id_of(signed.signer) != item.node_id:
            raise ResultError("result is not signed by the node it is filed under")
        result = CommandResult.verify(signed, _NodeKey(item.node_id, signed.signer))
        if result.command_id != item.command_id:
            raise ResultError("result names another command than it is filed under")
        summary = {"status": result.status.value, "output": display_value(result.output),
                   "started": result.started, "finished": result.finished}
        return ResultRow(item.command_id, item.node_id, item.wire, summary, now)


@dataclass(frozen=True)
class _NodeKey:
    node_id: bytes
    sign_public: bytes

