"""``meshctl wake NODE``: power on a sleeping (or soft-off) node through its Intel AMT.

    meshctl wake lab-pc-07 --key alice.key --cert alice.cert
    meshctl wake 3f2a9c --via 81c0de --no-wait

The sleeping node's agent cannot take commands, so the signed ``wake`` command is
addressed to a live peer on the same network, which asks the node's AMT to power on with
the wake account the node shared with the mesh (see ``meshagent.amtbridge``). The peer is
``--via`` if given, else chosen from what the web service knows: a live node with an
address in the same IPv4 /24 (IPv6 /64) as the sleeper, preferring the leader that
reported it, else the leader itself. Once the host is up its agent rejoins on its own.

The operator's scopes must cover ``power`` (or ``run:wake``), and ``wake`` must be on the
mesh's allowlist. Exit status: 0 when the peer reports the power-on request done.
"""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from meshagent.cli.api_client import add_server_options, client_from_args
from meshagent.cli.ctl_run import resolve_node, wait_for_results
from meshagent.cli.operator_credentials import add_operator_options, load_operator
from meshagent.cli.tables import print_json
from meshagent.cli.times import parse_duration
from meshagent.commands import Target, sign_command
from meshagent.errors import ConfigError
from meshagent.transport import parse_address

HELP = "power on a sleeping node through its AMT, by a peer on its network"

SLEEPING_STATES = ("asleep", "off")
LIVE_STATES = ("alive",)


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    parser.add_argument("node", help="the node to wake: hex id, unique prefix, or host name")
    parser.add_argument("--via", metavar="ID",
                        help="the peer that asks the node's AMT (default: chosen by network)")
    add_operator_options(parser)
    parser.add_argument("--ttl", type=parse_duration, default=300.0,
                        help="how long the command stays valid (default 5m)")
    parser.add_argument("--force", action="store_true",
                        help="send even if the service does not list the node as asleep/off")
    parser.add_argument("--no-wait", action="store_true", help="queue and return at once")
    parser.add_argument("--timeout", type=parse_duration, default=30.0,
                        help="how long to wait for the peer's result (default 30s)")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def _networks(node: dict[str, Any]) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for text in (node.get("record") or {}).get("addresses") or []:
        try:
            ip = ipaddress.ip_address(parse_address(str(text), 1)[0])
        except ValueError:
            continue
        networks.add(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}",
                                          strict=False))
    return networks


def choose_waker(sleeper: dict[str, Any], nodes: list[dict[str, Any]]) -> str:
    """The hex id of the live node that should carry out the wake (see the module doc)."""
    wanted = _networks(sleeper)
    leader = sleeper.get("via_leader")
    live = [n for n in nodes if n.get("state") in LIVE_STATES and n["node"] != sleeper["node"]]
    neighbours = sorted((n["node"] for n in live if _networks(n) & wanted),
                        key=lambda node: (node != leader, node))
    if neighbours:
        return neighbours[0]
    if leader and leader != sleeper["node"]:
        return str(leader)
    raise ConfigError("no live node to carry out the wake; name one with --via")


def run(args: argparse.Namespace) -> int:
    key, cert = load_operator(args)
    client = client_from_args(args)
    node_id = resolve_node(client, args.node).hex()
    sleeper = client.get(f"/api/nodes/{node_id}")
    if sleeper.get("state") not in SLEEPING_STATES and not args.force:
        raise ConfigError(f"node {node_id[:12]} is {sleeper.get('state')}, not asleep or off "
                          "(--force sends the wake anyway)")
    if args.via:
        waker = resolve_node(client, args.via).hex()
    else:
        waker = choose_waker(sleeper, client.nodes(mesh=sleeper.get("mesh"), limit=10_000))
    command = sign_command(key, cert, Target.node(bytes.fromhex(waker)), "wake",
                           {"node": node_id}, args.ttl)
    answer = client.submit_command(command.to_wire())
    outcome: dict[str, Any] = {"id": answer["id"], "node": node_id, "via": waker,
                               "results": []}
    if not args.no_wait:
        outcome["results"] = wait_for_results(client, answer["id"], 1, args.timeout)["results"]
    if args.json:
        print_json(outcome)
    else:
        print(f"wake {node_id[:12]} via {waker[:12]}: command {answer['id']} queued")
        for result in outcome["results"]:
            print(f"{result.get('status')}: {result.get('output')}")
    if args.no_wait:
        return 0
    return 0 if [r.get("status") for r in outcome["results"]] == ["ok"] else 1
