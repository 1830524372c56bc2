"""The leaders' WebSocket endpoint (``GET /uplink``): login, fencing, then messages.

See ``protocol.py`` for the messages. One task per connection reads messages in order;
the service may call ``send_commands`` from other tasks (a console submission), so
sends go through one lock. A connection that breaks the protocol gets an ``error``
message and a close code, and a rate-limited log line; nothing of the offending
message is stored. A database outage closes the connection with ``DB_UNAVAILABLE``
before anything is acknowledged, so the leader keeps its results and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from typing import Any

from aiohttp import WSMsgType, web

from meshagent.errors import MeshError
from meshagent.identity import MembershipCertificate
from meshagent.log import get_logger
from meshagent.server.appkeys import SERVER_CERT_SHA256, SERVICE
from meshagent.server.db import CommandRow, DatabaseUnavailable
from meshagent.server.protocol import (
    AUTH_KIND,
    MAX_UPLINK_MESSAGE_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    Close,
    LeaderAuth,
    ProtocolError,
    decode_message,
    encode_message,
    items_of,
    leader_auth_body,
    require,
)
from meshagent.server.service import MeshService, ResultItem, ServiceError
from meshagent.signing import SignatureError, Signed, verify
from meshagent.trustdocs import REVOCATIONS, TrustDocumentError

__all__ = ["LeaderConnection", "uplink_handler", "LOGIN_TIMEOUT_S", "HEARTBEAT_S"]

log = get_logger(__name__)

LOGIN_TIMEOUT_S = 10.0
HEARTBEAT_S = 20.0
ID_BYTES = 16
MAX_STATE_CHARS = 32


class LoginRefused(MeshError):
    def __init__(self, code: Close, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class MessageTooBig(ProtocolError):
    """A frame above the protocol's limit (but below the transport's hard cap)."""


class LeaderConnection:
    """One leader's authenticated uplink; implements ``service.LeaderSession``."""

    def __init__(self, ws: web.WebSocketResponse, mesh_id: bytes, node_id: bytes, term: int,
                 peer: str) -> None:
        self.ws = ws
        self.mesh_id = mesh_id
        self.node_id = node_id
        self.term = term
        self.peer = peer
        self._send_lock = asyncio.Lock()
        # Commands wait until the leader has been welcomed: the login exchange comes first.
        self.welcomed = asyncio.Event()

    async def send(self, kind: str, **fields: Any) -> None:
        async with self._send_lock:
            await self.ws.send_bytes(encode_message(kind, **fields))

    async def send_commands(self, commands: Sequence[CommandRow]) -> None:
        items = [{"id": c.command_id, "node": c.node_id, "cmd": c.envelope} for c in commands]
        await self.welcomed.wait()
        if not self.ws.closed:
            await self.send("commands", items=items)

    async def send_document(self, kind: str, wire: bytes) -> None:
        await self.welcomed.wait()
        if not self.ws.closed:
            await self.send("document", name=kind, doc=wire)

    async def close_revoked(self) -> None:
        log.event("leader_revoked", mesh=self.mesh_id.hex(), node=self.node_id.hex())
        await close_with(self.ws, Close.AUTH_FAILED, "this node's certificate is revoked")

    async def close_superseded(self, term: int) -> None:
        log.event("leader_superseded", mesh=self.mesh_id.hex(), node=self.node_id.hex(),
                  term=self.term, new_term=term)
        await close_with(self.ws, Close.SUPERSEDED, f"superseded by term {term}")


async def close_with(ws: web.WebSocketResponse, code: Close, reason: str) -> None:
    if ws.closed:
        return
    try:
        await ws.send_bytes(encode_message("error", reason=reason, code=int(code)))
    except (ConnectionError, RuntimeError):
        pass  # the peer is already gone; the close below is best effort too
    await ws.close(code=int(code), message=reason[:120].encode())


def _login(service: MeshService, server_hash: bytes, nonce: bytes,
           hello: dict[str, Any]) -> tuple[MembershipCertificate, int]:
    """The verified certificate and term of a ``hello``; LoginRefused otherwise."""
    try:
        cert_wire = require(hello, "cert", bytes)
        term = require(hello, "term", int)
        auth = Signed.from_wire(require(hello, "auth", bytes))
        cert = MembershipCertificate.from_wire(cert_wire)
    except MeshError as exc:
        raise LoginRefused(Close.MALFORMED, f"malformed hello: {exc}") from exc
    mesh = service.meshes.get(cert.mesh_id)
    if mesh is None:
        raise LoginRefused(Close.UNKNOWN_MESH, f"mesh {cert.mesh_id.hex()} is not served here")
    if term < 0:
        raise LoginRefused(Close.MALFORMED, "term must not be negative")
    try:
        cert = MembershipCertificate.verify(cert, mesh.trust,
                                            revocations=service.revocations.get(cert.mesh_id))
        body = verify(auth, AUTH_KIND, cert.sign_public)
    except (MeshError, SignatureError) as exc:
        raise LoginRefused(Close.AUTH_FAILED, f"login refused: {exc}") from exc
    expected = leader_auth_body(LeaderAuth(nonce, server_hash, cert.mesh_id, cert.node_id, term))
    if body != expected:
        raise LoginRefused(Close.AUTH_FAILED, "login signature is not over this challenge")
    return cert, term


def _inventory(fields: dict[str, Any]) -> tuple[bool, list[tuple[bytes, str, float, bytes | None]]]:
    full = require(fields, "full", bool)
    nodes = []
    for item in items_of(fields):
        state = require(item, "state", str)
        record = item.get("record")
        if record is not None and not isinstance(record, bytes) or len(state) > MAX_STATE_CHARS:
            raise ProtocolError("inventory item has a bad record or state")
        nodes.append((require(item, "node", bytes, ID_BYTES), state.lower(),
                      float(require(item, "seen", (int, float))), record))
    return full, nodes


def _keys(fields: dict[str, Any], *extra: str) -> list[dict[str, Any]]:
    items = items_of(fields)
    for item in items:
        require(item, "id", bytes, ID_BYTES)
        require(item, "node", bytes, ID_BYTES)
        for key in extra:
            require(item, key, (bytes, str))
    return items


async def _serve(service: MeshService, conn: LeaderConnection) -> None:
    """Handle one authenticated session's messages until it closes."""
    async for msg in conn.ws:
        if msg.type == WSMsgType.ERROR:
            error = conn.ws.exception()
            log.warn_limited("uplink_error", key=conn.peer, peer=conn.peer, error=str(error))
            return
        if msg.type != WSMsgType.BINARY:
            raise ProtocolError(f"expected a binary frame, got {msg.type.name}")
        if len(msg.data) > MAX_UPLINK_MESSAGE_BYTES:
            raise MessageTooBig(f"message of {len(msg.data)} bytes exceeds "
                                f"{MAX_UPLINK_MESSAGE_BYTES}")
        kind, fields = decode_message(msg.data)
        if kind == "inventory":
            full, nodes = _inventory(fields)
            await service.apply_inventory(conn, full, nodes)
        elif kind == "results":
            items = [ResultItem(i["id"], i["node"], i["result"])
                     for i in _keys(fields, "result")]
            done = await service.store_results(conn, items)
            await conn.send("ack", items=[{"id": i.command_id, "node": i.node_id} for i in done])
        elif kind == "document":
            # The mesh may hold an older document than ours (the leader gets ours on
            # connect) or junk a member gossiped: counted and logged, the session stays.
            with contextlib.suppress(TrustDocumentError):
                await service.adopt_document(conn.mesh_id, require(fields, "name", str),
                                             require(fields, "doc", bytes),
                                             f"leader:{conn.node_id.hex()}")
        elif kind == "revocations":
            try:
                await service.adopt_document(conn.mesh_id, REVOCATIONS,
                                             require(fields, "list", bytes),
                                             f"leader:{conn.node_id.hex()}")
            except TrustDocumentError as exc:
                raise ProtocolError(f"revocation list refused: {exc}") from exc
        elif kind == "nack":
            items = _keys(fields, "reason")
            await service.requeue_unreachable(
                conn, [(i["id"], i["node"]) for i in items],
                str(items[0]["reason"])[:200] if items else "")
        else:
            raise ProtocolError(f"unknown message type {kind!r}")


async def uplink_handler(request: web.Request) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    server_hash = request.app[SERVER_CERT_SHA256]
    peer = request.remote or "?"
    # The transport's hard cap is twice the protocol's limit: frames in between get a clean
    # 1009 close from _serve; larger ones make aiohttp drop the connection unread.
    ws = web.WebSocketResponse(max_msg_size=2 * MAX_UPLINK_MESSAGE_BYTES,
                               heartbeat=HEARTBEAT_S, compress=False)
    await ws.prepare(request)
    nonce = secrets.token_bytes(NONCE_BYTES)
    conn: LeaderConnection | None = None
    attached = False
    try:
        await ws.send_bytes(encode_message("challenge", nonce=nonce, server=server_hash,
                                           v=PROTOCOL_VERSION))
        msg = await ws.receive(timeout=LOGIN_TIMEOUT_S)
        if msg.type != WSMsgType.BINARY:
            raise LoginRefused(Close.MALFORMED, "expected a binary hello")
        kind, hello = decode_message(msg.data)
        if kind != "hello":
            raise LoginRefused(Close.MALFORMED, f"expected hello, got {kind!r}")
        cert, term = _login(service, server_hash, nonce, hello)
        conn = LeaderConnection(ws, cert.mesh_id, cert.node_id, term, peer)
        claim = await service.attach_leader(conn)
        if not claim.accepted:
            raise LoginRefused(Close.STALE_TERM,
                               f"stale leader: term {term} of node {cert.node_id.hex()}; "
                               f"mesh is held at term {claim.holder.term} by "
                               f"{claim.holder.node_id.hex()}")
        attached = True
        log.event("leader_connected", mesh=cert.mesh_id.hex(), node=cert.node_id.hex(),
                  term=term, peer=peer)
        await conn.send("welcome", mesh=cert.mesh_id, term=term)
        conn.welcomed.set()
        for document_kind, wire in service.held_documents(cert.mesh_id).items():
            await conn.send_document(document_kind, wire)
        await _serve(service, conn)
    except LoginRefused as exc:
        log.warn_limited("leader_refused", key=(peer, exc.code), peer=peer, code=int(exc.code),
                         reason=str(exc))
        await close_with(ws, exc.code, str(exc))
    except MessageTooBig as exc:
        log.warn_limited("uplink_oversize", key=peer, peer=peer, reason=str(exc))
        await close_with(ws, Close.MESSAGE_TOO_BIG, str(exc))
    except ProtocolError as exc:
        log.warn_limited("uplink_malformed", key=peer, peer=peer, reason=str(exc))
        await close_with(ws, Close.MALFORMED, f"malformed message: {exc}")
    except DatabaseUnavailable as exc:
        log.error("uplink_db_unavailable", peer=peer, reason=str(exc))
        await close_with(ws, Close.DB_UNAVAILABLE, "database unavailable, retry later")
    except ServiceError as exc:  # e.g. superseded while a message was in flight
        await close_with(ws, Close.SUPERSEDED, str(exc))
    except TimeoutError:
        await close_with(ws, Close.MALFORMED, "no hello within the login timeout")
    except (ConnectionError, RuntimeError) as exc:
        log.event("uplink_lost", peer=peer, reason=str(exc))
    finally:
        if conn is not None and attached:
            try:
                await service.detach_leader(conn)
            except DatabaseUnavailable as exc:
                log.error("uplink_detach_unrecorded", peer=peer, reason=str(exc))
        if not ws.closed:
            await ws.close()
    return ws
