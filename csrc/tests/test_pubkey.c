/* Unit tests of csrc/pubkey.c: RFC 8032 section 7.1 Ed25519 vectors (accepted, and
 * refused once any byte changes), RFC 7748 section 6.1 X25519 agreement, and small-order
 * peer keys refused. Build: cc -std=c11 -Icsrc csrc/pubkey.c csrc/tests/test_pubkey.c -lcrypto */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pubkey.h"

struct ed25519_vector { const char *public_key, *message, *signature; };

/* RFC 8032, section 7.1: TEST 1 (empty message), TEST 2, TEST 3. */
static const struct ed25519_vector RFC8032[] = {
    {"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

static void test_rfc8032_signatures_verify(void) {
    for (size_t i = 0; i < sizeof RFC8032 / sizeof RFC8032[0]; i++) {
        uint8_t pub[32], sig[64], msg[8];
        CHECK(from_hex(RFC8032[i].public_key, pub, sizeof pub) == 32);
        CHECK(from_hex(RFC8032[i].signature, sig, sizeof sig) == 64);
        size_t len = from_hex(RFC8032[i].message, msg, sizeof msg);
        CHECK(mesh_ed25519_verify(pub, sig, len ? msg : NULL, len) == MESH_OK);
    }
}

static void test_any_changed_byte_is_refused(void) {
    uint8_t pub[32], sig[64], msg[2];
    from_hex(RFC8032[2].public_key, pub, sizeof pub);
    from_hex(RFC8032[2].signature, sig, sizeof sig);
    from_hex(RFC8032[2].message, msg, sizeof msg);
    for (size_t i = 0; i < sizeof sig; i++) {
        sig[i] ^= 0x01;
        CHECK(mesh_ed25519_verify(pub, sig, msg, sizeof msg) == MESH_ERR_AUTH);
        sig[i] ^= 0x01;
    }
    for (size_t i = 0; i < sizeof pub; i++) {
        pub[i] ^= 0x20;
        CHECK(mesh_ed25519_verify(pub, sig, msg, sizeof msg) == MESH_ERR_AUTH);
        pub[i] ^= 0x20;
    }
    msg[1] ^= 0x80;
    CHECK(mesh_ed25519_verify(pub, sig, msg, sizeof msg) == MESH_ERR_AUTH);
    CHECK(mesh_ed25519_verify(pub, sig, msg, 1) == MESH_ERR_AUTH);  /* truncated message */
    CHECK(mesh_ed25519_verify(NULL, sig, msg, sizeof msg) == MESH_ERR_ARGUMENT);
    CHECK(mesh_ed25519_verify(pub, sig, NULL, 1) == MESH_ERR_ARGUMENT);
}

/* RFC 7748, section 6.1: Alice's and Bob's keys and their shared secret. */
static void test_rfc7748_agreement(void) {
    uint8_t alice[32], bob[32], alice_pub[32], bob_pub[32], shared[32], got[32];
    from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", alice, 32);
    from_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", bob, 32);
    from_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", alice_pub, 32);
    from_hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", bob_pub, 32);
    from_hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", shared, 32);
    mesh_x25519_key *a = NULL, *b = NULL;
    CHECK(mesh_x25519_key_new(alice, &a) == MESH_OK);
    CHECK(mesh_x25519_key_new(bob, &b) == MESH_OK);
    CHECK(mesh_x25519_public(a, got) == MESH_OK && memcmp(got, alice_pub, 32) == 0);
    CHECK(mesh_x25519_public(b, got) == MESH_OK && memcmp(got, bob_pub, 32) == 0);
    CHECK(mesh_x25519_derive(a, bob_pub, got) == MESH_OK && memcmp(got, shared, 32) == 0);
    CHECK(mesh_x25519_derive(b, alice_pub, got) == MESH_OK && memcmp(got, shared, 32) == 0);
    mesh_x25519_key_free(a);
    mesh_x25519_key_free(b);
}

/* Small-order u-coordinates (0, 1, the order-8 points, p - 1, and p + 1 non-canonical)
 * give an all-zero secret whatever the private key: refused. */
static void test_small_order_peer_keys_are_refused(void) {
    static const char *weak[] = {
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    };
    uint8_t private_key[32], peer[32], out[32];
    memset(private_key, 0x42, sizeof private_key);
    mesh_x25519_key *key = NULL;
    CHECK(mesh_x25519_key_new(private_key, &key) == MESH_OK);
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++) {
        from_hex(weak[i], peer, sizeof peer);
        memset(out, 0xAA, sizeof out);
        CHECK(mesh_x25519_derive(key, peer, out) == MESH_ERR_WEAK_KEY);
        CHECK(out[0] == 0 && out[31] == 0);  /* nothing of a partial result is left */
    }
    CHECK(mesh_x25519_derive(key, NULL, out) == MESH_ERR_ARGUMENT);
    CHECK(mesh_x25519_key_new(NULL, &key) == MESH_ERR_ARGUMENT);
    mesh_x25519_key_free(key);
    mesh_x25519_key_free(NULL);
}

int main(int argc, char **argv) {
    (void)argc;
    test_rfc8032_signatures_verify();
    test_any_changed_byte_is_refused();
    test_rfc7748_agreement();
    test_small_order_peer_keys_are_refused();
    return check_summary(argv[0]);
}
