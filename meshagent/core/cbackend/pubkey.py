"""Ed25519 checks and X25519 agreement over ``csrc/pubkey.c`` (OpenSSL EVP)."""

from __future__ import annotations

from meshagent.core._checks import bytes_of_length, readonly_view
from meshagent.core._native import ffi, lib
from meshagent.core.errors import ensure
from meshagent.core.wire import ED25519_PUBLIC_BYTES, ED25519_SIGNATURE_BYTES, X25519_BYTES

__all__ = ["X25519Private", "ed25519_verify"]


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public``'s RFC 8032 signature of ``message``."""
    public = bytes_of_length(public, ED25519_PUBLIC_BYTES, "public")
    signature = bytes_of_length(signature, ED25519_SIGNATURE_BYTES, "signature")
    view = readonly_view(message, "message")
    status = lib.mesh_ed25519_verify(public, signature, ffi.from_buffer(view), len(view))
    if status == lib.MESH_ERR_AUTH:
        return False
    ensure(status)
    return True


class X25519Private:
    """An X25519 private key (any 32 bytes, clamped per RFC 7748) held by OpenSSL."""

    def __init__(self, private: bytes) -> None:
        private = bytes_of_length(private, X25519_BYTES, "private")
        handle = ffi.new("mesh_x25519_key **")
        ensure(lib.mesh_x25519_key_new(private, handle))
        self._key = ffi.gc(handle[0], lib.mesh_x25519_key_free)
        public = ffi.new("uint8_t[]", X25519_BYTES)
        ensure(lib.mesh_x25519_public(self._key, public))
        self.public: bytes = bytes(ffi.buffer(public))

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte shared secret; WeakPublicKey for a small-order ``peer_public``."""
        peer_public = bytes_of_length(peer_public, X25519_BYTES, "peer_public")
        shared = ffi.new("uint8_t[]", X25519_BYTES)
        ensure(lib.mesh_x25519_derive(self._key, peer_public, shared))
        return bytes(ffi.buffer(shared))
