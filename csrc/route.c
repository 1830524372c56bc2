/* Routing table storage: a dense array of records plus an open-addressing index.
 *
 *   slots[]   uint32, power-of-two count >= 1.5 x capacity; 0 = empty, else record index + 1.
 *             Linear probing; deletion shifts later members of the probe run back
 *             (no tombstones), so lookups never degrade as routes come and go.
 *   records[] mesh_route, the first `size` in use, in no particular order; removal moves the
 *             last record into the hole and repoints its slot.
 *
 * Node ids are already SHA-256 output, so the slot hash only mixes their bytes with a
 * per-table seed (two multiply-xorshift rounds); the seed keeps someone who announces chosen
 * ids from building long probe runs offline. It is not a cryptographic PRF: the load limit
 * (at most 2/3) is what bounds the expected probe length.
 *
 * Batch lookups pipeline memory access: the slot of id i+16 and the record of id i+8 are
 * prefetched while id i is resolved, so a batch runs at memory-level parallelism instead of one
 * cache miss after another.
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MESH_PREFETCH(address) __builtin_prefetch((address))
#else
#define MESH_PREFETCH(address) ((void)(address))
#endif

enum { PREFETCH_SLOT_AHEAD = 16, PREFETCH_RECORD_AHEAD = 8 };

_Static_assert(sizeof(mesh_route) == 44, "mesh_route is the 44-byte stored record");

struct mesh_route_table {
    uint32_t capacity;
    uint32_t size;
    uint32_t slot_mask;
    uint64_t hash_seed;
    uint32_t *slots;
    mesh_route *records;
};

static size_t slot_of(const mesh_route_table *table, const uint8_t *node_id) {
    uint64_t low, high;
    memcpy(&low, node_id, sizeof low);
    memcpy(&high, node_id + sizeof low, sizeof high);
    uint64_t hash = (low ^ table->hash_seed) * UINT64_C(0x9E3779B97F4A7C15);
    hash ^= hash >> 32;
    hash = (hash ^ high) * UINT64_C(0xC2B2AE3D27D4EB4F);
    hash ^= hash >> 29;
    return (size_t)(hash & table->slot_mask);
}

static int same_id(const uint8_t *a, const uint8_t *b) {
    return memcmp(a, b, MESH_NODE_ID_BYTES) == 0;
}

static int is_zero_id(const uint8_t *id) {
    static const uint8_t zero[MESH_NODE_ID_BYTES];
    return same_id(id, zero);
}

/* Slot index holding node_id, or the empty slot ending its probe run (*found = 0). */
static size_t probe(const mesh_route_table *table, const uint8_t *node_id, int *found) {
    size_t slot = slot_of(table, node_id);
    for (;;) {
        uint32_t entry = table->slots[slot];
        if (entry == 0) {
            *found = 0;
            return slot;
        }
        if (same_id(table->records[entry - 1].node_id, node_id)) {
            *found = 1;
            return slot;
        }
        slot = (slot + 1) & table->slot_mask;
    }
}

static const mesh_route *find(const mesh_route_table *table, const uint8_t *node_id) {
    int found;
    size_t slot = probe(table, node_id, &found);
    return found ? &table->records[table->slots[slot] - 1] : NULL;
}

mesh_route_table *mesh_route_table_new(uint32_t capacity, uint64_t hash_seed) {
    if (capacity == 0 || capacity > MESH_ROUTE_CAPACITY_MAX) return NULL;
    uint64_t wanted = (uint64_t)capacity + capacity / 2 + 1;
    uint64_t slot_count = 1;
    while (slot_count < wanted) slot_count <<= 1;

    mesh_route_table *table = calloc(1, sizeof *table);
    if (!table) return NULL;
    table->capacity = capacity;
    table->slot_mask = (uint32_t)(slot_count - 1);
    table->hash_seed = hash_seed;
    table->slots = calloc((size_t)slot_count, sizeof *table->slots);
    table->records = malloc((size_t)capacity * sizeof *table->records);
    if (!table->slots || !table->records) {
        mesh_route_table_free(table);
        return NULL;
    }
    return table;
}

void mesh_route_table_free(mesh_route_table *table) {
    if (!table) return;
    free(table->slots);
    free(table->records);
    free(table);
}

uint32_t mesh_route_table_capacity(const mesh_route_table *table) {
    return table ? table->capacity : 0;
}

uint32_t mesh_route_table_size(const mesh_route_table *table) { return table ? table->size : 0; }

size_t mesh_route_table_memory_bytes(const mesh_route_table *table) {
    if (!table) return 0;
    return sizeof *table + ((size_t)table->slot_mask + 1) * sizeof *table->slots +
           (size_t)table->capacity * sizeof *table->records;
}

int mesh_route_seq_newer(uint32_t a, uint32_t b) {
    uint32_t distance = a - b;
    return distance != 0 && distance < UINT32_C(0x80000000);
}

int mesh_route_update(mesh_route_table *table, const uint8_t *node_id, const uint8_t *next_hop,
                      uint16_t metric, uint32_t seq, uint32_t expires) {
    if (!table || !node_id || !next_hop || metric >= MESH_ROUTE_METRIC_INFINITY ||
        is_zero_id(next_hop))
        return MESH_ERR_ARGUMENT;
    int found;
    size_t slot = probe(table, node_id, &found);
    mesh_route *route;
    if (found) {
        route = &table->records[table->slots[slot] - 1];
        int accepted = mesh_route_seq_newer(seq, route->seq) ||
                       (seq == route->seq &&
                        (metric < route->metric || same_id(next_hop, route->next_hop)));
        if (!accepted) return MESH_ROUTE_REJECTED;
    } else {
        if (table->size == table->capacity) return MESH_ERR_TABLE_FULL;
        route = &table->records[table->size];
        memcpy(route->node_id, node_id, MESH_NODE_ID_BYTES);
        route->reserved = 0;
        table->slots[slot] = ++table->size;
    }
    memcpy(route->next_hop, next_hop, MESH_NODE_ID_BYTES);
    route->metric = metric;
    route->seq = seq;
    route->expires = expires;
    return MESH_ROUTE_ACCEPTED;
}

int mesh_route_withdraw(mesh_route_table *table, const uint8_t *node_id, uint32_t seq) {
    if (!table || !node_id) return MESH_ERR_ARGUMENT;
    int found;
    size_t slot = probe(table, node_id, &found);
    if (!found) return MESH_ROUTE_REJECTED;
    mesh_route *route = &table->records[table->slots[slot] - 1];
    int accepted = mesh_route_seq_newer(seq, route->seq) ||
                   (seq == route->seq && route->metric != MESH_ROUTE_METRIC_INFINITY);
    if (!accepted) return MESH_ROUTE_REJECTED;
    route->metric = MESH_ROUTE_METRIC_INFINITY;
    route->seq = seq;
    return MESH_ROUTE_ACCEPTED;
}

/* Empties `slot` and shifts back later members of its probe run that may move (Knuth 6.4,
 * algorithm R): a member whose home lies cyclically in (hole, member] must stay. */
static void clear_slot(mesh_route_table *table, size_t hole) {
    size_t slot = hole;
    for (;;) {
        slot = (slot + 1) & table->slot_mask;
        uint32_t entry = table->slots[slot];
        if (entry == 0) break;
        size_t home = slot_of(table, table->records[entry - 1].node_id);
        int stays = hole <= slot ? (hole < home && home <= slot) : (hole < home || home <= slot);
        if (!stays) {
            table->slots[hole] = entry;
            hole = slot;
        }
    }
    table->slots[hole] = 0;
}

/* The slot that points at record `index` (which is in the table). */
static size_t slot_pointing_at(const mesh_route_table *table, uint32_t index) {
    size_t slot = slot_of(table, table->records[index].node_id);
    while (table->slots[slot] != index + 1) slot = (slot + 1) & table->slot_mask;
    return slot;
}

static void remove_record(mesh_route_table *table, uint32_t index) {
    clear_slot(table, slot_pointing_at(table, index));
    uint32_t last = table->size - 1;
    if (index != last) {
        table->slots[slot_pointing_at(table, last)] = index + 1;
        table->records[index] = table->records[last];
    }
    table->size = last;
}

int64_t mesh_route_expire(mesh_route_table *table, uint32_t now) {
    if (!table) return MESH_ERR_ARGUMENT;
    int64_t removed = 0;
    /* Walk down so that the record moved into a hole has already been examined. */
    for (uint32_t index = table->size; index-- > 0;) {
        if (table->records[index].expires <= now) {
            remove_record(table, index);
            removed++;
        }
    }
    return removed;
}

int mesh_route_lookup(const mesh_route_table *table, const uint8_t *node_id, mesh_route *out) {
    if (!table || !node_id || !out) return MESH_ERR_ARGUMENT;
    const mesh_route *route = find(table, node_id);
    if (!route) return 0;
    *out = *route;
    return 1;
}

static void prefetch_ahead(const mesh_route_table *table, const uint8_t *ids, size_t index,
                           size_t count) {
    if (index + PREFETCH_SLOT_AHEAD < count)
        MESH_PREFETCH(&table->slots[slot_of(
            table, ids + (index + PREFETCH_SLOT_AHEAD) * MESH_NODE_ID_BYTES)]);
    if (index + PREFETCH_RECORD_AHEAD < count) {
        uint32_t entry = table->slots[slot_of(
            table, ids + (index + PREFETCH_RECORD_AHEAD) * MESH_NODE_ID_BYTES)];
        if (entry) {
            const uint8_t *record = (const uint8_t *)&table->records[entry - 1];
            MESH_PREFETCH(record);
            MESH_PREFETCH(record + sizeof(mesh_route) - 1);
        }
    }
}

int64_t mesh_route_lookup_batch(const mesh_route_table *table, const uint8_t *ids, size_t count,
                                mesh_route *out, uint8_t *found) {
    if (!table || (count && (!ids || !out || !found))) return MESH_ERR_ARGUMENT;
    int64_t hits = 0;
    for (size_t index = 0; index < count; index++) {
        prefetch_ahead(table, ids, index, count);
        const mesh_route *route = find(table, ids + index * MESH_NODE_ID_BYTES);
        found[index] = route != NULL;
        if (route) {
            out[index] = *route;
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
        const mesh_route *route = find(table, ids + index * MESH_NODE_ID_BYTES);
        uint8_t *next_hop = next_hops + index * MESH_NODE_ID_BYTES;
        if (route && route->metric != MESH_ROUTE_METRIC_INFINITY) {
            memcpy(next_hop, route->next_hop, MESH_NODE_ID_BYTES);
            reachable++;
        } else {
            memset(next_hop, 0, MESH_NODE_ID_BYTES);
        }
    }
    return reachable;
}

size_t mesh_route_dump(const mesh_route_table *table, mesh_route *out, size_t max) {
    if (!table || !out) return 0;
    size_t count = table->size < max ? table->size : max;
    memcpy(out, table->records, count * sizeof *out);
    return count;
}
