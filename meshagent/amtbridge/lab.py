"""A mesh of sleeping computers on one machine: agents in this process, each with a
software AMT device, behind the real web service. Shared by the mesh test and the
sleep benchmark (and usable as a demo).

``SleepingLab.create(directory, count)`` builds a ``LeaderLab`` (mesh, allowlist,
operator, service TLS) and gives node *i* a ``SoftwareAmtDevice`` on the node's own
loopback address, an ``[amt]`` config section pointing at it and the admin password file.
``start()`` runs the service, the devices and the agents (in-process ``Agent`` objects).

The devices' power hooks play the host: ``on_sleep`` stops that node's agent without a
goodbye (a sleeping computer just goes silent), ``on_wake`` starts a fresh ``Agent`` from
the same configuration (a woken computer's agent restarts and rejoins). ``sleep(i)`` does
what the host's pre-sleep notification does first: the agent writes its record into AMT.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amt.device import PowerHooks, SoftwareAmtDevice
from amt.operations.power import PowerState
from meshagent.agent import Agent
from meshagent.config import load_config
from meshagent.demo import LocalNode
from meshagent.leaderlab import LeaderLab
from meshagent.log import get_logger

__all__ = ["SleepingLab", "LabHost"]

log = get_logger(__name__)

PASSWORD_FILE = "amt-admin.password"


@dataclass
class LabHost:
    """One simulated computer: its node files, its AMT device, its agent (None while it
    sleeps)."""

    node: LocalNode
    device: SoftwareAmtDevice
    agent: Agent | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return self.node.name

    async def start_agent(self) -> None:
        if self.agent is not None:
            return
        agent = Agent(load_config(self.node.config_path))
        await agent.start()
        self.agent = agent
        self.starts += 1

    async def stop_agent(self, *_args: object) -> None:
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.stop(leave=False)


@dataclass
class SleepingLab:
    leaders: LeaderLab
    hosts: list[LabHost] = field(default_factory=list)

    @classmethod
    def create(cls, directory: Path, count: int, *, service_port: int, first_address: int = 2,
               tags: dict[int, dict[str, str]] | None = None, extra_config: str = "",
               actions: Sequence[str] | None = None, log_level: str = "warning"
               ) -> SleepingLab:
        """``tags``: node index -> tags added to that node's record."""
        leaders = LeaderLab.create(directory, count, service_port=service_port,
                                   first_address=first_address, log_level=log_level,
                                   extra_config=extra_config, actions=actions)
        lab = cls(leaders)
        for index, node in enumerate(leaders.mesh.nodes):
            password = secrets.token_urlsafe(12)
            state = node.directory / "state"
            path = state / PASSWORD_FILE
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(password + "\n")
            host = LabHost(node, SoftwareAmtDevice(
                admin_password=password, host=node.host, port=0, hostname=node.name,
                state_path=state / "amt-device.json"))
            host.device.power.hooks = PowerHooks(on_sleep=host.stop_agent,
                                                 on_wake=host.start_agent)
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
        for host in self.hosts:
            await host.start_agent()

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
        assert host.agent is not None, f"{host.name} is not running"
        await host.agent.amt.prepare_for_sleep()
        host.device.set_power_state(state)
        await host.device.power.drain()

    def node_id(self, index: int) -> bytes:
        return self.leaders.mesh.node_ids[self.hosts[index].name]

    def running(self) -> list[LabHost]:
        return [host for host in self.hosts if host.agent is not None]
