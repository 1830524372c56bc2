"""A local mesh of real agent processes on this machine: the demo, and the harness that
tests and benchmarks use to run agents as separate processes.

No root is needed: each agent listens on its own loopback address (127.0.0.x on Linux,
where all of 127/8 reaches the loopback interface; elsewhere 127.0.0.1 with one port per
agent) and finds the others through static seeds.

Building blocks (also used by tests/mesh and benchmarks/bench_membership.py):

- ``create_mesh(directory, count, ...) -> LocalMesh``: a mesh root key, one node directory
  per agent (keys, certificate, trust) and an ``agent.toml`` for each.
- ``AgentProcess``: ``meshagent run --config`` as a child process; ``start``, ``wait_ready``
  (its control socket says it has started), ``kill`` (SIGKILL), ``pause``/``resume``
  (SIGSTOP/SIGCONT), ``stop`` (SIGTERM: graceful leave).
- ``query(socket, method)``: one control-socket request.

The demo is a list of steps, ``DEMO_STEPS``, run in order by ``run_demo`` over one
``DemoContext``. To add a part to the demo (the web service, say), write an async
function ``step(ctx)`` and insert it where it belongs, e.g.
``steps.insert(steps.index(start_agents) + 1, start_web_service)``; a step can start its
own processes and register them with ``ctx.add_process`` (stopped with the mesh) and
print with ``ctx.say``. ``ctx.extras`` carries values between steps. The default list:

    create_demo_mesh -> start_agents -> show_convergence -> kill_one -> show_detection
    -> restart_one -> show_rejoin -> leave_running
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagent.control import ControlError, call
from meshagent.errors import MeshError
from meshagent.identity import MeshRoot, NodeCredentials, NodeIdentity

__all__ = [
    "LocalMesh", "LocalNode", "AgentProcess", "DemoContext", "DemoStep", "DEMO_STEPS",
    "agent_command",
    "create_mesh", "agent_toml", "query", "wait_for", "run_demo", "stop_demo", "loopback_addresses",
    "create_demo_mesh", "start_agents", "show_convergence", "kill_one", "show_detection",
    "restart_one", "show_rejoin", "leave_running", "DemoError",
]

ROOT_FILE = "mesh-root.key"
# How long ``meshagent demo --stop`` lets agents leave before it kills them.
STOP_GRACE_S = 10.0
PIDS_FILE = "agents.json"


class DemoError(MeshError):
    """The local mesh could not be set up or did not behave in time."""


@dataclass(frozen=True)
class LocalNode:
    name: str
    host: str
    port: int
    directory: Path  # holds agent.toml, state/ (credentials, control socket), agent.log

    @property
    def config_path(self) -> Path:
        return self.directory / "agent.toml"

    @property
    def socket(self) -> Path:
        return self.directory / "state" / "control.sock"

    @property
    def log_path(self) -> Path:
        return self.directory / "agent.log"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class LocalMesh:
    directory: Path
    nodes: list[LocalNode]
    mesh_id: bytes
    node_ids: dict[str, bytes] = field(default_factory=dict)


def loopback_addresses(count: int, port: int, first: int = 2) -> list[tuple[str, int]]:
    """``count`` distinct (host, port) on loopback: 127.0.x.y on Linux, else ports."""
    if sys.platform.startswith("linux"):
        return [(f"127.0.{(first + i) // 250}.{(first + i) % 250 + 1}", port)
                for i in range(count)]
    return [("127.0.0.1", port + i) for i in range(count)]


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def create_mesh(directory: Path, count: int, *, port: int = 17946,
                addresses: Sequence[tuple[str, int]] | None = None,
                names: Sequence[str] | None = None, profile: str = "local",
                seeds: int = 2, multicast: bool = False, log_level: str = "info",
                extra_config: str = "") -> LocalMesh:
    """Write a fresh mesh: root key, credentials and config for ``count`` agents.

    The first ``seeds`` agents are every agent's seeds. ``extra_config`` is appended to
    every agent.toml (TOML tables, e.g. "[sessions]\\nmax_peers = 8\\n").
    """
    directory = Path(directory).resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    root = MeshRoot.create()
    root.save(directory / ROOT_FILE)
    addresses = list(addresses or loopback_addresses(count, port))
    names = list(names or [f"node{i + 1}" for i in range(count)])
    if len(addresses) < count or len(names) < count:
        raise DemoError("fewer addresses or names than agents")
    nodes = [LocalNode(names[i], addresses[i][0], addresses[i][1], directory / names[i])
             for i in range(count)]
    mesh = LocalMesh(directory, nodes, root.mesh_id)
    for node in nodes:
        identity = NodeIdentity.generate()
        cert = root.issue_certificate(identity.sign_public, identity.dh_public,
                                      roles=["node"], hostname=node.name)
        NodeCredentials(identity, cert, root.trust).save(node.directory / "state")
        mesh.node_ids[node.name] = identity.node_id
        node.config_path.write_text(agent_toml(
            node.name, node.host, node.port, [n.endpoint for n in nodes[:seeds]],
            multicast=multicast, profile=profile, log_level=log_level, extra=extra_config))
    return mesh


def agent_toml(name: str, listen: str, port: int, seeds: Sequence[str], *,
               multicast: bool = False, multicast_interface: str = "",
               advertise: Sequence[str] = (), profile: str = "local",
               log_level: str = "info", extra: str = "") -> str:
    """The agent.toml of a node directory made by ``create_mesh`` (state in ./state)."""
    def strings(items: Sequence[str]) -> str:
        return "[" + ", ".join(_toml_string(item) for item in items) + "]"
    return (f"# {name}, written by meshagent.demo\n"
            f"[node]\nstate_dir = \"state\"\nhostname = {_toml_string(name)}\n"
            f"tags = {{ demo = \"yes\" }}\n\n"
            f"[network]\nlisten = {_toml_string(listen)}\nport = {port}\n"
            f"advertise = {strings(advertise)}\n\n"
            f"[discovery]\nmulticast = {'true' if multicast else 'false'}\n"
            f"multicast_interface = {_toml_string(multicast_interface)}\n"
            f"seeds = {strings(seeds)}\n\n"
            f"[membership]\nprofile = {_toml_string(profile)}\n\n"
            f"[log]\nlevel = {_toml_string(log_level)}\n\n{extra}")


async def query(socket: Path, method: str, params: dict[str, Any] | None = None,
                timeout: float = 5.0) -> Any:
    return await call(socket, method, params, timeout)


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float,
                   what: str, interval: float = 0.1) -> float:
    """Poll ``condition`` until true; seconds it took. DemoError after ``timeout``."""
    started = time.monotonic()
    while True:
        if await condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def agent_command() -> list[str]:
    """How to start this program's ``meshagent`` CLI in a child process: the frozen
    executable itself (it has no ``-m``), else this interpreter on the CLI module."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "meshagent.cli.main"]


class AgentProcess:
    """One ``meshagent run`` child process for a ``LocalNode``."""

    def __init__(self, node: LocalNode, *, command_prefix: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.node = node
        self.command_prefix = list(command_prefix)  # e.g. ["ip", "netns", "exec", "ns1"]
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        command = [*self.command_prefix, *agent_command(), "run", "--config",
                   str(self.node.config_path)]
        with open(self.node.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True)

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Until the agent has started (its control socket answers, and says so: the
        socket opens first, the membership and the rest after). An agent that exits
        fails at once; the timeout only bounds a slow start (imports on a machine whose
        cores are busy take tens of seconds)."""
        async def ready() -> bool:
            if not self.running:
                raise DemoError(f"{self.node.name} exited; see {self.node.log_path}")
            try:
                status = await query(self.node.socket, "status", timeout=1.0)
            except ControlError:
                return False
            return bool(status.get("started"))
        return await wait_for(ready, timeout, f"{self.node.name} to start", 0.05)

    def _signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM without waiting (the agent leaves the mesh); ``stop`` then waits."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the agent leaves the mesh), SIGKILL if it lingers."""
        if not self.running:
            return
        assert self.process is not None
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


# ---------------------------------------------------------------------------- the demo


@dataclass
class DemoContext:
    directory: Path
    count: int
    port: int
    say: Callable[[str], None] = print
    mesh: LocalMesh | None = None
    agents: list[AgentProcess] = field(default_factory=list)
    processes: list[AgentProcess | subprocess.Popen[bytes]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    detach: bool = False

    def add_process(self, process: subprocess.Popen[bytes]) -> None:
        """A step's own child process: recorded in the pid file, stopped with the mesh."""
        self.processes.append(process)
        self.save_pids()

    def save_pids(self) -> None:
        pids = [a.pid for a in self.agents if a.pid] + [
            p.pid for p in self.processes if isinstance(p, subprocess.Popen)]
        (self.directory / PIDS_FILE).write_text(json.dumps({"pids": pids}))

    async def nodes(self, agent: AgentProcess) -> list[dict[str, Any]]:
        return await query(agent.node.socket, "nodes")

    async def alive_counts(self) -> dict[str, int]:
        counts = {}
        for agent in self.agents:
            if agent.running:
                try:
                    nodes = await self.nodes(agent)
                except ControlError:
                    counts[agent.node.name] = -1
                    continue
                counts[agent.node.name] = sum(1 for n in nodes if n["state"] == "alive")
        return counts

    async def print_table(self, agent: AgentProcess) -> None:
        from meshagent.cli.ctl_nodes import format_table

        self.say(f"\n  the mesh as {agent.node.name} sees it (meshctl nodes):")
        for line in format_table(await self.nodes(agent)).splitlines():
            self.say("    " + line)


DemoStep = Callable[[DemoContext], Awaitable[None]]


async def create_demo_mesh(ctx: DemoContext) -> None:
    ctx.mesh = create_mesh(ctx.directory, ctx.count, port=ctx.port)
    ctx.say(f"created a mesh of {ctx.count} nodes in {ctx.directory} "
            f"(mesh id {ctx.mesh.mesh_id.hex()[:12]}, root key {ROOT_FILE})")


async def start_agents(ctx: DemoContext) -> None:
    assert ctx.mesh is not None
    ctx.agents = [AgentProcess(node) for node in ctx.mesh.nodes]
    for agent in ctx.agents:
        agent.start()
    ctx.save_pids()
    await asyncio.gather(*(agent.wait_ready() for agent in ctx.agents))
    ctx.say(f"started {len(ctx.agents)} agents: " + ", ".join(
        f"{a.node.name}@{a.node.endpoint} (pid {a.pid})" for a in ctx.agents))


async def _all_see(ctx: DemoContext, alive: int) -> bool:
    counts = await ctx.alive_counts()
    return all(count == alive for count in counts.values())


async def show_convergence(ctx: DemoContext) -> None:
    took = await wait_for(lambda: _all_see(ctx, ctx.count), 60, "the mesh to converge")
    ctx.say(f"\nall {ctx.count} agents see all {ctx.count} alive after {took:.2f}s")
    await ctx.print_table(ctx.agents[0])


async def kill_one(ctx: DemoContext) -> None:
    victim = ctx.agents[-1]
    ctx.extras["victim"] = victim
    victim.kill()
    ctx.extras["killed_at"] = time.monotonic()
    ctx.say(f"\nkill -9 {victim.node.name} (pid {victim.process.pid if victim.process else '?'})")


async def show_detection(ctx: DemoContext) -> None:
    victim: AgentProcess = ctx.extras["victim"]

    async def noticed() -> bool:
        for agent in ctx.agents:
            if agent is victim or not agent.running:
                continue
            states = {n["host"]: n["state"] for n in await ctx.nodes(agent)}
            if states.get(victim.node.name) == "alive":
                return False
        return True
    await wait_for(noticed, 60, f"the others to notice {victim.node.name} is gone")
    took = time.monotonic() - ctx.extras["killed_at"]
    ctx.say(f"every other agent marked {victim.node.name} failed within {took:.2f}s")
    await ctx.print_table(ctx.agents[0])


async def restart_one(ctx: DemoContext) -> None:
    victim: AgentProcess = ctx.extras["victim"]
    victim.start()
    ctx.save_pids()
    await victim.wait_ready()
    ctx.extras["restarted_at"] = time.monotonic()
    ctx.say(f"\nrestarted {victim.node.name} (pid {victim.pid})")


async def show_rejoin(ctx: DemoContext) -> None:
    took = await wait_for(lambda: _all_see(ctx, ctx.count), 60, "the restarted agent to rejoin")
    ctx.say(f"{ctx.extras['victim'].node.name} rejoined; all agents see {ctx.count} alive "
            f"after {took:.2f}s")
    await ctx.print_table(ctx.agents[0])


async def leave_running(ctx: DemoContext) -> None:
    first = ctx.agents[0].node
    ctx.say("\nthe mesh is running.")
    ctx.say(f"  look at it:  meshctl nodes --socket {first.socket}")
    ctx.say(f"               meshagent status --socket {first.socket}")
    ctx.say(f"  logs:        {ctx.directory}/<node>/agent.log")
    stop = "meshagent demo --stop" + (
        "" if ctx.directory == Path("demo-mesh").resolve() else f" --dir {ctx.directory}")
    ctx.say(f"  stop it:     {stop}" if ctx.detach else f"  stop it:     Ctrl-C here, or {stop}")


DEMO_STEPS: list[DemoStep] = [create_demo_mesh, start_agents, show_convergence, kill_one,
                              show_detection, restart_one, show_rejoin, leave_running]


def _stop_all(ctx: DemoContext) -> None:
    for agent in ctx.agents:
        agent.stop()
    for process in ctx.processes:
        if isinstance(process, subprocess.Popen) and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
    with contextlib.suppress(FileNotFoundError):
        (ctx.directory / PIDS_FILE).unlink()


async def run_demo(directory: Path, *, count: int = 5, port: int = 17946,
                   steps: Sequence[DemoStep] | None = None, detach: bool = False,
                   say: Callable[[str], None] = print) -> int:
    """Run the steps; then wait for Ctrl-C/SIGTERM (or return at once with ``detach``)."""
    ctx = DemoContext(Path(directory).resolve(), count, port, say=say, detach=detach)
    stop_demo(ctx.directory, quiet=True)  # a previous demo's agents hold the addresses
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, done.set)
    try:
        for step in steps or DEMO_STEPS:
            await step(ctx)
        if detach:
            return 0
        await done.wait()
        say("\nstopping the mesh")
    except BaseException:
        _stop_all(ctx)
        raise
    _stop_all(ctx)
    return 0


def stop_demo(directory: Path, quiet: bool = False) -> int:
    """Stop the agents of a demo left running in ``directory``; how many were signalled."""
    pid_file = Path(directory) / PIDS_FILE
    try:
        pids = json.loads(pid_file.read_text())["pids"]
    except (OSError, ValueError, KeyError, TypeError):
        if not quiet:
            print(f"no running demo in {directory}")
        return 0
    ours = [int(pid) for pid in pids if _is_our_agent(int(pid), Path(directory))]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_exists(pid) for pid in ours):
        time.sleep(0.1)  # polling processes that are not our children
    for pid in ours:
        if _exists(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a process that would not leave
    stopped = len(ours)
    pid_file.unlink(missing_ok=True)
    if not quiet:
        print(f"stopped {stopped} demo process{'es' if stopped != 1 else ''}")
    return stopped


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_agent(pid: int, directory: Path) -> bool:
    """Only signal a pid whose command line still names the demo directory (pids get
    reused after a reboot)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (not Linux): trust the pid file
    return str(directory.resolve()).encode() in cmdline
