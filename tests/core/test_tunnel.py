"""The tunnel through the public door: wire format, tampering, replay, rekey limits."""

from __future__ import annotations

import os
import struct

import pytest

from meshagent.core import (
    FRAME_HEADER_BYTES,
    SEALED_OVERHEAD,
    AuthenticationError,
    Frame,
    FrameMalformed,
    FrameTruncated,
    InvalidArgument,
    RekeyRequired,
    ReplayError,
    Tunnel,
    TunnelClosed,
    aes_gcm_open,
    encode_frames,
)
from meshagent.core.wire import SEALED_AAD_BYTES, FrameLayout

KEY_AB, KEY_BA = bytes(range(32)), bytes(range(32, 64))
RECORD_OVERHEAD = FRAME_HEADER_BYTES + SEALED_OVERHEAD


def pair(**limits: object) -> tuple[Tunnel, Tunnel]:
    return Tunnel(KEY_AB, KEY_BA, **limits), Tunnel(KEY_BA, KEY_AB)


def frame(seq: int = 0, payload: bytes = b"payload") -> Frame:
    return Frame(type=2, src=b"a" * 16, dst=b"b" * 16, channel=4, seq=seq, payload=payload)


def test_sealed_frames_open_on_the_peer() -> None:
    alice, bob = pair()
    frames = [frame(i, os.urandom(i * 100)) for i in range(5)]
    sealed = alice.seal_frames(frames)
    assert len(sealed) == sum(f.encoded_size + SEALED_OVERHEAD for f in frames)
    assert bob.open_frames(sealed) == frames
    assert alice.send_counter == 5


def test_record_is_gcm_with_counter_nonce_and_header_as_aad() -> None:
    alice, _ = pair()
    alice.seal(frame(0))
    record = alice.seal(frame(1, b"secret"))
    counter = struct.unpack_from(">Q", record, FrameLayout.COUNTER)[0]
    assert counter == 1
    nonce = bytes(4) + struct.pack(">Q", counter)
    body = record[SEALED_AAD_BYTES:]
    assert aes_gcm_open(KEY_AB, nonce, record[:SEALED_AAD_BYTES], body) == b"secret"
    assert record[:FRAME_HEADER_BYTES] == _plain_header(frame(1, b"secret"))


def _plain_header(f: Frame) -> bytes:
    return encode_frames([f])[:FRAME_HEADER_BYTES]


@pytest.mark.parametrize("offset", [FrameLayout.SEQ, FrameLayout.DST, FrameLayout.COUNTER + 7,
                                    SEALED_AAD_BYTES + 1, -1])
def test_tampered_record_raises_authentication_error(offset: int) -> None:
    alice, bob = pair()
    record = bytearray(alice.seal(frame(payload=b"twelve bytes")))
    record[offset] ^= 0x01
    with pytest.raises(AuthenticationError):
        bob.open(record)
    # The forgery did not move the replay window: the genuine record still opens.
    record[offset] ^= 0x01
    assert bob.open(record) == frame(payload=b"twelve bytes")


def test_wrong_key_fails_authentication() -> None:
    alice = Tunnel(KEY_AB, KEY_BA)
    mallory = Tunnel(KEY_BA, os.urandom(32))
    with pytest.raises(AuthenticationError):
        mallory.open(alice.seal(frame()))


def test_replayed_frame_is_rejected() -> None:
    alice, bob = pair()
    record = alice.seal(frame())
    bob.open(record)
    with pytest.raises(ReplayError):
        bob.open(record)


def test_reordered_datagrams_are_accepted_once() -> None:
    alice, bob = pair()
    records = [alice.seal(frame(i)) for i in range(50)]
    for record in reversed(records):
        bob.open(record)
    with pytest.raises(ReplayError):
        bob.open(records[10])


def test_seal_stream_cuts_payload_into_numbered_frames() -> None:
    alice, bob = pair()
    payload = os.urandom(10_000)
    sealed = alice.seal_stream(frame(seq=40), payload, 4096)
    assert len(sealed) == len(payload) + 3 * RECORD_OVERHEAD
    opened = bob.open_frames(sealed)
    assert [f.seq for f in opened] == [40, 41, 42]
    assert [len(f.payload) for f in opened] == [4096, 4096, 10_000 - 8192]
    assert b"".join(f.payload for f in opened) == payload
    assert alice.seal_stream(frame(), b"", 100) == b""


def test_open_stream_joins_the_payloads() -> None:
    alice, bob = pair()
    payload = os.urandom(100_000)
    assert bob.open_stream(alice.seal_stream(frame(), payload, 1400)) == payload


def test_feed_opens_records_split_anywhere() -> None:
    alice, bob = pair()
    frames = [frame(i, os.urandom(300)) for i in range(4)]
    sealed = alice.seal_frames(frames)
    out: list[Frame] = []
    for i in range(len(sealed)):
        out += bob.feed(sealed[i:i + 1])
    assert out == frames
    payload = os.urandom(5000)
    stream = alice.seal_stream(frame(), payload, 1000)
    assert b"".join(bob.feed_stream(stream[i:i + 999])
                    for i in range(0, len(stream), 999)) == payload


def test_sealing_refuses_past_the_message_limit() -> None:
    alice, _ = pair(rekey_after_messages=3)
    alice.seal_frames([frame(), frame()])
    with pytest.raises(RekeyRequired):
        alice.seal_frames([frame(), frame()])  # all or nothing
    assert alice.send_counter == 2 and not alice.needs_rekey
    alice.seal(frame())
    assert alice.needs_rekey
    with pytest.raises(RekeyRequired):
        alice.seal_stream(frame(), b"x", 1)


def test_sealing_refuses_after_the_time_limit() -> None:
    now = [1_000_000_000]
    alice = Tunnel(KEY_AB, KEY_BA, rekey_after_seconds=120, clock=lambda: now[0])
    alice.seal(frame())
    now[0] += 119 * 10**9
    assert not alice.needs_rekey
    now[0] += 10**9
    assert alice.needs_rekey
    with pytest.raises(RekeyRequired):
        alice.seal(frame())


def test_open_of_a_datagram_holding_two_records_is_malformed() -> None:
    alice, bob = pair()
    with pytest.raises(FrameMalformed):
        bob.open(alice.seal_frames([frame(0), frame(1)]))
    with pytest.raises(FrameTruncated):
        bob.open(b"")


def test_truncated_record_is_rejected() -> None:
    alice, bob = pair()
    record = alice.seal(frame())
    with pytest.raises(FrameTruncated):
        bob.open(record[:-1])


def test_closed_tunnel_refuses_use() -> None:
    with Tunnel(KEY_AB, KEY_BA) as alice:
        alice.seal(frame())
    with pytest.raises(TunnelClosed):
        alice.seal(frame())
    alice.close()


@pytest.mark.parametrize("arguments", [
    {"send_key": b"short", "recv_key": KEY_BA}, {"send_key": KEY_AB, "recv_key": None},
    {"send_key": KEY_AB, "recv_key": KEY_BA, "rekey_after_messages": 0},
    {"send_key": KEY_AB, "recv_key": KEY_BA, "rekey_after_messages": (1 << 60) + 1},
    {"send_key": KEY_AB, "recv_key": KEY_BA, "rekey_after_seconds": 0},
])
def test_bad_tunnel_arguments_are_refused(arguments: dict) -> None:
    with pytest.raises(InvalidArgument):
        Tunnel(**arguments)


def test_bad_stream_arguments_are_refused() -> None:
    alice, _ = pair()
    for size in (0, 65537, 1.5):
        with pytest.raises(InvalidArgument):
            alice.seal_stream(frame(), b"abc", size)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        alice.seal_frames([b"not a frame"])  # type: ignore[list-item]
