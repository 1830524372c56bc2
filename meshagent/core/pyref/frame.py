"""Pure-Python twin of ``csrc/frame.c``: the same wire format, checks and error order."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

from meshagent.core.errors import (
    FrameMalformed,
    FrameOversize,
    FrameTruncated,
    FrameVersionError,
    InvalidArgument,
)
from meshagent.core.frame import Buffer, Frame, FrameDecoderBase
from meshagent.core.wire import (
    FRAME_HEADER_BYTES,
    MAX_FRAME_PAYLOAD,
    NODE_ID_BYTES,
    SEALED_AAD_BYTES,
    SEALED_OVERHEAD,
    WIRE_VERSION,
    FrameLayout,
)

__all__ = ["FrameDecoder", "Header", "decode_frames", "encode_frames", "frames_in",
           "read_header", "scan", "write_header"]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
L = FrameLayout


def write_header(frame: Frame, length: int, out: bytearray, at: int) -> None:
    """Write ``frame``'s header, with payload length ``length``, at ``out[at:]``."""
    out[at + L.VERSION] = WIRE_VERSION
    out[at + L.TYPE] = frame.type
    out[at + L.FLAGS] = frame.flags
    out[at + L.HOP_LIMIT] = frame.hop_limit
    _U32.pack_into(out, at + L.LENGTH, length)
    _U32.pack_into(out, at + L.CHANNEL, frame.channel)
    _U64.pack_into(out, at + L.SEQ, frame.seq)
    out[at + L.SRC:at + L.SRC + NODE_ID_BYTES] = frame.src
    out[at + L.DST:at + L.DST + NODE_ID_BYTES] = frame.dst


class Header(NamedTuple):
    """The fields of one frame header as read from the wire."""

    type: int
    flags: int
    hop_limit: int
    length: int
    channel: int
    seq: int
    src: bytes
    dst: bytes

    def frame(self, payload: Buffer) -> Frame:
        return Frame(self.type, self.flags, self.src, self.dst, self.hop_limit, self.channel,
                     self.seq, payload)


def read_header(buf: memoryview, at: int) -> Header:
    """Check the header at ``buf[at:]``; the same checks, in the same order, as
    mesh_frame_read_header."""
    if buf[at + L.VERSION] != WIRE_VERSION:
        raise FrameVersionError(f"unknown frame version {buf[at + L.VERSION]}")
    if buf[at + L.TYPE] == L.RESERVED_TYPE:
        raise FrameMalformed("frame type 0 is reserved")
    length = _U32.unpack_from(buf, at + L.LENGTH)[0]
    if length > MAX_FRAME_PAYLOAD:
        raise FrameOversize(f"frame length {length} above {MAX_FRAME_PAYLOAD}")
    return Header(buf[at + L.TYPE], buf[at + L.FLAGS], buf[at + L.HOP_LIMIT], length,
                  _U32.unpack_from(buf, at + L.CHANNEL)[0], _U64.unpack_from(buf, at + L.SEQ)[0],
                  bytes(buf[at + L.SRC:at + L.SRC + NODE_ID_BYTES]),
                  bytes(buf[at + L.DST:at + L.DST + NODE_ID_BYTES]))


def scan(buf: memoryview, sealed: bool) -> tuple[int, int]:
    """(bytes of whole frames at the start of buf, size of the next incomplete one or 0)."""
    overhead = SEALED_OVERHEAD if sealed else 0
    pos = 0
    while len(buf) - pos >= FRAME_HEADER_BYTES:
        size = FRAME_HEADER_BYTES + read_header(buf, pos).length + overhead
        if len(buf) - pos < size:
            return pos, size
        pos += size
    return pos, 0


def encode_frames(frames: Iterable[Frame]) -> bytes:
    """All ``frames`` one after another, each header followed by its payload."""
    frames = list(frames)
    for frame in frames:
        if not isinstance(frame, Frame):
            raise InvalidArgument("encode_frames takes Frame objects")
    out = bytearray(sum(frame.encoded_size for frame in frames))
    pos = 0
    for frame in frames:
        write_header(frame, len(frame.payload), out, pos)
        pos += FRAME_HEADER_BYTES
        out[pos:pos + len(frame.payload)] = frame.payload
        pos += len(frame.payload)
    return bytes(out)


def frames_in(buf: memoryview, sealed: bool) -> list[tuple[int, int, Header]]:
    """(frame start, body start, header) of every whole frame or record; FrameTruncated if
    the buffer does not end on a frame boundary."""
    body = SEALED_AAD_BYTES if sealed else FRAME_HEADER_BYTES
    overhead = SEALED_OVERHEAD if sealed else 0
    found = []
    pos = 0
    while len(buf) - pos >= FRAME_HEADER_BYTES:
        header = read_header(buf, pos)
        size = FRAME_HEADER_BYTES + header.length + overhead
        if len(buf) - pos < size:
            break
        found.append((pos, pos + body, header))
        pos += size
    if pos != len(buf):
        raise FrameTruncated(f"{len(buf) - pos} bytes after the last whole frame")
    return found


def decode_frames(buf: Buffer) -> list[Frame]:
    """Every frame in ``buf``, which must hold whole frames only. Payloads are views of it."""
    view = memoryview(buf).cast("B").toreadonly()
    return [header.frame(view[body:body + header.length])
            for _, body, header in frames_in(view, False)]


class FrameDecoder(FrameDecoderBase):
    __doc__ = FrameDecoderBase.__doc__
    _scan = staticmethod(scan)
    _decode = staticmethod(decode_frames)
