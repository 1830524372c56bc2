"""Self-test of the core as installed: known answers and round trips on both backends.

Meant for the place the agent actually runs (a frozen executable, a wheel on a new
platform): it proves that the C core loaded is the one built for this version and runs on
a libcrypto it may run on (and names that OpenSSL: its speed is the core's), that its
AES-GCM gives NIST's answers (``data/gcm_kat.json``, shipped as package data, a subset of
the NIST CAVP vectors in ``tests/data/nist_gcm``), that its Ed25519, X25519 and HKDF give
the RFCs' answers (RFC 8032 7.1 TEST 2, RFC 7748 6.1, RFC 5869 A.1), and that frames, the
tunnel, the replay window and the route table work and agree with the pure-Python twin.

``run_selftest()`` returns one ``CheckResult`` per check and never raises for a failing
check: an unexpected exception is a failed check with the exception as its detail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from types import ModuleType

from meshagent import __version__
from meshagent.core import cbackend, pyref
from meshagent.core._native import ffi, lib
from meshagent.core.errors import AuthenticationError, FrameError, ReplayError
from meshagent.core.frame import Frame
from meshagent.core.openssl import openssl_build
from meshagent.core.route import NO_NEXT_HOP, Route

__all__ = ["KAT_RESOURCE", "BACKENDS", "CheckResult", "GcmVector", "load_gcm_vectors",
           "run_selftest"]

KAT_RESOURCE = "data/gcm_kat.json"
BACKENDS: dict[str, ModuleType] = {"c": cbackend, "python": pyref}


class SelfTestFailure(AssertionError):
    """A check saw a wrong answer (raised inside a check, reported as its detail)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GcmVector:
    """A NIST vector; ``plaintext`` is None when decryption must fail."""

    name: str
    key: bytes
    nonce: bytes
    aad: bytes
    plaintext: bytes | None
    ciphertext: bytes
    tag: bytes


def load_gcm_vectors() -> list[GcmVector]:
    """The known-answer vectors shipped with the package."""
    text = resources.files("meshagent.core").joinpath(KAT_RESOURCE).read_text("ascii")
    return [
        GcmVector(name=entry["name"], key=bytes.fromhex(entry["key"]),
                  nonce=bytes.fromhex(entry["nonce"]), aad=bytes.fromhex(entry["aad"]),
                  plaintext=None if entry["plaintext"] is None
                  else bytes.fromhex(entry["plaintext"]),
                  ciphertext=bytes.fromhex(entry["ciphertext"]), tag=bytes.fromhex(entry["tag"]))
        for entry in json.loads(text)["vectors"]]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SelfTestFailure(message)


def _expect_raises(error: type[Exception], call: Callable[[], object], message: str) -> None:
    try:
        call()
    except error:
        return
    raise SelfTestFailure(message)


def _check_version() -> str:
    built_for = ffi.string(lib.mesh_version()).decode("ascii")
    _expect(built_for == __version__, f"core built for {built_for}, package is {__version__}")
    return f"meshagent._core {built_for}"


def _check_libcrypto() -> str:
    build = openssl_build()
    problem = build.mismatch()
    _expect(problem is None, problem or "")
    return build.describe()


def _check_gcm(backend: ModuleType) -> str:
    vectors = load_gcm_vectors()
    _expect(bool(vectors), "no known-answer vectors shipped")
    for vector in vectors:
        data = vector.ciphertext + vector.tag
        tag_bytes = len(vector.tag)
        if vector.plaintext is None:
            _expect_raises(AuthenticationError, lambda v=vector, d=data, t=tag_bytes:
                           backend.aes_gcm_open(v.key, v.nonce, v.aad, d, tag_bytes=t),
                           f"{vector.name}: forged tag accepted")
            continue
        sealed = backend.aes_gcm_seal(vector.key, vector.nonce, vector.aad, vector.plaintext,
                                      tag_bytes=tag_bytes)
        _expect(sealed == data, f"{vector.name}: wrong ciphertext or tag")
        opened = backend.aes_gcm_open(vector.key, vector.nonce, vector.aad, data,
                                      tag_bytes=tag_bytes)
        _expect(opened == vector.plaintext, f"{vector.name}: wrong plaintext")
    failing = sum(vector.plaintext is None for vector in vectors)
    return f"{len(vectors)} NIST vectors ({failing} forged tags refused)"


# RFC 8032 7.1 TEST 2 (key, message, signature); RFC 7748 6.1 (Alice's private key, Bob's
# public key, their secret); RFC 5869 A.1 (secret, salt, info, output).
_ED25519 = ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
            "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
_X25519 = ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
           "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
           "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
_HKDF = ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def _check_keys(backend: ModuleType) -> str:
    public, message, signature = (bytes.fromhex(h) for h in _ED25519)
    _expect(backend.ed25519_verify(public, message, signature), "RFC 8032 signature refused")
    forged = signature[:-1] + bytes([signature[-1] ^ 1])
    _expect(not backend.ed25519_verify(public, message, forged), "altered signature accepted")
    private, peer, secret = (bytes.fromhex(h) for h in _X25519)
    _expect(backend.X25519Private(private).exchange(peer) == secret, "wrong X25519 secret")
    ikm, salt, info, output = (bytes.fromhex(h) for h in _HKDF)
    _expect(backend.hkdf_sha256(ikm, len(output), salt, info) == output, "wrong HKDF output")
    return "RFC 8032, 7748 and 5869 answers; an altered signature refused"


def _sample_frames() -> list[Frame]:
    return [Frame(type=1 + n % 7, flags=n % 3, src=bytes([n]) * 16, dst=bytes([255 - n]) * 16,
                  hop_limit=n % 16, channel=n * 1000, seq=n << 40,
                  payload=bytes(range(256)) * (n % 5) + bytes([n]))
            for n in range(40)]


def _check_frames(backend: ModuleType) -> str:
    frames = _sample_frames()
    encoded = backend.encode_frames(frames)
    _expect(backend.decode_frames(encoded) == frames, "batch decode differs")
    decoder = backend.FrameDecoder()
    streamed = [frame for index in range(len(encoded))
                for frame in decoder.feed(encoded[index:index + 1])]
    _expect(streamed == frames, "byte-at-a-time decode differs")
    _expect_raises(FrameError, lambda: backend.decode_frames(b"\xff" * 64),
                   "garbage decoded without FrameError")
    _expect_raises(FrameError, lambda: backend.decode_frames(encoded[:-1]),
                   "truncated input decoded without FrameError")
    return f"{len(frames)} frames, {len(encoded)} bytes"


def _check_tunnel(backend: ModuleType) -> str:
    key_a, key_b = bytes(range(32)), bytes(range(32, 64))
    sender, receiver = backend.Tunnel(key_a, key_b), backend.Tunnel(key_b, key_a)
    frames = _sample_frames()
    sealed = bytes(sender.seal_frames(frames))
    _expect(receiver.open_frames(sealed) == frames, "opened frames differ")
    _expect_raises(ReplayError, lambda: receiver.open_frames(sealed),
                   "replayed records accepted")
    tampered = bytearray(bytes(sender.seal_frames(frames[:1])))
    tampered[-1] ^= 1
    _expect_raises(AuthenticationError, lambda: receiver.open_frames(bytes(tampered)),
                   "tampered record accepted")
    sender.close()
    receiver.close()
    return f"{len(frames)} frames sealed, opened, replay and tamper refused"


def _check_replay(backend: ModuleType) -> str:
    window = backend.ReplayWindow()
    for counter in (5, 1, 3, 9000, 8999, 1000):
        window.check_and_update(counter)
    for counter in (5, 9000, 1):
        _expect_raises(ReplayError, lambda c=counter: window.check_and_update(c),
                       f"counter {counter} accepted twice or behind the window")
    return "reordering inside the window, duplicates and old counters refused"


def _check_route(backend: ModuleType) -> str:
    table = backend.RouteTable(64, 4)
    hop_a, hop_b = b"\xaa" * 16, b"\xbb" * 16
    destinations = [bytes([n]) * 16 for n in range(1, 33)]
    for n, node_id in enumerate(destinations):
        table.update(node_id, hop_a if n % 2 else hop_b, n, 10, 100 + n)
    _expect(table.update(destinations[0], hop_a, 50, 9, 500) is False, "older seq accepted")
    _expect(table.update(destinations[0], hop_a, 50, 11, 500) is True, "newer seq refused")
    _expect(table.withdraw(destinations[1], 10) is True, "withdrawal refused")
    _expect(table.lookup(destinations[0]) == Route(destinations[0], hop_a, 50, 11, 500),
            "lookup differs")
    packed = b"".join(destinations[:3]) + b"\x77" * 16
    _expect(table.next_hops(packed) == hop_a + NO_NEXT_HOP + hop_b + NO_NEXT_HOP,
            "next hops differ")
    _expect(table.expire(115) == 15, "expire removed the wrong number of routes")
    return f"{len(table)} routes after update, withdraw and expire"


def _route_history(backend: ModuleType) -> list[object]:
    """Outcomes of a fixed update sequence that fills a small table and its neighbours."""
    table = backend.RouteTable(16, 2)
    outcomes: list[object] = []
    for n in range(24):
        try:
            outcomes.append(table.update(bytes([n % 20]) * 16, bytes([1 + n % 3]) * 16, n % 4,
                                         n % 5, n))
        except Exception as exc:  # both sides must raise the same
            outcomes.append(f"{type(exc).__name__}: {exc}")
    outcomes.append(table.expire(6))
    outcomes.append(table.dump())
    return outcomes


def _check_twins_agree() -> str:
    key_a, key_b = bytes(range(32)), bytes(range(32, 64))
    frames = _sample_frames()
    records = {name: bytes(backend.Tunnel(key_a, key_b).seal_frames(frames))
               for name, backend in BACKENDS.items()}
    _expect(records["c"] == records["python"], "C and Python tunnels seal different bytes")
    _expect(_route_history(cbackend) == _route_history(pyref),
            "C and Python route tables differ")
    return f"{len(records['c'])} sealed bytes and a route table history identical"


def _checks() -> Iterator[tuple[str, Callable[[], str]]]:
    yield "core version", _check_version
    yield "libcrypto", _check_libcrypto
    for name, backend in BACKENDS.items():
        yield f"aes-gcm known answers ({name})", lambda b=backend: _check_gcm(b)
        yield f"signature, agreement, hkdf known answers ({name})", \
            lambda b=backend: _check_keys(b)
        yield f"frames round trip ({name})", lambda b=backend: _check_frames(b)
        yield f"tunnel round trip ({name})", lambda b=backend: _check_tunnel(b)
        yield f"replay window ({name})", lambda b=backend: _check_replay(b)
        yield f"route table ({name})", lambda b=backend: _check_route(b)
    yield "c and python agree", _check_twins_agree


def run_selftest() -> list[CheckResult]:
    results = []
    for name, check in _checks():
        try:
            results.append(CheckResult(name, True, check()))
        except Exception as exc:  # a broken core must be reported, not crash the report
            results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc}"))
    return results
