/* What the extension was built as: the package version compiled into it, and the OpenSSL
 * libcrypto it was compiled against and runs on.
 *
 * mesh_version: meshagent.core compares it with meshagent._version at import and refuses a
 * mismatch (a stale _core in a frozen binary).
 * mesh_openssl_info: `meshagent selftest` shows it; with a libcrypto linked statically from
 * a pinned build (MESH_OPENSSL_STATIC, set by meshagent/_build_core.py) the running and the
 * compiled versions are one and the same; with a shared libcrypto the running one may be
 * newer than the headers, never older. */
#ifndef MESH_VERSION_H
#define MESH_VERSION_H

typedef struct mesh_openssl_info {
    const char *running;         /* OpenSSL_version(OPENSSL_VERSION) of the libcrypto in use */
    const char *compiled;        /* OPENSSL_VERSION_TEXT of the headers built against */
    unsigned long running_num;   /* OpenSSL_version_num() */
    unsigned long compiled_num;  /* OPENSSL_VERSION_NUMBER */
    int is_static;               /* 1: libcrypto.a linked into the extension */
} mesh_openssl_info;

const char *mesh_version(void);

/* Fills *out; the strings are static and live as long as the process. */
void mesh_openssl_info_get(mesh_openssl_info *out);

#endif
