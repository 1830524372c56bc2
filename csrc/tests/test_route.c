/* Unit tests of csrc/route.c: the update rules one by one, then long random operation
 * sequences against a brute-force model (an unsorted array searched linearly) on a small
 * table, so probe runs wrap, collide and shift back on deletion many times.
 * Build: cc -std=c11 -Icsrc csrc/route.c csrc/tests/test_route.c (make asan-test runs it). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "route.h"

static void make_id(uint8_t out[MESH_NODE_ID_BYTES], uint32_t value) {
    memset(out, 0xA5, MESH_NODE_ID_BYTES);
    memcpy(out, &value, sizeof value);
}

static void test_sequence_numbers_compare_modulo_2_32(void) {
    CHECK(mesh_route_seq_newer(2, 1));
    CHECK(!mesh_route_seq_newer(1, 2));
    CHECK(!mesh_route_seq_newer(7, 7));
    CHECK(mesh_route_seq_newer(0, 0xFFFFFFFFu));
    CHECK(mesh_route_seq_newer(5, 0xFFFFFFF0u));
    CHECK(!mesh_route_seq_newer(0xFFFFFFF0u, 5));
    /* Exactly half the space apart: neither is newer. */
    CHECK(!mesh_route_seq_newer(0x80000000u, 0));
    CHECK(!mesh_route_seq_newer(0, 0x80000000u));
}

static void test_update_rules(void) {
    mesh_route_table *table = mesh_route_table_new(8, 64, 1);
    uint8_t dest[16], hop_a[16], hop_b[16];
    mesh_route route;
    make_id(dest, 1);
    make_id(hop_a, 100);
    make_id(hop_b, 200);

    CHECK(mesh_route_lookup(table, dest, &route) == 0);
    CHECK(mesh_route_update(table, dest, hop_a, 10, 5, 1000) == MESH_ROUTE_ACCEPTED);
    CHECK(mesh_route_lookup(table, dest, &route) == 1);
    CHECK(route.metric == 10 && route.seq == 5 && route.expires == 1000);
    CHECK(memcmp(route.next_hop, hop_a, 16) == 0);

    /* Equal seq: a lower metric wins, an equal or higher one from another hop does not. */
    CHECK(mesh_route_update(table, dest, hop_b, 10, 5, 2000) == MESH_ROUTE_REJECTED);
    CHECK(mesh_route_update(table, dest, hop_b, 11, 5, 2000) == MESH_ROUTE_REJECTED);
    CHECK(mesh_route_update(table, dest, hop_b, 9, 5, 2000) == MESH_ROUTE_ACCEPTED);
    mesh_route_lookup(table, dest, &route);
    CHECK(memcmp(route.next_hop, hop_b, 16) == 0 && route.metric == 9);

    /* The current next hop may restate its route at the same seq, worse or not. */
    CHECK(mesh_route_update(table, dest, hop_b, 30, 5, 3000) == MESH_ROUTE_ACCEPTED);
    mesh_route_lookup(table, dest, &route);
    CHECK(route.metric == 30 && route.expires == 3000);

    /* Older seq loses whatever its metric; newer seq wins whatever its metric. */
    CHECK(mesh_route_update(table, dest, hop_a, 1, 4, 4000) == MESH_ROUTE_REJECTED);
    CHECK(mesh_route_update(table, dest, hop_a, 500, 6, 4000) == MESH_ROUTE_ACCEPTED);
    mesh_route_lookup(table, dest, &route);
    CHECK(route.metric == 500 && route.seq == 6);
    CHECK(mesh_route_table_size(table) == 1);
    mesh_route_table_free(table);
}

static void test_withdrawal_rules(void) {
    mesh_route_table *table = mesh_route_table_new(8, 64, 2);
    uint8_t dest[16], other[16], hop[16], next_hop[16];
    mesh_route route;
    make_id(dest, 1);
    make_id(other, 2);
    make_id(hop, 100);

    CHECK(mesh_route_withdraw(table, other, 1) == MESH_ROUTE_REJECTED);
    CHECK(mesh_route_table_size(table) == 0);
    mesh_route_update(table, dest, hop, 10, 5, 1000);
    CHECK(mesh_route_withdraw(table, dest, 4) == MESH_ROUTE_REJECTED);
    CHECK(mesh_route_withdraw(table, dest, 5) == MESH_ROUTE_ACCEPTED);
    CHECK(mesh_route_withdraw(table, dest, 5) == MESH_ROUTE_REJECTED);
    mesh_route_lookup(table, dest, &route);
    CHECK(route.metric == MESH_ROUTE_METRIC_INFINITY && route.seq == 5);
    CHECK(mesh_route_next_hops(table, dest, 1, next_hop) == 0);
    CHECK(next_hop[0] == 0 && next_hop[15] == 0);
    /* A withdrawn route comes back with any finite metric at its seq or a newer one. */
    CHECK(mesh_route_update(table, dest, hop, 40, 4, 1000) == MESH_ROUTE_REJECTED);
    CHECK(mesh_route_update(table, dest, hop, 40, 5, 1000) == MESH_ROUTE_ACCEPTED);
    CHECK(mesh_route_withdraw(table, dest, 9) == MESH_ROUTE_ACCEPTED);
    mesh_route_lookup(table, dest, &route);
    CHECK(route.seq == 9);
    mesh_route_table_free(table);
}

static void test_full_table_refuses_new_destinations_only(void) {
    mesh_route_table *table = mesh_route_table_new(4, 64, 3);
    uint8_t dest[16], hop[16];
    make_id(hop, 100);
    for (uint32_t i = 0; i < 4; i++) {
        make_id(dest, i);
        CHECK(mesh_route_update(table, dest, hop, 1, 1, 10) == MESH_ROUTE_ACCEPTED);
    }
    make_id(dest, 99);
    CHECK(mesh_route_update(table, dest, hop, 1, 1, 10) == MESH_ERR_TABLE_FULL);
    CHECK(mesh_route_table_size(table) == 4);
    make_id(dest, 2);
    CHECK(mesh_route_update(table, dest, hop, 1, 2, 10) == MESH_ROUTE_ACCEPTED);
    mesh_route_table_free(table);
}

static void test_next_hops_beyond_max_neighbours_are_refused_until_one_frees(void) {
    mesh_route_table *table = mesh_route_table_new(8, 2, 6);
    uint8_t d1[16], d2[16], d3[16], hop_a[16], hop_b[16], hop_c[16];
    mesh_route route;
    make_id(d1, 1);
    make_id(d2, 2);
    make_id(d3, 3);
    make_id(hop_a, 100);
    make_id(hop_b, 200);
    make_id(hop_c, 300);
    CHECK(mesh_route_update(table, d1, hop_a, 1, 1, 10) == MESH_ROUTE_ACCEPTED);
    CHECK(mesh_route_update(table, d2, hop_b, 1, 1, 20) == MESH_ROUTE_ACCEPTED);
    CHECK(mesh_route_update(table, d3, hop_c, 1, 1, 30) == MESH_ERR_TABLE_FULL);
    CHECK(mesh_route_lookup(table, d3, &route) == 0);
    /* Moving d2, hop b's only user, to a third hop is refused too: nothing changes. */
    CHECK(mesh_route_update(table, d2, hop_c, 1, 2, 20) == MESH_ERR_TABLE_FULL);
    mesh_route_lookup(table, d2, &route);
    CHECK(memcmp(route.next_hop, hop_b, 16) == 0 && route.seq == 1);
    /* A known next hop is always fine. */
    CHECK(mesh_route_update(table, d3, hop_a, 1, 1, 30) == MESH_ROUTE_ACCEPTED);
    /* Once hop b has no route left, hop c takes its place. */
    CHECK(mesh_route_expire(table, 20) == 2);
    CHECK(mesh_route_update(table, d2, hop_c, 1, 1, 40) == MESH_ROUTE_ACCEPTED);
    mesh_route_lookup(table, d2, &route);
    CHECK(memcmp(route.next_hop, hop_c, 16) == 0);
    mesh_route_lookup(table, d3, &route);
    CHECK(memcmp(route.next_hop, hop_a, 16) == 0);
    mesh_route_table_free(table);
}

static void test_bad_arguments_are_refused(void) {
    uint8_t dest[16], zero[16] = {0};
    mesh_route route;
    uint8_t found;
    make_id(dest, 1);
    CHECK(mesh_route_table_new(0, 64, 0) == NULL);
    CHECK(mesh_route_table_new(MESH_ROUTE_CAPACITY_MAX + 1u, 64, 0) == NULL);
    CHECK(mesh_route_table_new(2, 0, 0) == NULL);
    CHECK(mesh_route_table_new(2, MESH_ROUTE_NEIGHBOURS_MAX + 1u, 0) == NULL);
    mesh_route_table *table = mesh_route_table_new(2, 64, 4);
    CHECK(mesh_route_update(NULL, dest, dest, 1, 1, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_update(table, NULL, dest, 1, 1, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_update(table, dest, NULL, 1, 1, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_update(table, dest, zero, 1, 1, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_update(table, dest, dest, MESH_ROUTE_METRIC_INFINITY, 1, 1) ==
          MESH_ERR_ARGUMENT);
    CHECK(mesh_route_withdraw(table, NULL, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_lookup(table, dest, NULL) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_lookup_batch(table, NULL, 1, &route, &found) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_lookup_batch(table, NULL, 0, NULL, NULL) == 0);
    CHECK(mesh_route_next_hops(table, dest, 1, NULL) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_expire(NULL, 1) == MESH_ERR_ARGUMENT);
    CHECK(mesh_route_dump(table, NULL, 5) == 0);
    CHECK(mesh_route_table_size(table) == 0);
    mesh_route_table_free(table);
    mesh_route_table_free(NULL);
}

static void test_memory_stays_under_64_bytes_per_route(void) {
    const uint32_t capacities[] = {1u << 20, 1000000u, (1u << 20) + 1, 699051u};
    for (size_t i = 0; i < sizeof capacities / sizeof *capacities; i++) {
        mesh_route_table *table = mesh_route_table_new(capacities[i], 1024, 5);
        CHECK(table != NULL);
        CHECK(mesh_route_table_memory_bytes(table) <= (size_t)capacities[i] * 64);
        mesh_route_table_free(table);
    }
}

/* --- random operations against a brute-force model ------------------------------------ */

enum {
    MODEL_CAPACITY = 48,
    MODEL_NEIGHBOURS = 3,
    ID_SPACE = 80,
    HOP_SPACE = 5,
    OPERATIONS = 200000
};

typedef struct {
    mesh_route routes[MODEL_CAPACITY];
    size_t size;
} model;

static uint64_t rng_state = 0x243F6A8885A308D3u;

static uint32_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static mesh_route *model_find(model *m, const uint8_t *id) {
    for (size_t i = 0; i < m->size; i++)
        if (memcmp(m->routes[i].node_id, id, 16) == 0) return &m->routes[i];
    return NULL;
}

static int model_hop_in_use(const model *m, const uint8_t *hop) {
    for (size_t i = 0; i < m->size; i++)
        if (memcmp(m->routes[i].next_hop, hop, 16) == 0) return 1;
    return 0;
}

static size_t model_hops_in_use(const model *m) {
    size_t distinct = 0;
    for (size_t i = 0; i < m->size; i++) {
        int seen_before = 0;
        for (size_t j = 0; j < i && !seen_before; j++)
            seen_before = memcmp(m->routes[j].next_hop, m->routes[i].next_hop, 16) == 0;
        distinct += !seen_before;
    }
    return distinct;
}

static int model_update(model *m, const uint8_t *id, const uint8_t *hop, uint16_t metric,
                        uint32_t seq, uint32_t expires) {
    mesh_route *route = model_find(m, id);
    if (route) {
        uint32_t distance = seq - route->seq;
        int newer = distance != 0 && distance < 0x80000000u;
        int equal_wins = seq == route->seq &&
                         (metric < route->metric || memcmp(hop, route->next_hop, 16) == 0);
        if (!newer && !equal_wins) return MESH_ROUTE_REJECTED;
    } else if (m->size == MODEL_CAPACITY) {
        return MESH_ERR_TABLE_FULL;
    }
    if (!model_hop_in_use(m, hop) && model_hops_in_use(m) == MODEL_NEIGHBOURS)
        return MESH_ERR_TABLE_FULL;
    if (!route) {
        route = &m->routes[m->size++];
        memcpy(route->node_id, id, 16);
    }
    memcpy(route->next_hop, hop, 16);
    route->metric = metric;
    route->seq = seq;
    route->expires = expires;
    return MESH_ROUTE_ACCEPTED;
}

static int model_withdraw(model *m, const uint8_t *id, uint32_t seq) {
    mesh_route *route = model_find(m, id);
    if (!route) return MESH_ROUTE_REJECTED;
    uint32_t distance = seq - route->seq;
    int newer = distance != 0 && distance < 0x80000000u;
    if (!newer && !(seq == route->seq && route->metric != MESH_ROUTE_METRIC_INFINITY))
        return MESH_ROUTE_REJECTED;
    route->metric = MESH_ROUTE_METRIC_INFINITY;
    route->seq = seq;
    return MESH_ROUTE_ACCEPTED;
}

static int64_t model_expire(model *m, uint32_t now) {
    int64_t removed = 0;
    for (size_t i = 0; i < m->size;) {
        if (m->routes[i].expires <= now) {
            m->routes[i] = m->routes[--m->size];
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

static int same_route(const mesh_route *a, const mesh_route *b) {
    return memcmp(a->node_id, b->node_id, 16) == 0 && memcmp(a->next_hop, b->next_hop, 16) == 0 &&
           a->metric == b->metric && a->seq == b->seq && a->expires == b->expires;
}

static void test_random_operations_match_brute_force_model(void) {
    /* Seed 0 leaves the slot hash unkeyed; a keyed run follows. */
    for (uint64_t seed = 0; seed < 2; seed++) {
        mesh_route_table *table = mesh_route_table_new(MODEL_CAPACITY, MODEL_NEIGHBOURS, seed * 0x9E3779B97F4A7C15u);
        model m = {.size = 0};
        uint32_t now = 0;
        int mismatches = 0;
        for (int op = 0; op < OPERATIONS && mismatches < 5; op++) {
            uint8_t id[16], hop[16];
            make_id(id, next_random() % ID_SPACE);
            make_id(hop, 1000 + next_random() % HOP_SPACE);
            /* Sequence numbers near the wrap point, so modulo comparison is exercised. */
            uint32_t seq = 0xFFFFFFF8u + next_random() % 16;
            uint32_t choice = next_random() % 100;
            int got, want;
            if (choice < 55) {
                uint16_t metric = (uint16_t)(next_random() % 8);
                uint32_t expires = now + 1 + next_random() % 50;
                got = mesh_route_update(table, id, hop, metric, seq, expires);
                want = model_update(&m, id, hop, metric, seq, expires);
            } else if (choice < 75) {
                got = mesh_route_withdraw(table, id, seq);
                want = model_withdraw(&m, id, seq);
            } else if (choice < 85) {
                now += next_random() % 10;
                got = (int)mesh_route_expire(table, now);
                want = (int)model_expire(&m, now);
            } else {
                mesh_route route;
                mesh_route *expected = model_find(&m, id);
                got = mesh_route_lookup(table, id, &route);
                want = expected != NULL;
                if (got == 1 && expected && !same_route(&route, expected)) got = -100;
            }
            if (got != want || mesh_route_table_size(table) != m.size) {
                mismatches++;
                fprintf(stderr, "operation %d (choice %u): got %d want %d, size %u vs %zu\n", op,
                        choice, got, want, mesh_route_table_size(table), m.size);
            }
        }
        CHECK(mismatches == 0);

        /* Every id, single and batched, agrees with the model; the dump holds exactly it. */
        uint8_t ids[ID_SPACE][16], hops[ID_SPACE][16], found[ID_SPACE];
        mesh_route batch[ID_SPACE], dump[MODEL_CAPACITY];
        for (uint32_t i = 0; i < ID_SPACE; i++) make_id(ids[i], i);
        int64_t hits = mesh_route_lookup_batch(table, &ids[0][0], ID_SPACE, batch, found);
        mesh_route_next_hops(table, &ids[0][0], ID_SPACE, &hops[0][0]);
        int64_t expected_hits = 0;
        int agree = 1;
        for (uint32_t i = 0; i < ID_SPACE; i++) {
            const mesh_route *expected = model_find(&m, ids[i]);
            expected_hits += expected != NULL;
            if (found[i] != (expected != NULL)) agree = 0;
            if (expected && !same_route(&batch[i], expected)) agree = 0;
            int reachable = expected && expected->metric != MESH_ROUTE_METRIC_INFINITY;
            uint8_t zero[16] = {0};
            if (memcmp(hops[i], reachable ? expected->next_hop : zero, 16) != 0) agree = 0;
        }
        CHECK(agree);
        CHECK(hits == expected_hits);
        size_t dumped = mesh_route_dump(table, dump, MODEL_CAPACITY);
        CHECK(dumped == m.size);
        int dump_agrees = 1;
        for (size_t i = 0; i < dumped; i++) {
            const mesh_route *expected = model_find(&m, dump[i].node_id);
            if (!expected || !same_route(&dump[i], expected)) dump_agrees = 0;
        }
        CHECK(dump_agrees);
        mesh_route_table_free(table);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_sequence_numbers_compare_modulo_2_32();
    test_update_rules();
    test_withdrawal_rules();
    test_full_table_refuses_new_destinations_only();
    test_next_hops_beyond_max_neighbours_are_refused_until_one_frees();
    test_bad_arguments_are_refused();
    test_memory_stays_under_64_bytes_per_route();
    test_random_operations_match_brute_force_model();
    return check_summary(argv[0]);
}
