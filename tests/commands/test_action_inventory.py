from __future__ import annotations

import shutil

import psutil
import pytest

from meshagent import codec
from meshagent.commands import ActionError
from meshagent.commands.actions import inventory

from .conftest import Mesh


async def test_inventory_reports_hardware_os_and_network(mesh: Mesh):
    output = await inventory.ACTION.run({"packages": False}, mesh.context())
    assert output["cpu"]["logical"] == psutil.cpu_count()
    assert output["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert any(d["mountpoint"] == "/" for d in output["disks"])
    assert output["os"]["system"] and output["os"]["hostname"]
    assert any(i["name"] == "lo" for i in output["network"])
    assert "packages" not in output
    codec.pack(output)  # a result body must encode


@pytest.mark.skipif(shutil.which("dpkg-query") is None and shutil.which("rpm") is None,
                    reason="no package manager")
async def test_inventory_lists_installed_packages(mesh: Mesh):
    output = await inventory.ACTION.run({}, mesh.context())
    packages = output["packages"]
    assert packages["manager"] in ("dpkg", "rpm") and len(packages["items"]) > 10
    names = {name for name, _version in packages["items"]}
    assert any(n.startswith(("libc6", "glibc", "coreutils")) for n in names)


async def test_missing_package_manager_gives_an_empty_list(mesh: Mesh, monkeypatch):
    monkeypatch.setattr(inventory.shutil, "which", lambda name: None)
    assert await inventory.installed_packages() == {"manager": None, "items": []}


async def test_inventory_refuses_bad_args(mesh: Mesh):
    with pytest.raises(ActionError):
        await inventory.ACTION.run({"packages": "yes"}, mesh.context())
