"""Route table: batch lookups per second at one million routes, C against the Python twin.

Fills a C table (``meshagent.core.cbackend.RouteTable``) and the pure-Python twin with the
same random routes, then resolves batches of random known destinations with
``next_hops`` (the forwarding path: one call per batch) and with ``lookup_many`` (Route
objects). Reports the best of a few rounds, memory per route (allocated by the C table, and
resident growth while filling each table) and the process's peak resident memory.

    .venv/bin/python benchmarks/bench_route.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable

import psutil

from meshagent.core import NODE_ID_BYTES, cbackend, pyref

ID = NODE_ID_BYTES
NEIGHBOURS = 256


def best_seconds(call: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def rss() -> int:
    return psutil.Process().memory_info().rss


def fill(table: object, ids: bytes, hops: list[bytes]) -> float:
    """Insert one route per id; returns the seconds taken."""
    update = table.update  # type: ignore[attr-defined]
    started = time.perf_counter()
    for index in range(len(ids) // ID):
        update(ids[index * ID:(index + 1) * ID], hops[index % NEIGHBOURS], index % 64 + 1,
               index, 3600)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k routes, fewer rounds (CI)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)

    routes = 100_000 if args.quick else 1_000_000
    batch = routes
    # Best of several rounds: the figure is what the table can do, not what a busy machine
    # left over for it.
    rounds = 3 if args.quick else 10
    rng = random.Random(1)
    ids = rng.randbytes(routes * ID)
    hops = [rng.randbytes(ID) for _ in range(NEIGHBOURS)]
    order = list(range(routes))
    rng.shuffle(order)
    queries = b"".join(ids[i * ID:(i + 1) * ID] for i in order[:batch])
    query_list = [queries[i * ID:(i + 1) * ID] for i in range(min(batch, 100_000))]

    before = rss()
    c_table = cbackend.RouteTable(routes)
    c_fill_s = fill(c_table, ids, hops)
    c_rss_per_route = (rss() - before) / routes
    c_bytes_per_route = c_table.memory_bytes / routes

    expected = c_table.next_hops(queries)
    assert expected.count(bytes(ID)) == 0 or routes == 0, "every queried id must resolve"
    c_batch_s = best_seconds(lambda: c_table.next_hops(queries), rounds)
    c_many_s = best_seconds(lambda: c_table.lookup_many(query_list), rounds)

    before = rss()
    py_table = pyref.RouteTable(routes)
    py_fill_s = fill(py_table, ids, hops)
    py_rss_per_route = (rss() - before) / routes
    assert py_table.next_hops(queries) == expected, "C and Python twin disagree"
    py_batch_s = best_seconds(lambda: py_table.next_hops(queries), 3)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "routes": routes,
        "batch_lookups": batch,
        "route_batch_lookups_per_s": round(batch / c_batch_s),
        "route_lookup_many_per_s": round(len(query_list) / c_many_s),
        "python_batch_lookups_per_s": round(batch / py_batch_s),
        "ratio_vs_python": round(py_batch_s / c_batch_s, 1),
        "route_updates_per_s": round(routes / c_fill_s),
        "python_updates_per_s": round(routes / py_fill_s),
        "route_bytes_per_route": round(c_bytes_per_route, 1),
        "route_rss_bytes_per_route": round(c_rss_per_route, 1),
        "python_rss_bytes_per_route": round(py_rss_per_route, 1),
        "peak_rss_mb": round(peak_mb, 1),
    }
    print(f"route table, {routes} routes, batches of {batch} random known destinations "
          f"(cpu {os.cpu_count()}, best of {rounds})")
    print(f"  C next_hops       {summary['route_batch_lookups_per_s'] / 1e6:8.2f} M lookups/s")
    print(f"  C lookup_many     {summary['route_lookup_many_per_s'] / 1e6:8.2f} M lookups/s "
          "(Route objects)")
    print(f"  Python twin       {summary['python_batch_lookups_per_s'] / 1e6:8.2f} M lookups/s"
          f"   C is {summary['ratio_vs_python']}x")
    print(f"  updates           C {summary['route_updates_per_s'] / 1e6:.2f} M/s, "
          f"Python {summary['python_updates_per_s'] / 1e6:.2f} M/s (one call each)")
    print(f"  memory per route  C {c_bytes_per_route:.1f} B allocated, "
          f"{c_rss_per_route:.1f} B resident; Python {py_rss_per_route:.1f} B resident")
    print(f"  peak RSS          {peak_mb:.0f} MB")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
