"""Third-party data storage (3PDS): AMT's small non-volatile store for applications.

Application side (``AMT_ThirdPartyDataStorageService``, realm Storage): an application
registers (CallerUUID, VendorName, ApplicationName, EnterpriseName; the enterprise must be
in the EACL) and gets a hex ``SessionHandle``; with it it allocates blocks (sizes in whole
allocation units), lists blocks by owner, reads and writes them in pieces of at most the
device's MTU (4 KB), and finally unregisters (closes the session; data stays).

Administration side (``AMT_ThirdPartyDataStorageAdministrationService``, realm StorageAdmin):
global limits and usage, the enterprise list (EACL) and partner allocations (FPACL).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from amt.errors import MalformedResponse
from amt.wsman.client import WsmanClient
from amt.wsman.values import CimInstance, ParamValue

__all__ = ["BlockAttributes", "GlobalStorageAttributes", "StorageAdministration",
           "StorageAllocEntry", "StorageApplication", "StorageSession", "ThirdPartyStorage"]

SERVICE = "AMT_ThirdPartyDataStorageService"
ADMIN_SERVICE = "AMT_ThirdPartyDataStorageAdministrationService"
MAX_TRANSFER = 4096  # never more per ReadBlock/WriteBlock, whatever the device's MTU says


@dataclass(frozen=True)
class StorageApplication:
    """The registration data that identifies an application to AMT."""

    vendor: str
    application: str
    enterprise: str
    caller_uuid: bytes  # 16 bytes

    def __post_init__(self) -> None:
        if len(self.caller_uuid) != 16:
            raise ValueError("caller_uuid must be 16 bytes")


@dataclass(frozen=True)
class BlockAttributes:
    size: int
    hidden: bool
    name: str


@dataclass(frozen=True)
class GlobalStorageAttributes:
    total_storage: int
    total_allocated_storage: int
    max_partner_storage: int
    total_partner_allocated_storage: int
    max_non_partner_storage: int
    max_fpacl_entries: int
    max_asl_entries: int
    max_eacl_entries: int
    max_groups_per_block: int
    max_members_per_group: int
    max_non_partner_total_allocation_size: int


@dataclass(frozen=True)
class StorageAllocEntry:
    handle: int
    application: str
    vendor: str
    is_partner: bool
    total_allocation_size: int


class StorageSession:
    """One registered session; use as ``async with`` to unregister at the end."""

    def __init__(self, wsman: WsmanClient, handle: str, mtu: int) -> None:
        self.wsman = wsman
        self.handle = handle
        self.transfer = max(1, min(mtu, MAX_TRANSFER))

    async def _call(self, method: str, **params: ParamValue) -> CimInstance:
        return await self.wsman.invoke(SERVICE, method, {"SessionHandle": self.handle, **params})

    async def application_handle(self) -> int:
        return (await self._call("GetCurrentApplicationHandle")).integer("ApplicationHandle")

    async def registered_applications(self) -> list[int]:
        return (await self._call("GetRegisteredApplications")).integers("AppHandles")

    async def bytes_available(self) -> int:
        return (await self._call("GetBytesAvailable")).integer("BytesAvailable")

    async def allocate_block(self, size: int, name: str = "", hidden: bool = False) -> int:
        """A new block of ``size`` bytes (a multiple of 4096, AMT's allocation unit)."""
        params: dict[str, ParamValue] = {"BytesRequested": size, "BlockHidden": hidden}
        if name:
            params["BlockName"] = name
        return (await self._call("AllocateBlock", **params)).integer("BlockHandle")

    async def deallocate_block(self, block: int) -> None:
        await self._call("DeallocateBlock", BlockHandle=block)

    async def allocated_blocks(self, owner: int | None = None) -> list[int]:
        """Blocks allocated by ``owner`` (an application handle; default: this application)."""
        if owner is None:
            owner = await self.application_handle()
        return (await self._call("GetAllocatedBlocks", BlockOwnerApplication=owner)
                ).integers("BlockHandles")

    async def find_block(self, name: str, owner: int | None = None) -> int | None:
        """The first block of ``owner`` (default: this application) named ``name``."""
        for block in await self.allocated_blocks(owner):
            if (await self.block_attributes(block)).name == name:
                return block
        return None

    async def block_attributes(self, block: int) -> BlockAttributes:
        output = await self._call("GetBlockAttributes", BlockHandle=block)
        return BlockAttributes(size=output.integer("BlockSize"),
                               hidden=output.boolean("BlockHidden"),
                               name=output.text("BlockName", ""))

    async def read_block(self, block: int, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes (default: to the end of the block) in MTU-sized pieces."""
        if length is None:
            length = (await self.block_attributes(block)).size - offset
        out = bytearray()
        while len(out) < length:
            count = min(self.transfer, length - len(out))
            piece = (await self._call("ReadBlock", BlockHandle=block,
                                      ByteOffset=offset + len(out), ByteCount=count)
                     ).base64("Data")
            if len(piece) != count:
                raise MalformedResponse(f"ReadBlock returned {len(piece)} bytes, not {count}")
            out += piece
        return bytes(out)

    async def write_block(self, block: int, data: bytes, offset: int = 0) -> None:
        """Write ``data`` at ``offset`` in MTU-sized pieces."""
        done = 0
        while done < len(data):
            piece = data[done:done + self.transfer]
            output = await self._call("WriteBlock", BlockHandle=block, ByteOffset=offset + done,
                                      Data=base64.b64encode(piece).decode("ascii"))
            written = output.integer("BytesWritten", len(piece))
            if written != len(piece):
                raise MalformedResponse(f"WriteBlock stored {written} of {len(piece)} bytes")
            done += written

    async def close(self) -> None:
        await self._call("UnregisterApplication")

    async def __aenter__(self) -> StorageSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ThirdPartyStorage:
    """The application side of 3PDS on one device."""

    def __init__(self, wsman: WsmanClient) -> None:
        self.wsman = wsman

    async def mtu(self) -> int:
        return (await self.wsman.invoke(SERVICE, "GetMTU")).integer("Mtu")

    async def timeouts(self) -> tuple[int, int]:
        """(registration timeout, lock timeout) in seconds."""
        output = await self.wsman.invoke(SERVICE, "GetTimeoutValues")
        return output.integer("RegistrationTimeout"), output.integer("LockTimeout")

    async def register(self, app: StorageApplication, mtu: int | None = None) -> StorageSession:
        """Register (or re-register) and open a session; ``mtu`` skips the GetMTU call."""
        output = await self.wsman.invoke(SERVICE, "RegisterApplication", {
            "CallerUUID": app.caller_uuid.hex().upper(),
            "VendorName": app.vendor,
            "ApplicationName": app.application,
            "EnterpriseName": app.enterprise,
        })
        handle = output.text("SessionHandle").strip()
        if not handle:
            raise MalformedResponse("RegisterApplication returned an empty SessionHandle")
        return StorageSession(self.wsman, handle, mtu or await self.mtu())


class StorageAdministration:
    """The administration side of 3PDS on one device (needs the StorageAdmin realm)."""

    def __init__(self, wsman: WsmanClient) -> None:
        self.wsman = wsman

    async def global_attributes(self) -> GlobalStorageAttributes:
        out = await self.wsman.invoke(ADMIN_SERVICE, "GetGlobalStorageAttributes")
        return GlobalStorageAttributes(
            total_storage=out.integer("TotalStorage"),
            total_allocated_storage=out.integer("TotalAllocatedStorage"),
            max_partner_storage=out.integer("MaxPartnerStorage"),
            total_partner_allocated_storage=out.integer("TotalPartnerAllocatedStorage"),
            max_non_partner_storage=out.integer("MaxNonPartnerStorage"),
            max_fpacl_entries=out.integer("MaxFpaclEntries"),
            max_asl_entries=out.integer("MaxAslEntries"),
            max_eacl_entries=out.integer("MaxEaclEntries"),
            max_groups_per_block=out.integer("MaxGroupsPerBlock"),
            max_members_per_group=out.integer("MaxMembersPerGroup"),
            max_non_partner_total_allocation_size=out.integer(
                "MaxNonPartnerTotalAllocationSize"))

    async def add_eacl_entry(self, enterprise: str) -> int:
        return (await self.wsman.invoke(ADMIN_SERVICE, "AddStorageEaclEntry",
                                        {"EnterpriseName": enterprise})).integer("Handle")

    async def eacl_entries(self) -> list[int]:
        return (await self.wsman.invoke(ADMIN_SERVICE, "EnumerateStorageEaclEntries")
                ).integers("Handles")

    async def get_eacl_entry(self, handle: int) -> str:
        return (await self.wsman.invoke(ADMIN_SERVICE, "GetStorageEaclEntry",
                                        {"Handle": handle})).text("EnterpriseName")

    async def remove_eacl_entry(self, handle: int) -> None:
        await self.wsman.invoke(ADMIN_SERVICE, "RemoveStorageEaclEntry", {"Handle": handle})

    async def ensure_enterprise(self, enterprise: str) -> int:
        """The EACL handle of ``enterprise``, adding the entry if it is missing."""
        for handle in await self.eacl_entries():
            if await self.get_eacl_entry(handle) == enterprise:
                return handle
        return await self.add_eacl_entry(enterprise)

    async def add_fpacl_entry(self, application: str, vendor: str, total_allocation: int) -> int:
        return (await self.wsman.invoke(ADMIN_SERVICE, "AddStorageFpaclEntry", {
            "AttrType": 1, "ApplicationName": application, "VendorName": vendor,
            "IsPartner": True, "TotalAllocationSize": total_allocation})).integer("Handle")

    async def alloc_entries(self) -> list[int]:
        return (await self.wsman.invoke(ADMIN_SERVICE, "EnumerateStorageAllocEntries")
                ).integers("Handles")

    async def get_alloc_entry(self, handle: int) -> StorageAllocEntry:
        out = await self.wsman.invoke(ADMIN_SERVICE, "GetStorageAllocEntry", {"Handle": handle})
        return StorageAllocEntry(handle=handle, application=out.text("ApplicationName", ""),
                                 vendor=out.text("VendorName", ""),
                                 is_partner=out.boolean("IsPartner"),
                                 total_allocation_size=out.integer("TotalAllocationSize"))

    async def remove_fpacl_entry(self, handle: int) -> None:
        await self.wsman.invoke(ADMIN_SERVICE, "RemoveStorageFpaclEntry", {"Handle": handle})
