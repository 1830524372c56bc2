"""Typed errors of the core, and the one place C status codes become exceptions.

Every failing C call returns a ``MESH_ERR_*`` code (``csrc/wire.h``); ``ensure(rc)`` raises
the matching class. The pure-Python twin raises the same classes directly, so callers and
tests see identical errors from either backend.
"""

from __future__ import annotations

from meshagent.core._native import lib
from meshagent.errors import DecodeError, MeshError

__all__ = [
    "AuthenticationError", "CoreError", "CryptoFailure", "FrameError", "FrameMalformed",
    "FrameOversize", "FrameTruncated", "FrameVersionError", "InvalidArgument", "RekeyRequired",
    "ReplayError", "RouteTableFull", "TunnelClosed", "WeakPublicKey", "ensure", "error_for",
]


class CoreError(MeshError):
    """Base of every error of meshagent.core."""


class InvalidArgument(CoreError, ValueError):
    """A caller passed a wrong length, type or field value (a bug on our side, not input)."""


class FrameError(CoreError, DecodeError):
    """Bytes from outside are not a valid frame or record."""


class FrameTruncated(FrameError):
    """The input ends inside a frame or record."""


class FrameOversize(FrameError):
    """A length field is above MAX_FRAME_PAYLOAD."""


class FrameVersionError(FrameError):
    """The frame carries a version this build does not speak."""


class FrameMalformed(FrameError):
    """A reserved field is set (for example frame type 0): garbage, not a frame."""


class AuthenticationError(CoreError):
    """An AES-GCM tag did not verify: the data or its header was changed, or the key is wrong."""


class ReplayError(CoreError):
    """A record's counter was already accepted or fell behind the replay window."""


class RekeyRequired(CoreError):
    """The session reached its message or time limit: run a new handshake."""


class RouteTableFull(CoreError):
    """The route table holds its capacity."""


class TunnelClosed(CoreError):
    """The tunnel was closed and its keys wiped."""


class WeakPublicKey(CoreError):
    """An X25519 peer key of small order: the agreement would give an all-zero secret."""


class CryptoFailure(CoreError):
    """OpenSSL failed for a reason other than a bad tag (out of memory, broken library)."""


_BY_STATUS: dict[int, type[CoreError]] = {
    lib.MESH_ERR_ARGUMENT: InvalidArgument,
    lib.MESH_ERR_TRUNCATED: FrameTruncated,
    lib.MESH_ERR_OVERSIZE: FrameOversize,
    lib.MESH_ERR_VERSION: FrameVersionError,
    lib.MESH_ERR_MALFORMED: FrameMalformed,
    lib.MESH_ERR_AUTH: AuthenticationError,
    lib.MESH_ERR_REPLAY: ReplayError,
    lib.MESH_ERR_REKEY: RekeyRequired,
    lib.MESH_ERR_CRYPTO: CryptoFailure,
    lib.MESH_ERR_NOMEM: CryptoFailure,
    lib.MESH_ERR_TABLE_FULL: RouteTableFull,
    lib.MESH_ERR_WEAK_KEY: WeakPublicKey,
}

_MESSAGES: dict[type[CoreError], str] = {
    InvalidArgument: "invalid argument",
    FrameTruncated: "input ends inside a frame",
    FrameOversize: f"frame length above {lib.MESH_MAX_FRAME_PAYLOAD} bytes",
    FrameVersionError: "unknown frame version",
    FrameMalformed: "malformed frame header",
    AuthenticationError: "authentication tag does not verify",
    ReplayError: "counter replayed or behind the replay window",
    RekeyRequired: "session send limit reached: rekey",
    CryptoFailure: "OpenSSL failure",
    RouteTableFull: "route table full",
    WeakPublicKey: "X25519 peer key of small order",
}


def error_for(status: int, detail: str = "") -> CoreError:
    """The exception for a C status code (an unknown or capacity code is a CoreError)."""
    cls = _BY_STATUS.get(status, CoreError)
    message = _MESSAGES.get(cls, f"core status {status}")
    return cls(f"{message}: {detail}" if detail else message)


def ensure(status: int, detail: str = "") -> None:
    """Raise the typed error for a failing C status; return for MESH_OK."""
    if status != lib.MESH_OK:
        raise error_for(status, detail)
