#include "version.h"

#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#ifndef MESH_PACKAGE_VERSION
#error "MESH_PACKAGE_VERSION must be defined by the build (meshagent/_build_core.py)"
#endif

#ifndef MESH_OPENSSL_STATIC
#define MESH_OPENSSL_STATIC 0
#endif

const char *mesh_version(void) { return MESH_PACKAGE_VERSION; }

void mesh_openssl_info_get(mesh_openssl_info *out) {
    out->running = OpenSSL_version(OPENSSL_VERSION);
    out->compiled = OPENSSL_VERSION_TEXT;
    out->running_num = OpenSSL_version_num();
    out->compiled_num = OPENSSL_VERSION_NUMBER;
    out->is_static = MESH_OPENSSL_STATIC;
}
