/* Ed25519 signature checks (RFC 8032) and X25519 key agreement (RFC 7748) through
 * OpenSSL's EVP API. Sizes: wire.h (MESH_ED25519_*, MESH_X25519_BYTES).
 *
 * Every peer's certificate and record is an Ed25519 signature to check, and every peer
 * pair and handshake an X25519 agreement, so a joining mesh does these n^2 times in all;
 * they are here rather than in pure Python for speed only. Signing stays in Python.
 * Nothing here keeps state between calls except a mesh_x25519_key, which one owner uses.
 */
#ifndef MESH_PUBKEY_H
#define MESH_PUBKEY_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* MESH_OK if `signature` (MESH_ED25519_SIGNATURE_BYTES) is `public_key`'s
 * (MESH_ED25519_PUBLIC_BYTES) RFC 8032 Ed25519 signature of the message, MESH_ERR_AUTH if
 * it is not (also for a public key that is not a curve point, or a non-canonical S).
 * MESH_ERR_ARGUMENT for a null pointer; MESH_ERR_CRYPTO if OpenSSL fails otherwise. */
int mesh_ed25519_verify(const uint8_t *public_key, const uint8_t *signature,
                        const uint8_t *message, size_t message_len);

/* An X25519 private key held as an OpenSSL key (imported once, used for many
 * agreements). Not thread-safe; free with mesh_x25519_key_free (wipes it). */
typedef struct mesh_x25519_key mesh_x25519_key;

/* Import a raw private key (MESH_X25519_BYTES, clamped as RFC 7748 says, so any 32 bytes
 * are a key) and compute its public key. */
int mesh_x25519_key_new(const uint8_t *private_key, mesh_x25519_key **out);
void mesh_x25519_key_free(mesh_x25519_key *key);

/* The raw public key (MESH_X25519_BYTES) into `public_key`. */
int mesh_x25519_public(const mesh_x25519_key *key, uint8_t *public_key);

/* The shared secret (MESH_X25519_BYTES) with a raw peer public key into `shared`.
 * MESH_ERR_WEAK_KEY for a peer key of small order (the secret would be all zeros; the
 * output is then zeroed), MESH_ERR_CRYPTO if OpenSSL fails otherwise. */
int mesh_x25519_derive(const mesh_x25519_key *key, const uint8_t *peer_public,
                       uint8_t *shared);

#endif
