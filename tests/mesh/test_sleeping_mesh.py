"""Five agents over real sockets on 127.x, each with a software AMT device, behind the real
web service: two computers go to sleep, their peers find them asleep through AMT and read
their records from 3PDS, the console lists them as asleep with that metadata and finds one
by tag, and ``meshctl wake`` brings one back into the mesh."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from amt.operations.power import PowerState
from meshagent.amtbridge import SleepingNode, inventory_record
from meshagent.amtbridge.lab import SleepingLab
from meshagent.cli.api_client import ApiClient
from meshagent.cli.meshctl import main as meshctl
from meshagent.leaderlab import LAB_PASSWORD, free_port
from meshagent.membership import MemberState
from tests.polling import wait_for

COUNT = 5
SLEEPERS = (3, 4)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[SleepingLab]:
    lab = SleepingLab.create(tmp_path / "mesh", COUNT, service_port=free_port(),
                             first_address=random.randrange(2, 60_000),
                             tags={3: {"room": "b12"}, 4: {"room": "c7"}})
    try:
        await lab.start()
        yield lab
    finally:
        await lab.stop()


def _api(lab: SleepingLab) -> ApiClient:
    return ApiClient(lab.leaders.url, lab.leaders.pin, LAB_PASSWORD)


async def _rest(lab: SleepingLab, **filters: Any) -> list[dict[str, Any]]:
    return await asyncio.to_thread(_api(lab).nodes, **filters)


async def test_sleeping_computers_are_listed_searched_and_woken(lab: SleepingLab,
                                                                tmp_path: Path) -> None:
    await lab.leaders.settled(COUNT, timeout=60)

    async def grants_shared() -> bool:
        return all(h.agent is not None and h.agent.amt.amt_present and
                   len(h.agent.amt.status()["granted"]) == COUNT - 1 for h in lab.hosts)
    await wait_for(grants_shared, 20, "every agent's AMT provisioned and shared")

    for index in SLEEPERS:
        await lab.sleep(index)
    sleepers = {lab.node_id(i) for i in SLEEPERS}

    # Mesh level: every awake peer sees both asleep, with the record read from AMT.
    async def peers_know() -> bool:
        for host in lab.running():
            for node_id in sleepers:
                member = host.agent.membership.member(node_id)
                if member is None or member.state != MemberState.ASLEEP or not isinstance(
                        member.power_record, SleepingNode):
                    return False
        return True
    await wait_for(peers_know, 30, "peers see the sleepers asleep with their AMT records")
    observer = lab.running()[0].agent
    sleeping = observer.membership.member(lab.node_id(3)).power_record
    assert sleeping.power_state == PowerState.SLEEP_DEEP
    assert sleeping.amt_record.reason == "sleep"
    assert sleeping.amt_record.record.tags["room"] == "b12"
    assert len(sleeping.amt_record.peers) >= COUNT - 2

    # Console level: the web service (fed by the leader) lists both asleep, with the
    # node records read from their AMT, and a tag search over sleeping nodes finds one.
    async def listed() -> list[dict[str, Any]] | None:
        rows = await _rest(lab, state="asleep")
        return rows if {r["node"] for r in rows} == {n.hex() for n in sleepers} else None
    rows = await wait_for(listed, 30, "the console lists both asleep", interval=0.05)
    assert {r["record"]["hostname"] for r in rows} == {lab.hosts[i].name for i in SLEEPERS}
    member = observer.membership.member(lab.node_id(4))
    db_row = await lab.leaders.service.db.node(lab.node_id(4))
    assert db_row.record == inventory_record(member)  # the bytes read from its 3PDS block
    found = await _rest(lab, state="asleep", tag="room=b12")
    assert [r["node"] for r in found] == [lab.node_id(3).hex()]
    assert found[0]["record"]["tags"]["room"] == "b12"
    assert await _rest(lab, state="alive", tag="room=b12") == []
    by_name = await _rest(lab, state="asleep", q=lab.hosts[4].name)
    assert [r["node"] for r in by_name] == [lab.node_id(4).hex()]
    server = ["--server", lab.leaders.url, "--pin", lab.leaders.pin.hex(),
              "--token", LAB_PASSWORD]
    code, printed = await asyncio.to_thread(
        _capture, ["nodes", *server, "--state", "asleep", "--tag", "room=c7", "--json"])
    assert code == 0
    assert [(n["host"], n["state"]) for n in json.loads(printed)] == [("node5", "asleep")]

    # meshctl wake: signed here, queued at the service, relayed by the leader to a live
    # peer on the same network, which powers the node on through its AMT; the device's
    # hook starts the node's agent again and it rejoins.
    key, cert = tmp_path / "op.key", tmp_path / "op.cert"
    lab.leaders.operator.save(key)
    lab.leaders.operator_cert.save(cert)
    woken = lab.hosts[3]
    argv = ["wake", woken.name, *server, "--key", str(key), "--cert", str(cert),
            "--timeout", "30", "--json"]
    code, printed = await asyncio.to_thread(_capture, argv)
    assert code == 0, printed
    outcome = json.loads(printed)
    assert outcome["results"][0]["status"] == "ok"
    assert outcome["results"][0]["output"]["powered_on"] is True
    assert outcome["via"] != lab.node_id(3).hex()
    assert woken.device.power.state == PowerState.ON

    async def rejoined() -> bool:
        rows = await _rest(lab, state="alive")
        states = {h.agent.membership.member(lab.node_id(3)).state
                  for h in lab.running() if h is not woken}
        return lab.node_id(3).hex() in {r["node"] for r in rows} and \
            states == {MemberState.ALIVE}
    await wait_for(rejoined, 30, "the woken node alive again, in the mesh and at the console",
                   interval=0.05)
    assert woken.starts == 2
    still = await _rest(lab, state="asleep")
    assert [r["node"] for r in still] == [lab.node_id(4).hex()]


def _capture(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = meshctl(argv)
    return code, out.getvalue()
