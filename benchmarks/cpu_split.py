"""Where a set of processes spends its CPU, by shared object: Linux ``perf`` sampling.

    split = CpuSplit([pid, ...], Path("join.perf"))
    split.start()
    ...                       # the work being measured
    shares = split.stop()     # {"interpreter": 0.55, "core": 0.26, "kernel": 0.12, ...}

The groups: ``interpreter`` (libpython: evaluating Python code, objects, dicts),
``core`` (meshagent's C core with its statically linked OpenSSL: Ed25519, X25519,
AES-GCM, HKDF), ``kernel`` (system calls, scheduling, page faults), ``libc`` and
``other`` (msgpack, cffi and the other extension modules). Samples come from the
``cpu-clock`` software event, which works on virtual machines without hardware counters.
Needs ``perf`` (Debian's linux-perf) and the right to trace the processes (root).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

__all__ = ["CpuSplit", "perf_available"]

_GROUPS = (("interpreter", re.compile(r"^libpython")), ("core", re.compile(r"^_core\.")),
           ("kernel", re.compile(r"^\[kernel")), ("libc", re.compile(r"^libc[.-]")))
_LINE = re.compile(r"^\s*([0-9.]+)%\s+(\S+)")


def perf_available() -> bool:
    return shutil.which("perf") is not None


class CpuSplit:
    """``perf record`` of ``pids`` between ``start`` and ``stop``."""

    def __init__(self, pids: list[int], path: Path, frequency: int = 999) -> None:
        self.pids = pids
        self.path = path
        self.frequency = frequency
        self._recorder: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._recorder = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-F", str(self.frequency), "-o",
             str(self.path), "-p", ",".join(str(pid) for pid in self.pids)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> dict[str, float]:
        """Share of the samples per group (sums to 1); RuntimeError if perf failed."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            raise RuntimeError("CpuSplit.stop without start")
        recorder.send_signal(signal.SIGINT)  # perf writes its file and exits
        _, errors = recorder.communicate(timeout=60)
        if not self.path.exists():
            raise RuntimeError(f"perf record failed: {errors.decode(errors='replace')[-500:]}")
        report = subprocess.run(
            ["perf", "report", "-i", str(self.path), "--sort", "dso", "--stdio"],
            capture_output=True, text=True, check=True).stdout
        return shares_of(report)


def shares_of(report: str) -> dict[str, float]:
    """Group the lines of ``perf report --sort dso --stdio`` ("55.51%  libpython3.11.so")."""
    totals = {name: 0.0 for name, _ in _GROUPS} | {"other": 0.0}
    for line in report.splitlines():
        match = _LINE.match(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        percent, dso = float(match.group(1)), match.group(2)
        group = next((name for name, pattern in _GROUPS if pattern.match(dso)), "other")
        totals[group] += percent / 100
    whole = sum(totals.values())
    if whole == 0:
        raise RuntimeError("perf recorded no samples")
    return {name: round(share / whole, 4) for name, share in totals.items()}
