"""The benchmarks' CPU split (benchmarks/cpu_split.py): perf's report grouped by origin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from cpu_split import shares_of

REPORT = """\
# To display the perf.data header info, please use --header/--header-only options.
#
# Overhead  Shared Object
# ........  ..............................
#
    55.51%  libpython3.11.so.1.0
    26.14%  _core.abi3.so
    11.76%  [kernel.kallsyms]
     3.14%  libc.so.6
     0.79%  _cmsgpack.cpython-311-x86_64-linux-gnu.so
     0.67%  libcrypto.so.3
"""


def test_report_lines_are_grouped_by_where_the_cpu_went() -> None:
    shares = shares_of(REPORT)
    assert shares == pytest.approx({"interpreter": 0.5664, "core": 0.2667, "kernel": 0.1200,
                                    "libc": 0.0320, "other": 0.0149}, abs=1e-4)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)


def test_a_report_without_samples_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no samples"):
        shares_of("# Overhead  Shared Object\n#\n")
