from __future__ import annotations

import sqlite3

import pytest

from meshagent.commands import SeenCommands, SeenStoreError
from meshagent.commands.seen import SeenState

ID_A, ID_B = b"\xaa" * 16, b"\xbb" * 16


def test_an_id_is_claimed_once(tmp_path):
    with SeenCommands(tmp_path / "seen.db") as seen:
        assert seen.claim(ID_A, expires=100.0, now=1.0)
        assert not seen.claim(ID_A, expires=100.0, now=2.0)
        assert seen.get(ID_A).state is SeenState.CLAIMED


def test_seen_ids_and_results_survive_reopening(tmp_path):
    with SeenCommands(tmp_path / "seen.db") as seen:
        seen.claim(ID_A, 100.0)
        seen.finish(ID_A, b"result")
    with SeenCommands(tmp_path / "seen.db") as seen:
        assert not seen.claim(ID_A, 100.0)
        entry = seen.get(ID_A)
        assert entry.state is SeenState.DONE and entry.result == b"result"


def test_claimed_but_unfinished_commands_are_reported_after_restart(tmp_path):
    with SeenCommands(tmp_path / "seen.db") as seen:
        seen.claim(ID_A, 100.0, now=1.0)
        seen.claim(ID_B, 100.0, now=2.0)
        seen.finish(ID_B, b"r")
    with SeenCommands(tmp_path / "seen.db") as seen:
        assert [e.command_id for e in seen.interrupted()] == [ID_A]


def test_journal_is_wal_and_sync_is_full(tmp_path):
    SeenCommands(tmp_path / "seen.db").close()
    db = sqlite3.connect(tmp_path / "seen.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_prune_forgets_only_finished_expired_ids(tmp_path):
    with SeenCommands(tmp_path / "seen.db") as seen:
        seen.claim(ID_A, expires=10.0)
        seen.finish(ID_A, b"r")
        seen.claim(ID_B, expires=10.0)  # interrupted: kept until finished
        assert seen.prune(now=11.0, margin_s=5.0) == 0
        assert seen.prune(now=16.0) == 1
        assert seen.get(ID_A) is None and seen.get(ID_B) is not None


def test_finishing_an_unclaimed_command_is_an_error(tmp_path):
    with SeenCommands(tmp_path / "seen.db") as seen:
        with pytest.raises(SeenStoreError):
            seen.finish(ID_A, b"r")
        seen.claim(ID_A, 10.0)
        seen.finish(ID_A, b"r")
        with pytest.raises(SeenStoreError):
            seen.finish(ID_A, b"again")


def test_unopenable_store_is_a_typed_error(tmp_path):
    with pytest.raises(SeenStoreError):
        SeenCommands(tmp_path / "missing-dir" / "seen.db")
