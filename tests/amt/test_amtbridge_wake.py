"""The ``wake`` action: a peer powers a sleeping member on through that member's AMT."""

from __future__ import annotations

import asyncio
import os

import pytest
from bridge_support import bridged_mesh

from amt import PowerState
from meshagent.amtbridge import AmtPolicy
from meshagent.amtbridge.bridge import AmtBridge
from meshagent.commands import ActionContext, ActionError, PowerControl, TagStore
from meshagent.commands.actions import BUILTIN_ACTIONS
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
