"""How a long-running meshagent process uses Python's cyclic garbage collector.

Garbage here is freed by reference counting; reference cycles are rare. The collector's
passes still walk every tracked object of the generations they cover: after start-up that
is tens of thousands of objects (an agent's modules, classes and functions are about
35,000), and a full pass over them costs 20-30 ms of CPU. So what a process has imported
and built before it starts serving is frozen out of the collector's passes (``gc.freeze``:
never collected, never walked again). Objects made later (member records, sessions) are
collected as usual.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap(thresholds: tuple[int, int, int] | None = None) -> None:
    """Call once imports and set-up are done: collect, then freeze the survivors. ``thresholds``
    (``gc.set_threshold``: allocations between young collections, young collections
    between middle ones, middle ones between full ones) replace Python's when given."""
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
