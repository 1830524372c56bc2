"""Checking what a leader reports about the nodes behind it, and showing it.

A leader relays node records; it cannot vouch for them. Each record must pass the same
acceptance check every member applies (``meshagent.record.RecordVerifier``: the node's
membership certificate from the mesh root, the node's own signature) and be filed under
the node id it names, so a leader can neither invent nodes nor alter another node's
record. The verifier caches by exact bytes, so a record is checked once however often
a leader re-sends it.

``display_value`` bounds and JSON-shapes anything shown to the console (record fields,
result outputs).
"""

from __future__ import annotations

from typing import Any

from meshagent.identity import MeshTrust, RevocationList
from meshagent.record import RecordError, RecordVerifier

__all__ = ["MeshRecords", "RecordRefused", "display_value"]

MAX_DISPLAY_TEXT = 4096


class RecordRefused(RecordError):
    """A record filed under another node id than the one it names."""


def display_value(value: Any, depth: int = 0) -> Any:
    """``value`` made JSON-safe and bounded for display: bytes as hex, long text cut."""
    if isinstance(value, bytes):
        return value[:MAX_DISPLAY_TEXT // 2].hex()
    if isinstance(value, str):
        return value[:MAX_DISPLAY_TEXT]
    if isinstance(value, dict) and depth < 4:
        return {str(k): display_value(v, depth + 1) for k, v in list(value.items())[:256]}
    if isinstance(value, (list, tuple)) and depth < 4:
        return [display_value(v, depth + 1) for v in value[:256]]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)[:MAX_DISPLAY_TEXT]


class MeshRecords:
    """One ``RecordVerifier`` per served mesh."""

    def __init__(self) -> None:
        self._verifiers: dict[bytes, RecordVerifier] = {}

    def summary(self, wire: bytes, node_id: bytes, trust: MeshTrust,
                revocations: RevocationList | None = None) -> dict[str, Any]:
        """The record's fields for display and search; RecordError if it is refused
        (including a node whose certificate is revoked)."""
        verifier = self._verifiers.get(trust.mesh_id)
        if verifier is None:
            verifier = self._verifiers[trust.mesh_id] = RecordVerifier(trust)
        record = verifier.verify(wire, revocations)
        if record.node_id != node_id:
            raise RecordRefused(f"record of {record.node_id.hex()} filed under {node_id.hex()}")
        summary = record.to_dict()
        summary.pop("node_id", None)
        return summary
