"""``meshctl leader``: who leads the mesh, at which term.

With a web service (``--server`` or ``MESHCTL_SERVER``): every mesh the service serves,
its leader, term, whether that leader is connected now and since when. Without one: the
local agent's view over its control socket (the leader, the term, this node's place in
the election, and its uplink when it leads).
"""

from __future__ import annotations

import argparse
from typing import Any

from meshagent.cli.api_client import add_server_options, client_from_args
from meshagent.cli.control_client import add_socket_arguments, call_agent
from meshagent.cli.tables import ago, print_json, render, short_id

HELP = "show the mesh's elected leader and term (from the web service or the local agent)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_options(parser)
    add_socket_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def run(args: argparse.Namespace) -> int:
    if args.server:
        meshes = client_from_args(args).meshes()
        if args.json:
            print_json(meshes)
        else:
            print(format_meshes(meshes))
        return 0
    status = call_agent(args, "leader")
    if args.json:
        print_json(status)
    else:
        print(format_agent_view(status))
    return 0 if status.get("leader") else 1


def format_meshes(meshes: list[dict[str, Any]]) -> str:
    rows = []
    for mesh in meshes:
        leader = mesh.get("leader") or {}
        rows.append([short_id(mesh.get("mesh")), str(mesh.get("name", "-")),
                     short_id(leader.get("node")), str(leader.get("term", "-")),
                     "yes" if leader.get("connected") else "no" if leader else "-",
                     ago(leader.get("since"))])
    return render(["MESH", "NAME", "LEADER", "TERM", "CONNECTED", "SINCE"], rows,
                  f"{len(meshes)} mesh{'es' if len(meshes) != 1 else ''}")


def format_agent_view(status: dict[str, Any]) -> str:
    leader = status.get("leader")
    lines = []
    if leader:
        who = leader["node_id"] + (f" ({leader['hostname']})" if leader.get("hostname") else "")
        lines.append(f"leader    {who}{'  <- this node' if leader.get('self') else ''}")
        lines.append(f"term      {leader['term']}")
    else:
        lines.append("leader    none elected yet")
    candidates = status.get("candidates") or []
    me = status.get("self")
    place = (f"#{candidates.index(me) + 1} of {len(candidates)} candidates"
             if me in candidates else "not a candidate (no [server] configured)")
    lines.append(f"this node {short_id(me)}: {place}; highest term seen "
                 f"{status.get('known_term')}; web service reach {status.get('reach')}")
    uplink = status.get("uplink")
    if uplink and uplink.get("leading"):
        lines.append(f"uplink    {uplink['url']} term {uplink['term']}: "
                     f"{'connected' if uplink['connected'] else 'connecting'}, "
                     f"{uplink['pending']} command(s) in flight, "
                     f"{uplink['results_spooled']} result(s) spooled")
    return "\n".join(lines)
