"""Frame codec over ``csrc/frame.c``."""

from __future__ import annotations

from collections.abc import Iterable

from meshagent.core._checks import readonly_view
from meshagent.core._native import ffi, lib
from meshagent.core.errors import FrameTruncated, InvalidArgument, ensure
from meshagent.core.frame import Buffer, Frame, FrameDecoderBase

__all__ = ["FrameDecoder", "count_frames", "decode_frames", "encode_frames",
           "frames_from_infos", "scan"]


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


def frames_from_infos(infos: object, count: int, payloads: memoryview) -> list[Frame]:
    """Frames for infos[0:count], payloads sliced (not copied) from ``payloads``."""
    frames = []
    for i in range(count):
        info = infos[i]  # type: ignore[index]
        frames.append(Frame(info.type, info.flags, ffi.buffer(info.src)[:],
                            ffi.buffer(info.dst)[:], info.hop_limit, info.channel, info.seq,
                            payloads[info.offset:info.offset + info.length]))
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
    count = count_frames(view, sealed=False)
    infos = ffi.new("mesh_frame_info[]", count)
    sizes = ffi.new("size_t[3]")
    ensure(lib.mesh_frames_scan(ffi.from_buffer(view), len(view), False, infos, count,
                                sizes, sizes + 1, sizes + 2))
    return frames_from_infos(infos, count, view)


class FrameDecoder(FrameDecoderBase):
    __doc__ = FrameDecoderBase.__doc__
    _scan = staticmethod(scan)
    _decode = staticmethod(decode_frames)
