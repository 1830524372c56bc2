"""The client against the software device: every typed operation, paging, realms, state, TLS."""

from __future__ import annotations

import asyncio

import pytest
from amt_support import ADMIN_PASSWORD

from amt import (
    AccessDenied,
    AmtClient,
    AmtConnectionError,
    DestinationUnreachable,
    InvalidSelectors,
    PowerAction,
    PowerState,
    Realm,
    ReturnValueError,
    StorageApplication,
)
from amt.device import PowerHooks, SoftwareAmtDevice, TlsCertificate
from amt.wsman.values import EndpointReference

GUEST_REALMS = [Realm.GENERAL_INFO, Realm.STORAGE]
APP = StorageApplication("meshagent", "node-record", "meshagent", bytes(range(16)))


async def guest_client(admin: AmtClient, device: SoftwareAmtDevice,
                       realms=GUEST_REALMS) -> AmtClient:
    await admin.add_user_acl_entry("guest", "Guest-pw1", realms)
    return AmtClient("127.0.0.1", device.port, "guest", "Guest-pw1", timeout=5)


async def test_settings_version_and_ports(device, admin):
    settings = await admin.general_settings()
    assert settings.hostname == "amt-sim" and settings.digest_realm == device.realm
    assert await admin.amt_version() == device.state.amt_version
    ports = await admin.ethernet_ports()
    assert ports[0].mac_address == device.state.mac_address
    renamed = await admin.rename("laptop-7", "corp.example")
    assert (renamed.hostname, renamed.domain) == ("laptop-7", "corp.example")
    assert (await admin.general_settings()).hostname == "laptop-7"


async def test_power_changes_follow_dmtf_values_and_fire_hooks():
    events: list[str] = []
    woke = asyncio.Event()

    async def on_wake() -> None:
        events.append("wake")
        woke.set()

    hooks = PowerHooks(on_sleep=lambda state: events.append(f"sleep:{state.name}"),
                       on_wake=on_wake, on_reset=lambda: events.append("reset"))
    async with SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, hooks=hooks) as device:
        async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD) as amt:
            assert await amt.get_power_state() is PowerState.ON
            await amt.request_power_change(PowerAction.SLEEP)
            assert await amt.get_power_state() is PowerState.SLEEP_DEEP
            assert await amt.available_power_actions() == [2, 8]
            with pytest.raises(ReturnValueError, match="NOT_SUPPORTED"):
                await amt.request_power_change(PowerAction.RESET)  # not while asleep
            await amt.request_power_change(PowerAction.ON)
            await asyncio.wait_for(woke.wait(), 5)
            await amt.request_power_change(PowerAction.RESET)
            await amt.request_power_change(PowerAction.HIBERNATE)
            assert (await amt.get_power_state()).is_asleep
            device.set_power_state(PowerState.ON)  # the host wakes by itself
            await amt.request_power_change(PowerAction.OFF)
            assert (await amt.get_power_state()).is_off
    assert events == ["sleep:SLEEP_DEEP", "wake", "reset", "sleep:HIBERNATE", "wake",
                      "sleep:OFF_SOFT"]


async def test_power_change_needs_the_managed_system_reference(admin):
    output = await admin.wsman.invoke(
        "CIM_PowerManagementService", "RequestPowerStateChange",
        {"PowerState": 8, "ManagedElement": EndpointReference.to("CIM_ComputerSystem",
                                                                 Name="Intel(r) AMT")},
        check=False)
    assert output.integer("ReturnValue") == 5
    assert await admin.get_power_state() is PowerState.ON


async def test_user_acl_entries_roundtrip(admin):
    handles = [await admin.add_user_acl_entry(f"user{i}", "pw", [Realm.GENERAL_INFO])
               for i in range(3)]
    entries = await admin.user_acl_entries()
    assert [e.username for e in entries] == ["user0", "user1", "user2"]
    assert entries[0].realms == (int(Realm.GENERAL_INFO),)
    with pytest.raises(ReturnValueError, match="PT_STATUS_DUPLICATE"):
        await admin.add_user_acl_entry("user0", "pw", [Realm.GENERAL_INFO])
    with pytest.raises(ReturnValueError, match="PT_STATUS_INVALID_REALM"):
        await admin.add_user_acl_entry("user9", "pw", [99])
    await admin.remove_user_acl_entry(handles[1])
    assert await admin.user_acl_handles() == [handles[0], handles[2]]
    with pytest.raises(ReturnValueError, match="PT_STATUS_INVALID_HANDLE"):
        await admin.get_user_acl_entry(handles[1])
    assert await admin.admin_user() == "admin"


async def test_guest_reads_settings_and_storage_but_cannot_change_power(device, admin):
    await admin.storage_admin.ensure_enterprise(APP.enterprise)
    async with await guest_client(admin, device) as guest:
        assert (await guest.general_settings()).hostname == "amt-sim"
        assert await guest.get_power_state() is PowerState.ON
        async with await guest.storage.register(APP) as session:
            block = await session.allocate_block(4096, "node")
            await session.write_block(block, b"record")
            assert await session.read_block(block, 0, 6) == b"record"
        with pytest.raises(AccessDenied) as denied:
            await guest.request_power_change(PowerAction.OFF)
        assert denied.value.subcode == "AccessDenied" and denied.value.http_status == 400
        for forbidden in (guest.rename("evil"), guest.add_user_acl_entry("x", "y", [5]),
                          guest.storage_admin.global_attributes()):
            with pytest.raises(AccessDenied):
                await forbidden
    assert await admin.get_power_state() is PowerState.ON
    assert device.state.hostname == "amt-sim"


async def test_remote_control_realm_allows_power_change(device, admin):
    async with await guest_client(admin, device, [Realm.REMOTE_CONTROL]) as operator:
        await operator.request_power_change(PowerAction.SLEEP)
        with pytest.raises(AccessDenied):
            await operator.general_settings()
    assert device.power.state is PowerState.SLEEP_DEEP


async def test_unknown_class_is_destination_unreachable(admin):
    with pytest.raises(DestinationUnreachable):
        await admin.wsman.get("AMT_NoSuchClass")
    with pytest.raises(DestinationUnreachable):
        await admin.wsman.get("http://example.com/wbem/Foo")


async def test_wrong_selectors_are_invalid_selectors(admin):
    with pytest.raises(InvalidSelectors):
        await admin.wsman.get("CIM_SoftwareIdentity", {"InstanceID": "nope"})
    identity = await admin.wsman.get("CIM_SoftwareIdentity", {"InstanceID": "AMT"})
    assert identity.text("VersionString")


async def test_enumerate_pulls_every_page_until_end_of_sequence():
    async with SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, pull_page_size=3) as device:
        async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD) as amt:
            await amt.general_settings()  # draws the digest challenge first
            before = device.requests
            items = await amt.wsman.enumerate("CIM_SoftwareIdentity")
            assert [i.text("InstanceID") for i in items][:4] == ["Flash", "Netstack", "AMTApps",
                                                                 "AMT"]
            assert len(items) == 10
            # Enumerate + 4 pulls (3+3+3+1); contexts are freed at the end.
            assert device.requests - before == 5
            assert device.open_enumerations == 0


async def test_state_survives_a_restart(tmp_path):
    path = tmp_path / "amt.json"
    async with SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, state_path=path) as device:
        realm = device.realm
        async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD) as amt:
            await amt.add_user_acl_entry("guest", "pw", GUEST_REALMS)
            await amt.rename("persisted")
            await amt.request_power_change(PowerAction.SLEEP)
            await amt.storage_admin.ensure_enterprise(APP.enterprise)
            async with await amt.storage.register(APP) as session:
                block = await session.allocate_block(4096)
                await session.write_block(block, b"kept")
    async with SoftwareAmtDevice(admin_password="ignored", state_path=path) as device:
        assert device.realm == realm
        async with AmtClient("127.0.0.1", device.port, "guest", "pw") as guest:
            assert (await guest.general_settings()).hostname == "persisted"
            assert await guest.get_power_state() is PowerState.SLEEP_DEEP
            async with await guest.storage.register(APP) as session:
                assert await session.read_block(block, 0, 4) == b"kept"


async def test_tls_with_pinned_certificate(tmp_path):
    cert = TlsCertificate.generate(tmp_path)
    async with SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, tls=cert) as device:
        assert device.url.startswith("https://")
        async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD, tls=True,
                             cert_sha256=cert.sha256) as amt:
            assert await amt.get_power_state() is PowerState.ON
        async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD, tls=True,
                             cert_sha256=bytes(32)) as wrong_pin:
            with pytest.raises(AmtConnectionError, match="pin"):
                await wrong_pin.get_power_state()
        async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD) as plain:
            with pytest.raises(AmtConnectionError):
                await plain.get_power_state()  # plain HTTP to a TLS port


async def test_many_devices_in_one_process_are_independent():
    devices = [SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, hostname=f"node{i}")
               for i in range(20)]
    await asyncio.gather(*(d.start() for d in devices))
    try:
        async def read(device: SoftwareAmtDevice) -> str:
            async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD) as amt:
                return (await amt.general_settings()).hostname
        names = await asyncio.gather(*(read(d) for d in devices))
        assert names == [f"node{i}" for i in range(20)]
        assert len({d.realm for d in devices}) == 20
    finally:
        await asyncio.gather(*(d.stop() for d in devices))


async def test_unreachable_device_is_a_connection_error():
    async with AmtClient("127.0.0.1", 1, "admin", "x", timeout=2) as amt:
        with pytest.raises(AmtConnectionError):
            await amt.get_power_state()
