"""``meshctl nodes`` on its own: the table, and the certificate filter (the machines to
renew), on node dictionaries in the shape both sources give."""

from __future__ import annotations

from meshagent.cli.ctl_nodes import cert_expiring, format_table

NOW = 1_800_000_000.0
DAY = 86400.0


def _node(name: str, expires: float | None) -> dict:
    node = {"node_id": name * 8, "host": name, "state": "alive", "address": "10.0.0.1:7946",
            "version": "1", "last_seen": NOW, "route": {"kind": "direct", "metric": 1}}
    if expires is not None:
        node["certificate"] = {"serial": 7, "expires": expires}
    return node


def test_cert_expiring_lists_the_ended_and_the_ending_soonest_first() -> None:
    nodes = [_node("aa", NOW + 40 * DAY), _node("bb", NOW + 3 * DAY),
             _node("cc", NOW - DAY), _node("dd", None), _node("ee", NOW + 30 * DAY)]
    assert [n["host"] for n in cert_expiring(nodes, 30 * DAY, now=NOW)] == ["cc", "bb", "ee"]
    assert cert_expiring(nodes, 1, now=NOW - 2 * DAY) == []


def test_table_shows_short_ids_relative_times_and_routes() -> None:
    table = format_table([_node("aa", NOW)], now=NOW + 90)
    header, row, total = table.splitlines()
    assert header.split() == ["NODE", "HOST", "STATE", "ADDRESS", "VERSION", "LAST", "SEEN",
                              "ROUTE"]
    assert row.split() == ["aaaaaaaaaaaa", "aa", "alive", "10.0.0.1:7946", "1", "90s", "ago",
                           "direct"]
    assert total == "1 node"
