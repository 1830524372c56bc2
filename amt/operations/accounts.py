"""User accounts: AMT_AuthorizationService's user ACL entries.

``AddUserAclEntryEx`` creates a digest account: ``DigestUsername``, ``DigestPassword`` =
base64 of the raw MD5(user:DigestRealm:password) (the password itself never travels),
``AccessPermission`` (local, network or both) and ``Realms`` (an array of realm numbers,
see ``amt.realms``). Entries are listed in pages by ``EnumerateUserAclEntries(StartIndex)``
starting at 1, read with ``GetUserAclEntryEx(Handle)`` and removed with
``RemoveUserAclEntry(Handle)``. The admin account is not an entry: ``GetAdminAclEntry``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amt.operations.settings import general_settings
from amt.realms import AccessPermission, Realm
from amt.wsman.client import WsmanClient
from amt.wsman.digest import acl_digest_password

__all__ = ["UserAclEntry", "add_user_acl_entry", "admin_user", "get_user_acl_entry",
           "remove_user_acl_entry", "user_acl_handles"]

SERVICE = "AMT_AuthorizationService"
MAX_PAGES = 64


@dataclass(frozen=True)
class UserAclEntry:
    handle: int
    username: str
    access_permission: int
    realms: tuple[int, ...]


def realm_numbers(realms: Iterable[Realm | str | int]) -> list[int]:
    """Realms given by enum, name (``"GeneralInfo"``) or number, as sorted numbers."""
    numbers = {int(Realm.by_name(r)) if isinstance(r, str) else int(r) for r in realms}
    return sorted(numbers)


async def add_user_acl_entry(wsman: WsmanClient, username: str, password: str,
                             realms: Iterable[Realm | str | int],
                             access: AccessPermission = AccessPermission.NETWORK_ONLY,
                             digest_realm: str | None = None) -> int:
    """Create a digest account with these realms; its handle."""
    realm = digest_realm or (await general_settings(wsman)).digest_realm
    output = await wsman.invoke(SERVICE, "AddUserAclEntryEx", {
        "DigestUsername": username,
        "DigestPassword": acl_digest_password(username, realm, password),
        "AccessPermission": int(access),
        "Realms": realm_numbers(realms),
    })
    return output.integer("Handle")


async def user_acl_handles(wsman: WsmanClient) -> list[int]:
    """Handles of every user ACL entry, following EnumerateUserAclEntries' pages."""
    handles: list[int] = []
    start = 1
    for _ in range(MAX_PAGES):
        output = await wsman.invoke(SERVICE, "EnumerateUserAclEntries", {"StartIndex": start})
        page = output.integers("Handles")
        handles.extend(page)
        total = output.integer("TotalCount", len(handles))
        if not page or len(handles) >= total:
            break
        start += len(page)
    return handles


async def get_user_acl_entry(wsman: WsmanClient, handle: int) -> UserAclEntry:
    output = await wsman.invoke(SERVICE, "GetUserAclEntryEx", {"Handle": handle})
    return UserAclEntry(handle=handle, username=output.text("DigestUsername", ""),
                        access_permission=output.integer("AccessPermission"),
                        realms=tuple(output.integers("Realms")))


async def remove_user_acl_entry(wsman: WsmanClient, handle: int) -> None:
    await wsman.invoke(SERVICE, "RemoveUserAclEntry", {"Handle": handle})


async def admin_user(wsman: WsmanClient) -> str:
    output = await wsman.invoke(SERVICE, "GetAdminAclEntry")
    return output.text("Username")
