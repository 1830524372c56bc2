"""The REST API (JSON) used by the console page and ``meshctl``.

Every route but ``/api/login`` and ``/api/info`` needs a session (cookie from
``/api/login``) or ``Authorization: Bearer <admin password or session token>``. Ids are
hex; signed documents are base64 of their wire bytes; times are UNIX seconds.

    POST /api/login              {password}                       -> {token} + cookie
    POST /api/logout
    GET  /api/info                                                -> version, pin, console key
    GET  /api/meshes                                    -> meshes, their leader, nodes per state
    GET  /api/leaders
    GET  /api/nodes?mesh=&state=&tag=k[=v]&q=text&limit=
    GET  /api/nodes/{id}                                          -> node, record, commands
    POST /api/meshes/{id}/documents {kind, doc: base64}  -> {adopted}: a root-signed
                                 document (revocations, allowlist) kept if newer and sent to
                                 the mesh's leader; 403 untrusted_<kind> / foreign_<kind>,
                                 409 stale_<kind> (older than held), 400 malformed_<kind>
    POST /api/meshes/{id}/revocations {list: base64}               -> the same, kind revocations
    POST /api/commands           {command: base64 SignedCommand}  -> 201 {id, nodes}
    POST /api/console/commands   {mesh, target, action, args, ttl} -> signed by the console key
    GET  /api/commands?state=&node=&limit=
    GET  /api/commands/{id}                                       -> per-node states + results
    GET  /api/results?command=&node=&limit=
    GET  /api/audit?after=&command=&limit=
    GET  /api/events                                              -> server-sent change notices

Errors are ``{"error": code, "detail": text}``: 400 malformed, 401 login, 403 refused
command (forged, unknown operator ...), 404, 409 duplicate, 413 body too large, 422 no
matching node, 429 too many failed logins from the address, 503 database unavailable.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from meshagent import __version__
from meshagent.commands import CommandRejected, MalformedCommand, Target
from meshagent.errors import DecodeError
from meshagent.log import get_logger
from meshagent.server.appkeys import SERVER_CERT_SHA256, SERVICE, SESSIONS, THROTTLE
from meshagent.server.auth import SESSION_COOKIE, SESSION_LIFETIME_S
from meshagent.server.db import (
    AuditRow,
    CommandRow,
    DatabaseUnavailable,
    DuplicateCommand,
    LeaderRow,
    NodeFilter,
    NodeRow,
    ResultRow,
)
from meshagent.server.service import NoMatchingNode, ServiceError
from meshagent.trustdocs import REVOCATIONS, TrustDocumentError

__all__ = ["routes", "api_middleware", "MAX_BODY_BYTES"]

log = get_logger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_LIMIT = 10_000
OPEN_PATHS = ("/api/login", "/api/info")
routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(web.HTTPBadRequest):
    def __init__(self, detail: str) -> None:
        super().__init__(text=json.dumps({"error": "bad_request", "detail": detail}),
                         content_type="application/json")


def _error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    return request.cookies.get(SESSION_COOKIE)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Login for /api, and typed errors to JSON statuses (never a traceback page)."""
    if request.path.startswith("/api/") and request.path not in OPEN_PATHS:
        token = _token(request)
        address = request.remote or "?"
        if not request.app[THROTTLE].allowed(address):
            return _error(429, "too_many_failures", "too many failed logins, wait a minute")
        if not token or not request.app[SESSIONS].valid(token):
            if token:
                request.app[THROTTLE].failed(address)
            log.warn_limited("api_unauthorised", key=address, peer=address, path=request.path)
            return _error(401, "login_required", "log in first (POST /api/login)")
    try:
        return await handler(request)
    except DatabaseUnavailable as exc:
        log.error("api_db_unavailable", path=request.path, reason=str(exc))
        return _error(503, "database_unavailable", str(exc))
    except MalformedCommand as exc:
        return _error(400, exc.reason, str(exc))
    except CommandRejected as exc:
        return _error(403, exc.reason, str(exc))
    except DuplicateCommand as exc:
        return _error(409, "duplicate_command", str(exc))
    except NoMatchingNode as exc:
        return _error(422, "no_matching_node", str(exc))
    except ServiceError as exc:
        return _error(409, "refused", str(exc))
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body_too_large", f"request bodies are limited to {MAX_BODY_BYTES}")


# --- parsing helpers ----------------------------------------------------------------

def _hex(text: str, name: str, size: int | None = 16) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise BadRequest(f"{name} must be hex") from exc
    if size is not None and len(value) != size:
        raise BadRequest(f"{name} must be {size} bytes")
    return value


def _opt_hex(request: web.Request, name: str) -> bytes | None:
    text = request.query.get(name)
    return _hex(text, name) if text else None


def _limit(request: web.Request, default: int = 200) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(request.query.get("limit", default))))
    except ValueError as exc:
        raise BadRequest("limit must be an integer") from exc


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


# --- JSON views -----------------------------------------------------------------------

def leader_view(row: LeaderRow) -> dict[str, Any]:
    return {"mesh": row.mesh_id.hex(), "node": row.node_id.hex(), "term": row.term,
            "connected": row.connected, "since": row.since}


def node_view(row: NodeRow, record: bool = False) -> dict[str, Any]:
    view = {"node": row.node_id.hex(), "mesh": row.mesh_id.hex(), "state": row.state,
            "record": row.summary, "last_seen": row.last_seen,
            "via_leader": row.via_leader.hex() if row.via_leader else None}
    if record:
        view["record_wire"] = _b64(row.record)
    return view


def command_view(row: CommandRow) -> dict[str, Any]:
    return {"id": row.command_id.hex(), "node": row.node_id.hex(), "mesh": row.mesh_id.hex(),
            "action": row.action, "operator": row.operator.hex(), "state": row.state.value,
            "created": row.created, "expires": row.expires, "sent_at": row.sent_at,
            "sent_term": row.sent_term, "attempts": row.attempts, "done_at": row.done_at}


def result_view(row: ResultRow) -> dict[str, Any]:
    return {"id": row.command_id.hex(), "node": row.node_id.hex(), "received": row.received,
            **row.summary, "result_wire": _b64(row.result)}


def audit_view(row: AuditRow) -> dict[str, Any]:
    return {"audit_id": row.audit_id, "time": row.time, "actor": row.actor, "event": row.event,
            "command": row.command_id.hex() if row.command_id else None, "detail": row.detail}


# --- routes ---------------------------------------------------------------------------

@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    address = request.remote or "?"
    if not request.app[THROTTLE].allowed(address):
        return _error(429, "too_many_failures", "too many failed logins, wait a minute")
    body = await _json_body(request)
    password = body.get("password")
    token = request.app[SESSIONS].login(password) if isinstance(password, str) else None
    if token is None:
        request.app[THROTTLE].failed(address)
        log.warn_limited("login_failed", key=address, peer=address)
        return _error(401, "login_failed", "wrong password")
    response = web.json_response({"token": token})
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME_S), httponly=True,
                        samesite="Strict", secure=request.secure)
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    token = _token(request)
    if token:
        request.app[SESSIONS].logout(token)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE)
    return response


@routes.get("/api/info")
async def info(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    console = service.console
    return web.json_response({
        "version": __version__, "cert_sha256": request.app[SERVER_CERT_SHA256].hex(),
        "console_operator": console.key.public.hex() if console else None})


@routes.get("/api/meshes")
async def meshes(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    leaders = {row.mesh_id: row for row in await service.db.leaders()}
    counts = await service.db.node_counts()
    console = service.console
    return web.json_response([
        {"mesh": m.mesh_id.hex(), "name": m.name, "root": m.root_public.hex(),
         "created": m.created,
         "leader": leader_view(leaders[m.mesh_id]) if m.mesh_id in leaders else None,
         "nodes": counts.get(m.mesh_id, {}),
         "console_can_sign": bool(console and m.mesh_id in console.certs)}
        for m in await service.db.meshes()])


_DOCUMENT_STATUS = {"untrusted": 403, "foreign": 403, "stale": 409}


@routes.post("/api/meshes/{mesh_id}/documents")
async def adopt_document(request: web.Request) -> web.Response:
    body = await _json_body(request)
    return await _adopt_document(request, str(body.get("kind", "")), body.get("doc"))


@routes.post("/api/meshes/{mesh_id}/revocations")
async def adopt_revocations(request: web.Request) -> web.Response:
    body = await _json_body(request)
    return await _adopt_document(request, REVOCATIONS, body.get("list"))


async def _adopt_document(request: web.Request, kind: str, text: Any) -> web.Response:
    mesh_id = _hex(request.match_info["mesh_id"], "mesh id")
    try:
        wire = base64.b64decode(str(text or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the document must be base64 of a signed {kind}") from exc
    try:
        adopted = await request.app[SERVICE].adopt_document(mesh_id, kind, wire,
                                                            _actor(request))
    except TrustDocumentError as exc:
        return _error(_DOCUMENT_STATUS.get(exc.reason, 400), f"{exc.reason}_{kind}"[:64],
                      str(exc))
    return web.json_response({"adopted": adopted})


@routes.get("/api/leaders")
async def leaders(request: web.Request) -> web.Response:
    rows = await request.app[SERVICE].db.leaders()
    return web.json_response([leader_view(r) for r in rows])


@routes.get("/api/nodes")
async def nodes(request: web.Request) -> web.Response:
    query = NodeFilter(mesh_id=_opt_hex(request, "mesh"), state=request.query.get("state"),
                       tag=request.query.get("tag"), text=request.query.get("q"),
                       limit=_limit(request, 1000))
    rows = await request.app[SERVICE].db.nodes(query)
    return web.json_response([node_view(r) for r in rows])


@routes.get("/api/nodes/{node_id}")
async def node(request: web.Request) -> web.Response:
    node_id = _hex(request.match_info["node_id"], "node id")
    db = request.app[SERVICE].db
    row = await db.node(node_id)
    if row is None:
        return _error(404, "not_found", f"no node {node_id.hex()}")
    commands = await db.commands(node_id=node_id, limit=50)
    return web.json_response({**node_view(row, record=True),
                              "commands": [command_view(c) for c in commands]})


@routes.post("/api/commands")
async def submit_command(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        wire = base64.b64decode(str(body.get("command", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("command must be base64 of a signed command") from exc
    checked, targets = await request.app[SERVICE].submit(wire, actor=_actor(request))
    return web.json_response({"id": checked.envelope.id.hex(), "action": checked.envelope.action,
                              "nodes": [n.hex() for n in targets]}, status=201)


@routes.post("/api/console/commands")
async def console_command(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        mesh_id = _hex(str(body.get("mesh", "")), "mesh")
        target = _target(body.get("target"))
        action = body.get("action")
        args = body.get("args") or {}
        ttl = float(body.get("ttl", 600))
        if not isinstance(action, str) or not isinstance(args, dict) or not 0 < ttl <= 86400:
            raise BadRequest("action must be text, args an object, ttl 1..86400 seconds")
    except (TypeError, ValueError, DecodeError) as exc:
        raise BadRequest(str(exc)) from exc
    checked, targets = await request.app[SERVICE].submit_console(
        mesh_id, target, action, args, ttl, actor=f"console:{_actor(request)}")
    return web.json_response({"id": checked.envelope.id.hex(), "action": action,
                              "nodes": [n.hex() for n in targets]}, status=201)


def _target(value: Any) -> Target:
    """A selector as JSON: {"nodes": [hex...]} | {"tags": {k: v}} | {"all": true}."""
    if isinstance(value, dict) and isinstance(value.get("nodes"), list):
        value = {"nodes": [_hex(str(n), "node id") for n in value["nodes"]]}
    return Target.from_value(value)


def _actor(request: web.Request) -> str:
    return f"admin@{request.remote or '?'}"


@routes.get("/api/commands")
async def commands(request: web.Request) -> web.Response:
    rows = await request.app[SERVICE].db.commands(
        state=request.query.get("state"), node_id=_opt_hex(request, "node"),
        limit=_limit(request))
    return web.json_response([command_view(r) for r in rows])


@routes.get("/api/commands/{command_id}")
async def command(request: web.Request) -> web.Response:
    command_id = _hex(request.match_info["command_id"], "command id")
    db = request.app[SERVICE].db
    rows = await db.commands(command_id=command_id, limit=MAX_LIMIT)
    if not rows:
        return _error(404, "not_found", f"no command {command_id.hex()}")
    results = await db.results(command_id=command_id, limit=MAX_LIMIT)
    return web.json_response({"id": command_id.hex(), "action": rows[0].action,
                              "envelope": _b64(rows[0].envelope),
                              "targets": [command_view(r) for r in rows],
                              "results": [result_view(r) for r in results]})


@routes.get("/api/results")
async def results(request: web.Request) -> web.Response:
    rows = await request.app[SERVICE].db.results(
        command_id=_opt_hex(request, "command"), node_id=_opt_hex(request, "node"),
        limit=_limit(request))
    return web.json_response([result_view(r) for r in rows])


@routes.get("/api/audit")
async def audit(request: web.Request) -> web.Response:
    try:
        after = int(request.query.get("after", 0))
    except ValueError as exc:
        raise BadRequest("after must be an integer") from exc
    rows = await request.app[SERVICE].db.audit_log(
        after_id=after, command_id=_opt_hex(request, "command"), limit=_limit(request))
    return web.json_response([audit_view(r) for r in rows])


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``data: <topic>`` line per change notice."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    await response.write(b"data: hello\n\n")
    try:
        async for topic in request.app[SERVICE].events.subscribe():
            await response.write(f"data: {topic}\n\n".encode())
    except (ConnectionError, RuntimeError):
        pass  # the browser went away
    return response
