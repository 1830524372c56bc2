"""The ``wake`` action: a peer powers a sleeping member on through that member's AMT."""

from __future__ import annotations

import asyncio
import os

import pytest
from bridge_support import bridged_mesh

from amt import PowerState
from meshagent.amtbridge import AmtPolicy
from meshagent.amtbridge.bridge import AmtBridge
from meshagent.cli.ctl_wake import choose_waker
from meshagent.commands import ActionContext, ActionError, PowerControl, TagStore
from meshagent.commands.actions import BUILTIN_ACTIONS
from meshagent.errors import ConfigError
from meshagent.membership import MemberState
from tests.mesh.meshkit import wait_until

WAKE = BUILTIN_ACTIONS["wake"]


def _context(node_id: bytes, bridge: AmtBridge | None) -> ActionContext:
    return ActionContext(node_id, lambda: None, PowerControl(dry_run=True), TagStore({}),
                         amt=bridge)


async def test_wake_action_powers_on_a_sleeping_member() -> None:
    mesh = await bridged_mesh(2)
    try:
        sleeper, waker = mesh.nodes[1], mesh.nodes[0]
        woken = asyncio.Event()
        sleeper.device.power.hooks.on_wake = woken.set
        await sleeper.sleep()
        await wait_until(lambda: mesh.state(0, 1) == MemberState.ASLEEP, 15, "asleep")
        output = await WAKE.run({"node": sleeper.node_id.hex()},
                                _context(waker.node_id, waker.bridge))
        assert output == {"node_id": sleeper.node_id.hex(), "power_state_before": "sleep_deep",
                          "powered_on": True}
        await asyncio.wait_for(woken.wait(), 5)
        assert sleeper.device.power.state == PowerState.ON
        assert WAKE.scope == "power"
    finally:
        await mesh.stop()


async def test_wake_refusals_have_stable_codes() -> None:
    mesh = await bridged_mesh(2, policy=AmtPolicy(share_wake=False))
    try:
        me, other = mesh.nodes[0], mesh.nodes[1]
        cases = [({"node": "xyz"}, me.bridge, "bad_args"),
                 ({"node": me.node_id.hex()}, me.bridge, "bad_args"),
                 ({"node": other.node_id.hex()}, None, "unsupported"),
                 ({"node": os.urandom(16).hex()}, me.bridge, "no_grant"),
                 ({"node": other.node_id.hex()}, me.bridge, "wake_failed")]
        for args, bridge, code in cases:
            with pytest.raises(ActionError) as refused:
                await WAKE.run(args, _context(me.node_id, bridge))
            assert refused.value.code == code, args
    finally:
        await mesh.stop()


def _node(node: str, state: str, *addresses: str, leader: str | None = None) -> dict:
    return {"node": node, "state": state, "via_leader": leader,
            "record": {"addresses": list(addresses)}}


def test_console_picks_a_live_peer_on_the_sleepers_network() -> None:
    sleeper = _node("aa", "asleep", "10.1.2.7:7946", leader="ll")
    nodes = [sleeper, _node("ll", "alive", "10.9.0.1:7946"),
             _node("bb", "alive", "10.1.2.9:7946"), _node("cc", "asleep", "10.1.2.8:7946"),
             _node("dd", "unreachable", "10.1.2.10:7946")]
    assert choose_waker(sleeper, nodes) == "bb"
    nodes.append(_node("ll", "alive", "10.1.2.1:7946"))  # the leader, on that network too
    assert choose_waker(sleeper, nodes) == "ll"


def test_console_falls_back_to_the_leader_and_then_gives_up() -> None:
    sleeper = _node("aa", "off", "192.168.5.5:7946", leader="ll")
    assert choose_waker(sleeper, [sleeper, _node("ll", "alive", "10.0.0.1:1")]) == "ll"
    with pytest.raises(ConfigError):
        choose_waker(_node("aa", "off", "[fd00::5]:7946"), [])


async def test_sleep_action_leaves_the_record_in_amt_first() -> None:
    mesh = await bridged_mesh(2)
    try:
        node = mesh.nodes[0]
        before = node.bridge.counters["records_written"]
        output = await BUILTIN_ACTIONS["power"].run({"operation": "sleep"},
                                                    _context(node.node_id, node.bridge))
        assert output["dry_run"] is True
        assert node.bridge.counters["records_written"] == before + 1
    finally:
        await mesh.stop()
