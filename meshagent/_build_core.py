"""The cffi builder of ``meshagent._core``: the one place that declares the C API.

The declarations are assembled from one piece per C concern (``CDEF`` below), each the
Python-visible part of a header in ``csrc/``. Wire sizes are declared here as enum
members taken from ``csrc/wire.h`` so Python reads them from C and never types them twice.

Built by setuptools (``setup.py`` names this module) in API mode, linked against
OpenSSL's libcrypto. ``MESH_PACKAGE_VERSION`` is compiled in from ``meshagent/_version.py``.
Environment: ``MESHAGENT_OPENSSL_INCLUDE`` / ``MESHAGENT_OPENSSL_LIB`` point at a
non-system OpenSSL; ``MESHAGENT_OPENSSL_PREFIX`` instead links a static ``libcrypto.a``
from a prefix (``build_tools/build_openssl.sh`` makes one, pinned: the wheels and
``make fast-crypto`` use it); ``MESHAGENT_CFLAGS`` adds flags (the ASan build uses it).
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
typedef struct mesh_openssl_info {
    const char *running;
    const char *compiled;
    unsigned long running_num;
    unsigned long compiled_num;
    int is_static;
} mesh_openssl_info;
const char *mesh_version(void);
void mesh_openssl_info_get(mesh_openssl_info *out);
"""

# --- wire.h / frame.h -------------------------------------------------------------
def _wire_constants() -> str:
    """Declare every enum member of wire.h (values come from the compiler, not from here)."""
    names = re.findall(r"^\s+(MESH_[A-Z0-9_]+)\s*=", (CSRC / "wire.h").read_text(), re.M)
    return "".join(f"static const int {name};\n" for name in names)


CDEF["frame"] = _wire_constants() + """
#define MESH_REKEY_AFTER_MESSAGES ...

typedef struct mesh_frame_info {
    uint8_t type;
    uint8_t flags;
    uint8_t hop_limit;
    uint32_t channel;
    uint64_t seq;
    uint32_t length;
    size_t offset;
    uint8_t src[16];
    uint8_t dst[16];
} mesh_frame_info;

int mesh_frame_write_header(const mesh_frame_info *info, uint8_t *out);
int mesh_frame_read_header(const uint8_t *in, mesh_frame_info *info);
int mesh_frames_encode(const mesh_frame_info *infos, size_t n, const uint8_t *payloads,
                       size_t payloads_len, uint8_t *out, size_t out_cap, size_t *written);
int mesh_frames_scan(const uint8_t *buf, size_t len, int sealed, mesh_frame_info *infos,
                     size_t max_infos, size_t *count, size_t *consumed, size_t *next_size);
"""

# --- tunnel.h ---------------------------------------------------------------------
CDEF["tunnel"] = """
typedef struct mesh_tunnel mesh_tunnel;
int mesh_tunnel_new(const uint8_t *send_key, size_t send_key_len, const uint8_t *recv_key,
                    size_t recv_key_len, uint64_t max_messages, uint64_t expires_ns,
                    mesh_tunnel **out);
void mesh_tunnel_free(mesh_tunnel *t);
uint64_t mesh_tunnel_send_counter(const mesh_tunnel *t);
int mesh_tunnel_needs_rekey(const mesh_tunnel *t, uint64_t now_ns);
int mesh_tunnel_seal_frames(mesh_tunnel *t, const uint8_t *plain, size_t plain_len,
                            uint64_t now_ns, uint8_t *out, size_t out_cap, size_t *written,
                            size_t *count);
int mesh_tunnel_seal_stream(mesh_tunnel *t, const mesh_frame_info *tmpl,
                            const uint8_t *payload, size_t payload_len, size_t frame_payload,
                            uint64_t now_ns, uint8_t *out, size_t out_cap, size_t *written,
                            size_t *count);
int mesh_tunnel_open_records(mesh_tunnel *t, const uint8_t *in, size_t in_len,
                             mesh_frame_info *infos, size_t max_infos, uint8_t *out,
                             size_t out_cap, size_t *written, size_t *count);
int mesh_tunnel_open_stream(mesh_tunnel *t, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t out_cap, size_t *consumed, size_t *written);
int mesh_aes_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                      size_t nonce_len, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                      size_t pt_len, size_t tag_len, uint8_t *out, size_t out_cap);
int mesh_aes_gcm_open(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                      size_t nonce_len, const uint8_t *aad, size_t aad_len,
                      const uint8_t *data, size_t data_len, size_t tag_len, uint8_t *out,
                      size_t out_cap);
"""

# --- replay.h ---------------------------------------------------------------------
CDEF["replay"] = """
typedef struct mesh_replay { ...; } mesh_replay;
int mesh_replay_init(mesh_replay *w);
int mesh_replay_check(const mesh_replay *w, uint64_t counter);
int mesh_replay_update(mesh_replay *w, uint64_t counter);
"""

# --- route.h ----------------------------------------------------------------------
CDEF["route"] = """
enum mesh_route_limits { MESH_ROUTE_METRIC_INFINITY, MESH_ROUTE_CAPACITY_MAX,
                        MESH_ROUTE_NEIGHBOURS_MAX, ... };
enum mesh_route_result { MESH_ROUTE_REJECTED, MESH_ROUTE_ACCEPTED, ... };
typedef struct mesh_route {
    uint8_t node_id[...];
    uint8_t next_hop[...];
    uint32_t seq;
    uint32_t expires;
    uint16_t metric;
    uint16_t reserved;
} mesh_route;
typedef struct mesh_route_table mesh_route_table;
mesh_route_table *mesh_route_table_new(uint32_t capacity, uint32_t max_neighbours,
                                       uint64_t hash_seed);
void mesh_route_table_free(mesh_route_table *table);
uint32_t mesh_route_table_capacity(const mesh_route_table *table);
uint32_t mesh_route_table_size(const mesh_route_table *table);
size_t mesh_route_table_memory_bytes(const mesh_route_table *table);
int mesh_route_seq_newer(uint32_t a, uint32_t b);
int mesh_route_update(mesh_route_table *table, const uint8_t *node_id, const uint8_t *next_hop,
                      uint16_t metric, uint32_t seq, uint32_t expires);
int mesh_route_withdraw(mesh_route_table *table, const uint8_t *node_id, uint32_t seq);
int64_t mesh_route_expire(mesh_route_table *table, uint32_t now);
int mesh_route_lookup(const mesh_route_table *table, const uint8_t *node_id, mesh_route *out);
int64_t mesh_route_lookup_batch(const mesh_route_table *table, const uint8_t *ids, size_t count,
                                mesh_route *out, uint8_t *found);
int64_t mesh_route_next_hops(const mesh_route_table *table, const uint8_t *ids, size_t count,
                             uint8_t *next_hops);
size_t mesh_route_dump(const mesh_route_table *table, mesh_route *out, size_t max);
"""

# --- pubkey.h ---------------------------------------------------------------------
CDEF["pubkey"] = """
int mesh_ed25519_verify(const uint8_t *public_key, const uint8_t *signature,
                        const uint8_t *message, size_t message_len);
typedef struct mesh_x25519_key mesh_x25519_key;
int mesh_x25519_key_new(const uint8_t *private_key, mesh_x25519_key **out);
void mesh_x25519_key_free(mesh_x25519_key *key);
int mesh_x25519_public(const mesh_x25519_key *key, uint8_t *public_key);
int mesh_x25519_derive(const mesh_x25519_key *key, const uint8_t *peer_public,
                       uint8_t *shared);
"""

# --- kdf.h ------------------------------------------------------------------------
CDEF["kdf"] = """
int mesh_hkdf_sha256(const uint8_t *secret, size_t secret_len, const uint8_t *salt,
                     size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                     size_t out_len);
"""

SOURCES = sorted(str(path.relative_to(ROOT)) for path in CSRC.glob("*.c"))
HEADERS = sorted(path.name for path in CSRC.glob("*.h") if path.name != "wire.h")


def _static_libcrypto(prefix: pathlib.Path) -> pathlib.Path:
    """The ``libcrypto.a`` of an OpenSSL install prefix (lib/ or lib64/), or a clear error."""
    for libdir in ("lib", "lib64"):
        archive = prefix / libdir / "libcrypto.a"
        if archive.is_file():
            return archive
    raise RuntimeError(
        f"MESHAGENT_OPENSSL_PREFIX={prefix} holds no lib/libcrypto.a or lib64/libcrypto.a: "
        "run build_tools/build_openssl.sh first")


include_dirs = [str(CSRC)]
library_dirs: list[str] = []
extra_objects: list[str] = []
define_macros = [("MESH_PACKAGE_VERSION", f'"{_package_version()}"')]
extra_link_args: list[str] = []
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

if os.environ.get("MESHAGENT_OPENSSL_PREFIX"):
    # The pinned libcrypto goes inside the extension: no libcrypto to graft into a wheel or
    # find at run time, and the headers are the prefix's, ahead of any system ones.
    if sys.platform == "win32":
        raise RuntimeError("MESHAGENT_OPENSSL_PREFIX (a static libcrypto.a) is for Linux and "
                           "macOS; on Windows use MESHAGENT_OPENSSL_INCLUDE/_LIB")
    prefix = pathlib.Path(os.environ["MESHAGENT_OPENSSL_PREFIX"]).resolve()
    include_dirs.insert(0, str(prefix / "include"))
    extra_objects.append(str(_static_libcrypto(prefix)))
    define_macros.append(("MESH_OPENSSL_STATIC", "1"))
    libraries = []
    if sys.platform.startswith("linux"):
        libraries = ["pthread", "dl"]
        # Keep libcrypto's symbols out of the extension's dynamic symbol table, so they
        # neither take the place of, nor are taken by, a system libcrypto in the process
        # (Python's own _ssl and _hashlib load one).
        extra_link_args.append("-Wl,--exclude-libs,ALL")

extra_compile_args += os.environ.get("MESHAGENT_CFLAGS", "").split()
extra_link_args += os.environ.get("MESHAGENT_LDFLAGS", "").split()

ffibuilder = FFI()
ffibuilder.cdef("\n".join(CDEF.values()))
ffibuilder.set_source(
    "meshagent._core",
    "\n".join(f'#include "{header}"' for header in HEADERS),
    sources=SOURCES,
    include_dirs=include_dirs,
    library_dirs=library_dirs,
    libraries=libraries,
    extra_objects=extra_objects,
    depends=extra_objects,
    define_macros=define_macros,
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
