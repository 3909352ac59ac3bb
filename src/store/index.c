/*
** index.c — the in-memory version index (see index.h for its shape and limits).
**
** May call: base. Invariants: chunks never move once allocated (pointers into them
** stay valid while the index lives); a key's seqs are strictly ascending and so are
** their timestamps; hash tables use linear probing, are never more than 3/4 full, and
** are only grown by kd__index_reserve / find-or-create calls (never during the
** no-fail apply step of a commit).
*/
#include "store/index.h"

#include <stdlib.h>

#define ARENA_BLOCK (1u << 20)

static uint32_t hash_bytes(uint32_t seed, const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

int kd__index_init(kd_index *ix) {
    memset(ix, 0, sizeof *ix);
    ix->ktab = kd__calloc(1024, sizeof *ix->ktab);
    ix->xtab = kd__calloc(1024, sizeof *ix->xtab);
    if (!ix->ktab || !ix->xtab) {
        kd__index_free(ix);
        return kd__err(KD_NOMEM, "out of memory");
    }
    ix->ktab_size = ix->xtab_size = 1024;
    return KD_OK;
}

void kd__index_free(kd_index *ix) {
    for (size_t i = 0; i < ix->capvchunks; i++) kd__free(ix->vchunks[i]);
    for (uint32_t k = 0; k < ix->nkeys; k++) {
        kd_key *key = kd__key(ix, k);
        if (key->cap) kd__free(key->seqs.many);
    }
    for (size_t i = 0; i < ix->capkchunks; i++) kd__free(ix->kchunks[i]);
    for (uint32_t i = 0; i < ix->nns; i++) {
        kd__free(ix->ns[i].name);
        kd__free(ix->ns[i].keys);
        kd__free(ix->ns[i].sorted);
    }
    for (size_t i = 0; i < ix->narena; i++) kd__free(ix->arena[i]);
    kd__free(ix->arena);
    kd__free(ix->vchunks);
    kd__free(ix->kchunks);
    kd__free(ix->ns);
    kd__free(ix->nstab);
    kd__free(ix->ktab);
    kd__free(ix->xtab);
    memset(ix, 0, sizeof *ix);
}

/* Ensures chunk slot `need` chunks exist in a chunked array. */
static int chunks_ensure(void ***chunks, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return KD_OK;
    size_t nc = *cap ? *cap : 4;
    while (nc < need) nc *= 2;
    void **n = kd__realloc(*chunks, nc * sizeof *n);
    if (!n) return kd__err(KD_NOMEM, "out of memory");
    for (size_t i = *cap; i < nc; i++) n[i] = NULL;
    *chunks = n;
    for (size_t i = *cap; i < need; i++) {
        if (!(n[i] = kd__malloc(KD_CHUNK * elem))) {
            *cap = i; /* keep what we have; the rest stays NULL-free below `i` */
            return kd__err(KD_NOMEM, "out of memory");
        }
    }
    *cap = need;
    return KD_OK;
}

static inline uint32_t home(uint32_t h, uint32_t size) { return (uint32_t)(((uint64_t)h * size) >> 32); }

/* Grows a (hash32 << 32 | idx+1) table by half when `count` entries would pass 85%. */
static int tab_grow(uint64_t **tab, uint32_t *size, uint64_t count) {
    uint64_t old = *size;
    if (count * 20 < old * 17) return KD_OK;
    uint64_t ns = old;
    while (count * 20 >= ns * 17) ns += ns / 2;
    if (ns > UINT32_MAX) return kd__err(KD_FULL, "index table limit reached");
    uint64_t *n = kd__calloc((size_t)ns, sizeof *n);
    if (!n) return kd__err(KD_NOMEM, "out of memory");
    for (uint64_t i = 0; i < old; i++) {
        uint64_t e = (*tab)[i];
        if (!e) continue;
        uint32_t j = home((uint32_t)(e >> 32), (uint32_t)ns);
        while (n[j]) j = j + 1 == ns ? 0 : j + 1;
        n[j] = e;
    }
    kd__free(*tab);
    *tab = n;
    *size = (uint32_t)ns;
    return KD_OK;
}

static void tab_put(uint64_t *tab, uint32_t size, uint32_t h, uint32_t idx) {
    uint32_t j = home(h, size);
    while (tab[j]) j = j + 1 == size ? 0 : j + 1;
    tab[j] = ((uint64_t)h << 32) | ((uint64_t)idx + 1);
}

#define NS_SEED 0x9e3779b9u

int64_t kd__index_find_ns(const kd_index *ix, const char *name) {
    if (!ix->nstab) return -1;
    uint32_t j = hash_bytes(NS_SEED, name, strlen(name)) & (ix->nstab_size - 1);
    while (ix->nstab[j]) {
        uint32_t n = ix->nstab[j] - 1;
        if (strcmp(ix->ns[n].name, name) == 0) return n;
        j = (j + 1) & (ix->nstab_size - 1);
    }
    return -1;
}

/* Keeps the namespace table (power of two, at most half full) able to take one more. */
static int nstab_reserve(kd_index *ix) {
    if (ix->nstab && (ix->nns + 1) * 2 <= ix->nstab_size) return KD_OK;
    uint32_t size = ix->nstab_size ? ix->nstab_size * 2 : 16;
    uint32_t *t = kd__calloc(size, sizeof *t);
    if (!t) return kd__err(KD_NOMEM, "out of memory");
    for (uint32_t i = 0; i < ix->nns; i++) {
        uint32_t j = hash_bytes(NS_SEED, ix->ns[i].name, strlen(ix->ns[i].name)) & (size - 1);
        while (t[j]) j = (j + 1) & (size - 1);
        t[j] = i + 1;
    }
    kd__free(ix->nstab);
    ix->nstab = t;
    ix->nstab_size = size;
    return KD_OK;
}

int kd__index_ns(kd_index *ix, const char *name, uint32_t *out) {
    int64_t f = kd__index_find_ns(ix, name);
    if (f >= 0) {
        *out = (uint32_t)f;
        return KD_OK;
    }
    if (nstab_reserve(ix) != KD_OK) return KD_NOMEM;
    if (ix->nns == ix->capns) {
        uint32_t nc = ix->capns ? ix->capns * 2 : 8;
        kd_ns *n = kd__realloc(ix->ns, nc * sizeof *n);
        if (!n) return kd__err(KD_NOMEM, "out of memory");
        ix->ns = n;
        ix->capns = nc;
    }
    kd_ns *ns = &ix->ns[ix->nns];
    memset(ns, 0, sizeof *ns);
    if (!(ns->name = kd__strdup(name))) return kd__err(KD_NOMEM, "out of memory");
    uint32_t j = hash_bytes(NS_SEED, name, strlen(name)) & (ix->nstab_size - 1);
    while (ix->nstab[j]) j = (j + 1) & (ix->nstab_size - 1);
    ix->nstab[j] = ix->nns + 1;
    *out = ix->nns++;
    return KD_OK;
}

int64_t kd__index_find_key(const kd_index *ix, uint32_t ns, const char *key, size_t klen) {
    uint32_t h = hash_bytes(ns, key, klen);
    uint32_t j = home(h, ix->ktab_size);
    for (;;) {
        uint64_t e = ix->ktab[j];
        if (!e) return -1;
        if ((uint32_t)(e >> 32) == h) {
            uint32_t k = (uint32_t)e - 1;
            const kd_key *kk = kd__key(ix, k);
            if (kk->ns == ns && kk->len == klen && memcmp(kk->name, key, klen) == 0) return k;
        }
        j = j + 1 == ix->ktab_size ? 0 : j + 1;
    }
}

static const char *arena_copy(kd_index *ix, const char *s, size_t n) {
    if (n + 1 > ARENA_BLOCK) { /* a name larger than a block gets its own block */
        if (ix->narena == ix->caparena) {
            size_t nc = ix->caparena ? ix->caparena * 2 : 8;
            char **a = kd__realloc(ix->arena, nc * sizeof *a);
            if (!a) return NULL;
            ix->arena = a;
            ix->caparena = nc;
        }
        char *b = kd__malloc(n + 1);
        if (!b) return NULL;
        memcpy(b, s, n);
        b[n] = 0;
        /* Insert before the current block so arena_used keeps describing the last one. */
        if (ix->narena) {
            ix->arena[ix->narena] = ix->arena[ix->narena - 1];
            ix->arena[ix->narena - 1] = b;
        } else {
            ix->arena[0] = b;
            ix->arena_used = ARENA_BLOCK; /* force a fresh block next time */
        }
        ix->narena++;
        return b;
    }
    if (ix->narena == 0 || ix->arena_used + n + 1 > ARENA_BLOCK) {
        if (ix->narena == ix->caparena) {
            size_t nc = ix->caparena ? ix->caparena * 2 : 8;
            char **a = kd__realloc(ix->arena, nc * sizeof *a);
            if (!a) return NULL;
            ix->arena = a;
            ix->caparena = nc;
        }
        char *b = kd__malloc(ARENA_BLOCK);
        if (!b) return NULL;
        ix->arena[ix->narena++] = b;
        ix->arena_used = 0;
    }
    char *d = ix->arena[ix->narena - 1] + ix->arena_used;
    memcpy(d, s, n);
    d[n] = 0;
    ix->arena_used += n + 1;
    return d;
}

int kd__index_key(kd_index *ix, uint32_t ns, const char *key, size_t klen, uint32_t *out) {
    int64_t f = kd__index_find_key(ix, ns, key, klen);
    int rc;
    if (f >= 0) {
        *out = (uint32_t)f;
        return KD_OK;
    }
    if (ix->nkeys == UINT32_MAX - 1) return kd__err(KD_FULL, "too many keys (limit 2^32-2)");
    if ((rc = tab_grow(&ix->ktab, &ix->ktab_size, (uint64_t)ix->nkeys + 1)) != KD_OK) return rc;
    if ((rc = chunks_ensure((void ***)&ix->kchunks, &ix->capkchunks,
                            ((size_t)ix->nkeys >> KD_CHUNK_BITS) + 1, sizeof(kd_key))) != KD_OK)
        return rc;
    kd_ns *n = &ix->ns[ns];
    if (n->nkeys == n->capkeys) {
        uint32_t nc = n->capkeys ? n->capkeys * 2 : 16;
        uint32_t *nk = kd__realloc(n->keys, nc * sizeof *nk);
        if (!nk) return kd__err(KD_NOMEM, "out of memory");
        n->keys = nk;
        n->capkeys = nc;
    }
    const char *name = arena_copy(ix, key, klen);
    if (!name) return kd__err(KD_NOMEM, "out of memory");
    uint32_t k = ix->nkeys++;
    kd_key *kk = kd__key(ix, k);
    memset(kk, 0, sizeof *kk);
    kk->name = name;
    kk->len = (uint32_t)klen;
    kk->ns = ns;
    tab_put(ix->ktab, ix->ktab_size, hash_bytes(ns, key, klen), k);
    n->keys[n->nkeys++] = k;
    ix->name_bytes += klen + 1;
    *out = k;
    return KD_OK;
}

int kd__index_reserve(kd_index *ix, uint64_t nvers, uint32_t nvals) {
    int rc;
    /* seqs must fit in 31 bits: kd_ver.val keeps the top bit for KD_VAL_REL */
    if (ix->nvers + nvers > 0x7ffffffeu) return kd__err(KD_FULL, "too many versions (limit 2^31-2)");
    if ((rc = chunks_ensure((void ***)&ix->vchunks, &ix->capvchunks,
                            (size_t)((ix->nvers + nvers + KD_CHUNK - 1) >> KD_CHUNK_BITS),
                            sizeof(kd_ver))) != KD_OK)
        return rc;
    return tab_grow(&ix->xtab, &ix->xtab_size, (uint64_t)ix->nvals + nvals);
}

int kd__index_key_reserve(kd_index *ix, uint32_t key, uint32_t extra) {
    kd_key *k = kd__key(ix, key);
    uint64_t need = (uint64_t)k->nvers + extra;
    if (need <= 1 && !k->cap) return KD_OK;
    if (need <= k->cap) return KD_OK;
    uint32_t nc = k->cap ? k->cap : 2;
    while (nc < need) nc = nc < 4 ? nc * 2 : nc + nc / 2;
    uint32_t *m = kd__realloc(k->cap ? k->seqs.many : NULL, (size_t)nc * sizeof *m);
    if (!m) return kd__err(KD_NOMEM, "out of memory");
    if (!k->cap && k->nvers == 1) m[0] = k->seqs.one;
    k->seqs.many = m;
    k->cap = nc;
    return KD_OK;
}

uint32_t kd__index_val_next(const kd_index *ix, uint32_t h32, uint32_t *it) {
    uint32_t size = ix->xtab_size;
    uint32_t j = (uint32_t)(((uint64_t)home(h32, size) + *it) % size);
    for (;;) {
        uint64_t e = ix->xtab[j];
        if (!e) return 0;
        j = j + 1 == size ? 0 : j + 1;
        (*it)++;
        if ((uint32_t)(e >> 32) == h32) return (uint32_t)e;
    }
}

void kd__index_add_val(kd_index *ix, uint32_t h32, uint64_t seq) {
    ix->nvals++;
    tab_put(ix->xtab, ix->xtab_size, h32, (uint32_t)(seq - 1)); /* the slot holds seq */
}

void kd__index_add_ver(kd_index *ix, uint64_t seq, uint64_t id_loc, int64_t ts,
                       uint32_t val, uint32_t key) {
    kd_ver *v = kd__ver(ix, seq);
    v->loc = id_loc;
    v->ts = ts;
    v->val = val;
    v->key = key;
    ix->nvers = seq;
    kd_key *k = kd__key(ix, key);
    kd_ns *ns = &ix->ns[k->ns];
    int was_live = k->nvers > 0 && kd__ver(ix, kd__key_seq(k, k->nvers - 1))->val != 0;
    if (k->cap) k->seqs.many[k->nvers] = (uint32_t)seq;
    else k->seqs.one = (uint32_t)seq;
    k->nvers++;
    k->last = (uint32_t)seq;
    int is_live = val != 0;
    ns->versions++;
    int sys = ns->name[0] == '_';
    if (!sys) ix->user_versions++;
    if (was_live != is_live) {
        if (is_live) {
            ns->live_keys++;
            if (!sys) ix->live_keys_total++;
        } else {
            ns->live_keys--;
            if (!sys) ix->live_keys_total--;
        }
    }
}

int64_t kd__index_latest(const kd_index *ix, const kd_key *k, uint64_t max_seq) {
    (void)ix;
    if (k->nvers && k->last <= max_seq) return (int64_t)k->nvers - 1; /* nothing in flight */
    int64_t i = (int64_t)k->nvers - 1;
    while (i >= 0 && kd__key_seq(k, (uint32_t)i) > max_seq) i--;
    return i;
}

int64_t kd__index_at(const kd_index *ix, const kd_key *k, int64_t t, uint64_t max_seq) {
    int64_t hi = kd__index_latest(ix, k, max_seq);
    int64_t lo = 0, ans = -1;
    while (lo <= hi) { /* newest position with ts <= t; timestamps ascend with position */
        int64_t mid = lo + (hi - lo) / 2;
        if (kd__ver(ix, kd__key_seq(k, (uint32_t)mid))->ts <= t) {
            ans = mid;
            lo = mid + 1;
        } else
            hi = mid - 1;
    }
    return ans;
}

int64_t kd__index_pos(const kd_key *k, uint64_t seq) {
    int64_t lo = 0, hi = (int64_t)k->nvers - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        uint32_t s = kd__key_seq(k, (uint32_t)mid);
        if (s == seq) return mid;
        if (s < seq) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int cmp_keys(const void *a, const void *b, void *ctx) {
    const kd_index *ix = ctx;
    const kd_key *x = kd__key(ix, *(const uint32_t *)a), *y = kd__key(ix, *(const uint32_t *)b);
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int kd__index_sorted_keys(kd_index *ix, uint32_t ns, const uint32_t **keys, uint32_t *n) {
    kd_ns *s = &ix->ns[ns];
    if (s->nsorted != s->nkeys || (!s->sorted && s->nkeys)) {
        uint32_t *v = kd__realloc(s->sorted, ((size_t)s->nkeys + 1) * sizeof *v);
        if (!v) return kd__err(KD_NOMEM, "out of memory");
        memcpy(v, s->keys, (size_t)s->nkeys * sizeof *v);
        qsort_r(v, s->nkeys, sizeof *v, cmp_keys, ix);
        s->sorted = v;
        s->nsorted = s->nkeys;
    }
    *keys = s->sorted;
    *n = s->nsorted;
    return KD_OK;
}

uint64_t kd__index_bytes(const kd_index *ix) {
    uint64_t t = 0;
    t += (uint64_t)ix->capvchunks * (KD_CHUNK * sizeof(kd_ver) + sizeof(void *));
    t += (uint64_t)ix->capkchunks * (KD_CHUNK * sizeof(kd_key) + sizeof(void *));
    t += ((uint64_t)ix->ktab_size + ix->xtab_size) * sizeof(uint64_t);
    t += (uint64_t)ix->narena * ARENA_BLOCK;
    for (uint32_t k = 0; k < ix->nkeys; k++) {
        const kd_key *kk = kd__key(ix, k);
        if (kk->cap) t += (uint64_t)kk->cap * sizeof(uint32_t);
    }
    for (uint32_t i = 0; i < ix->nns; i++)
        t += sizeof(kd_ns) + strlen(ix->ns[i].name) + 1 + ((uint64_t)ix->ns[i].capkeys + ix->ns[i].nsorted) * 4;
    return t;
}
