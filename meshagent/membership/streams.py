"""Membership over TCP: full-state exchange, TCP pings and liveness watches.

Every stream starts with the sealed-stream hello of ``sealing.PeerKeys`` (both sides prove
their certificate; the opener of a state exchange adds its own record, which the
responder takes at once, ``_admit``), then the opener sends one request, a msgpack map
with ``op``:

``versions`` ``{"op": "versions", "held": [[node id, state, state incarnation, record
           incarnation], ...], "state": [our own entry], "docs": ..., "burnt": ...}``: a
           state exchange that sends what the opener holds as versions (about 30 bytes a
           member) instead of records (about 500), and its own record in full (a
           joiner's record is the news of the join). The responder answers as to
           ``sync``, less what the versions say the opener holds exactly, with ``"want":
           [node id, ...]`` added: the members the opener holds newer records of, or the
           responder lacks. The opener then sends ``{"op": "state", "state": [entry, ...]}``
           for those, and both merge. Between members that agree, the whole exchange is
           the versions and a nearly empty answer: at 100 members about 3 KB instead of
           the 50 KB of a full state. Claims in the versions (suspect, unreachable,
           asleep, off) are applied as those in a full state. An opener sends it to
           members whose stream hello offers ``versions`` (``sealing.HELLO_FEATURES``),
           a full ``sync`` to others (older agents).
``sync``   ``{"op": "sync", "state": [[record, state, incarnation], ...],
           "docs": {kind: root-signed document}, "burnt": [certificate, ...]}`` (the
           evidence of join tokens redeemed by two nodes); the responder answers with its own
           state (taken before merging) in the same form, less the alive and left entries
           the opener sent exactly (same record bytes, state and incarnation; a
           suspicion or a power state is a claim, always sent), and both merge
           (push-pull, as memberlist): the responder before its answer leaves, the
           opener once it arrives. Used to join, to converge fast while the view
           changes, periodically as anti-entropy, and to retry unreachable members (each
           as a ``versions`` exchange, with ``sync`` for members that do not take one).
           Between members that agree the answer is nearly empty: a mass join's fast
           exchanges used to carry every record back to the member that had just sent
           it, which then walked them all again to find nothing new.
``docs``   answered by ``{"op": "docs", "docs": {kind: document}}``: fetched from a member
           that announced a document version we lack (``messages.Document``).
``ping``   answered by ``{"op": "ack"}``: the TCP leg of a probe. A refused connect is the
           proof of a crashed agent ("refused"); silence is just "timeout".
``renewal`` answered by ``{"op": "renewal", "cert": certificate or nil}``: a node whose
           certificate has ended asks members for the renewal an operator pushed
           (``meshagent.certdelivery``). The only request served to a certificate that
           has ended (this mesh's, not revoked); anything else on such a stream is
           dropped as ``bad_certificate``.
``watch``  kept open by both sides, idle. A watch that ends without ``{"op": "bye"}``
           (sent on leave and when the ring of watched successors changes) means the
           other agent's process ended: its kernel closed the socket. The survivor calls
           ``Membership.report_connection_lost`` at once, which turns a ``kill -9`` into a
           confirmed death within one round trip instead of a suspicion timeout.

Merging trusts nothing: every record goes through ``Membership.accept_record`` (signature,
certificate, revocations, higher incarnation), every document through
``Membership.offer_document`` (root signature, mesh, higher version); states other than
alive are claims by the sender, applied like gossip (an "unreachable" is taken as a
suspicion, as memberlist does, so a stale view cannot kill a live member).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from meshagent import codec
from meshagent.errors import DecodeError
from meshagent.identity import NODE_ID_BYTES
from meshagent.log import get_logger
from meshagent.membership.messages import Power, Suspect
from meshagent.membership.sealing import SealedStream, SealError
from meshagent.membership.state import MemberState
from meshagent.record import RecordError
from meshagent.transport import (
    CHANNEL_MEMBERSHIP,
    MAX_STREAM_MESSAGE,
    Address,
    MessageStream,
    StreamRefused,
    TransportError,
    format_address,
)

if TYPE_CHECKING:
    from meshagent.membership.swim import Membership

__all__ = ["StreamService"]

log = get_logger(__name__)

_STREAM_COST = 20.0  # a stream costs a certificate check and a key derivation
_STATES = {state.value: state for state in MemberState}
# States that claim nothing about a member beyond its record (see ``_merge_request``).
_NO_CLAIM = frozenset({MemberState.ALIVE.value, MemberState.LEFT.value})
_BYE = codec.pack({"op": "bye"})
MAX_BURNT_EVIDENCE = 64  # certificates (two per burnt join token) per state exchange
# Watches follow our ring successors once they and our member count have held still this
# many probe intervals, and at most this many late while they keep moving (see
# ``reconcile_watches``).
WATCH_SETTLE_PROBES = 2
WATCH_SETTLE_MAX_PROBES = 20


class StreamService:
    def __init__(self, membership: Membership) -> None:
        self.m = membership
        self._outgoing: dict[bytes, asyncio.Task[None]] = {}
        self._incoming: dict[bytes, SealedStream] = {}
        self._outgoing_streams: dict[bytes, SealedStream] = {}
        # The successors last computed, since when (event-loop time) they have been
        # those, and since when the watches have differed from them (None: they match).
        self._successors: set[bytes] = set()
        self._successors_since = 0.0
        self._differs_since: float | None = None

    # ---------------------------------------------------------------- opener side

    async def _open(self, address: Address, expect: bytes | None,
                    record: bytes | None = None) -> SealedStream:
        timeout = self.m.profile.stream_timeout_s
        reader, writer = await self.m.transport.open_stream(address, CHANNEL_MEMBERSHIP,
                                                            timeout)
        stream = MessageStream(reader, writer, MAX_STREAM_MESSAGE, self.m.counters)
        try:
            return await self.m.keys.open_stream(stream, timeout, expect, record)
        except BaseException:
            stream.close()
            raise

    def _state(self, held: dict[bytes, tuple[Any, Any]] | None = None,
               versions: dict[bytes, tuple[Any, Any, Any]] | None = None,
               want: list[bytes] | None = None) -> bytes:
        """Our state for a ``sync``, or the answer to one or to ``versions``: without the
        entries the peer holds exactly, by ``held`` (record bytes to the peer's state and
        incarnation, ``_held_by``: those the peer sent) or by ``versions`` (node id to
        state, state incarnation and record incarnation, ``_versions_held``); ``want``
        asks the peer for the entries of those members (``versions``). Entries that are
        claims (suspect, unreachable, asleep, off) are always sent: the peer counts them
        as our confirmation, as it does our gossip."""
        m = self.m
        entries = []
        for node_id, entry in m._members.items():
            item = [entry.record.wire, entry.state.value, entry.state_incarnation]
            if item[1] in _NO_CLAIM and (
                    (held and held.get(item[0]) == (item[1], item[2])) or (
                        versions and versions.get(node_id) == (
                            item[1], item[2], entry.record.incarnation))):
                m.counters["sync_entries_omitted"] += 1
                continue
            entries.append(item)
        message = {"op": "sync", "state": entries, "docs": m.documents.wires(),
                   "burnt": m.redeemed.burnt_evidence()[:MAX_BURNT_EVIDENCE]}
        if want:
            message["want"] = want
        return self._counted(message)

    def _versions_request(self) -> bytes:
        """A ``versions`` request: our own entry in full, every other member's versions."""
        m = self.m
        own = m._members[m.node_id]
        held = [[node_id, entry.state.value, entry.state_incarnation,
                 entry.record.incarnation]
                for node_id, entry in m._members.items() if node_id != m.node_id]
        return self._counted({
            "op": "versions", "held": held,
            "state": [[own.record.wire, own.state.value, own.state_incarnation]],
            "docs": m.documents.wires(),
            "burnt": m.redeemed.burnt_evidence()[:MAX_BURNT_EVIDENCE]})

    def _counted(self, message: dict[str, Any]) -> bytes:
        data = codec.pack(message)
        self.m.counters["state_bytes_sent"] += len(data)
        return data

    async def sync(self, address: Address, expect: bytes | None = None) -> bool:
        """Push-pull with whatever member listens at ``address``; False if it failed. A
        ``versions`` exchange when the member's hello offers it, else a full ``sync`` (an
        older agent: counted in ``syncs_in_full``)."""
        try:
            # Our record rides in the hello: the responder admits a joiner on reading it
            # (``_admit``), a round trip before our request arrives.
            sealed = await self._open(address, expect, self.m.record.wire)
        except (TransportError, SealError) as exc:
            self.m.counters["syncs_failed"] += 1
            log.debug("sync_failed", peer=f"{address[0]}:{address[1]}", error=str(exc))
            return False
        try:
            versions = "versions" in sealed.peer_features
            if not versions:
                self.m.counters["syncs_in_full"] += 1
            await sealed.send(self._versions_request() if versions else self._state())
            answer = codec.unpack(await sealed.recv(self.m.profile.stream_timeout_s * 2),
                                  MAX_STREAM_MESSAGE)
            if not isinstance(answer, dict):
                raise DecodeError("state is not a map")
            if versions:
                await self._send_wanted(sealed, answer.get("want"))
            self._merge_request(answer, sealed.peer_id)
            self.m.counters["syncs"] += 1
            return True
        except (TransportError, SealError, DecodeError) as exc:
            self.m.counters["syncs_failed"] += 1
            log.debug("sync_failed", peer=f"{address[0]}:{address[1]}", error=str(exc))
            return False
        finally:
            sealed.close()

    async def _send_wanted(self, sealed: SealedStream, want: Any) -> None:
        """The last message of a ``versions`` exchange: our entries of the members the
        responder asked for (it sends the request only when it asks for some)."""
        if not isinstance(want, list) or not want:
            return
        m = self.m
        entries = []
        for node_id in want[:len(m._members)]:
            entry = m._members.get(node_id) if isinstance(node_id, bytes) else None
            if entry is not None:
                entries.append([entry.record.wire, entry.state.value, entry.state_incarnation])
        await sealed.send(self._counted({"op": "state", "state": entries}))

    async def sync_with(self, node_id: bytes) -> bool:
        entry = self.m._members.get(node_id)
        return entry is not None and await self.sync(entry.address, node_id)

    async def fetch_documents(self, node_id: bytes) -> bool:
        """Ask a member for its root-signed documents and offer each; False if it failed."""
        entry = self.m._members.get(node_id)
        if entry is None:
            return False
        try:
            sealed = await self._open(entry.address, node_id)
        except (TransportError, SealError):
            return False
        try:
            await sealed.send(codec.pack({"op": "docs"}))
            reply = codec.unpack(await sealed.recv(self.m.profile.stream_timeout_s),
                                 MAX_STREAM_MESSAGE)
            if not isinstance(reply, dict):
                raise DecodeError("documents reply is not a map")
            self._offer_documents(reply.get("docs"), node_id)
            return True
        except (TransportError, SealError, DecodeError) as exc:
            log.debug("documents_fetch_failed", peer=node_id.hex(), error=str(exc))
            return False
        finally:
            sealed.close()

    async def ping(self, node_id: bytes) -> str:
        """"ack", "refused" (nothing listens: the agent is gone) or "timeout"."""
        entry = self.m._members.get(node_id)
        if entry is None:
            return "timeout"
        try:
            sealed = await self._open(entry.address, node_id)
        except StreamRefused:
            return "refused"
        except (TransportError, SealError):
            return "timeout"
        try:
            await sealed.send(codec.pack({"op": "ping"}))
            reply = codec.unpack(await sealed.recv(self.m.profile.stream_timeout_s))
            return "ack" if isinstance(reply, dict) and reply.get("op") == "ack" else "timeout"
        except (TransportError, SealError, DecodeError):
            return "timeout"
        finally:
            sealed.close()

    async def ask_renewal(self, address: Address) -> bytes | None:
        """Ask whatever member listens at ``address`` for a renewal of our certificate
        (we may be out of the mesh: ours has ended); its wire bytes, or None."""
        try:
            sealed = await self._open(address, None)
        except (TransportError, SealError) as exc:
            log.debug("renewal_request_failed", peer=format_address(address), error=str(exc))
            return None
        try:
            await sealed.send(codec.pack({"op": "renewal"}))
            reply = codec.unpack(await sealed.recv(self.m.profile.stream_timeout_s))
        except (TransportError, SealError, DecodeError) as exc:
            log.debug("renewal_request_failed", peer=format_address(address), error=str(exc))
            return None
        finally:
            sealed.close()
        wire = reply.get("cert") if isinstance(reply, dict) else None
        return wire if isinstance(wire, bytes) else None

    # ---------------------------------------------------------------- responder side

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: Address) -> None:
        m = self.m
        if not m.running or m._loop is None:
            return
        if not m._limiter.allow(peer[0], m._loop.time(), _STREAM_COST):
            m._drop("flood", peer, "stream")
            return
        timeout = m.profile.stream_timeout_s
        stream = MessageStream(reader, writer, MAX_STREAM_MESSAGE, m.counters)
        try:
            sealed = await m.keys.accept_stream(stream, timeout, ended_ok=True)
            if sealed.peer_record is not None and not sealed.ended:
                self._admit(sealed.peer_record, sealed.peer_id, peer)
            request = codec.unpack(await sealed.recv(timeout), MAX_STREAM_MESSAGE)
            op = request.get("op") if isinstance(request, dict) else None
            if op == "renewal":
                wire = m.renewal_for(sealed.peer)
                m.counters["renewals_handed" if wire else "renewals_not_held"] += 1
                await sealed.send(codec.pack({"op": "renewal", "cert": wire}))
            elif sealed.ended:
                m._drop("bad_certificate", peer,
                        f"stream op {op!r} with a certificate that has ended")
            elif op == "versions":
                await self._answer_versions(sealed, request)
            elif op == "sync":
                answer = self._state(_held_by(request))
                self._merge_request(request, sealed.peer_id)  # see _answer_versions
                await sealed.send(answer)
            elif op == "ping":
                await sealed.send(codec.pack({"op": "ack"}))
            elif op == "docs":
                await sealed.send(codec.pack({"op": "docs", "docs": m.documents.wires()}))
            elif op == "watch":
                await self._watched(sealed)
            else:
                m._drop("unknown_type", peer, f"stream op {op!r}")
        except SealError as exc:
            if exc.reason == "self":
                m.counters["streams_from_self"] += 1  # a seed list naming us: harmless
            else:
                m._drop(exc.reason, peer, str(exc))
        except DecodeError as exc:
            m._drop("malformed", peer, str(exc))
        except TransportError:
            m.counters["streams_broken"] += 1
        finally:
            stream.close()

    def _admit(self, record: bytes, opener: bytes, peer: Address) -> None:
        """Take the record an opener sent in its hello, its own (``sealing``): it reaches
        us a round trip before the opener's request. A seed of a mass join admits every
        joiner as soon as it reads the hello: at 100 agents on 2 cores the requests waited
        0.1-1.8 s behind the seed's other work, and each admission starts its record's
        spread. The hello is not yet authenticated: the record is checked as gossip is,
        and the node's address is the one it advertises, not this stream's source."""
        m = self.m
        if m.node_of_wire(record) is not None:
            return  # held already: a member's periodic exchange
        try:
            node_id = m.verifier.parse(record).node_id
        except RecordError as exc:
            m._drop(exc.reason, peer, f"hello record: {exc}")
            return
        if node_id != opener:
            m._drop("malformed_record", peer, "hello record of another node")
            return
        m.accept_record(record, peer)

    async def _answer_versions(self, sealed: SealedStream, request: dict[str, Any]) -> None:
        """Answer a ``versions`` request, merge it, then merge the entries we asked for.

        The answer is taken before merging (it must not carry the opener's entries back)
        but sent after: a joiner is admitted when its record is merged, and sending an
        answer of a hundred records waits until the opener has read most of it. With
        every agent of a mass join on 2 cores, a late joiner used to wait up to 0.2 s
        more for its admission, and each admission then starts its record's spread."""
        m = self.m
        versions = self._versions_held(request)
        want = []
        for node_id, (_, _, incarnation) in versions.items():
            entry = m._members.get(node_id)
            if entry is None or incarnation > entry.record.incarnation:
                want.append(node_id)
        answer = self._state(_held_by(request), versions, want)
        self._merge_request(request, sealed.peer_id)
        await sealed.send(answer)
        wanted = set(want)
        for node_id, (state, incarnation, _) in versions.items():
            if state not in _NO_CLAIM and node_id not in wanted and node_id in m._members:
                self._claim(node_id, state, incarnation, sealed.peer_id)
        if want:
            m.counters["sync_entries_wanted"] += len(want)
            rest = codec.unpack(await sealed.recv(m.profile.stream_timeout_s),
                                MAX_STREAM_MESSAGE)
            if not isinstance(rest, dict) or rest.get("op") != "state":
                raise DecodeError("the entries asked for in a versions exchange are not a state")
            self._merge_request(rest, sealed.peer_id)

    def _versions_held(self, request: dict[str, Any]) -> dict[bytes, tuple[str, int, int]]:
        """What a ``versions`` request says its sender holds: node id -> (state, state
        incarnation, record incarnation). Each malformed entry is dropped with a counter
        and a log line; versions that are not a list are dropped whole (the answer is
        then our full state)."""
        held = request.get("held")
        if not isinstance(held, list):
            self.m._drop("malformed", None, "versions are not a list")
            return {}
        versions = {}
        for item in held:
            if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], bytes)
                    and len(item[0]) == NODE_ID_BYTES and item[1] in _STATES
                    and _is_incarnation(item[2]) and _is_incarnation(item[3])):
                self.m._drop("malformed", None, "versions entry")
                continue
            versions[item[0]] = (item[1], item[2], item[3])
        return versions

    def _merge_request(self, request: dict[str, Any], sender: bytes) -> None:
        m = self.m
        self._offer_documents(request.get("docs"), sender)
        burnt = request.get("burnt")
        if isinstance(burnt, list):
            # Verified certificates only; a conflict among them burns the token here too.
            m.redeemed.merge([w for w in burnt[:MAX_BURNT_EVIDENCE] if isinstance(w, bytes)],
                             m.trust)
        entries = request.get("state")
        if not isinstance(entries, list):
            m._drop("malformed", None, "state is not a list")
            return
        for item in entries:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], bytes)
                    and item[1] in _STATES and _is_incarnation(item[2])):
                m._drop("malformed", None, "state entry")
                continue
            wire, state, incarnation = item
            node_id = m.node_of_wire(wire)
            if node_id is None:
                # Only the peer's own record is news worth gossiping (a join).
                m.accept_record(wire, from_owner_at=sender, rebroadcast=False)
                node_id = m.node_of_wire(wire)
                if node_id is None:
                    continue
            self._claim(node_id, state, incarnation, sender)

    def _claim(self, node_id: bytes, state: str, incarnation: int, sender: bytes) -> None:
        """Apply what a peer's state says of a member beyond its record, like gossip."""
        if state in ("suspect", "unreachable"):
            self.m._on_suspect(Suspect(node_id, incarnation, sender))
        elif state in ("asleep", "off"):
            self.m._on_power(Power(node_id, incarnation, state, sender))

    def _offer_documents(self, docs: Any, sender: bytes) -> None:
        if docs is None:
            return
        if not isinstance(docs, dict):
            self.m._drop("malformed", None, "documents are not a map")
            return
        for kind, wire in docs.items():
            self.m.offer_document(str(kind), wire, f"member:{sender.hex()}")

    # ---------------------------------------------------------------- watches

    def reconcile_watches(self) -> None:
        """Watch our ``watch_peers`` successors on the ring of live node ids, once they
        and the number of members we hold have held still for ``WATCH_SETTLE_PROBES``
        probe intervals, or have kept moving for ``WATCH_SETTLE_MAX_PROBES`` (a mesh that
        never settles is still watched, that much late). A watch that failed is opened
        again under the same rule: at the next look if the view is still.

        Each watch costs both ends a TCP connection and a stream handshake. In a mass
        join the successors move with the arrivals, and when they are settled the view
        is still growing: watches opened then took about a tenth of the join's CPU at 100
        agents on 2 cores, in the middle of the join (BENCHMARKS.md). Meanwhile a crash
        is still found within a probe: the crashed agent's port refuses its TCP leg."""
        m = self.m
        if not m.running:
            return
        ring = sorted(node_id for node_id, entry in m._members.items() if entry.state.probed)
        wanted: set[bytes] = set()
        if len(ring) > 1:
            start = ring.index(m.node_id) if m.node_id in ring else 0
            for step in range(1, min(m.profile.watch_peers, len(ring) - 1) + 1):
                wanted.add(ring[(start + step) % len(ring)])
        now = m._now()
        if wanted != self._successors:
            self._successors, self._successors_since = wanted, now
        if wanted == self._outgoing.keys():
            self._differs_since = None
            return
        if self._differs_since is None:
            self._differs_since = now
        interval = m.profile.probe_interval_s
        moved = max(self._successors_since, m._digest.count_changed_at)
        if (now - moved < WATCH_SETTLE_PROBES * interval
                and now - self._differs_since < WATCH_SETTLE_MAX_PROBES * interval):
            return
        self._differs_since = None
        for node_id in list(self._outgoing):
            if node_id not in wanted:
                self._end_watch(node_id)
        for node_id in wanted - set(self._outgoing):
            self._outgoing[node_id] = m._spawn(self._watch(node_id))

    def _end_watch(self, node_id: bytes) -> None:
        sealed = self._outgoing_streams.pop(node_id, None)
        if sealed is not None:
            sealed.send_nowait(_BYE)
            sealed.close()
        task = self._outgoing.pop(node_id, None)
        if task is not None:
            task.cancel()

    async def _watch(self, node_id: bytes) -> None:
        m = self.m
        entry = m._members.get(node_id)
        if entry is None:
            return
        try:
            sealed = await self._open(entry.address, node_id)
            await sealed.send(codec.pack({"op": "watch"}))
        except (TransportError, SealError) as exc:
            if self._outgoing.get(node_id) is asyncio.current_task():
                del self._outgoing[node_id]  # retried at the next reconciliation
                if isinstance(exc, StreamRefused):
                    m.report_connection_lost(node_id)  # nothing listens: check it now
            return
        me = asyncio.current_task()
        self._outgoing_streams[node_id] = sealed
        try:
            if not await self._until_bye(sealed) and self._outgoing.get(node_id) is me:
                m.report_connection_lost(node_id)
        finally:
            if self._outgoing.get(node_id) is me:
                del self._outgoing[node_id]
                self._outgoing_streams.pop(node_id, None)
            sealed.close()

    async def _watched(self, sealed: SealedStream) -> None:
        previous = self._incoming.pop(sealed.peer_id, None)
        if previous is not None:
            previous.close()
        self._incoming[sealed.peer_id] = sealed
        try:
            if not await self._until_bye(sealed) and self._incoming.get(
                    sealed.peer_id) is sealed:
                self.m.report_connection_lost(sealed.peer_id)
        finally:
            if self._incoming.get(sealed.peer_id) is sealed:
                del self._incoming[sealed.peer_id]

    async def _until_bye(self, sealed: SealedStream) -> bool:
        """Wait for the goodbye (True) or the end of the stream (False)."""
        while True:
            try:
                message = codec.unpack(await sealed.recv(None))
            except (TransportError, SealError, DecodeError):
                return False
            if isinstance(message, dict) and message.get("op") == "bye":
                return True

    async def say_goodbye(self) -> None:
        """Before leaving: end every watch with a goodbye so nobody reports a crash."""
        for node_id in list(self._outgoing):
            self._end_watch(node_id)
        for sealed in list(self._incoming.values()):
            sealed.send_nowait(_BYE)
            with contextlib.suppress(Exception):
                await sealed.stream.writer.drain()
            sealed.close()
        self._incoming.clear()


def _is_incarnation(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def _held_by(request: dict[str, Any]) -> dict[bytes, tuple[Any, Any]]:
    """What a ``sync`` request says its sender holds: record bytes -> (state,
    incarnation). Malformed entries are left out (they are dropped, with a log line, by
    the merge); a claim here only spares the sender records it says it has."""
    entries = request.get("state")
    if not isinstance(entries, list):
        return {}
    return {item[0]: (item[1], item[2]) for item in entries
            if isinstance(item, list) and len(item) == 3 and isinstance(item[0], bytes)}
