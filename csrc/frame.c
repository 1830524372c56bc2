/* Frame encoding and scanning (layout in wire.h).
 *
 * The scanner never copies a payload: it reports offsets, and the bindings hand out
 * views of the caller's buffer. A length field is checked against MESH_MAX_FRAME_PAYLOAD
 * as soon as the header is readable, so a streaming reader never waits for (or buffers)
 * more than one header plus the largest legal payload.
 */
#include "frame.h"

#include <string.h>

int mesh_frame_write_header(const mesh_frame_info *info, uint8_t *out) {
    if (info == NULL || out == NULL) return MESH_ERR_ARGUMENT;
    if (info->type == MESH_FRAME_TYPE_RESERVED || info->length > MESH_MAX_FRAME_PAYLOAD)
        return MESH_ERR_ARGUMENT;
    out[MESH_FRAME_OFF_VERSION] = MESH_WIRE_VERSION;
    out[MESH_FRAME_OFF_TYPE] = info->type;
    out[MESH_FRAME_OFF_FLAGS] = info->flags;
    out[MESH_FRAME_OFF_HOP_LIMIT] = info->hop_limit;
    mesh_store_be32(out + MESH_FRAME_OFF_LENGTH, info->length);
    mesh_store_be32(out + MESH_FRAME_OFF_CHANNEL, info->channel);
    mesh_store_be64(out + MESH_FRAME_OFF_SEQ, info->seq);
    memcpy(out + MESH_FRAME_OFF_SRC, info->src, MESH_NODE_ID_BYTES);
    memcpy(out + MESH_FRAME_OFF_DST, info->dst, MESH_NODE_ID_BYTES);
    return MESH_OK;
}

int mesh_frame_read_header(const uint8_t *in, mesh_frame_info *info) {
    if (in == NULL || info == NULL) return MESH_ERR_ARGUMENT;
    if (in[MESH_FRAME_OFF_VERSION] != MESH_WIRE_VERSION) return MESH_ERR_VERSION;
    if (in[MESH_FRAME_OFF_TYPE] == MESH_FRAME_TYPE_RESERVED) return MESH_ERR_MALFORMED;
    uint32_t length = mesh_load_be32(in + MESH_FRAME_OFF_LENGTH);
    if (length > MESH_MAX_FRAME_PAYLOAD) return MESH_ERR_OVERSIZE;
    info->type = in[MESH_FRAME_OFF_TYPE];
    info->flags = in[MESH_FRAME_OFF_FLAGS];
    info->hop_limit = in[MESH_FRAME_OFF_HOP_LIMIT];
    info->length = length;
    info->channel = mesh_load_be32(in + MESH_FRAME_OFF_CHANNEL);
    info->seq = mesh_load_be64(in + MESH_FRAME_OFF_SEQ);
    memcpy(info->src, in + MESH_FRAME_OFF_SRC, MESH_NODE_ID_BYTES);
    memcpy(info->dst, in + MESH_FRAME_OFF_DST, MESH_NODE_ID_BYTES);
    return MESH_OK;
}

int mesh_frames_encode(const mesh_frame_info *infos, size_t n, const uint8_t *payloads,
                       size_t payloads_len, uint8_t *out, size_t out_cap, size_t *written) {
    if (written == NULL || (n > 0 && (infos == NULL || out == NULL))) return MESH_ERR_ARGUMENT;
    *written = 0;
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        const mesh_frame_info *f = &infos[i];
        if (f->length > 0 && payloads == NULL) return MESH_ERR_ARGUMENT;
        if (f->offset > payloads_len || f->length > payloads_len - f->offset)
            return MESH_ERR_ARGUMENT;
        if (f->type == MESH_FRAME_TYPE_RESERVED || f->length > MESH_MAX_FRAME_PAYLOAD)
            return MESH_ERR_ARGUMENT;
        need += MESH_FRAME_HEADER_BYTES + (size_t)f->length;
    }
    if (need > out_cap) return MESH_ERR_CAPACITY;
    uint8_t *p = out;
    for (size_t i = 0; i < n; i++) {
        mesh_frame_write_header(&infos[i], p);
        p += MESH_FRAME_HEADER_BYTES;
        if (infos[i].length > 0) memcpy(p, payloads + infos[i].offset, infos[i].length);
        p += infos[i].length;
    }
    *written = need;
    return MESH_OK;
}

int mesh_frames_scan(const uint8_t *buf, size_t len, int sealed, mesh_frame_info *infos,
                     size_t max_infos, size_t *count, size_t *consumed, size_t *next_size) {
    if (count == NULL || consumed == NULL || next_size == NULL) return MESH_ERR_ARGUMENT;
    *count = 0;
    *consumed = 0;
    *next_size = 0;
    if (buf == NULL && len > 0) return MESH_ERR_ARGUMENT;
    const size_t body_start = sealed ? MESH_SEALED_AAD_BYTES : MESH_FRAME_HEADER_BYTES;
    const size_t overhead = sealed ? MESH_SEALED_OVERHEAD : 0;
    size_t pos = 0, n = 0;
    while (len - pos >= MESH_FRAME_HEADER_BYTES) {
        if (infos != NULL && n == max_infos) break;
        mesh_frame_info scratch;
        mesh_frame_info *f = infos != NULL ? &infos[n] : &scratch;
        int rc = mesh_frame_read_header(buf + pos, f);
        if (rc != MESH_OK) {
            *count = n;
            *consumed = pos;
            return rc;
        }
        size_t size = MESH_FRAME_HEADER_BYTES + (size_t)f->length + overhead;
        if (len - pos < size) {
            *next_size = size;
            break;
        }
        f->offset = pos + body_start;
        pos += size;
        n++;
    }
    *count = n;
    *consumed = pos;
    return MESH_OK;
}
