"""Pure-Python twin of ``csrc/replay.c``: a deliberately plain model of the replay window.

It keeps the accepted counters themselves (pruned to the window) instead of a bitmap, so
it is obviously right; property tests demand that the C bitmap agrees with it.
"""

from __future__ import annotations

from meshagent.core._checks import U64_MAX, int_in_range
from meshagent.core.errors import ReplayError
from meshagent.core.wire import REKEY_AFTER_MESSAGES, REPLAY_WINDOW_SPAN

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """Accepts each counter once; refuses counters more than REPLAY_WINDOW_SPAN behind the
    highest accepted one, and counters at or past REKEY_AFTER_MESSAGES."""

    def __init__(self) -> None:
        self._highest: int | None = None
        self._seen: set[int] = set()

    def accepts(self, counter: int) -> bool:
        int_in_range(counter, U64_MAX, "counter")
        if counter >= REKEY_AFTER_MESSAGES:
            return False
        if self._highest is None or counter > self._highest:
            return True
        return self._highest - counter <= REPLAY_WINDOW_SPAN and counter not in self._seen

    def check_and_update(self, counter: int) -> None:
        """Accept ``counter`` or raise ReplayError (and change nothing)."""
        if not self.accepts(counter):
            raise ReplayError(f"counter {counter} replayed or behind the window")
        self._seen.add(counter)
        if self._highest is None or counter > self._highest:
            self._highest = counter
        if len(self._seen) > 2 * REPLAY_WINDOW_SPAN:  # forget what fell behind the window
            floor = self._highest - REPLAY_WINDOW_SPAN
            self._seen = {seen for seen in self._seen if seen >= floor}
