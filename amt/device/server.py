"""``SoftwareAmtDevice``: an HTTP(S) server that answers WS-Management like Intel AMT.

    device = SoftwareAmtDevice(admin_password="P@ssw0rd", port=0,
                               hooks=PowerHooks(on_sleep=stop_agent, on_wake=start_agent))
    await device.start()          # device.port, device.realm, device.url
    device.set_power_state(PowerState.SLEEP_DEEP)   # the host sleeps; hooks fire
    await device.stop()

Request path: digest check (401 + challenge, stale, replay) -> hardened parse -> class
lookup (DestinationUnreachable) -> realm check (AccessDenied) -> Get/Put/Enumerate/Pull/
Release/method -> AMT-shaped reply. Faults go out as HTTP 400 like the firmware's.

Many devices run in one process, each on its own address/port and with its own state;
``state_path`` makes a device's state survive restarts (JSON, written on every change).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from amt import namespaces as ns
from amt.device.access import allowed
from amt.device.accounts import AuthorizationService
from amt.device.auth import DigestGuard
from amt.device.power import PowerController, PowerHooks, PowerManagementService, PowerStatus
from amt.device.replies import FAULTS, Replies
from amt.device.request import MAX_REQUEST_BYTES, parse_request
from amt.device.resources import (
    Caller,
    DeviceContext,
    DeviceFault,
    Properties,
    Resource,
    WsmanRequest,
)
from amt.device.settings import EthernetPortSettings, GeneralSettings, SoftwareIdentity
from amt.device.state import DeviceState, StorageLimits
from amt.device.storage import StorageAdministrationService, StorageService
from amt.device.tls import TlsCertificate
from amt.operations.power import PowerState
from amt.realms import AccessPermission
from amt.wsman.values import instance_from_element
from meshagent.errors import DecodeError
from meshagent.log import get_logger

__all__ = ["SoftwareAmtDevice"]

log = get_logger(__name__)

MAX_CONTEXTS = 64  # open enumerations per device; the oldest is dropped beyond this


@dataclass
class _Enumeration:
    owner: str
    class_name: str
    items: list[Properties]


class SoftwareAmtDevice:
    """One simulated AMT device. Create, ``await start()``, ``await stop()``."""

    def __init__(self, *, admin_password: str, admin_user: str = "admin",
                 host: str = "127.0.0.1", port: int = 0, state_path: Path | None = None,
                 tls: TlsCertificate | None = None, hooks: PowerHooks | None = None,
                 hostname: str = "amt-sim", limits: StorageLimits | None = None,
                 pull_page_size: int = 100, nonce_lifetime_s: float = 300.0) -> None:
        self.host = host
        self._requested_port = port
        self.state_path = state_path
        self.tls = tls
        self.pull_page_size = pull_page_size
        if state_path is not None and state_path.exists():
            state = DeviceState.load(state_path)
        else:
            state = DeviceState.fresh(admin_user, admin_password, hostname)
            if limits is not None:
                state.limits = limits
        self.state = state
        self.context = DeviceContext(state, self._persist)
        self.power = PowerController(self.context, hooks)
        self.storage = StorageService(self.context)
        resources: list[Resource] = [
            GeneralSettings(self.context), EthernetPortSettings(self.context),
            SoftwareIdentity(self.context), PowerStatus(self.context, self.power),
            PowerManagementService(self.context, self.power), AuthorizationService(self.context),
            self.storage, StorageAdministrationService(self.context, self.storage)]
        self.resources = {r.class_name: r for r in resources}
        self.guard = DigestGuard(state.realm, self._secret_of, nonce_lifetime_s)
        self.replies = Replies()
        self._enumerations: OrderedDict[str, _Enumeration] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.requests = 0
        self._persist()

    # ---- identity and state -----------------------------------------------------------

    @property
    def realm(self) -> str:
        return self.state.realm

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/wsman"

    @property
    def open_enumerations(self) -> int:
        return len(self._enumerations)

    def _persist(self) -> None:
        if self.state_path is not None:
            self.state.save(self.state_path)

    def _secret_of(self, user: str) -> str | None:
        if user == self.state.admin_user:
            return self.state.admin_ha1
        for account in self.state.accounts.values():
            if account.username == user and \
                    account.access_permission != AccessPermission.LOCAL_ONLY:
                return account.ha1
        return None

    def _caller(self, user: str) -> Caller | None:
        if user == self.state.admin_user:
            return Caller(user, is_admin=True)
        for account in self.state.accounts.values():
            if account.username == user:
                return Caller(user, is_admin=False, realms=frozenset(account.realms))
        return None

    def set_power_state(self, state: PowerState) -> None:
        """The host changes power state by itself (its OS sleeps or wakes): hooks fire."""
        self.power.set_state(state)

    # ---- server -----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/wsman", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port,
                           ssl_context=self.tls.server_context() if self.tls else None,
                           reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.event("amt_sim_started", url=self.url, realm=self.realm)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.power.drain()

    async def __aenter__(self) -> SoftwareAmtDevice:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        verdict = self.guard.verify(request.headers.get("Authorization"), "POST")
        caller = self._caller(verdict.user) if verdict.user else None
        if caller is None:
            if verdict.reason not in ("unsigned", "stale nonce"):
                log.warn_limited("amt_sim_auth_refused", key=request.remote,
                                 peer=request.remote, reason=verdict.reason)
            return web.Response(status=401, headers={
                "WWW-Authenticate": self.guard.challenge(stale=verdict.stale)})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        status, reply = self.dispatch(body, caller)
        return web.Response(status=status, body=reply,
                            headers={"Content-Type": "application/soap+xml; charset=UTF-8"})

    # ---- dispatch ---------------------------------------------------------------------

    def dispatch(self, body: bytes, caller: Caller) -> tuple[int, bytes]:
        """The HTTP status and reply for one authenticated request."""
        relates_to = ""
        try:
            request = parse_request(body)
            relates_to = request.message_id
            return 200, self._serve(request, caller)
        except DeviceFault as fault:
            shape = FAULTS[fault.name]
            if fault.name != "DestinationUnreachable":
                log.warn_limited("amt_sim_fault", key=fault.name, fault=fault.name,
                                 detail=fault.detail)
            return shape.http_status, self.replies.fault(shape, relates_to, fault.detail)
        except DecodeError as exc:
            return 400, self.replies.fault(FAULTS["SchemaValidationError"], relates_to,
                                           str(exc))

    def _operation(self, request: WsmanRequest) -> str:
        verbs = {ns.ACTION_GET: "Get", ns.ACTION_PUT: "Put", ns.ACTION_CREATE: "Create",
                 ns.ACTION_DELETE: "Delete", ns.ACTION_ENUMERATE: "Enumerate",
                 ns.ACTION_PULL: "Pull", ns.ACTION_RELEASE: "Release"}
        if request.action in verbs:
            return verbs[request.action]
        prefix = request.resource_uri + "/"
        if request.action.startswith(prefix) and "/" not in request.action[len(prefix):]:
            return request.action[len(prefix):]
        raise DeviceFault("ActionNotSupported", request.action)

    def _serve(self, request: WsmanRequest, caller: Caller) -> bytes:
        resource = self.resources.get(request.class_name)
        try:
            known_uri = ns.resource_uri(request.class_name) == request.resource_uri
        except ValueError:
            known_uri = False
        if resource is None or not known_uri:
            raise DeviceFault("DestinationUnreachable", request.resource_uri)
        operation = self._operation(request)
        if not allowed(caller, request.class_name, operation):
            raise DeviceFault("AccessDenied", f"{caller.username}: {operation} "
                                              f"{request.class_name}")
        uri, mid = request.resource_uri, request.message_id
        if operation == "Get":
            return self.replies.instance(ns.ACTION_GET_RESPONSE, mid, uri,
                                         resource.get(request, caller))
        if operation == "Put":
            if request.body is None or \
                    request.body.tag != f"{{{request.resource_uri}}}{request.class_name}":
                raise DeviceFault("SchemaValidationError", "Put needs the instance")
            updated = resource.put(request, instance_from_element(request.body), caller)
            return self.replies.instance(ns.ACTION_PUT_RESPONSE, mid, uri, updated)
        if operation == "Enumerate":
            return self._enumerate(request, resource, caller)
        if operation == "Pull":
            return self._pull(request, caller)
        if operation == "Release":
            self._enumerations.pop(self._context_of(request), None)
            return self.replies.empty(ns.ENUMERATION + "/ReleaseResponse", mid, uri)
        if operation in ("Create", "Delete"):
            raise DeviceFault("ActionNotSupported", f"{operation} {request.class_name}")
        return self._invoke(request, resource, operation, caller)

    def _enumerate(self, request: WsmanRequest, resource: Resource, caller: Caller) -> bytes:
        context = secrets.token_hex(16)
        self._enumerations[context] = _Enumeration(caller.username, request.class_name,
                                                   list(resource.instances(caller)))
        while len(self._enumerations) > MAX_CONTEXTS:
            self._enumerations.popitem(last=False)
        return self.replies.enumerate(request.message_id, request.resource_uri, context)

    @staticmethod
    def _context_of(request: WsmanRequest) -> str:
        if request.body is None:
            return ""
        return (request.body.findtext(f"{{{ns.ENUMERATION}}}EnumerationContext") or "").strip()

    def _pull(self, request: WsmanRequest, caller: Caller) -> bytes:
        context = self._context_of(request)
        enumeration = self._enumerations.get(context)
        if (enumeration is None or enumeration.owner != caller.username
                or enumeration.class_name != request.class_name):
            raise DeviceFault("InvalidEnumerationContext", context[:64])
        text = request.body.findtext(f"{{{ns.ENUMERATION}}}MaxElements") if request.body \
            is not None else None
        try:
            wanted = int(text) if text else 1
        except ValueError:
            raise DeviceFault("SchemaValidationError", "MaxElements is not a number") from None
        count = max(1, min(wanted, self.pull_page_size))
        page, enumeration.items = enumeration.items[:count], enumeration.items[count:]
        if not enumeration.items:
            del self._enumerations[context]
            context_out = None
        else:
            context_out = context
        return self.replies.pull(request.message_id, request.resource_uri, page, context_out)

    def _invoke(self, request: WsmanRequest, resource: Resource, method: str,
                caller: Caller) -> bytes:
        handler = resource.methods.get(method)
        if handler is None:
            raise DeviceFault("ActionNotSupported", f"{request.class_name}.{method}")
        body = request.body
        if body is None or body.tag != f"{{{request.resource_uri}}}{method}_INPUT":
            raise DeviceFault("SchemaValidationError", f"{method}_INPUT missing or misplaced")
        result = handler(instance_from_element(body), caller)
        return self.replies.method(method, request.message_id, request.resource_uri,
                                   result.outputs, result.return_value)
