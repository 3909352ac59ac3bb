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
**
** Output: a table on stdout and a JSON list at --json, one object per figure:
** {"name","unit","kdelta","baseline","baseline_name","ratio"}; ratio > 1 means KoruDelta
** is better (kdelta/baseline for throughput, baseline/kdelta for times and sizes).
** Exit status: 0 when every measurement ran, whether or not its goal was met;
** 1 when one failed (an API error or a wrong value read back); 2 on bad usage.
** docs/benchmarks.md says exactly what each figure measures.
**
** Uses only the public API of the library, SQLite and POSIX.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
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
#define PUT_KEYS 1000         /* keys each writer thread cycles through */
#define BATCH_ITEMS 1000      /* puts per commit in put_batch_1000 */
#define BATCH_KEYS 100000     /* keys put_batch_1000 cycles through */
#define WRITERS 8
#define VALUE_MAX 256
#define SQLITE_CACHE_KIB 65536              /* = KoruDelta's default cache budget */

/* ---- settings and small helpers --------------------------------------------------- */

/* config is in bench.h */
config g_cfg = {.json = "build/bench.json", .kdelta = "build/kdelta", .keys = 100000,
                .vpk = 10, .seconds = 1.0, .rounds = 9, .sqlite_mmap = 1LL << 30};
static atomic_int g_failed; /* a measurement failed: exit 1 */

/* Whether group g (big, fsync, put1, put8, batch, query, viewput, binary) is to run. */
int wanted(const char *g) {
    if (!g_cfg.only) return 1;
    size_t n = strlen(g);
    for (const char *p = g_cfg.only; (p = strstr(p, g)) != NULL; p += n)
        if ((p == g_cfg.only || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ERROR: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    g_failed = 1;
}

double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t wall_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* A strictly increasing timestamp for SQLite rows, like KoruDelta's clock gives. */
static int64_t next_ts(int64_t *last) {
    int64_t now = wall_us();
    *last = now > *last ? now : *last + 1;
    return *last;
}

static void sleep_seconds(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

/* splitmix64: the same sequence of random keys and times for both sides. */
uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of n values; NAN if any is NAN (a failed round fails the figure). */
double median(double *v, int n) {
    for (int i = 0; i < n; i++)
        if (isnan(v[i])) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- values --------------------------------------------------------------------- */

char *put_s(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

char *put_u(char *p, uint64_t v) {
    char t[24];
    int i = 0;
    do t[i++] = (char)('0' + v % 10); while ((v /= 10) != 0);
    while (i) *p++ = t[--i];
    return p;
}

const char *const CITIES[8] = {"Lisbon", "Osaka", "Nairobi", "Lima",
                                      "Oslo", "Austin", "Hanoi", "Tallinn"};
const char *const TAGS[6] = {"admin", "beta", "blue", "green", "pro", "trial"};

/* Version n of the record of user `name`: a ~140-byte JSON object already in canonical
** form (sorted keys, no whitespace), so KoruDelta hands back exactly these bytes and a
** read can be checked with memcmp. Every n gives a different value (n is in it), so
** content deduplication never helps. buf holds VALUE_MAX bytes; name is short. */
static size_t make_value(char *buf, const char *name, uint64_t n) {
    char *p = buf;
    p = put_s(p, "{\"active\":");
    p = put_s(p, n % 3 ? "true" : "false");
    p = put_s(p, ",\"age\":");
    p = put_u(p, 18 + n % 70);
    p = put_s(p, ",\"city\":\"");
    p = put_s(p, CITIES[n % 8]);
    p = put_s(p, "\",\"email\":\"");
    p = put_s(p, name);
    p = put_s(p, "@example.com\",\"n\":");
    p = put_u(p, n);
    p = put_s(p, ",\"name\":\"");
    p = put_s(p, name);
    p = put_s(p, "\",\"score\":");
    p = put_u(p, (n * 7919) % 1000);
    p = put_s(p, ",\"tags\":[\"");
    p = put_s(p, TAGS[n % 6]);
    p = put_s(p, "\",\"");
    p = put_s(p, TAGS[(n / 6) % 6]);
    p = put_s(p, "\"]}");
    return (size_t)(p - buf);
}

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

/* The filesystem holding path, from /proc/self/mountinfo: "ext4 on /dev/vda (/)". */
static void filesystem_of(const char *path, char *out, size_t outn) {
    char real[PATH_MAX], line[4096], best_mnt[PATH_MAX] = "", best_desc[512] = "unknown";
    size_t best = 0;
    if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char mnt[PATH_MAX], fstype[64], src[256];
        char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1) continue;
        if (sscanf(dash + 3, "%63s %255s", fstype, src) != 2) continue;
        size_t n = strlen(mnt);
        int under = strncmp(real, mnt, n) == 0 && (real[n] == '/' || real[n] == 0 || n == 1);
        if (under && n >= best) {
            best = n;
            snprintf(best_mnt, sizeof best_mnt, "%s", mnt);
            snprintf(best_desc, sizeof best_desc, "%s on %s", fstype, src);
        }
    }
    if (f) fclose(f);
    snprintf(out, outn, "%s (mounted at %s)", best_desc, best_mnt);
}

static void cpu_model(char *out, size_t n) {
    char line[512];
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            c += strspn(c + 1, " ") + 1;
            c[strcspn(c, "\n")] = 0;
            snprintf(out, n, "%s", c);
            break;
        }
    }
    if (f) fclose(f);
}

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

/* ---- the table of figures ------------------------------------------------------- */

/* figure and goal_kind are in bench.h */
static figure g_fig[32];
static int g_nfig;

void add_figure(figure f) {
    if (g_nfig < (int)(sizeof g_fig / sizeof g_fig[0])) g_fig[g_nfig++] = f;
}

static double ratio_of(const figure *f) {
    if (f->ratio_null || isnan(f->kd) || isnan(f->base) || f->kd <= 0 || f->base <= 0) return NAN;
    return f->higher_better ? f->kd / f->base : f->base / f->kd;
}

/* "MET", "MISSED", "-" (no goal) or "ERROR" (no figure). Decided on unrounded numbers. */
static const char *status_of(const figure *f) {
    double r = ratio_of(f);
    if (isnan(f->kd) && f->absent) return f->absent;
    switch (f->goal_kind) {
    case GOAL_NONE: return isnan(f->kd) ? "ERROR" : "-";
    case GOAL_RATIO_MIN: return isnan(r) ? "ERROR" : r >= f->goal ? "MET" : "MISSED";
    case GOAL_KD_MAX: return isnan(f->kd) ? "ERROR" : f->kd <= f->goal ? "MET" : "MISSED";
    }
    return "?";
}

/* Printed numbers never flatter KoruDelta: its throughput and the ratio are rounded
** down, its times and sizes up. */
static void fmt_num(char *out, size_t n, double v, const char *unit, int round_up) {
    int digits = strcmp(unit, "s") == 0 ? 4 : strcmp(unit, "bytes") == 0 ? 0
               : strcmp(unit, "bytes/version") == 0 ? 2 : strcmp(unit, "ms") == 0 ? 3
               : strcmp(unit, "us") == 0 ? 2 : 0;
    if (isnan(v)) {
        snprintf(out, n, "-");
        return;
    }
    double scale = pow(10, digits);
    double r = round_up ? ceil(v * scale - 1e-9) / scale : floor(v * scale + 1e-9) / scale;
    snprintf(out, n, "%.*f", digits, r);
}

static void print_table(void) {
    printf("\n%-29s %-14s %14s %14s %9s %-10s %s\n", "name", "unit", "kdelta", "baseline", "ratio",
           "goal", "status");
    for (int i = 0; i < g_nfig; i++) {
        const figure *f = &g_fig[i];
        char kd[32], base[32], ratio[32];
        fmt_num(kd, sizeof kd, f->kd, f->unit, !f->higher_better);
        fmt_num(base, sizeof base, f->base, f->unit, f->higher_better);
        double r = ratio_of(f);
        if (isnan(r)) snprintf(ratio, sizeof ratio, "-");
        else snprintf(ratio, sizeof ratio, "%.3f", floor(r * 1000) / 1000);
        printf("%-29s %-14s %14s %14s %9s %-10s %s\n", f->name, f->unit, kd, base, ratio,
               f->goal_text ? f->goal_text : "-", status_of(f));
    }
    fflush(stdout);
}

static void json_num(FILE *f, double v) {
    if (isnan(v)) fputs("null", f);
    else fprintf(f, "%.10g", v);
}

static void json_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static int write_json(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fail("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fputs("[\n", f);
    for (int i = 0; i < g_nfig; i++) {
        const figure *g = &g_fig[i];
        int has_base = !isnan(g->base);
        fputs("  {\"name\":", f);
        json_str(f, g->name);
        fputs(",\"unit\":", f);
        json_str(f, g->unit);
        fputs(",\"kdelta\":", f);
        json_num(f, g->kd);
        fputs(",\"baseline\":", f);
        json_num(f, g->base);
        fputs(",\"baseline_name\":", f);
        json_str(f, has_base ? g->base_name : NULL);
        fputs(",\"ratio\":", f);
        json_num(f, ratio_of(g));
        fputs(i + 1 < g_nfig ? "},\n" : "}\n", f);
    }
    fputs("]\n", f);
    if (fclose(f) != 0) {
        fail("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- SQLite set-up -------------------------------------------------------------- */

#define SQ_SCHEMA                                                                        \
    "CREATE TABLE IF NOT EXISTS history(ns TEXT NOT NULL, key TEXT NOT NULL,"            \
    " ts INTEGER NOT NULL, value TEXT NOT NULL, PRIMARY KEY(ns, key, ts)) WITHOUT ROWID"
#define SQ_INSERT "INSERT INTO history(ns, key, ts, value) VALUES(?1, ?2, ?3, ?4)"
#define SQ_LATEST "SELECT value FROM history WHERE ns=?1 AND key=?2 ORDER BY ts DESC LIMIT 1"
#define SQ_AT \
    "SELECT value FROM history WHERE ns=?1 AND key=?2 AND ts<=?3 ORDER BY ts DESC LIMIT 1"

int sq_exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    fail("sqlite: %s: %s", sql, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -1;
}

/* One connection per thread (hence NOMUTEX), each configured the same way. */
sqlite3 *sq_open(const char *path) {
    sqlite3 *db = NULL;
    char pragma[128];
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        fail("sqlite open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%d; PRAGMA mmap_size=%lld",
             SQLITE_CACHE_KIB, g_cfg.sqlite_mmap);
    if (sq_exec(db, "PRAGMA journal_mode=WAL") || sq_exec(db, "PRAGMA synchronous=FULL") ||
        sq_exec(db, pragma) || sq_exec(db, SQ_SCHEMA)) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

sqlite3_stmt *sq_prepare(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail("sqlite prepare %s: %s", sql, sqlite3_errmsg(db));
        return NULL;
    }
    return st;
}

/* Inserts one row; retries while another connection holds the write lock past the busy
** timeout (never seen in practice with a 10 s timeout, but not an error). */
static int sq_insert(sqlite3_stmt *st, const char *key, int64_t ts, const char *val, size_t len) {
    int rc;
    sqlite3_bind_text(st, 1, NS, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ts);
    sqlite3_bind_text(st, 4, val, (int)len, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY) sqlite3_reset(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return 0;
    fail("sqlite insert: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
    return -1;
}

static int64_t sq_count(sqlite3 *db) {
    int64_t n = -1;
    sqlite3_stmt *st = sq_prepare(db, "SELECT count(*) FROM history");
    if (st && sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

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

typedef struct writer {
    pthread_t th;
    int id;
    kd_db *kd;                 /* KoruDelta side: shared handle */
    sqlite3 *sq;               /* SQLite side: this thread's connection */
    sqlite3_stmt *ins;
    int64_t last_ts;
    uint64_t n;                /* puts done by this thread over all rounds */
    uint64_t ops;              /* puts done this round */
    int err;
    atomic_int *stop;
} writer;

static void writer_key(const writer *w, char *key) {
    char *p = put_s(key, "t");
    p = put_u(p, (uint64_t)w->id);
    p = put_s(p, "-k");
    p = put_u(p, w->n % PUT_KEYS);
    *p = 0;
}

static void *kd_writer(void *arg) {
    writer *w = arg;
    char key[32], val[VALUE_MAX];
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        writer_key(w, key);
        size_t len = make_value(val, key, w->n);
        int rc = kd_put(w->kd, NS, key, val, len, NULL, NULL);
        if (rc != KD_OK) {
            fail("kd_put: %s", kd_errmsg(w->kd));
            w->err = 1;
            break;
        }
        w->n++;
        w->ops++;
    }
    return NULL;
}

static void *sq_writer(void *arg) {
    writer *w = arg;
    char key[32], val[VALUE_MAX];
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        writer_key(w, key);
        size_t len = make_value(val, key, w->n);
        if (sq_insert(w->ins, key, next_ts(&w->last_ts), val, len) != 0) {
            w->err = 1;
            break;
        }
        w->n++;
        w->ops++;
    }
    return NULL;
}

/* Runs nt writers for `seconds`: total puts per second, start of the first thread to
** the end of the last. */
static double run_writers(writer *w, int nt, void *(*body)(void *), double seconds) {
    atomic_int stop = 0;
    int started = 0;
    uint64_t ops = 0;
    double t0 = mono();
    for (int i = 0; i < nt; i++) {
        w[i].stop = &stop;
        w[i].ops = 0;
        w[i].err = 0;
        if (pthread_create(&w[i].th, NULL, body, &w[i]) != 0) {
            fail("pthread_create failed");
            break;
        }
        started++;
    }
    sleep_seconds(seconds);
    atomic_store(&stop, 1);
    int err = started < nt;
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].th, NULL);
        ops += w[i].ops;
        err |= w[i].err;
    }
    double t = mono() - t0;
    return err ? NAN : (double)ops / t;
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
        if (!(c->sq[i] = sq_open(c->sq_path))) return -1;
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

/* put_durable_1thread / put_durable_8threads. The KoruDelta writers and the SQLite
** writers keep separate counters, so swap them in and out around each side's rounds. */
typedef struct put_pair {
    put_ctx c;
    uint64_t kd_n[WRITERS], sq_n[WRITERS];
    int64_t sq_ts[WRITERS];
} put_pair;

static double put_pair_round(void *ctx, int sqlite_side) {
    put_pair *p = ctx;
    for (int i = 0; i < p->c.nt; i++) {
        p->c.w[i].n = sqlite_side ? p->sq_n[i] : p->kd_n[i];
        p->c.w[i].last_ts = p->sq_ts[i];
    }
    double r = put_round(&p->c, sqlite_side);
    for (int i = 0; i < p->c.nt; i++) {
        if (sqlite_side) p->sq_n[i] = p->c.w[i].n;
        else p->kd_n[i] = p->c.w[i].n;
        p->sq_ts[i] = p->c.w[i].last_ts;
    }
    return r;
}

static void bench_put_durable(const char *name, int nt, double goal, const char *goal_text) {
    put_pair *p = calloc(1, sizeof *p);
    double kd = NAN, sq = NAN;
    if (!p) {
        fail("out of memory");
        return;
    }
    uint64_t kd_fsyncs0 = 0;
    if (put_setup(&p->c, name, nt) == 0) {
        kd_stats st;
        if (kd_stats_get(p->c.kd, &st) == KD_OK) kd_fsyncs0 = st.fsyncs;
        rounds(name, put_pair_round, p, &kd, &sq);
        uint64_t kdn = 0, sqn = 0;
        for (int i = 0; i < nt; i++) {
            kdn += p->kd_n[i];
            sqn += p->sq_n[i];
        }
        if (kd_stats_get(p->c.kd, &st) == KD_OK && st.fsyncs > kd_fsyncs0)
            printf("  %-24s KoruDelta: %llu puts, %llu fsyncs (%.2f puts per fsync)\n", name,
                   (unsigned long long)kdn, (unsigned long long)(st.fsyncs - kd_fsyncs0),
                   (double)kdn / (double)(st.fsyncs - kd_fsyncs0));
        put_teardown(&p->c, kdn, sqn);
    } else {
        put_teardown(&p->c, 0, 0);
    }
    add_figure((figure){.name = name, .unit = "ops/s", .kd = kd, .base = sq, .higher_better = 1,
                        .base_name = nt == 1 ? "sqlite: 1 INSERT per transaction"
                                             : "sqlite: 8 connections, 1 INSERT per transaction",
                        .goal_kind = GOAL_RATIO_MIN, .goal = goal, .goal_text = goal_text});
    free(p);
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
                if (sq_insert(c->ins, key, ts, val, len) != 0) return NAN;
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

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

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
                rc = sq_insert(ins, big_key(k), ts, val, len);
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
        rc = sq_insert(ins, HOT_KEY, hot_ts[i], val, len);
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
    if ((sq = sq_open(sq_path))) {
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
        if ((sq = sq_open(sq_path))) {
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
            "             [--only big,fsync,put1,put8,batch,query,viewput,binary]\n"
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

    /* Table order: as the issue lists them, extra information last. */
    static const char *const order[] = {
        "fsync_ceiling", "fsync_ceiling_overwrite", "put_durable_1thread", "put_durable_8threads",
        "put_batch_1000", "get_latest", "get_at", "reopen_1m_seconds", "index_bytes_per_version",
        "binary_bytes", "query_filter_sort_100k", "query_group_by_100k", "view_vs_query",
        "put_with_5_views", "index_anon_bytes_per_version", "load_1m_seconds"};
    figure sorted[32];
    int ns = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        for (int j = 0; j < g_nfig; j++)
            if (strcmp(g_fig[j].name, order[i]) == 0) sorted[ns++] = g_fig[j];
    memcpy(g_fig, sorted, (size_t)ns * sizeof *sorted);
    g_nfig = ns;

    print_table();
    printf("\n(ratio > 1: KoruDelta better; throughput ratio = kdelta/baseline, times ="
           " baseline/kdelta; the baseline is SQLite unless baseline_name in the JSON says"
           " otherwise; total bench time %.0f s)\n", mono() - t0);
    write_json(g_cfg.json);
    printf("figures written to %s\n", g_cfg.json);
    free(g_keys);
    return g_failed ? 1 : 0;
}
