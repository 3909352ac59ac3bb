/*
** cache.c — the hot-value cache (see cache.h for what it holds and why hits are
** consistent).
**
** Entry blob layout (one allocation): seq u64, timestamp i64, version id[32], value
** hash[32], previous id[32], has_previous u8, u16 namespace length, u16 key length,
** u32 value length, then namespace, key and value bytes.
** Invariants: tab holds exactly the live entries (slot + 1), at most half full, linear
** probing with backward-shift deletion; `used` is the sum of the live blobs' sizes plus
** a fixed per-entry overhead and stays within the budget.
*/
#include "store/cache.h"

#define ENT_OVERHEAD 48u
#define HDR 128u /* 8 + 8 + 32 + 32 + 32 + 1 + 2 + 2 + 4 = 121, padded */

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
    for (uint32_t i = 0; i < c->nents; i++) kd__free(c->ents[i].blob);
    kd__free(c->ents);
    kd__free(c->free_slots);
    kd__free(c->tab);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

static int blob_is(const uint8_t *b, const char *ns, size_t nslen, const char *key, size_t keylen) {
    return kd__get_u16(b + 113) == nslen && kd__get_u16(b + 115) == keylen && memcmp(b + HDR, ns, nslen) == 0 &&
           memcmp(b + HDR + nslen, key, keylen) == 0;
}

static int64_t tab_find(const kd_cache *c, uint64_t h, const char *ns, const char *key) {
    if (!c->tab) return -1;
    size_t nslen = strlen(ns), keylen = strlen(key);
    uint32_t j = (uint32_t)h & c->tab_mask;
    while (c->tab[j]) {
        const kd_cache_ent *e = &c->ents[c->tab[j] - 1];
        if (e->h == h && blob_is(e->blob, ns, nslen, key, keylen)) return j;
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
        uint32_t home = (uint32_t)c->ents[c->tab[k] - 1].h & c->tab_mask;
        /* Move k's entry into the hole unless its home lies cyclically in (j, k]. */
        int stays = j < k ? (home > j && home <= k) : (home > j || home <= k);
        if (!stays) {
            c->tab[j] = c->tab[k];
            c->tab[k] = 0;
            j = k;
        }
    }
}

static int tab_add(kd_cache *c, uint32_t slot) {
    if (!c->tab || (uint64_t)(c->live + 1) * 2 > (uint64_t)c->tab_mask + 1) {
        uint32_t size = c->tab ? (c->tab_mask + 1) * 2 : 256;
        uint32_t *n = kd__calloc(size, sizeof *n);
        if (!n) return KD_NOMEM;
        for (uint32_t i = 0; c->tab && i <= c->tab_mask; i++) {
            if (!c->tab[i]) continue;
            uint32_t j = (uint32_t)c->ents[c->tab[i] - 1].h & (size - 1);
            while (n[j]) j = (j + 1) & (size - 1);
            n[j] = c->tab[i];
        }
        kd__free(c->tab);
        c->tab = n;
        c->tab_mask = size - 1;
    }
    uint32_t j = (uint32_t)c->ents[slot].h & c->tab_mask;
    while (c->tab[j]) j = (j + 1) & c->tab_mask;
    c->tab[j] = slot + 1;
    c->live++;
    return KD_OK;
}

static void drop_slot(kd_cache *c, uint32_t slot) {
    kd_cache_ent *e = &c->ents[slot];
    kd__free(e->blob);
    e->blob = NULL;
    c->used -= e->size + ENT_OVERHEAD;
    c->free_slots[c->nfree++] = slot;
}

static void evict_one(kd_cache *c) {
    for (uint64_t spins = 0; spins < 2ull * c->nents + 2; spins++) {
        if (c->hand >= c->nents) c->hand = 0;
        uint32_t slot = c->hand++;
        kd_cache_ent *e = &c->ents[slot];
        if (!e->blob) continue;
        if (e->ref) {
            e->ref = 0;
            continue;
        }
        const uint8_t *b = e->blob;
        uint16_t nslen = kd__get_u16(b + 113), keylen = kd__get_u16(b + 115);
        char ns[130], *key = kd__malloc((size_t)keylen + 1);
        if (key) {
            memcpy(ns, b + HDR, nslen);
            ns[nslen] = 0;
            memcpy(key, b + HDR + nslen, keylen);
            key[keylen] = 0;
            int64_t j = tab_find(c, e->h, ns, key);
            if (j >= 0) tab_del(c, (uint32_t)j);
            kd__free(key);
        } else { /* no memory to rebuild the name: find the slot by scanning */
            for (uint32_t j = 0; j <= c->tab_mask; j++)
                if (c->tab[j] == slot + 1) {
                    tab_del(c, j);
                    break;
                }
        }
        drop_slot(c, slot);
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
    kd_cache_ent *ent = &c->ents[c->tab[j] - 1];
    const uint8_t *b = ent->blob;
    ent->ref = 1;
    c->hits++;
    memset(e, 0, sizeof *e);
    e->seq = kd__get_u64(b);
    e->timestamp = (int64_t)kd__get_u64(b + 8);
    memcpy(e->version_id, b + 16, 32);
    memcpy(e->value_hash, b + 48, 32);
    memcpy(e->previous_version, b + 80, 32);
    e->has_previous = b[112];
    uint16_t nslen = kd__get_u16(b + 113), keylen = kd__get_u16(b + 115);
    uint32_t vlen = kd__get_u32(b + 117);
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
    pthread_mutex_lock(&c->mu);
    if (tab_find(c, h, e->ns, e->key) >= 0) goto out;
    while (c->used + size + ENT_OVERHEAD > c->budget && c->used > 0) evict_one(c);
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
        slot = c->nents++;
        c->ents[slot].blob = NULL;
    }
    kd_cache_ent *ent = &c->ents[slot];
    uint8_t *b = kd__malloc(size);
    if (!b) {
        c->free_slots[c->nfree++] = slot;
        goto out;
    }
    kd__set_u64(b, e->seq);
    kd__set_u64(b + 8, (uint64_t)e->timestamp);
    memcpy(b + 16, e->version_id, 32);
    memcpy(b + 48, e->value_hash, 32);
    memcpy(b + 80, e->previous_version, 32);
    b[112] = (uint8_t)(e->has_previous != 0);
    b[113] = (uint8_t)nslen; b[114] = (uint8_t)(nslen >> 8);
    b[115] = (uint8_t)keylen; b[116] = (uint8_t)(keylen >> 8);
    kd__set_u32(b + 117, (uint32_t)e->value_len);
    memset(b + 121, 0, HDR - 121); /* padding */
    memcpy(b + HDR, e->ns, nslen);
    memcpy(b + HDR + nslen, e->key, keylen);
    memcpy(b + HDR + nslen + keylen, e->value, e->value_len);
    ent->blob = b;
    ent->h = h;
    ent->size = (uint32_t)size;
    ent->ref = 0;
    c->used += size + ENT_OVERHEAD;
    if (tab_add(c, slot) != KD_OK) drop_slot(c, slot);
out:
    pthread_mutex_unlock(&c->mu);
}

void kd__cache_invalidate(kd_cache *c, uint64_t h, const char *ns, const char *key) {
    pthread_mutex_lock(&c->mu);
    int64_t j = tab_find(c, h, ns, key);
    if (j >= 0) {
        uint32_t slot = c->tab[j] - 1;
        tab_del(c, (uint32_t)j);
        drop_slot(c, slot);
    }
    pthread_mutex_unlock(&c->mu);
}
