"""What every class the software device serves looks like, and how requests reach it.

A ``Resource`` serves one CIM/AMT class: ``get``/``put`` one instance, ``instances`` for
Enumerate, and ``methods`` by name. Handlers raise ``DeviceFault`` for a SOAP fault
(wrong selectors, unsupported action) and return ``MethodResult`` with a PT_STATUS code for
a method that ran; the server turns both into replies shaped like AMT's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from amt.device.state import DeviceState
from amt.status import PtStatus
from amt.wsman.values import CimInstance

__all__ = ["Caller", "DeviceContext", "DeviceFault", "MethodResult", "Resource",
           "WsmanRequest"]

Properties = dict[str, object]


class DeviceFault(Exception):
    """Answer with the named fault of ``amt.device.replies.FAULTS``."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(name)
        self.name = name
        self.detail = detail


@dataclass(frozen=True)
class WsmanRequest:
    action: str
    resource_uri: str
    class_name: str
    message_id: str
    selectors: Mapping[str, str]
    body: Element | None


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the admin account or a user ACL entry's realms."""

    username: str
    is_admin: bool
    realms: frozenset[int] = frozenset()


@dataclass
class MethodResult:
    return_value: int = PtStatus.SUCCESS
    outputs: Properties = field(default_factory=dict)

    @classmethod
    def fail(cls, status: PtStatus) -> MethodResult:
        return cls(int(status))


@dataclass
class DeviceContext:
    """What resources share: the state and a way to say it changed (persist it)."""

    state: DeviceState
    changed: Callable[[], None]


Method = Callable[[CimInstance, Caller], MethodResult]


class Resource:
    """Base class: every operation unsupported until a subclass provides it."""

    class_name = ""

    def __init__(self, context: DeviceContext) -> None:
        self.context = context
        self.methods: dict[str, Method] = {}

    @property
    def state(self) -> DeviceState:
        return self.context.state

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        raise DeviceFault("ActionNotSupported")

    def put(self, request: WsmanRequest, instance: CimInstance, caller: Caller) -> Properties:
        raise DeviceFault("ActionNotSupported")

    def instances(self, caller: Caller) -> list[Properties]:
        raise DeviceFault("ActionNotSupported")


def select(instances: list[Properties], selectors: Mapping[str, str]) -> Properties:
    """The one instance whose properties match every selector (none: the only instance)."""
    if not selectors:
        if len(instances) == 1:
            return instances[0]
        raise DeviceFault("InvalidSelectors", "selectors are required")
    for instance in instances:
        if all(str(instance.get(key, "")) == value for key, value in selectors.items()):
            return instance
    raise DeviceFault("InvalidSelectors")
