/*
** test_oom.c — out-of-memory sweeps through the public API: for each call, make the 1st,
** 2nd, 3rd ... allocation fail until the call succeeds. Every failure must be a clean
** KD_NOMEM (never a crash, never another code that hides it), a failed write must leave
** nothing behind, and the database must pass kd_check afterwards. Leaks are caught when
** the suite runs under `make asan` and `make valgrind`.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "korudelta.h"
#include "base/base.h"
#include "t.h"

static char dir[256];
static uint64_t swept, failures;

#define SWEEP_MAX 20000 /* no public call here makes more allocations than this */

/* Runs call(db, ctx) with the nth allocation failing, n = 1, 2, ... until it succeeds.
** Returns the number of allocation failures it survived. */
typedef int (*call_fn)(kd_db *db, void *ctx);
static uint64_t sweep(const char *what, kd_db *db, call_fn call, void *ctx) {
    uint64_t n;
    for (n = 1; n <= SWEEP_MAX; n++) {
        kd__alloc_fail_at(n);
        int rc = call(db, ctx);
        kd__alloc_fail_at(0);
        if (rc == KD_OK) break;
        failures++;
        if (rc != KD_NOMEM) {
            fprintf(stderr, "    %s: allocation %llu failed, the call returned %d (%s), not KD_NOMEM\n", what,
                    (unsigned long long)n, rc, kd_errmsg(db));
            CHECK(rc == KD_NOMEM);
            return n;
        }
    }
    CHECK(n <= SWEEP_MAX);
    swept++;
    return n - 1;
}

/* ---- the calls ------------------------------------------------------------------------ */

static int c_put(kd_db *db, void *ctx) {
    (void)ctx;
    static const char v[] = "{\"age\":50,\"tags\":[\"a\",\"b\"]}";
    return kd_put(db, "users", "oom", v, sizeof v - 1, NULL, NULL);
}
static int c_get(kd_db *db, void *ctx) {
    (void)ctx;
    kd_entry e;
    memset(&e, 0, sizeof e);
    int rc = kd_get(db, "users", "u1", &e);
    kd_entry_clear(&e);
    return rc;
}
static int c_history(kd_db *db, void *ctx) {
    (void)ctx;
    kd_entry *e = NULL;
    size_t n = 0, total = 0;
    int rc = kd_history(db, "users", "u1", 0, 0, 1, &e, &n, &total);
    kd_entries_free(e, n);
    return rc;
}
static int c_diff(kd_db *db, void *ctx) {
    (void)ctx;
    char *patch = NULL;
    int rc = kd_diff(db, "users", "u1", NULL, NULL, NULL, NULL, &patch);
    kd_free(patch);
    return rc;
}
static int c_batch(kd_db *db, void *ctx) {
    (void)ctx;
    kd_batch *b = kd_batch_new();
    if (!b) return KD_NOMEM;
    int rc = kd_batch_put(b, "users", "b1", "{\"age\":1}", 9);
    if (rc == KD_OK) rc = kd_batch_put(b, "orders", "b2", "[1,2,3]", 7);
    if (rc == KD_OK) rc = kd_batch_delete(b, "users", "u3");
    if (rc == KD_OK) rc = kd_batch_commit(db, b, NULL, NULL);
    kd_batch_free(b);
    return rc;
}
static int c_query(kd_db *db, void *ctx) {
    (void)ctx;
    kd_query *q = NULL;
    kd_result *r = NULL;
    int rc = kd_query_new(&q);
    if (rc == KD_OK) rc = kd_query_set_filter(q, "age > 20 and name != \"x\"");
    if (rc == KD_OK) rc = kd_query_add_sort(q, "age", 1);
    if (rc == KD_OK) rc = kd_query_run(db, "users", q, &r);
    kd_result_free(r);
    r = NULL;
    kd_query_free(q);
    q = NULL;
    if (rc == KD_OK) rc = kd_query_new(&q);
    if (rc == KD_OK) rc = kd_query_set_group_by(q, "city");
    if (rc == KD_OK) rc = kd_query_add_aggregate(q, "avg", "age");
    if (rc == KD_OK) rc = kd_query_run(db, "users", q, &r);
    kd_result_free(r);
    kd_query_free(q);
    return rc;
}
static int c_embed(kd_db *db, void *ctx) {
    (void)ctx;
    float v[4] = {0.5f, 0.25f, -1, 2};
    return kd_embed(db, "docs", "oom", v, 4, NULL, "{\"lang\":\"en\"}", NULL);
}
static int c_search(kd_db *db, void *ctx) {
    int exact = *(int *)ctx;
    float q[4] = {1, 0, 0, 1};
    kd_search_opts o;
    kd_search_opts_init(&o);
    o.vector = q;
    o.dim = 4;
    o.exact = exact;
    kd_search_hit *h = NULL;
    size_t n = 0;
    int rc = kd_search(db, &o, &h, &n);
    kd_search_free(h, n);
    return rc;
}
static int c_embedding_get(kd_db *db, void *ctx) {
    (void)ctx;
    kd_embedding *e = NULL;
    int rc = kd_embedding_get(db, "docs", "d1", KD_AT_NOW, &e);
    kd_embedding_free(e);
    return rc;
}
static int c_list_ns(kd_db *db, void *ctx) {
    (void)ctx;
    kd_ns_info *ns = NULL;
    size_t nn = 0;
    int rc = kd_list_namespaces(db, 1, &ns, &nn);
    kd_ns_list_free(ns, nn);
    return rc;
}
static int c_list_keys(kd_db *db, void *ctx) {
    (void)ctx;
    char **keys = NULL;
    size_t nk = 0;
    int rc = kd_list_keys(db, "users", NULL, 0, &keys, &nk);
    kd_keys_free(keys, nk);
    return rc;
}
static int c_feed(kd_db *db, void *ctx) {
    (void)ctx;
    kd_feed *f = NULL;
    kd_entry e;
    memset(&e, 0, sizeof e);
    int rc = kd_feed_open(db, 0, &f);
    while (rc == KD_OK) {
        kd_entry_clear(&e);
        rc = kd_feed_next(f, &e);
    }
    kd_entry_clear(&e);
    kd_feed_close(f);
    return rc == KD_DONE ? KD_OK : rc;
}
static int c_check(kd_db *db, void *ctx) {
    (void)ctx;
    kd_check_report r;
    int rc = kd_check(db, 1, &r);
    return rc == KD_OK && !r.ok ? KD_CORRUPT : rc;
}
static int c_wire(kd_db *db, void *ctx) {
    (void)ctx;
    kd_entry e, back;
    char *j = NULL;
    size_t n = 0;
    memset(&e, 0, sizeof e);
    memset(&back, 0, sizeof back);
    int rc = kd_get(db, "users", "u1", &e);
    if (rc == KD_OK) rc = kd_entry_to_json(&e, KD_WIRE_VALUE, &j, &n);
    if (rc == KD_OK) rc = kd_entry_from_json(j, n, &back);
    kd_free(j);
    kd_entry_clear(&e);
    kd_entry_clear(&back);
    return rc;
}

/* Seeds a database: users, orders, embeddings enough for the HNSW path. */
static void seed(kd_db *db) {
    char key[32], val[96];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "u%d", i);
        snprintf(val, sizeof val, "{\"age\":%d,\"name\":\"n%d\",\"city\":\"c%d\"}", 18 + i, i, i % 4);
        if (kd_put(db, "users", key, val, strlen(val), NULL, NULL) != KD_OK) abort();
    }
    static const char u1[] = "{\"age\":99,\"city\":\"c9\"}";
    if (kd_put(db, "users", "u1", u1, sizeof u1 - 1, NULL, NULL) != KD_OK) abort();
    for (int i = 0; i < 2100; i++) {
        float v[4] = {(float)(i % 17), (float)(i % 5), (float)(i % 3), 1};
        snprintf(key, sizeof key, "d%d", i);
        if (kd_embed(db, "docs", key, v, 4, NULL, NULL, NULL) != KD_OK) abort();
    }
}

static size_t versions_of(kd_db *db, const char *ns, const char *key) {
    kd_entry *e = NULL;
    size_t n = 0, total = 0;
    if (kd_history(db, ns, key, 0, 0, 0, &e, &n, &total) != KD_OK) return 0;
    kd_entries_free(e, n);
    return total;
}

TEST(sweep_public_calls) {
    t_fresh_dir(dir, sizeof dir, "oom");
    kd_db *db = t_open(dir, KD_SYNC_FULL);
    seed(db);
    int exact = 1, hnsw = 0;
    struct {
        const char *name;
        call_fn fn;
        void *ctx;
    } calls[] = {
        {"kd_put", c_put, NULL},
        {"kd_get", c_get, NULL},
        {"kd_history", c_history, NULL},
        {"kd_diff", c_diff, NULL},
        {"kd_batch_commit", c_batch, NULL},
        {"kd_query_run", c_query, NULL},
        {"kd_embed", c_embed, NULL},
        {"kd_search (exact)", c_search, &exact},
        {"kd_search (index)", c_search, &hnsw},
        {"kd_embedding_get", c_embedding_get, NULL},
        {"kd_list_namespaces", c_list_ns, NULL},
        {"kd_list_keys", c_list_keys, NULL},
        {"kd_feed", c_feed, NULL},
        {"kd_check", c_check, NULL},
        {"wire form", c_wire, NULL},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        uint64_t n = sweep(calls[i].name, db, calls[i].fn, calls[i].ctx);
        printf("    %-22s %llu allocation failures survived\n", calls[i].name, (unsigned long long)n);
    }
    /* Failed writes left nothing behind: each write landed exactly once. */
    CHECK_EQ_INT(versions_of(db, "users", "oom"), 1);
    CHECK_EQ_INT(versions_of(db, "users", "b1"), 1);
    CHECK_EQ_INT(versions_of(db, "orders", "b2"), 1);
    CHECK_EQ_INT(versions_of(db, "_emb.docs", "oom"), 1);
    CHECK_EQ_INT(c_check(db, NULL), KD_OK);
    CHECK_EQ_INT(kd_close(db), KD_OK);

    /* Opening (log replay or checkpoint load), then the first index search (index file
    ** load and checks), under the same sweep. */
    uint64_t n;
    for (n = 1; n <= SWEEP_MAX; n++) {
        kd_db *d = NULL;
        kd__alloc_fail_at(n);
        int rc = kd_open(dir, NULL, &d);
        kd__alloc_fail_at(0);
        if (rc == KD_OK) {
            kd_close(d);
            break;
        }
        failures++;
        CHECK_EQ_INT(rc, KD_NOMEM);
        if (rc != KD_NOMEM) break;
    }
    printf("    %-22s %llu allocation failures survived\n", "kd_open", (unsigned long long)(n - 1));
    db = t_open(dir, KD_SYNC_FULL);
    n = sweep("kd_search (load index)", db, c_search, &hnsw);
    printf("    %-22s %llu allocation failures survived\n", "kd_search (load index)", (unsigned long long)n);
    kd_stats st;
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK_EQ_INT(c_check(db, NULL), KD_OK);
    kd_close(db);
    printf("    %llu calls swept, %llu allocation failures injected\n", (unsigned long long)swept + 1,
           (unsigned long long)failures);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) abort();
}

int main(void) {
    RUN(sweep_public_calls);
    return t_done();
}
