/*
** test_backup.c — kd_backup: a copy made while writers keep committing holds exactly the
** versions committed before it began (same ids, timestamps, order, no half batch), passes
** kd_check, opens, takes new writes, and brings the checkpoint and the saved vector index
** along; bad targets are refused. An export (kd_export_*) holds the database as of its
** start, whatever is written while it runs.
*/
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "korudelta.h"
#include "t.h"

static char dir[256], copy[300];

/* A fresh database directory and no copy yet: dir, and copy = dir + "_copy". */
static void fresh_dirs(void) {
    char cmd[700];
    t_fresh_dir(dir, sizeof dir, "backup");
    snprintf(copy, sizeof copy, "%s_copy", dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s", copy);
    if (system(cmd) != 0) abort();
}

typedef struct writer {
    kd_db *db;
    atomic_int stop;
    int errors;
    atomic_int n;   /* writes made: the main thread waits on it */
} writer;

/* Keys w0..w49 of "live", overwritten and sometimes deleted, plus batches of two keys
** that must always appear together. */
static void *write_loop(void *p) {
    writer *w = p;
    char key[32], val[64];
    while (!atomic_load(&w->stop)) {
        int i = atomic_fetch_add(&w->n, 1);
        snprintf(key, sizeof key, "w%d", i % 50);
        snprintf(val, sizeof val, "{\"n\":%d}", i);
        int rc;
        if (i % 7 == 6) {
            rc = kd_delete(w->db, "live", key, NULL);
            if (rc == KD_NOTFOUND) rc = KD_OK;
        } else if (i % 5 == 4) {
            kd_batch *b = kd_batch_new();
            kd_batch_put(b, "pair", "a", val, strlen(val));
            kd_batch_put(b, "pair", "b", val, strlen(val));
            rc = kd_batch_commit(w->db, b, NULL, NULL);
            kd_batch_free(b);
        } else {
            rc = kd_put(w->db, "live", key, val, strlen(val), NULL, NULL);
        }
        if (rc != KD_OK) w->errors++;
    }
    return NULL;
}

/* Every version of ns/key in the copy equals the source's, and the copy holds exactly
** those with seq <= upto. */
static void same_history(kd_db *src, kd_db *dst, const char *ns, const char *key, uint64_t upto) {
    kd_entry *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ta = 0, tb = 0;
    int ra = kd_history(src, ns, key, 0, 0, 1, &a, &na, &ta);
    int rb = kd_history(dst, ns, key, 0, 0, 1, &b, &nb, &tb);
    size_t want = 0;
    if (ra == KD_OK)
        for (size_t i = 0; i < na; i++) want += a[i].seq <= upto;
    if (want == 0) {
        CHECK_EQ_INT(rb, KD_NOTFOUND);
    } else {
        CHECK_EQ_INT(rb, KD_OK);
        CHECK_EQ_INT(nb, want);
        /* Both lists are oldest first: the copy's is a prefix of the source's. */
        for (size_t i = 0; i < nb && i < na; i++) {
            CHECK(memcmp(a[i].version_id, b[i].version_id, 32) == 0);
            CHECK(a[i].timestamp == b[i].timestamp);
            CHECK(a[i].seq == b[i].seq);
            CHECK(a[i].deleted == b[i].deleted);
        }
    }
    kd_entries_free(a, na);
    kd_entries_free(b, nb);
}

TEST(backup_while_writing) {
    char cmd[700];
    fresh_dirs();
    kd_db *db = t_open(dir, KD_SYNC_NORMAL);
    /* History before: values, a checkpoint, more values, embeddings with a saved index. */
    char key[32], val[64];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i % 60);
        snprintf(val, sizeof val, "{\"i\":%d}", i);
        CHECK_EQ_INT(kd_put(db, "hist", key, val, strlen(val), NULL, NULL), KD_OK);
    }
    for (int i = 0; i < 2500; i++) {
        float v[4] = {(float)(i % 13), (float)(i % 7), (float)(i % 5), 1};
        snprintf(key, sizeof key, "e%d", i);
        CHECK_EQ_INT(kd_embed(db, "vec", key, v, 4, NULL, NULL, NULL), KD_OK);
    }
    float q[4] = {3, 2, 1, 1};
    kd_search_opts so;
    kd_search_opts_init(&so);
    so.vector = q;
    so.dim = 4;
    kd_search_hit *hits = NULL;
    size_t nh = 0;
    CHECK_EQ_INT(kd_search(db, &so, &hits, &nh), KD_OK); /* builds the index */
    kd_search_free(hits, nh);
    CHECK_EQ_INT(kd_checkpoint(db), KD_OK);                  /* saves it */
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i % 60);
        snprintf(val, sizeof val, "{\"after\":%d}", i);
        CHECK_EQ_INT(kd_put(db, "hist", key, val, strlen(val), NULL, NULL), KD_OK);
    }
    CHECK_EQ_INT(kd_delete(db, "hist", "k0", NULL), KD_OK);

    writer w = {db, 0, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, write_loop, &w);
    while (atomic_load(&w.n) < 200) sched_yield();
    kd_stats st;
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    uint64_t before = st.seq;
    uint64_t calls = 0;
    CHECK_EQ_INT(kd_backup(db, copy, NULL, NULL), KD_OK);
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    uint64_t after = st.seq;
    while (atomic_load(&w.n) < 400) sched_yield(); /* writes continue after it too */
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ_INT(w.errors, 0);
    (void)calls;

    /* A non-empty target is refused; so is an empty name. */
    CHECK_EQ_INT(kd_backup(db, copy, NULL, NULL), KD_INVALID);
    CHECK(strstr(kd_errmsg(db), "is not empty") != NULL);
    CHECK_EQ_INT(kd_backup(db, "", NULL, NULL), KD_INVALID);

    kd_db *c = t_open(copy, KD_SYNC_FULL);
    kd_stats cs;
    CHECK_EQ_INT(kd_stats_get(c, &cs), KD_OK);
    printf("    backup holds seq %llu (source: %llu before the call, %llu after)\n", (unsigned long long)cs.seq,
           (unsigned long long)before, (unsigned long long)after);
    CHECK(cs.seq >= before && cs.seq <= after);
    kd_check_report rep;
    CHECK_EQ_INT(kd_check(c, 1, &rep), KD_OK);
    CHECK(rep.ok);
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof key, "k%d", i);
        same_history(db, c, "hist", key, cs.seq);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "w%d", i);
        same_history(db, c, "live", key, cs.seq);
    }
    same_history(db, c, "pair", "a", cs.seq);
    same_history(db, c, "pair", "b", cs.seq);
    /* No half batch: pair/a and pair/b have the same number of versions. */
    kd_entry *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0, ta = 0, tb = 0;
    int ra = kd_history(c, "pair", "a", 0, 0, 0, &pa, &na, &ta);
    int rb = kd_history(c, "pair", "b", 0, 0, 0, &pb, &nb, &tb);
    CHECK_EQ_INT(ra, rb);
    CHECK_EQ_INT(na, nb);
    kd_entries_free(pa, na);
    kd_entries_free(pb, nb);
    /* The saved vector index came along and loads. */
    CHECK_EQ_INT(kd_search(c, &so, &hits, &nh), KD_OK);
    CHECK_EQ_INT(nh, 10);
    kd_search_free(hits, nh);
    CHECK_EQ_INT(kd_stats_get(c, &cs), KD_OK);
    CHECK_EQ_INT(cs.vector_index_loads, 1);
    /* The copy takes writes and keeps them. */
    CHECK_EQ_INT(kd_put(c, "hist", "new", "1", 1, NULL, NULL), KD_OK);
    uint64_t cseq = cs.seq + 1;
    CHECK_EQ_INT(kd_close(c), KD_OK);
    c = t_open(copy, KD_SYNC_FULL);
    kd_entry e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(kd_get(c, "hist", "new", &e), KD_OK);
    CHECK(e.seq >= cseq);
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_check(c, 0, &rep), KD_OK);
    CHECK(rep.ok);
    kd_close(c);

    /* A read-only handle refuses (copy the directory instead). */
    kd_close(db);
    kd_options o;
    kd_options_init(&o);
    o.read_only = 1;
    kd_db *ro = NULL;
    CHECK_EQ_INT(kd_open(dir, &o, &ro), KD_OK);
    snprintf(cmd, sizeof cmd, "%s_ro", dir);
    CHECK_EQ_INT(kd_backup(ro, cmd, NULL, NULL), KD_READONLY);
    kd_close(ro);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s_ro", copy, dir);
    if (system(cmd) != 0) abort();
}

/* The progress callback counts every byte once, ending at the total. */
typedef struct prog {
    uint64_t last, total, calls;
    int backwards;
} prog;
static void on_progress(void *ctx, uint64_t done, uint64_t total) {
    prog *p = ctx;
    if (done < p->last) p->backwards = 1;
    p->last = done;
    p->total = total;
    p->calls++;
}

TEST(backup_progress) {
    char cmd[700];
    fresh_dirs();
    kd_db *db = t_open(dir, KD_SYNC_OFF);
    char val[2048];
    memset(val, 'x', sizeof val);
    val[0] = '"';
    val[sizeof val - 1] = '"';
    for (int i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof key, "big%d", i);
        snprintf(val + 1, 16, "%015d", i); /* distinct values: no dedup */
        val[16] = 'x';
        CHECK_EQ_INT(kd_put(db, "b", key, val, sizeof val, NULL, NULL), KD_OK);
    }
    prog p = {0, 0, 0, 0};
    CHECK_EQ_INT(kd_backup(db, copy, on_progress, &p), KD_OK);
    CHECK(p.calls >= 2);
    CHECK(!p.backwards);
    CHECK(p.last == p.total && p.total > 2000u * 2048u);
    kd_close(db);
    kd_db *c = t_open(copy, KD_SYNC_FULL);
    kd_stats cs;
    CHECK_EQ_INT(kd_stats_get(c, &cs), KD_OK);
    CHECK_EQ_INT(cs.keys, 2000);
    kd_close(c);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", copy, dir);
    if (system(cmd) != 0) abort();
}

/* All the lines of an export opened earlier, after more writes: one string. */
static char *drain(kd_export *ex) {
    const char *line;
    size_t len, n = 0;
    char *all = calloc(1, 1);
    int rc;
    while ((rc = kd_export_next(ex, &line, &len)) == KD_OK) {
        all = realloc(all, n + len + 1);
        if (!all) abort();
        memcpy(all + n, line, len);
        n += len;
        all[n] = 0;
    }
    CHECK_EQ_INT(rc, KD_DONE);
    kd_export_close(ex);
    return all;
}

/* A snapshot or history export holds the database as it was when it was opened, whatever
** is written while it runs: keys overwritten, deleted or added later are exported as they
** were, none dropped. */
TEST(export_is_the_database_at_its_start) {
    static const int modes[] = {KD_EXPORT_CURRENT, KD_EXPORT_AT, KD_EXPORT_HISTORY};
    for (int m = 0; m < 3; m++) {
        t_fresh_dir(dir, sizeof dir, "exp");
        kd_db *db = t_open(dir, KD_SYNC_NORMAL);
        CHECK_EQ_INT(kd_put(db, "a", "k1", "1", 1, NULL, NULL), KD_OK);
        CHECK_EQ_INT(kd_put(db, "a", "k2", "2", 1, NULL, NULL), KD_OK);
        CHECK_EQ_INT(kd_put(db, "a", "k3", "3", 1, NULL, NULL), KD_OK);
        CHECK_EQ_INT(kd_delete(db, "a", "k3", NULL), KD_OK);
        kd_export_opts o;
        memset(&o, 0, sizeof o);
        o.mode = modes[m];
        o.at = INT64_MAX - 1; /* KD_EXPORT_AT: a time after every write below */
        kd_export *before = NULL, *again = NULL;
        CHECK_EQ_INT(kd_export_open(db, &o, &before), KD_OK);
        char *want = NULL;
        if (m < 2) { /* what the same export gives with nothing written meanwhile */
            CHECK_EQ_INT(kd_export_open(db, &o, &again), KD_OK);
            want = drain(again);
        }
        CHECK_EQ_INT(kd_put(db, "a", "k1", "10", 2, NULL, NULL), KD_OK); /* overwritten */
        CHECK_EQ_INT(kd_delete(db, "a", "k2", NULL), KD_OK);              /* deleted */
        CHECK_EQ_INT(kd_put(db, "a", "k3", "30", 2, NULL, NULL), KD_OK); /* back again */
        CHECK_EQ_INT(kd_put(db, "a", "k4", "4", 1, NULL, NULL), KD_OK);  /* new */
        char *got = drain(before);
        if (want) CHECK_EQ_STR(got, want);
        CHECK(strstr(got, "\"key\":\"k1\"") && strstr(got, "\"value\":1,"));
        CHECK(strstr(got, "\"key\":\"k2\"") != NULL);
        CHECK(strstr(got, "\"key\":\"k4\"") == NULL);
        CHECK(strstr(got, "\"value\":10") == NULL && strstr(got, "\"value\":30") == NULL);
        CHECK(m == 2 ? strstr(got, "\"key\":\"k3\"") != NULL : strstr(got, "\"key\":\"k3\"") == NULL);
        CHECK(strstr(got, "\"seq\":4}") != NULL); /* the header: seqs 1..4 */
        free(got);
        free(want);
        kd_close(db);
    }
}

int main(void) {
    RUN(backup_while_writing);
    RUN(backup_progress);
    RUN(export_is_the_database_at_its_start);
    return t_done();
}
