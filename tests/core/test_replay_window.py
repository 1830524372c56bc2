"""Replay window edge cases through the public door (RFC 6479 semantics)."""

from __future__ import annotations

import pytest

from meshagent.core import (
    REKEY_AFTER_MESSAGES,
    REPLAY_WINDOW_BITS,
    REPLAY_WINDOW_SPAN,
    InvalidArgument,
    ReplayError,
    ReplayWindow,
)


def test_window_is_8192_bits_less_one_block() -> None:
    assert REPLAY_WINDOW_BITS == 8192
    assert REPLAY_WINDOW_SPAN == 8192 - 64


def test_each_counter_is_accepted_once() -> None:
    window = ReplayWindow()
    window.check_and_update(0)
    with pytest.raises(ReplayError):
        window.check_and_update(0)
    window.check_and_update(1)
    assert not window.accepts(1)


def test_reordering_inside_the_window_is_accepted() -> None:
    window = ReplayWindow()
    window.check_and_update(5000)
    for counter in range(4999, 4000, -1):
        window.check_and_update(counter)
    assert not window.accepts(4500)


def test_counter_that_fell_behind_the_window_is_rejected() -> None:
    window = ReplayWindow()
    window.check_and_update(20000)
    assert window.accepts(20000 - REPLAY_WINDOW_SPAN)
    with pytest.raises(ReplayError):
        window.check_and_update(20000 - REPLAY_WINDOW_SPAN - 1)


def test_a_big_jump_forgets_the_old_window() -> None:
    window = ReplayWindow()
    window.check_and_update(7)
    window.check_and_update(7 + REPLAY_WINDOW_BITS)  # same bitmap slot, one ring later
    window.check_and_update(7 + 10 * REPLAY_WINDOW_BITS)
    assert window.accepts(7 + 10 * REPLAY_WINDOW_BITS - 1)
    assert not window.accepts(7 + REPLAY_WINDOW_BITS)


def test_rejection_changes_nothing() -> None:
    window = ReplayWindow()
    window.check_and_update(10)
    with pytest.raises(ReplayError):
        window.check_and_update(10)
    window.check_and_update(9)


def test_counters_at_the_message_limit_are_refused() -> None:
    window = ReplayWindow()
    assert not window.accepts(REKEY_AFTER_MESSAGES)
    window.check_and_update(REKEY_AFTER_MESSAGES - 1)


@pytest.mark.parametrize("counter", [-1, 1 << 64, 1.5, "3", None])
def test_counter_must_be_a_u64(counter: object) -> None:
    with pytest.raises(InvalidArgument):
        ReplayWindow().check_and_update(counter)  # type: ignore[arg-type]
