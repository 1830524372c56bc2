/* Sliding replay window for received counters, RFC 6479 style.
 *
 * A ring of 64-bit blocks (MESH_REPLAY_WINDOW_BITS bits in all) keyed by counter / 64.
 * Moving the window forward clears whole blocks instead of shifting bits, so an update
 * costs O(1) however far the counter jumps. Each counter is accepted once; counters up to
 * MESH_REPLAY_WINDOW_SPAN behind the highest seen are judged by their bit (reordering);
 * older ones and counters at or past MESH_REKEY_AFTER_MESSAGES are refused.
 *
 * One window per receiving direction; not thread-safe (the tunnel that owns it is not).
 * Callers that authenticate first must `check` before and `update` only after the tag
 * verified, so forged packets cannot move the window.
 */
#ifndef MESH_REPLAY_H
#define MESH_REPLAY_H

#include <stdint.h>

#include "wire.h"

typedef struct mesh_replay {
    uint64_t highest;   /* highest counter accepted so far (valid once `any` is set) */
    uint64_t any;       /* nonzero once a counter was accepted */
    uint64_t blocks[MESH_REPLAY_WINDOW_BITS / MESH_REPLAY_BLOCK_BITS];
} mesh_replay;

/* An empty window. MESH_ERR_ARGUMENT for null. */
int mesh_replay_init(mesh_replay *w);

/* MESH_OK if `counter` would be accepted now, MESH_ERR_REPLAY if not. No change. */
int mesh_replay_check(const mesh_replay *w, uint64_t counter);

/* Record `counter` as seen; MESH_ERR_REPLAY (and no change) if it was not acceptable. */
int mesh_replay_update(mesh_replay *w, uint64_t counter);

#endif
