/*
** test_db.c — the public API end to end on real directories: writes, time travel at
** exact boundaries, deletes, history, diff, batches, conditions, dedup, listings, the
** feed, reopen with and without a checkpoint, torn tails, mid-log corruption, crashed
** batches, format versions, locking, segment rotation and concurrent writers.
*/
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crc32c.h"
#include "korudelta.h"
#include "t.h"

static char dir[256];

static void fresh(void) {
    char cmd[300];
    snprintf(dir, sizeof dir, "/tmp/kd_test_db_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) abort();
}

static kd_db *open_db(void) {
    kd_db *db = NULL;
    kd_options o;
    kd_options_init(&o);
    int rc = kd_open(dir, &o, &db);
    if (rc != KD_OK) fprintf(stderr, "open: %s\n", kd_errmsg(NULL));
    return db;
}

static int put(kd_db *db, const char *ns, const char *key, const char *json, kd_entry *e) {
    return kd_put(db, ns, key, json, strlen(json), NULL, e);
}

static char *get_value(kd_db *db, const char *ns, const char *key) {
    kd_entry e;
    static char buf[65536];
    if (kd_get(db, ns, key, &e) != KD_OK) return NULL;
    snprintf(buf, sizeof buf, "%s", e.value);
    kd_entry_clear(&e);
    return buf;
}

static char *seg1(void) {
    static char p[300];
    snprintf(p, sizeof p, "%s/log/00000001.kdl", dir);
    return p;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* End of the last record in a segment (the file may be longer: zero-filled space). */
static long log_end(const char *path) {
    int fd = open(path, O_RDONLY);
    unsigned char h[9];
    long off = 64;
    while (pread(fd, h, 9, off) == 9) {
        long L = (long)(h[0] | h[1] << 8 | h[2] << 16 | (unsigned long)h[3] << 24);
        if (L == 0) break;
        off += 9 + L;
    }
    close(fd);
    return off;
}

static void remove_checkpoint(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/checkpoint", dir);
    unlink(p);
}

TEST(put_get_canonical) {
    fresh();
    kd_db *db = open_db();
    kd_entry e;
    CHECK_EQ_INT(put(db, "users", "alice", " {\"b\": 1, \"a\": [1.0, 2e0, \"x\"]} ", &e), KD_OK);
    CHECK_EQ_INT(e.seq, 1);
    CHECK(!e.has_previous);
    CHECK_EQ_INT(e.change, KD_CHANGE_INSERT);
    kd_entry_clear(&e);
    CHECK_EQ_STR(get_value(db, "users", "alice"), "{\"a\":[1,2,\"x\"],\"b\":1}");
    CHECK_EQ_INT(put(db, "users", "n", "null", NULL), KD_OK);
    CHECK_EQ_STR(get_value(db, "users", "n"), "null");
    CHECK_EQ_INT(kd_get(db, "users", "bob", &e), KD_NOTFOUND);
    CHECK_EQ_INT(kd_get(db, "nope", "bob", &e), KD_NOTFOUND);
    kd_close(db);
}

TEST(bad_input_writes_nothing) {
    fresh();
    kd_db *db = open_db();
    kd_stats st;
    CHECK_EQ_INT(put(db, "users", "a", "{bad", NULL), KD_INVALID);
    CHECK(strstr(kd_errmsg(db), "byte") != NULL);
    CHECK_EQ_INT(put(db, "_sys", "a", "1", NULL), KD_INVALID);
    CHECK_EQ_INT(put(db, "us ers", "a", "1", NULL), KD_INVALID);
    CHECK_EQ_INT(put(db, "users", "", "1", NULL), KD_INVALID);
    CHECK_EQ_INT(put(db, "users", "_a", "1", NULL), KD_INVALID);
    CHECK_EQ_INT(put(db, "users", "\xff\xfe", "1", NULL), KD_INVALID);
    CHECK_EQ_INT(put(db, "", "a", "1", NULL), KD_INVALID);
    CHECK_EQ_INT(put(db, "users", "a", "{\"a\":1,\"a\":2}", NULL), KD_INVALID);
    CHECK_EQ_INT(kd_delete(db, "users", "ghost", NULL), KD_NOTFOUND);
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.seq, 0);
    kd_close(db);
    kd_options o;
    kd_options_init(&o);
    o.max_value_bytes = 10;
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_OK);
    CHECK_EQ_INT(put(db, "users", "a", "\"0123456789\"", NULL), KD_TOOBIG);
    CHECK_EQ_INT(put(db, "users", "a", "\"0123456\"", NULL), KD_OK);
    kd_close(db);
}

TEST(time_travel_boundaries) {
    fresh();
    kd_db *db = open_db();
    kd_entry v[3], e;
    put(db, "cfg", "k", "1", &v[0]);
    put(db, "cfg", "k", "2", &v[1]);
    put(db, "cfg", "k", "3", &v[2]);
    CHECK(v[0].timestamp < v[1].timestamp && v[1].timestamp < v[2].timestamp);
    CHECK_EQ_INT(kd_get_at(db, "cfg", "k", v[1].timestamp, &e), KD_OK); /* inclusive */
    CHECK_EQ_STR(e.value, "2");
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_get_at(db, "cfg", "k", v[1].timestamp - 1, &e), KD_OK);
    CHECK_EQ_STR(e.value, "1");
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_get_at(db, "cfg", "k", v[0].timestamp - 1, &e), KD_NOTFOUND);
    CHECK(strstr(kd_errmsg(db), "did not exist yet") != NULL);
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_get_at(db, "cfg", "k", v[2].timestamp + 1000000, &e), KD_OK);
    CHECK_EQ_STR(e.value, "3");
    kd_entry_clear(&e);
    /* by version-id prefix */
    char hx[65], pre[9];
    kd_hex(v[0].version_id, hx);
    memcpy(pre, hx, 8);
    pre[8] = 0;
    int64_t t;
    CHECK_EQ_INT(kd_parse_time(db, pre, &t), KD_OK);
    CHECK_EQ_INT(t, v[0].timestamp);
    CHECK_EQ_INT(kd_parse_time(db, "deadbeefdeadbeef", &t), KD_NOTFOUND);
    CHECK_EQ_INT(kd_parse_time(db, "yesterday", &t), KD_INVALID);
    CHECK_EQ_INT(kd_resolve_version(db, "cfg", "k", pre, &e), KD_OK);
    CHECK_EQ_STR(e.value, "1");
    kd_entry_clear(&e);
    /* delete: not found now, still there before */
    kd_entry d;
    CHECK_EQ_INT(kd_delete(db, "cfg", "k", &d), KD_OK);
    CHECK(d.deleted);
    CHECK_EQ_INT(kd_get(db, "cfg", "k", &e), KD_NOTFOUND);
    CHECK(e.deleted);
    CHECK(strstr(kd_errmsg(db), "deleted at") != NULL);
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_get_at(db, "cfg", "k", d.timestamp, &e), KD_NOTFOUND);
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_get_at(db, "cfg", "k", d.timestamp - 1, &e), KD_OK);
    CHECK_EQ_STR(e.value, "3");
    kd_entry_clear(&e);
    CHECK_EQ_INT(kd_delete(db, "cfg", "k", NULL), KD_NOTFOUND);
    /* re-create */
    CHECK_EQ_INT(put(db, "cfg", "k", "4", &e), KD_OK);
    CHECK_EQ_INT(e.change, KD_CHANGE_INSERT);
    CHECK(e.has_previous && memcmp(e.previous_version, d.version_id, 32) == 0);
    kd_entry_clear(&e);
    CHECK_EQ_STR(get_value(db, "cfg", "k"), "4");
    kd_entry *h;
    size_t n, total;
    CHECK_EQ_INT(kd_history(db, "cfg", "k", 0, 0, 1, &h, &n, &total), KD_OK);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_STR(h[0].value, "1");
    CHECK(h[3].deleted && h[3].value == NULL);
    CHECK_EQ_STR(h[4].value, "4");
    kd_entries_free(h, n);
    CHECK_EQ_INT(kd_history(db, "cfg", "k", 1, 2, 1, &h, &n, &total), KD_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(total, 5);
    CHECK_EQ_STR(h[0].value, "2");
    kd_entries_free(h, n);
    for (int i = 0; i < 3; i++) kd_entry_clear(&v[i]);
    kd_entry_clear(&d);
    kd_close(db);
}

TEST(diff_versions) {
    fresh();
    kd_db *db = open_db();
    put(db, "c", "k", "{\"a\":{\"b\":1,\"c\":[1,2,3]},\"x\":true}", NULL);
    put(db, "c", "k", "{\"a\":{\"b\":2,\"c\":[1,9,2,3]},\"x\":true}", NULL);
    char *patch;
    kd_entry a, b;
    CHECK_EQ_INT(kd_diff(db, "c", "k", NULL, NULL, &a, &b, &patch), KD_OK);
    CHECK_EQ_STR(patch, "[{\"op\":\"replace\",\"path\":\"/a/b\",\"value\":2},{\"op\":\"add\",\"path\":\"/a/c/1\",\"value\":9}]");
    CHECK_EQ_INT(a.seq, 1);
    CHECK_EQ_INT(b.seq, 2);
    kd_free(patch);
    kd_entry_clear(&a);
    kd_entry_clear(&b);
    CHECK_EQ_INT(kd_diff(db, "c", "k", "1", "0", &a, &b, &patch), KD_OK);
    CHECK_EQ_STR(patch, "[{\"op\":\"replace\",\"path\":\"/a/b\",\"value\":1},{\"op\":\"remove\",\"path\":\"/a/c/1\"}]");
    kd_free(patch);
    kd_entry_clear(&a);
    kd_entry_clear(&b);
    CHECK_EQ_INT(kd_diff(db, "c", "k", "5", NULL, &a, &b, &patch), KD_NOTFOUND);
    put(db, "c", "one", "1", NULL);
    CHECK_EQ_INT(kd_diff(db, "c", "one", NULL, NULL, &a, &b, &patch), KD_OK);
    CHECK_EQ_STR(patch, "[{\"op\":\"add\",\"path\":\"\",\"value\":1}]");
    CHECK_EQ_INT(a.seq, 0);
    kd_free(patch);
    kd_entry_clear(&a);
    kd_entry_clear(&b);
    kd_close(db);
}

TEST(conditional_puts) {
    fresh();
    kd_db *db = open_db();
    kd_put_cond absent = {1, NULL};
    kd_entry e;
    CHECK_EQ_INT(kd_put(db, "c", "k", "1", 1, &absent, &e), KD_OK);
    CHECK_EQ_INT(kd_put(db, "c", "k", "2", 1, &absent, NULL), KD_CONFLICT);
    char hx[65];
    kd_hex(e.version_id, hx);
    CHECK(strstr(kd_errmsg(db), hx) != NULL); /* names the current version */
    kd_put_cond ifv = {0, hx};
    CHECK_EQ_INT(kd_put(db, "c", "k", "2", 1, &ifv, NULL), KD_OK);
    CHECK_EQ_INT(kd_put(db, "c", "k", "3", 1, &ifv, NULL), KD_CONFLICT); /* stale */
    kd_put_cond ifv2 = {0, "00000000"};
    CHECK_EQ_INT(kd_put(db, "c", "absent", "3", 1, &ifv2, NULL), KD_CONFLICT);
    kd_put_cond bad = {0, "xyz"};
    CHECK_EQ_INT(kd_put(db, "c", "k", "3", 1, &bad, NULL), KD_INVALID);
    CHECK_EQ_STR(get_value(db, "c", "k"), "2");
    kd_entry_clear(&e);
    kd_close(db);
}

TEST(batches) {
    fresh();
    kd_db *db = open_db();
    put(db, "a", "old", "0", NULL);
    kd_batch *b = kd_batch_new();
    kd_batch_put(b, "a", "x", "1", 1);
    kd_batch_put(b, "b", "y", "{\"v\":2}", 7);
    kd_batch_delete(b, "a", "old");
    uint64_t first, last;
    CHECK_EQ_INT(kd_batch_commit(db, b, &first, &last), KD_OK);
    CHECK_EQ_INT(first, 2);
    CHECK_EQ_INT(last, 4);
    kd_batch_free(b);
    kd_entry ex, ey;
    kd_get(db, "a", "x", &ex);
    kd_get(db, "b", "y", &ey);
    CHECK_EQ_INT(ex.timestamp, ey.timestamp); /* one commit, one timestamp */
    kd_entry_clear(&ex);
    kd_entry_clear(&ey);
    /* a failing item refuses the whole batch */
    b = kd_batch_new();
    kd_batch_put(b, "a", "new", "1", 1);
    kd_batch_delete(b, "a", "missing");
    CHECK_EQ_INT(kd_batch_commit(db, b, &first, &last), KD_NOTFOUND);
    CHECK(strstr(kd_errmsg(db), "item 2") != NULL);
    kd_batch_free(b);
    b = kd_batch_new();
    kd_batch_put(b, "a", "dup", "1", 1);
    kd_batch_put(b, "a", "dup", "2", 1);
    CHECK_EQ_INT(kd_batch_commit(db, b, &first, &last), KD_INVALID);
    kd_batch_free(b);
    b = kd_batch_new();
    kd_batch_put(b, "a", "new2", "1", 1);
    kd_batch_put(b, "a", "bad", "[", 1);
    CHECK_EQ_INT(kd_batch_commit(db, b, &first, &last), KD_INVALID);
    kd_batch_free(b);
    kd_entry e;
    CHECK_EQ_INT(kd_get(db, "a", "new", &e), KD_NOTFOUND);
    CHECK_EQ_INT(kd_get(db, "a", "new2", &e), KD_NOTFOUND);
    kd_stats st;
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.seq, 4);
    kd_close(db);
}

TEST(dedup_identical_values) {
    fresh();
    kd_db *db = open_db();
    char big[10050];
    big[0] = '"';
    memset(big + 1, 'x', 10000);
    big[10001] = '"';
    big[10002] = 0;
    kd_batch *b = kd_batch_new();
    for (int i = 0; i < 1000; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%04d", i);
        kd_batch_put(b, "docs", k, big, strlen(big));
    }
    CHECK_EQ_INT(kd_batch_commit(db, b, NULL, NULL), KD_OK);
    kd_batch_free(b);
    put(db, "other", "k", big, NULL);
    kd_stats st;
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.values, 1);
    CHECK_EQ_INT(st.keys, 1001);
    CHECK(st.log_bytes < 200000); /* 1001 copies would be 10 MB */
    kd_close(db);
    db = open_db();
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.values, 1);
    CHECK_EQ_INT(strlen(get_value(db, "docs", "key0999")), 10002);
    put(db, "after", "reopen", big, NULL); /* still deduplicated against the checkpoint */
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.values, 1);
    CHECK_EQ_INT(strlen(get_value(db, "after", "reopen")), 10002);
    kd_close(db);
    remove_checkpoint(); /* and against a replayed log */
    db = open_db();
    put(db, "after", "replay", big, NULL);
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.values, 1);
    CHECK_EQ_INT(strlen(get_value(db, "after", "replay")), 10002);
    kd_check_report rep;
    kd_check(db, 1, &rep);
    CHECK(rep.ok);
    kd_close(db);
}

TEST(unicode_keys_and_listing) {
    fresh();
    kd_db *db = open_db();
    put(db, "users", "日本/ключ", "1", NULL);
    put(db, "users", "b", "2", NULL);
    put(db, "users", "a", "3", NULL);
    put(db, "zz", "gone", "3", NULL);
    kd_delete(db, "zz", "gone", NULL);
    CHECK_EQ_STR(get_value(db, "users", "日本/ключ"), "1");
    char **keys;
    size_t n;
    CHECK_EQ_INT(kd_list_keys(db, "users", NULL, 0, &keys, &n), KD_OK);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_STR(keys[0], "a");
        CHECK_EQ_STR(keys[1], "b");
        CHECK_EQ_STR(keys[2], "日本/ключ");
    }
    kd_keys_free(keys, n);
    CHECK_EQ_INT(kd_list_keys(db, "users", "a", 1, &keys, &n), KD_OK);
    CHECK_EQ_INT(n, 1);
    if (n) CHECK_EQ_STR(keys[0], "b");
    kd_keys_free(keys, n);
    kd_ns_info *ns;
    CHECK_EQ_INT(kd_list_namespaces(db, 0, &ns, &n), KD_OK);
    CHECK_EQ_INT(n, 1); /* zz has no live key */
    if (n) {
        CHECK_EQ_STR(ns[0].name, "users");
        CHECK_EQ_INT(ns[0].keys, 3);
    }
    kd_ns_list_free(ns, n);
    kd_stats st;
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.keys, 3);
    CHECK_EQ_INT(st.versions, 5);
    kd_close(db);
}

TEST(feed_reads_everything_in_order) {
    fresh();
    kd_db *db = open_db();
    put(db, "a", "k", "1", NULL);
    put(db, "a", "k", "2", NULL);
    kd_delete(db, "a", "k", NULL);
    put(db, "a", "k", "3", NULL);
    kd_feed *f;
    kd_entry e;
    CHECK_EQ_INT(kd_feed_open(db, 1, &f), KD_OK);
    int types[3] = {KD_CHANGE_UPDATE, KD_CHANGE_DELETE, KD_CHANGE_INSERT};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(kd_feed_next(f, &e), KD_OK);
        CHECK_EQ_INT(e.seq, (uint64_t)i + 2);
        CHECK_EQ_INT(e.change, types[i]);
        kd_entry_clear(&e);
    }
    CHECK_EQ_INT(kd_feed_next(f, &e), KD_DONE);
    put(db, "b", "x", "9", NULL);
    CHECK_EQ_INT(kd_feed_next(f, &e), KD_OK);
    CHECK_EQ_STR(e.value, "9");
    kd_entry_clear(&e);
    kd_feed_close(f);
    kd_close(db);
}

static void write_history(kd_db *db, int n) {
    for (int i = 0; i < n; i++) {
        char k[16], v[64];
        snprintf(k, sizeof k, "k%d", i % 7);
        snprintf(v, sizeof v, "{\"i\":%d,\"s\":\"v%d\"}", i, i % 5);
        put(db, "ns", k, v, NULL);
        if (i % 11 == 10) kd_delete(db, "ns", k, NULL);
    }
}

/* Every version's id, timestamp and value, as one string, for comparisons across reopen. */
static char *dump(kd_db *db) {
    static char out[1 << 20];
    size_t o = 0;
    kd_feed *f;
    kd_entry e;
    kd_feed_open(db, 0, &f);
    while (kd_feed_next(f, &e) == KD_OK) {
        char hx[65];
        kd_hex(e.version_id, hx);
        char vh[65];
        kd_hex(e.value_hash, vh);
        if (o + 512 < sizeof out) /* long values by length and hash */
            o += (size_t)snprintf(out + o, sizeof out - o, "%llu %s %lld %s/%s %.100s %zu %s\n",
                                  (unsigned long long)e.seq, hx, (long long)e.timestamp, e.ns, e.key,
                                  e.value ? e.value : "-", e.value_len, vh);
        kd_entry_clear(&e);
    }
    kd_feed_close(f);
    return strdup(out);
}

TEST(reopen_keeps_everything) {
    fresh();
    kd_db *db = open_db();
    write_history(db, 200);
    char *before = dump(db);
    kd_close(db);
    db = open_db(); /* from the checkpoint */
    char *a = dump(db);
    CHECK_EQ_STR(a, before);
    kd_close(db);
    remove_checkpoint();
    db = open_db(); /* full replay */
    char *b = dump(db);
    CHECK_EQ_STR(b, before);
    /* writes continue with increasing seq and timestamps */
    kd_entry e;
    put(db, "ns", "after", "1", &e);
    CHECK_EQ_INT(e.seq, 219);
    kd_entry_clear(&e);
    kd_check_report rep;
    CHECK_EQ_INT(kd_check(db, 1, &rep), KD_OK);
    CHECK(rep.ok);
    CHECK_EQ_INT(rep.versions, 219);
    kd_close(db);
    free(before);
    free(a);
    free(b);
}

TEST(checkpoint_plus_log_tail) {
    fresh();
    kd_db *db = open_db();
    write_history(db, 50);
    CHECK_EQ_INT(kd_checkpoint(db), KD_OK);
    write_history(db, 30); /* after the checkpoint: replayed from the log */
    char *before = dump(db);
    /* simulate a crash: no close; copy the directory while open */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s.copy && cp -r %s %s.copy", dir, dir, dir);
    CHECK(system(cmd) == 0);
    kd_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mv %s.copy %s", dir, dir, dir);
    CHECK(system(cmd) == 0);
    db = open_db();
    char *after = dump(db);
    CHECK_EQ_STR(after, before);
    kd_close(db);
    free(before);
    free(after);
}

TEST(torn_tail_is_cut) {
    fresh();
    kd_db *db = open_db();
    write_history(db, 20);
    char *before = dump(db);
    kd_close(db);
    remove_checkpoint();
    long size = log_end(seg1());
    CHECK(file_size(seg1()) >= size);
    /* write half a record where the next one would go */
    int fd = open(seg1(), O_WRONLY);
    const char junk[] = "\x30\x00\x00\x00\x12\x34\x56\x78\x01partial";
    CHECK(pwrite(fd, junk, sizeof junk - 1, size) == (ssize_t)(sizeof junk - 1));
    close(fd);
    db = open_db();
    CHECK(db != NULL);
    char *after = dump(db);
    CHECK_EQ_STR(after, before);
    CHECK_EQ_INT(file_size(seg1()), size); /* cut at the last whole record */
    kd_close(db);
    /* cut the last real record in half: that version disappears, the rest stays */
    remove_checkpoint();
    CHECK(truncate(seg1(), size - 10) == 0);
    db = open_db();
    kd_stats st;
    kd_stats_get(db, &st);
    CHECK_EQ_INT(st.seq, 20 + 1 - 1); /* 20 puts + 1 delete, minus the cut one */
    kd_check_report rep;
    kd_check(db, 1, &rep);
    CHECK(rep.ok);
    kd_close(db);
    free(before);
    free(after);
}

TEST(batch_cut_by_crash_leaves_nothing) {
    fresh();
    kd_db *db = open_db();
    put(db, "a", "before", "1", NULL);
    kd_close(db);
    remove_checkpoint();
    long size = log_end(seg1());
    db = open_db();
    kd_batch *b = kd_batch_new();
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "b%d", i);
        kd_batch_put(b, "a", k, "{\"some\":\"value\"}", 16);
    }
    CHECK_EQ_INT(kd_batch_commit(db, b, NULL, NULL), KD_OK);
    kd_batch_free(b);
    kd_close(db);
    remove_checkpoint();
    long full = log_end(seg1());
    /* crash at every eighth byte of the batch's record */
    for (long cut = size + 1; cut < full; cut += 97) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf %s.c && cp -r %s %s.c", dir, dir, dir);
        if (system(cmd) != 0) break;
        char p[600];
        snprintf(p, sizeof p, "%s.c/log/00000001.kdl", dir);
        if (truncate(p, cut) != 0) break;
        snprintf(p, sizeof p, "%s.c", dir);
        kd_db *c = NULL;
        kd_options o;
        kd_options_init(&o);
        CHECK_EQ_INT(kd_open(p, &o, &c), KD_OK);
        if (!c) break;
        kd_stats st;
        kd_stats_get(c, &st);
        CHECK_EQ_INT(st.seq, 1);
        CHECK_EQ_INT(st.keys, 1);
        kd_close(c);
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s.c", dir);
    CHECK(system(cmd) == 0);
}

TEST(mid_log_corruption_is_reported) {
    fresh();
    kd_db *db = open_db();
    write_history(db, 30);
    kd_close(db);
    remove_checkpoint();
    /* flip a byte inside the third record's payload */
    int fd = open(seg1(), O_RDWR);
    unsigned char hdr[9];
    long off = 64;
    for (int i = 0; i < 2; i++) {
        CHECK(pread(fd, hdr, 9, off) == 9);
        off += 9 + (long)(hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (unsigned)hdr[3] << 24);
    }
    unsigned char c;
    CHECK(pread(fd, &c, 1, off + 20) == 1);
    c ^= 0x55;
    CHECK(pwrite(fd, &c, 1, off + 20) == 1);
    close(fd);
    kd_options o;
    kd_options_init(&o);
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_CORRUPT);
    char want[64];
    snprintf(want, sizeof want, "offset %ld", off);
    CHECK(strstr(kd_errmsg(NULL), want) != NULL);
    kd_check_report rep;
    CHECK_EQ_INT(kd_check_path(dir, 0, &rep), KD_OK);
    CHECK(!rep.ok);
    CHECK(strstr(rep.first_error, want) != NULL);
    /* nothing was cut: the file is intact for repair */
    CHECK(file_size(seg1()) > off + 100);
}

/* A checkpoint whose checksums are right but whose contents point outside the log (as a
** crafted or buggy file could) is ignored, never trusted: open replays the log. */
TEST(crafted_checkpoint_is_ignored) {
    for (int mode = 1; mode <= 3; mode++) {
        fresh();
        kd_db *db = open_db();
        put(db, "a", "k1", "{\"x\":1}", NULL);
        kd_delete(db, "a", "k1", NULL);
        kd_close(db);
        char p[300];
        snprintf(p, sizeof p, "%s/checkpoint", dir);
        static unsigned char buf[1 << 16];
        FILE *f = fopen(p, "rb");
        long n = (long)fread(buf, 1, sizeof buf, f);
        fclose(f);
        uint32_t v32;
        uint64_t v64;
        /* body: 1 namespace "a" (3 bytes), 1 key (4+2+2 bytes), 1 value (8), 2 versions (24 each) */
        long values = 64 + 3 + 8, versions = values + 8;
        if (mode == 1) { /* the value table names the tombstone as the value's storer */
            v32 = 2;
            memcpy(buf + values, &v32, 4);
        } else if (mode == 2) { /* log position in segment 0 */
            v64 = 100;
            memcpy(buf + 24, &v64, 8);
            v32 = kd__crc32c(0, buf, 60);
            memcpy(buf + 60, &v32, 4);
        } else { /* version 1's id in a segment that does not exist */
            v64 = (5ull << 40) | 200;
            memcpy(buf + versions + 8, &v64, 8);
        }
        v32 = kd__crc32c(0, buf + 64, (size_t)n - 68);
        memcpy(buf + n - 4, &v32, 4);
        f = fopen(p, "wb");
        CHECK(fwrite(buf, 1, (size_t)n, f) == (size_t)n);
        fclose(f);
        db = open_db();
        CHECK(db != NULL);
        if (!db) continue;
        kd_entry e;
        CHECK_EQ_INT(put(db, "a", "k3", "{\"x\":1}", NULL), KD_OK);
        CHECK_EQ_INT(kd_get(db, "a", "k1", &e), KD_NOTFOUND);
        kd_entry_clear(&e);
        CHECK_EQ_STR(get_value(db, "a", "k3"), "{\"x\":1}");
        kd_stats st;
        kd_stats_get(db, &st);
        CHECK_EQ_INT(st.seq, 3);
        kd_close(db);
    }
}

/* After a power cut the disk may keep a later page and lose an earlier one: a record
** with a whole zero sector followed by a valid record is a torn end (nothing after the
** lost page was acknowledged), not corruption. A flipped byte stays corruption. */
TEST(lost_page_is_a_torn_end) {
    fresh();
    kd_db *db = open_db();
    char big[3000];
    big[0] = '"';
    memset(big + 1, 'z', 2990);
    big[2991] = '"';
    big[2992] = 0;
    put(db, "a", "one", "1", NULL);
    put(db, "a", "two", big, NULL);
    put(db, "a", "three", "3", NULL);
    kd_close(db);
    remove_checkpoint();
    int fd = open(seg1(), O_RDWR);
    unsigned char hdr[9];
    long off = 64;
    CHECK(pread(fd, hdr, 9, off) == 9); /* record 1 */
    off += 9 + (long)(hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (unsigned long)hdr[3] << 24);
    long sector = (off + 600) / 512 * 512; /* a whole sector inside record 2 */
    static const unsigned char zeros[512];
    CHECK(pwrite(fd, zeros, 512, sector) == 512);
    close(fd);
    db = open_db();
    CHECK(db != NULL);
    if (db) {
        kd_stats st;
        kd_stats_get(db, &st);
        CHECK_EQ_INT(st.seq, 1);
        CHECK_EQ_STR(get_value(db, "a", "one"), "1");
        kd_check_report rep;
        kd_check(db, 1, &rep);
        CHECK(rep.ok);
        kd_close(db);
    }
}

TEST(newer_format_refused) {
    fresh();
    kd_db *db = open_db();
    put(db, "a", "k", "1", NULL);
    kd_close(db);
    remove_checkpoint();
    int fd = open(seg1(), O_RDWR);
    unsigned char h[64];
    CHECK(pread(fd, h, 64, 0) == 64);
    unsigned char orig[64];
    memcpy(orig, h, 64);
    /* a header that is intact but names format 99: refused as newer, not as corrupt */
    h[8] = 99;
    uint32_t crc = kd__crc32c(0, h, 60);
    memcpy(h + 60, &crc, 4);
    CHECK(pwrite(fd, h, 64, 0) == 64);
    kd_options o;
    kd_options_init(&o);
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_FORMAT);
    CHECK(db == NULL);
    CHECK(strstr(kd_errmsg(NULL), "newer") != NULL);
    /* the same change without a matching checksum is damage, not a newer format */
    memcpy(h, orig, 64);
    h[8] = 99;
    CHECK(pwrite(fd, h, 64, 0) == 64);
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_CORRUPT);
    CHECK(db == NULL);
    close(fd);
}

static kd_db *volatile parent_db; /* global, so a forked child's leak check sees it as reachable */

TEST(second_process_is_refused) {
    fresh();
    kd_db *db = parent_db = open_db();
    pid_t pid = fork();
    if (pid == 0) {
        kd_db *d2 = NULL;
        kd_options o;
        kd_options_init(&o);
        int rc = kd_open(dir, &o, &d2);
        char want[64];
        snprintf(want, sizeof want, "pid %d", (int)getppid());
        int good = rc == KD_BUSY && strstr(kd_errmsg(NULL), want);
        if (!good) fprintf(stderr, "  child: rc %d, message \"%s\", wanted \"%s\"\n", rc, kd_errmsg(NULL), want);
        _exit(good ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    kd_close(db);
    /* killed holder: lock released */
    pid = fork();
    if (pid == 0) {
        kd_db *d2 = NULL;
        kd_options o;
        kd_options_init(&o);
        if (kd_open(dir, &o, &d2) != KD_OK) _exit(1);
        put(d2, "a", "k", "1", NULL);
        for (;;) pause();
    }
    usleep(300000);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    db = open_db();
    CHECK(db != NULL);
    if (db) CHECK_EQ_STR(get_value(db, "a", "k"), "1");
    kd_close(db);
}

TEST(segments_rotate_and_cold_values) {
    fresh();
    kd_db *db = NULL;
    kd_options o;
    kd_options_init(&o);
    o.segment_bytes = 8192;
    o.cache_bytes = 0; /* every read goes to the log */
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_OK);
    for (int i = 0; i < 300; i++) {
        char k[16], v[128];
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "{\"n\":%d,\"pad\":\"%060d\"}", i, i);
        put(db, "r", k, v, NULL);
    }
    /* a record far larger than a segment */
    char *bigv = malloc(1200000); /* larger than the segment's mapping: it is remapped */
    bigv[0] = '"';
    memset(bigv + 1, 'b', 1199990);
    bigv[1199991] = '"';
    bigv[1199992] = 0;
    kd_entry be;
    CHECK_EQ_INT(put(db, "r", "big", bigv, NULL), KD_OK);
    CHECK_EQ_INT(kd_get(db, "r", "big", &be), KD_OK);
    CHECK_EQ_STR(be.value, bigv);
    kd_entry_clear(&be);
    put(db, "r", "after-big", "1", NULL);
    kd_stats st;
    kd_stats_get(db, &st);
    CHECK(st.segments > 5);
    char *v = get_value(db, "r", "k7");
    CHECK(v && strstr(v, "\"n\":7") != NULL);
    char *before = dump(db);
    kd_close(db);
    remove_checkpoint();
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_OK);
    char *after = dump(db);
    CHECK_EQ_STR(after, before);
    CHECK_EQ_INT(kd_get(db, "r", "big", &be), KD_OK);
    CHECK_EQ_STR(be.value, bigv);
    kd_entry_clear(&be);
    free(bigv);
    kd_check_report rep;
    kd_check(db, 1, &rep);
    CHECK(rep.ok);
    CHECK_EQ_INT(rep.segments, st.segments);
    kd_close(db);
    free(before);
    free(after);
}

static kd_db *shared_db;
static void *writer(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 50; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "t%ld-%d", id, i);
        snprintf(v, sizeof v, "%d", i);
        if (put(shared_db, "conc", k, v, NULL) != KD_OK) return (void *)1;
    }
    return NULL;
}

TEST(concurrent_writers_share_fsyncs) {
    fresh();
    shared_db = open_db();
    pthread_t th[8];
    for (long i = 0; i < 8; i++) pthread_create(&th[i], NULL, writer, (void *)i);
    int fails = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(th[i], &r);
        fails += r != NULL;
    }
    CHECK_EQ_INT(fails, 0);
    kd_stats st;
    kd_stats_get(shared_db, &st);
    CHECK_EQ_INT(st.seq, 400);
    CHECK_EQ_INT(st.keys, 400);
    CHECK(st.fsyncs < 400); /* group commit shared some */
    printf("     (400 durable puts from 8 threads took %llu fsyncs)\n", (unsigned long long)st.fsyncs);
    kd_check_report rep;
    kd_check(shared_db, 1, &rep);
    CHECK(rep.ok);
    kd_close(shared_db);
}

/* The hot-value cache never answers with an outdated version. */
TEST(cache_follows_writes) {
    fresh();
    kd_db *db = open_db();
    put(db, "c", "k", "1", NULL);
    CHECK_EQ_STR(get_value(db, "c", "k"), "1"); /* now cached */
    CHECK_EQ_STR(get_value(db, "c", "k"), "1");
    put(db, "c", "k", "2", NULL);
    CHECK_EQ_STR(get_value(db, "c", "k"), "2");
    kd_batch *b = kd_batch_new();
    kd_batch_put(b, "c", "k", "3", 1);
    kd_batch_commit(db, b, NULL, NULL);
    kd_batch_free(b);
    CHECK_EQ_STR(get_value(db, "c", "k"), "3");
    kd_delete(db, "c", "k", NULL);
    kd_entry e;
    CHECK_EQ_INT(kd_get(db, "c", "k", &e), KD_NOTFOUND);
    kd_entry_clear(&e);
    put(db, "c", "k", "4", NULL);
    CHECK_EQ_STR(get_value(db, "c", "k"), "4");
    kd_stats st;
    kd_stats_get(db, &st);
    CHECK(st.cache_hits > 0);
    kd_close(db);
}

static _Atomic long acked; /* the writer's last acknowledged value */
static _Atomic int stop_readers;
static void *cache_writer(void *arg) {
    kd_db *db = arg;
    for (long i = 1; i <= 150; i++) {
        char v[32];
        snprintf(v, sizeof v, "%ld", i);
        if (put(db, "c", "hot", v, NULL) != KD_OK) return (void *)1;
        atomic_store(&acked, i);
    }
    atomic_store(&stop_readers, 1);
    return NULL;
}
static void *cache_reader(void *arg) {
    kd_db *db = arg;
    long last_seen = 0, bad = 0;
    while (!atomic_load(&stop_readers)) {
        long floor = atomic_load(&acked); /* acknowledged before this read began */
        kd_entry e;
        if (kd_get(db, "c", "hot", &e) != KD_OK) continue;
        long v = atol(e.value);
        kd_entry_clear(&e);
        if (v < floor || v < last_seen) bad++;
        last_seen = v;
        sched_yield(); /* let the writer run even where threads are serialized (valgrind) */
    }
    return (void *)bad;
}

TEST(cache_consistent_under_concurrency) {
    fresh();
    kd_db *db = open_db();
    atomic_store(&acked, 0);
    atomic_store(&stop_readers, 0);
    pthread_t w, r[3];
    pthread_create(&w, NULL, cache_writer, db);
    for (int i = 0; i < 3; i++) pthread_create(&r[i], NULL, cache_reader, db);
    void *res;
    pthread_join(w, &res);
    CHECK(res == NULL);
    long bad = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(r[i], &res);
        bad += (long)res;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_STR(get_value(db, "c", "hot"), "150");
    kd_close(db);
}

static _Atomic int stop_lister;
static void *lister(void *arg) {
    kd_db *db = arg;
    long bad = 0;
    uint64_t last_seq = 0;
    while (!atomic_load(&stop_lister)) {
        kd_stats st;
        kd_stats_get(db, &st);
        if (st.seq < last_seq) bad++; /* visible seq never goes back */
        last_seq = st.seq;
        kd_ns_info *ns;
        size_t n;
        if (kd_list_namespaces(db, 0, &ns, &n) == KD_OK) kd_ns_list_free(ns, n);
        char **keys;
        if (kd_list_keys(db, "conc", NULL, 10, &keys, &n) == KD_OK) kd_keys_free(keys, n);
        kd_entry *h;
        size_t total;
        if (kd_history(db, "conc", "t0-0", 0, 0, 1, &h, &n, &total) == KD_OK) kd_entries_free(h, n);
        kd_feed *f;
        kd_entry e;
        if (kd_feed_open(db, st.seq > 5 ? st.seq - 5 : 0, &f) == KD_OK) {
            while (kd_feed_next(f, &e) == KD_OK) kd_entry_clear(&e);
            kd_feed_close(f);
        }
        sched_yield();
    }
    return (void *)bad;
}

/* Listings, stats, history and the feed while writers commit (for TSan). */
TEST(reads_during_writes) {
    fresh();
    shared_db = open_db();
    atomic_store(&stop_lister, 0);
    pthread_t th[4], l;
    pthread_create(&l, NULL, lister, shared_db);
    for (long i = 0; i < 4; i++) pthread_create(&th[i], NULL, writer, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    atomic_store(&stop_lister, 1);
    void *res;
    pthread_join(l, &res);
    CHECK(res == NULL);
    kd_stats st;
    kd_stats_get(shared_db, &st);
    CHECK_EQ_INT(st.seq, 200);
    kd_close(shared_db);
}

/* A process that never closes still leaves a recent checkpoint behind. */
TEST(automatic_checkpoint) {
    fresh();
    kd_db *db = NULL;
    kd_options o;
    kd_options_init(&o);
    o.checkpoint_bytes = 4096;
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_OK);
    write_history(db, 100);
    char p[300];
    snprintf(p, sizeof p, "%s/checkpoint", dir);
    int found = 0;
    for (int i = 0; i < 50 && !found; i++) {
        usleep(20000);
        found = file_size(p) > 0;
    }
    CHECK(found);
    /* copy while open (as a crash would leave it) and reopen the copy */
    char *before = dump(db);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s.copy && cp -r %s %s.copy", dir, dir, dir);
    CHECK(system(cmd) == 0);
    kd_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mv %s.copy %s", dir, dir, dir);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(kd_open(dir, &o, &db), KD_OK);
    char *after = dump(db);
    CHECK_EQ_STR(after, before);
    kd_close(db);
    free(before);
    free(after);
}

TEST(sync_modes) {
    kd_sync_mode modes[2] = {KD_SYNC_NORMAL, KD_SYNC_OFF};
    for (int m = 0; m < 2; m++) {
        fresh();
        kd_db *db = NULL;
        kd_options o;
        kd_options_init(&o);
        o.sync = modes[m];
        CHECK_EQ_INT(kd_open(dir, &o, &db), KD_OK);
        put(db, "a", "k", "1", NULL);
        CHECK_EQ_STR(get_value(db, "a", "k"), "1");
        CHECK_EQ_INT(kd_sync(db), KD_OK);
        kd_close(db);
        db = open_db();
        CHECK_EQ_STR(get_value(db, "a", "k"), "1");
        kd_close(db);
    }
}

int main(void) {
    RUN(put_get_canonical);
    RUN(bad_input_writes_nothing);
    RUN(time_travel_boundaries);
    RUN(diff_versions);
    RUN(conditional_puts);
    RUN(batches);
    RUN(dedup_identical_values);
    RUN(unicode_keys_and_listing);
    RUN(feed_reads_everything_in_order);
    RUN(reopen_keeps_everything);
    RUN(checkpoint_plus_log_tail);
    RUN(torn_tail_is_cut);
    RUN(batch_cut_by_crash_leaves_nothing);
    RUN(mid_log_corruption_is_reported);
    RUN(crafted_checkpoint_is_ignored);
    RUN(lost_page_is_a_torn_end);
    RUN(newer_format_refused);
    RUN(second_process_is_refused);
    RUN(segments_rotate_and_cold_values);
    RUN(concurrent_writers_share_fsyncs);
    RUN(reads_during_writes);
    RUN(cache_follows_writes);
    RUN(cache_consistent_under_concurrency);
    RUN(automatic_checkpoint);
    RUN(sync_modes);
    fresh();
    return t_done();
}
