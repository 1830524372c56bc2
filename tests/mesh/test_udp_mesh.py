"""Membership over real sockets on 127.0.0.x, all agents in this process."""

from __future__ import annotations

from meshagent.membership import Membership, MemberState
from meshagent.profiles import Profile
from meshagent.transport import UdpTransport
from tests.mesh.meshkit import MeshKit, converged, state_of, wait_until


async def _socket_mesh(kit: MeshKit, count: int, subnet: str) -> list[Membership]:
    nodes = [kit.node(UdpTransport(f"{subnet}.{index + 1}")) for index in range(count)]
    await nodes[0].start()
    for node in nodes[1:]:
        node.seeds = [nodes[0].transport.local_address]
        await node.start()
    await wait_until(lambda: converged(nodes), 15, "convergence")
    return nodes


async def test_twelve_agents_converge_and_all_see_a_crash_within_two_seconds() -> None:
    kit = MeshKit(profile=Profile.LOCAL)
    try:
        nodes = await _socket_mesh(kit, 12, "127.0.2")
        victim, others = nodes[7], nodes[:7] + nodes[8:]
        await victim.stop()  # sockets closed without a goodbye: what kill -9 looks like
        took = await wait_until(
            lambda: all(state_of(o, victim) == MemberState.UNREACHABLE for o in others),
            10, "crash detection")
        assert took < 2.0
        assert sum(o.counters["crashes_detected"] for o in others) >= 1
    finally:
        await kit.stop_all()


async def test_leaving_agent_is_seen_as_left() -> None:
    kit = MeshKit(profile=Profile.LOCAL)
    try:
        nodes = await _socket_mesh(kit, 6, "127.0.3")
        leaver, others = nodes[2], nodes[:2] + nodes[3:]
        await leaver.leave()
        await wait_until(lambda: all(state_of(o, leaver) == MemberState.LEFT for o in others),
                         5, "leave")
        assert sum(o.counters["crashes_detected"] for o in others) == 0
    finally:
        await kit.stop_all()


async def test_restarted_agent_rejoins_alive() -> None:
    kit = MeshKit(profile=Profile.LOCAL)
    try:
        nodes = await _socket_mesh(kit, 5, "127.0.4")
        victim = nodes[3]
        address = victim.transport.local_address
        await victim.stop()
        await wait_until(lambda: all(state_of(o, victim) == MemberState.UNREACHABLE
                                     for o in nodes if o is not victim), 10, "crash")
        again = Membership(victim.identity, victim.certificate, kit.root.trust,
                           UdpTransport(*address), profile=kit.profile,
                           seeds=[nodes[0].transport.local_address])
        kit.nodes.append(again)
        await again.start()
        await wait_until(lambda: converged([n for n in nodes if n is not victim] + [again]),
                         10, "rejoin")
    finally:
        await kit.stop_all()
