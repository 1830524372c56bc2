"""The benchmarks' CPU split (benchmarks/cpu_split.py): perf's report grouped by origin,
for the processes measured only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cpu_split
from cpu_split import CpuSplit, shares_of

REPORT = """\
# To display the perf.data header info, please use --header/--header-only options.
#
# Overhead      Pid:Command      Shared Object
# ........  ...................  ..............................
#
     9.89%        0:swapper      [kernel.kallsyms]
    30.51%    24035:python       libpython3.11.so.1.0
    25.00%    24036:python       libpython3.11.so.1.0
    26.14%    24035:python       _core.abi3.so
    11.76%    24036:python       [kernel.kallsyms]
     3.14%    24035:python       libc.so.6
     0.79%    24036:python       _cmsgpack.cpython-311-x86_64-linux-gnu.so
     0.67%    24036:python       libcrypto.so.3
     5.00%      812:python3      libpython3.11.so.1.0
"""


def test_report_lines_are_grouped_by_where_the_cpu_went() -> None:
    shares = shares_of(REPORT, {24035, 24036})  # not the idle task, not another program
    assert shares == pytest.approx({"interpreter": 0.5664, "core": 0.2667, "kernel": 0.1200,
                                    "libc": 0.0320, "other": 0.0149}, abs=1e-4)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)


def test_a_report_without_samples_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no samples of the processes"):
        shares_of(REPORT, {4242})


def test_a_perf_that_never_starts_recording_is_an_error_and_is_not_left_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A perf that exits at once (no rights, another version) answers no ``ping``: start
    raises instead of measuring nothing, and leaves no recorder or pipe behind."""
    fake = tmp_path / "perf"
    fake.write_text("#!/bin/sh\necho 'perf: permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    split = CpuSplit([os.getpid()], tmp_path / "join.perf")
    with pytest.raises(RuntimeError, match="did not acknowledge"):
        split.start()
    assert split._recorder is None and split._control == split._acks == -1
    with pytest.raises(RuntimeError, match="without start"):
        split.stop()


def test_a_perf_gone_before_the_first_command_is_the_same_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When perf has already exited as the first command is written, the write fails
    with EPIPE: that is the same "did not acknowledge" error, not a BrokenPipeError."""
    fake = tmp_path / "perf"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    class ExitedAtOnce(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.wait()  # perf is gone before start writes its first command

    monkeypatch.setattr(cpu_split.subprocess, "Popen", ExitedAtOnce)
    split = CpuSplit([os.getpid()], tmp_path / "join.perf")
    with pytest.raises(RuntimeError, match="did not acknowledge 'ping': it has exited"):
        split.start()
    assert split._recorder is None and split._control == split._acks == -1
