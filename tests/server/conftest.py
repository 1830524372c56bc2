"""Fixtures for the web service: both database back ends, a TLS service on loopback,
a simulated mesh, and leaders running the real uplink.

PostgreSQL cases run when ``MESHAGENT_TEST_POSTGRES`` holds a DSN (``.ci/run`` starts a
server and sets it); otherwise they are skipped with that reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshagent.cli.api_client import ApiClient
from meshagent.commands import OperatorKey, authorise_operator
from meshagent.server.app import WebService
from meshagent.server.auth import PasswordHash
from meshagent.server.service import ConsoleSigner, MeshConfig
from meshagent.server.testkit import SimulatedLeader, SimulatedMesh
from meshagent.server.tls import make_self_signed, server_ssl_context

ADMIN_PASSWORD = "correct horse battery staple"


def postgres_dsn() -> str:
    dsn = os.environ.get("MESHAGENT_TEST_POSTGRES")
    if not dsn:
        pytest.skip("PostgreSQL not configured: set MESHAGENT_TEST_POSTGRES to a DSN")
    return dsn


def reset_postgres(dsn: str) -> None:
    """An empty database: every table of the service goes, whatever the schema holds."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/service.db"
    dsn = postgres_dsn()
    reset_postgres(dsn)
    return dsn


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    directory = tmp_path_factory.mktemp("tls")
    pin = make_self_signed(directory, ["127.0.0.1", "localhost"])
    return directory, pin


@pytest.fixture(scope="session")
def sim_mesh() -> SimulatedMesh:
    return SimulatedMesh.create(4, tags={"site": "lab"})


class Harness:
    """A web service on 127.0.0.1 over TLS, restartable on the same port and database."""

    def __init__(self, db_url: str, mesh: SimulatedMesh, tls: tuple[Path, bytes],
                 tmp_path: Path) -> None:
        self.db_url = db_url
        self.mesh = mesh
        self.tls_dir, self.pin = tls
        self.tmp_path = tmp_path
        self.console_key = OperatorKey.generate("web-console")
        console_cert = authorise_operator(mesh.root, self.console_key.public,
                                          "web-console", ["*"], 3600.0)
        self.meshes = [MeshConfig(mesh.root.trust, "lab", console_cert)]
        self.port = 0
        self.web: WebService | None = None
        self.leaders: list[SimulatedLeader] = []

    async def start(self) -> WebService:
        self.web = WebService(
            self.db_url, self.meshes, PasswordHash.of(ADMIN_PASSWORD), "127.0.0.1", self.port,
            server_ssl_context(self.tls_dir), self.pin,
            ConsoleSigner(self.console_key, {m.trust.mesh_id: m.console_cert
                                             for m in self.meshes if m.console_cert}))
        await self.web.start()
        self.port = self.web.port
        return self.web

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
            self.web = None

    @property
    def service(self):
        assert self.web is not None and self.web.service is not None
        return self.web.service

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def leader(self, term: int = 1, index: int = 0, answer: bool = False,
               spool: str | None = None) -> SimulatedLeader:
        leader = SimulatedLeader(self.mesh, f"wss://127.0.0.1:{self.port}/uplink", self.pin,
                                 self.tmp_path / (spool or f"spool-{term}-{index}"), term, index,
                                 answer)
        self.leaders.append(leader)
        leader.start()
        return leader

    def api(self, token: str | None = ADMIN_PASSWORD) -> ApiClient:
        return ApiClient(self.url, self.pin, token)

    async def call(self, method: str, path: str, body: object = None, **query: object):
        """A REST call from a thread (the blocking client must not stall this loop)."""
        return await asyncio.to_thread(self.api().request, method, path, body, query or None)

    async def submit(self, wire: bytes):
        """POST /api/commands as ``meshctl run`` does (``ApiClient.submit_command``)."""
        return await asyncio.to_thread(self.api().submit_command, wire)


@pytest.fixture
async def harness(db_url: str, sim_mesh: SimulatedMesh, tls: tuple[Path, bytes],
                  tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(db_url, sim_mesh, tls, tmp_path)
    await h.start()
    try:
        yield h
    finally:
        for leader in h.leaders:
            await leader.stop()
        await h.stop()
