"""The cffi builder of ``meshagent._core``: the one place that declares the C API.

The declarations are assembled from one piece per C concern (``CDEF`` below), each the
Python-visible part of a header in ``csrc/``. Wire sizes are declared here as enum
members taken from ``csrc/wire.h`` so Python reads them from C and never types them twice.

Built by setuptools (``setup.py`` names this module) in API mode, linked against
OpenSSL's libcrypto. ``MESH_PACKAGE_VERSION`` is compiled in from ``meshagent/_version.py``.
Environment: ``MESHAGENT_OPENSSL_INCLUDE`` / ``MESHAGENT_OPENSSL_LIB`` point at a
non-system OpenSSL; ``MESHAGENT_CFLAGS`` adds flags (the ASan build uses it).
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"


def _package_version() -> str:
    text = (ROOT / "meshagent" / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise RuntimeError("meshagent/_version.py does not define __version__")
    return match.group(1)


CDEF: dict[str, str] = {}

CDEF["version"] = """
const char *mesh_version(void);
"""

# --- frame.h / wire.h -------------------------------------------------------------
CDEF["frame"] = """
"""

# --- tunnel.h ---------------------------------------------------------------------
CDEF["tunnel"] = """
"""

# --- replay.h ---------------------------------------------------------------------
CDEF["replay"] = """
"""

# --- route.h ----------------------------------------------------------------------
CDEF["route"] = """
"""

SOURCES = sorted(str(path.relative_to(ROOT)) for path in CSRC.glob("*.c"))
HEADERS = sorted(path.name for path in CSRC.glob("*.h") if path.name != "wire.h")

include_dirs = [str(CSRC)]
library_dirs: list[str] = []
if os.environ.get("MESHAGENT_OPENSSL_INCLUDE"):
    include_dirs.append(os.environ["MESHAGENT_OPENSSL_INCLUDE"])
if os.environ.get("MESHAGENT_OPENSSL_LIB"):
    library_dirs.append(os.environ["MESHAGENT_OPENSSL_LIB"])

if sys.platform == "win32":
    extra_compile_args = ["/W3", "/WX", "/O2"]
    libraries = ["libcrypto"]
else:
    extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2",
                          "-Wno-unused-parameter"]
    libraries = ["crypto"]
extra_compile_args += os.environ.get("MESHAGENT_CFLAGS", "").split()
extra_link_args = os.environ.get("MESHAGENT_LDFLAGS", "").split()

ffibuilder = FFI()
ffibuilder.cdef("\n".join(CDEF.values()))
ffibuilder.set_source(
    "meshagent._core",
    "\n".join(f'#include "{header}"' for header in HEADERS),
    sources=SOURCES,
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    libraries=libraries,
    define_macros=[("MESH_PACKAGE_VERSION", f'"{_package_version()}"')],
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
