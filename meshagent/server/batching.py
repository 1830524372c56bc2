"""Group commit: many callers' writes stored in one transaction, each caller resumed
only after that transaction committed.

With hundreds of leaders each sending small inventory deltas, one transaction per
message would make the database's round trips (and commits) the service's limit. A
``GroupCommit`` runs at most one write at a time; what arrives while it runs is written
together by the next one. At low load every item is written at once (no added delay);
under load batches grow by themselves. A failed write fails every caller of its batch
with the same exception, so nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]],
                 max_batch: int = 10_000) -> None:
        self._write = write
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: T) -> None:
        """Return once ``item`` has been written (or raise what the write raised)."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        await done

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:self.max_batch]
            del self._pending[:len(batch)]
            self.batches += 1
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:  # handed to every waiting caller, who handles it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
