/*
** cache.c — the hot-value cache (see cache.h for what it holds and why hits are
** consistent).
**
** Entry blob layout (one allocation): seq u64, timestamp i64, version id[32], value
** hash[32], previous id[32], has_previous u8, u16 namespace length, u16 key length,
** u32 value length, u32 blob size, u8 CLOCK reference bit, padding to 128 bytes, then
** namespace, key and value bytes.
** Invariants: the table holds (hash, blob) pairs, at most half full, linear probing
** with backward-shift deletion; `used` is the sum of the live blobs' sizes plus a fixed
** per-entry overhead and stays within the budget. CLOCK eviction sweeps the table.
*/
#include "store/cache.h"

#define ENT_OVERHEAD 32u
#define HDR 128u
#define OFF_NSLEN 113
#define OFF_KEYLEN 115
#define OFF_VLEN 117
#define OFF_SIZE 121
#define OFF_REF 125

uint64_t kd__cache_hash(const char *ns, const char *key) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = ns; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void kd__cache_init(kd_cache *c, size_t budget) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
}

void kd__cache_free(kd_cache *c) {
    for (uint32_t i = 0; c->tab && i <= c->tab_mask; i++) kd__free(c->tab[i].blob);
    kd__free(c->tab);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

static int blob_is(const uint8_t *b, const char *ns, size_t nslen, const char *key, size_t keylen) {
    return kd__get_u16(b + OFF_NSLEN) == nslen && kd__get_u16(b + OFF_KEYLEN) == keylen &&
           memcmp(b + HDR, ns, nslen) == 0 && memcmp(b + HDR + nslen, key, keylen) == 0;
}

static int64_t tab_find(const kd_cache *c, uint64_t h, const char *ns, const char *key) {
    if (!c->tab) return -1;
    size_t nslen = strlen(ns), keylen = strlen(key);
    uint32_t j = (uint32_t)h & c->tab_mask;
    while (c->tab[j].blob) {
        if (c->tab[j].h == h && blob_is(c->tab[j].blob, ns, nslen, key, keylen)) return j;
        j = (j + 1) & c->tab_mask;
    }
    return -1;
}

/* Frees the entry at j and closes the hole (backward shift). */
static void tab_del(kd_cache *c, uint32_t j) {
    c->used -= kd__get_u32(c->tab[j].blob + OFF_SIZE) + ENT_OVERHEAD;
    kd__free(c->tab[j].blob);
    c->tab[j].blob = NULL;
    c->live--;
    uint32_t k = j;
    for (;;) {
        k = (k + 1) & c->tab_mask;
        if (!c->tab[k].blob) return;
        uint32_t home = (uint32_t)c->tab[k].h & c->tab_mask;
        /* Move k's entry into the hole unless its home lies cyclically in (j, k]. */
        int stays = j < k ? (home > j && home <= k) : (home > j || home <= k);
        if (!stays) {
            c->tab[j] = c->tab[k];
            c->tab[k].blob = NULL;
            j = k;
        }
    }
}

static int tab_reserve(kd_cache *c) {
    if (c->tab && (uint64_t)(c->live + 1) * 2 <= (uint64_t)c->tab_mask + 1) return KD_OK;
    uint32_t size = c->tab ? (c->tab_mask + 1) * 2 : 256;
    kd_cache_slot *n = kd__calloc(size, sizeof *n);
    if (!n) return KD_NOMEM;
    for (uint32_t i = 0; c->tab && i <= c->tab_mask; i++) {
        if (!c->tab[i].blob) continue;
        uint32_t j = (uint32_t)c->tab[i].h & (size - 1);
        while (n[j].blob) j = (j + 1) & (size - 1);
        n[j] = c->tab[i];
    }
    kd__free(c->tab);
    c->tab = n;
    c->tab_mask = size - 1;
    c->hand = 0;
    return KD_OK;
}

static void evict_one(kd_cache *c) {
    for (uint64_t spins = 0; spins < 2ull * ((uint64_t)c->tab_mask + 1); spins++) {
        uint32_t j = c->hand++ & c->tab_mask;
        uint8_t *b = c->tab[j].blob;
        if (!b) continue;
        if (b[OFF_REF]) {
            b[OFF_REF] = 0;
            continue;
        }
        tab_del(c, j);
        return;
    }
}

int kd__cache_lookup(kd_cache *c, uint64_t h, const char *ns, const char *key, kd_entry *e) {
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    int64_t j = tab_find(c, h, ns, key);
    if (j < 0) {
        c->misses++;
        goto out;
    }
    uint8_t *b = c->tab[j].blob;
    b[OFF_REF] = 1;
    c->hits++;
    memset(e, 0, sizeof *e);
    e->seq = kd__get_u64(b);
    e->timestamp = (int64_t)kd__get_u64(b + 8);
    memcpy(e->version_id, b + 16, 32);
    memcpy(e->value_hash, b + 48, 32);
    memcpy(e->previous_version, b + 80, 32);
    e->has_previous = b[112];
    uint16_t nslen = kd__get_u16(b + OFF_NSLEN), keylen = kd__get_u16(b + OFF_KEYLEN);
    uint32_t vlen = kd__get_u32(b + OFF_VLEN);
    e->ns = kd__strndup((const char *)b + HDR, nslen);
    e->key = kd__strndup((const char *)b + HDR + nslen, keylen);
    e->value = kd__strndup((const char *)b + HDR + nslen + keylen, vlen);
    e->value_len = vlen;
    hit = 1;
    if (!e->ns || !e->key || !e->value) {
        kd__free(e->ns);
        kd__free(e->key);
        kd__free(e->value);
        memset(e, 0, sizeof *e);
        hit = -1;
    }
out:
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void kd__cache_insert(kd_cache *c, uint64_t h, const kd_entry *e) {
    size_t nslen = strlen(e->ns), keylen = strlen(e->key);
    size_t size = HDR + nslen + keylen + e->value_len;
    if (!e->value || e->deleted || size + ENT_OVERHEAD > c->budget || size > UINT32_MAX) return;
    uint8_t *b = kd__malloc(size);
    if (!b) return;
    kd__set_u64(b, e->seq);
    kd__set_u64(b + 8, (uint64_t)e->timestamp);
    memcpy(b + 16, e->version_id, 32);
    memcpy(b + 48, e->value_hash, 32);
    memcpy(b + 80, e->previous_version, 32);
    b[112] = (uint8_t)(e->has_previous != 0);
    b[OFF_NSLEN] = (uint8_t)nslen; b[OFF_NSLEN + 1] = (uint8_t)(nslen >> 8);
    b[OFF_KEYLEN] = (uint8_t)keylen; b[OFF_KEYLEN + 1] = (uint8_t)(keylen >> 8);
    kd__set_u32(b + OFF_VLEN, (uint32_t)e->value_len);
    kd__set_u32(b + OFF_SIZE, (uint32_t)size);
    memset(b + OFF_REF, 0, HDR - OFF_REF);
    memcpy(b + HDR, e->ns, nslen);
    memcpy(b + HDR + nslen, e->key, keylen);
    memcpy(b + HDR + nslen + keylen, e->value, e->value_len);
    pthread_mutex_lock(&c->mu);
    if (tab_find(c, h, e->ns, e->key) >= 0 || tab_reserve(c) != KD_OK) {
        kd__free(b);
        goto out;
    }
    while (c->used + size + ENT_OVERHEAD > c->budget && c->live > 0) evict_one(c);
    uint32_t j = (uint32_t)h & c->tab_mask;
    while (c->tab[j].blob) j = (j + 1) & c->tab_mask;
    c->tab[j].h = h;
    c->tab[j].blob = b;
    c->live++;
    c->used += size + ENT_OVERHEAD;
out:
    pthread_mutex_unlock(&c->mu);
}

void kd__cache_invalidate(kd_cache *c, uint64_t h, const char *ns, const char *key) {
    pthread_mutex_lock(&c->mu);
    int64_t j = tab_find(c, h, ns, key);
    if (j >= 0) tab_del(c, (uint32_t)j);
    pthread_mutex_unlock(&c->mu);
}
