"""Root-signed documents at the web service: uploaded by an admin (newer version kept,
stored across restarts, audited), handed to the leader at once and to a leader that
connects later, and learnt from the leader's mesh; bad uploads get typed refusals."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from meshagent.cli.api_client import ApiError
from meshagent.commands import build_allowlist
from meshagent.identity import MeshRoot
from meshagent.trustdocs import ALLOWLIST, REVOCATIONS, TrustDocuments
from meshagent.uplink import DeliveredCommand, ResultSpool, Uplink

from .conftest import Harness, wait_for


async def _push(harness: Harness, kind: str, wire: bytes) -> bool:
    return await asyncio.to_thread(harness.api().push_document, kind, wire)


@dataclass
class MeshLeader:
    """A leader over the real uplink whose mesh holds ``documents``; ``start`` runs it."""

    uplink: Uplink
    documents: TrustDocuments
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.uplink.run())


@pytest.fixture
async def leader(harness: Harness) -> AsyncIterator[MeshLeader]:
    node = harness.mesh.nodes[0]

    async def ignore(commands: list[DeliveredCommand]) -> None:
        return None

    documents = TrustDocuments(harness.mesh.root.trust)
    uplink = Uplink(f"wss://127.0.0.1:{harness.port}/uplink", harness.pin, node.identity,
                    node.cert, 1, ResultSpool(harness.tmp_path / "spool"), ignore,
                    lambda: [n.report() for n in harness.mesh.nodes], documents=documents,
                    backoff_min_s=0.05, backoff_max_s=0.5)
    mesh_leader = MeshLeader(uplink, documents)
    try:
        yield mesh_leader
    finally:
        await uplink.stop()
        if mesh_leader.task is not None:
            await asyncio.wait_for(mesh_leader.task, 5)


async def test_leader_connecting_later_gets_the_newest_and_later_ones_at_once(
        harness: Harness, leader: MeshLeader) -> None:
    root = harness.mesh.root
    first = build_allowlist(root, ["ping"], version=1)
    second = build_allowlist(root, ["ping", "inventory"], version=2)
    assert await _push(harness, ALLOWLIST, first.to_wire())
    assert await _push(harness, ALLOWLIST, second.to_wire())
    assert not await _push(harness, ALLOWLIST, second.to_wire())
    leader.start()
    documents = leader.documents
    await wait_for(lambda: documents.version(ALLOWLIST) == 2)
    third = build_allowlist(root, ["ping", "inventory", "tags"], version=3)
    assert await _push(harness, ALLOWLIST, third.to_wire())
    await wait_for(lambda: documents.version(ALLOWLIST) == 3)
    events = [a.event for a in await harness.service.db.audit_log()]
    assert events.count("allowlist_adopted") == 3


async def test_service_learns_the_meshs_documents_from_its_leader_and_keeps_them(
        harness: Harness, leader: MeshLeader) -> None:
    root, documents = harness.mesh.root, leader.documents
    documents.offer(ALLOWLIST, build_allowlist(root, ["ping"], version=4).to_wire())
    leader.start()
    await wait_for(lambda: harness.service.documents[root.mesh_id].version(ALLOWLIST) == 4)
    await leader.uplink.connected.wait()
    listing = root.revoke(serials=[12345])
    documents.offer(REVOCATIONS, listing.to_wire())  # adopted by the mesh while connected
    await wait_for(lambda: root.mesh_id in harness.service.revocations)
    await harness.stop()
    await harness.start()
    assert harness.service.documents[root.mesh_id].versions() == {ALLOWLIST: 4, REVOCATIONS: 1}


async def test_bad_uploads_get_typed_refusals_and_change_nothing(harness: Harness) -> None:
    root = harness.mesh.root
    assert await _push(harness, ALLOWLIST, build_allowlist(root, ["ping"], version=5).to_wire())
    impostor = MeshRoot(root.mesh_id, MeshRoot.create().key)
    cases = [
        (ALLOWLIST, build_allowlist(root, ["power"], version=4).to_wire(), 409,
         "stale_allowlist"),
        (ALLOWLIST, build_allowlist(impostor, ["power"], version=9).to_wire(), 403,
         "untrusted_allowlist"),
        (REVOCATIONS, impostor.revoke(serials=[1]).to_wire(), 403, "untrusted_revocations"),
    ]
    for kind, wire, status, code in cases:
        with pytest.raises(ApiError) as refused:
            await _push(harness, kind, wire)
        assert (refused.value.status, refused.value.code) == (status, code)
    path = f"/api/meshes/{root.mesh_id.hex()}/documents"
    for body, code in (({"kind": ALLOWLIST, "doc": base64.b64encode(b"junk").decode()},
                        "malformed_allowlist"),
                       ({"kind": "firmware", "doc": ""}, "unknown_kind_firmware")):
        with pytest.raises(ApiError) as refused:
            await harness.call("POST", path, body)
        assert (refused.value.status, refused.value.code) == (400, code)
    foreign = MeshRoot.create()  # its document uploaded under this mesh's id
    with pytest.raises(ApiError) as refused:
        await harness.call("POST", path, {
            "kind": ALLOWLIST,
            "doc": base64.b64encode(build_allowlist(foreign, ["ping"]).to_wire()).decode()})
    assert (refused.value.status, refused.value.code) == (403, "foreign_allowlist")
    assert harness.service.documents[root.mesh_id].versions() == {ALLOWLIST: 5}
