"""Linux network namespaces as hosts for agent tests: a switch namespace holding bridges,
host namespaces wired to them by veth pairs, links that can be cut and healed.

Names are unique per lab (``mt<random>-...``) so parallel runs do not collide, and
``NetLab.close`` deletes every namespace it made (which removes their veths and bridges)
whatever state the test left behind. Nothing is created in the caller's namespace.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

__all__ = ["NetLab", "Host", "netns_available"]


def netns_available() -> str | None:
    """None if namespaces can be used here, else the reason they cannot."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    probe = f"mtprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    if made.returncode != 0:
        return f"cannot create namespaces: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass
class Host:
    name: str
    namespace: str
    addresses: dict[str, str] = field(default_factory=dict)  # interface -> address

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]


class NetLab:
    """Bridges (one per subnet) in a switch namespace; hosts attached to them."""

    def __init__(self) -> None:
        self.prefix = f"mt{secrets.token_hex(3)}"
        self.switch = f"{self.prefix}-sw"
        self.namespaces: list[str] = []
        self.hosts: dict[str, Host] = {}
        self._ports: dict[tuple[str, str], str] = {}  # (host, bridge) -> switch-side veth
        self._add_namespace(self.switch)

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def bridge(self, name: str) -> None:
        _ip("-n", self.switch, "link", "add", name, "type", "bridge")
        # No IGMP snooping: without a querier it could keep beacons from some ports.
        _ip("-n", self.switch, "link", "set", name, "type", "bridge", "mcast_snooping", "0")
        _ip("-n", self.switch, "link", "set", name, "up")

    def trunk(self, bridge_a: str, bridge_b: str) -> str:
        """Join two bridges into one segment; returns the link name to cut."""
        a, b = f"tk{len(self._ports)}a", f"tk{len(self._ports)}b"
        _ip("-n", self.switch, "link", "add", a, "type", "veth", "peer", "name", b)
        for end, bridge in ((a, bridge_a), (b, bridge_b)):
            _ip("-n", self.switch, "link", "set", end, "master", bridge)
            _ip("-n", self.switch, "link", "set", end, "up")
        self._ports[(a, bridge_a)] = a
        return a

    def host(self, name: str) -> Host:
        host = Host(name, f"{self.prefix}-{name}")
        self._add_namespace(host.namespace)
        self.hosts[name] = host
        return host

    def attach(self, host: Host, bridge: str, address: str, prefix_len: int = 24,
               multicast: bool = False) -> str:
        """A veth from ``host`` to ``bridge`` with ``address``; returns the interface."""
        interface = f"eth{len(host.addresses)}"
        port = f"{host.name[:6]}-{bridge[:5]}"
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", interface,
            "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", port, "master", bridge)
        _ip("-n", self.switch, "link", "set", port, "up")
        _ip("-n", host.namespace, "addr", "add", f"{address}/{prefix_len}", "dev", interface)
        _ip("-n", host.namespace, "link", "set", interface, "up")
        if multicast:
            _ip("-n", host.namespace, "route", "add", "224.0.0.0/4", "dev", interface)
        host.addresses[interface] = address
        self._ports[(host.name, bridge)] = port
        return interface

    def set_link(self, port: str, up: bool) -> None:
        """Cut or heal a switch-side link (a host's port or a trunk)."""
        _ip("-n", self.switch, "link", "set", port, "up" if up else "down")

    def port_of(self, host: Host, bridge: str) -> str:
        return self._ports[(host.name, bridge)]

    def close(self) -> None:
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()
