"""Typed errors of the AMT bridge.

    AmtBridgeError
      AmtRecordError          a 3PDS block that cannot be trusted
        GarbageRecord           not a record at all (also a DecodeError)
        BadRecordSignature      a record, but not signed by the member it is read for
      GrantError              a sealed guest-credential grant that cannot be opened
      NoGrant                 we hold no credentials for that member's AMT
      WakeFailed              the member's AMT would not power it on

AMT's own failures (unreachable, stalled, bad credentials, faults) stay
``amt.errors.AmtError``; the bridge logs them and never trusts anything they carried.
"""

from __future__ import annotations

from meshagent.errors import DecodeError, MeshError

__all__ = ["AmtBridgeError", "AmtRecordError", "BadRecordSignature", "GarbageRecord",
           "GrantError", "NoGrant", "WakeFailed"]


class AmtBridgeError(MeshError):
    """Base of the bridge's own errors."""


class AmtRecordError(AmtBridgeError):
    """A record read from a member's 3PDS block was refused; nothing of it is kept."""


class GarbageRecord(AmtRecordError, DecodeError):
    """The block holds no well-formed record (empty, wrong magic, truncated, malformed)."""


class BadRecordSignature(AmtRecordError):
    """The record parses but is not signed by the member's certificate key, or names
    another node."""


class GrantError(AmtBridgeError):
    """A guest-credential grant is malformed, not for us, forged or fails to decrypt."""


class NoGrant(AmtBridgeError):
    """No credentials for this member's AMT (it has none, or never shared them with us)."""


class WakeFailed(AmtBridgeError):
    """The wake request did not reach the member's AMT or was refused."""
