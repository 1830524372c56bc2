/* Ed25519 checks and X25519 agreements (contract in pubkey.h).
 *
 * OpenSSL does the arithmetic: EVP_DigestVerify on a raw Ed25519 public key (one-shot,
 * as RFC 8032 "pure" Ed25519 requires), EVP_PKEY_derive on raw X25519 keys. OpenSSL's
 * X25519 already refuses an all-zero result; the explicit check below makes that part of
 * this file's contract whatever the library version does.
 */
#include "pubkey.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct mesh_x25519_key {
    EVP_PKEY *pkey;
    uint8_t public_key[MESH_X25519_BYTES];
};

int mesh_ed25519_verify(const uint8_t *public_key, const uint8_t *signature,
                        const uint8_t *message, size_t message_len) {
    if (public_key == NULL || signature == NULL || (message == NULL && message_len > 0))
        return MESH_ERR_ARGUMENT;
    static const uint8_t empty[1] = {0};
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key,
                                                 MESH_ED25519_PUBLIC_BYTES);
    if (pkey == NULL) return MESH_ERR_AUTH;  /* OpenSSL refused the key bytes */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int status = MESH_ERR_NOMEM;
    if (ctx != NULL) {
        status = MESH_ERR_CRYPTO;
        if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1) {
            int rc = EVP_DigestVerify(ctx, signature, MESH_ED25519_SIGNATURE_BYTES,
                                      message_len ? message : empty, message_len);
            /* 0 = does not verify; negative = malformed signature or key: also a no. */
            status = rc == 1 ? MESH_OK : MESH_ERR_AUTH;
        }
        EVP_MD_CTX_free(ctx);
    }
    EVP_PKEY_free(pkey);
    return status;
}

int mesh_x25519_key_new(const uint8_t *private_key, mesh_x25519_key **out) {
    if (private_key == NULL || out == NULL) return MESH_ERR_ARGUMENT;
    *out = NULL;
    mesh_x25519_key *key = OPENSSL_zalloc(sizeof *key);
    if (key == NULL) return MESH_ERR_NOMEM;
    size_t public_len = MESH_X25519_BYTES;
    key->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, private_key,
                                             MESH_X25519_BYTES);
    if (key->pkey == NULL ||
        EVP_PKEY_get_raw_public_key(key->pkey, key->public_key, &public_len) != 1 ||
        public_len != MESH_X25519_BYTES) {
        mesh_x25519_key_free(key);
        return MESH_ERR_CRYPTO;
    }
    *out = key;
    return MESH_OK;
}

void mesh_x25519_key_free(mesh_x25519_key *key) {
    if (key == NULL) return;
    EVP_PKEY_free(key->pkey);  /* OpenSSL wipes the private key it holds */
    OPENSSL_clear_free(key, sizeof *key);
}

int mesh_x25519_public(const mesh_x25519_key *key, uint8_t *public_key) {
    if (key == NULL || public_key == NULL) return MESH_ERR_ARGUMENT;
    memcpy(public_key, key->public_key, MESH_X25519_BYTES);
    return MESH_OK;
}

int mesh_x25519_derive(const mesh_x25519_key *key, const uint8_t *peer_public,
                       uint8_t *shared) {
    if (key == NULL || peer_public == NULL || shared == NULL) return MESH_ERR_ARGUMENT;
    static const uint8_t zeros[MESH_X25519_BYTES] = {0};
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_public,
                                                 MESH_X25519_BYTES);
    if (peer == NULL) return MESH_ERR_CRYPTO;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
    int status = MESH_ERR_NOMEM;
    if (ctx != NULL) {
        size_t len = MESH_X25519_BYTES;
        status = MESH_ERR_CRYPTO;
        if (EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1) {
            /* OpenSSL fails the derivation exactly when the result is all zeros. */
            if (EVP_PKEY_derive(ctx, shared, &len) != 1)
                status = MESH_ERR_WEAK_KEY;
            else if (len != MESH_X25519_BYTES)
                status = MESH_ERR_CRYPTO;
            else
                status = CRYPTO_memcmp(shared, zeros, MESH_X25519_BYTES) == 0
                             ? MESH_ERR_WEAK_KEY : MESH_OK;
        }
        EVP_PKEY_CTX_free(ctx);
    }
    EVP_PKEY_free(peer);
    if (status != MESH_OK) OPENSSL_cleanse(shared, MESH_X25519_BYTES);
    return status;
}
