"""Agents on real (namespaced) hosts: multicast discovery over a bridge, a partition by a
cut link and its healing, and a relayed route between subnets with no common link.

Each test builds its own namespaces (``netlab.NetLab``, unique names) and removes them
afterwards, whatever happened. Agents run as ``meshagent run`` processes inside the
namespaces; the test reads their view through their control sockets (the file system
is shared).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshagent.demo import AgentProcess, LocalMesh, agent_toml, create_mesh, query, wait_for
from tests.netns.netlab import NetLab, netns_available

_REASON = netns_available()
pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

PORT = 7946


@pytest.fixture
def lab() -> Iterator[NetLab]:
    netlab = NetLab()
    try:
        yield netlab
    finally:
        netlab.close()


class Agents:
    """Agent processes in the lab's hosts; always stopped before the lab goes."""

    def __init__(self) -> None:
        self.processes: dict[str, AgentProcess] = {}

    def start(self, mesh: LocalMesh, lab: NetLab) -> None:
        for node in mesh.nodes:
            process = AgentProcess(node, command_prefix=lab.hosts[node.name].exec_prefix)
            process.start()
            self.processes[node.name] = process

    async def ready(self) -> None:
        await asyncio.gather(*(p.wait_ready() for p in self.processes.values()))

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop(timeout=5)

    async def states(self, name: str) -> dict[str, str]:
        nodes = await query(self.processes[name].node.socket, "nodes")
        return {n["host"]: n["state"] for n in nodes}

    async def sees(self, observers: list[str], subjects: list[str], state: str) -> bool:
        for observer in observers:
            states = await self.states(observer)
            if any(states.get(subject) != state for subject in subjects):
                return False
        return True


@pytest.fixture
def agents() -> Iterator[Agents]:
    running = Agents()
    try:
        yield running
    finally:
        running.stop()


def _mesh(tmp_path: Path, names: list[str]) -> LocalMesh:
    return create_mesh(tmp_path / "mesh", len(names), names=names,
                       addresses=[("127.0.0.1", PORT)] * len(names))


def _configure(mesh: LocalMesh, name: str, **settings: object) -> None:
    node = next(n for n in mesh.nodes if n.name == name)
    node.config_path.write_text(agent_toml(name, port=PORT, profile="lan", **settings))


async def test_multicast_discovery_finds_every_agent_on_the_bridge(
        tmp_path: Path, lab: NetLab, agents: Agents) -> None:
    names = ["h1", "h2", "h3"]
    lab.bridge("br0")
    mesh = _mesh(tmp_path, names)
    for index, name in enumerate(names):
        address = f"10.77.0.{index + 1}"
        lab.attach(lab.host(name), "br0", address, multicast=True)
        _configure(mesh, name, listen=address, seeds=[], multicast=True,
                   multicast_interface=address)
    agents.start(mesh, lab)
    await agents.ready()
    await wait_for(lambda: agents.sees(names, names, "alive"), 20,
                   "discovery by multicast beacons alone")


async def test_cut_link_partitions_the_mesh_and_healing_merges_it(
        tmp_path: Path, lab: NetLab, agents: Agents) -> None:
    left, right = ["l1", "l2"], ["r1", "r2"]
    lab.bridge("brl")
    lab.bridge("brr")
    trunk = lab.trunk("brl", "brr")
    mesh = _mesh(tmp_path, left + right)
    for index, name in enumerate(left + right):
        address = f"10.78.0.{index + 1}"
        lab.attach(lab.host(name), "brl" if name in left else "brr", address)
        _configure(mesh, name, listen=address, seeds=["10.78.0.1:7946", "10.78.0.3:7946"])
    everyone = left + right
    agents.start(mesh, lab)
    await agents.ready()
    await wait_for(lambda: agents.sees(everyone, everyone, "alive"), 20, "convergence")

    lab.set_link(trunk, up=False)
    cut = time.monotonic()
    await wait_for(lambda: agents.sees(left, right, "unreachable"), 30,
                   "the left side to lose the right")
    await wait_for(lambda: agents.sees(right, left, "unreachable"), 30,
                   "the right side to lose the left")
    await wait_for(lambda: agents.sees(left, left, "alive"), 5, "each side to stay whole")
    partitioned_after = time.monotonic() - cut

    lab.set_link(trunk, up=True)
    healed = time.monotonic()
    await wait_for(lambda: agents.sees(everyone, everyone, "alive"), 60,
                   "the two sides to merge again")
    assert partitioned_after < 30 and time.monotonic() - healed < 60


async def test_relayed_route_joins_two_subnets_through_a_dual_homed_agent(
        tmp_path: Path, lab: NetLab, agents: Agents) -> None:
    lab.bridge("bra")
    lab.bridge("brb")
    a, m, c = lab.host("a"), lab.host("m"), lab.host("c")
    lab.attach(a, "bra", "10.79.1.1")
    lab.attach(m, "bra", "10.79.1.2")
    lab.attach(m, "brb", "10.79.2.2")
    lab.attach(c, "brb", "10.79.2.1")
    mesh = _mesh(tmp_path, ["a", "m", "c"])
    _configure(mesh, "a", listen="10.79.1.1", seeds=["10.79.1.2:7946"])
    _configure(mesh, "m", listen="0.0.0.0", seeds=[], advertise=["10.79.1.2", "10.79.2.2"])
    _configure(mesh, "c", listen="10.79.2.1", seeds=["10.79.2.2:7946"])
    agents.start(mesh, lab)
    await agents.ready()
    socket_a, socket_c = (agents.processes[h].node.socket for h in ("a", "c"))
    a_id, c_id = mesh.node_ids["a"].hex(), mesh.node_ids["c"].hex()

    async def relayed(socket: Path, far: str) -> bool:
        nodes = {n["host"]: n for n in await query(socket, "nodes")}
        route = nodes.get(far, {}).get("route")
        return bool(route) and route["kind"] == "relay" and route["via_host"] == "m"
    # Routes form one direction at a time; an echo needs both.
    await wait_for(lambda: relayed(socket_a, "c"), 30, "a route from a to c through m")
    await wait_for(lambda: relayed(socket_c, "a"), 30, "a route from c to a through m")
    pong = await query(socket_a, "ping", {"node": c_id})
    assert pong["node_id"] == c_id and pong["rtt_ms"] > 0
    back = await query(socket_c, "ping", {"node": a_id})
    assert back["rtt_ms"] > 0
