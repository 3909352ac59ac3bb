/*
** cache.c — bounded value cache with CLOCK eviction (see cache.h).
**
** Invariant: for every live entry e, kd_val(e.val).cache == slot + 1, and used is the
** sum of the live entries' sizes (data length plus a fixed per-entry overhead).
*/
#include "store/cache.h"

#define ENT_OVERHEAD 64u

void kd__cache_init(kd_cache *c, size_t budget) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
}

void kd__cache_free(kd_cache *c) {
    for (uint32_t i = 0; i < c->nents; i++) kd__free(c->ents[i].data);
    kd__free(c->ents);
    kd__free(c->free_slots);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

static void evict_one(kd_cache *c, kd_index *ix) {
    for (uint64_t spins = 0; spins < 2ull * c->nents + 2; spins++) {
        if (c->hand >= c->nents) c->hand = 0;
        kd_cache_ent *e = &c->ents[c->hand];
        uint32_t slot = c->hand++;
        if (!e->data) continue;
        if (e->ref) {
            e->ref = 0;
            continue;
        }
        kd__val(ix, e->val)->cache = 0;
        kd__free(e->data);
        e->data = NULL;
        c->used -= e->len + ENT_OVERHEAD;
        c->free_slots[c->nfree++] = slot;
        return;
    }
}

int kd__cache_get(kd_cache *c, kd_index *ix, uint32_t val, char **out, uint8_t hash[32]) {
    int hit = 0;
    *out = NULL;
    pthread_mutex_lock(&c->mu);
    uint32_t s = kd__val(ix, val)->cache;
    if (s) {
        kd_cache_ent *e = &c->ents[s - 1];
        e->ref = 1;
        hit = 1;
        c->hits++;
        memcpy(hash, e->hash, 32);
        char *d = kd__malloc((size_t)e->len + 1);
        if (d) {
            memcpy(d, e->data, e->len);
            d[e->len] = 0;
        }
        *out = d;
    } else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

int kd__cache_hash(kd_cache *c, kd_index *ix, uint32_t val, uint8_t hash[32]) {
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    uint32_t s = kd__val(ix, val)->cache;
    if (s) {
        memcpy(hash, c->ents[s - 1].hash, 32);
        hit = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void kd__cache_put(kd_cache *c, kd_index *ix, uint32_t val, const char *data, uint32_t len,
                   const uint8_t hash[32]) {
    if ((size_t)len + ENT_OVERHEAD > c->budget / 4 + 1 && (size_t)len + ENT_OVERHEAD > c->budget)
        return;
    if ((size_t)len + ENT_OVERHEAD > c->budget) return;
    pthread_mutex_lock(&c->mu);
    kd_val *x = kd__val(ix, val);
    if (x->cache) goto out;
    while (c->used + len + ENT_OVERHEAD > c->budget && c->used > 0) evict_one(c, ix);
    uint32_t slot;
    if (c->nfree) {
        slot = c->free_slots[--c->nfree];
    } else {
        if (c->nents == c->capents) {
            uint32_t nc = c->capents ? c->capents * 2 : 256;
            kd_cache_ent *ne = kd__realloc(c->ents, (size_t)nc * sizeof *ne);
            if (!ne) goto out;
            c->ents = ne;
            uint32_t *nf = kd__realloc(c->free_slots, (size_t)nc * sizeof *nf);
            if (!nf) goto out;
            c->free_slots = nf;
            c->capents = nc;
        }
        slot = c->nents;
        c->ents[slot].data = NULL;
        c->nents++;
    }
    kd_cache_ent *e = &c->ents[slot];
    e->data = kd__malloc((size_t)len + 1);
    if (!e->data) {
        c->free_slots[c->nfree++] = slot;
        goto out;
    }
    memcpy(e->data, data, len);
    e->data[len] = 0;
    e->val = val;
    e->len = len;
    e->ref = 0;
    memcpy(e->hash, hash, 32);
    x->cache = slot + 1;
    c->used += len + ENT_OVERHEAD;
out:
    pthread_mutex_unlock(&c->mu);
}
