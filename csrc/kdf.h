/* HKDF-SHA256 (RFC 5869) through OpenSSL's EVP API.
 *
 * Every membership datagram is sealed with a key derived per pair of members, every
 * membership stream and session handshake derives its own: a joining member of an n-member
 * mesh derives about n keys at once, so the derivation is here rather than in pure Python
 * for speed only. Nothing here keeps state between calls.
 */
#ifndef MESH_KDF_H
#define MESH_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* HKDF-Extract(salt, secret) then HKDF-Expand(info) into `out` (`out_len` bytes, 1 to
 * MESH_HKDF_MAX_OUTPUT_BYTES). An empty salt is RFC 5869's default (a block of zeros);
 * empty info is allowed. MESH_ERR_ARGUMENT for a null pointer with a nonzero length or an
 * output length out of range; MESH_ERR_CRYPTO if OpenSSL fails (the output is then
 * zeroed). */
int mesh_hkdf_sha256(const uint8_t *secret, size_t secret_len, const uint8_t *salt,
                     size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                     size_t out_len);

#endif
