/* Routing table storage: one open-addressing array of 32-byte slots, plus a neighbour table.
 *
 *   slots[]      capacity * 3/2 + 1 slots (load at most 2/3; at least one always empty, so
 *                every probe ends). A slot holds the destination id, seq, expiry, metric and
 *                the next hop as a 16-bit neighbour index: 32 bytes, two per cache line, so a
 *                lookup costs one cache miss. Linear probing; removal shifts later members
 *                of the probe run back (Knuth 6.4, algorithm R), so there are no tombstones
 *                and lookups never degrade as routes come and go.
 *   neighbours   the distinct next hops in use, at most max_neighbours: ids, a count of the
 *                routes using each, and a small open-addressing map id -> index. An index
 *                whose count fell to zero stays mapped (and is found again by its id) until
 *                the neighbours run out; then the map is rebuilt from the live ones and the
 *                rest are reused. Indices of live neighbours never change.
 *
 * Node ids are already SHA-256 output, so the slot hash only mixes their bytes with a
 * per-table seed (two multiply-xorshift rounds) and maps the result onto the slot count by
 * multiplication (no power-of-two rounding, which would waste memory). The seed keeps someone
 * who announces chosen ids from building long probe runs offline; it is not a cryptographic
 * PRF: the load limit is what bounds the expected probe length.
 *
 * Big slot arrays are mapped with transparent huge pages advised on Linux: random lookups
 * over tens of megabytes are otherwise dominated by TLB misses. Batch lookups prefetch the
 * slot of id i+PREFETCH_AHEAD while id i is resolved, so a batch runs at memory-level
 * parallelism instead of one cache miss after another.
 */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* mmap flags and madvise under -std=c11 */
#endif

#include "route.h"

#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MESH_PREFETCH(address) __builtin_prefetch((address))
#else
#define MESH_PREFETCH(address) ((void)(address))
#endif

enum {
    PREFETCH_AHEAD = 12,
    /* Slot arrays at least this big are mmap'ed with huge pages advised; smaller ones use
     * calloc (which AddressSanitizer instruments). */
    HUGE_MAPPING_BYTES = 8 << 20,
};

typedef struct route_slot {
    uint8_t node_id[MESH_NODE_ID_BYTES];
    uint32_t seq;
    uint32_t expires;
    uint16_t metric;
    uint16_t neighbour; /* index into the neighbour table */
    uint32_t used;      /* 0: empty slot */
} route_slot;

_Static_assert(sizeof(route_slot) == 32, "a route slot is half a cache line");

typedef struct neighbour_table {
    uint32_t capacity;  /* max_neighbours */
    uint32_t issued;    /* indices handed out so far */
    uint32_t reusable;  /* entries of `spare` */
    uint32_t map_mask;  /* map has a power of two >= 2 x capacity entries */
    uint8_t (*ids)[MESH_NODE_ID_BYTES];
    uint32_t *users;    /* routes whose next hop this is */
    uint16_t *map;      /* 0: empty, else index + 1 */
    uint16_t *spare;    /* indices freed by the last rebuild */
} neighbour_table;

struct mesh_route_table {
    uint32_t capacity;
    uint32_t size;
    uint32_t slot_count;
    uint64_t hash_seed;
    size_t slot_bytes;
    route_slot *slots;
    neighbour_table neighbours;
};

/* --- memory ------------------------------------------------------------------------------ */

static void *alloc_zeroed(size_t bytes) {
#if defined(__linux__)
    if (bytes >= HUGE_MAPPING_BYTES) {
        void *mapping =
            mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapping == MAP_FAILED) return NULL;
#if defined(MADV_HUGEPAGE)
        (void)madvise(mapping, bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
#endif
        return mapping;
    }
#endif
    return calloc(1, bytes);
}

static void free_zeroed(void *memory, size_t bytes) {
    if (!memory) return;
#if defined(__linux__)
    if (bytes >= HUGE_MAPPING_BYTES) {
        munmap(memory, bytes);
        return;
    }
#endif
    (void)bytes;
    free(memory);
}

/* --- hashing ----------------------------------------------------------------------------- */

static uint64_t id_hash(uint64_t seed, const uint8_t *id) {
    uint64_t low, high;
    memcpy(&low, id, sizeof low);
    memcpy(&high, id + sizeof low, sizeof high);
    uint64_t hash = (low ^ seed) * UINT64_C(0x9E3779B97F4A7C15);
    hash ^= hash >> 32;
    hash = (hash ^ high) * UINT64_C(0xC2B2AE3D27D4EB4F);
    return hash ^ (hash >> 29);
}

static size_t slot_of(const mesh_route_table *table, const uint8_t *node_id) {
    return (size_t)(((id_hash(table->hash_seed, node_id) >> 32) * table->slot_count) >> 32);
}

static size_t next_slot(const mesh_route_table *table, size_t slot) {
    return slot + 1 == table->slot_count ? 0 : slot + 1;
}

static int same_id(const uint8_t *a, const uint8_t *b) {
    return memcmp(a, b, MESH_NODE_ID_BYTES) == 0;
}

static int is_zero_id(const uint8_t *id) {
    static const uint8_t zero[MESH_NODE_ID_BYTES];
    return same_id(id, zero);
}

/* --- neighbours -------------------------------------------------------------------------- */

static uint64_t neighbour_seed(const mesh_route_table *table) {
    return table->hash_seed ^ UINT64_C(0x5851F42D4C957F2D);
}

/* Map position holding `id`'s index, or the empty one ending its probe run (*index = -1). */
static size_t neighbour_probe(const mesh_route_table *table, const uint8_t *id, long *index) {
    const neighbour_table *n = &table->neighbours;
    size_t position = (size_t)(id_hash(neighbour_seed(table), id) & n->map_mask);
    for (;;) {
        uint16_t entry = n->map[position];
        if (entry == 0 || same_id(n->ids[entry - 1], id)) {
            *index = entry ? (long)entry - 1 : -1;
            return position;
        }
        position = (position + 1) & n->map_mask;
    }
}

/* Keep only the neighbours some route uses in the map; the others become reusable. */
static void neighbour_rebuild(mesh_route_table *table) {
    neighbour_table *n = &table->neighbours;
    memset(n->map, 0, ((size_t)n->map_mask + 1) * sizeof *n->map);
    n->reusable = 0;
    for (uint32_t index = 0; index < n->issued; index++) {
        if (n->users[index] == 0) {
            n->spare[n->reusable++] = (uint16_t)index;
            continue;
        }
        long found;
        size_t position = neighbour_probe(table, n->ids[index], &found);
        n->map[position] = (uint16_t)(index + 1);
    }
}

/* The neighbour index of `id`, adding it if new; -1 when max_neighbours are in use. */
static long neighbour_index(mesh_route_table *table, const uint8_t *id) {
    neighbour_table *n = &table->neighbours;
    long index;
    size_t position = neighbour_probe(table, id, &index);
    if (index >= 0) return index;
    if (n->issued < n->capacity) {
        index = (long)n->issued++;
    } else {
        if (n->reusable == 0) {
            neighbour_rebuild(table);
            if (n->reusable == 0) return -1;
            position = neighbour_probe(table, id, &index);
        }
        index = n->spare[--n->reusable];
    }
    memcpy(n->ids[index], id, MESH_NODE_ID_BYTES);
    n->map[position] = (uint16_t)(index + 1);
    return index;
}

/* --- table ------------------------------------------------------------------------------- */

mesh_route_table *mesh_route_table_new(uint32_t capacity, uint32_t max_neighbours,
                                       uint64_t hash_seed) {
    if (capacity == 0 || capacity > MESH_ROUTE_CAPACITY_MAX || max_neighbours == 0 ||
        max_neighbours > MESH_ROUTE_NEIGHBOURS_MAX)
        return NULL;
    mesh_route_table *table = calloc(1, sizeof *table);
    if (!table) return NULL;
    table->capacity = capacity;
    table->slot_count = capacity + capacity / 2 + 1;
    table->hash_seed = hash_seed;
    table->slot_bytes = (size_t)table->slot_count * sizeof(route_slot);
    table->slots = alloc_zeroed(table->slot_bytes);

    neighbour_table *n = &table->neighbours;
    uint32_t map_size = 1;
    while (map_size < 2 * max_neighbours) map_size <<= 1;
    n->capacity = max_neighbours;
    n->map_mask = map_size - 1;
    n->ids = calloc(max_neighbours, sizeof *n->ids);
    n->users = calloc(max_neighbours, sizeof *n->users);
    n->spare = calloc(max_neighbours, sizeof *n->spare);
    n->map = calloc(map_size, sizeof *n->map);
    if (!table->slots || !n->ids || !n->users || !n->spare || !n->map) {
        mesh_route_table_free(table);
        return NULL;
    }
    return table;
}

void mesh_route_table_free(mesh_route_table *table) {
    if (!table) return;
    free_zeroed(table->slots, table->slot_bytes);
    free(table->neighbours.ids);
    free(table->neighbours.users);
    free(table->neighbours.spare);
    free(table->neighbours.map);
    free(table);
}

uint32_t mesh_route_table_capacity(const mesh_route_table *table) {
    return table ? table->capacity : 0;
}

uint32_t mesh_route_table_size(const mesh_route_table *table) { return table ? table->size : 0; }

size_t mesh_route_table_memory_bytes(const mesh_route_table *table) {
    if (!table) return 0;
    const neighbour_table *n = &table->neighbours;
    return sizeof *table + table->slot_bytes +
           (size_t)n->capacity * (sizeof *n->ids + sizeof *n->users + sizeof *n->spare) +
           ((size_t)n->map_mask + 1) * sizeof *n->map;
}

int mesh_route_seq_newer(uint32_t a, uint32_t b) {
    uint32_t distance = a - b;
    return distance != 0 && distance < UINT32_C(0x80000000);
}

/* Slot holding node_id, or the empty slot ending its probe run (*found = 0). */
static size_t probe(const mesh_route_table *table, const uint8_t *node_id, int *found) {
    size_t slot = slot_of(table, node_id);
    for (;;) {
        const route_slot *candidate = &table->slots[slot];
        if (!candidate->used || same_id(candidate->node_id, node_id)) {
            *found = candidate->used != 0;
            return slot;
        }
        slot = next_slot(table, slot);
    }
}

static const route_slot *find(const mesh_route_table *table, const uint8_t *node_id) {
    int found;
    size_t slot = probe(table, node_id, &found);
    return found ? &table->slots[slot] : NULL;
}

int mesh_route_update(mesh_route_table *table, const uint8_t *node_id, const uint8_t *next_hop,
                      uint16_t metric, uint32_t seq, uint32_t expires) {
    if (!table || !node_id || !next_hop || metric >= MESH_ROUTE_METRIC_INFINITY ||
        is_zero_id(next_hop))
        return MESH_ERR_ARGUMENT;
    int found;
    route_slot *route = &table->slots[probe(table, node_id, &found)];
    if (found) {
        int same_hop = same_id(table->neighbours.ids[route->neighbour], next_hop);
        int accepted = mesh_route_seq_newer(seq, route->seq) ||
                       (seq == route->seq && (metric < route->metric || same_hop));
        if (!accepted) return MESH_ROUTE_REJECTED;
    } else if (table->size == table->capacity) {
        return MESH_ERR_TABLE_FULL;
    }
    /* Adding the new next hop's user before dropping the old one's keeps the old one from
     * being reclaimed while it is still this route's. Nothing changes if this fails. */
    long neighbour = neighbour_index(table, next_hop);
    if (neighbour < 0) return MESH_ERR_TABLE_FULL;
    table->neighbours.users[neighbour]++;
    if (found) {
        table->neighbours.users[route->neighbour]--;
    } else {
        memcpy(route->node_id, node_id, MESH_NODE_ID_BYTES);
        route->used = 1;
        table->size++;
    }
    route->neighbour = (uint16_t)neighbour;
    route->metric = metric;
    route->seq = seq;
    route->expires = expires;
    return MESH_ROUTE_ACCEPTED;
}

int mesh_route_withdraw(mesh_route_table *table, const uint8_t *node_id, uint32_t seq) {
    if (!table || !node_id) return MESH_ERR_ARGUMENT;
    int found;
    route_slot *route = &table->slots[probe(table, node_id, &found)];
    if (!found) return MESH_ROUTE_REJECTED;
    int accepted = mesh_route_seq_newer(seq, route->seq) ||
                   (seq == route->seq && route->metric != MESH_ROUTE_METRIC_INFINITY);
    if (!accepted) return MESH_ROUTE_REJECTED;
    route->metric = MESH_ROUTE_METRIC_INFINITY;
    route->seq = seq;
    return MESH_ROUTE_ACCEPTED;
}

/* Empties `hole` and shifts back later members of its probe run that may move: a member
 * whose home lies cyclically in (hole, member] must stay where it is. */
static void clear_slot(mesh_route_table *table, size_t hole) {
    size_t slot = hole;
    for (;;) {
        slot = next_slot(table, slot);
        if (!table->slots[slot].used) break;
        size_t home = slot_of(table, table->slots[slot].node_id);
        int stays = hole <= slot ? (hole < home && home <= slot) : (hole < home || home <= slot);
        if (!stays) {
            table->slots[hole] = table->slots[slot];
            hole = slot;
        }
    }
    memset(&table->slots[hole], 0, sizeof table->slots[hole]);
}

int64_t mesh_route_expire(mesh_route_table *table, uint32_t now) {
    if (!table) return MESH_ERR_ARGUMENT;
    int64_t removed = 0;
    /* After a removal the same slot is examined again: the shift may have moved a member
     * there. Members only move towards the hole, so none is skipped. */
    for (size_t slot = 0; slot < table->slot_count && table->size > 0;) {
        route_slot *route = &table->slots[slot];
        if (route->used && route->expires <= now) {
            table->neighbours.users[route->neighbour]--;
            clear_slot(table, slot);
            table->size--;
            removed++;
        } else {
            slot++;
        }
    }
    return removed;
}

static void copy_out(const mesh_route_table *table, const route_slot *route, mesh_route *out) {
    memcpy(out->node_id, route->node_id, MESH_NODE_ID_BYTES);
    memcpy(out->next_hop, table->neighbours.ids[route->neighbour], MESH_NODE_ID_BYTES);
    out->seq = route->seq;
    out->expires = route->expires;
    out->metric = route->metric;
    out->reserved = 0;
}

int mesh_route_lookup(const mesh_route_table *table, const uint8_t *node_id, mesh_route *out) {
    if (!table || !node_id || !out) return MESH_ERR_ARGUMENT;
    const route_slot *route = find(table, node_id);
    if (!route) return 0;
    copy_out(table, route, out);
    return 1;
}

static void prefetch_ahead(const mesh_route_table *table, const uint8_t *ids, size_t index,
                           size_t count) {
    if (index + PREFETCH_AHEAD < count)
        MESH_PREFETCH(
            &table->slots[slot_of(table, ids + (index + PREFETCH_AHEAD) * MESH_NODE_ID_BYTES)]);
}

int64_t mesh_route_lookup_batch(const mesh_route_table *table, const uint8_t *ids, size_t count,
                                mesh_route *out, uint8_t *found) {
    if (!table || (count && (!ids || !out || !found))) return MESH_ERR_ARGUMENT;
    int64_t hits = 0;
    for (size_t index = 0; index < count; index++) {
        prefetch_ahead(table, ids, index, count);
        const route_slot *route = find(table, ids + index * MESH_NODE_ID_BYTES);
        found[index] = route != NULL;
        if (route) {
            copy_out(table, route, &out[index]);
            hits++;
        }
    }
    return hits;
}

int64_t mesh_route_next_hops(const mesh_route_table *table, const uint8_t *ids, size_t count,
                             uint8_t *next_hops) {
    if (!table || (count && (!ids || !next_hops))) return MESH_ERR_ARGUMENT;
    int64_t reachable = 0;
    for (size_t index = 0; index < count; index++) {
        prefetch_ahead(table, ids, index, count);
        const route_slot *route = find(table, ids + index * MESH_NODE_ID_BYTES);
        uint8_t *next_hop = next_hops + index * MESH_NODE_ID_BYTES;
        if (route && route->metric != MESH_ROUTE_METRIC_INFINITY) {
            memcpy(next_hop, table->neighbours.ids[route->neighbour], MESH_NODE_ID_BYTES);
            reachable++;
        } else {
            memset(next_hop, 0, MESH_NODE_ID_BYTES);
        }
    }
    return reachable;
}

size_t mesh_route_dump(const mesh_route_table *table, mesh_route *out, size_t max) {
    if (!table || !out) return 0;
    size_t copied = 0;
    for (size_t slot = 0; slot < table->slot_count && copied < max; slot++)
        if (table->slots[slot].used) copy_out(table, &table->slots[slot], &out[copied++]);
    return copied;
}
