"""Bad input and faults at the web service: malformed and oversize WebSocket messages,
oversize bodies, forged and stale commands, a database that is down."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from pathlib import Path

import aiohttp
import pytest

from meshagent import codec
from meshagent.cli.api_client import ApiError
from meshagent.commands import Target
from meshagent.server.db import DatabaseUnavailable, NodeFilter, open_database
from meshagent.server.protocol import (
    MAX_UPLINK_MESSAGE_BYTES,
    Close,
    LeaderAuth,
    decode_message,
    encode_message,
    sign_leader_auth,
)
from meshagent.server.testkit import SimulatedMesh
from meshagent.signing import Signed
from tests.polling import wait_for

from .conftest import Harness, postgres_dsn, reset_postgres


async def _raw_leader(harness: Harness, login: bool = True, term: int = 1):
    """A hand-driven leader connection, to send what the real uplink never would."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=aiohttp.Fingerprint(harness.pin)))
    ws = await http.ws_connect(f"{harness.url}/uplink", max_msg_size=4 * MAX_UPLINK_MESSAGE_BYTES)
    _, challenge = decode_message((await ws.receive()).data)
    if login:
        node = harness.mesh.nodes[0]
        auth = LeaderAuth(challenge["nonce"], harness.pin, harness.mesh.mesh_id, node.node_id,
                          term)
        await ws.send_bytes(encode_message("hello", cert=node.cert.to_wire(), term=term,
                                           auth=sign_leader_auth(node.identity.sign_key,
                                                                 auth).to_wire()))
        kind, _ = decode_message((await ws.receive()).data)
        assert kind == "welcome"
    return http, ws


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING):
            return ws.close_code


@pytest.mark.parametrize("frame", [
    "text frame",
    b"\xc1 not msgpack",
    codec.pack([1, 2, 3]),
    encode_message("launch-missiles"),
    encode_message("inventory", full="yes", nodes=[]),
    encode_message("results", items=[{"id": b"short", "node": b"x"}]),
])
async def test_malformed_message_closes_the_session_and_stores_nothing(
        harness: Harness, frame: bytes | str) -> None:
    http, ws = await _raw_leader(harness)
    try:
        if isinstance(frame, str):
            await ws.send_str(frame)
        else:
            await ws.send_bytes(frame)
        assert await _close_code(ws) == Close.MALFORMED
    finally:
        await http.close()
    assert await harness.service.db.nodes(NodeFilter()) == []
    assert await harness.service.db.results() == []


async def test_malformed_hello_is_refused(harness: Harness) -> None:
    http, ws = await _raw_leader(harness, login=False)
    try:
        await ws.send_bytes(encode_message("hello", cert=b"junk", term=1, auth=b"junk"))
        assert await _close_code(ws) == Close.MALFORMED
    finally:
        await http.close()


async def test_login_signed_for_another_challenge_is_refused(harness: Harness) -> None:
    http, ws = await _raw_leader(harness, login=False)
    node = harness.mesh.nodes[0]
    replayed = LeaderAuth(b"\0" * 32, harness.pin, harness.mesh.mesh_id, node.node_id, 1)
    try:
        await ws.send_bytes(encode_message("hello", cert=node.cert.to_wire(), term=1,
                                           auth=sign_leader_auth(node.identity.sign_key,
                                                                 replayed).to_wire()))
        assert await _close_code(ws) == Close.AUTH_FAILED
    finally:
        await http.close()


async def test_leader_of_an_unknown_mesh_is_refused(harness: Harness) -> None:
    stranger = SimulatedMesh.create(1)
    http, ws = await _raw_leader(harness, login=False)
    node = stranger.nodes[0]
    try:
        nonce = b"\0" * 32
        auth = LeaderAuth(nonce, harness.pin, stranger.mesh_id, node.node_id, 1)
        await ws.send_bytes(encode_message("hello", cert=node.cert.to_wire(), term=1,
                                           auth=sign_leader_auth(node.identity.sign_key,
                                                                 auth).to_wire()))
        assert await _close_code(ws) == Close.UNKNOWN_MESH
    finally:
        await http.close()


async def test_oversize_message_is_refused(harness: Harness) -> None:
    http, ws = await _raw_leader(harness)
    try:
        await ws.send_bytes(encode_message("inventory", full=True, nodes=[],
                                           pad=b"x" * (MAX_UPLINK_MESSAGE_BYTES + 1)))
        assert await _close_code(ws) == Close.MESSAGE_TOO_BIG
    finally:
        await http.close()


async def test_forged_record_is_dropped_and_the_rest_stored(harness: Harness) -> None:
    victim, liar = harness.mesh.nodes[1], harness.mesh.nodes[2]
    http, ws = await _raw_leader(harness)
    try:
        await ws.send_bytes(encode_message("inventory", full=True, nodes=[
            {"node": victim.node_id, "state": "alive", "seen": 1.0, "record": liar.record.wire},
            {"node": liar.node_id, "state": "alive", "seen": 1.0, "record": liar.record.wire}]))
        await wait_for(lambda: harness.service.db.node(liar.node_id))
    finally:
        await http.close()
    assert await harness.service.db.node(victim.node_id) is None


async def test_oversize_request_body_is_refused(harness: Harness) -> None:
    with pytest.raises(ApiError) as error:
        await harness.call("POST", "/api/commands", {"command": "A" * 400_000})
    assert error.value.status == 413


async def test_forged_command_is_refused_at_submit_with_an_audit_entry(
        harness: Harness) -> None:
    signed = harness.mesh.command(Target.node(harness.mesh.nodes[1].node_id))
    envelope = signed.envelope()
    tampered = dataclasses.replace(signed, command=Signed(
        signed.command.kind, signed.command.body.replace(b"ping", b"pong"),
        signed.command.signer, signed.command.signature))
    with pytest.raises(ApiError) as error:
        await harness.submit(tampered.to_wire())
    assert (error.value.status, error.value.code) == (403, "forged")
    audit = await harness.service.db.audit_log(command_id=envelope.id)
    assert [(a.event, a.detail["reason"]) for a in audit] == [("command_refused", "forged")]
    assert await harness.service.db.commands() == []


async def test_command_of_an_operator_from_another_root_is_refused(harness: Harness) -> None:
    other = SimulatedMesh.create(1)
    foreign = dataclasses.replace(harness.mesh.command(Target.all()),
                                  operator_cert=other.operator_cert.signed)
    with pytest.raises(ApiError) as error:
        await harness.submit(foreign.to_wire())
    assert (error.value.status, error.value.code) == (403, "unknown_operator")


async def test_malformed_command_submission_is_a_bad_request(harness: Harness) -> None:
    for body in ({"command": "%%%"}, {"command": base64.b64encode(b"junk").decode()}):
        with pytest.raises(ApiError) as error:
            await harness.call("POST", "/api/commands", body)
        assert error.value.status == 400


async def test_unreachable_database_is_a_clear_error(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        url = f"sqlite://{tmp_path}/missing-dir/service.db"
    else:
        url = "postgresql://postgres@127.0.0.1:1/none"
    with pytest.raises(DatabaseUnavailable, match="cannot open"):
        await open_database(url)


@pytest.mark.postgres
async def test_database_outage_answers_503_and_keeps_results_until_stored(
        sim_mesh: SimulatedMesh, tls: tuple[Path, bytes], tmp_path: Path) -> None:
    import psycopg

    dsn = postgres_dsn()
    reset_postgres(dsn)
    harness = Harness(dsn, sim_mesh, tls, tmp_path)
    await harness.start()
    try:
        leader = harness.leader(term=1)
        await leader.connected()
        await wait_for(lambda: _known(harness))
        target = sim_mesh.nodes[1]
        await harness.submit(sim_mesh.command(Target.node(target.node_id)).to_wire())
        delivered = await asyncio.wait_for(leader.delivered.get(), 10)

        # Cut the service's database connection, as a PostgreSQL restart would.
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE pid <> pg_backend_pid() AND datname = current_database()")
        with pytest.raises(ApiError) as error:
            await harness.call("GET", "/api/nodes")
        assert (error.value.status, error.value.code) == (503, "database_unavailable")

        # The next call reconnects; the result sent meanwhile is stored exactly once.
        assert leader.uplink is not None
        await leader.uplink.send_result(delivered.command_id, target.node_id,
                                        target.result(delivered.command_id))
        await wait_for(lambda: len(leader.uplink.spool) == 0)
        results = await harness.service.db.results(command_id=delivered.command_id)
        assert len(results) == 1
    finally:
        for leader in harness.leaders:
            await leader.stop()
        await harness.stop()


async def _known(harness: Harness) -> bool:
    return len(await harness.service.db.nodes(NodeFilter())) == len(harness.mesh.nodes)
