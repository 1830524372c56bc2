"""SQLite back end: the default, embedded in the web service, one file.

URL: ``sqlite:///absolute/path.db`` (or ``sqlite:///:memory:`` for tests). The file is in
WAL mode with ``synchronous=NORMAL``: a commit survives a crash of the service, which is
the durability the service promises before it acknowledges anything.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from meshagent.server.db.sql import SqlDatabase

__all__ = ["SqliteDatabase"]


class SqliteDatabase(SqlDatabase):
    url_scheme = "sqlite"
    blob_type = "BLOB"
    real_type = "REAL"
    serial_type = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = url.removeprefix("sqlite://").removeprefix("/") if url.startswith(
            "sqlite:///:memory:") else url.removeprefix("sqlite://")

    def _connect(self) -> Any:
        if self.path != ":memory:" and not Path(self.path).parent.is_dir():
            raise FileNotFoundError(f"directory {Path(self.path).parent} does not exist")
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _begin(self, conn: Any, durable: bool) -> None:
        """WAL with synchronous=NORMAL never waits for the disk at commit; a commit
        survives a crash of the service (not a power cut), for every transaction alike."""
        conn.execute("BEGIN IMMEDIATE")

    def _unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and not isinstance(
            exc, sqlite3.IntegrityError)

    def _unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)
