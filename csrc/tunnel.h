/* AES-256-GCM tunnel sessions and raw AES-GCM, through OpenSSL's EVP API.
 *
 * A session holds one EVP context per direction, keyed once at creation; each frame
 * only sets a new nonce. It is not thread-safe: one owner seals and opens. Record layout,
 * nonce layout and limits: wire.h.
 */
#ifndef MESH_TUNNEL_H
#define MESH_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "wire.h"

typedef struct mesh_tunnel mesh_tunnel;

/* A session sealing with send_key and opening with recv_key (MESH_KEY_BYTES each).
 * Sealing stops (MESH_ERR_REKEY) once max_messages frames were sealed (at most
 * MESH_REKEY_AFTER_MESSAGES; 0 means that maximum) or once now_ns >= expires_ns
 * (0 = no time limit; times are the caller's monotonic clock in nanoseconds).
 * The key bytes are not kept outside the EVP contexts. */
int mesh_tunnel_new(const uint8_t *send_key, size_t send_key_len, const uint8_t *recv_key,
                    size_t recv_key_len, uint64_t max_messages, uint64_t expires_ns,
                    mesh_tunnel **out);

/* Wipe the key schedules and counters and free. Null is a no-op. */
void mesh_tunnel_free(mesh_tunnel *t);

/* Counter the next sealed frame will carry (= frames sealed so far). */
uint64_t mesh_tunnel_send_counter(const mesh_tunnel *t);

/* 1 if sealing one more frame at now_ns would return MESH_ERR_REKEY, else 0. */
int mesh_tunnel_needs_rekey(const mesh_tunnel *t, uint64_t now_ns);

/* Seal every plain frame in `plain` (whole frames, as mesh_frames_encode writes them)
 * into records at `out`, which needs plain_len + count * MESH_SEALED_OVERHEAD bytes.
 * All or nothing: a bad frame, too little room or the rekey limit leaves the session
 * and `out` untouched. */
int mesh_tunnel_seal_frames(mesh_tunnel *t, const uint8_t *plain, size_t plain_len,
                            uint64_t now_ns, uint8_t *out, size_t out_cap, size_t *written,
                            size_t *count);

/* Cut `payload` into ceil(payload_len / frame_payload) frames carrying the header fields
 * of `tmpl` (its length and offset are ignored; frame i gets sequence tmpl->seq + i) and
 * seal them all, as mesh_tunnel_seal_frames. An empty payload gives no frames. */
int mesh_tunnel_seal_stream(mesh_tunnel *t, const mesh_frame_info *tmpl,
                            const uint8_t *payload, size_t payload_len, size_t frame_payload,
                            uint64_t now_ns, uint8_t *out, size_t out_cap, size_t *written,
                            size_t *count);

/* Open every record in `in` (whole records only). Plaintext payloads are written one
 * after another at `out` (in_len bytes always suffice); with infos non-null, record i's
 * header goes to infos[i] with offset = where its payload starts in `out` (more than
 * max_infos records: MESH_ERR_CAPACITY). The structure of all records is checked first
 * (nothing opened if it is bad). Then records open in order; the first that fails
 * (MESH_ERR_REPLAY before decryption, MESH_ERR_AUTH after) stops the call with *count /
 * *written describing the records opened before it, whose counters the replay window
 * has taken; the failed record's plaintext is wiped. */
int mesh_tunnel_open_records(mesh_tunnel *t, const uint8_t *in, size_t in_len,
                             mesh_frame_info *infos, size_t max_infos, uint8_t *out,
                             size_t out_cap, size_t *written, size_t *count);

/* Streaming open of bulk payloads, for a reader that appends socket reads to a buffer:
 * open the whole records at the start of `in`, stopping without error at the first
 * incomplete one or at the first whose payload no longer fits in `out`, and write their
 * payloads one after another at `out` (non-null, not overlapping `in`). *consumed = bytes of
 * the records opened (the caller keeps in[*consumed..] for the next call), *written =
 * payload bytes. Every header readable in `in`, the incomplete record's too, is checked
 * first: a bad one returns its error with nothing opened. MESH_ERR_CAPACITY if a whole
 * record is there but its payload alone is larger than out_cap. A record that fails to
 * open stops the call as in mesh_tunnel_open_records, *consumed / *written describing the
 * records opened before it. */
int mesh_tunnel_open_stream(mesh_tunnel *t, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t out_cap, size_t *consumed, size_t *written);

/* One-shot AES-GCM for known-answer tests: key of 16, 24 or 32 bytes, nonce of 1 to
 * MESH_GCM_MAX_NONCE_BYTES bytes, tag of MESH_GCM_MIN_TAG_BYTES to MESH_TAG_BYTES.
 * seal writes ciphertext || tag (pt_len + tag_len bytes); open takes ciphertext || tag
 * and writes data_len - tag_len bytes, MESH_ERR_AUTH (output wiped) on a bad tag. */
int mesh_aes_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                      size_t nonce_len, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                      size_t pt_len, size_t tag_len, uint8_t *out, size_t out_cap);
int mesh_aes_gcm_open(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                      size_t nonce_len, const uint8_t *aad, size_t aad_len,
                      const uint8_t *data, size_t data_len, size_t tag_len, uint8_t *out,
                      size_t out_cap);

#endif
