"""Waiting for state that has no event to wait on (a database row, another process's
view): poll a condition until it holds, up to a deadline. Tests never sleep a fixed time
to synchronise; in-process state with an event or a future is awaited directly instead.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["wait_for"]


async def wait_for(condition: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0,
                   what: str = "condition", interval: float = 0.02) -> Any:
    """Poll ``condition`` (plain or async) until its value is truthy and return that value;
    TimeoutError naming ``what`` once ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
