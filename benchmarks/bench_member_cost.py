"""What learning one member costs an agent, whole, against the signature checks in it.

    python benchmarks/bench_member_cost.py [--members N] [--rounds R] [--quick] [--json]

A mass join is bound by CPU (``bench_membership.py``): every agent learns every member,
and at 100 agents on 2 cores what each one costs decides the join. Learning a member is
``Membership.accept_record``: parse the record and the certificate inside it, check both
signatures (certificate against the mesh root, record against the node), hand the
certificate to the datagram keys, add the member to the view, tell the listeners (here
the agent's transition log; an agent also runs its election, sessions and command relay
on each change) and queue the announcement.

Each round a fresh agent's membership (started on the in-memory transport) learns N
members it has never seen, from records signed beforehand. The baseline, in the same
round: the two Ed25519 checks of the same records, straight through the C core. Figures
are CPU microseconds per member (``time.thread_time``), the best round of R:

- ``accept_us``: the whole of ``accept_record``;
- ``checks_us``: its two signature checks alone;
- ``around_checks_us``: the difference, the Python that surrounds the checks;
- ``accept_vs_checks``: ``accept_us / checks_us`` (1 would be nothing but the checks).

One process, warm caches: in a mesh of 100 agent processes on 2 cores a record accepted
costs about 1.6 times as much (BENCHMARKS.md). With ``--json`` the last line is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from meshagent import core
from meshagent.identity import MeshRoot, NodeIdentity
from meshagent.membership import Membership
from meshagent.profiles import Profile
from meshagent.record import NodeRecord
from meshagent.transitions import TransitionLog
from meshagent.transport import MemoryNetwork


def _records(root: MeshRoot, count: int, round_index: int) -> list[NodeRecord]:
    """``count`` members' records, as a joining agent receives them (fresh signatures:
    nothing a cache could have seen)."""
    records = []
    for index in range(count):
        identity = NodeIdentity.generate()
        cert = root.issue_certificate(identity.sign_public, identity.dh_public, ["agent"],
                                      f"r{round_index}-node{index}")
        records.append(NodeRecord.sign(
            identity, cert, incarnation=1, hostname=f"r{round_index}-node{index}",
            os="linux", addresses=[f"10.{round_index % 250}.{index // 250}.{index % 250}:7946"],
            agent_version="0.1", power_source="ac", load=0.2, tags={"site": "lab"}))
    return records


def _checks(records: list[NodeRecord], root_public: bytes) -> float:
    """CPU seconds for the two signature checks of each record, in the C core."""
    calls = [(root_public, r.cert.signed.message(), r.cert.signed.signature) for r in records]
    calls += [(r.cert.sign_public, r.signed.message(), r.signed.signature) for r in records]
    start = time.thread_time()
    for public, message, signature in calls:
        if not core.ed25519_verify(public, message, signature):
            raise SystemExit("a signature did not verify")
    return time.thread_time() - start


async def _accept(root: MeshRoot, records: list[NodeRecord], address: int) -> float:
    """CPU seconds for a fresh agent's membership to learn ``records``."""
    identity = NodeIdentity.generate()
    cert = root.issue_certificate(identity.sign_public, identity.dh_public, ["agent"], "me")
    network = MemoryNetwork(seed=address)
    membership = Membership(identity, cert, root.trust,
                            network.transport(("10.255.0.1", 7946)), profile=Profile.LAN)
    membership.on_change(TransitionLog().record)
    await membership.start()
    try:
        wires = [record.wire for record in records]
        start = time.thread_time()
        for wire in wires:
            membership.accept_record(wire)
        spent = time.thread_time() - start
        if len(membership.members()) != len(records) + 1:
            raise SystemExit("not every member was learnt")
        return spent
    finally:
        await membership.stop()


async def run(members: int, rounds: int) -> dict[str, float]:
    root = MeshRoot.create()
    best_accept = best_checks = float("inf")
    for index in range(rounds):
        records = _records(root, members, index)
        best_accept = min(best_accept, await _accept(root, records, index))
        best_checks = min(best_checks, _checks(records, root.trust.root_public))
    accept_us = best_accept / members * 1e6
    checks_us = best_checks / members * 1e6
    return {"members": members, "rounds": rounds, "accept_us": round(accept_us, 1),
            "checks_us": round(checks_us, 1),
            "around_checks_us": round(accept_us - checks_us, 1),
            "accept_vs_checks": round(accept_us / checks_us, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100, help="members learnt per round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds; the best counts")
    parser.add_argument("--quick", action="store_true", help="20 members, 3 rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    members, rounds = (20, 3) if args.quick else (args.members, args.rounds)
    figures = asyncio.run(run(members, rounds))
    print(f"learning one member: {figures['accept_us']:.1f} us of CPU, of which the two "
          f"signature checks {figures['checks_us']:.1f} us and the Python around them "
          f"{figures['around_checks_us']:.1f} us (whole / checks "
          f"{figures['accept_vs_checks']:.2f}); best of {rounds} rounds of {members}")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
