"""Root-signed documents at the web service: uploaded by an admin (newer version kept,
stored across restarts, audited), handed to the leader at once and to a leader that
connects later, and learnt from the leader's mesh; bad uploads get typed refusals; the
meshctl verbs that upload them."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshagent.cli.api_client import ApiError
from meshagent.cli.meshctl import main
from meshagent.commands import OperatorKey, build_allowlist
from meshagent.identity import MeshRoot
from meshagent.trustdocs import ALLOWLIST, REVOCATIONS, TrustDocuments
from meshagent.uplink import DeliveredCommand, ResultSpool, Uplink
from tests.polling import wait_for

from .conftest import ADMIN_PASSWORD, Harness


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


async def test_meshctl_push_verbs_upload_and_report_refusals(
        harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = harness.mesh.root
    root.save(tmp_path / "root.key")
    server = ["--server", harness.url, "--pin", harness.pin.hex(), "--token", ADMIN_PASSWORD]

    async def meshctl(*argv: str) -> int:
        return await asyncio.to_thread(main, [*argv])

    build_allowlist(root, ["ping"], version=6).save(tmp_path / "allowlist")
    assert await meshctl("allowlist", "push", str(tmp_path / "allowlist"), *server) == 0
    assert "allowlist version 6 adopted" in capsys.readouterr().out
    assert await meshctl("allowlist", "push", str(tmp_path / "allowlist"), *server) == 0
    assert "already holds allowlist version 6" in capsys.readouterr().out
    build_allowlist(root, ["ping"], version=2).save(tmp_path / "older")
    assert await meshctl("allowlist", "push", str(tmp_path / "older"), *server) == 1
    assert "stale_allowlist" in capsys.readouterr().err

    operator = OperatorKey.generate("bob")
    assert await meshctl("keys", "revoke", "--root", str(tmp_path / "root.key"), "--id",
                         operator.operator_id.hex(), "--push", *server) == 0
    assert "revocations version 1 adopted" in capsys.readouterr().out
    held = harness.service.revocations[root.mesh_id]
    assert operator.operator_id in held.node_ids
    assert await meshctl("revocations", "push", str(tmp_path / "revocations"), *server) == 0
    assert "already holds revocations version 1" in capsys.readouterr().out
