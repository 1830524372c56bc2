from __future__ import annotations

import pytest

from meshagent.commands import ActionError
from meshagent.commands.actions import ping

from .conftest import Mesh


async def test_ping_answers_with_node_id_and_echo(mesh: Mesh):
    output = await ping.ACTION.run({"echo": "hello"}, mesh.context())
    assert output["pong"] is True and output["echo"] == "hello"
    assert output["node_id"] == mesh.node.node_id


@pytest.mark.parametrize("echo", [5, "x" * 2000])
async def test_ping_refuses_bad_echo(mesh: Mesh, echo):
    with pytest.raises(ActionError) as info:
        await ping.ACTION.run({"echo": echo}, mesh.context())
    assert info.value.code == "bad_args"
