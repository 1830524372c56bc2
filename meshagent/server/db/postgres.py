"""PostgreSQL back end, for many meshes and nodes: ``postgresql://user:pw@host:port/db``.

psycopg 3 (a server-only dependency: the ``server`` extra). A connection that breaks
(server restarted, network cut) is dropped; the failing call raises
``DatabaseUnavailable`` and the next call connects again.
"""

from __future__ import annotations

from typing import Any

from meshagent.server.db.sql import SqlDatabase

__all__ = ["PostgresDatabase"]


class PostgresDatabase(SqlDatabase):
    url_scheme = "postgresql"
    blob_type = "BYTEA"
    real_type = "DOUBLE PRECISION"
    serial_type = "BIGSERIAL PRIMARY KEY"
    workers = 4
    claim_lock = " FOR UPDATE OF c SKIP LOCKED"

    def _connect(self) -> Any:
        import psycopg  # server extra; imported here so the agent never needs it

        return psycopg.connect(self.url, connect_timeout=5, autocommit=False)

    def _begin(self, conn: Any, durable: bool) -> None:
        """psycopg opens the transaction with this first statement."""
        if not durable:
            conn.execute("SET LOCAL synchronous_commit = off")

    def _rewrite(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _unavailable(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))

    def _unique_violation(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.errors.UniqueViolation)
