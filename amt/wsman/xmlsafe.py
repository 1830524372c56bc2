"""The one XML parser for bytes from the network: defusedxml, with a size limit.

Everything that crosses a socket (device replies on the client, requests on the software
device) goes through ``parse_document``. It refuses any DTD (so no entity expansion, no
external entities, no billion laughs), documents over ``max_bytes`` before parsing them,
and anything expat cannot parse; each as ``XmlRejected``. Time is bounded by the size
limit (expat is linear without entities) and by the callers' socket timeouts.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from meshagent.errors import DecodeError

__all__ = ["DEFAULT_MAX_BYTES", "XmlRejected", "local_name", "namespace_of", "parse_document"]

DEFAULT_MAX_BYTES = 2 * 1024 * 1024


class XmlRejected(DecodeError):
    """The bytes are not a document we are willing to parse (hostile, malformed, too big)."""


def parse_document(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Element:
    """The root element of ``data``; raises XmlRejected for hostile or malformed input."""
    if len(data) > max_bytes:
        raise XmlRejected(f"document of {len(data)} bytes exceeds the {max_bytes} byte limit")
    if not data.strip():
        raise XmlRejected("empty document")
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise XmlRejected(f"forbidden XML construct: {type(exc).__name__}") from None
    except (ParseError, ValueError, UnicodeError) as exc:
        raise XmlRejected(f"not well-formed XML: {exc}") from None


def namespace_of(tag: str) -> str:
    """The namespace URI of an ElementTree tag ``{ns}local`` ('' if none)."""
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def local_name(tag: str) -> str:
    """The local part of an ElementTree tag ``{ns}local``."""
    return tag.rsplit("}", 1)[-1]
