"""The demo's leader part: a web service (SQLite), a signed command on every node through
the elected leader, the leader killed, a new one taking over, a queued command arriving.

Steps for ``demo.run_demo`` (see its docstring); ``with_leader_steps(steps)`` places them:

    create_demo_mesh -> start_web_service -> start_agents -> ... -> show_rejoin
    -> show_leader -> run_everywhere -> kill_leader_and_queue -> show_takeover
    -> leave_running

The web service runs as its own process (``meshagent server run``), registered with the
demo so that ``meshagent demo --stop`` stops it too; the steps talk to it over its REST
API like ``meshctl`` does.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from meshagent.cli.api_client import ApiClient
from meshagent.cli.ctl_results import result_rows
from meshagent.cli.tables import render
from meshagent.commands import Target
from meshagent.demo import (
    DemoContext,
    DemoError,
    DemoStep,
    agent_command,
    create_demo_mesh,
    leave_running,
    query,
    show_rejoin,
    wait_for,
)
from meshagent.errors import MeshError
from meshagent.leaderlab import LAB_PASSWORD, LeaderLab

__all__ = ["with_leader_steps", "start_web_service", "show_leader", "run_everywhere",
           "kill_leader_and_queue", "show_takeover", "SERVICE_PORT"]

SERVICE_PORT = 18443


def with_leader_steps(steps: Sequence[DemoStep]) -> list[DemoStep]:
    """``steps`` with the leader part inserted (the web service before the agents start)."""
    chosen = list(steps)
    chosen.insert(chosen.index(create_demo_mesh) + 1, start_web_service)
    at = chosen.index(leave_running) if leave_running in chosen else len(chosen)
    if show_rejoin in chosen:
        at = chosen.index(show_rejoin) + 1
    chosen[at:at] = [show_leader, run_everywhere, kill_leader_and_queue, show_takeover]
    return chosen


def _lab(ctx: DemoContext) -> LeaderLab:
    return ctx.extras["lab"]


def _api(ctx: DemoContext) -> ApiClient:
    lab = _lab(ctx)
    return ApiClient(lab.url, lab.pin, LAB_PASSWORD)


async def _call(ctx: DemoContext, method: str, *args: Any) -> Any:
    """A REST call off the event loop (the client blocks)."""
    return await asyncio.to_thread(getattr(_api(ctx), method), *args)


async def start_web_service(ctx: DemoContext) -> None:
    assert ctx.mesh is not None
    lab = LeaderLab.equip(ctx.mesh, SERVICE_PORT)
    ctx.extras["lab"] = lab
    with open(lab.service_dir / "service.log", "ab") as log:
        process = subprocess.Popen(
            [*agent_command(), "server", "run", "--dir",
             str(lab.service_dir), "--listen", f"127.0.0.1:{SERVICE_PORT}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    ctx.add_process(process)

    async def listening() -> bool:
        if process.poll() is not None:
            raise DemoError(f"the web service exited; see {lab.service_dir / 'service.log'}")
        try:
            await asyncio.to_thread(_api(ctx).request, "GET", "/api/info")
        except (MeshError, OSError):  # not listening yet
            return False
        return True
    await wait_for(listening, 30, "the web service")
    ctx.say(f"web service (SQLite) at {lab.url}/  admin password {LAB_PASSWORD!r}, "
            f"certificate pin {lab.pin.hex()[:16]}...")


async def _leader(ctx: DemoContext, above_term: int = 0) -> dict[str, Any] | None:
    for mesh in await _call(ctx, "meshes"):
        leader = mesh.get("leader")
        if leader and leader["connected"] and leader["term"] > above_term:
            return leader
    return None


def _host(ctx: DemoContext, node_hex: str) -> str:
    assert ctx.mesh is not None
    names = {node_id.hex(): name for name, node_id in ctx.mesh.node_ids.items()}
    return names.get(node_hex, node_hex[:12])


async def show_leader(ctx: DemoContext) -> None:
    async def elected() -> bool:
        return await _leader(ctx) is not None
    await wait_for(elected, 60, "a leader to connect to the web service")
    leader = await _leader(ctx)
    assert leader is not None
    ctx.extras["leader"] = leader
    ctx.say(f"\nthe mesh elected {_host(ctx, leader['node'])} (term {leader['term']}); it holds "
            f"the only connection to the web service (meshctl leader)")


async def _run(ctx: DemoContext, target: Target, echo: str) -> tuple[str, int]:
    lab = _lab(ctx)
    command = lab.command(target, "ping", {"echo": echo})
    answer = await _call(ctx, "submit_command", command.to_wire())
    return answer["id"], len(answer["nodes"])


async def _show_results(ctx: DemoContext, command_id: str, expected: int) -> float:
    async def answered() -> bool:
        return len((await _call(ctx, "command", command_id))["results"]) >= expected
    took = await wait_for(answered, 60, "the results", 0.05)
    results = (await _call(ctx, "command", command_id))["results"]
    rows = [[_host(ctx, r["node"]), *row[2:]] for r, row in zip(results, result_rows(results))]
    for line in render(["NODE", "STATUS", "RECEIVED", "OUTPUT"], rows).splitlines():
        ctx.say("    " + line)
    return took


async def run_everywhere(ctx: DemoContext) -> None:
    command_id, count = await _run(ctx, Target.all(), "hello from the console")
    ctx.say(f"\nmeshctl run ping --all: signed command {command_id[:12]} queued for {count} "
            "nodes, relayed by the leader:")
    took = await _show_results(ctx, command_id, count)
    ctx.say(f"  {count} signed results back in {took:.2f}s")


async def kill_leader_and_queue(ctx: DemoContext) -> None:
    assert ctx.mesh is not None
    leader = ctx.extras["leader"]
    victim = next(a for a in ctx.agents
                  if ctx.mesh.node_ids[a.node.name].hex() == leader["node"])
    victim.kill()
    ctx.extras["leader_killed_at"] = time.monotonic()
    ctx.extras["leader_victim"] = victim
    survivor = next(a for a in ctx.agents if a is not victim and a.running)
    command_id, _ = await _run(ctx, Target.node(ctx.mesh.node_ids[survivor.node.name]),
                               "queued while the leader was down")
    ctx.extras["queued"] = command_id
    ctx.say(f"\nkill -9 the leader {victim.node.name}, and queue a command for "
            f"{survivor.node.name} right away")


async def show_takeover(ctx: DemoContext) -> None:
    old = ctx.extras["leader"]

    async def taken_over() -> bool:
        return await _leader(ctx, old["term"]) is not None
    await wait_for(taken_over, 60, "a new leader", 0.02)
    took = time.monotonic() - ctx.extras["leader_killed_at"]
    new = await _leader(ctx, old["term"])
    assert new is not None
    ctx.say(f"{_host(ctx, new['node'])} took over at term {new['term']}, accepted by the web "
            f"service {took:.2f}s after the kill; the queued command arrived:")
    await _show_results(ctx, ctx.extras["queued"], 1)
    victim = ctx.extras["leader_victim"]
    victim.start()
    ctx.save_pids()
    await victim.wait_ready()

    async def follows() -> bool:
        view = await query(victim.node.socket, "leader")
        return bool(view.get("leader")) and view["leader"]["node_id"] == new["node"]
    await wait_for(follows, 30, f"{victim.node.name} to follow the new leader")
    still = await _leader(ctx)
    unchanged = still is not None and (still["node"], still["term"]) == (new["node"],
                                                                          new["term"])
    ctx.say(f"restarted {victim.node.name}: it follows {_host(ctx, new['node'])}, which "
            + ("keeps its term (no churn)" if unchanged else "was replaced (unexpected)"))
