/*
** test_quota.c — the disk quota (kd_options.max_db_bytes, issue 6): a commit that would
** take the log past the quota fails KD_FULL with "database full" and changes nothing, the
** handle stays usable (smaller writes that fit still succeed, reads and checks work), the
** quota holds across segment rotation and concurrent writers, survives reopen, and a larger
** quota (or none) at the next open lets writes go on.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "korudelta.h"
#include "t.h"

static char dir[256];

static kd_db *open_quota(uint64_t quota, size_t segment_bytes) {
    kd_options o;
    kd_options_init(&o);
    o.max_db_bytes = quota;
    if (segment_bytes) o.segment_bytes = segment_bytes;
    kd_db *db = NULL;
    if (kd_open(dir, &o, &db) != KD_OK) {
        fprintf(stderr, "open %s: %s\n", dir, kd_errmsg(NULL));
        abort();
    }
    return db;
}

/* A JSON string value of about n bytes, distinct per i. */
static char *value(int i, size_t n) {
    char *v = malloc(n + 32);
    if (!v) abort();
    int k = snprintf(v, n + 32, "\"%d:", i);
    for (; (size_t)k < n; k++) v[k] = (char)('a' + (i + k) % 26);
    v[k++] = '"';
    v[k] = 0;
    return v;
}

static uint64_t log_bytes(kd_db *db) {
    kd_stats st;
    if (kd_stats_get(db, &st) != KD_OK) abort();
    return st.log_bytes;
}

static int deep_check_ok(kd_db *db) {
    kd_check_report r;
    return kd_check(db, 1, &r) == KD_OK && r.ok;
}

TEST(writes_past_the_quota_fail_and_change_nothing) {
    enum { QUOTA = 256 * 1024, SEG = 64 * 1024 };
    t_fresh_dir(dir, sizeof dir, "quota");
    kd_db *db = open_quota(QUOTA, SEG);
    kd_stats st;
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK(st.max_db_bytes == QUOTA);
    float vec[800];
    for (int i = 0; i < 800; i++) vec[i] = (float)i;
    CHECK_EQ_INT(kd_embed(db, "docs", "k0", vec, 800, NULL, NULL, NULL), KD_OK);

    /* Fill it with 3 KiB values until a write is refused. */
    int acked = 0, rc = KD_OK;
    char key[32];
    while (rc == KD_OK && acked < 10000) {
        char *v = value(acked, 3000);
        snprintf(key, sizeof key, "k%d", acked);
        rc = kd_put(db, "docs", key, v, strlen(v), NULL, NULL);
        free(v);
        if (rc == KD_OK) acked++;
    }
    CHECK_EQ_INT(rc, KD_FULL);
    CHECK(strstr(kd_errmsg(db), "database full") != NULL);
    CHECK(strstr(kd_errmsg(db), "max_db_bytes") != NULL);
    CHECK(acked > 50);
    uint64_t full = log_bytes(db);
    CHECK(full <= QUOTA);
    CHECK(full > QUOTA - 3200); /* refused only when the next one did not fit */
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK(st.segments >= 4); /* the quota spans rotations */
    uint64_t versions = st.versions;

    /* Refused writes of every kind change nothing. */
    char *big = value(99999, 4000);
    CHECK_EQ_INT(kd_put(db, "docs", "k0", big, strlen(big), NULL, NULL), KD_FULL);
    kd_batch *b = kd_batch_new();
    CHECK(b != NULL);
    CHECK_EQ_INT(kd_batch_put(b, "docs", "b1", "1", 1), KD_OK);
    CHECK_EQ_INT(kd_batch_put(b, "docs", "b2", big, strlen(big)), KD_OK);
    CHECK_EQ_INT(kd_batch_commit(db, b, NULL, NULL), KD_FULL);
    kd_batch_free(b);
    free(big);
    vec[0] = -1; /* another vector: the same one would be stored once and take no room */
    CHECK_EQ_INT(kd_embed(db, "docs", "k1", vec, 800, NULL, NULL, NULL), KD_FULL);
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK(st.versions == versions);
    CHECK(log_bytes(db) == full);
    kd_entry e;
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(kd_get(db, "docs", "b1", &e), KD_NOTFOUND);
    kd_entry_clear(&e);

    /* Still readable, still sound, and not poisoned: a write that fits succeeds. */
    for (int i = 0; i < acked; i += 7) {
        char *v = value(i, 3000);
        snprintf(key, sizeof key, "k%d", i);
        memset(&e, 0, sizeof e);
        CHECK_EQ_INT(kd_get(db, "docs", key, &e), KD_OK);
        CHECK(e.value && strcmp(e.value, v) == 0);
        kd_entry_clear(&e);
        free(v);
    }
    CHECK(deep_check_ok(db));
    uint64_t room = QUOTA - full;
    if (room > 64) {
        CHECK_EQ_INT(kd_put(db, "docs", "small", "1", 1, NULL, NULL), KD_OK);
        CHECK(log_bytes(db) <= QUOTA);
    }
    CHECK_EQ_INT(kd_close(db), KD_OK);

    /* Reopened under the same quota: reads work, a big write is still refused. */
    db = open_quota(QUOTA, SEG);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(kd_get(db, "docs", "k0", &e), KD_OK);
    kd_entry_clear(&e);
    big = value(5, 4000);
    CHECK_EQ_INT(kd_put(db, "docs", "more", big, strlen(big), NULL, NULL), KD_FULL);
    CHECK(deep_check_ok(db));
    CHECK_EQ_INT(kd_close(db), KD_OK);

    /* A quota far below the database's size: it opens and reads; every write is refused. */
    db = open_quota(4096, SEG);
    memset(&e, 0, sizeof e);
    CHECK_EQ_INT(kd_get(db, "docs", "k1", &e), KD_OK);
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_put(db, "docs", "x", "1", 1, NULL, NULL), KD_FULL);
    CHECK_EQ_INT(kd_close(db), KD_OK);

    /* A larger quota, then none: writes go on. */
    db = open_quota(QUOTA * 2, SEG);
    CHECK_EQ_INT(kd_put(db, "docs", "more", big, strlen(big), NULL, NULL), KD_OK);
    CHECK_EQ_INT(kd_close(db), KD_OK);
    db = open_quota(0, SEG);
    CHECK_EQ_INT(kd_put(db, "docs", "more2", big, strlen(big), NULL, NULL), KD_OK);
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK(st.max_db_bytes == 0);
    CHECK(deep_check_ok(db));
    CHECK_EQ_INT(kd_close(db), KD_OK);
    free(big);
}

/* Writers racing for the last bytes: the log never passes the quota, and every write
** acknowledged is there. */
enum { NWRITERS = 4, QUOTA2 = 512 * 1024 };
typedef struct wr {
    kd_db *db;
    int id, acked, full, other;
} wr;

static void *writer(void *arg) {
    wr *w = arg;
    char key[32];
    for (int i = 0; i < 100000; i++) {
        char *v = value(w->id * 100000 + i, 500 + (size_t)(i * 37 % 2000));
        snprintf(key, sizeof key, "w%d-%d", w->id, i);
        int rc = kd_put(w->db, "race", key, v, strlen(v), NULL, NULL);
        free(v);
        if (rc == KD_OK) w->acked++;
        else if (rc == KD_FULL) {
            if (++w->full >= 20) break; /* smaller values may still fit for a while */
        } else {
            w->other++;
            break;
        }
    }
    return NULL;
}

TEST(concurrent_writers_never_pass_the_quota) {
    t_fresh_dir(dir, sizeof dir, "quota2");
    kd_db *db = open_quota(QUOTA2, 128 * 1024);
    pthread_t th[NWRITERS];
    wr w[NWRITERS];
    for (int i = 0; i < NWRITERS; i++) {
        w[i] = (wr){db, i, 0, 0, 0};
        if (pthread_create(&th[i], NULL, writer, &w[i]) != 0) abort();
    }
    int acked = 0;
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].other, 0);
        CHECK(w[i].full > 0);
        acked += w[i].acked;
    }
    CHECK(log_bytes(db) <= QUOTA2);
    kd_stats st;
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK_EQ_INT((int)st.versions, acked);
    CHECK(deep_check_ok(db));
    CHECK_EQ_INT(kd_close(db), KD_OK);
    db = open_quota(0, 0);
    CHECK_EQ_INT(kd_stats_get(db, &st), KD_OK);
    CHECK_EQ_INT((int)st.versions, acked);
    CHECK(st.log_bytes <= QUOTA2);
    CHECK_EQ_INT(kd_close(db), KD_OK);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/kd_quota_%d /tmp/kd_quota2_%d", (int)getpid(), (int)getpid());
    if (system(cmd) != 0) abort();
}

int main(void) {
    RUN(writes_past_the_quota_fail_and_change_nothing);
    RUN(concurrent_writers_never_pass_the_quota);
    return t_done();
}
