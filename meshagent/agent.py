"""The agent: one node's identity, transport, discovery, membership, sessions, routing and
control socket, composed and started and stopped together.

    agent = Agent(load_config(path))
    await agent.start()          # listening, joined the seeds, control socket up
    ...
    await agent.stop()           # leave the mesh (signed goodbye), close sessions, socket

Start order and why: credentials are read first (a node without its key and a
certificate of this mesh refuses to start; one whose certificate has ended starts and
waits for a renewal); then membership starts the shared transport (UDP + TCP on
``network.port``) with the session handler already registered, so no inbound session is
refused in between; sessions begin dialling the members membership reports; routing
attaches to each session; discovery beacons go out last, once there is something to join.
Stop runs the other way round; ``leave=False`` stops silently, which peers see as a crash.

Wiring between the parts:
- membership changes -> the session manager looks at its candidates again; a member that
  left has its session closed;
- a session that ends without goodbye -> ``Membership.report_connection_lost`` (the
  crash fast path) and ``Router.detach`` (its routes go at once);
- root-signed documents (``trustdocs``: revocation list, allowlist) are read from the node
  directory at start and written back whenever a newer one is adopted, from whichever
  carrier; membership spreads them, and a newer revocation list closes the sessions of
  the peers it revokes (membership drops them as members, the policy refuses their
  operators);
- every session's frames -> ``Router.receive``.

Upper layers (election, commands relay, deployment) use ``agent.router`` (``send``,
``on_message``), ``agent.membership`` and ``agent.control.register``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import os
import platform
import time
from pathlib import Path
from typing import Any

import psutil

from meshagent import __version__, handshake
from meshagent.amtbridge.configured import bridge_from_config
from meshagent.certdelivery import CertificateDelivery
from meshagent.certwatch import CertificateWatch
from meshagent.commands import TagStore
from meshagent.config import AgentConfig
from meshagent.control import ControlServer
from meshagent.discovery import Discovery
from meshagent.errors import ConfigError, MeshError
from meshagent.eventloop import loop_name
from meshagent.identity import (
    REDEEMED_FILE,
    MembershipCertificate,
    NodeCredentials,
    RedeemedTokens,
    RevocationList,
)
from meshagent.leader import Leadership
from meshagent.log import get_logger
from meshagent.membership import Member, Membership, MemberState
from meshagent.profiles import Profile
from meshagent.routing import Router
from meshagent.sessions import HandshakeResult, PeerCandidate, Session, SessionManager
from meshagent.transitions import TransitionLog
from meshagent.transport import Address, UdpTransport, format_address, parse_address
from meshagent.trustdocs import REVOCATIONS, TrustDocument, TrustDocuments

__all__ = ["Agent", "advertised_endpoints"]

log = get_logger(__name__)

# A fresh handshake (new ephemeral keys, certificates checked again) at least this often.
SESSION_LIFETIME_S = 3600.0
# How long an alive member may stay without a route before we dial it directly. Routes
# spread in milliseconds once sessions exist; this only catches a split session graph.
UNROUTED_GRACE_S = 3.0


def advertised_endpoints(listen: str, port: int, advertise: list[str]) -> list[str]:
    """The "host:port" endpoints peers should use: ``advertise`` when given; the listen
    address when it is specific; else every non-loopback interface address (loopback only
    when the host has nothing else)."""
    if advertise:
        return [format_address((address, port)) for address in advertise]
    if not ipaddress.ip_address(listen).is_unspecified:
        return [format_address((listen, port))]
    family = 6 if ipaddress.ip_address(listen).version == 6 else 4
    found: list[str] = []
    loopback: list[str] = []
    for addresses in psutil.net_if_addrs().values():
        for item in addresses:
            try:
                ip = ipaddress.ip_address(item.address.split("%")[0])
            except ValueError:
                continue
            if ip.version != family or ip.is_link_local:
                continue
            (loopback if ip.is_loopback else found).append(format_address((str(ip), port)))
    return found or loopback


class Agent:
    """One running node; see the module docstring for the composition."""

    def __init__(self, config: AgentConfig, credentials: NodeCredentials | None = None) -> None:
        self.config = config
        self.credentials = credentials or _load_credentials(config.node.state_dir)
        self.node_id = self.credentials.identity.node_id
        self.started_at = 0.0
        net = config.network
        self.endpoints = advertised_endpoints(net.listen, net.port, net.advertise)
        self.transport = UdpTransport(net.listen, net.port)
        self.documents = TrustDocuments.load(self.credentials.trust, config.node.state_dir)
        try:
            profile = Profile.named(config.membership.profile)
        except ValueError as exc:
            raise ConfigError(f"membership.profile: {exc}") from None
        self.membership = Membership(
            self.credentials.identity, self.credentials.certificate, self.credentials.trust,
            self.transport, profile=profile, seeds=config.seed_addresses(),
            advertise=self.endpoints,
            documents=self.documents, redeemed=_load_redeemed(config.node.state_dir),
            record_fields={"hostname": config.node.display_name, "os": _os_name(),
                           "agent_version": __version__, "tags": dict(config.node.tags)})
        self.certificate_watch = CertificateWatch(
            config.node.state_dir, self.membership, self.credentials, self._certificate_renewed,
            check_s=config.node.certificate_check_s,
            warn_s=config.node.certificate_warn_days * 86400)
        self.discovery = Discovery(
            self.membership, group=config.discovery.multicast_group,
            port=config.discovery.multicast_port,
            interface=config.discovery.multicast_interface, ttl=config.discovery.multicast_ttl,
            interval_s=config.discovery.beacon_interval_s) \
            if config.discovery.multicast else None
        routing = config.routing
        self.router = Router(self.node_id, max_hops=routing.max_hops,
                             update_interval=routing.update_interval_s,
                             hold_time=routing.hold_time_s, capacity=routing.capacity)
        self.certificate_delivery = CertificateDelivery(
            self.membership, self.router, self.certificate_watch, config.node.state_dir)
        s = config.sessions
        self._replay_guard = handshake.ReplayGuard()
        self.sessions = SessionManager(
            self.node_id, self.transport, self._handshake, candidates=self._candidates,
            on_up=self._session_up, on_down=self._session_down, on_frames=self.router.receive,
            is_unrouted=lambda peer: self.router.route_to(peer) is None,
            has_alternative=self.router.has_alternative, max_peers=s.max_peers,
            connect_timeout=s.connect_timeout_s,
            handshake_timeout=s.handshake_timeout_s, keepalive=s.keepalive_s,
            reconnect_min=s.reconnect_min_s, reconnect_max=s.reconnect_max_s)
        self.control = ControlServer(config.control_socket, {
            "status": self._status, "nodes": self._nodes, "routes": self._routes,
            "sessions": self._sessions, "ping": self._ping, "join": self._join,
            "member_states": self._member_states, "certificate": self._certificate,
            "certificates": self._certificates, "certificates_push": self._certificates_push,
            "certificates_pending": lambda params: self.certificate_delivery.pending_view()})
        # Election, the command relay and, with [server] configured, the leader's uplink.
        self.tags = TagStore(config.node.tags,
                             on_change=lambda tags: self.membership.update_record(tags=tags))
        # Intel AMT: our own (with [amt] address) and our peers' while they sleep.
        self.amt = bridge_from_config(config, self.credentials.identity, self.membership,
                                      self.router)
        self.leadership = Leadership(self.membership, self.router, self.credentials,
                                     config.node.state_dir, config.server, self.tags,
                                     amt=self.amt)
        self.control.register("leader", self.leadership.status)
        self.control.register("amt", lambda params: self.amt.status())
        self._unsubscribe = self.membership.on_change(self._member_changed)
        self.membership.on_view_difference(self.sessions.view_differs)
        self.transitions = TransitionLog()
        self.membership.on_change(self.transitions.record)
        self.documents.on_adopted(self._revocations_adopted, REVOCATIONS)
        self._unrouted: dict[bytes, float] = {}  # member -> since when it has no route
        # member -> ((address, record addresses), parsed dial addresses): candidates are
        # listed on every look of the session manager, records rarely change.
        self._dial_addresses: dict[bytes, tuple[Any, tuple[Address, ...]]] = {}
        self._running = False

    @property
    def control_socket(self) -> Path:
        return self.config.control_socket

    @property
    def address(self) -> str:
        return format_address(self.transport.local_address)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.started_at = time.time()
        await self.control.start()
        try:
            await self.sessions.start()
            await self.membership.start()
            await self.certificate_watch.start()
            await self.router.start()
            self.certificate_delivery.start()
            await self.amt.start()
            await self.leadership.start()
            if self.discovery is not None:
                await self.discovery.start()
        except BaseException:
            await self._teardown(leave=False)
            raise
        self._running = True
        log.event("agent_started", node=self.node_id.hex(), address=self.address,
                  endpoints=",".join(self.endpoints))

    async def stop(self, leave: bool = True) -> None:
        """Stop everything; with ``leave`` the mesh is told first (state LEFT, not a crash)."""
        if not self._running:
            return
        self._running = False
        await self._teardown(leave)
        log.event("agent_stopped", node=self.node_id.hex())

    async def _teardown(self, leave: bool) -> None:
        if self.discovery is not None:
            await self.discovery.stop()
        await self.leadership.stop()
        await self.amt.stop()
        await self.certificate_delivery.stop()
        await self.router.stop()
        await self.certificate_watch.stop()
        await self.sessions.stop()
        if leave:
            await self.membership.leave()
        else:
            await self.membership.stop()
        await self.control.stop()

    # ------------------------------------------------------------------ wiring

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                         initiator: bool, expected_peer: bytes | None) -> HandshakeResult:
        peer = writer.get_extra_info("peername")
        options: dict[str, Any] = {
            "revocations": self.membership.revocations,
            "redeemed": self.membership.redeemed,
            "peer_label": format_address((peer[0], peer[1])) if peer else "?",
            "timeout": self.config.sessions.handshake_timeout_s,
        }
        if initiator:
            options["expect_node_id"] = expected_peer
        else:
            options["replay_guard"] = self._replay_guard
        session = await handshake.open_session(
            reader, writer, self.credentials, initiator=initiator,
            tunnel_options={"rekey_after_seconds": SESSION_LIFETIME_S}, **options)
        return HandshakeResult(session.tunnel, session.keys.peer.node_id, session.keys.peer)

    def _candidates(self) -> list[PeerCandidate]:
        """Members worth a session: believed alive, with addresses we can dial. One that
        routing has not reached for ``UNROUTED_GRACE_S`` is urgent (the session graph is
        split; a direct session mends it)."""
        port = self.config.network.port
        now = time.monotonic()
        candidates = []
        unrouted: dict[bytes, float] = {}
        known = self._dial_addresses
        self._dial_addresses = {}
        for member in self.membership.members():
            if member.is_self or not member.state.probed:
                continue
            key = (member.address, member.record.addresses)
            cached = known.get(member.node_id)
            if cached is not None and cached[0] == key:
                addresses = cached[1]
            else:
                found: list[Address] = [member.address]
                for text in member.record.addresses:
                    try:
                        address = parse_address(text, port)
                    except ValueError:
                        continue
                    if address not in found:
                        found.append(address)
                addresses = tuple(found)
            self._dial_addresses[member.node_id] = (key, addresses)
            urgent = False
            if self.router.route_to(member.node_id) is None:
                since = unrouted[member.node_id] = self._unrouted.get(member.node_id, now)
                urgent = now - since > UNROUTED_GRACE_S
            candidates.append(PeerCandidate(member.node_id, addresses, urgent))
        self._unrouted = unrouted
        return candidates

    def _session_up(self, session: Session) -> None:
        self.router.attach(session)

    def _session_down(self, session: Session, crashed: bool) -> None:
        self.router.detach(session.peer_id, session)
        if crashed and self._running:
            self.membership.report_connection_lost(session.peer_id)

    def _member_changed(self, member: Member, old: MemberState | None,
                        new: MemberState) -> None:
        if new == MemberState.LEFT:
            self.sessions.close_peer(member.node_id, "peer left")
        self.sessions.view_changed()

    def _certificate_renewed(self, credentials: NodeCredentials) -> None:
        """Membership took the renewal already; new handshakes present it from now on
        (sessions up now keep theirs until their next handshake)."""
        self.credentials = credentials

    def _revocations_adopted(self, kind: str, revocations: TrustDocument) -> None:
        """Cut every session whose peer certificate the new list revokes, members or not
        (new handshakes check ``membership.revocations``)."""
        assert isinstance(revocations, RevocationList)
        for session in list(self.sessions.sessions.values()):
            if session.peer_info is not None and revocations.is_revoked(session.peer_info):
                self.sessions.close_peer(session.peer_id, "certificate revoked")

    # ------------------------------------------------------------------ control methods

    def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        states: dict[str, int] = {}
        for member in self.membership.members():
            states[member.state.value] = states.get(member.state.value, 0) + 1
        return {
            "node_id": self.node_id.hex(), "hostname": self.config.node.display_name,
            "mesh_id": self.credentials.trust.mesh_id.hex(), "version": __version__,
            "address": self.address, "endpoints": self.endpoints, "pid": os.getpid(),
            "event_loop": loop_name(asyncio.get_running_loop()),
            "uptime_s": time.time() - self.started_at, "started": self._running,
            "members": states,
            "sessions": len(self.sessions.sessions), "max_peers": self.sessions.max_peers,
            "routes": len(self.router.routes()), "routing": dict(self.router.counters),
            "membership": dict(self.membership.counters),
            "documents": {"versions": self.documents.versions(),
                          **dict(self.documents.counters)},
            "transport": dict(self.transport.counters),
            "udp_receive_buffer": self.transport.receive_buffer,
            "session_stats": dataclasses.asdict(self.sessions.stats),
            "certificate": self._certificate_status(),
        }

    def _certificate(self, params: dict[str, Any]) -> dict[str, Any]:
        """This node's certificate; with ``check`` true, node.cert is looked at first
        (a renewal written there is adopted now, not at the next periodic look)."""
        if params.get("check"):
            self.certificate_watch.check()
        return self._certificate_status()

    def _certificate_status(self) -> dict[str, Any]:
        return self.certificate_watch.status() | self.certificate_delivery.seek_status()

    def _certificates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every member's certificate (``within_s``: only those ending within it), each
        described with its wire form in base64, for ``meshctl certificates export``."""
        within = params.get("within_s")
        return [CertificateDelivery.describe(c) | {"wire": base64.b64encode(c.to_wire()).decode()}
                for c in self.certificate_delivery.export(
                    None if within is None else float(within))]

    def _certificates_push(self, params: dict[str, Any]) -> dict[str, str]:
        """Deliver renewed certificates (``certificates``: base64 wire forms) to their
        nodes; ``{node id hex: outcome}``."""
        wires = params.get("certificates")
        if not isinstance(wires, list) or not all(isinstance(w, str) for w in wires):
            raise TypeError("certificates must be a list of base64 strings")
        return self.certificate_delivery.push(base64.b64decode(w, validate=True)
                                              for w in wires)

    def _nodes(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every member as ``meshctl nodes`` shows it; params ``state`` (list of names)
        and ``tags`` ({key: value}, all must match) filter."""
        states = params.get("state") or []
        if isinstance(states, str):
            states = [states]
        known = {s.value for s in MemberState}
        unknown = [s for s in states if s not in known]
        if unknown:
            raise ValueError(f"unknown state {unknown[0]!r}; states: {', '.join(sorted(known))}")
        tags = params.get("tags") or {}
        if not isinstance(tags, dict):
            raise TypeError("tags must be an object")
        nodes = []
        for member in sorted(self.membership.members(),
                             key=lambda m: (not m.is_self, m.record.hostname, m.node_id)):
            if states and member.state.value not in states:
                continue
            if any(member.record.tags.get(k) != v for k, v in tags.items()):
                continue
            nodes.append(self._node_view(member))
        return nodes

    def _node_view(self, member: Member) -> dict[str, Any]:
        record = member.record
        return {
            "node_id": member.node_id.hex(), "host": record.hostname,
            "state": member.state.value, "address": format_address(member.address),
            "version": record.agent_version, "os": record.os,
            "last_seen": time.time() if member.is_self else member.last_seen,
            "state_since": self.transitions.since(member.node_id),
            "incarnation": member.incarnation,
            "tags": dict(record.tags), "power": record.power_source, "load": record.load,
            "amt": record.amt_present, "self": member.is_self,
            "route": self._route_view(member.node_id, member.is_self),
            "certificate": record.to_dict()["certificate"],
        }

    def _route_view(self, node_id: bytes, is_self: bool) -> dict[str, Any] | None:
        if is_self:
            return {"kind": "self", "metric": 0}
        route = self.router.route_to(node_id)
        if route is None:
            return None
        if route.direct:
            return {"kind": "direct", "metric": route.metric}
        via = self.membership.member(route.next_hop)
        return {"kind": "relay", "via": route.next_hop.hex(), "metric": route.metric,
                "via_host": via.record.hostname if via else None}

    def _member_states(self, params: dict[str, Any]) -> dict[str, Any]:
        """When this agent saw each member (or ``node``, hex) enter each state."""
        node = params.get("node")
        return self.transitions.view(bytes.fromhex(node) if node else None)

    async def _join(self, params: dict[str, Any]) -> dict[str, Any]:
        """Join the members at ``addresses`` (["host:port", ...]) now, as seeds would."""
        port = self.config.network.port
        addresses = [parse_address(str(text), port) for text in params["addresses"]]
        return {"joined": await self.membership.join(addresses)}

    def _routes(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"node_id": r.node_id.hex(), "next_hop": r.next_hop.hex(),
                 "metric": r.metric, "seqno": r.seqno} for r in self.router.routes()]

    def _sessions(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"node_id": s.peer_id.hex(), "address": format_address(s.address),
                 "initiator": s.initiator, "established": s.established,
                 "host": s.peer_info.hostname if s.peer_info else None}
                for s in self.sessions.sessions.values()]

    async def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        """Round trip through the mesh to ``node`` (hex node id or a unique prefix)."""
        target = self._resolve(str(params["node"]))
        rtt = await self.router.ping(target, float(params.get("timeout", 2.0)))
        return {"node_id": target.hex(), "rtt_ms": rtt * 1000}

    def _resolve(self, prefix: str) -> bytes:
        matches = [m.node_id for m in self.membership.members()
                   if m.node_id.hex().startswith(prefix.lower())]
        if len(matches) != 1:
            raise ValueError(f"{len(matches)} nodes match {prefix!r}")
        return matches[0]


def _load_credentials(state_dir: Path) -> NodeCredentials:
    try:
        credentials = NodeCredentials.load(state_dir)
    except MeshError as exc:
        raise ConfigError(f"node.state_dir: cannot load this node's credentials from "
                          f"{state_dir}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"node.state_dir: cannot read {state_dir}: {exc.strerror}") from None
    # Judged as of its start: one that has ended (a laptop shelved past it) still starts
    # the agent, which waits for a renewed node.cert (CertificateWatch) while the mesh
    # refuses it; membership logs own_certificate_expired. Anything else is refused.
    certificate = credentials.certificate
    try:
        MembershipCertificate.verify(certificate.to_wire(), credentials.trust,
                                     now=certificate.not_before)
    except MeshError as exc:
        raise ConfigError(f"node.state_dir: this node's certificate is not valid: "
                          f"{type(exc).__name__}: {exc}") from None
    return credentials


def _load_redeemed(state_dir: Path) -> RedeemedTokens:
    """Join tokens seen redeemed (and burnt), kept in ``redeemed-tokens`` as they change."""
    path = state_dir / REDEEMED_FILE
    if not path.exists():
        return RedeemedTokens(path=path)
    try:
        return RedeemedTokens.load(path)
    except MeshError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _os_name() -> str:
    return f"{platform.system()} {platform.release()}"
