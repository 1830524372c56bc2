"""The C core and its pure-Python twin on the same random inputs: identical bytes, frames
and exception classes, whatever MESHAGENT_BACKEND says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from meshagent.core import Frame, cbackend, pyref
from meshagent.core.wire import (
    FRAME_HEADER_BYTES,
    SEALED_AAD_BYTES,
    FrameLayout,
)

node_ids = st.binary(min_size=16, max_size=16) | st.sampled_from([bytes(16), b"\xff" * 16])
frames = st.builds(
    Frame, type=st.integers(1, 255), flags=st.integers(0, 255), src=node_ids, dst=node_ids,
    hop_limit=st.integers(0, 255), channel=st.integers(0, (1 << 32) - 1),
    seq=st.integers(0, (1 << 64) - 1), payload=st.binary(max_size=600))
keys = st.binary(min_size=32, max_size=32)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", exception class): what the two backends must agree on."""
    try:
        return "ok", call()
    except Exception as exc:  # the class itself is compared
        return "error", type(exc)


def same(c_call: Callable[[], Any], py_call: Callable[[], Any]) -> Any:
    c_result, py_result = outcome(c_call), outcome(py_call)
    assert c_result == py_result
    return c_result


@st.composite
def corrupted(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes changed, cut, or extended with garbage."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if buf:
            buf[draw(st.integers(0, len(buf) - 1))] ^= draw(st.integers(1, 255))
    if buf and draw(st.booleans()):
        del buf[draw(st.integers(0, len(buf))):]
    return bytes(buf + draw(st.binary(max_size=8)))


@given(st.lists(frames, max_size=6), st.data())
def test_frame_codecs_agree(batch: list[Frame], data: st.DataObject) -> None:
    encoded = cbackend.encode_frames(batch)
    assert encoded == pyref.encode_frames(batch)
    assert cbackend.decode_frames(encoded) == batch
    mangled = data.draw(corrupted(encoded))
    same(lambda: cbackend.decode_frames(mangled), lambda: pyref.decode_frames(mangled))


@given(st.binary(max_size=300))
def test_decoders_agree_on_arbitrary_bytes(blob: bytes) -> None:
    header = bytearray(blob[:FRAME_HEADER_BYTES])
    if len(header) > FrameLayout.VERSION:  # make some inputs get past the version check
        header[FrameLayout.VERSION] = 1
    for buf in (blob, bytes(header) + blob[FRAME_HEADER_BYTES:]):
        same(lambda buf=buf: cbackend.decode_frames(buf),
             lambda buf=buf: pyref.decode_frames(buf))


@given(st.lists(frames, max_size=5), st.lists(st.integers(1, 400), min_size=1), st.data())
def test_stream_decoders_agree_on_any_split(batch: list[Frame], cuts: list[int],
                                            data: st.DataObject) -> None:
    stream = data.draw(corrupted(cbackend.encode_frames(batch))) \
        if data.draw(st.booleans()) else cbackend.encode_frames(batch)
    c_decoder, py_decoder = cbackend.FrameDecoder(), pyref.FrameDecoder()
    pos, i = 0, 0
    while pos < len(stream):
        piece = stream[pos:pos + cuts[i % len(cuts)]]
        pos, i = pos + len(piece), i + 1
        kind, _ = same(lambda piece=piece: c_decoder.feed(piece),
                       lambda piece=piece: py_decoder.feed(piece))
        assert c_decoder.buffered == py_decoder.buffered
        if kind == "error":
            break


@given(keys, keys, st.lists(frames, max_size=4), st.binary(max_size=3000),
       st.integers(1, 1500), frames, st.data())
def test_tunnels_agree_byte_for_byte(send_key: bytes, recv_key: bytes, batch: list[Frame],
                                     payload: bytes, piece: int, template: Frame,
                                     data: st.DataObject) -> None:
    c_tunnel, py_tunnel = cbackend.Tunnel(send_key, recv_key), pyref.Tunnel(send_key, recv_key)
    c_peer, py_peer = cbackend.Tunnel(recv_key, send_key), pyref.Tunnel(recv_key, send_key)
    sealed = c_tunnel.seal_frames(batch)
    assert sealed == py_tunnel.seal_frames(batch)
    stream = c_tunnel.seal_stream(template, payload, piece)
    assert stream == py_tunnel.seal_stream(template, payload, piece)
    assert c_tunnel.send_counter == py_tunnel.send_counter
    records = sealed + stream
    if data.draw(st.booleans()):
        records = data.draw(corrupted(records))
    same(lambda: c_peer.open_frames(records), lambda: py_peer.open_frames(records))
    # Whatever the first attempt accepted is now a replay for both windows.
    same(lambda: c_peer.open_stream(stream), lambda: py_peer.open_stream(stream))


@given(keys, st.lists(frames, min_size=1, max_size=3), st.integers(0, 120))
def test_tunnels_agree_on_forged_headers(key: bytes, batch: list[Frame], spot: int) -> None:
    c_tunnel, py_tunnel = cbackend.Tunnel(key, key), pyref.Tunnel(key, key)
    record = bytearray(c_tunnel.seal(batch[0]))
    py_tunnel.seal(batch[0])
    record[spot % SEALED_AAD_BYTES] ^= 0x80
    same(lambda: c_tunnel.open(record), lambda: py_tunnel.open(record))


@given(st.lists(st.integers(0, 40_000) | st.sampled_from([(1 << 60) - 1, 1 << 60]),
                max_size=300))
def test_replay_windows_agree(counters: list[int]) -> None:
    c_window, py_window = cbackend.ReplayWindow(), pyref.ReplayWindow()
    for counter in counters:
        assert c_window.accepts(counter) == py_window.accepts(counter)
        same(lambda counter=counter: c_window.check_and_update(counter),
             lambda counter=counter: py_window.check_and_update(counter))


@given(st.sampled_from([16, 24, 32, 0, 31]), st.integers(0, 140), st.binary(max_size=64),
       st.binary(max_size=200), st.integers(2, 17), st.data())
def test_raw_gcm_agrees(key_size: int, nonce_size: int, aad: bytes, plaintext: bytes,
                        tag_bytes: int, data: st.DataObject) -> None:
    key, nonce = bytes(range(key_size)), bytes(nonce_size)
    kind, sealed = same(
        lambda: cbackend.aes_gcm_seal(key, nonce, aad, plaintext, tag_bytes=tag_bytes),
        lambda: pyref.aes_gcm_seal(key, nonce, aad, plaintext, tag_bytes=tag_bytes))
    forged = data.draw(corrupted(sealed if kind == "ok" else plaintext))
    for blob in (sealed if kind == "ok" else b"", forged):
        same(lambda blob=blob: cbackend.aes_gcm_open(key, nonce, aad, blob, tag_bytes=tag_bytes),
             lambda blob=blob: pyref.aes_gcm_open(key, nonce, aad, blob, tag_bytes=tag_bytes))
