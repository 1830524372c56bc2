"""The software device's persistent state and its JSON file.

Everything a real AMT keeps in flash lives here: the digest realm, the admin account and
user ACL entries (as HA1 = MD5(user:realm:password), never the password), general and
network settings, the power state, and third-party storage (EACL/FPACL entries, registered
applications, allocated blocks and their bytes). Sessions, nonces and enumeration contexts
are runtime-only, as on the firmware.

``save`` writes atomically (temporary file + rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amt.wsman.digest import ha1
from meshagent.atomicfile import write_atomically
from meshagent.errors import ConfigError

__all__ = ["Account", "DeviceState", "FpaclEntry", "StorageApp", "StorageBlock",
           "StorageLimits"]

STATE_VERSION = 1


@dataclass
class StorageLimits:
    """What GetGlobalStorageAttributes reports, and what the device enforces.

    Defaults are those of AMT firmware of the 6.x-16.x generations: 192 KB of 3PDS
    flash, 24 partner (FPACL) entries, 16 concurrent sessions, 4 enterprises, 2
    permission groups per block of 8 members; 4 KB transfers; allocation in 4 KB units.
    """

    total_storage: int = 192 * 1024
    max_partner_storage: int = 64 * 1024
    max_non_partner_storage: int = 128 * 1024
    max_non_partner_total_allocation: int = 32 * 1024
    max_fpacl_entries: int = 24
    max_asl_entries: int = 16
    max_eacl_entries: int = 4
    max_groups_per_block: int = 2
    max_members_per_group: int = 8
    mtu: int = 4096
    allocation_unit: int = 4096
    registration_timeout_s: int = 600
    lock_timeout_s: int = 60


@dataclass
class Account:
    handle: int
    username: str
    ha1: str
    realms: list[int]
    access_permission: int = 2


@dataclass
class FpaclEntry:
    handle: int
    application: str
    vendor: str
    total_allocation: int


@dataclass
class StorageApp:
    handle: int
    caller_uuid: str  # hex
    vendor: str
    application: str
    enterprise: str
    partner: bool = False


@dataclass
class StorageBlock:
    handle: int
    owner: int  # application handle
    size: int
    hidden: bool
    name: str
    data: bytearray = field(default_factory=bytearray)


@dataclass
class DeviceState:
    realm: str
    admin_user: str
    admin_ha1: str
    hostname: str = "amt-sim"
    domain: str = "local"
    amt_version: str = "16.1.27"
    system_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    mac_address: str = "00-00-00-00-00-00"
    ip_address: str = "0.0.0.0"
    power_state: int = 2
    accounts: dict[int, Account] = field(default_factory=dict)
    eacl: dict[int, str] = field(default_factory=dict)
    fpacl: dict[int, FpaclEntry] = field(default_factory=dict)
    apps: dict[int, StorageApp] = field(default_factory=dict)
    blocks: dict[int, StorageBlock] = field(default_factory=dict)
    limits: StorageLimits = field(default_factory=StorageLimits)
    next_handle: int = 1

    @classmethod
    def fresh(cls, admin_user: str, admin_password: str, hostname: str = "amt-sim"
              ) -> DeviceState:
        """A newly provisioned device: random realm and MAC, one admin account."""
        realm = "Digest:" + secrets.token_hex(16).upper()
        mac = "-".join(f"{b:02x}" for b in bytes([0x02]) + secrets.token_bytes(5))
        return cls(realm=realm, admin_user=admin_user,
                   admin_ha1=ha1(admin_user, realm, admin_password), hostname=hostname,
                   mac_address=mac)

    def allocate_handle(self) -> int:
        handle = self.next_handle
        self.next_handle += 1
        return handle

    # ---- persistence ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = STATE_VERSION
        for block in data["blocks"].values():
            block["data"] = base64.b64encode(bytes(block["data"])).decode("ascii")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceState:
        try:
            if data.get("version") != STATE_VERSION:
                raise ConfigError(f"AMT device state version {data.get('version')!r} "
                                  f"is not {STATE_VERSION}")
            fields = {k: v for k, v in data.items() if k != "version"}
            fields["accounts"] = {int(k): Account(**v) for k, v in data["accounts"].items()}
            fields["eacl"] = {int(k): v for k, v in data["eacl"].items()}
            fields["fpacl"] = {int(k): FpaclEntry(**v) for k, v in data["fpacl"].items()}
            fields["apps"] = {int(k): StorageApp(**v) for k, v in data["apps"].items()}
            fields["blocks"] = {
                int(k): StorageBlock(**{**v, "data": bytearray(base64.b64decode(v["data"]))})
                for k, v in data["blocks"].items()}
            fields["limits"] = StorageLimits(**data["limits"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"AMT device state is malformed: {exc}") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(self.to_json()).encode("utf-8"), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> DeviceState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read AMT device state {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"AMT device state {path} is not a JSON object")
        return cls.from_json(data)
