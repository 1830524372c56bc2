"""Building blocks for multi-node membership tests: a mesh root, nodes, and waiting.

``MeshKit`` makes a mesh (root key, trust) and members with real identities and
certificates, on any transport. ``wait_until`` waits for a condition on the event loop's
clock (so it works under ``VirtualClockLoop`` too) and fails with a message on timeout:
tests never sleep a fixed time to synchronise.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from meshagent.identity import MembershipCertificate, MeshRoot, NodeIdentity, RevocationList
from meshagent.membership import Member, Membership, MemberState
from meshagent.membership.simulation import issue_member
from meshagent.profiles import Profile
from meshagent.record import RecordVerifier
from meshagent.transport import Address, MemoryNetwork, Transport, VirtualClockLoop

FAST = Profile.LOCAL.with_changes(probe_interval_s=0.2, probe_timeout_s=0.08,
                                  suspicion_floor_s=0.8, gossip_interval_s=0.02,
                                  fast_sync_interval_s=0.1, reconnect_interval_s=0.5,
                                  stream_timeout_s=0.5)


@dataclass
class MeshKit:
    profile: Profile = FAST
    root: MeshRoot = field(default_factory=MeshRoot.create)
    nodes: list[Membership] = field(default_factory=list)
    shared_verifier: bool = True

    def __post_init__(self) -> None:
        self.verifier = RecordVerifier(self.root.trust)

    def credentials(self, hostname: str) -> tuple[NodeIdentity, MembershipCertificate]:
        return issue_member(self.root, hostname)

    def node(self, transport: Transport, *, seeds: list[Address] | None = None,
             hostname: str | None = None, revocations: RevocationList | None = None,
             profile: Profile | None = None, **kwargs: object) -> Membership:
        name = hostname or f"node{len(self.nodes)}"
        identity, cert = self.credentials(name)
        node = Membership(identity, cert, self.root.trust, transport,
                          profile=profile or self.profile, seeds=seeds or [],
                          revocations=revocations,
                          verifier=self.verifier if self.shared_verifier else None,
                          **kwargs)  # type: ignore[arg-type]
        self.nodes.append(node)
        return node

    async def stop_all(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes), return_exceptions=True)


def state_of(observer: Membership, subject: Membership) -> MemberState | None:
    member: Member | None = observer.member(subject.node_id)
    return member.state if member is not None else None


def converged(nodes: list[Membership]) -> bool:
    """Every node sees every other node alive."""
    ids = {node.node_id for node in nodes}
    for node in nodes:
        alive = {m.node_id for m in node.members() if m.state == MemberState.ALIVE}
        if not ids <= alive:
            return False
    return True


async def wait_until(condition: Callable[[], bool], timeout: float, what: str = "condition",
                     poll: float = 0.01) -> float:
    """Wait until ``condition()`` holds; returns the loop time it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(poll)
    return loop.time() - start


def free_loopback_subnet(prefix: str, count: int, port: int) -> str:
    """A random ``prefix.N`` loopback subnet whose first ``count`` addresses have ``port``
    free for UDP and TCP. Agents use a fixed port, so two meshes on the same random subnet
    (leaked sockets of an earlier test, or another test run on a shared machine) failed
    with "address already in use"."""
    for _ in range(100):
        subnet = f"{prefix}.{random.randrange(1, 250)}"
        if all(_port_free(f"{subnet}.{index + 1}", port) for index in range(count)):
            return subnet
    raise RuntimeError(f"no loopback subnet under {prefix} with port {port} free")


def _port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as agents bind
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def run_virtual(coroutine: object) -> object:
    """Run a coroutine on a ``VirtualClockLoop``: protocol time passes without waiting."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]


def memory_mesh(kit: MeshKit, network: MemoryNetwork, count: int, *,
                subnet: str = "10.0.0", seed_index: int = 0,
                rng_seed: int | None = None) -> list[Membership]:
    """``count`` nodes on ``network``; all but the first use the first as their seed.
    ``rng_seed`` seeds each node's protocol choices (probe order, gossip targets)."""
    addresses = [(f"{subnet}.{index + 1}", 7946) for index in range(count)]
    return [kit.node(network.transport(address),
                     seeds=[] if index == seed_index else [addresses[seed_index]],
                     rng=None if rng_seed is None else random.Random(rng_seed * 1000 + index))
            for index, address in enumerate(addresses)]
