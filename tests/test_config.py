"""The agent's TOML configuration: defaults, documentation, and typed rejection."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from meshagent.config import (
    AgentConfig,
    ConfigError,
    describe_keys,
    load_config,
    parse_config,
    parse_host_port,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "agent.toml"


def test_empty_file_gives_lan_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("")
    config = load_config(path)
    assert config.network.port == 7946
    assert config.sessions.max_peers == 20
    assert config.membership.profile == "lan"
    assert config.discovery.multicast is True
    assert config.control_socket == Path("/var/lib/meshagent/control.sock")


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[node]\nstate_dir = "state"\n[control]\nsocket = "run/ctl.sock"\n')
    config = load_config(path)
    assert config.node.state_dir == tmp_path / "state"
    assert config.control_socket == tmp_path / "run" / "ctl.sock"


def test_control_socket_defaults_into_the_state_directory(tmp_path: Path) -> None:
    config = parse_config({"node": {"state_dir": "s"}}, tmp_path)
    assert config.control_socket == tmp_path / "s" / "control.sock"


@pytest.mark.parametrize(("document", "key"), [
    ("[sessions]\nmax_peers = 0\n", "sessions.max_peers"),
    ("[sessions]\nmax_peers = \"many\"\n", "sessions.max_peers"),
    ("[sessions]\nmax_peers = true\n", "sessions.max_peers"),
    ("[network]\nport = 70000\n", "network.port"),
    ("[network]\nlisten = \"not-an-ip\"\n", "network.listen"),
    ("[network]\nadvertise = [\"10.0.0.1\", 5]\n", "network.advertise[1]"),
    ("[network]\nbogus = 1\n", "network.bogus"),
    ("[nosuch]\nx = 1\n", "nosuch"),
    ("[membership]\nprofile = \"fast\"\n", "membership.profile"),
    ("[discovery]\nmulticast_group = \"10.1.1.1\"\n", "discovery.multicast_group"),
    ("[discovery]\nseeds = [\"10.0.0.1:99999\"]\n", "discovery.seeds"),
    ("[node]\ntags = { site = 3 }\n", "node.tags.site"),
    ("[routing]\nupdate_interval_s = 5.0\nhold_time_s = 4.0\n", "routing.hold_time_s"),
    ("network = 3\n", "network"),
])
def test_bad_value_is_rejected_naming_its_key(tmp_path: Path, document: str, key: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(document)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(key + ":")


def test_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[network\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_seeds_parse_with_and_without_port() -> None:
    config = parse_config({"network": {"port": 9000},
                           "discovery": {"seeds": ["10.0.0.1", "10.0.0.2:7000", "[::1]:5"]}})
    assert config.seed_addresses() == [("10.0.0.1", 9000), ("10.0.0.2", 7000), ("::1", 5)]


def test_host_port_rejects_junk() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        parse_host_port(":80", 1, "seeds")
    with pytest.raises(ConfigError):
        parse_host_port("host:abc", 1)


def test_every_key_is_documented_in_the_example_file() -> None:
    text = EXAMPLE.read_text()
    document = tomllib.loads(text)
    for key, _default, doc in describe_keys():
        section, name = key.split(".")
        assert doc, key
        assert f"{name} =" in text, f"{key} missing from examples/agent.toml"
        assert section in document, section
    parse_config(document, EXAMPLE.parent)


def test_config_is_immutable() -> None:
    config = AgentConfig()
    with pytest.raises(AttributeError):
        config.network.port = 1  # type: ignore[misc]
