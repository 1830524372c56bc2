"""HKDF-SHA256 of both backends: RFC 5869's vectors, argument checks, and the C core
against its pycryptodome twin on the same random inputs."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent import core
from meshagent.core import InvalidArgument, cbackend, pyref
from tests.core.test_core_twins import same

BACKENDS = [pytest.param(cbackend, id="c"), pytest.param(pyref, id="python")]

# RFC 5869 appendix A, test cases 1-3 (SHA-256): (secret, salt, info, output).
RFC5869 = [
    (b"\x0b" * 22, bytes(range(0x0d)), bytes(range(0xf0, 0xfa)),
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    (bytes(range(0x50)), bytes(range(0x60, 0xb0)), bytes(range(0xb0, 0x100)),
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb"
     "41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    (b"\x0b" * 22, b"", b"",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("secret", "salt", "info", "output"), RFC5869)
def test_rfc5869_vectors(backend: ModuleType, secret: bytes, salt: bytes, info: bytes,
                         output: str) -> None:
    want = bytes.fromhex(output)
    assert backend.hkdf_sha256(secret, len(want), salt, info) == want
    # Any bytes-like input is taken as its bytes.
    assert backend.hkdf_sha256(bytearray(secret), len(want), memoryview(salt),
                               bytearray(info)) == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_secret_derives_and_is_not_a_zero_byte(backend: ModuleType) -> None:
    # Noise's Split derives from an empty input; the secret is HMAC's message, not its
    # key, so it is not padded with zeros.
    salt = bytes(range(32))
    assert backend.hkdf_sha256(b"", 64, salt) != backend.hkdf_sha256(b"\0", 64, salt)
    assert backend.hkdf_sha256(b"", 64, salt) == cbackend.hkdf_sha256(b"", 64, salt)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1, 1.5, True, "32"])
def test_output_length_out_of_range_is_refused(backend: ModuleType, length: object) -> None:
    with pytest.raises(InvalidArgument):
        backend.hkdf_sha256(b"secret", length, b"salt", b"info")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("field", ["secret", "salt", "info"])
def test_input_that_is_not_bytes_is_refused(backend: ModuleType, field: str) -> None:
    arguments = {"secret": b"secret", "salt": b"salt", "info": b"info"}
    arguments[field] = "text"  # type: ignore[assignment]
    with pytest.raises(InvalidArgument):
        backend.hkdf_sha256(arguments["secret"], 32, arguments["salt"], arguments["info"])


def test_longest_output_is_255_blocks_and_extends_the_shorter() -> None:
    longest = core.hkdf_sha256(b"secret", core.wire.HKDF_MAX_OUTPUT_BYTES, b"salt")
    assert len(longest) == 255 * 32
    assert longest.startswith(core.hkdf_sha256(b"secret", 33, b"salt"))


@given(secret=st.binary(max_size=96), salt=st.binary(max_size=96),
       info=st.binary(max_size=96), length=st.integers(1, 300))
def test_cores_agree(secret: bytes, salt: bytes, info: bytes, length: int) -> None:
    same(lambda: cbackend.hkdf_sha256(secret, length, salt, info),
         lambda: pyref.hkdf_sha256(secret, length, salt, info))
