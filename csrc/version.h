/* The package version compiled into the extension; meshagent.core compares it with
 * meshagent._version at import and refuses a mismatch (a stale _core in a frozen binary). */
#ifndef MESH_VERSION_H
#define MESH_VERSION_H

const char *mesh_version(void);

#endif
