"""The public ``Tunnel`` behaviour shared by both backends.

A tunnel is one authenticated session between two nodes: frames sealed with ``send_key``
(AES-256-GCM, nonce = 4 zero bytes || 64-bit big-endian send counter, header and counter as
associated data) and records opened with ``recv_key`` through a replay window. Layout:
``csrc/wire.h``. Each backend subclass supplies the primitives (``_seal_encoded``,
``_seal_stream``, ``_open_records`` ...); this class checks arguments, keeps the clock and
the rekey limits, reassembles streams and logs rejected input.

Not thread-safe: one task owns a tunnel. Sealing and bulk opening return a new buffer
(``bytes`` or ``bytearray``) the caller owns; the ``*_into`` calls write into a buffer the
caller passes instead (bulk transfer reuses one buffer per direction, see
``meshagent.core.bulk``). After a failed open on a stream (bad tag, replay,
bad header) the stream is corrupt or attacked; close the connection and the tunnel.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

from meshagent.core._checks import (
    U64_MAX,
    bytes_of_length,
    int_in_range,
    readonly_view,
    writable_view,
)
from meshagent.core.errors import (
    AuthenticationError,
    FrameError,
    FrameTruncated,
    InvalidArgument,
    ReplayError,
    TunnelClosed,
)
from meshagent.core.frame import Buffer, Frame, ScanFunction, StreamReassembler
from meshagent.core.wire import (
    FRAME_HEADER_BYTES,
    KEY_BYTES,
    MAX_FRAME_PAYLOAD,
    REKEY_AFTER_MESSAGES,
    SEALED_OVERHEAD,
)
from meshagent.log import get_logger

__all__ = ["RECORD_OVERHEAD", "TunnelBase"]

log = get_logger(__name__)
T = TypeVar("T")
Sealed = bytes | bytearray
"""What sealing and bulk opening return: a new buffer the caller owns (the C backend
hands back the bytearray it wrote into, saving a copy)."""
RECORD_OVERHEAD = FRAME_HEADER_BYTES + SEALED_OVERHEAD
"""Bytes a sealed record adds to its payload: header, counter and tag."""


class TunnelBase(ABC):
    """Sealing and opening of frames for one session; see the module docstring.

    ``rekey_after_messages`` (default and maximum REKEY_AFTER_MESSAGES = 2^60) and
    ``rekey_after_seconds`` (default: none) bound what may be sealed; past either,
    sealing raises RekeyRequired and ``needs_rekey`` is true. ``clock`` returns monotonic
    nanoseconds (tests pass a fake one).
    """

    _scan: ScanFunction

    def __init__(self, send_key: Buffer, recv_key: Buffer, *,
                 rekey_after_messages: int | None = None,
                 rekey_after_seconds: float | None = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        send, recv = (bytes_of_length(send_key, KEY_BYTES, "send_key"),
                      bytes_of_length(recv_key, KEY_BYTES, "recv_key"))
        limit = int_in_range(
            REKEY_AFTER_MESSAGES if rekey_after_messages is None else rekey_after_messages,
            REKEY_AFTER_MESSAGES, "rekey_after_messages", bottom=1)
        expires_ns = 0  # no time limit
        if rekey_after_seconds is not None:
            if not isinstance(rekey_after_seconds, int | float) or not rekey_after_seconds > 0:
                raise InvalidArgument("rekey_after_seconds must be a positive number")
            expires_ns = int_in_range(clock() + max(1, int(rekey_after_seconds * 1e9)),
                                      U64_MAX, "rekey deadline (ns)")
        self._clock = clock
        self._closed = False
        self._stream = StreamReassembler(type(self)._scan, sealed=True)
        self._start(send, recv, limit, expires_ns)

    # --- backend primitives ---------------------------------------------------------

    @abstractmethod
    def _start(self, send_key: bytes, recv_key: bytes, max_messages: int,
               expires_ns: int) -> None:
        """Key both directions; expires_ns = 0 means no time limit."""

    @abstractmethod
    def _encode(self, frames: list[Frame]) -> bytes:
        """The backend's encode_frames."""

    @abstractmethod
    def _seal_encoded(self, plain: memoryview, now_ns: int) -> Sealed: ...

    @abstractmethod
    def _seal_stream(self, template: Frame, payload: memoryview, frame_payload: int,
                     now_ns: int) -> Sealed: ...

    @abstractmethod
    def _seal_stream_into(self, template: Frame, seq: int, payload: memoryview,
                          frame_payload: int, now_ns: int, out: memoryview) -> int:
        """``_seal_stream`` with the first frame numbered ``seq``, written at the start of
        ``out`` (room checked); bytes written."""

    @abstractmethod
    def _open_stream_into(self, records: memoryview, out: memoryview) -> tuple[int, int]:
        """Open the leading whole records whose payloads fit in ``out`` (at least
        MAX_FRAME_PAYLOAD bytes) into it; (record bytes consumed, payload bytes written).
        Every readable header is checked before anything opens; a record failing its tag
        leaves its payload's place in ``out`` zeroed."""

    @abstractmethod
    def _open_records(self, records: memoryview, max_frames: int | None) -> list[Frame]:
        """Open whole records; more than max_frames raises FrameMalformed before opening."""

    @abstractmethod
    def _open_payloads(self, runs: list[memoryview]) -> Sealed:
        """Open the whole records of every run, in order; all their payloads joined."""

    @abstractmethod
    def _send_counter(self) -> int: ...

    @abstractmethod
    def _needs_rekey(self, now_ns: int) -> bool: ...

    @abstractmethod
    def _wipe(self) -> None:
        """Forget the keys (and free the native session)."""

    # --- public API -----------------------------------------------------------------

    def _live(self) -> None:
        if self._closed:
            raise TunnelClosed("tunnel is closed")

    @property
    def send_counter(self) -> int:
        """Frames sealed so far; the next frame carries this counter."""
        self._live()
        return self._send_counter()

    @property
    def needs_rekey(self) -> bool:
        """True once sealing one more frame would raise RekeyRequired."""
        self._live()
        return self._needs_rekey(self._clock())

    def seal(self, frame: Frame) -> Sealed:
        """One sealed record, e.g. for one UDP datagram."""
        return self.seal_frames([frame])

    def seal_frames(self, frames: Iterable[Frame]) -> Sealed:
        """Seal ``frames`` into one buffer of records, in one native call."""
        self._live()
        frames = list(frames)
        if not all(isinstance(frame, Frame) for frame in frames):
            raise InvalidArgument("seal_frames takes Frame objects")
        return self._seal_encoded(memoryview(self._encode(frames)), self._clock())

    def seal_encoded(self, plain: Buffer) -> Sealed:
        """Seal a buffer of whole encoded frames (``encode_frames`` output) in one call."""
        self._live()
        return self._seal_encoded(readonly_view(plain, "plain"), self._clock())

    def seal_stream(self, template: Frame, payload: Buffer,
                    frame_payload_bytes: int) -> Sealed:
        """Cut ``payload`` into frames of ``frame_payload_bytes`` (the last may be shorter)
        with ``template``'s header fields, sequence numbers counting up from
        ``template.seq``, and seal them all in one call. An empty payload gives b""."""
        self._live()
        if not isinstance(template, Frame):
            raise InvalidArgument("template must be a Frame")
        int_in_range(frame_payload_bytes, MAX_FRAME_PAYLOAD, "frame_payload_bytes", bottom=1)
        return self._seal_stream(template, readonly_view(payload, "payload"), frame_payload_bytes,
                                 self._clock())

    @staticmethod
    def sealed_stream_bytes(payload_bytes: int, frame_payload_bytes: int) -> int:
        """Size of what ``seal_stream`` makes of ``payload_bytes`` cut into frames of
        ``frame_payload_bytes``: the room ``seal_stream_into`` needs."""
        int_in_range(payload_bytes, U64_MAX, "payload_bytes")
        int_in_range(frame_payload_bytes, MAX_FRAME_PAYLOAD, "frame_payload_bytes", bottom=1)
        return payload_bytes + -(-payload_bytes // frame_payload_bytes) * RECORD_OVERHEAD

    def seal_stream_into(self, template: Frame, payload: Buffer, frame_payload_bytes: int,
                         out: bytearray | memoryview, *, seq: int | None = None) -> int:
        """``seal_stream`` writing the records at the start of ``out`` instead of a new
        buffer: the same bytes and counters, no allocation. ``out`` holds at least
        ``sealed_stream_bytes(len(payload), frame_payload_bytes)`` bytes and is another
        object than ``payload``. ``seq``, if given, replaces ``template.seq`` (a bulk
        sender numbers chunk after chunk with one template). Returns the bytes written."""
        self._live()
        if not isinstance(template, Frame):
            raise InvalidArgument("template must be a Frame")
        first_seq = template.seq if seq is None else int_in_range(seq, U64_MAX, "seq")
        source = readonly_view(payload, "payload")
        target = writable_view(out, "out")
        need = self.sealed_stream_bytes(len(source), frame_payload_bytes)
        if len(target) < need:
            raise InvalidArgument(f"out holds {len(target)} bytes, the records need {need}")
        _distinct(source, target, "payload")
        return self._seal_stream_into(template, first_seq, source, frame_payload_bytes,
                                      self._clock(), target)

    def open_stream_into(self, records: Buffer, out: bytearray | memoryview) -> tuple[int, int]:
        """Streaming ``open_stream`` for a reader that appends socket reads to one buffer:
        open the whole records at the start of ``records`` (stopping, without error, at an
        incomplete one or at one whose payload no longer fits) and write their payloads
        one after another at the start of ``out``, which holds at least MAX_FRAME_PAYLOAD
        bytes and is another object than ``records``. Returns (bytes of ``records``
        consumed, payload bytes written); the caller keeps ``records[consumed:]`` and
        calls again once more bytes arrived. Every header in ``records`` is checked before
        anything opens (FrameError); after AuthenticationError or ReplayError the stream is
        dead, as with ``feed_stream``."""
        self._live()
        source = readonly_view(records, "records")
        target = writable_view(out, "out")
        if len(target) < MAX_FRAME_PAYLOAD:
            raise InvalidArgument(f"out must hold at least {MAX_FRAME_PAYLOAD} bytes")
        _distinct(source, target, "records")
        return self._rejecting(lambda: self._open_stream_into(source, target))

    def open(self, datagram: Buffer) -> Frame:
        """Open a buffer holding exactly one record."""
        self._live()
        view = readonly_view(datagram, "datagram")
        if not view:
            raise FrameTruncated("empty datagram")
        return self._rejecting(lambda: self._open_records(view, 1))[0]

    def open_frames(self, records: Buffer) -> list[Frame]:
        """Open a buffer of whole records; payloads are views of one plaintext buffer."""
        self._live()
        view = readonly_view(records, "records")
        return self._rejecting(lambda: self._open_records(view, None))

    def open_stream(self, records: Buffer) -> Sealed:
        """Open a buffer of whole records and return their payloads joined (the inverse of
        ``seal_stream`` for bulk transfer; headers are still authenticated)."""
        self._live()
        view = readonly_view(records, "records")
        return self._rejecting(lambda: self._open_payloads([view]))

    def feed(self, data: Buffer) -> list[Frame]:
        """Streaming open: take stream bytes in any pieces, return the frames completed."""
        self._live()
        frames: list[Frame] = []
        for run in self._rejecting(lambda: self._stream.push(data)):
            frames += self._rejecting(lambda run=run: self._open_records(run, None))
        return frames

    def feed_stream(self, data: Buffer) -> Sealed:
        """Streaming ``open_stream``: payloads of the records completed by ``data``, joined."""
        self._live()
        runs = self._rejecting(lambda: self._stream.push(data))
        return self._rejecting(lambda: self._open_payloads(runs))

    def _rejecting(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except (AuthenticationError, ReplayError, FrameError) as exc:
            log.warn_limited("tunnel_input_rejected", key=type(exc).__name__,
                             error=type(exc).__name__, detail=str(exc))
            raise

    def close(self) -> None:
        """Wipe the keys; later calls raise TunnelClosed. Idempotent."""
        if not self._closed:
            self._closed = True
            self._wipe()

    def __enter__(self) -> TunnelBase:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _distinct(source: memoryview, target: memoryview, name: str) -> None:
    """Refuse an output buffer that is (a view of) the same object as the input: the
    native code reads one while writing the other."""
    if source.obj is target.obj:
        raise InvalidArgument(f"out must be another buffer than {name}")
