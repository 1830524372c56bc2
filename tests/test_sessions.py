"""SessionManager's choice of when to dial, without sockets."""

from __future__ import annotations

import pytest

from meshagent import sessions
from meshagent.sessions import SessionManager


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(sessions.time, "monotonic", clock)
    return clock


def _manager() -> SessionManager:
    return SessionManager(bytes(16), transport=None, handshake=None,  # type: ignore[arg-type]
                          candidates=list, on_up=print, on_down=print, on_frames=print,
                          settle=0.25, settle_max=2.0)


def test_dials_wait_until_the_view_has_been_quiet(clock: _Clock) -> None:
    manager = _manager()
    assert not manager._settling(clock.now)  # nothing happened yet
    manager.view_changed()
    assert manager._settling(clock.now)
    clock.now += 0.2
    assert manager._settling(clock.now)
    clock.now += 0.1
    assert not manager._settling(clock.now)


def test_a_long_burst_of_news_delays_dials_at_most_settle_max(clock: _Clock) -> None:
    manager = _manager()
    settling = []
    for _ in range(40):  # news every 0.1 s for 4 s: never quiet
        manager.view_changed()
        settling.append(manager._settling(clock.now))
        clock.now += 0.1
    assert all(settling[:20]) and not any(settling[21:])
