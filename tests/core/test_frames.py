"""Frames through the public door: round trips, streaming splits, malformed input."""

from __future__ import annotations

import os
import struct

import pytest

from meshagent.core import (
    FRAME_HEADER_BYTES,
    MAX_FRAME_PAYLOAD,
    NODE_ID_BYTES,
    Frame,
    FrameDecoder,
    FrameError,
    FrameMalformed,
    FrameOversize,
    FrameTruncated,
    FrameVersionError,
    InvalidArgument,
    decode_frames,
    encode_frames,
)
from meshagent.core.wire import FrameLayout
from meshagent.errors import DecodeError


def sample_frames() -> list[Frame]:
    return [
        Frame(type=1, src=b"\x01" * 16, dst=b"\x02" * 16, seq=1, payload=b"hello"),
        Frame(type=255, flags=0xff, src=os.urandom(16), dst=os.urandom(16), hop_limit=0,
              channel=(1 << 32) - 1, seq=(1 << 64) - 1, payload=b""),
        Frame(type=7, channel=3, seq=2, payload=os.urandom(3000)),
    ]


def test_wire_sizes_come_from_the_c_header() -> None:
    assert NODE_ID_BYTES == 16
    assert FRAME_HEADER_BYTES == 52
    assert FrameLayout.DST + NODE_ID_BYTES == FRAME_HEADER_BYTES


def test_frames_round_trip_through_encode_and_decode() -> None:
    frames = sample_frames()
    buf = encode_frames(frames)
    assert len(buf) == sum(frame.encoded_size for frame in frames)
    assert decode_frames(buf) == frames


def test_header_fields_sit_at_their_wire_offsets() -> None:
    frame = Frame(type=9, flags=3, src=b"s" * 16, dst=b"d" * 16, hop_limit=4, channel=5,
                  seq=6, payload=b"xy")
    buf = encode_frames([frame])
    assert buf[FrameLayout.VERSION] == 1 and buf[FrameLayout.TYPE] == 9
    assert struct.unpack_from(">I", buf, FrameLayout.LENGTH)[0] == 2
    assert struct.unpack_from(">Q", buf, FrameLayout.SEQ)[0] == 6
    assert buf[FrameLayout.DST:FrameLayout.DST + 16] == b"d" * 16
    assert buf[FRAME_HEADER_BYTES:] == b"xy"


def test_decoded_payloads_are_views_of_the_input_not_copies() -> None:
    buf = encode_frames(sample_frames())
    frames = decode_frames(buf)
    assert all(isinstance(frame.payload, memoryview) for frame in frames)
    assert frames[2].payload.obj is buf
    assert frames[2].payload.readonly


def test_decoder_accepts_one_byte_at_a_time() -> None:
    frames = sample_frames()
    buf = encode_frames(frames)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(buf)):
        out += decoder.feed(buf[i:i + 1])
    assert out == frames
    assert decoder.buffered == 0


def test_decoder_accepts_pieces_that_straddle_frames() -> None:
    frames = sample_frames() * 3
    buf = encode_frames(frames)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for start in range(0, len(buf), 777):
        out += decoder.feed(buf[start:start + 777])
        assert decoder.buffered <= FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD
    assert out == frames


def test_unknown_version_is_rejected() -> None:
    buf = bytearray(encode_frames(sample_frames()))
    buf[FrameLayout.VERSION] = 2
    with pytest.raises(FrameVersionError):
        decode_frames(buf)


def test_frame_errors_are_decode_errors() -> None:
    assert issubclass(FrameError, DecodeError)


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    header = bytearray(encode_frames([Frame(type=1)]))
    struct.pack_into(">I", header, FrameLayout.LENGTH, MAX_FRAME_PAYLOAD + 1)
    decoder = FrameDecoder()
    with pytest.raises(FrameOversize):
        decoder.feed(header)
    assert decoder.buffered == 0


def test_reserved_frame_type_is_malformed() -> None:
    buf = bytearray(encode_frames([Frame(type=1)]))
    buf[FrameLayout.TYPE] = 0
    with pytest.raises(FrameMalformed):
        decode_frames(buf)


def test_truncated_buffer_raises_frame_truncated() -> None:
    buf = encode_frames(sample_frames())
    for cut in (1, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES + 1, len(buf) - 1):
        with pytest.raises(FrameTruncated):
            decode_frames(buf[:cut])


def test_garbage_gives_a_frame_error_and_the_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(b"\xff" * 200)
    with pytest.raises(FrameError):
        decoder.feed(encode_frames([Frame(type=1)]))


def test_empty_input_decodes_to_no_frames() -> None:
    assert decode_frames(b"") == []
    assert FrameDecoder().feed(b"") == []
    assert encode_frames([]) == b""


@pytest.mark.parametrize("fields", [
    {"type": 0}, {"type": 256}, {"type": 1, "flags": -1}, {"type": 1, "hop_limit": 256},
    {"type": 1, "channel": 1 << 32}, {"type": 1, "seq": 1 << 64}, {"type": 1, "src": b"x"},
    {"type": 1, "dst": b"x" * 17}, {"type": 1, "payload": "text"},
    {"type": 1, "payload": bytes(MAX_FRAME_PAYLOAD + 1)}, {"type": True},
])
def test_frame_fields_are_checked(fields: dict) -> None:
    with pytest.raises(InvalidArgument):
        Frame(**fields)


def test_frame_copies_a_mutable_payload() -> None:
    payload = bytearray(b"abc")
    frame = Frame(type=1, payload=payload)
    payload[0] = ord("z")
    assert frame.payload == b"abc"
    assert hash(frame) == hash(Frame(type=1, payload=b"abc"))


def test_bad_header_split_across_feeds_gives_a_frame_error() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\0\0")
    with pytest.raises(FrameError):
        decoder.feed(bytes(57))
    with pytest.raises(FrameError):
        decoder.feed(b"\0")
