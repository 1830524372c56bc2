"""Ed25519 checks and X25519 agreement of both backends: RFC 8032 and RFC 7748 vectors,
refusals, and the C core against its pycryptodome twin on the same random inputs."""

from __future__ import annotations

import hashlib
from types import ModuleType

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from hypothesis import given
from hypothesis import strategies as st

from meshagent import core
from meshagent.core import InvalidArgument, WeakPublicKey, cbackend, pyref
from meshagent.signing import SigningKey
from tests.core.test_core_twins import same

BACKENDS = [pytest.param(cbackend, id="c"), pytest.param(pyref, id="python")]

# RFC 8032 section 7.1, TEST 1 to TEST 3: (public key, message, signature).
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
     "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
     "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290"
     "ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]

# RFC 7748 section 6.1: Alice's and Bob's private and public keys, and their secret.
ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# u = 0, 1, the two points of order 8, p - 1, and p + 1 (a non-canonical 1).
SMALL_ORDER = [bytes.fromhex(h) for h in (
    "00" * 32, "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f", "ee" + "ff" * 30 + "7f")]

# Encodings of the Ed25519 points of small order (any sign bit), where the cofactored and
# the cofactorless checks may disagree (see test_cores_differ_only_under_keys_...).
SMALL_ORDER_ED25519_PREFIXES = {bytes.fromhex(h)[:31] for h in (
    "00" * 32, "01" + "00" * 31, "ec" + "ff" * 30 + "7f",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("public", "message", "signature"), RFC8032)
def test_rfc8032_signatures_verify(backend: ModuleType, public: str, message: str,
                                   signature: str) -> None:
    assert backend.ed25519_verify(bytes.fromhex(public), bytes.fromhex(message),
                                  bytes.fromhex(signature))


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_signature_message_or_key_is_refused(backend: ModuleType) -> None:
    public, message, signature = (bytes.fromhex(h) for h in RFC8032[2])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not backend.ed25519_verify(public, message, flipped)
    assert not backend.ed25519_verify(public, message + b"\0", signature)
    other = bytes.fromhex(RFC8032[1][0])
    assert not backend.ed25519_verify(other, message, signature)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_key_or_signature_length_is_an_invalid_argument(backend: ModuleType) -> None:
    public, message, signature = (bytes.fromhex(h) for h in RFC8032[2])
    with pytest.raises(InvalidArgument):
        backend.ed25519_verify(public[:31], message, signature)
    with pytest.raises(InvalidArgument):
        backend.ed25519_verify(public, message, signature + b"\0")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rfc7748_agreement(backend: ModuleType) -> None:
    alice, bob = backend.X25519Private(ALICE), backend.X25519Private(BOB)
    assert (alice.public, bob.public) == (ALICE_PUBLIC, BOB_PUBLIC)
    assert alice.exchange(BOB_PUBLIC) == bob.exchange(ALICE_PUBLIC) == SHARED


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("peer", SMALL_ORDER, ids=range(len(SMALL_ORDER)))
def test_small_order_peer_key_is_refused(backend: ModuleType, peer: bytes) -> None:
    with pytest.raises(WeakPublicKey):
        backend.X25519Private(ALICE).exchange(peer)


# RFC 8032 (5.1): the base point B and the order L of the subgroup it generates; an
# encoding of a point of order 8 (one of SMALL_ORDER_ED25519_PREFIXES).
L = 2**252 + 27742317777372353535851937790883648493
BASE = ECC.EccPoint(
    15112221349535400772501151409588531511454012693041857206046113283949847762202,
    46316835694926478169428394003475163141307993866256225615783033603165251855960,
    curve="Ed25519")
ORDER_8 = eddsa.import_public_key(bytes.fromhex(
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")).pointQ


def _encoded(point: ECC.EccPoint) -> bytes:
    return ECC.EccKey(curve="Ed25519", point=point).export_key(format="raw")


def _signed_with_torsion(seed: bytes, message: bytes, key_torsion: bool,
                         ) -> tuple[bytes, bytes]:
    """(public, signature) of ``message`` whose R (and, with ``key_torsion``, the key)
    carries a low-order component. Without ``key_torsion`` the signature satisfies only
    the cofactored check; with it, the torsion of R cancels that of [k]A, so the
    cofactorless check accepts it too (a key any signer could craft, no root certifies).
    Test vectors made per RFC 8032's equations, as in "Taming the many EdDSAs"."""
    secret = ECC.construct(curve="Ed25519", seed=seed).d
    key = BASE * int(secret) + (ORDER_8 if key_torsion else BASE * 0)
    public = _encoded(key)
    for r in range(1, 1000):
        torsion = (r % 7) + 1  # R's low-order component: [torsion] ORDER_8, never zero
        big_r = _encoded(BASE * (r * 7919) + ORDER_8 * torsion)
        k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % L
        if not key_torsion or (torsion + k) % 8 == 0:
            s = (r * 7919 + k * int(secret)) % L
            return public, big_r + s.to_bytes(32, "little")
    raise AssertionError("no vector found")


def _cofactored_accepts(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        eddsa.new(eddsa.import_public_key(public), "rfc8032").verify(message, signature)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("backend", BACKENDS)
def test_signatures_only_a_cofactored_check_accepts_are_refused(backend: ModuleType) -> None:
    """RFC 8032 (5.1.7) lets a verifier check [8][S]B = [8]R + [8][k]A (pycryptodome) or
    the stricter [S]B = R + [k]A (OpenSSL). Both cores refuse what only the first
    accepts: the all-zero key and signature (small order), and an honest key's signature
    whose R carries a low-order component."""
    assert _cofactored_accepts(bytes(32), b"", bytes(64))
    assert not backend.ed25519_verify(bytes(32), b"", bytes(64))
    public, signature = _signed_with_torsion(b"\x01" * 32, b"record", key_torsion=False)
    assert not core.ed25519_weak_key(public)
    assert _cofactored_accepts(public, b"record", signature)
    assert not backend.ed25519_verify(public, b"record", signature)


def test_cores_differ_only_under_keys_a_mesh_never_certifies() -> None:
    """A key with a low-order component lets its holder craft a signature the
    cofactorless check accepts and the cofactored one may not; the C core (OpenSSL)
    accepts it, its twin refuses every signature under such a key. No certificate
    carries one: ``ed25519_weak_key`` flags it (see the identity tests)."""
    public, signature = _signed_with_torsion(b"\x02" * 32, b"record", key_torsion=True)
    assert core.ed25519_weak_key(public)
    assert cbackend.ed25519_verify(public, b"record", signature)
    assert not pyref.ed25519_verify(public, b"record", signature)


@pytest.mark.parametrize("encoded", [
    bytes(32), b"\x01" + bytes(31),  # small order: an order-4 point, the identity
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    b"\xff" * 32])  # not a curve point
def test_small_order_and_non_points_are_weak_keys(encoded: bytes) -> None:
    assert core.ed25519_weak_key(encoded)


@given(st.binary(min_size=32, max_size=32))
def test_generated_keys_are_never_weak(seed: bytes) -> None:
    assert not core.ed25519_weak_key(SigningKey.from_seed(seed).public)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.data())
def test_backends_agree_on_signature_checks(seed: bytes, message: bytes,
                                            data: st.DataObject) -> None:
    key = SigningKey.from_seed(seed)
    signature = key.sign_raw(message)
    assert cbackend.ed25519_verify(key.public, message, signature)
    assert pyref.ed25519_verify(key.public, message, signature)
    public = data.draw(st.just(key.public) | st.binary(min_size=32, max_size=32).filter(
        lambda raw: raw[:31] not in SMALL_ORDER_ED25519_PREFIXES))
    signature = data.draw(st.just(signature) | st.binary(min_size=64, max_size=64))
    message = data.draw(st.just(message) | st.binary(max_size=300))
    same(lambda: cbackend.ed25519_verify(public, message, signature),
         lambda: pyref.ed25519_verify(public, message, signature))


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)
       | st.sampled_from(SMALL_ORDER))
def test_backends_agree_on_key_agreement(private: bytes, peer: bytes) -> None:
    c_key, py_key = cbackend.X25519Private(private), pyref.X25519Private(private)
    assert c_key.public == py_key.public
    same(lambda: c_key.exchange(peer), lambda: py_key.exchange(peer))
