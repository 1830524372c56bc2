"""WS-Management as Intel AMT speaks it: digest auth, envelopes, hardened parsing, operations."""

from amt.wsman.client import WsmanClient
from amt.wsman.transport import HttpTransport, Transport
from amt.wsman.values import CimInstance, EndpointReference

__all__ = ["CimInstance", "EndpointReference", "HttpTransport", "Transport", "WsmanClient"]
