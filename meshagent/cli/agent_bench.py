"""``meshagent bench``: a quick in-process throughput report of the core on this machine.

Seals and opens payloads cut into 1400-byte frames through one tunnel (one call per batch,
the data path's way), and resolves a batch of destinations in a route table, on the backend
``MESHAGENT_BACKEND`` selects. A few seconds at most; ``benchmarks/`` in the source tree has
the full measurements with baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from meshagent.core import BACKEND, CoreError, Frame, RouteTable, Tunnel

HELP = "measure seal, open and route lookup throughput of the core here"

FRAME_PAYLOAD = 1400
NODE_ID = 16


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=_positive, default=20,
                        help="batches of --frames frames to seal and open (default 20)")
    parser.add_argument("--frames", type=_positive, default=1000, help="frames per batch")
    parser.add_argument("--routes", type=_positive, default=100_000,
                        help="routes in the table and destinations per lookup batch")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def measure_tunnel(batches: int, frames_per_batch: int) -> tuple[float, float]:
    """(seal MB/s, open MB/s) of payload bytes: each batch is one payload cut into 1400-byte
    frames and sealed in one call (``seal_stream``), then opened in one call
    (``open_stream``), in order."""
    key_a, key_b = os.urandom(32), os.urandom(32)
    sender, receiver = Tunnel(key_a, key_b), Tunnel(key_b, key_a)
    payload = os.urandom(FRAME_PAYLOAD * frames_per_batch)
    template = Frame(type=1, src=b"\x01" * NODE_ID, dst=b"\x02" * NODE_ID)
    started = time.perf_counter()
    sealed = [sender.seal_stream(template, payload, FRAME_PAYLOAD) for _ in range(batches)]
    seal_s = time.perf_counter() - started
    started = time.perf_counter()
    opened = [receiver.open_stream(records) for records in sealed]
    open_s = time.perf_counter() - started
    if any(bytes(data) != payload for data in opened):
        raise CoreError("opened payload differs from the sealed one")
    sender.close()
    receiver.close()
    megabytes = batches * len(payload) / 1e6
    return megabytes / seal_s, megabytes / open_s


def measure_routes(routes: int) -> float:
    """Batch lookups per second over a table of ``routes`` random destinations."""
    table = RouteTable(routes)
    ids = os.urandom(routes * NODE_ID)
    hops = [os.urandom(NODE_ID) for _ in range(64)]
    for index in range(routes):
        table.update(ids[index * NODE_ID:(index + 1) * NODE_ID], hops[index % 64], 1, 1,
                     0xFFFFFFFF)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        table.next_hops(ids)
        best = min(best, time.perf_counter() - started)
    return routes / best


def run(args: argparse.Namespace) -> int:
    seal_mbps, open_mbps = measure_tunnel(args.batches, args.frames)
    lookups = measure_routes(args.routes)
    figures = {"backend": BACKEND, "seal_1400_mbps": round(seal_mbps, 1),
               "open_1400_mbps": round(open_mbps, 1),
               "route_batch_lookups_per_s": round(lookups)}
    print(f"core backend {BACKEND}")
    print(f"  seal 1400-byte frames  {seal_mbps:10.1f} MB/s")
    print(f"  open 1400-byte frames  {open_mbps:10.1f} MB/s")
    print(f"  route lookups          {lookups / 1e6:10.2f} M/s  ({args.routes} routes, batched)")
    if args.json:
        print(json.dumps(figures))
    return 0
