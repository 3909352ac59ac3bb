/*
** index.h — the in-memory version index: namespaces, keys, versions and stored values.
**
** Shape (chosen to stay compact — tens of bytes per version):
**   - versions live in one chunked array indexed by seq-1 (kd_ver, 24 bytes each:
**     the timestamp, the log position of the version id, the value and the key); ids,
**     value hashes and value bytes stay in the log and are read through its mapping;
**   - each key keeps the seqs of its versions in ascending order (4 bytes a version;
**     a key with one version stores it inline), so time travel is a binary search;
**   - each distinct value is one slot of a dedup table keyed by the first 32 bits of
**     its BLAKE3 hash, naming the version that stored it (the full hash is compared in
**     the log on a match); that version finds the bytes relative to its own id;
**   - key names live in an append-only arena; a hash table maps (namespace, key) to the
**     key's slot.
** Limits: 2^31-2 versions and 2^32-2 keys per database (KD_FULL past that).
**
** May call: base. Not thread-safe by itself: db.c guards it with a rwlock (readers
** share, the committing writer holds it exclusively while it applies a commit).
*/
#ifndef KD_INDEX_H
#define KD_INDEX_H

#include "base/base.h"

typedef struct kd_ver {
    int64_t ts;
    uint64_t loc; /* log position of the version's 32-byte id (read through the map) */
    uint32_t val; /* 0 = tombstone; with KD_VAL_REL: the distance back from the id to the
                     value's bytes, which the same commit record stored; otherwise the
                     seq of the (earlier) version that stored the value, itself a
                     KD_VAL_REL version — values are stored once */
    uint32_t key; /* key number */
} kd_ver;

#define KD_VAL_REL 0x80000000u

typedef struct kd_key {
    const char *name;  /* NUL-terminated, in the arena */
    uint32_t ns;
    uint32_t nvers;
    uint32_t cap;      /* capacity of seqs.many; 0 while inline */
    uint32_t len;      /* name length */
    uint32_t last;     /* seq of the newest version (saves a memory access on reads) */
    union {
        uint32_t one;   /* nvers <= 1 */
        uint32_t *many; /* cap > 0 */
    } seqs;
} kd_key;


typedef struct kd_ns {
    char *name;
    uint64_t live_keys;   /* keys whose latest version is not a tombstone */
    uint64_t versions;
    uint32_t *keys;       /* key numbers of this namespace, in creation order */
    uint32_t nkeys, capkeys;
    uint32_t *sorted;     /* keys sorted by name; rebuilt lazily when nsorted != nkeys */
    uint32_t nsorted;
} kd_ns;

#define KD_CHUNK_BITS 16
#define KD_CHUNK (1u << KD_CHUNK_BITS)

typedef struct kd_index {
    kd_ver **vchunks;  uint64_t nvers;  size_t capvchunks;
    kd_key **kchunks;  uint32_t nkeys;  size_t capkchunks;
    uint32_t nvals;    /* distinct values (entries of xtab) */
    kd_ns *ns;         uint32_t nns, capns;
    uint32_t *nstab;   uint32_t nstab_size;  /* namespace number + 1, by name hash */

    /* Hash tables of (hash32 << 32 | number+1) slots, any size (not a power of two: the
    ** home slot is (hash32 * size) >> 32), linear probing, at most 85% full. */
    uint64_t *ktab;    uint32_t ktab_size;   /* keys */
    uint64_t *xtab;    uint32_t xtab_size;   /* values: (hash32 << 32 | seq of the storer) */

    char **arena;      size_t narena, caparena;
    size_t arena_used; /* bytes used in the last arena block */
    uint64_t live_keys_total, user_versions;
    uint64_t name_bytes;
} kd_index;

int kd__index_init(kd_index *ix);
void kd__index_free(kd_index *ix);

static inline kd_ver *kd__ver(const kd_index *ix, uint64_t seq) {
    uint64_t i = seq - 1;
    return &ix->vchunks[i >> KD_CHUNK_BITS][i & (KD_CHUNK - 1)];
}
static inline kd_key *kd__key(const kd_index *ix, uint32_t k) {
    return &ix->kchunks[k >> KD_CHUNK_BITS][k & (KD_CHUNK - 1)];
}
/* Log position of a live version's value bytes (the 32-byte hash and the 4-byte
** length precede them in the log). */
static inline uint64_t kd__ver_value_loc(const kd_index *ix, const kd_ver *v) {
    if (!(v->val & KD_VAL_REL)) v = kd__ver(ix, v->val); /* the version that stored it */
    return v->loc - (v->val & ~KD_VAL_REL);
}

static inline uint32_t kd__key_seq(const kd_key *k, uint32_t i) {
    if (i + 1 == k->nvers) return k->last;
    return k->cap ? k->seqs.many[i] : k->seqs.one;
}

/* Namespace number for name, or -1. */
int64_t kd__index_find_ns(const kd_index *ix, const char *name);
/* Finds or creates the namespace. */
int kd__index_ns(kd_index *ix, const char *name, uint32_t *out);
/* Key number for (ns, key), or -1. */
int64_t kd__index_find_key(const kd_index *ix, uint32_t ns, const char *key, size_t klen);
/* Finds or creates the key (with no versions). */
int kd__index_key(kd_index *ix, uint32_t ns, const char *key, size_t klen, uint32_t *out);
/* Makes room so the next `n` versions, values and per-key appends cannot fail. */
int kd__index_reserve(kd_index *ix, uint64_t nvers, uint32_t nvals);
int kd__index_key_reserve(kd_index *ix, uint32_t key, uint32_t extra);

/* Stored values whose dedup hash is h32, one at a time: start with *it = 0; returns the
** seq of the version that stored the value, or 0 at the end. */
uint32_t kd__index_val_next(const kd_index *ix, uint32_t h32, uint32_t *it);
/* Records that version seq stored a new value (after kd__index_reserve; cannot fail). */
void kd__index_add_val(kd_index *ix, uint32_t h32, uint64_t seq);
/* Appends version seq (== nvers + 1) to a key (after reservations, cannot fail). */
void kd__index_add_ver(kd_index *ix, uint64_t seq, uint64_t id_loc, int64_t ts,
                       uint32_t val, uint32_t key);

/* Position in the key's version list of the newest version with seq <= max_seq, or -1. */
int64_t kd__index_latest(const kd_index *ix, const kd_key *k, uint64_t max_seq);
/* Position of the newest version with ts <= t among those with seq <= max_seq, or -1. */
int64_t kd__index_at(const kd_index *ix, const kd_key *k, int64_t t, uint64_t max_seq);
/* Position of seq in the key's list, or -1. */
int64_t kd__index_pos(const kd_key *k, uint64_t seq);

/* Bytes allocated by the index's structures. */
uint64_t kd__index_bytes(const kd_index *ix);

/* The namespace's keys sorted by name (rebuilt if stale). */
int kd__index_sorted_keys(kd_index *ix, uint32_t ns, const uint32_t **keys, uint32_t *n);

#endif
