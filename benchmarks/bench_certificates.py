"""A certificate's end and its renewal in a running mesh of real agent processes.

    python benchmarks/bench_certificates.py [--json] [--quick] [--size 20] [--lifetime 30]

N agents on 127.x addresses join (as in bench_membership.py); the last one's certificate
was issued for ``--lifetime`` seconds before it started. Measured from each agent's own
transition log (control method ``member_states``), so polling speed does not enter them:

- expiry: seconds from the certificate's end until each other agent had dropped the node
  (max, median);
- renewal: a new certificate is written to the node's node.cert and the node told to look
  (``meshagent status --check-certificate`` does the same); seconds from that request
  until each other agent saw it alive again (max, median);
- fleet renewal: every member's certificate exported from one agent, renewed with the
  root key and pushed back to that agent (``meshctl certificates export`` / ``meshagent
  mesh renew`` / ``meshctl certificates push``, here through the control socket);
  seconds from the push until that agent holds none pending, i.e. its view has every
  node's record signed with the renewed certificate (polled every 0.1 s). A node that
  agent has no route to yet (the one renewed just before is still forming sessions) is
  held and sent when a route appears, as in a fleet.

- ended renewal: a second node's certificate ends at the same moment; once every agent
  has dropped it, its renewal is pushed to the first agent (``certificates_push``), which
  has it held by every live member; the node, out of the mesh, asks the members it knew
  every ``node.certificate_check_s`` (set to ``ASK_S`` for that node here; 60 s by
  default). Seconds from the push until every other agent saw it alive again (max,
  median).

Baseline in the same run: the kill -9 of another agent, seen failed by every agent (the
crash fast path), and ``*_vs_kill9_ratio`` = ours / that. ``--quick``: 10 agents, a
15-second certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_membership import Mesh, measure_failure, measure_join, say

from meshagent.demo import ROOT_FILE, query, wait_for
from meshagent.identity import MembershipCertificate, MeshRoot, NodeCredentials

ASK_S = 1  # node.certificate_check_s of the node whose renewal is pushed once it ended


def _asks_every(mesh: Mesh, name: str, seconds: int) -> None:
    config = mesh.mesh.directory / name / "agent.toml"
    config.write_text(config.read_text().replace(
        "[node]\n", f"[node]\ncertificate_check_s = {seconds}\n", 1))


def _renewal(mesh: Mesh, name: str) -> bytes:
    """A year's certificate for node ``name``'s keys, not written anywhere."""
    root = MeshRoot.load(mesh.mesh.directory / ROOT_FILE)
    identity = NodeCredentials.load(mesh.mesh.directory / name / "state").identity
    return root.issue_certificate(identity.sign_public, identity.dh_public, ["node"], name,
                                  lifetime_s=365 * 86400).to_wire()


def _issue(mesh: Mesh, name: str, lifetime_s: int) -> None:
    """Write a certificate for ``lifetime_s`` seconds into node ``name``'s directory."""
    root = MeshRoot.load(mesh.mesh.directory / ROOT_FILE)
    state_dir = mesh.mesh.directory / name / "state"
    identity = NodeCredentials.load(state_dir).identity
    NodeCredentials(identity, root.issue_certificate(
        identity.sign_public, identity.dh_public, ["node"], name, lifetime_s=lifetime_s),
        root.trust).save(state_dir)


async def _seen(mesh: Mesh, others: list[Any], node: str, state: str, since: float,
                timeout: float) -> list[float]:
    """Seconds after ``since`` at which each of ``others`` saw ``node`` enter ``state``."""
    def first(view: dict[str, Any]) -> float | None:
        times = [at for seen, at in view.get(node, {}).get("history", [])
                 if seen == state and at >= since]
        return min(times) if times else None

    async def everyone() -> bool:
        return all(first(view) is not None for view in await mesh.all_states(others, node))
    await wait_for(everyone, timeout, f"every agent to see the node {state}", interval=0.5)
    return [first(view) - since for view in await mesh.all_states(others, node)]


async def _fleet_renewal(mesh: Mesh, console: Any) -> float:
    root = MeshRoot.load(mesh.mesh.directory / ROOT_FILE)
    exported = await query(console.node.socket, "certificates")
    renewed = []
    for item in exported:
        old = MembershipCertificate.from_wire(base64.b64decode(item["wire"]))
        renewed.append(root.issue_certificate(old.sign_public, old.dh_public, old.roles,
                                              old.hostname, 2 * 365 * 86400).to_wire())
    pushed = time.time()
    outcomes = await query(console.node.socket, "certificates_push", {
        "certificates": [base64.b64encode(wire).decode() for wire in renewed]})
    if any(o.startswith("refused") for o in outcomes.values()):
        raise SystemExit(f"a push was refused: {outcomes}")

    async def delivered() -> bool:
        return not await query(console.node.socket, "certificates_pending")
    await wait_for(delivered, 60, "every pushed certificate taken", interval=0.1)
    return time.time() - pushed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"size": args.size, "lifetime_s": args.lifetime}
    with tempfile.TemporaryDirectory(prefix="bench-certificates-") as tmp:
        mesh = Mesh(Path(tmp), args.size, 240, "lan")
        laptop, crashed, shelved = mesh.agents[-1], mesh.agents[-2], mesh.agents[-3]
        _issue(mesh, laptop.node.name, args.lifetime)
        _issue(mesh, shelved.node.name, args.lifetime)
        _asks_every(mesh, shelved.node.name, ASK_S)
        try:
            await mesh.start()
            joined = await measure_join(mesh, 120)
            say(f"N={args.size}: joined after {max(joined['first']):.2f}s")
            node = mesh.ids[laptop.node.name]
            status = await query(laptop.node.socket, "certificate")
            expires = status["expires"]
            if expires - time.time() < 2:
                raise SystemExit("the certificate ended before the mesh had joined: "
                                 "raise --lifetime")
            others = [a for a in mesh.agents if a not in (laptop, crashed, shelved)]
            dropped = await _seen(mesh, others, node, "left", expires, args.lifetime + 30)
            await _seen(mesh, others, mesh.ids[shelved.node.name], "left", expires, 30)
            result["expiry_dropped_max_s"] = round(max(dropped), 3)
            result["expiry_dropped_median_s"] = round(statistics.median(dropped), 3)
            say(f"expiry: every agent had dropped the node {max(dropped):.3f}s after its "
                f"certificate ended (median {statistics.median(dropped):.3f}s)")

            _issue(mesh, laptop.node.name, 365 * 86400)
            asked = time.time()
            await query(laptop.node.socket, "certificate", {"check": True})
            back = await _seen(mesh, others, node, "alive", asked, 60)
            result["renewal_seen_max_s"] = round(max(back), 3)
            result["renewal_seen_median_s"] = round(statistics.median(back), 3)
            say(f"renewal: every agent saw the node alive again {max(back):.3f}s after it "
                f"was told to look (median {statistics.median(back):.3f}s)")

            pushed = time.time()
            outcome = await query(mesh.agents[0].node.socket, "certificates_push", {
                "certificates": [base64.b64encode(_renewal(mesh, shelved.node.name)).decode()]})
            say(f"ended renewal pushed: {next(iter(outcome.values()))}")
            back = await _seen(mesh, others, mesh.ids[shelved.node.name], "alive", pushed, 60)
            result["ended_renewal_max_s"] = round(max(back), 3)
            result["ended_renewal_median_s"] = round(statistics.median(back), 3)
            result["ended_renewal_ask_s"] = ASK_S
            say(f"ended renewal: every agent saw the ended node alive again {max(back):.3f}s "
                f"after the push (median {statistics.median(back):.3f}s; it asks every "
                f"{ASK_S}s)")

            fleet = await _fleet_renewal(mesh, mesh.agents[0])
            result["fleet_renewal_s"] = round(fleet, 3)
            say(f"fleet renewal: all {args.size} nodes took their pushed certificate "
                f"{fleet:.3f}s after the push")

            killed = await measure_failure(mesh, crashed, "kill")
            result["kill9_max_s"] = round(max(killed), 3)
            for key in ("expiry_dropped_max_s", "renewal_seen_max_s", "ended_renewal_max_s",
                        "fleet_renewal_s"):
                result[key.removesuffix("_max_s").removesuffix("_s") + "_vs_kill9_ratio"] = round(
                    result[key] / max(killed), 3)
            say(f"baseline: kill -9 seen by every agent after {max(killed):.3f}s")
        finally:
            mesh.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--quick", action="store_true", help="10 agents, 15 s certificate")
    parser.add_argument("--size", type=int, default=20, help="agents (default 20)")
    parser.add_argument("--lifetime", type=int, default=30,
                        help="seconds the short certificate runs from its issue (default 30)")
    args = parser.parse_args()
    if args.quick:
        args.size, args.lifetime = 10, 15
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
