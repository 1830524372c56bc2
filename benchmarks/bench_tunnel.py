"""Tunnel end to end: two processes, loopback TCP, sealed transfer against plaintext.

    python benchmarks/bench_tunnel.py [--quick] [--json] [--mib N] [--frame-bytes N]

The sender cuts each 1 MiB chunk into frames and seals them in one call
(``Tunnel.seal_stream``) before ``sendall``; the receiver reads into one reused buffer
and opens whatever whole records arrived (``Tunnel.feed_stream``: stream reassembly,
replay window, tag checks). The baseline moves the same bytes in plaintext through the
same sockets in the same run. The time runs from the sender's first byte until the
receiver confirms the byte count, so both ends' work is inside it.

Rates are payload megabytes (10^6 bytes) per second; with ``--json`` the last line is one
JSON object (``sealed_mbps``, ``plain_mbps``, ``sealed_vs_plain``, peak RSS of each end).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from typing import NamedTuple

from meshagent.core import Frame, Tunnel

CHUNK_BYTES = 1024 * 1024
RECV_BUFFER_BYTES = 4 * 1024 * 1024
KEY_A, KEY_B = bytes(range(32)), bytes(range(32, 64))
TEMPLATE = Frame(type=1, src=b"a" * 16, dst=b"b" * 16, channel=1)
REPLY = struct.Struct(">QQQ")  # payload bytes received, receiver peak RSS KiB, CPU µs
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # same for both modes: lets the two ends overlap


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receive(mode: str) -> int:
    """Receiver process: accept one connection, take everything, report what arrived."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        conn, _ = server.accept()
    with conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        buffer = bytearray(RECV_BUFFER_BYTES)
        view = memoryview(buffer)
        tunnel = Tunnel(KEY_B, KEY_A) if mode == "sealed" else None
        received = 0
        cpu_start = cpu_seconds()
        while True:
            n = conn.recv_into(buffer)
            if n == 0:
                break
            received += len(tunnel.feed_stream(view[:n])) if tunnel else n
        cpu_us = int((cpu_seconds() - cpu_start) * 1e6)
        conn.sendall(REPLY.pack(received, peak_rss_kib(), cpu_us))
    return 0


class Transfer(NamedTuple):
    mbps: float
    receiver_rss_kib: int
    sender_cpu_s: float
    receiver_cpu_s: float


def transfer(mode: str, total_bytes: int, frame_bytes: int) -> Transfer:
    """One transfer in ``mode``: payload MB/s, and what each end spent on it."""
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--receive", mode], stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline())  # type: ignore[union-attr]
        chunk = os.urandom(CHUNK_BYTES)
        tunnel = Tunnel(KEY_A, KEY_B) if mode == "sealed" else None
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
            start, cpu_start = time.perf_counter(), cpu_seconds()
            sent = 0
            while sent < total_bytes:
                piece = chunk[:min(CHUNK_BYTES, total_bytes - sent)]
                sock.sendall(tunnel.seal_stream(TEMPLATE, piece, frame_bytes) if tunnel
                             else piece)
                sent += len(piece)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while len(reply) < REPLY.size:
                more = sock.recv(REPLY.size - len(reply))
                if not more:
                    raise RuntimeError("receiver closed without a reply")
                reply += more
            elapsed, sender_cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
        received, receiver_rss, receiver_cpu_us = REPLY.unpack(reply)
        if received != total_bytes:
            raise RuntimeError(f"{mode}: receiver got {received} of {total_bytes} bytes")
        return Transfer(total_bytes / elapsed / 1e6, receiver_rss, sender_cpu,
                        receiver_cpu_us / 1e6)
    finally:
        if receiver.wait(timeout=60) != 0:
            raise RuntimeError(f"{mode} receiver failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--mib", type=int, help="payload to move, MiB (default 1024)")
    parser.add_argument("--frame-bytes", type=int, default=16384,
                        help="payload bytes per frame (default 16384)")
    parser.add_argument("--runs", type=int, default=2, help="transfers per mode; best kept")
    parser.add_argument("--receive", choices=["sealed", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receive:
        return receive(args.receive)

    total = (args.mib or (64 if args.quick else 1024)) * 1024 * 1024
    results: dict[str, Transfer] = {}
    for _ in range(args.runs):  # interleaved, so background load hits both modes alike
        for mode in ("plain", "sealed"):
            run = transfer(mode, total, args.frame_bytes)
            print(f"{mode:6s}: {total >> 20} MiB in {total / run.mbps / 1e6:6.2f} s, "
                  f"{run.mbps:8.1f} MB/s; CPU sender {run.sender_cpu_s:.2f} s, "
                  f"receiver {run.receiver_cpu_s:.2f} s")
            if mode not in results or run.mbps > results[mode].mbps:
                results[mode] = run
    figures: dict[str, float] = {
        "payload_mib": total >> 20,
        "frame_bytes": args.frame_bytes,
        "sender_peak_rss_mib": round(peak_rss_kib() / 1024, 1),
        "receiver_peak_rss_mib": round(
            max(run.receiver_rss_kib for run in results.values()) / 1024, 1),
    }
    for mode, run in results.items():
        figures[f"{mode}_mbps"] = round(run.mbps, 1)
        figures[f"{mode}_sender_cpu_s"] = round(run.sender_cpu_s, 3)
        figures[f"{mode}_receiver_cpu_s"] = round(run.receiver_cpu_s, 3)
    figures["sealed_vs_plain"] = round(results["sealed"].mbps / results["plain"].mbps, 3)
    print(f"sealed tunnel: {figures['sealed_vs_plain']:.0%} of plaintext over loopback TCP "
          f"({args.frame_bytes}-byte frames); peak RSS sender "
          f"{figures['sender_peak_rss_mib']} MiB, receiver {figures['receiver_peak_rss_mib']} MiB")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
