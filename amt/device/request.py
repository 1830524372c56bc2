"""Reading a request on the software device: the same hardened parser as the client.

Missing addressing headers are ``InvalidMessageInformationHeader``; XML we refuse to parse
(DTDs, entities, oversize, malformed) is ``SchemaValidationError``, as AMT answers both.
"""

from __future__ import annotations

from amt import namespaces as ns
from amt.device.resources import DeviceFault, WsmanRequest
from amt.wsman.xmlsafe import XmlRejected, local_name, parse_document

__all__ = ["MAX_REQUEST_BYTES", "parse_request"]

MAX_REQUEST_BYTES = 256 * 1024


def parse_request(data: bytes) -> WsmanRequest:
    try:
        root = parse_document(data, MAX_REQUEST_BYTES)
    except XmlRejected as exc:
        raise DeviceFault("SchemaValidationError", str(exc)) from None
    soap, a, w = f"{{{ns.SOAP}}}", f"{{{ns.ADDRESSING}}}", f"{{{ns.WSMAN}}}"
    if root.tag != f"{soap}Envelope":
        raise DeviceFault("SchemaValidationError", "not a SOAP 1.2 Envelope")
    header, body = root.find(f"{soap}Header"), root.find(f"{soap}Body")
    if header is None or body is None:
        raise DeviceFault("SchemaValidationError", "Header or Body missing")
    action = (header.findtext(f"{a}Action") or "").strip()
    uri = (header.findtext(f"{w}ResourceURI") or "").strip()
    message_id = (header.findtext(f"{a}MessageID") or "").strip()
    if not action or not uri or not message_id:
        raise DeviceFault("InvalidMessageInformationHeader",
                          "Action, ResourceURI and MessageID are required")
    selectors: dict[str, str] = {}
    selector_set = header.find(f"{w}SelectorSet")
    for selector in selector_set if selector_set is not None else ():
        if local_name(selector.tag) == "Selector":
            selectors[selector.get("Name", "")] = (selector.text or "").strip()
    return WsmanRequest(action=action, resource_uri=uri, class_name=ns.class_name_of(uri),
                        message_id=message_id, selectors=selectors, body=next(iter(body), None))
