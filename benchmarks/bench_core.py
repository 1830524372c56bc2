"""Throughput of the core's batch seal and open, against OpenSSL and the Python twin.

    python benchmarks/bench_core.py [--quick] [--json]

Measured in one run, on one core:
- ``openssl speed -evp aes-256-gcm`` at 1 KiB and 16 KiB (the ceiling for one core);
- the C core: batch seal of encoded frames (``Tunnel.seal_encoded``), stream seal
  (``seal_stream``), batch open (``open_stream``, payloads joined; ``open_frames``, one
  Frame object per frame) for 64-byte, 1400-byte and 16 KiB frames;
- the pure-Python twin (pycryptodome, one AES object per frame) on 1400-byte frames.

Rates are payload megabytes (10^6 bytes) per second; keys ending in ``_mbps`` carry them.
With ``--json`` the last line is one JSON object with every figure and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable

from meshagent.core import Frame, cbackend, pyref
from meshagent.core.openssl import openssl_build

FRAME_SIZES = {"64": 64, "1400": 1400, "16k": 16384}
BATCH_BYTES = 4 * 1024 * 1024  # payload bytes handed to C per call
KEY_A, KEY_B = bytes(range(32)), bytes(range(32, 64))
TEMPLATE = Frame(type=1, src=b"a" * 16, dst=b"b" * 16, channel=1)


def rate_mbps(call: Callable[[], object], payload_bytes: int, seconds: float) -> float:
    """Payload MB/s of ``call`` (which processes payload_bytes), best of repeated runs."""
    call()  # warm up caches and allocator
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            return payload_bytes / best / 1e6


def openssl_speed_mbps(block: int, seconds: int) -> float:
    """OpenSSL's own AES-256-GCM rate at ``block``-byte messages, in MB/s."""
    result = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", str(block),
         "-seconds", str(seconds)], capture_output=True, text=True, check=True)
    match = re.search(r"^AES-256-GCM\s+([\d.]+)k\s*$", result.stdout, re.M | re.I)
    if not match:
        raise RuntimeError(f"cannot parse openssl speed output:\n{result.stdout}")
    return float(match.group(1)) * 1000 / 1e6


def measure_c(frame_bytes: int, seconds: float) -> dict[str, float]:
    count = max(1, BATCH_BYTES // frame_bytes)
    payload = os.urandom(count * frame_bytes)
    sender = cbackend.Tunnel(KEY_A, KEY_B)
    plain = cbackend.encode_frames(
        Frame(type=1, src=TEMPLATE.src, dst=TEMPLATE.dst, seq=i,
              payload=payload[i * frame_bytes:(i + 1) * frame_bytes]) for i in range(count))
    sealed = sender.seal_stream(TEMPLATE, payload, frame_bytes)
    # Each open needs fresh counters: a receiver per run would measure setup too, so the
    # receiver opens records sealed for it in advance, cycling through distinct batches.
    batches = [sender.seal_stream(TEMPLATE, payload, frame_bytes) for _ in range(4)]

    def open_all(method: str) -> Callable[[], object]:
        def run() -> None:
            receiver = cbackend.Tunnel(KEY_B, KEY_A)
            for batch in batches:
                getattr(receiver, method)(batch)
        return run

    total = len(payload)
    return {
        "seal": rate_mbps(lambda: sender.seal_encoded(plain), total, seconds),
        "seal_stream": rate_mbps(lambda: sender.seal_stream(TEMPLATE, payload, frame_bytes),
                                 total, seconds),
        "open": rate_mbps(open_all("open_stream"), total * len(batches), seconds),
        "open_frames": rate_mbps(open_all("open_frames"), total * len(batches), seconds),
        "sealed_bytes": len(sealed),
    }


def measure_twin(frame_bytes: int, seconds: float) -> dict[str, float]:
    count = 2000
    payload = os.urandom(count * frame_bytes)
    sender = pyref.Tunnel(KEY_A, KEY_B)
    sealed = sender.seal_stream(TEMPLATE, payload, frame_bytes)

    def open_once() -> None:
        pyref.Tunnel(KEY_B, KEY_A).open_stream(sealed)

    return {
        "seal": rate_mbps(lambda: sender.seal_stream(TEMPLATE, payload, frame_bytes),
                          len(payload), seconds),
        "open": rate_mbps(open_once, len(payload), seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs for CI smoke tests")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    seconds = 0.2 if args.quick else 1.0

    figures: dict[str, float | str | bool] = {}
    # The ceiling is the `openssl` command's libcrypto; the core may link another (the
    # pinned static build): both are named, since AES-GCM speed is the library's.
    figures["core_libcrypto"] = openssl_build().describe()
    figures["openssl_command"] = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, check=True).stdout.strip()
    build = openssl_build()
    same = figures["openssl_command"].split()[:2] == build.running.split()[:2]
    figures["openssl_baseline_same_library"] = same
    print(f"core's libcrypto: {figures['core_libcrypto']}; "
          f"openssl command: {figures['openssl_command']}")
    if not same:
        print("note: the core runs another OpenSSL than the `openssl` command, so the "
              "ratios to `openssl speed` compare two libraries, not the core's overhead")
    openssl_1k = openssl_speed_mbps(1024, 1)
    openssl_16k = openssl_speed_mbps(16384, 1)
    figures["openssl_1k_mbps"] = round(openssl_1k, 1)
    figures["openssl_16k_mbps"] = round(openssl_16k, 1)
    print(f"openssl speed aes-256-gcm: {openssl_1k:8.1f} MB/s at 1 KiB, "
          f"{openssl_16k:8.1f} MB/s at 16 KiB")

    for name, size in FRAME_SIZES.items():
        c = measure_c(size, seconds)
        for key in ("seal", "seal_stream", "open", "open_frames"):
            figures[f"{key}_{name}_mbps"] = round(c[key], 1)
        print(f"C core, {size:5d}-byte frames: seal {c['seal']:8.1f}  seal_stream "
              f"{c['seal_stream']:8.1f}  open {c['open']:8.1f}  open_frames "
              f"{c['open_frames']:8.1f} MB/s")

    twin = measure_twin(1400, seconds)
    figures["twin_seal_1400_mbps"] = round(twin["seal"], 1)
    figures["twin_open_1400_mbps"] = round(twin["open"], 1)
    print(f"Python twin, 1400-byte frames: seal {twin['seal']:8.1f}  open "
          f"{twin['open']:8.1f} MB/s")

    figures["seal_1400_vs_openssl_1k"] = round(figures["seal_1400_mbps"] / openssl_1k, 3)
    figures["open_1400_vs_openssl_1k"] = round(figures["open_1400_mbps"] / openssl_1k, 3)
    figures["seal_1400_vs_twin"] = round(figures["seal_1400_mbps"] / twin["seal"], 1)
    figures["open_1400_vs_twin"] = round(figures["open_1400_mbps"] / twin["open"], 1)
    figures["peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"1400-byte frames: seal {figures['seal_1400_vs_openssl_1k']:.2f}x and open "
          f"{figures['open_1400_vs_openssl_1k']:.2f}x openssl speed at 1 KiB; "
          f"{figures['seal_1400_vs_twin']:.0f}x / {figures['open_1400_vs_twin']:.0f}x the "
          f"Python twin; peak RSS {figures['peak_rss_mib']} MiB")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
