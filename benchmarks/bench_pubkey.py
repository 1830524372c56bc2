"""What each member costs a joining agent: signature checks, key agreement, key derivation.

    python benchmarks/bench_pubkey.py [--quick] [--json]

An agent that learns of a member checks two Ed25519 signatures (the member's certificate
and its record), agrees an X25519 secret with it and derives their pair keys with
HKDF-SHA256 (``membership/sealing.py``). Measured here, per call on one core, on the C
core (OpenSSL's EVP) and on the pure-Python twin (pycryptodome) in the same run:

- ``ed25519_verify`` of a 600-byte message (about a node record's size);
- ``X25519Private.exchange`` with a peer's public key;
- ``hkdf_sha256`` of a 32-byte secret into 64 bytes (a pair's two keys);
- and their sum per member learnt: two checks, one agreement, one derivation.

Figures are microseconds per call (keys ending in ``_us``), the best of repeated timed
loops; ``*_python_vs_c`` = the twin's time / the core's (above 1: the core is faster).
With ``--json`` the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from types import ModuleType

from meshagent.core import cbackend, pyref
from meshagent.core.openssl import openssl_build
from meshagent.signing import SigningKey


def per_call_us(call: Callable[[], object], seconds: float) -> float:
    """Microseconds per call of ``call``: the best of timed loops of 50 calls."""
    call()  # warm up: imports, key caches
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        for _ in range(50):
            call()
        best = min(best, (time.perf_counter() - start) / 50)
        if time.perf_counter() > deadline:
            return best * 1e6


def measure(backend: ModuleType, seconds: float) -> dict[str, float]:
    key = SigningKey.generate()
    message = os.urandom(600)
    signature = key.sign_raw(message)
    assert backend.ed25519_verify(key.public, message, signature)
    private = backend.X25519Private(os.urandom(32))
    peer = backend.X25519Private(os.urandom(32)).public
    secret, salt, info = os.urandom(32), os.urandom(16), b"meshagent/datagram" + bytes(32)
    figures = {
        "ed25519_verify_us": per_call_us(
            lambda: backend.ed25519_verify(key.public, message, signature), seconds),
        "x25519_us": per_call_us(lambda: private.exchange(peer), seconds),
        "hkdf_us": per_call_us(lambda: backend.hkdf_sha256(secret, 64, salt, info), seconds),
    }
    figures["per_member_us"] = (2 * figures["ed25519_verify_us"] + figures["x25519_us"]
                                + figures["hkdf_us"])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs for CI smoke tests")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    seconds = 0.2 if args.quick else 1.0

    figures: dict[str, float | str] = {"core_libcrypto": openssl_build().describe()}
    print(f"core's libcrypto: {figures['core_libcrypto']}")
    results = {"c": measure(cbackend, seconds), "python": measure(pyref, seconds)}
    for name, c_us in results["c"].items():
        python_us = results["python"][name]
        stem = name.removesuffix("_us")
        figures[f"{stem}_c_us"] = round(c_us, 1)
        figures[f"{stem}_python_us"] = round(python_us, 1)
        figures[f"{stem}_python_vs_c"] = round(python_us / c_us, 2)
        print(f"{stem:16s} C core {c_us:8.1f} us   pycryptodome twin {python_us:8.1f} us   "
              f"ratio {python_us / c_us:6.2f}")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
