"""The ``Frame`` value and the stream reassembly shared by both backends.

A ``Frame`` is what the codec and the tunnel take and give. Decoders hand out payloads as
read-only ``memoryview`` slices of the buffer they decoded (no copy); ``bytes(frame.payload)``
makes an independent copy when one is needed. A view keeps its buffer alive, so it is
always safe to hold; it only shares memory with a mutable buffer the caller fed.

``StreamReassembler`` turns bytes arriving in arbitrary pieces into runs of whole frames
(or sealed records). Each backend supplies the header scan; the reassembler holds at most
one incomplete frame, whose size the scan has already checked against MAX_FRAME_PAYLOAD.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from meshagent.core._checks import (
    U32_MAX,
    U64_MAX,
    bytes_of_length,
    int_in_range,
    readonly_view,
)
from meshagent.core.errors import FrameError, InvalidArgument
from meshagent.core.wire import (
    DEFAULT_HOP_LIMIT,
    FRAME_HEADER_BYTES,
    MAX_FRAME_PAYLOAD,
    NODE_ID_BYTES,
    FrameLayout,
)
from meshagent.log import get_logger

__all__ = ["ZERO_NODE_ID", "Buffer", "Frame", "FrameDecoderBase", "ScanFunction",
           "StreamReassembler"]

log = get_logger(__name__)

Buffer = bytes | bytearray | memoryview
ZERO_NODE_ID = bytes(NODE_ID_BYTES)
@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: header fields plus payload (at most MAX_FRAME_PAYLOAD bytes).

    ``type`` 1..255 (0 is reserved on the wire), ``flags`` and ``hop_limit`` 0..255,
    ``channel`` u32, ``seq`` u64, ``src``/``dst`` node ids of NODE_ID_BYTES.
    """

    type: int
    flags: int = 0
    src: bytes = ZERO_NODE_ID
    dst: bytes = ZERO_NODE_ID
    hop_limit: int = DEFAULT_HOP_LIMIT
    channel: int = 0
    seq: int = 0
    payload: Buffer = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        # One expression for the common case (plain ints, bytes ids and payload); anything
        # else takes the slow path, which normalises or names the offending field.
        if not (type(self.type) is int and 0 < self.type <= 255
                and type(self.flags) is int and 0 <= self.flags <= 255
                and type(self.hop_limit) is int and 0 <= self.hop_limit <= 255
                and type(self.channel) is int and 0 <= self.channel <= U32_MAX
                and type(self.seq) is int and 0 <= self.seq <= U64_MAX
                and type(self.src) is bytes and len(self.src) == NODE_ID_BYTES
                and type(self.dst) is bytes and len(self.dst) == NODE_ID_BYTES
                and (type(self.payload) is bytes or type(self.payload) is memoryview
                     and self.payload.readonly and self.payload.format == "B")
                and len(self.payload) <= MAX_FRAME_PAYLOAD):
            self._check_and_normalise()

    def _check_and_normalise(self) -> None:
        int_in_range(self.type, 255, "type", bottom=FrameLayout.RESERVED_TYPE + 1)
        int_in_range(self.flags, 255, "flags")
        int_in_range(self.hop_limit, 255, "hop_limit")
        int_in_range(self.channel, U32_MAX, "channel")
        int_in_range(self.seq, U64_MAX, "seq")
        object.__setattr__(self, "src", bytes_of_length(self.src, NODE_ID_BYTES, "src"))
        object.__setattr__(self, "dst", bytes_of_length(self.dst, NODE_ID_BYTES, "dst"))
        payload = self.payload
        if type(payload) is not bytes:
            if not isinstance(payload, bytes | bytearray | memoryview):
                raise InvalidArgument("payload must be bytes-like")
            if not (isinstance(payload, memoryview) and payload.readonly
                    and payload.format == "B" and payload.ndim == 1 and payload.contiguous):
                # A frame is a value: keep no view a caller could still write through,
                # and count its payload in bytes.
                object.__setattr__(self, "payload", bytes(payload))
        if len(self.payload) > MAX_FRAME_PAYLOAD:
            raise InvalidArgument(f"payload above {MAX_FRAME_PAYLOAD} bytes")

    def __repr__(self) -> str:
        return (f"Frame(type={self.type}, flags={self.flags}, src={self.src.hex()}, "
                f"dst={self.dst.hex()}, hop_limit={self.hop_limit}, channel={self.channel}, "
                f"seq={self.seq}, payload=<{len(self.payload)} bytes>)")

    @property
    def encoded_size(self) -> int:
        return FRAME_HEADER_BYTES + len(self.payload)


ScanFunction = Callable[[memoryview, bool], tuple[int, int]]
"""A backend's scan: (buffer, sealed) -> (bytes of whole frames at its start, size of the
incomplete frame after them once its header is in the buffer, else 0); raises FrameError
on a bad header."""


class StreamReassembler:
    """Cuts a byte stream into runs of whole frames (or sealed records), whatever the split.

    ``push(data)`` returns zero, one or two read-only buffers of whole frames: the frame
    that was waiting for this data (copied once, as it spans pieces) and the run of whole
    frames inside ``data`` itself (a view, no copy). After a FrameError the stream cannot be
    resynchronised: every later push raises it again.
    """

    def __init__(self, scan: ScanFunction, sealed: bool) -> None:
        self._scan = scan
        self._sealed = sealed
        self._pending = bytearray()
        self._failed: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (at most one header plus its payload)."""
        return len(self._pending)

    def push(self, data: Buffer) -> list[memoryview]:
        if self._failed is not None:
            raise self._failed
        view = readonly_view(data, "data")
        try:
            return self._push(view)
        except FrameError as exc:
            self._failed = exc
            # Rebind rather than clear(): the exception's traceback may still hold a view
            # of the old buffer, and a bytearray with live views cannot be resized.
            self._pending = bytearray()
            raise

    def _push(self, view: memoryview) -> list[memoryview]:
        runs: list[memoryview] = []
        if self._pending:
            view = self._complete_pending(view, runs)
            if self._pending:
                return runs
        consumed, _ = self._scan(view, self._sealed)
        if consumed:
            runs.append(view[:consumed])
        rest = view[consumed:]
        if rest:
            self._pending += rest
            self._scan(memoryview(self._pending), self._sealed)  # reject a bad header now
        return runs

    def _complete_pending(self, view: memoryview, runs: list[memoryview]) -> memoryview:
        """Move bytes from ``view`` into the pending frame; emit it once whole."""
        while view:
            size = self._pending_size()
            need = (size or FRAME_HEADER_BYTES) - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if size and len(self._pending) == size:
                runs.append(memoryview(bytes(self._pending)))
                self._pending.clear()
                break
        return view

    def _pending_size(self) -> int:
        """Total size of the pending frame, or 0 while its header is incomplete."""
        if len(self._pending) < FRAME_HEADER_BYTES:
            return 0
        consumed, next_size = self._scan(memoryview(self._pending), self._sealed)
        return consumed or next_size


class FrameDecoderBase:
    """Streaming decoder: ``feed`` bytes in any pieces, get the frames completed so far.

    Holds at most one incomplete frame (one header plus MAX_FRAME_PAYLOAD bytes). A bad
    header raises its FrameError (and is logged), and every later ``feed`` raises it
    again: a byte stream cannot be resynchronised. Each backend names its scan and decode.
    """

    _scan: ScanFunction
    _decode: Callable[[Buffer], list[Frame]]

    def __init__(self) -> None:
        self._stream = StreamReassembler(type(self)._scan, sealed=False)

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return self._stream.buffered

    def feed(self, data: Buffer) -> list[Frame]:
        frames: list[Frame] = []
        try:
            for run in self._stream.push(data):
                frames += type(self)._decode(run)
        except FrameError as exc:
            log.warn_limited("frame_stream_rejected", key=type(exc).__name__,
                             error=type(exc).__name__, detail=str(exc))
            raise
        return frames
