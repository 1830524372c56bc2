"""Which AMT accounts a node creates for its peers, and with which realms.

Least privilege, per what the mesh uses:

* **guest** (always): ``GENERAL_INFO`` lets a peer read the power state and general
  settings; ``STORAGE`` lets it open the mesh's 3PDS application and read the node's
  record block. Neither realm can change power, accounts, network or storage layout
  (the software device and the firmware refuse with AccessDenied).
* **waker** (only when the mesh policy grants wake, ``share_wake``): ``REMOTE_CONTROL``
  alone, the realm of ``RequestPowerStateChange``. It is a separate account because the
  same realm also powers off and resets: a mesh that does not use ``meshctl wake`` should
  not hand every member that ability, and one that does can rotate or drop it without
  touching the guest account. Redirection (IDE-R/SOL/KVM) is never needed to power on.

Account names are at most 16 characters (the firmware's limit) and without ``:``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amt.realms import Realm

__all__ = ["AmtPolicy", "GUEST_REALMS", "WAKER_REALMS"]

GUEST_REALMS: tuple[Realm, ...] = (Realm.GENERAL_INFO, Realm.STORAGE)
WAKER_REALMS: tuple[Realm, ...] = (Realm.REMOTE_CONTROL,)


@dataclass(frozen=True)
class AmtPolicy:
    """What this node's AMT offers its peers."""

    share_wake: bool = True
    guest_user: str = "mesh-guest"
    waker_user: str = "mesh-waker"

    def __post_init__(self) -> None:
        for name in (self.guest_user, self.waker_user):
            if not 0 < len(name) <= 16 or any(ch in name for ch in ':",\\ '):
                raise ValueError(f"AMT account name {name!r}: 1-16 characters, "
                                 "no spaces, quotes, colons or backslashes")
        if self.guest_user == self.waker_user:
            raise ValueError("the guest and waker accounts need different names")

    def accounts(self) -> dict[str, tuple[Realm, ...]]:
        """Account name -> realms, for every account this policy creates."""
        wanted = {self.guest_user: GUEST_REALMS}
        if self.share_wake:
            wanted[self.waker_user] = WAKER_REALMS
        return wanted
