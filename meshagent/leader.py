"""Leadership on one agent: the election, the command relay, and the leader's uplink.

``Leadership`` is what the agent composes (see ``agent.py``): on every node it runs the
``Election`` and the node side of the relay (``NodeRelay``: admit, run once, answer);
when a web service is configured (``[server] url`` and ``pin``) the node is a candidate,
and ``LeaderRole`` follows the election:

    election says "I lead at term T" --> Uplink(term T) + LeaderRelay   (started)
    term changes / another node leads --> both stopped (the service re-sends what was
                                          unanswered to the next leader)
    the service refuses the term       --> Election.fenced() picks a higher term; the
                                          uplink reconnects with it after the back-off
    no connection for reach_timeout_s  --> Election.report_reach(False): step down if a
                                          healthy candidate exists

While it leads, the node reports the inventory: every member's state, last-seen time and
signed record, in full on each connect (``Uplink.full_inventory``) and as deltas when
membership changes, so the service knows when an offline target is back.

The policy follows the mesh's root-signed documents (``membership.documents``, see
``trustdocs``): a newer allowlist goes through ``CommandPolicy.update_allowlist``, a newer
revocation list becomes ``policy.revocations``, whichever carrier brought them. While it
leads, the node exchanges those documents with the web service: the service's newer ones
are adopted (and so spread through the mesh), the mesh's are reported.

Files in the node directory: ``seen-commands.db`` (command ids claimed, results),
``allowlist`` (the root-signed allowlist this node holds, kept by ``trustdocs``; without
it every command is refused as ``not_allowlisted``), ``election.term`` (highest term
seen), ``uplink-spool/`` (results not yet acknowledged by the service).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from meshagent.amtbridge import inventory_record
from meshagent.commands import (
    ActionContext,
    CommandExecutor,
    CommandPolicy,
    PowerControl,
    SeenCommands,
    TagStore,
)
from meshagent.commands.actions.wake import AmtPower
from meshagent.config import ServerConfig
from meshagent.election import Election, ElectionSettings, LeaderView, TermStore
from meshagent.errors import ConfigError
from meshagent.identity import NodeCredentials, RevocationList
from meshagent.log import get_logger
from meshagent.membership import Member, Membership, MemberState
from meshagent.relay import LeaderRelay, NodeRelay, RelayChannel, RelaySettings
from meshagent.routing import Router
from meshagent.server.tls import pin_from_text
from meshagent.trustdocs import ALLOWLIST, DOCUMENT_KINDS, REVOCATIONS, TrustDocument

# The uplink (aiohttp's client, about 10 MiB resident) loads only where this node may lead:
# LeaderRole imports it, and LeaderRole exists only with a [server] section.
if TYPE_CHECKING:
    from meshagent.uplink import NodeReport, Uplink

__all__ = ["Leadership", "LeaderRole", "UplinkTarget", "SEEN_FILE", "ALLOWLIST_FILE",
           "TERM_FILE", "SPOOL_DIR"]

log = get_logger(__name__)

SEEN_FILE = "seen-commands.db"
ALLOWLIST_FILE = DOCUMENT_KINDS[ALLOWLIST].file_name
TERM_FILE = "election.term"
SPOOL_DIR = "uplink-spool"
_REACH_POLL_S = 0.5


@dataclass(frozen=True)
class UplinkTarget:
    """The web service a leader connects to, and how patiently."""

    url: str
    pin: bytes
    spool_dir: Path
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    reach_timeout_s: float = 15.0

    @classmethod
    def from_config(cls, server: ServerConfig, state_dir: Path) -> UplinkTarget | None:
        """None when this node may not lead; ConfigError for a half-made configuration."""
        if not server.url or not server.lead:
            return None
        if not server.url.startswith(("wss://", "ws://")):
            raise ConfigError(f"server.url: {server.url!r} is not a ws:// or wss:// URL")
        if not server.pin:
            raise ConfigError("server.pin: required with server.url (the service's "
                              "certificate SHA-256)")
        try:
            pin = pin_from_text(server.pin)
        except ConfigError as exc:
            raise ConfigError(f"server.pin: {exc}") from None
        return cls(server.url, pin, state_dir / SPOOL_DIR)


def _uplink() -> ModuleType:
    """``meshagent.uplink``, imported on first use (see the note at the imports)."""
    import meshagent.uplink

    return meshagent.uplink


def node_report(member: Member) -> NodeReport:
    """One member as the service's inventory wants it."""
    seen = time.time() if member.is_self else (member.last_seen or member.state_since)
    # A sleeping member's record as read (and verified) from its AMT, when there is one.
    record = inventory_record(member) or member.record.wire
    return _uplink().NodeReport(member.node_id, member.state.value, seen, record)


class LeaderRole:
    """The uplink and the leader side of the relay, running exactly while we lead."""

    def __init__(self, election: Election, membership: Membership, channel: RelayChannel,
                 credentials: NodeCredentials, target: UplinkTarget,
                 relay_settings: RelaySettings | None = None) -> None:
        self.election = election
        self.membership = membership
        self.channel = channel
        self.credentials = credentials
        self.target = target
        self.relay_settings = relay_settings or RelaySettings()
        self.uplink: Uplink | None = None
        self.relay: LeaderRelay | None = None
        self._uplink_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._not_before = 0.0
        self._changed: dict[bytes, Member] = {}
        self._flush: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None

    async def start(self) -> None:
        self.target.spool_dir.mkdir(parents=True, exist_ok=True)
        self.election.on_change(lambda _leader: self._wake.set())
        self._unsubscribe = self.membership.on_change(self._member_changed)
        self._task = asyncio.create_task(self._follow(), name="leader-role")
        self._wake.set()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stop_leading()

    def status(self) -> dict[str, Any]:
        uplink = self.uplink
        return {"url": self.target.url, "leading": uplink is not None,
                "term": uplink.term if uplink else None,
                "connected": bool(uplink and uplink.connected.is_set()),
                "connects": uplink.connects if uplink else 0,
                "results_spooled": len(_uplink().ResultSpool(self.target.spool_dir)),
                "relay": dict(self.relay.counters) if self.relay else None,
                "pending": len(self.relay.pending) if self.relay else 0}

    # --- following the election ------------------------------------------------------

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted = self.election.term if self.election.is_leader else 0
            current = self.uplink.term if self.uplink is not None else 0
            if wanted == current:
                continue
            await self._stop_leading()
            if not wanted:
                continue
            delay = self._not_before - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                self._wake.set()  # decide again with what is true now
                continue
            await self._start_leading(wanted)

    async def _start_leading(self, term: int) -> None:
        credentials = self.credentials
        # Membership holds our current certificate (a renewal replaces it while we run).
        certificate = self.membership.certificate
        relay = LeaderRelay(self.channel, _UplinkSink(self), self._reachable, self._signer_of,
                            self.relay_settings)
        api = _uplink()
        uplink = api.Uplink(self.target.url, self.target.pin, credentials.identity,
                            certificate, term,
                            api.ResultSpool(self.target.spool_dir),
                            relay.deliver, self._full_inventory,
                            documents=self.membership.documents,
                            backoff_min_s=self.target.backoff_min_s,
                            backoff_max_s=self.target.backoff_max_s)
        self.relay, self.uplink = relay, uplink
        await relay.start()
        self._uplink_task = asyncio.create_task(self._run_uplink(uplink), name="uplink")
        self._watch_task = asyncio.create_task(self._watch_reach(uplink), name="uplink-reach")
        log.event("leader_uplink_started", term=term, url=self.target.url)

    async def _stop_leading(self) -> None:
        uplink, relay = self.uplink, self.relay
        self.uplink = self.relay = None
        for task in (self._watch_task, self._uplink_task):
            if task is not None:
                task.cancel()
        if uplink is not None:
            await uplink.stop()
        for task in (self._watch_task, self._uplink_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch_task = self._uplink_task = None
        if relay is not None:
            await relay.stop()
        if uplink is not None:
            log.event("leader_uplink_stopped", term=uplink.term)

    async def _run_uplink(self, uplink: Uplink) -> None:
        refused_error = _uplink().UplinkRefused
        try:
            await uplink.run()
        except refused_error as refused:
            delay = self.election.fenced()
            self._not_before = asyncio.get_running_loop().time() + delay
            log.warning("leader_fenced", term=uplink.term, code=refused.code,
                        reason=refused.reason, next_term=self.election.term,
                        retry_s=round(delay, 3))
            self._wake.set()

    async def _watch_reach(self, uplink: Uplink) -> None:
        """Tell the election whether the service can be reached (see ``report_reach``)."""
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        reported: bool | None = None
        while True:
            now = loop.time()
            if uplink.connected.is_set():
                last_ok = now
                if reported is not True:
                    self.election.report_reach(True)
                    reported = True
            elif now - last_ok >= self.target.reach_timeout_s and reported is not False:
                self.election.report_reach(False)
                reported = False
            await asyncio.sleep(_REACH_POLL_S)

    # --- inventory and relay helpers ---------------------------------------------------

    def _full_inventory(self) -> Sequence[NodeReport]:
        self._changed.clear()
        return [node_report(member) for member in self.membership.members()]

    def _member_changed(self, member: Member, old: MemberState | None,
                        new: MemberState) -> None:
        if self.uplink is None:
            return
        self._changed[member.node_id] = member
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._report_changes())

    async def _report_changes(self) -> None:
        await asyncio.sleep(0)  # coalesce the changes of one event-loop turn
        changed, self._changed = self._changed, {}
        uplink = self.uplink
        if uplink is not None and changed:
            await uplink.report([node_report(m) for m in changed.values()])

    def _reachable(self, node_id: bytes) -> bool:
        member = self.membership.member(node_id)
        return member is not None and (member.is_self or member.state.probed)

    def _signer_of(self, node_id: bytes) -> bytes | None:
        member = self.membership.member(node_id)
        return member.record.cert.sign_public if member is not None else None


class _UplinkSink:
    """The relay's view of the current uplink (results spooled, nacks sent)."""

    def __init__(self, role: LeaderRole) -> None:
        self.role = role

    async def send_result(self, command_id: bytes, node_id: bytes, wire: bytes) -> None:
        uplink = self.role.uplink
        if uplink is None:
            raise ConnectionError("no longer leading")
        await uplink.send_result(command_id, node_id, wire)

    async def nack(self, command_id: bytes, node_id: bytes, reason: str) -> None:
        uplink = self.role.uplink
        if uplink is None:
            raise ConnectionError("no longer leading")
        await uplink.nack(command_id, node_id, reason)


class Leadership:
    """Election + relay (+ the leader role when a web service is configured) of one agent.

    Start after membership and routing are running; stop before them."""

    def __init__(self, membership: Membership, router: Router, credentials: NodeCredentials,
                 state_dir: Path, server: ServerConfig, tags: TagStore, *,
                 election_settings: ElectionSettings | None = None,
                 relay_settings: RelaySettings | None = None,
                 power: PowerControl | None = None, amt: AmtPower | None = None) -> None:
        self.membership = membership
        self.credentials = credentials
        self.target = UplinkTarget.from_config(server, state_dir)
        settings = election_settings or ElectionSettings(
            eligible=self.target is not None, preference=server.preference)
        self.election = Election(membership, settings, store=TermStore(state_dir / TERM_FILE))
        node_id = credentials.identity.node_id
        self.seen = SeenCommands(state_dir / SEEN_FILE)
        documents = membership.documents
        if documents.current(ALLOWLIST) is None:
            log.warning("no_allowlist", path=str(state_dir / ALLOWLIST_FILE),
                        detail="every command is refused as not_allowlisted until the "
                               "mesh's allowlist arrives")
        self.policy = CommandPolicy(credentials.trust, node_id, self.seen,
                                    allowlist=documents.current(ALLOWLIST),
                                    revocations=membership.revocations, tags=tags.current)
        documents.on_adopted(self._document_adopted)
        context = ActionContext(node_id, lambda: self.policy.allowlist,
                                power or PowerControl(), tags, amt=amt)
        self.executor = CommandExecutor(credentials.identity.sign_key, node_id, self.seen,
                                        context)
        self.channel = RelayChannel(router)
        self.node_relay = NodeRelay(self.channel, self.policy, self.executor,
                                    self._leader_id, relay_settings)
        self.role = LeaderRole(self.election, membership, self.channel, credentials,
                               self.target, relay_settings) if self.target else None

    def _document_adopted(self, kind: str, document: TrustDocument) -> None:
        """A newer root-signed document reached this node: the policy applies it at once."""
        if kind == ALLOWLIST:
            self.policy.update_allowlist(document.to_wire())
        elif kind == REVOCATIONS and isinstance(document, RevocationList):
            self.policy.revocations = document

    def _leader_id(self) -> bytes | None:
        leader: LeaderView | None = self.election.leader
        return leader.node_id if leader is not None else None

    async def start(self) -> None:
        await self.election.start()
        await self.node_relay.start()
        if self.role is not None:
            await self.role.start()

    async def stop(self) -> None:
        if self.role is not None:
            await self.role.stop()
        await self.node_relay.stop()
        await self.election.stop()
        self.seen.close()

    def status(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The control socket's ``leader`` method."""
        return {**self.election.status(),
                "uplink": self.role.status() if self.role is not None else None,
                "relay": {**self.node_relay.counters, **self.channel.counters,
                          "outbox": len(self.node_relay.outbox)}}

