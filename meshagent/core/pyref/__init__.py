"""The pure-Python twin of the C core (``MESHAGENT_BACKEND=python``).

Same names and behaviour as ``meshagent.core.cbackend``: byte-identical output and the
same exception classes. It is slow (one pycryptodome object per frame):
it exists to cross-check the C core and as the benchmarks' baseline.
"""

from meshagent.core.pyref.frame import FrameDecoder, decode_frames, encode_frames
from meshagent.core.pyref.kdf import hkdf_sha256
from meshagent.core.pyref.pubkey import X25519Private, ed25519_verify
from meshagent.core.pyref.replay import ReplayWindow
from meshagent.core.pyref.route import RouteTable
from meshagent.core.pyref.tunnel import Tunnel, aes_gcm_open, aes_gcm_seal

__all__ = ["FrameDecoder", "ReplayWindow", "RouteTable", "Tunnel", "X25519Private",
           "aes_gcm_open", "aes_gcm_seal", "decode_frames", "ed25519_verify", "encode_frames",
           "hkdf_sha256"]
