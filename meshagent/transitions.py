"""When this agent saw each member change state, on the wall clock.

``TransitionLog`` subscribes to ``Membership.on_change`` and keeps, per member, the last
``HISTORY`` transitions as (state, unix time). The control socket serves it
(``member_states``) so that tools outside the process (``meshctl``, the demo,
benchmarks/bench_membership.py) can tell exactly when a crash was noticed or a join
completed without polling fast. Bounded: one short deque per known member.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from meshagent.membership import Member, MemberState

__all__ = ["TransitionLog", "HISTORY"]

HISTORY = 16


class TransitionLog:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._log: dict[bytes, deque[tuple[str, float]]] = {}

    def record(self, member: Member, old: MemberState | None, new: MemberState) -> None:
        """A ``Membership.on_change`` callback."""
        history = self._log.setdefault(member.node_id, deque(maxlen=HISTORY))
        history.append((new.value, self._clock()))

    def forget(self, node_id: bytes) -> None:
        self._log.pop(node_id, None)

    def since(self, node_id: bytes) -> float | None:
        """When the member entered the state it was last seen to enter."""
        history = self._log.get(node_id)
        return history[-1][1] if history else None

    def view(self, node_id: bytes | None = None) -> dict[str, Any]:
        """``{node id hex: {"state", "since", "history": [[state, time], ...]}}``."""
        items = self._log.items() if node_id is None else \
            [(node_id, self._log[node_id])] if node_id in self._log else []
        return {nid.hex(): {"state": history[-1][0], "since": history[-1][1],
                            "history": [list(item) for item in history]}
                for nid, history in items if history}
