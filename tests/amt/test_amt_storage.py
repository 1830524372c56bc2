"""Third-party data storage on the software device: limits, counts and chunked transfers."""

from __future__ import annotations

import os

import pytest

from amt import AmtClient, ReturnValueError, StorageApplication
from amt.operations.storage import SERVICE, StorageSession

APP = StorageApplication("meshagent", "node-record", "meshagent", bytes(range(16)))
OTHER = StorageApplication("meshagent", "node-record", "meshagent", bytes(range(1, 17)))


async def open_session(admin: AmtClient, app: StorageApplication = APP) -> StorageSession:
    await admin.storage_admin.ensure_enterprise(app.enterprise)
    return await admin.storage.register(app)


async def invoke_status(session: StorageSession, method: str, **params: object) -> str:
    """The PT_STATUS name a raw method call on the session's service fails with."""
    with pytest.raises(ReturnValueError) as info:
        await session.wsman.invoke(SERVICE, method, {"SessionHandle": session.handle, **params})
    return info.value.name


async def test_large_record_is_written_and_read_in_mtu_pieces(device, admin):
    session = await open_session(admin)
    data = os.urandom(10_000)
    block = await session.allocate_block(12_288, "node")
    before = device.requests
    await session.write_block(block, data)
    assert device.requests - before == 3  # 4096 + 4096 + 1808
    before = device.requests
    assert await session.read_block(block, 0, len(data)) == data
    assert device.requests - before == 3
    assert await session.read_block(block, 9_990, 10) == data[9_990:]
    assert len(await session.read_block(block)) == 12_288  # whole block by its attributes


async def test_transfers_over_the_mtu_or_outside_the_block_are_refused(admin):
    session = await open_session(admin)
    block = await session.allocate_block(8192)
    assert await invoke_status(session, "ReadBlock", BlockHandle=block, ByteOffset=0,
                               ByteCount=4097) == "PT_STATUS_INVALID_BYTE_COUNT"
    assert await invoke_status(session, "ReadBlock", BlockHandle=block, ByteOffset=8192,
                               ByteCount=1) == "PT_STATUS_INVALID_BYTE_OFFSET"
    assert await invoke_status(session, "ReadBlock", BlockHandle=block, ByteOffset=8000,
                               ByteCount=500) == "PT_STATUS_INVALID_BYTE_COUNT"
    big = "A" * 5464 + "=="  # 4098 bytes of base64
    assert await invoke_status(session, "WriteBlock", BlockHandle=block, ByteOffset=0,
                               Data=big) == "PT_STATUS_INVALID_BYTE_COUNT"
    assert await invoke_status(session, "WriteBlock", BlockHandle=block, ByteOffset=0,
                               Data="not base64!") == "PT_STATUS_INVALID_PARAMETER"


async def test_per_application_and_global_limits_are_enforced_and_counted(device, admin):
    session = await open_session(admin)
    limit = device.state.limits.max_non_partner_total_allocation
    assert await session.bytes_available() == limit
    assert await invoke_status(session, "AllocateBlock", BytesRequested=1000,
                               BlockHidden=False) == "PT_STATUS_INVALID_PARAMETER"
    first = await session.allocate_block(limit - 4096)
    assert await session.bytes_available() == 4096
    assert await invoke_status(session, "AllocateBlock", BytesRequested=8192,
                               BlockHidden=False) == "PT_STATUS_NOT_ENOUGH_STORAGE"
    attributes = await admin.storage_admin.global_attributes()
    assert attributes.total_storage == 192 * 1024
    assert attributes.total_allocated_storage == limit - 4096
    assert attributes.max_non_partner_total_allocation_size == limit
    assert (attributes.max_eacl_entries, attributes.max_asl_entries) == (4, 16)
    await session.deallocate_block(first)
    assert (await admin.storage_admin.global_attributes()).total_allocated_storage == 0


async def test_partner_application_gets_its_fpacl_allocation(device, admin):
    handle = await admin.storage_admin.add_fpacl_entry("node-record", "meshagent", 49_152)
    entry = await admin.storage_admin.get_alloc_entry(handle)
    assert entry.is_partner and entry.total_allocation_size == 49_152
    session = await open_session(admin)
    assert await session.bytes_available() == 49_152
    await session.allocate_block(49_152)
    assert (await admin.storage_admin.global_attributes()).total_partner_allocated_storage \
        == 49_152
    with pytest.raises(ReturnValueError, match="STORAGE_ACL_ENTRY_IN_USE"):
        await admin.storage_admin.remove_fpacl_entry(handle)


async def test_enterprise_list_is_required_and_bounded(admin):
    with pytest.raises(ReturnValueError, match="INVALID_REGISTRATION_DATA"):
        await admin.storage.register(APP)
    for i in range(4):
        await admin.storage_admin.add_eacl_entry(f"enterprise{i}")
    with pytest.raises(ReturnValueError, match="MAX_LIMIT_REACHED"):
        await admin.storage_admin.add_eacl_entry("one-too-many")
    handles = await admin.storage_admin.eacl_entries()
    assert [await admin.storage_admin.get_eacl_entry(h) for h in handles] == \
        [f"enterprise{i}" for i in range(4)]
    await admin.storage_admin.remove_eacl_entry(handles[0])
    assert len(await admin.storage_admin.eacl_entries()) == 3


async def test_sessions_are_bounded_and_freed_by_unregister(device, admin):
    sessions = [await open_session(admin) for _ in range(device.state.limits.max_asl_entries)]
    with pytest.raises(ReturnValueError, match="MAX_LIMIT_REACHED"):
        await admin.storage.register(APP)
    await sessions[0].close()
    again = await admin.storage.register(APP)
    assert await again.application_handle() == await sessions[1].application_handle()
    with pytest.raises(ReturnValueError, match="APPLICATION_NOT_REGISTERED"):
        await sessions[0].allocated_blocks(1)


async def test_only_the_owner_reads_and_hidden_blocks_are_invisible(admin):
    owner = await open_session(admin)
    stranger = await open_session(admin, OTHER)
    visible = await owner.allocate_block(4096, "visible")
    hidden = await owner.allocate_block(4096, "hidden", hidden=True)
    owner_app = await owner.application_handle()
    assert await owner.allocated_blocks() == [visible, hidden]
    assert await stranger.allocated_blocks(owner_app) == [visible]
    assert await invoke_status(stranger, "ReadBlock", BlockHandle=visible, ByteOffset=0,
                               ByteCount=1) == "PT_STATUS_NOT_PERMITTED"
    assert await invoke_status(stranger, "GetBlockAttributes",
                               BlockHandle=hidden) == "PT_STATUS_BLOCK_DOES_NOT_EXIST"
    assert await invoke_status(stranger, "DeallocateBlock",
                               BlockHandle=visible) == "PT_STATUS_NOT_OWNER"
    assert sorted(await owner.registered_applications()) == sorted(
        [owner_app, await stranger.application_handle()])


async def test_storage_service_constants(admin):
    assert await admin.storage.mtu() == 4096
    registration, lock = await admin.storage.timeouts()
    assert registration > 0 and lock > 0
