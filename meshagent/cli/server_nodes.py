"""``meshctl nodes`` against the web service: the inventory its leaders report, in the
shape the local agent's ``nodes`` method returns, so one table and one JSON layout serve
both sources.

Filters are the agent's (``state``: list of names, ``tags``: {key: value}, all must
match); the first state and tag go to the service's query, the rest are applied here.
"""

from __future__ import annotations

import argparse
from typing import Any

from meshagent.cli.api_client import client_from_args

__all__ = ["nodes_from_server"]

LIMIT = 10_000


def nodes_from_server(args: argparse.Namespace, params: dict[str, Any]) -> list[dict[str, Any]]:
    states: list[str] = params.get("state") or []
    tags: dict[str, str] = params.get("tags") or {}
    query: dict[str, Any] = {"limit": LIMIT}
    if len(states) == 1:
        query["state"] = states[0]
    if tags:
        key, value = next(iter(tags.items()))
        query["tag"] = f"{key}={value}"
    rows = client_from_args(args).nodes(**query)
    nodes = [_agent_shape(row) for row in rows]
    return [n for n in nodes if (not states or n["state"] in states)
            and all(n["tags"].get(k) == v for k, v in tags.items())]


def _agent_shape(row: dict[str, Any]) -> dict[str, Any]:
    record = row.get("record") or {}
    addresses = record.get("addresses") or []
    return {"node_id": row["node"], "mesh_id": row.get("mesh"), "host": record.get("hostname"),
            "state": row["state"], "address": addresses[0] if addresses else None,
            "version": record.get("agent_version"), "os": record.get("os"),
            "last_seen": row.get("last_seen"), "tags": record.get("tags") or {},
            "power": record.get("power_source"), "load": record.get("load"),
            "amt": record.get("amt_present"), "self": False,
            "leader": row.get("via_leader"), "route": None,
            "certificate": record.get("certificate")}
