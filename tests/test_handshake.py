import asyncio
import contextlib
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshagent import codec
from meshagent.core import AuthenticationError, Frame, RekeyRequired, ReplayError
from meshagent.handshake import (
    HandshakeAborted,
    HandshakeAuthenticationFailed,
    HandshakeError,
    HandshakeReplayed,
    HandshakeTimeout,
    HandshakeWrongMesh,
    Initiator,
    MalformedHandshake,
    PeerCertificateRejected,
    PeerMismatch,
    ReplayGuard,
    Responder,
    SessionKeys,
    StaticKeyMismatch,
    initiate,
    open_session,
    respond,
    tunnel_for,
)
from meshagent.identity import (
    CertificateExpired,
    CertificateRevoked,
    JoinTokenReused,
    MeshRoot,
    NodeCredentials,
    NodeIdentity,
    RedeemedTokens,
    WrongMesh,
    X25519Key,
    redeem_join_token,
)


@pytest.fixture(scope="module")
def root() -> MeshRoot:
    return MeshRoot.create()


def member(root: MeshRoot, hostname: str = "node", **kw) -> NodeCredentials:
    identity = NodeIdentity.generate()
    args = {"roles": ["agent"], "hostname": hostname, "lifetime_s": 3600}
    args.update(kw)
    cert = root.issue_certificate(identity.sign_public, identity.dh_public, **args)
    return NodeCredentials(identity, cert, root.trust)


def forged_credentials(identity: NodeIdentity, cert, trust) -> NodeCredentials:
    """What an attacker's own tooling builds: credentials whose keys do not match."""
    creds = object.__new__(NodeCredentials)
    for name, value in (("identity", identity), ("certificate", cert), ("trust", trust)):
        object.__setattr__(creds, name, value)
    return creds


@pytest.fixture
def label(request) -> str:
    # The handshake log is rate limited per (peer, reason): one label per test.
    return request.node.name


@pytest.fixture(scope="module")
def alice(root) -> NodeCredentials:
    return member(root, "alice")


@pytest.fixture(scope="module")
def bob(root) -> NodeCredentials:
    return member(root, "bob")


def run(initiator: Initiator, responder: Responder) -> tuple[SessionKeys, SessionKeys]:
    second = responder.respond(initiator.start())
    third, initiator_keys = initiator.finish(second)
    return initiator_keys, responder.finish(third)


def test_both_sides_agree_on_keys_and_learn_each_other(alice, bob):
    ikeys, rkeys = run(Initiator(alice), Responder(bob))
    assert ikeys.send_key == rkeys.recv_key and ikeys.recv_key == rkeys.send_key
    assert ikeys.send_key != ikeys.recv_key and len(ikeys.send_key) == 32
    assert ikeys.handshake_hash == rkeys.handshake_hash
    assert ikeys.peer.node_id == bob.identity.node_id
    assert rkeys.peer.node_id == alice.identity.node_id
    assert ikeys.initiator and not rkeys.initiator
    assert "send_key" not in repr(ikeys)


def test_two_sessions_between_the_same_nodes_have_different_keys(alice, bob):
    first, _ = run(Initiator(alice), Responder(bob))
    second, _ = run(Initiator(alice), Responder(bob))
    assert first.send_key != second.send_key


def test_expected_node_is_accepted(alice, bob):
    keys, _ = run(Initiator(alice, expect_node_id=bob.identity.node_id), Responder(bob))
    assert keys.peer.hostname == "bob"


def test_rekeyed_keys_match_on_both_sides_and_differ_from_before(alice, bob):
    ikeys, rkeys = run(Initiator(alice), Responder(bob))
    inext, rnext = ikeys.rekeyed(), rkeys.rekeyed()
    assert inext.send_key == rnext.recv_key and inext.recv_key == rnext.send_key
    assert inext.send_key != ikeys.send_key and inext.epoch == 1
    assert inext.rekeyed().send_key != inext.send_key


def test_tunnels_from_the_keys_carry_frames_both_ways(alice, bob):
    ikeys, rkeys = run(Initiator(alice), Responder(bob))
    left, right = tunnel_for(ikeys), tunnel_for(rkeys)
    frame = Frame(type=1, src=alice.identity.node_id, dst=bob.identity.node_id, payload=b"hi")
    assert right.open(left.seal(frame)).payload == b"hi"
    assert left.open(right.seal(Frame(type=2, payload=b"back"))).payload == b"back"


def test_tunnel_limit_leads_to_rekeyed_tunnels_that_interoperate(alice, bob):
    ikeys, rkeys = run(Initiator(alice), Responder(bob))
    sender, receiver = tunnel_for(ikeys, rekey_after_messages=1), tunnel_for(rkeys)
    receiver.open(sender.seal(Frame(type=1, payload=b"one")))
    with pytest.raises(RekeyRequired):
        sender.seal(Frame(type=1, payload=b"two"))
    next_sender, next_receiver = tunnel_for(ikeys.rekeyed()), tunnel_for(rkeys.rekeyed())
    first, second = (next_sender.seal(Frame(type=1, payload=p)) for p in (b"two", b"three"))
    # The old epoch cannot read the new one: counter 0 is a replay to its window, counter 1
    # fails the tag; either way the receiver then tries the next epoch.
    with pytest.raises(ReplayError):
        receiver.open(first)
    with pytest.raises(AuthenticationError):
        receiver.open(second)
    assert next_receiver.open(first).payload == b"two"
    assert next_receiver.open(second).payload == b"three"


def test_token_joined_node_completes_a_handshake(root, bob):
    token = root.issue_join_token(["agent"], lifetime_s=600)
    joined = redeem_join_token(token.encode(), NodeIdentity.generate(), "newbie")
    redeemed = RedeemedTokens()
    _, rkeys = run(Initiator(joined), Responder(bob, redeemed=redeemed))
    assert rkeys.peer.via_token and redeemed.owner(token.token_id) == joined.identity.node_id


def test_second_node_on_the_same_token_is_refused(root, bob, caplog, label):
    token = root.issue_join_token(["agent"], lifetime_s=600).encode()
    first = redeem_join_token(token, NodeIdentity.generate(), "first")
    second = redeem_join_token(token, NodeIdentity.generate(), "second")
    redeemed = RedeemedTokens()
    run(Initiator(first), Responder(bob, redeemed=redeemed))
    with caplog.at_level(logging.WARNING), pytest.raises(PeerCertificateRejected) as err:
        run(Initiator(second), Responder(bob, redeemed=redeemed, peer_label=label))
    assert isinstance(err.value.reason, JoinTokenReused)
    assert "handshake_rejected" in caplog.text and label in caplog.text


# -- negative tests: each a typed error and a log line ----------------------------------

def test_initiator_from_another_mesh_is_refused(bob, caplog, label):
    stranger = member(MeshRoot.create(), "stranger")
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeWrongMesh):
        Responder(bob, peer_label=label).respond(Initiator(stranger).start())
    assert "handshake_rejected" in caplog.text and "HandshakeWrongMesh" in caplog.text


def test_certificate_of_another_mesh_behind_a_matching_hello_is_refused(root, bob, caplog,
                                                                       label):
    # The attacker speaks our mesh id in the hello and prologue, but its certificate
    # was signed by another mesh's root.
    outsider = member(MeshRoot.create(), "outsider")
    liar = NodeCredentials(outsider.identity, outsider.certificate, root.trust)
    with caplog.at_level(logging.WARNING), pytest.raises(PeerCertificateRejected) as err:
        run(Initiator(liar), Responder(bob, peer_label=label))
    assert isinstance(err.value.reason, WrongMesh)
    assert "PeerCertificateRejected/WrongMesh" in caplog.text


def test_responder_from_another_mesh_is_refused_by_the_initiator(root, alice, caplog, label):
    outsider = member(MeshRoot.create(), "outsider")
    liar = NodeCredentials(outsider.identity, outsider.certificate, root.trust)
    initiator = Initiator(alice, peer_label=label)
    second = Responder(liar).respond(initiator.start())
    with caplog.at_level(logging.WARNING), pytest.raises(PeerCertificateRejected) as err:
        initiator.finish(second)
    assert isinstance(err.value.reason, WrongMesh) and "handshake_rejected" in caplog.text


def test_expired_certificate_is_refused(root, bob, caplog, label):
    old = member(root, "old", lifetime_s=60, now=time.time() - 3600)
    with caplog.at_level(logging.WARNING), pytest.raises(PeerCertificateRejected) as err:
        run(Initiator(old), Responder(bob, peer_label=label))
    assert isinstance(err.value.reason, CertificateExpired)
    assert "CertificateExpired" in caplog.text


def test_revoked_certificate_is_refused_by_either_side(root, alice, bob, caplog, label):
    revoked = member(root, "revoked")
    revocations = root.revoke(serials=[revoked.certificate.serial])
    with caplog.at_level(logging.WARNING), pytest.raises(PeerCertificateRejected) as err:
        run(Initiator(revoked), Responder(bob, revocations=revocations, peer_label=label))
    assert isinstance(err.value.reason, CertificateRevoked)
    by_node = root.revoke(node_ids=[revoked.identity.node_id])
    with pytest.raises(PeerCertificateRejected) as err:
        run(Initiator(alice, revocations=by_node, peer_label=label), Responder(revoked))
    assert isinstance(err.value.reason, CertificateRevoked)
    assert "CertificateRevoked" in caplog.text


def test_replayed_first_message_is_refused(alice, bob, caplog, label):
    guard = ReplayGuard()
    first = Initiator(alice).start()
    Responder(bob, replay_guard=guard).respond(first)
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeReplayed):
        Responder(bob, replay_guard=guard, peer_label=label).respond(first)
    assert "HandshakeReplayed" in caplog.text


def test_stale_first_message_is_refused(alice, bob, caplog, label):
    stale = Initiator(alice, clock=lambda: time.time() - 3600).start()
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeReplayed):
        Responder(bob, replay_guard=ReplayGuard(), peer_label=label).respond(stale)
    assert "HandshakeReplayed" in caplog.text


def test_replay_guard_forgets_old_keys_and_stays_bounded():
    guard = ReplayGuard(window_s=10, capacity=3)
    now = 1000.0
    for index in range(5):
        guard.check(bytes([index]) * 32, int(now * 1000), now)
    assert len(guard._seen) == 3
    guard.check(bytes(32), int((now + 25) * 1000), now + 25)  # old entries expired
    assert len(guard._seen) == 1


def test_final_message_replayed_into_a_new_session_is_refused(alice, bob, caplog, label):
    initiator, responder = Initiator(alice), Responder(bob)
    third, _ = initiator.finish(responder.respond(initiator.start()))
    responder.finish(third)
    victim = Responder(bob, peer_label=label)
    victim.respond(Initiator(alice).start())
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAuthenticationFailed):
        victim.finish(third)
    assert "HandshakeAuthenticationFailed" in caplog.text


def test_second_message_replayed_to_a_new_initiator_is_refused(alice, bob, caplog, label):
    old_second = Responder(bob).respond(Initiator(alice).start())
    fresh = Initiator(alice, peer_label=label)
    fresh.start()
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAuthenticationFailed):
        fresh.finish(old_second)
    assert "handshake_rejected" in caplog.text


@pytest.mark.parametrize("position", [40, 60, 100, -1])
def test_tampered_second_message_is_refused(alice, bob, caplog, label, position):
    initiator = Initiator(alice, peer_label=f"{label}")
    second = bytearray(Responder(bob).respond(initiator.start()))
    second[position] ^= 0x80
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAuthenticationFailed):
        initiator.finish(bytes(second))
    assert "handshake_rejected" in caplog.text


@pytest.mark.parametrize("position", [0, 47, 48, -1])
def test_tampered_final_message_is_refused(alice, bob, caplog, label, position):
    initiator, responder = Initiator(alice), Responder(bob, peer_label=label)
    third, _ = initiator.finish(responder.respond(initiator.start()))
    tampered = bytearray(third)
    tampered[position] ^= 0x01
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAuthenticationFailed):
        responder.finish(bytes(tampered))
    assert "handshake_rejected" in caplog.text


def test_tampered_hello_breaks_the_handshake(alice, bob, caplog, label):
    initiator = Initiator(alice, peer_label=label)
    first = bytearray(initiator.start())
    # The hello is sent in clear but hashed into the transcript. Its map is
    # {"mesh", "ts", "v": 1} in key order, so byte -4 is the timestamp's lowest byte.
    first[-4] ^= 0x01
    second = Responder(bob).respond(bytes(first))
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAuthenticationFailed):
        initiator.finish(second)
    assert "handshake_rejected" in caplog.text


def test_man_in_the_middle_swapping_the_ephemeral_key_is_detected(alice, bob, caplog, label):
    initiator = Initiator(alice, peer_label=label)
    first = initiator.start()
    attacker_e = X25519Key.generate()
    second = Responder(bob).respond(attacker_e.public + first[32:])
    with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAuthenticationFailed):
        initiator.finish(second)
    assert "handshake_rejected" in caplog.text


def test_man_in_the_middle_presenting_another_nodes_certificate_is_detected(
        root, alice, bob, caplog, label):
    # The attacker has its own static key and replays bob's (valid) certificate.
    impostor = forged_credentials(NodeIdentity.generate(), bob.certificate, root.trust)
    with caplog.at_level(logging.WARNING), pytest.raises(StaticKeyMismatch):
        run(Initiator(alice, peer_label=label), Responder(impostor))
    with pytest.raises(StaticKeyMismatch):
        run(Initiator(impostor), Responder(bob, peer_label=label))
    assert "StaticKeyMismatch" in caplog.text


def test_member_impersonating_the_dialled_node_is_detected(root, alice, bob, caplog, label):
    mallory = member(root, "mallory")
    with caplog.at_level(logging.WARNING), pytest.raises(PeerMismatch):
        run(Initiator(alice, expect_node_id=bob.identity.node_id, peer_label=label),
            Responder(mallory))
    assert "PeerMismatch" in caplog.text


def test_certificate_whose_dh_key_is_not_the_static_key_is_refused(root, bob, caplog, label):
    identity = NodeIdentity.generate()
    cert = root.issue_certificate(identity.sign_public, X25519Key.generate().public,
                                  ["agent"], "mismatched", 3600)
    sloppy = forged_credentials(identity, cert, root.trust)
    with caplog.at_level(logging.WARNING), pytest.raises(StaticKeyMismatch):
        run(Initiator(sloppy), Responder(bob, peer_label=label))
    assert "StaticKeyMismatch" in caplog.text


@pytest.mark.parametrize("message", [b"", b"\x00" * 31, b"\x01" * 32 + b"\xc1",
                                     b"\x02" * 32 + codec.pack({"v": 1})])
def test_malformed_first_message_is_a_typed_error(bob, message, label):
    with pytest.raises(MalformedHandshake):
        Responder(bob, peer_label=label).respond(message)


def test_low_order_ephemeral_key_is_refused(alice, bob, label):
    hello = Initiator(alice).start()[32:]
    with pytest.raises(MalformedHandshake):
        Responder(bob, peer_label=label).respond(bytes(32) + hello)


def test_out_of_order_use_is_a_handshake_error(alice, bob):
    responder = Responder(bob)
    with pytest.raises(HandshakeError):
        responder.finish(b"\x00" * 64)


# -- over real sockets ------------------------------------------------------------------

@contextlib.asynccontextmanager
async def connected_to(on_client):
    """(reader, writer) of a connection to a loopback server that runs ``on_client``; the
    connection and the server are closed on the way out, also on failure."""
    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1",
                                                       server.sockets[0].getsockname()[1])
        try:
            yield reader, writer
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def handshake_over_loopback(client_creds, server_creds, **server_options):
    server_result: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_client(reader, writer):
        try:
            server_result.set_result(await respond(reader, writer, server_creds,
                                                   **server_options))
        except HandshakeError as exc:
            server_result.set_exception(exc)
        finally:
            writer.close()

    async with connected_to(on_client) as (reader, writer):
        client_keys = await initiate(reader, writer, client_creds, timeout=5)
        return client_keys, await asyncio.wait_for(server_result, 5)


async def test_handshake_over_a_tcp_connection(alice, bob):
    client, server = await handshake_over_loopback(alice, bob, replay_guard=ReplayGuard())
    assert client.send_key == server.recv_key and client.peer.hostname == "bob"
    assert server.peer.node_id == alice.identity.node_id


async def test_open_session_yields_working_tunnels_over_tcp(alice, bob):
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_client(reader, writer):
        session = await open_session(reader, writer, bob, initiator=False)
        frame = session.tunnel.open(await reader.readexactly(int.from_bytes(
            await reader.readexactly(2), "big")))
        accepted.set_result((session, frame))
        writer.close()

    async with connected_to(on_client) as (reader, writer):
        session = await open_session(reader, writer, alice, initiator=True,
                                     expect_node_id=bob.identity.node_id)
        record = session.tunnel.seal(Frame(type=3, payload=b"over tcp"))
        writer.write(len(record).to_bytes(2, "big") + record)
        await writer.drain()
        server_session, frame = await asyncio.wait_for(accepted, 5)
    assert frame.payload == b"over tcp" and frame.type == 3
    assert server_session.keys.peer.node_id == alice.identity.node_id
    assert session.keys.handshake_hash == server_session.keys.handshake_hash


async def test_silent_peer_times_out(alice, caplog, label):
    async def silent(reader, writer):
        await reader.read()  # never answers, holds the connection until closed
        writer.close()

    async with connected_to(silent) as (reader, writer):
        with caplog.at_level(logging.WARNING), pytest.raises(HandshakeTimeout):
            await initiate(reader, writer, alice, timeout=0.2, peer_label=label)
    assert "HandshakeTimeout" in caplog.text


async def test_peer_closing_mid_handshake_aborts(alice, caplog, label):
    async def hang_up(reader, writer):
        await reader.readexactly(2)
        writer.close()

    async with connected_to(hang_up) as (reader, writer):
        with caplog.at_level(logging.WARNING), pytest.raises(HandshakeAborted):
            await initiate(reader, writer, alice, timeout=5, peer_label=label)
    assert "HandshakeAborted" in caplog.text


# -- arbitrary input never escapes as anything but a typed error ------------------------

FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@FIXTURES_OK
@given(data=st.binary(max_size=600))
def test_arbitrary_first_message_gives_a_handshake_error_or_a_reply(bob, data):
    try:
        Responder(bob, peer_label="fuzz").respond(data)
    except HandshakeError:
        pass


@FIXTURES_OK
@given(data=st.binary(max_size=1200))
def test_arbitrary_second_message_gives_a_handshake_error(alice, data):
    initiator = Initiator(alice, peer_label="fuzz")
    initiator.start()
    with pytest.raises(HandshakeError):
        initiator.finish(data)
