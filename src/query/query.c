/*
** query.c — the query executor: filter a set of documents, aggregate the whole filtered
** set, order it, cut the page, project the records, and build the kd_result.
**
** Documents are read in place (jv.h) from the log's mapping; only the records of the page
** are copied out. Ordering is total: the sort fields in turn (missing values last in
** either direction), then the key's bytes, so equal sort values never leave the order to
** chance. When the page is small next to the matches, a bounded heap keeps the best
** offset+limit documents instead of sorting them all.
**
** May call: db (db_int.h), query/filter, query/jv, json, base.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

/* ---- ordering ----------------------------------------------------------------------- */

static int key_cmp(const kd__doc *a, const kd__doc *b) {
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->key, b->key, n);
    if (c) return c;
    return a->klen < b->klen ? -1 : a->klen > b->klen;
}

void kd__sortvals_read(const kd_sortkey *sort, size_t nsort, const kd__doc *d, kd_qv *sv, kd_qnum *num) {
    if (!nsort) return;
    kd_qv doc = kd__qv_doc(d->val, d->vlen);
    for (size_t k = 0; k < nsort; k++) {
        sv[k] = kd__path_get(&doc, &sort[k].path);
        if (sv[k].t == KD_QV_NUM) num[k] = kd__qv_num(&sv[k]);
    }
}

int kd__sortvals_cmp(const kd_sortkey *sort, size_t nsort, const kd__doc *a, const kd_qv *sa,
                     const kd_qnum *na, const kd__doc *b, const kd_qv *sb, const kd_qnum *nb) {
    for (size_t k = 0; k < nsort; k++) {
        int am = sa[k].t == KD_QV_MISSING, bm = sb[k].t == KD_QV_MISSING, c;
        if (am || bm) {
            c = am - bm; /* missing last, whatever the direction */
        } else {
            c = sa[k].t == KD_QV_NUM && sb[k].t == KD_QV_NUM ? kd__qnum_cmp(&na[k], &nb[k]) : kd__qv_cmp(&sa[k], &sb[k]);
            if (sort[k].desc) c = -c;
        }
        if (c) return c;
    }
    return key_cmp(a, b);
}

/* The matches being ordered: document pointers with their sort values extracted once. */
typedef struct sorter {
    const kd_sortkey *sort;
    size_t nsort;
    const kd__doc **doc;   /* per match */
    kd_qv *sv;             /* nsort values per match */
    kd_qnum *num;          /* the same values' numbers (for KD_QV_NUM only) */
} sorter;

static void sorter_fill(sorter *s, size_t i) {
    kd__sortvals_read(s->sort, s->nsort, s->doc[i], &s->sv[i * s->nsort], &s->num[i * s->nsort]);
}

static int match_cmp(const sorter *s, size_t i, size_t j) {
    size_t a = i * s->nsort, b = j * s->nsort;
    return kd__sortvals_cmp(s->sort, s->nsort, s->doc[i], s->sv ? &s->sv[a] : NULL, s->num ? &s->num[a] : NULL,
                            s->doc[j], s->sv ? &s->sv[b] : NULL, s->num ? &s->num[b] : NULL);
}

static int qsort_cmp(const void *a, const void *b, void *ctx) {
    return match_cmp(ctx, *(const size_t *)a, *(const size_t *)b);
}

/* Max-heap on match_cmp: the worst kept match on top. */
static void heap_down(const sorter *s, size_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && match_cmp(s, h[l], h[m]) > 0) m = l;
        if (r < n && match_cmp(s, h[r], h[m]) > 0) m = r;
        if (m == i) return;
        size_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_up(const sorter *s, size_t *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (match_cmp(s, h[i], h[p]) <= 0) return;
        size_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Orders the m matches and leaves in ord[0..*kept) the first `want` of them, in order. */
static void order_matches(const sorter *s, size_t m, size_t want, size_t *ord, size_t *kept) {
    if (want >= m || want > m / 8) {
        for (size_t i = 0; i < m; i++) ord[i] = i;
        qsort_r(ord, m, sizeof *ord, qsort_cmp, (void *)s);
        *kept = want < m ? want : m;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < m && want > 0; i++) {
        if (n < want) {
            ord[n] = i;
            heap_up(s, ord, n++);
        } else if (match_cmp(s, i, ord[0]) < 0) {
            ord[0] = i;
            heap_down(s, ord, n, 0);
        }
    }
    qsort_r(ord, n, sizeof *ord, qsort_cmp, (void *)s);
    *kept = n;
}

/* ---- aggregation -------------------------------------------------------------------- */

typedef struct aggst {
    int64_t isum;
    double dsum, comp;     /* Neumaier-compensated sum once a double or an overflow appears */
    int dbl;
    uint64_t nnum;         /* numbers seen */
    kd_qv min, max;        /* KD_QV_MISSING until a value is seen */
    kd_qv *dv;             /* distinct: the values seen (deduplicated at the end) */
    size_t ndv, capdv;
} aggst;

typedef struct group {
    kd_qv key;
    uint64_t count;
    aggst *st;             /* nagg */
} group;

static void dsum_add(aggst *a, double x) {
    double t = a->dsum + x;
    if (fabs(a->dsum) >= fabs(x)) a->comp += (a->dsum - t) + x;
    else a->comp += (x - t) + a->dsum;
    a->dsum = t;
}

static int agg_add(const kd_agg *g, aggst *a, const kd_qv *v) {
    if (v->t == KD_QV_MISSING) return KD_OK;
    switch (g->fn) {
    case KD_AGG_COUNT:
        break;
    case KD_AGG_SUM:
    case KD_AGG_AVG:
        if (v->t != KD_QV_NUM) break;
        {
            kd_qnum x = kd__qv_num(v);
            a->nnum++;
            int64_t r;
            if (!a->dbl && x.is_int && !__builtin_add_overflow(a->isum, x.i, &r)) {
                a->isum = r;
                break;
            }
            if (!a->dbl) {
                a->dbl = 1;
                a->dsum = (double)a->isum;
                /* What rounding isum to a double lost (long double holds any int64 exactly;
                ** dsum may be 2^63, which no int64 holds). */
                a->comp = (double)((long double)a->isum - (long double)a->dsum);
            }
            dsum_add(a, x.is_int ? (double)x.i : x.d);
        }
        break;
    case KD_AGG_MIN:
    case KD_AGG_MAX:
        if (v->t == KD_QV_NULL) break;
        if (a->min.t == KD_QV_MISSING || kd__qv_cmp(v, &a->min) < 0) a->min = *v;
        if (a->max.t == KD_QV_MISSING || kd__qv_cmp(v, &a->max) > 0) a->max = *v;
        break;
    case KD_AGG_DISTINCT:
        if (a->ndv == a->capdv) {
            size_t nc = a->capdv ? a->capdv * 2 : 16;
            kd_qv *p = kd__realloc(a->dv, nc * sizeof *p);
            if (!p) return kd__err(KD_NOMEM, "out of memory");
            a->dv = p;
            a->capdv = nc;
        }
        a->dv[a->ndv++] = *v;
        break;
    }
    return KD_OK;
}

static int qv_qsort_cmp(const void *a, const void *b) { return kd__qv_cmp(a, b); }

/* A computed double in canonical form (an integral value within int64 as an integer;
** anything else in a spelling that reads back to the same double). */
static void write_double(kd_buf *out, double d) {
    if (!isfinite(d)) { /* overflowed the double range: no JSON number */
        kd__buf_puts(out, "null");
        return;
    }
    kd_json v;
    v.type = KD_JDOUBLE;
    v.u.d = d;
    kd__json_write_canonical(&v, out);
}

static void write_num_sum(kd_buf *out, const aggst *a) {
    if (!a->dbl) {
        kd__buf_printf(out, "%lld", (long long)a->isum);
        return;
    }
    write_double(out, a->dsum + a->comp);
}

static void agg_write(const kd_agg *g, aggst *a, uint64_t count, kd_buf *out) {
    switch (g->fn) {
    case KD_AGG_COUNT:
        kd__buf_printf(out, "%llu", (unsigned long long)count);
        break;
    case KD_AGG_SUM:
        write_num_sum(out, a);
        break;
    case KD_AGG_AVG:
        if (a->nnum == 0) {
            kd__buf_puts(out, "null");
        } else {
            long double s = a->dbl ? (long double)a->dsum + a->comp : (long double)a->isum;
            write_double(out, (double)(s / (long double)a->nnum));
        }
        break;
    case KD_AGG_MIN:
    case KD_AGG_MAX: {
        const kd_qv *v = g->fn == KD_AGG_MIN ? &a->min : &a->max;
        if (v->t == KD_QV_MISSING) kd__buf_puts(out, "null");
        else kd__buf_append(out, v->p, v->n);
        break;
    }
    case KD_AGG_DISTINCT:
        if (a->ndv > 1) qsort(a->dv, a->ndv, sizeof *a->dv, qv_qsort_cmp);
        kd__buf_putc(out, '[');
        for (size_t i = 0, w = 0; i < a->ndv; i++) {
            if (i > 0 && kd__qv_equal(&a->dv[i], &a->dv[i - 1])) continue;
            if (w++) kd__buf_putc(out, ',');
            kd__buf_append(out, a->dv[i].p, a->dv[i].n);
        }
        kd__buf_putc(out, ']');
        break;
    }
}

static void aggst_free(aggst *st, size_t n) {
    if (!st) return;
    for (size_t i = 0; i < n; i++) kd__free(st[i].dv);
    kd__free(st);
}

static aggst *aggst_new(size_t n) {
    aggst *st = kd__calloc(n ? n : 1, sizeof *st);
    if (!st) return NULL;
    for (size_t i = 0; i < n; i++) st[i].min.t = st[i].max.t = KD_QV_MISSING;
    return st;
}

static int group_cmp(const void *a, const void *b) {
    return kd__qv_cmp(&((const group *)a)->key, &((const group *)b)->key);
}

static const char NULL_TEXT[] = "null";

/* Aggregates docs[idx[0..m)] (idx NULL = all n docs) into canonical JSON. */
static int aggregate(const kd__qplan *p, const kd__doc *docs, const size_t *idx, size_t m, kd_buf *out) {
    int rc = KD_OK;
    group *g = NULL;
    size_t ng = 0, capg = 0;
    uint32_t *tab = NULL;      /* group number + 1, by key hash (open addressing) */
    size_t tabsize = 0;
    kd_buf text = KD_BUF_INIT;
    kd_json_err jerr;

    if (!p->group) {
        if (!(g = kd__calloc(1, sizeof *g)) || !(g[0].st = aggst_new(p->nagg))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        ng = capg = 1;
    } else {
        tabsize = 64;
        if (!(tab = kd__calloc(tabsize, sizeof *tab))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < m; i++) {
        const kd__doc *d = &docs[idx ? idx[i] : i];
        kd_qv doc = kd__qv_doc(d->val, d->vlen);
        group *gr = p->group ? NULL : &g[0]; /* g is still NULL before the first group */
        if (p->group) {
            kd_qv key = kd__path_get(&doc, p->group);
            if (key.t == KD_QV_MISSING) { /* documented: missing groups with null */
                key.t = KD_QV_NULL;
                key.p = NULL_TEXT;
                key.n = 4;
            }
            uint64_t h = kd__hash64(key.p, key.n);
            size_t j = h % tabsize;
            while (tab[j] && !kd__qv_equal(&g[tab[j] - 1].key, &key)) j = (j + 1) % tabsize;
            if (!tab[j]) {
                if (ng == capg) {
                    size_t nc = capg ? capg * 2 : 16;
                    group *ngp = kd__realloc(g, nc * sizeof *ngp);
                    if (!ngp) {
                        rc = kd__err(KD_NOMEM, "out of memory");
                        goto out;
                    }
                    g = ngp;
                    capg = nc;
                }
                memset(&g[ng], 0, sizeof g[ng]);
                g[ng].key = key;
                if (!(g[ng].st = aggst_new(p->nagg))) {
                    rc = kd__err(KD_NOMEM, "out of memory");
                    goto out;
                }
                tab[j] = (uint32_t)++ng;
                if (ng * 2 > tabsize) { /* grow and rehash */
                    size_t ns = tabsize * 4;
                    uint32_t *nt = kd__calloc(ns, sizeof *nt);
                    if (!nt) {
                        rc = kd__err(KD_NOMEM, "out of memory");
                        goto out;
                    }
                    for (size_t q = 0; q < ng; q++) {
                        size_t s = kd__hash64(g[q].key.p, g[q].key.n) % ns;
                        while (nt[s]) s = (s + 1) % ns;
                        nt[s] = (uint32_t)(q + 1);
                    }
                    kd__free(tab);
                    tab = nt;
                    tabsize = ns;
                }
                gr = &g[ng - 1];
            } else {
                gr = &g[tab[j] - 1];
            }
        }
        gr->count++;
        for (size_t a = 0; a < p->nagg; a++) {
            if (p->agg[a].fn == KD_AGG_COUNT) continue;
            kd_qv v = kd__path_get(&doc, &p->agg[a].path);
            if ((rc = agg_add(&p->agg[a], &gr->st[a], &v)) != KD_OK) goto out;
        }
    }

    /* The text is written with members in any order, then canonicalized (which sorts the
    ** members and settles the spelling of every number). */
    if (p->group) {
        if (ng > 1) qsort(g, ng, sizeof *g, group_cmp);
        kd__buf_puts(&text, "{\"groups\":[");
        for (size_t i = 0; i < ng; i++) {
            if (i) kd__buf_putc(&text, ',');
            kd__buf_puts(&text, "{\"key\":");
            kd__buf_append(&text, g[i].key.p, g[i].key.n);
            int has_count = 0;
            for (size_t a = 0; a < p->nagg; a++) has_count |= p->agg[a].fn == KD_AGG_COUNT;
            if (!has_count) kd__buf_printf(&text, ",\"count\":%llu", (unsigned long long)g[i].count);
            for (size_t a = 0; a < p->nagg; a++) {
                kd__buf_putc(&text, ',');
                kd__json_write_string(&text, p->agg[a].name, strlen(p->agg[a].name));
                kd__buf_putc(&text, ':');
                agg_write(&p->agg[a], &g[i].st[a], g[i].count, &text);
            }
            kd__buf_putc(&text, '}');
        }
        kd__buf_puts(&text, "]}");
    } else {
        kd__buf_putc(&text, '{');
        for (size_t a = 0; a < p->nagg; a++) {
            if (a) kd__buf_putc(&text, ',');
            kd__json_write_string(&text, p->agg[a].name, strlen(p->agg[a].name));
            kd__buf_putc(&text, ':');
            agg_write(&p->agg[a], &g[0].st[a], g[0].count, &text);
        }
        kd__buf_putc(&text, '}');
    }
    if (text.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    rc = kd__json_canonicalize(text.p, text.len, out, &jerr);
    if (rc == KD_INVALID) /* our own text: a bug, never user input */
        rc = kd__err(KD_ERROR, "internal error: aggregation text is not JSON (%s at byte %zu)", jerr.msg, jerr.pos);
out:
    for (size_t i = 0; i < ng; i++) aggst_free(g[i].st, p->nagg);
    kd__free(g);
    kd__free(tab);
    kd__buf_free(&text);
    return rc;
}

int kd__query_aggregate(const kd__qplan *p, const kd__doc *docs, size_t n, kd_buf *out) {
    return aggregate(p, docs, NULL, n, out);
}

/* ---- projection --------------------------------------------------------------------- */

/* A tree of the selected paths inside one document: each node is a value of the document
** (v) and the children selected below it. A node without children is copied whole. */
typedef struct pnode {
    const kd_pseg *seg;   /* how the parent reaches it (NULL at the root) */
    uint64_t idx;         /* the array index, when the parent is an array */
    kd_qv v;
    struct pnode *kids;
    size_t nkids, capkids;
    int whole;            /* selected itself: copy v whole */
} pnode;

static void pnode_free(pnode *n) {
    for (size_t i = 0; i < n->nkids; i++) pnode_free(&n->kids[i]);
    kd__free(n->kids);
}

static int pnode_add(pnode *root, const kd_path *path) {
    pnode *n = root;
    for (size_t i = 0; i < path->n; i++) {
        if (n->whole) return KD_OK; /* an ancestor is selected whole */
        const kd_pseg *s = &path->seg[i];
        kd_qv child;
        uint64_t idx = 0;
        if (n->v.t == KD_QV_ARR) {
            if (s->idx < 0) return KD_OK;
            idx = (uint64_t)s->idx;
            child = kd__qv_index(&n->v, idx);
        } else {
            child = kd__qv_member(&n->v, s->s, s->len);
        }
        if (child.t == KD_QV_MISSING) return KD_OK; /* nothing to select */
        pnode *k = NULL;
        for (size_t j = 0; j < n->nkids; j++)
            if (n->kids[j].v.p == child.p) k = &n->kids[j];
        if (!k) {
            if (n->nkids == n->capkids) {
                size_t nc = n->capkids ? n->capkids * 2 : 4;
                pnode *p = kd__realloc(n->kids, nc * sizeof *p);
                if (!p) return kd__err(KD_NOMEM, "out of memory");
                n->kids = p;
                n->capkids = nc;
            }
            k = &n->kids[n->nkids++];
            memset(k, 0, sizeof *k);
            k->seg = s;
            k->idx = idx;
            k->v = child;
        }
        n = k;
    }
    n->whole = 1;
    for (size_t j = 0; j < n->nkids; j++) pnode_free(&n->kids[j]);
    n->nkids = 0;
    return KD_OK;
}

/* Children in document order: array indexes ascending, object members by key bytes —
** which is also where they sit in the canonical text. */
static int pnode_cmp(const void *a, const void *b) {
    const pnode *x = a, *y = b;
    return x->v.p < y->v.p ? -1 : x->v.p > y->v.p;
}

static void pnode_write(pnode *n, kd_buf *out) {
    if (n->whole || n->nkids == 0) {
        kd__buf_append(out, n->v.p, n->v.n);
        return;
    }
    qsort(n->kids, n->nkids, sizeof *n->kids, pnode_cmp);
    int arr = n->v.t == KD_QV_ARR;
    kd__buf_putc(out, arr ? '[' : '{');
    for (size_t i = 0; i < n->nkids; i++) {
        if (i) kd__buf_putc(out, ',');
        if (!arr) {
            kd__json_write_string(out, n->kids[i].seg->s, n->kids[i].seg->len);
            kd__buf_putc(out, ':');
        }
        pnode_write(&n->kids[i], out);
    }
    kd__buf_putc(out, arr ? ']' : '}');
}

/* The projection of one document: an object (or array) holding only the selected paths;
** {} when none is present (or the document is a scalar). */
static int project(const kd__qplan *p, const kd__doc *d, kd_buf *out) {
    pnode root;
    memset(&root, 0, sizeof root);
    root.v = kd__qv_doc(d->val, d->vlen);
    int rc = KD_OK;
    if (root.v.t != KD_QV_OBJ && root.v.t != KD_QV_ARR) {
        kd__buf_puts(out, "{}");
        return KD_OK;
    }
    for (size_t i = 0; i < p->nselect && rc == KD_OK; i++) rc = pnode_add(&root, &p->select[i]);
    if (rc == KD_OK) {
        if (root.nkids == 0 && !root.whole) kd__buf_puts(out, root.v.t == KD_QV_ARR ? "[]" : "{}");
        else pnode_write(&root, out);
    }
    pnode_free(&root);
    return rc;
}

/* ---- execution ---------------------------------------------------------------------- */

void kd__query_plan(const kd_query *q, kd__qplan *p) {
    memset(p, 0, sizeof *p);
    p->f1 = q->filter;
    p->sort = q->sort;
    p->nsort = q->nsort;
    p->offset = q->offset;
    p->limit = q->limit;
    p->select = q->select;
    p->nselect = q->nselect;
    p->agg = q->agg;
    p->nagg = q->nagg;
    p->group = q->has_group ? &q->group : NULL;
}

static int fill_record(const kd__qplan *p, const kd__doc *d, kd_record *r, kd_buf *tmp) {
    int rc = KD_OK;
    r->key = kd__strndup(d->key, d->klen);
    if (!r->key) return kd__err(KD_NOMEM, "out of memory");
    r->seq = d->seq;
    r->timestamp = d->ts;
    memcpy(r->version_id, d->id, 32);
    if (p->nselect) {
        kd__buf_reset(tmp);
        if ((rc = project(p, d, tmp)) != KD_OK) return rc;
        if (tmp->oom) return kd__err(KD_NOMEM, "out of memory");
        r->value = kd__strndup(tmp->p, tmp->len);
        r->value_len = tmp->len;
    } else {
        r->value = kd__strndup(d->val, d->vlen);
        r->value_len = d->vlen;
    }
    if (!r->value) return kd__err(KD_NOMEM, "out of memory");
    return KD_OK;
}

#define STREAM_MAX 4096 /* pages up to this many records (offset + limit) are picked while filtering */

int kd__query_exec(const kd__qplan *p, const char *ns, const kd__doc *docs, size_t n, kd_result **out) {
    int rc = KD_OK;
    kd_result *res = NULL;
    size_t *match = NULL, *ord = NULL, m = 0, kept = 0;
    size_t *heap = NULL, nheap = 0, spare = 0;
    sorter s = {p->sort, p->nsort, NULL, NULL, NULL};
    kd_buf tmp = KD_BUF_INIT;
    *out = NULL;

    if (!(res = kd__calloc(1, sizeof *res)) || !(res->ns = kd__strdup(ns))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    if (n && !(match = kd__malloc(n * sizeof *match))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    size_t want = p->limit == KD_QUERY_ALL || p->offset > SIZE_MAX - p->limit ? SIZE_MAX : p->offset + p->limit;
    /* A small page is picked while filtering, with a bounded heap over want+1 slots: one
    ** pass over the documents, sort values read while the document is in cache, and no
    ** per-match arrays beyond the list of matches. */
    int stream = !p->presorted && want > 0 && want <= STREAM_MAX;
    if (stream) {
        size_t cap = want + 1, ns_ = p->nsort;
        if (!(heap = kd__malloc(cap * sizeof *heap)) || !(s.doc = kd__malloc(cap * sizeof *s.doc)) ||
            (ns_ && (!(s.sv = kd__malloc(cap * ns_ * sizeof *s.sv)) || !(s.num = kd__malloc(cap * ns_ * sizeof *s.num)))))
            goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        kd_qv doc = kd__qv_doc(docs[i].val, docs[i].vlen);
        int ok = 1;
        if (p->f1 && (ok = kd__filter_eval(p->f1, &doc)) < 0) goto nomem;
        if (ok && p->f2 && (ok = kd__filter_eval(p->f2, &doc)) < 0) goto nomem;
        if (!ok) continue;
        match[m++] = i;
        if (!stream) continue;
        size_t slot = nheap < want ? nheap : spare;
        s.doc[slot] = &docs[i];
        if (p->nsort) sorter_fill(&s, slot);
        if (nheap < want) {
            heap[nheap] = slot;
            heap_up(&s, heap, nheap++);
            spare = want;
        } else if (match_cmp(&s, slot, heap[0]) < 0) {
            spare = heap[0];
            heap[0] = slot;
            heap_down(&s, heap, nheap, 0);
        }
    }
    res->total = m;
    if (p->nagg || p->group) {
        kd_buf agg = KD_BUF_INIT;
        if ((rc = aggregate(p, docs, match, m, &agg)) != KD_OK) {
            kd__buf_free(&agg);
            goto out;
        }
        res->aggregation = kd__buf_take(&agg, &res->aggregation_len);
        if (!res->aggregation) goto nomem;
    }

    if (want > m) want = m;
    if (stream) {
        qsort_r(heap, nheap, sizeof *heap, qsort_cmp, &s);
        ord = heap;
        heap = NULL;
        for (size_t i = 0; i < nheap; i++) ord[i] = (size_t)(s.doc[ord[i]] - docs);
        kept = nheap;
    } else if (want > 0) {
        if (!(ord = kd__malloc(m * sizeof *ord))) goto nomem;
        if (p->presorted) {
            for (size_t i = 0; i < want; i++) ord[i] = match[i];
            kept = want;
        } else {
            size_t ns_ = p->nsort;
            if (!(s.doc = kd__malloc(m * sizeof *s.doc))) goto nomem;
            if (ns_ && (!(s.sv = kd__malloc(m * ns_ * sizeof *s.sv)) || !(s.num = kd__malloc(m * ns_ * sizeof *s.num))))
                goto nomem;
            for (size_t i = 0; i < m; i++) {
                s.doc[i] = &docs[match[i]];
                if (ns_) sorter_fill(&s, i);
            }
            order_matches(&s, m, want, ord, &kept);
            for (size_t i = 0; i < kept; i++) ord[i] = match[ord[i]];
        }
    }
    if (kept > p->offset) {
        size_t cnt = kept - p->offset;
        if (!(res->records = kd__calloc(cnt, sizeof *res->records))) goto nomem;
        for (size_t i = 0; i < cnt; i++) {
            if ((rc = fill_record(p, &docs[ord[p->offset + i]], &res->records[i], &tmp)) != KD_OK) {
                res->n = i + 1;
                goto out;
            }
        }
        res->n = cnt;
    }
    goto out;
nomem:
    rc = kd__err(KD_NOMEM, "out of memory");
out:
    kd__free(match);
    kd__free(ord);
    kd__free(heap);
    kd__free(s.doc);
    kd__free(s.sv);
    kd__free(s.num);
    kd__buf_free(&tmp);
    if (rc != KD_OK) kd_result_free(res);
    else *out = res;
    return rc;
}

/* ---- public calls -------------------------------------------------------------------- */

int kd_query_run(kd_db *db, const char *ns, const kd_query *q, kd_result **out) {
    kd__err_clear();
    int rc;
    kd__doc *docs = NULL;
    size_t n = 0;
    if (!out) return kd__err(KD_INVALID, "missing result pointer");
    *out = NULL;
    if (!db || !ns || !q) return kd__err(KD_INVALID, "missing database, namespace or query");
    if ((rc = kd_valid_namespace(ns, 1)) != KD_OK) return rc;
    if ((rc = kd__db_scan(db, ns, q->has_at, q->at, 0, &docs, &n, NULL)) != KD_OK) return rc;
    kd__qplan p;
    kd__query_plan(q, &p);
    rc = kd__query_exec(&p, ns, docs, n, out);
    kd__free(docs);
    return rc;
}

void kd_result_free(kd_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        kd__free(r->records[i].key);
        kd__free(r->records[i].value);
    }
    kd__free(r->records);
    kd__free(r->ns);
    kd__free(r->aggregation);
    kd__free(r);
}

int kd_result_to_json(const kd_result *r, char **out, size_t *len) {
    kd__err_clear();
    if (!r || !out) return kd__err(KD_INVALID, "missing result");
    kd_buf b = KD_BUF_INIT;
    kd__buf_puts(&b, "{\"aggregation\":");
    if (r->aggregation) kd__buf_append(&b, r->aggregation, r->aggregation_len);
    else kd__buf_puts(&b, "null");
    kd__buf_puts(&b, ",\"namespace\":");
    kd__json_write_string(&b, r->ns, strlen(r->ns));
    kd__buf_puts(&b, ",\"records\":[");
    for (size_t i = 0; i < r->n; i++) {
        const kd_record *x = &r->records[i];
        char hx[65], ts[32];
        kd_hex(x->version_id, hx);
        kd_format_time(x->timestamp, ts);
        if (i) kd__buf_putc(&b, ',');
        kd__buf_puts(&b, "{\"key\":");
        kd__json_write_string(&b, x->key, strlen(x->key));
        kd__buf_printf(&b, ",\"seq\":%llu,\"timestamp\":\"%s\",\"value\":", (unsigned long long)x->seq, ts);
        kd__buf_append(&b, x->value, x->value_len);
        kd__buf_printf(&b, ",\"version_id\":\"%s\"}", hx);
    }
    kd__buf_printf(&b, "],\"total\":%llu}", (unsigned long long)r->total);
    if (b.oom) {
        kd__buf_free(&b);
        return kd__err(KD_NOMEM, "out of memory");
    }
    size_t l;
    *out = kd__buf_take(&b, &l);
    if (len) *len = l;
    return KD_OK;
}
