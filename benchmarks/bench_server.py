"""Web service at scale: simulated leaders over real loopback TLS WebSockets.

    python benchmarks/bench_server.py [--leaders 200] [--nodes 50] [--commands 1000]
                                      [--db sqlite|postgresql|both] [--quick] [--json]

The service runs as its own process (``meshagent server run``), exactly as deployed.
This process plays 200 meshes, each with one leader (the real ``Uplink``) reporting 50
nodes with real signed records: 10,000 nodes connected at once. While leaders send
inventory deltas (every node's last-seen refreshed about every ``--delta-s`` seconds),
commands signed by each mesh's operator are submitted through the REST API at a steady
rate, each to one node, and the time from the start of the POST to the command's
arrival at the target's leader is recorded, after 50 warm-up commands (the leaders answer
with signed results, so results are stored too). Reported per database back end: time
until every node is stored, dispatch latency p50/p99, and the service's resident memory.

Anchor (DESIGN.md): one 2-vCPU/4 GB MeshCentral server carries about 14,000 agents, i.e.
at most 4 GiB / 14,000 = 300 KiB per agent. ``memory_ratio_vs_anchor`` is that budget
divided by our service's resident memory per node (higher is better). PostgreSQL is
measured when ``MESHAGENT_BENCH_POSTGRES`` (or ``MESHAGENT_TEST_POSTGRES``) holds a DSN.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from meshagent.commands import Target
from meshagent.leaderlab import free_port
from meshagent.server.settings import ServerDirectory
from meshagent.server.testkit import SimulatedLeader, SimulatedMesh
from meshagent.uplink import NodeReport

ANCHOR_AGENTS = 14_000
ANCHOR_MEMORY_BYTES = 4 * 1024 ** 3
PASSWORD = "bench-password"
WARMUP_COMMANDS = 50


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def build_meshes(leaders: int, nodes: int) -> list[SimulatedMesh]:
    started = time.perf_counter()
    meshes = [SimulatedMesh.create(nodes, name=f"m{i:03d}", tags={"mesh": str(i)})
              for i in range(leaders)]
    print(f"made {leaders} meshes x {nodes} nodes (keys, certificates, signed records) "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    return meshes


def reset_postgres(dsn: str) -> None:
    """An empty database for the run (the benchmark owns the one it is given)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


class ServiceProcess:
    """``meshagent server run`` in a child process."""

    def __init__(self, directory: Path, db_url: str) -> None:
        self.directory = directory
        self.db_url = db_url
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> ServiceProcess:
        # The service's log goes to a file: a pipe nobody reads would fill up and stall it.
        self.log_path = self.directory / "service.log"
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meshagent.cli.main", "server", "run", "--dir",
                 str(self.directory), "--db", self.db_url, "--listen",
                 f"127.0.0.1:{self.port}"],
                stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("service did not start listening")

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if exc[0] is not None:
            print(f"service log tail:\n{self.log_path.read_text()[-3000:]}", file=sys.stderr)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def rss_bytes(self) -> int:
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss

    def cpu_s(self) -> float:
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


async def stored_nodes(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/api/meshes") as response:
        meshes = await response.json()
    return sum(m["nodes"].get("alive", 0) for m in meshes)


async def deltas(leader: SimulatedLeader, period_s: float, stop: asyncio.Event) -> int:
    """Refresh every node's last-seen about once per ``period_s``, a few nodes at a time."""
    sent = 0
    nodes = leader.mesh.nodes
    batch = max(1, len(nodes) // 10)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), random.uniform(0.5, 1.5) * period_s / 10)
        except TimeoutError:
            pass
        assert leader.uplink is not None
        picked = random.sample(nodes, batch)
        if await leader.uplink.report([NodeReport(n.node_id, "alive", time.time())
                                       for n in picked]):
            sent += len(picked)
    return sent


async def measure(db_name: str, db_url: str, meshes: list[SimulatedMesh], args: argparse.Namespace,
                  workdir: Path) -> dict[str, Any]:
    directory = workdir / f"server-{db_name}"
    ServerDirectory.init(directory, ["127.0.0.1"], PASSWORD)
    settings = ServerDirectory.load(directory)
    for i, mesh in enumerate(meshes):
        settings.meshes.append({"mesh": mesh.mesh_id.hex(), "root": mesh.root.key.public.hex(),
                                "name": f"mesh-{i:03d}", "console_cert": None})
    settings.save()
    pin = settings.cert_pin
    total_nodes = sum(len(m.nodes) for m in meshes)

    async with ServiceProcess(directory, db_url) as service:
        url = f"https://127.0.0.1:{service.port}"
        idle_rss = service.rss_bytes()
        connector = aiohttp.TCPConnector(ssl=aiohttp.Fingerprint(pin), limit=64)
        async with aiohttp.ClientSession(connector=connector,
                                         headers={"Authorization": f"Bearer {PASSWORD}"}) as http:
            started = time.perf_counter()
            leaders = [SimulatedLeader(m, f"wss://127.0.0.1:{service.port}/uplink", pin,
                                       workdir / f"spool-{db_name}-{i}", term=1, answer=True,
                                       backoff_min_s=0.2, backoff_max_s=2.0)
                       for i, m in enumerate(meshes)]
            for leader in leaders:
                leader.start()
            await asyncio.gather(*(leader.connected(timeout=120) for leader in leaders))
            connected_s = time.perf_counter() - started
            while await stored_nodes(http, url) < total_nodes:
                if time.perf_counter() - started > 300:
                    raise RuntimeError("inventory did not arrive")
                await asyncio.sleep(0.2)
            inventory_s = time.perf_counter() - started
            loaded_rss = service.rss_bytes()
            print(f"[{db_name}] {len(leaders)} leaders connected in {connected_s:.1f} s; "
                  f"{total_nodes} nodes stored after {inventory_s:.1f} s; "
                  f"service RSS {loaded_rss / 2**20:.0f} MiB", flush=True)

            stop = asyncio.Event()
            delta_tasks = [asyncio.create_task(deltas(leader, args.delta_s, stop))
                           for leader in leaders]
            latencies, submitted = await submit_commands(http, url, leaders, args)
            cpu_before = service.cpu_s()
            stop.set()
            delta_nodes = sum(await asyncio.gather(*delta_tasks))
            final_rss = service.rss_bytes()
            for leader in leaders:
                await leader.stop()
    rss_per_node = final_rss / total_nodes
    result = {
        "leaders": len(meshes), "nodes": total_nodes,
        "connect_all_s": round(connected_s, 2), "inventory_all_s": round(inventory_s, 2),
        "commands": len(latencies), "commands_submitted": submitted,
        "dispatch_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "dispatch_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "dispatch_max_ms": round(max(latencies) * 1000, 2),
        "delta_node_updates": delta_nodes,
        "service_idle_rss_mb": round(idle_rss / 2**20, 1),
        "service_rss_mb": round(final_rss / 2**20, 1),
        "rss_per_node_kb": round(rss_per_node / 1024, 2),
        "marginal_rss_per_node_kb": round((final_rss - idle_rss) / total_nodes / 1024, 2),
        "memory_ratio_vs_anchor": round((ANCHOR_MEMORY_BYTES / ANCHOR_AGENTS) / rss_per_node, 1),
        "service_cpu_s": round(cpu_before, 1),
    }
    print(f"[{db_name}] {len(latencies)} commands at {args.rate}/s: dispatch p50 "
          f"{result['dispatch_p50_ms']} ms, p99 {result['dispatch_p99_ms']} ms; "
          f"RSS {result['service_rss_mb']} MiB = {result['rss_per_node_kb']} KiB/node "
          f"({result['memory_ratio_vs_anchor']}x under MeshCentral's "
          f"{ANCHOR_MEMORY_BYTES / ANCHOR_AGENTS / 1024:.0f} KiB/agent)", flush=True)
    return result


async def submit_commands(http: aiohttp.ClientSession, url: str,
                          leaders: list[SimulatedLeader],
                          args: argparse.Namespace) -> tuple[list[float], int]:
    """Submit ``args.commands`` commands at ``args.rate`` per second; latencies in s of all
    but the first ``WARMUP_COMMANDS`` (which open the HTTPS connections of the pool)."""
    latencies: list[float] = []
    pending: list[asyncio.Task[None]] = []

    async def one(leader: SimulatedLeader) -> None:
        node = random.choice(leader.mesh.nodes)
        signed = leader.mesh.command(Target.node(node.node_id))
        arrival = leader.awaited[signed.envelope().id] = asyncio.get_running_loop().create_future()
        body = {"command": base64.b64encode(signed.to_wire()).decode()}
        started = time.perf_counter()
        async with http.post(f"{url}/api/commands", json=body) as response:
            if response.status != 201:
                raise RuntimeError(f"submit failed: {await response.text()}")
        latencies.append(await asyncio.wait_for(arrival, 30) - started)

    interval = 1.0 / args.rate
    start = time.perf_counter()
    for i in range(args.commands):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(random.choice(leaders))))
    await asyncio.gather(*pending)
    return latencies[WARMUP_COMMANDS:], len(pending)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    meshes = build_meshes(args.leaders, args.nodes)
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    report: dict[str, Any] = {"leaders": args.leaders, "nodes": args.leaders * args.nodes,
                              "anchor_kb_per_agent": round(
                                  ANCHOR_MEMORY_BYTES / ANCHOR_AGENTS / 1024, 1)}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            if backend == "sqlite":
                url = f"sqlite://{workdir}/service.db"
            else:
                url = os.environ.get("MESHAGENT_BENCH_POSTGRES") or os.environ.get(
                    "MESHAGENT_TEST_POSTGRES", "")
                if not url:
                    print("[postgresql] skipped: set MESHAGENT_BENCH_POSTGRES to a DSN")
                    report["postgresql_skipped"] = True
                    continue
                reset_postgres(url)
            result = await measure(backend, url, meshes, args, workdir)
            report.update({f"{backend}_{key}": value for key, value in result.items()
                           if key not in ("leaders", "nodes")})
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaders", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=50, help="nodes per leader")
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="commands per second")
    parser.add_argument("--delta-s", type=float, default=10.0,
                        help="each node's last-seen is refreshed about this often")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="20 leaders x 10 nodes, SQLite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.leaders, args.nodes, args.commands, args.db = 20, 10, 150, "sqlite"
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
