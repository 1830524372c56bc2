"""The join timeline of bench_membership.py (benchmarks/join_timeline.py): the seed's
admissions, the spread after each, and the run-queue figures from /proc."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from join_timeline import RunQueue, admissions, first_alive, spread_after_admission

SEED, A, B = "5eed", "aaaa", "bbbb"
IDS = [SEED, A, B]


def _view(**alive_at: float) -> dict:
    return {node: {"state": "alive", "history": [["suspect", at - 5], ["alive", at],
                                                 ["alive", at + 9]]}
            for node, at in alive_at.items()}


def _views() -> list[dict]:
    return [_view(aaaa=100.2, bbbb=100.9),        # the seed admits A at 100.2, B at 100.9
            _view(**{SEED: 100.2, B: 101.5}),     # A learns B 0.6 s after its admission
            _view(**{SEED: 100.9, A: 101.0})]     # B learns A 0.8 s after A's admission


def test_first_alive_is_the_earliest_alive_entry_and_none_when_never_alive() -> None:
    view = _view(aaaa=100.2)
    assert first_alive(view, A) == 100.2
    assert first_alive(view, B) is None
    view[B] = {"history": [["suspect", 99.0]]}
    assert first_alive(view, B) is None


def test_admissions_are_when_the_seed_first_saw_each_joiner() -> None:
    assert admissions(_views(), IDS) == {A: 100.2, B: 100.9}


def test_a_joiner_the_seed_never_saw_is_not_admitted() -> None:
    views = _views()
    del views[0][B]
    assert admissions(views, IDS) == {A: 100.2}


def test_spread_runs_from_admission_to_the_last_other_agent() -> None:
    views = _views()
    spread = spread_after_admission(views, IDS, admissions(views, IDS))
    assert spread == pytest.approx([0.8, 0.6])


def test_a_record_some_agent_never_saw_has_no_spread() -> None:
    views = _views()
    del views[2][A]  # B never saw A: that join did not converge
    assert spread_after_admission(views, IDS, admissions(views, IDS)) == pytest.approx([0.6])


def _schedstat(proc: Path, pid: int, running_ns: int, waiting_ns: int) -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "schedstat").write_text(f"{running_ns} {waiting_ns} 7\n")


def test_run_queue_is_the_mean_time_each_process_ran_and_waited(tmp_path: Path) -> None:
    _schedstat(tmp_path, 10, 1_000_000, 5_000_000)
    _schedstat(tmp_path, 11, 2_000_000, 5_000_000)
    queue = RunQueue([10, 11], proc=tmp_path)
    _schedstat(tmp_path, 10, 61_000_000, 2_805_000_000)
    _schedstat(tmp_path, 11, 82_000_000, 3_005_000_000)
    assert queue.stop() == pytest.approx({"running_ms": 70.0, "waiting_ms": 2900.0})


def test_run_queue_is_none_when_a_process_cannot_be_read(tmp_path: Path) -> None:
    _schedstat(tmp_path, 10, 1, 1)
    queue = RunQueue([10, 12], proc=tmp_path)  # 12 has no statistics (exited, no /proc)
    assert queue.stop() is None
    _schedstat(tmp_path, 13, 1, 1)
    queue = RunQueue([13], proc=tmp_path)
    (tmp_path / "13" / "schedstat").write_text("garbage\n")
    assert queue.stop() is None


@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="no schedstat here")
def test_run_queue_reads_this_machine() -> None:
    queue = RunQueue([os.getpid()])
    sum(i * i for i in range(200_000))  # some CPU to count
    figures = queue.stop()
    assert figures is not None and figures["running_ms"] > 0 and figures["waiting_ms"] >= 0
