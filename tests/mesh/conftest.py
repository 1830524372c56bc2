"""Tests of whole agents in this process run on every event loop ``meshagent run`` can
take: asyncio's own, and uvloop where it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from meshagent.eventloop import uvloop_factory

_BOTH_LOOPS = {"test_agents_sockets.py", "test_leader_sockets.py"}


def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item,
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop}
    factory = uvloop_factory()
    if item.path.name in _BOTH_LOOPS and factory is not None:
        loops["uvloop"] = factory
    return loops
