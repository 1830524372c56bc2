"""A small mesh of memberships (in memory), each with a software AMT device and a bridge.

Bridges talk through ``HubRouter``s (in-process message delivery by node id), so these
tests exercise the bridge's protocol and its AMT use without sessions or routing; the
mesh test (tests/mesh/test_sleeping_mesh.py) runs whole agents over real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from amt_support import ADMIN_PASSWORD

from amt.device import SoftwareAmtDevice, TlsCertificate
from amt.operations.power import PowerState
from meshagent.amtbridge import AmtBridge, AmtEndpoint, AmtPolicy, BridgeSettings
from meshagent.membership import Membership, MemberState
from meshagent.routing import Message, NoRoute
from meshagent.transport import MemoryNetwork
from tests.mesh.meshkit import MeshKit, converged, wait_until

# The next checker in rendezvous order waits as long as one whole check may take: with a
# shorter stagger it checks too whenever the first one's check, within its time, is slow
# (a loaded machine), and the tests counting checks see two.
FAST_BRIDGE = BridgeSettings(record_interval_s=3600, probe_timeout_s=2.0,
                             request_timeout_s=1.0, check_stagger_s=2.0, notice_grace_s=0.5,
                             grant_retry_s=0.3, tick_s=0.05, provision_retry_s=0.5)


class Hub:
    def __init__(self) -> None:
        self.routers: dict[bytes, HubRouter] = {}
        self.cut: set[bytes] = set()

    def router(self, node_id: bytes) -> HubRouter:
        router = self.routers[node_id] = HubRouter(self, node_id)
        return router


class HubRouter:
    def __init__(self, hub: Hub, node_id: bytes) -> None:
        self.hub = hub
        self.node_id = node_id
        self.handlers: dict[int, Callable[[Message], None]] = {}
        self.sent: list[tuple[bytes, bytes]] = []

    def on_message(self, channel: int, handler: Callable[[Message], None]) -> None:
        self.handlers[channel] = handler

    def send(self, dst: bytes, channel: int, payload: bytes) -> None:
        target = self.hub.routers.get(dst)
        if target is None or dst in self.hub.cut or self.node_id in self.hub.cut:
            raise NoRoute(f"no route to {dst.hex()}")
        self.sent.append((dst, payload))
        handler = target.handlers.get(channel)
        if handler is not None:
            asyncio.get_running_loop().call_soon(handler, Message(self.node_id, channel,
                                                                  payload, 1))


@dataclass
class Node:
    membership: Membership
    device: SoftwareAmtDevice
    bridge: AmtBridge
    router: HubRouter

    @property
    def node_id(self) -> bytes:
        return self.membership.node_id

    async def sleep(self, state: PowerState = PowerState.SLEEP_DEEP) -> None:
        """As the host would: write the record, sleep, and its agent goes silent."""
        assert await self.bridge.prepare_for_sleep()
        self.device.set_power_state(state)
        await self.bridge.stop()
        self.router.hub.cut.add(self.node_id)
        await self.membership.stop()


@dataclass
class BridgedMesh:
    kit: MeshKit
    nodes: list[Node] = field(default_factory=list)

    async def stop(self) -> None:
        for node in self.nodes:
            await node.bridge.stop()
        for node in self.nodes:
            await node.membership.stop()
            await node.device.stop()

    def state(self, observer: int, subject: int) -> MemberState | None:
        member = self.nodes[observer].membership.member(self.nodes[subject].node_id)
        return member.state if member else None


async def bridged_mesh(count: int, *, policy: AmtPolicy | None = None,
                       tags: dict[int, dict[str, str]] | None = None,
                       tls: TlsCertificate | None = None) -> BridgedMesh:
    """``count`` bridged nodes; with ``tls`` every device serves HTTPS with that certificate
    and every owner pins it (and shares the pin in its grants)."""
    kit = MeshKit()
    network = MemoryNetwork()
    addresses = [(f"10.0.0.{index + 1}", 7946) for index in range(count)]
    memberships = [kit.node(network.transport(address), seeds=[] if index == 0
                            else [addresses[0]],
                            record_fields={"tags": (tags or {}).get(index, {})})
                   for index, address in enumerate(addresses)]
    hub = Hub()
    mesh = BridgedMesh(kit)
    for index, membership in enumerate(memberships):
        device = SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, hostname=f"amt{index}",
                                   tls=tls)
        await device.start()
        router = hub.router(membership.node_id)
        endpoint = AmtEndpoint("127.0.0.1", ADMIN_PASSWORD, port=device.port,
                               tls=tls is not None, cert_sha256=tls.sha256 if tls else b"")
        bridge = AmtBridge(membership.identity, membership, router, endpoint=endpoint,
                           policy=policy, settings=FAST_BRIDGE)
        mesh.nodes.append(Node(membership, device, bridge, router))
    for node in mesh.nodes:
        await node.membership.start()
    await wait_until(lambda: converged(memberships), 10, "membership convergence")
    for node in mesh.nodes:
        await node.bridge.start()
    await wait_until(lambda: all(n.bridge.grant_for(o.node_id) is not None
                                 for n in mesh.nodes for o in mesh.nodes if o is not n),
                     10, "grants shared")
    return mesh
