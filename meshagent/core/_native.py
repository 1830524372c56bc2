"""Loads the compiled core (``meshagent._core``) and refuses one built for another version.

Both backends import this: the pure-Python twin reads its wire constants from the C
header through it too, so sizes are written once (``csrc/wire.h``).
"""

from __future__ import annotations

from meshagent._version import __version__
from meshagent.errors import MeshError

try:
    from meshagent._core import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "meshagent's C core (meshagent._core) is not built; run "
        "`pip install -e .` (needs a C compiler and OpenSSL headers)") from exc

__all__ = ["ffi", "lib"]


class CoreVersionMismatch(MeshError, ImportError):
    """The compiled core was built for another meshagent version (a stale extension)."""


_built_for = ffi.string(lib.mesh_version()).decode("ascii")
if _built_for != __version__:
    raise CoreVersionMismatch(
        f"meshagent._core was built for meshagent {_built_for}, but this is meshagent "
        f"{__version__}: rebuild it (pip install -e .) or reinstall the package")
