from __future__ import annotations

import pytest

from meshagent.commands import ActionError, NotAllowlisted, build_allowlist
from meshagent.commands.actions import script

from .conftest import APPROVED_SCRIPT, Mesh

LOUD = b"#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\\\0' a\necho err >&2\n"
FAILING = b"echo partial\nexit 3\n"
SLOW = b"#!/bin/sh\necho started\nexec sleep 30\n"
FORKING = b"#!/bin/sh\n(sleep 30; echo late) &\necho $! > \"$1\"\n"


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (orphans may wait for an idle init)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _context(mesh: Mesh, *scripts: bytes):
    allowlist = build_allowlist(mesh.root, ["script"], {f"s{i}": s for i, s in
                                                         enumerate((APPROVED_SCRIPT, *scripts))})
    return mesh.context(allowlist)


async def test_approved_script_runs_with_arguments(mesh: Mesh):
    output = await script.ACTION.run({"content": APPROVED_SCRIPT, "argv": ["one", "two"]},
                                     _context(mesh))
    assert output["exit_code"] == 0 and output["stdout"] == b"approved one two\n"


async def test_unapproved_script_never_runs(mesh: Mesh, tmp_path):
    marker = tmp_path / "ran"
    content = f"touch {marker}\n".encode()
    with pytest.raises(NotAllowlisted):
        await script.ACTION.run({"content": content}, _context(mesh))
    assert not marker.exists()


async def test_output_is_bounded_and_the_rest_counted(mesh: Mesh):
    output = await script.ACTION.run({"content": LOUD}, _context(mesh, LOUD))
    assert len(output["stdout"]) == 4096 and output["stdout_dropped"] == 100000 - 4096
    assert output["stderr"] == b"err\n"


async def test_non_zero_exit_is_an_error_with_the_output(mesh: Mesh):
    with pytest.raises(ActionError) as info:
        await script.ACTION.run({"content": FAILING}, _context(mesh, FAILING))
    assert info.value.code == "script_failed"
    assert info.value.details["exit_code"] == 3 and info.value.details["stdout"] == b"partial\n"


async def test_script_over_its_timeout_is_killed(mesh: Mesh):
    with pytest.raises(ActionError) as info:
        await script.ACTION.run({"content": SLOW, "timeout_s": 0.5}, _context(mesh, SLOW))
    assert info.value.code == "timeout"


async def test_background_children_do_not_outlive_the_script(mesh: Mesh, tmp_path):
    pid_file = tmp_path / "child.pid"
    await script.ACTION.run({"content": FORKING, "argv": [str(pid_file)], "timeout_s": 5},
                            _context(mesh, FORKING))
    assert not _running(int(pid_file.read_text()))


@pytest.mark.parametrize("args", [{}, {"content": "text"}, {"content": b""},
                                  {"content": APPROVED_SCRIPT, "argv": "x"},
                                  {"content": APPROVED_SCRIPT, "timeout_s": -1}])
async def test_malformed_script_args_are_refused(mesh: Mesh, args):
    with pytest.raises(ActionError) as info:
        await script.ACTION.run(args, _context(mesh))
    assert info.value.code == "bad_args"


def test_interpreter_comes_from_the_shebang_line():
    assert script._interpreter(b"echo hi\n") == ["/bin/sh"]
    assert script._interpreter(b"#!/usr/bin/env python3\nprint(1)\n") == ["/usr/bin/env",
                                                                        "python3"]
    assert script._interpreter(b"#! /bin/bash -eu \n") == ["/bin/bash", "-eu"]


async def test_missing_interpreter_is_an_error_not_a_crash(mesh: Mesh):
    content = b"#!/nonexistent/interpreter\n"
    with pytest.raises(ActionError) as info:
        await script.ACTION.run({"content": content}, _context(mesh, content))
    assert info.value.code == "spawn_failed"


async def test_python_script_runs_through_env(mesh: Mesh):
    content = b"#!/usr/bin/env python3\nimport sys\nprint(sys.argv[1:])\n"
    output = await script.ACTION.run({"content": content, "argv": ["a"]},
                                     _context(mesh, content))
    assert output["stdout"] == b"['a']\n"
