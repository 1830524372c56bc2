"""Simulated meshes for the web service's tests and its benchmark.

A ``SimulatedMesh`` is a real mesh in miniature without agents: a root, nodes with real
identities, root-signed certificates and signed records, an operator authorised by the
root. A ``SimulatedLeader`` is one of those nodes running the real ``Uplink`` against a
service; it collects the commands it is handed and can answer with node-signed results,
as a leader relaying to its nodes would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagent.commands import (
    CommandResult,
    OperatorKey,
    ResultStatus,
    SignedCommand,
    Target,
    authorise_operator,
    sign_command,
)
from meshagent.identity import MembershipCertificate, MeshRoot, NodeIdentity
from meshagent.record import NodeRecord
from meshagent.uplink import DeliveredCommand, NodeReport, ResultSpool, Uplink

__all__ = ["SimulatedLeader", "SimulatedMesh", "SimulatedNode"]


@dataclass
class SimulatedNode:
    identity: NodeIdentity
    cert: MembershipCertificate
    record: NodeRecord
    state: str = "alive"

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def report(self, with_record: bool = True) -> NodeReport:
        return NodeReport(self.node_id, self.state, time.time(),
                          self.record.wire if with_record else None)

    def result(self, command_id: bytes, output: Any = None,
               status: ResultStatus = ResultStatus.OK) -> bytes:
        now = time.time()
        result = CommandResult(command_id, self.node_id, status,
                               {"pong": True} if output is None else output, now, now)
        return result.sign(self.identity.sign_key).to_wire()


@dataclass
class SimulatedMesh:
    root: MeshRoot
    nodes: list[SimulatedNode]
    operator: OperatorKey
    operator_cert: Any  # OperatorCertificate

    @classmethod
    def create(cls, size: int, *, name: str = "node",
               tags: Mapping[str, str] | None = None) -> SimulatedMesh:
        root = MeshRoot.create()
        nodes = [cls._node(root, f"{name}-{i:03d}", {"index": str(i), **(tags or {})})
                 for i in range(size)]
        operator = OperatorKey.generate("tester")
        cert = authorise_operator(root, operator.public, "tester", ["*"],
                                  24 * 3600.0)
        return cls(root, nodes, operator, cert)

    @staticmethod
    def _node(root: MeshRoot, hostname: str, tags: Mapping[str, str]) -> SimulatedNode:
        identity = NodeIdentity.generate()
        cert = root.issue_certificate(identity.sign_public, identity.dh_public, ["member"],
                                      hostname)
        record = NodeRecord.sign(identity, cert, incarnation=1, hostname=hostname, os="Linux",
                                 addresses=["127.0.0.1:7946"], agent_version="test",
                                 power_source="ac", tags=tags)
        return SimulatedNode(identity, cert, record)

    @property
    def mesh_id(self) -> bytes:
        return self.root.mesh_id

    def command(self, target: Target, action: str = "ping", ttl: float = 600.0,
                args: Mapping[str, Any] | None = None) -> SignedCommand:
        return sign_command(self.operator, self.operator_cert, target, action, args, ttl)

    def node(self, node_id: bytes) -> SimulatedNode:
        return next(n for n in self.nodes if n.node_id == node_id)


@dataclass
class SimulatedLeader:
    """Node ``index`` of ``mesh`` acting as leader at ``term`` over a real ``Uplink``.

    ``answer=True`` replies to every delivered command at once with the target's signed
    result; otherwise deliveries wait in ``delivered`` for the test to handle."""

    mesh: SimulatedMesh
    url: str
    pin: bytes
    spool_dir: Path
    term: int = 1
    index: int = 0
    answer: bool = False
    backoff_min_s: float = 0.05
    backoff_max_s: float = 0.5
    revocations: bytes | None = None  # sent on every connect
    delivered: asyncio.Queue[DeliveredCommand] = field(default_factory=asyncio.Queue)
    arrivals: dict[bytes, float] = field(default_factory=dict)
    # Futures resolved with the arrival time of a command id (for latency measurements).
    awaited: dict[bytes, asyncio.Future[float]] = field(default_factory=dict)
    uplink: Uplink | None = None
    task: asyncio.Task[None] | None = None

    def start(self) -> Uplink:
        node = self.mesh.nodes[self.index]
        self.uplink = Uplink(self.url, self.pin, node.identity, node.cert, self.term,
                             ResultSpool(self.spool_dir), self._on_commands, self._inventory,
                             revocations=lambda: self.revocations,
                             backoff_min_s=self.backoff_min_s, backoff_max_s=self.backoff_max_s)
        self.task = asyncio.create_task(self.uplink.run(), name=f"leader-{self.term}")
        return self.uplink

    def _inventory(self) -> Sequence[NodeReport]:
        return [n.report() for n in self.mesh.nodes]

    async def _on_commands(self, commands: list[DeliveredCommand]) -> None:
        now = time.perf_counter()
        for command in commands:
            self.arrivals.setdefault(command.command_id, now)
            waiter = self.awaited.pop(command.command_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
            if self.answer:
                wire = self.mesh.node(command.node_id).result(command.command_id)
                assert self.uplink is not None
                await self.uplink.send_result(command.command_id, command.node_id, wire)
            else:
                self.delivered.put_nowait(command)

    async def connected(self, timeout: float = 10.0) -> None:
        assert self.uplink is not None
        waiter = asyncio.ensure_future(self.uplink.connected.wait())
        assert self.task is not None
        done, _ = await asyncio.wait({waiter, self.task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self.task in done:
                self.task.result()  # raises the refusal
            raise TimeoutError("leader did not connect")

    async def stop(self) -> None:
        if self.uplink is not None:
            await self.uplink.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5.0)
            except Exception:
                pass
