"""The core names the OpenSSL it runs on, and only runs on one it may.

With ``MESHAGENT_OPENSSL_PREFIX`` set (the pinned static build: ``make fast-crypto``, the
wheels, CI's pinned-OpenSSL step) the installed core must be the static one built from
that prefix, and run exactly the version in the prefix's headers.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

from meshagent.core import OpenSSLBuild, openssl_build
from meshagent.core.selftest import run_selftest


def _build(running: int, compiled: int, *, static: bool) -> OpenSSLBuild:
    def text(number: int) -> str:
        return f"OpenSSL {number >> 28}.{number >> 20 & 0xFF}.{number >> 4 & 0xFF}"
    return OpenSSLBuild(running=text(running), compiled=text(compiled),
                        running_number=running, compiled_number=compiled, static=static)


V3_0_19, V3_5_6, V4_0_0 = 0x30000130, 0x30500060, 0x40000000


def test_core_runs_on_openssl_3_it_may_run_on() -> None:
    build = openssl_build()
    assert build.mismatch() is None
    assert build.running.startswith("OpenSSL 3.") and build.compiled.startswith("OpenSSL 3.")
    assert build.running_number >> 28 == 3


def test_selftest_names_the_running_openssl() -> None:
    [check] = [result for result in run_selftest() if result.name == "libcrypto"]
    assert check.passed
    assert check.detail.startswith(openssl_build().running)
    assert ("(static" if openssl_build().static else "(shared") in check.detail


@pytest.mark.parametrize(("running", "compiled", "static", "allowed"), [
    (V3_5_6, V3_5_6, True, True),
    (V3_0_19, V3_5_6, True, False),  # a static core runs exactly its own headers' version
    (V3_5_6, V3_0_19, True, False),
    (V3_0_19, V3_0_19, False, True),
    (V3_5_6, V3_0_19, False, True),  # a newer shared 3.x keeps the 3.0 ABI
    (V3_0_19, V3_5_6, False, False),  # an older shared one may lack what the headers use
    (V4_0_0, V3_5_6, False, False),  # another major is another ABI
])
def test_mismatch_rules(running: int, compiled: int, static: bool, allowed: bool) -> None:
    problem = _build(running, compiled, static=static).mismatch()
    assert (problem is None) is allowed
    if problem is not None:
        assert _build(running, compiled, static=static).running in problem


def _prefix_version_text(prefix: pathlib.Path) -> str:
    header = (prefix / "include" / "openssl" / "opensslv.h").read_text()
    match = re.search(r'#\s*define\s+OPENSSL_VERSION_TEXT\s+"([^"]+)"', header)
    assert match, f"{prefix} has no OPENSSL_VERSION_TEXT"
    return match.group(1)


@pytest.mark.skipif(not os.environ.get("MESHAGENT_OPENSSL_PREFIX"),
                    reason="the core is not expected to be the pinned static build")
def test_pinned_build_runs_the_prefix_openssl_statically() -> None:
    prefix = pathlib.Path(os.environ["MESHAGENT_OPENSSL_PREFIX"])
    build = openssl_build()
    assert build.static, "MESHAGENT_OPENSSL_PREFIX is set but the core links a shared libcrypto"
    assert build.running == build.compiled == _prefix_version_text(prefix)
