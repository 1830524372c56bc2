"""Membership of real agent processes on loopback: join, crash and pause detection, idle cost.

    python benchmarks/bench_membership.py [--json] [--quick] [--sizes 20,50,100]
                                          [--idle-seconds 30] [--profile lan]
                                          [--event-loop auto|asyncio|uvloop]
                                          [--join-repeats K] [--perf]

Every agent is a separate ``meshagent run`` process on its own 127.x address. Timing
starts once every agent is up and listening (its ``status`` says ``started``) and still alone
(no seeds, no multicast); then every agent is told to join the first one at the same
moment (control method ``join``). Times come from each agent's own transition log
(control method ``member_states``: the wall-clock time it saw each member change state),
so polling speed does not enter the figures.

Measured, per mesh size N:
- join: seconds until every agent sees all N alive (the last agent's last transition);
  with ``--join-repeats K``, K joins of fresh meshes and their median; the CPU the agents
  used meanwhile, per agent, and with ``--perf`` its split by shared object
  (``cpu_split.py``: Python interpreter, the C core's cryptography, kernel); when the
  seed admitted the joiners and how long each admitted record took to reach every agent
  (the join's two parts), and each agent's milliseconds on a CPU and waiting for one
  (``join_timeline.py``);
- kill -9 of one agent: seconds until every other agent sees it unreachable (max, median);
- SIGSTOP of one agent (largest mesh <= 50): seconds until every other agent sees it
  unreachable, right after the join (every member still in its newcomer grace) and once
  settled; and a 2 s pause: how many agents ever marked it unreachable (target 0);
- idle (N = 50, or the quick size), from ``--idle-settle-seconds`` (10) after the join:
  per agent CPU % of one core, RSS MiB, bytes sent per second (membership datagrams and
  streams, and sessions), and suspicions raised in the idle window.

Baseline in the same run: when Debian's ``serf`` binary is here (``apt-get install serf``;
``--no-serf`` skips it), the same join and kill -9 with N serf agents
(``serf_baseline.py``), and ``*_vs_serf_ratio`` = ours / serf's from this run (below 1 =
faster). serf's times are polled over its RPC every 50 ms. The issue's published anchors
(join 0.48 s (N=20), 0.89 s (N=50), 2.4 s (N=100); kill -9 seen failed by all after
6.7-8.1 s, 7.8-10.2 s, 9.6-13.1 s) give ``*_vs_serf_anchor_ratio``.
``--quick`` runs N=10 with a short idle window, for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from cpu_split import CpuSplit, perf_available
from join_timeline import RunQueue, admissions, first_alive, spread_after_admission
from serf_baseline import SerfMesh, serf_available

from meshagent.demo import AgentProcess, DemoError, create_mesh, query, wait_for
from meshagent.eventloop import EVENT_LOOPS

SERF_JOIN_S = {20: 0.48, 50: 0.89, 100: 2.4}
SERF_KILL_S = {20: (6.7, 8.1), 50: (7.8, 10.2), 100: (9.6, 13.1)}
FAILED = {"unreachable", "left"}


def say(text: str) -> None:
    print(text, flush=True)


class Mesh:
    """N agent processes from create_mesh, alone until told to join."""

    def __init__(self, root: Path, size: int, subnet: int, profile: str,
                 extra_config: str = "") -> None:
        addresses = [(f"127.{subnet}.{i // 250}.{i % 250 + 1}", 7946) for i in range(size)]
        self.mesh = create_mesh(root / f"n{size}", size, addresses=addresses, seeds=0,
                                profile=profile, log_level="warning",
                                extra_config=extra_config)
        self.agents = [AgentProcess(node) for node in self.mesh.nodes]
        self.ids = {node.name: self.mesh.node_ids[node.name].hex() for node in self.mesh.nodes}

    async def start(self) -> float:
        started = time.monotonic()
        for agent in self.agents:
            agent.start()
        try:
            await asyncio.gather(*(agent.wait_ready(timeout=300) for agent in self.agents))
        except DemoError:
            for agent in self.agents:
                if not agent.running:
                    say(f"{agent.node.name} exited; its log ends:\n"
                        + agent.node.log_path.read_text()[-2000:])
            raise
        return time.monotonic() - started

    def stop(self) -> None:
        for agent in self.agents:
            agent.terminate()  # all at once: leaving takes a moment each
        for agent in self.agents:
            agent.stop(timeout=10)

    async def states(self, agent: AgentProcess, node: str | None = None) -> dict[str, Any]:
        params = {"node": node} if node else {}
        return await query(agent.node.socket, "member_states", params, timeout=30)

    async def all_states(self, agents: list[AgentProcess], node: str | None = None,
                         ) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self.states(a, node) for a in agents)))


async def measure_join(mesh: Mesh, timeout: float, split: CpuSplit | None = None,
                       ) -> dict[str, Any]:
    """From the join order: per agent, when it had seen every member alive (``first``), and
    when its view last changed before all were alive together (``stable``); suspicions
    raised meanwhile (nobody failed, so every one is false); the CPU the agents used from
    the join order to the poll that saw them converged (``cpu_ms_per_agent``), and where
    it went when ``split`` records it; when the seed admitted each joiner (``admitted``)
    and how long each admitted record took to reach every agent (``spread``), and the
    agents' time on a CPU and waiting for one (``run_queue``, ``join_timeline.py``)."""
    processes = [psutil.Process(agent.pid) for agent in mesh.agents if agent.pid]
    if split is not None:
        try:
            split.start()
        except (RuntimeError, OSError) as exc:
            say(f"perf: no CPU split for this join ({exc})")
            split = None
    try:
        cpu0 = sum(sum(p.cpu_times()[:2]) for p in processes)
        queue = RunQueue([p.pid for p in processes])
        t0 = time.time()
        converged = await _join_and_wait(mesh, timeout)
        cpu = sum(sum(p.cpu_times()[:2]) for p in processes) - cpu0
        run_queue = queue.stop()
    finally:
        shares = _stop(split)
    views = await mesh.all_states(mesh.agents)
    if not converged:
        seen = [sum(1 for v in view.values() if v["state"] == "alive") for view in views]
        return {"converged": False, "alive_seen_mean": statistics.mean(seen),
                "suspicions": _suspicions(views, t0)}
    # Converged: every agent has seen every member alive (``first_alive`` is never None).
    first = [max(first_alive(view, node) or t0 for node in view) - t0 for view in views]
    stable = [max(v["since"] for v in view.values()) - t0 for view in views]
    ids = [mesh.ids[agent.node.name] for agent in mesh.agents]
    admitted = admissions(views, ids)
    return {"converged": True, "first": first, "stable": stable,
            "suspicions": _suspicions(views, t0),
            "cpu_ms_per_agent": cpu / len(processes) * 1000, "cpu_split": shares,
            "admitted": [at - t0 for at in admitted.values()],
            "spread": spread_after_admission(views, ids, admitted), "run_queue": run_queue}


def _stop(split: CpuSplit | None) -> dict[str, float] | None:
    """The CPU split, or None (said why) if perf failed: the join's own figures stand."""
    if split is None:
        return None
    try:
        return split.stop()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        say(f"perf: no CPU split for this join ({exc})")
        return None


async def _join_and_wait(mesh: Mesh, timeout: float) -> bool:
    """Tell every agent to join the first; True once all see all alive, False at timeout."""
    size = len(mesh.agents)
    seed = mesh.agents[0].node.endpoint
    await asyncio.gather(*(query(a.node.socket, "join", {"addresses": [seed]}, timeout=30)
                           for a in mesh.agents[1:]))

    async def converged() -> bool:
        # The member counts of ``status``, not every transition log: polling must not
        # load the agents it measures (the logs are read once, at the end).
        statuses = await asyncio.gather(*(query(a.node.socket, "status", timeout=30)
                                          for a in mesh.agents))
        return all(status["members"].get("alive", 0) == size for status in statuses)
    try:
        await wait_for(converged, timeout, f"all {size} agents to see all alive", interval=1)
    except DemoError:
        return False
    return True


def _suspicions(views: list[dict[str, Any]], since: float) -> int:
    return sum(1 for view in views for v in view.values()
               for state, at in v["history"] if state == "suspect" and at >= since)


async def measure_failure(mesh: Mesh, victim: AgentProcess, action: str,
                          timeout: float = 60) -> list[float]:
    """Seconds until each other agent saw ``victim`` unreachable after kill or SIGSTOP."""
    others = [a for a in mesh.agents if a is not victim and a.running]
    node = mesh.ids[victim.node.name]
    t0 = time.time()
    if action == "kill":
        victim.kill()
    else:
        victim.pause()

    async def everyone() -> bool:
        views = await mesh.all_states(others, node)
        return all(view.get(node, {}).get("state") in FAILED for view in views)
    await wait_for(everyone, timeout, f"every agent to see {victim.node.name} failed",
                   interval=0.5)
    views = await mesh.all_states(others, node)
    return [view[node]["since"] - t0 for view in views]


async def measure_sigstop(mesh: Mesh, sleeper: AgentProcess, when: str, key: str,
                          result: dict[str, Any]) -> None:
    """SIGSTOP ``sleeper`` until every other agent sees it unreachable (``result[key]``),
    then resume it and wait for its refutation."""
    stopped = await measure_failure(mesh, sleeper, "stop")
    sleeper.resume()
    result[key] = round(max(stopped), 3)
    say(f"N={len(mesh.agents)}: SIGSTOP {when} seen unreachable by every agent after "
        f"{max(stopped):.2f}s (target 6s)")
    await wait_for(lambda: _alive_again(mesh, sleeper), 60, "the resumed agent to refute")


async def measure_short_pause(mesh: Mesh, victim: AgentProcess, pause_s: float = 2.0,
                              settle_s: float = 8.0) -> int:
    """Agents that marked ``victim`` unreachable during a ``pause_s`` SIGSTOP (target 0)."""
    others = [a for a in mesh.agents if a is not victim and a.running]
    node = mesh.ids[victim.node.name]
    t0 = time.time()
    victim.pause()
    await asyncio.sleep(pause_s)  # the pause itself is what is measured
    victim.resume()
    await asyncio.sleep(settle_s)  # long enough for a suspicion to expire, had it begun
    views = await mesh.all_states(others, node)
    return sum(1 for view in views if any(
        state in FAILED and at >= t0 for state, at in view.get(node, {}).get("history", [])))


async def measure_idle(mesh: Mesh, seconds: float, settle: float) -> dict[str, float]:
    await asyncio.sleep(settle)  # the join's tail (sessions, routes) is not idle
    processes = [psutil.Process(a.pid) for a in mesh.agents if a.pid]
    statuses = await asyncio.gather(*(query(a.node.socket, "status") for a in mesh.agents))
    cpu0 = [p.cpu_times() for p in processes]
    sent0 = [_bytes_sent(s) for s in statuses]
    t0 = time.time()
    await asyncio.sleep(seconds)  # idle: the window being measured
    elapsed = time.time() - t0
    cpu1 = [p.cpu_times() for p in processes]
    statuses = await asyncio.gather(*(query(a.node.socket, "status") for a in mesh.agents))
    sent1 = [_bytes_sent(s) for s in statuses]
    views1 = await mesh.all_states(mesh.agents)
    cpu = [((b.user + b.system) - (a.user + a.system)) / elapsed * 100
           for a, b in zip(cpu0, cpu1)]
    rss = [p.memory_info().rss / 2**20 for p in processes]
    rate = [(b - a) / elapsed for a, b in zip(sent0, sent1)]
    suspicions = sum(1 for view in views1 for entry in view.values()
                     for state, at in entry["history"] if state == "suspect" and at >= t0)
    return {"cpu_pct_mean": statistics.mean(cpu), "cpu_pct_max": max(cpu),
            "rss_mib_mean": statistics.mean(rss), "rss_mib_max": max(rss),
            "bytes_sent_per_s_mean": statistics.mean(rate), "false_suspicions": suspicions,
            "idle_window_s": elapsed, "settle_s": settle}


def _bytes_sent(status: dict[str, Any]) -> int:
    """Datagrams, membership streams (state exchanges, TCP pings, watches) and sessions."""
    return int(status["transport"].get("bytes_sent", 0)) + \
        int(status["membership"].get("stream_bytes_sent", 0)) + \
        int(status.get("session_stats", {}).get("bytes_sent", 0))


def _agent_config(args: argparse.Namespace) -> str:
    return (f"[sessions]\nmax_peers = {args.max_peers}\n"
            f"[runtime]\nevent_loop = \"{args.event_loop}\"\n")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [10] if args.quick else [int(s) for s in args.sizes.split(",")]
    idle_size = 10 if args.quick else (50 if 50 in sizes else sizes[0])
    idle_seconds = 5.0 if args.quick else args.idle_seconds
    result: dict[str, Any] = {"profile": args.profile, "cores": os.cpu_count(),
                              "sizes": sizes, "max_peers": args.max_peers,
                              "event_loop": args.event_loop}
    with tempfile.TemporaryDirectory(prefix="bench-membership-") as tmp:
        for index, size in enumerate(sizes):
            mesh = Mesh(Path(tmp), size, 200 + index, args.profile,
                        _agent_config(args))
            try:
                startup = await mesh.start()
                ran_on = (await query(mesh.agents[0].node.socket, "status"))["event_loop"]
                result["event_loop_ran"] = ran_on  # what ``auto`` chose
                say(f"N={size}: {size} agents up and listening after {startup:.1f}s, "
                    f"on {ran_on}")
                split = CpuSplit([a.pid for a in mesh.agents if a.pid],
                                 Path(tmp) / f"join-n{size}.perf") if args.perf else None
                joined = await measure_join(mesh, args.join_timeout, split)
                if not joined["converged"]:
                    result[f"join_n{size}_s"] = None
                    result[f"join_n{size}_alive_seen_mean"] = round(joined["alive_seen_mean"], 1)
                    result[f"join_n{size}_false_suspicions"] = joined["suspicions"]
                    say(f"N={size}: NOT converged {args.join_timeout:.0f}s after join: agents "
                        f"see {joined['alive_seen_mean']:.1f} of {size} alive on average, "
                        f"{joined['suspicions']} suspicions raised (CPU-bound: "
                        f"{os.cpu_count()} cores for {size} agents)")
                    continue
                join = max(joined["first"])
                result[f"join_n{size}_s"] = round(join, 3)
                result[f"join_n{size}_median_s"] = round(statistics.median(joined["first"]), 3)
                result[f"join_n{size}_stable_s"] = round(max(joined["stable"]), 3)
                result[f"join_n{size}_false_suspicions"] = joined["suspicions"]
                result[f"join_n{size}_cpu_ms_per_agent"] = round(joined["cpu_ms_per_agent"], 1)
                if joined["cpu_split"] is not None:
                    result[f"join_n{size}_cpu_split"] = joined["cpu_split"]
                line = (f"N={size}: every agent has seen all {size} alive {join:.2f}s after "
                        f"join (median agent {statistics.median(joined['first']):.2f}s); "
                        f"all alive at once after "
                        f"{max(joined['stable']):.2f}s ({joined['suspicions']} false "
                        "suspicions meanwhile)")
                if size in SERF_JOIN_S:
                    ratio = join / SERF_JOIN_S[size]
                    result[f"join_n{size}_vs_serf_anchor_ratio"] = round(ratio, 3)
                    line += f" (serf's published {SERF_JOIN_S[size]}s, ratio {ratio:.2f})"
                say(line)
                say(f"N={size}: the join cost {joined['cpu_ms_per_agent']:.1f} ms of CPU per "
                    f"agent, on {os.cpu_count()} cores"
                    + ("" if joined["cpu_split"] is None else "; by perf: " + ", ".join(
                        f"{name} {share:.1%}" for name, share in joined["cpu_split"].items())))
                _timeline(size, joined, result)
                if size == idle_size:
                    # Silent right after the join: every member is still in its newcomer
                    # grace (Profile.probe_grace_s), which must not delay the detection.
                    await measure_sigstop(mesh, mesh.agents[-4], "right after the join",
                                          f"sigstop_after_join_n{size}_max_s", result)
                    idle = await measure_idle(mesh, idle_seconds, args.idle_settle_seconds)
                    for key, value in idle.items():
                        result[f"idle_n{size}_{key}"] = round(value, 3)
                    say(f"N={size} idle {idle['idle_window_s']:.0f}s (from "
                        f"{idle['settle_s']:.0f}s after the join): CPU "
                        f"{idle['cpu_pct_mean']:.2f}% of a core per agent (max "
                        f"{idle['cpu_pct_max']:.2f}%), RSS {idle['rss_mib_mean']:.1f} MiB "
                        f"(max {idle['rss_mib_max']:.1f}), "
                        f"{idle['bytes_sent_per_s_mean']:.0f} B/s sent per agent, "
                        f"{idle['false_suspicions']} false suspicions")
                detected = await measure_failure(mesh, mesh.agents[-1], "kill")
                result[f"kill9_n{size}_max_s"] = round(max(detected), 3)
                result[f"kill9_n{size}_median_s"] = round(statistics.median(detected), 3)
                line = (f"N={size}: kill -9 seen by every agent after {max(detected):.2f}s"
                        f" (median {statistics.median(detected):.2f}s)")
                if size in SERF_KILL_S:
                    low, high = SERF_KILL_S[size]
                    ratio = max(detected) / low
                    result[f"kill9_n{size}_vs_serf_anchor_ratio"] = round(ratio, 3)
                    line += f" (serf's published {low}-{high}s, ratio {ratio:.2f} to its best)"
                say(line)
                if size == idle_size:
                    await measure_sigstop(mesh, mesh.agents[-2], "once settled",
                                          f"sigstop_n{size}_max_s", result)
                    flagged = await measure_short_pause(mesh, mesh.agents[-3])
                    result[f"pause2s_n{size}_marked_failed"] = flagged
                    say(f"N={size}: a 2s SIGSTOP marked failed by {flagged} agents (target 0)")
            finally:
                mesh.stop()
            if args.join_repeats > 1:
                await _repeat_joins(args, Path(tmp), size, index, result)
            if not args.no_serf and serf_available():
                await _serf_baseline(Path(tmp), size, 230 + index, args.serf_timeout, result)
    return result


def _timeline(size: int, joined: dict[str, Any], result: dict[str, Any]) -> None:
    """The join's two parts and the run queue (``join_timeline.py``), into ``result``."""
    parts = []
    for name, values in (("seed_admitted", joined["admitted"]),
                         ("spread_after_admission", joined["spread"])):
        if values:
            result[f"join_n{size}_{name}_median_s"] = round(statistics.median(values), 3)
            result[f"join_n{size}_{name}_max_s"] = round(max(values), 3)
    admitted, spread = joined["admitted"], joined["spread"]
    if admitted and spread:
        parts.append(f"the seed admitted the joiners after {statistics.median(admitted):.2f}s "
                     f"(median) to {max(admitted):.2f}s, and each admitted record reached "
                     f"every agent {statistics.median(spread):.2f}s (median) to "
                     f"{max(spread):.2f}s later")
    queue = joined["run_queue"]
    if queue is not None:
        result[f"join_n{size}_running_ms_per_agent"] = round(queue["running_ms"], 1)
        result[f"join_n{size}_waiting_ms_per_agent"] = round(queue["waiting_ms"], 1)
        parts.append(f"each agent ran {queue['running_ms']:.0f} ms and waited "
                     f"{queue['waiting_ms']:.0f} ms for a CPU")
    if parts:
        say(f"N={size}: " + "; ".join(parts))


async def _repeat_joins(args: argparse.Namespace, root: Path, size: int, index: int,
                        result: dict[str, Any]) -> None:
    """More joins of fresh meshes of ``size`` (``--join-repeats``): on a loaded machine
    one join varies by half its time from run to run, so a change is judged on several."""
    joins = [result.get(f"join_n{size}_s")]
    for repeat in range(1, args.join_repeats):
        mesh = Mesh(root / f"repeat{repeat}", size, 100 + 10 * index + repeat, args.profile,
                    _agent_config(args))
        try:
            await mesh.start()
            joined = await measure_join(mesh, args.join_timeout)
        finally:
            mesh.stop()
        joins.append(round(max(joined["first"]), 3) if joined["converged"] else None)
    done = sorted(join for join in joins if join is not None)
    result[f"join_n{size}_runs_s"] = joins
    result[f"join_n{size}_runs_median_s"] = (round(statistics.median(done), 3) if done
                                             else None)
    line = ", ".join("not converged" if join is None else f"{join:.2f}s" for join in joins)
    say(f"N={size}: {len(joins)} joins, every agent has seen all alive after {line}"
        + (f" (median {statistics.median(done):.2f}s)" if done else ""))


async def _serf_baseline(root: Path, size: int, subnet: int, timeout: float,
                         result: dict[str, Any]) -> None:
    """The same join and kill -9 with serf agents, and ours / serf's from this run."""
    async with SerfMesh(root, size, subnet) as serf:
        join = await serf.measure_join(timeout)
        kill = await serf.measure_kill(60.0)
    result[f"serf_join_n{size}_s"] = None if join["max_s"] is None else round(join["max_s"], 3)
    result[f"serf_join_n{size}_median_s"] = (None if join["median_s"] is None
                                             else round(join["median_s"], 3))
    result[f"serf_join_n{size}_converged"] = join["converged"]
    result[f"serf_kill9_n{size}_max_s"] = round(kill["max_s"], 3)
    seen_all = (f"{join['max_s']:.2f}s" if join["max_s"] is not None else
                f"not within {timeout:.0f}s ({join['converged']} of {size} agents had)")
    median_text = ("not within the timeout" if join["median_s"] is None
                   else f"{join['median_s']:.2f}s")
    line = (f"N={size} serf (same run): every agent has seen all alive after {seen_all} "
            f"(median {median_text}); kill -9 seen by every agent after "
            f"{kill['max_s']:.2f}s")
    ours_join = result.get(f"join_n{size}_s")
    if ours_join is not None:
        # serf's slowest agent bounded by the timeout when it had not converged: an
        # upper bound of the ratio.
        slowest = join["max_s"] if join["max_s"] is not None else timeout
        result[f"join_n{size}_vs_serf_ratio"] = round(ours_join / slowest, 3)
        result[f"join_n{size}_vs_serf_ratio_is_bound"] = join["max_s"] is None
        line += (f"; ours / serf: join {'< ' if join['max_s'] is None else ''}"
                 f"{ours_join / slowest:.2f}")
        if join["median_s"] is not None:
            median = result[f"join_n{size}_median_s"] / join["median_s"]
            result[f"join_n{size}_median_vs_serf_ratio"] = round(median, 3)
            line += f", median agent {median:.2f}"
    ours_kill = result.get(f"kill9_n{size}_max_s")
    if ours_kill is not None:
        result[f"kill9_n{size}_vs_serf_ratio"] = round(ours_kill / kill["max_s"], 3)
        line += f", kill -9 {ours_kill / kill['max_s']:.3f}"
    say(line)


async def _alive_again(mesh: Mesh, agent: AgentProcess) -> bool:
    node = mesh.ids[agent.node.name]
    others = [a for a in mesh.agents if a is not agent and a.running]
    views = await mesh.all_states(others, node)
    return all(view.get(node, {}).get("state") == "alive" for view in views)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--quick", action="store_true", help="N=10 only, short idle window")
    parser.add_argument("--sizes", default="20,50,100", help="mesh sizes (default 20,50,100)")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="idle window at N=50 (the target run uses 300)")
    parser.add_argument("--idle-settle-seconds", type=float, default=10.0,
                        help="wait this long after the join before the idle window")
    parser.add_argument("--profile", default="lan", choices=["lan", "wan", "local"])
    parser.add_argument("--join-timeout", type=float, default=120.0,
                        help="give up on join convergence after this many seconds")
    parser.add_argument("--max-peers", type=int, default=20,
                        help="sessions.max_peers of every agent (default 20)")
    parser.add_argument("--event-loop", default="auto", choices=list(EVENT_LOOPS),
                        help="runtime.event_loop of every agent (default auto, the "
                             "agent's: uvloop where it is installed)")
    parser.add_argument("--join-repeats", type=int, default=1, metavar="K",
                        help="join K fresh meshes of each size (the first also measures "
                             "the rest); reports every join and their median")
    parser.add_argument("--no-serf", action="store_true",
                        help="skip the serf baseline (run when the serf binary is here)")
    parser.add_argument("--serf-timeout", type=float, default=30.0,
                        help="stop waiting for serf's slowest agent after this many seconds")
    parser.add_argument("--perf", action="store_true",
                        help="record each size's first join with Linux perf and report "
                             "where the agents' CPU went (interpreter, C core, kernel)")
    args = parser.parse_args()
    if args.perf and not perf_available():
        parser.error("--perf needs Linux perf (apt-get install linux-perf)")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
