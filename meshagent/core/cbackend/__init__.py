"""Checked bindings over the C core (``MESHAGENT_BACKEND=c``, the default).

Each call hands whole buffers to C (``ffi.from_buffer``, no copy) into preallocated output
buffers, and turns the returned status into a typed exception (``errors.ensure``).
"""

from meshagent.core.cbackend.frame import FrameDecoder, decode_frames, encode_frames
from meshagent.core.cbackend.kdf import hkdf_sha256
from meshagent.core.cbackend.pubkey import X25519Private, ed25519_verify
from meshagent.core.cbackend.replay import ReplayWindow
from meshagent.core.cbackend.route import RouteTable
from meshagent.core.cbackend.tunnel import Tunnel, aes_gcm_open, aes_gcm_seal

__all__ = ["FrameDecoder", "ReplayWindow", "RouteTable", "Tunnel", "X25519Private",
           "aes_gcm_open", "aes_gcm_seal", "decode_frames", "ed25519_verify", "encode_frames",
           "hkdf_sha256"]
