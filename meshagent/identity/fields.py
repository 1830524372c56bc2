"""Checked access to the fields of decoded documents (bodies come from outside)."""

from __future__ import annotations

from typing import Any, TypeVar

from meshagent.errors import MeshError

__all__ = ["require", "require_roles", "MAX_ROLES", "MAX_ROLE_CHARS", "MAX_HOSTNAME_CHARS"]

T = TypeVar("T")

MAX_ROLES = 32
MAX_ROLE_CHARS = 64
MAX_HOSTNAME_CHARS = 255


def require(body: Any, key: str, kind: type[T], error: type[MeshError], *,
            size: int | None = None) -> T:
    """``body[key]`` if it is a ``kind`` (of length ``size`` for bytes), else ``error``."""
    if not isinstance(body, dict):
        raise error("document body is not a map")
    value = body.get(key)
    # bool is an int subclass; a flag is never a valid integer field.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise error(f"field {key!r} missing or not {kind.__name__}")
    if size is not None and len(value) != size:  # type: ignore[arg-type]
        raise error(f"field {key!r} must be {size} bytes")
    return value


def require_roles(roles: Any, error: type[MeshError]) -> tuple[str, ...]:
    """A bounded list of non-empty role names, returned sorted and without duplicates."""
    if not isinstance(roles, (list, tuple)) or len(roles) > MAX_ROLES:
        raise error(f"roles must be a list of at most {MAX_ROLES} names")
    for role in roles:
        if not isinstance(role, str) or not 0 < len(role) <= MAX_ROLE_CHARS:
            raise error(f"invalid role name {role!r}")
    return tuple(sorted(set(roles)))
