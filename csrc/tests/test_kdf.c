/* Unit tests of csrc/kdf.c: the three HKDF-SHA256 vectors of RFC 5869 appendix A (test
 * cases 1-3: salt and info, long inputs, empty salt and info), an empty secret, output
 * lengths at and past the limit, and null arguments.
 * Build: cc -std=c11 -Icsrc csrc/kdf.c csrc/tests/test_kdf.c -lcrypto */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kdf.h"

static void fill_range(uint8_t *out, uint8_t first, size_t count) {
    for (size_t i = 0; i < count; i++) out[i] = (uint8_t)(first + i);
}

struct hkdf_vector { const char *secret, *salt, *info, *output; };

/* RFC 5869 appendix A: A.1 salt and info; A.2 80-byte inputs and an 82-byte output
 * (three hash blocks); A.3 no salt and no info (NULL pointers with zero lengths). */
static const struct hkdf_vector RFC5869[] = {
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
     "f0f1f2f3f4f5f6f7f8f9",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f",
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
     "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
     "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
};

static void test_rfc5869_vectors(void) {
    for (size_t i = 0; i < sizeof RFC5869 / sizeof RFC5869[0]; i++) {
        uint8_t secret[80], salt[80], info[80], want[82], got[82];
        size_t secret_len = from_hex(RFC5869[i].secret, secret, sizeof secret);
        size_t salt_len = from_hex(RFC5869[i].salt, salt, sizeof salt);
        size_t info_len = from_hex(RFC5869[i].info, info, sizeof info);
        size_t out_len = from_hex(RFC5869[i].output, want, sizeof want);
        CHECK(secret_len > 0 && out_len > 0);
        CHECK(mesh_hkdf_sha256(secret, secret_len, salt_len ? salt : NULL, salt_len,
                               info_len ? info : NULL, info_len, got, out_len) == MESH_OK);
        CHECK(memcmp(got, want, out_len) == 0);
    }
}

/* An empty secret (Noise's Split) derives, and differs from a one-byte zero secret:
 * the secret is HMAC's message, not its key, so it is not zero-padded. */
static void test_empty_secret_is_its_own_input(void) {
    uint8_t zero = 0, salt[32], empty_out[64], zero_out[64];
    fill_range(salt, 0x10, sizeof salt);
    CHECK(mesh_hkdf_sha256(NULL, 0, salt, sizeof salt, NULL, 0, empty_out, 64) == MESH_OK);
    CHECK(mesh_hkdf_sha256(&zero, 1, salt, sizeof salt, NULL, 0, zero_out, 64) == MESH_OK);
    CHECK(memcmp(empty_out, zero_out, 64) != 0);
}

/* A shorter output is a prefix of a longer one (the expand blocks do not depend on L). */
static void test_output_lengths(void) {
    static uint8_t out[MESH_HKDF_MAX_OUTPUT_BYTES + 1];
    uint8_t ikm[32], first[64];
    memset(ikm, 0x5a, sizeof ikm);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, NULL, 0, NULL, 0, first, 1) == MESH_OK);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, NULL, 0, NULL, 0, out,
                           MESH_HKDF_MAX_OUTPUT_BYTES) == MESH_OK);
    CHECK(out[0] == first[0]);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, NULL, 0, NULL, 0, out,
                           MESH_HKDF_MAX_OUTPUT_BYTES + 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, NULL, 0, NULL, 0, out, 0) == MESH_ERR_ARGUMENT);
}

static void test_null_arguments_are_refused(void) {
    uint8_t ikm[32] = {0}, out[32];
    CHECK(mesh_hkdf_sha256(NULL, 1, NULL, 0, NULL, 0, out, 32) == MESH_ERR_ARGUMENT);
    CHECK(mesh_hkdf_sha256(ikm, 32, NULL, 1, NULL, 0, out, 32) == MESH_ERR_ARGUMENT);
    CHECK(mesh_hkdf_sha256(ikm, 32, NULL, 0, NULL, 1, out, 32) == MESH_ERR_ARGUMENT);
    CHECK(mesh_hkdf_sha256(ikm, 32, NULL, 0, NULL, 0, NULL, 32) == MESH_ERR_ARGUMENT);
}

int main(int argc, char **argv) {
    (void)argc;
    test_rfc5869_vectors();
    test_empty_secret_is_its_own_input();
    test_output_lengths();
    test_null_arguments_are_refused();
    return check_summary(argv[0]);
}
