"""The client against recorded-structure AMT replies (tests/data/amt)."""

from __future__ import annotations

import pytest
from amt_support import FIXTURES, FixtureTransport, fixture_bytes

from amt import (
    AccessDenied,
    ActionNotSupported,
    AmtClient,
    AmtFault,
    DestinationUnreachable,
    InvalidSelectors,
    MalformedResponse,
    PowerAction,
    PowerState,
    Realm,
    ReturnValueError,
    StorageApplication,
)
from amt.wsman.reply import parse_reply

FAULTS = {
    "fault_destination_unreachable": DestinationUnreachable,
    "fault_access_denied": AccessDenied,
    "fault_invalid_selectors": InvalidSelectors,
    "fault_action_not_supported": ActionNotSupported,
}
APP = StorageApplication("meshagent", "node-record", "meshagent", bytes(range(16)))


def client(*names: str) -> tuple[AmtClient, FixtureTransport]:
    transport = FixtureTransport(*names)
    return AmtClient(transport=transport), transport


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.xml")), ids=lambda p: p.stem)
def test_every_fixture_parses_or_raises_its_named_fault(path):
    data = path.read_bytes()
    if path.stem in FAULTS:
        with pytest.raises(FAULTS[path.stem]) as info:
            parse_reply(data, 400)
        assert info.value.code == "Sender" and info.value.reason
    else:
        reply = parse_reply(data)
        assert reply.action.endswith("Response")
        assert reply.message_id.startswith("uuid:00000000-8086-8086-8086-")
        assert reply.resource_uri.startswith("http")


async def test_power_state_is_read_from_enumerate_and_pull():
    amt, transport = client("power_enumerate", "power_pull")
    assert await amt.get_power_state() is PowerState.SLEEP_DEEP
    assert b"enumeration/Pull" in transport.requests[1]
    assert b"0B000000-0000-0000-0000-000000000000" in transport.requests[1]


async def test_power_change_sends_managed_system_reference():
    amt, transport = client("request_power_state_change")
    await amt.request_power_change(PowerAction.ON)
    sent = transport.requests[0]
    assert b"<r:PowerState>2</r:PowerState>" in sent
    assert b'<w:Selector Name="Name">ManagedSystem</w:Selector>' in sent
    assert b"CIM_PowerManagementService/RequestPowerStateChange" in sent


async def test_failed_power_change_raises_return_value_error():
    amt, _ = client("request_power_state_change_failed")
    with pytest.raises(ReturnValueError) as info:
        await amt.request_power_change(PowerAction.RESET)
    assert info.value.code == 2 and info.value.name == "UNKNOWN_ERROR"


async def test_general_settings_and_rename():
    amt, transport = client("general_settings_get", "general_settings_get",
                            "general_settings_put")
    settings = await amt.general_settings()
    assert settings.hostname == "laptop-0042"
    assert settings.digest_realm == "Digest:A3829B3827DE4D33D4449B366831FD01"
    renamed = await amt.rename("renamed-0042")
    assert renamed.hostname == "renamed-0042"
    put = transport.requests[2]
    assert b"<r:HostName>renamed-0042</r:HostName>" in put
    assert b'<w:Selector Name="InstanceID">Intel(r) AMT: General Settings</w:Selector>' in put


async def test_ethernet_ports_and_software_version_across_pull_pages():
    amt, transport = client("ethernet_enumerate", "ethernet_pull", "software_identity_enumerate",
                            "software_identity_pull_page1", "software_identity_pull_page2")
    ports = await amt.ethernet_ports()
    assert ports[0].mac_address == "a4-bb-6d-11-22-33" and ports[0].link_is_up
    assert ports[0].raw.integers("LinkPolicy") == [1, 14, 16]
    assert await amt.amt_version() == "16.1.27"
    assert len(transport.requests) == 5


async def test_user_acl_operations():
    amt, transport = client("general_settings_get", "add_user_acl_entry_ex",
                            "enumerate_user_acl_entries", "get_user_acl_entry_ex",
                            "get_user_acl_entry_ex", "remove_user_acl_entry",
                            "get_admin_acl_entry")
    handle = await amt.add_user_acl_entry("mesh-guest", "secret", ["GeneralInfo", Realm.STORAGE])
    assert handle == 3
    add = transport.requests[1]
    assert b"<r:Realms>6</r:Realms><r:Realms>13</r:Realms>" in add
    assert b"<r:DigestPassword>" in add and b"secret" not in add
    entries = await amt.user_acl_entries()
    assert [e.username for e in entries] == ["mesh-guest", "mesh-guest"]
    assert entries[0].realms == (6, 13)
    await amt.remove_user_acl_entry(3)
    assert await amt.admin_user() == "admin"


async def test_duplicate_user_is_a_named_return_value_error():
    amt, _ = client("general_settings_get", "add_user_acl_entry_ex_duplicate")
    with pytest.raises(ReturnValueError) as info:
        await amt.add_user_acl_entry("x", "y", [Realm.GENERAL_INFO])
    assert info.value.name == "PT_STATUS_DUPLICATE"


async def test_third_party_storage_session_operations():
    amt, transport = client("tpds_register_application", "tpds_get_current_application_handle",
                            "tpds_allocate_block", "tpds_get_allocated_blocks",
                            "tpds_get_block_attributes", "tpds_write_block", "tpds_read_block",
                            "tpds_unregister_application")
    session = await amt.storage.register(APP, mtu=4096)
    assert session.handle == "1A2B3C4D"
    assert await session.application_handle() == 5
    assert await session.allocate_block(8192, "meshagent-node") == 6
    assert await session.allocated_blocks(5) == [6, 7]
    attributes = await session.block_attributes(6)
    assert (attributes.size, attributes.hidden, attributes.name) == (8192, False, "meshagent-node")
    await session.write_block(6, b"mesh record!")
    assert await session.read_block(6, 0, 12) == b"mesh record!"
    await session.close()
    assert b"<r:SessionHandle>1A2B3C4D</r:SessionHandle>" in transport.requests[-1]


async def test_allocation_failure_names_the_pt_status():
    amt, _ = client("tpds_register_application", "tpds_allocate_block_not_enough_storage")
    session = await amt.storage.register(APP, mtu=4096)
    with pytest.raises(ReturnValueError) as info:
        await session.allocate_block(65536)
    assert info.value.name == "PT_STATUS_NOT_ENOUGH_STORAGE"


async def test_storage_administration():
    amt, _ = client("tpds_admin_global_storage_attributes", "tpds_admin_enumerate_eacl_entries",
                    "tpds_admin_get_eacl_entry", "tpds_admin_add_eacl_entry",
                    "tpds_admin_get_alloc_entry")
    attributes = await amt.storage_admin.global_attributes()
    assert attributes.total_storage == 196608 and attributes.max_eacl_entries == 4
    assert await amt.storage_admin.ensure_enterprise("meshagent") == 2
    assert await amt.storage_admin.add_eacl_entry("other") == 2
    entry = await amt.storage_admin.get_alloc_entry(9)
    assert entry.is_partner and entry.total_allocation_size == 16384


async def test_create_and_delete():
    amt, transport = client("create_response", "delete_response")
    created = await amt.wsman.create("AMT_PublicKeyCertificate", {"X509Certificate": "AAAA"})
    assert created.selector("InstanceID") == "Intel(r) AMT Certificate: Handle: 1"
    await amt.wsman.delete("AMT_PublicKeyCertificate", {"InstanceID": "x"})
    assert b"transfer/Delete<" in transport.requests[1]


@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_faults_become_named_exceptions(name):
    amt, _ = client(name)
    with pytest.raises(FAULTS[name]) as info:
        await amt.general_settings()
    assert isinstance(info.value, AmtFault) and info.value.http_status == 400


async def test_reply_with_the_wrong_action_is_refused():
    amt, _ = client("general_settings_get")
    with pytest.raises(MalformedResponse):
        await amt.get_power_state()  # expects EnumerateResponse


def test_fixture_bytes_are_plain_utf8():
    assert fixture_bytes("power_pull").startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
