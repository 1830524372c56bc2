"""Secure sessions: a Noise XX handshake in which both sides prove mesh membership.

Protocol ``Noise_XX_25519_AESGCM_SHA256`` (``meshagent.noise``), static keys = the nodes'
X25519 keys (``NodeIdentity``), handshake payloads = membership certificates.

Transcript (-> initiator to responder, <- back; ``enc(...)`` is encrypted under the key
the handshake has so far and authenticated with the hash of everything before it)::

    prologue = "meshagent/noise/1" || 0x00 || mesh_id          (both sides, never sent)

    -> e.pub (32)
       || hello = msgpack {"v": 1, "mesh": mesh_id, "ts": initiator's clock, ms}   (clear)
                                      mix_hash(e.pub), mix_hash(hello)
    <- e.pub (32)                     mix_hash
       ee                             mix_key(DH(e_i, e_r))
       || enc(s_r.pub) (48)           responder's static key, hidden from onlookers
       es                             mix_key(DH(e_i, s_r))
       || enc(msgpack {"cert": responder certificate wire})
    -> enc(s_i.pub) (48)
       se                             mix_key(DH(s_i, e_r))
       || enc(msgpack {"cert": initiator certificate wire})

    Split() -> (k1, k2): initiator sends with k1 and receives with k2; responder the
    reverse. Both also hold the handshake hash h (a session id).

Framing over a stream: each message is a 2-byte big-endian length and the message
(Noise caps messages at 65535 bytes).

Checks, each a typed ``HandshakeError`` and a (rate-limited) log line:

* responder: hello parses (MalformedHandshake), names our mesh (HandshakeWrongMesh),
  its ephemeral key and timestamp are fresh (HandshakeReplayed, with a ReplayGuard);
* both: every encrypted field authenticates (HandshakeAuthenticationFailed: tampering,
  a message replayed into another session, a different prologue);
* both: the peer certificate verifies for this mesh now, not revoked, join token not
  reused (PeerCertificateRejected, ``.reason`` the identity.CertificateError);
* both: the static key the peer proved in the DH equals the certificate's ``dh_public``
  (StaticKeyMismatch) -- a certificate copied from another node is worthless without
  that node's private key, which is what defeats a man in the middle;
* initiator, when told whom it dials: the certificate's node id (PeerMismatch).

Rekeying. A tunnel raises RekeyRequired when its message or time limit is reached.
``SessionKeys.rekeyed()`` derives the next epoch's keys with Noise REKEY (section 11.3)
applied to each direction: no round trip, both sides compute the same keys, and the
old keys cannot be recomputed from the new ones. The side that hits the limit switches
to epoch n+1 (``tunnel_for(keys.rekeyed())``), whose counters start again at 0:

* on a stream, its last record under epoch n is a frame telling the peer to switch (the
  frame type belongs to the transport), so the receiver changes tunnels at that point;
* on datagrams, a receiver keeps the tunnels of epochs n and n+1, tries n+1 when a record
  fails under n (ReplayError for a counter n has seen, AuthenticationError otherwise),
  and retires n once n+1 has opened a record.

REKEY does not recover from a leaked key, so a session is also re-established by a fresh
handshake (new ephemeral keys, certificates checked again) when it gets old or on
reconnect.

In XX the initiator holds its keys after message 2, before the responder has judged
message 3: if the responder refuses the initiator it closes the connection, and the
initiator sees its first read fail. Treat a session as up once the peer's first record
opens (or the stream stays open), not as soon as ``initiate`` returns.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshagent import codec
from meshagent.errors import DecodeError, MeshError
from meshagent.eventloop import write_unless_closing
from meshagent.identity import (
    CertificateError,
    MembershipCertificate,
    NodeCredentials,
    RedeemedTokens,
    RevocationList,
)
from meshagent.log import get_logger
from meshagent.noise import (
    HandshakeState,
    NoiseDecryptError,
    NoiseError,
    NoiseMessageError,
    rekey_key,
)

if TYPE_CHECKING:
    from meshagent.core import Tunnel

__all__ = [
    "PROTOCOL_VERSION", "HANDSHAKE_TIMEOUT_S", "REPLAY_WINDOW_S",
    "SessionKeys", "Initiator", "Responder", "ReplayGuard", "SecureSession",
    "HandshakeError", "MalformedHandshake", "HandshakeWrongMesh", "HandshakeReplayed",
    "HandshakeAuthenticationFailed", "PeerCertificateRejected", "StaticKeyMismatch",
    "PeerMismatch", "HandshakeTimeout", "HandshakeAborted",
    "prologue_for", "initiate", "respond", "open_session", "tunnel_for",
]

log = get_logger(__name__)

PROTOCOL_VERSION = 1
PROLOGUE_LABEL = b"meshagent/noise/1\0"
HANDSHAKE_TIMEOUT_S = 10.0
# How far an initiator's clock may be from ours, and how long its ephemeral key is
# remembered: a hello outside the window, or seen twice within it, is a replay.
REPLAY_WINDOW_S = 300.0
_LENGTH = struct.Struct(">H")


# -- errors ---------------------------------------------------------------------------


class HandshakeError(MeshError):
    """The session could not be established; nothing of it may be used."""


class MalformedHandshake(HandshakeError, DecodeError):
    """A handshake message or payload does not parse (or carries an unusable key)."""


class HandshakeWrongMesh(HandshakeError):
    """The initiator's hello names another mesh (or protocol version)."""


class HandshakeReplayed(HandshakeError):
    """The first message repeats an ephemeral key already seen, or is stale."""


class HandshakeAuthenticationFailed(HandshakeError):
    """An encrypted field failed its tag: tampered, replayed into another session, or the
    peer's transcript (prologue, keys) differs."""


class PeerCertificateRejected(HandshakeError):
    """The peer's membership certificate is not acceptable; ``reason`` says why."""

    def __init__(self, reason: CertificateError) -> None:
        super().__init__(f"peer certificate rejected: {type(reason).__name__}: {reason}")
        self.reason = reason


class StaticKeyMismatch(HandshakeError):
    """The peer proved a static key other than the one in the certificate it sent."""


class PeerMismatch(HandshakeError):
    """The peer is a member, but not the node the initiator meant to reach."""


class HandshakeTimeout(HandshakeError):
    """The peer did not complete the handshake in time."""


class HandshakeAborted(HandshakeError):
    """The connection closed, or a frame was cut, during the handshake."""


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionKeys:
    """Per-direction tunnel keys and the authenticated peer.

    ``send_key``/``recv_key`` feed ``core.Tunnel(send_key, recv_key)``; ``handshake_hash``
    identifies the session (equal on both sides); ``epoch`` counts ``rekeyed`` steps.
    """

    send_key: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)
    peer: MembershipCertificate
    handshake_hash: bytes
    initiator: bool
    epoch: int = 0

    def rekeyed(self) -> SessionKeys:
        """The next epoch's keys (Noise REKEY on each direction); see module docstring."""
        return SessionKeys(rekey_key(self.send_key), rekey_key(self.recv_key), self.peer,
                           self.handshake_hash, self.initiator, self.epoch + 1)


def prologue_for(mesh_id: bytes) -> bytes:
    """What both sides hash before the first message: protocol version and mesh."""
    return PROLOGUE_LABEL + mesh_id


# -- replay guard ---------------------------------------------------------------------


class ReplayGuard:
    """Refuses a first message whose ephemeral key was seen within ``window_s``, or whose
    timestamp is further than ``window_s`` from our clock. Bounded: past ``capacity``
    remembered keys the oldest are forgotten (they are also the stalest).

    One per listening agent, shared by all its Responders; not thread-safe (asyncio).
    """

    def __init__(self, window_s: float = REPLAY_WINDOW_S, capacity: int = 65536) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def check(self, ephemeral: bytes, sent_ms: int, now: float) -> None:
        if abs(sent_ms / 1000.0 - now) > self.window_s:
            raise HandshakeReplayed("handshake timestamp outside the replay window")
        while self._seen and (next(iter(self._seen.values())) < now
                              or len(self._seen) >= self.capacity):
            self._seen.popitem(last=False)
        if ephemeral in self._seen:
            raise HandshakeReplayed("handshake ephemeral key seen before")
        self._seen[ephemeral] = now + 2 * self.window_s


# -- state machines -------------------------------------------------------------------


class _Party:
    """What Initiator and Responder share: credentials, the Noise state, peer checks."""

    role = "?"

    def __init__(self, credentials: NodeCredentials, *, initiator: bool,
                 revocations: RevocationList | None, redeemed: RedeemedTokens | None,
                 peer_label: str, clock: Callable[[], float], ephemeral: Any) -> None:
        self._credentials = credentials
        self._revocations = revocations
        self._redeemed = redeemed
        self._peer_label = peer_label
        self._clock = clock
        self._noise = HandshakeState(initiator, prologue_for(credentials.trust.mesh_id),
                                     credentials.identity.dh_key, ephemeral)
        self._own_payload = codec.pack({"cert": credentials.certificate.to_wire()})
        self.keys: SessionKeys | None = None

    def _log_rejection(self, exc: HandshakeError) -> None:
        reason = type(exc).__name__
        if isinstance(exc, PeerCertificateRejected):
            reason = f"{reason}/{type(exc.reason).__name__}"
        log.warn_limited("handshake_rejected", key=(self._peer_label, reason),
                         role=self.role, peer=self._peer_label, reason=reason, detail=str(exc))

    def _read(self, message: bytes) -> bytes:
        try:
            return self._noise.read_message(message)
        except NoiseDecryptError as exc:
            raise HandshakeAuthenticationFailed(str(exc)) from exc
        except NoiseMessageError as exc:
            raise MalformedHandshake(str(exc)) from exc
        except NoiseError as exc:
            raise HandshakeError(str(exc)) from exc

    def _accept_peer(self, payload: bytes) -> MembershipCertificate:
        try:
            wire = codec.unpack(payload)["cert"]
            if not isinstance(wire, bytes):
                raise DecodeError("certificate is not bytes")
        except (DecodeError, KeyError, TypeError) as exc:
            raise MalformedHandshake(f"handshake payload: {exc}") from exc
        try:
            cert = MembershipCertificate.verify(
                wire, self._credentials.trust, now=self._clock(),
                revocations=self._revocations, redeemed=self._redeemed)
        except CertificateError as exc:
            raise PeerCertificateRejected(exc) from exc
        if cert.dh_public != self._noise.rs:
            raise StaticKeyMismatch(f"node {cert.node_id.hex()}'s certificate names another "
                                    "static key than the one the peer proved")
        return cert

    def _finish(self, peer: MembershipCertificate) -> SessionKeys:
        first, second = self._noise.split()
        assert first.key is not None and second.key is not None
        send, recv = (first, second) if self._noise.initiator else (second, first)
        self.keys = SessionKeys(send.key, recv.key, peer, self._noise.handshake_hash,
                                self._noise.initiator)
        log.event("session_established", role=self.role, peer=self._peer_label,
                  node=peer.node_id.hex(), host=peer.hostname)
        return self.keys


class Initiator(_Party):
    """The dialling side. ``start()`` -> message 1; ``finish(message 2)`` -> (message 3,
    SessionKeys). With ``expect_node_id``, only that node is accepted."""

    role = "initiator"

    def __init__(self, credentials: NodeCredentials, *,
                 revocations: RevocationList | None = None,
                 redeemed: RedeemedTokens | None = None,
                 expect_node_id: bytes | None = None, peer_label: str = "?",
                 clock: Callable[[], float] = time.time, ephemeral: Any = None) -> None:
        super().__init__(credentials, initiator=True, revocations=revocations,
                         redeemed=redeemed, peer_label=peer_label, clock=clock,
                         ephemeral=ephemeral)
        self._expect = expect_node_id

    def start(self) -> bytes:
        hello = codec.pack({"v": PROTOCOL_VERSION, "mesh": self._credentials.trust.mesh_id,
                            "ts": int(self._clock() * 1000)})
        return self._noise.write_message(hello)

    def finish(self, message: bytes) -> tuple[bytes, SessionKeys]:
        try:
            peer = self._accept_peer(self._read(message))
            if self._expect is not None and peer.node_id != self._expect:
                raise PeerMismatch(f"reached node {peer.node_id.hex()}, "
                                   f"wanted {self._expect.hex()}")
            final = self._noise.write_message(self._own_payload)
        except HandshakeError as exc:
            self._log_rejection(exc)
            raise
        return final, self._finish(peer)


class Responder(_Party):
    """The accepting side. ``respond(message 1)`` -> message 2;
    ``finish(message 3)`` -> SessionKeys."""

    role = "responder"

    def __init__(self, credentials: NodeCredentials, *,
                 revocations: RevocationList | None = None,
                 redeemed: RedeemedTokens | None = None,
                 replay_guard: ReplayGuard | None = None, peer_label: str = "?",
                 clock: Callable[[], float] = time.time, ephemeral: Any = None) -> None:
        super().__init__(credentials, initiator=False, revocations=revocations,
                         redeemed=redeemed, peer_label=peer_label, clock=clock,
                         ephemeral=ephemeral)
        self._guard = replay_guard

    def respond(self, message: bytes) -> bytes:
        try:
            hello = self._parse_hello(self._read(message))
            if self._guard is not None:
                assert self._noise.re is not None
                self._guard.check(self._noise.re, hello["ts"], self._clock())
            return self._write_reply()
        except HandshakeError as exc:
            self._log_rejection(exc)
            raise

    def finish(self, message: bytes) -> SessionKeys:
        try:
            peer = self._accept_peer(self._read(message))
        except HandshakeError as exc:
            self._log_rejection(exc)
            raise
        return self._finish(peer)

    def _write_reply(self) -> bytes:
        try:
            return self._noise.write_message(self._own_payload)
        except NoiseMessageError as exc:  # a low-order ephemeral key shows at "ee"
            raise MalformedHandshake(str(exc)) from exc

    def _parse_hello(self, payload: bytes) -> dict[str, Any]:
        try:
            hello = codec.unpack(payload)
            version, mesh, sent = hello["v"], hello["mesh"], hello["ts"]
        except (DecodeError, KeyError, TypeError) as exc:
            raise MalformedHandshake(f"hello does not parse: {exc}") from exc
        if not isinstance(sent, int) or isinstance(sent, bool):
            raise MalformedHandshake("hello timestamp is not an integer")
        if version != PROTOCOL_VERSION:
            raise HandshakeWrongMesh(f"peer speaks handshake version {version!r}")
        if mesh != self._credentials.trust.mesh_id:
            shown = mesh.hex() if isinstance(mesh, bytes) else repr(mesh)
            raise HandshakeWrongMesh(f"peer belongs to mesh {shown}")
        return hello


# -- asyncio helpers ------------------------------------------------------------------


async def _send(writer: asyncio.StreamWriter, message: bytes) -> None:
    if not write_unless_closing(writer, _LENGTH.pack(len(message)) + message):
        raise ConnectionResetError("the stream closed during the handshake")
    await writer.drain()


async def _receive(reader: asyncio.StreamReader) -> bytes:
    try:
        (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise HandshakeAborted("connection closed during the handshake") from exc


async def _run(steps: Callable[[], Any], peer_label: str, role: str,
               timeout: float) -> SessionKeys:
    try:
        async with asyncio.timeout(timeout):
            return await steps()
    except TimeoutError as exc:
        log.warn_limited("handshake_rejected", key=(peer_label, "timeout"), role=role,
                         peer=peer_label, reason="HandshakeTimeout")
        raise HandshakeTimeout(f"no complete handshake within {timeout} s") from exc
    except (HandshakeAborted, ConnectionError) as exc:
        log.warn_limited("handshake_rejected", key=(peer_label, "aborted"), role=role,
                         peer=peer_label, reason="HandshakeAborted", detail=str(exc))
        if isinstance(exc, HandshakeAborted):
            raise
        raise HandshakeAborted(f"connection lost during the handshake: {exc}") from exc


async def initiate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   credentials: NodeCredentials, *, timeout: float = HANDSHAKE_TIMEOUT_S,
                   **options: Any) -> SessionKeys:
    """Run an Initiator over a stream (options: see ``Initiator``)."""
    machine = Initiator(credentials, **options)

    async def steps() -> SessionKeys:
        await _send(writer, machine.start())
        final, keys = machine.finish(await _receive(reader))
        await _send(writer, final)
        return keys

    return await _run(steps, options.get("peer_label", "?"), Initiator.role, timeout)


async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  credentials: NodeCredentials, *, timeout: float = HANDSHAKE_TIMEOUT_S,
                  **options: Any) -> SessionKeys:
    """Run a Responder over a stream (options: see ``Responder``)."""
    machine = Responder(credentials, **options)

    async def steps() -> SessionKeys:
        await _send(writer, machine.respond(await _receive(reader)))
        return machine.finish(await _receive(reader))

    return await _run(steps, options.get("peer_label", "?"), Responder.role, timeout)


def tunnel_for(keys: SessionKeys, **tunnel_options: Any) -> Tunnel:
    """A ``core.Tunnel`` sealing with ``keys.send_key`` and opening with ``recv_key``."""
    from meshagent.core import Tunnel  # imported late: the C core loads on first use

    return Tunnel(keys.send_key, keys.recv_key, **tunnel_options)


@dataclass(frozen=True)
class SecureSession:
    """An established session: the tunnel keyed from it and who is at the other end."""

    tunnel: Tunnel
    keys: SessionKeys


async def open_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       credentials: NodeCredentials, *, initiator: bool,
                       tunnel_options: dict[str, Any] | None = None,
                       **options: Any) -> SecureSession:
    """Handshake over the stream as ``initiator`` or responder, then build the tunnel."""
    run = initiate if initiator else respond
    keys = await run(reader, writer, credentials, **options)
    return SecureSession(tunnel_for(keys, **(tunnel_options or {})), keys)
