/*
** cache.h — the bounded cache of hot values: for recently read keys, the current
** version (ids, timestamp, seq) and its value, keyed by (namespace, key), with CLOCK
** eviction within a byte budget. A hit answers a get without walking the index; keys
** not in the cache are answered from the index and the log (values read back through
** the log's mapping).
**
** Consistency (enforced by db_read.c and db.c): an entry is inserted only under the
** shared index lock and only when the version read is the key's newest (no commit in
** flight for that key); every commit removes its keys' entries under the exclusive
** index lock before its versions can become visible. So while an entry is in the
** cache it is the newest visible version, and lookups need no index lock.
**
** May call: base. Thread-safe (its own mutex).
*/
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <pthread.h>

#include "base/base.h"

typedef struct kd_cache_slot {
    uint64_t h;
    uint8_t *blob;       /* NULL = empty; see cache.c for the layout */
} kd_cache_slot;

typedef struct kd_cache {
    pthread_mutex_t mu;
    size_t budget, used;
    kd_cache_slot *tab;  /* open addressing by hash; a hit costs two memory accesses */
    uint32_t tab_mask, live;
    uint32_t hand;       /* CLOCK hand over the table */
    uint64_t hits, misses;
} kd_cache;

void kd__cache_init(kd_cache *c, size_t budget);
void kd__cache_free(kd_cache *c);
uint64_t kd__cache_hash(const char *ns, const char *key);
/* On a hit fills *e (strings freshly allocated) and returns 1; 0 on a miss; -1 when
** out of memory. */
int kd__cache_lookup(kd_cache *c, uint64_t h, const char *ns, const char *key, kd_entry *e);
/* Remembers e (a live version with its value) for its key; best effort. */
void kd__cache_insert(kd_cache *c, uint64_t h, const kd_entry *e);
/* Forgets ns/key. */
void kd__cache_invalidate(kd_cache *c, uint64_t h, const char *ns, const char *key);
#endif
