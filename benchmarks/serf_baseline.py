"""Debian's serf agents as the same-run baseline of ``bench_membership.py``.

N ``serf agent`` processes on their own 127.x addresses (``-profile=lan``), alone until
told to join the first one at the same moment over serf's RPC (msgpack over TCP, the
``join`` command), exactly as the meshagent agents are. serf keeps no transition log, so
views are polled over RPC (``members``) every ``POLL_S``: its times carry up to one poll
interval more than meshagent's, which come from each agent's own log.

    async with SerfMesh(root, 50, subnet=231) as mesh:
        join = await mesh.measure_join(timeout=30)        # max_s, median_s, converged
        kill = await mesh.measure_kill(timeout=60)        # every other sees it failed

Needs the ``serf`` binary (Debian: ``apt-get install serf``); ``serf_available()`` says
whether it is here.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["SerfMesh", "serf_available"]

POLL_S = 0.05
_RPC_PORT = 7373
_PORT = 7946


def serf_available() -> str | None:
    """Path of the serf binary, or None."""
    return shutil.which("serf")


class _Rpc:
    """One RPC connection to a serf agent (handshake done on open)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._unpacker = msgpack.Unpacker(raw=False)
        self._seq = itertools.count()

    @classmethod
    async def open(cls, host: str, timeout: float = 10.0) -> _Rpc:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, _RPC_PORT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        rpc = cls(reader, writer)
        await rpc.call("handshake", {"Version": 1}, body=False)
        return rpc

    async def _next(self) -> Any:
        while True:
            for item in self._unpacker:
                return item
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionError("serf closed the RPC connection")
            self._unpacker.feed(data)

    async def call(self, command: str, params: dict[str, Any] | None = None,
                   body: bool = True) -> Any:
        seq = next(self._seq)
        message = msgpack.packb({"Command": command, "Seq": seq})
        if params is not None:
            message += msgpack.packb(params)
        self._writer.write(message)
        header = await self._next()
        if header.get("Error"):
            raise RuntimeError(f"serf {command}: {header['Error']}")
        return await self._next() if body else None

    def close(self) -> None:
        self._writer.close()


class SerfMesh:
    def __init__(self, root: Path, size: int, subnet: int) -> None:
        self.root = root / f"serf-n{size}"
        self.hosts = [f"127.{subnet}.{i // 250}.{i % 250 + 1}" for i in range(size)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.rpcs: list[_Rpc] = []

    async def __aenter__(self) -> SerfMesh:
        self.root.mkdir(parents=True, exist_ok=True)
        binary = serf_available()
        if binary is None:
            raise RuntimeError("no serf binary (apt-get install serf)")
        for index, host in enumerate(self.hosts):
            log = (self.root / f"node{index}.log").open("wb")
            self.processes.append(subprocess.Popen(
                [binary, "agent", f"-node=node{index}", f"-bind={host}:{_PORT}",
                 f"-rpc-addr={host}:{_RPC_PORT}", "-profile=lan", "-log-level=warn"],
                stdout=log, stderr=subprocess.STDOUT))
        self.rpcs = list(await asyncio.gather(*(_Rpc.open(host) for host in self.hosts)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for rpc in self.rpcs:
            rpc.close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait()

    async def _alive(self, rpc: _Rpc) -> set[str]:
        members = (await rpc.call("members"))["Members"]
        return {m["Name"] for m in members if m["Status"] == "alive"}

    async def measure_join(self, timeout: float) -> dict[str, Any]:
        """Join all to the first at once; per agent, seconds until it had seen all alive.
        ``max_s`` is None when some agent had not within ``timeout`` (serf repairs a
        view that gossip left incomplete only at its next push-pull, 30 s or more),
        ``median_s`` when half of them had not; ``converged`` counts the agents that had."""
        seed = f"{self.hosts[0]}:{_PORT}"
        started = time.monotonic()
        await asyncio.gather(*(rpc.call("join", {"Existing": [seed], "Replay": False})
                               for rpc in self.rpcs[1:]))
        seen: dict[int, float] = {}
        size = len(self.hosts)
        while len(seen) < size and time.monotonic() - started <= timeout:
            pending = [i for i in range(size) if i not in seen]
            views = await asyncio.gather(*(self._alive(self.rpcs[i]) for i in pending))
            now = time.monotonic() - started
            for index, view in zip(pending, views, strict=True):
                if len(view) == size:
                    seen[index] = now
            await asyncio.sleep(POLL_S)
        times = sorted(seen.values())
        return {"max_s": times[-1] if len(seen) == size else None,
                "median_s": times[size // 2] if size // 2 < len(times) else None,
                "converged": len(seen)}

    async def measure_kill(self, timeout: float) -> dict[str, float]:
        """kill -9 the last agent; seconds until every other no longer lists it alive
        (serf shows it "failed")."""
        victim = len(self.hosts) - 1
        name = f"node{victim}"
        self.processes[victim].send_signal(signal.SIGKILL)
        started = time.monotonic()
        seen: dict[int, float] = {}
        others = range(victim)
        while len(seen) < victim:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"serf: {len(seen)} of {victim} agents saw the kill")
            pending = [i for i in others if i not in seen]
            views = await asyncio.gather(*(self._alive(self.rpcs[i]) for i in pending))
            now = time.monotonic() - started
            for index, view in zip(pending, views, strict=True):
                if name not in view:
                    seen[index] = now
            await asyncio.sleep(POLL_S)
        times = sorted(seen.values())
        return {"max_s": times[-1], "median_s": times[len(times) // 2]}
