"""Which realms let a user ACL entry do what on the software device.

The admin account may do everything. A user entry may perform an operation on a class if it
holds one of the realms listed for that (class, operation); classes and operations not
listed are admin-only (user accounts cannot manage accounts, as on AMT). Pull and Release
are checked as Enumerate, since they continue it.
"""

from __future__ import annotations

from amt.device.resources import Caller
from amt.realms import Realm

__all__ = ["POLICY", "allowed"]

_READ = ("Get", "Enumerate")


def _realms(*realms: Realm) -> frozenset[int]:
    return frozenset(int(r) for r in realms)


_INFO = _realms(Realm.GENERAL_INFO, Realm.PT_ADMINISTRATION)
_ASSET = _realms(Realm.GENERAL_INFO, Realm.HARDWARE_ASSET, Realm.PT_ADMINISTRATION)
_POWER_READ = _realms(Realm.GENERAL_INFO, Realm.REMOTE_CONTROL, Realm.HARDWARE_ASSET)

POLICY: dict[str, dict[str, frozenset[int]]] = {
    "AMT_GeneralSettings": {**dict.fromkeys(_READ, _INFO),
                            "Put": _realms(Realm.PT_ADMINISTRATION)},
    "AMT_EthernetPortSettings": {**dict.fromkeys(_READ, _INFO),
                                 "Put": _realms(Realm.PT_ADMINISTRATION)},
    "CIM_SoftwareIdentity": dict.fromkeys(_READ, _ASSET),
    "CIM_AssociatedPowerManagementService": dict.fromkeys(_READ, _POWER_READ),
    "CIM_PowerManagementService": {**dict.fromkeys(_READ, _POWER_READ),
                                   "RequestPowerStateChange": _realms(Realm.REMOTE_CONTROL)},
    "AMT_ThirdPartyDataStorageService": {"*": _realms(Realm.STORAGE)},
    "AMT_ThirdPartyDataStorageAdministrationService": {"*": _realms(Realm.STORAGE_ADMIN)},
}


def allowed(caller: Caller, class_name: str, operation: str) -> bool:
    if caller.is_admin:
        return True
    if operation in ("Pull", "Release"):
        operation = "Enumerate"
    rules = POLICY.get(class_name, {})
    realms = rules.get(operation, rules.get("*", frozenset()))
    return not realms.isdisjoint(caller.realms)
