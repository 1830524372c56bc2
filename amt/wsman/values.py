"""CIM values as WS-Management carries them: instances, method parameters, references (EPRs).

A CIM instance or a method's ``_INPUT``/``_OUTPUT`` element is a flat list of child
elements, one per property; an array property is the same element repeated; a reference
property holds a WS-Addressing endpoint reference (``Address`` + ``ReferenceParameters``
with the target's ``ResourceURI`` and ``SelectorSet``). ``CimInstance`` keeps them as a
dict of name -> str | EndpointReference | list of those, and offers typed accessors that
raise ``MalformedResponse`` when a value is missing or not of the expected type.

Writing goes through ``properties_xml``/``epr_xml`` with explicit prefixes, because the
client writes requests with its own prefixes and the device writes replies with AMT's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from amt import namespaces as ns
from amt.errors import MalformedResponse
from amt.wsman.xmlsafe import local_name, namespace_of

__all__ = [
    "CimInstance",
    "EndpointReference",
    "ParamValue",
    "Value",
    "epr_xml",
    "instance_from_element",
    "properties_xml",
    "selector_set_xml",
]

MAX_PROPERTIES = 4096  # per instance; a hostile reply cannot make us build more


@dataclass(frozen=True)
class EndpointReference:
    """A reference to one CIM instance: its class's resource URI and its key selectors."""

    resource_uri: str
    selectors: tuple[tuple[str, str], ...] = ()
    address: str = ns.ANONYMOUS

    @classmethod
    def to(cls, class_name: str, **selectors: str) -> EndpointReference:
        return cls(ns.resource_uri(class_name), tuple(selectors.items()))

    @property
    def class_name(self) -> str:
        return ns.class_name_of(self.resource_uri)

    def selector(self, name: str) -> str | None:
        for key, value in self.selectors:
            if key == name:
                return value
        return None


# A property as read from XML.
Value = str | EndpointReference | list[str | EndpointReference]
# What callers may pass as a property or method parameter value.
ParamValue = (str | int | bool | EndpointReference
              | Sequence[str | int | bool | EndpointReference] | None)


@dataclass
class CimInstance:
    """An instance (or method input/output) by class name, namespace and properties."""

    class_name: str
    properties: dict[str, Value] = field(default_factory=dict)
    namespace: str = ""

    def _raw(self, name: str) -> Value:
        try:
            return self.properties[name]
        except KeyError:
            raise MalformedResponse(f"{self.class_name} has no {name}") from None

    def has(self, name: str) -> bool:
        return name in self.properties

    def text(self, name: str, default: str | None = None) -> str:
        if default is not None and name not in self.properties:
            return default
        value = self._raw(name)
        if not isinstance(value, str):
            raise MalformedResponse(f"{self.class_name}.{name} is not a single value")
        return value

    def integer(self, name: str, default: int | None = None) -> int:
        if default is not None and name not in self.properties:
            return default
        text = self.text(name)
        try:
            return int(text.strip())
        except ValueError:
            raise MalformedResponse(f"{self.class_name}.{name} is not an integer") from None

    def boolean(self, name: str, default: bool | None = None) -> bool:
        if default is not None and name not in self.properties:
            return default
        text = self.text(name).strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise MalformedResponse(f"{self.class_name}.{name} is not a boolean")
        return text in ("true", "1")

    def texts(self, name: str) -> list[str]:
        """An array property (absent = empty); a single element is a one-item array."""
        value = self.properties.get(name, [])
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise MalformedResponse(f"{self.class_name}.{name} is not an array of values")
        return [item for item in items if isinstance(item, str)]

    def integers(self, name: str) -> list[int]:
        try:
            return [int(item.strip()) for item in self.texts(name)]
        except ValueError:
            raise MalformedResponse(f"{self.class_name}.{name} is not an array of integers") \
                from None

    def base64(self, name: str) -> bytes:
        try:
            return base64.b64decode(self.text(name), validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponse(f"{self.class_name}.{name} is not base64") from None

    def reference(self, name: str) -> EndpointReference:
        value = self._raw(name)
        if not isinstance(value, EndpointReference):
            raise MalformedResponse(f"{self.class_name}.{name} is not a reference")
        return value


def _is_epr(element: Element) -> bool:
    return any(namespace_of(child.tag) == ns.ADDRESSING
               and local_name(child.tag) in ("Address", "ReferenceParameters")
               for child in element)


def _selectors_of(selector_set: Element | None) -> tuple[tuple[str, str], ...]:
    if selector_set is None:
        return ()
    return tuple((sel.get("Name", ""), (sel.text or "").strip())
                 for sel in selector_set if local_name(sel.tag) == "Selector")


def epr_from_element(element: Element) -> EndpointReference:
    address = element.find(f"{{{ns.ADDRESSING}}}Address")
    params = element.find(f"{{{ns.ADDRESSING}}}ReferenceParameters")
    if params is None:
        raise MalformedResponse(f"reference {local_name(element.tag)} has no ReferenceParameters")
    uri = params.find(f"{{{ns.WSMAN}}}ResourceURI")
    if uri is None or not (uri.text or "").strip():
        raise MalformedResponse(f"reference {local_name(element.tag)} has no ResourceURI")
    return EndpointReference(
        resource_uri=uri.text.strip() if uri.text else "",
        selectors=_selectors_of(params.find(f"{{{ns.WSMAN}}}SelectorSet")),
        address=(address.text or "").strip() if address is not None else ns.ANONYMOUS)


def instance_from_element(element: Element) -> CimInstance:
    """The instance an element holds: one property per child, repeated children as arrays."""
    props: dict[str, Value] = {}
    for count, child in enumerate(element):
        if count >= MAX_PROPERTIES:
            raise MalformedResponse(f"{local_name(element.tag)} has too many properties")
        name = local_name(child.tag)
        value: str | EndpointReference = (epr_from_element(child) if _is_epr(child)
                                          else (child.text or ""))
        previous = props.get(name)
        if previous is None:
            props[name] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            props[name] = [previous, value]
    return CimInstance(local_name(element.tag), props, namespace_of(element.tag))


# ---- writing ---------------------------------------------------------------------------

def _scalar_text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def selector_set_xml(selectors: Iterable[tuple[str, str]], wsman_prefix: str) -> str:
    items = "".join(f"<{wsman_prefix}:Selector Name={quoteattr(name)}>{escape(value)}"
                    f"</{wsman_prefix}:Selector>" for name, value in selectors)
    return f"<{wsman_prefix}:SelectorSet>{items}</{wsman_prefix}:SelectorSet>" if items else ""


def epr_xml(epr: EndpointReference, addressing_prefix: str, wsman_prefix: str) -> str:
    """The inside of a reference-valued element (Address + ReferenceParameters)."""
    a, w = addressing_prefix, wsman_prefix
    return (f"<{a}:Address>{escape(epr.address)}</{a}:Address><{a}:ReferenceParameters>"
            f"<{w}:ResourceURI>{escape(epr.resource_uri)}</{w}:ResourceURI>"
            f"{selector_set_xml(epr.selectors, w)}</{a}:ReferenceParameters>")


def properties_xml(prefix: str, properties: Mapping[str, object], addressing_prefix: str,
                   wsman_prefix: str) -> str:
    """``<prefix:Name>value</prefix:Name>`` per property, arrays repeated, references nested."""
    out: list[str] = []
    for name, value in properties.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if item is None:
                continue
            if isinstance(item, EndpointReference):
                inner = epr_xml(item, addressing_prefix, wsman_prefix)
            elif isinstance(item, str | int | bool):
                inner = escape(_scalar_text(item))
            else:
                raise TypeError(f"cannot write {name}={item!r} as a CIM value")
            out.append(f"<{prefix}:{name}>{inner}</{prefix}:{name}>")
    return "".join(out)
