"""The web service's storage contract: rows, errors and the ``Database`` interface.

One interface, two back ends (``sqlite.py``, ``postgres.py``) that share every query
(``sql.py``) and pass the same tests. Every method is one transaction: it either
happens whole or raises. Nothing is acknowledged to a leader or to the console before
the method that stores it has returned, which is what "nothing is lost" rests on.

Identifiers (mesh, node, command ids) are raw bytes here; the REST layer shows them as
hex. Times are UNIX seconds (float).

Command states, per (command id, target node)::

    queued --(handed to the mesh's leader)--> sent --(signed result stored)--> done
       \\                                        |
        `---(expiry passed first)--> expired <--'  (sent, no result, expiry + grace)

``sent`` goes back to ``queued`` when the leader that had it is gone (its session ends)
or reports the target unreachable; the target's agent refuses a second execution by id,
so re-delivery is safe, and the first result stored wins.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshagent.errors import MeshError

__all__ = [
    "AuditEntry", "AuditRow", "CommandRow", "CommandState", "Database", "DatabaseError",
    "DatabaseUnavailable", "DELIVERABLE_STATES", "DuplicateCommand", "InventoryReport",
    "LeaderClaim",
    "LeaderRow", "MeshRow", "NodeFilter", "NodeRow", "NodeUpdate", "NewCommand",
    "ResultRow", "SENT_GRACE_S",
]

# Node states (membership's MemberState names, lower case) in which a target is sent its
# queued commands. Others (asleep, off, unreachable, left) keep them queued.
DELIVERABLE_STATES = ("alive", "suspect")

# A command handed to a leader but without a result is expired this long after its own
# expiry: the agent refuses it by then, and a late result is still stored if it comes.
SENT_GRACE_S = 30.0


class DatabaseError(MeshError):
    """A storage operation failed."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or opened; the message says which and why."""


class DuplicateCommand(DatabaseError):
    """A command id was submitted before."""


class CommandState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    EXPIRED = "expired"


@dataclass(frozen=True)
class MeshRow:
    mesh_id: bytes
    root_public: bytes
    name: str
    created: float


@dataclass(frozen=True)
class LeaderRow:
    mesh_id: bytes
    node_id: bytes
    term: int
    connected: bool
    since: float


@dataclass(frozen=True)
class LeaderClaim:
    """The answer to a leader asking to hold its mesh's uplink at ``term``."""

    accepted: bool
    holder: LeaderRow  # the leader of record after the claim (the claimant if accepted)


@dataclass(frozen=True)
class NodeUpdate:
    """One node as a leader reports it. ``record`` is the node's signed record (already
    verified by the caller), or None to keep the stored one; ``summary`` is its decoded
    fields for display and search."""

    node_id: bytes
    state: str
    last_seen: float
    record: bytes | None = None
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class InventoryReport:
    """One inventory message of a leader."""

    mesh_id: bytes
    via_leader: bytes
    updates: Sequence[NodeUpdate]
    full: bool = False


@dataclass(frozen=True)
class NodeRow:
    node_id: bytes
    mesh_id: bytes
    state: str
    record: bytes | None
    summary: dict[str, Any]
    last_seen: float
    via_leader: bytes | None


@dataclass(frozen=True)
class NodeFilter:
    mesh_id: bytes | None = None
    state: str | None = None
    tag: str | None = None        # "key" or "key=value"
    text: str | None = None       # case-insensitive substring of the record's fields
    limit: int = 1000


@dataclass(frozen=True)
class NewCommand:
    """A verified command for one target node, as submitted."""

    command_id: bytes
    mesh_id: bytes
    node_id: bytes
    envelope: bytes
    action: str
    operator: bytes
    created: float
    expires: float


@dataclass(frozen=True)
class CommandRow:
    command_id: bytes
    mesh_id: bytes
    node_id: bytes
    envelope: bytes
    action: str
    operator: bytes
    state: CommandState
    created: float
    expires: float
    sent_at: float | None
    sent_term: int | None
    attempts: int
    done_at: float | None


@dataclass(frozen=True)
class ResultRow:
    command_id: bytes
    node_id: bytes
    result: bytes
    summary: dict[str, Any]
    received: float


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    event: str
    command_id: bytes | None
    detail: dict[str, Any]
    time: float


@dataclass(frozen=True)
class AuditRow:
    audit_id: int
    time: float
    actor: str
    event: str
    command_id: bytes | None
    detail: dict[str, Any] = field(default_factory=dict)


class Database(abc.ABC):
    """Storage for meshes, leaders, nodes, commands, results and the audit log."""

    url_scheme: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if missing; DatabaseUnavailable if unreachable."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # meshes
    @abc.abstractmethod
    async def add_mesh(self, mesh_id: bytes, root_public: bytes, name: str, now: float) -> None:
        """Register (or rename) a mesh; its root key cannot change once registered."""

    @abc.abstractmethod
    async def meshes(self) -> list[MeshRow]: ...

    @abc.abstractmethod
    async def set_document(self, mesh_id: bytes, kind: str, version: int, wire: bytes) -> None:
        """Keep a root-signed document (already verified) unless one of the same kind at
        this or a higher version is stored."""

    @abc.abstractmethod
    async def documents(self) -> list[tuple[bytes, str, bytes]]:
        """(mesh id, kind, wire) of every stored root-signed document."""

    # leaders
    @abc.abstractmethod
    async def claim_leadership(self, mesh_id: bytes, node_id: bytes, term: int,
                               now: float) -> LeaderClaim:
        """Fencing: accepted iff ``term`` is above the stored one, or equal with the same
        node (a reconnect). The stored term never goes down, across restarts too."""

    @abc.abstractmethod
    async def leader_disconnected(self, mesh_id: bytes, node_id: bytes, term: int,
                                  now: float) -> None:
        """Mark the leader of record offline if it is still (node_id, term)."""

    @abc.abstractmethod
    async def leaders(self) -> list[LeaderRow]: ...

    # nodes
    @abc.abstractmethod
    async def apply_inventory(self, reports: Sequence[InventoryReport]) -> None:
        """Store leaders' reports of node states and records, in order, in one
        transaction. A ``full`` report starts a complete listing: nodes of its mesh not
        in it (nor in later reports) become "unreported"."""

    @abc.abstractmethod
    async def node_states(self, mesh_id: bytes) -> dict[bytes, str]: ...

    @abc.abstractmethod
    async def node_counts(self) -> dict[bytes, dict[str, int]]:
        """Per mesh, how many nodes are in each state."""

    @abc.abstractmethod
    async def nodes(self, query: NodeFilter) -> list[NodeRow]: ...

    @abc.abstractmethod
    async def node(self, node_id: bytes) -> NodeRow | None: ...

    # commands
    @abc.abstractmethod
    async def enqueue(self, commands: Sequence[NewCommand], audit: AuditEntry) -> None:
        """Queue all or nothing, with the submission's audit entry in the same
        transaction; DuplicateCommand if any (id, node) exists."""

    @abc.abstractmethod
    async def take_deliverable(self, mesh_id: bytes, term: int, now: float,
                               node_ids: Iterable[bytes] | None = None,
                               limit: int = 500) -> list[CommandRow]:
        """Queued, unexpired commands whose target is in a deliverable state (among
        ``node_ids`` if given), marked sent under ``term``, oldest first."""

    @abc.abstractmethod
    async def requeue(self, mesh_id: bytes, keys: Iterable[tuple[bytes, bytes]] | None = None
                      ) -> int:
        """Sent commands back to queued: the given (command id, node id) keys, or every
        sent command of the mesh (its leader session ended). Returns how many."""

    @abc.abstractmethod
    async def store_results(self, results: Sequence[ResultRow]) -> list[bool]:
        """Store verified results (first one wins), mark their commands done and audit
        each as "command_done" by its node, in one transaction. Per result: True if
        stored now, False if a result was already there or no such command exists."""

    @abc.abstractmethod
    async def expire_due(self, now: float) -> list[CommandRow]:
        """Expire queued commands past expiry, and sent ones past expiry + grace."""

    @abc.abstractmethod
    async def commands(self, command_id: bytes | None = None, state: str | None = None,
                       node_id: bytes | None = None, limit: int = 200) -> list[CommandRow]: ...

    @abc.abstractmethod
    async def results(self, command_id: bytes | None = None, node_id: bytes | None = None,
                      limit: int = 200) -> list[ResultRow]: ...

    # audit
    @abc.abstractmethod
    async def audit(self, actor: str, event: str, command_id: bytes | None,
                    detail: dict[str, Any], now: float) -> int: ...

    @abc.abstractmethod
    async def audit_log(self, after_id: int = 0, command_id: bytes | None = None,
                        limit: int = 200) -> list[AuditRow]:
        """Newest first; ``after_id`` keeps only entries newer than it."""
