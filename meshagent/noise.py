"""The Noise Protocol Framework (revision 34), for ``Noise_XX_25519_AESGCM_SHA256`` only.

This is the state machinery of the specification, sections 5.1-5.3, with the functions of
section 12: DH = X25519 (RFC 7748), cipher = AES-256-GCM with the nonce 4 zero bytes then
the 8-byte big-endian counter, hash = SHA-256, and the HKDF of section 4.3 (RFC 5869's
HKDF-SHA256 with the chaining key as salt and no info). The primitives come from
``identity.X25519Key`` and ``meshagent.core`` (``aes_gcm_seal``/``aes_gcm_open``,
``hkdf_sha256``: OpenSSL in the C core, pycryptodome in the pure-Python twin) and
hashlib; what is here is the protocol bookkeeping, checked
against the cacophony test vectors (tests/data/noise_xx_25519_aesgcm_sha256.json).

Callers: ``meshagent.handshake`` (the mesh's certificate exchange on top), tests.
A ``HandshakeState`` is single-use: after any error it refuses further messages, since
its transcript hash no longer matches the peer's.
"""

from __future__ import annotations

import hashlib

from meshagent import core
from meshagent.errors import DecodeError, MeshError
from meshagent.identity import KeyAgreementError, X25519Key

__all__ = [
    "PROTOCOL_NAME", "DH_BYTES", "KEY_BYTES", "HASH_BYTES", "TAG_BYTES", "MAX_MESSAGE_BYTES",
    "NoiseError", "NoiseDecryptError", "NoiseMessageError",
    "CipherState", "SymmetricState", "HandshakeState", "XX_PATTERN", "rekey_key",
]

PROTOCOL_NAME = b"Noise_XX_25519_AESGCM_SHA256"
DH_BYTES = 32
KEY_BYTES = 32
HASH_BYTES = 32
TAG_BYTES = 16
MAX_MESSAGE_BYTES = 65535
# Nonce 2**64-1 is reserved (section 5.1); REKEY encrypts with it.
MAX_NONCE = 2**64 - 1

# -> e
# <- e, ee, s, es
# -> s, se
XX_PATTERN: tuple[tuple[str, ...], ...] = (("e",), ("e", "ee", "s", "es"), ("s", "se"))


class NoiseError(MeshError):
    """The Noise state machine cannot go on (misuse, exhausted nonce, earlier failure)."""


class NoiseDecryptError(NoiseError):
    """An AEAD tag did not verify: the message was altered, belongs to another session,
    or the peer's transcript (prologue, keys) differs from ours."""


class NoiseMessageError(NoiseError, DecodeError):
    """A handshake message has the wrong length or carries an unusable public key."""


def _hkdf(chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
    """HKDF of section 4.3 with two outputs: its temp_key is RFC 5869's extract with the
    chaining key as salt, its outputs the first two blocks of the expand with no info."""
    output = core.hkdf_sha256(input_key_material, 2 * HASH_BYTES, salt=chaining_key)
    return output[:HASH_BYTES], output[HASH_BYTES:]


def _nonce(nonce: int) -> bytes:
    return bytes(4) + nonce.to_bytes(8, "big")


def _encrypt(key: bytes, nonce: int, ad: bytes, plaintext: bytes) -> bytes:
    return core.aes_gcm_seal(key, _nonce(nonce), ad, plaintext, tag_bytes=TAG_BYTES)


def _decrypt(key: bytes, nonce: int, ad: bytes, data: bytes) -> bytes:
    if len(data) < TAG_BYTES:
        raise NoiseDecryptError("ciphertext shorter than its tag")
    try:
        return core.aes_gcm_open(key, _nonce(nonce), ad, data, tag_bytes=TAG_BYTES)
    except core.AuthenticationError as exc:
        raise NoiseDecryptError("message failed authentication") from exc


class CipherState:
    """Section 5.1: a key (or none) and a 64-bit nonce counter."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.nonce = 0

    def has_key(self) -> bool:
        return self.key is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.key is None:
            return plaintext
        return _encrypt(self.key, self._take_nonce(), ad, plaintext)

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.key is None:
            return ciphertext
        if self.nonce >= MAX_NONCE:
            raise NoiseError("nonce space exhausted")
        plaintext = _decrypt(self.key, self.nonce, ad, ciphertext)
        self.nonce += 1  # only after success, as section 5.1 requires
        return plaintext

    def rekey(self) -> None:
        """Section 11.3 REKEY: k = first 32 bytes of ENCRYPT(k, 2**64-1, "", 32 zeros)."""
        if self.key is None:
            raise NoiseError("no key to rekey")
        self.key = rekey_key(self.key)

    def _take_nonce(self) -> int:
        if self.nonce >= MAX_NONCE:
            raise NoiseError("nonce space exhausted")
        nonce = self.nonce
        self.nonce += 1
        return nonce


def rekey_key(key: bytes) -> bytes:
    """REKEY(k) for AESGCM (section 4.2 default): no nonce state involved."""
    return _encrypt(key, MAX_NONCE, b"", bytes(KEY_BYTES))[:KEY_BYTES]


class SymmetricState:
    """Section 5.2: chaining key ``ck``, handshake hash ``h`` and a CipherState."""

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= HASH_BYTES:
            self.h = protocol_name.ljust(HASH_BYTES, b"\0")
        else:
            self.h = hashlib.sha256(protocol_name).digest()
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, input_key_material)
        self.cipher = CipherState(temp_k[:KEY_BYTES])

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """(initiator->responder, responder->initiator) transport ciphers."""
        temp_k1, temp_k2 = _hkdf(self.ck, b"")
        return CipherState(temp_k1[:KEY_BYTES]), CipherState(temp_k2[:KEY_BYTES])


class HandshakeState:
    """Section 5.3 for the XX pattern (no pre-messages, no PSK).

    ``static`` is our long-term X25519 key; ``ephemeral`` may be injected for test
    vectors, otherwise a fresh key is generated when the pattern sends ``e``.
    """

    def __init__(self, initiator: bool, prologue: bytes, static: X25519Key,
                 ephemeral: X25519Key | None = None) -> None:
        self.initiator = initiator
        self.symmetric = SymmetricState(PROTOCOL_NAME)
        self.symmetric.mix_hash(prologue)
        self.s = static
        self.e = ephemeral
        self.rs: bytes | None = None
        self.re: bytes | None = None
        self._index = 0
        self._failed = False

    @property
    def complete(self) -> bool:
        return self._index == len(XX_PATTERN)

    @property
    def handshake_hash(self) -> bytes:
        return self.symmetric.h

    def our_turn(self) -> bool:
        return (self._index % 2 == 0) == self.initiator

    def write_message(self, payload: bytes) -> bytes:
        tokens = self._next_tokens(writing=True)
        out = bytearray()
        try:
            for token in tokens:
                if token == "e":
                    if self.e is None:
                        self.e = X25519Key.generate()
                    out += self.e.public
                    self.symmetric.mix_hash(self.e.public)
                elif token == "s":
                    out += self.symmetric.encrypt_and_hash(self.s.public)
                else:
                    self._mix_dh(token)
            out += self.symmetric.encrypt_and_hash(payload)
        except BaseException:
            self._failed = True
            raise
        if len(out) > MAX_MESSAGE_BYTES:
            self._failed = True
            raise NoiseError("handshake message exceeds 65535 bytes")
        self._index += 1
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        tokens = self._next_tokens(writing=False)
        try:
            if len(message) > MAX_MESSAGE_BYTES:
                raise NoiseMessageError("handshake message exceeds 65535 bytes")
            view = memoryview(message)
            for token in tokens:
                if token == "e":
                    self.re = bytes(self._take(view, DH_BYTES))
                    view = view[DH_BYTES:]
                    self.symmetric.mix_hash(self.re)
                elif token == "s":
                    size = DH_BYTES + (TAG_BYTES if self.symmetric.cipher.has_key() else 0)
                    chunk = bytes(self._take(view, size))
                    view = view[size:]
                    self.rs = self.symmetric.decrypt_and_hash(chunk)
                else:
                    self._mix_dh(token)
            payload = self.symmetric.decrypt_and_hash(bytes(view))
        except BaseException:
            self._failed = True
            raise
        self._index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        if not self.complete:
            raise NoiseError("handshake not complete")
        return self.symmetric.split()

    def _next_tokens(self, writing: bool) -> tuple[str, ...]:
        if self._failed:
            raise NoiseError("handshake already failed")
        if self.complete:
            raise NoiseError("handshake already complete")
        if self.our_turn() != writing:
            raise NoiseError("out-of-turn handshake message")
        return XX_PATTERN[self._index]

    @staticmethod
    def _take(view: memoryview, size: int) -> memoryview:
        if len(view) < size:
            raise NoiseMessageError("handshake message truncated")
        return view[:size]

    def _mix_dh(self, token: str) -> None:
        # For "es" the initiator contributes e and the responder s; "se" the reverse.
        mine_first, theirs_first = token[0], token[1]
        mine = mine_first if self.initiator else theirs_first
        theirs = theirs_first if self.initiator else mine_first
        local = self.e if mine == "e" else self.s
        remote = self.re if theirs == "e" else self.rs
        if local is None or remote is None:
            raise NoiseError(f"pattern token {token} before its keys")
        try:
            self.symmetric.mix_key(local.exchange(remote))
        except KeyAgreementError as exc:
            raise NoiseMessageError(f"peer sent an unusable public key: {exc}") from exc
