"""The mesh's allowlist: which actions agents accept, and which scripts, by SHA-256.

Signed by the mesh root (kind ``"allowlist"``) and versioned: an agent holding version N
replaces it only with a valid list of a higher version, so an old, wider list cannot be
replayed to widen what runs. A script is approved by the SHA-256 of its exact bytes (the
content travels in the command's ``args["content"]``); the name is for people.

``build_allowlist`` is what the console CLI and the web service call to make a new one;
they ship ``allowlist.signed.to_wire()``.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshagent.commands.rejections import NotAllowlisted
from meshagent.errors import ConfigError, DecodeError, MeshError
from meshagent.identity import MeshRoot, MeshTrust
from meshagent.identity.errors import IdentityFileError
from meshagent.identity.files import read_document, write_document
from meshagent.signing import SignatureError, Signed, sign, verify

__all__ = ["Allowlist", "AllowlistError", "build_allowlist", "script_hash", "SCRIPT_ACTION",
           "ALLOWLIST_KIND"]

ALLOWLIST_KIND = "allowlist"
SCRIPT_ACTION = "script"
SHA256_BYTES = 32
_FILE_TYPE = "allowlist"
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class AllowlistError(MeshError):
    """An allowlist that is not the root's, is for another mesh, or does not parse."""

    reason = "allowlist_invalid"


def script_hash(content: bytes) -> bytes:
    """The SHA-256 of a script's exact bytes, the key it is approved under."""
    return hashlib.sha256(content).digest()


@dataclass(frozen=True)
class Allowlist:
    """Accepted actions and approved scripts (SHA-256 -> name) of one mesh, at a version."""

    mesh_id: bytes
    version: int
    actions: frozenset[str]
    scripts: Mapping[bytes, str]
    issued: float
    signed: Signed = field(compare=False, repr=False)

    def check(self, action: str, args: Mapping[str, Any]) -> None:
        """Raise NotAllowlisted unless ``action`` (and for scripts, the content) is approved."""
        if action not in self.actions:
            raise NotAllowlisted(f"action {action!r} is not on allowlist v{self.version}")
        if action == SCRIPT_ACTION:
            content = args.get("content")
            if not isinstance(content, bytes):
                raise NotAllowlisted("script command carries no script content")
            if script_hash(content) not in self.scripts:
                raise NotAllowlisted(f"script {script_hash(content).hex()} is not on "
                                     f"allowlist v{self.version}")

    def newer(self, other: Allowlist | None) -> Allowlist:
        """The one to keep of ``self`` (a candidate) and ``other`` (held): the higher
        version; on a tie the held one, so a list is never swapped for another of its
        own version."""
        return self if other is None or self.version > other.version else other

    def to_wire(self) -> bytes:
        return self.signed.to_wire()

    def save(self, path: str | os.PathLike[str]) -> None:
        write_document(path, _FILE_TYPE, {"doc": self.to_wire()}, private=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], trust: MeshTrust | None = None) -> Allowlist:
        """Read an allowlist file; verified against ``trust`` when given, else only parsed."""
        doc = read_document(path, _FILE_TYPE).get("doc")
        if not isinstance(doc, bytes):
            raise IdentityFileError(f"{path}: allowlist missing")
        if trust is not None:
            return cls.verify(doc, trust)
        try:
            return cls.from_signed(Signed.from_wire(doc))
        except DecodeError as exc:
            raise AllowlistError(f"{path}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly view for tables and ``--json`` output."""
        return {"mesh_id": self.mesh_id.hex(), "version": self.version,
                "issued": self.issued, "actions": sorted(self.actions),
                "scripts": [{"name": name, "sha256": digest.hex()}
                            for digest, name in sorted(self.scripts.items(),
                                                       key=lambda item: item[1])]}

    @classmethod
    def from_signed(cls, signed: Signed) -> Allowlist:
        """Parse the body WITHOUT checking the signature (for display)."""
        try:
            body = signed.value()
            result = cls(body["mesh"], body["version"], frozenset(body["actions"]),
                         dict(body["scripts"]), float(body["issued"]), signed)
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise AllowlistError(f"allowlist does not parse: {exc}") from exc
        if not (isinstance(result.mesh_id, bytes) and isinstance(result.version, int)
                and all(isinstance(a, str) for a in result.actions)
                and all(isinstance(h, bytes) and len(h) == SHA256_BYTES
                        and isinstance(n, str) for h, n in result.scripts.items())):
            raise AllowlistError("allowlist fields have the wrong types")
        return result

    @classmethod
    def verify(cls, signed: Signed | bytes, trust: MeshTrust) -> Allowlist:
        """Check the root's signature and the mesh; AllowlistError otherwise."""
        try:
            if isinstance(signed, bytes):
                signed = Signed.from_wire(signed)
            verify(signed, ALLOWLIST_KIND, trust.root_public)
        except (SignatureError, DecodeError) as exc:
            raise AllowlistError(f"allowlist not signed by this mesh's root: {exc}") from exc
        result = cls.from_signed(signed)
        if result.mesh_id != trust.mesh_id:
            raise AllowlistError("allowlist is for another mesh")
        return result


def build_allowlist(root: MeshRoot, actions: Iterable[str],
                    scripts: Mapping[str, bytes] | None = None,
                    previous: Allowlist | None = None, version: int | None = None,
                    now: float | None = None) -> Allowlist:
    """Sign a new allowlist. ``scripts`` maps a name to the script's bytes.

    The version is ``version`` if given, else one above ``previous`` (else 1); it must be
    above ``previous``'s, since agents ignore anything not newer than what they hold.
    """
    action_set = frozenset(actions)
    for action in action_set:
        if not _ACTION_RE.match(action):
            raise ConfigError(f"allowlist: malformed action name {action!r}")
    approved = {script_hash(content): name for name, content in (scripts or {}).items()}
    if approved and SCRIPT_ACTION not in action_set:
        raise ConfigError(f"allowlist: approved scripts need the {SCRIPT_ACTION!r} action")
    floor = previous.version if previous else 0
    version = floor + 1 if version is None else version
    if version <= floor:
        raise ConfigError(f"allowlist: version {version} is not above {floor}")
    now = time.time() if now is None else now
    body = {"mesh": root.mesh_id, "version": version, "actions": sorted(action_set),
            "scripts": approved, "issued": float(now)}
    return Allowlist.from_signed(sign(root.key, ALLOWLIST_KIND, body))
