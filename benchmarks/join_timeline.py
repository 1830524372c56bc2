"""Where a mass join's time goes: the seed's admissions, the spread after each, the run queue.

    admitted = admissions(views, ids)              # joiner -> when the seed saw it
    spread = spread_after_admission(views, ids, admitted)
    queue = RunQueue([pid, ...]); ...; waited = queue.stop()

``bench_membership.py`` tells every agent to join the first one (the seed) at the same
moment. A joiner is admitted when the seed merges its state exchange, which carries its
record; gossip and state exchanges then take that record to every other agent. So a join
takes (when the seed admitted the last joiners) + (how long their records took to reach
everyone), and the two parts show which one a change moves.

``views`` are the agents' ``member_states`` answers in ``ids``' order (``ids[0]`` is the
seed): node id (hex) -> ``{"history": [[state, wall-clock time], ...], ...}``.

``RunQueue`` reads ``/proc/<pid>/schedstat`` (Linux with scheduler statistics; the event
loop's thread, which does an agent's work): nanoseconds on a CPU, nanoseconds runnable but
waiting for one. With 100 agents on 2 cores an agent spends most of a join waiting, and
every hop of news waits with it. Elsewhere ``stop`` returns None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["RunQueue", "admissions", "first_alive", "spread_after_admission"]

View = dict[str, dict[str, Any]]


def first_alive(view: View, node: str) -> float | None:
    """Wall-clock time ``view``'s agent first saw ``node`` alive; None if it never did."""
    history = view.get(node, {}).get("history", [])
    times = [at for state, at in history if state == "alive"]
    return min(times) if times else None


def admissions(views: list[View], ids: list[str]) -> dict[str, float]:
    """Joiner -> wall-clock time the seed (``ids[0]``) first saw it alive; joiners the
    seed never saw alive are left out."""
    admitted = {}
    for node in ids[1:]:
        at = first_alive(views[0], node)
        if at is not None:
            admitted[node] = at
    return admitted


def spread_after_admission(views: list[View], ids: list[str],
                           admitted: dict[str, float]) -> list[float]:
    """Per admitted joiner: seconds from its admission until the last agent other than
    itself and the seed saw it alive (every agent runs on this machine: one clock). A
    joiner some agent never saw is left out: that join did not converge, which the
    caller reports."""
    spreads = []
    for node, since in admitted.items():
        seen = [first_alive(view, node) for view, owner in zip(views[1:], ids[1:])
                if owner != node]
        if not seen or any(at is None for at in seen):
            continue
        spreads.append(max(at for at in seen if at is not None) - since)
    return spreads


class RunQueue:
    """Time ``pids`` spent on a CPU and waiting for one, between construction and ``stop``."""

    def __init__(self, pids: list[int], proc: Path = Path("/proc")) -> None:
        self._proc = proc
        self._start = {pid: self._read(pid) for pid in pids}

    def _read(self, pid: int) -> tuple[int, int] | None:
        try:
            fields = (self._proc / str(pid) / "schedstat").read_text().split()
            return int(fields[0]), int(fields[1])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> dict[str, float] | None:
        """Mean milliseconds per process ``{"running_ms", "waiting_ms"}``; None when any
        process's statistics could not be read (not Linux, no schedstat, exited)."""
        running, waiting = [], []
        for pid, start in self._start.items():
            end = self._read(pid)
            if start is None or end is None:
                return None
            running.append((end[0] - start[0]) / 1e6)
            waiting.append((end[1] - start[1]) / 1e6)
        if not running:
            return None
        return {"running_ms": sum(running) / len(running),
                "waiting_ms": sum(waiting) / len(waiting)}
