"""Intel AMT over WS-Management: a client, typed operations, and a software AMT device."""

from amt.client import AmtClient
from amt.errors import (
                        AccessDenied,
                        ActionNotSupported,
                        AmtConnectionError,
                        AmtError,
                        AmtFault,
                        AmtTimeout,
                        BadCredentials,
                        DestinationUnreachable,
                        InvalidSelectors,
                        MalformedResponse,
                        ReturnValueError,
)
from amt.operations.power import PowerAction, PowerState
from amt.operations.storage import StorageApplication
from amt.realms import AccessPermission, Realm

__all__ = [
    "AccessDenied", "AccessPermission", "ActionNotSupported", "AmtClient", "AmtConnectionError",
    "AmtError", "AmtFault", "AmtTimeout", "BadCredentials", "DestinationUnreachable",
    "InvalidSelectors", "MalformedResponse", "PowerAction", "PowerState", "Realm",
    "ReturnValueError", "StorageApplication",
]
