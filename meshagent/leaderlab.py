"""A local mesh of agent processes behind a real web service: what the leader tests, the
leader benchmark and the demo's leader steps share.

``LeaderLab.create(directory, count)`` writes a mesh (``demo.create_mesh``) and
``equip``s it: a web service directory, agents that know the service (``[server]`` url
and pin), the root-signed allowlist on every node, an authorised operator.
``start_service`` runs the web service (SQLite) in this process; ``start_agents`` runs the agents as
``meshagent run`` processes; ``async with lab.running()`` does both and stops both.
``submit`` signs and queues a command like ``meshctl run``; ``results`` / ``leader`` read
the service's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagent.commands import (
    BUILTIN_ACTIONS,
    OperatorCertificate,
    OperatorKey,
    SignedCommand,
    Target,
    authorise_operator,
    build_allowlist,
    sign_command,
)
from meshagent.demo import ROOT_FILE, AgentProcess, LocalMesh, create_mesh, loopback_addresses
from meshagent.errors import MeshError
from meshagent.identity import MeshRoot
from meshagent.leader import ALLOWLIST_FILE
from meshagent.server.app import WebService
from meshagent.server.db import LeaderRow, NodeFilter, ResultRow
from meshagent.server.service import LeaderSession
from meshagent.server.settings import ServerDirectory

__all__ = ["LeaderLab", "LAB_PASSWORD", "free_port"]

LAB_PASSWORD = "leader-lab"
SERVICE_DIR = "service"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LeaderLab:
    directory: Path
    mesh: LocalMesh
    root: MeshRoot
    operator: OperatorKey
    operator_cert: OperatorCertificate
    pin: bytes
    service_port: int
    web: WebService | None = None
    agents: list[AgentProcess] = field(default_factory=list)

    @classmethod
    def create(cls, directory: Path, count: int, *, service_port: int, agent_port: int = 17946,
               first_address: int = 2, profile: str = "local", log_level: str = "warning",
               extra_config: str = "", actions: Sequence[str] | None = None,
               scripts: Mapping[str, bytes] | None = None) -> LeaderLab:
        """A fresh mesh of ``count`` agents (``demo.create_mesh``), equipped."""
        addresses = loopback_addresses(count, agent_port, first_address)
        mesh = create_mesh(Path(directory).resolve(), count, addresses=addresses,
                           profile=profile, log_level=log_level, extra_config=extra_config)
        return cls.equip(mesh, service_port, actions=actions, scripts=scripts)

    @classmethod
    def equip(cls, mesh: LocalMesh, service_port: int, *, actions: Sequence[str] | None = None,
              scripts: Mapping[str, bytes] | None = None) -> LeaderLab:
        """Give an existing local mesh (agents not yet started) a web service directory
        (``meshagent server init`` + ``add-mesh``, the console key authorised by the root),
        a ``[server]`` section in every agent.toml, the allowlist of ``actions`` (default:
        every built-in) and ``scripts`` (name -> bytes) in every node directory, and an
        operator authorised for everything."""
        root = MeshRoot.load(mesh.directory / ROOT_FILE)
        service_dir = mesh.directory / SERVICE_DIR
        server, _ = ServerDirectory.init(service_dir, ["127.0.0.1", "localhost"],
                                         LAB_PASSWORD, force=True)
        console = authorise_operator(root, server.console_key().public, "web-console", ["*"],
                                     30 * 24 * 3600.0, now=time.time() - 60)
        server.add_mesh(root.trust, "lab", console.to_wire())
        pin = server.cert_pin
        allowlist = build_allowlist(root, sorted(actions or BUILTIN_ACTIONS),
                                    dict(scripts or {}))
        for node in mesh.nodes:
            with open(node.config_path, "a", encoding="utf-8") as config:
                config.write(f"\n[server]\nurl = \"wss://127.0.0.1:{service_port}/uplink\"\n"
                             f"pin = \"{pin.hex()}\"\n")
            allowlist.save(node.directory / "state" / ALLOWLIST_FILE)
        operator = OperatorKey.generate("lab-operator")
        cert = authorise_operator(root, operator.public, "lab-operator", ["*"], 24 * 3600.0,
                                  now=time.time() - 60)
        return cls(mesh.directory, mesh, root, operator, cert, pin, service_port)

    @property
    def service_dir(self) -> Path:
        return self.directory / SERVICE_DIR

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.service_port}"

    @property
    def mesh_id(self) -> bytes:
        return self.root.mesh_id

    # --- the web service ---------------------------------------------------------------

    async def start_service(self) -> WebService:
        self.web = WebService.from_directory(
            self.service_dir, f"sqlite://{self.service_dir}/service.db", "127.0.0.1",
            self.service_port)
        await self.web.start()
        return self.web

    async def stop_service(self) -> None:
        if self.web is not None:
            await self.web.stop()
            self.web = None

    @property
    def service(self) -> Any:
        if self.web is None or self.web.service is None:
            raise MeshError("the lab's web service is not running")
        return self.web.service

    # --- agents ------------------------------------------------------------------------

    async def start_agents(self, indexes: Sequence[int] | None = None) -> None:
        if not self.agents:
            self.agents = [AgentProcess(node) for node in self.mesh.nodes]
        chosen = [self.agents[i] for i in (indexes if indexes is not None
                                            else range(len(self.agents)))]
        for agent in chosen:
            agent.start()
        await asyncio.gather(*(agent.wait_ready() for agent in chosen))

    def agent_of(self, node_id: bytes) -> AgentProcess:
        for agent in self.agents:
            if self.mesh.node_ids[agent.node.name] == node_id:
                return agent
        raise KeyError(node_id.hex())

    def stop_agents(self) -> None:
        for agent in self.agents:
            agent.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LeaderLab]:
        """The web service, then every agent; on the way out the agents are stopped and then
        the service, also when an agent failed to start or the body raised."""
        await self.start_service()
        try:
            await self.start_agents()
            yield self
        finally:
            self.stop_agents()
            await self.stop_service()

    # --- commands and what the service knows -------------------------------------------

    def command(self, target: Target, action: str = "ping",
                args: Mapping[str, Any] | None = None, ttl: float = 600.0) -> SignedCommand:
        return sign_command(self.operator, self.operator_cert, target, action, args, ttl)

    async def submit(self, command: SignedCommand) -> list[bytes]:
        """Queue a signed command at the service (as ``POST /api/commands`` does)."""
        _, targets = await self.service.submit(command.to_wire(), actor="lab")
        return targets

    async def results(self, command_id: bytes) -> list[ResultRow]:
        return await self.service.db.results(command_id=command_id, limit=100_000)

    async def leader(self) -> LeaderRow | None:
        """The mesh's leader as the service holds it (connected or not)."""
        rows = [row for row in await self.service.db.leaders() if row.mesh_id == self.mesh_id]
        return rows[0] if rows else None

    async def settled(self, nodes: int, *, above_term: int = 0,
                      timeout: float = 60.0) -> LeaderSession:
        """The leader session the service holds once it leads above ``above_term`` and
        its inventory shows ``nodes`` alive; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            session = self.service.leader_of(self.mesh_id)
            if session is not None and session.term > above_term and \
                    await self.known_nodes() == nodes:
                return session
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no leader above term {above_term} with {nodes} nodes alive")

    async def known_nodes(self) -> int:
        rows = await self.service.db.nodes(NodeFilter(mesh_id=self.mesh_id, state="alive"))
        return len(rows)
