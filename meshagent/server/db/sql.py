"""Every query of the web service, shared by the SQLite and PostgreSQL back ends.

Both back ends run a synchronous DB-API connection in one dedicated worker thread and
each ``Database`` method as one transaction in it. Why not psycopg's async API: one
thread and one code path for both back ends means one set of queries, one transaction
discipline and one error mapping, and the web service's event loop never blocks on
either. The back ends supply only what differs: connecting, column types in the DDL,
the parameter marker, and which driver errors mean "the database is unavailable".

Queries are written with ``?`` markers; a back end with another paramstyle rewrites them.
"""

from __future__ import annotations

import abc
import asyncio
import json
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from meshagent.log import get_logger
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
    ResultRow,
)

__all__ = ["SqlDatabase", "Transaction"]

log = get_logger(__name__)
T = TypeVar("T")

# Column types are placeholders filled per dialect: {blob} {real} {serial}.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meshes (
        mesh_id {blob} PRIMARY KEY, root_public {blob} NOT NULL, name TEXT NOT NULL,
        created {real} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS trust_documents (
        mesh_id {blob} NOT NULL, kind TEXT NOT NULL, version BIGINT NOT NULL,
        doc {blob} NOT NULL, PRIMARY KEY (mesh_id, kind))""",
    """CREATE TABLE IF NOT EXISTS leaders (
        mesh_id {blob} PRIMARY KEY, node_id {blob} NOT NULL, term BIGINT NOT NULL,
        connected INTEGER NOT NULL, since {real} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS nodes (
        node_id {blob} PRIMARY KEY, mesh_id {blob} NOT NULL, state TEXT NOT NULL,
        record {blob}, summary TEXT NOT NULL, search TEXT NOT NULL,
        last_seen {real} NOT NULL, via_leader {blob})""",
    "CREATE INDEX IF NOT EXISTS nodes_mesh ON nodes (mesh_id, state)",
    """CREATE TABLE IF NOT EXISTS commands (
        command_id {blob} NOT NULL, node_id {blob} NOT NULL, mesh_id {blob} NOT NULL,
        envelope {blob} NOT NULL, action TEXT NOT NULL, operator {blob} NOT NULL,
        state TEXT NOT NULL, created {real} NOT NULL, expires {real} NOT NULL,
        sent_at {real}, sent_term BIGINT, attempts INTEGER NOT NULL DEFAULT 0,
        done_at {real}, PRIMARY KEY (command_id, node_id))""",
    "CREATE INDEX IF NOT EXISTS commands_mesh_state ON commands (mesh_id, state, created)",
    "CREATE INDEX IF NOT EXISTS commands_node ON commands (node_id)",
    """CREATE TABLE IF NOT EXISTS results (
        command_id {blob} NOT NULL, node_id {blob} NOT NULL, result {blob} NOT NULL,
        summary TEXT NOT NULL, received {real} NOT NULL, PRIMARY KEY (command_id, node_id))""",
    """CREATE TABLE IF NOT EXISTS audit (
        audit_id {serial}, time {real} NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL,
        command_id {blob}, detail TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_command ON audit (command_id)",
)

COMMAND_COLUMNS = ("command_id, node_id, mesh_id, envelope, action, operator, state, created, "
                   "expires, sent_at, sent_term, attempts, done_at")
NODE_COLUMNS = "node_id, mesh_id, state, record, summary, last_seen, via_leader"
CHUNK = 400  # ids per IN (...) list, below every driver's parameter limit


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _command(row: Sequence[Any]) -> CommandRow:
    return CommandRow(bytes(row[0]), bytes(row[2]), bytes(row[1]), bytes(row[3]), row[4],
                      bytes(row[5]), CommandState(row[6]), row[7], row[8], row[9], row[10],
                      row[11], row[12])


def _node(row: Sequence[Any]) -> NodeRow:
    return NodeRow(bytes(row[0]), bytes(row[1]), row[2], _bytes(row[3]), json.loads(row[4]),
                   row[5], _bytes(row[6]))


def _has_tag(summary: dict[str, Any], tag: str) -> bool:
    tags = summary.get("tags") or {}
    key, sep, value = tag.partition("=")
    return key in tags and (not sep or str(tags[key]) == value)


def _close(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as exc:  # already broken: nothing more to release
            log.debug("db_close_failed", error=str(exc))


def _audit(tx: Transaction, entry: AuditEntry) -> int:
    row = tx.one("INSERT INTO audit (time, actor, event, command_id, detail) "
                 "VALUES (?, ?, ?, ?, ?) RETURNING audit_id",
                 (entry.time, entry.actor, entry.event, entry.command_id, _json(entry.detail)))
    log.event("audit", actor=entry.actor, audit_event=entry.event,
              command=entry.command_id.hex() if entry.command_id else "-")
    return int(row[0]) if row else 0


class Transaction:
    """A cursor that speaks ``?`` markers on any back end; lives inside one ``_run``."""

    def __init__(self, cursor: Any, rewrite: Callable[[str], str]) -> None:
        self._cursor = cursor
        self._rewrite = rewrite

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._rewrite(sql), tuple(params))
        return int(self._cursor.rowcount or 0)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            self._cursor.executemany(self._rewrite(sql), rows)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self._cursor.execute(self._rewrite(sql), tuple(params))
        return list(self._cursor.fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        self._cursor.execute(self._rewrite(sql), tuple(params))
        return self._cursor.fetchone()


class SqlDatabase(Database):
    """The shared implementation; subclasses connect and name their dialect."""

    blob_type = "BLOB"
    real_type = "DOUBLE PRECISION"
    serial_type = "INTEGER PRIMARY KEY AUTOINCREMENT"

    # Worker threads, each with its own connection. One for SQLite (a single writer
    # anyway); a few for PostgreSQL, so that commits wait on the disk together.
    workers = 1
    # Row locking for a SELECT that claims rows (take_deliverable) when workers > 1.
    claim_lock = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self._executor = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix=f"db-{self.url_scheme}")
        # One slot per worker: a connection, or None until the worker first needs one.
        self._slots: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.workers):
            self._slots.put(None)

    # --- what a back end supplies -------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection (called in a worker thread)."""

    @abc.abstractmethod
    def _begin(self, conn: Any, durable: bool) -> None:
        """Start a transaction on ``conn``. ``durable`` False: the caller can lose this
        transaction in a database crash without harm (it will be redone), so the back end
        may skip waiting for the disk at commit."""

    @abc.abstractmethod
    def _unavailable(self, exc: BaseException) -> bool:
        """True if ``exc`` means the database is down or unreachable (reconnect later)."""

    @abc.abstractmethod
    def _unique_violation(self, exc: BaseException) -> bool: ...

    def _rewrite(self, sql: str) -> str:
        return sql

    def describe(self) -> str:
        """The URL without credentials, for logs and errors."""
        return self.url.split("@")[-1] if "@" in self.url else self.url

    # --- the workers --------------------------------------------------------------

    def _transaction(self, work: Callable[[Transaction], T], durable: bool) -> T:
        conn = self._slots.get()  # never waits: there are as many slots as workers
        try:
            if conn is None:
                try:
                    conn = self._connect()
                except Exception as exc:
                    raise DatabaseUnavailable(
                        f"cannot open {self.url_scheme} database {self.describe()}: {exc}"
                    ) from exc
            try:
                self._begin(conn, durable)
                cursor = conn.cursor()
                try:
                    result = work(Transaction(cursor, self._rewrite))
                finally:
                    cursor.close()
                conn.commit()
                return result
            except Exception as exc:
                conn = self._rollback(conn)
                if isinstance(exc, DatabaseError):
                    raise
                if self._unavailable(exc):
                    conn = _close(conn)
                    raise DatabaseUnavailable(
                        f"{self.url_scheme} database {self.describe()} unavailable: "
                        f"{str(exc).strip()}") from exc
                raise
        finally:
            self._slots.put(conn)

    @staticmethod
    def _rollback(conn: Any) -> Any:
        """``conn`` rolled back, or None if that failed (the connection is what broke)."""
        try:
            conn.rollback()
        except Exception:
            return _close(conn)
        return conn

    async def _run(self, work: Callable[[Transaction], T], durable: bool = True) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work, durable)

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        ddl = [statement.format(blob=self.blob_type, real=self.real_type,
                                serial=self.serial_type) for statement in SCHEMA]

        def create(tx: Transaction) -> None:
            for statement in ddl:
                tx.execute(statement)

        await self._run(create)
        log.event("db_open", backend=self.url_scheme, url=self.describe())

    async def close(self) -> None:
        self._executor.shutdown(wait=True)  # lets running transactions finish
        for _ in range(self.workers):
            _close(self._slots.get_nowait())

    # --- meshes -------------------------------------------------------------------

    async def add_mesh(self, mesh_id: bytes, root_public: bytes, name: str, now: float) -> None:
        def work(tx: Transaction) -> None:
            row = tx.one("SELECT root_public FROM meshes WHERE mesh_id = ?", (mesh_id,))
            if row is None:
                tx.execute("INSERT INTO meshes (mesh_id, root_public, name, created) "
                           "VALUES (?, ?, ?, ?)", (mesh_id, root_public, name, now))
            elif bytes(row[0]) != root_public:
                raise DatabaseError(f"mesh {mesh_id.hex()} is registered with another root key")
            else:
                tx.execute("UPDATE meshes SET name = ? WHERE mesh_id = ?", (name, mesh_id))

        await self._run(work)

    async def meshes(self) -> list[MeshRow]:
        rows = await self._run(lambda tx: tx.all(
            "SELECT mesh_id, root_public, name, created FROM meshes ORDER BY name"))
        return [MeshRow(bytes(r[0]), bytes(r[1]), r[2], r[3]) for r in rows]

    async def set_document(self, mesh_id: bytes, kind: str, version: int, wire: bytes) -> None:
        # The version guard makes concurrent adoptions keep the newest.
        await self._run(lambda tx: tx.execute(
            "INSERT INTO trust_documents (mesh_id, kind, version, doc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (mesh_id, kind) DO UPDATE SET version = excluded.version, "
            "doc = excluded.doc WHERE excluded.version > trust_documents.version",
            (mesh_id, kind, version, wire)))

    async def documents(self) -> list[tuple[bytes, str, bytes]]:
        rows = await self._run(lambda tx: tx.all(
            "SELECT mesh_id, kind, doc FROM trust_documents ORDER BY mesh_id, kind"))
        return [(bytes(r[0]), r[1], bytes(r[2])) for r in rows]

    # --- leaders ------------------------------------------------------------------

    async def claim_leadership(self, mesh_id: bytes, node_id: bytes, term: int,
                               now: float) -> LeaderClaim:
        def work(tx: Transaction) -> LeaderClaim:
            row = tx.one("SELECT node_id, term, connected, since FROM leaders WHERE mesh_id = ?",
                         (mesh_id,))
            if row is not None:
                held = LeaderRow(mesh_id, bytes(row[0]), int(row[1]), bool(row[2]), row[3])
                if term < held.term or (term == held.term and node_id != held.node_id):
                    return LeaderClaim(False, held)
            tx.execute("INSERT INTO leaders (mesh_id, node_id, term, connected, since) "
                       "VALUES (?, ?, ?, 1, ?) ON CONFLICT (mesh_id) DO UPDATE SET "
                       "node_id = excluded.node_id, term = excluded.term, connected = 1, "
                       "since = excluded.since", (mesh_id, node_id, term, now))
            return LeaderClaim(True, LeaderRow(mesh_id, node_id, term, True, now))

        return await self._run(work)

    async def leader_disconnected(self, mesh_id: bytes, node_id: bytes, term: int,
                                  now: float) -> None:
        await self._run(lambda tx: tx.execute(
            "UPDATE leaders SET connected = 0, since = ? "
            "WHERE mesh_id = ? AND node_id = ? AND term = ?", (now, mesh_id, node_id, term)))

    async def leaders(self) -> list[LeaderRow]:
        rows = await self._run(lambda tx: tx.all(
            "SELECT mesh_id, node_id, term, connected, since FROM leaders ORDER BY mesh_id"))
        return [LeaderRow(bytes(r[0]), bytes(r[1]), int(r[2]), bool(r[3]), r[4]) for r in rows]

    # --- nodes --------------------------------------------------------------------

    async def apply_inventory(self, reports: Sequence[InventoryReport]) -> None:
        # Reports are written in segments that each start at a full report (its
        # "unreported" marking must precede its rows and follow earlier rows); within a
        # segment all rows go in two statements, so many small deltas cost two round trips.
        segments: list[list[InventoryReport]] = []
        for report in reports:
            if report.full or not segments:
                segments.append([])
            segments[-1].append(report)

        def work(tx: Transaction) -> None:
            for segment in segments:
                if segment[0].full:
                    tx.execute("UPDATE nodes SET state = 'unreported' WHERE mesh_id = ?",
                               (segment[0].mesh_id,))
                tx.executemany(
                    "INSERT INTO nodes (node_id, mesh_id, state, record, summary, search,"
                    " last_seen, via_leader) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (node_id) DO UPDATE SET mesh_id = excluded.mesh_id,"
                    " state = excluded.state, record = excluded.record,"
                    " summary = excluded.summary, search = excluded.search,"
                    " last_seen = excluded.last_seen, via_leader = excluded.via_leader",
                    [(u.node_id, r.mesh_id, u.state, u.record, _json(u.summary or {}),
                      _json(u.summary or {}).lower(), u.last_seen, r.via_leader)
                     for r in segment for u in r.updates if u.record is not None])
                # A state change for a node never reported with a record still gets a row,
                # so commands queued for it can find it.
                tx.executemany(
                    "INSERT INTO nodes (node_id, mesh_id, state, record, summary, search,"
                    " last_seen, via_leader) VALUES (?, ?, ?, NULL, '{}', '', ?, ?)"
                    " ON CONFLICT (node_id) DO UPDATE SET state = excluded.state,"
                    " last_seen = excluded.last_seen, via_leader = excluded.via_leader"
                    " WHERE nodes.mesh_id = excluded.mesh_id",
                    [(u.node_id, r.mesh_id, u.state, u.last_seen, r.via_leader)
                     for r in segment for u in r.updates if u.record is None])

        # Not durable: leaders send their full inventory again on every connect.
        await self._run(work, durable=False)

    async def node_states(self, mesh_id: bytes) -> dict[bytes, str]:
        rows = await self._run(lambda tx: tx.all(
            "SELECT node_id, state FROM nodes WHERE mesh_id = ?", (mesh_id,)))
        return {bytes(r[0]): r[1] for r in rows}

    async def node_counts(self) -> dict[bytes, dict[str, int]]:
        rows = await self._run(lambda tx: tx.all(
            "SELECT mesh_id, state, COUNT(*) FROM nodes GROUP BY mesh_id, state"))
        counts: dict[bytes, dict[str, int]] = {}
        for mesh_id, state, count in rows:
            counts.setdefault(bytes(mesh_id), {})[state] = int(count)
        return counts

    async def nodes(self, query: NodeFilter) -> list[NodeRow]:
        where, params = ["1 = 1"], []
        if query.mesh_id is not None:
            where.append("mesh_id = ?")
            params.append(query.mesh_id)
        if query.state:
            where.append("state = ?")
            params.append(query.state)
        if query.text:
            escaped = (query.text.lower().replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            where.append("search LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        sql = f"SELECT {NODE_COLUMNS} FROM nodes WHERE {' AND '.join(where)} ORDER BY node_id"
        if not query.tag:
            sql += f" LIMIT {int(query.limit)}"
        rows = [_node(r) for r in await self._run(lambda tx: tx.all(sql, params))]
        if query.tag:
            rows = [row for row in rows if _has_tag(row.summary, query.tag)][:query.limit]
        return rows

    async def node(self, node_id: bytes) -> NodeRow | None:
        row = await self._run(lambda tx: tx.one(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = ?", (node_id,)))
        return None if row is None else _node(row)

    # --- commands -----------------------------------------------------------------

    async def enqueue(self, commands: Sequence[NewCommand], audit: AuditEntry) -> None:
        def work(tx: Transaction) -> None:
            for c in commands:
                if tx.one("SELECT 1 FROM commands WHERE command_id = ? AND node_id = ?",
                          (c.command_id, c.node_id)):
                    raise DuplicateCommand(
                        f"command {c.command_id.hex()} for node {c.node_id.hex()} exists")
            tx.executemany(
                f"INSERT INTO commands ({COMMAND_COLUMNS}) "
                f"VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, NULL, NULL, 0, NULL)",
                [(c.command_id, c.node_id, c.mesh_id, c.envelope, c.action, c.operator,
                  c.created, c.expires) for c in commands])
            _audit(tx, audit)

        try:
            await self._run(work)
        except DatabaseError:
            raise
        except Exception as exc:
            if self._unique_violation(exc):  # a concurrent submission of the same id
                raise DuplicateCommand(str(exc)) from exc
            raise

    async def take_deliverable(self, mesh_id: bytes, term: int, now: float,
                               node_ids: Iterable[bytes] | None = None,
                               limit: int = 500) -> list[CommandRow]:
        states = _marks(len(DELIVERABLE_STATES))
        base = (f"SELECT {', '.join('c.' + c for c in COMMAND_COLUMNS.split(', '))} "
                f"FROM commands c JOIN nodes n ON n.node_id = c.node_id "
                f"WHERE c.mesh_id = ? AND c.state = 'queued' AND c.expires > ? "
                f"AND n.state IN ({states})")
        params: list[Any] = [mesh_id, now, *DELIVERABLE_STATES]
        targets = None if node_ids is None else list(node_ids)

        def work(tx: Transaction) -> list[CommandRow]:
            rows: list[Sequence[Any]] = []
            if targets is None:
                rows = tx.all(f"{base} ORDER BY c.created LIMIT {int(limit)}{self.claim_lock}",
                              params)
            else:
                for chunk in _chunks(targets):
                    rows += tx.all(f"{base} AND c.node_id IN ({_marks(len(chunk))}) "
                                   f"ORDER BY c.created LIMIT {int(limit)}{self.claim_lock}",
                                   [*params, *chunk])
                rows = sorted(rows, key=lambda r: r[7])[:limit]
            tx.executemany("UPDATE commands SET state = 'sent', sent_at = ?, sent_term = ?, "
                           "attempts = attempts + 1 WHERE command_id = ? AND node_id = ?",
                           [(now, term, r[0], r[1]) for r in rows])
            return [_command(r) for r in rows]

        # Not durable: a "sent" mark lost in a crash leaves the command queued, and it is
        # delivered again, which agents make harmless (they run an id once).
        taken = await self._run(work, durable=False)
        return [CommandRow(**{**c.__dict__, "state": CommandState.SENT, "sent_at": now,
                              "sent_term": term, "attempts": c.attempts + 1}) for c in taken]

    async def requeue(self, mesh_id: bytes, keys: Iterable[tuple[bytes, bytes]] | None = None
                      ) -> int:
        pairs = None if keys is None else list(keys)

        def work(tx: Transaction) -> int:
            if pairs is None:
                return tx.execute("UPDATE commands SET state = 'queued' "
                                  "WHERE mesh_id = ? AND state = 'sent'", (mesh_id,))
            return sum(tx.execute("UPDATE commands SET state = 'queued' WHERE mesh_id = ? "
                                  "AND command_id = ? AND node_id = ? AND state = 'sent'",
                                  (mesh_id, command_id, node_id))
                       for command_id, node_id in pairs)

        return await self._run(work)

    async def store_results(self, results: Sequence[ResultRow]) -> list[bool]:
        def work(tx: Transaction) -> list[bool]:
            stored = []
            for r in results:
                known = tx.one("SELECT 1 FROM commands WHERE command_id = ? AND node_id = ?",
                               (r.command_id, r.node_id))
                # Insert-or-nothing decides which copy is first, also between workers.
                fresh = known is not None and tx.one(
                    "INSERT INTO results (command_id, node_id, result, summary, received)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (command_id, node_id) DO NOTHING"
                    " RETURNING command_id",
                    (r.command_id, r.node_id, r.result, _json(r.summary), r.received))
                if not fresh:
                    stored.append(False)
                    continue
                tx.execute("UPDATE commands SET state = 'done', done_at = ? "
                           "WHERE command_id = ? AND node_id = ?",
                           (r.received, r.command_id, r.node_id))
                _audit(tx, AuditEntry(f"node:{r.node_id.hex()}", "command_done", r.command_id,
                                      {"node": r.node_id.hex(),
                                       "status": r.summary.get("status")}, r.received))
                stored.append(True)
            return stored

        return await self._run(work)

    async def expire_due(self, now: float) -> list[CommandRow]:
        condition = ("(state = 'queued' AND expires <= ?) OR "
                     "(state = 'sent' AND expires + ? <= ?)")
        params = (now, SENT_GRACE_S, now)

        def work(tx: Transaction) -> list[CommandRow]:
            rows = tx.all(f"SELECT {COMMAND_COLUMNS} FROM commands WHERE {condition}", params)
            if rows:
                tx.execute(f"UPDATE commands SET state = 'expired' WHERE {condition}", params)
            return [_command(r) for r in rows]

        expired = await self._run(work)
        return [CommandRow(**{**c.__dict__, "state": CommandState.EXPIRED}) for c in expired]

    async def commands(self, command_id: bytes | None = None, state: str | None = None,
                       node_id: bytes | None = None, limit: int = 200) -> list[CommandRow]:
        where, params = ["1 = 1"], []
        for column, value in (("command_id", command_id), ("state", state),
                              ("node_id", node_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = (f"SELECT {COMMAND_COLUMNS} FROM commands WHERE {' AND '.join(where)} "
               f"ORDER BY created DESC LIMIT {int(limit)}")
        return [_command(r) for r in await self._run(lambda tx: tx.all(sql, params))]

    async def results(self, command_id: bytes | None = None, node_id: bytes | None = None,
                      limit: int = 200) -> list[ResultRow]:
        where, params = ["1 = 1"], []
        for column, value in (("command_id", command_id), ("node_id", node_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = (f"SELECT command_id, node_id, result, summary, received FROM results "
               f"WHERE {' AND '.join(where)} ORDER BY received DESC LIMIT {int(limit)}")
        rows = await self._run(lambda tx: tx.all(sql, params))
        return [ResultRow(bytes(r[0]), bytes(r[1]), bytes(r[2]), json.loads(r[3]), r[4])
                for r in rows]

    # --- audit --------------------------------------------------------------------

    async def audit(self, actor: str, event: str, command_id: bytes | None,
                    detail: dict[str, Any], now: float) -> int:
        return await self._run(
            lambda tx: _audit(tx, AuditEntry(actor, event, command_id, detail, now)))

    async def audit_log(self, after_id: int = 0, command_id: bytes | None = None,
                        limit: int = 200) -> list[AuditRow]:
        where, params = ["audit_id > ?"], [after_id]
        if command_id is not None:
            where.append("command_id = ?")
            params.append(command_id)
        sql = (f"SELECT audit_id, time, actor, event, command_id, detail FROM audit "
               f"WHERE {' AND '.join(where)} ORDER BY audit_id DESC LIMIT {int(limit)}")
        rows = await self._run(lambda tx: tx.all(sql, params))
        return [AuditRow(int(r[0]), r[1], r[2], r[3], _bytes(r[4]), json.loads(r[5]))
                for r in rows]
