/*
** commit.h — the payload of a COMMIT log record: one atomic commit (a put, a delete or
** a whole batch) with the values it introduces and the versions it creates.
**
** Layout (little-endian), following the 9-byte record header described in wal.h:
**     0   8  first seq (the versions get first_seq, first_seq+1, ...)
**     8   8  timestamp, microseconds since the epoch (shared by all versions)
**     16  4  number of new values V
**     20  4  number of versions N
**     24     V values:   hash[32] (BLAKE3 of the canonical JSON), u32 length, bytes
**            N versions: u8 flags (1 = tombstone, 2 = has previous), u16 ns length,
**                        u16 key length, ns bytes, key bytes, value hash[32] unless a
**                        tombstone, previous version id[32] if flag 2, version id[32]
** A version's value is found by its hash: either among this commit's values or an
** earlier commit's (values are stored once — deduplicated by content hash).
**
** The version id is BLAKE3 over the binary canonical header (kd__version_id):
**     "kdv1", u16 ns length, ns, u16 key length, key, u8 tombstone, value hash[32]
**     (zeros for a tombstone), i64 timestamp, u8 has previous, previous id[32] (zeros
**     if none), u16 author length (0 until identities exist), author bytes.
**
** May call: base, crypto.
*/
#ifndef KD_COMMIT_H
#define KD_COMMIT_H

#include "base/base.h"

#define KD_VF_DELETED 1
#define KD_VF_PREV 2

typedef struct kd_cval {
    const uint8_t *hash;
    const uint8_t *bytes;
    uint32_t len;
    uint32_t off; /* offset of bytes within the payload */
} kd_cval;

typedef struct kd_cver {
    uint8_t flags;
    const char *ns;  uint16_t nslen;
    const char *key; uint16_t keylen;
    const uint8_t *value_hash; /* NULL for tombstones */
    const uint8_t *prev;       /* NULL if none */
    const uint8_t *id;
} kd_cver;

typedef struct kd_commit {
    const uint8_t *base; /* the payload decoded (offsets of ids = id - base) */
    uint64_t first_seq;
    int64_t ts;
    uint32_t nvals, nvers;
    kd_cval *vals;
    kd_cver *vers;
} kd_commit;

/* Parses and bounds-checks a payload; pointers refer into it. KD_CORRUPT (with the byte
** offset within the payload in the message) on malformed input. Free with
** kd__commit_free. */
int kd__commit_decode(const uint8_t *p, uint32_t len, kd_commit *c);
void kd__commit_free(kd_commit *c);

void kd__version_id(const char *ns, size_t nslen, const char *key, size_t keylen, int deleted,
                    const uint8_t value_hash[32], int64_t ts, const uint8_t *prev,
                    uint8_t out[32]);
#endif
