/* Unit tests of csrc/replay.c: edge cases one by one, then a long random sequence against
 * a brute-force model (every accepted counter remembered) that must agree on every call.
 * Build: cc -std=c11 -Icsrc csrc/replay.c csrc/tests/test_replay.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "replay.h"

static void test_each_counter_is_accepted_once(void) {
    mesh_replay w;
    CHECK(mesh_replay_init(&w) == MESH_OK);
    CHECK(mesh_replay_update(&w, 0) == MESH_OK);
    CHECK(mesh_replay_update(&w, 0) == MESH_ERR_REPLAY);
    CHECK(mesh_replay_update(&w, 1) == MESH_OK);
    CHECK(mesh_replay_check(&w, 1) == MESH_ERR_REPLAY);
    CHECK(mesh_replay_check(&w, 2) == MESH_OK);
}

static void test_reordering_inside_the_window_is_accepted(void) {
    mesh_replay w;
    mesh_replay_init(&w);
    CHECK(mesh_replay_update(&w, 100) == MESH_OK);
    for (uint64_t c = 99; c > 50; c--) CHECK(mesh_replay_update(&w, c) == MESH_OK);
    for (uint64_t c = 51; c <= 100; c++) CHECK(mesh_replay_update(&w, c) == MESH_ERR_REPLAY);
}

static void test_window_edge(void) {
    mesh_replay w;
    mesh_replay_init(&w);
    uint64_t top = 20000;
    CHECK(mesh_replay_update(&w, top) == MESH_OK);
    CHECK(mesh_replay_check(&w, top - MESH_REPLAY_WINDOW_SPAN) == MESH_OK);
    CHECK(mesh_replay_check(&w, top - MESH_REPLAY_WINDOW_SPAN - 1) == MESH_ERR_REPLAY);
    CHECK(mesh_replay_update(&w, top - MESH_REPLAY_WINDOW_SPAN) == MESH_OK);
    CHECK(mesh_replay_update(&w, top - MESH_REPLAY_WINDOW_SPAN) == MESH_ERR_REPLAY);
    /* A big jump forgets everything behind the new window, bits included. */
    CHECK(mesh_replay_update(&w, top + 1000000) == MESH_OK);
    CHECK(mesh_replay_check(&w, top) == MESH_ERR_REPLAY);
    CHECK(mesh_replay_check(&w, top + 1000000 - 1) == MESH_OK);
}

static void test_stale_bits_are_cleared_when_the_ring_wraps(void) {
    mesh_replay w;
    mesh_replay_init(&w);
    CHECK(mesh_replay_update(&w, 5) == MESH_OK);
    /* Same ring slot and bit as 5, one ring further: must be fresh. */
    CHECK(mesh_replay_update(&w, 5 + MESH_REPLAY_WINDOW_BITS) == MESH_OK);
    CHECK(mesh_replay_update(&w, 5 + 2 * MESH_REPLAY_WINDOW_BITS - 64) == MESH_OK);
    CHECK(mesh_replay_check(&w, 5 + MESH_REPLAY_WINDOW_BITS + 64) == MESH_OK);
}

static void test_counters_past_the_limit_are_refused(void) {
    mesh_replay w;
    mesh_replay_init(&w);
    CHECK(mesh_replay_update(&w, MESH_REKEY_AFTER_MESSAGES) == MESH_ERR_REPLAY);
    CHECK(mesh_replay_update(&w, UINT64_MAX) == MESH_ERR_REPLAY);
    CHECK(mesh_replay_update(&w, MESH_REKEY_AFTER_MESSAGES - 1) == MESH_OK);
}

static void test_null_window_is_an_argument_error(void) {
    CHECK(mesh_replay_init(NULL) == MESH_ERR_ARGUMENT);
    CHECK(mesh_replay_check(NULL, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_replay_update(NULL, 1) == MESH_ERR_ARGUMENT);
}

/* Brute-force model: a flat bitmap over every counter below MODEL_RANGE. */
enum { MODEL_RANGE = 1 << 17 };

static void test_bitmap_agrees_with_brute_force_model(void) {
    static uint8_t seen[MODEL_RANGE];
    memset(seen, 0, sizeof(seen));
    mesh_replay w;
    mesh_replay_init(&w);
    uint64_t highest = 0;
    int any = 0;
    unsigned state = 12345;
    int disagreements = 0;
    for (int i = 0; i < 200000; i++) {
        if (highest > MODEL_RANGE - 30000) { /* start a fresh session before the model ends */
            memset(seen, 0, sizeof(seen));
            mesh_replay_init(&w);
            highest = 0;
            any = 0;
        }
        state = state * 1103515245u + 12345u;
        uint64_t step = (state >> 8) % 100;
        uint64_t counter;
        if (step < 60) counter = highest + (state >> 16) % 70;           /* forward */
        else if (step < 95) counter = highest - ((state >> 12) % 9000);   /* back, near edge */
        else counter = highest + (state >> 12) % 20000;                   /* jump */
        if (counter > highest + 30000) counter = 0; /* wrapped below zero: oldest */
        int expect = !seen[counter] && (!any || counter > highest ||
                                        highest - counter <= MESH_REPLAY_WINDOW_SPAN);
        int got = mesh_replay_update(&w, counter) == MESH_OK;
        if (got != expect) disagreements++;
        if (expect) {
            seen[counter] = 1;
            if (!any || counter > highest) highest = counter;
            any = 1;
        }
    }
    CHECK(disagreements == 0);
}

int main(int argc, char **argv) {
    (void)argc;
    test_each_counter_is_accepted_once();
    test_reordering_inside_the_window_is_accepted();
    test_window_edge();
    test_stale_bits_are_cleared_when_the_ring_wraps();
    test_counters_past_the_limit_are_refused();
    test_null_window_is_an_argument_error();
    test_bitmap_agrees_with_brute_force_model();
    return check_summary(argv[0]);
}
