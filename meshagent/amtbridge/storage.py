"""The mesh's 3PDS application: where a node's record block lives on its AMT.

Every member registers with the same registration data, derived from the mesh id, so
that a peer holding the guest account (realm Storage) is the same 3PDS application as the
owner and may read the owner's block (AMT lets only the owning application read a block).
The enterprise name must be in the device's EACL; the owner adds it with its admin
account (``prepare``). The block is found by its name, so no handle has to be shared.

Writes send only the framed record (header + wire), not the zero padding; reads take the
header first and then exactly the announced length (``amtrecord``).
"""

from __future__ import annotations

import hashlib

from amt.client import AmtClient
from amt.operations.storage import StorageApplication, StorageSession
from meshagent.amtbridge.amtrecord import (
    BLOCK_BYTES,
    HEADER_BYTES,
    MAGIC,
    block_length,
    encode_block,
)
from meshagent.amtbridge.errors import GarbageRecord

__all__ = ["BLOCK_NAME", "ENTERPRISE", "RecordBlock", "mesh_storage_app", "read_record_block"]

ENTERPRISE = "meshagent"
VENDOR = "meshagent"
APPLICATION = "mesh-node-record"
BLOCK_NAME = "mesh-record"


def mesh_storage_app(mesh_id: bytes) -> StorageApplication:
    """The registration data every member of ``mesh_id`` uses."""
    caller_uuid = hashlib.sha256(b"meshagent/3pds\0" + mesh_id).digest()[:16]
    return StorageApplication(VENDOR, APPLICATION, ENTERPRISE, caller_uuid)


async def _find_block(session: StorageSession) -> tuple[int, int] | None:
    """(handle, size) of the record block of this application, if allocated."""
    for handle in await session.allocated_blocks():
        attributes = await session.block_attributes(handle)
        if attributes.name == BLOCK_NAME:
            return handle, attributes.size
    return None


class RecordBlock:
    """The owner's side: keep the record block on its own AMT (admin account)."""

    def __init__(self, client: AmtClient, app: StorageApplication) -> None:
        self.client = client
        self.app = app
        self._mtu: int | None = None

    async def prepare(self) -> int:
        """Make sure the enterprise is allowed and the block exists; its handle."""
        await self.client.storage_admin.ensure_enterprise(self.app.enterprise)
        async with await self._register() as session:
            found = await _find_block(session)
            return found[0] if found else await session.allocate_block(BLOCK_BYTES,
                                                                        BLOCK_NAME)

    async def write(self, wire: bytes) -> None:
        framed = encode_block(wire)[:HEADER_BYTES + len(wire)]
        async with await self._register() as session:
            found = await _find_block(session)
            handle = found[0] if found else await session.allocate_block(BLOCK_BYTES,
                                                                          BLOCK_NAME)
            await session.write_block(handle, framed)

    async def _register(self) -> StorageSession:
        if self._mtu is None:
            self._mtu = await self.client.storage.mtu()
        return await self.client.storage.register(self.app, self._mtu)


async def read_record_block(client: AmtClient, app: StorageApplication) -> bytes:
    """A peer's side: the record wire in the owner's block, read with the guest account.

    GarbageRecord when the block is missing or its header is not a record's; AmtError
    from the device as raised by the client."""
    async with await client.storage.register(app) as session:
        found = await _find_block(session)
        if found is None:
            raise GarbageRecord("no mesh record block on this AMT")
        handle, size = found
        header = await session.read_block(handle, 0, HEADER_BYTES)
        if header[:4] != MAGIC:
            raise GarbageRecord("3PDS block does not start with a record header")
        length = block_length(header, min(size, BLOCK_BYTES))
        return await session.read_block(handle, HEADER_BYTES, length)
