"""This node's certificate while the agent runs: a renewal is taken without a restart, and
the certificate's end is announced ahead.

    watch = CertificateWatch(state_dir, membership, on_renewed, check_s=60, warn_s=30 * 86400)
    await watch.start() ... await watch.stop()
    watch.check()      # one look now (the control method ``certificate`` with check=true)
    watch.status()     # serial, expires, seconds left, renewals, the last refusal

Renewal comes two ways. Over the mesh (``meshctl certificates push``, see
``meshagent.certdelivery``): ``offer`` adopts a certificate for this node that ends later
than the one held and writes it to node.cert. Or the operator writes it into the node
directory (``meshagent mesh enroll`` run again for this node keeps node.key and replaces
node.cert). Every ``check_s``
seconds the watch looks at node.cert's size, mtime and inode, and reads it only when they
change. A certificate for this node's keys, of this mesh, valid now and not revoked is
adopted (``Membership.adopt_certificate``: the record is signed again with it and peers
take it from our next datagram or stream) and handed to ``on_renewed`` (new sessions
present it). Anything else (unreadable, malformed, another node's, expired, revoked) is
refused with the log line ``certificate_renewal_refused`` naming the error: the agent goes
on with the certificate it has, and reads the file again when it changes.

Expiry: from ``warn_s`` before the end, ``certificate_expires_soon`` is logged once a day
with the days left; at the end membership logs ``own_certificate_expired``, and the mesh
drops this node until a renewal is adopted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshagent.errors import MeshError
from meshagent.eventloop import cancel_and_wait
from meshagent.identity import (
    CERTIFICATE_FILE,
    CertificateError,
    MembershipCertificate,
    NodeCredentials,
    load_certificate,
    save_certificate,
)
from meshagent.log import get_logger
from meshagent.membership import Membership

__all__ = ["CertificateWatch", "WARN_EVERY_S"]

log = get_logger(__name__)

WARN_EVERY_S = 86400.0  # certificate_expires_soon at most once a day


class CertificateWatch:
    """Adopts renewals of this node's certificate and warns before it expires."""

    def __init__(self, state_dir: Path, membership: Membership,
                 credentials: NodeCredentials,
                 on_renewed: Callable[[NodeCredentials], None], *, check_s: float = 60.0,
                 warn_s: float = 30 * 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.path = state_dir / CERTIFICATE_FILE
        self.check_s = check_s
        self.warn_s = warn_s
        self.renewals = 0
        self.refusals = 0
        self.last_refusal: str | None = None
        self._membership = membership
        self._credentials = credentials
        self._on_renewed = on_renewed
        self._clock = clock
        self._stamp = self._file_stamp()  # the file as the agent started with it
        self._warned_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.check()
        self._task = asyncio.create_task(self._run(), name="certificate-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            self.check()

    def check(self) -> bool:
        """Look at node.cert now; True if a renewal was adopted."""
        stamp = self._file_stamp()
        adopted = False
        if stamp != self._stamp:
            self._stamp = stamp
            adopted = self._take_renewal()
        self._warn_if_ending()
        return adopted

    def status(self) -> dict[str, Any]:
        certificate = self._membership.certificate
        return {"serial": certificate.serial, "expires": certificate.expires,
                "expires_in_s": certificate.expires - self._clock(),
                "renewals": self.renewals, "refusals": self.refusals,
                "last_refusal": self.last_refusal}

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def offer(self, wire: bytes, source: str) -> bool:
        """A renewal delivered over the mesh (``meshctl certificates push``): adopted if it
        is for this node and ends later than the one held, then written to node.cert, so a
        restart keeps it. Anything else is refused (counted, logged, nothing changes): it must
        name this node's keys before a signature is checked, so a stranger's certificate
        costs a parse."""
        def later(certificate: MembershipCertificate) -> None:
            if certificate.expires <= self._membership.certificate.expires:
                raise CertificateError(f"certificate serial {certificate.serial} does not "
                                       "end later than the one held")
        if not self._adopt(lambda: MembershipCertificate.from_wire(wire), source, later):
            return False
        try:
            save_certificate(self.path, wire)
        except OSError as exc:
            log.warning("certificate_not_saved", path=str(self.path), detail=str(exc))
        self._stamp = self._file_stamp()
        return True

    def _take_renewal(self) -> bool:
        return self._adopt(lambda: load_certificate(self.path), str(self.path))

    def _adopt(self, read: Callable[[], MembershipCertificate], source: str,
               check: Callable[[MembershipCertificate], None] = lambda certificate: None,
               ) -> bool:
        """Read a certificate and adopt it; a refusal is logged with ``source``."""
        current = self._membership.certificate
        try:
            certificate = read()
            if certificate == current:
                return False  # the one held, written or sent again (however encoded)
            check(certificate)
            credentials = dataclasses.replace(self._credentials, certificate=certificate)
            self._membership.adopt_certificate(certificate)
        except (MeshError, OSError) as exc:
            # Any member can send us certificates: the log line is rate limited per
            # source, the count is not.
            self.refusals += 1
            self.last_refusal = f"{type(exc).__name__}: {exc}"
            log.warn_limited("certificate_renewal_refused", key=source, source=source,
                             error=type(exc).__name__, detail=str(exc))
            return False
        self._credentials = credentials
        self.renewals += 1
        self.last_refusal = None
        self._warned_at = float("-inf")
        log.event("certificate_renewed", serial=certificate.serial,
                  expires=certificate.expires, previous_serial=current.serial, source=source)
        self._on_renewed(credentials)
        return True

    def _warn_if_ending(self) -> None:
        now = self._clock()
        certificate = self._membership.certificate
        left = certificate.expires - now
        if 0 < left <= self.warn_s and now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("certificate_expires_soon", serial=certificate.serial,
                        expires=certificate.expires, days_left=round(left / 86400, 1))
