"""Reading a device's reply: envelope checks, headers, body, and SOAP faults.

A reply is accepted only if it is a SOAP 1.2 ``Envelope`` with a ``Body``; the headers
we read are WS-Addressing ``Action``, ``MessageID``, ``RelatesTo`` and WS-Management
``ResourceURI``. A ``Fault`` in the body becomes the named ``AmtFault`` subclass for its
subcode, whatever the HTTP status. Element namespaces are checked, prefixes never are
(AMT binds a: b: c: ..., other stacks bind others).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from amt import namespaces as ns
from amt.errors import AmtFault, MalformedResponse, fault_class
from amt.wsman.xmlsafe import DEFAULT_MAX_BYTES, XmlRejected, local_name, parse_document

__all__ = ["Reply", "parse_reply"]

MAX_TEXT = 1024  # fault reasons and details are cut to this many characters


@dataclass(frozen=True)
class Reply:
    action: str
    message_id: str
    relates_to: str
    resource_uri: str
    body: Element | None  # the first child of Body, or None for an empty body


def _text(parent: Element, path: str) -> str:
    found = parent.find(path)
    return (found.text or "").strip() if found is not None else ""


def _qname_local(value: str) -> str:
    """``b:DestinationUnreachable`` -> ``DestinationUnreachable`` (a QName in text content)."""
    return value.rsplit(":", 1)[-1].strip()


def _fault(fault: Element, http_status: int) -> AmtFault:
    soap = f"{{{ns.SOAP}}}"
    code = _qname_local(_text(fault, f"{soap}Code/{soap}Value"))
    subcode = ""
    node = fault.find(f"{soap}Code/{soap}Subcode")
    depth = 0
    while node is not None and depth < 8:  # the innermost subcode is the most specific
        subcode = _qname_local(_text(node, f"{soap}Value")) or subcode
        node = node.find(f"{soap}Subcode")
        depth += 1
    reason = _text(fault, f"{soap}Reason/{soap}Text")[:MAX_TEXT]
    detail_el = fault.find(f"{soap}Detail")
    detail = ""
    if detail_el is not None:
        detail = " ".join(t.strip() for t in detail_el.itertext() if t.strip())[:MAX_TEXT]
    return fault_class(subcode)(code or "Receiver", subcode, reason, detail, http_status)


def parse_reply(data: bytes, http_status: int = 200, max_bytes: int = DEFAULT_MAX_BYTES) -> Reply:
    """The reply in ``data``; raises MalformedResponse, or the AmtFault the body carries."""
    try:
        root = parse_document(data, max_bytes)
    except XmlRejected as exc:
        raise MalformedResponse(str(exc)) from None
    if root.tag != f"{{{ns.SOAP}}}Envelope":
        raise MalformedResponse(f"root element is {local_name(root.tag)!r} in the wrong "
                                f"namespace or not a SOAP 1.2 Envelope")
    body = root.find(f"{{{ns.SOAP}}}Body")
    if body is None:
        raise MalformedResponse("envelope has no SOAP 1.2 Body")
    first = next(iter(body), None)
    if first is not None and first.tag == f"{{{ns.SOAP}}}Fault":
        raise _fault(first, http_status)
    header = root.find(f"{{{ns.SOAP}}}Header")
    if header is None:
        raise MalformedResponse("envelope has no SOAP 1.2 Header")
    a, w = f"{{{ns.ADDRESSING}}}", f"{{{ns.WSMAN}}}"
    return Reply(action=_text(header, f"{a}Action"), message_id=_text(header, f"{a}MessageID"),
                 relates_to=_text(header, f"{a}RelatesTo"),
                 resource_uri=_text(header, f"{w}ResourceURI"), body=first)
