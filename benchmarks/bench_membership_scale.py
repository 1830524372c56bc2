"""Membership at scale: 1,000 and 5,000 members in one process, in protocol rounds.

Runs ``meshagent.membership.simulation.run_scale`` for each size: all members start at
once on the in-memory network (each seeded with one earlier member) under a virtual
clock, then one member crashes, then one member updates its record. Reports protocol
time and probe rounds until every member agrees, plus the wall-clock cost of simulating
it and the process's peak resident memory. Pair-key agreement is simulated and per-peer
state is lean (see the module: simulation only); sealing, signatures and the protocol
are real. The baseline in the same run is the classic SWIM bound for dissemination,
ceil(log2 n) gossip rounds.

    .venv/bin/python benchmarks/bench_membership_scale.py [--quick] [--json]
        [--sizes 1000,5000] [--profile lan|local|wan] [--real-keys] [--no-lean]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from meshagent.membership.simulation import run_scale
from meshagent.profiles import Profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 300 members (CI)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated member counts")
    parser.add_argument("--profile", default="lan", help="timing profile (lan, local, wan)")
    parser.add_argument("--real-keys", action="store_true",
                        help="real X25519 + HKDF pair keys (slow beyond a few hundred)")
    parser.add_argument("--no-lean", action="store_true",
                        help="per-member copies and 1 KiB replay windows (memory baseline)")
    parser.add_argument("--limit-s", type=float, default=300.0,
                        help="give up after this much protocol time per scenario")
    args = parser.parse_args(argv)
    sizes = [100, 300] if args.quick else [int(size) for size in args.sizes.split(",")]
    profile = Profile.named(args.profile)
    summary: dict[str, float | int | str | bool] = {"profile": profile.name,
                                                    "lean": not args.no_lean}
    started = time.perf_counter()
    for size in sizes:
        def progress(line: str, size: int = size) -> None:
            print(f"  n={size}: {line} ({time.perf_counter() - started:.0f} s wall)",
                  flush=True)

        result = run_scale(size, profile=profile, real_keys=args.real_keys,
                           lean=not args.no_lean, limit_s=args.limit_s, progress=progress)
        row = result.to_dict()
        gossip_bound = math.ceil(math.log2(size)) * profile.gossip_interval_s
        print(f"n={size}: join {row['join_s']} s ({row['join_rounds']} probe rounds), "
              f"crash seen by all {row['failure_s']} s ({row['failure_rounds']} rounds), "
              f"record update everywhere {row['update_s']} s ({row['update_rounds']} rounds); "
              f"log2(n) gossip rounds = {gossip_bound:.2f} s; "
              f"{row['datagrams_per_member_s']} datagrams/member/s; "
              f"simulated in {row['wall_s']} s ({row['cpu_s']} s CPU), "
              f"peak RSS {row['peak_rss_mib']} MiB")
        for key in ("join_s", "join_rounds", "failure_s", "failure_rounds", "update_s",
                    "update_rounds", "wall_s", "cpu_s", "datagrams_per_member_s", "peak_rss_mib",
                    "dropped_replay"):
            summary[f"n{size}_{key}"] = row[key]
        summary[f"n{size}_log2_gossip_s"] = round(gossip_bound, 3)
        summary[f"n{size}_failure_vs_log2_gossip"] = round(row["failure_s"] / gossip_bound, 2)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
