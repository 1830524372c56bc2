"""Hostile and broken devices and requests: typed errors, bounded time and memory, no crash."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from amt_support import ADMIN_PASSWORD, FixtureTransport, fixture_bytes

from amt import AmtClient, AmtFault, AmtTimeout, MalformedResponse
from amt.device import SoftwareAmtDevice
from amt.errors import fault_class
from amt.operations.storage import StorageSession
from amt.wsman.client import WsmanClient
from amt.wsman.digest import DigestChallenge, DigestSigner

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope"><a:Body>&lol3;</a:Body></a:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope"><a:Body>&e;</a:Body></a:Envelope>"""
SOAP11 = fixture_bytes("general_settings_get").replace(
    b"http://www.w3.org/2003/05/soap-envelope", b"http://schemas.xmlsoap.org/soap/envelope/")
UNKNOWN_FAULT = fixture_bytes("fault_access_denied").replace(b"e:AccessDenied",
                                                            b"e:SomethingNobodyKnows")


class HostileDevice:
    """An HTTP server whose reply to /wsman is whatever the test sets."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = self.reply(200, b"")
        self.port = 0
        self.released = asyncio.Event()  # set at teardown: stalling handlers return

    @staticmethod
    def reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
        async def answer(request: web.Request) -> web.StreamResponse:
            await request.read()
            return web.Response(status=status, body=body, headers=headers)
        return answer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        return await self.behaviour(request)


@pytest.fixture
async def hostile() -> AsyncIterator[HostileDevice]:
    device = HostileDevice()
    app = web.Application()
    app.router.add_post("/wsman", device.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    device.port = runner.addresses[0][1]
    yield device
    device.released.set()
    await runner.cleanup()


def client(port: int, timeout: float = 3.0) -> AmtClient:
    return AmtClient("127.0.0.1", port, "admin", "pw", timeout=timeout)


@pytest.mark.parametrize("body", [
    BILLION_LAUGHS, EXTERNAL_ENTITY, SOAP11, b"", b"\x00\xff garbage",
    fixture_bytes("general_settings_get")[:400],  # truncated
    b"<a:Envelope xmlns:a='http://www.w3.org/2003/05/soap-envelope'/>",  # no Body
    b"<html><body>It works!</body></html>",
], ids=["billion-laughs", "external-entity", "soap11-namespace", "empty", "binary",
        "truncated", "no-body", "html"])
async def test_hostile_or_broken_reply_is_malformed_response(hostile, body):
    hostile.behaviour = HostileDevice.reply(200, body)
    started = time.monotonic()
    async with client(hostile.port) as amt:
        with pytest.raises(MalformedResponse):
            await amt.general_settings()
    assert time.monotonic() - started < 2


async def test_unknown_fault_subcode_is_a_plain_amt_fault(hostile):
    hostile.behaviour = HostileDevice.reply(500, UNKNOWN_FAULT)
    async with client(hostile.port) as amt:
        with pytest.raises(AmtFault) as info:
            await amt.general_settings()
    assert type(info.value) is AmtFault and info.value.subcode == "SomethingNobodyKnows"
    assert info.value.http_status == 500
    assert fault_class("SomethingNobodyKnows") is AmtFault


@pytest.mark.parametrize("status,headers", [
    (401, {}), (401, {"WWW-Authenticate": 'Basic realm="x"'}), (404, {}), (302, {"Location": "/"}),
])
async def test_unexpected_status_or_challenge_is_malformed(hostile, status, headers):
    hostile.behaviour = HostileDevice.reply(status, b"", headers)
    async with client(hostile.port) as amt:
        with pytest.raises(MalformedResponse):
            await amt.general_settings()


async def test_huge_streamed_reply_is_cut_off_in_bounded_memory(hostile):
    async def flood(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"<x>" + b"A" * 65_536 + b"</x>"
        try:
            for _ in range(800):  # ~50 MB if nobody stops reading
                await response.write(chunk)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response
    hostile.behaviour = flood
    tracemalloc.start()
    started = time.monotonic()
    try:
        async with client(hostile.port) as amt:
            with pytest.raises(MalformedResponse, match="exceeds"):
                await amt.general_settings()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < 24 * 1024 * 1024


async def test_declared_huge_reply_is_refused_before_reading(hostile):
    async def declare(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(10**9)})
        await response.prepare(request)
        await response.write(b"<")
        await hostile.released.wait()
        return response
    hostile.behaviour = declare
    async with client(hostile.port) as amt:
        with pytest.raises(MalformedResponse, match="exceeds"):
            await amt.general_settings()


async def test_device_that_never_answers_is_a_timeout():
    released = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65_536)
        await released.wait()  # hold the connection open, say nothing
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        async with client(port, timeout=0.5) as amt:
            with pytest.raises(AmtTimeout):
                await amt.get_power_state()
    finally:
        released.set()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 3


async def test_device_that_stalls_mid_reply_is_a_timeout(hostile):
    async def dribble(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(fixture_bytes("general_settings_get")[:100])
        await hostile.released.wait()
        return response
    hostile.behaviour = dribble
    async with client(hostile.port, timeout=0.5) as amt:
        with pytest.raises(AmtTimeout):
            await amt.general_settings()


async def test_garbage_block_data_is_malformed(hostile):
    hostile.behaviour = HostileDevice.reply(200, fixture_bytes("tpds_read_block").replace(
        b"bWVzaCByZWNvcmQh", b"!!not base64!!"))
    async with client(hostile.port) as amt:
        with pytest.raises(MalformedResponse):
            await StorageSession(amt.wsman, "1A2B3C4D", 4096).read_block(6, 0, 12)


# ---- the device facing hostile clients ------------------------------------------------

def sign_as_admin(device: SoftwareAmtDevice) -> str:
    """A valid Authorization header for one request, from a nonce the device issued."""
    signer = DigestSigner("admin", ADMIN_PASSWORD)
    signer.accept(DigestChallenge.parse(device.guard.challenge()))
    return signer.authorization("POST", "/wsman")[0]


async def post(port: int, body: bytes, authorization: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/soap+xml"}
    if authorization:
        headers["Authorization"] = authorization
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/wsman", data=body,
                                headers=headers) as response:
            return response.status, await response.read()


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, b"garbage", SOAP11,
                                  b"<a:Envelope xmlns:a='http://www.w3.org/2003/05/soap-envelope'>"
                                  b"<a:Header/><a:Body/></a:Envelope>"],
                         ids=["billion-laughs", "external-entity", "garbage", "soap11",
                              "no-headers"])
async def test_device_answers_hostile_requests_with_a_fault_and_keeps_serving(device, admin,
                                                                                body):
    status, reply = await post(device.port, body, sign_as_admin(device))
    assert status == 400
    assert b"<a:Fault>" in reply
    assert (await admin.general_settings()).hostname == "amt-sim"


@pytest.mark.parametrize("authorization", [
    "Digest " + "x" * 6_000, 'Digest username="admin"', "Basic YWRtaW46cHc=",
    'Digest username="admin", realm="Digest:0", nonce="n", uri="/wsman", response="r", '
    'qop=auth, nc=zz, cnonce="c"',
])
async def test_device_refuses_malformed_authorization_with_a_challenge(device, authorization):
    status, _ = await post(device.port, b"<x/>", authorization)
    assert status == 401


async def test_device_refuses_oversized_requests(device):
    status, _ = await post(device.port, b"<a>" + b"x" * 400_000 + b"</a>",
                           sign_as_admin(device))
    assert status == 413


async def test_sequence_that_never_ends_is_cut_off():
    pages = ["software_identity_pull_page1"] * 6
    wsman = WsmanClient(FixtureTransport("software_identity_enumerate", *pages), max_pulls=5)
    with pytest.raises(MalformedResponse, match="no EndOfSequence after 5 pulls"):
        await wsman.enumerate("CIM_SoftwareIdentity")


@pytest.mark.parametrize("user", ['ad"min', "ad\\min", "ad\r\nmin", ""])
def test_user_names_that_would_break_the_digest_header_are_refused(user):
    with pytest.raises(ValueError):
        AmtClient("127.0.0.1", 16992, user, "pw")
