/*
** cache.h — the bounded cache of hot values (canonical bytes and their hash), with
** CLOCK eviction, keyed by value number. Values not in the cache are read from the log
** (through its mapping); the cache keeps the hot set resident within its budget however
** the OS treats the log's pages.
**
** May call: base. Thread-safe (its own mutex).
*/
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <pthread.h>

#include "base/base.h"

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
    uint32_t *tab;       /* open addressing: slot + 1, keyed by value number */
    uint32_t tab_mask, live;
    uint64_t hits, misses;
} kd_cache;

void kd__cache_init(kd_cache *c, size_t budget);
void kd__cache_free(kd_cache *c);
/* On a hit, copies the value into a new NUL-terminated buffer (*out, kd__free it; NULL
** when out of memory) and its hash, and returns 1. Returns 0 on a miss. */
int kd__cache_get(kd_cache *c, uint32_t val, char **out, uint8_t hash[32]);
/* Inserts a copy of data (best effort: skipped when out of memory or over budget). */
void kd__cache_put(kd_cache *c, uint32_t val, const char *data, uint32_t len, const uint8_t hash[32]);
#endif
