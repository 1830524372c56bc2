"""Commands relayed by the leader over routed in-memory links: multi-hop delivery, results
back, exactly once across a leader's death and re-deliveries, refusals, unreachable targets."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from meshagent import codec, sessions
from meshagent.commands import (
    BUILTIN_ACTIONS,
    ActionContext,
    ActionSpec,
    CommandExecutor,
    CommandPolicy,
    CommandResult,
    OperatorKey,
    PowerControl,
    ResultStatus,
    SeenCommands,
    SignedCommand,
    TagStore,
    Target,
    authorise_operator,
    build_allowlist,
    sign_command,
)
from meshagent.core import Frame
from meshagent.identity import MeshRoot, NodeIdentity
from meshagent.relay import (
    RELAY_CHANNEL,
    LeaderRelay,
    NodeRelay,
    RelayChannel,
    RelaySettings,
    _Ticker,
)
from meshagent.routing import Router
from meshagent.sessions import SessionManager
from meshagent.uplink import DeliveredCommand
from tests.mesh.meshkit import run_virtual, wait_until

FAST = RelaySettings(retry_min_s=0.05, retry_max_s=0.2, tick_s=0.02, no_route_grace_s=0.3)


class Link:
    """One direction of an in-memory session; ``drop`` loses what is sent while set."""

    def __init__(self, src: Router, dst: Router) -> None:
        self.src, self.dst = src, dst
        self.up = True
        self.drop_channel: int | None = None

    @property
    def peer_id(self) -> bytes:
        return self.dst.node_id

    def send_frames(self, frames: Sequence[Frame]) -> None:
        kept = [f for f in frames if f.channel != self.drop_channel]
        if self.up and kept:
            asyncio.get_running_loop().call_soon(self._arrive, kept)

    def _arrive(self, frames: list[Frame]) -> None:
        if self.up:
            self.dst.receive(self.src.node_id, frames)


class Node:
    """One agent's relay stack: router, seen store, policy, executor, relay."""

    def __init__(self, mesh: Mesh, name: str, directory: Path) -> None:
        self.name = name
        self.identity = NodeIdentity.generate()
        self.node_id = self.identity.node_id
        self.mesh = mesh
        self.router = Router(self.node_id, update_interval=0.5, hold_time=2.0)
        self.seen_path = directory / f"{name}.seen"
        self.runs: Counter[bytes] = Counter()
        self.gate: asyncio.Event | None = None
        self.channel = RelayChannel(self.router)
        self.relay = self._node_relay()
        self.leader: LeaderRelay | None = None
        self.up = True

    def _node_relay(self) -> NodeRelay:
        self.seen = SeenCommands(self.seen_path)

        async def counted_ping(args: Mapping[str, Any], ctx: ActionContext) -> Any:
            self.runs[args.get("echo", "").encode()] += 1
            if self.gate is not None:
                await self.gate.wait()
            return {"pong": True, "size": len(args.get("pad", ""))}

        actions = {**BUILTIN_ACTIONS, "ping": ActionSpec("ping", "read", counted_ping)}
        policy = CommandPolicy(self.mesh.root.trust, self.node_id, self.seen,
                               allowlist=self.mesh.allowlist, tags=lambda: {"site": "lab"},
                               actions=actions)
        context = ActionContext(self.node_id, lambda: self.mesh.allowlist,
                                PowerControl(dry_run=True), TagStore({}))
        executor = CommandExecutor(self.identity.sign_key, self.node_id, self.seen, context,
                                   actions=actions)
        return NodeRelay(self.channel, policy, executor, lambda: self.mesh.leader_id, FAST)

    async def restart(self) -> None:
        """The agent process restarts: the relay is rebuilt, the seen store reopened."""
        await self.relay.stop()
        self.seen.close()
        self.relay = self._node_relay()
        await self.relay.start()


class Sink:
    """What the uplink would do with results and nacks: remember them."""

    def __init__(self) -> None:
        self.results: dict[tuple[bytes, bytes], bytes] = {}
        self.all: list[tuple[bytes, bytes, bytes]] = []
        self.nacks: list[tuple[bytes, bytes, str]] = []

    async def send_result(self, command_id: bytes, node_id: bytes, wire: bytes) -> None:
        self.all.append((command_id, node_id, wire))
        self.results.setdefault((command_id, node_id), wire)

    async def nack(self, command_id: bytes, node_id: bytes, reason: str) -> None:
        self.nacks.append((command_id, node_id, reason))

    def status(self, command_id: bytes, node: Node) -> tuple[ResultStatus, Any]:
        wire = self.results[(command_id, node.node_id)]
        result = CommandResult.verify(wire, _Key(node))
        return result.status, result.output


class _Key:
    def __init__(self, node: Node) -> None:
        self.node_id = node.node_id
        self.sign_public = node.identity.sign_public


class Mesh:
    def __init__(self, directory: Path, names: Sequence[str]) -> None:
        self.root = MeshRoot.create()
        self.operator = OperatorKey.generate("alice")
        self.cert = authorise_operator(self.root, self.operator.public, "alice", ["*"], 3600.0,
                                       now=time.time() - 60)
        self.allowlist = build_allowlist(self.root, sorted(BUILTIN_ACTIONS), {})
        self.nodes = {name: Node(self, name, directory) for name in names}
        self.links: dict[tuple[str, str], Link] = {}
        self.leader_id: bytes | None = None
        self.sinks: dict[str, Sink] = {}

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def connect(self, a: str, b: str) -> None:
        ab, ba = Link(self[a].router, self[b].router), Link(self[b].router, self[a].router)
        self.links[a, b], self.links[b, a] = ab, ba
        self[a].router.attach(ab)
        self[b].router.attach(ba)

    def cut(self, a: str, b: str) -> None:
        for key in ((a, b), (b, a)):
            self.links[key].up = False
        self[a].router.detach(self[b].node_id)
        self[b].router.detach(self[a].node_id)

    async def start(self) -> None:
        for node in self.nodes.values():
            await node.relay.start()

    async def lead(self, name: str) -> Sink:
        """``name`` becomes the leader (a fresh uplink sink)."""
        for node in self.nodes.values():
            if node.leader is not None:
                await node.leader.stop()
                node.leader = None
        node = self[name]
        sink = self.sinks[name] = Sink()
        signers = {n.node_id: n.identity.sign_public for n in self.nodes.values()}
        node.leader = LeaderRelay(node.channel, sink,
                                  lambda node_id: self._up(node_id), signers.get, FAST)
        await node.leader.start()
        self.leader_id = node.node_id
        return sink

    def _up(self, node_id: bytes) -> bool:
        return any(n.up for n in self.nodes.values() if n.node_id == node_id)

    def command(self, *names: str, echo: str = "", ttl: float = 600.0,
                action: str = "ping", args: Mapping[str, Any] | None = None,
                target: Target | None = None) -> SignedCommand:
        target = target or Target.node(*(self[n].node_id for n in names))
        return sign_command(self.operator, self.cert, target, action,
                            dict(args or {"echo": echo}), ttl)

    async def stop(self) -> None:
        for node in self.nodes.values():
            if node.leader is not None:
                await node.leader.stop()
            await node.relay.stop()
            node.seen.close()


def delivered(command: SignedCommand, *nodes: Node) -> list[DeliveredCommand]:
    command_id = command.envelope().id
    return [DeliveredCommand(command_id, node.node_id, command.to_wire()) for node in nodes]


@pytest.fixture
async def line(tmp_path: Path):
    """a - b - c: c is two hops from a."""
    mesh = Mesh(tmp_path, ["a", "b", "c"])
    mesh.connect("a", "b")
    mesh.connect("b", "c")
    await mesh.start()
    await wait_until(lambda: mesh["a"].router.route_to(mesh["c"].node_id) is not None, 5,
                     "a route from a to c")
    yield mesh
    await mesh.stop()


async def test_command_reaches_a_node_two_hops_away_and_its_result_comes_back(line: Mesh) -> None:
    sink = await line.lead("a")
    command = line.command("c", echo="hello")
    command_id = command.envelope().id
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: (command_id, line["c"].node_id) in sink.results, 5, "the result")
    status, output = sink.status(command_id, line["c"])
    assert status == ResultStatus.OK and output["pong"] is True
    assert line["c"].runs[b"hello"] == 1
    await wait_until(lambda: not line["c"].relay.outbox, 5, "the result acknowledged")
    assert not line["a"].leader.pending


async def test_command_for_every_node_runs_on_each_once_including_the_leader(line: Mesh) -> None:
    sink = await line.lead("b")
    command = line.command(target=Target.all(), echo="all")
    nodes = list(line.nodes.values())
    await line["b"].leader.deliver(delivered(command, *nodes))
    await wait_until(lambda: len(sink.results) == 3, 5, "three results")
    assert all(node.runs[b"all"] == 1 for node in nodes)


async def test_redelivered_command_runs_once_and_gets_the_stored_result(line: Mesh) -> None:
    sink = await line.lead("a")
    command = line.command("c", echo="once")
    command_id = command.envelope().id
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: (command_id, line["c"].node_id) in sink.results, 5, "the result")
    first = sink.results[(command_id, line["c"].node_id)]
    # The service hands the same command out again (it lost the ack); and a replay.
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: len(sink.all) >= 2, 5, "the second answer")
    assert sink.all[-1][2] == first
    assert line["c"].runs[b"once"] == 1
    assert line["c"].relay.counters["answered_from_store"] == 1


async def test_command_in_flight_when_the_leader_dies_runs_once_under_the_next(
        line: Mesh) -> None:
    line["c"].gate = asyncio.Event()
    line.sinks.clear()
    old_sink = await line.lead("a")
    command = line.command("c", echo="failover")
    command_id = command.envelope().id
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: line["c"].runs[b"failover"] == 1, 5, "the command running")
    # The leader dies; b takes over and the service re-sends everything unanswered.
    line["a"].up = False
    line.cut("a", "b")
    new_sink = await line.lead("b")
    await line["b"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: line["b"].leader.pending[(command_id, line["c"].node_id)].answered,
                     5, "WORKING from the target")
    line["c"].gate.set()
    await wait_until(lambda: (command_id, line["c"].node_id) in new_sink.results, 5,
                     "the result at the new leader")
    assert line["c"].runs[b"failover"] == 1
    assert not old_sink.results


async def test_agent_restarted_mid_command_reports_it_interrupted_and_never_reruns(
        line: Mesh) -> None:
    sink = await line.lead("a")
    line["c"].gate = asyncio.Event()
    command = line.command("c", echo="crash")
    command_id = command.envelope().id
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: line["c"].runs[b"crash"] == 1, 5, "the command running")
    await line["c"].restart()
    await wait_until(lambda: (command_id, line["c"].node_id) in sink.results, 5, "a result")
    status, output = sink.status(command_id, line["c"])
    assert status == ResultStatus.ERROR and output["code"] == "interrupted"
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: len(sink.all) >= 2, 5, "the re-delivery answered")
    assert line["c"].runs[b"crash"] == 1


async def test_result_lost_on_the_way_is_sent_again_until_acknowledged(line: Mesh) -> None:
    sink = await line.lead("a")
    link = line.links["b", "a"]
    link.drop_channel = RELAY_CHANNEL
    command = line.command("c", echo="lossy")
    command_id = command.envelope().id
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: command_id in line["c"].relay.outbox, 5, "a result waiting")
    sent = line["c"].channel.counters["sent"]
    await wait_until(lambda: line["c"].channel.counters["sent"] >= sent + 3, 5,
                     "retries lost on the way")
    assert not sink.results
    link.drop_channel = None
    await wait_until(lambda: (command_id, line["c"].node_id) in sink.results, 5, "the result")
    await wait_until(lambda: not line["c"].relay.outbox, 5, "the ack")
    assert line["c"].runs[b"lossy"] == 1


async def test_large_result_travels_in_parts(line: Mesh) -> None:
    sink = await line.lead("a")
    command = line.command("c", args={"echo": "big", "pad": "x" * 150_000})
    command_id = command.envelope().id
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: (command_id, line["c"].node_id) in sink.results, 5, "the result")
    assert sink.status(command_id, line["c"])[1]["size"] == 150_000


async def test_unreachable_target_is_nacked_for_the_service_to_keep(line: Mesh) -> None:
    sink = await line.lead("a")
    line["c"].up = False
    line.cut("b", "c")
    command = line.command("c", echo="offline")
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: sink.nacks, 5, "a nack")
    assert sink.nacks[0][1] == line["c"].node_id
    assert not line["a"].leader.pending


async def test_target_without_a_route_is_nacked_after_the_grace(line: Mesh) -> None:
    sink = await line.lead("a")
    line.cut("b", "c")  # membership still says alive, but no path exists
    await wait_until(lambda: line["a"].router.route_to(line["c"].node_id) is None, 5,
                     "route withdrawn")
    await line["a"].leader.deliver(delivered(line.command("c", echo="x"), line["c"]))
    await wait_until(lambda: sink.nacks, 5, "a nack")
    assert sink.nacks[0][2] == "no route to target"


def test_the_default_no_route_grace_outlasts_the_sessions_wait_after_a_burst() -> None:
    """A nack makes the service hold the command until the target is back, or for its
    retry wait while the target stays alive. After its own rejoin a target's sessions
    wait for the view to settle (at most ``settle_max``) and then for the dial spread,
    so a command for a target that just returned must not be nacked for want of a route
    meanwhile."""
    settle_max = inspect.signature(SessionManager).parameters["settle_max"].default
    assert RelaySettings().no_route_grace_s > settle_max + sessions._SPREAD_MAX_S


def _tampered(command: SignedCommand) -> SignedCommand:
    signed = command.command
    forged = type(signed)(signed.kind, signed.body, signed.signer,
                          bytes([signed.signature[0] ^ 1]) + signed.signature[1:])
    return SignedCommand(forged, command.operator_cert)


@pytest.mark.parametrize("case, reason", [
    ("forged", "forged"), ("expired", "expired"), ("wrong_target", "wrong_target"),
    ("not_allowlisted", "not_allowlisted"), ("unknown_operator", "unknown_operator")])
async def test_refused_command_comes_back_as_a_signed_rejection(line: Mesh, case: str,
                                                                reason: str) -> None:
    sink = await line.lead("a")
    target = line["c"]
    if case == "forged":
        command = _tampered(line.command("c"))
    elif case == "expired":
        command = sign_command(line.operator, line.cert, Target.node(target.node_id), "ping",
                               {}, 10.0, now=time.time() - 3600)
    elif case == "wrong_target":
        command = line.command("b")
    elif case == "not_allowlisted":
        command = line.command("c", action="reboot-everything", args={})
    else:
        stranger = MeshRoot.create()
        key = OperatorKey.generate("mallory")
        cert = authorise_operator(stranger, key.public, "mallory", ["*"], 3600.0)
        command = sign_command(key, cert, Target.node(target.node_id), "ping", {}, 600.0)
    command_id = command.envelope().id
    await line["a"].leader.deliver([DeliveredCommand(command_id, target.node_id,
                                                     command.to_wire())])
    await wait_until(lambda: (command_id, target.node_id) in sink.results, 5, "a rejection")
    status, output = sink.status(command_id, target)
    assert status == ResultStatus.REJECTED and output["reason"] == reason
    assert sum(target.runs.values()) == 0


async def test_result_not_signed_by_the_node_it_names_is_refused(line: Mesh) -> None:
    sink = await line.lead("a")
    command_id = b"\x01" * 16
    now = time.time()
    forged = CommandResult(command_id, line["c"].node_id, ResultStatus.OK, {}, now, now)
    wire = forged.sign(line["b"].identity.sign_key).to_wire()  # b speaks for c
    line["b"].channel.send(line["a"].node_id, 2, command_id, wire)
    await wait_until(lambda: line["a"].leader.counters["results_refused"] == 1, 5,
                     "the refusal")
    assert not sink.results


@pytest.mark.parametrize("payload", [
    b"\xc1", codec.pack("text"), codec.pack([]), codec.pack([9, b"x"]),
    codec.pack([1, b"short", b"wire"]), codec.pack([2, b"\x00" * 16, "not bytes"]),
    codec.pack([5, b"\x00" * 8, 3, 2, b"x"]), codec.pack([5, b"\x00" * 8, 0, 1000, b"x"])])
async def test_malformed_relay_messages_are_counted_and_dropped(line: Mesh,
                                                                payload: bytes) -> None:
    line["b"].router.send(line["c"].node_id, RELAY_CHANNEL, payload)
    await wait_until(lambda: line["c"].channel.counters["malformed"] == 1, 5, "the drop")
    # The node still works.
    sink = await line.lead("a")
    command = line.command("c", echo="after")
    await line["a"].leader.deliver(delivered(command, line["c"]))
    await wait_until(lambda: sink.results, 5, "a result")


def test_retry_ticker_sleeps_while_nothing_is_outstanding() -> None:
    async def scenario() -> None:
        outstanding: list[int] = []
        steps: list[float] = []
        ticker = _Ticker(0.1, lambda: bool(outstanding), steps.append, "retry")
        ticker.start()
        await asyncio.sleep(5.0)  # idle, virtual time: no step
        assert steps == []
        outstanding.append(1)
        ticker.poke()
        await asyncio.sleep(0.35)
        assert len(steps) == 3  # one step per tick while something is outstanding
        outstanding.clear()
        await asyncio.sleep(5.0)
        assert len(steps) == 4  # the step that found it answered, then asleep again
        await ticker.stop()

    run_virtual(scenario())
