"""Third-party data storage on the device: the application service and its administration.

Rules, as the AMT SDK describes the firmware:
- An application registers with (CallerUUID, vendor, application, enterprise); the enterprise
  must be in the EACL (at most ``max_eacl_entries``). Identical registration data is the same
  application (same handle, same blocks); each registration opens a session, at most
  ``max_asl_entries`` at once; idle sessions expire after ``registration_timeout_s``.
- Partner applications (vendor + application in the FPACL) may allocate up to their FPACL
  size from the partner area; others up to ``max_non_partner_total_allocation`` each from the
  non-partner area. Blocks are allocated in whole ``allocation_unit`` bytes.
- Reads and writes move at most ``mtu`` bytes per call and must stay inside the block.
- Only the owning application reads, writes or frees a block (permission groups, which
  let other applications in, are not simulated); hidden blocks are invisible to others.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass

from amt.device.resources import (
    Caller,
    DeviceContext,
    MethodResult,
    Properties,
    Resource,
    WsmanRequest,
)
from amt.device.state import FpaclEntry, StorageApp, StorageBlock
from amt.status import PtStatus
from amt.wsman.values import CimInstance

__all__ = ["StorageAdministrationService", "StorageService"]

MAX_NAME = 32
STORAGE_NAME = "Intel(r) AMT Third Party Data Storage Service"
ADMIN_NAME = "Intel(r) AMT Third Party Data Storage Administration Service"


@dataclass
class _Session:
    app: int
    last_used: float


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and name.isprintable()


def _service_properties(class_name: str, name: str) -> Properties:
    return {"CreationClassName": class_name, "ElementName": name, "EnabledState": 5,
            "Name": name, "RequestedState": 12, "SystemCreationClassName": "CIM_ComputerSystem",
            "SystemName": "Intel(r) AMT"}


class StorageService(Resource):
    """AMT_ThirdPartyDataStorageService."""

    class_name = "AMT_ThirdPartyDataStorageService"

    def __init__(self, context: DeviceContext) -> None:
        super().__init__(context)
        self.sessions: dict[str, _Session] = {}
        self.methods = {
            "GetMTU": self._mtu,
            "GetTimeoutValues": self._timeouts,
            "RegisterApplication": self._register,
            "UnregisterApplication": self._unregister,
            "GetCurrentApplicationHandle": self._current_app,
            "GetRegisteredApplications": self._registered_apps,
            "GetApplicationAttributes": self._app_attributes,
            "GetBytesAvailable": self._bytes_available,
            "AllocateBlock": self._allocate,
            "DeallocateBlock": self._deallocate,
            "GetAllocatedBlocks": self._allocated_blocks,
            "GetBlockAttributes": self._block_attributes,
            "ReadBlock": self._read,
            "WriteBlock": self._write,
        }

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return _service_properties(self.class_name, STORAGE_NAME)

    # ---- sessions ---------------------------------------------------------------------

    def _expire_sessions(self) -> None:
        cutoff = time.monotonic() - self.state.limits.registration_timeout_s
        for handle in [h for h, s in self.sessions.items() if s.last_used < cutoff]:
            del self.sessions[handle]

    def _session_app(self, params: CimInstance) -> StorageApp | None:
        session = self.sessions.get(params.text("SessionHandle", "").strip().upper())
        if session is None:
            return None
        session.last_used = time.monotonic()
        return self.state.apps.get(session.app)

    def drop_application(self, app: int) -> None:
        """Forget an application's sessions (it was removed by the administrator)."""
        for handle in [h for h, s in self.sessions.items() if s.app == app]:
            del self.sessions[handle]

    # ---- accounting -------------------------------------------------------------------

    def _app_limit(self, app: StorageApp) -> int:
        for entry in self.state.fpacl.values():
            if (entry.vendor, entry.application) == (app.vendor, app.application):
                return entry.total_allocation
        return self.state.limits.max_non_partner_total_allocation

    def _allocated(self, app: int | None = None, partner: bool | None = None) -> int:
        apps = self.state.apps
        return sum(b.size for b in self.state.blocks.values()
                   if (app is None or b.owner == app)
                   and (partner is None or (b.owner in apps and apps[b.owner].partner == partner)))

    def _available(self, app: StorageApp) -> int:
        limits = self.state.limits
        pool = (limits.max_partner_storage if app.partner else limits.max_non_partner_storage)
        pool_left = pool - self._allocated(partner=app.partner)
        total_left = limits.total_storage - self._allocated()
        return max(0, min(self._app_limit(app) - self._allocated(app.handle), pool_left,
                          total_left))

    # ---- methods ----------------------------------------------------------------------

    def _mtu(self, params: CimInstance, caller: Caller) -> MethodResult:
        return MethodResult(outputs={"Mtu": self.state.limits.mtu})

    def _timeouts(self, params: CimInstance, caller: Caller) -> MethodResult:
        limits = self.state.limits
        return MethodResult(outputs={"RegistrationTimeout": limits.registration_timeout_s,
                                     "LockTimeout": limits.lock_timeout_s})

    def _register(self, params: CimInstance, caller: Caller) -> MethodResult:
        uuid_hex = params.text("CallerUUID", "").strip().upper()
        vendor = params.text("VendorName", "")
        application = params.text("ApplicationName", "")
        enterprise = params.text("EnterpriseName", "")
        try:
            valid_uuid = len(bytes.fromhex(uuid_hex)) == 16
        except ValueError:
            valid_uuid = False
        if not (valid_uuid and _valid_name(vendor) and _valid_name(application)):
            return MethodResult.fail(PtStatus.INVALID_REGISTRATION_DATA)
        if enterprise not in self.state.eacl.values():
            return MethodResult.fail(PtStatus.INVALID_REGISTRATION_DATA)
        self._expire_sessions()
        if len(self.sessions) >= self.state.limits.max_asl_entries:
            return MethodResult.fail(PtStatus.MAX_LIMIT_REACHED)
        key = (uuid_hex, vendor, application, enterprise)
        app = next((a for a in self.state.apps.values()
                    if (a.caller_uuid, a.vendor, a.application, a.enterprise) == key), None)
        if app is None:
            partner = any((e.vendor, e.application) == (vendor, application)
                          for e in self.state.fpacl.values())
            app = StorageApp(self.state.allocate_handle(), uuid_hex, vendor, application,
                             enterprise, partner)
            self.state.apps[app.handle] = app
            self.context.changed()
        handle = secrets.token_hex(4).upper()
        self.sessions[handle] = _Session(app.handle, time.monotonic())
        return MethodResult(outputs={"SessionHandle": handle})

    def _unregister(self, params: CimInstance, caller: Caller) -> MethodResult:
        handle = params.text("SessionHandle", "").strip().upper()
        if self.sessions.pop(handle, None) is None:
            return MethodResult.fail(PtStatus.APPLICATION_NOT_REGISTERED)
        return MethodResult()

    def _with_app(self, params: CimInstance) -> StorageApp | MethodResult:
        app = self._session_app(params)
        return app if app is not None else MethodResult.fail(PtStatus.APPLICATION_NOT_REGISTERED)

    def _current_app(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        return MethodResult(outputs={"ApplicationHandle": app.handle})

    def _registered_apps(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        same_vendor = [a.handle for a in self.state.apps.values() if a.vendor == app.vendor]
        return MethodResult(outputs={"AppHandles": same_vendor})

    def _app_attributes(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        other = self.state.apps.get(params.integer("ApplicationBeingRequested", -1))
        if other is None or other.vendor != app.vendor:
            return MethodResult.fail(PtStatus.APPLICATION_DOES_NOT_EXIST)
        return MethodResult(outputs={"VendorName": other.vendor,
                                     "ApplicationName": other.application})

    def _bytes_available(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        return MethodResult(outputs={"BytesAvailable": self._available(app)})

    def _allocate(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        size = params.integer("BytesRequested", 0)
        unit = self.state.limits.allocation_unit
        if size <= 0 or size % unit:
            return MethodResult.fail(PtStatus.INVALID_PARAMETER)
        name = params.text("BlockName", "")
        if name and not _valid_name(name):
            return MethodResult.fail(PtStatus.INVALID_NAME)
        if size > self._available(app):
            return MethodResult.fail(PtStatus.NOT_ENOUGH_STORAGE)
        block = StorageBlock(self.state.allocate_handle(), app.handle, size,
                             params.boolean("BlockHidden", False), name, bytearray(size))
        self.state.blocks[block.handle] = block
        self.context.changed()
        return MethodResult(outputs={"BlockHandle": block.handle})

    def _visible_block(self, params: CimInstance, app: StorageApp) -> StorageBlock | None:
        block = self.state.blocks.get(params.integer("BlockHandle", -1))
        if block is None or (block.hidden and block.owner != app.handle):
            return None
        return block

    def _owned_block(self, params: CimInstance) -> tuple[StorageApp, StorageBlock] | MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        block = self._visible_block(params, app)
        if block is None:
            return MethodResult.fail(PtStatus.BLOCK_DOES_NOT_EXIST)
        if block.owner != app.handle:
            return MethodResult.fail(PtStatus.NOT_PERMITTED)
        return app, block

    def _deallocate(self, params: CimInstance, caller: Caller) -> MethodResult:
        found = self._owned_block(params)
        if isinstance(found, MethodResult):
            return found if found.return_value != PtStatus.NOT_PERMITTED else \
                MethodResult.fail(PtStatus.NOT_OWNER)
        del self.state.blocks[found[1].handle]
        self.context.changed()
        return MethodResult()

    def _allocated_blocks(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        owner = params.integer("BlockOwnerApplication", -1)
        if owner not in self.state.apps:
            return MethodResult.fail(PtStatus.APPLICATION_DOES_NOT_EXIST)
        handles = [b.handle for b in self.state.blocks.values()
                   if b.owner == owner and (not b.hidden or owner == app.handle)]
        return MethodResult(outputs={"BlockHandles": sorted(handles)})

    def _block_attributes(self, params: CimInstance, caller: Caller) -> MethodResult:
        app = self._with_app(params)
        if isinstance(app, MethodResult):
            return app
        block = self._visible_block(params, app)
        if block is None:
            return MethodResult.fail(PtStatus.BLOCK_DOES_NOT_EXIST)
        return MethodResult(outputs={"BlockSize": block.size, "BlockHidden": block.hidden,
                                     "BlockName": block.name})

    def _span(self, block: StorageBlock, offset: int, count: int) -> PtStatus | None:
        if offset < 0 or offset >= block.size:
            return PtStatus.INVALID_BYTE_OFFSET
        if count <= 0 or count > self.state.limits.mtu or offset + count > block.size:
            return PtStatus.INVALID_BYTE_COUNT
        return None

    def _read(self, params: CimInstance, caller: Caller) -> MethodResult:
        found = self._owned_block(params)
        if isinstance(found, MethodResult):
            return found
        block = found[1]
        offset, count = params.integer("ByteOffset", -1), params.integer("ByteCount", 0)
        error = self._span(block, offset, count)
        if error is not None:
            return MethodResult.fail(error)
        data = bytes(block.data[offset:offset + count])
        return MethodResult(outputs={"Data": base64.b64encode(data).decode("ascii")})

    def _write(self, params: CimInstance, caller: Caller) -> MethodResult:
        found = self._owned_block(params)
        if isinstance(found, MethodResult):
            return MethodResult(found.return_value, {"BytesWritten": 0})
        block = found[1]
        try:
            data = base64.b64decode(params.text("Data", ""), validate=True)
        except (binascii.Error, ValueError):
            return MethodResult(int(PtStatus.INVALID_PARAMETER), {"BytesWritten": 0})
        offset = params.integer("ByteOffset", -1)
        error = self._span(block, offset, len(data))
        if error is not None:
            return MethodResult(int(error), {"BytesWritten": 0})
        block.data[offset:offset + len(data)] = data
        self.context.changed()
        return MethodResult(outputs={"BytesWritten": len(data)})


class StorageAdministrationService(Resource):
    """AMT_ThirdPartyDataStorageAdministrationService."""

    class_name = "AMT_ThirdPartyDataStorageAdministrationService"

    def __init__(self, context: DeviceContext, storage: StorageService) -> None:
        super().__init__(context)
        self.storage = storage
        self.methods = {
            "GetGlobalStorageAttributes": self._global,
            "AddStorageEaclEntry": self._add_eacl,
            "EnumerateStorageEaclEntries": self._list_eacl,
            "GetStorageEaclEntry": self._get_eacl,
            "RemoveStorageEaclEntry": self._remove_eacl,
            "AddStorageFpaclEntry": self._add_fpacl,
            "EnumerateStorageAllocEntries": self._list_alloc,
            "GetStorageAllocEntry": self._get_alloc,
            "RemoveStorageFpaclEntry": self._remove_fpacl,
            "AdminGetRegisteredApplications": self._admin_apps,
            "AdminRemoveApplication": self._admin_remove_app,
        }

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return _service_properties(self.class_name, ADMIN_NAME)

    def _global(self, params: CimInstance, caller: Caller) -> MethodResult:
        limits = self.state.limits
        allocated = sum(b.size for b in self.state.blocks.values())
        partner = sum(b.size for b in self.state.blocks.values()
                      if (app := self.state.apps.get(b.owner)) is not None and app.partner)
        return MethodResult(outputs={
            "TotalStorage": limits.total_storage, "TotalAllocatedStorage": allocated,
            "MaxPartnerStorage": limits.max_partner_storage,
            "TotalPartnerAllocatedStorage": partner,
            "MaxNonPartnerStorage": limits.max_non_partner_storage,
            "MaxFpaclEntries": limits.max_fpacl_entries,
            "MaxAslEntries": limits.max_asl_entries,
            "MaxEaclEntries": limits.max_eacl_entries,
            "MaxGroupsPerBlock": limits.max_groups_per_block,
            "MaxMembersPerGroup": limits.max_members_per_group,
            "MaxNonPartnerTotalAllocationSize": limits.max_non_partner_total_allocation})

    def _add_eacl(self, params: CimInstance, caller: Caller) -> MethodResult:
        name = params.text("EnterpriseName", "")
        if not _valid_name(name):
            return MethodResult.fail(PtStatus.INVALID_NAME)
        if name in self.state.eacl.values():
            return MethodResult.fail(PtStatus.DUPLICATE)
        if len(self.state.eacl) >= self.state.limits.max_eacl_entries:
            return MethodResult.fail(PtStatus.MAX_LIMIT_REACHED)
        handle = self.state.allocate_handle()
        self.state.eacl[handle] = name
        self.context.changed()
        return MethodResult(outputs={"Handle": handle})

    def _list_eacl(self, params: CimInstance, caller: Caller) -> MethodResult:
        return MethodResult(outputs={"Handles": sorted(self.state.eacl)})

    def _get_eacl(self, params: CimInstance, caller: Caller) -> MethodResult:
        name = self.state.eacl.get(params.integer("Handle", -1))
        if name is None:
            return MethodResult.fail(PtStatus.INVALID_HANDLE)
        return MethodResult(outputs={"EnterpriseName": name})

    def _remove_eacl(self, params: CimInstance, caller: Caller) -> MethodResult:
        handle = params.integer("Handle", -1)
        name = self.state.eacl.get(handle)
        if name is None:
            return MethodResult.fail(PtStatus.INVALID_HANDLE)
        if any(app.enterprise == name for app in self.state.apps.values()):
            return MethodResult.fail(PtStatus.STORAGE_ACL_ENTRY_IN_USE)
        del self.state.eacl[handle]
        self.context.changed()
        return MethodResult()

    def _add_fpacl(self, params: CimInstance, caller: Caller) -> MethodResult:
        application, vendor = params.text("ApplicationName", ""), params.text("VendorName", "")
        size = params.integer("TotalAllocationSize", 0)
        limits = self.state.limits
        if not (_valid_name(application) and _valid_name(vendor)):
            return MethodResult.fail(PtStatus.INVALID_NAME)
        if size <= 0 or size % limits.allocation_unit or size > limits.max_partner_storage:
            return MethodResult.fail(PtStatus.INVALID_PARAMETER)
        if any((e.vendor, e.application) == (vendor, application)
               for e in self.state.fpacl.values()):
            return MethodResult.fail(PtStatus.DUPLICATE)
        if len(self.state.fpacl) >= limits.max_fpacl_entries:
            return MethodResult.fail(PtStatus.MAX_LIMIT_REACHED)
        handle = self.state.allocate_handle()
        self.state.fpacl[handle] = FpaclEntry(handle, application, vendor, size)
        self.context.changed()
        return MethodResult(outputs={"Handle": handle})

    def _list_alloc(self, params: CimInstance, caller: Caller) -> MethodResult:
        nacl = [a.handle for a in self.state.apps.values() if not a.partner]
        return MethodResult(outputs={"Handles": sorted(self.state.fpacl) + sorted(nacl)})

    def _get_alloc(self, params: CimInstance, caller: Caller) -> MethodResult:
        handle = params.integer("Handle", -1)
        entry = self.state.fpacl.get(handle)
        if entry is not None:
            return MethodResult(outputs={"AttrType": 1, "ApplicationName": entry.application,
                                         "VendorName": entry.vendor, "IsPartner": True,
                                         "TotalAllocationSize": entry.total_allocation})
        app = self.state.apps.get(handle)
        if app is None or app.partner:
            return MethodResult.fail(PtStatus.INVALID_HANDLE)
        return MethodResult(outputs={
            "AttrType": 1, "ApplicationName": app.application, "VendorName": app.vendor,
            "IsPartner": False,
            "TotalAllocationSize": self.state.limits.max_non_partner_total_allocation})

    def _remove_fpacl(self, params: CimInstance, caller: Caller) -> MethodResult:
        handle = params.integer("Handle", -1)
        entry = self.state.fpacl.get(handle)
        if entry is None:
            return MethodResult.fail(PtStatus.INVALID_HANDLE)
        if any((a.vendor, a.application) == (entry.vendor, entry.application)
               for a in self.state.apps.values()):
            return MethodResult.fail(PtStatus.STORAGE_ACL_ENTRY_IN_USE)
        del self.state.fpacl[handle]
        self.context.changed()
        return MethodResult()

    def _admin_apps(self, params: CimInstance, caller: Caller) -> MethodResult:
        return MethodResult(outputs={"ApplicationHandles": sorted(self.state.apps)})

    def _admin_remove_app(self, params: CimInstance, caller: Caller) -> MethodResult:
        handle = params.integer("Handle", -1)
        if self.state.apps.pop(handle, None) is None:
            return MethodResult.fail(PtStatus.APPLICATION_DOES_NOT_EXIST)
        for block in [b for b in self.state.blocks.values() if b.owner == handle]:
            del self.state.blocks[block.handle]
        self.storage.drop_application(handle)
        self.context.changed()
        return MethodResult()
