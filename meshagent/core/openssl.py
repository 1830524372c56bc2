"""The OpenSSL libcrypto the C core was compiled against and the one it runs on.

Both are read from the compiled core (``csrc/version.c``). The core's AES-GCM speed is
libcrypto's: OpenSSL 3.0 has no VAES/AVX-512 GCM path, 3.2 and later do, so the figures
of ``meshagent bench`` and the benchmarks only mean something next to this. A core built
with ``MESHAGENT_OPENSSL_PREFIX`` carries a pinned ``libcrypto.a`` (``static``) and must
run exactly the version it was compiled against; a shared libcrypto may be newer than
the headers (OpenSSL keeps 3.x backward compatible), never older, and of the same major.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshagent.core._native import ffi, lib

__all__ = ["OpenSSLBuild", "openssl_build"]


def _major(version_number: int) -> int:
    return version_number >> 28  # OPENSSL_VERSION_NUMBER is 0xMNN00PP0 since 3.0


@dataclass(frozen=True)
class OpenSSLBuild:
    running: str  # OpenSSL_version(OPENSSL_VERSION), e.g. "OpenSSL 3.5.6 7 Apr 2026"
    compiled: str  # OPENSSL_VERSION_TEXT of the headers the core was compiled against
    running_number: int
    compiled_number: int
    static: bool  # libcrypto.a linked into the extension

    def mismatch(self) -> str | None:
        """Why this libcrypto is not one the core may run on, or None when it may."""
        if self.static and self.running_number != self.compiled_number:
            return f"static core compiled against {self.compiled} runs {self.running}"
        if _major(self.running_number) != _major(self.compiled_number):
            return f"core compiled against {self.compiled} runs another major: {self.running}"
        if self.running_number < self.compiled_number:
            return f"core compiled against {self.compiled} runs an older {self.running}"
        return None

    def describe(self) -> str:
        linkage = "static" if self.static else "shared"
        if self.running == self.compiled:
            return f"{self.running} ({linkage})"
        return f"{self.running} ({linkage}, compiled against {self.compiled})"


def openssl_build() -> OpenSSLBuild:
    info = ffi.new("mesh_openssl_info *")
    lib.mesh_openssl_info_get(info)
    return OpenSSLBuild(running=ffi.string(info.running).decode("ascii"),
                        compiled=ffi.string(info.compiled).decode("ascii"),
                        running_number=int(info.running_num),
                        compiled_number=int(info.compiled_num),
                        static=bool(info.is_static))
