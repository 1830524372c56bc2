"""The agent's configuration: a TOML file read into typed, frozen dataclasses.

    config = load_config(Path("/etc/meshagent/agent.toml"))
    config.network.port, config.sessions.max_peers, config.node.identity_path ...

Contract:
- Every key has a default that works on a LAN, so an empty file (or no file) is a valid
  configuration apart from the node's key and certificate files, which must exist when the
  agent starts (the agent checks that, not this module).
- Every key is documented here, in the ``doc`` metadata of its field; ``examples/agent.toml``
  lists them all (a test holds the two together) and ``describe_keys()`` renders them.
- A bad file raises ``ConfigError`` whose message names the key (``sessions.max_peers``):
  unknown sections or keys, wrong types and out-of-range values are all rejected, never
  guessed at.
- Relative paths are resolved against the directory of the configuration file.

This module only parses; the library modules take these values as parameters.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from meshagent.errors import ConfigError
from meshagent.eventloop import EVENT_LOOPS

__all__ = [
    "AgentConfig", "NodeConfig", "NetworkConfig", "DiscoveryConfig", "MembershipConfig",
    "SessionsConfig", "RoutingConfig", "ControlConfig", "LogConfig", "RuntimeConfig",
    "ServerConfig", "AmtConfig", "load_config", "parse_config", "describe_keys",
    "parse_host_port", "DEFAULT_PORT",
]

DEFAULT_PORT = 7946
PROFILES = ("lan", "wan", "local")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _key(doc: str, default: Any = None, *, factory: Any = None, minimum: float | None = None,
         maximum: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A configuration key: its documentation, default and allowed range."""
    meta = {"doc": doc, "minimum": minimum, "maximum": maximum, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NodeConfig:
    """[node]: who this agent is."""

    state_dir: Path = _key("The node directory: its keys (node.key), membership certificate "
                           "(node.cert) and mesh trust (mesh.trust), as written by `meshagent "
                           "mesh enroll`; also the default home of the control socket. Relative "
                           "to the config file's directory.", Path("/var/lib/meshagent"))
    hostname: str = _key("Name shown to peers and in `meshctl nodes`; empty = the system "
                         "host name.", "")
    tags: dict[str, str] = _key("Free-form labels gossiped with this node's record, e.g. "
                                "{ site = \"lab\" }; `meshctl nodes --tag site=lab` filters "
                                "on them.", factory=dict)
    certificate_check_s: float = _key("Seconds between looks at node.cert for a renewed "
                                      "certificate, adopted without a restart; while this "
                                      "node's certificate has ended, also between asks to "
                                      "members for a renewal pushed for it.", 60.0,
                                      minimum=1.0)
    certificate_warn_days: float = _key("Log certificate_expires_soon (once a day) when this "
                                        "node's certificate has fewer days left; 0 = never.",
                                        30.0, minimum=0.0)

    @property
    def display_name(self) -> str:
        return self.hostname or socket.gethostname()


@dataclass(frozen=True)
class NetworkConfig:
    """[network]: where the agent listens."""

    listen: str = _key("Address to bind, for UDP (membership) and TCP (peer sessions). "
                       "0.0.0.0 = every interface.", "0.0.0.0")
    port: int = _key("Port for both UDP membership datagrams and TCP peer sessions.",
                     DEFAULT_PORT, minimum=1, maximum=65535)
    advertise: list[str] = _key("Addresses (IPs) announced to peers; empty = the listen "
                                "address, or every interface address when listening on all.",
                                factory=list)


@dataclass(frozen=True)
class DiscoveryConfig:
    """[discovery]: how the agent finds its first peer."""

    multicast: bool = _key("Send and listen for signed UDP multicast beacons.", True)
    multicast_group: str = _key("IPv4 multicast group of the beacons.", "239.255.77.77")
    multicast_port: int = _key("UDP port of the beacons.", 7947, minimum=1, maximum=65535)
    multicast_interface: str = _key("Address of the interface beacons leave from; empty = "
                                    "the system's default.", "")
    multicast_ttl: int = _key("IP TTL of beacons (1 = this subnet only).", 1,
                              minimum=1, maximum=255)
    beacon_interval_s: float = _key("Seconds between beacons.", 5.0, minimum=0.1,
                                    maximum=3600)
    seeds: list[str] = _key("Static peers \"host:port\" (port defaults to network.port) "
                            "contacted at start, for networks without multicast.",
                            factory=list)


@dataclass(frozen=True)
class MembershipConfig:
    """[membership]: failure detection timing."""

    profile: str = _key("Timing profile: \"lan\" (default), \"wan\" (slow links, fewer false "
                        "suspicions) or \"local\" (one machine, fastest).", "lan",
                        choices=PROFILES)


@dataclass(frozen=True)
class SessionsConfig:
    """[sessions]: encrypted TCP sessions with a bounded set of peers."""

    max_peers: int = _key("Most peer sessions held at once (inbound + outbound); the rest "
                          "of the mesh is reached through routing.", 20, minimum=1,
                          maximum=1000)
    connect_timeout_s: float = _key("Seconds to wait for a TCP connection.", 3.0,
                                    minimum=0.1, maximum=300)
    handshake_timeout_s: float = _key("Seconds allowed for the whole session handshake.", 5.0,
                                      minimum=0.1, maximum=300)
    keepalive_s: float = _key("Seconds of silence after which a session sends a keepalive.",
                              10.0, minimum=0.5, maximum=3600)
    reconnect_min_s: float = _key("First delay before redialling a peer that failed.", 0.5,
                                  minimum=0.01, maximum=3600)
    reconnect_max_s: float = _key("Longest delay between redials (the delay doubles).", 30.0,
                                  minimum=0.01, maximum=86400)


@dataclass(frozen=True)
class RoutingConfig:
    """[routing]: distance-vector routes over peer sessions."""

    update_interval_s: float = _key("Seconds between full route updates to each peer. "
                                    "Changes are sent at once over the (reliable) sessions; "
                                    "the full table is only a safety net.", 30.0,
                                    minimum=0.1, maximum=3600)
    hold_time_s: float = _key("Seconds a route learned from a peer lives without being "
                              "refreshed; more than 3 update intervals. A closed session "
                              "takes its routes at once whatever this says.", 120.0,
                              minimum=0.3, maximum=86400)
    max_hops: int = _key("Hop limit of relayed messages, and the longest route kept.", 16,
                         minimum=1, maximum=64)
    capacity: int = _key("Most routes held (size of the routing table).", 4096, minimum=16,
                         maximum=1 << 20)


@dataclass(frozen=True)
class ControlConfig:
    """[control]: the local control socket used by `meshctl` and `meshagent status`."""

    socket: Path = _key("Unix socket path (owner-only); empty = <state_dir>/control.sock.",
                        Path(""))


@dataclass(frozen=True)
class ServerConfig:
    """[server]: the web service the mesh's elected leader connects to."""

    url: str = _key("WebSocket URL of the web service's leader endpoint, e.g. "
                    "\"wss://mgmt.example.org:8443/uplink\"; empty = this node never leads "
                    "(it still runs commands the leader relays).", "")
    pin: str = _key("SHA-256 (hex) of the web service's TLS certificate, as `meshagent "
                    "server init` printed it; required with url.", "")
    lead: bool = _key("Whether this node may be elected leader (with url and pin set).", True)
    preference: int = _key("Election preference: among nodes alike in power source, the "
                           "higher leads.", 0, minimum=-1000000, maximum=1000000)


@dataclass(frozen=True)
class LogConfig:
    """[log]: the agent's log output."""

    level: str = _key("Lowest level logged: debug, info, warning or error.", "info",
                      choices=LOG_LEVELS)


@dataclass(frozen=True)
class RuntimeConfig:
    """[runtime]: how the agent process runs."""

    event_loop: str = _key("Event loop: auto (uvloop where it is installed, as it is on "
                           "Linux and macOS, else asyncio's own), asyncio, or uvloop "
                           "(an error where it cannot be imported).", "auto",
                           choices=EVENT_LOOPS)


@dataclass(frozen=True)
class AmtConfig:
    """[amt]: this computer's Intel AMT, which answers for it while it sleeps."""

    address: str = _key("Host (or host:port) of this computer's own AMT, as the local "
                        "manageability service reports it; empty = no AMT (the agent still "
                        "reads and wakes its peers' AMT with the credentials they share).", "")
    tls: bool = _key("Talk to AMT over TLS (port 16993) instead of HTTP (16992).", False)
    cert_sha256: str = _key("SHA-256 (hex) of AMT's TLS certificate, pinned and shared with "
                            "peers; empty = not checked.", "")
    admin_user: str = _key("AMT administrator account the agent provisions with.", "admin")
    admin_password_file: Path = _key("File holding the AMT administrator password (keep it "
                                     "owner-only); empty = <state_dir>/amt-admin.password.",
                                     Path(""))
    share_wake: bool = _key("Give members a second AMT account with only the Remote Control "
                            "realm so that `meshctl wake` works; false = peers can read power "
                            "state and the 3PDS record but never change power.", True)
    guest_user: str = _key("Name of the read-only guest account (General Info + Storage).",
                           "mesh-guest")
    waker_user: str = _key("Name of the wake account (Remote Control only).", "mesh-waker")
    record_interval_s: float = _key("Seconds between rewrites of this node's record in AMT's "
                                    "third-party storage (it is also written before sleep).",
                                    300.0, minimum=1, maximum=86400)
    probe_timeout_s: float = _key("Longest time spent asking one peer's AMT (power state "
                                  "and record, all requests together).", 5.0, minimum=0.1,
                                  maximum=120)


@dataclass(frozen=True)
class AgentConfig:
    """The whole file; one attribute per section."""

    node: NodeConfig = field(default_factory=NodeConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    amt: AmtConfig = field(default_factory=AmtConfig)

    @property
    def control_socket(self) -> Path:
        return self.control.socket if str(self.control.socket) not in ("", ".") \
            else self.node.state_dir / "control.sock"

    def seed_addresses(self) -> list[tuple[str, int]]:
        return [parse_host_port(seed, self.network.port, "discovery.seeds")
                for seed in self.discovery.seeds]


def parse_host_port(text: str, default_port: int, key: str = "address") -> tuple[str, int]:
    """``"host:port"``, ``"host"`` or ``"[v6]:port"`` -> (host, port); ConfigError on junk."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"{key}: bad address {text!r}")
            port = _port_of(rest[1:], key, text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port_of(port_text, key, text)
    if not host:
        raise ConfigError(f"{key}: bad address {text!r}")
    return host, port


def _port_of(text: str, key: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{key}: bad port in {whole!r}")
    return int(text)


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Check one TOML value against the field's type; returns the typed value."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if annotation is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path string, got {value!r}")
        return Path(os.path.expanduser(value)) if value else Path("")
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(item, item_type, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        _, item_type = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {str(name): _convert(item, item_type, f"{key}.{name}")
                for name, item in value.items()}
    raise ConfigError(f"{key}: unsupported type {annotation!r}")  # a bug in this module


def _check_range(value: Any, meta: typing.Mapping[str, Any], key: str) -> None:
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(meta['choices'])}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{key}: {value!r} is below the minimum {meta['minimum']}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{key}: {value!r} is above the maximum {meta['maximum']}")


def _section(cls: type, table: Any, name: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}: unknown key")
    values = {}
    for key, value in table.items():
        full = f"{name}.{key}"
        typed = _convert(value, hints[key], full)
        _check_range(typed, known[key].metadata, full)
        values[key] = typed
    return cls(**values)


def _check_addresses(config: AgentConfig) -> None:
    for key, text in [("network.listen", config.network.listen),
                      ("discovery.multicast_group", config.discovery.multicast_group),
                      *[(f"network.advertise[{i}]", a)
                        for i, a in enumerate(config.network.advertise)]]:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not an IP address") from None
    if not ipaddress.ip_address(config.discovery.multicast_group).is_multicast:
        raise ConfigError(f"discovery.multicast_group: {config.discovery.multicast_group} "
                          "is not a multicast address")
    config.seed_addresses()
    if config.routing.hold_time_s <= config.routing.update_interval_s:
        raise ConfigError("routing.hold_time_s: must exceed routing.update_interval_s")
    if config.sessions.reconnect_max_s < config.sessions.reconnect_min_s:
        raise ConfigError("sessions.reconnect_max_s: below sessions.reconnect_min_s")


def parse_config(data: dict[str, Any], base_dir: Path = Path(".")) -> AgentConfig:
    """Typed configuration from an already parsed TOML document."""
    sections = {f.name: f.type for f in fields(AgentConfig)}
    hints = typing.get_type_hints(AgentConfig)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section")
    config = AgentConfig(**{name: _section(hints[name], table, name)
                            for name, table in data.items()})
    node = config.node
    state_dir = (base_dir / node.state_dir).resolve()
    config = replace(config, node=replace(node, state_dir=state_dir))
    if str(config.control.socket) not in ("", "."):
        config = replace(config, control=ControlConfig(socket=base_dir / config.control.socket))
    password_file = config.amt.admin_password_file
    config = replace(config, amt=replace(config.amt, admin_password_file=(
        base_dir / password_file if str(password_file) not in ("", ".")
        else config.node.state_dir / "amt-admin.password")))
    _check_addresses(config)
    return config


def load_config(path: Path) -> AgentConfig:
    """Read and check a TOML configuration file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(data, Path(path).resolve().parent)


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, documentation) for every key, in file order, for docs and tests."""
    rows = []
    for section in fields(AgentConfig):
        default = section.default_factory()  # type: ignore[misc]
        assert is_dataclass(default)
        for key in fields(default):
            value = getattr(default, key.name)
            rows.append((f"{section.name}.{key.name}", _toml_literal(value), key.metadata["doc"]))
    return rows


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Path):
        return f'"{value}"' if str(value) != "." else '""'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml_literal(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(type(value))

