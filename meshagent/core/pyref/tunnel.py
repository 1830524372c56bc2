"""Pure-Python twin of ``csrc/tunnel.c`` on pycryptodome's AES-GCM.

One AES object per frame (pycryptodome fixes the nonce at creation): this is the baseline
the benchmarks compare the C core with, and the second implementation property tests
compare it against, byte for byte and error for error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import replace

from Crypto.Cipher import AES

from meshagent.core._checks import gcm_arguments
from meshagent.core.errors import (
    AuthenticationError,
    FrameMalformed,
    RekeyRequired,
    ReplayError,
)
from meshagent.core.frame import Buffer, Frame
from meshagent.core.pyref.frame import Header, encode_frames, frames_in, scan, write_header
from meshagent.core.pyref.replay import ReplayWindow
from meshagent.core.tunnel import TunnelBase
from meshagent.core.wire import (
    FRAME_HEADER_BYTES,
    NONCE_PREFIX_BYTES,
    TAG_BYTES,
    FrameLayout,
)

__all__ = ["Tunnel", "aes_gcm_open", "aes_gcm_seal"]

_COUNTER = struct.Struct(">Q")
_NONCE_PREFIX = bytes(NONCE_PREFIX_BYTES)


def aes_gcm_seal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer, *,
                 tag_bytes: int = TAG_BYTES) -> bytes:
    """AES-GCM encryption: ciphertext || tag."""
    key, nonce, aad, plaintext = gcm_arguments(key, nonce, aad, plaintext, tag_bytes)
    cipher = AES.new(bytes(key), AES.MODE_GCM, nonce=bytes(nonce), mac_len=tag_bytes)
    cipher.update(aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return ciphertext + tag


def aes_gcm_open(key: Buffer, nonce: Buffer, aad: Buffer, data: Buffer, *,
                 tag_bytes: int = TAG_BYTES) -> bytes:
    """AES-GCM decryption of ciphertext || tag; AuthenticationError if the tag is wrong."""
    key, nonce, aad, data = gcm_arguments(key, nonce, aad, data, tag_bytes)
    if len(data) < tag_bytes:
        raise AuthenticationError("data shorter than the tag")
    cipher = AES.new(bytes(key), AES.MODE_GCM, nonce=bytes(nonce), mac_len=tag_bytes)
    cipher.update(aad)
    split = len(data) - tag_bytes
    try:
        return cipher.decrypt_and_verify(data[:split], data[split:])
    except ValueError:
        raise AuthenticationError("authentication tag does not verify") from None


class Tunnel(TunnelBase):
    __doc__ = TunnelBase.__doc__
    _scan = staticmethod(scan)

    def _start(self, send_key: bytes, recv_key: bytes, max_messages: int,
               expires_ns: int) -> None:
        self._send_key: bytes | None = send_key
        self._recv_key: bytes | None = recv_key
        self._max_messages = max_messages
        self._expires_ns = expires_ns
        self._counter = 0
        self._window = ReplayWindow()

    def _encode(self, frames: list[Frame]) -> bytes:
        return encode_frames(frames)

    def _send_counter(self) -> int:
        return self._counter

    def _may_seal(self, count: int, now_ns: int) -> None:
        if self._expires_ns and now_ns >= self._expires_ns:
            raise RekeyRequired("session time limit reached: rekey")
        if count > self._max_messages - self._counter:
            raise RekeyRequired("session message limit reached: rekey")

    def _needs_rekey(self, now_ns: int) -> bool:
        try:
            self._may_seal(1, now_ns)
        except RekeyRequired:
            return True
        return False

    def _seal_one(self, header: Buffer, payload: Buffer, out: bytearray) -> None:
        """Append the record of one frame (header, counter, ciphertext, tag) to ``out``."""
        counter = _COUNTER.pack(self._counter)
        aad = bytes(header) + counter
        cipher = AES.new(self._send_key, AES.MODE_GCM, nonce=_NONCE_PREFIX + counter,
                         mac_len=TAG_BYTES)
        cipher.update(aad)
        ciphertext, tag = cipher.encrypt_and_digest(payload)
        out += aad
        out += ciphertext
        out += tag
        self._counter += 1

    def _seal_encoded(self, plain: memoryview, now_ns: int) -> bytes:
        found = frames_in(plain, sealed=False)
        self._may_seal(len(found), now_ns)
        out = bytearray()
        for start, body, header in found:
            self._seal_one(plain[start:body], plain[body:body + header.length], out)
        return bytes(out)

    def _seal_stream(self, template: Frame, payload: memoryview, frame_payload: int,
                     now_ns: int) -> bytes:
        count = -(-len(payload) // frame_payload)
        self._may_seal(count, now_ns)
        out = bytearray()
        header = bytearray(FRAME_HEADER_BYTES)
        for i in range(count):
            piece = payload[i * frame_payload:(i + 1) * frame_payload]
            numbered = replace(template, seq=(template.seq + i) % (1 << 64), payload=b"")
            write_header(numbered, len(piece), header, 0)
            self._seal_one(header, piece, out)
        return bytes(out)

    def _seal_stream_into(self, template: Frame, seq: int, payload: memoryview,
                          frame_payload: int, now_ns: int, out: memoryview) -> int:
        records = self._seal_stream(replace(template, seq=seq), payload, frame_payload, now_ns)
        out[:len(records)] = records
        return len(records)

    def _open_one(self, records: memoryview, start: int, body: int, header: Header) -> bytes:
        """Open one record, with the checks of tunnel.c in its order; the window moves
        only once the tag verified."""
        counter_bytes = bytes(records[start + FrameLayout.COUNTER:body])
        counter = _COUNTER.unpack(counter_bytes)[0]
        if not self._window.accepts(counter):
            raise ReplayError(f"counter {counter} replayed or behind the window")
        cipher = AES.new(self._recv_key, AES.MODE_GCM, nonce=_NONCE_PREFIX + counter_bytes,
                         mac_len=TAG_BYTES)
        cipher.update(records[start:body])
        tag_start = body + header.length
        try:
            plaintext = cipher.decrypt_and_verify(records[body:tag_start],
                                                  records[tag_start:tag_start + TAG_BYTES])
        except ValueError:
            raise AuthenticationError("authentication tag does not verify") from None
        self._window.check_and_update(counter)
        return plaintext

    def _open_each(self, records: memoryview,
                   max_frames: int | None) -> Iterator[tuple[Header, bytes]]:
        """Open the records one by one, in the order and with the checks of tunnel.c."""
        found = frames_in(records, sealed=True)
        if max_frames is not None and len(found) > max_frames:
            raise FrameMalformed(f"{len(found)} records where at most {max_frames} belong")
        for start, body, header in found:
            yield header, self._open_one(records, start, body, header)

    def _open_records(self, records: memoryview, max_frames: int | None) -> list[Frame]:
        opened = list(self._open_each(records, max_frames))
        joined = memoryview(b"".join(plaintext for _, plaintext in opened))
        frames = []
        pos = 0
        for header, _ in opened:
            frames.append(header.frame(joined[pos:pos + header.length]))
            pos += header.length
        return frames

    def _open_payloads(self, runs: list[memoryview]) -> bytes:
        return b"".join(plaintext for run in runs for _, plaintext in self._open_each(run, None))

    def _open_stream_into(self, records: memoryview, out: memoryview) -> tuple[int, int]:
        whole, _ = scan(records, sealed=True)  # checks every readable header first
        consumed = written = 0
        for start, body, header in frames_in(records[:whole], sealed=True):
            if header.length > len(out) - written:
                break
            try:
                plaintext = self._open_one(records, start, body, header)
            except AuthenticationError:
                out[written:written + header.length] = bytes(header.length)  # as C wipes it
                raise
            out[written:written + header.length] = plaintext
            written += header.length
            consumed = body + header.length + TAG_BYTES
        return consumed, written

    def _wipe(self) -> None:
        # Python bytes cannot be overwritten in place; drop the only references.
        self._send_key = self._recv_key = None


