"""Multicast discovery on loopback (real sockets): beacons find peers; beacons of other
meshes, forged, stale and malformed beacons are dropped and counted."""

from __future__ import annotations

import itertools
import time

import pytest

from meshagent import codec
from meshagent.discovery import BEACON_KIND, Discovery, build_beacon
from meshagent.membership import Membership
from meshagent.profiles import Profile
from meshagent.signing import sign
from meshagent.transport import UdpTransport
from tests.mesh.meshkit import MeshKit, converged, wait_until

_ports = itertools.count(27947)
SOURCE = ("127.0.0.99", 5000)


def _discovery(node: Membership, port: int) -> Discovery:
    return Discovery(node, port=port, interface="127.0.0.1", interval_s=0.5)


async def test_beacons_join_agents_of_the_same_mesh_and_ignore_other_meshes() -> None:
    port = next(_ports)
    kit, other = MeshKit(profile=Profile.LOCAL), MeshKit(profile=Profile.LOCAL)
    nodes = [kit.node(UdpTransport(f"127.0.1.{i + 1}")) for i in range(4)]
    stranger = other.node(UdpTransport("127.0.1.50"))
    discoveries = []
    try:
        for node in [stranger, *nodes]:
            await node.start()
            discovery = _discovery(node, port)
            await discovery.start()
            discoveries.append(discovery)
        await wait_until(lambda: converged(nodes), 10, "discovery")
        await wait_until(lambda: discoveries[0].counters["beacons_other_mesh"] >= 4, 5,
                         "stranger hears the others")
        assert len(stranger.members()) == 1
        assert all(node.member(stranger.node_id) is None for node in nodes)
        await wait_until(lambda: all(d.counters["beacons_other_mesh"] >= 1
                                     for d in discoveries[1:]), 5, "the others hear it")
        assert all(node.member(stranger.node_id) is None for node in nodes)
    finally:
        for discovery in discoveries:
            await discovery.stop()
        await kit.stop_all()
        await other.stop_all()


@pytest.fixture
async def listener() -> tuple[MeshKit, Membership, Discovery]:
    kit = MeshKit(profile=Profile.LOCAL)
    node = kit.node(UdpTransport("127.0.1.60"))
    await node.start()
    discovery = _discovery(node, next(_ports))
    yield kit, node, discovery
    await kit.stop_all()


async def _speaker(kit: MeshKit) -> Membership:
    speaker = kit.node(UdpTransport("127.0.1.61"))
    await speaker.start()
    return speaker


async def test_forged_beacon_is_dropped(listener: tuple) -> None:
    kit, node, discovery = listener
    speaker = await _speaker(kit)
    signed = codec.unpack(build_beacon(speaker))
    signed["sig"] = bytes(64)
    discovery.on_beacon(codec.pack(signed), SOURCE)
    assert discovery.counters["dropped_bad_signature"] == 1
    assert discovery.counters["beacons_accepted"] == 0


async def test_beacon_signed_by_another_member_for_this_node_is_dropped(listener: tuple,
                                                                       ) -> None:
    kit, node, discovery = listener
    speaker, liar = await _speaker(kit), kit.node(UdpTransport("127.0.1.62"))
    body = codec.unpack(codec.unpack(build_beacon(speaker))["b"])
    forged = sign(liar.identity.sign_key, BEACON_KIND, body).to_wire()
    discovery.on_beacon(forged, SOURCE)
    assert discovery.counters["dropped_bad_signature"] == 1


async def test_stale_and_malformed_beacons_are_dropped(listener: tuple) -> None:
    kit, node, discovery = listener
    speaker = await _speaker(kit)
    discovery.on_beacon(build_beacon(speaker, now=time.time() - 3600), SOURCE)
    assert discovery.counters["dropped_stale"] == 1
    for junk in (b"", b"\xc1", codec.pack({"k": "beacon", "b": b"\x01", "s": b"", "sig": b""}),
                 b"x" * 5000):
        discovery.on_beacon(junk, SOURCE)
    assert discovery.counters["dropped_malformed"] == 4


async def test_beacon_of_revoked_node_is_dropped(listener: tuple) -> None:
    kit, node, discovery = listener
    speaker = await _speaker(kit)
    node.update_revocations(kit.root.revoke(node_ids=[speaker.node_id]))
    discovery.on_beacon(build_beacon(speaker), SOURCE)
    assert discovery.counters["dropped_revoked"] == 1


async def test_valid_beacon_joins_once_per_interval(listener: tuple) -> None:
    kit, node, discovery = listener
    speaker = await _speaker(kit)
    beacon = build_beacon(speaker)
    for _ in range(3):
        discovery.on_beacon(beacon, SOURCE)
    await wait_until(lambda: node.member(speaker.node_id) is not None, 5, "join")
    assert discovery.counters["beacons_accepted"] >= 1
    discovery.on_beacon(beacon, SOURCE)
    assert discovery.counters["beacons_known"] >= 1
    await discovery.stop()


async def test_beacon_flood_from_one_address_is_limited(listener: tuple) -> None:
    kit, node, discovery = listener
    for _ in range(500):
        discovery.on_beacon(b"junk", SOURCE)
    assert discovery.counters["dropped_flood"] > 400
    assert discovery.counters["beacons_accepted"] == 0
