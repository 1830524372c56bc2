"""Finding the first peer: signed UDP multicast beacons.

Every ``interval_s`` (and three times quickly after start) an agent sends a beacon to the
multicast group (default ``239.255.77.77:7947``, TTL 1 = this subnet):

    Signed(kind "beacon", signer = node key) of
    {"v": 1, "mesh": mesh id, "node": node id, "cert": membership certificate,
     "addr": ["host:port", ...] membership endpoints, "ts": unix seconds}

A receiver drops, with a counter and a rate-limited log line, in this order: floods from
one address (token bucket), malformed beacons, beacons of another mesh (counted as
``beacons_other_mesh``; read from the body before any signature work, so foreign meshes
on the same LAN cost nothing), stale ones (``ts`` more than ``MAX_BEACON_AGE_S`` away),
then beacons whose certificate does not verify against our trust and revocation list or
whose signature is not by that certificate's key. A valid beacon from a node that is not
already a live member makes membership join the advertised endpoints; from then on the
rest of the mesh is learnt by gossip. A replayed beacon achieves nothing: the join is a
sealed exchange only the certificate holder can answer.

Networks without multicast use static seeds (``Membership(seeds=...)``), which membership
contacts at start and again whenever it finds itself alone.

Sockets: one per agent, ``SO_REUSEADDR`` + ``SO_REUSEPORT`` and bound to the group, so
several agents on one host (tests, demos) all hear the group; ``IP_MULTICAST_LOOP`` on, so
they hear each other; ``IP_MULTICAST_IF`` = ``interface`` (``127.0.0.1`` works on
loopback for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter
from typing import Any

from meshagent import codec
from meshagent.errors import DecodeError
from meshagent.log import get_logger
from meshagent.membership import Membership
from meshagent.membership.ratelimit import SourceRateLimiter
from meshagent.record import RecordRejected
from meshagent.signing import SignatureError, Signed, sign, verify
from meshagent.transport import Address, format_address, parse_address

__all__ = ["Discovery", "BEACON_KIND", "DEFAULT_GROUP", "DEFAULT_PORT", "build_beacon"]

log = get_logger(__name__)

BEACON_KIND = "beacon"
DEFAULT_GROUP = "239.255.77.77"
DEFAULT_PORT = 7947
MAX_BEACON_BYTES = 4096
MAX_BEACON_AGE_S = 600.0
_STARTUP_BEACONS_S = (0.0, 0.3, 1.0)


def build_beacon(membership: Membership, now: float | None = None) -> bytes:
    """This node's signed beacon (wire bytes)."""
    body = {"v": 1, "mesh": membership.trust.mesh_id, "node": membership.node_id,
            "cert": membership.certificate.to_wire(),
            "addr": list(membership.record.addresses),
            "ts": int(time.time() if now is None else now)}
    return sign(membership.identity.sign_key, BEACON_KIND, body).to_wire()


class _BeaconEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: Discovery) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.on_beacon(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.owner.counters["socket_errors"] += 1


class Discovery:
    """Multicast beacons for one ``Membership`` (started after it)."""

    def __init__(self, membership: Membership, *, group: str = DEFAULT_GROUP,
                 port: int = DEFAULT_PORT, interface: str = "", ttl: int = 1,
                 interval_s: float = 5.0, rng: random.Random | None = None) -> None:
        self.membership = membership
        self.group = group
        self.port = port
        self.interface = interface
        self.ttl = ttl
        self.interval_s = interval_s
        self.random = rng or random.Random()
        self.counters: Counter[str] = Counter()
        self._limiter = SourceRateLimiter(rate_per_s=20.0, burst=50.0)
        self._joining: dict[bytes, float] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._joins: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _BeaconEndpoint(self), sock=self._socket())
        self._task = loop.create_task(self._beacon_loop())

    async def stop(self) -> None:
        tasks = [*self._joins, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((self.group, self.port))  # only the group's datagrams
            except OSError:
                sock.bind(("", self.port))  # systems that cannot bind a group address
            interface = socket.inet_aton(self.interface or "0.0.0.0")
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                            socket.inet_aton(self.group) + interface)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL,
                            struct.pack("b", self.ttl))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def _beacon_loop(self) -> None:
        started = asyncio.get_running_loop().time()
        for offset in _STARTUP_BEACONS_S:
            await asyncio.sleep(max(0.0, started + offset - asyncio.get_running_loop().time()))
            self.send_beacon()
        while True:
            await asyncio.sleep(self.interval_s * (0.75 + 0.5 * self.random.random()))
            self.send_beacon()

    def send_beacon(self) -> None:
        if self._transport is None or not self.membership.running:
            return
        try:
            self._transport.sendto(build_beacon(self.membership), (self.group, self.port))
            self.counters["beacons_sent"] += 1
        except OSError as exc:
            self.counters["socket_errors"] += 1
            log.warn_limited("beacon_send_failed", key=str(exc), error=str(exc))

    # ---------------------------------------------------------------- receiving

    def _drop(self, reason: str, source: Address, detail: str = "") -> None:
        self.counters[f"dropped_{reason}"] += 1
        log.warn_limited("beacon_dropped", key=(reason, source[0]), reason=reason,
                         peer=format_address(source), detail=detail)

    def on_beacon(self, data: bytes, source: Address) -> None:
        """Check one received beacon; join its sender if it is new to us. Never raises."""
        m = self.membership
        if not m.running:
            return
        now = time.time()
        if not self._limiter.allow(source[0], time.monotonic()):
            self._drop("flood", source)
            return
        try:
            if len(data) > MAX_BEACON_BYTES:
                raise DecodeError("beacon too large")
            signed = Signed.from_wire(data)
            body = codec.unpack(signed.body)
            if not isinstance(body, dict) or signed.kind != BEACON_KIND:
                raise DecodeError("not a beacon")
            mesh, node, ts = body.get("mesh"), body.get("node"), body.get("ts")
            cert, endpoints = body.get("cert"), body.get("addr")
            if not (isinstance(mesh, bytes) and isinstance(node, bytes) and isinstance(
                    ts, int) and isinstance(cert, bytes) and isinstance(endpoints, list)):
                raise DecodeError("beacon fields have the wrong types")
        except DecodeError as exc:
            self._drop("malformed", source, str(exc))
            return
        if mesh != m.trust.mesh_id:
            self.counters["beacons_other_mesh"] += 1
            return
        if node == m.node_id:
            self.counters["beacons_own"] += 1
            return
        if abs(now - ts) > MAX_BEACON_AGE_S:
            self._drop("stale", source)
            return
        known = m.member(node)
        if known is not None and known.state.probed:
            self.counters["beacons_known"] += 1
            return
        try:
            certificate = m.verifier.certificate(cert, m.revocations)
            if certificate.node_id != node:
                raise RecordRejected("beacon names another node than its certificate",
                                     "bad_signature")
            verify(signed, BEACON_KIND, certificate.sign_public)
        except RecordRejected as exc:
            self._drop(exc.reason, source, str(exc))
            return
        except SignatureError as exc:
            self._drop("bad_signature", source, str(exc))
            return
        addresses = []
        for endpoint in endpoints[:8]:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                addresses.append(parse_address(endpoint, m.transport.local_address[1]))
        if not addresses:
            self._drop("malformed", source, "beacon without a usable address")
            return
        self.counters["beacons_accepted"] += 1
        loop_time = time.monotonic()
        if loop_time - self._joining.get(node, -1e9) < self.interval_s:
            return
        self._joining[node] = loop_time
        if len(self._joining) > 4096:
            self._joining.clear()
        task = asyncio.get_running_loop().create_task(self._join(node, addresses))
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)

    async def _join(self, node: bytes, addresses: list[Address]) -> None:
        for address in addresses:
            if await self.membership.join([address]):
                self.counters["joins"] += 1
                log.event("discovered", node=node.hex(), address=format_address(address))
                return
        self.counters["joins_failed"] += 1
