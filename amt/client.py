"""``AmtClient``: one Intel AMT device, with typed operations.

    async with AmtClient("10.0.0.7", user="admin", password="...", tls=True) as amt:
        state = await amt.get_power_state()            # PowerState.SLEEP_DEEP
        await amt.request_power_change(PowerAction.ON)
        settings = await amt.general_settings()
        guest = await amt.add_user_acl_entry("mesh-guest", "pw", [Realm.GENERAL_INFO,
                                                                  Realm.STORAGE])
        async with await amt.storage.register(app) as session:
            data = await session.read_block(block)

Every failure is an ``amt.errors.AmtError``. ``amt.wsman`` gives the raw WS-Man operations
for anything not typed here.
"""

from __future__ import annotations

from collections.abc import Iterable

from amt.operations import accounts, power, settings
from amt.operations.accounts import UserAclEntry
from amt.operations.power import PowerAction, PowerState
from amt.operations.settings import EthernetPortSettings, GeneralSettings
from amt.operations.storage import StorageAdministration, ThirdPartyStorage
from amt.realms import AccessPermission, Realm
from amt.wsman.client import WsmanClient
from amt.wsman.transport import HttpTransport, Transport
from amt.wsman.xmlsafe import DEFAULT_MAX_BYTES

__all__ = ["AmtClient"]


class AmtClient:
    """A client for one device. Safe for concurrent use from one event loop.

    ``port`` defaults to 16992 (16993 with ``tls``); ``timeout`` bounds every request;
    ``cert_sha256`` pins the device's TLS certificate (SHA-256 of its DER form).
    ``transport`` replaces HTTP entirely (tests feed recorded replies through it).
    """

    def __init__(self, host: str = "", port: int | None = None, user: str = "admin",
                 password: str = "", *, tls: bool = False, timeout: float = 10.0,
                 cert_sha256: bytes | None = None, max_reply_bytes: int = DEFAULT_MAX_BYTES,
                 connections: int = 4, transport: Transport | None = None) -> None:
        self.host = host
        self.user = user
        if transport is None:
            transport = HttpTransport(host, port, user, password, tls=tls, timeout=timeout,
                                      cert_sha256=cert_sha256,
                                      max_reply_bytes=max_reply_bytes,
                                      connections=connections)
        self.wsman = WsmanClient(transport, max_reply_bytes=max_reply_bytes)
        self.storage = ThirdPartyStorage(self.wsman)
        self.storage_admin = StorageAdministration(self.wsman)
        self._digest_realm: str | None = None

    async def close(self) -> None:
        await self.wsman.close()

    async def __aenter__(self) -> AmtClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- power ------------------------------------------------------------------------

    async def get_power_state(self) -> PowerState:
        return await power.get_power_state(self.wsman)

    async def available_power_actions(self) -> list[int]:
        return await power.available_actions(self.wsman)

    async def request_power_change(self, action: PowerAction) -> None:
        await power.request_power_change(self.wsman, action)

    # ---- settings ---------------------------------------------------------------------

    async def general_settings(self) -> GeneralSettings:
        result = await settings.general_settings(self.wsman)
        self._digest_realm = result.digest_realm
        return result

    async def rename(self, hostname: str, domain: str | None = None) -> GeneralSettings:
        return await settings.rename(self.wsman, hostname, domain)

    async def ethernet_ports(self) -> list[EthernetPortSettings]:
        return await settings.ethernet_ports(self.wsman)

    async def amt_version(self) -> str:
        return await settings.amt_version(self.wsman)

    # ---- accounts ---------------------------------------------------------------------

    async def add_user_acl_entry(self, username: str, password: str,
                                 realms: Iterable[Realm | str | int],
                                 access: AccessPermission = AccessPermission.NETWORK_ONLY
                                 ) -> int:
        if self._digest_realm is None:
            await self.general_settings()
        return await accounts.add_user_acl_entry(self.wsman, username, password, realms,
                                                 access, self._digest_realm)

    async def user_acl_handles(self) -> list[int]:
        return await accounts.user_acl_handles(self.wsman)

    async def user_acl_entries(self) -> list[UserAclEntry]:
        return [await accounts.get_user_acl_entry(self.wsman, handle)
                for handle in await self.user_acl_handles()]

    async def get_user_acl_entry(self, handle: int) -> UserAclEntry:
        return await accounts.get_user_acl_entry(self.wsman, handle)

    async def remove_user_acl_entry(self, handle: int) -> None:
        await accounts.remove_user_acl_entry(self.wsman, handle)

    async def admin_user(self) -> str:
        return await accounts.admin_user(self.wsman)
