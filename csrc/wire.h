/* Every wire constant, size, offset and status code of the meshagent core.
 *
 * This header is the only place these numbers are written. Python reads them through the
 * cffi module (meshagent/_build_core.py declares them as enum members), so a change here
 * reaches both backends at the next build.
 *
 * Byte order: every multi-byte integer on the wire is big-endian (network order).
 *
 * Plain frame (MESH_FRAME_HEADER_BYTES + length bytes):
 *
 *    0      1      2      3      4              8              12                     20
 *   +------+------+------+------+--------------+--------------+----------------------+
 *   | ver  | type | flags| hops | length (u32) | channel (u32)| sequence (u64)       |
 *   +------+------+------+------+--------------+--------------+----------------------+
 *   20                      36                      52
 *   +-----------------------+-----------------------+---------------------+
 *   | source node id (16)   | destination id (16)   | payload (length)    |
 *   +-----------------------+-----------------------+---------------------+
 *
 * Sealed record (what a tunnel sends): the same 52-byte header in clear (length = the
 * plaintext payload length), then the 64-bit send counter, then the AES-256-GCM
 * ciphertext of the payload and its 16-byte tag. Header and counter (the first
 * MESH_SEALED_AAD_BYTES bytes) are the associated data, so a relay can read them but not
 * change them. The 96-bit GCM nonce is 4 zero bytes followed by the counter, big-endian.
 */
#ifndef MESH_WIRE_H
#define MESH_WIRE_H

enum mesh_wire_sizes {
    MESH_WIRE_VERSION = 1,
    MESH_NODE_ID_BYTES = 16,
    MESH_KEY_BYTES = 32,           /* AES-256 key of one tunnel direction */
    MESH_TAG_BYTES = 16,
    MESH_NONCE_BYTES = 12,
    MESH_NONCE_PREFIX_BYTES = 4,   /* zero bytes before the counter in the nonce */
    MESH_COUNTER_BYTES = 8,

    MESH_FRAME_OFF_VERSION = 0,
    MESH_FRAME_OFF_TYPE = 1,
    MESH_FRAME_OFF_FLAGS = 2,
    MESH_FRAME_OFF_HOP_LIMIT = 3,
    MESH_FRAME_OFF_LENGTH = 4,
    MESH_FRAME_OFF_CHANNEL = 8,
    MESH_FRAME_OFF_SEQ = 12,
    MESH_FRAME_OFF_SRC = 20,
    MESH_FRAME_OFF_DST = 36,
    MESH_FRAME_HEADER_BYTES = 52,

    MESH_SEALED_OFF_COUNTER = 52,
    MESH_SEALED_AAD_BYTES = 60,    /* header + counter */
    MESH_SEALED_OVERHEAD = 24,     /* counter + tag, added to a plain frame when sealed */

    /* Largest payload of one frame. Decoders refuse bigger length fields before
     * buffering anything, so a streaming decoder holds at most one header plus this. */
    MESH_MAX_FRAME_PAYLOAD = 65536,
    MESH_FRAME_TYPE_RESERVED = 0,  /* type 0 never appears on the wire */
    MESH_DEFAULT_HOP_LIMIT = 16,   /* hops a new frame may take before relays drop it */

    /* Raw AES-GCM (known-answer tests): accepted key, nonce and tag lengths. */
    MESH_GCM_MIN_TAG_BYTES = 4,
    MESH_GCM_MAX_NONCE_BYTES = 128, /* OpenSSL 3 providers refuse longer GCM IVs */

    /* RFC 6479 replay bitmap: MESH_REPLAY_WINDOW_BITS bits kept as 64-bit blocks in a ring;
     * a counter up to MESH_REPLAY_WINDOW_SPAN behind the highest one seen is still judged
     * by its bit, anything older is refused. */
    MESH_REPLAY_BLOCK_BITS = 64,
    MESH_REPLAY_WINDOW_BITS = 8192,
    MESH_REPLAY_WINDOW_SPAN = 8128, /* MESH_REPLAY_WINDOW_BITS - MESH_REPLAY_BLOCK_BITS */

    /* Public-key sizes (pubkey.h): Ed25519 (RFC 8032) keys and signatures as certificates
     * and signed documents carry them, X25519 (RFC 7748) keys and shared secrets. */
    MESH_ED25519_PUBLIC_BYTES = 32,
    MESH_ED25519_SIGNATURE_BYTES = 64,
    MESH_X25519_BYTES = 32,

    /* HKDF-SHA256 (kdf.h): RFC 5869 caps the output at 255 hash blocks. */
    MESH_HKDF_MAX_OUTPUT_BYTES = 8160
};

/* Message limits (WireGuard's REKEY_AFTER_MESSAGES / REJECT_AFTER_MESSAGES): a session
 * seals at most MESH_REKEY_AFTER_MESSAGES frames, and no counter at or past it is opened. */
#define MESH_REKEY_AFTER_MESSAGES ((unsigned long long)1 << 60)

/* Status codes: every mesh_ function that can fail returns one. meshagent.core maps each
 * to one exception class (meshagent/core/errors.py). */
enum mesh_status {
    MESH_OK = 0,
    MESH_ERR_ARGUMENT = -1,     /* null pointer, bad key/nonce/tag length, bad field value */
    MESH_ERR_CAPACITY = -2,     /* output buffer too small (a binding bug, never input) */
    MESH_ERR_TRUNCATED = -3,    /* input ends inside a frame or record */
    MESH_ERR_OVERSIZE = -4,     /* length field above MESH_MAX_FRAME_PAYLOAD */
    MESH_ERR_VERSION = -5,      /* unknown frame version */
    MESH_ERR_MALFORMED = -6,    /* reserved field or type set */
    MESH_ERR_AUTH = -7,         /* GCM tag does not verify */
    MESH_ERR_REPLAY = -8,       /* counter already seen or behind the window */
    MESH_ERR_REKEY = -9,        /* send limit (messages or time) reached: rekey */
    MESH_ERR_CRYPTO = -10,      /* OpenSSL failed for a reason other than the tag */
    MESH_ERR_NOMEM = -11,
    MESH_ERR_TABLE_FULL = -12,  /* route table holds its capacity */
    MESH_ERR_WEAK_KEY = -13     /* X25519 peer key of small order: the secret would be 0 */
};

#endif
