"""Storage of the web service: ``open_database(url)`` picks the back end by URL scheme.

``sqlite:///path/to/file.db`` (default) or ``postgresql://user:pw@host:port/dbname``.
See ``base.py`` for the contract every back end keeps.
"""

from __future__ import annotations

from meshagent.errors import ConfigError
from meshagent.server.db.base import (
    DELIVERABLE_STATES,
    SENT_GRACE_S,
    AuditEntry,
    AuditRow,
    CommandRow,
    CommandState,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateCommand,
    InventoryReport,
    LeaderClaim,
    LeaderRow,
    MeshRow,
    NewCommand,
    NodeFilter,
    NodeRow,
    NodeUpdate,
    ResultRow,
)

__all__ = [
    "AuditEntry", "AuditRow", "CommandRow", "CommandState", "Database", "DatabaseError",
    "DatabaseUnavailable", "DELIVERABLE_STATES", "DuplicateCommand", "InventoryReport",
    "LeaderClaim",
    "LeaderRow", "MeshRow", "NewCommand", "NodeFilter", "NodeRow", "NodeUpdate", "ResultRow",
    "SENT_GRACE_S", "database_for", "open_database",
]


def database_for(url: str) -> Database:
    """The (unopened) back end for ``url``; ConfigError for an unknown scheme."""
    if url.startswith("sqlite://"):
        from meshagent.server.db.sqlite import SqliteDatabase

        return SqliteDatabase(url)
    if url.startswith(("postgresql://", "postgres://")):
        from meshagent.server.db.postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ConfigError(f"--db: unsupported database URL {url.split('@')[-1]!r} "
                      "(use sqlite:///path or postgresql://...)")


async def open_database(url: str) -> Database:
    """Open (and create the schema of) the database at ``url``."""
    db = database_for(url)
    await db.open()
    return db
