"""Signed commands and their results across the mesh, between the leader and every node.

Pipeline::

    web service --uplink--> LeaderRelay.deliver --COMMAND--> (router, multi-hop) --> target
                                  ^                                                    |
      uplink.send_result <-- RESULT (verified) <----------------------------------- NodeRelay
      (spooled, durable)    --RESULT_ACK-->                      policy.check -> executor

Messages (channel ``RELAY_CHANNEL``; canonical msgpack lists; larger than one frame are
cut into ``PART`` messages and reassembled, bounded)::

    COMMAND     [1, command id, SignedCommand wire]     leader -> target
    RESULT      [2, command id, signed result wire]     target -> leader
    RESULT_ACK  [3, command id]                         leader -> target
    WORKING     [4, command id]                         target -> leader (claimed, running)
    PART        [5, message id: 8 B, index, count, bytes]

Exactly once, with the web service's bookkeeping (``server/service.py``):

* The target admits a command through ``CommandPolicy.check``, which durably claims its
  id in ``SeenCommands`` before anything runs; a second copy (a re-delivery by this or a
  later leader, or a replay by anyone) is refused as ``ReplayedCommand`` and answered
  with the stored result if the first run finished (``WORKING`` while it runs), so no
  command runs twice and every copy gets the one true result.
* The target keeps each result until the leader acknowledges it, re-sending with back-off
  to whoever leads now; the leader acknowledges only after ``Uplink.send_result`` has
  spooled it on disk, and the uplink keeps it until the service acknowledges.
* The leader re-sends a command with back-off until the target answers (``WORKING`` or
  ``RESULT``). A target that membership declares gone, or that has no route for
  ``no_route_grace_s``, is reported with ``nack``: the service keeps the command queued
  and hands it to the leader again when the node is back, or after a doubling wait while
  the leader still reports it alive (unless it expired first).
* A new leader gets every unanswered command again from the service; a node restarted
  mid-command reports it ``interrupted`` (``CommandExecutor.recover_interrupted``).

Refusals (forged, expired, replayed without a stored result, wrongly targeted, not
allowlisted ...) become node-signed ``rejected`` results that travel like any result; the
service records them and audits the command. Malformed relay messages are dropped with a
counter and a rate-limited log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from meshagent import codec
from meshagent.commands import (
    CommandEnvelope,
    CommandExecutor,
    CommandPolicy,
    CommandRejected,
    CommandResult,
    ReplayedCommand,
    ResultError,
    SeenStoreError,
)
from meshagent.commands.seen import SeenState
from meshagent.core import MAX_FRAME_PAYLOAD
from meshagent.errors import DecodeError, MeshError
from meshagent.eventloop import cancel_and_wait
from meshagent.log import get_logger
from meshagent.routing import FIRST_FREE_CHANNEL, Message, RoutingError
from meshagent.signing import Signed

if TYPE_CHECKING:  # the uplink (aiohttp's client) loads only where a node may lead
    from meshagent.uplink import DeliveredCommand

__all__ = ["RELAY_CHANNEL", "LeaderRelay", "NodeRelay", "RelayChannel", "RelayError",
           "RelaySettings", "ResultSink"]

log = get_logger(__name__)

RELAY_CHANNEL = FIRST_FREE_CHANNEL + 1

_COMMAND, _RESULT, _RESULT_ACK, _WORKING, _PART = 1, 2, 3, 4, 5
ID_BYTES = 16
_PART_ID_BYTES = 8
# One part's bytes: a frame's payload less the part header (list, id, index, count).
PART_BYTES = MAX_FRAME_PAYLOAD - 64
MAX_PARTS = 32                  # so a reassembled message is at most ~2 MiB
MAX_ASSEMBLIES = 64             # messages being reassembled at once, from everyone
ASSEMBLY_TIMEOUT_S = 30.0


class RelayError(DecodeError):
    """A relay message that does not follow the protocol above."""


class MeshLink(Protocol):
    """What the relay needs of ``routing.Router``."""

    node_id: bytes

    def send(self, dst: bytes, channel: int, payload: bytes) -> None: ...

    def on_message(self, channel: int, handler: Callable[[Message], None]) -> None: ...


class ResultSink(Protocol):
    """Where the leader puts results (``uplink.Uplink``): durable before it returns."""

    async def send_result(self, command_id: bytes, node_id: bytes, wire: bytes) -> None: ...

    async def nack(self, command_id: bytes, node_id: bytes, reason: str) -> None: ...


@dataclass(frozen=True)
class RelaySettings:
    retry_min_s: float = 0.5
    retry_max_s: float = 5.0
    tick_s: float = 0.1
    # A target membership holds alive may have no route for a while: after a burst of
    # membership news (its own rejoin) sessions wait for the view to settle, at most
    # sessions.settle_max (6 s) plus the dial spread (at most 4 s). A nack makes the
    # service hold the command until the target is back or, for a target still alive,
    # for its nack retry wait (15 s at first, server/service.py), so the grace outlasts
    # the sessions' wait rather than add that retry wait to every such delivery.
    no_route_grace_s: float = 12.0


def _check_id(value: Any, size: int = ID_BYTES) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise RelayError(f"id must be {size} bytes")
    return value


def decode(payload: bytes) -> tuple[int, list[Any]]:
    """(kind, fields) of one relay message; RelayError for anything else."""
    try:
        value = codec.unpack(payload, MAX_FRAME_PAYLOAD)
    except DecodeError as exc:
        raise RelayError(f"relay message does not decode: {exc}") from exc
    if not isinstance(value, list) or not value or type(value[0]) is not int:
        raise RelayError("relay message is not a list with a kind")
    kind, fields = value[0], value[1:]
    shapes = {_COMMAND: 2, _RESULT: 2, _RESULT_ACK: 1, _WORKING: 1, _PART: 4}
    if shapes.get(kind) != len(fields):
        raise RelayError(f"relay message of kind {kind} with {len(fields)} fields")
    if kind == _PART:
        _check_id(fields[0], _PART_ID_BYTES)
        index, count, chunk = fields[1:]
        if not (type(index) is int and type(count) is int and 0 <= index < count <= MAX_PARTS
                and isinstance(chunk, bytes)):
            raise RelayError("malformed part")
    else:
        _check_id(fields[0])
        if kind in (_COMMAND, _RESULT) and not isinstance(fields[1], bytes):
            raise RelayError("command or result wire must be bytes")
    return kind, fields


@dataclass
class _Assembly:
    count: int
    expires: float
    parts: dict[int, bytes] = field(default_factory=dict)


class RelayChannel:
    """The relay's channel on the router: framing, reassembly, and dispatch to this
    node's ``NodeRelay`` and, while it leads, its ``LeaderRelay``."""

    def __init__(self, link: MeshLink) -> None:
        self.link = link
        self.node_id = link.node_id
        self.node: NodeRelay | None = None
        self.leader: LeaderRelay | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            ("malformed", "parts_dropped", "sent", "no_route"), 0)
        self._assemblies: dict[tuple[bytes, bytes], _Assembly] = {}
        link.on_message(RELAY_CHANNEL, self._receive)

    def send(self, dst: bytes, kind: int, *fields: Any) -> bool:
        """Send one message (cut into parts if needed); False if there is no route."""
        payload = codec.pack_plain([kind, *fields])
        try:
            if len(payload) <= PART_BYTES:
                self.link.send(dst, RELAY_CHANNEL, payload)
            else:
                part_id = os.urandom(_PART_ID_BYTES)
                chunks = [payload[i:i + PART_BYTES] for i in range(0, len(payload), PART_BYTES)]
                if len(chunks) > MAX_PARTS:
                    raise RelayError(f"message of {len(payload)} bytes is too large to relay")
                for index, chunk in enumerate(chunks):
                    self.link.send(dst, RELAY_CHANNEL,
                                   codec.pack_plain([_PART, part_id, index, len(chunks), chunk]))
        except RoutingError as exc:
            self.counters["no_route"] += 1
            log.debug("relay_no_route", dst=dst.hex(), error=str(exc))
            return False
        self.counters["sent"] += 1
        return True

    def _receive(self, message: Message) -> None:
        try:
            kind, fields = decode(message.payload)
            if kind == _PART:
                whole = self._reassemble(message.src, fields)
                if whole is None:
                    return
                kind, fields = decode_whole(whole)
            self._dispatch(message.src, kind, fields)
        except RelayError as exc:
            self.counters["malformed"] += 1
            log.warn_limited("relay_message_malformed", key=message.src,
                             src=message.src.hex(), error=str(exc))

    def _dispatch(self, src: bytes, kind: int, fields: list[Any]) -> None:
        if kind == _COMMAND and self.node is not None:
            self.node.on_command(src, fields[0], fields[1])
        elif kind == _RESULT_ACK and self.node is not None:
            self.node.on_ack(fields[0])
        elif kind == _RESULT and self.leader is not None:
            self.leader.on_result(src, fields[0], fields[1])
        elif kind == _WORKING and self.leader is not None:
            self.leader.on_working(src, fields[0])
        # Anything else is for a role this node does not hold now (a result that reached
        # a former leader): the sender retries toward whoever leads.

    def _reassemble(self, src: bytes, fields: list[Any]) -> bytes | None:
        part_id, index, count, chunk = fields
        now = time.monotonic()
        for key in [k for k, a in self._assemblies.items() if a.expires <= now]:
            del self._assemblies[key]
            self.counters["parts_dropped"] += 1
        key = (src, part_id)
        assembly = self._assemblies.get(key)
        if assembly is None:
            if len(self._assemblies) >= MAX_ASSEMBLIES:
                raise RelayError("too many messages being reassembled")
            assembly = self._assemblies[key] = _Assembly(count, now + ASSEMBLY_TIMEOUT_S)
        if assembly.count != count:
            del self._assemblies[key]
            raise RelayError("parts disagree on their count")
        assembly.parts[index] = chunk
        if len(assembly.parts) < count:
            return None
        del self._assemblies[key]
        return b"".join(assembly.parts[i] for i in range(count))


def decode_whole(payload: bytes) -> tuple[int, list[Any]]:
    """Decode a reassembled message: any kind but a part."""
    try:
        value = codec.unpack(payload, MAX_PARTS * PART_BYTES)
    except DecodeError as exc:
        raise RelayError(f"reassembled message does not decode: {exc}") from exc
    if not isinstance(value, list) or len(value) != 3 or value[0] not in (_COMMAND, _RESULT):
        raise RelayError("only commands and results are sent in parts")
    if not isinstance(value[2], bytes):
        raise RelayError("command or result wire must be bytes")
    return value[0], [_check_id(value[1]), value[2]]


@dataclass
class _Outgoing:
    """A message re-sent with back-off until answered."""

    wire: bytes
    to: bytes
    next_try: float
    delay: float
    first_no_route: float | None = None
    answered: bool = False  # a leader's command the target confirmed (WORKING)


class _Tasks:
    """Tasks spawned from message handlers; their failures are logged, never lost."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("relay_task_failed", task=task.get_name(),
                      error=f"{type(task.exception()).__name__}: {task.exception()}")

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Ticker:
    """Calls ``step(now)`` every ``tick_s`` while ``busy()``, and sleeps until ``poke()``
    otherwise: an idle node's event loop wakes for real work only."""

    def __init__(self, tick_s: float, busy: Callable[[], bool],
                 step: Callable[[float], None], name: str) -> None:
        self._tick_s = tick_s
        self._busy = busy
        self._step = step
        self._name = name
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    def poke(self) -> None:
        """Work was added: tick until ``busy()`` says it is done."""
        self._work.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            if not self._busy():
                self._work.clear()
                await self._work.wait()
            await asyncio.sleep(self._tick_s)
            self._step(time.monotonic())


class NodeRelay:
    """Every node's side: admit, execute once, answer, and keep results until acked.

    ``leader()`` names the node that leads now (None if unknown): results go there, or
    back to the node that sent the command when no leader is known."""

    def __init__(self, channel: RelayChannel, policy: CommandPolicy, executor: CommandExecutor,
                 leader: Callable[[], bytes | None],
                 settings: RelaySettings | None = None) -> None:
        self.channel = channel
        self.policy = policy
        self.executor = executor
        self.leader = leader
        self.settings = settings or RelaySettings()
        self.outbox: dict[bytes, _Outgoing] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            ("admitted", "rejected", "answered_from_store", "results_acked"), 0)
        self._tasks = _Tasks()
        self._ticker = _Ticker(self.settings.tick_s, lambda: bool(self.outbox), self._retry,
                               "node-relay")
        channel.node = self

    async def start(self) -> None:
        """Report commands a crash interrupted, then keep the outbox moving."""
        for result in self.executor.recover_interrupted():
            self._queue_result(result.command_id, result.to_wire(), None)
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
        await self._tasks.cancel()

    def on_command(self, src: bytes, command_id: bytes, wire: bytes) -> None:
        try:
            envelope = self.policy.check(wire)
        except ReplayedCommand:
            self._answer_copy(src, command_id)
            return
        except CommandRejected as rejection:
            self.counters["rejected"] += 1
            if rejection.command_id is None:
                rejection.command_id = command_id
            result = self.executor.reject(rejection)
            if result is not None:
                self._queue_result(result.command_id, result.to_wire(), src)
            return
        except SeenStoreError as exc:
            # Not admitted; the leader re-sends and we try again once the disk recovers.
            log.error("relay_seen_store_failed", command_id=command_id.hex(), error=str(exc))
            return
        if envelope.id != command_id:
            log.warn_limited("relay_command_id_mismatch", key=src, src=src.hex())
        self.counters["admitted"] += 1
        self.channel.send(src, _WORKING, envelope.id)
        self._tasks.spawn(self._execute(src, envelope), f"command-{envelope.id.hex()[:8]}")

    async def _execute(self, src: bytes, envelope: CommandEnvelope) -> None:
        # Cancelled (the agent stops) or crashed, the id stays claimed: after a restart
        # the executor reports it interrupted, it is never run again.
        result = await self.executor.execute(envelope)
        self._queue_result(envelope.id, result.to_wire(), src)

    def _answer_copy(self, src: bytes, command_id: bytes) -> None:
        """A command seen before: its stored result, or WORKING while it runs."""
        if command_id in self.outbox:
            self._send_now(command_id)
            return
        entry = self.policy.seen.get(command_id)
        if entry is not None and entry.state == SeenState.DONE and entry.result is not None:
            self.counters["answered_from_store"] += 1
            self._queue_result(command_id, entry.result, src)
        elif entry is not None:
            self.channel.send(src, _WORKING, command_id)

    def on_ack(self, command_id: bytes) -> None:
        if self.outbox.pop(command_id, None) is not None:
            self.counters["results_acked"] += 1

    def _queue_result(self, command_id: bytes, wire: bytes, src: bytes | None) -> None:
        to = self.leader() or src or self.channel.node_id
        self.outbox[command_id] = _Outgoing(wire, to, 0.0, self.settings.retry_min_s)
        self._send_now(command_id)
        self._ticker.poke()

    def _send_now(self, command_id: bytes) -> None:
        item = self.outbox[command_id]
        item.to = self.leader() or item.to
        self.channel.send(item.to, _RESULT, command_id, item.wire)
        item.next_try = time.monotonic() + item.delay
        item.delay = min(self.settings.retry_max_s, item.delay * 2)

    def _retry(self, now: float) -> None:
        for command_id in [c for c, item in self.outbox.items() if item.next_try <= now]:
            self._send_now(command_id)


class LeaderRelay:
    """The leader's side: commands from the uplink to their targets, results back.

    ``reachable(node_id)`` says whether membership holds the node alive (or suspect);
    ``signer_of(node_id)`` gives its certificate's signing key (None if unknown), used to
    check a result before it is spooled and acknowledged."""

    def __init__(self, channel: RelayChannel, sink: ResultSink,
                 reachable: Callable[[bytes], bool],
                 signer_of: Callable[[bytes], bytes | None],
                 settings: RelaySettings | None = None) -> None:
        self.channel = channel
        self.sink = sink
        self.reachable = reachable
        self.signer_of = signer_of
        self.settings = settings or RelaySettings()
        self.pending: dict[tuple[bytes, bytes], _Outgoing] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            ("delivered", "results", "results_refused", "nacked"), 0)
        self._tasks = _Tasks()
        self._ticker = _Ticker(self.settings.tick_s, lambda: bool(self.pending), self._retry,
                               "leader-relay")

    async def start(self) -> None:
        self.channel.leader = self
        self._ticker.start()

    async def stop(self) -> None:
        """Stop leading: forget pending deliveries (the service re-sends them to the next
        leader) and stop taking results (their nodes retry toward the next leader)."""
        if self.channel.leader is self:
            self.channel.leader = None
        await self._ticker.stop()
        await self._tasks.cancel()
        self.pending.clear()

    async def deliver(self, commands: list[DeliveredCommand]) -> None:
        """The uplink's ``on_commands``: send each to its target now, and until answered."""
        for command in commands:
            key = (command.command_id, command.node_id)
            self.pending[key] = _Outgoing(command.wire, command.node_id, 0.0,
                                          self.settings.retry_min_s)
            self.counters["delivered"] += 1
            self._send_command(key, time.monotonic())
        self._ticker.poke()

    def on_working(self, src: bytes, command_id: bytes) -> None:
        item = self.pending.get((command_id, src))
        if item is not None:
            item.answered = True

    def on_result(self, src: bytes, command_id: bytes, wire: bytes) -> None:
        self._tasks.spawn(self._take_result(src, command_id, wire),
                          f"result-{command_id.hex()[:8]}")

    async def _take_result(self, src: bytes, command_id: bytes, wire: bytes) -> None:
        try:
            result = _parse_result(wire)
            signer = self.signer_of(result.node_id)
            if signer is None:
                raise ResultError(f"result from unknown node {result.node_id.hex()}")
            result = CommandResult.verify(wire, _Key(result.node_id, signer))
            if result.command_id != command_id:
                raise ResultError("result names another command than its message")
        except ResultError as exc:
            self.counters["results_refused"] += 1
            log.warn_limited("relay_result_refused", key=src, src=src.hex(), error=str(exc))
            return
        await self.sink.send_result(command_id, result.node_id, wire)  # durable first
        self.pending.pop((command_id, result.node_id), None)
        self.counters["results"] += 1
        self.channel.send(result.node_id, _RESULT_ACK, command_id)

    def _send_command(self, key: tuple[bytes, bytes], now: float) -> None:
        item = self.pending[key]
        if self.channel.send(item.to, _COMMAND, key[0], item.wire):
            item.first_no_route = None
        elif item.first_no_route is None:
            item.first_no_route = now
        item.next_try = now + item.delay
        item.delay = min(self.settings.retry_max_s, item.delay * 2)

    def _retry(self, now: float) -> None:
        """Re-send unanswered commands; give up on (nack) targets that are gone or that
        no route has reached for the grace time."""
        for key, item in list(self.pending.items()):
            gone = not self.reachable(item.to)
            stuck = item.first_no_route is not None and \
                now - item.first_no_route >= self.settings.no_route_grace_s
            if gone or stuck:
                del self.pending[key]
                self.counters["nacked"] += 1
                reason = "target unreachable" if gone else "no route to target"
                self._tasks.spawn(self._nack(key, reason), "nack")
            elif not item.answered and item.next_try <= now:
                self._send_command(key, now)

    async def _nack(self, key: tuple[bytes, bytes], reason: str) -> None:
        with contextlib.suppress(ConnectionError, MeshError):
            await self.sink.nack(key[0], key[1], reason)


@dataclass(frozen=True)
class _Key:
    node_id: bytes
    sign_public: bytes


def _parse_result(wire: bytes) -> CommandResult:
    """The result's body, unverified (to find whose key verifies it)."""
    try:
        return CommandResult.from_signed(Signed.from_wire(wire))
    except MeshError as exc:
        raise ResultError(f"result does not parse: {exc}") from exc

