"""Tunnel end to end: two processes, loopback TCP, sealed transfer against plaintext.

    python benchmarks/bench_tunnel.py [--quick] [--json] [--mib N] [--runs N]
                                      [--frame-bytes N] [--chunk-bytes N]

A sender process and a receiver process move the same payload over loopback TCP, once in
plaintext and once sealed, in pairs (plaintext and sealed interleaved, the order
alternating from pair to pair so drifting background load hits both alike). Both modes
run the same socket loop with the same chunk and read sizes: the sender ``sendall``s
chunks of ``--chunk-bytes``, the receiver ``recv_into``s a reused buffer. Sealed, the
sender seals each chunk as frames of ``--frame-bytes`` into one reused buffer
(``BulkSealer``: ``Tunnel.seal_stream_into``) and the receiver opens every whole record
of each read in one call into one reused buffer (``BulkOpener``:
``Tunnel.open_stream_into``: replay window, tag checks, partial records kept across
reads). The clock runs from the sender's first byte until the receiver confirms the byte
count.

Reported per mode (medians over the pairs): payload MB/s (10^6 bytes/s) and each end's
CPU seconds per GiB (user + system, from ``getrusage`` in each process around its
transfer loop); and the median over the pairs of the wall-clock ratio sealed / plaintext.
On a machine whose cores are busy with other work, the wall-clock ratio tracks the ratio
of CPU the two transfers need (each end gets a share of a core, not a core), so the CPU
figures are the ones that compare across runs; the load average is reported with them,
and ``core_bound_sealed_vs_plain`` estimates the ratio with a core per end (busiest end
of plaintext over busiest end of sealed, CPU per GiB). With ``--json`` the last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Protocol

from meshagent.core import Frame, Tunnel
from meshagent.core.bulk import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_FRAME_PAYLOAD_BYTES,
    BulkOpener,
    BulkSealer,
)

GIB = 1 << 30
KEY_A, KEY_B = bytes(range(32)), bytes(range(32, 64))
TEMPLATE = Frame(type=1, src=b"a" * 16, dst=b"b" * 16, channel=1)
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # same for both modes: lets the two ends overlap
CONFIRM = struct.Struct(">Q")  # payload bytes the receiver took
MODES = ("plain", "sealed")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Outbound(Protocol):
    def seal(self, chunk: memoryview) -> memoryview: ...


class Inbound(Protocol):
    def space(self) -> memoryview: ...
    def received(self, count: int) -> memoryview: ...
    def finish(self) -> None: ...


class PlainOutbound:
    """The plaintext baseline's stand-in for BulkSealer: chunks go out as they are."""

    def seal(self, chunk: memoryview) -> memoryview:
        return chunk


class PlainInbound:
    """The plaintext baseline's stand-in for BulkOpener: one reused read buffer."""

    def __init__(self, read_bytes: int) -> None:
        self._view = memoryview(bytearray(read_bytes))

    def space(self) -> memoryview:
        return self._view

    def received(self, count: int) -> memoryview:
        return self._view[:count]

    def finish(self) -> None:
        pass


def receive(mode: str, read_bytes: int) -> int:
    """Receiver process: print the port, take one connection to its end, confirm the byte
    count to the sender, print its figures as JSON."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        print(server.getsockname()[1], flush=True)
        conn, _ = server.accept()
    with conn:
        inbound: Inbound = (BulkOpener(Tunnel(KEY_B, KEY_A), read_bytes=read_bytes)
                            if mode == "sealed" else PlainInbound(read_bytes))
        received = 0
        cpu_start = cpu_seconds()
        while count := conn.recv_into(inbound.space()):
            received += len(inbound.received(count))
        inbound.finish()
        cpu = cpu_seconds() - cpu_start
        conn.sendall(CONFIRM.pack(received))
    print(json.dumps({"received": received, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib()}))
    return 0


def send(mode: str, port: int, total: int, chunk_bytes: int, frame_bytes: int) -> int:
    """Sender process: send ``total`` payload bytes, wait for the confirmation, print the
    wall time and its figures as JSON."""
    chunk = memoryview(os.urandom(chunk_bytes))
    outbound: Outbound = (BulkSealer(Tunnel(KEY_A, KEY_B), TEMPLATE,
                                     frame_payload_bytes=frame_bytes, chunk_bytes=chunk_bytes)
                          if mode == "sealed" else PlainOutbound())
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        sock.connect(("127.0.0.1", port))
        start, cpu_start = time.perf_counter(), cpu_seconds()
        sent = 0
        while sent < total:
            piece = chunk[:min(chunk_bytes, total - sent)]
            sock.sendall(outbound.seal(piece))
            sent += len(piece)
        sock.shutdown(socket.SHUT_WR)
        confirm = sock.recv(CONFIRM.size, socket.MSG_WAITALL)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    if len(confirm) != CONFIRM.size or CONFIRM.unpack(confirm)[0] != total:
        print(f"{mode}: receiver confirmed {confirm!r}, not {total} bytes", file=sys.stderr)
        return 1
    print(json.dumps({"wall_s": elapsed, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib()}))
    return 0


def child(*arguments: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *map(str, arguments)],
                            stdout=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str], role: str) -> dict[str, float]:
    out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"{role} process failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def transfer(mode: str, total: int, chunk_bytes: int, frame_bytes: int) -> dict[str, float]:
    """One transfer in ``mode`` between two fresh processes; its figures."""
    receiver = child("--receive", mode, "--chunk-bytes", chunk_bytes)
    try:
        port = int(receiver.stdout.readline())  # type: ignore[union-attr]
        sender = finished(child("--send", mode, "--port", port, "--total", total,
                                "--chunk-bytes", chunk_bytes, "--frame-bytes", frame_bytes),
                          "sender")
    finally:
        got = finished(receiver, "receiver")
    gib = total / GIB
    return {"mbps": total / sender["wall_s"] / 1e6,
            "sender_cpu_s_per_gib": sender["cpu_s"] / gib,
            "receiver_cpu_s_per_gib": got["cpu_s"] / gib,
            "sender_peak_rss_mib": sender["peak_rss_mib"],
            "receiver_peak_rss_mib": got["peak_rss_mib"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, 3 pairs")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--mib", type=int, help="payload per transfer, MiB (default 1024)")
    parser.add_argument("--runs", type=int, help="plaintext/sealed pairs (default 5)")
    parser.add_argument("--frame-bytes", type=int, default=DEFAULT_FRAME_PAYLOAD_BYTES,
                        help=f"payload bytes per sealed frame "
                             f"(default {DEFAULT_FRAME_PAYLOAD_BYTES})")
    parser.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES,
                        help=f"bytes per send and per read, both modes "
                             f"(default {DEFAULT_CHUNK_BYTES})")
    parser.add_argument("--receive", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--send", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receive:
        return receive(args.receive, args.chunk_bytes)
    if args.send:
        return send(args.send, args.port, args.total, args.chunk_bytes, args.frame_bytes)

    total = (args.mib or (64 if args.quick else 1024)) * 1024 * 1024
    pairs = args.runs or (3 if args.quick else 5)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    ratios = []
    for pair in range(pairs):
        for mode in MODES if pair % 2 == 0 else reversed(MODES):
            run = transfer(mode, total, args.chunk_bytes, args.frame_bytes)
            runs[mode].append(run)
            print(f"{mode:6s}: {total >> 20} MiB at {run['mbps']:7.1f} MB/s; CPU per GiB: "
                  f"sender {run['sender_cpu_s_per_gib']:.3f} s, "
                  f"receiver {run['receiver_cpu_s_per_gib']:.3f} s", flush=True)
        ratios.append(runs["sealed"][-1]["mbps"] / runs["plain"][-1]["mbps"])
    load_after = os.getloadavg()[0]

    def median(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[mode])

    figures: dict[str, float] = {
        "payload_mib": total >> 20, "frame_bytes": args.frame_bytes,
        "chunk_bytes": args.chunk_bytes, "pairs": pairs,
        "sealed_vs_plain": round(statistics.median(ratios), 3),
        "sealed_vs_plain_min": round(min(ratios), 3),
        "sealed_vs_plain_max": round(max(ratios), 3),
        "load_average_1min": round((load_before + load_after) / 2, 2),
    }
    for mode in MODES:
        figures[f"{mode}_mbps"] = round(median(mode, "mbps"), 1)
        for end in ("sender", "receiver"):
            figures[f"{mode}_{end}_cpu_s_per_gib"] = round(
                median(mode, f"{end}_cpu_s_per_gib"), 3)
            figures[f"{mode}_{end}_peak_rss_mib"] = round(
                max(run[f"{end}_peak_rss_mib"] for run in runs[mode]), 1)
    cpu = {mode: figures[f"{mode}_sender_cpu_s_per_gib"] + figures[f"{mode}_receiver_cpu_s_per_gib"]
           for mode in MODES}
    figures["sealed_cpu_over_plain"] = round(cpu["sealed"] / cpu["plain"], 2)
    # Each end with a core of its own, the busier end sets the pace: an estimate of the
    # wall-clock ratio on an idle machine, from the CPU figures of this loaded one.
    busiest = {mode: max(figures[f"{mode}_sender_cpu_s_per_gib"],
                         figures[f"{mode}_receiver_cpu_s_per_gib"]) for mode in MODES}
    figures["core_bound_sealed_vs_plain"] = round(busiest["plain"] / busiest["sealed"], 3)
    print(f"sealed / plaintext, wall clock: median {figures['sealed_vs_plain']:.0%} "
          f"(range {figures['sealed_vs_plain_min']:.0%} to {figures['sealed_vs_plain_max']:.0%}"
          f" over {pairs} pairs); medians plaintext {figures['plain_mbps']} MB/s, sealed "
          f"{figures['sealed_mbps']} MB/s; load average {figures['load_average_1min']}")
    print(f"CPU per GiB (sender + receiver): plaintext {cpu['plain']:.3f} s, sealed "
          f"{cpu['sealed']:.3f} s ({figures['sealed_cpu_over_plain']}x); busiest end "
          f"plaintext {busiest['plain']:.3f} s, sealed {busiest['sealed']:.3f} s: "
          f"{figures['core_bound_sealed_vs_plain']:.0%} with a core per end")
    print(f"peak RSS sealed: sender {figures['sealed_sender_peak_rss_mib']} MiB, receiver "
          f"{figures['sealed_receiver_peak_rss_mib']} MiB")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
