"""The REST API the console page and ``meshctl`` use: login, filters, views, the
console's own signing, certificate pinning, live change notices."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from meshagent.cli.api_client import ApiClient, ApiError, PinMismatch
from tests.polling import wait_for

from .conftest import ADMIN_PASSWORD, Harness


async def _ready(harness: Harness) -> None:
    leader = harness.leader(term=1, answer=True)
    await leader.connected()
    await wait_for(lambda: _count(harness))


async def _count(harness: Harness) -> bool:
    nodes = await harness.call("GET", "/api/nodes")
    return len(nodes) == len(harness.mesh.nodes)


async def test_api_needs_a_login(harness: Harness) -> None:
    for token in (None, "wrong password"):
        with pytest.raises(ApiError) as error:
            await asyncio.to_thread(harness.api(token).nodes)
        assert error.value.status == 401
    info = await asyncio.to_thread(harness.api(None).get, "/api/info")
    assert info["cert_sha256"] == harness.pin.hex()


async def test_session_cookie_from_login_opens_the_api(harness: Harness) -> None:
    client = harness.api(None)
    with pytest.raises(ApiError):
        await asyncio.to_thread(client.post, "/api/login", {"password": "nope"})
    answer = await asyncio.to_thread(client.post, "/api/login", {"password": ADMIN_PASSWORD})
    session = harness.api(answer["token"])
    assert await asyncio.to_thread(session.meshes) != []


async def test_wrong_pin_is_refused_before_the_token_is_sent(harness: Harness) -> None:
    impostor = ApiClient(harness.url, bytes(32), ADMIN_PASSWORD)
    with pytest.raises(PinMismatch):
        await asyncio.to_thread(impostor.nodes)


async def test_node_filters(harness: Harness) -> None:
    await _ready(harness)
    api = harness.api()
    by_tag = await asyncio.to_thread(api.nodes, tag="index=1")
    assert [n["record"]["hostname"] for n in by_tag] == ["node-001"]
    assert len(await asyncio.to_thread(api.nodes, tag="site")) == 4
    by_text = await asyncio.to_thread(api.nodes, q="NODE-003")
    assert [n["record"]["hostname"] for n in by_text] == ["node-003"]
    assert await asyncio.to_thread(api.nodes, state="asleep") == []
    node_id = by_text[0]["node"]
    detail = await asyncio.to_thread(api.get, f"/api/nodes/{node_id}")
    assert detail["record_wire"] and detail["state"] == "alive"
    with pytest.raises(ApiError) as error:
        await asyncio.to_thread(api.get, f"/api/nodes/{'00' * 16}")
    assert error.value.status == 404


async def test_meshes_show_their_leader_and_node_counts(harness: Harness) -> None:
    await _ready(harness)
    meshes = await harness.call("GET", "/api/meshes")
    assert len(meshes) == 1
    assert meshes[0]["leader"]["connected"] is True
    assert meshes[0]["nodes"] == {"alive": 4}
    assert meshes[0]["console_can_sign"] is True


async def test_console_command_is_signed_by_the_console_key_and_runs(harness: Harness) -> None:
    await _ready(harness)
    target = harness.mesh.nodes[1].node_id.hex()
    answer = await harness.call("POST", "/api/console/commands", {
        "mesh": harness.mesh.mesh_id.hex(), "target": {"nodes": [target]}, "action": "ping",
        "args": {}, "ttl": 60})
    assert answer["nodes"] == [target]
    status = await wait_for(lambda: _done(harness, answer["id"]))
    assert status["results"][0]["status"] == "ok"
    audit = await harness.call("GET", "/api/audit", command=answer["id"])
    submitted = next(a for a in audit if a["event"] == "command_submitted")
    assert submitted["actor"].startswith("console:admin@")
    assert submitted["detail"]["operator"] == "web-console"


async def _done(harness: Harness, command_id: str):
    status = await harness.call("GET", f"/api/commands/{command_id}")
    return status if status["targets"][0]["state"] == "done" else None


async def test_console_command_with_a_bad_target_is_a_bad_request(harness: Harness) -> None:
    with pytest.raises(ApiError) as error:
        await harness.call("POST", "/api/console/commands", {
            "mesh": harness.mesh.mesh_id.hex(), "target": {"nodes": ["zz"]}, "action": "ping"})
    assert error.value.status == 400


async def test_tag_target_matching_nothing_is_refused(harness: Harness) -> None:
    await _ready(harness)
    with pytest.raises(ApiError) as error:
        await harness.call("POST", "/api/console/commands", {
            "mesh": harness.mesh.mesh_id.hex(), "target": {"tags": {"site": "mars"}},
            "action": "ping"})
    assert (error.value.status, error.value.code) == (422, "no_matching_node")


async def test_event_feed_announces_changes(harness: Harness) -> None:
    connector = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(harness.pin))
    async with aiohttp.ClientSession(connector=connector, headers={
            "Authorization": f"Bearer {ADMIN_PASSWORD}"}) as http:
        async with http.get(f"{harness.url}/api/events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert await response.content.readline() == b"data: hello\n"
            await response.content.readline()
            leader = harness.leader(term=1)
            await leader.connected()
            topics = set()
            while "nodes" not in topics:
                line = await asyncio.wait_for(response.content.readline(), 10)
                if line.startswith(b"data: "):
                    topics.add(line[6:].strip().decode())
            assert "leaders" in topics


async def test_repeated_wrong_passwords_are_throttled(harness: Harness) -> None:
    client = harness.api(None)
    statuses = []
    for _ in range(12):
        try:
            await asyncio.to_thread(client.post, "/api/login", {"password": "guess"})
        except ApiError as error:
            statuses.append(error.status)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    with pytest.raises(ApiError) as error:  # even the right password waits out the window
        await asyncio.to_thread(client.post, "/api/login", {"password": ADMIN_PASSWORD})
    assert error.value.status == 429
