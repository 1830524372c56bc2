"""meshagent.core: frames, the AES-256-GCM tunnel, the replay window and the route table.

The only public door to the C core. ``MESHAGENT_BACKEND=c`` (default) binds the names
below to the checked C bindings (``meshagent.core.cbackend``), ``=python`` to the
pure-Python twin (``meshagent.core.pyref``); both export the same names with the same
behaviour, bytes and errors. ``BACKEND`` says which is in use.

Frames (``Frame``, ``encode_frames``, ``decode_frames``, ``FrameDecoder``): a 52-byte
versioned header (type, flags, hop limit, length, channel, sequence, source and
destination node ids) plus payload; decoders return payloads as read-only views of the
decoded buffer. ``Tunnel``: per-direction AES-256-GCM with counter nonces, header as
associated data, replay window, rekey limits, batch and stream calls. Raw
``aes_gcm_seal``/``aes_gcm_open`` exist for known-answer tests. Public keys:
``ed25519_verify`` (RFC 8032 signature check), ``ed25519_weak_key`` (a key with a
low-order component, which a mesh never certifies; pycryptodome under both backends, as
OpenSSL has no such check) and ``X25519Private`` (RFC 7748 key
agreement; ``WeakPublicKey`` for a small-order peer key); signing stays in
``meshagent.signing`` (pycryptodome). ``hkdf_sha256``: RFC 5869 key derivation (pair,
stream and handshake keys). ``openssl_build()`` names the OpenSSL libcrypto the
C core was compiled against and runs on (``OpenSSLBuild``). Sizes come from
``csrc/wire.h`` (``NODE_ID_BYTES``, ``KEY_BYTES``, ...). Errors: ``CoreError`` and its
subclasses in ``meshagent.core.errors``.
"""

from __future__ import annotations

import os

from meshagent.core.errors import (
    AuthenticationError,
    CoreError,
    CryptoFailure,
    FrameError,
    FrameMalformed,
    FrameOversize,
    FrameTruncated,
    FrameVersionError,
    InvalidArgument,
    RekeyRequired,
    ReplayError,
    RouteTableFull,
    TunnelClosed,
    WeakPublicKey,
)
from meshagent.core.frame import Frame
from meshagent.core.openssl import OpenSSLBuild, openssl_build
from meshagent.core.pyref.pubkey import ed25519_weak_key
from meshagent.core.route import METRIC_INFINITY, NO_NEXT_HOP, Route, seq_newer
from meshagent.core.wire import (
    DEFAULT_HOP_LIMIT,
    FRAME_HEADER_BYTES,
    KEY_BYTES,
    MAX_FRAME_PAYLOAD,
    NODE_ID_BYTES,
    NONCE_BYTES,
    REKEY_AFTER_MESSAGES,
    REPLAY_WINDOW_BITS,
    REPLAY_WINDOW_SPAN,
    SEALED_OVERHEAD,
    TAG_BYTES,
    WIRE_VERSION,
)
from meshagent.errors import ConfigError

BACKEND = os.environ.get("MESHAGENT_BACKEND", "c")
if BACKEND == "c":
    from meshagent.core import cbackend as _backend
elif BACKEND == "python":
    from meshagent.core import pyref as _backend  # type: ignore[no-redef]
else:
    raise ConfigError(f"MESHAGENT_BACKEND must be 'c' or 'python', not {BACKEND!r}")

FrameDecoder = _backend.FrameDecoder
ReplayWindow = _backend.ReplayWindow
RouteTable = _backend.RouteTable
Tunnel = _backend.Tunnel
aes_gcm_open = _backend.aes_gcm_open
aes_gcm_seal = _backend.aes_gcm_seal
ed25519_verify = _backend.ed25519_verify
hkdf_sha256 = _backend.hkdf_sha256
X25519Private = _backend.X25519Private
decode_frames = _backend.decode_frames
encode_frames = _backend.encode_frames

__all__ = [
    "BACKEND", "DEFAULT_HOP_LIMIT", "FRAME_HEADER_BYTES", "KEY_BYTES", "MAX_FRAME_PAYLOAD",
    "NODE_ID_BYTES", "NONCE_BYTES", "REKEY_AFTER_MESSAGES", "REPLAY_WINDOW_BITS",
    "REPLAY_WINDOW_SPAN", "SEALED_OVERHEAD", "TAG_BYTES", "WIRE_VERSION",
    "AuthenticationError", "CoreError", "CryptoFailure", "Frame", "FrameDecoder", "FrameError",
    "FrameMalformed", "FrameOversize", "FrameTruncated", "FrameVersionError",
    "InvalidArgument", "RekeyRequired", "ReplayError", "ReplayWindow", "RouteTableFull",
    "Tunnel", "TunnelClosed", "WeakPublicKey", "X25519Private", "aes_gcm_open",
    "aes_gcm_seal", "decode_frames", "ed25519_verify", "ed25519_weak_key", "encode_frames",
    "hkdf_sha256",
    "METRIC_INFINITY", "NO_NEXT_HOP", "Route", "RouteTable", "seq_newer",
    "OpenSSLBuild", "openssl_build",
]
