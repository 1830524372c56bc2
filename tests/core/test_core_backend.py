"""Backend selection, the shared public names, and the version check of the C core."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import meshagent._version
import meshagent.core
from meshagent.core import _native, cbackend, pyref


def test_both_backends_export_the_same_names() -> None:
    assert sorted(cbackend.__all__) == sorted(pyref.__all__)
    for name in cbackend.__all__:
        assert getattr(meshagent.core, name) is getattr(
            cbackend if meshagent.core.BACKEND == "c" else pyref, name)


def test_backend_follows_the_environment() -> None:
    assert meshagent.core.BACKEND == os.environ.get("MESHAGENT_BACKEND", "c")
    for backend in ("c", "python"):
        result = subprocess.run(
            [sys.executable, "-c", "import meshagent.core as c; print(c.BACKEND, c.Tunnel)"],
            env={**os.environ, "MESHAGENT_BACKEND": backend}, capture_output=True, text=True,
            check=True)
        assert result.stdout.startswith(backend)
        assert ("pyref" if backend == "python" else "cbackend") in result.stdout


def test_unknown_backend_is_a_config_error() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import meshagent.core"],
        env={**os.environ, "MESHAGENT_BACKEND": "fortran"}, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "fortran" in result.stderr


def test_extension_built_for_another_version_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built_for = meshagent._version.__version__
    monkeypatch.setattr(meshagent._version, "__version__", "0.0.0-other")
    try:
        with pytest.raises(ImportError, match=f"built for meshagent {built_for}, but this is "
                                              "meshagent 0.0.0-other"):
            importlib.reload(_native)
    finally:
        monkeypatch.undo()
        importlib.reload(_native)
