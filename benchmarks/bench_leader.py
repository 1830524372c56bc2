"""Leader failover and command round trips: N agent processes on loopback behind the real
web service (SQLite, TLS, in this process).

Measures
- failover: ``kill -9`` of the leader's process -> the web service has accepted the new
  leader's uplink (its login is fenced and attached), over ``--failovers`` kills; after
  each, the killed agent is restarted and the mesh settles before the next one;
- exactly once across them: a ``ping`` for every node is queued just before and just
  after each kill; every (command, node) must get one result (the killed node gets its
  own when it is back) and no node may admit a command twice (counted from the
  ``command_accepted`` lines of every agent's log, across restarts);
- round trip console -> service -> leader -> target -> back: ``POST /api/commands`` of a
  ping for one random node until the service has stored its signed result, p50/p99;
- throughput: ``--burst`` such commands submitted at once, results per second.
Baselines measured in the same run: a plain REST call to the same service (GET /api/info),
and one small durable write (write + fsync) in the same directory: a command's round trip
makes several (claim and result at the target, spool at the leader, queue and result rows
at the service), so it is reported in units of that write too.

    .venv/bin/python benchmarks/bench_leader.py [--nodes 20] [--failovers 20] [--json]
    .venv/bin/python benchmarks/bench_leader.py --quick --json     (CI smoke)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from meshagent.commands import Target
from meshagent.demo import AgentProcess
from meshagent.leaderlab import LAB_PASSWORD, LeaderLab

_ACCEPTED = re.compile(r"command_accepted .*?command_id=([0-9a-f]{32})")


def fsync_seconds(directory: Path, samples: int = 50) -> float:
    """Median time of writing and fsyncing 200 bytes to a fresh file in ``directory``."""
    times = []
    for index in range(samples):
        started = time.perf_counter()
        with open(directory / f"fsync-{index}", "wb") as handle:
            handle.write(b"x" * 200)
            handle.flush()
            os.fsync(handle.fileno())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Console:
    """The REST client side: login once, submit signed commands, time calls."""

    def __init__(self, lab: LeaderLab) -> None:
        self.lab = lab
        self.http: aiohttp.ClientSession | None = None
        self.headers = {"Authorization": f"Bearer {LAB_PASSWORD}"}

    async def __aenter__(self) -> Console:
        connector = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(self.lab.pin), limit=64)
        self.http = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()

    async def submit(self, wire: bytes) -> None:
        assert self.http is not None
        async with self.http.post(f"{self.lab.url}/api/commands", headers=self.headers,
                                  json={"command": base64.b64encode(wire).decode()}) as reply:
            if reply.status != 201:
                raise RuntimeError(f"submit refused: {reply.status} {await reply.text()}")

    async def info(self) -> None:
        assert self.http is not None
        async with self.http.get(f"{self.lab.url}/api/info") as reply:
            await reply.read()


class ResultWatch:
    """Futures completed when the service has stored results (event feed + database)."""

    def __init__(self, lab: LeaderLab) -> None:
        self.lab = lab
        self.waiting: dict[bytes, tuple[int, asyncio.Future[float]]] = {}
        self.task: asyncio.Task[None] | None = None

    def expect(self, command_id: bytes, count: int) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[command_id] = (count, future)
        return future

    async def run(self) -> None:
        async for topic in self.lab.service.events.subscribe():
            if topic != "results":
                continue
            for command_id, (count, future) in list(self.waiting.items()):
                if len(await self.lab.results(command_id)) >= count and not future.done():
                    future.set_result(time.perf_counter())
                    del self.waiting[command_id]


async def measure_failovers(lab: LeaderLab, watch: ResultWatch, count: int, nodes: int,
                            say) -> tuple[list[float], list[tuple[bytes, int]]]:
    times: list[float] = []
    expected: list[tuple[bytes, int]] = []
    session = await lab.settled(nodes)
    for round_no in range(count):
        before = lab.command(Target.all(), "ping", {"echo": f"before-{round_no}"})
        await lab.submit(before)
        expected.append((before.envelope().id, nodes))
        victim: AgentProcess = lab.agent_of(session.node_id)
        old_term = session.term
        victim.kill()
        killed = time.perf_counter()
        after = lab.command(Target.all(), "ping", {"echo": f"after-{round_no}"})
        await lab.submit(after)
        expected.append((after.envelope().id, nodes))
        while True:
            current = lab.service.leader_of(lab.mesh_id)
            if current is not None and current.term > old_term:
                break
            if time.perf_counter() - killed > 30:
                raise TimeoutError("no new leader within 30 s")
            await asyncio.sleep(0.001)
        took = time.perf_counter() - killed
        times.append(took)
        say(f"  failover {round_no + 1}/{count}: {took * 1000:.0f} ms "
            f"(term {old_term} -> {current.term})")
        victim.start()
        await victim.wait_ready()
        session = await lab.settled(nodes, above_term=old_term)
    return times, expected


async def measure_round_trips(lab: LeaderLab, console: Console, watch: ResultWatch,
                              samples: int) -> list[float]:
    node_ids = list(lab.mesh.node_ids.values())
    rtts = []
    for _ in range(samples):
        command = lab.command(Target.node(random.choice(node_ids)), "ping")
        done = watch.expect(command.envelope().id, 1)
        started = time.perf_counter()
        await console.submit(command.to_wire())
        rtts.append(await asyncio.wait_for(done, 30) - started)
    return rtts


async def measure_burst(lab: LeaderLab, console: Console, watch: ResultWatch,
                        count: int) -> float:
    node_ids = list(lab.mesh.node_ids.values())
    commands = [lab.command(Target.node(random.choice(node_ids)), "ping")
                for _ in range(count)]
    futures = [watch.expect(c.envelope().id, 1) for c in commands]
    started = time.perf_counter()
    await asyncio.gather(*(console.submit(c.to_wire()) for c in commands))
    await asyncio.wait_for(asyncio.gather(*futures), 120)
    return count / (time.perf_counter() - started)


def admissions(lab: LeaderLab) -> Counter[tuple[str, str]]:
    """(node, command id) -> times admitted, from every agent's log (all its runs)."""
    counts: Counter[tuple[str, str]] = Counter()
    for node in lab.mesh.nodes:
        text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
        for command_id in _ACCEPTED.findall(text):
            counts[(node.name, command_id)] += 1
    return counts


async def bench(args: argparse.Namespace) -> dict[str, float | int]:
    say = print
    with tempfile.TemporaryDirectory(prefix="bench-leader-") as tmp:
        fsync_s = fsync_seconds(Path(tmp))
        lab = LeaderLab.create(Path(tmp) / "mesh", args.nodes, service_port=args.port,
                               agent_port=17946, first_address=random.randrange(2, 50_000),
                               log_level="info")
        await lab.start_service()
        watch = ResultWatch(lab)
        try:
            started = time.perf_counter()
            await lab.start_agents()
            watch.task = asyncio.create_task(watch.run())
            await lab.settled(args.nodes, timeout=120)
            say(f"{args.nodes} agents up, leader connected with the full inventory after "
                f"{time.perf_counter() - started:.1f}s")
            async with Console(lab) as console:
                baseline = []
                for _ in range(args.samples):
                    t0 = time.perf_counter()
                    await console.info()
                    baseline.append(time.perf_counter() - t0)
                rtts = await measure_round_trips(lab, console, watch, args.samples)
                say(f"round trip console -> service -> leader -> target -> back "
                    f"({args.samples} pings): p50 {percentile(rtts, 0.5) * 1000:.1f} ms, "
                    f"p99 {percentile(rtts, 0.99) * 1000:.1f} ms "
                    f"(plain REST call p50 {percentile(baseline, 0.5) * 1000:.1f} ms, one "
                    f"durable write {fsync_s * 1000:.1f} ms)")
                rate = await measure_burst(lab, console, watch, args.burst)
                say(f"throughput: {args.burst} commands at once -> {rate:.0f} commands/s")
            say(f"failover: kill -9 of the leader -> new leader accepted by the web service "
                f"({args.failovers} times):")
            times, expected = await measure_failovers(lab, watch, args.failovers, args.nodes,
                                                      say)
            lost = 0
            deadline = time.monotonic() + 60
            for command_id, count in expected:
                while len(await lab.results(command_id)) < count and \
                        time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                lost += count - len(await lab.results(command_id))
            twice = sum(1 for times_admitted in admissions(lab).values() if times_admitted > 1)
            say(f"failover p50 {statistics.median(times) * 1000:.0f} ms, max "
                f"{max(times) * 1000:.0f} ms; {len(expected)} commands x {args.nodes} nodes "
                f"across the failovers: {lost} results missing, {twice} run twice")
        finally:
            if watch.task is not None:
                watch.task.cancel()
            lab.stop_agents()
            await lab.stop_service()
    return {
        "nodes": args.nodes, "failovers": args.failovers,
        "failover_p50_s": round(statistics.median(times), 4),
        "failover_max_s": round(max(times), 4),
        "failover_mean_s": round(statistics.fmean(times), 4),
        "commands_lost": lost, "commands_run_twice": twice,
        "round_trip_p50_ms": round(percentile(rtts, 0.5) * 1000, 2),
        "round_trip_p99_ms": round(percentile(rtts, 0.99) * 1000, 2),
        "rest_call_p50_ms": round(percentile(baseline, 0.5) * 1000, 2),
        "round_trip_vs_rest_call": round(percentile(rtts, 0.5) / percentile(baseline, 0.5), 2),
        "fsync_ms": round(fsync_s * 1000, 2),
        "round_trip_in_fsyncs": round(percentile(rtts, 0.5) / fsync_s, 1),
        "commands_per_s": round(rate, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--failovers", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200, help="round trips measured")
    parser.add_argument("--burst", type=int, default=300, help="commands for throughput")
    parser.add_argument("--port", type=int, default=18443, help="web service port")
    parser.add_argument("--quick", action="store_true", help="small and short (CI smoke)")
    parser.add_argument("--json", action="store_true", help="one JSON object as last line")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.failovers, args.samples, args.burst = 5, 2, 30, 50
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result))
    return 0 if result["commands_lost"] == 0 and result["commands_run_twice"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
