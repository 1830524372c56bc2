"""The core self-test: it passes here, its vectors are NIST's, and it reports wrong answers."""

from __future__ import annotations

import asyncio
import json

import pytest

from meshagent.cli import agent_selftest
from meshagent.cli.main import main
from meshagent.core import cbackend
from meshagent.core.selftest import load_gcm_vectors, run_selftest
from meshagent.eventloop import uvloop_factory

from .gcm_vectors import NIST_VECTORS


def test_selftest_passes_on_both_backends() -> None:
    results = run_selftest()
    assert [result for result in results if not result.passed] == []
    names = {result.name for result in results}
    assert {"aes-gcm known answers (c)", "aes-gcm known answers (python)",
            "route table (c)", "c and python agree"} <= names


def test_shipped_vectors_are_nist_vectors_with_forgeries_among_them() -> None:
    shipped = load_gcm_vectors()
    nist = {(v.key, v.nonce, v.aad, v.plaintext, v.ciphertext, v.tag) for v in NIST_VECTORS}
    assert len(shipped) >= 40
    assert all((v.key, v.nonce, v.aad, v.plaintext, v.ciphertext, v.tag) in nist
               for v in shipped)
    assert sum(v.plaintext is None for v in shipped) >= 5
    assert sum(len(v.key) == 32 for v in shipped) >= 30


def test_a_wrong_answer_fails_its_check_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cbackend, "aes_gcm_seal", lambda *args, **kwargs: b"wrong")
    failed = [result for result in run_selftest() if not result.passed]
    assert [result.name for result in failed] == ["aes-gcm known answers (c)"]
    assert "wrong ciphertext or tag" in failed[0].detail


def test_selftest_verb_prints_each_check_and_sets_the_exit_status(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["selftest"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"selftest: {len(lines) - 1} passed, 0 failed"
    monkeypatch.setattr(cbackend, "aes_gcm_open", lambda *args, **kwargs: b"")
    assert main(["selftest", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 1 and report["passed"] == len(report["checks"]) - 1


def test_selftest_verb_checks_each_event_loop_run_can_take(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["selftest", "--json"]) == 0
    loops = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]
             if c["name"].startswith("event loop")}
    uvloop_here = uvloop_factory() is not None
    # choice -> the loop it runs on: ``auto`` is uvloop where it is installed.
    expected = {"auto": "uvloop" if uvloop_here else "asyncio", "asyncio": "asyncio",
                **({"uvloop": "uvloop"} if uvloop_here else {})}
    assert sorted(loops) == sorted(f"event loop ({choice})" for choice in expected)
    assert all(loops[f"event loop ({choice})"]["passed"]
               and loops[f"event loop ({choice})"]["detail"].startswith(ran_on)
               for choice, ran_on in expected.items())
    monkeypatch.setattr(agent_selftest, "loop_factory", lambda choice: _broken_loop)
    assert main(["selftest", "--json"]) == 1
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert all(not c["passed"] and "no loop here" in c["detail"]
               for c in checks if c["name"].startswith("event loop"))


def _broken_loop() -> asyncio.AbstractEventLoop:
    raise OSError("no loop here")


def test_bench_verb_reports_throughput_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--batches", "2", "--frames", "20", "--routes", "500", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert figures["seal_1400_mbps"] > 0 and figures["open_1400_mbps"] > 0
    assert figures["route_batch_lookups_per_s"] > 0
