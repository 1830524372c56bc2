/* Unit tests of csrc/frame.c: encode/scan round trips, every header check, streaming
 * boundaries (each prefix of a buffer), and hostile length fields.
 * Build: cc -std=c11 -Icsrc csrc/frame.c csrc/tests/test_frame.c */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "frame.h"

static mesh_frame_info sample(uint8_t type, uint32_t length, size_t offset) {
    mesh_frame_info f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    f.flags = 0x5a;
    f.hop_limit = 7;
    f.channel = 0xdeadbeef;
    f.seq = 0x0102030405060708ull;
    f.length = length;
    f.offset = offset;
    memset(f.src, 0x11, sizeof(f.src));
    memset(f.dst, 0x22, sizeof(f.dst));
    return f;
}

static uint8_t payloads[300];
static uint8_t buf[3 * MESH_FRAME_HEADER_BYTES + 300];

/* Three frames (100, 0 and 200 payload bytes) encoded into buf; returns the length. */
static size_t encode_three(void) {
    for (size_t i = 0; i < sizeof(payloads); i++) payloads[i] = (uint8_t)(i * 7);
    mesh_frame_info infos[3] = {sample(1, 100, 0), sample(2, 0, 100), sample(255, 200, 100)};
    size_t written = 0;
    CHECK(mesh_frames_encode(infos, 3, payloads, sizeof(payloads), buf, sizeof(buf),
                             &written) == MESH_OK);
    CHECK(written == 3 * MESH_FRAME_HEADER_BYTES + 300);
    return written;
}

static void test_header_layout_is_big_endian_at_wire_offsets(void) {
    size_t len = encode_three();
    CHECK(len > 0);
    CHECK(buf[MESH_FRAME_OFF_VERSION] == MESH_WIRE_VERSION);
    CHECK(buf[MESH_FRAME_OFF_TYPE] == 1);
    CHECK(buf[MESH_FRAME_OFF_FLAGS] == 0x5a);
    CHECK(buf[MESH_FRAME_OFF_HOP_LIMIT] == 7);
    CHECK(buf[MESH_FRAME_OFF_LENGTH + 3] == 100 && buf[MESH_FRAME_OFF_LENGTH] == 0);
    CHECK(buf[MESH_FRAME_OFF_CHANNEL] == 0xde && buf[MESH_FRAME_OFF_CHANNEL + 3] == 0xef);
    CHECK(buf[MESH_FRAME_OFF_SEQ] == 0x01 && buf[MESH_FRAME_OFF_SEQ + 7] == 0x08);
    CHECK(buf[MESH_FRAME_OFF_SRC] == 0x11 && buf[MESH_FRAME_OFF_DST + 15] == 0x22);
}

static void test_scan_round_trip(void) {
    size_t len = encode_three();
    mesh_frame_info out[4];
    size_t count = 0, consumed = 0, next = 0;
    CHECK(mesh_frames_scan(buf, len, 0, out, 4, &count, &consumed, &next) == MESH_OK);
    CHECK(count == 3 && consumed == len && next == 0);
    CHECK(out[0].type == 1 && out[0].length == 100 && out[0].offset == MESH_FRAME_HEADER_BYTES);
    CHECK(memcmp(buf + out[0].offset, payloads, 100) == 0);
    CHECK(out[1].type == 2 && out[1].length == 0);
    CHECK(out[2].type == 255 && out[2].length == 200);
    CHECK(memcmp(buf + out[2].offset, payloads + 100, 200) == 0);
    CHECK(out[2].seq == 0x0102030405060708ull && out[2].channel == 0xdeadbeef);
    CHECK(out[2].hop_limit == 7 && out[2].flags == 0x5a && out[2].src[0] == 0x11);
}

static void test_every_prefix_scans_to_whole_frames_only(void) {
    size_t len = encode_three();
    size_t bounds[3] = {MESH_FRAME_HEADER_BYTES + 100, 2 * MESH_FRAME_HEADER_BYTES + 100, len};
    int wrong = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        size_t count = 0, consumed = 0, next = 0;
        if (mesh_frames_scan(buf, cut, 0, NULL, 0, &count, &consumed, &next) != MESH_OK) {
            wrong++;
            continue;
        }
        size_t expect_count = 0;
        while (expect_count < 3 && bounds[expect_count] <= cut) expect_count++;
        size_t expect_consumed = expect_count ? bounds[expect_count - 1] : 0;
        if (count != expect_count || consumed != expect_consumed) wrong++;
        /* Once the next header is readable its total size is reported. */
        if (expect_count < 3 && cut - consumed >= MESH_FRAME_HEADER_BYTES &&
            next != bounds[expect_count] - expect_consumed)
            wrong++;
        if (cut - consumed < MESH_FRAME_HEADER_BYTES && next != 0) wrong++;
    }
    CHECK(wrong == 0);
}

static void test_max_infos_stops_the_scan(void) {
    size_t len = encode_three();
    mesh_frame_info out[2];
    size_t count = 0, consumed = 0, next = 0;
    CHECK(mesh_frames_scan(buf, len, 0, out, 2, &count, &consumed, &next) == MESH_OK);
    CHECK(count == 2 && consumed == 2 * MESH_FRAME_HEADER_BYTES + 100);
}

static void test_bad_headers_give_typed_errors(void) {
    size_t len = encode_three();
    size_t count = 9, consumed = 9, next = 9;
    uint8_t bad[sizeof(buf)];

    memcpy(bad, buf, len);
    bad[MESH_FRAME_OFF_VERSION] = 2;
    CHECK(mesh_frames_scan(bad, len, 0, NULL, 0, &count, &consumed, &next) == MESH_ERR_VERSION);
    CHECK(count == 0 && consumed == 0);

    memcpy(bad, buf, len);
    bad[MESH_FRAME_OFF_TYPE] = MESH_FRAME_TYPE_RESERVED;
    CHECK(mesh_frames_scan(bad, len, 0, NULL, 0, &count, &consumed, &next) == MESH_ERR_MALFORMED);

    /* A hostile length is refused from the header alone, before any payload arrives. */
    memcpy(bad, buf, len);
    mesh_store_be32(bad + MESH_FRAME_OFF_LENGTH, MESH_MAX_FRAME_PAYLOAD + 1);
    CHECK(mesh_frames_scan(bad, MESH_FRAME_HEADER_BYTES, 0, NULL, 0, &count, &consumed,
                           &next) == MESH_ERR_OVERSIZE);
    mesh_store_be32(bad + MESH_FRAME_OFF_LENGTH, 0xffffffffu);
    CHECK(mesh_frames_scan(bad, len, 0, NULL, 0, &count, &consumed, &next) == MESH_ERR_OVERSIZE);

    /* The second frame is bad: the first is still reported. */
    memcpy(bad, buf, len);
    bad[MESH_FRAME_HEADER_BYTES + 100 + MESH_FRAME_OFF_VERSION] = 0;
    CHECK(mesh_frames_scan(bad, len, 0, NULL, 0, &count, &consumed, &next) == MESH_ERR_VERSION);
    CHECK(count == 1 && consumed == MESH_FRAME_HEADER_BYTES + 100);
}

static void test_sealed_scan_counts_counter_and_tag(void) {
    mesh_frame_info f = sample(9, 10, 0);
    uint8_t rec[MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + 10];
    CHECK(mesh_frame_write_header(&f, rec) == MESH_OK);
    size_t count = 0, consumed = 0, next = 0;
    mesh_frame_info out[1];
    CHECK(mesh_frames_scan(rec, sizeof(rec), 1, out, 1, &count, &consumed, &next) == MESH_OK);
    CHECK(count == 1 && consumed == sizeof(rec) && out[0].offset == MESH_SEALED_AAD_BYTES);
    CHECK(mesh_frames_scan(rec, sizeof(rec) - 1, 1, NULL, 0, &count, &consumed, &next) ==
          MESH_OK);
    CHECK(count == 0 && next == sizeof(rec));
}

static void test_encode_refuses_bad_arguments(void) {
    uint8_t out[MESH_FRAME_HEADER_BYTES + 8];
    size_t written = 0;
    mesh_frame_info f = sample(0, 0, 0);
    CHECK(mesh_frames_encode(&f, 1, NULL, 0, out, sizeof(out), &written) == MESH_ERR_ARGUMENT);
    f = sample(1, 8, 4); /* payload range past the end of the payload buffer */
    CHECK(mesh_frames_encode(&f, 1, payloads, 10, out, sizeof(out), &written) ==
          MESH_ERR_ARGUMENT);
    f = sample(1, 8, 0);
    CHECK(mesh_frames_encode(&f, 1, payloads, 10, out, sizeof(out) - 1, &written) ==
          MESH_ERR_CAPACITY);
    CHECK(mesh_frames_encode(&f, 1, payloads, 10, out, sizeof(out), NULL) == MESH_ERR_ARGUMENT);
    f = sample(1, MESH_MAX_FRAME_PAYLOAD + 1, 0);
    CHECK(mesh_frame_write_header(&f, out) == MESH_ERR_ARGUMENT);
    CHECK(mesh_frames_encode(NULL, 0, NULL, 0, NULL, 0, &written) == MESH_OK && written == 0);
    size_t count, consumed, next;
    CHECK(mesh_frames_scan(NULL, 5, 0, NULL, 0, &count, &consumed, &next) == MESH_ERR_ARGUMENT);
    CHECK(mesh_frames_scan(NULL, 0, 0, NULL, 0, &count, &consumed, &next) == MESH_OK);
    CHECK(mesh_frame_read_header(NULL, &f) == MESH_ERR_ARGUMENT);
}

int main(int argc, char **argv) {
    (void)argc;
    test_header_layout_is_big_endian_at_wire_offsets();
    test_scan_round_trip();
    test_every_prefix_scans_to_whole_frames_only();
    test_max_infos_stops_the_scan();
    test_bad_headers_give_typed_errors();
    test_sealed_scan_counts_counter_and_tag();
    test_encode_refuses_bad_arguments();
    return check_summary(argv[0]);
}
