"""The leader's connection to the web service (the client side of ``server/protocol.py``).

Only the mesh's elected leader runs an ``Uplink``. It connects over TLS to the service
whose certificate hash it pinned (no CA is trusted), logs in with its membership
certificate and its election term, then

* sends the full inventory (``full_inventory()``, in messages of bounded size) on every
  connect, and deltas (``report``) while connected; likewise the mesh's root-signed
  documents (``documents``: revocation list, allowlist; ``send_document``), on connect
  and whenever the mesh adopts a newer one;
* adopts the root-signed documents the service sends (``document``) into ``documents``
  (newer version wins; membership then spreads them through the mesh);
* hands commands the service delivers to ``on_commands`` (the leader relays them), and
  reports targets it cannot reach with ``nack``;
* sends signed results (``send_result``) after writing them to its spool directory, and
  deletes each only when the service acknowledges it, so results survive a service
  outage and a restart of the leader; every connect re-sends what is still spooled;
* reconnects with exponential backoff and full jitter while the service is down.

A refusal that retrying cannot fix (stale term, superseded, unknown mesh, failed login)
ends ``run`` with ``UplinkRefused``: the agent must not go on acting as leader at this term.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from meshagent import codec
from meshagent.atomicfile import write_atomically
from meshagent.errors import MeshError
from meshagent.identity import MembershipCertificate, NodeIdentity
from meshagent.log import get_logger
from meshagent.server.protocol import (
    MAX_ITEMS,
    MAX_UPLINK_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Close,
    LeaderAuth,
    ProtocolError,
    decode_message,
    encode_message,
    items_of,
    require,
    sign_leader_auth,
)
from meshagent.trustdocs import REVOCATIONS, TrustDocument, TrustDocumentError, TrustDocuments

__all__ = ["DeliveredCommand", "NodeReport", "ResultSpool", "Uplink", "UplinkError",
           "UplinkRefused"]

log = get_logger(__name__)

ID_BYTES = 16
# Inventory messages are cut well below the service's message limit.
INVENTORY_CHUNK_BYTES = MAX_UPLINK_MESSAGE_BYTES // 2
LOGIN_TIMEOUT_S = 10.0
# How long stop() waits for the service to acknowledge a close before cutting the session.
STOP_CLOSE_TIMEOUT_S = 2.0


class UplinkError(MeshError):
    """The uplink failed in a way that retrying may fix."""


class UplinkRefused(UplinkError):
    """The service refused this leader for good (at this term); ``code`` says why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"web service refused the uplink ({code}): {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class NodeReport:
    """One node as the leader sees it; ``record`` is its signed record wire, or None if
    unchanged since the last report."""

    node_id: bytes
    state: str
    last_seen: float
    record: bytes | None = None

    def to_value(self) -> dict[str, Any]:
        return {"node": self.node_id, "state": self.state, "seen": self.last_seen,
                "record": self.record}


@dataclass(frozen=True)
class DeliveredCommand:
    command_id: bytes
    node_id: bytes
    wire: bytes  # SignedCommand wire, as the operator signed it


class ResultSpool:
    """Results not yet acknowledged by the service, one file each, written atomically."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, command_id: bytes, node_id: bytes) -> Path:
        return self.directory / f"{command_id.hex()}-{node_id.hex()}.result"

    def add(self, command_id: bytes, node_id: bytes, wire: bytes) -> None:
        write_atomically(self._path(command_id, node_id), wire, mode=0o666)

    def remove(self, command_id: bytes, node_id: bytes) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(command_id, node_id).unlink()

    def pending(self) -> list[tuple[bytes, bytes, bytes]]:
        """(command id, node id, wire) of every spooled result, oldest first."""
        found = []
        for path in sorted(self.directory.glob("*.result"), key=lambda p: p.stat().st_mtime):
            try:
                command_hex, node_hex = path.stem.split("-")
                found.append((bytes.fromhex(command_hex), bytes.fromhex(node_hex),
                              path.read_bytes()))
            except (ValueError, OSError) as exc:
                log.warning("spool_entry_unreadable", path=str(path), error=str(exc))
        return found

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.result"))


class Uplink:
    """One leader's uplink at one term. ``run()`` until stopped or refused."""

    def __init__(self, url: str, pin: bytes, identity: NodeIdentity,
                 cert: MembershipCertificate, term: int, spool: ResultSpool,
                 on_commands: Callable[[list[DeliveredCommand]], Awaitable[None]],
                 full_inventory: Callable[[], Sequence[NodeReport]], *,
                 revocations: Callable[[], bytes | None] | None = None,
                 documents: TrustDocuments | None = None,
                 backoff_min_s: float = 0.5, backoff_max_s: float = 30.0,
                 heartbeat_s: float = 20.0) -> None:
        self.url = url
        self.pin = pin
        self.identity = identity
        self.cert = cert
        self.term = term
        self.spool = spool
        self.on_commands = on_commands
        self.full_inventory = full_inventory
        self.revocations = revocations
        self.documents = documents
        self._document_sends: set[asyncio.Task[bool]] = set()
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.heartbeat_s = heartbeat_s
        self.connected = asyncio.Event()
        self.connects = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = asyncio.Event()
        self._attempt: asyncio.Future[None] | None = None  # the connect/session under way
        self._send_lock = asyncio.Lock()

    # --- public -------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until ``stop()``; raises UplinkRefused on a final refusal."""
        delay = self.backoff_min_s
        connector = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(self.pin), limit=1)
        unsubscribe = self.documents.on_adopted(self._document_adopted) \
            if self.documents is not None else None
        async with contextlib.AsyncExitStack() as cleanup:
            if unsubscribe is not None:
                cleanup.callback(unsubscribe)
            http = await cleanup.enter_async_context(aiohttp.ClientSession(connector=connector))
            while not self._stopping.is_set():
                self._attempt = asyncio.ensure_future(self._session(http))
                try:
                    await self._attempt
                    delay = self.backoff_min_s  # a session was established: start over
                except asyncio.CancelledError:
                    if not (self._stopping.is_set() and self._attempt.cancelled()):
                        raise
                    # stop() cut a connect or login short: nothing is left half done
                except UplinkRefused:
                    raise
                except (aiohttp.ClientError, OSError, TimeoutError, UplinkError,
                        ProtocolError) as exc:
                    log.warn_limited("uplink_down", key=self.url, url=self.url,
                                     error=f"{type(exc).__name__}: {exc}", retry_s=delay)
                finally:
                    self._attempt = None
                    self.connected.clear()
                    self._ws = None
                if self._stopping.is_set():
                    break
                # Full jitter: leaders of many meshes do not come back in lockstep.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(),
                                           random.uniform(delay / 2, delay))
                delay = min(self.backoff_max_s, delay * 2)

    async def stop(self) -> None:
        """Close the session and return promptly, also while a connect or login is under
        way (a leader stepping down must not hold on to the service for a TLS timeout)."""
        self._stopping.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.close(), STOP_CLOSE_TIMEOUT_S)
        attempt = self._attempt
        if attempt is not None and not attempt.done():
            attempt.cancel()

    async def report(self, nodes: Sequence[NodeReport]) -> bool:
        """Send an inventory delta now; False (dropped) when not connected: the next
        connect sends the full inventory anyway."""
        if not self.connected.is_set():
            return False
        try:
            await self._send_inventory(nodes, full=False)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

    async def send_result(self, command_id: bytes, node_id: bytes, wire: bytes) -> None:
        """Spool the result durably, then send it if connected (else on reconnect)."""
        self.spool.add(command_id, node_id, wire)
        if self.connected.is_set():
            with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                await self._send("results", items=[
                    {"id": command_id, "node": node_id, "result": wire}])

    async def send_revocations(self, wire: bytes) -> bool:
        """Hand the service a newer root-signed revocation list now (``send_document``)."""
        return await self.send_document(REVOCATIONS, wire)

    async def send_document(self, kind: str, wire: bytes) -> bool:
        """Hand the service a root-signed document now (kept if newer); False when not
        connected (the held documents are sent on every connect)."""
        if not self.connected.is_set():
            return False
        try:
            await self._send("document", name=kind, doc=wire)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

    def _document_adopted(self, kind: str, document: TrustDocument) -> None:
        task = asyncio.get_running_loop().create_task(self.send_document(kind,
                                                                         document.to_wire()))
        self._document_sends.add(task)
        task.add_done_callback(self._document_sends.discard)

    def _held_documents(self) -> dict[str, bytes]:
        held = self.documents.wires() if self.documents is not None else {}
        current = self.revocations() if self.revocations else None
        if current is not None:
            held.setdefault(REVOCATIONS, current)
        return held

    async def nack(self, command_id: bytes, node_id: bytes, reason: str) -> None:
        """Tell the service the target is unreachable: it keeps the command queued."""
        await self._send("nack", items=[{"id": command_id, "node": node_id, "reason": reason}])

    # --- one connection ---------------------------------------------------------------

    async def _send(self, kind: str, **fields: Any) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("uplink is not connected")
        async with self._send_lock:
            await ws.send_bytes(encode_message(kind, **fields))

    async def _session(self, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(self.url, max_msg_size=MAX_UPLINK_MESSAGE_BYTES,
                                   heartbeat=self.heartbeat_s, compress=0,
                                   timeout=aiohttp.ClientWSTimeout(ws_close=5.0)) as ws:
            self._ws = ws
            await self._login(ws)
            self.connects += 1
            log.event("uplink_connected", url=self.url, term=self.term,
                      mesh=self.cert.mesh_id.hex())
            # The mesh's root-signed documents first (the service then refuses what the
            # revocation list revokes), spooled results next: the service delivers pending
            # commands when the full inventory arrives, and must know by then which ones
            # are already done.
            for kind, wire in self._held_documents().items():
                await self._send("document", name=kind, doc=wire)
            await self._resend_spooled()
            await self._send_inventory(self.full_inventory(), full=True)
            self.connected.set()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await self._handle(*decode_message(msg.data))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise UplinkError(f"uplink error: {ws.exception()}")
            self._raise_for_close(ws)

    async def _login(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        msg = await ws.receive(timeout=LOGIN_TIMEOUT_S)
        if msg.type != aiohttp.WSMsgType.BINARY:
            self._raise_for_close(ws)
            raise UplinkError(f"expected a challenge, got {msg.type.name}")
        kind, challenge = decode_message(msg.data)
        if kind != "challenge" or challenge.get("v") != PROTOCOL_VERSION:
            raise UplinkError(f"unexpected {kind!r} (version {challenge.get('v')}) at login")
        if require(challenge, "server", bytes) != self.pin:
            raise UplinkError("the service names another certificate than the pinned one")
        auth = LeaderAuth(require(challenge, "nonce", bytes), self.pin, self.cert.mesh_id,
                          self.cert.node_id, self.term)
        await ws.send_bytes(encode_message(
            "hello", cert=self.cert.to_wire(), term=self.term,
            auth=sign_leader_auth(self.identity.sign_key, auth).to_wire()))
        msg = await ws.receive(timeout=LOGIN_TIMEOUT_S)
        if msg.type == aiohttp.WSMsgType.BINARY:
            kind, fields = decode_message(msg.data)
            if kind == "welcome":
                return
            if kind == "error":
                msg = await ws.receive(timeout=LOGIN_TIMEOUT_S)  # the close that follows
        self._raise_for_close(ws)
        raise UplinkError("login was not answered")

    def _raise_for_close(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        code = ws.close_code
        if code is None:
            return
        try:
            known = Close(code)
        except ValueError:
            raise UplinkError(f"service closed the uplink with code {code}") from None
        if known.retry:
            raise UplinkError(f"service closed the uplink: {known.name}")
        if known in (Close.STALE_TERM, Close.SUPERSEDED, Close.UNKNOWN_MESH, Close.AUTH_FAILED,
                     Close.MALFORMED):
            raise UplinkRefused(code, known.name.lower())
        raise UplinkError(f"service closed the uplink: {known.name}")

    async def _send_inventory(self, nodes: Sequence[NodeReport], full: bool) -> None:
        """Cut into messages under INVENTORY_CHUNK_BYTES and MAX_ITEMS items; only the
        first of a full listing carries full=True."""
        chunk: list[dict[str, Any]] = []
        size = 0
        first = True
        for node in nodes:
            item = node.to_value()
            item_size = len(codec.pack(item))
            if chunk and (size + item_size > INVENTORY_CHUNK_BYTES or len(chunk) >= MAX_ITEMS):
                await self._send("inventory", full=full and first, nodes=chunk)
                chunk, size, first = [], 0, False
            chunk.append(item)
            size += item_size
        if chunk or (full and first):
            await self._send("inventory", full=full and first, nodes=chunk)

    async def _resend_spooled(self) -> None:
        pending = self.spool.pending()
        for start in range(0, len(pending), 200):
            await self._send("results", items=[
                {"id": c, "node": n, "result": w} for c, n, w in pending[start:start + 200]])

    async def _handle(self, kind: str, fields: dict[str, Any]) -> None:
        if kind == "commands":
            delivered = [DeliveredCommand(require(i, "id", bytes, ID_BYTES),
                                          require(i, "node", bytes, ID_BYTES),
                                          require(i, "cmd", bytes)) for i in items_of(fields)]
            await self.on_commands(delivered)
        elif kind == "ack":
            for item in items_of(fields):
                self.spool.remove(require(item, "id", bytes), require(item, "node", bytes))
        elif kind == "document":
            document_kind, wire = require(fields, "name", str), require(fields, "doc", bytes)
            if self.documents is not None:
                # A refused document is counted and logged by the store; the uplink stays.
                with contextlib.suppress(TrustDocumentError):
                    self.documents.offer(document_kind, wire, f"service:{self.url}")
        elif kind == "error":
            log.warning("uplink_service_error", reason=str(fields.get("reason")))
        else:
            log.warn_limited("uplink_unknown_message", key=kind, kind=kind)
