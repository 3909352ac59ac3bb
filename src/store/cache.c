/*
** cache.c — bounded value cache with CLOCK eviction (see cache.h).
**
** Invariants: tab holds exactly the live entries (slot + 1), at most half full, with
** linear probing and backward-shift deletion; `used` is the sum of the live entries'
** lengths plus a fixed per-entry overhead and never exceeds the budget.
*/
#include "store/cache.h"

#define ENT_OVERHEAD 64u

static uint32_t hash_val(uint32_t v) {
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    v ^= v >> 16;
    return v;
}

void kd__cache_init(kd_cache *c, size_t budget) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
}

void kd__cache_free(kd_cache *c) {
    for (uint32_t i = 0; i < c->nents; i++) kd__free(c->ents[i].data);
    kd__free(c->ents);
    kd__free(c->free_slots);
    kd__free(c->tab);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

static int64_t tab_find(const kd_cache *c, uint32_t val) {
    if (!c->tab) return -1;
    uint32_t j = hash_val(val) & c->tab_mask;
    while (c->tab[j]) {
        if (c->ents[c->tab[j] - 1].val == val) return j;
        j = (j + 1) & c->tab_mask;
    }
    return -1;
}

static void tab_del(kd_cache *c, uint32_t j) {
    c->tab[j] = 0;
    c->live--;
    uint32_t k = j;
    for (;;) {
        k = (k + 1) & c->tab_mask;
        if (!c->tab[k]) return;
        uint32_t h = hash_val(c->ents[c->tab[k] - 1].val) & c->tab_mask;
        /* Move k's entry into the hole unless its home lies cyclically in (j, k]. */
        int stays = j < k ? (h > j && h <= k) : (h > j || h <= k);
        if (!stays) {
            c->tab[j] = c->tab[k];
            c->tab[k] = 0;
            j = k;
        }
    }
}

static int tab_add(kd_cache *c, uint32_t val, uint32_t slot) {
    if (!c->tab || (uint64_t)(c->live + 1) * 2 > (uint64_t)c->tab_mask + 1) {
        uint32_t size = c->tab ? (c->tab_mask + 1) * 2 : 256;
        uint32_t *n = kd__calloc(size, sizeof *n);
        if (!n) return KD_NOMEM;
        for (uint32_t i = 0; c->tab && i <= c->tab_mask; i++) {
            if (!c->tab[i]) continue;
            uint32_t j = hash_val(c->ents[c->tab[i] - 1].val) & (size - 1);
            while (n[j]) j = (j + 1) & (size - 1);
            n[j] = c->tab[i];
        }
        kd__free(c->tab);
        c->tab = n;
        c->tab_mask = size - 1;
    }
    uint32_t j = hash_val(val) & c->tab_mask;
    while (c->tab[j]) j = (j + 1) & c->tab_mask;
    c->tab[j] = slot + 1;
    c->live++;
    return KD_OK;
}

static void evict_one(kd_cache *c) {
    for (uint64_t spins = 0; spins < 2ull * c->nents + 2; spins++) {
        if (c->hand >= c->nents) c->hand = 0;
        uint32_t slot = c->hand++;
        kd_cache_ent *e = &c->ents[slot];
        if (!e->data) continue;
        if (e->ref) {
            e->ref = 0;
            continue;
        }
        int64_t j = tab_find(c, e->val);
        if (j >= 0) tab_del(c, (uint32_t)j);
        kd__free(e->data);
        e->data = NULL;
        c->used -= e->len + ENT_OVERHEAD;
        c->free_slots[c->nfree++] = slot;
        return;
    }
}

int kd__cache_get(kd_cache *c, uint32_t val, char **out, uint8_t hash[32]) {
    int hit = 0;
    *out = NULL;
    pthread_mutex_lock(&c->mu);
    int64_t j = tab_find(c, val);
    if (j >= 0) {
        kd_cache_ent *e = &c->ents[c->tab[j] - 1];
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

void kd__cache_put(kd_cache *c, uint32_t val, const char *data, uint32_t len, const uint8_t hash[32]) {
    if ((size_t)len + ENT_OVERHEAD > c->budget) return;
    pthread_mutex_lock(&c->mu);
    if (tab_find(c, val) >= 0) goto out;
    while (c->used + len + ENT_OVERHEAD > c->budget && c->used > 0) evict_one(c);
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
    if (tab_add(c, val, slot) != KD_OK) {
        kd__free(e->data);
        e->data = NULL;
        c->free_slots[c->nfree++] = slot;
        goto out;
    }
    c->used += len + ENT_OVERHEAD;
out:
    pthread_mutex_unlock(&c->mu);
}
