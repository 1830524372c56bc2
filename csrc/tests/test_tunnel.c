/* Unit tests of csrc/tunnel.c: a NIST known answer through the raw functions, two
 * sessions talking to each other, tampering, replay, rekey limits, stream cutting and
 * bad arguments; the streaming open of bulk payloads.
 * Build: cc -std=c11 -Icsrc csrc/frame.c csrc/replay.c csrc/tunnel.c \
 *        csrc/tests/test_tunnel.c -lcrypto */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tunnel.h"

/* NIST CAVS 14.0 gcmEncryptExtIV256, Keylen 256, IVlen 96, PTlen 128, AADlen 128. */
static void test_raw_gcm_matches_nist_vector(void) {
    uint8_t key[32], iv[12], pt[16], aad[16], ct[16], tag[16], out[32], back[16];
    CHECK(from_hex("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b", key, sizeof key) == sizeof key);
    CHECK(from_hex("ac93a1a6145299bde902f21a", iv, sizeof iv) == sizeof iv);
    CHECK(from_hex("2d71bcfa914e4ac045b2aa60955fad24", pt, sizeof pt) == sizeof pt);
    CHECK(from_hex("1e0889016f67601c8ebea4943bc23ad6", aad, sizeof aad) == sizeof aad);
    CHECK(from_hex("8995ae2e6df3dbf96fac7b7137bae67f", ct, sizeof ct) == sizeof ct);
    CHECK(from_hex("eca5aa77d51d4a0a14d9c51e1da474ab", tag, sizeof tag) == sizeof tag);
    CHECK(mesh_aes_gcm_seal(key, 32, iv, 12, aad, 16, pt, 16, 16, out, sizeof(out)) == MESH_OK);
    CHECK(memcmp(out, ct, 16) == 0 && memcmp(out + 16, tag, 16) == 0);
    CHECK(mesh_aes_gcm_open(key, 32, iv, 12, aad, 16, out, 32, 16, back, sizeof(back)) ==
          MESH_OK);
    CHECK(memcmp(back, pt, 16) == 0);
    out[31] ^= 1;
    CHECK(mesh_aes_gcm_open(key, 32, iv, 12, aad, 16, out, 32, 16, back, sizeof(back)) ==
          MESH_ERR_AUTH);
    CHECK(back[0] == 0 && back[15] == 0); /* plaintext of a forgery is wiped */
}

static void test_raw_gcm_refuses_bad_lengths(void) {
    uint8_t key[32] = {0}, iv[12] = {0}, out[64];
    CHECK(mesh_aes_gcm_seal(key, 31, iv, 12, NULL, 0, NULL, 0, 16, out, 64) == MESH_ERR_ARGUMENT);
    CHECK(mesh_aes_gcm_seal(key, 32, iv, 0, NULL, 0, NULL, 0, 16, out, 64) == MESH_ERR_ARGUMENT);
    CHECK(mesh_aes_gcm_seal(key, 32, iv, 12, NULL, 0, NULL, 0, 17, out, 64) == MESH_ERR_ARGUMENT);
    CHECK(mesh_aes_gcm_seal(key, 32, iv, 12, NULL, 0, NULL, 0, 3, out, 64) == MESH_ERR_ARGUMENT);
    CHECK(mesh_aes_gcm_seal(key, 32, iv, 12, NULL, 5, NULL, 0, 16, out, 64) == MESH_ERR_ARGUMENT);
    CHECK(mesh_aes_gcm_seal(key, 32, iv, 12, NULL, 0, NULL, 0, 16, out, 15) == MESH_ERR_CAPACITY);
    CHECK(mesh_aes_gcm_open(key, 32, iv, 12, NULL, 0, out, 15, 16, out, 64) == MESH_ERR_AUTH);
    CHECK(mesh_aes_gcm_open(NULL, 32, iv, 12, NULL, 0, out, 16, 16, out, 64) == MESH_ERR_ARGUMENT);
}

typedef struct {
    mesh_tunnel *a, *b;
} pair;

static pair make_pair(uint64_t max_messages, uint64_t expires_ns) {
    uint8_t k1[MESH_KEY_BYTES], k2[MESH_KEY_BYTES];
    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    pair p = {NULL, NULL};
    CHECK(mesh_tunnel_new(k1, sizeof(k1), k2, sizeof(k2), max_messages, expires_ns, &p.a) ==
          MESH_OK);
    CHECK(mesh_tunnel_new(k2, sizeof(k2), k1, sizeof(k1), 0, 0, &p.b) == MESH_OK);
    return p;
}

static void free_pair(pair p) {
    mesh_tunnel_free(p.a);
    mesh_tunnel_free(p.b);
}

enum { PAYLOAD = 5000, FRAME = 1400, FRAMES = 4 /* ceil(5000 / 1400) */ };

static mesh_frame_info template_frame(void) {
    mesh_frame_info t;
    memset(&t, 0, sizeof(t));
    t.type = 3;
    t.hop_limit = 16;
    t.channel = 9;
    t.seq = 100;
    memset(t.src, 0xaa, sizeof(t.src));
    memset(t.dst, 0xbb, sizeof(t.dst));
    return t;
}

static uint8_t payload[PAYLOAD];
static uint8_t sealed[PAYLOAD + FRAMES * (MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD)];
static uint8_t opened[sizeof(sealed)];

static size_t seal_sample(pair p) {
    for (size_t i = 0; i < PAYLOAD; i++) payload[i] = (uint8_t)(i ^ (i >> 8));
    mesh_frame_info t = template_frame();
    size_t written = 0, count = 0;
    CHECK(mesh_tunnel_seal_stream(p.a, &t, payload, PAYLOAD, FRAME, 0, sealed, sizeof(sealed),
                                  &written, &count) == MESH_OK);
    CHECK(written == sizeof(sealed) && count == FRAMES);
    return written;
}

static void test_stream_round_trip_between_two_sessions(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    CHECK(mesh_tunnel_send_counter(p.a) == FRAMES);
    mesh_frame_info infos[FRAMES];
    size_t written = 0, count = 0;
    CHECK(mesh_tunnel_open_records(p.b, sealed, len, infos, FRAMES, opened, sizeof(opened),
                                   &written, &count) == MESH_OK);
    CHECK(count == FRAMES && written == PAYLOAD && memcmp(opened, payload, PAYLOAD) == 0);
    CHECK(infos[0].seq == 100 && infos[3].seq == 103 && infos[3].length == PAYLOAD - 3 * FRAME);
    CHECK(infos[2].offset == 2 * FRAME && infos[1].channel == 9 && infos[1].type == 3);
    /* The same records again: replayed. */
    CHECK(mesh_tunnel_open_records(p.b, sealed, len, NULL, 0, opened, sizeof(opened), &written,
                                   &count) == MESH_ERR_REPLAY);
    CHECK(count == 0);
    free_pair(p);
}

static void test_any_flipped_bit_fails_authentication(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t record = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + FRAME;
    /* header byte, counter byte, ciphertext byte, tag byte of the second record */
    size_t spots[] = {MESH_FRAME_OFF_SEQ, MESH_SEALED_OFF_COUNTER + 7, MESH_SEALED_AAD_BYTES + 5,
                      record - 1};
    for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
        pair q = make_pair(0, 0);
        seal_sample(q);
        sealed[record + spots[i]] ^= 0x10;
        size_t written = 0, count = 0;
        int rc = mesh_tunnel_open_records(q.b, sealed, len, NULL, 0, opened, sizeof(opened),
                                          &written, &count);
        CHECK(rc == MESH_ERR_AUTH);
        CHECK(count == 1 && written == FRAME); /* the first record was fine */
        free_pair(q);
    }
    free_pair(p);
}

static void test_reordered_records_open_and_duplicates_do_not(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t record = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + FRAME;
    size_t written = 0, count = 0;
    /* Second record first, then the first: both accepted once. */
    CHECK(mesh_tunnel_open_records(p.b, sealed + record, record, NULL, 0, opened,
                                   sizeof(opened), &written, &count) == MESH_OK);
    CHECK(mesh_tunnel_open_records(p.b, sealed, record, NULL, 0, opened, sizeof(opened),
                                   &written, &count) == MESH_OK);
    CHECK(mesh_tunnel_open_records(p.b, sealed + record, record, NULL, 0, opened,
                                   sizeof(opened), &written, &count) == MESH_ERR_REPLAY);
    CHECK(len > 2 * record);
    free_pair(p);
}

static void test_sealing_stops_at_the_message_limit(void) {
    pair p = make_pair(5, 0);
    mesh_frame_info t = template_frame();
    size_t written = 0, count = 0;
    CHECK(mesh_tunnel_seal_stream(p.a, &t, payload, PAYLOAD, FRAME, 0, sealed, sizeof(sealed),
                                  &written, &count) == MESH_OK);
    CHECK(mesh_tunnel_needs_rekey(p.a, 0) == 0);
    /* 4 sealed, limit 5: a batch of 4 more is refused whole, one more is fine. */
    CHECK(mesh_tunnel_seal_stream(p.a, &t, payload, PAYLOAD, FRAME, 0, sealed, sizeof(sealed),
                                  &written, &count) == MESH_ERR_REKEY);
    CHECK(mesh_tunnel_send_counter(p.a) == 4);
    CHECK(mesh_tunnel_seal_stream(p.a, &t, payload, 10, FRAME, 0, sealed, sizeof(sealed),
                                  &written, &count) == MESH_OK);
    CHECK(mesh_tunnel_needs_rekey(p.a, 0) == 1);
    free_pair(p);
}

static void test_sealing_stops_at_the_time_limit(void) {
    pair p = make_pair(0, 1000);
    mesh_frame_info t = template_frame();
    size_t written = 0, count = 0;
    CHECK(mesh_tunnel_needs_rekey(p.a, 999) == 0);
    CHECK(mesh_tunnel_seal_stream(p.a, &t, payload, 10, FRAME, 999, sealed, sizeof(sealed),
                                  &written, &count) == MESH_OK);
    CHECK(mesh_tunnel_seal_stream(p.a, &t, payload, 10, FRAME, 1000, sealed, sizeof(sealed),
                                  &written, &count) == MESH_ERR_REKEY);
    CHECK(mesh_tunnel_needs_rekey(p.a, 1000) == 1);
    free_pair(p);
}

static void test_seal_frames_matches_seal_stream(void) {
    pair p = make_pair(0, 0), q = make_pair(0, 0);
    size_t len = seal_sample(p);
    /* The same frames, encoded plain first, then sealed by a twin session. */
    static uint8_t plain[sizeof(sealed)], again[sizeof(sealed)];
    mesh_frame_info infos[FRAMES];
    for (size_t i = 0; i < FRAMES; i++) {
        infos[i] = template_frame();
        infos[i].seq += i;
        infos[i].offset = i * FRAME;
        infos[i].length = (uint32_t)(i + 1 < FRAMES ? FRAME : PAYLOAD - i * FRAME);
    }
    size_t plain_len = 0, written = 0, count = 0;
    CHECK(mesh_frames_encode(infos, FRAMES, payload, PAYLOAD, plain, sizeof(plain),
                             &plain_len) == MESH_OK);
    CHECK(mesh_tunnel_seal_frames(q.a, plain, plain_len, 0, again, sizeof(again) - 1, &written,
                                  &count) == MESH_ERR_CAPACITY);
    CHECK(mesh_tunnel_send_counter(q.a) == 0);
    CHECK(mesh_tunnel_seal_frames(q.a, plain, plain_len, 0, again, sizeof(again), &written,
                                  &count) == MESH_OK);
    CHECK(written == len && count == FRAMES && memcmp(again, sealed, len) == 0);
    CHECK(mesh_tunnel_seal_frames(q.a, plain, plain_len - 1, 0, again, sizeof(again), &written,
                                  &count) == MESH_ERR_TRUNCATED);
    free_pair(p);
    free_pair(q);
}

static void test_truncated_and_bad_arguments(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t written = 0, count = 0;
    CHECK(mesh_tunnel_open_records(p.b, sealed, len - 1, NULL, 0, opened, sizeof(opened),
                                   &written, &count) == MESH_ERR_TRUNCATED);
    mesh_frame_info infos[1];
    CHECK(mesh_tunnel_open_records(p.b, sealed, len, infos, 1, opened, sizeof(opened), &written,
                                   &count) == MESH_ERR_CAPACITY);
    CHECK(mesh_tunnel_open_records(p.b, sealed, len, NULL, 0, opened, 10, &written, &count) ==
          MESH_ERR_CAPACITY);
    CHECK(mesh_tunnel_open_records(NULL, sealed, len, NULL, 0, opened, sizeof(opened), &written,
                                   &count) == MESH_ERR_ARGUMENT);
    mesh_tunnel *t = NULL;
    uint8_t key[MESH_KEY_BYTES] = {0};
    CHECK(mesh_tunnel_new(key, 16, key, 32, 0, 0, &t) == MESH_ERR_ARGUMENT && t == NULL);
    CHECK(mesh_tunnel_new(key, 32, key, 32, MESH_REKEY_AFTER_MESSAGES + 1, 0, &t) ==
          MESH_ERR_ARGUMENT);
    mesh_frame_info tmpl = template_frame();
    CHECK(mesh_tunnel_seal_stream(p.a, &tmpl, payload, 10, 0, 0, sealed, sizeof(sealed),
                                  &written, &count) == MESH_ERR_ARGUMENT);
    CHECK(mesh_tunnel_seal_stream(p.a, &tmpl, payload, 10, MESH_MAX_FRAME_PAYLOAD + 1, 0,
                                  sealed, sizeof(sealed), &written, &count) ==
          MESH_ERR_ARGUMENT);
    CHECK(mesh_tunnel_seal_stream(p.a, &tmpl, payload, 0, FRAME, 0, NULL, 0, &written,
                                  &count) == MESH_OK && count == 0 && written == 0);
    mesh_tunnel_free(NULL);
    free_pair(p);
}

/* A stream read in pieces: each call opens the whole records so far and leaves the cut
 * one for the next call, whose input starts where the last one stopped. */
static void test_open_stream_opens_whole_records_and_keeps_the_cut_one(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t record = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + FRAME;
    size_t consumed = 0, written = 0, start = 0, total = 0;
    size_t ends[] = {10, record + 100, record + 101, 3 * record, len};
    size_t expect_consumed[] = {0, record, 0, 2 * record, len - 3 * record};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        CHECK(mesh_tunnel_open_stream(p.b, sealed + start, ends[i] - start, opened + total,
                                      sizeof(opened) - total, &consumed, &written) == MESH_OK);
        CHECK(consumed == expect_consumed[i]);
        start += consumed;
        total += written;
    }
    CHECK(start == len && total == PAYLOAD && memcmp(opened, payload, PAYLOAD) == 0);
    free_pair(p);
}

static void test_open_stream_stops_where_the_payloads_no_longer_fit(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t record = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + FRAME;
    size_t consumed = 0, written = 0;
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, opened, FRAME - 1, &consumed, &written) ==
          MESH_ERR_CAPACITY);
    CHECK(consumed == 0 && written == 0);
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, opened, 2 * FRAME + 1, &consumed,
                                  &written) == MESH_OK);
    CHECK(consumed == 2 * record && written == 2 * FRAME);
    free_pair(p);
}

static void test_open_stream_checks_every_header_before_opening(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t record = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + FRAME;
    size_t consumed = 1, written = 1;
    /* The cut third record carries a bad version: nothing opens, the window stays. */
    sealed[2 * record + MESH_FRAME_OFF_VERSION] = 9;
    CHECK(mesh_tunnel_open_stream(p.b, sealed, 2 * record + MESH_FRAME_HEADER_BYTES, opened,
                                  sizeof(opened), &consumed, &written) == MESH_ERR_VERSION);
    CHECK(consumed == 0 && written == 0);
    sealed[2 * record + MESH_FRAME_OFF_VERSION] = MESH_WIRE_VERSION;
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, opened, sizeof(opened), &consumed,
                                  &written) == MESH_OK);
    CHECK(consumed == len && written == PAYLOAD);
    free_pair(p);
}

static void test_open_stream_stops_at_a_forged_record(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t record = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + FRAME;
    size_t consumed = 0, written = 0;
    sealed[record + MESH_SEALED_AAD_BYTES + 3] ^= 0x01;
    memset(opened, 0xee, sizeof(opened));
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, opened, sizeof(opened), &consumed,
                                  &written) == MESH_ERR_AUTH);
    CHECK(consumed == record && written == FRAME && memcmp(opened, payload, FRAME) == 0);
    CHECK(opened[FRAME] == 0 && opened[2 * FRAME - 1] == 0); /* forged plaintext wiped */
    CHECK(opened[2 * FRAME] == 0xee);
    /* The genuine first record is now a replay. */
    CHECK(mesh_tunnel_open_stream(p.b, sealed, record, opened, sizeof(opened), &consumed,
                                  &written) == MESH_ERR_REPLAY);
    CHECK(consumed == 0 && written == 0);
    free_pair(p);
}

static void test_open_stream_refuses_bad_arguments(void) {
    pair p = make_pair(0, 0);
    size_t len = seal_sample(p);
    size_t consumed = 0, written = 0;
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, sealed + 10, 100, &consumed, &written) ==
          MESH_ERR_ARGUMENT); /* out overlaps in */
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, NULL, 0, &consumed, &written) ==
          MESH_ERR_ARGUMENT);
    CHECK(mesh_tunnel_open_stream(NULL, sealed, len, opened, sizeof(opened), &consumed,
                                  &written) == MESH_ERR_ARGUMENT);
    CHECK(mesh_tunnel_open_stream(p.b, NULL, 5, opened, sizeof(opened), &consumed, &written) ==
          MESH_ERR_ARGUMENT);
    CHECK(mesh_tunnel_open_stream(p.b, sealed, len, opened, sizeof(opened), NULL, &written) ==
          MESH_ERR_ARGUMENT);
    CHECK(mesh_tunnel_open_stream(p.b, NULL, 0, opened, 0, &consumed, &written) == MESH_OK);
    CHECK(consumed == 0 && written == 0);
    free_pair(p);
}

int main(int argc, char **argv) {
    (void)argc;
    test_raw_gcm_matches_nist_vector();
    test_raw_gcm_refuses_bad_lengths();
    test_stream_round_trip_between_two_sessions();
    test_any_flipped_bit_fails_authentication();
    test_reordered_records_open_and_duplicates_do_not();
    test_sealing_stops_at_the_message_limit();
    test_sealing_stops_at_the_time_limit();
    test_seal_frames_matches_seal_stream();
    test_truncated_and_bad_arguments();
    test_open_stream_opens_whole_records_and_keeps_the_cut_one();
    test_open_stream_stops_where_the_payloads_no_longer_fit();
    test_open_stream_checks_every_header_before_opening();
    test_open_stream_stops_at_a_forged_record();
    test_open_stream_refuses_bad_arguments();
    return check_summary(argv[0]);
}
