"""Known-answer tests of the raw AES-GCM functions: NIST CAVP and Wycheproof, one test each.

Runs against the backend MESHAGENT_BACKEND selects. The raw functions take 128/192/256-bit
keys, nonces of 1..GCM_MAX_NONCE_BYTES (OpenSSL 3's limit) and 4..16-byte tags, so every
vector applies except Wycheproof's longer nonces: those must be refused as InvalidArgument,
and the counts below prove nothing is skipped silently.
"""

from __future__ import annotations

import pytest

from meshagent.core import (
    AuthenticationError,
    CoreError,
    InvalidArgument,
    aes_gcm_open,
    aes_gcm_seal,
)
from meshagent.core.wire import GCM_MAX_NONCE_BYTES

from .gcm_vectors import (
    NIST_FILES,
    NIST_VECTORS,
    WYCHEPROOF_DECLARED,
    WYCHEPROOF_VECTORS,
    GcmVector,
)


def test_every_vector_file_is_loaded_whole() -> None:
    assert len(NIST_FILES) == 4
    assert len(WYCHEPROOF_VECTORS) == WYCHEPROOF_DECLARED == 316
    failing = [vector for vector in NIST_VECTORS if vector.plaintext is None]
    assert len(failing) >= 400
    assert sum(1 for vector in NIST_VECTORS if len(vector.key) == 32) >= 34
    assert any(len(vector.key) == 32 and vector.plaintext is None for vector in NIST_VECTORS)
    too_long = [v for v, _ in WYCHEPROOF_VECTORS if len(v.nonce) > GCM_MAX_NONCE_BYTES]
    assert len(too_long) == 3  # the 2056-bit nonces, one per key size


@pytest.mark.parametrize("vector", NIST_VECTORS, ids=lambda vector: vector.name)
def test_nist_gcm_vector(vector: GcmVector) -> None:
    data = vector.ciphertext + vector.tag
    tag_bytes = len(vector.tag)
    if vector.plaintext is None:
        with pytest.raises(AuthenticationError):
            aes_gcm_open(vector.key, vector.nonce, vector.aad, data, tag_bytes=tag_bytes)
        return
    assert aes_gcm_seal(vector.key, vector.nonce, vector.aad, vector.plaintext,
                        tag_bytes=tag_bytes) == data
    assert aes_gcm_open(vector.key, vector.nonce, vector.aad, data,
                        tag_bytes=tag_bytes) == vector.plaintext


@pytest.mark.parametrize(("vector", "result"), WYCHEPROOF_VECTORS,
                         ids=[vector.name for vector, _ in WYCHEPROOF_VECTORS])
def test_wycheproof_gcm_vector(vector: GcmVector, result: str) -> None:
    data = vector.ciphertext + vector.tag
    if len(vector.nonce) > GCM_MAX_NONCE_BYTES:
        with pytest.raises(InvalidArgument):
            aes_gcm_seal(vector.key, vector.nonce, vector.aad, vector.plaintext)
        with pytest.raises(InvalidArgument):
            aes_gcm_open(vector.key, vector.nonce, vector.aad, data)
        return
    if result == "valid":
        assert aes_gcm_seal(vector.key, vector.nonce, vector.aad, vector.plaintext) == data
        assert aes_gcm_open(vector.key, vector.nonce, vector.aad, data) == vector.plaintext
        return
    assert result == "invalid"
    # Invalid vectors are forged tags (AuthenticationError) or empty nonces, which the
    # raw functions refuse as an argument error before any decryption.
    with pytest.raises(CoreError) as raised:
        aes_gcm_open(vector.key, vector.nonce, vector.aad, data)
    if vector.nonce:
        assert isinstance(raised.value, AuthenticationError)
