"""The garbage collector's set-up for long-running processes (``meshagent.heap``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from meshagent.cli import agent_run
from meshagent.heap import freeze_startup_heap


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_startup_heap_is_frozen_out_of_the_collectors_passes(collector: None) -> None:
    survivor = [object() for _ in range(1000)]  # start-up state, alive for good
    tracked_before = len(gc.get_objects())
    freeze_startup_heap()
    assert gc.get_freeze_count() > tracked_before // 2
    assert len(gc.get_objects()) < tracked_before // 10  # what passes still walk
    assert survivor[0] in gc.get_referents(survivor)  # frozen, not collected
    assert not any(tracked is survivor for tracked in gc.get_objects())  # nor walked


def test_thresholds_are_kept_unless_given(collector: None) -> None:
    before = gc.get_threshold()
    freeze_startup_heap()
    assert gc.get_threshold() == before
    freeze_startup_heap((10_000, 50, 1_000))
    assert gc.get_threshold() == (10_000, 50, 1_000)


def test_garbage_made_after_start_up_is_still_collected(collector: None) -> None:
    freeze_startup_heap()

    class Node:
        pass

    first, second = Node(), Node()
    first.other, second.other = second, first  # type: ignore[attr-defined]
    del first, second
    assert gc.collect() >= 2


def test_the_agent_freezes_its_heap_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, not after: a caller waiting for the agent to have started (the benchmarks'
    timing) must not see the collection it takes run into the work that follows."""
    steps: list[str] = []
    monkeypatch.setattr(agent_run, "freeze_startup_heap", lambda: steps.append("freeze"))

    class Agent:
        async def start(self) -> None:
            steps.append("start")
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        asyncio.run(agent_run._serve(Agent()))
    assert steps == ["freeze", "start"]
