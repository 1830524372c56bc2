"""``AmtBridge``: one agent's use of Intel AMT — its own, and its peers'.

Owner side (when the node has a local AMT: ``AmtEndpoint``, admin credentials as the
local manageability service gives them):

* at start, ``accounts.provision`` creates the policy's guest (and waker) accounts with
  fresh passwords, the 3PDS record block is prepared, the record is written (reason
  ``start``) and ``amt_present`` is set in the node record;
* each member seen alive gets an ``AmtGrant`` sealed to it (``grant.py``), re-sent until
  it acknowledges; never a member whose certificate is revoked;
* the record block is rewritten every ``record_interval_s`` and by ``prepare_for_sleep``
  (reason ``sleep``), which the host's pre-sleep notification (or the test harness) calls;
* a member leaving because it was revoked, or a newer revocation list naming a member we
  granted, rotates: new passwords on the device (the old ones stop working at once), a new
  epoch, new grants to the members still in good standing.

Peer side:

* grants received are opened (signature of the owner, then decryption) and the newest
  epoch per owner is kept;
* when membership reports a member we hold a grant for as SUSPECT or UNREACHABLE, one
  peer checks its AMT (rendezvous order over the live members: the first at once, the next
  ones ``check_stagger_s`` later each, only if nobody has settled it by then). Asleep or
  off: the 3PDS record is read and verified (``amtrecord.verify_amt_record``), the member
  is marked ASLEEP/OFF through ``Membership.mark_asleep`` with a ``SleepingNode`` as its
  ``power_record``, and a signed-record notice goes to every live member, which verifies
  the record itself before taking it. Powered on: nothing (a crashed agent stays a
  membership matter). A record that fails verification is logged and dropped; the power
  state is still used (the member is asleep) but no metadata from it is kept.
* ``wake(node_id)`` powers a member on through its AMT with the waker account.

Every talk with a device is bounded by ``probe_timeout_s`` overall; every failure is a
typed error (``amt.errors.AmtError``, ``errors.AmtBridgeError``) counted in ``counters``
and logged (rate limited when the input came from outside).

Messages (channel ``AMT_CHANNEL``, canonical msgpack lists, one frame each)::

    GRANT      [1, amt-guest grant wire]                           owner -> member
    GRANT_ACK  [2, owner id, epoch]                                member -> owner
    ASLEEP     [3, node id, "asleep"|"off", DMTF power state, amt-record wire | nil]
                                                                   checker -> members
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from amt.client import AmtClient
from amt.errors import AmtError
from amt.operations.power import PowerAction, PowerState
from meshagent import codec
from meshagent.amtbridge import accounts
from meshagent.amtbridge.amtrecord import AmtRecord, sign_amt_record, verify_amt_record
from meshagent.amtbridge.errors import (
    AmtBridgeError,
    AmtRecordError,
    GrantError,
    NoGrant,
    WakeFailed,
)
from meshagent.amtbridge.grant import AmtGrant, grant_sender, open_grant, seal_grant
from meshagent.amtbridge.policy import AmtPolicy
from meshagent.amtbridge.storage import RecordBlock, mesh_storage_app, read_record_block
from meshagent.atomicfile import write_atomically
from meshagent.errors import DecodeError
from meshagent.identity import MembershipCertificate, NodeIdentity
from meshagent.identity.files import PRIVATE_MODE
from meshagent.log import get_logger
from meshagent.membership import Member, Membership, MemberState
from meshagent.record import RecordVerifier
from meshagent.routing import FIRST_FREE_CHANNEL, Message, RoutingError
from meshagent.transport import format_address
from meshagent.trustdocs import REVOCATIONS

__all__ = ["AMT_CHANNEL", "AmtBridge", "AmtEndpoint", "BridgeSettings", "ClientFactory",
           "MessageRouter", "SleepingNode", "inventory_record"]

log = get_logger(__name__)

AMT_CHANNEL = FIRST_FREE_CHANNEL + 4
_GRANT, _GRANT_ACK, _ASLEEP = 1, 2, 3
_MAX_MESSAGE = 16 * 1024
GRANT_SUFFIX = ".grant"
PROVISION_PROBES = 4


class MessageRouter(Protocol):
    """What the bridge needs of ``meshagent.routing.Router``."""

    def on_message(self, channel: int, handler: Callable[[Message], None]) -> None: ...

    def send(self, dst: bytes, channel: int, payload: bytes) -> None: ...


ClientFactory = Callable[..., AmtClient]


@dataclass(frozen=True)
class AmtEndpoint:
    """Where this node's own AMT answers and its admin account."""

    host: str
    admin_password: str
    admin_user: str = "admin"
    port: int | None = None
    tls: bool = False
    cert_sha256: bytes = b""

    @property
    def effective_port(self) -> int:
        return self.port or (16993 if self.tls else 16992)


@dataclass(frozen=True)
class BridgeSettings:
    record_interval_s: float = 300.0    # rewrite the 3PDS record this often
    probe_timeout_s: float = 5.0        # one whole check of a peer's AMT, all requests
    request_timeout_s: float = 2.0      # one WS-Man request
    check_stagger_s: float = 1.0        # delay between the rendezvous-ordered checkers
    notice_grace_s: float = 2.0         # wait for a checker's notice before checking
    grant_retry_s: float = 2.0          # resend unacknowledged grants this often
    tick_s: float = 0.5                 # housekeeping period
    provision_retry_s: float = 30.0     # retry a failed provisioning of our own AMT


@dataclass(frozen=True)
class SleepingNode:
    """What the bridge learnt about a sleeping member; ``Member.power_record``.

    ``amt_record`` is None when the block could not be trusted (it is never kept)."""

    node_id: bytes
    state: str                  # "asleep" | "off"
    power_state: PowerState
    amt_record: AmtRecord | None
    checked_at: float
    checked_by: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "power_state": self.power_state.name.lower(),
                "checked_at": self.checked_at, "checked_by": self.checked_by.hex(),
                "amt_record": self.amt_record.to_dict() if self.amt_record else None}


def inventory_record(member: Member) -> bytes | None:
    """For the leader's inventory: the node-record wire read from a sleeping member's AMT
    (signed by that node), or None when the member is not asleep/off or none was read.
    The web service verifies it like any record the leader relays."""
    sleeping = member.power_record
    if member.state not in (MemberState.ASLEEP, MemberState.OFF) or not isinstance(
            sleeping, SleepingNode) or sleeping.amt_record is None:
        return None
    return sleeping.amt_record.record.wire


def _power_kind(state: PowerState) -> str | None:
    if state.is_asleep:
        return "asleep"
    if state.is_off:
        return "off"
    return None


class AmtBridge:
    """See the module docstring. Create, ``await start()``, ``await stop()``."""

    def __init__(self, identity: NodeIdentity, membership: Membership, router: MessageRouter,
                 *, endpoint: AmtEndpoint | None = None, policy: AmtPolicy | None = None,
                 settings: BridgeSettings | None = None, grants_dir: Path | None = None,
                 client_factory: ClientFactory = AmtClient) -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self.membership = membership
        self.router = router
        self.endpoint = endpoint
        self.policy = policy or AmtPolicy()
        self.settings = settings or BridgeSettings()
        self.grants_dir = grants_dir
        self.client_factory = client_factory
        self.app = mesh_storage_app(membership.trust.mesh_id)
        self.verifier = RecordVerifier(membership.trust)
        self.counters: Counter[str] = Counter()
        # owner side
        self.amt_present = False
        self._own: AmtGrant | None = None
        self._acked: dict[bytes, int] = {}       # member -> epoch it acknowledged
        self._grant_sent: dict[bytes, float] = {}  # member -> monotonic time of last send
        self._granted: dict[bytes, MembershipCertificate] = {}  # every member ever granted
        self._revocations_version = membership.revocations.version
        self._next_record = 0.0
        self._next_provision = 0.0
        self._provision_due = endpoint is not None  # first provisioning, or a rotation
        self._owner_lock = asyncio.Lock()
        # peer side
        self._grants: dict[bytes, AmtGrant] = {}
        self._sealed: dict[bytes, bytes] = {}   # owner -> grant wire not yet opened
        self._checks: dict[bytes, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_revocations: Callable[[], None] | None = None
        self._revoked = asyncio.Event()  # a newer revocation list was adopted
        self._loop_task: asyncio.Task[None] | None = None

    # ================================================================ lifecycle

    async def start(self) -> None:
        """Listen for grants and notices; our own AMT, if any, is provisioned next."""
        self._load_sealed_grants()
        self.router.on_message(AMT_CHANNEL, self._on_message)
        self._unsubscribe = self.membership.on_change(self._member_changed)
        self._unsubscribe_revocations = self.membership.documents.on_adopted(
            lambda _kind, _document: self._revoked.set(), REVOCATIONS)
        # Our own AMT is provisioned by the housekeeping loop at once (and retried), so a
        # slow or absent device never holds up the agent's start.
        self._loop_task = asyncio.create_task(self._housekeeping(), name="amt-bridge")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._unsubscribe_revocations is not None:
            self._unsubscribe_revocations()
            self._unsubscribe_revocations = None
        tasks = [t for t in (self._loop_task, *self._checks.values(), *self._tasks) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._checks.clear()
        self._tasks.clear()
        self._loop_task = None

    # ================================================================ owner side

    def _client(self, host: str, port: int | None, user: str, password: str, *, tls: bool,
                pin: bytes) -> AmtClient:
        return self.client_factory(host, port, user, password, tls=tls,
                                   timeout=self.settings.request_timeout_s,
                                   cert_sha256=pin or None)

    def _admin_client(self) -> AmtClient:
        assert self.endpoint is not None
        e = self.endpoint
        return self._client(e.host, e.port, e.admin_user, e.admin_password, tls=e.tls,
                            pin=e.cert_sha256)

    async def _provision(self) -> bool:
        """(Re)create our accounts with fresh passwords and start a new grant epoch."""
        assert self.endpoint is not None
        async with self._owner_lock:
            try:  # a dozen requests: bounded as a few probes
                async with asyncio.timeout(PROVISION_PROBES * self.settings.probe_timeout_s):
                    async with self._admin_client() as client:
                        passwords = await accounts.provision(client, self.policy)
                        await RecordBlock(client, self.app).prepare()
            except (AmtError, TimeoutError) as exc:
                self.counters["provision_failed"] += 1
                self._provision_due = True  # retried: a rotation must not be skipped
                self._next_provision = time.monotonic() + self.settings.provision_retry_s
                log.warning("amt_provision_failed", error=type(exc).__name__, detail=str(exc))
                return False
            e, p = self.endpoint, self.policy
            epoch = max(int(time.time() * 1000), (self._own.epoch + 1) if self._own else 0)
            self._own = AmtGrant(self.node_id, epoch, e.host, e.effective_port, e.tls,
                                 e.cert_sha256, p.guest_user, passwords[p.guest_user],
                                 p.waker_user if p.share_wake else "",
                                 passwords.get(p.waker_user, "") if p.share_wake else "")
            self._acked.clear()
            self._grant_sent.clear()
            self._provision_due = False
        log.event("amt_provisioned", epoch=epoch, wake=self.policy.share_wake)
        if not self.amt_present:
            self.amt_present = True
            self.membership.update_record(amt_present=True)
        await self.write_record("start")
        self._send_grants()
        return True

    async def rotate(self, reason: str) -> bool:
        """New passwords and a new epoch; grants go to members in good standing only."""
        if self.endpoint is None:
            return False
        self.counters["rotations"] += 1
        log.event("amt_rotating", reason=reason)
        return await self._provision()

    def _known_peers(self) -> list[tuple[bytes, str]]:
        peers = [m for m in self.membership.members()
                 if not m.is_self and m.state in (MemberState.ALIVE, MemberState.SUSPECT)]
        peers.sort(key=lambda m: -m.last_seen)
        return [(m.node_id, format_address(m.address)) for m in peers]

    async def write_record(self, reason: str = "periodic") -> bool:
        """Write our signed record and peer list into our AMT's 3PDS block."""
        if self.endpoint is None or not self.amt_present:
            return False
        wire = sign_amt_record(self.identity, self.membership.record, self._known_peers(),
                               reason)
        try:
            async with asyncio.timeout(self.settings.probe_timeout_s):
                async with self._admin_client() as client:
                    await RecordBlock(client, self.app).write(wire)
        except (AmtError, TimeoutError) as exc:
            self.counters["record_write_failed"] += 1
            log.warning("amt_record_write_failed", reason=reason, error=type(exc).__name__,
                        detail=str(exc))
            return False
        self._next_record = time.monotonic() + self.settings.record_interval_s
        self.counters["records_written"] += 1
        log.event("amt_record_written", reason=reason, bytes=len(wire))
        return True

    async def prepare_for_sleep(self) -> bool:
        """The host is about to sleep: leave the freshest record in AMT."""
        return await self.write_record("sleep")

    def _grant_targets(self) -> list[Member]:
        revocations = self.membership.revocations
        return [m for m in self.membership.members()
                if not m.is_self and m.state in (MemberState.ALIVE, MemberState.SUSPECT)
                and not revocations.is_revoked(m.record.cert)]

    def _send_grants(self, only: bytes | None = None) -> None:
        own = self._own
        if own is None:
            return
        now = time.monotonic()
        for member in self._grant_targets():
            if only is not None and member.node_id != only:
                continue
            if self._acked.get(member.node_id) == own.epoch:
                continue
            if only is None and now - self._grant_sent.get(member.node_id, -1e9) < \
                    self.settings.grant_retry_s:
                continue
            wire = seal_grant(self.identity, member.record.cert, own)
            self._granted[member.node_id] = member.record.cert
            if self._send(member.node_id, [_GRANT, wire]):
                self._grant_sent[member.node_id] = now
                self.counters["grants_sent"] += 1

    def _revocations_changed(self) -> None:
        revocations = self.membership.revocations
        if revocations.version == self._revocations_version:
            return
        self._revocations_version = revocations.version
        for owner in [o for o in self._grants if o in revocations.node_ids]:
            self._forget_grant(owner)
        revoked = [n for n, cert in self._granted.items() if revocations.is_revoked(cert)]
        if revoked and self._own is not None:
            self._revoke_recipients(revoked, "revocation")

    def _revoke_recipients(self, nodes: list[bytes], reason: str) -> None:
        """Members that hold (or may hold) our passwords were revoked: rotate once."""
        for node in nodes:
            self._granted.pop(node, None)
        self._spawn(self.rotate(reason))

    # ================================================================ peer side

    def grant_for(self, owner: bytes) -> AmtGrant | None:
        """The credentials we hold for ``owner``'s AMT (opening a stored grant if needed)."""
        grant = self._grants.get(owner)
        if grant is None and owner in self._sealed:
            member = self.membership.member(owner)
            if member is not None:
                wire = self._sealed.pop(owner)
                with contextlib.suppress(GrantError):
                    self._accept_grant(wire, member.record.cert, persist=False)
                grant = self._grants.get(owner)
        return grant

    def sleeping(self, node_id: bytes) -> SleepingNode | None:
        member = self.membership.member(node_id)
        if member is None or member.state not in (MemberState.ASLEEP, MemberState.OFF):
            return None
        return member.power_record if isinstance(member.power_record, SleepingNode) else None

    def _guest_client(self, grant: AmtGrant, waker: bool = False) -> AmtClient:
        user, password = (grant.waker_user, grant.waker_password) if waker else (
            grant.guest_user, grant.guest_password)
        return self._client(grant.host, grant.port, user, password, tls=grant.tls,
                            pin=grant.cert_sha256)

    async def check(self, node_id: bytes) -> SleepingNode | None:
        """Ask ``node_id``'s AMT whether it sleeps; mark and announce it if so.

        Returns the SleepingNode, or None when the host is on or AMT could not tell.
        Raises NoGrant without credentials; AmtError/TimeoutError are logged and give
        None. Bounded by ``probe_timeout_s``."""
        grant = self.grant_for(node_id)
        member = self.membership.member(node_id)
        if grant is None or member is None:
            raise NoGrant(f"no AMT credentials for {node_id.hex()}")
        self.counters["checks"] += 1
        record: AmtRecord | None = None
        try:
            async with asyncio.timeout(self.settings.probe_timeout_s):
                async with self._guest_client(grant) as client:
                    power = await client.get_power_state()
                    kind = _power_kind(power)
                    if kind is None:
                        self.counters["checks_on"] += 1
                        log.event("amt_check_on", node=node_id.hex(), power_state=power.name)
                        return None
                    try:
                        wire = await read_record_block(client, self.app)
                        record = verify_amt_record(wire, member.record.cert, self.verifier,
                                                   self.membership.revocations)
                    except AmtRecordError as exc:
                        self.counters["bad_records"] += 1
                        log.warn_limited("amt_record_refused", key=node_id,
                                         node=node_id.hex(), error=type(exc).__name__,
                                         detail=str(exc))
        except (AmtError, TimeoutError) as exc:
            self.counters["checks_failed"] += 1
            log.warn_limited("amt_check_failed", key=node_id, node=node_id.hex(),
                             error=type(exc).__name__, detail=str(exc) or "timed out")
            return None
        sleeping = SleepingNode(node_id, kind, power, record, time.time(), self.node_id)
        if not self._mark(sleeping):
            return None
        log.event("amt_member_sleeping", node=node_id.hex(), state=kind,
                  power_state=power.name, record=record is not None)
        self._announce(sleeping)
        return sleeping

    def _mark(self, sleeping: SleepingNode) -> bool:
        member = self.membership.member(sleeping.node_id)
        if member is None or member.state in (MemberState.ALIVE, MemberState.LEFT):
            return False  # it came back (or left) while we were asking its AMT
        self.membership.mark_asleep(sleeping.node_id, sleeping.state, sleeping)
        return True

    def _announce(self, sleeping: SleepingNode) -> None:
        record_wire = sleeping.amt_record.wire if sleeping.amt_record else None
        message = [_ASLEEP, sleeping.node_id, sleeping.state, int(sleeping.power_state),
                   record_wire]
        for member in self.membership.members():
            if not member.is_self and member.state == MemberState.ALIVE:
                self._send(member.node_id, message)

    async def wake(self, node_id: bytes) -> dict[str, Any]:
        """Power ``node_id`` on through its AMT (waker account). WakeFailed/NoGrant."""
        grant = self.grant_for(node_id)
        if grant is None:
            raise NoGrant(f"no AMT credentials for {node_id.hex()}")
        if not grant.can_wake:
            raise WakeFailed(f"{node_id.hex()} does not share wake (its AMT policy)")
        try:
            async with asyncio.timeout(self.settings.probe_timeout_s):
                async with self._guest_client(grant, waker=True) as client:
                    before = await client.get_power_state()
                    if not before.is_on:
                        await client.request_power_change(PowerAction.ON)
        except (AmtError, TimeoutError) as exc:
            self.counters["wakes_failed"] += 1
            log.warning("amt_wake_failed", node=node_id.hex(), error=type(exc).__name__,
                        detail=str(exc) or "timed out")
            raise WakeFailed(f"{node_id.hex()}: {type(exc).__name__}: {exc}") from exc
        self.counters["wakes"] += 1
        log.event("amt_wake", node=node_id.hex(), power_state=before.name)
        return {"node_id": node_id.hex(), "power_state_before": before.name.lower(),
                "powered_on": not before.is_on}

    # ================================================================ membership events

    def _member_changed(self, member: Member, old: MemberState | None,
                        new: MemberState) -> None:
        if member.is_self:
            return
        node = member.node_id
        if new == MemberState.ALIVE and old != MemberState.ALIVE:
            self._cancel_check(node)
            if self._own is not None and old != MemberState.SUSPECT:
                self._acked.pop(node, None)  # a restarted member forgot its grants
                self._send_grants(only=node)
        elif new in (MemberState.SUSPECT, MemberState.UNREACHABLE):
            self._schedule_check(node, 0.0)
        elif new in (MemberState.ASLEEP, MemberState.OFF):
            if not isinstance(member.power_record, SleepingNode):
                self._schedule_check(node, self.settings.notice_grace_s)
        elif new == MemberState.LEFT:
            self._cancel_check(node)
            if self.membership.revocations.is_revoked(member.record.cert):
                self._forget_grant(node)
                if self._own is not None and node in self._granted:
                    self._revoke_recipients([node], "member revoked")

    def _rank(self, node_id: bytes) -> int:
        """Our place among the live members in the rendezvous order for ``node_id``."""
        live = [m.node_id for m in self.membership.members()
                if m.node_id != node_id and m.state == MemberState.ALIVE]
        live.sort(key=lambda peer: hashlib.sha256(node_id + peer).digest())
        return live.index(self.node_id) if self.node_id in live else len(live)

    def _schedule_check(self, node_id: bytes, base_delay: float) -> None:
        if node_id in self._checks or self.grant_for(node_id) is None:
            return
        delay = base_delay + self._rank(node_id) * self.settings.check_stagger_s
        task = asyncio.get_running_loop().create_task(self._check_after(node_id, delay))
        self._checks[node_id] = task
        task.add_done_callback(lambda _t, n=node_id: self._checks.pop(n, None))

    async def _check_after(self, node_id: bytes, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)  # a timer: the next checker in rendezvous order
        member = self.membership.member(node_id)
        if member is None or member.state in (MemberState.ALIVE, MemberState.LEFT):
            return
        if isinstance(member.power_record, SleepingNode) and member.state in (
                MemberState.ASLEEP, MemberState.OFF):
            return  # someone settled it already
        with contextlib.suppress(NoGrant):
            await self.check(node_id)

    def _cancel_check(self, node_id: bytes) -> None:
        task = self._checks.pop(node_id, None)
        if task is not None:
            task.cancel()

    # ================================================================ messages

    def _send(self, node_id: bytes, message: list[Any]) -> bool:
        try:
            self.router.send(node_id, AMT_CHANNEL, codec.pack(message))
            return True
        except RoutingError as exc:
            self.counters["send_failed"] += 1
            log.debug("amt_send_failed", node=node_id.hex(), error=str(exc))
            return False

    def _on_message(self, message: Message) -> None:
        try:
            if len(message.payload) > _MAX_MESSAGE:
                raise DecodeError("message exceeds the size limit")
            fields = codec.unpack(message.payload)
            if not isinstance(fields, list) or not fields:
                raise DecodeError("message is not a list")
            kind = fields[0]
            if kind == _GRANT and len(fields) == 2 and isinstance(fields[1], bytes):
                self._on_grant(message.src, fields[1])
            elif kind == _GRANT_ACK and len(fields) == 3:
                self._on_grant_ack(message.src, fields[1], fields[2])
            elif kind == _ASLEEP and len(fields) == 5:
                self._on_asleep(message.src, fields)
            else:
                raise DecodeError(f"unknown or malformed message {str(kind)[:16]}")
        except (DecodeError, AmtBridgeError, ValueError) as exc:
            self.counters["dropped_" + type(exc).__name__] += 1
            log.warn_limited("amt_message_dropped", key=message.src, peer=message.src.hex(),
                             error=type(exc).__name__, detail=str(exc))

    def _on_grant(self, src: bytes, wire: bytes) -> None:
        sender = grant_sender(wire)
        member = self.membership.member(sender)
        if sender != src or member is None:
            raise GrantError("grant not sent by its owner, or the owner is no member")
        grant = self._accept_grant(wire, member.record.cert, persist=True)
        self._send(src, [_GRANT_ACK, grant.owner, grant.epoch])

    def _accept_grant(self, wire: bytes, sender: MembershipCertificate,
                      persist: bool) -> AmtGrant:
        if self.membership.revocations.is_revoked(sender):
            raise GrantError("grant from a revoked member")
        grant = open_grant(self.identity, wire, sender)
        current = self._grants.get(grant.owner)
        if current is not None and current.epoch >= grant.epoch:
            return current  # a replay or a duplicate: keep what we have
        self._grants[grant.owner] = grant
        self.counters["grants_accepted"] += 1
        log.event("amt_grant_accepted", owner=grant.owner.hex(), epoch=grant.epoch,
                  wake=grant.can_wake)
        if persist and self.grants_dir is not None:
            self._store_sealed(grant.owner, wire)
        return grant

    def _on_grant_ack(self, src: bytes, owner: Any, epoch: Any) -> None:
        if owner != self.node_id or not isinstance(epoch, int):
            raise DecodeError("grant acknowledgement for another owner")
        if self._own is not None and epoch == self._own.epoch:
            self._acked[src] = epoch

    def _on_asleep(self, src: bytes, fields: list[Any]) -> None:
        _, node_id, state, power, record_wire = fields
        if not (isinstance(node_id, bytes) and state in ("asleep", "off")
                and isinstance(power, int) and (record_wire is None
                                                or isinstance(record_wire, bytes))):
            raise DecodeError("asleep notice fields have the wrong types")
        try:
            power_state = PowerState(power)
        except ValueError:
            raise DecodeError(f"unknown power state {power}") from None
        if _power_kind(power_state) != state or node_id in (self.node_id, src):
            raise DecodeError("asleep notice contradicts itself")
        member = self.membership.member(node_id)
        if member is None or member.state in (MemberState.ALIVE, MemberState.LEFT):
            return  # late news: it woke (or left) since
        record = None
        if record_wire is not None:
            try:
                record = verify_amt_record(record_wire, member.record.cert, self.verifier,
                                           self.membership.revocations)
            except AmtRecordError:
                self.counters["bad_records"] += 1
                raise
        current = member.power_record
        if isinstance(current, SleepingNode) and current.amt_record is not None and (
                record is None or record.written <= current.amt_record.written):
            return
        self._cancel_check(node_id)
        self._mark(SleepingNode(node_id, state, power_state, record, time.time(), src))

    # ================================================================ grant files

    def _grant_path(self, owner: bytes) -> Path:
        assert self.grants_dir is not None
        return self.grants_dir / f"{owner.hex()}{GRANT_SUFFIX}"

    def _store_sealed(self, owner: bytes, wire: bytes) -> None:
        """Keep a grant as received (sealed to us), so a restart still has it."""
        path = self._grant_path(owner)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(path, wire, mode=PRIVATE_MODE)
        except OSError as exc:
            log.warning("amt_grant_store_failed", path=str(path), error=str(exc))

    def _load_sealed_grants(self) -> None:
        if self.grants_dir is None or not self.grants_dir.is_dir():
            return
        for path in self.grants_dir.glob(f"*{GRANT_SUFFIX}"):
            try:
                owner = bytes.fromhex(path.name[:-len(GRANT_SUFFIX)])
                self._sealed[owner] = path.read_bytes()
            except (ValueError, OSError) as exc:
                log.warning("amt_grant_file_skipped", path=str(path), error=str(exc))

    def _forget_grant(self, owner: bytes) -> None:
        self._grants.pop(owner, None)
        self._sealed.pop(owner, None)
        if self.grants_dir is not None:
            with contextlib.suppress(OSError):
                self._grant_path(owner).unlink()

    # ================================================================ housekeeping

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _housekeeping(self) -> None:
        while True:
            try:
                self._revocations_changed()
                now = time.monotonic()
                if self._provision_due and now >= self._next_provision:
                    await self._provision()
                if self._own is not None:
                    self._send_grants()
                    if now >= self._next_record:
                        await self.write_record("periodic")
            except Exception as exc:  # a bug here must not end the bridge
                log.error("amt_housekeeping_failed", error=repr(exc))
            if self._provision_due or self._own is not None:
                # Owner side: provisioning retries, grants awaiting acks, periodic records.
                await asyncio.sleep(self.settings.tick_s)  # a periodic timer, not a wait
            else:
                # No AMT of our own: only a newer revocation list (grants we hold from
                # revoked owners) gives us work; an idle agent does not poll for it.
                self._revoked.clear()
                await self._revoked.wait()

    def status(self) -> dict[str, Any]:
        """For the control socket: our AMT, the grants we hold, sleeping members."""
        return {
            "amt_present": self.amt_present,
            "epoch": self._own.epoch if self._own else None,
            "share_wake": self.policy.share_wake,
            "granted": sorted(n.hex() for n, e in self._acked.items()
                              if self._own and e == self._own.epoch),
            "grants_held": sorted(o.hex() for o in self._grants),
            "sleeping": {m.node_id.hex(): m.power_record.to_dict()
                         for m in self.membership.members()
                         if isinstance(m.power_record, SleepingNode)
                         and m.state in (MemberState.ASLEEP, MemberState.OFF)},
            "counters": dict(self.counters),
        }
