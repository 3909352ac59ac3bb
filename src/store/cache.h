/*
** cache.h — the bounded cache of hot values (canonical bytes and their hash), with
** CLOCK eviction. Values not in the cache are read back from the log.
**
** May call: base, store/index. Every call must be made while holding the db's index
** lock (shared or exclusive), because the cache links entries to kd_val.cache; the
** cache's own mutex orders concurrent readers.
*/
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <pthread.h>

#include "store/index.h"

typedef struct kd_cache_ent {
    char *data;          /* NULL = free slot */
    uint32_t val;
    uint32_t len;
    uint8_t ref;
    uint8_t hash[32];
} kd_cache_ent;

typedef struct kd_cache {
    pthread_mutex_t mu;
    size_t budget, used;
    kd_cache_ent *ents;
    uint32_t nents, capents, hand;
    uint32_t *free_slots;
    uint32_t nfree;
    uint64_t hits, misses;
} kd_cache;

void kd__cache_init(kd_cache *c, size_t budget);
void kd__cache_free(kd_cache *c);
/* On a hit, copies the value into a new NUL-terminated buffer (*out, kd__free it; NULL
** with KD_NOMEM) and its hash, and returns 1. Returns 0 on a miss. */
int kd__cache_get(kd_cache *c, kd_index *ix, uint32_t val, char **out, uint8_t hash[32]);
/* Hash only (no copy); 1 on hit. */
int kd__cache_hash(kd_cache *c, kd_index *ix, uint32_t val, uint8_t hash[32]);
/* Inserts a copy of data (best effort: silently skipped when out of memory or larger
** than the budget). */
void kd__cache_put(kd_cache *c, kd_index *ix, uint32_t val, const char *data, uint32_t len,
                   const uint8_t hash[32]);
#endif
