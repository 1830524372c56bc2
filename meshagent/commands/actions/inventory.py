"""``inventory``: what this computer is — CPU, memory, disks, OS, network, packages.

Hardware and OS facts come from psutil and ``platform``; installed packages from the
system package manager (``dpkg-query`` or ``rpm``, whichever exists). A fact that cannot
be read (a disk that refuses ``statvfs``, no package manager) is left out, not an error.
``args``: ``{"packages": bool}`` (default true) to skip the slowest part.
"""

from __future__ import annotations

import asyncio
import platform
import shutil
import socket
from collections.abc import Mapping
from typing import Any

import psutil

from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec
from meshagent.log import get_logger

__all__ = ["ACTION", "collect_system", "installed_packages"]

log = get_logger(__name__)

PACKAGE_QUERY_TIMEOUT_S = 60.0
# (manager, argv) tried in order; each prints "name<TAB>version" lines.
_PACKAGE_MANAGERS = (
    ("dpkg", ["dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\n"]),
    ("rpm", ["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"]),
)
_FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6", psutil.AF_LINK: "mac"}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _disks() -> list[dict[str, Any]]:
    disks = []
    for part in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        disks.append({"device": part.device, "mountpoint": part.mountpoint,
                      "fstype": part.fstype, "total_bytes": usage.total,
                      "free_bytes": usage.free})
    return disks


def _interfaces() -> list[dict[str, Any]]:
    stats = psutil.net_if_stats()
    result = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        stat = stats.get(name)
        result.append({
            "name": name,
            "up": bool(stat and stat.isup),
            "mtu": stat.mtu if stat else None,
            "speed_mbps": stat.speed if stat else None,
            "addresses": [{"family": _FAMILIES.get(a.family, str(a.family)),
                           "address": a.address, "netmask": a.netmask} for a in addrs],
        })
    return result


def collect_system() -> dict[str, Any]:
    """Blocking: CPU, memory, disks, OS and network facts."""
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    freq = psutil.cpu_freq()
    uname = platform.uname()
    return {
        "cpu": {"model": _cpu_model(), "logical": psutil.cpu_count(logical=True),
                "physical": psutil.cpu_count(logical=False),
                "freq_mhz": (freq.max or freq.current) if freq else None,
                "load_avg": list(psutil.getloadavg())},
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available,
                   "swap_total_bytes": swap.total},
        "disks": _disks(),
        "os": {"system": uname.system, "release": uname.release, "version": uname.version,
               "machine": uname.machine, "hostname": socket.gethostname(),
               "boot_time": psutil.boot_time()},
        "network": _interfaces(),
    }


async def installed_packages() -> dict[str, Any]:
    """``{"manager", "items": [[name, version], ...]}`` from the first package manager found."""
    for manager, argv in _PACKAGE_MANAGERS:
        if shutil.which(argv[0]) is None:
            continue
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), PACKAGE_QUERY_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            log.warning("package_query_failed", manager=manager, code=proc.returncode)
            continue
        items = sorted([line.split("\t", 1)[0], line.split("\t", 1)[1]]
                       for line in out.decode(errors="replace").splitlines() if "\t" in line)
        return {"manager": manager, "items": items}
    return {"manager": None, "items": []}


async def run(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    want_packages = args.get("packages", True)
    if not isinstance(want_packages, bool):
        raise ActionError("bad_args", "packages must be true or false")
    inventory = await asyncio.to_thread(collect_system)
    if want_packages:
        inventory["packages"] = await installed_packages()
    return inventory


ACTION = ActionSpec("inventory", "read", run)
