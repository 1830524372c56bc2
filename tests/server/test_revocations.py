"""Root-signed revocation lists at the web service: adopted from admins or leaders (the
newer version wins, kept across restarts) and applied to leader logins and submissions."""

from __future__ import annotations

import asyncio
import base64

import pytest

from meshagent.cli.api_client import ApiError
from meshagent.commands import Target
from meshagent.identity import MeshRoot
from meshagent.server.protocol import Close
from meshagent.uplink import UplinkRefused

from .conftest import Harness


async def _post_list(harness: Harness, wire: bytes) -> dict:
    return await harness.call("POST", f"/api/meshes/{harness.mesh.mesh_id.hex()}/revocations",
                              {"list": base64.b64encode(wire).decode()})


async def test_revoked_leader_is_refused_at_login(harness: Harness) -> None:
    revoked = harness.mesh.nodes[0]
    listing = harness.mesh.root.revoke(node_ids=[revoked.node_id])
    assert (await _post_list(harness, listing.to_wire())) == {"adopted": True}
    assert (await _post_list(harness, listing.to_wire())) == {"adopted": False}
    leader = harness.leader(term=1, index=0)
    with pytest.raises(UplinkRefused) as refused:
        await leader.connected()
    assert refused.value.code == Close.AUTH_FAILED
    other = harness.leader(term=1, index=1)
    await other.connected()


async def test_leader_hands_over_a_list_that_revokes_itself(harness: Harness) -> None:
    leader = harness.leader(term=1, index=2)
    await leader.connected()
    listing = harness.mesh.root.revoke(node_ids=[harness.mesh.nodes[2].node_id])
    assert leader.uplink is not None
    assert await leader.uplink.send_revocations(listing.to_wire())
    assert leader.task is not None
    with pytest.raises(UplinkRefused) as refused:
        await asyncio.wait_for(leader.task, 10)
    assert refused.value.code == Close.AUTH_FAILED
    events = [a.event for a in await harness.service.db.audit_log()]
    assert "revocations_adopted" in events


async def test_revoked_operator_is_refused_at_submit_also_after_a_restart(
        harness: Harness) -> None:
    operator_id = harness.mesh.operator_cert.operator_id
    await _post_list(harness, harness.mesh.root.revoke(node_ids=[operator_id]).to_wire())
    await harness.stop()
    await harness.start()
    signed = harness.mesh.command(Target.all())
    with pytest.raises(ApiError) as error:
        await harness.submit(signed.to_wire())
    assert (error.value.status, error.value.code) == (403, "operator_revoked")
    audit = await harness.service.db.audit_log(command_id=signed.envelope().id)
    assert audit[0].detail["reason"] == "operator_revoked"


async def test_list_not_signed_by_the_mesh_root_is_refused(harness: Harness) -> None:
    impostor = MeshRoot(harness.mesh.mesh_id, MeshRoot.create().key)
    forged = impostor.revoke(node_ids=[harness.mesh.nodes[1].node_id])
    with pytest.raises(ApiError) as error:
        await _post_list(harness, forged.to_wire())
    assert (error.value.status, error.value.code) == (403, "untrusted_revocations")
    assert harness.service.revocations == {}
