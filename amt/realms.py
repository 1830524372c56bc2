"""AMT access realms: what an account created with AddUserAclEntryEx may do.

Numbers as the Intel AMT SDK defines them (``AMT_AuthorizationService`` Realms). The mesh's
guest accounts typically get ``GENERAL_INFO`` and ``STORAGE`` (read settings and power
state, use third-party storage) and not ``REMOTE_CONTROL`` (change power).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["AccessPermission", "Realm"]


class Realm(IntEnum):
    REDIRECTION = 2
    PT_ADMINISTRATION = 3
    HARDWARE_ASSET = 4
    REMOTE_CONTROL = 5
    STORAGE = 6
    EVENT_MANAGER = 7
    STORAGE_ADMIN = 8
    AGENT_PRESENCE_LOCAL = 9
    AGENT_PRESENCE_REMOTE = 10
    CIRCUIT_BREAKER = 11
    NETWORK_TIME = 12
    GENERAL_INFO = 13
    ENDPOINT_ACCESS_CONTROL = 17
    ENDPOINT_ACCESS_CONTROL_ADMIN = 18
    EVENT_LOG_READER = 19
    AUDIT_LOG = 20
    USER_ACCESS_CONTROL = 21
    LOCAL_APPS = 24

    @classmethod
    def by_name(cls, name: str) -> Realm:
        """``"GeneralInfo"``, ``"general_info"`` or ``"GENERAL_INFO"`` -> Realm.GENERAL_INFO."""
        key = "".join(ch for ch in name if ch.isalnum()).upper()
        for realm in cls:
            if realm.name.replace("_", "") == key:
                return realm
        raise ValueError(f"unknown AMT realm {name!r}")


class AccessPermission(IntEnum):
    """Where an ACL entry may be used from (AddUserAclEntryEx ``AccessPermission``)."""

    LOCAL_ONLY = 0
    NETWORK_ONLY = 1
    LOCAL_AND_NETWORK = 2
