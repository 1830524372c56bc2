"""Where a set of processes spends its CPU, by shared object: Linux ``perf`` sampling.

    split = CpuSplit([pid, ...], Path("join.perf"))
    split.start()
    ...                       # the work being measured
    shares = split.stop()     # {"interpreter": 0.55, "core": 0.26, "kernel": 0.12, ...}

The groups: ``interpreter`` (libpython: evaluating Python code, objects, dicts),
``core`` (meshagent's C core with its statically linked OpenSSL: Ed25519, X25519,
AES-GCM, HKDF), ``kernel`` (system calls, scheduling, page faults), ``libc`` and
``other`` (msgpack, cffi and the other extension modules). perf samples every CPU
(its default event: ``cpu-clock`` on virtual machines without hardware counters) and the
report keeps the processes' samples. Needs ``perf`` (Debian's linux-perf) and root.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
from pathlib import Path

__all__ = ["CpuSplit", "perf_available"]

_GROUPS = (("interpreter", re.compile(r"^libpython")), ("core", re.compile(r"^_core\.")),
           ("kernel", re.compile(r"^\[kernel")), ("libc", re.compile(r"^libc[.-]")))
_LINE = re.compile(r"^\s*([0-9.]+)%\s+(\d+):\S*\s+(\S+)")


def perf_available() -> bool:
    return shutil.which("perf") is not None


class CpuSplit:
    """``perf record`` between ``start`` and ``stop``, reported for ``pids``."""

    def __init__(self, pids: list[int], path: Path, frequency: int = 999) -> None:
        self.pids = pids
        self.path = path
        self.frequency = frequency
        self._recorder: subprocess.Popen[bytes] | None = None
        self._control = self._acks = -1  # pipe ends: commands to perf, its acks

    def start(self) -> None:
        """Start sampling every CPU and return once perf is recording: it takes perf
        longer to get going than a small join lasts, so it is asked a ``ping`` over its
        control pipe (``--control``), answered once its main loop runs. (Sampling only
        the processes, ``-p``, recorded nothing once a control pipe was given, with
        perf 6.1; the report keeps their samples only.)"""
        control_read, self._control = os.pipe()
        self._acks, ack_write = os.pipe()
        self._recorder = subprocess.Popen(
            ["perf", "record", "-a", "-F", str(self.frequency), "-o", str(self.path),
             f"--control=fd:{control_read},{ack_write}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(control_read, ack_write))
        os.close(control_read)
        os.close(ack_write)
        try:
            self._command("ping")
        except RuntimeError:
            self._recorder.kill()
            self._recorder.communicate()
            self._recorder = None
            self._close_pipes()
            raise

    def _close_pipes(self) -> None:
        os.close(self._control)
        os.close(self._acks)
        self._control = self._acks = -1

    def _command(self, command: str, timeout: float = 120.0) -> None:
        try:
            os.write(self._control, command.encode() + b"\n")
        except BrokenPipeError:  # perf has exited already: its end of the pipe is closed
            raise RuntimeError(f"perf record did not acknowledge {command!r}: it has "
                               "exited") from None
        ready, _, _ = select.select([self._acks], [], [], timeout)
        if not ready or not os.read(self._acks, 16).startswith(b"ack"):
            raise RuntimeError(f"perf record did not acknowledge {command!r}")

    def stop(self) -> dict[str, float]:
        """Share of the samples per group (sums to 1); RuntimeError if perf failed."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            raise RuntimeError("CpuSplit.stop without start")
        recorder.send_signal(signal.SIGINT)  # perf writes its file and exits
        _, errors = recorder.communicate(timeout=120)
        self._close_pipes()  # not before: perf would die of SIGPIPE, its file unwritten
        if not self.path.exists():
            raise RuntimeError(f"perf record failed: {errors.decode(errors='replace')[-500:]}")
        report = subprocess.run(
            ["perf", "report", "-i", str(self.path), "--sort", "pid,dso", "--stdio"],
            capture_output=True, text=True, check=True).stdout
        return shares_of(report, set(self.pids))


def shares_of(report: str, pids: set[int]) -> dict[str, float]:
    """Group the samples of ``pids`` in ``perf report --sort pid,dso --stdio`` (lines
    like "1.00%  24035:python  libpython3.11.so.1.0"); RuntimeError if there are none.
    perf's "pid" is the thread id, so these are the samples of each process's main thread,
    where an agent runs its event loop (its only other threads resolve host names)."""
    totals = {name: 0.0 for name, _ in _GROUPS} | {"other": 0.0}
    for line in report.splitlines():
        match = _LINE.match(line)
        if match is None or int(match.group(2)) not in pids:
            continue
        percent, dso = float(match.group(1)), match.group(3)
        group = next((name for name, pattern in _GROUPS if pattern.match(dso)), "other")
        totals[group] += percent / 100
    whole = sum(totals.values())
    if whole == 0:
        raise RuntimeError("perf recorded no samples of the processes")
    return {name: round(share / whole, 4) for name, share in totals.items()}
