"""Renewed certificates carried to their nodes over the mesh: renewing a fleet without
touching each machine.

    meshctl certificates export --cert-expiring 30d --out expiring/   # any agent
    meshagent mesh renew --dir ./mymesh --out renewed/ expiring/*.cert  # offline, root key
    meshctl certificates push renewed/*.cert                          # any agent

``export`` lists the certificates the members' records carry (public documents).
``push`` checks each renewed certificate against the mesh trust and revocations, then
hands it to the agent it names: this one takes it itself, any other gets it as one routed
message on ``CERTIFICATE_CHANNEL`` (through relays where needed; best effort, no ack). The
receiver adopts it only if it is for its own keys and ends later than the one it holds
(``CertificateWatch.offer``), and writes it to its node.cert. Whether every node took its
renewal shows in ``meshctl nodes --json`` (each node's certificate serial and expiry);
a node asleep or out of reach when it was pushed gets it from a later push.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from meshagent.certwatch import CertificateWatch
from meshagent.errors import MeshError
from meshagent.identity import MembershipCertificate
from meshagent.log import get_logger
from meshagent.membership import Membership
from meshagent.routing import FIRST_FREE_CHANNEL, Message, Router, RoutingError

__all__ = ["CertificateDelivery", "CERTIFICATE_CHANNEL"]

log = get_logger(__name__)

CERTIFICATE_CHANNEL = FIRST_FREE_CHANNEL + 5


class CertificateDelivery:
    """Export members' certificates, and deliver renewed ones to their nodes."""

    def __init__(self, membership: Membership, router: Router,
                 watch: CertificateWatch) -> None:
        self._membership = membership
        self._router = router
        self._watch = watch

    def start(self) -> None:
        self._router.on_message(CERTIFICATE_CHANNEL, self._received)

    def export(self, within_s: float | None = None) -> list[MembershipCertificate]:
        """The certificate of every member (this node included), soonest to end first;
        with ``within_s``, only those that end within it or have ended."""
        limit = None if within_s is None else time.time() + within_s
        certificates = [member.record.cert for member in self._membership.members()]
        return sorted((c for c in certificates if limit is None or c.expires <= limit),
                      key=lambda c: c.expires)

    def push(self, wires: Iterable[bytes]) -> dict[str, str]:
        """Deliver each certificate to its node: ``{node id hex: outcome}`` with outcome
        ``adopted`` (this node), ``sent``, or why not (``unknown node``, ``no route``,
        ``refused: <error>``). A certificate that does not parse is keyed by its index."""
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
            elif self._membership.member(node) is None:
                outcomes[node.hex()] = "unknown node"
            else:
                try:
                    self._router.send(node, CERTIFICATE_CHANNEL, wire)
                    outcomes[node.hex()] = "sent"
                except RoutingError as exc:
                    outcomes[node.hex()] = f"no route: {exc}"
        log.event("certificates_pushed", count=len(outcomes),
                  sent=sum(1 for o in outcomes.values() if o in ("sent", "adopted")))
        return outcomes

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
