"""Typed errors of the AMT client.

Every way a talk with an AMT device can go wrong ends in one of these, never in an
``aiohttp``, ``ssl`` or XML exception:

    AmtError
      AmtConnectionError     the device could not be reached (refused, reset, TLS failure)
      AmtTimeout             no complete reply within the client's timeout
      BadCredentials         a 401 answered a request signed with a fresh challenge
      MalformedResponse      not a WS-Management envelope we accept (also a DecodeError)
      AmtFault               a SOAP fault; ``subcode`` is the WS-Addressing / WS-Man subcode
        DestinationUnreachable   the device has no such class or instance
        AccessDenied             the account's realms do not allow the operation
        InvalidSelectors         the selectors name no instance
        ActionNotSupported       the class does not support the action
      ReturnValueError       a method ran and returned a non-zero ReturnValue (PT_STATUS name)
"""

from __future__ import annotations

from amt.status import pt_status_name
from meshagent.errors import DecodeError, MeshError

__all__ = [
    "AccessDenied",
    "ActionNotSupported",
    "AmtConnectionError",
    "AmtError",
    "AmtFault",
    "AmtTimeout",
    "BadCredentials",
    "DestinationUnreachable",
    "InvalidSelectors",
    "MalformedResponse",
    "ReturnValueError",
    "fault_class",
]


class AmtError(MeshError):
    """Base of every error raised while talking to an AMT device."""


class AmtConnectionError(AmtError):
    """The device could not be reached at all."""


class AmtTimeout(AmtError):
    """The device did not deliver a complete reply within the timeout."""


class BadCredentials(AmtError):
    """The device rejected the user name or password (401 after a fresh digest challenge)."""


class MalformedResponse(AmtError, DecodeError):
    """The reply is not a well-formed, acceptable WS-Management envelope."""


class AmtFault(AmtError):
    """A SOAP fault returned by the device.

    ``code`` is the SOAP code (``Sender``/``Receiver``), ``subcode`` the local name of the
    WS-Addressing or WS-Management subcode (``DestinationUnreachable``, ``AccessDenied``...),
    ``reason`` the human text and ``detail`` the text of the Detail element, if any.
    """

    def __init__(self, code: str, subcode: str, reason: str, detail: str = "",
                 http_status: int = 400) -> None:
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.detail = detail
        self.http_status = http_status
        super().__init__(f"{subcode or code}: {reason}" + (f" ({detail})" if detail else ""))


class DestinationUnreachable(AmtFault):
    """The device has no such class (or no such instance)."""


class AccessDenied(AmtFault):
    """The authenticated account lacks the realm the operation needs."""


class InvalidSelectors(AmtFault):
    """The selectors of the request name no instance of the class."""


class ActionNotSupported(AmtFault):
    """The class does not support the requested action."""


_FAULTS_BY_SUBCODE: dict[str, type[AmtFault]] = {
    "DestinationUnreachable": DestinationUnreachable,
    "AccessDenied": AccessDenied,
    "InvalidSelectors": InvalidSelectors,
    "ActionNotSupported": ActionNotSupported,
}


def fault_class(subcode: str) -> type[AmtFault]:
    """The named fault class for a subcode's local name; ``AmtFault`` for any other."""
    return _FAULTS_BY_SUBCODE.get(subcode, AmtFault)


class ReturnValueError(AmtError):
    """A method invocation completed with a non-zero ReturnValue."""

    def __init__(self, method: str, code: int, name: str | None = None) -> None:
        self.method = method
        self.code = code
        self.name = name or pt_status_name(code)
        super().__init__(f"{method} returned {code} ({self.name})")
