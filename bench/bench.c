/*
** bench.c — `make bench`: KoruDelta and SQLite side by side, in one run.
**
** Every figure is measured for KoruDelta through the public API (include/korudelta.h)
** and, where a comparison makes sense, for SQLite set up the way a careful implementer
** would for the same job: WAL, synchronous=FULL, a history table keyed by
** (ns, key, ts) WITHOUT ROWID, prepared statements, a 64 MiB page cache (KoruDelta's
** default value cache budget) and memory-mapped reads. Each side works in its own fresh
** directory under --dir. Timed figures alternate KoruDelta and SQLite rounds and keep
** each side's median, so a burst of outside disk activity does not land on one side.
** The vector search figures (group "vector", bench_vector.c) take hnswlib and exact
** search as their baselines instead.
**
** Output: a table on stdout and a JSON list at --json, one object per figure:
** {"name","unit","kdelta","baseline","baseline_name","ratio"}; ratio > 1 means KoruDelta
** is better (kdelta/baseline for throughput, baseline/kdelta for times and sizes).
** Exit status: 0 when every measurement ran, whether or not its goal was met;
** 1 when one failed (an API error or a wrong value read back); 2 on bad usage.
** docs/benchmarks.md says exactly what each figure measures.
**
** Uses only the public API of the library, SQLite, POSIX and bench_common.c (bench.h:
** helpers, values, writer threads, the table of figures, the SQLite set-up); hnswlib
** only through bench_vector.c.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "korudelta.h"
#include "bench.h"

#define NS "users"
#define HOT_KEY "hot"
#define HOT_VERSIONS 1000     /* versions of the key that get_at reads */
#define LOAD_BATCH 10000      /* versions per commit while loading the big databases */
#define BATCH_ITEMS 1000      /* puts per commit in put_batch_1000 */
#define BATCH_KEYS 100000     /* keys put_batch_1000 cycles through */
#define WRITERS 8

/* ---- settings and small helpers --------------------------------------------------- */

const char *const g_prog = "bench";
/* config is in bench.h */
config g_cfg = {.json = "build/bench.json", .kdelta = "build/kdelta", .keys = 100000,
                .vpk = 10, .seconds = 1.0, .rounds = 9, .sqlite_mmap = SQLITE_MMAP_DEFAULT};

/* Whether group g (big, fsync, put1, put8, batch, query, viewput, binary, vector) is to
** run. */
int wanted(const char *g) { return !g_cfg.only || listed(g_cfg.only, g); }

/* Key k of the big database: "user0000042". Names are KEY_W bytes apart in one block. */
#define KEY_W 16
static char *g_keys;
static const char *big_key(uint32_t k) { return g_keys + (size_t)k * KEY_W; }

/* Value of version v (0 = oldest) of key k of the big database. */
static uint64_t big_n(uint32_t k, uint32_t v) { return (uint64_t)v * g_cfg.keys + k; }

static int check_bytes(const char *what, const char *got, size_t got_len, const char *want,
                       size_t want_len) {
    if (got && got_len == want_len && memcmp(got, want, want_len) == 0) return 0;
    fail("%s: read back %.*s, expected %.*s", what, got ? (int)got_len : 6, got ? got : "(null)",
         (int)want_len, want);
    return -1;
}

/* ---- machine facts ---------------------------------------------------------------- */

/* Resident memory from /proc/self/status: total, anonymous and file-backed, in bytes. */
typedef struct mem { long rss, anon, file; } mem;
static mem mem_now(void) {
    mem m = {-1, -1, -1};
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) m.rss = kb * 1024;
        else if (sscanf(line, "RssAnon: %ld kB", &kb) == 1) m.anon = kb * 1024;
        else if (sscanf(line, "RssFile: %ld kB", &kb) == 1) m.file = kb * 1024;
    }
    if (f) fclose(f);
    return m;
}

/* ---- SQLite queries (SQ_SCHEMA and SQ_INSERT are in bench.h) -------------------- */

#define SQ_LATEST "SELECT value FROM history WHERE ns=?1 AND key=?2 ORDER BY ts DESC LIMIT 1"
#define SQ_AT \
    "SELECT value FROM history WHERE ns=?1 AND key=?2 AND ts<=?3 ORDER BY ts DESC LIMIT 1"

/* ---- fsync ceiling ---------------------------------------------------------------- */

/* 100-byte writes, each followed by fdatasync, for `seconds`: ops/s. With prealloc, the
** writes overwrite a file already filled with zeros (and synced), as KoruDelta's log does,
** so fdatasync has no file size to journal; without, they append to a new file. */
#define PREALLOC_BYTES (16u << 20)
static double run_fsync(const char *dir, double seconds, int prealloc) {
    char *path = path_join(dir, "fsync.dat");
    char buf[100];
    static char zeros[1 << 16];
    uint64_t n = 0;
    double t = 0;
    int fd = path ? open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644) : -1;
    if (fd < 0) {
        fail("fsync ceiling: cannot create %s", path ? path : dir);
        goto out;
    }
    for (size_t off = 0; prealloc && off < PREALLOC_BYTES; off += sizeof zeros) {
        if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros) {
            fail("fsync ceiling: %s", strerror(errno));
            goto out;
        }
    }
    if (fsync(fd) != 0) {
        fail("fsync ceiling: %s", strerror(errno));
        goto out;
    }
    memset(buf, 'x', sizeof buf);
    double t0 = mono();
    do {
        off_t off = prealloc ? (off_t)((n * sizeof buf) % (PREALLOC_BYTES - sizeof buf))
                             : (off_t)(n * sizeof buf);
        if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf || fdatasync(fd) != 0) {
            fail("fsync ceiling: %s", strerror(errno));
            n = 0;
            break;
        }
        n++;
    } while ((t = mono() - t0) < seconds);
out:
    if (fd >= 0) close(fd);
    if (path) unlink(path);
    free(path);
    return n ? (double)n / t : NAN;
}

static void bench_fsync(void) {
    double app[MAX_ROUNDS], pre[MAX_ROUNDS];
    for (int r = 0; r < g_cfg.rounds; r++) {
        app[r] = run_fsync(g_cfg.dir, g_cfg.seconds, 0);
        pre[r] = run_fsync(g_cfg.dir, g_cfg.seconds, 1);
        printf("  %-24s round %d: append %9.1f   overwrite %9.1f\n", "fsync_ceiling", r + 1,
               app[r], pre[r]);
    }
    double a = median(app, g_cfg.rounds), p = median(pre, g_cfg.rounds);
    add_figure((figure){.name = "fsync_ceiling", .unit = "ops/s", .kd = a, .base = NAN,
                        .higher_better = 1});
    add_figure((figure){.name = "fsync_ceiling_overwrite", .unit = "ops/s", .kd = p, .base = NAN,
                        .higher_better = 1});
    fflush(stdout);
}

/* ---- durable single puts, 1 or 8 threads ------------------------------------------ */

/* The KoruDelta side of a writer (bench.h; w->kd is the shared kd_db). */
static void *kd_writer(void *arg) {
    writer *w = arg;
    kd_db *db = w->kd;
    char key[32], val[VALUE_MAX];
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        put_key(key, w->id, w->kd_n);
        size_t len = make_value(val, key, w->kd_n);
        int rc = kd_put(db, NS, key, val, len, NULL, NULL);
        if (rc != KD_OK) {
            fail("kd_put: %s", kd_errmsg(db));
            w->err = 1;
            break;
        }
        w->kd_n++;
        w->ops++;
    }
    return NULL;
}

typedef struct put_ctx {
    writer w[WRITERS];
    int nt;
    kd_db *kd;
    sqlite3 *sq[WRITERS];
    char *kd_dir, *sq_path;
} put_ctx;

/* Fresh databases for one put figure: <dir>/<name>.kd and <dir>/<name>.sqlite. */
static int put_setup(put_ctx *c, const char *name, int nt) {
    char buf[128];
    kd_options o;
    memset(c, 0, sizeof *c);
    c->nt = nt;
    snprintf(buf, sizeof buf, "%s.kd", name);
    c->kd_dir = path_join(g_cfg.dir, buf);
    snprintf(buf, sizeof buf, "%s.sqlite", name);
    c->sq_path = path_join(g_cfg.dir, buf);
    if (!c->kd_dir || !c->sq_path) return -1;
    kd_options_init(&o);
    o.sync = KD_SYNC_FULL;
    if (kd_open(c->kd_dir, &o, &c->kd) != KD_OK) {
        fail("kd_open %s: %s", c->kd_dir, kd_errmsg(NULL));
        return -1;
    }
    for (int i = 0; i < nt; i++) {
        c->w[i].id = i;
        c->w[i].kd = c->kd;
        c->w[i].ns = NS;
        if (!(c->sq[i] = sq_open(c->sq_path, g_cfg.sqlite_mmap))) return -1;
        c->w[i].sq = c->sq[i];
        if (!(c->w[i].ins = sq_prepare(c->sq[i], SQ_INSERT))) return -1;
    }
    return 0;
}

/* Checks that each side holds exactly the puts it acknowledged, then closes both. */
static void put_teardown(put_ctx *c, uint64_t kd_puts, uint64_t sq_puts) {
    if (c->kd) {
        kd_stats st;
        if (kd_stats_get(c->kd, &st) != KD_OK) fail("kd_stats_get: %s", kd_errmsg(c->kd));
        else if (st.versions != kd_puts)
            fail("KoruDelta holds %llu versions, %llu puts were acknowledged",
                 (unsigned long long)st.versions, (unsigned long long)kd_puts);
        if (kd_close(c->kd) != KD_OK) fail("kd_close: %s", kd_errmsg(NULL));
    }
    if (c->sq[0]) {
        int64_t n = sq_count(c->sq[0]);
        if (n != (int64_t)sq_puts)
            fail("SQLite holds %lld rows, %llu inserts were acknowledged", (long long)n,
                 (unsigned long long)sq_puts);
    }
    for (int i = 0; i < WRITERS; i++) {
        sqlite3_finalize(c->w[i].ins);
        sqlite3_close(c->sq[i]);
    }
    free(c->kd_dir);
    free(c->sq_path);
}

/* Alternating rounds: kd, sqlite, kd, sqlite, ... Medians into *kd and *sq. */
typedef double (*round_fn)(void *ctx, int sqlite_side);

static void rounds(const char *name, round_fn fn, void *ctx, double *kd, double *sq) {
    double a[MAX_ROUNDS], b[MAX_ROUNDS];
    for (int r = 0; r < g_cfg.rounds; r++) {
        a[r] = fn(ctx, 0);
        b[r] = fn(ctx, 1);
        printf("  %-24s round %d: kdelta %12.1f   sqlite %12.1f\n", name, r + 1, a[r], b[r]);
        fflush(stdout);
    }
    *kd = median(a, g_cfg.rounds);
    *sq = median(b, g_cfg.rounds);
}

static double put_round(void *ctx, int sqlite_side) {
    put_ctx *c = ctx;
    return run_writers(c->w, c->nt, sqlite_side ? sq_writer : kd_writer, g_cfg.seconds);
}

/* put_durable_1thread / put_durable_8threads. Each writer keeps a counter per side. */
static void bench_put_durable(const char *name, int nt, double goal, const char *goal_text) {
    put_ctx *c = calloc(1, sizeof *c);
    double kd = NAN, sq = NAN;
    if (!c) {
        fail("out of memory");
        return;
    }
    uint64_t kd_fsyncs0 = 0;
    if (put_setup(c, name, nt) == 0) {
        kd_stats st;
        if (kd_stats_get(c->kd, &st) == KD_OK) kd_fsyncs0 = st.fsyncs;
        rounds(name, put_round, c, &kd, &sq);
        uint64_t kdn = 0, sqn = 0;
        for (int i = 0; i < nt; i++) {
            kdn += c->w[i].kd_n;
            sqn += c->w[i].sq_n;
        }
        if (kd_stats_get(c->kd, &st) == KD_OK && st.fsyncs > kd_fsyncs0)
            printf("  %-24s KoruDelta: %llu puts, %llu fsyncs (%.2f puts per fsync)\n", name,
                   (unsigned long long)kdn, (unsigned long long)(st.fsyncs - kd_fsyncs0),
                   (double)kdn / (double)(st.fsyncs - kd_fsyncs0));
        put_teardown(c, kdn, sqn);
    } else {
        put_teardown(c, 0, 0);
    }
    add_figure((figure){.name = name, .unit = "ops/s", .kd = kd, .base = sq, .higher_better = 1,
                        .base_name = nt == 1 ? "sqlite: 1 INSERT per transaction"
                                             : "sqlite: 8 connections, 1 INSERT per transaction",
                        .goal_kind = GOAL_RATIO_MIN, .goal = goal, .goal_text = goal_text});
    free(c);
}

/* ---- batches of 1,000 ------------------------------------------------------------- */

typedef struct batch_ctx {
    kd_db *kd;
    sqlite3 *sq;
    sqlite3_stmt *ins, *begin, *commit;
    uint64_t kd_n, sq_n;   /* puts acknowledged so far */
    int64_t last_ts;
} batch_ctx;

static void batch_key(char *key, uint64_t n) {
    char *p = put_s(key, "b");
    p = put_u(p, n % BATCH_KEYS);
    *p = 0;
}

static double batch_round(void *ctx, int sqlite_side) {
    batch_ctx *c = ctx;
    char key[32], val[VALUE_MAX];
    uint64_t ops = 0;
    double t0 = mono(), t;
    do {
        if (!sqlite_side) {
            kd_batch *b = kd_batch_new();
            int rc = b ? KD_OK : KD_NOMEM;
            for (int i = 0; i < BATCH_ITEMS && rc == KD_OK; i++) {
                batch_key(key, c->kd_n + (uint64_t)i);
                size_t len = make_value(val, key, c->kd_n + (uint64_t)i);
                rc = kd_batch_put(b, NS, key, val, len);
            }
            if (rc == KD_OK) rc = kd_batch_commit(c->kd, b, NULL, NULL);
            kd_batch_free(b);
            if (rc != KD_OK) {
                fail("kd batch: %s", kd_errmsg(c->kd));
                return NAN;
            }
            c->kd_n += BATCH_ITEMS;
        } else {
            int64_t ts = next_ts(&c->last_ts);
            if (sqlite3_step(c->begin) != SQLITE_DONE) {
                fail("sqlite BEGIN: %s", sqlite3_errmsg(c->sq));
                return NAN;
            }
            sqlite3_reset(c->begin);
            for (int i = 0; i < BATCH_ITEMS; i++) {
                batch_key(key, c->sq_n + (uint64_t)i);
                size_t len = make_value(val, key, c->sq_n + (uint64_t)i);
                if (sq_insert(c->ins, NS, key, ts, val, len) != 0) return NAN;
            }
            if (sqlite3_step(c->commit) != SQLITE_DONE) {
                fail("sqlite COMMIT: %s", sqlite3_errmsg(c->sq));
                return NAN;
            }
            sqlite3_reset(c->commit);
            c->sq_n += BATCH_ITEMS;
        }
        ops += BATCH_ITEMS;
    } while ((t = mono() - t0) < g_cfg.seconds);
    return (double)ops / t;
}

static void bench_put_batch(void) {
    batch_ctx c;
    put_ctx pc; /* reuses the set-up and the final count check */
    double kd = NAN, sq = NAN;
    memset(&c, 0, sizeof c);
    if (put_setup(&pc, "put_batch_1000", 1) == 0) {
        c.kd = pc.kd;
        c.sq = pc.sq[0];
        c.ins = pc.w[0].ins;
        c.begin = sq_prepare(c.sq, "BEGIN");
        c.commit = sq_prepare(c.sq, "COMMIT");
        if (c.begin && c.commit) rounds("put_batch_1000", batch_round, &c, &kd, &sq);
        sqlite3_finalize(c.begin);
        sqlite3_finalize(c.commit);
    }
    put_teardown(&pc, c.kd_n, c.sq_n);
    add_figure((figure){.name = "put_batch_1000", .unit = "ops/s", .kd = kd, .base = sq,
                        .higher_better = 1, .base_name = "sqlite: 1,000 INSERTs per transaction",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 1.5, .goal_text = ">= 1.5x"});
}

/* ---- the big database: load (child process for a clean RSS figure) ---------------- */

typedef struct load_report {
    int ok;
    double seconds;            /* loading keys x vpk versions */
    mem before, last_commit, after, trimmed;
    size_t heap_used0, heap_used1, heap_free1; /* mallinfo2: in use / free in the heap */
    kd_stats st;
    int64_t hot_ts[HOT_VERSIONS];
} load_report;

/* Round v of the load: versions v of every key, LOAD_BATCH keys per commit. */
static int kd_load(kd_db *db) {
    char val[VALUE_MAX];
    for (uint32_t v = 0; v < g_cfg.vpk; v++) {
        for (uint32_t k0 = 0; k0 < g_cfg.keys; k0 += LOAD_BATCH) {
            kd_batch *b = kd_batch_new();
            int rc = b ? KD_OK : KD_NOMEM;
            for (uint32_t k = k0; k < k0 + LOAD_BATCH && k < g_cfg.keys && rc == KD_OK; k++) {
                size_t len = make_value(val, big_key(k), big_n(k, v));
                rc = kd_batch_put(b, NS, big_key(k), val, len);
            }
            if (rc == KD_OK) rc = kd_batch_commit(db, b, NULL, NULL);
            kd_batch_free(b);
            if (rc != KD_OK) {
                fail("loading: %s", kd_errmsg(db));
                return -1;
            }
        }
    }
    return 0;
}

/* In a forked child, so that nothing else has touched its heap: RSS before kd_open of an
** empty database, after loading it with the value cache disabled, and the rest of the
** report. Then adds the hot key and closes the database cleanly. */
static void load_child(const char *dir, int fd) {
    static load_report r;
    kd_options o;
    kd_db *db = NULL;
    char val[VALUE_MAX];
    kd_options_init(&o);
    o.sync = KD_SYNC_FULL;
    o.cache_bytes = 0;
    struct mallinfo2 mi = mallinfo2();
    r.heap_used0 = mi.uordblks + mi.hblkhd;
    r.before = mem_now();
    if (kd_open(dir, &o, &db) != KD_OK) {
        fail("kd_open %s: %s", dir, kd_errmsg(NULL));
        goto out;
    }
    double t0 = mono();
    if (kd_load(db) != 0) goto out;
    r.seconds = mono() - t0;
    /* A background checkpoint may still be running and holding its snapshot buffer
    ** (~70 bytes a version, freed when it is written): wait for it, so that the figure
    ** is the memory the loaded database keeps, not a transient. */
    r.last_commit = mem_now();
    if (kd_checkpoint(db) != KD_OK) {
        fail("kd_checkpoint: %s", kd_errmsg(db));
        goto out;
    }
    r.after = mem_now();
    mi = mallinfo2();
    r.heap_used1 = mi.uordblks + mi.hblkhd;
    r.heap_free1 = mi.fordblks;
    malloc_trim(0);
    r.trimmed = mem_now();
    if (kd_stats_get(db, &r.st) != KD_OK) {
        fail("kd_stats_get: %s", kd_errmsg(db));
        goto out;
    }
    for (int i = 0; i < HOT_VERSIONS; i++) {
        kd_entry e;
        size_t len = make_value(val, HOT_KEY, (uint64_t)i);
        if (kd_put(db, NS, HOT_KEY, val, len, NULL, &e) != KD_OK) {
            fail("kd_put hot: %s", kd_errmsg(db));
            goto out;
        }
        r.hot_ts[i] = e.timestamp;
        kd_entry_clear(&e);
    }
    int rc = kd_close(db);
    db = NULL;
    if (rc != KD_OK) {
        fail("kd_close: %s", kd_errmsg(NULL));
        goto out;
    }
    r.ok = 1;
out:
    if (db) kd_close(db);
    write_all(fd, &r, sizeof r);
    _exit(r.ok ? 0 : 1);
}

static int kd_load_forked(const char *dir, load_report *r) {
    int p[2];
    if (pipe(p) != 0) {
        fail("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fail("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        load_child(dir, p[1]);
    }
    close(p[1]);
    int got = read_all(p[0], r, sizeof *r) == 0;
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!got || !r->ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail("loading KoruDelta failed (child status %d)", status);
        return -1;
    }
    return 0;
}

/* Loads the same versions as kd_load (*seconds: the time that took), then the hot key. */
static int sq_load(sqlite3 *db, int64_t *hot_ts, double *seconds) {
    char val[VALUE_MAX];
    double t0 = mono();
    int64_t last = 0;
    sqlite3_stmt *ins = sq_prepare(db, SQ_INSERT);
    int rc = ins ? 0 : -1;
    for (uint32_t v = 0; v < g_cfg.vpk && rc == 0; v++) {
        for (uint32_t k0 = 0; k0 < g_cfg.keys && rc == 0; k0 += LOAD_BATCH) {
            int64_t ts = next_ts(&last);
            if ((rc = sq_exec(db, "BEGIN")) != 0) break;
            for (uint32_t k = k0; k < k0 + LOAD_BATCH && k < g_cfg.keys && rc == 0; k++) {
                size_t len = make_value(val, big_key(k), big_n(k, v));
                rc = sq_insert(ins, NS, big_key(k), ts, val, len);
            }
            if (rc == 0) rc = sq_exec(db, "COMMIT");
        }
    }
    *seconds = mono() - t0;
    /* The hot key's versions, one commit (timestamps are ours to choose). */
    if (rc == 0) rc = sq_exec(db, "BEGIN");
    for (int i = 0; i < HOT_VERSIONS && rc == 0; i++) {
        size_t len = make_value(val, HOT_KEY, (uint64_t)i);
        hot_ts[i] = next_ts(&last);
        rc = sq_insert(ins, NS, HOT_KEY, hot_ts[i], val, len);
    }
    if (rc == 0) rc = sq_exec(db, "COMMIT");
    sqlite3_finalize(ins);
    return rc;
}

/* ---- reads ---------------------------------------------------------------------- */

typedef struct read_ctx {
    kd_db *kd;
    sqlite3 *sq;
    sqlite3_stmt *latest, *at;
    const int64_t *kd_hot_ts, *sq_hot_ts;
    uint64_t seed;
    uint64_t sink;            /* keeps the compiler from dropping the reads */
    char buf[VALUE_MAX * 4];  /* SQLite values are copied out, as a caller must */
} read_ctx;

/* Last index i with ts[i] <= t (ts ascending, t >= ts[0]). */
static int version_at(const int64_t *ts, int n, int64_t t) {
    int lo = 0, hi = n; /* first index with ts > t */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ts[mid] <= t) lo = mid + 1;
        else hi = mid;
    }
    return lo - 1;
}

/* One get: the value of big key k (latest) or of the hot key at time t, copied into
** c->buf; its length, or -1. */
static long kd_read(read_ctx *c, uint32_t k, int64_t t, int at) {
    kd_entry e;
    int rc = at ? kd_get_at(c->kd, NS, HOT_KEY, t, &e) : kd_get(c->kd, NS, big_key(k), &e);
    if (rc != KD_OK || !e.value || e.value_len > sizeof c->buf) {
        fail("%s: %s", at ? "kd_get_at" : "kd_get", rc != KD_OK ? kd_errmsg(c->kd) : "no value");
        kd_entry_clear(&e);
        return -1;
    }
    long n = (long)e.value_len;
    memcpy(c->buf, e.value, e.value_len);
    kd_entry_clear(&e);
    return n;
}

static long sq_read(read_ctx *c, uint32_t k, int64_t t, int at) {
    sqlite3_stmt *st = at ? c->at : c->latest;
    long n = -1;
    sqlite3_bind_text(st, 1, NS, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, at ? HOT_KEY : big_key(k), -1, SQLITE_STATIC);
    if (at) sqlite3_bind_int64(st, 3, t);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        if (p && len >= 0 && (size_t)len <= sizeof c->buf) {
            memcpy(c->buf, p, (size_t)len);
            n = len;
        }
    }
    if (n < 0)
        fail("sqlite %s: no row (%s)", at ? "as-of read" : "latest read", sqlite3_errmsg(c->sq));
    sqlite3_reset(st);
    return n;
}

/* Checks the bytes a read left in c->buf against the value that should be there. */
static int check_read(read_ctx *c, long n, uint32_t k, int64_t t, int at, int sqlite_side) {
    char want[VALUE_MAX];
    size_t wn;
    if (at) {
        const int64_t *ts = sqlite_side ? c->sq_hot_ts : c->kd_hot_ts;
        wn = make_value(want, HOT_KEY, (uint64_t)version_at(ts, HOT_VERSIONS, t));
    } else {
        wn = make_value(want, big_key(k), big_n(k, g_cfg.vpk - 1));
    }
    return check_bytes(sqlite_side ? "sqlite read" : "kdelta read", c->buf, (size_t)n, want, wn);
}

static int64_t random_time(read_ctx *c, const int64_t *ts) {
    uint64_t span = (uint64_t)(ts[HOT_VERSIONS - 1] - ts[0]) + 1;
    return ts[0] + (int64_t)(rnd(&c->seed) % span);
}

/* Timed random reads for g_cfg.seconds: reads/s. Every 1,024th read is checked. */
static double read_round(read_ctx *c, int sqlite_side, int at) {
    const int64_t *ts = sqlite_side ? c->sq_hot_ts : c->kd_hot_ts;
    uint64_t ops = 0;
    double t0 = mono(), t;
    do {
        for (int i = 0; i < 64; i++, ops++) {
            uint32_t k = (uint32_t)(rnd(&c->seed) % g_cfg.keys);
            int64_t when = at ? random_time(c, ts) : 0;
            long n = sqlite_side ? sq_read(c, k, when, at) : kd_read(c, k, when, at);
            if (n < 0) return NAN;
            c->sink += (uint64_t)n + (unsigned char)c->buf[n / 2];
            if ((ops & 1023) == 0 && check_read(c, n, k, when, at, sqlite_side) != 0) return NAN;
        }
    } while ((t = mono() - t0) < g_cfg.seconds);
    return (double)ops / t;
}

static double latest_round(void *ctx, int sqlite_side) { return read_round(ctx, sqlite_side, 0); }
static double at_round(void *ctx, int sqlite_side) { return read_round(ctx, sqlite_side, 1); }

/* Warms both sides' caches: every key's current value once, and 10,000 as-of reads,
** each one checked. */
static int warm_and_verify(read_ctx *c, int sqlite_side) {
    for (uint32_t k = 0; k < g_cfg.keys; k++) {
        long n = sqlite_side ? sq_read(c, k, 0, 0) : kd_read(c, k, 0, 0);
        if (n < 0 || check_read(c, n, k, 0, 0, sqlite_side) != 0) return -1;
    }
    const int64_t *ts = sqlite_side ? c->sq_hot_ts : c->kd_hot_ts;
    for (int i = 0; i < 10000; i++) {
        int64_t when = i < HOT_VERSIONS ? ts[i] : random_time(c, ts); /* boundaries too */
        long n = sqlite_side ? sq_read(c, 0, when, 1) : kd_read(c, 0, when, 1);
        if (n < 0 || check_read(c, n, 0, when, 1, sqlite_side) != 0) return -1;
    }
    return 0;
}

/* ---- the big-database figures ------------------------------------------------------ */

static void bench_big(void) {
    char *kd_dir = path_join(g_cfg.dir, "big.kd"), *sq_path = path_join(g_cfg.dir, "big.sqlite");
    static load_report lr;
    static int64_t sq_hot_ts[HOT_VERSIONS];
    uint64_t versions = (uint64_t)g_cfg.keys * g_cfg.vpk;
    double kd_load_s = NAN, sq_load_s = NAN, reopen = NAN, sq_open_s = NAN;
    double idx = NAN, idx_anon = NAN;
    double lat_kd = NAN, lat_sq = NAN, at_kd = NAN, at_sq = NAN;
    kd_db *kd = NULL;
    sqlite3 *sq = NULL;
    read_ctx *rc = calloc(1, sizeof *rc);
    if (!kd_dir || !sq_path || !rc) {
        fail("out of memory");
        goto out;
    }

    printf("loading %llu versions (%u keys x %u) + %d versions of one key into each side...\n",
           (unsigned long long)versions, g_cfg.keys, g_cfg.vpk, HOT_VERSIONS);
    fflush(stdout);
    if (kd_load_forked(kd_dir, &lr) == 0) {
        kd_load_s = lr.seconds;
        idx = (double)(lr.after.rss - lr.before.rss) / (double)versions;
        idx_anon = (double)(lr.after.anon - lr.before.anon) / (double)versions;
        printf("  kdelta: loaded in %.3f s (%.0f versions/s; batches of %d, sync=full, cache 0)\n",
               lr.seconds, (double)versions / lr.seconds, LOAD_BATCH);
        printf("  kdelta RSS over the load: %+.1f MiB total (anon %+.1f MiB, file-backed"
               " %+.1f MiB); right after the last commit %+.1f MiB; after malloc_trim %+.1f MiB\n",
               (double)(lr.after.rss - lr.before.rss) / 1048576.0,
               (double)(lr.after.anon - lr.before.anon) / 1048576.0,
               (double)(lr.after.file - lr.before.file) / 1048576.0,
               (double)(lr.last_commit.rss - lr.before.rss) / 1048576.0,
               (double)(lr.trimmed.rss - lr.before.rss) / 1048576.0);
        printf("  kdelta malloc over the load: %+.1f MiB in use, %.1f MiB free but kept\n",
               ((double)lr.heap_used1 - (double)lr.heap_used0) / 1048576.0,
               (double)lr.heap_free1 / 1048576.0);
        printf("  kdelta stats: %llu versions, %llu values, index_bytes %llu (%.2f B/version),"
               " log_bytes %llu, disk_bytes %llu, cache_bytes %llu\n",
               (unsigned long long)lr.st.versions, (unsigned long long)lr.st.values,
               (unsigned long long)lr.st.index_bytes,
               (double)lr.st.index_bytes / (double)versions, (unsigned long long)lr.st.log_bytes,
               (unsigned long long)lr.st.disk_bytes, (unsigned long long)lr.st.cache_bytes);
    }
    if ((sq = sq_open(sq_path, g_cfg.sqlite_mmap))) {
        double t;
        if (sq_load(sq, sq_hot_ts, &t) == 0) {
            sq_load_s = t;
            struct stat s1, s2;
            char *wal = path_join(g_cfg.dir, "big.sqlite-wal");
            long long wal_bytes = wal && stat(wal, &s2) == 0 ? (long long)s2.st_size : 0;
            free(wal);
            printf("  sqlite: loaded in %.3f s (%.0f rows/s; transactions of %d)"
                   ", file %lld bytes + WAL %lld bytes\n",
                   sq_load_s, (double)versions / sq_load_s, LOAD_BATCH,
                   stat(sq_path, &s1) == 0 ? (long long)s1.st_size : -1LL, wal_bytes);
        }
        sqlite3_close(sq);
        sq = NULL;
    }
    fflush(stdout);

    /* reopen_1m_seconds: the slowest of three opens, each after a clean close. */
    if (!isnan(kd_load_s)) {
        double worst = 0;
        kd_options o;
        kd_options_init(&o);
        for (int i = 0; i < 3; i++) {
            double t0 = mono();
            if (kd_open(kd_dir, &o, &kd) != KD_OK) {
                fail("kd_open %s: %s", kd_dir, kd_errmsg(NULL));
                worst = NAN;
                kd = NULL;
                break;
            }
            double t = mono() - t0;
            printf("  kdelta open %d: %.4f s\n", i + 1, t);
            if (t > worst) worst = t;
            if (i < 2) {
                t0 = mono();
                if (kd_close(kd) != KD_OK) fail("kd_close: %s", kd_errmsg(NULL));
                printf("  kdelta close %d: %.4f s\n", i + 1, mono() - t0);
                kd = NULL;
            }
        }
        reopen = worst;
    }
    if (!isnan(sq_load_s)) {
        double t0 = mono();
        if ((sq = sq_open(sq_path, g_cfg.sqlite_mmap))) {
            rc->sq = sq;
            rc->latest = sq_prepare(sq, SQ_LATEST);
            rc->at = sq_prepare(sq, SQ_AT);
            if (rc->latest && rc->at && sq_read(rc, 0, 0, 0) >= 0) sq_open_s = mono() - t0;
            printf("  sqlite open + first query: %.4f s\n", sq_open_s);
        }
    }
    fflush(stdout);

    /* get_latest and get_at on the reopened databases (default options: 64 MiB cache). */
    rc->kd = kd;
    rc->kd_hot_ts = lr.hot_ts;
    rc->sq_hot_ts = sq_hot_ts;
    if (kd && !isnan(sq_open_s)) {
        double t0 = mono();
        int ok = warm_and_verify(rc, 0) == 0;
        printf("  warm-up + check of every key: kdelta %.3f s", mono() - t0);
        t0 = mono();
        ok &= warm_and_verify(rc, 1) == 0;
        printf(", sqlite %.3f s%s\n", mono() - t0, ok ? "" : " (FAILED)");
        fflush(stdout);
        if (ok) {
            rc->seed = 1;
            rounds("get_latest", latest_round, rc, &lat_kd, &lat_sq);
            rounds("get_at", at_round, rc, &at_kd, &at_sq);
        }
        kd_stats st;
        if (kd_stats_get(kd, &st) == KD_OK)
            printf("  kdelta cache after reads: %llu bytes, %llu hits, %llu misses\n",
                   (unsigned long long)st.cache_bytes, (unsigned long long)st.cache_hits,
                   (unsigned long long)st.cache_misses);
    }
out:
    if (kd && kd_close(kd) != KD_OK) fail("kd_close: %s", kd_errmsg(NULL));
    if (rc) {
        sqlite3_finalize(rc->latest);
        sqlite3_finalize(rc->at);
    }
    sqlite3_close(sq);
    add_figure((figure){.name = "get_latest", .unit = "ops/s", .kd = lat_kd, .base = lat_sq,
                        .higher_better = 1,
                        .base_name = "sqlite: SELECT ... ORDER BY ts DESC LIMIT 1",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 10, .goal_text = ">= 10x"});
    add_figure((figure){.name = "get_at", .unit = "ops/s", .kd = at_kd, .base = at_sq,
                        .higher_better = 1,
                        .base_name = "sqlite: SELECT ... AND ts<=? ORDER BY ts DESC LIMIT 1",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 5, .goal_text = ">= 5x"});
    add_figure((figure){.name = "reopen_1m_seconds", .unit = "s", .kd = reopen,
                        .base = sq_open_s, .ratio_null = 1,
                        .base_name = "sqlite: open + first query (not comparable)",
                        .goal_kind = GOAL_KD_MAX, .goal = 1.0, .goal_text = "<= 1 s"});
    add_figure((figure){.name = "index_bytes_per_version", .unit = "bytes/version", .kd = idx,
                        .base = NAN, .goal_kind = GOAL_KD_MAX, .goal = 64, .goal_text = "<= 64"});
    add_figure((figure){.name = "index_anon_bytes_per_version", .unit = "bytes/version",
                        .kd = idx_anon, .base = NAN});
    add_figure((figure){.name = "load_1m_seconds", .unit = "s", .kd = kd_load_s,
                        .base = sq_load_s,
                        .base_name = "sqlite: transactions of 10,000 INSERTs"});
    free(rc);
    free(kd_dir);
    free(sq_path);
}

/* ---- binary size ---------------------------------------------------------------- */

static void bench_binary(void) {
    double size = NAN;
    struct stat st;
    char *tmp = path_join(g_cfg.dir, "kdelta.stripped");
    int missing = stat(g_cfg.kdelta, &st) != 0;
    if (missing) {
        printf("binary_bytes: %s is missing (not built yet?)\n", g_cfg.kdelta);
    } else if (tmp) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            execlp("strip", "strip", "-o", tmp, g_cfg.kdelta, (char *)NULL);
            _exit(127);
        }
        int status = -1;
        if (pid > 0) waitpid(pid, &status, 0);
        struct stat s2;
        if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && stat(tmp, &s2) == 0) {
            size = (double)s2.st_size;
            printf("binary_bytes: %s is %lld bytes, %lld stripped\n", g_cfg.kdelta,
                   (long long)st.st_size, (long long)s2.st_size);
        } else {
            fail("strip -o %s %s failed", tmp, g_cfg.kdelta);
        }
        unlink(tmp);
    }
    free(tmp);
    add_figure((figure){.name = "binary_bytes", .unit = "bytes", .kd = size, .base = NAN,
                        .goal_kind = GOAL_KD_MAX, .goal = 2e6, .goal_text = "<= 2 MB",
                        .absent = missing ? "MISSING" : NULL});
}

/* ---- main ------------------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: bench --dir SCRATCH_DIR [--json PATH] [--kdelta PATH] [--keys N]\n"
            "             [--versions-per-key N] [--seconds S] [--rounds N]\n"
            "             [--only big,fsync,put1,put8,batch,query,viewput,binary,vector]\n"
            "             [--sqlite-mmap BYTES]\n"
            "Defaults: --json build/bench.json --kdelta build/kdelta --keys 100000\n"
            "          --versions-per-key 10 --seconds 1 --rounds 9 --sqlite-mmap 1073741824\n");
    return 2;
}

static int parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return -1;
        if (strcmp(a, "--dir") == 0) g_cfg.dir = v;
        else if (strcmp(a, "--json") == 0) g_cfg.json = v;
        else if (strcmp(a, "--kdelta") == 0) g_cfg.kdelta = v;
        else if (strcmp(a, "--keys") == 0) g_cfg.keys = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--versions-per-key") == 0) g_cfg.vpk = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0) g_cfg.seconds = strtod(v, NULL);
        else if (strcmp(a, "--rounds") == 0) g_cfg.rounds = atoi(v);
        else if (strcmp(a, "--only") == 0) g_cfg.only = v;
        else if (strcmp(a, "--sqlite-mmap") == 0) g_cfg.sqlite_mmap = strtoll(v, NULL, 10);
        else return -1;
        i++;
    }
    if (!g_cfg.dir || g_cfg.keys == 0 || g_cfg.keys > 10000000 || g_cfg.vpk == 0 ||
        g_cfg.vpk > 1000 || !(g_cfg.seconds > 0) || g_cfg.rounds < 1 || g_cfg.rounds > MAX_ROUNDS)
        return -1;
    return 0;
}

/* The values are meant to be canonical already; if the library disagrees, every read
** check would fail, so say so at once. */
static int self_check(void) {
    char val[VALUE_MAX], *canon = NULL;
    size_t n = make_value(val, "user0000001", 1234567), cn = 0;
    int rc = kd_json_canonical(val, n, &canon, &cn);
    int ok = rc == KD_OK && cn == n && memcmp(canon, val, n) == 0;
    if (!ok) fail("value %.*s is not canonical for the library (%s)", (int)n, val,
                  rc == KD_OK ? canon : kd_errmsg(NULL));
    kd_free(canon);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    char fs[PATH_MAX + 1024], cpu[256];
    if (parse_args(argc, argv) != 0) return usage();
    if (!(g_keys = calloc(g_cfg.keys, KEY_W))) {
        fail("out of memory");
        return 1;
    }
    for (uint32_t k = 0; k < g_cfg.keys; k++)
        snprintf(g_keys + (size_t)k * KEY_W, KEY_W, "user%07u", k);

    filesystem_of(g_cfg.dir, fs, sizeof fs);
    cpu_model(cpu, sizeof cpu);
    printf("KoruDelta %s vs SQLite %s\n", KD_VERSION_STRING, sqlite3_libversion());
    printf("machine: %s, %ld CPUs\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("scratch: %s on %s\n", g_cfg.dir, fs);
    printf("sqlite: WAL, synchronous=FULL, cache_size=%d KiB, mmap_size=%lld, history(ns, key, ts,"
           " value) PRIMARY KEY(ns, key, ts) WITHOUT ROWID, prepared statements\n",
           SQLITE_CACHE_KIB, g_cfg.sqlite_mmap);
    printf("rounds: %d x %.1f s per side, alternating; medians kept\n\n", g_cfg.rounds,
           g_cfg.seconds);
    fflush(stdout);
    if (self_check() != 0) return 1;

    /* First, while this process is small: the big load in a child (clean RSS). */
    double t0 = mono();
    if (wanted("big")) bench_big();
    if (wanted("fsync")) bench_fsync();
    if (wanted("put1")) bench_put_durable("put_durable_1thread", 1, 1.0, ">= 1.0x");
    if (wanted("put8")) bench_put_durable("put_durable_8threads", WRITERS, 3.0, ">= 3x");
    if (wanted("batch")) bench_put_batch();
    if (wanted("query")) bench_query();
    if (wanted("viewput")) bench_view_put();
    if (wanted("binary")) bench_binary();
    if (wanted("vector")) bench_vector();

    /* Table order: as the issue lists them, extra information last. */
    static const char *const order[] = {
        "fsync_ceiling", "fsync_ceiling_overwrite", "put_durable_1thread", "put_durable_8threads",
        "put_batch_1000", "get_latest", "get_at", "reopen_1m_seconds", "index_bytes_per_version",
        "binary_bytes", "query_filter_sort_100k", "query_group_by_100k", "view_vs_query",
        "put_with_5_views", "vector_qps_recall95", "vector_build", "vector_bytes_per_vector",
        "vector_reopen_seconds", "index_anon_bytes_per_version", "load_1m_seconds",
        "vector_qps_vs_exact"};
    order_figures(order, sizeof order / sizeof order[0]);

    print_table();
    printf("\n(ratio > 1: KoruDelta better; throughput ratio = kdelta/baseline, times ="
           " baseline/kdelta; the baseline is SQLite unless baseline_name in the JSON says"
           " otherwise; total bench time %.0f s)\n", mono() - t0);
    write_json(g_cfg.json, 0);
    printf("figures written to %s\n", g_cfg.json);
    free(g_keys);
    return failed() ? 1 : 0;
}
