"""Tunnel end to end: two processes, loopback TCP, sealed transfer against plaintext.

    python benchmarks/bench_tunnel.py [--quick] [--json] [--mib N] [--runs N]
                                      [--frame-bytes N] [--chunk-bytes N] [--stream-api]

A sender process and a receiver process move the same payload over loopback TCP, once in
plaintext and once sealed, in rounds (plaintext and sealed interleaved, the order
reversed every other round so drifting background load hits both alike). Both modes
run the same socket loop with the same chunk and read sizes: the sender ``sendall``s
chunks of ``--chunk-bytes``, the receiver ``recv_into``s a reused buffer. Sealed, the
sender seals each chunk as frames of ``--frame-bytes`` into one reused buffer
(``BulkSealer``: ``Tunnel.seal_stream_into``) and the receiver opens every whole record
of each read in one call into one reused buffer (``BulkOpener``:
``Tunnel.open_stream_into``: replay window, tag checks, partial records kept across
reads). The clock runs from the sender's first byte until the receiver confirms the byte
count. ``--stream-api`` adds a third mode per round, the allocating calls
(``Tunnel.seal_stream`` per chunk, ``Tunnel.feed_stream`` per read: a new buffer each).

Reported per mode (medians over the rounds): payload MB/s (10^6 bytes/s) and each end's
CPU seconds per GiB (user + system, from ``getrusage`` in each process around its
transfer loop); and the median over the rounds of the wall-clock ratio sealed / plaintext.
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
MODES = ("plain", "sealed", "stream")


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


class StreamOutbound:
    """``--stream-api``: ``Tunnel.seal_stream``, a new buffer per chunk."""

    def __init__(self, frame_bytes: int) -> None:
        self._tunnel = Tunnel(KEY_A, KEY_B)
        self._frame_bytes = frame_bytes

    def seal(self, chunk: memoryview) -> memoryview:
        return memoryview(self._tunnel.seal_stream(TEMPLATE, chunk, self._frame_bytes))


class StreamInbound(PlainInbound):
    """``--stream-api``: ``Tunnel.feed_stream`` of each read, a new buffer per read."""

    def __init__(self, read_bytes: int) -> None:
        super().__init__(read_bytes)
        self._tunnel = Tunnel(KEY_B, KEY_A)

    def received(self, count: int) -> memoryview:
        return memoryview(self._tunnel.feed_stream(super().received(count)))


def outbound_for(mode: str, chunk_bytes: int, frame_bytes: int) -> Outbound:
    if mode == "sealed":
        return BulkSealer(Tunnel(KEY_A, KEY_B), TEMPLATE, frame_payload_bytes=frame_bytes,
                          chunk_bytes=chunk_bytes)
    return StreamOutbound(frame_bytes) if mode == "stream" else PlainOutbound()


def inbound_for(mode: str, read_bytes: int) -> Inbound:
    if mode == "sealed":
        return BulkOpener(Tunnel(KEY_B, KEY_A), read_bytes=read_bytes)
    return StreamInbound(read_bytes) if mode == "stream" else PlainInbound(read_bytes)


def receive(mode: str, read_bytes: int) -> int:
    """Receiver process: print the port, take one connection to its end, confirm the byte
    count to the sender, print its figures as JSON."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(60)  # the sender connects at once, or failed
        print(server.getsockname()[1], flush=True)
        conn, _ = server.accept()
        conn.settimeout(None)
    with conn:
        inbound = inbound_for(mode, read_bytes)
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
    outbound = outbound_for(mode, chunk_bytes, frame_bytes)
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
        got = finished(receiver, "receiver")
    finally:
        if receiver.poll() is None:  # the sender failed: do not wait for its peer
            receiver.kill()
            receiver.wait()
    gib = total / GIB
    return {"mbps": total / sender["wall_s"] / 1e6,
            "sender_cpu_s_per_gib": sender["cpu_s"] / gib,
            "receiver_cpu_s_per_gib": got["cpu_s"] / gib,
            "sender_peak_rss_mib": sender["peak_rss_mib"],
            "receiver_peak_rss_mib": got["peak_rss_mib"]}


def measure(modes: tuple[str, ...], rounds: int, total: int, chunk_bytes: int,
            frame_bytes: int) -> dict[str, list[dict[str, float]]]:
    """``rounds`` rounds of one transfer per mode, the order reversed every other round."""
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for index in range(rounds):
        for mode in modes if index % 2 == 0 else reversed(modes):
            run = transfer(mode, total, chunk_bytes, frame_bytes)
            runs[mode].append(run)
            print(f"{mode:6s}: {total >> 20} MiB at {run['mbps']:7.1f} MB/s; CPU per GiB: "
                  f"sender {run['sender_cpu_s_per_gib']:.3f} s, "
                  f"receiver {run['receiver_cpu_s_per_gib']:.3f} s", flush=True)
    return runs


def summarise(runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Medians per mode; for each sealed mode the median over the rounds of its wall-clock
    ratio to the plaintext transfer of the same round, and CPU comparisons."""
    figures: dict[str, float] = {}
    for mode, mode_runs in runs.items():
        figures[f"{mode}_mbps"] = round(statistics.median(r["mbps"] for r in mode_runs), 1)
        for end in ("sender", "receiver"):
            figures[f"{mode}_{end}_cpu_s_per_gib"] = round(
                statistics.median(r[f"{end}_cpu_s_per_gib"] for r in mode_runs), 3)
            figures[f"{mode}_{end}_peak_rss_mib"] = round(
                max(r[f"{end}_peak_rss_mib"] for r in mode_runs), 1)
    cpu = {mode: figures[f"{mode}_sender_cpu_s_per_gib"]
           + figures[f"{mode}_receiver_cpu_s_per_gib"] for mode in runs}
    # With a core per end the busier end sets the pace: busiest plaintext end over busiest
    # sealed end estimates the wall-clock ratio on an idle machine from a loaded one.
    busiest = {mode: max(figures[f"{mode}_sender_cpu_s_per_gib"],
                         figures[f"{mode}_receiver_cpu_s_per_gib"]) for mode in runs}
    for mode in runs:
        if mode == "plain":
            continue
        ratios = [r["mbps"] / p["mbps"] for r, p in zip(runs[mode], runs["plain"])]
        figures[f"{mode}_vs_plain"] = round(statistics.median(ratios), 3)
        figures[f"{mode}_vs_plain_min"] = round(min(ratios), 3)
        figures[f"{mode}_vs_plain_max"] = round(max(ratios), 3)
        figures[f"{mode}_cpu_over_plain"] = round(cpu[mode] / cpu["plain"], 2)
        figures[f"core_bound_{mode}_vs_plain"] = round(busiest["plain"] / busiest[mode], 3)
        print(f"{mode} / plaintext, wall clock: median {figures[f'{mode}_vs_plain']:.0%} "
              f"(range {min(ratios):.0%} to {max(ratios):.0%} over {len(ratios)} rounds); "
              f"medians {figures[f'{mode}_mbps']} against {figures['plain_mbps']} MB/s")
        print(f"  CPU per GiB, sender + receiver: {cpu[mode]:.3f} s against {cpu['plain']:.3f}"
              f" s ({figures[f'{mode}_cpu_over_plain']}x); busiest end {busiest[mode]:.3f} s "
              f"against {busiest['plain']:.3f} s: "
              f"{figures[f'core_bound_{mode}_vs_plain']:.0%} with a core per end")
        print(f"  peak RSS: sender {figures[f'{mode}_sender_peak_rss_mib']} MiB, receiver "
              f"{figures[f'{mode}_receiver_peak_rss_mib']} MiB")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB, 3 rounds")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--mib", type=int, help="payload per transfer, MiB (default 1024)")
    parser.add_argument("--runs", type=int, help="rounds of one transfer per mode (default 5)")
    parser.add_argument("--frame-bytes", type=int, default=DEFAULT_FRAME_PAYLOAD_BYTES,
                        help=f"payload bytes per sealed frame "
                             f"(default {DEFAULT_FRAME_PAYLOAD_BYTES})")
    parser.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES,
                        help=f"bytes per send and per read, every mode "
                             f"(default {DEFAULT_CHUNK_BYTES})")
    parser.add_argument("--stream-api", action="store_true",
                        help="also a third mode: seal_stream / feed_stream, new buffers")
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
    rounds = args.runs or (3 if args.quick else 5)
    modes = MODES if args.stream_api else MODES[:2]
    load_before = os.getloadavg()[0]
    runs = measure(modes, rounds, total, args.chunk_bytes, args.frame_bytes)
    figures: dict[str, float] = {
        "payload_mib": total >> 20, "frame_bytes": args.frame_bytes,
        "chunk_bytes": args.chunk_bytes, "rounds": rounds,
        "load_average_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
        **summarise(runs)}
    print(f"load average {figures['load_average_1min']} on {os.cpu_count()} CPUs")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
