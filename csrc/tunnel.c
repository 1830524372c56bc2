/* AES-256-GCM tunnel sessions (contract in tunnel.h, layout in wire.h).
 *
 * Outbound pipeline, one call per batch:
 *
 *   plain frames ──scan (all headers checked, room and rekey limit checked)──┐
 *   or payload ──cut into frame_payload pieces, header from the template─────┤
 *                                                                             v
 *   for each frame: copy header, append counter c, nonce = 0^32 || be64(c),
 *                   AAD = header || counter, encrypt payload, append tag, c++
 *
 * Inbound pipeline, one call per batch of whole records (open_records) or per stream
 * read (open_stream, which stops at the first incomplete record):
 *
 *   scan all record headers ──> for each record: replay check (no change)
 *     ──> nonce from the carried counter, AAD = header || counter, decrypt, verify tag
 *     ──> replay window update (only now, so forgeries never move it) ──> next
 *
 * The EVP contexts are keyed once in mesh_tunnel_new; per frame only the IV changes,
 * which keeps OpenSSL's key schedule and GHASH tables. Counters are never reused: the
 * send counter only grows, and sealing refuses before it would pass the limit.
 */
#include "tunnel.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "replay.h"

struct mesh_tunnel {
    EVP_CIPHER_CTX *seal_ctx;
    EVP_CIPHER_CTX *open_ctx;
    uint64_t send_counter;
    uint64_t max_messages;
    uint64_t expires_ns;
    mesh_replay window;
};

static void nonce_for(uint64_t counter, uint8_t nonce[MESH_NONCE_BYTES]) {
    memset(nonce, 0, MESH_NONCE_PREFIX_BYTES);
    mesh_store_be64(nonce + MESH_NONCE_PREFIX_BYTES, counter);
}

static EVP_CIPHER_CTX *keyed_context(const uint8_t *key, int encrypt) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return NULL;
    /* The default GCM IV length is the 12 bytes we use. */
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int mesh_tunnel_new(const uint8_t *send_key, size_t send_key_len, const uint8_t *recv_key,
                    size_t recv_key_len, uint64_t max_messages, uint64_t expires_ns,
                    mesh_tunnel **out) {
    if (out == NULL) return MESH_ERR_ARGUMENT;
    *out = NULL;
    if (send_key == NULL || recv_key == NULL || send_key_len != MESH_KEY_BYTES ||
        recv_key_len != MESH_KEY_BYTES || max_messages > MESH_REKEY_AFTER_MESSAGES)
        return MESH_ERR_ARGUMENT;
    mesh_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL) return MESH_ERR_NOMEM;
    t->max_messages = max_messages == 0 ? MESH_REKEY_AFTER_MESSAGES : max_messages;
    t->expires_ns = expires_ns;
    mesh_replay_init(&t->window);
    t->seal_ctx = keyed_context(send_key, 1);
    t->open_ctx = keyed_context(recv_key, 0);
    if (t->seal_ctx == NULL || t->open_ctx == NULL) {
        mesh_tunnel_free(t);
        return MESH_ERR_CRYPTO;
    }
    *out = t;
    return MESH_OK;
}

void mesh_tunnel_free(mesh_tunnel *t) {
    if (t == NULL) return;
    /* EVP_CIPHER_CTX_free cleanses the key schedule it holds. */
    EVP_CIPHER_CTX_free(t->seal_ctx);
    EVP_CIPHER_CTX_free(t->open_ctx);
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

uint64_t mesh_tunnel_send_counter(const mesh_tunnel *t) {
    return t == NULL ? 0 : t->send_counter;
}

/* MESH_OK if `n` more frames may be sealed at now_ns. */
static int may_seal(const mesh_tunnel *t, size_t n, uint64_t now_ns) {
    if (t->expires_ns != 0 && now_ns >= t->expires_ns) return MESH_ERR_REKEY;
    if ((uint64_t)n > t->max_messages - t->send_counter) return MESH_ERR_REKEY;
    return MESH_OK;
}

int mesh_tunnel_needs_rekey(const mesh_tunnel *t, uint64_t now_ns) {
    if (t == NULL) return 1;
    return may_seal(t, 1, now_ns) != MESH_OK;
}

/* Seal one record at `rec`, whose header is already written: counter, ciphertext, tag. */
static int seal_record(mesh_tunnel *t, uint8_t *rec, const uint8_t *payload, uint32_t length) {
    uint8_t nonce[MESH_NONCE_BYTES];
    int n = 0;
    uint8_t *ct = rec + MESH_SEALED_AAD_BYTES;
    mesh_store_be64(rec + MESH_SEALED_OFF_COUNTER, t->send_counter);
    nonce_for(t->send_counter, nonce);
    if (EVP_EncryptInit_ex(t->seal_ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(t->seal_ctx, NULL, &n, rec, MESH_SEALED_AAD_BYTES) != 1 ||
        (length > 0 && EVP_EncryptUpdate(t->seal_ctx, ct, &n, payload, (int)length) != 1) ||
        EVP_EncryptFinal_ex(t->seal_ctx, ct + length, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(t->seal_ctx, EVP_CTRL_GCM_GET_TAG, MESH_TAG_BYTES, ct + length) != 1)
        return MESH_ERR_CRYPTO;
    t->send_counter++;
    return MESH_OK;
}

int mesh_tunnel_seal_frames(mesh_tunnel *t, const uint8_t *plain, size_t plain_len,
                            uint64_t now_ns, uint8_t *out, size_t out_cap, size_t *written,
                            size_t *count) {
    if (t == NULL || written == NULL || count == NULL || (plain == NULL && plain_len > 0))
        return MESH_ERR_ARGUMENT;
    *written = 0;
    *count = 0;
    size_t n = 0, consumed = 0, next_size = 0;
    int rc = mesh_frames_scan(plain, plain_len, 0, NULL, 0, &n, &consumed, &next_size);
    if (rc != MESH_OK) return rc;
    if (consumed != plain_len) return MESH_ERR_TRUNCATED;
    if ((rc = may_seal(t, n, now_ns)) != MESH_OK) return rc;
    size_t need = plain_len + n * MESH_SEALED_OVERHEAD;
    if (n > 0 && (out == NULL || need > out_cap)) return MESH_ERR_CAPACITY;
    const uint8_t *in = plain;
    uint8_t *rec = out;
    for (size_t i = 0; i < n; i++) {
        uint32_t length = mesh_load_be32(in + MESH_FRAME_OFF_LENGTH);
        memcpy(rec, in, MESH_FRAME_HEADER_BYTES);
        if ((rc = seal_record(t, rec, in + MESH_FRAME_HEADER_BYTES, length)) != MESH_OK)
            return rc;
        in += MESH_FRAME_HEADER_BYTES + length;
        rec += MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + length;
    }
    *written = need;
    *count = n;
    return MESH_OK;
}

int mesh_tunnel_seal_stream(mesh_tunnel *t, const mesh_frame_info *tmpl,
                            const uint8_t *payload, size_t payload_len, size_t frame_payload,
                            uint64_t now_ns, uint8_t *out, size_t out_cap, size_t *written,
                            size_t *count) {
    if (t == NULL || tmpl == NULL || written == NULL || count == NULL ||
        (payload == NULL && payload_len > 0) || frame_payload == 0 ||
        frame_payload > MESH_MAX_FRAME_PAYLOAD || tmpl->type == MESH_FRAME_TYPE_RESERVED)
        return MESH_ERR_ARGUMENT;
    *written = 0;
    *count = 0;
    size_t n = payload_len / frame_payload + (payload_len % frame_payload != 0);
    int rc = may_seal(t, n, now_ns);
    if (rc != MESH_OK) return rc;
    size_t per_frame = MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD;
    if (n > (SIZE_MAX - payload_len) / per_frame) return MESH_ERR_CAPACITY;
    size_t need = payload_len + n * per_frame;
    if (n > 0 && (out == NULL || need > out_cap)) return MESH_ERR_CAPACITY;
    mesh_frame_info header = *tmpl;
    uint8_t *rec = out;
    for (size_t i = 0; i < n; i++) {
        size_t start = i * frame_payload;
        header.length = (uint32_t)(payload_len - start < frame_payload ? payload_len - start
                                                                       : frame_payload);
        header.seq = tmpl->seq + i;
        mesh_frame_write_header(&header, rec);
        if ((rc = seal_record(t, rec, payload + start, header.length)) != MESH_OK) return rc;
        rec += per_frame + header.length;
    }
    *written = need;
    *count = n;
    return MESH_OK;
}

/* Open the record at `rec` (header parsed into *f) into `out`. */
static int open_record(mesh_tunnel *t, const uint8_t *rec, const mesh_frame_info *f,
                       uint8_t *out) {
    uint64_t counter = mesh_load_be64(rec + MESH_SEALED_OFF_COUNTER);
    int rc = mesh_replay_check(&t->window, counter);
    if (rc != MESH_OK) return rc;
    uint8_t nonce[MESH_NONCE_BYTES];
    nonce_for(counter, nonce);
    const uint8_t *ct = rec + MESH_SEALED_AAD_BYTES;
    int n = 0;
    if (EVP_DecryptInit_ex(t->open_ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(t->open_ctx, NULL, &n, rec, MESH_SEALED_AAD_BYTES) != 1 ||
        (f->length > 0 && EVP_DecryptUpdate(t->open_ctx, out, &n, ct, (int)f->length) != 1) ||
        EVP_CIPHER_CTX_ctrl(t->open_ctx, EVP_CTRL_GCM_SET_TAG, MESH_TAG_BYTES,
                            (void *)(ct + f->length)) != 1)
        return MESH_ERR_CRYPTO;
    if (EVP_DecryptFinal_ex(t->open_ctx, out + f->length, &n) != 1) {
        OPENSSL_cleanse(out, f->length);
        return MESH_ERR_AUTH;
    }
    return mesh_replay_update(&t->window, counter);
}

/* Open the first n records at `in`, whose structure mesh_frames_scan has checked, into
 * `out` (room for all their payloads), in order. Progress so far is in *consumed,
 * *written and *count whether or not a record fails. */
static int open_run(mesh_tunnel *t, const uint8_t *in, size_t n, mesh_frame_info *infos,
                    uint8_t *out, size_t *consumed, size_t *written, size_t *count) {
    const uint8_t *rec = in;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        mesh_frame_info scratch;
        mesh_frame_info *f = infos != NULL ? &infos[i] : &scratch;
        mesh_frame_read_header(rec, f);
        f->offset = pos;
        int rc = open_record(t, rec, f, out + pos);
        if (rc != MESH_OK) return rc;
        pos += f->length;
        rec += MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + f->length;
        *consumed = (size_t)(rec - in);
        *written = pos;
        *count = i + 1;
    }
    return MESH_OK;
}

int mesh_tunnel_open_records(mesh_tunnel *t, const uint8_t *in, size_t in_len,
                             mesh_frame_info *infos, size_t max_infos, uint8_t *out,
                             size_t out_cap, size_t *written, size_t *count) {
    if (t == NULL || written == NULL || count == NULL || (in == NULL && in_len > 0))
        return MESH_ERR_ARGUMENT;
    *written = 0;
    *count = 0;
    size_t n = 0, consumed = 0, next_size = 0;
    int rc = mesh_frames_scan(in, in_len, 1, NULL, 0, &n, &consumed, &next_size);
    if (rc != MESH_OK) return rc;
    if (consumed != in_len) return MESH_ERR_TRUNCATED;
    if (infos != NULL && n > max_infos) return MESH_ERR_CAPACITY;
    size_t payload_total = in_len - n * (MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD);
    if (n > 0 && (out == NULL || payload_total > out_cap)) return MESH_ERR_CAPACITY;
    return open_run(t, in, n, infos, out, &consumed, written, count);
}

/* 1 if the byte ranges [a, a + a_len) and [b, b + b_len) share a byte. */
static int overlapping(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return a_len > 0 && b_len > 0 && x < y + b_len && y < x + a_len;
}

int mesh_tunnel_open_stream(mesh_tunnel *t, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t out_cap, size_t *consumed, size_t *written) {
    if (t == NULL || consumed == NULL || written == NULL || (in == NULL && in_len > 0) ||
        out == NULL || overlapping(in, in_len, out, out_cap))
        return MESH_ERR_ARGUMENT;
    *consumed = 0;
    *written = 0;
    size_t n = 0, whole = 0, next_size = 0;
    int rc = mesh_frames_scan(in, in_len, 1, NULL, 0, &n, &whole, &next_size);
    if (rc != MESH_OK) return rc;
    /* The leading whole records whose payloads fit in out together. */
    size_t fit = 0, room = out_cap;
    const uint8_t *rec = in;
    while (fit < n) {
        size_t length = mesh_load_be32(rec + MESH_FRAME_OFF_LENGTH);
        if (length > room) break;
        room -= length;
        rec += MESH_FRAME_HEADER_BYTES + MESH_SEALED_OVERHEAD + length;
        fit++;
    }
    if (n > 0 && fit == 0) return MESH_ERR_CAPACITY;
    size_t count = 0;
    return open_run(t, in, fit, NULL, out, consumed, written, &count);
}

static const EVP_CIPHER *gcm_for_key(size_t key_len) {
    switch (key_len) {
    case 16: return EVP_aes_128_gcm();
    case 24: return EVP_aes_192_gcm();
    case 32: return EVP_aes_256_gcm();
    default: return NULL;
    }
}

/* Checks shared by raw seal and open; data_len is the plaintext or ciphertext length. */
static int raw_args_ok(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                       size_t nonce_len, const uint8_t *aad, size_t aad_len,
                       const uint8_t *data, size_t data_len, size_t tag_len) {
    return key != NULL && gcm_for_key(key_len) != NULL && nonce != NULL && nonce_len >= 1 &&
           nonce_len <= MESH_GCM_MAX_NONCE_BYTES && (aad != NULL || aad_len == 0) &&
           aad_len <= INT_MAX && (data != NULL || data_len == 0) && data_len <= INT_MAX &&
           tag_len >= MESH_GCM_MIN_TAG_BYTES && tag_len <= MESH_TAG_BYTES;
}

/* A context set up for key and nonce, with the AAD already absorbed. */
static EVP_CIPHER_CTX *raw_context(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                                   size_t nonce_len, const uint8_t *aad, size_t aad_len,
                                   int encrypt) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    if (ctx == NULL) return NULL;
    if (EVP_CipherInit_ex(ctx, gcm_for_key(key_len), NULL, NULL, NULL, encrypt) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nonce_len, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1 ||
        (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int mesh_aes_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                      size_t nonce_len, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                      size_t pt_len, size_t tag_len, uint8_t *out, size_t out_cap) {
    if (!raw_args_ok(key, key_len, nonce, nonce_len, aad, aad_len, pt, pt_len, tag_len) ||
        out == NULL)
        return MESH_ERR_ARGUMENT;
    if (out_cap < pt_len + tag_len) return MESH_ERR_CAPACITY;
    EVP_CIPHER_CTX *ctx = raw_context(key, key_len, nonce, nonce_len, aad, aad_len, 1);
    if (ctx == NULL) return MESH_ERR_CRYPTO;
    int n = 0, rc = MESH_OK;
    if ((pt_len > 0 && EVP_EncryptUpdate(ctx, out, &n, pt, (int)pt_len) != 1) ||
        EVP_EncryptFinal_ex(ctx, out + pt_len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)tag_len, out + pt_len) != 1)
        rc = MESH_ERR_CRYPTO;
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int mesh_aes_gcm_open(const uint8_t *key, size_t key_len, const uint8_t *nonce,
                      size_t nonce_len, const uint8_t *aad, size_t aad_len,
                      const uint8_t *data, size_t data_len, size_t tag_len, uint8_t *out,
                      size_t out_cap) {
    if (!raw_args_ok(key, key_len, nonce, nonce_len, aad, aad_len, data, data_len, tag_len))
        return MESH_ERR_ARGUMENT;
    if (data_len < tag_len) return MESH_ERR_AUTH; /* no room for the tag: cannot verify */
    size_t ct_len = data_len - tag_len;
    if (ct_len > 0 && (out == NULL || out_cap < ct_len)) return MESH_ERR_CAPACITY;
    EVP_CIPHER_CTX *ctx = raw_context(key, key_len, nonce, nonce_len, aad, aad_len, 0);
    if (ctx == NULL) return MESH_ERR_CRYPTO;
    int n = 0, rc = MESH_OK;
    uint8_t tag[MESH_TAG_BYTES];
    memcpy(tag, data + ct_len, tag_len);
    if ((ct_len > 0 && EVP_DecryptUpdate(ctx, out, &n, data, (int)ct_len) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)tag_len, tag) != 1) {
        rc = MESH_ERR_CRYPTO;
    } else {
        uint8_t final_block[MESH_TAG_BYTES];
        if (EVP_DecryptFinal_ex(ctx, final_block, &n) != 1) rc = MESH_ERR_AUTH;
    }
    if (rc != MESH_OK && ct_len > 0) OPENSSL_cleanse(out, ct_len);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}
