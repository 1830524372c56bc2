"""Frame codec over ``csrc/frame.c``."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from meshagent.core._checks import readonly_view
from meshagent.core._native import ffi, lib
from meshagent.core.errors import FrameTruncated, InvalidArgument, ensure
from meshagent.core.frame import Buffer, Frame, FrameDecoderBase
from meshagent.core.wire import FRAME_HEADER_BYTES, SEALED_OVERHEAD
from meshagent.core.wire import FrameLayout as L

__all__ = ["FrameDecoder", "count_frames", "decode_frames", "encode_frames",
           "frames_from_wire", "scan"]


def scan(buf: memoryview, sealed: bool) -> tuple[int, int]:
    """(bytes of whole frames at the start of buf, size of the next incomplete one or 0)."""
    sizes = ffi.new("size_t[3]")
    ensure(lib.mesh_frames_scan(ffi.from_buffer(buf), len(buf), sealed, ffi.NULL, 0,
                                sizes, sizes + 1, sizes + 2))
    return sizes[1], sizes[2]


def count_frames(buf: memoryview, sealed: bool) -> int:
    """Number of frames in ``buf``, which must hold whole frames (else FrameTruncated)."""
    sizes = ffi.new("size_t[3]")
    ensure(lib.mesh_frames_scan(ffi.from_buffer(buf), len(buf), sealed, ffi.NULL, 0,
                                sizes, sizes + 1, sizes + 2))
    if sizes[1] != len(buf):
        raise FrameTruncated(f"{len(buf) - sizes[1]} bytes after the last whole frame")
    return sizes[0]


# The whole header in one unpack (one C call per frame instead of one per field). The
# format spells the field widths; the offsets it implies are checked against wire.h below.
_HEADER = struct.Struct(">BBBBIIQ16s16s")
_OFFSETS = (L.VERSION, L.TYPE, L.FLAGS, L.HOP_LIMIT, L.LENGTH, L.CHANNEL, L.SEQ, L.SRC, L.DST)
if _HEADER.size != FRAME_HEADER_BYTES or _OFFSETS != (0, 1, 2, 3, 4, 8, 12, 20, 36):
    raise ImportError("the header Struct of meshagent.core.cbackend.frame disagrees with "
                      "csrc/wire.h; update _HEADER")


def frames_from_wire(wire: memoryview, count: int, sealed: bool,
                     payloads: memoryview | None = None) -> list[Frame]:
    """Frame objects for the first ``count`` frames (or records) of ``wire``, whose headers
    C has already checked. Payloads are slices (not copies) of ``wire`` itself, or for
    records of ``payloads``, where the opened payloads lie one after another."""
    frames = []
    unpack = _HEADER.unpack_from
    step = FRAME_HEADER_BYTES + (SEALED_OVERHEAD if sealed else 0)
    pos = at = 0
    for _ in range(count):
        _, ftype, flags, hops, length, channel, seq, src, dst = unpack(wire, pos)
        if payloads is None:
            payload = wire[pos + FRAME_HEADER_BYTES:pos + FRAME_HEADER_BYTES + length]
        else:
            payload = payloads[at:at + length]
            at += length
        frames.append(Frame(ftype, flags, src, dst, hops, channel, seq, payload))
        pos += step + length
    return frames


def encode_frames(frames: Iterable[Frame]) -> bytes:
    """All ``frames`` one after another, each header followed by its payload."""
    frames = list(frames)
    infos = ffi.new("mesh_frame_info[]", len(frames))
    offset = 0
    for i, frame in enumerate(frames):
        if not isinstance(frame, Frame):
            raise InvalidArgument("encode_frames takes Frame objects")
        info = infos[i]
        info.type, info.flags, info.hop_limit = frame.type, frame.flags, frame.hop_limit
        info.channel, info.seq = frame.channel, frame.seq
        info.length, info.offset = len(frame.payload), offset
        ffi.memmove(info.src, frame.src, len(frame.src))
        ffi.memmove(info.dst, frame.dst, len(frame.dst))
        offset += len(frame.payload)
    payloads = b"".join(frame.payload for frame in frames)
    out = bytearray(len(frames) * lib.MESH_FRAME_HEADER_BYTES + offset)
    written = ffi.new("size_t *")
    ensure(lib.mesh_frames_encode(infos, len(frames), ffi.from_buffer(payloads), len(payloads),
                                  ffi.from_buffer(out), len(out), written))
    return bytes(out)


def decode_frames(buf: Buffer) -> list[Frame]:
    """Every frame in ``buf``, which must hold whole frames only. Payloads are views of it."""
    view = readonly_view(buf, "buf")
    return frames_from_wire(view, count_frames(view, sealed=False), sealed=False)


class FrameDecoder(FrameDecoderBase):
    __doc__ = FrameDecoderBase.__doc__
    _scan = staticmethod(scan)
    _decode = staticmethod(decode_frames)
