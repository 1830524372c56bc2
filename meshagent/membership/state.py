"""What a node believes about one member, and the public view of it.

``MemberState``: ALIVE (answers probes), SUSPECT (missed probes; may still refute),
UNREACHABLE (suspicion expired, or its agent crashed: its port refused us), LEFT (it said
goodbye), ASLEEP / OFF (the AMT bridge confirmed the machine sleeps or is off; its agent
is silent on purpose). ``Member`` is an immutable snapshot handed to callers;
``MemberChange`` is one state transition, delivered to ``on_change`` callbacks and the
``changes()`` iterator.

Precedence between claims about the same incarnation follows SWIM: a higher incarnation
always wins; at equal incarnation UNREACHABLE/LEFT > SUSPECT > ALIVE. Only the member
itself can raise its incarnation (its record is signed), which is how it refutes.
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from meshagent.record import NodeRecord
from meshagent.transport import Address

__all__ = ["MemberState", "Member", "MemberChange", "MemberEntry", "SampleSet",
           "ViewDigest"]


class MemberState(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    UNREACHABLE = "unreachable"
    LEFT = "left"
    ASLEEP = "asleep"
    OFF = "off"

    @property
    def probed(self) -> bool:
        """States whose members we still ping."""
        return self in (MemberState.ALIVE, MemberState.SUSPECT)

    @property
    def gone(self) -> bool:
        return self in (MemberState.UNREACHABLE, MemberState.LEFT)

    @property
    def settled(self) -> bool:
        """States a member keeps until news of it (counted in the view digest)."""
        return not self.probed


@dataclass(frozen=True)
class Member:
    node_id: bytes
    state: MemberState
    record: NodeRecord
    address: Address
    last_seen: float
    incarnation: int
    state_since: float
    is_self: bool = False
    power_record: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id.hex(), "state": self.state.value,
                "address": f"{self.address[0]}:{self.address[1]}",
                "last_seen": self.last_seen, "incarnation": self.incarnation,
                "state_since": self.state_since, "self": self.is_self,
                "record": self.record.to_dict()}


@dataclass(frozen=True)
class MemberChange:
    member: Member
    old_state: MemberState | None
    new_state: MemberState


@dataclass(slots=True)
class MemberEntry:
    """The mutable row of the member table (owned by ``Membership``).

    ``snapshot`` is remembered until a field changes: listeners (election, sessions) read
    the whole view on every change, so during a join the same rows are read O(n) times
    each. Until ``grace_until`` (event-loop time) our own failed probes of the member do
    not make it suspect (``Profile.probe_grace_s``)."""

    record: NodeRecord
    address: Address
    state: MemberState
    state_since: float
    state_incarnation: int = 0
    last_seen: float = 0.0
    suspicion: Any = None
    timer: Any = None
    power_record: Any = None
    grace_until: float = 0.0
    _member: Member | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name != "_member":
            object.__setattr__(self, "_member", None)

    @property
    def node_id(self) -> bytes:
        return self.record.node_id

    def snapshot(self, is_self: bool = False) -> Member:
        member = self._member
        if member is None or member.is_self != is_self:
            member = Member(self.record.node_id, self.state, self.record, self.address,
                            self.last_seen, self.state_incarnation, self.state_since,
                            is_self, self.power_record)
            self._member = member
        return member


class SampleSet:
    """Node ids with O(1) add, discard and uniform random sampling (probe helpers and
    gossip targets are drawn from the live members every few milliseconds)."""

    def __init__(self) -> None:
        self._items: list[bytes] = []
        self._index: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: bytes) -> bool:
        return item in self._index

    def add(self, item: bytes) -> None:
        if item not in self._index:
            self._index[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: bytes) -> None:
        index = self._index.pop(item, None)
        if index is None:
            return
        last = self._items.pop()
        if index < len(self._items):
            self._items[index] = last
            self._index[last] = index

    def sample(self, rng: random.Random, count: int, exclude: Collection[bytes | None],
               ) -> list[bytes]:
        wanted = min(len(self._items), count + len(exclude))
        picked = [item for item in rng.sample(self._items, wanted) if item not in exclude]
        return picked[:count]


class ViewDigest:
    """A summary of what a node believes: the count of records it holds and the XOR of an
    8-byte hash of each (node id, incarnation), of each settled state (node id,
    UNREACHABLE/LEFT/ASLEEP/OFF) and of each root-signed document version held. Two nodes
    with the same records, settled members and documents have the same digest, so a state
    that gossip failed to deliver (an ASLEEP claim one member never heard, at the
    incarnation it already holds; a revocation list whose news it missed) is repaired
    like a missing record. ALIVE and SUSPECT are not in it: suspicion is transient and settles.
    Updating it costs one hash per change. ``changed_at`` is when it last moved,
    ``count_changed_at`` when the number of records last did."""

    def __init__(self) -> None:
        self.count = 0
        self._xor = 0
        self.changed_at = 0.0
        self.count_changed_at = 0.0

    @staticmethod
    def _hash(node_id: bytes, incarnation: int) -> int:
        material = node_id + incarnation.to_bytes(8, "big")
        return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big")

    def add(self, node_id: bytes, incarnation: int, now: float) -> None:
        self.count += 1
        self._xor ^= self._hash(node_id, incarnation)
        self.changed_at = self.count_changed_at = now

    def remove(self, node_id: bytes, incarnation: int, now: float) -> None:
        self.count -= 1
        self._xor ^= self._hash(node_id, incarnation)
        self.changed_at = self.count_changed_at = now

    def replace(self, node_id: bytes, old: int, new: int, now: float) -> None:
        """A member's newer record: the count stays."""
        self._xor ^= self._hash(node_id, old) ^ self._hash(node_id, new)
        self.changed_at = now

    def toggle_document(self, kind: str, version: int, now: float) -> None:
        """Add a held root-signed document's version, or remove it: two members holding
        different versions differ, so the repair's state exchange (which carries the
        documents) brings the older one up to date."""
        material = kind.encode() + b"\0" + version.to_bytes(8, "big")
        self._xor ^= int.from_bytes(
            hashlib.blake2b(material, digest_size=8, person=b"document").digest(), "big")
        self.changed_at = now

    def toggle_state(self, node_id: bytes, state: MemberState, now: float) -> None:
        """Add a member's settled state, or remove it (XOR is its own inverse)."""
        material = node_id + state.value.encode()
        self._xor ^= int.from_bytes(
            hashlib.blake2b(material, digest_size=8, person=b"settled").digest(), "big")
        self.changed_at = now

    @property
    def value(self) -> bytes:
        return self._xor.to_bytes(8, "big")
