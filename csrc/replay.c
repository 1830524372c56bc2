/* RFC 6479 replay window; see replay.h for the contract. */
#include "replay.h"

#include <stddef.h>
#include <string.h>

enum {
    RING_BLOCKS = MESH_REPLAY_WINDOW_BITS / MESH_REPLAY_BLOCK_BITS,
    BLOCK_SHIFT = 6 /* log2(MESH_REPLAY_BLOCK_BITS) */
};

_Static_assert(MESH_REPLAY_BLOCK_BITS == (1 << BLOCK_SHIFT), "block size is 2^BLOCK_SHIFT");
_Static_assert((RING_BLOCKS & (RING_BLOCKS - 1)) == 0, "ring size is a power of two");
_Static_assert(MESH_REPLAY_WINDOW_SPAN == MESH_REPLAY_WINDOW_BITS - MESH_REPLAY_BLOCK_BITS,
               "one block of the ring is the one being cleared");

int mesh_replay_init(mesh_replay *w) {
    if (w == NULL) return MESH_ERR_ARGUMENT;
    memset(w, 0, sizeof(*w));
    return MESH_OK;
}

static uint64_t bit_of(uint64_t counter) {
    return (uint64_t)1 << (counter & (MESH_REPLAY_BLOCK_BITS - 1));
}

static size_t block_of(uint64_t counter) {
    return (size_t)((counter >> BLOCK_SHIFT) & (RING_BLOCKS - 1));
}

int mesh_replay_check(const mesh_replay *w, uint64_t counter) {
    if (w == NULL) return MESH_ERR_ARGUMENT;
    if (counter >= MESH_REKEY_AFTER_MESSAGES) return MESH_ERR_REPLAY;
    if (!w->any || counter > w->highest) return MESH_OK;
    if (w->highest - counter > MESH_REPLAY_WINDOW_SPAN) return MESH_ERR_REPLAY;
    return (w->blocks[block_of(counter)] & bit_of(counter)) ? MESH_ERR_REPLAY : MESH_OK;
}

int mesh_replay_update(mesh_replay *w, uint64_t counter) {
    int rc = mesh_replay_check(w, counter);
    if (rc != MESH_OK) return rc;
    if (!w->any || counter > w->highest) {
        /* Clear the blocks the window slides onto (at most the whole ring). */
        uint64_t last = w->highest >> BLOCK_SHIFT, next = counter >> BLOCK_SHIFT;
        if (!w->any || next - last >= RING_BLOCKS) {
            memset(w->blocks, 0, sizeof(w->blocks));
        } else {
            for (uint64_t b = last + 1; b <= next; b++) w->blocks[b & (RING_BLOCKS - 1)] = 0;
        }
        w->highest = counter;
        w->any = 1;
    }
    w->blocks[block_of(counter)] |= bit_of(counter);
    return MESH_OK;
}
