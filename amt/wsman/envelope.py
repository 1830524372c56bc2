"""Request envelopes: SOAP 1.2 + WS-Addressing + WS-Management, as AMT consoles send them.

The header carries Action, To (``/wsman``), ResourceURI, MessageID, ReplyTo (anonymous),
OperationTimeout and, for one instance, a SelectorSet. Bodies:

    Get, Delete                    empty
    Put, Create                    <r:CLASS xmlns:r="resource URI">properties</r:CLASS>
    Enumerate                      <Enumerate xmlns="enumeration"/>
    Pull                           <Pull><EnumerationContext/><MaxElements/></Pull>
    Invoke                         <r:Method_INPUT xmlns:r="resource URI">parameters</...>

Prefixes here are the client's own (a: addressing, w: wsman, r: the resource); replies
use AMT's (see ``amt.device.replies``) and the parser never depends on either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape

from amt import namespaces as ns
from amt.wsman.values import ParamValue, properties_xml, selector_set_xml

__all__ = ["enumerate_body", "instance_body", "method_body", "pull_body", "request"]

_OPEN = (f'<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="{ns.SOAP}" '
         f'xmlns:a="{ns.ADDRESSING}" xmlns:w="{ns.WSMAN}"><Header>')


def request(action: str, resource_uri: str, message_id: str, body: str = "",
            selectors: Iterable[tuple[str, str]] = (), timeout_s: int = 60) -> bytes:
    """A complete request envelope, UTF-8 encoded."""
    return (f"{_OPEN}<a:Action>{escape(action)}</a:Action><a:To>/wsman</a:To>"
            f"<w:ResourceURI>{escape(resource_uri)}</w:ResourceURI>"
            f"<a:MessageID>{escape(message_id)}</a:MessageID>"
            f"<a:ReplyTo><a:Address>{ns.ANONYMOUS}</a:Address></a:ReplyTo>"
            f"<w:OperationTimeout>PT{int(timeout_s)}S</w:OperationTimeout>"
            f"{selector_set_xml(selectors, 'w')}</Header><Body>{body}</Body></Envelope>"
            ).encode()


def instance_body(resource_uri: str, properties: Mapping[str, ParamValue]) -> str:
    """The body of Put and Create: the instance in its class's namespace."""
    name = ns.class_name_of(resource_uri)
    return (f'<r:{name} xmlns:r="{escape(resource_uri)}">'
            f"{properties_xml('r', properties, 'a', 'w')}</r:{name}>")


def method_body(resource_uri: str, method: str, params: Mapping[str, ParamValue]) -> str:
    """The body of a method invocation: ``Method_INPUT`` with one element per parameter."""
    return (f'<r:{method}_INPUT xmlns:r="{escape(resource_uri)}">'
            f"{properties_xml('r', params, 'a', 'w')}</r:{method}_INPUT>")


def enumerate_body() -> str:
    return f'<Enumerate xmlns="{ns.ENUMERATION}"/>'


def pull_body(context: str, max_elements: int) -> str:
    return (f'<Pull xmlns="{ns.ENUMERATION}"><EnumerationContext>{escape(context)}'
            f"</EnumerationContext><MaxElements>{int(max_elements)}</MaxElements></Pull>")
