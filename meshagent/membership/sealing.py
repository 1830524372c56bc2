"""Pairwise keys that seal every membership datagram and stream.

No handshake per probe: two members already know each other's X25519 static keys from
their membership certificates, so each derives the same pair secret
``X25519(my static, peer static)`` (computed once per peer and cached).

Datagrams
    key(lo->hi) | key(hi->lo) = HKDF-SHA256(secret, 64, salt = mesh id,
                                  info = "meshagent/datagram" | lo id | hi id)
    (lo, hi: the two node ids in byte order; one derivation per pair, both directions)
    wire = version(1) | flags(1) | sender id(16) | receiver id(16) | epoch(8) | counter(4)
           [| cert length(2) | sender certificate]  (flag 1: first contact)
           | AES-256-GCM(key(sender->receiver), nonce = epoch | counter,
                         aad = everything before, plaintext)

    ``epoch`` is chosen at start (milliseconds of wall clock << 16 | 16 random bits) and
    moves on when a counter would wrap, so a restarted agent never reuses a (key, nonce)
    pair (short of a clock set back onto the same millisecond and the same 16 random
    bits). Receivers keep a replay window
    (``core.ReplayWindow``, RFC 6479) per peer for its newest epoch and refuse older
    epochs while the peer is a live member (``accept_older_epoch`` lets membership
    accept a restarted agent whose clock went backwards once it is known to be gone).
    A sender attaches its certificate until the peer has sent it anything authenticated
    (proof the peer knows its key); the receiver verifies that certificate against the
    mesh trust and revocations (cached; at most ``CERTIFICATE_CHECKS_PER_S`` new ones a
    second, whatever their source) before deriving a key. Outsiders read nothing
    but node ids, and a revoked node is refused as soon as its certificate is forgotten.
    There is no forward secrecy for datagrams: they carry membership state, which every
    member may read anyway.

Streams (full-state exchange, TCP pings, liveness watches)
    opener -> responder: hello {v, node, cert, nonce, features[, record]}  (plaintext:
    responder -> opener: hello {v, node, cert, nonce, features}    certificates are public)
    keys = HKDF-SHA256(secret, 64, salt = mesh id,
                       info = "meshagent/stream" | opener | responder | nonce_o | nonce_r)
    then length-prefixed AES-256-GCM messages, nonce = per-direction message counter.
    Fresh nonces from both sides make a recorded stream useless to replay; only the
    holder of the certificate's X25519 key can derive the keys. A responder may take a
    certificate that has ended (``accept_stream(ended_ok=True)``): the stream is marked,
    the certificate is not learnt, and the only thing served on it is the node's renewal.
    ``features`` names the stream requests a side takes beyond the first release's
    (``HELLO_FEATURES``; absent from an older agent's hello): the opener reads the
    responder's before choosing its request (``SealedStream.peer_features``).
    ``record`` is the opener's own signed node record, sent when it opens a state
    exchange (``SealedStream.peer_record``): a joiner's record reaches the responder one
    round trip before its request does. It is read before the opener has proven its key,
    so it is worth exactly what the signatures inside it are worth, like gossip: the
    receiver verifies it as any record and does not take the stream's source address for
    the node's (a replayed hello replays a record, nothing more). Older agents ignore it.

AES-GCM, HKDF and the replay window come from ``meshagent.core``; X25519 from the node's
identity.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meshagent import codec, core
from meshagent.errors import DecodeError, MeshError
from meshagent.identity import MembershipCertificate, NodeIdentity, RevocationList
from meshagent.membership.ratelimit import SourceRateLimiter
from meshagent.record import MAX_RECORD_BYTES, RecordRejected, RecordVerifier
from meshagent.transport import MessageStream

__all__ = ["PeerKeys", "SealError", "SealedStream", "DATAGRAM_OVERHEAD"]

VERSION = 1
FLAG_CERT = 1
_HEADER = struct.Struct(">BB16s16sQI")
_COUNTER_LIMIT = 1 << 32
_CERT_LENGTH = struct.Struct(">H")
DATAGRAM_OVERHEAD = _HEADER.size + core.TAG_BYTES
MAX_CERT_BYTES = 4096
# Forgotten peers whose nonce counter and replay window are kept, should they come back.
MAX_RETIRED = 1024
CERTIFICATE_CHECKS_PER_S = 500.0
NONCE_PAD = b"\0\0\0\0"
# Stream requests this agent takes beyond the first release's (``streams.py``).
HELLO_FEATURES = ("versions",)
MAX_FEATURES = 32


class SealError(MeshError):
    """A datagram or stream could not be opened; ``reason`` is its drop counter."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _digest(wire: bytes) -> bytes:
    return hashlib.blake2b(wire, digest_size=16).digest()


def _nonce(counter: int) -> bytes:
    """Stream nonces: a per-direction message counter (each stream has fresh keys)."""
    return NONCE_PAD + counter.to_bytes(8, "big")


def _datagram_nonce(epoch: int, counter: int) -> bytes:
    return epoch.to_bytes(8, "big") + counter.to_bytes(4, "big")


@dataclass
class _Peer:
    cert: MembershipCertificate
    cert_digest: bytes  # of the certificate's wire bytes: is an attached one the same?
    secret: bytes | None = None
    keys: tuple[bytes, bytes] | None = None  # (to the peer, from the peer)
    send_counter: int = 0
    knows_me: bool = False
    recv_epoch: int = -1
    window: core.ReplayWindow | None = field(default=None, repr=False)
    ended: bool = False  # a certificate past its end, for one stream (never learnt)


class PeerKeys:
    """This node's pairwise keys with every member whose certificate it accepted."""

    def __init__(self, identity: NodeIdentity, certificate: MembershipCertificate,
                 verifier: RecordVerifier,
                 revocations: Callable[[], RevocationList | None] = lambda: None,
                 epoch: int | None = None) -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self.certificate_wire = certificate.to_wire()
        self.verifier = verifier
        self.mesh_id = verifier.trust.mesh_id
        self._revocations = revocations
        self.epoch = epoch if epoch is not None else (
            (int(time.time() * 1000) << 16) | secrets.randbits(16))
        self._peers: dict[bytes, _Peer] = {}
        self._retired: dict[bytes, _Peer] = {}  # forgotten, counters kept (``forget``)
        # Checking an unknown certificate costs a signature verification: bound how many
        # per second strangers (any source address) can make us do.
        self._certificate_checks = SourceRateLimiter(CERTIFICATE_CHECKS_PER_S,
                                                     2 * CERTIFICATE_CHECKS_PER_S)
        self.accept_older_epoch: Callable[[bytes], bool] = lambda node_id: False
        self.features: tuple[str, ...] = HELLO_FEATURES  # announced in our stream hellos

    # -- peers ------------------------------------------------------------------------

    def learn(self, cert: MembershipCertificate) -> None:
        """Remember a verified certificate (a new serial replaces the old one).

        The pair key depends only on the two nodes' keys, so a peer that renewed its
        certificate, or was forgotten and comes back, with the same keys keeps its nonce
        counter and replay window: a counter restarted under our unchanged epoch would
        seal two datagrams under one AES-GCM nonce, and a fresh window would take the
        peer's earlier datagrams again."""
        peer = self._peers.get(cert.node_id)
        if peer is not None and peer.cert.serial == cert.serial:
            return
        known = peer if peer is not None else self._retired.pop(cert.node_id, None)
        fresh = _Peer(cert, _digest(cert.to_wire()))
        if known is not None and known.cert.dh_public == cert.dh_public:
            fresh.secret, fresh.keys = known.secret, known.keys
            fresh.send_counter = known.send_counter
            fresh.recv_epoch, fresh.window = known.recv_epoch, known.window
            fresh.knows_me = known.knows_me and peer is not None  # a returner may not
        self._peers[cert.node_id] = fresh

    def use_certificate(self, certificate: MembershipCertificate) -> None:
        """Present ``certificate`` from now on (a renewal of ours): attached to the next
        datagram to every peer, and in every stream hello."""
        self.certificate_wire = certificate.to_wire()
        for peer in self._peers.values():
            peer.knows_me = False

    def forget(self, node_id: bytes) -> None:
        """Stop accepting ``node_id``'s datagrams (it left the view: revoked, expired,
        reaped). Its counters are kept for ``learn``, up to ``MAX_RETIRED`` peers; past
        that, every kept one is let go and our epoch moves on, a fresh nonce space for
        every peer (replays of a let-go peer's old datagrams are then refused only by
        membership's incarnations)."""
        peer = self._peers.pop(node_id, None)
        if peer is None:
            return
        if len(self._retired) >= MAX_RETIRED:
            self._retired.clear()
            self._next_epoch()
        self._retired[node_id] = peer

    def _new_window(self) -> core.ReplayWindow:
        """The replay window of a peer's new epoch: the C core's (a simulation of
        thousands of members substitutes a smaller one with the same contract)."""
        return core.ReplayWindow()

    def knows(self, node_id: bytes) -> bool:
        return node_id in self._peers

    def knows_me(self, node_id: bytes) -> bool:
        """Whether ``node_id`` has shown it holds our certificate (no need to attach it)."""
        peer = self._peers.get(node_id)
        return peer is not None and peer.knows_me

    def peer_forgot_me(self, node_id: bytes) -> None:
        """Attach our certificate again (the peer may have restarted or lost state)."""
        peer = self._peers.get(node_id)
        if peer is not None:
            peer.knows_me = False

    def _secret(self, peer: _Peer) -> bytes:
        if peer.secret is None:
            peer.secret = self.identity.dh(peer.cert.dh_public)
        return peer.secret

    def _pair_keys(self, peer: _Peer) -> tuple[bytes, bytes]:
        """(key to the peer, key from the peer), derived once per peer."""
        if peer.keys is None:
            mine, theirs = self.node_id, peer.cert.node_id
            low, high = sorted((mine, theirs))
            keys = core.hkdf_sha256(self._secret(peer), 64, self.mesh_id,
                                    b"meshagent/datagram" + low + high)
            low_to_high, high_to_low = keys[:32], keys[32:]
            peer.keys = (low_to_high, high_to_low) if mine == low else (high_to_low,
                                                                         low_to_high)
        return peer.keys

    # -- datagrams --------------------------------------------------------------------

    def seal(self, peer_id: bytes, plaintext: bytes) -> bytes:
        """One sealed datagram for ``peer_id``; SealError("unknown_peer") without its cert."""
        peer = self._peers.get(peer_id)
        if peer is None:
            raise SealError(f"no certificate for node {peer_id.hex()}", "unknown_peer")
        if peer.send_counter >= _COUNTER_LIMIT:
            self._next_epoch()
        counter = peer.send_counter
        peer.send_counter += 1
        flags = 0 if peer.knows_me else FLAG_CERT
        header = _HEADER.pack(VERSION, flags, self.node_id, peer_id, self.epoch, counter)
        if flags & FLAG_CERT:
            header += _CERT_LENGTH.pack(len(self.certificate_wire)) + self.certificate_wire
        return header + core.aes_gcm_seal(self._pair_keys(peer)[0],
                                          _datagram_nonce(self.epoch, counter), header,
                                          plaintext)

    def _next_epoch(self) -> None:
        """A fresh nonce space for every peer (a counter would wrap)."""
        now = (int(time.time() * 1000) << 16) | secrets.randbits(16)
        self.epoch = max(self.epoch + 1, now)
        for peer in self._peers.values():
            peer.send_counter = 0

    def open(self, datagram: bytes) -> tuple[bytes, bytes]:
        """(sender id, plaintext) of an authentic, fresh datagram, or SealError."""
        if len(datagram) < DATAGRAM_OVERHEAD:
            raise SealError("datagram too short", "malformed")
        version, flags, sender, receiver, epoch, counter = _HEADER.unpack_from(datagram)
        if version != VERSION:
            raise SealError(f"datagram version {version}", "malformed")
        if receiver != self.node_id:
            raise SealError("datagram for another node", "misdirected")
        if sender == self.node_id:
            raise SealError("datagram claims to come from this node", "malformed")
        offset = _HEADER.size
        if flags & FLAG_CERT:
            offset = self._learn_attached(datagram, offset, sender)
        peer = self._peers.get(sender)
        if peer is None:
            raise SealError(f"datagram from unknown node {sender.hex()}", "unknown_sender")
        if epoch < peer.recv_epoch and not self.accept_older_epoch(sender):
            raise SealError("datagram from an older run of the sender", "replay")
        window = peer.window if epoch == peer.recv_epoch else None
        if window is not None and not window.accepts(counter):
            raise SealError("datagram replayed", "replay")
        header = datagram[:offset]
        try:
            plaintext = core.aes_gcm_open(self._pair_keys(peer)[1],
                                          _datagram_nonce(epoch, counter), header,
                                          datagram[offset:])
        except core.AuthenticationError as exc:
            raise SealError("datagram does not authenticate", "auth") from exc
        if window is None:
            window = self._new_window()
            peer.recv_epoch, peer.window = epoch, window
        try:
            window.check_and_update(counter)
        except core.CoreError as exc:
            raise SealError("datagram replayed", "replay") from exc
        peer.knows_me = True
        return sender, plaintext

    def _learn_attached(self, datagram: bytes, offset: int, sender: bytes) -> int:
        if len(datagram) < offset + _CERT_LENGTH.size:
            raise SealError("datagram too short for its certificate", "malformed")
        (length,) = _CERT_LENGTH.unpack_from(datagram, offset)
        start = offset + _CERT_LENGTH.size
        if length > MAX_CERT_BYTES or len(datagram) < start + length + core.TAG_BYTES:
            raise SealError("attached certificate has a bad length", "malformed")
        known = self._peers.get(sender)
        wire = bytes(datagram[start:start + length])
        if known is None or known.cert_digest != _digest(wire):
            if not self._certificate_checks.allow("", time.monotonic()):
                raise SealError("too many new certificates to check", "flood")
            try:
                cert = self.verifier.certificate(wire, self._revocations())
            except RecordRejected as exc:
                raise SealError(f"attached certificate: {exc}", exc.reason) from exc
            if cert.node_id != sender:
                raise SealError("attached certificate is another node's", "bad_certificate")
            self.learn(cert)
        return start + length

    # -- streams ----------------------------------------------------------------------

    async def open_stream(self, stream: MessageStream, timeout: float,
                          expect: bytes | None = None,
                          record: bytes | None = None) -> SealedStream:
        """Opener side of the stream hello; ``expect`` is the node we meant to reach,
        ``record`` our own node record for the hello (a state exchange's)."""
        nonce = os.urandom(16)
        await stream.send(self._hello(nonce, record))
        peer, peer_nonce, features, _ = self._read_hello(await stream.recv(timeout))
        if expect is not None and peer.cert.node_id != expect:
            raise SealError("stream answered by another node", "bad_certificate")
        return self._sealed(stream, peer, self.node_id, peer.cert.node_id, nonce, peer_nonce,
                            opener=True, peer_features=features)

    async def accept_stream(self, stream: MessageStream, timeout: float, *,
                            ended_ok: bool = False) -> SealedStream:
        """Responder side. With ``ended_ok`` a certificate that was valid until it ended
        (this mesh's, root-signed, not revoked) is accepted too, and the stream says so
        (``SealedStream.ended``): the caller serves such a peer nothing but its renewal."""
        peer, peer_nonce, features, record = self._read_hello(await stream.recv(timeout),
                                                              ended_ok)
        nonce = os.urandom(16)
        await stream.send(self._hello(nonce))
        return self._sealed(stream, peer, peer.cert.node_id, self.node_id, peer_nonce, nonce,
                            opener=False, peer_features=features, peer_record=record)

    def _hello(self, nonce: bytes, record: bytes | None = None) -> bytes:
        hello = {"v": VERSION, "node": self.node_id, "cert": self.certificate_wire,
                 "nonce": nonce, "features": self.features}
        if record is not None:
            hello["record"] = record
        return codec.pack(hello)

    def _read_hello(self, data: bytes, ended_ok: bool = False,
                    ) -> tuple[_Peer, bytes, frozenset[str], bytes | None]:
        try:
            hello = codec.unpack(data, MAX_CERT_BYTES + MAX_RECORD_BYTES + 1024)
        except DecodeError as exc:
            raise SealError(f"stream hello: {exc}", "malformed") from exc
        if not isinstance(hello, dict) or hello.get("v") != VERSION or not isinstance(
                hello.get("cert"), bytes) or not isinstance(hello.get("nonce"), bytes) or len(
                hello["nonce"]) != 16:
            raise SealError("stream hello lacks version, certificate or nonce", "malformed")
        features = hello.get("features", [])
        if not (isinstance(features, list) and len(features) <= MAX_FEATURES and all(
                isinstance(name, str) and len(name) <= 32 for name in features)):
            raise SealError("stream hello features are not a short list of names", "malformed")
        record = hello.get("record")
        if record is not None and not (isinstance(record, bytes)
                                       and len(record) <= MAX_RECORD_BYTES):
            raise SealError("stream hello record is not a record's bytes", "malformed")
        ended = None
        try:
            cert = self.verifier.certificate(hello["cert"], self._revocations())
        except RecordRejected as exc:
            try:
                ended = self._ended_certificate(hello["cert"]) if ended_ok else None
            except RecordRejected as late:  # ended, and refused for more than that
                raise SealError(f"stream hello certificate: {late}", late.reason) from late
            if ended is None:
                raise SealError(f"stream hello certificate: {exc}", exc.reason) from exc
            cert = ended
        if cert.node_id == self.node_id:
            raise SealError("stream from this node itself", "self")
        if hello.get("node") != cert.node_id:
            raise SealError("stream hello names the wrong node", "bad_certificate")
        if ended is not None:
            # Not learnt: its datagrams stay refused. One stream's worth of keys.
            return (_Peer(ended, _digest(hello["cert"]), ended=True), hello["nonce"],
                    frozenset(features), record)
        self.learn(cert)
        return self._peers[cert.node_id], hello["nonce"], frozenset(features), record

    def _ended_certificate(self, wire: bytes) -> MembershipCertificate | None:
        """``wire`` if it is a certificate of this mesh that was valid until it ended and
        is not revoked; None if it has not ended (or does not parse); RecordRejected if
        it would be refused even before its end."""
        try:
            expires = MembershipCertificate.from_wire(wire).expires
        except MeshError:
            return None
        if time.time() <= expires:
            return None  # refused for another reason than its end
        return self.verifier.certificate(wire, self._revocations(), now=expires)

    def _sealed(self, stream: MessageStream, peer: _Peer, opener_id: bytes,
                responder_id: bytes, opener_nonce: bytes, responder_nonce: bytes, *,
                opener: bool, peer_features: frozenset[str],
                peer_record: bytes | None = None) -> SealedStream:
        info = b"meshagent/stream" + opener_id + responder_id + opener_nonce + responder_nonce
        keys = core.hkdf_sha256(self._secret(peer), 64, self.mesh_id, info)
        opener_key, responder_key = keys[:32], keys[32:]
        send, recv = (opener_key, responder_key) if opener else (responder_key, opener_key)
        return SealedStream(stream, peer.cert, send, recv, ended=peer.ended,
                            peer_features=peer_features, peer_record=peer_record)


class SealedStream:
    """Messages sealed with per-direction keys and counters over a ``MessageStream``."""

    def __init__(self, stream: MessageStream, peer: MembershipCertificate, send_key: bytes,
                 recv_key: bytes, *, ended: bool = False,
                 peer_features: frozenset[str] = frozenset(),
                 peer_record: bytes | None = None) -> None:
        self.stream = stream
        self.peer = peer
        self.peer_id = peer.node_id
        self.ended = ended  # the peer's certificate has ended (``accept_stream``)
        self.peer_features = peer_features  # from the peer's hello (``HELLO_FEATURES``)
        # The opener's own record from its hello (responder side; unverified bytes).
        self.peer_record = peer_record
        self._send_key = send_key
        self._recv_key = recv_key
        self._sent = 0
        self._received = 0

    async def send(self, message: bytes) -> None:
        sealed = core.aes_gcm_seal(self._send_key, _nonce(self._sent), b"", message)
        self._sent += 1
        await self.stream.send(sealed)

    def send_nowait(self, message: bytes) -> None:
        """Queue a message without waiting for the socket (goodbyes while closing)."""
        sealed = core.aes_gcm_seal(self._send_key, _nonce(self._sent), b"", message)
        self._sent += 1
        with contextlib.suppress(ConnectionError, OSError):
            self.stream.send_nowait(sealed)

    async def recv(self, timeout: float | None = None) -> bytes:
        """The next message; StreamClosed / StreamTimeout, or SealError("auth")."""
        data = await self.stream.recv(timeout)
        try:
            message = core.aes_gcm_open(self._recv_key, _nonce(self._received), b"", data)
        except core.AuthenticationError as exc:
            raise SealError("stream message does not authenticate", "auth") from exc
        self._received += 1
        return message

    def close(self) -> None:
        self.stream.close()
