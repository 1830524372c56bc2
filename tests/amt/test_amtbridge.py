"""The AMT bridge against software AMT devices: accounts and realms, grants, sleeping
members read from AMT, hostile blocks, stalled devices, rotation on revocation, wake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from amt_support import ADMIN_PASSWORD
from bridge_support import BridgedMesh, bridged_mesh

from amt import AccessDenied, AmtClient, BadCredentials, PowerAction, PowerState, Realm
from amt.device import TlsCertificate
from meshagent import codec
from meshagent.amtbridge import (
    AMT_CHANNEL,
    AmtPolicy,
    SleepingNode,
    WakeFailed,
    inventory_record,
)
from meshagent.amtbridge.amtrecord import sign_amt_record
from meshagent.amtbridge.storage import RecordBlock
from meshagent.identity import NodeIdentity, RevocationList
from meshagent.membership import MemberState
from meshagent.routing import Message
from tests.mesh.meshkit import wait_until


@pytest.fixture
async def mesh() -> AsyncIterator[BridgedMesh]:
    built = await bridged_mesh(3, tags={2: {"site": "lab", "role": "build"}})
    try:
        yield built
    finally:
        await built.stop()


def _client(mesh: BridgedMesh, owner: int, holder: int, waker: bool = False) -> AmtClient:
    grant = mesh.nodes[holder].bridge.grant_for(mesh.nodes[owner].node_id)
    assert grant is not None
    user, password = (grant.waker_user, grant.waker_password) if waker else (
        grant.guest_user, grant.guest_password)
    return AmtClient(grant.host, grant.port, user, password, timeout=5)


async def test_guest_account_reads_but_cannot_change_power(mesh: BridgedMesh) -> None:
    accounts = {a.username: set(a.realms) for a in mesh.nodes[0].device.state.accounts.values()}
    assert accounts == {"mesh-guest": {Realm.GENERAL_INFO, Realm.STORAGE},
                        "mesh-waker": {Realm.REMOTE_CONTROL}}
    async with _client(mesh, 0, 1) as guest:
        assert await guest.get_power_state() == PowerState.ON
        with pytest.raises(AccessDenied):
            await guest.request_power_change(PowerAction.OFF)
        with pytest.raises(AccessDenied):
            await guest.add_user_acl_entry("intruder", "pw", [Realm.REMOTE_CONTROL])
    assert mesh.nodes[0].membership.record.amt_present


async def test_policy_without_wake_creates_no_power_account() -> None:
    mesh = await bridged_mesh(2, policy=AmtPolicy(share_wake=False))
    try:
        names = {a.username for a in mesh.nodes[0].device.state.accounts.values()}
        assert names == {"mesh-guest"}
        grant = mesh.nodes[1].bridge.grant_for(mesh.nodes[0].node_id)
        assert grant is not None and not grant.can_wake
        with pytest.raises(WakeFailed):
            await mesh.nodes[1].bridge.wake(mesh.nodes[0].node_id)
    finally:
        await mesh.stop()


async def test_sleeping_member_is_marked_asleep_with_its_record_from_amt(
        mesh: BridgedMesh) -> None:
    sleeper = mesh.nodes[2]
    await sleeper.sleep()
    await wait_until(lambda: all(mesh.state(i, 2) == MemberState.ASLEEP for i in (0, 1)),
                     15, "peers see the sleeper asleep")
    await wait_until(lambda: all(isinstance(mesh.nodes[i].membership.member(
        sleeper.node_id).power_record, SleepingNode) for i in (0, 1)), 5, "records kept")
    for observer in mesh.nodes[:2]:
        member = observer.membership.member(sleeper.node_id)
        assert member is not None
        sleeping = member.power_record
        assert sleeping.power_state == PowerState.SLEEP_DEEP and sleeping.state == "asleep"
        assert sleeping.amt_record is not None and sleeping.amt_record.reason == "sleep"
        assert sleeping.amt_record.record.tags == {"site": "lab", "role": "build"}
        assert {n for n, _ in sleeping.amt_record.peers} == {mesh.nodes[0].node_id,
                                                            mesh.nodes[1].node_id}
        assert inventory_record(member) == sleeping.amt_record.record.wire
    checks = sum(n.bridge.counters["checks"] for n in mesh.nodes[:2])
    assert checks == 1  # one peer asked the device; the other took its signed notice


async def test_soft_off_member_is_marked_off(mesh: BridgedMesh) -> None:
    await mesh.nodes[1].sleep(PowerState.OFF_SOFT)
    await wait_until(lambda: mesh.state(0, 1) == MemberState.OFF, 15, "seen off")
    assert mesh.nodes[0].bridge.sleeping(mesh.nodes[1].node_id).power_state == \
        PowerState.OFF_SOFT


async def test_member_whose_amt_says_on_is_not_marked_asleep(mesh: BridgedMesh) -> None:
    crashed = mesh.nodes[2]
    await crashed.bridge.stop()
    await crashed.membership.stop()  # the agent died; the host is still on
    await wait_until(lambda: mesh.state(0, 2) == MemberState.UNREACHABLE, 15, "unreachable")
    await wait_until(lambda: sum(n.bridge.counters["checks_on"] for n in mesh.nodes[:2]) >= 1,
                     5, "a peer asked its AMT")
    assert mesh.state(1, 2) == MemberState.UNREACHABLE


async def _write_block(mesh: BridgedMesh, index: int, wire: bytes) -> None:
    node = mesh.nodes[index]
    async with AmtClient("127.0.0.1", node.device.port, "admin", ADMIN_PASSWORD) as admin:
        await RecordBlock(admin, node.bridge.app).write(wire)


async def _sleep_silently(mesh: BridgedMesh, index: int) -> None:
    """Sleep without writing a fresh record (the block keeps what the test put there)."""
    node = mesh.nodes[index]
    node.device.set_power_state(PowerState.SLEEP_DEEP)
    await node.bridge.stop()
    node.router.hub.cut.add(node.node_id)
    await node.membership.stop()


@pytest.mark.parametrize("content", ["forged", "garbage", "other-node"])
async def test_untrusted_block_is_refused_but_sleep_is_still_seen(
        mesh: BridgedMesh, content: str) -> None:
    victim = mesh.nodes[2]
    if content == "forged":  # the victim's record, signed by another key
        forger = NodeIdentity.generate()
        wire = codec.pack(codec.unpack(sign_amt_record(
            victim.membership.identity, victim.membership.record, [], "sleep")))
        doc = codec.unpack(wire)
        doc["sig"] = forger.sign_key.sign_raw(doc["b"])
        wire = codec.pack(doc)
    elif content == "garbage":
        wire = bytes(range(256)) * 8
    else:  # a valid record of node 1 planted in node 2's block
        other = mesh.nodes[1].membership
        wire = sign_amt_record(other.identity, other.record, [], "sleep")
    await _write_block(mesh, 2, wire)
    await _sleep_silently(mesh, 2)
    await wait_until(lambda: mesh.state(0, 2) == MemberState.ASLEEP, 15, "asleep")
    await wait_until(lambda: sum(n.bridge.counters["bad_records"] for n in mesh.nodes[:2]) >= 1,
                     5, "refusal counted")
    for observer in mesh.nodes[:2]:
        sleeping = observer.bridge.sleeping(victim.node_id)
        assert sleeping is None or sleeping.amt_record is None
        assert inventory_record(observer.membership.member(victim.node_id)) is None


async def test_block_without_header_is_garbage(mesh: BridgedMesh) -> None:
    node = mesh.nodes[2]
    async with AmtClient("127.0.0.1", node.device.port, "admin", ADMIN_PASSWORD) as admin:
        async with await admin.storage.register(node.bridge.app) as session:
            (handle,) = await session.allocated_blocks()
            await session.write_block(handle, b"\xff" * 16)
    await _sleep_silently(mesh, 2)
    await wait_until(lambda: mesh.state(0, 2) == MemberState.ASLEEP, 15, "asleep")
    await wait_until(lambda: sum(n.bridge.counters["bad_records"] for n in mesh.nodes[:2]) >= 1,
                     5, "refusal counted")


async def test_stalled_device_gives_up_within_the_probe_timeout(mesh: BridgedMesh) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    observer, subject = mesh.nodes[0].bridge, mesh.nodes[1].node_id
    grant = observer.grant_for(subject)
    assert grant is not None
    observer._grants[subject] = type(grant)(**{**grant.__dict__, "port": port})
    try:
        started = time.monotonic()
        assert await observer.check(subject) is None
        elapsed = time.monotonic() - started
        assert elapsed < observer.settings.probe_timeout_s + 0.5
        assert observer.counters["checks_failed"] == 1
    finally:
        server.close()
        for writer in accepted:
            writer.close()


async def test_revoked_member_loses_working_credentials(mesh: BridgedMesh) -> None:
    owner, kept, revoked = mesh.nodes
    old = revoked.bridge.grant_for(owner.node_id)
    assert old is not None
    revocations = RevocationList.issue(mesh.kit.root.key, mesh.kit.root.mesh_id,
                                       node_ids=[revoked.node_id])
    owner.membership.update_revocations(revocations)
    await wait_until(lambda: owner.bridge.counters["rotations"] >= 1, 5, "rotation")
    await wait_until(lambda: (g := kept.bridge.grant_for(owner.node_id)) is not None
                     and g.epoch > old.epoch, 5, "new grant for the member in good standing")
    async with AmtClient(old.host, old.port, old.guest_user, old.guest_password) as stale:
        with pytest.raises(BadCredentials):
            await stale.get_power_state()
    async with _client(mesh, 0, 1) as fresh:
        assert await fresh.get_power_state() == PowerState.ON
    current = revoked.bridge.grant_for(owner.node_id)
    assert current is None or current.epoch == old.epoch


async def test_wake_powers_the_member_on_through_its_amt(mesh: BridgedMesh) -> None:
    woken: asyncio.Event = asyncio.Event()
    sleeper = mesh.nodes[1]
    sleeper.device.power.hooks.on_wake = woken.set
    await sleeper.sleep()
    await wait_until(lambda: mesh.state(0, 1) == MemberState.ASLEEP, 15, "asleep")
    result = await mesh.nodes[0].bridge.wake(sleeper.node_id)
    assert result["powered_on"] and result["power_state_before"] == "sleep_deep"
    await asyncio.wait_for(woken.wait(), 5)
    assert sleeper.device.power.state == PowerState.ON


async def test_grant_from_someone_else_than_the_owner_is_dropped(mesh: BridgedMesh) -> None:
    observer = mesh.nodes[0].bridge
    owner = mesh.nodes[1]
    wire = owner.router.sent[0][1] if owner.router.sent else b""
    relayed = codec.unpack(wire)[1] if wire else b""
    observer._on_message(Message(mesh.nodes[2].node_id, AMT_CHANNEL,
                                 codec.pack([1, relayed]), 1))
    observer._on_message(Message(owner.node_id, AMT_CHANNEL, b"\x93\x01\x02", 1))
    observer._on_message(Message(owner.node_id, AMT_CHANNEL, b"\xc1garbage", 1))
    dropped = sum(v for k, v in observer.counters.items() if k.startswith("dropped_"))
    assert dropped == 3


async def test_asleep_notices_with_forged_records_or_about_live_members_are_ignored(
        mesh: BridgedMesh) -> None:
    observer, subject, forger = mesh.nodes
    about_live = sign_amt_record(subject.membership.identity, subject.membership.record, [],
                                 "sleep")
    notice = [3, subject.node_id, "asleep", int(PowerState.SLEEP_DEEP), about_live]
    observer.bridge._on_message(Message(forger.node_id, AMT_CHANNEL, codec.pack(notice), 1))
    assert mesh.state(0, 1) == MemberState.ALIVE  # late or false news: it answers probes

    await subject.bridge.stop()
    subject.router.hub.cut.add(subject.node_id)
    await subject.membership.stop()  # its agent died; the host is on
    await wait_until(lambda: mesh.state(0, 1) == MemberState.UNREACHABLE, 15, "unreachable")
    forged = sign_amt_record(forger.membership.identity, forger.membership.record, [],
                             "sleep")  # forger's own valid record, claimed as the subject's
    notice = [3, subject.node_id, "asleep", int(PowerState.SLEEP_DEEP), forged]
    observer.bridge._on_message(Message(forger.node_id, AMT_CHANNEL, codec.pack(notice), 1))
    assert observer.bridge.counters["dropped_BadRecordSignature"] == 1
    assert mesh.state(0, 1) == MemberState.UNREACHABLE


async def test_wrong_credentials_are_an_error_not_a_verdict(mesh: BridgedMesh) -> None:
    observer, subject = mesh.nodes[0].bridge, mesh.nodes[1]
    grant = observer.grant_for(subject.node_id)
    assert grant is not None
    observer._grants[subject.node_id] = type(grant)(**{**grant.__dict__,
                                                       "guest_password": "wrong"})
    subject.device.set_power_state(PowerState.SLEEP_DEEP)
    assert await observer.check(subject.node_id) is None
    assert observer.counters["checks_failed"] == 1
    assert mesh.state(0, 1) == MemberState.ALIVE


async def test_grants_survive_a_restart_sealed_on_disk(tmp_path) -> None:
    mesh = await bridged_mesh(2)
    try:
        holder, owner = mesh.nodes[0], mesh.nodes[1]
        await holder.bridge.stop()
        holder.bridge.grants_dir = tmp_path / "grants"
        holder.bridge._grants.clear()  # as a fresh agent would start
        owner.bridge._acked.clear()
        await holder.bridge.start()
        await wait_until(lambda: (tmp_path / "grants").is_dir() and any(
            (tmp_path / "grants").iterdir()), 5, "grant stored")
        (stored,) = (tmp_path / "grants").iterdir()
        assert stored.stat().st_mode & 0o777 == 0o600
        assert b"mesh-guest" not in stored.read_bytes()  # sealed, as received
        restarted = type(holder.bridge)(holder.membership.identity, holder.membership,
                                        holder.router, grants_dir=tmp_path / "grants")
        restarted._load_sealed_grants()
        assert restarted.grant_for(owner.node_id) == holder.bridge.grant_for(owner.node_id)
    finally:
        await mesh.stop()


async def test_record_is_rewritten_periodically(mesh: BridgedMesh) -> None:
    bridge = mesh.nodes[0].bridge
    written = bridge.counters["records_written"]
    bridge._next_record = 0.0
    await wait_until(lambda: bridge.counters["records_written"] > written, 5, "rewrite")


async def test_pinned_tls_amt_is_read_with_the_shared_pin(tmp_path) -> None:
    certificate = TlsCertificate.generate(tmp_path)
    mesh = await bridged_mesh(2, tls=certificate)
    try:
        grant = mesh.nodes[0].bridge.grant_for(mesh.nodes[1].node_id)
        assert grant is not None and grant.tls and grant.cert_sha256 == certificate.sha256
        await mesh.nodes[1].sleep()
        await wait_until(lambda: mesh.state(0, 1) == MemberState.ASLEEP, 15, "asleep")
        sleeping = mesh.nodes[0].bridge.sleeping(mesh.nodes[1].node_id)
        assert sleeping is not None and sleeping.amt_record is not None
    finally:
        await mesh.stop()


async def test_rotation_is_retried_until_the_amt_answers(mesh: BridgedMesh) -> None:
    owner, revoked = mesh.nodes[0], mesh.nodes[2]
    old = revoked.bridge.grant_for(owner.node_id)
    assert old is not None
    endpoint = owner.bridge.endpoint
    assert endpoint is not None
    owner.bridge.endpoint = type(endpoint)(**{**endpoint.__dict__, "port": 1})  # unreachable
    owner.membership.update_revocations(RevocationList.issue(
        mesh.kit.root.key, mesh.kit.root.mesh_id, node_ids=[revoked.node_id]))
    await wait_until(lambda: owner.bridge.counters["provision_failed"] >= 1, 10, "a failure")
    owner.bridge.endpoint = endpoint  # the device answers again
    await wait_until(lambda: owner.bridge.status()["epoch"] > old.epoch, 10, "rotated")
    async with AmtClient(old.host, old.port, old.guest_user, old.guest_password) as stale:
        with pytest.raises(BadCredentials):
            await stale.get_power_state()
