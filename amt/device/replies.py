"""Reply envelopes shaped the way AMT firmware writes them.

Real AMT declares a: soap, b: addressing, c: wsman, d: trust, e: wsse, f: cimbinding on the
root, binds g: to the class namespace (or to enumeration, with h: for the class inside a
PullResponse), and always sends the same header: b:To (anonymous), b:RelatesTo (the request's
MessageID), b:Action with a:mustUnderstand="true", b:MessageID
(``uuid:00000000-8086-8086-8086-<12 hex>``), c:ResourceURI. Faults carry
a:Code/a:Value + a:Subcode/a:Value, a:Reason/a:Text xml:lang="en-US" and a:Detail.
Fault envelopes bind another prefix set (g: cimbinding ... e: wsman, c: enumeration) and
carry no ResourceURI. The fixture files in tests/data/amt have the same structure and a
test compares them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from amt import namespaces as ns
from amt.wsman.values import properties_xml

__all__ = ["Fault", "FAULTS", "Replies"]

_ROOT_NS = "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in ns.REPLY_PREFIXES.items())
# Fault envelopes bind a different prefix set, in this order, on real firmware.
_FAULT_NS = "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in (
    ("g", ns.CIM_BINDING), ("f", ns.EVENTING), ("e", ns.WSMAN), ("d", ns.TRANSFER),
    ("c", ns.ENUMERATION), ("b", ns.ADDRESSING), ("a", ns.SOAP), ("h", ns.TRUST),
    ("i", ns.WSSE), ("xsi", ns.XSI)))


@dataclass(frozen=True)
class Fault:
    """A fault as AMT sends it: HTTP status, subcode QName (prefixed), action, reason."""

    subcode: str  # "b:DestinationUnreachable", "e:AccessDenied"... (fault envelope prefixes)
    reason: str
    action: str = ns.ACTION_WSMAN_FAULT
    code: str = "a:Sender"
    http_status: int = 400


FAULTS = {
    "DestinationUnreachable": Fault(
        "b:DestinationUnreachable",
        "No route can be determined to reach the destination role defined by the "
        "WSAddressing To.", ns.ACTION_FAULT),
    "ActionNotSupported": Fault(
        "b:ActionNotSupported", "The action is not supported by the service.",
        ns.ACTION_FAULT),
    "InvalidMessageInformationHeader": Fault(
        "b:InvalidMessageInformationHeader",
        "A message information header is not valid and the message cannot be processed.",
        ns.ACTION_FAULT),
    "AccessDenied": Fault(
        "e:AccessDenied", "The sender was not authorized to access the resource."),
    "InvalidSelectors": Fault(
        "e:InvalidSelectors", "The Selectors for the resource were not valid."),
    "SchemaValidationError": Fault(
        "e:SchemaValidationError", "The supplied SOAP violates the corresponding XML Schema "
        "definition."),
    "InvalidEnumerationContext": Fault(
        "c:InvalidEnumerationContext",
        "The supplied enumeration context is invalid.", ns.ENUMERATION + "/fault"),
}


class Replies:
    """Builds one device's replies; MessageIDs count up like the firmware's."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def _envelope(self, action: str, relates_to: str, resource_uri: str, body: str,
                  extra_ns: Mapping[str, str]) -> bytes:
        extra = "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in extra_ns.items())
        uri = (f"<c:ResourceURI>{escape(resource_uri)}</c:ResourceURI>"
               if resource_uri else "")
        return (f'<?xml version="1.0" encoding="UTF-8"?><a:Envelope{_ROOT_NS}{extra} '
                f'xmlns:xsi="{ns.XSI}"><a:Header><b:To>{ns.ANONYMOUS}</b:To>'
                f"<b:RelatesTo>{escape(relates_to)}</b:RelatesTo>"
                f'<b:Action a:mustUnderstand="true">{escape(action)}</b:Action>'
                f"<b:MessageID>uuid:00000000-8086-8086-8086-{next(self._ids):012X}</b:MessageID>"
                f"{uri}</a:Header><a:Body>{body}</a:Body></a:Envelope>").encode()

    def instance(self, action: str, relates_to: str, resource_uri: str,
                 properties: Mapping[str, object]) -> bytes:
        """GetResponse / PutResponse: the instance in the class namespace (g:)."""
        name = ns.class_name_of(resource_uri)
        body = f"<g:{name}>{properties_xml('g', properties, 'b', 'c')}</g:{name}>"
        return self._envelope(action, relates_to, resource_uri, body, {"g": resource_uri})

    def method(self, method: str, relates_to: str, resource_uri: str,
               outputs: Mapping[str, object], return_value: int) -> bytes:
        """``<method action>Response`` with ``g:Method_OUTPUT``, ReturnValue last."""
        props = {**outputs, "ReturnValue": int(return_value)}
        body = (f"<g:{method}_OUTPUT>{properties_xml('g', props, 'b', 'c')}"
                f"</g:{method}_OUTPUT>")
        return self._envelope(f"{resource_uri}/{method}Response", relates_to, resource_uri,
                              body, {"g": resource_uri})

    def empty(self, action: str, relates_to: str, resource_uri: str) -> bytes:
        """DeleteResponse and other replies with an empty body."""
        return self._envelope(action, relates_to, resource_uri, "", {})

    def enumerate(self, relates_to: str, resource_uri: str, context: str) -> bytes:
        body = (f"<g:EnumerateResponse><g:EnumerationContext>{escape(context)}"
                f"</g:EnumerationContext></g:EnumerateResponse>")
        return self._envelope(ns.ACTION_ENUMERATE_RESPONSE, relates_to, resource_uri, body,
                              {"g": ns.ENUMERATION})

    def pull(self, relates_to: str, resource_uri: str,
             items: Sequence[Mapping[str, object]], context: str | None) -> bytes:
        """PullResponse: items as h:CLASS; EndOfSequence when ``context`` is None."""
        name = ns.class_name_of(resource_uri)
        listed = "".join(f"<h:{name}>{properties_xml('h', item, 'b', 'c')}</h:{name}>"
                         for item in items)
        tail = ("<g:EndOfSequence></g:EndOfSequence>" if context is None else
                f"<g:EnumerationContext>{escape(context)}</g:EnumerationContext>")
        body = f"<g:PullResponse>{('<g:Items>' + listed + '</g:Items>')}{tail}</g:PullResponse>"
        return self._envelope(ns.ACTION_PULL_RESPONSE, relates_to, resource_uri, body,
                              {"g": ns.ENUMERATION, "h": resource_uri})

    def fault(self, fault: Fault, relates_to: str, detail: str = "") -> bytes:
        """A fault: header without ResourceURI, the fault prefixes, an (often empty) Detail."""
        return (f'<?xml version="1.0" encoding="UTF-8"?><a:Envelope{_FAULT_NS}><a:Header>'
                f"<b:To>{ns.ANONYMOUS}</b:To><b:RelatesTo>{escape(relates_to)}</b:RelatesTo>"
                f'<b:Action a:mustUnderstand="true">{escape(fault.action)}</b:Action>'
                f"<b:MessageID>uuid:00000000-8086-8086-8086-{next(self._ids):012X}</b:MessageID>"
                f"</a:Header><a:Body><a:Fault><a:Code><a:Value>{fault.code}</a:Value>"
                f"<a:Subcode><a:Value>{fault.subcode}</a:Value></a:Subcode></a:Code>"
                f'<a:Reason><a:Text xml:lang="en-US">{escape(fault.reason)}</a:Text></a:Reason>'
                f"<a:Detail>{escape(detail)}</a:Detail></a:Fault></a:Body></a:Envelope>"
                ).encode()
