"""AES-256-GCM tunnel and raw AES-GCM over ``csrc/tunnel.c``.

Every batch is one C call: Python only sizes the output buffer (a bytearray handed to C
with ``ffi.from_buffer``, returned without a copy, or the caller's buffer for the
``*_into`` calls) and checks the status.
"""

from __future__ import annotations

from meshagent.core._checks import gcm_arguments
from meshagent.core._native import ffi, lib
from meshagent.core.cbackend.frame import count_frames, encode_frames, frames_from_wire, scan
from meshagent.core.errors import FrameMalformed, ensure
from meshagent.core.frame import Buffer, Frame
from meshagent.core.tunnel import RECORD_OVERHEAD, TunnelBase
from meshagent.core.wire import SEALED_OVERHEAD, TAG_BYTES

__all__ = ["Tunnel", "aes_gcm_open", "aes_gcm_seal"]


def aes_gcm_seal(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer, *,
                 tag_bytes: int = TAG_BYTES) -> bytes:
    """AES-GCM encryption: ciphertext || tag."""
    key, nonce, aad, plaintext = gcm_arguments(key, nonce, aad, plaintext, tag_bytes)
    out = bytearray(len(plaintext) + tag_bytes)
    ensure(lib.mesh_aes_gcm_seal(ffi.from_buffer(key), len(key), ffi.from_buffer(nonce),
                                 len(nonce), ffi.from_buffer(aad), len(aad),
                                 ffi.from_buffer(plaintext), len(plaintext), tag_bytes,
                                 ffi.from_buffer(out), len(out)))
    return bytes(out)


def aes_gcm_open(key: Buffer, nonce: Buffer, aad: Buffer, data: Buffer, *,
                 tag_bytes: int = TAG_BYTES) -> bytes:
    """AES-GCM decryption of ciphertext || tag; AuthenticationError if the tag is wrong."""
    key, nonce, aad, data = gcm_arguments(key, nonce, aad, data, tag_bytes)
    out = bytearray(max(len(data) - tag_bytes, 0))
    ensure(lib.mesh_aes_gcm_open(ffi.from_buffer(key), len(key), ffi.from_buffer(nonce),
                                 len(nonce), ffi.from_buffer(aad), len(aad),
                                 ffi.from_buffer(data), len(data), tag_bytes,
                                 ffi.from_buffer(out), len(out)))
    return bytes(out)


class Tunnel(TunnelBase):
    __doc__ = TunnelBase.__doc__
    _scan = staticmethod(scan)

    def _start(self, send_key: bytes, recv_key: bytes, max_messages: int,
               expires_ns: int) -> None:
        session = ffi.new("mesh_tunnel **")
        ensure(lib.mesh_tunnel_new(ffi.from_buffer(send_key), len(send_key),
                                   ffi.from_buffer(recv_key), len(recv_key), max_messages,
                                   expires_ns, session))
        self._session = ffi.gc(session[0], lib.mesh_tunnel_free)
        self._sizes = ffi.new("size_t[2]")  # sizes the C calls report: scratch, reused
        self._header = ffi.new("mesh_frame_info *")  # seal_stream's template, reused
        self._header_of: Frame | None = None  # the Frame whose fields _header holds

    def _encode(self, frames: list[Frame]) -> bytes:
        return encode_frames(frames)

    def _send_counter(self) -> int:
        return int(lib.mesh_tunnel_send_counter(self._session))

    def _needs_rekey(self, now_ns: int) -> bool:
        return bool(lib.mesh_tunnel_needs_rekey(self._session, now_ns))

    def _seal_encoded(self, plain: memoryview, now_ns: int) -> bytearray:
        out = bytearray(len(plain) + count_frames(plain, sealed=False) * SEALED_OVERHEAD)
        ensure(lib.mesh_tunnel_seal_frames(self._session, ffi.from_buffer(plain), len(plain),
                                           now_ns, ffi.from_buffer(out), len(out),
                                           self._sizes, self._sizes + 1))
        return out

    def _seal_stream(self, template: Frame, payload: memoryview, frame_payload: int,
                     now_ns: int) -> bytearray:
        out = bytearray(self.sealed_stream_bytes(len(payload), frame_payload))
        self._seal_stream_into(template, template.seq, payload, frame_payload, now_ns,
                               memoryview(out))
        return out

    def _seal_stream_into(self, template: Frame, seq: int, payload: memoryview,
                          frame_payload: int, now_ns: int, out: memoryview) -> int:
        header = self._header
        if template is not self._header_of:  # frames are immutable: refill on a new one
            header.type, header.flags = template.type, template.flags
            header.hop_limit, header.channel = template.hop_limit, template.channel
            ffi.memmove(header.src, template.src, len(template.src))
            ffi.memmove(header.dst, template.dst, len(template.dst))
            self._header_of = template
        header.seq = seq
        ensure(lib.mesh_tunnel_seal_stream(self._session, header, ffi.from_buffer(payload),
                                           len(payload), frame_payload, now_ns,
                                           ffi.from_buffer(out), len(out),
                                           self._sizes, self._sizes + 1))
        return int(self._sizes[0])

    def _open_stream_into(self, records: memoryview, out: memoryview) -> tuple[int, int]:
        ensure(lib.mesh_tunnel_open_stream(self._session, ffi.from_buffer(records),
                                           len(records), ffi.from_buffer(out), len(out),
                                           self._sizes, self._sizes + 1))
        return int(self._sizes[0]), int(self._sizes[1])

    def _open_runs(self, runs: list[memoryview]) -> bytearray:
        """Open every run of whole records into one new buffer of their payloads."""
        counts = [count_frames(run, sealed=True) for run in runs]
        out = bytearray(sum(len(run) - count * RECORD_OVERHEAD
                            for run, count in zip(runs, counts)))
        target = ffi.from_buffer(out)
        written = 0
        for run in runs:
            ensure(lib.mesh_tunnel_open_records(self._session, ffi.from_buffer(run), len(run),
                                                ffi.NULL, 0, target + written,
                                                len(out) - written, self._sizes,
                                                self._sizes + 1))
            written += self._sizes[0]
        return out

    def _open_records(self, records: memoryview, max_frames: int | None) -> list[Frame]:
        count = count_frames(records, sealed=True)
        if max_frames is not None and count > max_frames:
            raise FrameMalformed(f"{count} records where at most {max_frames} belong")
        out = self._open_runs([records])
        return frames_from_wire(records, count, sealed=True,
                                payloads=memoryview(out).toreadonly())

    def _open_payloads(self, runs: list[memoryview]) -> bytearray:
        return self._open_runs(runs)

    def _wipe(self) -> None:
        ffi.release(self._session)  # mesh_tunnel_free: cleanses and frees now
