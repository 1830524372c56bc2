/* Routing table: destination node id -> next hop, metric, sequence number, expiry.
 *
 * Update rules follow DSDV and Babel (RFC 8966 section 3.5): sequence numbers are
 * compared modulo 2^32 (mesh_route_seq_newer); a newer sequence number wins; at an equal
 * sequence number a lower metric wins, and the current next hop may restate its own route
 * (refreshing its expiry, or reporting a worse metric). A withdrawal is a metric of
 * MESH_ROUTE_METRIC_INFINITY carried with a sequence number; the entry stays, so that older
 * announcements cannot resurrect the route, until it expires.
 *
 * Limits are fixed at creation: `capacity` destinations and `max_neighbours` distinct next
 * hops in use (next hops are direct neighbours: a few hundred at most in practice). A new
 * destination in a full table, or a new next hop while max_neighbours are in use, fails with
 * MESH_ERR_TABLE_FULL and changes nothing. Memory: 48 bytes per route of capacity, plus
 * 24 bytes or so per neighbour.
 *
 * Times are unsigned 32-bit seconds on a clock of the caller's choosing (monotonic); a route
 * with expires <= now is removed by mesh_route_expire.
 *
 * Not thread safe: one owner calls everything; const functions may run concurrently with each
 * other but not with a mutating call.
 */
#ifndef MESH_ROUTE_H
#define MESH_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

enum mesh_route_limits {
    MESH_ROUTE_METRIC_INFINITY = 0xFFFF,
    MESH_ROUTE_CAPACITY_MAX = 1 << 26,
    MESH_ROUTE_NEIGHBOURS_MAX = 0xFFFF,
};

/* Results of update and withdraw; failures are negative mesh_status codes (wire.h):
 * MESH_ERR_ARGUMENT (null pointer, metric out of range, all-zero next hop) and
 * MESH_ERR_TABLE_FULL. */
enum mesh_route_result {
    MESH_ROUTE_REJECTED = 0, /* stale or worse: the table is unchanged */
    MESH_ROUTE_ACCEPTED = 1,
};

/* One route as copied out (storage is more compact: see route.c). */
typedef struct mesh_route {
    uint8_t node_id[MESH_NODE_ID_BYTES];
    uint8_t next_hop[MESH_NODE_ID_BYTES];
    uint32_t seq;
    uint32_t expires;
    uint16_t metric;
    uint16_t reserved; /* zero */
} mesh_route;

typedef struct mesh_route_table mesh_route_table;

/* NULL when capacity is not in 1..MESH_ROUTE_CAPACITY_MAX, max_neighbours not in
 * 1..MESH_ROUTE_NEIGHBOURS_MAX, or memory is short. hash_seed keys the slot hash so that
 * chosen node ids cannot pile into one probe run. */
mesh_route_table *mesh_route_table_new(uint32_t capacity, uint32_t max_neighbours,
                                       uint64_t hash_seed);
void mesh_route_table_free(mesh_route_table *table);
uint32_t mesh_route_table_capacity(const mesh_route_table *table);
uint32_t mesh_route_table_size(const mesh_route_table *table);
/* Bytes allocated for the table (slots, neighbours and header), whatever its fill. */
size_t mesh_route_table_memory_bytes(const mesh_route_table *table);

/* 1 if a is newer than b in sequence-number space modulo 2^32 (RFC 8966 section 3.2.1). */
int mesh_route_seq_newer(uint32_t a, uint32_t b);

/* metric must be below MESH_ROUTE_METRIC_INFINITY (use withdraw) and next_hop not all zero
 * (all zero means "no route" in mesh_route_next_hops). */
int mesh_route_update(mesh_route_table *table, const uint8_t *node_id, const uint8_t *next_hop,
                      uint16_t metric, uint32_t seq, uint32_t expires);
/* Accepted when the destination is known and seq is newer than its stored one, or equal to it
 * while the stored route is still reachable. Unknown destinations are not inserted. */
int mesh_route_withdraw(mesh_route_table *table, const uint8_t *node_id, uint32_t seq);
/* Removes routes with expires <= now; returns how many (>= 0) or MESH_ERR_ARGUMENT. */
int64_t mesh_route_expire(mesh_route_table *table, uint32_t now);

/* 1 and *out filled when found (withdrawn routes included), 0 when not. */
int mesh_route_lookup(const mesh_route_table *table, const uint8_t *node_id, mesh_route *out);
/* count ids of 16 bytes each, packed; found[i] = 1 and out[i] filled, or found[i] = 0.
 * Returns the number found, or MESH_ERR_ARGUMENT. */
int64_t mesh_route_lookup_batch(const mesh_route_table *table, const uint8_t *ids, size_t count,
                                mesh_route *out, uint8_t *found);
/* The forwarding path: 16 bytes of next hop per id, all zero where there is no reachable
 * route (unknown or withdrawn). Returns the number of reachable ids, or MESH_ERR_ARGUMENT. */
int64_t mesh_route_next_hops(const mesh_route_table *table, const uint8_t *ids, size_t count,
                             uint8_t *next_hops);
/* Copies up to max routes in storage order; returns the number copied. */
size_t mesh_route_dump(const mesh_route_table *table, mesh_route *out, size_t max);

#endif
