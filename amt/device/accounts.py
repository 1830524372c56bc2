"""AMT_AuthorizationService on the device: the admin account and user ACL entries.

An entry stores the username, HA1 (decoded from AddUserAclEntryEx's base64 DigestPassword,
so it is exactly what digest verification needs), access permission and realms. Return
codes are the firmware's: DUPLICATE for a taken name, MAX_LIMIT_REACHED when the table is
full, INVALID_PASSWORD / INVALID_REALM / INVALID_NAME for bad arguments, INVALID_HANDLE for
an unknown entry, INVALID_INDEX for a StartIndex past the end.
"""

from __future__ import annotations

import base64
import binascii

from amt.device.resources import (
    Caller,
    DeviceContext,
    MethodResult,
    Properties,
    Resource,
    WsmanRequest,
)
from amt.device.state import Account
from amt.realms import AccessPermission, Realm
from amt.status import PtStatus
from amt.wsman.values import CimInstance

__all__ = ["AuthorizationService", "MAX_USER_ACL_ENTRIES"]

MAX_USER_ACL_ENTRIES = 7
MAX_USERNAME = 16
PAGE = 50
_VALID_REALMS = frozenset(int(r) for r in Realm)


def _valid_username(name: str) -> bool:
    return 0 < len(name) <= MAX_USERNAME and name.isprintable() and not any(
        ch in name for ch in ':",\\ ')


class AuthorizationService(Resource):
    class_name = "AMT_AuthorizationService"

    def __init__(self, context: DeviceContext) -> None:
        super().__init__(context)
        self.methods = {
            "AddUserAclEntryEx": self._add,
            "EnumerateUserAclEntries": self._enumerate,
            "GetUserAclEntryEx": self._get_entry,
            "RemoveUserAclEntry": self._remove,
            "GetAdminAclEntry": self._admin,
        }

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return {"AllowHttpQopAuthOnly": 1, "CreationClassName": self.class_name,
                "ElementName": "Intel(r) AMT Authorization Service", "EnabledState": 5,
                "Name": "Intel(r) AMT Authorization Service", "RequestedState": 12,
                "SystemCreationClassName": "CIM_ComputerSystem", "SystemName": "Intel(r) AMT"}

    def _add(self, params: CimInstance, caller: Caller) -> MethodResult:
        accounts = self.state.accounts
        name = params.text("DigestUsername", "")
        if not _valid_username(name):
            return MethodResult.fail(PtStatus.INVALID_NAME)
        try:
            secret = base64.b64decode(params.text("DigestPassword", ""), validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) != 16:
            return MethodResult.fail(PtStatus.INVALID_PASSWORD)
        realms = params.integers("Realms")
        if not realms or any(r not in _VALID_REALMS for r in realms):
            return MethodResult.fail(PtStatus.INVALID_REALM)
        access = params.integer("AccessPermission", int(AccessPermission.NETWORK_ONLY))
        if access not in {int(a) for a in AccessPermission}:
            return MethodResult.fail(PtStatus.INVALID_PARAMETER)
        if name == self.state.admin_user or any(a.username == name for a in accounts.values()):
            return MethodResult.fail(PtStatus.DUPLICATE)
        if len(accounts) >= MAX_USER_ACL_ENTRIES:
            return MethodResult.fail(PtStatus.MAX_LIMIT_REACHED)
        handle = self.state.allocate_handle()
        accounts[handle] = Account(handle, name, secret.hex(), sorted(set(realms)), access)
        self.context.changed()
        return MethodResult(outputs={"Handle": handle})

    def _enumerate(self, params: CimInstance, caller: Caller) -> MethodResult:
        handles = sorted(self.state.accounts)
        start = params.integer("StartIndex", 1)
        if start < 1 or start > max(1, len(handles) + 1):
            return MethodResult.fail(PtStatus.INVALID_INDEX)
        page = handles[start - 1:start - 1 + PAGE]
        return MethodResult(outputs={"TotalCount": len(handles), "HandlesCount": len(page),
                                     "Handles": page})

    def _get_entry(self, params: CimInstance, caller: Caller) -> MethodResult:
        account = self.state.accounts.get(params.integer("Handle", -1))
        if account is None:
            return MethodResult.fail(PtStatus.INVALID_HANDLE)
        return MethodResult(outputs={"DigestUsername": account.username,
                                     "AccessPermission": account.access_permission,
                                     "Realms": list(account.realms)})

    def _remove(self, params: CimInstance, caller: Caller) -> MethodResult:
        if self.state.accounts.pop(params.integer("Handle", -1), None) is None:
            return MethodResult.fail(PtStatus.INVALID_HANDLE)
        self.context.changed()
        return MethodResult()

    def _admin(self, params: CimInstance, caller: Caller) -> MethodResult:
        return MethodResult(outputs={"Username": self.state.admin_user})
