/*
** vector.c — versioned embeddings and exact vector search (the kd_embed*, kd_search API).
**
** Storage. The embedding of ns/key is a record of the system namespace `_emb.<ns>` under
** the same key, so history, time travel and deletes come from the store. Its value is
** canonical JSON:
**     {"dim":N,"metadata":<JSON>|null,"model":"M","vector":"<base64>"}
** where the base64 (RFC 4648, padded) encodes the N float32 components as little-endian
** IEEE 754 bytes: floats come back bit-for-bit (NaN and infinities are refused on the way
** in). The prefix costs 5 bytes of the 128 a namespace may have, so a user namespace that
** holds embeddings is at most KD_EMBED_NS_MAX (123) bytes; keys are unchanged, so every
** valid key works.
**
** Models. The first embedding of a model fixes its dimension for the whole database: the
** record `_emb`/<model> holds {"dim":N}, written once with if-absent (a concurrent first
** embed of the same model with another dimension loses the race and gets the mismatch
** error). Model names follow the rules of keys.
**
** Search is exact: the embeddings of the namespaces asked for are read as of one seq
** (and, with `at`, as of a time) through kd__db_scan, restricted by model, metadata filter
** and value filter, scored with plain loops in double precision, and the best top_k kept
** in a heap whose root is the worst hit kept. Searches of the current state with enough
** candidates go through an in-memory HNSW index instead (see "the HNSW path" below).
**
** May call: vector/hnsw, db (db_int.h: kd__db_scan, kd__db_each_version, kd__put_system,
** kd__delete_system, the ext_mu/vec slot), query (filter evaluation), json, base.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "query/query.h"
#include "vector/vector_int.h"


/* ---- names -------------------------------------------------------------------------- */

/* The system namespace holding the embeddings of user namespace ns, into out. */
static int emb_ns(const char *ns, char out[KD_NS_MAX + 1]) {
    int rc = kd_valid_namespace(ns, 0);
    if (rc != KD_OK) return rc;
    size_t n = strlen(ns);
    if (n > KD_EMBED_NS_MAX)
        return kd__err(KD_INVALID, "namespace is %zu bytes long: namespaces holding embeddings are limited to %d bytes",
                       n, KD_EMBED_NS_MAX);
    memcpy(out, EMB_PREFIX, EMB_PREFIX_LEN);
    memcpy(out + EMB_PREFIX_LEN, ns, n + 1);
    return KD_OK;
}

static int check_model(const char *model) {
    if (kd_valid_key(model) == KD_OK) return KD_OK;
    char m[300];
    snprintf(m, sizeof m, "%s", kd__errmsg_get());
    return kd__err(KD_INVALID, "invalid model name (%s)", m);
}

/* Checks a vector given by the caller: dimension and finite components. what names it. */
static int check_vector(const float *v, size_t dim, const char *what) {
    if (!v) return kd__err(KD_INVALID, "missing %s vector", what);
    if (dim == 0) return kd__err(KD_INVALID, "%s vector is empty", what);
    if (dim > KD_EMBED_DIM_MAX)
        return kd__err(KD_INVALID, "%s vector has %zu components (limit %d)", what, dim, KD_EMBED_DIM_MAX);
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return kd__err(KD_INVALID, "%s vector component %zu is %s", what, i,
                           isnan(v[i]) ? "NaN" : "infinite");
    return KD_OK;
}

/* ---- base64 of little-endian float32 ------------------------------------------------ */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_put(kd_buf *out, const float *v, size_t dim) {
    size_t n = dim * 4;
    uint8_t *bytes = kd__malloc(n ? n : 1);
    if (!bytes) {
        out->oom = 1;
        return;
    }
    for (size_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        kd__set_u32(bytes + 4 * i, u);
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)bytes[i] << 16;
        if (i + 1 < n) w |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < n) w |= bytes[i + 2];
        char q[4] = {B64[(w >> 18) & 63], B64[(w >> 12) & 63], i + 1 < n ? B64[(w >> 6) & 63] : '=',
                     i + 2 < n ? B64[w & 63] : '='};
        kd__buf_append(out, q, 4);
    }
    kd__free(bytes);
}

/* Base64 digit values + 1, by character (0 = not a digit). */
static const uint8_t B64D[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* Decodes the base64 text s[0..len) of exactly dim float32 into v. 0 when malformed.
** This is the inner loop of exact search, hence the table and the direct byte writes. */
int kd__emb_floats(const char *s, size_t len, float *v, size_t dim) {
    size_t n = dim * 4;
    if (len != (n + 2) / 3 * 4) return 0;
    uint8_t *out = (uint8_t *)v;
    const uint8_t *in = (const uint8_t *)s;
    size_t o = 0, i = 0;
    for (; o + 3 <= n; i += 4, o += 3) { /* whole groups */
        uint32_t a = B64D[in[i]], b = B64D[in[i + 1]], c = B64D[in[i + 2]], d = B64D[in[i + 3]];
        if (!a || !b || !c || !d) return 0;
        uint32_t w = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[o] = (uint8_t)(w >> 16);
        out[o + 1] = (uint8_t)(w >> 8);
        out[o + 2] = (uint8_t)w;
    }
    if (o < n) { /* the padded last group: 1 or 2 bytes */
        uint32_t a = B64D[in[i]], b = B64D[in[i + 1]], c = B64D[in[i + 2]];
        if (!a || !b || in[i + 3] != '=') return 0;
        uint32_t w = (a - 1) << 18 | (b - 1) << 12;
        out[o++] = (uint8_t)(w >> 16);
        if (o < n) {
            if (!c) return 0;
            w |= (c - 1) << 6;
            out[o++] = (uint8_t)(w >> 8);
        } else if (in[i + 2] != '=') {
            return 0;
        }
    }
    for (size_t k = 0; k < dim; k++) { /* little-endian bytes to host floats (no-op on LE) */
        uint32_t u = kd__get_u32(out + 4 * k);
        memcpy(&v[k], &u, 4);
    }
    return 1;
}

/* ---- the stored record -------------------------------------------------------------- */

int kd__emb_vector_text(const char *val, size_t len, const char **b64, size_t *b64len) {
    static const char tag[] = "\"vector\":\"";
    const size_t tl = sizeof tag - 1;
    if (len > tl + 2 && val[len - 1] == '}' && val[len - 2] == '"') {
        const char *q = memrchr(val, '"', len - 2); /* base64 holds no quote */
        if (q && (size_t)(q - val) >= tl - 1 && memcmp(q + 1 - tl, tag, tl) == 0) {
            *b64 = q + 1;
            *b64len = (size_t)(val + len - 2 - (q + 1));
            return KD_OK;
        }
    }
    emb_rec r;
    int rc = kd__emb_rec_read(val, len, &r);
    if (rc == KD_OK) {
        *b64 = r.b64;
        *b64len = r.b64len;
    }
    return rc;
}

int kd__emb_rec_read(const char *val, size_t len, emb_rec *r) {
    kd_json_val doc = kd_json_doc(val, len);
    kd_json_val d = kd_json_get(doc, "dim"), v = kd_json_get(doc, "vector");
    int64_t dim;
    r->model = kd_json_get(doc, "model");
    r->meta = kd_json_get(doc, "metadata");
    if (kd_json_int(d, &dim) != KD_OK || dim <= 0 || dim > KD_EMBED_DIM_MAX ||
        kd_json_type(r->model) != KD_JSON_STRING || kd_json_type(v) != KD_JSON_STRING || !r->meta.p)
        return kd__err(KD_CORRUPT, "malformed embedding record");
    r->dim = (size_t)dim;
    r->b64 = v.p + 1;
    r->b64len = v.len - 2;
    return KD_OK;
}

/* ---- models ------------------------------------------------------------------------- */

/* The dimension recorded for model (0 when none is). */
static int model_dim(kd_db *db, const char *model, size_t *dim) {
    kd_entry e;
    memset(&e, 0, sizeof e);
    *dim = 0;
    int rc = kd_get(db, MODELS_NS, model, &e);
    if (rc == KD_NOTFOUND) {
        kd__err_clear();
        rc = KD_OK;
        goto out;
    }
    if (rc != KD_OK) goto out;
    int64_t d;
    if (kd_json_int(kd_json_get(kd_json_doc(e.value, e.value_len), "dim"), &d) != KD_OK || d <= 0 ||
        d > KD_EMBED_DIM_MAX) {
        rc = kd__err(KD_CORRUPT, "malformed model record for \"%s\"", model);
        goto out;
    }
    *dim = (size_t)d;
out:
    kd_entry_clear(&e);
    return rc;
}

/* Makes sure model has dimension dim, recording it when the model is new. */
static int model_claim(kd_db *db, const char *model, size_t dim) {
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t have;
        int rc = model_dim(db, model, &have);
        if (rc != KD_OK) return rc;
        if (have == dim) return KD_OK;
        if (have)
            return kd__err(KD_INVALID, "dimension mismatch: the vector has %zu components, model \"%s\" has %zu",
                           dim, model, have);
        char rec[64];
        int n = snprintf(rec, sizeof rec, "{\"dim\":%zu}", dim);
        kd_put_cond cond = {1, NULL};
        rc = kd__put_system(db, MODELS_NS, model, rec, (size_t)n, &cond, NULL);
        if (rc != KD_CONFLICT) return rc; /* KD_CONFLICT: another writer recorded it first */
    }
    return kd__err(KD_ERROR, "could not record the dimension of model \"%s\"", model);
}

/* ---- embed, get, delete ------------------------------------------------------------- */

int kd_embed(kd_db *db, const char *ns, const char *key, const float *v, size_t dim,
             const char *model, const char *meta_json, kd_entry *out) {
    char sys[KD_NS_MAX + 1];
    kd_buf rec = KD_BUF_INIT, meta = KD_BUF_INIT;
    int rc;
    if (!model) model = DEFAULT_MODEL;
    if ((rc = emb_ns(ns, sys)) != KD_OK || (rc = kd_valid_key(key)) != KD_OK || (rc = check_model(model)) != KD_OK ||
        (rc = check_vector(v, dim, "the")) != KD_OK)
        goto out;
    if (meta_json) {
        kd_json_err jerr;
        rc = kd__json_canonicalize(meta_json, strlen(meta_json), &meta, &jerr);
        if (rc == KD_NOMEM) goto out;
        if (rc != KD_OK) {
            rc = kd__err(KD_INVALID, "invalid metadata JSON at byte %zu: %s", jerr.pos, jerr.msg);
            goto out;
        }
    }
    if ((rc = model_claim(db, model, dim)) != KD_OK) goto out;
    kd__buf_printf(&rec, "{\"dim\":%zu,\"metadata\":", dim);
    if (meta_json)
        kd__buf_append(&rec, meta.p, meta.len);
    else
        kd__buf_puts(&rec, "null");
    kd__buf_puts(&rec, ",\"model\":");
    kd__json_write_string(&rec, model, strlen(model));
    kd__buf_puts(&rec, ",\"vector\":\"");
    b64_put(&rec, v, dim);
    kd__buf_puts(&rec, "\"}");
    if (rec.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    rc = kd__put_system(db, sys, key, rec.p, rec.len, NULL, out);
out:
    kd__buf_free(&rec);
    kd__buf_free(&meta);
    return rc;
}

void kd_embedding_free(kd_embedding *e) {
    if (!e) return;
    kd__free(e->ns);
    kd__free(e->key);
    kd__free(e->model);
    kd__free(e->vector);
    kd__free(e->metadata);
    kd__free(e);
}

int kd_embedding_get(kd_db *db, const char *ns, const char *key, int64_t at, kd_embedding **out) {
    char sys[KD_NS_MAX + 1];
    kd_entry e;
    kd_embedding *r = NULL;
    emb_rec rec;
    memset(&e, 0, sizeof e);
    *out = NULL;
    int rc = emb_ns(ns, sys);
    if (rc != KD_OK) goto out;
    rc = at == KD_AT_NOW ? kd_get(db, sys, key, &e) : kd_get_at(db, sys, key, at, &e);
    if (rc == KD_NOTFOUND) {
        char when[32] = "";
        if (e.deleted) kd_format_time(e.timestamp, when);
        rc = kd__err(KD_NOTFOUND, "no embedding for %s/%.200s%s%s", ns, key, e.deleted ? ": deleted at " : "", when);
        goto out;
    }
    if (rc != KD_OK || (rc = kd__emb_rec_read(e.value, e.value_len, &rec)) != KD_OK) goto out;
    if (!(r = kd__calloc(1, sizeof *r)) || !(r->vector = kd__malloc(rec.dim * sizeof(float))) ||
        !(r->ns = kd__strdup(ns)) || !(r->key = kd__strdup(key))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    if (!kd__emb_floats(rec.b64, rec.b64len, r->vector, rec.dim)) {
        rc = kd__err(KD_CORRUPT, "embedding of %s/%.200s: vector does not hold %zu float32", ns, key, rec.dim);
        goto out;
    }
    r->dim = rec.dim;
    if ((rc = kd_json_string(rec.model, &r->model, NULL)) != KD_OK) goto out;
    if (!(rec.meta.len == 4 && memcmp(rec.meta.p, "null", 4) == 0) &&
        !(r->metadata = kd__strndup(rec.meta.p, rec.meta.len))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    r->seq = e.seq;
    r->timestamp = e.timestamp;
    memcpy(r->version_id, e.version_id, 32);
    *out = r;
    r = NULL;
out:
    kd_entry_clear(&e);
    kd_embedding_free(r);
    return rc;
}

int kd_embed_delete(kd_db *db, const char *ns, const char *key, kd_entry *out) {
    char sys[KD_NS_MAX + 1];
    int rc = emb_ns(ns, sys);
    if (rc != KD_OK) return rc;
    rc = kd__delete_system(db, sys, key, out);
    if (rc == KD_NOTFOUND) rc = kd__err(KD_NOTFOUND, "no embedding for %s/%.200s", ns, key);
    return rc;
}

/* ---- search ------------------------------------------------------------------------- */

void kd_search_opts_init(kd_search_opts *o) {
    memset(o, 0, sizeof *o);
    o->top_k = 10;
    o->metric = KD_METRIC_COSINE;
    o->at = KD_AT_NOW;
}

/* A candidate kept in the heap. Pointers are the index's and the log's (stable until
** kd_close) and the namespace list's. */
typedef struct cand {
    double rank;          /* higher is better: the score, or minus the L2 distance */
    const char *ns;       /* user namespace */
    const char *key;
    uint32_t klen;
    const uint8_t *id;
    uint64_t seq;
    int64_t ts;
} cand;

static int keycmp(const char *a, uint32_t al, const char *b, uint32_t bl) {
    int c = memcmp(a, b, KD_MIN(al, bl));
    return c ? c : (al > bl) - (al < bl);
}

/* Is a better than b? Ties by namespace, then key, so results are deterministic. */
static int better(const cand *a, const cand *b) {
    if (a->rank != b->rank) return a->rank > b->rank;
    int c = strcmp(a->ns, b->ns);
    if (c) return c < 0;
    return keycmp(a->key, a->klen, b->key, b->klen) < 0;
}

typedef struct heap {
    cand *c;
    size_t n, k;
} heap;

/* Keeps the k best: c[0] is the worst of those kept. */
static void heap_offer(heap *h, const cand *x) {
    size_t i;
    if (h->n < h->k) {
        i = h->n++;
        while (i > 0 && better(&h->c[(i - 1) / 2], x)) {
            h->c[i] = h->c[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h->c[i] = *x;
        return;
    }
    if (!better(x, &h->c[0])) return;
    i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        const cand *wc = x;
        if (l < h->n && better(wc, &h->c[l])) w = l, wc = &h->c[l];
        if (r < h->n && better(wc, &h->c[r])) w = r;
        if (w == i) break;
        h->c[i] = h->c[w];
        i = w;
    }
    h->c[i] = *x;
}

static int cand_order(const void *a, const void *b) {
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* a.b, and b.b into *bb: one pass for cosine. */
static double dot_norm(const float *a, const float *b, size_t n, double *bb) {
    double s = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        q += (double)b[i] * b[i];
    }
    *bb = q;
    return s;
}

static double l2(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return sqrt(s);
}

static int doc_by_key(const void *a, const void *b) {
    const kd__doc *x = a, *y = b;
    return keycmp(x->key, x->klen, y->key, y->klen);
}

/* What one search carries from namespace to namespace. */
typedef struct search {
    kd_db *db;
    const kd_search_opts *o;
    int at;
    uint64_t upto;
    double qnorm;
    kd_buf model_json;    /* the model filter as a JSON string; empty = none */
    kd_json_val seen;     /* without a model filter: the model of the first candidate */
    char seen_where[300];
    float *vec;           /* decoding buffer, o->dim components */
    heap h;
    int held;             /* the vector indexes' lock is held until the hits are copied */
} search;

/* Whether a score (cosine, dot: similarity; L2: distance) passes the threshold. */
static int passes(const kd_search_opts *o, double score) {
    if (!o->has_threshold) return 1;
    return o->metric == KD_METRIC_L2 ? score <= o->threshold : score >= o->threshold;
}

/* Scores candidate v (o->dim floats) against the query in double precision into *score;
** 0 when the threshold drops it. */
static int score_passes(const search *s, const float *v, double *score) {
    const kd_search_opts *o = s->o;
    if (o->metric == KD_METRIC_L2) {
        *score = l2(o->vector, v, o->dim);
    } else if (o->metric == KD_METRIC_DOT) {
        *score = dot(o->vector, v, o->dim);
    } else {
        double vv, d = dot_norm(o->vector, v, o->dim, &vv);
        *score = s->qnorm == 0 || vv == 0 ? 0 : d / (s->qnorm * sqrt(vv));
    }
    return passes(o, *score);
}

/* The value of key in docs (sorted by key), or NULL. */
static const kd__doc *find_doc(const kd__doc *docs, size_t n, const char *key, uint32_t klen) {
    kd__doc probe;
    memset(&probe, 0, sizeof probe);
    probe.key = key;
    probe.klen = klen;
    return n ? bsearch(&probe, docs, n, sizeof *docs, doc_by_key) : NULL;
}

/* Scores the embeddings of user namespace ns. */
static int search_ns(search *s, const char *ns) {
    const kd_search_opts *o = s->o;
    char sys[KD_NS_MAX + 1];
    kd__doc *embs = NULL, *vals = NULL;
    size_t ne = 0, nv = 0;
    int rc;
    if ((rc = emb_ns(ns, sys)) != KD_OK) goto out;
    if ((rc = kd__db_scan(s->db, sys, s->at, o->at, s->upto, &embs, &ne, NULL)) != KD_OK) goto out;
    if (ne && o->filter && o->filter->filter) {
        if ((rc = kd__db_scan(s->db, ns, s->at, o->at, s->upto, &vals, &nv, NULL)) != KD_OK) goto out;
        if (nv) qsort(vals, nv, sizeof *vals, doc_by_key);
    }
    for (size_t i = 0; i < ne; i++) {
        const kd__doc *d = &embs[i];
        emb_rec r;
        if ((rc = kd__emb_rec_read(d->val, d->vlen, &r)) != KD_OK) {
            rc = kd__err(rc, "embedding of %s/%.*s: malformed record", ns, (int)KD_MIN(d->klen, 200), d->key);
            goto out;
        }
        if (s->model_json.len &&
            (r.model.len != s->model_json.len || memcmp(r.model.p, s->model_json.p, r.model.len) != 0))
            continue;
        if (o->meta_filter && o->meta_filter->filter) {
            kd_qv m = kd__qv_doc(r.meta.p, r.meta.len);
            int ok = kd__filter_eval(o->meta_filter->filter, &m);
            if (ok < 0) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
            if (!ok) continue;
        }
        if (o->filter && o->filter->filter) {
            const kd__doc *v = find_doc(vals, nv, d->key, d->klen);
            if (!v) continue;
            kd_qv doc = kd__qv_doc(v->val, v->vlen);
            int ok = kd__filter_eval(o->filter->filter, &doc);
            if (ok < 0) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
            if (!ok) continue;
        }
        if (!s->model_json.len) { /* every candidate must be of one model */
            if (!s->seen.p) {
                s->seen = r.model;
                snprintf(s->seen_where, sizeof s->seen_where, "%s/%.*s", ns, (int)KD_MIN(d->klen, 200), d->key);
            } else if (s->seen.len != r.model.len || memcmp(s->seen.p, r.model.p, r.model.len) != 0) {
                rc = kd__err(KD_INVALID, "model mismatch: %s has model %.*s, %s/%.*s has model %.*s; choose one",
                             s->seen_where, (int)KD_MIN(s->seen.len, 200), s->seen.p, ns, (int)KD_MIN(d->klen, 200),
                             d->key, (int)KD_MIN(r.model.len, 200), r.model.p);
                goto out;
            }
        }
        if (r.dim != o->dim) {
            rc = kd__err(KD_INVALID, "dimension mismatch: the query has %zu components, %s/%.*s (model %.*s) has %zu",
                         o->dim, ns, (int)KD_MIN(d->klen, 200), d->key, (int)KD_MIN(r.model.len, 200), r.model.p, r.dim);
            goto out;
        }
        if (!kd__emb_floats(r.b64, r.b64len, s->vec, r.dim)) {
            rc = kd__err(KD_CORRUPT, "embedding of %s/%.*s: vector does not hold %zu float32", ns,
                         (int)KD_MIN(d->klen, 200), d->key, r.dim);
            goto out;
        }
        double score;
        if (!score_passes(s, s->vec, &score)) continue;
        cand c = {o->metric == KD_METRIC_L2 ? -score : score, ns, d->key, d->klen, d->id, d->seq, d->ts};
        heap_offer(&s->h, &c);
    }
out:
    kd__free(embs);
    kd__free(vals);
    return rc;
}

/* ---- the HNSW path ------------------------------------------------------------------ */
/* Searches of the current state go through the index of (model, metric) kept by vindex.c
** when it is the cheaper way; its ids' slots hold the version each key's embedding is at,
** caught up to the search's seq before the graph is read. */

#define HNSW_MIN_CANDIDATES 2000 /* below this many in scope, exact search answers */
#define HNSW_VISITS_PER_EF 30    /* distance computations per unit of ef_search, roughly */
#define EXACT_COST 3             /* one exact candidate (decode + double score), in the same units */
#define META_SAMPLE 256          /* ids sampled to estimate a metadata filter's selectivity */

typedef struct hctx {
    kd_db *db;
    vidx *x;
    int nsi;              /* -1 = every namespace */
    const kd_search_opts *o;
    int err;
} hctx;

static int accept_id(void *ctx, uint32_t id) {
    hctx *c = ctx;
    const vslot *s = &c->x->slot[id];
    if (!s->seq || (c->nsi >= 0 && s->ns != (uint32_t)c->nsi)) return 0;
    if (c->o->meta_filter && c->o->meta_filter->filter) {
        kd__doc d;
        emb_rec r;
        if (kd__db_doc_at(c->db, s->seq, &d) != KD_OK || !d.val || kd__emb_rec_read(d.val, d.vlen, &r) != KD_OK) {
            c->err = KD_CORRUPT;
            return 0;
        }
        kd_qv m = kd__qv_doc(r.meta.p, r.meta.len);
        int ok = kd__filter_eval(c->o->meta_filter->filter, &m);
        if (ok < 0) c->err = KD_NOMEM;
        return ok > 0;
    }
    return 1;
}

/* The share of the live ids in scope whose metadata passes the filter, from a sample. */
static double meta_share(hctx *c) {
    const vidx *x = c->x;
    uint32_t step = x->nslot / META_SAMPLE + 1, seen = 0, pass = 0;
    for (uint32_t id = 0; id < x->nslot; id += step) {
        const vslot *v = &x->slot[id];
        if (!v->seq || (c->nsi >= 0 && v->ns != (uint32_t)c->nsi)) continue;
        seen++;
        pass += accept_id(c, id) != 0;
    }
    return seen ? (double)pass / seen : 1.0;
}

/* Searches through the index of model, unless exact search is the cheaper way (*used = 0):
** fewer than HNSW_MIN_CANDIDATES in scope, or restrictions (namespace, metadata filter)
** so selective that the graph walk would visit more nodes than exact search reads (the
** walk passes through rejected nodes, about HNSW_VISITS_PER_EF * ef / share of them).
** Dot and L2 hits are rescored in double precision from the index's float32 copy, the
** same inputs exact search scores, so their scores are exact search's. Cosine hits keep
** the graph's float32 cosine (its copy is normalised): within about 1e-6 of exact
** search's score. */
static int search_hnsw(search *s, const char *model, size_t mdim, int *used) {
    kd_db *db = s->db;
    const kd_search_opts *o = s->o;
    vidx *x = NULL;
    uint32_t *ids = NULL;
    float *fscores = NULL;
    int rc;
    *used = 0;
    if ((rc = kd__vidx_acquire(db, model, mdim, o->metric, s->upto, &x)) != KD_OK) return rc;
    hctx c = {db, x, -1, o, 0};
    uint64_t total = 0, scope = 0;
    for (uint32_t i = 0; i < x->nns; i++) {
        total += x->ns_live[i];
        if (!o->ns || strcmp(x->ns[i], o->ns) == 0) {
            scope += x->ns_live[i];
            if (o->ns) c.nsi = (int)i;
        }
    }
    if (o->ns && c.nsi < 0) { /* the namespace never held this model: no hits */
        *used = 1;
        goto out;
    }
    if (scope < HNSW_MIN_CANDIDATES) goto out;
    uint32_t k = (uint32_t)KD_MIN(s->h.k, (size_t)scope), n = 0;
    uint32_t ef = KD_MAX(o->ef_search ? o->ef_search : 64, k);
    double share = (double)scope / (double)total;
    if (o->meta_filter && o->meta_filter->filter) share *= meta_share(&c);
    if (c.err) { rc = c.err == KD_NOMEM ? kd__err(KD_NOMEM, "out of memory") : kd__err(KD_CORRUPT, "malformed embedding record"); goto out; }
    if (share <= 0 || (double)HNSW_VISITS_PER_EF * ef / share > (double)EXACT_COST * (double)scope) goto out;
    if (!(ids = kd__malloc((k ? k : 1) * sizeof *ids))) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
    /* Live slots are exactly the graph's live ids: only a namespace (among several) or a
    ** metadata filter needs the callback. */
    int need = (c.nsi >= 0 && x->nns > 1) || (o->meta_filter && o->meta_filter->filter);
    if (!(fscores = kd__malloc((k ? k : 1) * sizeof *fscores))) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
    if ((rc = kd__hnsw_search(x->h, o->vector, k, ef, need ? accept_id : NULL, &c, ids, fscores, &n)) != KD_OK) goto out;
    if (c.err) { rc = c.err == KD_NOMEM ? kd__err(KD_NOMEM, "out of memory") : kd__err(KD_CORRUPT, "malformed embedding record"); goto out; }
    *used = 1;
    for (uint32_t i = 0; i < n; i++) __builtin_prefetch(&x->slot[ids[i]]); /* the k misses overlap */
    for (uint32_t i = 0; i < n; i++) __builtin_prefetch(x->slot[ids[i]].vid);
    for (uint32_t i = 0; i < n; i++) {
        const vslot *v = &x->slot[ids[i]];
        double score;
        if (o->metric == KD_METRIC_COSINE) { /* the graph's own cosine: its copy is normalised */
            score = fscores[i];
            if (!passes(o, score)) continue;
        } else { /* the same float32 inputs as exact search, scored the same way */
            const float *f = kd__hnsw_vector(x->h, ids[i]);
            if (!f) {
                rc = kd__err(KD_ERROR, "vector index: id %u has no vector", ids[i]);
                goto out;
            }
            if (!score_passes(s, f, &score)) continue;
        }
        cand cd = {o->metric == KD_METRIC_L2 ? -score : score, x->ns[v->ns], v->key, v->klen, v->vid, v->seq, v->ts};
        heap_offer(&s->h, &cd);
    }
out:
    kd__free(ids);
    kd__free(fscores);
    if (rc != KD_OK || !*used) kd__vidx_release(db);
    else s->held = 1; /* hit pointers (namespace names) stay valid while held */
    return rc;
}

/* The only model that has embeddings, into *model (allocated), or NULL when there are
** several or none. */
static int sole_model(kd_db *db, uint64_t upto, char **model, size_t *dim) {
    kd__doc *m = NULL;
    size_t nm = 0;
    *model = NULL;
    int rc = kd__db_scan(db, MODELS_NS, 0, 0, upto, &m, &nm, NULL);
    if (rc == KD_OK && nm == 1) {
        int64_t d;
        if (kd_json_int(kd_json_get(kd_json_doc(m[0].val, m[0].vlen), "dim"), &d) == KD_OK && d > 0) {
            *dim = (size_t)d;
            if (!(*model = kd__strndup(m[0].key, m[0].klen))) rc = kd__err(KD_NOMEM, "out of memory");
        }
    }
    kd__free(m);
    return rc;
}

int kd__emb_namespaces(kd_db *db, char ***out, size_t *n) {
    int rc = KD_OK;
    char **names = NULL;
    size_t nn = 0;
    pthread_rwlock_rdlock(&db->ix_lock);
    const kd_index *ix = &db->ix;
    if (ix->nns && !(names = kd__calloc(ix->nns, sizeof *names))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < ix->nns; i++) {
        const char *name = ix->ns[i].name;
        if (strncmp(name, EMB_PREFIX, EMB_PREFIX_LEN) != 0) continue;
        if (!(names[nn] = kd__strdup(name + EMB_PREFIX_LEN))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        nn++;
    }
out:
    pthread_rwlock_unlock(&db->ix_lock);
    *out = names;
    *n = nn;
    return rc;
}

void kd_search_free(kd_search_hit *hits, size_t n) {
    if (!hits) return;
    for (size_t i = 0; i < n; i++) {
        kd__free(hits[i].ns);
        kd__free(hits[i].key);
    }
    kd__free(hits);
}

static int check_opts(const kd_search_opts *o) {
    int rc;
    char sys[KD_NS_MAX + 1];
    if (!o) return kd__err(KD_INVALID, "missing search options");
    if ((rc = check_vector(o->vector, o->dim, "the query")) != KD_OK) return rc;
    if (o->metric != KD_METRIC_COSINE && o->metric != KD_METRIC_DOT && o->metric != KD_METRIC_L2)
        return kd__err(KD_INVALID, "unknown metric %d", (int)o->metric);
    if (o->has_threshold && !isfinite(o->threshold)) return kd__err(KD_INVALID, "threshold must be a finite number");
    if (o->ns && (rc = emb_ns(o->ns, sys)) != KD_OK) return rc;
    if (o->model && (rc = check_model(o->model)) != KD_OK) return rc;
    return KD_OK;
}

int kd_search(kd_db *db, const kd_search_opts *o, kd_search_hit **hits, size_t *n) {
    search s;
    char **names = NULL;
    size_t nnames = 0;
    kd_search_hit *res = NULL;
    memset(&s, 0, sizeof s);
    *hits = NULL;
    *n = 0;
    int rc = check_opts(o);
    if (rc != KD_OK) goto out;
    s.db = db;
    s.o = o;
    s.at = o->at != KD_AT_NOW; /* 0 is the epoch, as for kd_get_at and queries */
    s.upto = kd__db_visible(db);
    s.qnorm = sqrt(dot(o->vector, o->vector, o->dim));
    s.h.k = o->top_k ? o->top_k : 10;
    if (s.upto == 0) goto out; /* nothing committed yet (a scan bound of 0 means "now") */
    if (o->model) {
        size_t have;
        if ((rc = model_dim(db, o->model, &have)) != KD_OK) goto out;
        if (have == 0) goto out; /* no embedding ever had this model */
        if (have != o->dim) {
            rc = kd__err(KD_INVALID, "dimension mismatch: the query has %zu components, model \"%s\" has %zu", o->dim,
                         o->model, have);
            goto out;
        }
        kd__json_write_string(&s.model_json, o->model, strlen(o->model));
    }
    if (!(s.vec = kd__malloc(o->dim * sizeof(float))) ||
        !(s.h.c = kd__malloc(KD_MIN(s.h.k, (size_t)1 << 20) * sizeof *s.h.c)) || s.model_json.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    s.h.k = KD_MIN(s.h.k, (size_t)1 << 20);
    if (!o->exact && !s.at && !(o->filter && o->filter->filter)) {
        /* The current state without a value filter: the HNSW index answers unless the
        ** candidates are few. Without a model, only when a single model exists (else
        ** exact search reports the mismatch, if any). */
        char *m = NULL;
        size_t mdim = o->dim;
        int used = 0;
        if (o->model) m = kd__strdup(o->model);
        else if ((rc = sole_model(db, s.upto, &m, &mdim)) != KD_OK) goto out;
        if (o->model && !m) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
        if (m && mdim == o->dim) rc = search_hnsw(&s, m, mdim, &used);
        kd__free(m);
        if (rc != KD_OK) goto out;
        if (used) goto done;
    }
    if (o->ns) {
        if (!(names = kd__calloc(1, sizeof *names)) || !(names[0] = kd__strdup(o->ns))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        nnames = 1;
    } else if ((rc = kd__emb_namespaces(db, &names, &nnames)) != KD_OK) {
        goto out;
    }
    for (size_t i = 0; i < nnames; i++)
        if ((rc = search_ns(&s, names[i])) != KD_OK) goto out;
done:
    if (s.h.n == 0) goto out;
    qsort(s.h.c, s.h.n, sizeof *s.h.c, cand_order);
    if (!(res = kd__calloc(s.h.n, sizeof *res))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < s.h.n; i++) {
        const cand *c = &s.h.c[i];
        kd_search_hit *h = &res[i];
        if (!(h->ns = kd__strdup(c->ns)) || !(h->key = kd__strndup(c->key, c->klen))) {
            kd_search_free(res, s.h.n);
            res = NULL;
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        h->score = o->metric == KD_METRIC_L2 ? -c->rank : c->rank;
        h->seq = c->seq;
        h->timestamp = c->ts;
        memcpy(h->version_id, c->id, 32);
    }
    *hits = res;
    *n = s.h.n;
out:
    if (s.held) kd__vidx_release(db);
    for (size_t i = 0; i < nnames; i++) kd__free(names[i]);
    kd__free(names);
    kd__free(s.vec);
    kd__free(s.h.c);
    kd__buf_free(&s.model_json);
    return rc;
}
