"""Renewed certificates carried to their nodes over the mesh: renewing a fleet without
touching each machine.

    meshctl certificates export --cert-expiring 30d --out expiring/   # any agent
    meshagent mesh renew --dir ./mymesh --out renewed/ expiring/*.cert  # offline, root key
    meshctl certificates push renewed/*.cert                          # any agent

``export`` lists the certificates the members' records carry (public documents).
``push`` checks each renewed certificate against the mesh trust and revocations, then
hands it to the agent it names: this one takes it itself, any other gets it as one routed
message on ``CERTIFICATE_CHANNEL`` (through relays where needed). The receiver adopts it
only if it is for its own keys and ends later than the one it holds
(``CertificateWatch.offer``), writes it to its node.cert and signs its record with it.

Delivery is confirmed by that record, not by an ack: each pushed certificate stays
``pending`` until the node's record carries it (or one ending later). A pending one is
sent again whenever a route to its node appears (a laptop back from sleep or from another
network) and every ``RESEND_S`` while it has one, and is given up when it ends or is
revoked. Pending certificates are kept in ``certificates.pending`` in the state directory,
so a restart of the agent they were pushed to does not forget them.

A node whose certificate has already ended (a laptop shelved past it) is out of the mesh:
no member takes its datagrams or routes to it. So a certificate pushed for a node that is
not alive in the pusher's view is also handed to ``HOLDERS`` live members to hold (the
same channel; a member holds what names another node, checked as the pusher checks it, at
most ``MAX_HELD``). Which members is decided by rendezvous hashing (``holder_order``: the
members ranked by a hash of their node id and the node's), so the node, whose view of the
mesh is older but mostly the same, knows whom to ask first without any message: the
pusher's messages stay O(``HOLDERS``) per certificate however large the mesh. While its
own certificate has ended, an agent asks the members it knew in that order, then its
seeds, ``SEEK_FANOUT`` a round (at start, then every ``check_s``; each round goes on down
the order), for a renewal over a membership stream, the one request members serve to a
certificate that has ended (``streams.py``, op ``renewal``); the first holder it reaches
hands it over, the node adopts it and is back in the mesh. A node that asks nobody
holding one still needs its node.cert copied in.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meshagent import codec
from meshagent.atomicfile import write_atomically
from meshagent.certwatch import CertificateWatch
from meshagent.errors import DecodeError, MeshError
from meshagent.eventloop import cancel_and_wait
from meshagent.identity import MembershipCertificate
from meshagent.log import get_logger
from meshagent.membership import Member, Membership, MemberState
from meshagent.routing import FIRST_FREE_CHANNEL, Message, Router, RouteView, RoutingError
from meshagent.transport import Address

__all__ = ["CertificateDelivery", "CERTIFICATE_CHANNEL", "PENDING_FILE", "holder_order"]

log = get_logger(__name__)

CERTIFICATE_CHANNEL = FIRST_FREE_CHANNEL + 5
RESEND_S = 30.0  # a pending certificate is sent again this often while routable
PENDING_FILE = "certificates.pending"
MAX_HELD = 4096  # certificates held for other nodes (each one root-signed and checked)
SEEK_FANOUT = 3  # members asked for our renewal per round while ours has ended
HOLDERS = 8  # members given a renewal to hold for a node not alive in the pusher's view
PUSHED = "push"  # the origin of a certificate pushed to this agent (else "peer:<id>")


class CertificateDelivery:
    """Export members' certificates, and deliver renewed ones to their nodes."""

    def __init__(self, membership: Membership, router: Router, watch: CertificateWatch,
                 state_dir: Path | None = None) -> None:
        self._membership = membership
        self._router = router
        self._watch = watch
        self._path = state_dir / PENDING_FILE if state_dir is not None else None
        self._asked: set[Address] = set()  # seek: asked since the order last started over
        self.pending: dict[bytes, MembershipCertificate] = {}  # node id -> not yet taken
        self.origins: dict[bytes, str] = {}  # node id -> PUSHED, or the member holding for
        self.handed_over = 0  # renewals given to nodes that asked (theirs had ended)
        self.hold_refusals = 0  # certificates members sent us to hold that we refused
        self.asks = 0  # members asked for our renewal while ours had ended
        self.last_ask: float | None = None  # wall-clock time of the latest round of asks
        self._tasks: list[asyncio.Task[None]] = []
        self._load()

    def start(self) -> None:
        self._router.on_message(CERTIFICATE_CHANNEL, self._received)
        self._router.on_route_change(self._route_changed)
        self._membership.on_change(self._member_changed)
        self._membership.renewal_for = self._renewal_for
        self._tasks = [asyncio.create_task(self._resend_loop(), name="certificate-resend"),
                       asyncio.create_task(self._seek_loop(), name="certificate-seek")]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []

    def export(self, within_s: float | None = None) -> list[MembershipCertificate]:
        """The certificate of every member (this node included), soonest to end first;
        with ``within_s``, only those that end within it or have ended."""
        limit = None if within_s is None else time.time() + within_s
        certificates = [member.record.cert for member in self._membership.members()]
        return sorted((c for c in certificates if limit is None or c.expires <= limit),
                      key=lambda c: c.expires)

    def push(self, wires: Iterable[bytes]) -> dict[str, str]:
        """Deliver each certificate to its node: ``{node id hex: outcome}`` with outcome
        ``adopted`` (this node), ``sent`` or ``pending: <why>`` (kept, sent when the node
        is reachable; for a node not alive here, also held by the live members), or
        ``refused: <error>``. A certificate that does not parse is keyed by its index."""
        outcomes: dict[str, str] = {}
        for index, wire in enumerate(wires):
            try:
                certificate = self._checked(wire)
            except MeshError as exc:
                outcomes[f"#{index}"] = f"refused: {type(exc).__name__}: {exc}"
                continue
            node = certificate.node_id
            if node == self._membership.node_id:
                adopted = self._watch.offer(wire, "push")
                outcomes[node.hex()] = "adopted" if adopted else \
                    f"refused: {self._watch.last_refusal or 'the certificate held'}"
            elif self._taken(node, certificate):
                outcomes[node.hex()] = "refused: the node holds this certificate or a later one"
            else:
                self._keep(certificate, PUSHED)
                outcome = self._send(node, certificate)
                member = self._membership.member(node)
                if member is None or member.state != MemberState.ALIVE:
                    outcome += f"; held by {self._hand_to_holders(certificate)} members"
                outcomes[node.hex()] = outcome
        self._save()
        log.event("certificates_pushed", count=len(outcomes),
                  sent=sum(1 for o in outcomes.values() if o in ("sent", "adopted")),
                  pending=len(self.pending))
        return outcomes

    def pending_view(self) -> list[dict[str, Any]]:
        return [self.describe(c) | {"origin": self.origins.get(node, PUSHED)}
                for node, c in self.pending.items()]

    def _keep(self, certificate: MembershipCertificate, origin: str) -> None:
        self.pending[certificate.node_id] = certificate
        self.origins[certificate.node_id] = origin

    def _forget(self, node: bytes) -> None:
        self.pending.pop(node, None)
        self.origins.pop(node, None)

    def _send(self, node: bytes, certificate: MembershipCertificate) -> str:
        if self._membership.member(node) is None:
            return "pending: unknown node (sent when it joins)"
        try:
            self._router.send(node, CERTIFICATE_CHANNEL, certificate.to_wire())
        except RoutingError:
            return "pending: no route (sent when there is one)"
        return "sent"

    def _hand_to_holders(self, certificate: MembershipCertificate) -> int:
        """Give the first ``HOLDERS`` live members of the node's ``holder_order`` a copy to
        hold, should it come back with its certificate ended (it asks them first); the
        number handed. Members we have no route to yet are passed over."""
        node = certificate.node_id
        live = [m.node_id for m in self._membership.members()
                if not m.is_self and m.state == MemberState.ALIVE and m.node_id != node]
        handed = 0
        for member in holder_order(node, live):
            if handed == HOLDERS:
                break
            try:
                self._router.send(member, CERTIFICATE_CHANNEL, certificate.to_wire())
            except RoutingError:
                continue
            handed += 1
        return handed

    def _taken(self, node: bytes, certificate: MembershipCertificate) -> bool:
        """The node's record carries ``certificate`` or one that ends later."""
        member = self._membership.member(node)
        return member is not None and (member.record.cert.serial == certificate.serial
                                       or member.record.cert.expires >= certificate.expires)

    def _member_changed(self, member: Member, old: MemberState | None,
                        new: MemberState) -> None:
        certificate = self.pending.get(member.node_id)
        if certificate is None:
            return
        if self._taken(member.node_id, certificate):
            self._forget(member.node_id)
            self._save()
            log.event("certificate_delivered", node=member.node_id.hex(),
                      serial=certificate.serial)
        elif new == MemberState.ALIVE and old != MemberState.ALIVE:
            self._send(member.node_id, certificate)  # back (or new): try now

    def _route_changed(self, node: bytes, route: RouteView | None) -> None:
        certificate = self.pending.get(node)
        if certificate is not None and route is not None:
            self._send(node, certificate)

    async def _resend_loop(self) -> None:
        while True:
            await asyncio.sleep(RESEND_S)
            self.resend()

    def resend(self) -> None:
        """Lost messages and refusals (a node that then held something newer is
        confirmed by its record): send again what has a route; give up on certificates
        that ended or that a newer revocation list names."""
        now = time.time()
        changed = False
        for node, certificate in list(self.pending.items()):
            if now > certificate.expires or self._membership.revocations.is_revoked(
                    certificate):
                self._forget(node)
                changed = True
                log.warning("certificate_not_delivered", node=node.hex(),
                            serial=certificate.serial,
                            detail="it ended first" if now > certificate.expires
                            else "it was revoked")
            elif self._router.route_to(node) is not None:
                self._send(node, certificate)
        if changed:
            self._save()

    def _checked(self, wire: bytes) -> MembershipCertificate:
        """Refuse here what every receiver would refuse: not this mesh's, not valid now,
        revoked."""
        return MembershipCertificate.verify(wire, self._membership.trust,
                                            revocations=self._membership.revocations)

    def _received(self, message: Message) -> None:
        try:
            node = MembershipCertificate.from_wire(message.payload).node_id
        except MeshError:
            node = self._membership.node_id  # refused (counted, logged) by the watch
        if node == self._membership.node_id:
            self._watch.offer(message.payload, f"peer:{message.src.hex()}")
        else:
            self._hold(message.payload, message.src)

    def _hold(self, wire: bytes, pusher: bytes) -> None:
        """A member pushed a certificate for another node: hold it for that node, should
        it ask (its own has ended), and send it on when the node is routable."""
        try:
            certificate = self._checked(wire)
        except MeshError as exc:
            self._refuse_hold(pusher, type(exc).__name__, str(exc))
            return
        node = certificate.node_id
        held = self.pending.get(node)
        if self._taken(node, certificate) or (held is not None
                                              and held.expires >= certificate.expires):
            return
        if held is None and len(self.pending) >= MAX_HELD:
            self._refuse_hold(pusher, "Full", f"{MAX_HELD} certificates held already")
            return
        self._keep(certificate, f"peer:{pusher.hex()}")
        self._save()
        log.event("certificate_held", node=node.hex(), serial=certificate.serial,
                  pusher=pusher.hex())

    def _refuse_hold(self, pusher: bytes, error: str, detail: str) -> None:
        """Counted always, logged once a while per member (any member can send these)."""
        self.hold_refusals += 1
        log.warn_limited("held_certificate_refused", key=pusher, pusher=pusher.hex(),
                         error=error, detail=detail)

    def _renewal_for(self, certificate: MembershipCertificate) -> bytes | None:
        """What we hold for a node that asks (its certificate has ended): a certificate
        for the same keys that ends later, or None."""
        held = self.pending.get(certificate.node_id)
        if (held is None or held.expires <= certificate.expires
                or held.sign_public != certificate.sign_public
                or self._membership.revocations.is_revoked(held)):
            return None
        self.handed_over += 1
        log.event("certificate_handed_over", node=certificate.node_id.hex(),
                  serial=held.serial)
        return held.to_wire()

    # ------------------------------------------------------------------ our own, ended

    async def _seek_loop(self) -> None:
        """Ask at once when the agent starts with an ended certificate (its seeds), then
        every ``check_s`` while ours has ended."""
        while True:
            if self._membership.certificate.expires < time.time():
                await self.seek()
            await asyncio.sleep(self._watch.check_s)

    async def seek(self) -> bool:
        """Ask the next ``SEEK_FANOUT`` of the members we knew, in our ``holder_order``
        (where the pusher put its copies), then of our seeds, for a renewal of our ended
        certificate; True if one was adopted. Each call goes on where the last stopped,
        and starts over once all were asked."""
        me = self._membership.node_id
        known = {m.node_id: m.address for m in self._membership.members() if not m.is_self}
        order = [known[node] for node in holder_order(me, list(known))]
        order += [seed for seed in self._membership.seeds if seed not in order]
        waiting = [address for address in order if address not in self._asked]
        if not waiting:
            self._asked.clear()
            waiting = order
        self.last_ask = time.time()
        for address in waiting[:SEEK_FANOUT]:
            self._asked.add(address)
            self.asks += 1
            wire = await self._membership.streams.ask_renewal(address)
            if wire is not None and self._watch.offer(
                    wire, f"member:{address[0]}:{address[1]}"):
                self._asked.clear()
                return True
        log.debug("renewal_not_found", asked=len(waiting[:SEEK_FANOUT]))
        return False

    def seek_status(self) -> dict[str, Any]:
        """For ``meshagent status``: how often we asked for our renewal, and when last."""
        return {"renewal_asks": self.asks, "last_ask": self.last_ask}

    # ------------------------------------------------------------------ the file

    def _save(self) -> None:
        if self._path is None:
            return
        entries = [[c.to_wire(), self.origins.get(node, PUSHED)]
                   for node, c in self.pending.items()]
        try:
            write_atomically(self._path, codec.pack(entries), mode=0o600)
        except OSError as exc:
            log.warning("certificates_pending_not_saved", path=str(self._path),
                        detail=str(exc))

    def _load(self) -> None:
        """Take back what a previous run held; drop what ended or was revoked since. A
        file that does not parse is set aside (``.bad``), not overwritten."""
        if self._path is None or not self._path.exists():
            return
        try:
            entries = codec.unpack(self._path.read_bytes(), MAX_HELD * 4096)
            if not isinstance(entries, list):
                raise DecodeError("not a list")
        except (OSError, DecodeError) as exc:
            bad = self._path.with_name(PENDING_FILE + ".bad")
            log.warning("certificates_pending_unreadable", path=str(self._path),
                        set_aside=str(bad), detail=str(exc))
            try:
                self._path.replace(bad)
            except OSError:
                pass
            return
        for entry in entries:
            try:
                wire, origin = entry
                certificate = self._checked(wire)
            except (MeshError, TypeError, ValueError) as exc:
                log.warning("pending_certificate_dropped", path=str(self._path),
                            detail=f"{type(exc).__name__}: {exc}")
                continue
            self._keep(certificate, str(origin))

    @staticmethod
    def describe(certificate: MembershipCertificate) -> dict[str, Any]:
        return {"node_id": certificate.node_id.hex(), "hostname": certificate.hostname,
                "serial": certificate.serial, "expires": certificate.expires,
                "roles": list(certificate.roles)}


def holder_order(node: bytes, members: Iterable[bytes]) -> list[bytes]:
    """``members`` ranked for holding ``node``'s renewal (rendezvous hashing): the same
    order wherever it is computed, and a member joining or leaving moves no other."""
    return sorted(members, key=lambda member: hashlib.blake2b(
        member + node, digest_size=8, person=b"meshagent-hold").digest())
