"""Change notices for live console pages: which kind of data changed, not the data.

The service publishes a topic ("nodes", "leaders", "commands", "results", "audit",
"meshes") whenever it stores something of that kind; each browser subscription gets the
topics on a bounded queue and re-reads the REST API. A slow subscriber loses notices,
never blocks the service: notices of one topic are coalesced while one is waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

__all__ = ["EventFeed", "TOPICS"]

TOPICS = ("meshes", "leaders", "nodes", "commands", "results", "audit")


class EventFeed:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[str]] = set()

    def publish(self, *topics: str) -> None:
        for queue in self._subscribers:
            for topic in topics:
                if topic not in queue._queue and not queue.full():  # type: ignore[attr-defined]
                    queue.put_nowait(topic)

    async def subscribe(self, stop: asyncio.Event | None = None) -> AsyncIterator[str]:
        """Topics as they are published, until the caller stops iterating."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=len(TOPICS))
        self._subscribers.add(queue)
        try:
            while stop is None or not stop.is_set():
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
