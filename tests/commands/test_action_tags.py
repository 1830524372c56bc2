from __future__ import annotations

import pytest

from meshagent.commands import ActionError
from meshagent.commands.actions import tags
from meshagent.commands.actions.tags import MAX_TAGS

from .conftest import Mesh


async def test_set_and_remove_tags_and_notify_the_agent(mesh: Mesh):
    output = await tags.ACTION.run({"set": {"role": "kiosk"}, "remove": ["site"]},
                                   mesh.context())
    assert output == {"tags": {"role": "kiosk"}}
    assert mesh.tags.current() == {"role": "kiosk"}
    assert mesh.changes == [{"role": "kiosk"}]


async def test_no_change_means_no_notification(mesh: Mesh):
    await tags.ACTION.run({"set": {"site": "lab"}}, mesh.context())
    assert mesh.changes == []


@pytest.mark.parametrize("args", [{"set": {"bad key": "x"}}, {"set": {"k": 1}},
                                  {"set": {"k": "v"}, "remove": ["k"]}, {"set": []},
                                  {"remove": "site"},
                                  {"set": {f"k{i}": "v" for i in range(MAX_TAGS + 1)}}])
async def test_invalid_changes_leave_tags_untouched(mesh: Mesh, args):
    with pytest.raises(ActionError):
        await tags.ACTION.run(args, mesh.context())
    assert mesh.tags.current() == {"site": "lab"} and mesh.changes == []
