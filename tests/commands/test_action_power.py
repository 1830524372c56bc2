from __future__ import annotations

import asyncio

import pytest

from meshagent.commands import ActionError, PowerControl
from meshagent.commands.actions import power

from .conftest import Mesh


def test_dry_run_is_on_from_the_environment():
    assert PowerControl().dry_run  # conftest sets MESHAGENT_POWER_DRY_RUN=1


@pytest.mark.parametrize("operation", power.OPERATIONS)
async def test_dry_run_records_what_it_would_do(mesh: Mesh, operation):
    output = await power.ACTION.run({"operation": operation}, mesh.context())
    assert output["dry_run"] is True
    assert [r.operation for r in mesh.power.requests] == [operation]
    assert mesh.power.requests[0].argv == power.power_command(operation)


async def test_real_mode_runs_the_command_after_the_delay():
    ran: list[list[str]] = []
    done = asyncio.Event()

    async def runner(argv):
        ran.append(argv)
        done.set()
        return 0

    control = PowerControl(dry_run=False, delay_s=0.01, runner=runner)
    control.request("restart")
    assert ran == []  # not before the result could be sent
    await asyncio.wait_for(done.wait(), 5)
    assert ran == [power.power_command("restart")]


def test_platform_commands():
    assert power.power_command("shutdown", "linux") == ["systemctl", "poweroff"]
    assert power.power_command("sleep", "darwin") == ["pmset", "sleepnow"]
    assert power.power_command("restart", "win32")[0] == "shutdown"
    with pytest.raises(ActionError):
        power.power_command("sleep", "plan9")


@pytest.mark.parametrize("args", [{}, {"operation": "explode"}, {"operation": 1}])
async def test_unknown_operation_is_refused(mesh: Mesh, args):
    with pytest.raises(ActionError):
        await power.ACTION.run(args, mesh.context())
    assert mesh.power.requests == []
