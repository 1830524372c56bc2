"""The WS-Management operations: Get, Put, Create, Delete, Enumerate + Pull, Invoke.

Resources are named by class (``AMT_GeneralSettings``); the resource URI comes from
``amt.namespaces``. Every reply is checked to carry the response action of the request
(``.../GetResponse``, ``<method action>Response``...), so a device that answers something
else is a MalformedResponse rather than a silently wrong value. HTTP statuses other than
200 (success) and 400/500 (faults, raised by ``parse_reply``) are MalformedResponse too.

``invoke`` raises ReturnValueError for a non-zero ReturnValue unless ``check=False``.
``enumerate`` pulls until EndOfSequence, bounded by ``max_items`` items and ``max_pulls``
requests, so a device that never ends its sequence cannot keep the client busy.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from amt import namespaces as ns
from amt.errors import MalformedResponse, ReturnValueError
from amt.wsman import envelope
from amt.wsman.reply import Reply, parse_reply
from amt.wsman.transport import Transport
from amt.wsman.values import (
    CimInstance,
    EndpointReference,
    ParamValue,
    epr_from_element,
    instance_from_element,
)
from amt.wsman.xmlsafe import DEFAULT_MAX_BYTES, local_name

__all__ = ["Selectors", "WsmanClient"]

Selectors = Mapping[str, str] | Sequence[tuple[str, str]] | None


def _uri(resource: str) -> str:
    """A class name's resource URI; a full URI is taken as it is."""
    return resource if "/" in resource else ns.resource_uri(resource)


def _selector_items(selectors: Selectors) -> tuple[tuple[str, str], ...]:
    if selectors is None:
        return ()
    items = selectors.items() if isinstance(selectors, Mapping) else selectors
    return tuple((str(k), str(v)) for k, v in items)


class WsmanClient:
    """WS-Management over one ``Transport``; safe to use from concurrent tasks."""

    def __init__(self, transport: Transport, *, max_reply_bytes: int = DEFAULT_MAX_BYTES,
                 pull_max_elements: int = 100, max_items: int = 10_000,
                 max_pulls: int = 1_000) -> None:
        self.transport = transport
        self.max_reply_bytes = max_reply_bytes
        self.pull_max_elements = pull_max_elements
        self.max_items = max_items
        self.max_pulls = max_pulls
        self._ids = itertools.count(1)

    async def close(self) -> None:
        await self.transport.close()

    async def _call(self, action: str, resource: str, body: str = "",
                    selectors: Selectors = None) -> Reply:
        request = envelope.request(action, _uri(resource), str(next(self._ids)), body,
                                   _selector_items(selectors))
        status, data = await self.transport.post(request)
        reply = parse_reply(data, status, self.max_reply_bytes)
        if status != 200:
            raise MalformedResponse(f"HTTP {status} without a SOAP fault for {action}")
        expected = action + "Response"
        if reply.action != expected:
            raise MalformedResponse(f"expected action {expected}, got {reply.action!r}")
        return reply

    @staticmethod
    def _instance(reply: Reply, what: str) -> CimInstance:
        if reply.body is None:
            raise MalformedResponse(f"{what}: empty body")
        return instance_from_element(reply.body)

    async def get(self, resource: str, selectors: Selectors = None) -> CimInstance:
        reply = await self._call(ns.ACTION_GET, resource, selectors=selectors)
        return self._instance(reply, f"Get {resource}")

    async def put(self, resource: str, properties: Mapping[str, ParamValue],
                  selectors: Selectors = None) -> CimInstance:
        """Replace an instance; AMT wants every writable property, so pass the full instance."""
        reply = await self._call(ns.ACTION_PUT, resource,
                                 envelope.instance_body(_uri(resource), properties), selectors)
        return self._instance(reply, f"Put {resource}")

    async def create(self, resource: str, properties: Mapping[str, ParamValue]
                     ) -> EndpointReference:
        """Create an instance; the reference to it from ``ResourceCreated``."""
        reply = await self._call(ns.ACTION_CREATE, resource,
                                 envelope.instance_body(_uri(resource), properties))
        if reply.body is None or local_name(reply.body.tag) != "ResourceCreated":
            raise MalformedResponse(f"Create {resource}: no ResourceCreated in the reply")
        return epr_from_element(reply.body)

    async def delete(self, resource: str, selectors: Selectors = None) -> None:
        await self._call(ns.ACTION_DELETE, resource, selectors=selectors)

    async def enumerate(self, resource: str, max_elements: int | None = None
                        ) -> list[CimInstance]:
        """All instances of a class: Enumerate, then Pull pages until EndOfSequence."""
        e = f"{{{ns.ENUMERATION}}}"
        reply = await self._call(ns.ACTION_ENUMERATE, resource, envelope.enumerate_body())
        context = reply.body.findtext(f"{e}EnumerationContext") if reply.body is not None else None
        items: list[CimInstance] = []
        page = max_elements or self.pull_max_elements
        for _ in range(self.max_pulls):
            if not context or not context.strip():
                raise MalformedResponse(f"Enumerate {resource}: no EnumerationContext")
            reply = await self._call(ns.ACTION_PULL, resource,
                                     envelope.pull_body(context.strip(), page))
            body = reply.body
            if body is None or body.tag != f"{e}PullResponse":
                raise MalformedResponse(f"Pull {resource}: no PullResponse")
            listing = body.find(f"{e}Items")
            for element in listing if listing is not None else ():
                items.append(instance_from_element(element))
                if len(items) > self.max_items:
                    raise MalformedResponse(f"Enumerate {resource}: more than "
                                            f"{self.max_items} items")
            if body.find(f"{e}EndOfSequence") is not None:
                return items
            context = body.findtext(f"{e}EnumerationContext")
        raise MalformedResponse(f"Enumerate {resource}: no EndOfSequence after "
                                f"{self.max_pulls} pulls")

    async def invoke(self, resource: str, method: str,
                     params: Mapping[str, ParamValue] | None = None,
                     selectors: Selectors = None, *, check: bool = True) -> CimInstance:
        """Run a method; its ``_OUTPUT`` (with ``ReturnValue``) as an instance."""
        uri = _uri(resource)
        reply = await self._call(f"{uri}/{method}", resource,
                                 envelope.method_body(uri, method, params or {}), selectors)
        output = self._instance(reply, f"{resource}.{method}")
        if output.class_name != f"{method}_OUTPUT":
            raise MalformedResponse(f"{resource}.{method}: reply holds {output.class_name}")
        if check:
            code = output.integer("ReturnValue")
            if code != 0:
                raise ReturnValueError(method, code)
        return output
