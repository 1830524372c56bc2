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
revoked.
Pending certificates live in the memory of the agent they were pushed to (``meshctl
certificates pending`` lists them); a node whose certificate has already ended is out
of the mesh, so no push reaches it: it needs its node.cert copied in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from meshagent.certwatch import CertificateWatch
from meshagent.errors import MeshError
from meshagent.eventloop import cancel_and_wait
from meshagent.identity import MembershipCertificate
from meshagent.log import get_logger
from meshagent.membership import Member, Membership, MemberState
from meshagent.routing import FIRST_FREE_CHANNEL, Message, Router, RouteView, RoutingError

__all__ = ["CertificateDelivery", "CERTIFICATE_CHANNEL"]

log = get_logger(__name__)

CERTIFICATE_CHANNEL = FIRST_FREE_CHANNEL + 5
RESEND_S = 30.0  # a pending certificate is sent again this often while routable


class CertificateDelivery:
    """Export members' certificates, and deliver renewed ones to their nodes."""

    def __init__(self, membership: Membership, router: Router,
                 watch: CertificateWatch) -> None:
        self._membership = membership
        self._router = router
        self._watch = watch
        self.pending: dict[bytes, MembershipCertificate] = {}  # node id -> not yet taken
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._router.on_message(CERTIFICATE_CHANNEL, self._received)
        self._router.on_route_change(self._route_changed)
        self._membership.on_change(self._member_changed)
        self._task = asyncio.create_task(self._resend_loop(), name="certificate-resend")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

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
        is reachable), or ``refused: <error>``. A certificate that does not parse is keyed
        by its index."""
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
                self.pending[node] = certificate
                outcomes[node.hex()] = self._send(node, certificate)
        log.event("certificates_pushed", count=len(outcomes),
                  sent=sum(1 for o in outcomes.values() if o in ("sent", "adopted")),
                  pending=len(self.pending))
        return outcomes

    def pending_view(self) -> list[dict[str, Any]]:
        return [self.describe(c) for c in self.pending.values()]

    def _send(self, node: bytes, certificate: MembershipCertificate) -> str:
        if self._membership.member(node) is None:
            return "pending: unknown node (sent when it joins)"
        try:
            self._router.send(node, CERTIFICATE_CHANNEL, certificate.to_wire())
        except RoutingError:
            return "pending: no route (sent when there is one)"
        return "sent"

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
            del self.pending[member.node_id]
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
        for node, certificate in list(self.pending.items()):
            if now > certificate.expires or self._membership.revocations.is_revoked(
                    certificate):
                del self.pending[node]
                log.warning("certificate_not_delivered", node=node.hex(),
                            serial=certificate.serial,
                            detail="it ended first" if now > certificate.expires
                            else "it was revoked")
            elif self._router.route_to(node) is not None:
                self._send(node, certificate)

    def _checked(self, wire: bytes) -> MembershipCertificate:
        """Refuse here what every receiver would refuse: not this mesh's, not valid now,
        revoked."""
        return MembershipCertificate.verify(wire, self._membership.trust,
                                            revocations=self._membership.revocations)

    def _received(self, message: Message) -> None:
        self._watch.offer(message.payload, f"peer:{message.src.hex()}")

    @staticmethod
    def describe(certificate: MembershipCertificate) -> dict[str, Any]:
        return {"node_id": certificate.node_id.hex(), "hostname": certificate.hostname,
                "serial": certificate.serial, "expires": certificate.expires,
                "roles": list(certificate.roles)}
