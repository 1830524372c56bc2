/* HKDF-SHA256 (contract in kdf.h).
 *
 * OpenSSL does the derivation: EVP_PKEY_derive on an EVP_PKEY_HKDF context in its default
 * extract-then-expand mode, an API that OpenSSL 1.1.1 and 3.x both have. Empty inputs are
 * passed as a valid pointer with length 0, never as NULL, which OpenSSL may refuse.
 */
#include "kdf.h"

#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

int mesh_hkdf_sha256(const uint8_t *secret, size_t secret_len, const uint8_t *salt,
                     size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                     size_t out_len) {
    if ((secret == NULL && secret_len > 0) || (salt == NULL && salt_len > 0) ||
        (info == NULL && info_len > 0) || out == NULL || out_len == 0 ||
        out_len > MESH_HKDF_MAX_OUTPUT_BYTES)
        return MESH_ERR_ARGUMENT;
    if (secret_len > INT_MAX || salt_len > INT_MAX || info_len > INT_MAX)
        return MESH_ERR_ARGUMENT;  /* the EVP_PKEY_CTX_set1_hkdf_* calls take an int */
    static const uint8_t empty[1] = {0};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (ctx == NULL) return MESH_ERR_NOMEM;
    size_t len = out_len;
    int status = MESH_ERR_CRYPTO;
    if (EVP_PKEY_derive_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
        (salt_len == 0 || EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_len) == 1) &&
        EVP_PKEY_CTX_set1_hkdf_key(ctx, secret_len ? secret : empty, (int)secret_len) == 1 &&
        (info_len == 0 || EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_len) == 1) &&
        EVP_PKEY_derive(ctx, out, &len) == 1 && len == out_len)
        status = MESH_OK;
    EVP_PKEY_CTX_free(ctx);
    if (status != MESH_OK) OPENSSL_cleanse(out, out_len);
    return status;
}
