/*
** bench_query.c — the query and view figures of `make bench` (docs/benchmarks.md):
**
**   group "query":   query_filter_sort_100k, query_group_by_100k (KoruDelta's kd_query_run
**                    against SQLite's json_extract over the same 100,000 documents) and
**                    view_vs_query (an auto-refresh view against re-running its query);
**   group "viewput": put_with_5_views (durable puts into a namespace with 5 auto-refresh
**                    views against the same puts into one without views).
**
** The documents come from a fixed seed, so both sides and every run see the same data,
** and the bench computes every expected answer itself: each timed query's result is
** checked against it (outside the timed part), and a wrong answer fails the figure.
** Timed figures alternate the two sides' rounds and keep each side's median, as the
** rest of the bench does.
**
** Uses only the public API of the library, SQLite and POSIX.
*/
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "korudelta.h"
#include "bench.h"

#define QNS "people"           /* the namespace holding the documents */
#define QDOCS 100000u          /* documents (keys) */
#define QLOAD_BATCH 10000u     /* documents per kd_batch / per SQLite statement loop */
#define QDOC_MAX 160           /* longest document text + NUL */
#define QKEY_W 16              /* "user0000042" + NUL */
#define TOPN 10
#define NCITY 8
#define NVIEWS 5

#define TOP_FILTER "age > 30 and status = \"active\""
#define SQ_DOCS_SCHEMA \
    "CREATE TABLE IF NOT EXISTS docs(key TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID"
#define SQ_DOCS_INSERT "INSERT INTO docs(key, doc) VALUES(?1, ?2)"
#define SQ_TOP                                                                           \
    "SELECT key, doc FROM docs WHERE json_extract(doc,'$.age') > 30 AND"                 \
    " json_extract(doc,'$.status') = 'active' ORDER BY json_extract(doc,'$.score') DESC," \
    " json_extract(doc,'$.name') LIMIT 10"
#define SQ_GROUP                                                                         \
    "SELECT json_extract(doc,'$.city'), count(*), sum(json_extract(doc,'$.score')),"     \
    " avg(json_extract(doc,'$.age')) FROM docs GROUP BY 1"

/* ---- the documents ---------------------------------------------------------------- */

/* Status 0 and 1 are "active", so about half the documents are active. */
static const char *const STATUS[4] = {"active", "active", "inactive", "pending"};

typedef struct qdoc {
    uint8_t age, status, city, tag1, tag2;
    uint32_t score;            /* the document's score is score + 0.5 */
} qdoc;

/* Version `ver` of document k (0 = the loaded one). Fixed seed: the same for every run.
** Loaded scores are k * 7919 + 12345 mod 100,000 (7919 is prime to 100,000, so that is a
** permutation): every loaded score is unique and the sort order has no ties. Later
** versions (the puts of put_with_5_views) draw their score at random. */
static void qdoc_gen(uint32_t k, uint64_t ver, qdoc *d) {
    uint64_t s = 0x6b6f72756465ull ^ ((uint64_t)k << 20) ^ (ver << 44);
    uint64_t r = rnd(&s);
    d->age = (uint8_t)(18 + r % 70);
    d->status = (uint8_t)((r >> 8) % 4);
    d->city = (uint8_t)((r >> 16) % NCITY);
    d->tag1 = (uint8_t)((r >> 24) % 6);
    d->tag2 = (uint8_t)((r >> 32) % 6);
    d->score = ver == 0 ? (uint32_t)(((uint64_t)k * 7919 + 12345) % QDOCS)
                        : (uint32_t)((r >> 40) % QDOCS);
}

static void qkey(char *out, uint32_t k) { snprintf(out, QKEY_W, "user%07u", k); }

/* The document's text, already canonical (sorted keys, no whitespace):
** {"age":41,"city":"Osaka","name":"user0000123","score":12345.5,"status":"active",
**  "tags":["admin","beta"]}  (~110 bytes). */
static size_t qdoc_text(char *buf, const char *key, const qdoc *d) {
    char *p = buf;
    p = put_s(p, "{\"age\":");
    p = put_u(p, d->age);
    p = put_s(p, ",\"city\":\"");
    p = put_s(p, CITIES[d->city]);
    p = put_s(p, "\",\"name\":\"");
    p = put_s(p, key);
    p = put_s(p, "\",\"score\":");
    p = put_u(p, d->score);
    p = put_s(p, ".5,\"status\":\"");
    p = put_s(p, STATUS[d->status]);
    p = put_s(p, "\",\"tags\":[\"");
    p = put_s(p, TAGS[d->tag1]);
    p = put_s(p, "\",\"");
    p = put_s(p, TAGS[d->tag2]);
    p = put_s(p, "\"]}");
    *p = 0;
    return (size_t)(p - buf);
}

typedef struct dataset {
    char (*key)[QKEY_W];
    char (*text)[QDOC_MAX];
    uint32_t *len;
    qdoc *doc;
} dataset;

static void dataset_free(dataset *ds) {
    free(ds->key);
    free(ds->text);
    free(ds->len);
    free(ds->doc);
    memset(ds, 0, sizeof *ds);
}

static int dataset_make(dataset *ds) {
    ds->key = calloc(QDOCS, sizeof *ds->key);
    ds->text = calloc(QDOCS, sizeof *ds->text);
    ds->len = calloc(QDOCS, sizeof *ds->len);
    ds->doc = calloc(QDOCS, sizeof *ds->doc);
    if (!ds->key || !ds->text || !ds->len || !ds->doc) {
        dataset_free(ds);
        fail("out of memory");
        return -1;
    }
    for (uint32_t k = 0; k < QDOCS; k++) {
        qkey(ds->key[k], k);
        qdoc_gen(k, 0, &ds->doc[k]);
        ds->len[k] = (uint32_t)qdoc_text(ds->text[k], ds->key[k], &ds->doc[k]);
    }
    return 0;
}

/* ---- the expected answers --------------------------------------------------------- */

typedef struct reference {
    uint32_t top[TOPN];        /* keys of the top-10 query, in order */
    int ntop;
    uint64_t matches;          /* documents the filter matches */
    uint64_t count[NCITY];
    double sum_score[NCITY], avg_age[NCITY];
} reference;

static int top_match(const qdoc *d) { return d->age > 30 && d->status < 2; }

/* score descending, then name (= key, zero-padded) ascending */
static int top_before(const dataset *ds, uint32_t a, uint32_t b) {
    if (ds->doc[a].score != ds->doc[b].score) return ds->doc[a].score > ds->doc[b].score;
    return a < b;
}

static void reference_make(const dataset *ds, reference *ref) {
    double age_sum[NCITY] = {0};
    memset(ref, 0, sizeof *ref);
    for (uint32_t k = 0; k < QDOCS; k++) {
        const qdoc *d = &ds->doc[k];
        ref->count[d->city]++;
        ref->sum_score[d->city] += d->score + 0.5;   /* exact: halves below 2^53 */
        age_sum[d->city] += d->age;
        if (!top_match(d)) continue;
        ref->matches++;
        int i = ref->ntop < TOPN ? ref->ntop++ : TOPN;
        if (i == TOPN && !top_before(ds, k, ref->top[TOPN - 1])) continue;
        if (i == TOPN) i = TOPN - 1;
        while (i > 0 && top_before(ds, k, ref->top[i - 1])) {
            ref->top[i] = ref->top[i - 1];
            i--;
        }
        ref->top[i] = k;
    }
    for (int c = 0; c < NCITY; c++)
        ref->avg_age[c] = ref->count[c] ? age_sum[c] / (double)ref->count[c] : 0;
}

/* ---- loading ---------------------------------------------------------------------- */

/* Loads every document into a fresh database at dir with kd_batch (QLOAD_BATCH per commit,
** sync off), closes it, and reopens it with the default options (sync=full, 64 MiB cache)
** into *out. *seconds: the load and close. */
static int kd_load_docs(const char *dir, const dataset *ds, kd_db **out, double *seconds) {
    kd_options o;
    kd_db *db = NULL;
    *out = NULL;
    kd_options_init(&o);
    o.sync = KD_SYNC_OFF;
    double t0 = mono();
    if (kd_open(dir, &o, &db) != KD_OK) {
        fail("kd_open %s: %s", dir, kd_errmsg(NULL));
        return -1;
    }
    for (uint32_t k0 = 0; k0 < QDOCS; k0 += QLOAD_BATCH) {
        kd_batch *b = kd_batch_new();
        int rc = b ? KD_OK : KD_NOMEM;
        for (uint32_t k = k0; k < k0 + QLOAD_BATCH && k < QDOCS && rc == KD_OK; k++)
            rc = kd_batch_put(b, QNS, ds->key[k], ds->text[k], ds->len[k]);
        if (rc == KD_OK) rc = kd_batch_commit(db, b, NULL, NULL);
        kd_batch_free(b);
        if (rc != KD_OK) {
            fail("loading %s: %s", dir, kd_errmsg(db));
            kd_close(db);
            return -1;
        }
    }
    if (kd_close(db) != KD_OK) {
        fail("kd_close %s: %s", dir, kd_errmsg(NULL));
        return -1;
    }
    *seconds = mono() - t0;
    kd_options_init(&o);
    if (kd_open(dir, &o, out) != KD_OK) {
        fail("kd_open %s: %s", dir, kd_errmsg(NULL));
        *out = NULL;
        return -1;
    }
    return 0;
}

/* The same documents into a docs table of a fresh SQLite file, in one transaction; then
** closes it and reopens it (WAL, synchronous=FULL, as every SQLite baseline). */
static sqlite3 *sq_load_docs(const char *path, const dataset *ds, double *seconds) {
    sqlite3 *db = sq_open(path, g_cfg.sqlite_mmap);
    sqlite3_stmt *ins = NULL;
    int rc = -1;
    double t0 = mono();
    if (!db || sq_exec(db, SQ_DOCS_SCHEMA) || !(ins = sq_prepare(db, SQ_DOCS_INSERT)) ||
        sq_exec(db, "BEGIN"))
        goto out;
    for (uint32_t k = 0; k < QDOCS; k++) {
        sqlite3_bind_text(ins, 1, ds->key[k], -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, ds->text[k], (int)ds->len[k], SQLITE_STATIC);
        int s = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (s != SQLITE_DONE) {
            fail("sqlite insert: %s", sqlite3_errmsg(db));
            goto out;
        }
    }
    rc = sq_exec(db, "COMMIT");
out:
    sqlite3_finalize(ins);
    *seconds = mono() - t0;
    sqlite3_close(db);
    return rc == 0 ? sq_open(path, g_cfg.sqlite_mmap) : NULL;
}

/* ---- rounds ----------------------------------------------------------------------- */

/* Runs the operation once on one side, adding the seconds that count to *timed
** (checking the answer is not timed). 0, or -1 on a failure (already reported). */
typedef int (*once_fn)(void *ctx, int side, double *timed);

/* One round: the operation again and again for g_cfg.seconds; the mean timed seconds. */
static double time_round(once_fn fn, void *ctx, int side) {
    double timed = 0, t0 = mono();
    uint64_t n = 0;
    do {
        if (fn(ctx, side, &timed) != 0) return NAN;
        n++;
    } while (mono() - t0 < g_cfg.seconds);
    return timed / (double)n;
}

/* Alternating rounds, side 0 then side 1; medians (in seconds) into *a and *b. Printed in
** `unit` (scale = units per second). */
static void alt_rounds(const char *name, once_fn fn, void *ctx, const char *a_name,
                       const char *b_name, double scale, const char *unit, double *a,
                       double *b) {
    double x[MAX_ROUNDS], y[MAX_ROUNDS];
    for (int r = 0; r < g_cfg.rounds; r++) {
        x[r] = time_round(fn, ctx, 0);
        y[r] = time_round(fn, ctx, 1);
        printf("  %-24s round %d: %s %12.3f %s   %s %12.3f %s\n", name, r + 1, a_name,
               x[r] * scale, unit, b_name, y[r] * scale, unit);
        fflush(stdout);
    }
    *a = median(x, g_cfg.rounds);
    *b = median(y, g_cfg.rounds);
}

/* ---- the query figures ------------------------------------------------------------ */

typedef struct qctx {
    kd_db *kd;
    sqlite3 *sq;
    kd_query *top_q, *group_q;
    sqlite3_stmt *top_st, *group_st;
    const char *view;                 /* view_vs_query: the view's name */
    const dataset *ds;
    const reference *ref;
    char sq_key[TOPN][QKEY_W];        /* SQLite rows are copied out, as a caller must */
    char sq_doc[TOPN][QDOC_MAX];
    int sq_n;
    uint64_t runs[2];
} qctx;

/* Checks a top-10 answer: keys[0..n) in order (and total, unless UINT64_MAX). */
static int check_top(const qctx *c, const char *who, const char *const *keys, size_t n,
                     uint64_t total) {
    const reference *ref = c->ref;
    int bad = n != (size_t)ref->ntop || (total != UINT64_MAX && total != ref->matches);
    for (size_t i = 0; !bad && i < n; i++)
        bad = strcmp(keys[i], c->ds->key[ref->top[i]]) != 0;
    if (!bad) return 0;
    fprintf(stderr, "bench: %s returned %zu keys (total %" PRIu64 "):", who, n, total);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %s", keys[i]);
    fprintf(stderr, "\nbench: expected %d keys (total %" PRIu64 "):", ref->ntop, ref->matches);
    for (int i = 0; i < ref->ntop; i++) fprintf(stderr, " %s", c->ds->key[ref->top[i]]);
    fputc('\n', stderr);
    fail("%s: wrong top-%d answer", who, TOPN);
    return -1;
}

static int check_kd_top(const qctx *c, const char *who, const kd_result *r) {
    const char *keys[TOPN + 1] = {0};
    size_t n = r->n < TOPN + 1 ? r->n : TOPN + 1;
    for (size_t i = 0; i < n; i++) keys[i] = r->records[i].key;
    if (check_top(c, who, keys, n, r->total) != 0) return -1;
    for (size_t i = 0; i < n; i++) {   /* whole documents come back */
        uint32_t k = c->ref->top[i];
        if (r->records[i].value_len != c->ds->len[k] ||
            memcmp(r->records[i].value, c->ds->text[k], c->ds->len[k]) != 0) {
            fail("%s: record %s has value %.*s", who, keys[i], (int)r->records[i].value_len,
                 r->records[i].value);
            return -1;
        }
    }
    return 0;
}

/* KoruDelta's top-10: side 0 = the query (or, with c->view, the view), side 1 = the query. */
static int kd_top_once(qctx *c, int use_view, double *timed) {
    kd_result *r = NULL;
    double t0 = mono();
    int rc = use_view ? kd_view_query(c->kd, c->view, NULL, &r)
                      : kd_query_run(c->kd, QNS, c->top_q, &r);
    double t1 = mono();
    if (rc != KD_OK) {
        fail("%s: %s", use_view ? "kd_view_query" : "kd_query_run", kd_errmsg(c->kd));
        return -1;
    }
    int bad = check_kd_top(c, use_view ? "kd_view_query" : "kd_query_run", r);
    double t2 = mono();
    kd_result_free(r);
    *timed += (t1 - t0) + (mono() - t2);
    return bad;
}

static int sq_top_once(qctx *c, double *timed) {
    sqlite3_stmt *st = c->top_st;
    int rc, n = 0;
    double t0 = mono();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n < TOPN) {
            const unsigned char *k = sqlite3_column_text(st, 0);
            const unsigned char *d = sqlite3_column_text(st, 1);
            int kl = sqlite3_column_bytes(st, 0), dl = sqlite3_column_bytes(st, 1);
            if (!k || !d || kl >= QKEY_W || dl >= QDOC_MAX) break;
            memcpy(c->sq_key[n], k, (size_t)kl + 1);
            memcpy(c->sq_doc[n], d, (size_t)dl + 1);
        }
        n++;
    }
    sqlite3_reset(st);
    *timed += mono() - t0;
    if (rc != SQLITE_DONE) {
        fail("sqlite top query: %s", sqlite3_errmsg(c->sq));
        return -1;
    }
    const char *keys[TOPN] = {0};
    if (n > TOPN) {
        fail("sqlite top query: %d rows for LIMIT %d", n, TOPN);
        return -1;
    }
    for (int i = 0; i < n; i++) keys[i] = c->sq_key[i];
    if (check_top(c, "sqlite top query", keys, (size_t)n, UINT64_MAX) != 0) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(c->sq_doc[i], c->ds->text[c->ref->top[i]]) != 0) {
            fail("sqlite top query: row %s has doc %s", c->sq_key[i], c->sq_doc[i]);
            return -1;
        }
    return 0;
}

static int top_once(void *ctx, int side, double *timed) {
    qctx *c = ctx;
    c->runs[side]++;
    return side ? sq_top_once(c, timed) : kd_top_once(c, 0, timed);
}

/* view_vs_query: side 0 = the view, side 1 = the same query run afresh. */
static int view_once(void *ctx, int side, double *timed) {
    qctx *c = ctx;
    c->runs[side]++;
    return kd_top_once(c, side == 0, timed);
}

typedef struct group_row {
    char city[32];
    uint64_t count;
    double sum_score, avg_age;
} group_row;

static int city_index(const char *s) {
    for (int i = 0; i < NCITY; i++)
        if (strcmp(CITIES[i], s) == 0) return i;
    return -1;
}

static int check_groups(const qctx *c, const char *who, const group_row *g, int n) {
    const reference *ref = c->ref;
    int seen[NCITY] = {0}, expect = 0;
    for (int i = 0; i < NCITY; i++) expect += ref->count[i] > 0;
    if (n != expect) {
        fail("%s: %d groups, expected %d", who, n, expect);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int ci = city_index(g[i].city);
        if (ci < 0 || seen[ci]++) {
            fail("%s: unexpected or repeated group \"%s\"", who, g[i].city);
            return -1;
        }
        if (g[i].count != ref->count[ci] ||
            fabs(g[i].sum_score - ref->sum_score[ci]) > 1e-9 * ref->sum_score[ci] ||
            fabs(g[i].avg_age - ref->avg_age[ci]) > 1e-9 * ref->avg_age[ci]) {
            fail("%s: group %s: count %" PRIu64 " sum(score) %.17g avg(age) %.17g; expected"
                 " %" PRIu64 " %.17g %.17g", who, g[i].city, g[i].count, g[i].sum_score,
                 g[i].avg_age, ref->count[ci], ref->sum_score[ci], ref->avg_age[ci]);
            return -1;
        }
    }
    return 0;
}

/* Reads {"groups":[{"avg(age)":..,"count":..,"key":"Osaka","sum(score)":..},...]} (members
** in any order; values are numbers and the key a string without escapes). Groups read, or
** -1 when the text is not of that shape. */
static int parse_groups(const char *json, size_t len, group_row *g, int max) {
    const char *end = json + len, *p = json ? memmem(json, len, "\"groups\":[", 10) : NULL;
    int n = 0;
    if (!p) return -1;
    for (p += 10; p < end && *p == '{'; n++) {
        const char *q = memchr(p, '}', (size_t)(end - p));
        char obj[512], *m;
        if (!q || n == max || (size_t)(q - p) >= sizeof obj) return -1;
        memcpy(obj, p, (size_t)(q - p));
        obj[q - p] = 0;
        memset(&g[n], 0, sizeof g[n]);
        if (!(m = strstr(obj, "\"key\":\""))) return -1;
        m += 7;
        size_t kl = strcspn(m, "\"");
        if (kl >= sizeof g[n].city) return -1;
        memcpy(g[n].city, m, kl);
        if (!(m = strstr(obj, "\"count\":"))) return -1;
        g[n].count = strtoull(m + 8, NULL, 10);
        if (!(m = strstr(obj, "\"sum(score)\":"))) return -1;
        g[n].sum_score = strtod(m + 13, NULL);
        if (!(m = strstr(obj, "\"avg(age)\":"))) return -1;
        g[n].avg_age = strtod(m + 11, NULL);
        p = q + 1;
        if (p < end && *p == ',') p++;
    }
    return n;
}

static int group_once(void *ctx, int side, double *timed) {
    qctx *c = ctx;
    group_row g[NCITY + 1];
    int n = 0;
    c->runs[side]++;
    if (side == 0) {
        kd_result *r = NULL;
        double t0 = mono();
        int rc = kd_query_run(c->kd, QNS, c->group_q, &r);
        double t1 = mono();
        if (rc != KD_OK) {
            fail("kd_query_run (group by): %s", kd_errmsg(c->kd));
            return -1;
        }
        n = parse_groups(r->aggregation, r->aggregation_len, g, NCITY + 1);
        if (n < 0) fail("kd_query_run (group by): unexpected aggregation %.*s",
                        r->aggregation ? (int)r->aggregation_len : 6,
                        r->aggregation ? r->aggregation : "(null)");
        if (n >= 0 && r->n != 0) {
            fail("kd_query_run (group by): %zu records for a limit of 0", r->n);
            n = -1;
        }
        double t2 = mono();
        kd_result_free(r);
        *timed += (t1 - t0) + (mono() - t2);
        if (n < 0) return -1;
        return check_groups(c, "kd_query_run (group by)", g, n);
    }
    sqlite3_stmt *st = c->group_st;
    int rc;
    double t0 = mono();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n <= NCITY) {
            const unsigned char *city = sqlite3_column_text(st, 0);
            snprintf(g[n].city, sizeof g[n].city, "%s", city ? (const char *)city : "");
            g[n].count = (uint64_t)sqlite3_column_int64(st, 1);
            g[n].sum_score = sqlite3_column_double(st, 2);
            g[n].avg_age = sqlite3_column_double(st, 3);
        }
        n++;
    }
    sqlite3_reset(st);
    *timed += mono() - t0;
    if (rc != SQLITE_DONE) {
        fail("sqlite group by: %s", sqlite3_errmsg(c->sq));
        return -1;
    }
    return check_groups(c, "sqlite group by", g, n > NCITY + 1 ? NCITY + 1 : n);
}

static int build_top_query(kd_query **out) {
    kd_query *q = NULL;
    int rc = kd_query_new(&q);
    if (rc == KD_OK) rc = kd_query_set_filter(q, TOP_FILTER);
    if (rc == KD_OK) rc = kd_query_add_sort(q, "score", 1);
    if (rc == KD_OK) rc = kd_query_add_sort(q, "name", 0);
    if (rc == KD_OK) kd_query_set_page(q, 0, TOPN);
    if (rc != KD_OK) {
        fail("building the top-10 query: %s", kd_errmsg(NULL));
        kd_query_free(q);
        q = NULL;
    }
    *out = q;
    return q ? 0 : -1;
}

static int build_group_query(kd_query **out) {
    kd_query *q = NULL;
    int rc = kd_query_new(&q);
    if (rc == KD_OK) rc = kd_query_set_group_by(q, "city");
    if (rc == KD_OK) rc = kd_query_add_aggregate(q, "count", NULL);
    if (rc == KD_OK) rc = kd_query_add_aggregate(q, "sum", "score");
    if (rc == KD_OK) rc = kd_query_add_aggregate(q, "avg", "age");
    if (rc == KD_OK) kd_query_set_page(q, 0, 0);    /* groups only, as SQL returns */
    if (rc != KD_OK) {
        fail("building the group-by query: %s", kd_errmsg(NULL));
        kd_query_free(q);
        q = NULL;
    }
    *out = q;
    return q ? 0 : -1;
}

void bench_query(void) {
    static dataset ds;
    static reference ref;
    static qctx c;
    double top_kd = NAN, top_sq = NAN, grp_kd = NAN, grp_sq = NAN, view = NAN, query = NAN;
    double kd_load = 0, sq_load = 0, t;
    char *kd_dir = path_join(g_cfg.dir, "query.kd");
    char *sq_path = path_join(g_cfg.dir, "query.sqlite");
    memset(&c, 0, sizeof c);
    if (!kd_dir || !sq_path) {
        fail("out of memory");
        goto out;
    }
    if (dataset_make(&ds) != 0) goto out;
    reference_make(&ds, &ref);
    c.ds = &ds;
    c.ref = &ref;
    printf("query: %u documents in %s, e.g. %s\n", QDOCS, QNS, ds.text[123]);
    printf("  filter %s matches %" PRIu64 " documents\n", TOP_FILTER, ref.matches);
    if (kd_load_docs(kd_dir, &ds, &c.kd, &kd_load) != 0) goto out;
    if (!(c.sq = sq_load_docs(sq_path, &ds, &sq_load))) goto out;
    printf("  loaded: kdelta %.3f s (kd_batch of %u, sync off, then reopened with default"
           " options); sqlite %.3f s (one transaction)\n", kd_load, QLOAD_BATCH, sq_load);
    if (build_top_query(&c.top_q) || build_group_query(&c.group_q) ||
        !(c.top_st = sq_prepare(c.sq, SQ_TOP)) || !(c.group_st = sq_prepare(c.sq, SQ_GROUP)))
        goto out;

    /* First runs: check both sides and warm their caches (timed for information). */
    t = 0;
    if (top_once(&c, 0, &t) != 0) goto out;
    printf("  first runs: kdelta top-10 %.1f ms", t * 1e3);
    t = 0;
    if (top_once(&c, 1, &t) != 0) goto out;
    printf(", sqlite top-10 %.1f ms", t * 1e3);
    t = 0;
    if (group_once(&c, 0, &t) != 0) goto out;
    printf(", kdelta group-by %.1f ms", t * 1e3);
    t = 0;
    if (group_once(&c, 1, &t) != 0) goto out;
    printf(", sqlite group-by %.1f ms\n", t * 1e3);
    fflush(stdout);

    alt_rounds("query_filter_sort_100k", top_once, &c, "kdelta", "sqlite", 1e3, "ms", &top_kd,
               &top_sq);
    alt_rounds("query_group_by_100k", group_once, &c, "kdelta", "sqlite", 1e3, "ms", &grp_kd,
               &grp_sq);

    /* view_vs_query: an auto-refresh view over the same top-10 query. */
    c.view = "top_active";
    double t0 = mono();
    if (kd_view_create(c.kd, c.view, QNS, c.top_q, "bench: top 10 active over 30", 1) !=
        KD_OK) {
        fail("kd_view_create: %s", kd_errmsg(c.kd));
        goto out;
    }
    printf("  kd_view_create (auto-refresh, %u documents): %.1f ms\n", QDOCS,
           (mono() - t0) * 1e3);
    t = 0;
    if (view_once(&c, 0, &t) != 0) goto out;
    printf("  first kd_view_query: %.1f us\n", t * 1e6);
    alt_rounds("view_vs_query", view_once, &c, "view", "query", 1e6, "us", &view, &query);

out:
    kd_query_free(c.top_q);
    kd_query_free(c.group_q);
    sqlite3_finalize(c.top_st);
    sqlite3_finalize(c.group_st);
    sqlite3_close(c.sq);
    if (c.kd && kd_close(c.kd) != KD_OK) fail("kd_close: %s", kd_errmsg(NULL));
    dataset_free(&ds);
    free(kd_dir);
    free(sq_path);
    add_figure((figure){.name = "query_filter_sort_100k", .unit = "ms", .kd = top_kd * 1e3,
                        .base = top_sq * 1e3,
                        .base_name = "sqlite: json_extract filter, ORDER BY score DESC, name"
                                     " LIMIT 10 over a docs(key, doc TEXT) table",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 2, .goal_text = ">= 2x"});
    add_figure((figure){.name = "query_group_by_100k", .unit = "ms", .kd = grp_kd * 1e3,
                        .base = grp_sq * 1e3,
                        .base_name = "sqlite: json_extract GROUP BY city: count, sum(score),"
                                     " avg(age) over a docs(key, doc TEXT) table",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 2, .goal_text = ">= 2x"});
    add_figure((figure){.name = "view_vs_query", .unit = "us", .kd = view * 1e6,
                        .base = query * 1e6,
                        .base_name = "kdelta: kd_query_run of the view's query",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 20, .goal_text = ">= 20x"});
}

/* ---- put_with_5_views --------------------------------------------------------------- */

typedef struct view_def {
    const char *name, *filter, *sort1, *sort2;
    int desc1;
    size_t limit;
} view_def;

/* Five auto-refresh views with different filters, sorts and pages. */
static const view_def VIEWS[NVIEWS] = {
    {"top_active", TOP_FILTER, "score", "name", 1, TOPN},
    {"osaka_by_age", "city = \"Osaka\"", "age", NULL, 0, KD_QUERY_ALL},
    {"pending_by_name", "status = \"pending\"", "name", NULL, 0, 100},
    {"pro_high_score", "score >= 50000 and tags contains \"pro\"", "score", NULL, 0, 50},
    {"young_or_lima", "age < 25 or city = \"Lima\"", NULL, NULL, 0, KD_QUERY_ALL},
};

static kd_query *view_query_of(const view_def *v) {
    kd_query *q = NULL;
    int rc = kd_query_new(&q);
    if (rc == KD_OK) rc = kd_query_set_filter(q, v->filter);
    if (rc == KD_OK && v->sort1) rc = kd_query_add_sort(q, v->sort1, v->desc1);
    if (rc == KD_OK && v->sort2) rc = kd_query_add_sort(q, v->sort2, 0);
    if (rc == KD_OK) kd_query_set_page(q, 0, v->limit);
    if (rc != KD_OK) {
        fail("building view %s: %s", v->name, kd_errmsg(NULL));
        kd_query_free(q);
        return NULL;
    }
    return q;
}

/* Does view v's answer equal a fresh run of its query? (keys, order, values, total) */
static int check_view(kd_db *db, const view_def *v, uint64_t *records) {
    kd_query *q = view_query_of(v);
    kd_result *a = NULL, *b = NULL;
    int ok = 0;
    if (!q) return -1;
    if (kd_view_query(db, v->name, NULL, &a) != KD_OK) {
        fail("kd_view_query %s: %s", v->name, kd_errmsg(db));
    } else if (kd_query_run(db, QNS, q, &b) != KD_OK) {
        fail("kd_query_run (view %s): %s", v->name, kd_errmsg(db));
    } else {
        ok = a->total == b->total && a->n == b->n;
        for (size_t i = 0; ok && i < a->n; i++)
            ok = strcmp(a->records[i].key, b->records[i].key) == 0 &&
                 a->records[i].value_len == b->records[i].value_len &&
                 memcmp(a->records[i].value, b->records[i].value, a->records[i].value_len) == 0;
        if (!ok)
            fail("view %s: %zu records (total %" PRIu64 ") differ from its query's %zu (total"
                 " %" PRIu64 ")", v->name, a->n, a->total, b->n, b->total);
        if (records) *records = a->total;
    }
    kd_result_free(a);
    kd_result_free(b);
    kd_query_free(q);
    return ok ? 0 : -1;
}

typedef struct vput_ctx {
    kd_db *db[2];      /* 0: the namespace has 5 views, 1: no views */
    uint64_t n[2];     /* puts acknowledged */
    uint64_t seed[2];  /* the same key sequence on both sides */
} vput_ctx;

/* Durable puts on one side for g_cfg.seconds: puts/s. Each put replaces a random key's
** document with a new version (new age, status, city, tags and score). */
static double vput_round(vput_ctx *c, int side) {
    char key[QKEY_W], val[QDOC_MAX];
    uint64_t ops = 0;
    double t0 = mono(), t;
    do {
        uint32_t k = (uint32_t)(rnd(&c->seed[side]) % QDOCS);
        qdoc d;
        qkey(key, k);
        qdoc_gen(k, c->n[side] + 1, &d);
        size_t len = qdoc_text(val, key, &d);
        if (kd_put(c->db[side], QNS, key, val, len, NULL, NULL) != KD_OK) {
            fail("kd_put (%s): %s", side ? "no views" : "5 views", kd_errmsg(c->db[side]));
            return NAN;
        }
        c->n[side]++;
        ops++;
    } while ((t = mono() - t0) < g_cfg.seconds);
    return (double)ops / t;
}

void bench_view_put(void) {
    static dataset ds;
    vput_ctx c;
    kd_stats st0[2], st1[2];
    double with = NAN, without = NAN, load[2] = {0, 0};
    const char *names[2] = {"viewput_views.kd", "viewput_plain.kd"};
    int ok = 0;
    memset(&c, 0, sizeof c);
    c.seed[0] = c.seed[1] = 42;
    if (dataset_make(&ds) != 0) goto out;
    printf("put_with_5_views: two fresh databases, each loaded with the %u documents of"
           " the query figures\n", QDOCS);
    for (int s = 0; s < 2; s++) {
        char *dir = path_join(g_cfg.dir, names[s]);
        int rc = dir ? kd_load_docs(dir, &ds, &c.db[s], &load[s]) : -1;
        if (!dir) fail("out of memory");
        free(dir);
        if (rc != 0) goto out;
    }
    for (int i = 0; i < NVIEWS; i++) {
        const view_def *v = &VIEWS[i];
        kd_query *q = view_query_of(v);
        uint64_t records = 0;
        if (!q) goto out;
        double t0 = mono();
        int rc = kd_view_create(c.db[0], v->name, QNS, q, NULL, 1);
        double t1 = mono();
        kd_query_free(q);
        if (rc != KD_OK) {
            fail("kd_view_create %s: %s", v->name, kd_errmsg(c.db[0]));
            goto out;
        }
        if (check_view(c.db[0], v, &records) != 0) goto out;
        printf("  view %-16s %-45s matches %6" PRIu64 " (created in %.1f ms)\n", v->name,
               v->filter, records, (t1 - t0) * 1e3);
    }
    fflush(stdout);
    for (int s = 0; s < 2; s++)
        if (kd_stats_get(c.db[s], &st0[s]) != KD_OK) {
            fail("kd_stats_get: %s", kd_errmsg(c.db[s]));
            goto out;
        }

    double x[MAX_ROUNDS], y[MAX_ROUNDS];
    for (int r = 0; r < g_cfg.rounds; r++) {
        x[r] = vput_round(&c, 0);
        y[r] = vput_round(&c, 1);
        printf("  %-24s round %d: 5 views %9.1f   no views %9.1f ops/s\n", "put_with_5_views",
               r + 1, x[r], y[r]);
        fflush(stdout);
    }
    with = median(x, g_cfg.rounds);
    without = median(y, g_cfg.rounds);

    /* Every put is there, each side paid one fsync a put, and the views still agree with
    ** their queries. */
    ok = 1;
    for (int s = 0; s < 2; s++) {
        if (kd_stats_get(c.db[s], &st1[s]) != KD_OK) {
            fail("kd_stats_get: %s", kd_errmsg(c.db[s]));
            ok = 0;
            continue;
        }
        uint64_t v = st1[s].versions - st0[s].versions, f = st1[s].fsyncs - st0[s].fsyncs;
        if (v != c.n[s]) {
            fail("put_with_5_views (%s): %" PRIu64 " new versions, %" PRIu64 " puts"
                 " acknowledged", s ? "no views" : "5 views", v, c.n[s]);
            ok = 0;
        }
        printf("  %-24s %s: %" PRIu64 " puts, %" PRIu64 " fsyncs\n", "put_with_5_views",
               s ? "no views" : "5 views ", c.n[s], f);
    }
    for (int i = 0; i < NVIEWS; i++)
        if (check_view(c.db[0], &VIEWS[i], NULL) != 0) ok = 0;
    if (ok) printf("  all %d views agree with their queries after the puts\n", NVIEWS);
out:
    for (int s = 0; s < 2; s++)
        if (c.db[s] && kd_close(c.db[s]) != KD_OK) fail("kd_close: %s", kd_errmsg(NULL));
    dataset_free(&ds);
    if (!ok) with = without = NAN;
    add_figure((figure){.name = "put_with_5_views", .unit = "ops/s", .kd = with,
                        .base = without, .higher_better = 1,
                        .base_name = "kdelta: the same durable puts, namespace without views",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 0.83,
                        .goal_text = ">= 0.83x"});
    fflush(stdout);
}
