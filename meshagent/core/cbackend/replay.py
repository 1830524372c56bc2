"""Replay window over ``csrc/replay.c``."""

from __future__ import annotations

from meshagent.core._checks import U64_MAX, int_in_range
from meshagent.core._native import ffi, lib
from meshagent.core.errors import ensure

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """Accepts each counter once; refuses counters more than REPLAY_WINDOW_SPAN behind the
    highest accepted one, and counters at or past REKEY_AFTER_MESSAGES (RFC 6479 bitmap of
    REPLAY_WINDOW_BITS bits)."""

    def __init__(self) -> None:
        self._window = ffi.new("mesh_replay *")
        ensure(lib.mesh_replay_init(self._window))

    def accepts(self, counter: int) -> bool:
        """Whether ``counter`` would be accepted now (no change)."""
        int_in_range(counter, U64_MAX, "counter")
        return lib.mesh_replay_check(self._window, counter) == lib.MESH_OK

    def check_and_update(self, counter: int) -> None:
        """Accept ``counter`` or raise ReplayError (and change nothing)."""
        int_in_range(counter, U64_MAX, "counter")
        ensure(lib.mesh_replay_update(self._window, counter), f"counter {counter}")
