/* Unit tests of csrc/kdf.c: the three HKDF-SHA256 vectors of RFC 5869 appendix A (test
 * cases 1-3: salt and info, long inputs, empty salt and info), an empty secret, output
 * lengths at and past the limit, and null arguments.
 * Build: cc -std=c11 -Icsrc csrc/kdf.c csrc/tests/test_kdf.c -lcrypto */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kdf.h"

static size_t from_hex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return 0;
        out[i] = (uint8_t)byte;
    }
    return n;
}

static void fill_range(uint8_t *out, uint8_t first, size_t count) {
    for (size_t i = 0; i < count; i++) out[i] = (uint8_t)(first + i);
}

/* RFC 5869, A.1: salt and info. */
static void test_rfc5869_case_1(void) {
    uint8_t ikm[22], salt[13], info[10], want[42], got[42];
    memset(ikm, 0x0b, sizeof ikm);
    fill_range(salt, 0x00, sizeof salt);
    fill_range(info, 0xf0, sizeof info);
    CHECK(from_hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                   "34007208d5b887185865", want, sizeof want) == 42);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, got,
                           sizeof got) == MESH_OK);
    CHECK(memcmp(got, want, sizeof want) == 0);
}

/* RFC 5869, A.2: 80-byte inputs, an 82-byte output (three hash blocks). */
static void test_rfc5869_case_2(void) {
    uint8_t ikm[80], salt[80], info[80], want[82], got[82];
    fill_range(ikm, 0x00, sizeof ikm);
    fill_range(salt, 0x60, sizeof salt);
    fill_range(info, 0xb0, sizeof info);
    CHECK(from_hex("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                   "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                   "cc30c58179ec3e87c14c01d5c1f3434f1d87", want, sizeof want) == 82);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, got,
                           sizeof got) == MESH_OK);
    CHECK(memcmp(got, want, sizeof want) == 0);
}

/* RFC 5869, A.3: no salt, no info (NULL pointers with zero lengths are allowed). */
static void test_rfc5869_case_3(void) {
    uint8_t ikm[22], want[42], got[42];
    memset(ikm, 0x0b, sizeof ikm);
    CHECK(from_hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                   "9d201395faa4b61a96c8", want, sizeof want) == 42);
    CHECK(mesh_hkdf_sha256(ikm, sizeof ikm, NULL, 0, NULL, 0, got, sizeof got) == MESH_OK);
    CHECK(memcmp(got, want, sizeof want) == 0);
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
    test_rfc5869_case_1();
    test_rfc5869_case_2();
    test_rfc5869_case_3();
    test_empty_secret_is_its_own_input();
    test_output_lengths();
    test_null_arguments_are_refused();
    return check_summary(argv[0]);
}
