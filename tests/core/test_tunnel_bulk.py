"""Bulk transfer through the tunnel: the ``*_into`` calls with caller buffers, the C core
against its Python twin on the same inputs, and BulkSealer/BulkOpener over real sockets."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent.core import (
    MAX_FRAME_PAYLOAD,
    AuthenticationError,
    Frame,
    FrameTruncated,
    FrameVersionError,
    InvalidArgument,
    ReplayError,
    Tunnel,
    cbackend,
    pyref,
)
from meshagent.core.bulk import BulkOpener, BulkSealer
from meshagent.core.tunnel import RECORD_OVERHEAD, TunnelBase
from meshagent.core.wire import SEALED_AAD_BYTES, FrameLayout

KEY_AB, KEY_BA = bytes(range(32)), bytes(range(32, 64))
TEMPLATE = Frame(type=3, src=b"s" * 16, dst=b"d" * 16, channel=7, seq=100)
BACKENDS = [cbackend.Tunnel, pyref.Tunnel]


def pair(backend: type[TunnelBase] = Tunnel) -> tuple[TunnelBase, TunnelBase]:
    return backend(KEY_AB, KEY_BA), backend(KEY_BA, KEY_AB)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:  # the class itself is compared
        return "error", type(exc)


def test_seal_stream_into_writes_what_seal_stream_returns() -> None:
    alice, _ = pair()
    twin, _ = pair()
    payload = os.urandom(10_000)
    out = bytearray(Tunnel.sealed_stream_bytes(len(payload), 4096) + 5)
    written = alice.seal_stream_into(TEMPLATE, payload, 4096, out)
    assert written == len(payload) + 3 * RECORD_OVERHEAD
    assert out[:written] == twin.seal_stream(TEMPLATE, payload, 4096)
    assert alice.send_counter == 3


def test_seal_stream_into_numbers_frames_from_the_seq_given() -> None:
    alice, bob = pair()
    out = bytearray(Tunnel.sealed_stream_bytes(3000, 1000))
    written = alice.seal_stream_into(TEMPLATE, os.urandom(3000), 1000, out, seq=(1 << 64) - 2)
    assert [f.seq for f in bob.open_frames(out[:written])] == [(1 << 64) - 2, (1 << 64) - 1, 0]


def test_open_stream_into_keeps_the_cut_record_for_the_next_call() -> None:
    alice, bob = pair()
    payload = os.urandom(5000)
    stream = alice.seal_stream(TEMPLATE, payload, 1400)
    out = bytearray(MAX_FRAME_PAYLOAD)
    consumed, written = bob.open_stream_into(stream[:2000], out)
    assert (consumed, written) == (1400 + RECORD_OVERHEAD, 1400)
    assert out[:written] == payload[:1400]
    consumed, written = bob.open_stream_into(stream[consumed:], out)
    assert written == 3600 and out[:written] == payload[1400:]


def test_open_stream_into_rejects_a_bad_header_in_the_cut_record_before_opening() -> None:
    alice, bob = pair()
    stream = bytearray(alice.seal_stream(TEMPLATE, os.urandom(3000), 1000))
    record = 1000 + RECORD_OVERHEAD
    stream[record + FrameLayout.VERSION] = 9
    with pytest.raises(FrameVersionError):
        bob.open_stream_into(stream[:record + 60], bytearray(MAX_FRAME_PAYLOAD))
    stream[record + FrameLayout.VERSION] = 1
    # Nothing opened: the first record is no replay.
    assert bob.open_stream_into(stream, bytearray(MAX_FRAME_PAYLOAD)) == (len(stream), 3000)


def test_open_stream_into_stops_at_a_forged_record_and_wipes_it() -> None:
    alice, bob = pair()
    stream = bytearray(alice.seal_stream(TEMPLATE, os.urandom(3000), 1000))
    stream[1000 + RECORD_OVERHEAD + SEALED_AAD_BYTES] ^= 1
    out = bytearray(b"\xee" * MAX_FRAME_PAYLOAD)
    with pytest.raises(AuthenticationError):
        bob.open_stream_into(stream, out)
    assert out[1000:2000] == bytes(1000) and out[2000] == 0xEE
    with pytest.raises(ReplayError):
        bob.open_stream_into(stream[:1000 + RECORD_OVERHEAD], out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_into_calls_refuse_bad_buffers(backend: type[TunnelBase]) -> None:
    alice, bob = pair(backend)
    payload = bytearray(3000)
    room = Tunnel.sealed_stream_bytes(3000, 1000)
    with pytest.raises(InvalidArgument):
        alice.seal_stream_into(TEMPLATE, payload, 1000, bytearray(room - 1))
    with pytest.raises(InvalidArgument):
        alice.seal_stream_into(TEMPLATE, payload, 1000, bytes(room))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        alice.seal_stream_into(TEMPLATE, memoryview(payload)[:10], 1000, payload)
    with pytest.raises(InvalidArgument):
        alice.seal_stream_into(TEMPLATE, payload, 1000, bytearray(room), seq=-1)
    with pytest.raises(InvalidArgument):
        bob.open_stream_into(b"", bytearray(MAX_FRAME_PAYLOAD - 1))
    records = bytearray(2 * MAX_FRAME_PAYLOAD)
    with pytest.raises(InvalidArgument):
        bob.open_stream_into(memoryview(records)[:10], memoryview(records)[MAX_FRAME_PAYLOAD:])
    assert alice.send_counter == 0


frames_template = st.builds(
    Frame, type=st.integers(1, 255), flags=st.integers(0, 255),
    src=st.binary(min_size=16, max_size=16), dst=st.binary(min_size=16, max_size=16),
    hop_limit=st.integers(0, 255), channel=st.integers(0, (1 << 32) - 1),
    seq=st.integers(0, (1 << 64) - 1))


@given(frames_template, st.binary(max_size=4000), st.integers(1, 1500),
       st.integers(0, (1 << 64) - 1), st.lists(st.integers(1, 3000), min_size=1), st.data())
def test_backends_agree_on_the_into_calls(template: Frame, payload: bytes, piece: int,
                                          seq: int, cuts: list[int],
                                          data: st.DataObject) -> None:
    c_alice, c_bob = pair(cbackend.Tunnel)
    py_alice, py_bob = pair(pyref.Tunnel)
    room = Tunnel.sealed_stream_bytes(len(payload), piece)
    c_out, py_out = bytearray(room), bytearray(room)
    assert (c_alice.seal_stream_into(template, payload, piece, c_out, seq=seq)
            == py_alice.seal_stream_into(template, payload, piece, py_out, seq=seq) == room)
    assert c_out == py_out
    stream = bytearray(c_out)
    for _ in range(data.draw(st.integers(0, 2))):
        if stream:
            stream[data.draw(st.integers(0, len(stream) - 1))] ^= data.draw(st.integers(1, 255))
    # Feed both twins the same reads, each call starting where the last one stopped.
    c_got, py_got = bytearray(MAX_FRAME_PAYLOAD), bytearray(MAX_FRAME_PAYLOAD)
    start = end = 0
    for cut in cuts * (1 + len(stream) // sum(cuts)):
        end = min(end + cut, len(stream))
        records = stream[start:end]
        c_result = outcome(lambda records=records: c_bob.open_stream_into(records, c_got))
        py_result = outcome(lambda records=records: py_bob.open_stream_into(records, py_got))
        assert c_result == py_result
        assert c_got == py_got
        kind, value = c_result
        if kind == "error" or end == len(stream):
            break
        start += value[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_opener_reassembles_any_split(backend: type[TunnelBase]) -> None:
    alice, bob = pair(backend)
    sealer = BulkSealer(alice, TEMPLATE, frame_payload_bytes=1000, chunk_bytes=7000)
    opener = BulkOpener(bob, read_bytes=MAX_FRAME_PAYLOAD + RECORD_OVERHEAD)
    payload = os.urandom(50_000)
    stream = b"".join(bytes(sealer.seal(payload[i:i + 7000])) for i in range(0, 50_000, 7000))
    assert sealer.next_seq == TEMPLATE.seq + 50
    got = bytearray()
    pos = 0
    for size in [1, 59, 60, 999, 1075, 1076, 20_000, 66_000] * 10:
        if pos == len(stream):
            break
        space = opener.space()
        size = min(size, len(space), len(stream) - pos)
        space[:size] = stream[pos:pos + size]
        pos += size
        got += opener.received(size)
    opener.finish()
    assert got == payload


def test_bulk_opener_refuses_a_stream_that_ends_inside_a_record() -> None:
    alice, bob = pair()
    record = BulkSealer(alice, TEMPLATE).seal(b"abc")
    opener = BulkOpener(bob)
    opener.space()[:len(record) - 1] = record[:-1]
    assert opener.received(len(record) - 1) == b""
    assert opener.pending == len(record) - 1
    with pytest.raises(FrameTruncated):
        opener.finish()


def test_bulk_classes_refuse_bad_sizes() -> None:
    alice, bob = pair()
    with pytest.raises(InvalidArgument):
        BulkSealer(alice, TEMPLATE, chunk_bytes=100).seal(bytes(101))
    with pytest.raises(InvalidArgument):
        BulkSealer(alice, TEMPLATE, frame_payload_bytes=MAX_FRAME_PAYLOAD + 1)
    with pytest.raises(InvalidArgument):
        BulkOpener(bob, read_bytes=MAX_FRAME_PAYLOAD)  # less than one largest record
    with pytest.raises(InvalidArgument):
        BulkOpener(bob).received(len(BulkOpener(bob).space()) + 1)


def test_bulk_transfer_over_a_socket_delivers_every_byte() -> None:
    alice, bob = pair()
    payload = os.urandom(3 * 1024 * 1024 + 12345)
    sender_side, receiver_side = socket.socketpair()
    failures: list[BaseException] = []

    def send() -> None:
        try:
            sealer = BulkSealer(alice, TEMPLATE)
            with sender_side:
                for i in range(0, len(payload), 256 * 1024):
                    sender_side.sendall(sealer.seal(memoryview(payload)[i:i + 256 * 1024]))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    opener = BulkOpener(bob)
    got = bytearray()
    with receiver_side:
        receiver_side.settimeout(30)
        while count := receiver_side.recv_into(opener.space()):
            got += opener.received(count)
    thread.join(timeout=30)
    assert not thread.is_alive() and not failures
    opener.finish()
    assert got == payload


def test_bulk_opener_reports_a_forged_record_from_the_socket() -> None:
    alice, bob = pair()
    stream = bytearray(BulkSealer(alice, TEMPLATE).seal(os.urandom(100_000)))
    stream[-1] ^= 1
    opener = BulkOpener(bob)
    opener.space()[:len(stream)] = stream
    with pytest.raises(AuthenticationError):
        opener.received(len(stream))
