"""The web service's aiohttp application and its lifecycle.

``create_app`` wires an already-built ``MeshService`` into routes: ``/uplink`` (leaders'
WebSocket), ``/api/...`` (REST, see ``api.py``), ``/`` and ``/static/`` (the console page).
``WebService`` opens the database, starts the service and listens (HTTPS with the
directory's certificate), as ``meshagent server run`` and the tests use it.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from meshagent.heap import freeze_startup_heap
from meshagent.log import get_logger
from meshagent.server.api import MAX_BODY_BYTES, api_middleware, routes
from meshagent.server.appkeys import SERVER_CERT_SHA256, SERVICE, SESSIONS, THROTTLE
from meshagent.server.auth import FailureThrottle, PasswordHash, SessionStore
from meshagent.server.db import Database, open_database
from meshagent.server.service import ConsoleSigner, MeshConfig, MeshService
from meshagent.server.settings import ServerDirectory
from meshagent.server.tls import server_ssl_context
from meshagent.server.ws import uplink_handler

__all__ = ["STATIC_DIR", "WebService", "create_app"]

log = get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def tune_garbage_collector() -> None:
    """For a process that is the web service and nothing else.

    The service keeps every node's record and certificate alive (tens of Python objects
    per node); each full pass of the cyclic collector walks all of them, about 100-200 ms
    at 10,000 nodes, during which no leader or console is served. So full passes run far
    less often (see ``meshagent.heap``)."""
    # Young collections every 10,000 allocations (Python's: 700), full ones far rarer.
    freeze_startup_heap((10_000, 50, 1_000))


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html",
                            headers={"Cache-Control": "no-store"})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; frame-ancestors 'none'")


def create_app(service: MeshService, sessions: SessionStore,
               server_cert_sha256: bytes = b"") -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY_BYTES)
    app[SERVICE] = service
    app[SESSIONS] = sessions
    app[THROTTLE] = FailureThrottle()
    app[SERVER_CERT_SHA256] = server_cert_sha256
    app.router.add_get("/uplink", uplink_handler)
    app.router.add_routes(routes)
    app.router.add_get("/", _index)
    app.router.add_static("/static", STATIC_DIR)
    app.on_response_prepare.append(_security_headers)
    return app


@dataclass
class WebService:
    """A running web service: database, service, HTTP(S) listener.

    ``ssl_context`` None serves plain HTTP (tests of the protocol only; leaders pin a
    certificate, so production always has one)."""

    db_url: str
    meshes: list[MeshConfig]
    password: PasswordHash
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    cert_sha256: bytes = b""
    console: ConsoleSigner | None = None

    db: Database | None = None
    service: MeshService | None = None
    _runner: web.AppRunner | None = None

    @classmethod
    def from_directory(cls, directory: Path, db_url: str, host: str = "127.0.0.1",
                       port: int = 8443) -> WebService:
        settings = ServerDirectory.load(directory)
        return cls(db_url, settings.mesh_configs(), settings.admin_hash, host, port,
                   server_ssl_context(directory), settings.cert_pin, settings.console_signer())

    async def start(self) -> None:
        self.db = await open_database(self.db_url)
        self.service = MeshService(self.db, self.meshes, console=self.console)
        await self.service.start()
        app = create_app(self.service, SessionStore(self.password), self.cert_sha256)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context,
                           backlog=1024)
        await site.start()
        sockets = self._runner.addresses
        if sockets and self.port == 0:
            self.port = sockets[0][1]
        log.event("server_listening", url=self.url, db=self.db_url.split("@")[-1],
                  meshes=len(self.meshes))

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.service is not None:
            await self.service.stop()
        if self.db is not None:
            await self.db.close()

    async def run_forever(self) -> None:
        """Serve until SIGINT or SIGTERM, then close uplinks and the database cleanly."""
        tune_garbage_collector()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            log.event("server_stopping")
            await self.stop()
