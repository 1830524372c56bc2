"""Whole agents (membership, sessions, routing, control socket) over real sockets on
127.x addresses, several in this process; every test on asyncio's loop and on uvloop
(what ``meshagent run`` takes where it is installed; see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from meshagent import agent as agent_module
from meshagent import certdelivery, codec
from meshagent.agent import Agent
from meshagent.certdelivery import CERTIFICATE_CHANNEL, PENDING_FILE
from meshagent.cli.main import main as meshagent_main
from meshagent.cli.meshctl import main as meshctl_main
from meshagent.config import load_config
from meshagent.control import RemoteError, call
from meshagent.demo import ROOT_FILE, LocalMesh, create_mesh
from meshagent.errors import ConfigError
from meshagent.identity import (
    MeshRoot,
    NodeCredentials,
    NodeIdentity,
    load_certificate,
    save_certificate,
)
from meshagent.membership import MemberState
from meshagent.routing import FIRST_FREE_CHANNEL, Message
from meshagent.sessions import PeerCandidate
from tests.mesh.meshkit import free_loopback_subnet, wait_until

APP = FIRST_FREE_CHANNEL + 7
def _local_mesh(tmp_path: Path, count: int, extra: str = "") -> LocalMesh:
    subnet = free_loopback_subnet("127.1", count, 17946)
    return create_mesh(tmp_path / "mesh", count, addresses=[
        (f"{subnet}.{i + 1}", 17946) for i in range(count)], seeds=1, extra_config=extra)


@contextlib.asynccontextmanager
async def _running(mesh: LocalMesh) -> AsyncIterator[list[Agent]]:
    """Every agent of ``mesh`` started in this process, stopped silently afterwards."""
    started: list[Agent] = []
    try:
        for node in mesh.nodes:
            agent = Agent(load_config(node.config_path))
            await agent.start()
            started.append(agent)
        yield started
    finally:
        for agent in started:
            await agent.stop(leave=False)


@pytest.fixture
async def agents(tmp_path: Path, request: pytest.FixtureRequest):
    count, extra = getattr(request, "param", (3, ""))
    async with _running(_local_mesh(tmp_path, count, extra)) as started:
        yield started


def _laptop_certificate(mesh: LocalMesh) -> Callable[..., None]:
    """Writes a certificate into the last node's node.cert: ``write(lifetime_s=..., now=...,
    issuer=root)`` (issuer: the mesh's root unless another is given)."""
    root = MeshRoot.load(mesh.directory / ROOT_FILE)
    state_dir = mesh.nodes[-1].directory / "state"
    identity = NodeCredentials.load(state_dir).identity

    def write(issuer: MeshRoot = root, **terms: Any) -> None:
        save_certificate(state_dir / "node.cert", issuer.issue_certificate(
            identity.sign_public, identity.dh_public, ["node"], mesh.nodes[-1].name,
            **terms).to_wire())
    return write


@pytest.fixture
def short_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "SESSION_LIFETIME_S", 1.0)


def _alive(agent: Agent) -> int:
    return sum(1 for m in agent.membership.members() if m.state == MemberState.ALIVE)


async def test_agents_converge_with_sessions_and_direct_routes(agents: list[Agent]) -> None:
    # Sessions form one at a time (their first dials are spread), so two routes can
    # exist while one is still relayed: wait for both sessions and their direct routes.
    await wait_until(lambda: all(
        _alive(a) == 3 and len(a.sessions.sessions) == 2 and len(a.router.routes()) == 2
        and all(r.next_hop == r.node_id for r in a.router.routes()) for a in agents), 15,
        "convergence with sessions and direct routes")
    nodes = await call(agents[0].control_socket, "nodes")
    assert [n["self"] for n in nodes] == [True, False, False]
    assert {n["route"]["kind"] for n in nodes[1:]} == {"direct"}
    assert all(n["state"] == "alive" and n["version"] for n in nodes)
    status = await call(agents[0].control_socket, "status")
    assert status["sessions"] == 2 and status["members"] == {"alive": 3}


async def test_status_says_whether_the_agent_has_started(tmp_path: Path) -> None:
    """The control socket opens first, the membership after it: a caller that waits for
    an agent to be up (``AgentProcess.wait_ready``, the benchmarks' timing) sees
    ``started`` false until the whole agent is."""
    node = _local_mesh(tmp_path, 1).nodes[0]
    agent = Agent(load_config(node.config_path))
    release = asyncio.Event()
    membership_start = agent.membership.start

    async def slow_start() -> None:
        await release.wait()
        await membership_start()

    agent.membership.start = slow_start  # type: ignore[method-assign]
    starting = asyncio.create_task(agent.start())
    try:
        await wait_until(lambda: agent.control_socket.exists(), 10, "the control socket")
        status = await call(agent.control_socket, "status")
        assert status["started"] is False
        release.set()
        await starting
        assert (await call(agent.control_socket, "status"))["started"] is True
    finally:
        release.set()
        with contextlib.suppress(Exception):
            await starting
        await agent.stop(leave=False)


async def test_nodes_filters_by_state_and_tag(agents: list[Agent]) -> None:
    await wait_until(lambda: all(_alive(a) == 3 for a in agents), 15, "convergence")
    socket = agents[1].control_socket
    assert len(await call(socket, "nodes", {"state": ["alive"], "tags": {"demo": "yes"}})) == 3
    assert await call(socket, "nodes", {"tags": {"demo": "no"}}) == []
    assert await call(socket, "nodes", {"state": ["left"]}) == []
    with pytest.raises(RemoteError, match="unknown state"):
        await call(socket, "nodes", {"state": ["sleeping"]})


async def test_renewed_node_cert_is_adopted_without_a_restart(
        agents: list[Agent], capsys: pytest.CaptureFixture[str]) -> None:
    """The operator renews a running agent's certificate (``meshagent mesh enroll`` again
    for its node directory writes node.cert): the agent takes it at its next look (here
    asked for at once over the control socket), and its peers from its record."""
    await wait_until(lambda: all(_alive(a) == 3 for a in agents), 15, "convergence")
    laptop = agents[2]
    state_dir = laptop.config.node.state_dir
    root = MeshRoot.load(state_dir.parent.parent / ROOT_FILE)
    identity = laptop.credentials.identity
    renewal = root.issue_certificate(identity.sign_public, identity.dh_public, ["node"],
                                     "node3", lifetime_s=2 * 365 * 86400)
    NodeCredentials(identity, renewal, root.trust).save(state_dir)
    code = await asyncio.to_thread(meshagent_main, [
        "status", "--check-certificate", "--socket", str(laptop.control_socket)])
    assert code == 0
    assert f"cert      serial {renewal.serial}, expires " in capsys.readouterr().out
    status = await call(laptop.control_socket, "certificate")
    assert (status["serial"], status["renewals"]) == (renewal.serial, 1)
    assert laptop.credentials.certificate.serial == renewal.serial  # new handshakes
    await wait_until(lambda: all(
        a.membership.member(laptop.node_id).record.cert.serial == renewal.serial
        for a in agents[:2]), 10, "the renewal seen by the peers")
    nodes = await call(agents[0].control_socket, "nodes")
    assert [n["certificate"] for n in nodes if n["node_id"] == laptop.node_id.hex()] == [
        {"serial": renewal.serial, "expires": renewal.expires}]
    assert all(_alive(a) == 3 for a in agents)


async def test_agent_whose_certificate_expires_loses_its_sessions_until_renewed(
        tmp_path: Path) -> None:
    count = 3
    mesh = _local_mesh(tmp_path, count)
    certificate = _laptop_certificate(mesh)
    certificate(lifetime_s=6)
    async with _running(mesh) as agents:
        laptop, peers = agents[2], agents[:2]
        expires = laptop.membership.certificate.expires
        await wait_until(lambda: all(laptop.node_id in a.sessions.sessions for a in peers),
                         expires - time.time(), "sessions with the short-lived member")
        await wait_until(lambda: all(a.membership.member(laptop.node_id) is None
                                     and laptop.node_id not in a.sessions.sessions
                                     for a in peers), expires - time.time() + 3,
                         "the expired member dropped and its sessions closed")
        assert time.time() > expires
        assert laptop.certificate_watch.status()["expires_in_s"] < 0

        certificate(lifetime_s=3600)
        assert laptop.certificate_watch.check()
        await wait_until(lambda: all(
            _alive(a) == count and laptop.node_id in a.sessions.sessions for a in peers), 15,
            "the renewed member back, with sessions")


async def test_agent_started_with_an_ended_certificate_waits_for_its_renewal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A laptop shelved past its certificate's end: the agent starts (the control socket
    answers, the status says why), the mesh refuses it, and a renewed node.cert brings it
    in without a restart. A certificate of another mesh still stops the agent."""
    count = 3
    mesh = _local_mesh(tmp_path, count)
    write = _laptop_certificate(mesh)
    write(issuer=MeshRoot.create())
    with pytest.raises(ConfigError, match="WrongMesh"):
        Agent(load_config(mesh.nodes[2].config_path))
    write(lifetime_s=3600, now=time.time() - 7200)
    async with _running(mesh) as agents:
        laptop, peers = agents[2], agents[:2]
        status = await call(laptop.control_socket, "status")
        assert status["certificate"]["expires_in_s"] < 0
        await wait_until(lambda: all(_alive(a) == 2 for a in peers), 15, "the others' mesh")
        assert all(a.membership.member(laptop.node_id) is None for a in peers)
        # It asked its seed for a renewal at start (none held); the status says so.
        await wait_until(lambda: laptop.certificate_delivery.asks >= 1, 10, "a first ask")
        capsys.readouterr()
        assert await asyncio.to_thread(meshagent_main, [
            "status", "--socket", str(laptop.control_socket)]) == 0
        line = next(line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("cert "))
        assert "EXPIRED" in line and "asks of members for a renewal: 1, last " in line

        write(lifetime_s=3600)
        assert laptop.certificate_watch.check()
        await wait_until(lambda: all(_alive(a) == count for a in agents), 15,
                         "the renewed laptop in every view")


async def test_fleet_renewal_exported_renewed_offline_and_pushed_over_the_mesh(
        agents: list[Agent], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await wait_until(lambda: all(_alive(a) == 3 and len(a.router.routes()) == 2
                                 for a in agents), 15, "convergence with routes")
    console = str(agents[0].control_socket)
    mesh_dir = tmp_path / "offline"
    mesh_dir.mkdir()
    MeshRoot.load(tmp_path / "mesh" / ROOT_FILE).save(mesh_dir / "root.key")
    before = {a.node_id: a.membership.certificate for a in agents}

    assert await asyncio.to_thread(meshctl_main, [
        "certificates", "export", "--out", str(tmp_path / "expiring"), "--socket", console,
        "--cert-expiring", "400d"]) == 0
    exported = sorted((tmp_path / "expiring").iterdir())
    assert [p.stem for p in exported] == sorted(a.node_id.hex() for a in agents)
    assert await asyncio.to_thread(meshagent_main, [
        "mesh", "renew", "--dir", str(mesh_dir), "--out", str(tmp_path / "renewed"),
        "--lifetime", "730d", *map(str, exported)]) == 0
    renewed = {p.stem: load_certificate(p) for p in (tmp_path / "renewed").iterdir()}
    capsys.readouterr()
    assert await asyncio.to_thread(meshctl_main, [
        "certificates", "push", "--socket", console,
        *map(str, sorted((tmp_path / "renewed").iterdir()))]) == 0
    out = capsys.readouterr().out
    assert "3 sent, 0 pending (sent when each node is reachable), 0 refused" in out
    assert "adopted" in out

    def taken(agent: Agent) -> bool:
        serial = renewed[agent.node_id.hex()].serial
        on_disk = load_certificate(agent.config.node.state_dir / "node.cert").serial
        return agent.membership.certificate.serial == serial == on_disk and all(
            a.membership.member(agent.node_id).record.cert.serial == serial for a in agents)
    await wait_until(lambda: all(taken(a) for a in agents), 10, "every node renewed")
    await wait_until(lambda: not agents[0].certificate_delivery.pending, 10,
                     "every delivery confirmed by the node's record")
    for agent in agents:
        certificate = agent.membership.certificate
        assert certificate.expires > before[agent.node_id].expires + 300 * 86400
        assert (certificate.sign_public, certificate.roles) == (
            before[agent.node_id].sign_public, before[agent.node_id].roles)

    # An older certificate (the one replaced) is not sent; sent anyway, its node refuses
    # it and keeps its own.
    old = before[agents[1].node_id]
    outcome = agents[0].certificate_delivery.push([old.to_wire()])
    assert outcome[agents[1].node_id.hex()].startswith("refused: the node holds")
    agents[0].router.send(agents[1].node_id, CERTIFICATE_CHANNEL, old.to_wire())
    await wait_until(lambda: agents[1].certificate_watch.last_refusal is not None, 10,
                     "the stale certificate refused")
    assert "does not end later" in agents[1].certificate_watch.last_refusal
    assert agents[1].membership.certificate.serial == renewed[agents[1].node_id.hex()].serial
    # Not this mesh's is refused; a node nobody knows yet is kept for when it joins.
    stranger = NodeIdentity.generate()
    other_root = MeshRoot.create()
    foreign = other_root.issue_certificate(stranger.sign_public, stranger.dh_public,
                                           ["node"], "x")
    unknown = MeshRoot.load(mesh_dir / "root.key").issue_certificate(
        stranger.sign_public, stranger.dh_public, ["node"], "x")
    outcome = agents[0].certificate_delivery.push([foreign.to_wire(), unknown.to_wire()])
    assert outcome["#0"].startswith("refused: WrongMesh")
    assert outcome[stranger.node_id.hex()].startswith("pending: unknown node")
    assert list(agents[0].certificate_delivery.pending) == [stranger.node_id]
    # Held until it ends, or until the mesh revokes it.
    agents[0].membership.update_revocations(
        MeshRoot.load(mesh_dir / "root.key").revoke(serials=[unknown.serial]))
    agents[0].certificate_delivery.resend()
    assert agents[0].certificate_delivery.pending == {}


def _again(agent: Agent) -> Agent:
    """A new agent process for ``agent``'s node directory (same config and state)."""
    return Agent(load_config(agent.config.node.state_dir.parent / "agent.toml"))


async def test_pushed_certificate_waits_for_its_node_to_come_back(
        agents: list[Agent], tmp_path: Path) -> None:
    """Pushed while its node is away (here: stopped), a renewal is held by the agent it
    was pushed to, through a restart of that agent too, and delivered when the node is
    back, confirmed by the node's record."""
    await wait_until(lambda: all(_alive(a) == 3 and len(a.router.routes()) == 2
                                 for a in agents), 15, "convergence with routes")
    laptop = agents[2]
    identity = laptop.credentials.identity
    await laptop.stop(leave=False)
    await wait_until(lambda: all(a.router.route_to(identity.node_id) is None
                                 and a.membership.member(identity.node_id).state
                                 != MemberState.ALIVE for a in agents[:2]), 15,
                     "the laptop gone")
    # The copy goes to a member the pusher sees alive and has a route to; routes settle
    # a moment after the laptop went (on a loaded machine, after the check above).
    await wait_until(lambda: agents[0].router.route_to(agents[1].node_id) is not None
                     and agents[0].membership.member(agents[1].node_id).state
                     == MemberState.ALIVE, 15, "the other member reachable")
    root = MeshRoot.load(tmp_path / "mesh" / ROOT_FILE)
    renewal = root.issue_certificate(identity.sign_public, identity.dh_public, ["node"],
                                     "node3", lifetime_s=2 * 365 * 86400)
    outcome = agents[0].certificate_delivery.push([renewal.to_wire()])
    assert outcome[identity.node_id.hex()] == \
        "pending: no route (sent when there is one); held by 1 members"
    await wait_until(lambda: identity.node_id in agents[1].certificate_delivery.pending, 10,
                     "a copy held by the other member")
    assert agents[1].certificate_delivery.pending_view()[0]["origin"] == \
        f"peer:{agents[0].node_id.hex()}"
    await agents[1].stop(leave=False)  # only the pusher can deliver it now
    await agents[0].stop(leave=False)
    pusher = _again(agents[0])
    assert list(pusher.certificate_delivery.pending) == [identity.node_id]  # from its file
    await pusher.start()
    back = _again(laptop)
    await back.start()
    try:
        await wait_until(lambda: not pusher.certificate_delivery.pending, 20,
                         "the renewal delivered once the laptop is back")
        assert back.membership.certificate.serial == renewal.serial
        assert load_certificate(back.config.node.state_dir / "node.cert").serial == \
            renewal.serial
        assert _again(agents[0]).certificate_delivery.pending == {}  # the file says so
    finally:
        await back.stop(leave=False)
        await pusher.stop(leave=False)


async def test_member_refuses_to_hold_what_it_would_refuse_to_deliver(
        agents: list[Agent], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Any member can send another certificates to hold for a third node: another mesh's,
    an ended one or one beyond the bound is refused, counted and logged once a while per
    sender; what is held is not replaced by one that ends sooner."""
    await wait_until(lambda: all(_alive(a) == 3 and len(a.router.routes()) == 2
                                 for a in agents), 15, "convergence with routes")
    sender, holder = agents[0], agents[1]
    root = MeshRoot.load(tmp_path / "mesh" / ROOT_FILE)
    away, other = NodeIdentity.generate(), NodeIdentity.generate()

    def certificate(identity: NodeIdentity, issuer: MeshRoot = root,
                    **terms: Any) -> bytes:
        return issuer.issue_certificate(identity.sign_public, identity.dh_public, ["node"],
                                        "away", **terms).to_wire()
    monkeypatch.setattr(certdelivery, "MAX_HELD", 1)
    for wire in (certificate(away, MeshRoot.create()),
                 certificate(away, lifetime_s=60, now=time.time() - 3600)):
        sender.router.send(holder.node_id, CERTIFICATE_CHANNEL, wire)
    await wait_until(lambda: holder.certificate_delivery.hold_refusals == 2, 10,
                     "another mesh's and an ended certificate refused")
    assert holder.certificate_delivery.pending == {}
    longer = certificate(away, lifetime_s=2 * 365 * 86400)
    sender.router.send(holder.node_id, CERTIFICATE_CHANNEL, longer)
    await wait_until(lambda: away.node_id in holder.certificate_delivery.pending, 10,
                     "a valid one held")
    for wire in (certificate(away, lifetime_s=86400), certificate(other)):
        sender.router.send(holder.node_id, CERTIFICATE_CHANNEL, wire)
    await wait_until(lambda: holder.certificate_delivery.hold_refusals == 3, 10,
                     "the one beyond the bound refused")
    assert holder.certificate_delivery.pending[away.node_id].to_wire() == longer
    assert list(holder.certificate_delivery.pending) == [away.node_id]
    assert caplog.text.count("held_certificate_refused") == 1  # once per sender a while
    assert holder.certificate_watch.refusals == 0  # none taken for the holder's own


def test_pending_certificates_file_that_is_unreadable_is_set_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged certificates.pending costs the agent nothing but what it held, and is
    kept for a look; entries that ended or were revoked since are dropped, each logged."""
    mesh = _local_mesh(tmp_path, 1)
    state_dir = mesh.nodes[0].directory / "state"
    (state_dir / PENDING_FILE).write_bytes(b"\xc1 not msgpack")
    agent = Agent(load_config(mesh.nodes[0].config_path))
    assert agent.certificate_delivery.pending == {}
    assert (state_dir / (PENDING_FILE + ".bad")).read_bytes() == b"\xc1 not msgpack"
    assert "certificates_pending_unreadable" in caplog.text

    root = MeshRoot.load(mesh.directory / ROOT_FILE)
    kept, ended = NodeIdentity.generate(), NodeIdentity.generate()
    entries = [[root.issue_certificate(kept.sign_public, kept.dh_public, ["node"], "kept")
                .to_wire(), "push"],
               [root.issue_certificate(ended.sign_public, ended.dh_public, ["node"], "old",
                                       lifetime_s=60, now=time.time() - 3600).to_wire(),
                "push"], ["not a pair"]]
    (state_dir / PENDING_FILE).write_bytes(codec.pack(entries))
    agent = Agent(load_config(mesh.nodes[0].config_path))
    assert list(agent.certificate_delivery.pending) == [kept.node_id]
    assert caplog.text.count("pending_certificate_dropped") == 2


async def test_node_back_with_an_ended_certificate_gets_its_renewal_from_a_holder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A laptop shelved past its certificate's end is out of the mesh, so no push reaches
    it. The renewal pushed meanwhile is held by live members; the laptop asks the members
    it knew and takes it from one (here the pusher has gone since). Its own rounds of
    asks are a minute apart (``certificate_check_s``): the test makes the one that
    matters, once the pusher is gone."""
    count = 3
    mesh = _local_mesh(tmp_path, count)
    _laptop_certificate(mesh)(lifetime_s=6)
    async with _running(mesh) as agents:
        laptop, pusher, holder = agents[2], agents[0], agents[1]
        expires = laptop.membership.certificate.expires
        await wait_until(lambda: all(_alive(a) == count for a in agents),
                         expires - time.time(), "convergence")
        await wait_until(lambda: all(a.membership.member(laptop.node_id) is None
                                     for a in (pusher, holder)),
                         expires - time.time() + 3, "the ended laptop dropped")
        identity = laptop.credentials.identity
        renewal = MeshRoot.load(mesh.directory / ROOT_FILE).issue_certificate(
            identity.sign_public, identity.dh_public, ["node"], mesh.nodes[-1].name)
        outcome = pusher.certificate_delivery.push([renewal.to_wire()])
        assert outcome[laptop.node_id.hex()] == \
            "pending: unknown node (sent when it joins); held by 1 members"
        await wait_until(lambda: laptop.node_id in holder.certificate_delivery.pending, 10,
                         "the renewal held by the other member")
        capsys.readouterr()
        assert await asyncio.to_thread(meshctl_main, [
            "certificates", "pending", "--socket", str(holder.control_socket)]) == 0
        assert f"held for {pusher.node_id.hex()[:12]}" in capsys.readouterr().out
        await pusher.stop(leave=False)

        assert await laptop.certificate_delivery.seek()
        assert laptop.membership.certificate.serial == renewal.serial
        assert holder.certificate_delivery.handed_over == 1
        assert load_certificate(laptop.config.node.state_dir / "node.cert").serial == \
            renewal.serial
        await wait_until(lambda: _alive(holder) == 2 and _alive(laptop) == 2, 15,
                         "the laptop back in the mesh")
        await wait_until(lambda: not holder.certificate_delivery.pending, 10,
                         "the holder's copy confirmed by the laptop's record")


async def test_agent_restarted_with_an_ended_certificate_asks_its_seeds_at_once(
        tmp_path: Path) -> None:
    """A laptop switched off while its certificate ended, renewed by a push meanwhile:
    started again, it knows no member yet and asks its seeds before its first
    ``certificate_check_s`` (60 s here) has passed."""
    mesh = _local_mesh(tmp_path, 3)
    _laptop_certificate(mesh)(lifetime_s=6)
    async with _running(mesh) as agents:
        laptop, console = agents[2], agents[0]
        expires = laptop.membership.certificate.expires
        await laptop.stop(leave=False)
        await wait_until(lambda: console.membership.member(laptop.node_id) is None,
                         expires - time.time() + 10, "the laptop dropped once it ended")
        identity = laptop.credentials.identity
        renewal = MeshRoot.load(mesh.directory / ROOT_FILE).issue_certificate(
            identity.sign_public, identity.dh_public, ["node"], mesh.nodes[-1].name)
        outcome = console.certificate_delivery.push([renewal.to_wire()])
        assert outcome[laptop.node_id.hex()].startswith("pending: unknown node")
        back = _again(laptop)
        assert back.certificate_watch.check_s == 60.0
        await back.start()
        try:
            await wait_until(lambda: back.membership.certificate.serial == renewal.serial,
                             10, "the renewal asked for at start")
            await wait_until(lambda: all(_alive(a) == 3 for a in [*agents[:2], back]), 15,
                             "the laptop back in every view")
            assert console.certificate_delivery.handed_over == 1
        finally:
            await back.stop(leave=False)


def _without(agent: Agent, banned: Agent) -> None:
    """Test topology control: ``agent`` never dials ``banned`` (and refuses it)."""
    original = agent._candidates

    def candidates() -> list[PeerCandidate]:
        return [c for c in original() if c.node_id != banned.node_id]
    agent.sessions._candidates = candidates
    for session in list(agent.sessions.sessions.values()):
        if session.peer_id == banned.node_id:
            session.close("test topology")


async def test_message_is_relayed_between_agents_without_a_session(
        agents: list[Agent]) -> None:
    a, b, c = agents
    _without(a, c)
    _without(c, a)
    # Routes form one direction at a time (each end waits for the other's fresh seqno),
    # and the ping below needs the way back too.
    await wait_until(lambda: all(
        (r := x.router.route_to(y.node_id)) is not None and r.next_hop == b.node_id
        and y.node_id not in x.sessions.sessions for x, y in ((a, c), (c, a))),
        15, "relayed routes a -> b -> c and back")
    received: list[Message] = []
    c.router.on_message(APP, received.append)
    a.router.send(c.node_id, APP, b"through b")
    await wait_until(lambda: bool(received), 5, "delivery")
    assert received[0].src == a.node_id and received[0].payload == b"through b"
    assert received[0].hops == 2
    pong = await call(a.control_socket, "ping", {"node": c.node_id.hex()[:10]})
    assert pong["rtt_ms"] >= 0
    nodes = {n["host"]: n for n in await call(a.control_socket, "nodes")}
    assert nodes["node3"]["route"] == {"kind": "relay", "via": b.node_id.hex(), "metric": 2,
                                       "via_host": "node2"}


async def test_crashed_peer_session_is_reported_and_its_routes_dropped(
        agents: list[Agent]) -> None:
    await wait_until(lambda: all(len(a.sessions.sessions) == 2 for a in agents), 15,
                     "a session between every two agents")
    victim, others = agents[2], agents[:2]
    # What kill -9 leaves behind: every socket closed by the kernel, no goodbye.
    await victim.transport.close()
    await victim.membership.stop()
    await wait_until(lambda: all(o.router.route_to(victim.node_id) is None for o in others),
                     5, "routes to the crashed agent withdrawn")
    await wait_until(lambda: all(
        o.membership.member(victim.node_id).state == MemberState.UNREACHABLE
        for o in others), 5, "the crash noticed")
    assert all(o.sessions.stats.crashes_seen >= 1 for o in others)


async def test_idle_agent_wakes_for_probes_not_for_polling(
        agents: list[Agent], monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the mesh has settled an agent's timers are its probes (two a second on lan,
    each with its ack timeout) and rare upkeep (keepalives, routing tables): no loop polls
    for gossip, retries, dials or elections that are not there."""
    await wait_until(lambda: all(_alive(a) == 3 and len(a.router.routes()) == 2
                                 and len(a.sessions.sessions) == 2 for a in agents), 15,
                     "a settled mesh")
    await wait_until(lambda: all(not len(a.membership._queue) and not a.membership._fetching
                                 and len(a.membership.streams._outgoing_streams) == 2
                                 for a in agents), 15, "gossip drained, crash watches open")
    loop = asyncio.get_running_loop()
    call_at = loop.call_at
    timers = 0

    def counting(when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        nonlocal timers
        timers += 1
        return call_at(when, callback, *args, context=context)

    monkeypatch.setattr(loop, "call_at", counting)
    started = loop.time()
    await asyncio.sleep(3.0)  # the idle window being measured
    per_agent_second = timers / len(agents) / (loop.time() - started)
    assert per_agent_second < 8, f"{per_agent_second:.1f} timers per agent-second"


async def test_graceful_stop_is_seen_as_left_not_crashed(agents: list[Agent]) -> None:
    await wait_until(lambda: all(_alive(a) == 3 for a in agents), 15, "convergence")
    leaver = agents[2]
    await leaver.stop()
    await wait_until(lambda: all(
        a.membership.member(leaver.node_id).state == MemberState.LEFT for a in agents[:2]),
        5, "the departure")
    assert all(a.sessions.stats.crashes_seen == 0 for a in agents[:2])


@pytest.mark.parametrize("agents", [(7, "[sessions]\nmax_peers = 2\n")], indirect=True)
async def test_bounded_sessions_still_reach_every_member_through_routes(
        agents: list[Agent]) -> None:
    ids = {a.node_id for a in agents}
    await wait_until(lambda: all(
        {r.node_id for r in a.router.routes()} == ids - {a.node_id} for a in agents),
        30, "a route from every agent to every other")
    assert all(len(a.sessions.sessions) <= 2 for a in agents)
    relayed = [(a, r) for a in agents for r in a.router.routes() if not r.direct]
    assert relayed, "with two sessions each, seven agents need relays"
    source, route = relayed[0]
    pong = await call(source.control_socket, "ping", {"node": route.node_id.hex()})
    assert pong["rtt_ms"] >= 0


async def test_old_sessions_are_replaced_by_fresh_handshakes_without_losing_routes(
        short_sessions: None, agents: list[Agent]) -> None:
    a, b = agents[0], agents[1]
    await wait_until(lambda: all(a.sessions.stats.replaced >= 2 for a in agents), 15,
                     "every agent to replace its sessions")
    received: list[Message] = []
    b.router.on_message(APP, received.append)
    await wait_until(lambda: b.node_id in a.sessions.sessions
                     and not a.sessions.sessions[b.node_id].needs_rekey(), 5,
                     "a fresh session from a to b")
    a.router.send(b.node_id, APP, b"after rekey")
    await wait_until(lambda: bool(received), 5, "delivery over the fresh session")
    assert all(a.sessions.stats.crashes_seen == 0 for a in agents)
