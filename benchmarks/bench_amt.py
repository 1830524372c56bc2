"""Intel AMT: WS-Man operations per second against the software device, and the time to read
the 3PDS records of 100 sleeping nodes from 100 devices.

    python benchmarks/bench_amt.py [--quick] [--json] [--seconds 3] [--nodes 100]

The devices run in a child process (as a real AMT is another machine), the client here:
- ``raw_http_ops_per_s``: plain aiohttp POSTs to a server answering a fixed 1 KB body, the
  baseline for the HTTP stack both sides use;
- ``wsman_get_ops_per_s`` / ``_tls``: ``Get AMT_GeneralSettings`` with digest auth
  (nonce reused, nc counting), 8 requests in flight over 8 connections, HTTP and HTTPS;
- ``wsman_get_p50_ms``: one request at a time;
- ``tpds_read_100_nodes_s``: 100 devices, each a sleeping node with a 3 KB record in a
  3PDS block and a guest account (GeneralInfo + Storage). From cold (new clients: TCP
  connect, digest challenge) and all devices at once: read the power state, register,
  find the block, read it in 4 KB pieces, unregister. Goal: at most 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, TCPConnector, web

from amt import AmtClient, PowerAction, Realm, StorageApplication
from amt.device import SoftwareAmtDevice, TlsCertificate

ADMIN_PASSWORD = "Bench-admin1"
GUEST, GUEST_PASSWORD = "mesh-guest", "Bench-guest1"
APP = StorageApplication("meshagent", "node-record", "meshagent", bytes(range(16)))
RECORD_BYTES = 3000
BLOCK_BYTES = 4096
TPDS_GOAL_S = 2.0
IN_FLIGHT = 8


# ---- child process: the devices --------------------------------------------------------

async def _prepare_node(device: SoftwareAmtDevice, index: int) -> None:
    """Make ``device`` look like a mesh node that went to sleep after storing its record."""
    async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD) as amt:
        await amt.add_user_acl_entry(GUEST, GUEST_PASSWORD, [Realm.GENERAL_INFO, Realm.STORAGE])
        await amt.storage_admin.ensure_enterprise(APP.enterprise)
        async with await amt.storage.register(APP) as session:
            block = await session.allocate_block(BLOCK_BYTES, "meshagent-node")
            record = index.to_bytes(4, "big") + os.urandom(RECORD_BYTES - 4)
            await session.write_block(block, record)
        await amt.request_power_change(PowerAction.SLEEP)


async def _serve(mode: str, count: int) -> None:
    runners: list[web.AppRunner] = []
    devices: list[SoftwareAmtDevice] = []
    if mode == "raw":
        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=b"x" * 1024)
        app = web.Application()
        app.router.add_post("/wsman", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports = [runner.addresses[0][1]]
        extra: dict[str, str] = {}
    else:
        tls = None
        if mode == "tls":
            tls = TlsCertificate.generate(Path(tempfile.mkdtemp(prefix="bench-amt-tls-")))
        devices = [SoftwareAmtDevice(admin_password=ADMIN_PASSWORD, tls=tls,
                                     hostname=f"node{i}") for i in range(count)]
        await asyncio.gather(*(d.start() for d in devices))
        if mode == "fleet":
            await asyncio.gather(*(_prepare_node(d, i) for i, d in enumerate(devices)))
        ports = [d.port for d in devices]
        extra = {"cert_sha256": tls.sha256.hex()} if tls else {}
    print(json.dumps({"ports": ports, **extra}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await asyncio.gather(*(d.stop() for d in devices))
    for runner in runners:
        await runner.cleanup()


# ---- parent process: the client --------------------------------------------------------

class Child:
    """A serving child process; ``info`` is the JSON line it printed when ready."""

    def __init__(self, mode: str, count: int = 1) -> None:
        self.mode, self.count = mode, count

    async def __aenter__(self) -> dict:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", self.mode, "--count", str(self.count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 120)
        return json.loads(line)

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await asyncio.wait_for(self.process.wait(), 30)


async def _rate(call, seconds: float, in_flight: int) -> float:  # type: ignore[no-untyped-def]
    """Completed calls per second with ``in_flight`` concurrent workers."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - started)


async def raw_http_rate(seconds: float) -> float:
    async with Child("raw") as info:
        url = f"http://127.0.0.1:{info['ports'][0]}/wsman"
        async with ClientSession(connector=TCPConnector(limit=IN_FLIGHT)) as session:
            async def post() -> None:
                async with session.post(url, data=b"<x/>" * 256) as response:
                    await response.read()
            await post()
            return await _rate(post, seconds, IN_FLIGHT)


async def wsman_rates(seconds: float, tls: bool) -> tuple[float, float]:
    async with Child("tls" if tls else "single") as info:
        pin = bytes.fromhex(info["cert_sha256"]) if tls else None
        async with AmtClient("127.0.0.1", info["ports"][0], "admin", ADMIN_PASSWORD, tls=tls,
                             cert_sha256=pin, connections=IN_FLIGHT) as amt:
            await amt.general_settings()
            rate = await _rate(amt.general_settings, seconds, IN_FLIGHT)
            latencies = []
            deadline = time.perf_counter() + min(seconds, 1.0)
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await amt.general_settings()
                latencies.append(time.perf_counter() - started)
            return rate, statistics.median(latencies) * 1000


async def _read_node(port: int) -> bytes:
    async with AmtClient("127.0.0.1", port, GUEST, GUEST_PASSWORD, timeout=10) as amt:
        if not (await amt.get_power_state()).is_asleep:
            raise RuntimeError(f"device on port {port} is not asleep")
        async with await amt.storage.register(APP, mtu=4096) as session:
            block = (await session.allocated_blocks())[0]
            return await session.read_block(block, 0, RECORD_BYTES)


async def tpds_read_time(nodes: int) -> tuple[float, int]:
    async with Child("fleet", nodes) as info:
        ports = info["ports"]
        started = time.perf_counter()
        records = await asyncio.gather(*(_read_node(port) for port in ports))
        elapsed = time.perf_counter() - started
        if sorted(int.from_bytes(r[:4], "big") for r in records) != list(range(nodes)):
            raise RuntimeError("records read back do not match the nodes")
        return elapsed, len(records)


async def run(args: argparse.Namespace) -> dict[str, float]:
    seconds = 0.5 if args.quick else args.seconds
    nodes = 20 if args.quick else args.nodes
    raw = await raw_http_rate(seconds)
    print(f"raw aiohttp POST (baseline):   {raw:8.0f} req/s")
    plain, plain_p50 = await wsman_rates(seconds, tls=False)
    print(f"WS-Man Get, HTTP + digest:     {plain:8.0f} ops/s   p50 {plain_p50:.2f} ms")
    tls, tls_p50 = await wsman_rates(seconds, tls=True)
    print(f"WS-Man Get, HTTPS + digest:    {tls:8.0f} ops/s   p50 {tls_p50:.2f} ms")
    tpds_s, count = await tpds_read_time(nodes)
    print(f"3PDS records of {count} sleeping nodes from {count} devices: {tpds_s:.2f} s "
          f"(goal {TPDS_GOAL_S:.1f} s for 100)")
    return {
        "raw_http_ops_per_s": round(raw, 1),
        "wsman_get_ops_per_s": round(plain, 1),
        "wsman_get_ops_per_s_tls": round(tls, 1),
        "wsman_get_p50_ms": round(plain_p50, 3),
        "wsman_get_p50_ms_tls": round(tls_p50, 3),
        "wsman_vs_raw_http_ratio": round(plain / raw, 3),
        "tls_vs_plain_ratio": round(tls / plain, 3),
        "tpds_nodes": count,
        "tpds_read_nodes_s": round(tpds_s, 3),
        "tpds_goal_s": TPDS_GOAL_S,
        "tpds_goal_vs_measured_ratio": round(TPDS_GOAL_S / tpds_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 20 nodes (CI)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput figure")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--serve", choices=["raw", "single", "tls", "fleet"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve, args.count))
        return 0
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
