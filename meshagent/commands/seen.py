"""The node's durable record of command ids it has seen: the replay guard.

Contract (at most once, durable before acknowledging):

* ``claim(id, expires)`` inserts the id in state CLAIMED and returns True only if it was
  not there before. The row is committed and synced (SQLite WAL, ``synchronous=FULL``)
  before it returns, so once a command is admitted no restart can admit it again.
* ``finish(id, result)`` moves it to DONE and stores the signed result (bytes), again
  synced before returning, so a result can be re-sent if its first delivery is lost.
* A command CLAIMED but never finished was interrupted (crash, power loss, reboot by the
  command itself). After a restart ``interrupted()`` lists them; they are NEVER run again
  (the action may have had effects) but are finished with an "interrupted" error result.
* ``prune(now, margin_s)`` forgets DONE ids whose stored expiry is more than ``margin_s``
  in the past. ``CommandPolicy`` stores the command's expiry plus its clock-skew allowance,
  the last moment it would still admit the command, and refuses expired commands before
  it consults this store; so a pruned id can never be admitted again. CLAIMED rows are
  never pruned. The agent calls ``prune()`` now and then (e.g. hourly).

One process owns the file. Methods are thread-safe (one connection behind a lock).
"""

from __future__ import annotations

import enum
import os
import sqlite3
import threading
import time
from dataclasses import dataclass

from meshagent.errors import MeshError
from meshagent.log import get_logger

__all__ = ["SeenCommands", "SeenEntry", "SeenState", "SeenStoreError"]

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    id BLOB PRIMARY KEY,
    state TEXT NOT NULL,
    expires REAL NOT NULL,
    claimed REAL NOT NULL,
    finished REAL,
    result BLOB
)
"""


class SeenStoreError(MeshError):
    """The seen-commands file cannot be opened or written."""


class SeenState(enum.Enum):
    CLAIMED = "claimed"
    DONE = "done"


@dataclass(frozen=True)
class SeenEntry:
    command_id: bytes
    state: SeenState
    expires: float
    claimed: float
    finished: float | None
    result: bytes | None


class SeenCommands:
    """Seen command ids in a SQLite file (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise SeenStoreError(f"{self.path}: {exc}") from exc

    def claim(self, command_id: bytes, expires: float, now: float | None = None) -> bool:
        """Durably mark ``command_id`` claimed; False if it was already seen."""
        now = time.time() if now is None else now
        cursor = self._write("INSERT OR IGNORE INTO seen (id, state, expires, claimed) "
                             "VALUES (?, ?, ?, ?)",
                             (command_id, SeenState.CLAIMED.value, expires, now))
        return cursor.rowcount == 1

    def finish(self, command_id: bytes, result: bytes, now: float | None = None) -> None:
        """Durably mark a claimed command done with its signed result."""
        now = time.time() if now is None else now
        cursor = self._write("UPDATE seen SET state = ?, finished = ?, result = ? "
                             "WHERE id = ? AND state = ?",
                             (SeenState.DONE.value, now, result, command_id,
                              SeenState.CLAIMED.value))
        if cursor.rowcount != 1:
            raise SeenStoreError(f"command {command_id.hex()} is not claimed")

    def get(self, command_id: bytes) -> SeenEntry | None:
        rows = self._read("SELECT id, state, expires, claimed, finished, result FROM seen "
                          "WHERE id = ?", (command_id,))
        return rows[0] if rows else None

    def interrupted(self) -> list[SeenEntry]:
        """Commands claimed but never finished (a crash or restart came in between)."""
        return self._read("SELECT id, state, expires, claimed, finished, result FROM seen "
                          "WHERE state = ? ORDER BY claimed", (SeenState.CLAIMED.value,))

    def prune(self, now: float | None = None, margin_s: float = 0.0) -> int:
        """Forget DONE commands that expired more than ``margin_s`` ago; the count removed."""
        now = time.time() if now is None else now
        cursor = self._write("DELETE FROM seen WHERE state = ? AND expires + ? < ?",
                             (SeenState.DONE.value, margin_s, now))
        if cursor.rowcount:
            log.event("seen_commands_pruned", count=cursor.rowcount)
        return cursor.rowcount

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SeenCommands:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, params)
            except sqlite3.Error as exc:
                log.error("seen_commands_write_failed", path=self.path, error=str(exc))
                raise SeenStoreError(f"{self.path}: {exc}") from exc

    def _read(self, sql: str, params: tuple[object, ...]) -> list[SeenEntry]:
        with self._lock:
            try:
                rows = self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise SeenStoreError(f"{self.path}: {exc}") from exc
        return [SeenEntry(bytes(r[0]), SeenState(r[1]), r[2], r[3], r[4],
                          None if r[5] is None else bytes(r[5])) for r in rows]
