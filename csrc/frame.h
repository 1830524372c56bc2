/* Frames: encode, and scan buffers of frames or sealed records without copying payloads.
 *
 * Callers: the Python bindings (meshagent/core) and tunnel.c. Nothing here allocates or
 * keeps state; every function works on caller-owned buffers. Layout: wire.h.
 */
#ifndef MESH_FRAME_H
#define MESH_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* One frame's header fields plus where its payload lies in some buffer. */
typedef struct mesh_frame_info {
    uint8_t type;
    uint8_t flags;
    uint8_t hop_limit;
    uint32_t channel;
    uint64_t seq;
    uint32_t length;   /* payload bytes (plaintext bytes for a sealed record) */
    size_t offset;     /* payload start in the buffer this info refers to */
    uint8_t src[MESH_NODE_ID_BYTES];
    uint8_t dst[MESH_NODE_ID_BYTES];
} mesh_frame_info;

/* Write the 52-byte header of `info` at `out` (which has room for it). MESH_ERR_ARGUMENT
 * for type 0 or a length above MESH_MAX_FRAME_PAYLOAD. */
int mesh_frame_write_header(const mesh_frame_info *info, uint8_t *out);

/* Read and check the header at `in` (MESH_FRAME_HEADER_BYTES readable); `offset` is
 * left untouched. MESH_ERR_VERSION / _MALFORMED / _OVERSIZE on a bad header. */
int mesh_frame_read_header(const uint8_t *in, mesh_frame_info *info);

/* Encode `n` frames into `out`: frame i's payload is payloads[infos[i].offset ..
 * + infos[i].length]. Needs n * MESH_FRAME_HEADER_BYTES + sum(length) bytes of room, else
 * MESH_ERR_CAPACITY with nothing written. */
int mesh_frames_encode(const mesh_frame_info *infos, size_t n, const uint8_t *payloads,
                       size_t payloads_len, uint8_t *out, size_t out_cap, size_t *written);

/* Find the complete frames (sealed = 0) or sealed records (sealed = 1) at the start of
 * buf. Stops at the first incomplete one, which is not an error. With infos non-null it
 * fills at most max_infos entries (offset = payload, or ciphertext, start in buf) and
 * stops there; with infos null it only measures. *consumed = bytes of the complete ones,
 * *count = how many, *next_size = total size of the incomplete one once its header is
 * in buf (0 while even the header is incomplete). A bad header returns its error with the
 * outputs describing the good frames before it. */
int mesh_frames_scan(const uint8_t *buf, size_t len, int sealed, mesh_frame_info *infos,
                     size_t max_infos, size_t *count, size_t *consumed, size_t *next_size);

/* Big-endian loads and stores, shared with tunnel.c. */
static inline uint32_t mesh_load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t mesh_load_be64(const uint8_t *p) {
    return ((uint64_t)mesh_load_be32(p) << 32) | mesh_load_be32(p + 4);
}
static inline void mesh_store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void mesh_store_be64(uint8_t *p, uint64_t v) {
    mesh_store_be32(p, (uint32_t)(v >> 32));
    mesh_store_be32(p + 4, (uint32_t)v);
}

#endif
