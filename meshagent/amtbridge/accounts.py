"""The accounts a node keeps on its own AMT for its peers (admin side).

``provision`` makes the device's user ACL match the policy: each account the policy wants
is (re)created with a new password and exactly its realms; an account of ours the policy
no longer wants (the waker, when wake stops being shared) is removed. Other entries
(an IT department's own accounts) are left alone.

AMT offers no password change for an ACL entry that keeps its handle, so rotation is
remove + add: the old password stops working the moment the entry is removed, which is
what revocation needs (a revoked member may have kept the old grant).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from amt.client import AmtClient
from amt.realms import AccessPermission, Realm
from meshagent.amtbridge.policy import AmtPolicy

__all__ = ["new_password", "provision"]


def new_password() -> str:
    """A random account password (only its digest is ever sent to the device)."""
    return secrets.token_urlsafe(24)


async def provision(client: AmtClient, policy: AmtPolicy) -> Mapping[str, str]:
    """Create the policy's accounts with fresh passwords; username -> password."""
    wanted: dict[str, tuple[Realm, ...]] = policy.accounts()
    ours = {policy.guest_user, policy.waker_user}
    for entry in await client.user_acl_entries():
        if entry.username in ours:
            await client.remove_user_acl_entry(entry.handle)
    passwords = {}
    for username, realms in wanted.items():
        password = new_password()
        await client.add_user_acl_entry(username, password, realms,
                                        AccessPermission.NETWORK_ONLY)
        passwords[username] = password
    return passwords
