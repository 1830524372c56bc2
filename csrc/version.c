#include "version.h"

#ifndef MESH_PACKAGE_VERSION
#error "MESH_PACKAGE_VERSION must be defined by the build (meshagent/_build_core.py)"
#endif

const char *mesh_version(void) { return MESH_PACKAGE_VERSION; }
