"""The software device answers in the structure of real AMT replies (tests/data/amt).

Structure = the root's namespace declarations (prefix -> URI) plus the set of element paths
with their namespaces; values, MessageIDs and array lengths are ignored. For each fixture a
scenario drives the device into the same situation, and one of its replies with the same
Action, ResourceURI and fault subcode must have exactly the fixture's structure.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from xml.etree.ElementTree import Element

import pytest
from amt_support import ADMIN_PASSWORD, FIXTURES, fixture_bytes

from amt import AmtClient, AmtError, PowerAction, Realm, StorageApplication
from amt.device import SoftwareAmtDevice
from amt.wsman.transport import HttpTransport
from amt.wsman.xmlsafe import parse_document

APP = StorageApplication("meshagent", "node-record", "meshagent", bytes(range(16)))
_ROOT_NS = re.compile(rb'xmlns:([A-Za-z]+)="([^"]+)"')


def structure(data: bytes) -> tuple[dict[bytes, bytes], frozenset[str]]:
    start_tag = data[data.index(b"<a:Envelope"):data.index(b">", data.index(b"<a:Envelope"))]
    paths: set[str] = set()

    def walk(element: Element, prefix: str) -> None:
        path = f"{prefix}/{element.tag}"
        paths.add(path)
        for child in element:
            walk(child, path)
    walk(parse_document(data), "")
    return dict(_ROOT_NS.findall(start_tag)), frozenset(paths)


def kind(data: bytes) -> tuple[str, ...]:
    text = data.decode()
    found = [re.search(pattern, text) for pattern in (
        r"<b:Action[^>]*>([^<]*)<", r"<c:ResourceURI>([^<]*)<", r"<a:Subcode><a:Value>([^<]*)<")]
    return tuple(m.group(1) if m else "" for m in found)


class RecordingTransport(HttpTransport):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.replies: list[bytes] = []

    async def post(self, envelope: bytes) -> tuple[int, bytes]:
        status, body = await super().post(envelope)
        self.replies.append(body)
        return status, body


Scenario = Callable[[AmtClient, SoftwareAmtDevice], Awaitable[object]]


async def _storage(amt: AmtClient, device: SoftwareAmtDevice) -> None:
    await amt.storage_admin.ensure_enterprise(APP.enterprise)  # empty list, then add
    await amt.storage_admin.ensure_enterprise(APP.enterprise)  # listed and read back
    await amt.storage_admin.add_fpacl_entry("partner", "meshagent", 8192)
    await amt.storage_admin.get_alloc_entry((await amt.storage_admin.alloc_entries())[0])
    await amt.storage_admin.global_attributes()
    session = await amt.storage.register(APP)
    await session.application_handle()
    block = await session.allocate_block(4096, "node")
    await session.allocated_blocks()
    await session.block_attributes(block)
    await session.write_block(block, b"record")
    await session.read_block(block, 0, 6)
    try:
        await session.allocate_block(1024 * 1024)
    except AmtError:
        pass
    await session.close()


async def _accounts(amt: AmtClient, device: SoftwareAmtDevice) -> None:
    handle = await amt.add_user_acl_entry("guest", "pw", [Realm.GENERAL_INFO, Realm.STORAGE])
    try:
        await amt.add_user_acl_entry("guest", "pw", [Realm.GENERAL_INFO])
    except AmtError:
        pass
    await amt.user_acl_entries()
    await amt.admin_user()
    await amt.remove_user_acl_entry(handle)


async def _faults(amt: AmtClient, device: SoftwareAmtDevice) -> None:
    await amt.add_user_acl_entry("guest", "pw", [Realm.GENERAL_INFO])
    guest_transport = RecordingTransport("127.0.0.1", device.port, "guest", "pw")
    async with AmtClient(transport=guest_transport) as guest:
        try:
            await guest.request_power_change(PowerAction.OFF)
        except AmtError:
            pass
    admin_transport = amt.wsman.transport
    assert isinstance(admin_transport, RecordingTransport)
    admin_transport.replies.extend(guest_transport.replies)
    for call in (amt.wsman.get("AMT_NoSuchClass"),
                 amt.wsman.get("CIM_SoftwareIdentity", {"InstanceID": "nope"}),
                 amt.wsman.delete("AMT_GeneralSettings")):
        try:
            await call
        except AmtError:
            pass


async def _everything_else(amt: AmtClient, device: SoftwareAmtDevice) -> None:
    await amt.get_power_state()
    await amt.request_power_change(PowerAction.ON)
    await amt.rename("renamed")
    await amt.ethernet_ports()
    await amt.amt_version()


SCENARIOS = [_storage, _accounts, _faults, _everything_else]
NOT_SERVED = {"create_response", "delete_response"}  # the device has no creatable classes


@pytest.fixture
async def recorded() -> AsyncIterator[list[bytes]]:
    async with SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, pull_page_size=4) as device:
        transport = RecordingTransport("127.0.0.1", device.port, "admin", ADMIN_PASSWORD)
        async with AmtClient(transport=transport) as amt:
            for scenario in SCENARIOS:
                await scenario(amt, device)
        yield transport.replies


async def test_device_replies_have_the_structure_of_every_fixture(recorded):
    mismatched = []
    for path in sorted(FIXTURES.glob("*.xml")):
        if path.stem in NOT_SERVED:
            continue
        expected = fixture_bytes(path.stem)
        candidates = [r for r in recorded if kind(r) == kind(expected)]
        if not any(structure(r) == structure(expected) for r in candidates):
            mismatched.append((path.stem, len(candidates)))
    assert mismatched == []


def test_structure_ignores_values_but_not_elements():
    base = fixture_bytes("tpds_get_mtu")
    assert structure(base) == structure(base.replace(b">4096<", b">1024<"))
    assert structure(base) != structure(base.replace(b"g:Mtu", b"g:MTU"))
    assert structure(base) != structure(base.replace(b'xmlns:d="', b'xmlns:q="'))
