/*
** rowset.c — a view's rows: ordered chunks of row pointers plus a hash map by key
** (rowset.h says why).
**
** Invariants: every chunk holds 1..KD_VCHUNK rows; rows across the chunks are in strictly
** increasing order (the order is total: sort values, then key); `map` holds exactly the
** rows of the chunks and is at most 70% full.
**
** May call: query (jv), db (kd__doc), base.
*/
#include <stdlib.h>
#include <string.h>

#include "views/rowset.h"

/* ---- order ----------------------------------------------------------------------------- */

static int row_cmp(const kd_rowset *s, const kd_vrow *a, const kd_vrow *b) {
    return kd__sortvals_cmp(s->sort, s->nsort, &a->d, a->sv, a->num, &b->d, b->sv, b->num);
}

static kd_vrow *row_new(const kd_rowset *s, const kd__doc *d) {
    kd_vrow *r = kd__malloc(sizeof *r + s->nsort * (sizeof(kd_qv) + sizeof(kd_qnum)));
    if (!r) return NULL;
    r->d = *d;
    r->num = (kd_qnum *)(void *)(r + 1);
    r->sv = (kd_qv *)(void *)(r->num + s->nsort);
    kd__sortvals_read(s->sort, s->nsort, d, r->sv, r->num);
    return r;
}

/* ---- the map by key -------------------------------------------------------------------- */

/* mapsize is a power of two. */
static size_t map_find(const kd_rowset *s, const char *k, size_t n) {
    size_t mask = s->mapsize - 1;
    size_t i = (size_t)kd__hash64(k, n) & mask;
    while (s->map[i] && !(s->map[i]->d.klen == n && memcmp(s->map[i]->d.key, k, n) == 0)) i = (i + 1) & mask;
    return i;
}

static int map_reserve(kd_rowset *s, size_t rows) {
    if (s->mapsize && rows * 10 <= s->mapsize * 7) return KD_OK;
    size_t ns = s->mapsize ? s->mapsize : 64;
    while (rows * 10 > ns * 7) ns *= 2;
    kd_vrow **nm = kd__calloc(ns, sizeof *nm);
    if (!nm) return kd__err(KD_NOMEM, "out of memory");
    kd_vrow **old = s->map;
    size_t olds = s->mapsize;
    s->map = nm;
    s->mapsize = ns;
    for (size_t i = 0; i < olds; i++)
        if (old[i]) s->map[map_find(s, old[i]->d.key, old[i]->d.klen)] = old[i];
    kd__free(old);
    return KD_OK;
}

/* Empties slot i, moving later members of its probe run back (no tombstones). */
static void map_remove(kd_rowset *s, size_t i) {
    s->map[i] = NULL;
    for (size_t j = (i + 1) & (s->mapsize - 1); s->map[j]; j = (j + 1) & (s->mapsize - 1)) {
        kd_vrow *r = s->map[j];
        s->map[j] = NULL;
        s->map[map_find(s, r->d.key, r->d.klen)] = r;
    }
}

/* ---- chunks ---------------------------------------------------------------------------- */

/* Where r goes (or is): the chunk and the position in it of the first row not before r. */
static void locate(const kd_rowset *s, const kd_vrow *r, size_t *ci, size_t *pos) {
    size_t lo = 0, hi = s->nch;
    while (lo < hi) { /* first chunk whose last row is not before r */
        size_t mid = lo + (hi - lo) / 2;
        const kd_vchunk *c = s->ch[mid];
        if (row_cmp(s, c->r[c->n - 1], r) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == s->nch) { /* after everything: the end of the last chunk */
        *ci = s->nch ? s->nch - 1 : 0;
        *pos = s->nch ? s->ch[*ci]->n : 0;
        return;
    }
    const kd_vchunk *c = s->ch[lo];
    size_t a = 0, b = c->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (row_cmp(s, c->r[mid], r) < 0) a = mid + 1;
        else b = mid;
    }
    *ci = lo;
    *pos = a;
}

static int chunk_insert_at(kd_rowset *s, size_t at, kd_vchunk *c) {
    if (s->nch == s->capch) {
        size_t nc = s->capch ? s->capch * 2 : 16;
        kd_vchunk **p = kd__realloc(s->ch, nc * sizeof *p);
        if (!p) return kd__err(KD_NOMEM, "out of memory");
        s->ch = p;
        s->capch = nc;
    }
    memmove(&s->ch[at + 1], &s->ch[at], (s->nch - at) * sizeof *s->ch);
    s->ch[at] = c;
    s->nch++;
    return KD_OK;
}

static int order_insert(kd_rowset *s, kd_vrow *r) {
    size_t ci, pos;
    if (s->nch == 0) {
        kd_vchunk *c = kd__malloc(sizeof *c);
        if (!c) return kd__err(KD_NOMEM, "out of memory");
        c->n = 1;
        c->r[0] = r;
        if (chunk_insert_at(s, 0, c) != KD_OK) {
            kd__free(c);
            return KD_NOMEM;
        }
        return KD_OK;
    }
    locate(s, r, &ci, &pos);
    kd_vchunk *c = s->ch[ci];
    if (c->n == KD_VCHUNK) { /* split in halves, then insert into the right one */
        kd_vchunk *d = kd__malloc(sizeof *d);
        if (!d) return kd__err(KD_NOMEM, "out of memory");
        d->n = KD_VCHUNK / 2;
        memcpy(d->r, &c->r[KD_VCHUNK / 2], (KD_VCHUNK / 2) * sizeof *d->r);
        if (chunk_insert_at(s, ci + 1, d) != KD_OK) {
            kd__free(d);
            return KD_NOMEM;
        }
        c->n = KD_VCHUNK / 2;
        if (pos > c->n) {
            pos -= c->n;
            c = d;
        }
    }
    memmove(&c->r[pos + 1], &c->r[pos], (c->n - pos) * sizeof *c->r);
    c->r[pos] = r;
    c->n++;
    return KD_OK;
}

static void order_remove(kd_rowset *s, const kd_vrow *r) {
    size_t ci, pos;
    locate(s, r, &ci, &pos);
    if (ci >= s->nch) return;
    kd_vchunk *c = s->ch[ci];
    if (pos >= c->n || c->r[pos] != r) return; /* not there: never expected */
    memmove(&c->r[pos], &c->r[pos + 1], (c->n - pos - 1) * sizeof *c->r);
    if (--c->n == 0) {
        kd__free(c);
        memmove(&s->ch[ci], &s->ch[ci + 1], (s->nch - ci - 1) * sizeof *s->ch);
        s->nch--;
    }
}

/* ---- the set --------------------------------------------------------------------------- */

void kd__rowset_init(kd_rowset *s, const kd_sortkey *sort, size_t nsort) {
    memset(s, 0, sizeof *s);
    s->sort = sort;
    s->nsort = nsort;
}

void kd__rowset_clear(kd_rowset *s) {
    for (size_t i = 0; i < s->nch; i++) {
        for (uint32_t j = 0; j < s->ch[i]->n; j++) kd__free(s->ch[i]->r[j]);
        kd__free(s->ch[i]);
    }
    kd__free(s->ch);
    kd__free(s->map);
    kd__rowset_init(s, s->sort, s->nsort);
}

static int qsort_rows(const void *a, const void *b, void *ctx) {
    return row_cmp(ctx, *(kd_vrow *const *)a, *(kd_vrow *const *)b);
}

int kd__rowset_load(kd_rowset *s, const kd__doc *docs, size_t n) {
    kd__rowset_clear(s);
    int rc = KD_OK;
    kd_vrow **all = n ? kd__malloc(n * sizeof *all) : NULL;
    size_t made = 0;
    if (n && !all) return kd__err(KD_NOMEM, "out of memory");
    if ((rc = map_reserve(s, n)) != KD_OK) goto out;
    for (; made < n; made++)
        if (!(all[made] = row_new(s, &docs[made]))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
    if (n > 1) qsort_r(all, n, sizeof *all, qsort_rows, s);
    /* Chunks three quarters full, so that inserts split rarely. */
    const size_t fill = KD_VCHUNK * 3 / 4;
    for (size_t i = 0; i < n; i += fill) {
        kd_vchunk *c = kd__malloc(sizeof *c);
        if (!c) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        c->n = (uint32_t)(n - i < fill ? n - i : fill);
        memcpy(c->r, &all[i], c->n * sizeof *all);
        if ((rc = chunk_insert_at(s, s->nch, c)) != KD_OK) {
            kd__free(c);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) s->map[map_find(s, all[i]->d.key, all[i]->d.klen)] = all[i];
    s->n = n;
out:
    if (rc != KD_OK) {
        size_t in_chunks = 0;
        for (size_t i = 0; i < s->nch; i++) in_chunks += s->ch[i]->n;
        for (size_t i = in_chunks; i < made; i++) kd__free(all[i]); /* the rest are freed by clear */
        kd__rowset_clear(s);
    }
    kd__free(all);
    return rc;
}

void kd__rowset_remove(kd_rowset *s, const char *key, size_t klen) {
    if (!s->mapsize) return;
    size_t i = map_find(s, key, klen);
    kd_vrow *r = s->map[i];
    if (!r) return;
    order_remove(s, r);
    map_remove(s, i);
    kd__free(r);
    s->n--;
}

int kd__rowset_put(kd_rowset *s, const kd__doc *d) {
    kd__rowset_remove(s, d->key, d->klen);
    int rc = map_reserve(s, s->n + 1);
    if (rc != KD_OK) return rc;
    kd_vrow *r = row_new(s, d);
    if (!r) return kd__err(KD_NOMEM, "out of memory");
    if ((rc = order_insert(s, r)) != KD_OK) {
        kd__free(r);
        return rc;
    }
    s->map[map_find(s, d->key, d->klen)] = r;
    s->n++;
    return KD_OK;
}

size_t kd__rowset_docs(const kd_rowset *s, size_t first, size_t cnt, kd__doc *out) {
    size_t got = 0, skipped = 0;
    for (size_t i = 0; i < s->nch && got < cnt; i++) {
        const kd_vchunk *c = s->ch[i];
        if (skipped + c->n <= first) {
            skipped += c->n;
            continue;
        }
        for (size_t j = first > skipped ? first - skipped : 0; j < c->n && got < cnt; j++) out[got++] = c->r[j]->d;
        skipped += c->n;
    }
    return got;
}
