"""A mesh of sleeping computers on one machine: agents in this process, each with a
software AMT device, behind the real web service. Shared by the mesh test and the
sleep benchmark (and usable as a demo).

``SleepingLab.create(directory, count)`` builds a ``LeaderLab`` (mesh, allowlist,
operator, service TLS) and gives node *i* a ``SoftwareAmtDevice`` on the node's own
loopback address, an ``[amt]`` config section pointing at it and the admin password file.
``start()`` runs the service, the devices and the agents (in-process ``Agent`` objects).

The devices' power hooks play the host. With agents in this process (the default),
``on_sleep`` stops that node's agent without a goodbye and ``on_wake`` starts a fresh
``Agent`` from the same configuration (a woken computer's agent restarts and rejoins).
With ``processes=True`` each agent is a ``meshagent run`` process: ``on_sleep`` freezes
it (SIGSTOP: its sockets stay open and nothing answers, as on a host in S3) and
``on_wake`` lets it run on (SIGCONT, as on resume). ``sleep(i)`` first does what the
host's pre-sleep notification does: the agent writes its record into AMT (in-process
agents only; a process relies on the record written at start and periodically).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amt.device import PowerHooks, SoftwareAmtDevice
from amt.operations.power import PowerState
from meshagent.agent import Agent
from meshagent.atomicfile import write_atomically
from meshagent.config import load_config
from meshagent.control import call
from meshagent.demo import AgentProcess, LocalNode
from meshagent.identity.files import PRIVATE_MODE
from meshagent.leaderlab import LeaderLab
from meshagent.log import get_logger

__all__ = ["SleepingLab", "LabHost"]

log = get_logger(__name__)

PASSWORD_FILE = "amt-admin.password"


@dataclass
class LabHost:
    """One simulated computer: its node files, its AMT device and its agent (an in-process
    ``Agent``, None while it sleeps; or a ``meshagent run`` process)."""

    node: LocalNode
    device: SoftwareAmtDevice
    process: AgentProcess | None = None
    agent: Agent | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def awake(self) -> bool:
        return self.agent is not None if self.process is None else self.process.running

    async def start_agent(self) -> None:
        if self.process is not None:
            self.process.start()
            await self.process.wait_ready()
        elif self.agent is None:
            agent = Agent(load_config(self.node.config_path))
            await agent.start()
            self.agent = agent
        else:
            return
        self.starts += 1

    async def stop_agent(self, *_args: object) -> None:
        if self.process is not None:
            self.process.stop()
            return
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.stop(leave=False)

    async def silence(self, *_args: object) -> None:
        """The host sleeps: its agent stops answering (frozen, or stopped in-process)."""
        if self.process is not None:
            self.process.pause()
        else:
            await self.stop_agent()

    async def revive(self, *_args: object) -> None:
        """The host wakes: its agent runs again (resumed, or restarted in-process)."""
        if self.process is not None:
            self.process.resume()
        else:
            await self.start_agent()

    async def amt_status(self) -> dict[str, object]:
        if self.process is not None:
            return dict(await call(self.node.socket, "amt"))
        return self.agent.amt.status() if self.agent is not None else {}


@dataclass
class SleepingLab:
    leaders: LeaderLab
    hosts: list[LabHost] = field(default_factory=list)

    @classmethod
    def create(cls, directory: Path, count: int, *, service_port: int, first_address: int = 2,
               tags: dict[int, dict[str, str]] | None = None, extra_config: str = "",
               actions: Sequence[str] | None = None, log_level: str = "warning",
               profile: str = "local", processes: bool = False) -> SleepingLab:
        """``tags``: node index -> tags added to that node's record."""
        leaders = LeaderLab.create(directory, count, service_port=service_port,
                                   first_address=first_address, log_level=log_level,
                                   extra_config=extra_config, actions=actions,
                                   profile=profile)
        lab = cls(leaders)
        for index, node in enumerate(leaders.mesh.nodes):
            password = secrets.token_urlsafe(12)
            state = node.directory / "state"
            path = state / PASSWORD_FILE
            write_atomically(path, f"{password}\n".encode(), mode=PRIVATE_MODE)
            host = LabHost(node, SoftwareAmtDevice(
                admin_password=password, host=node.host, port=0, hostname=node.name,
                state_path=state / "amt-device.json"),
                AgentProcess(node) if processes else None)
            host.device.power.hooks = PowerHooks(on_sleep=host.silence, on_wake=host.revive)
            if tags and index in tags:
                text = node.config_path.read_text()
                extra = "".join(f", {k} = \"{v}\"" for k, v in tags[index].items())
                node.config_path.write_text(text.replace('tags = { demo = "yes" }',
                                                         f'tags = {{ demo = "yes"{extra} }}'))
            lab.hosts.append(host)
        return lab

    async def start(self) -> None:
        """The web service, every device, then every agent (its config names its device)."""
        await self.leaders.start_service()
        for host in self.hosts:
            await host.device.start()
            with open(host.node.config_path, "a", encoding="utf-8") as config:
                config.write(f"\n[amt]\naddress = \"{host.node.host}:{host.device.port}\"\n"
                             f"record_interval_s = 60.0\nprobe_timeout_s = 3.0\n")
        await asyncio.gather(*(host.start_agent() for host in self.hosts))

    async def stop(self) -> None:
        for host in self.hosts:
            await host.stop_agent()
        for host in self.hosts:
            await host.device.stop()
        await self.leaders.stop_service()

    async def sleep(self, index: int, state: PowerState = PowerState.SLEEP_DEEP) -> None:
        """The host goes to sleep: its agent writes its record to AMT, then the OS sleeps
        (the device's hook stops the agent)."""
        host = self.hosts[index]
        if host.agent is not None:
            await host.agent.amt.prepare_for_sleep()
        host.device.set_power_state(state)
        await host.device.power.drain()

    def node_id(self, index: int) -> bytes:
        return self.leaders.mesh.node_ids[self.hosts[index].name]

    def running(self) -> list[LabHost]:
        """Hosts with an in-process agent running."""
        return [host for host in self.hosts if host.agent is not None]
