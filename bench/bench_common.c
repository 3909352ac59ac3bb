/*
** bench_common.c — the code both benchmark programs link (declared in bench.h): errors,
** timing, the values every figure writes, the durable-writer threads, the table of
** figures with its JSON file, and the SQLite baseline's set-up.
**
** It knows neither program's settings: what it needs (an mmap size, a list of groups, a
** JSON path) comes in as arguments. Uses SQLite, POSIX and Linux's /proc.
*/
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- errors, time, numbers -------------------------------------------------------- */

static atomic_int g_failed; /* a measurement failed: the program exits 1 */

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ERROR: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    g_failed = 1;
}

int failed(void) { return g_failed; }

int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A strictly increasing timestamp for SQLite rows, like KoruDelta's clock gives. */
int64_t next_ts(int64_t *last) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    int64_t now = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
    *last = now > *last ? now : *last + 1;
    return *last;
}

void sleep_seconds(double s) {
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

int write_all(int fd, const void *p, size_t n) {
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

int read_all(int fd, void *p, size_t n) {
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

/* The filesystem holding path, from /proc/self/mountinfo. */
void filesystem_of(const char *path, char *out, size_t outn) {
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

void cpu_model(char *out, size_t n) {
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

/* Canonical form (sorted keys, no whitespace), so KoruDelta hands back exactly these
** bytes and a read can be checked with memcmp. n is in the value, so content
** deduplication never helps. */
size_t make_value(char *buf, const char *name, uint64_t n) {
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

void put_key(char *key, int id, uint64_t n) {
    char *p = put_s(key, "t");
    p = put_u(p, (uint64_t)id);
    p = put_s(p, "-k");
    p = put_u(p, n % PUT_KEYS);
    *p = 0;
}

/* ---- durable writers ---------------------------------------------------------------- */

void *sq_writer(void *arg) {
    writer *w = arg;
    char key[32], val[VALUE_MAX];
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        put_key(key, w->id, w->sq_n);
        size_t len = make_value(val, key, w->sq_n);
        if (sq_insert(w->ins, w->ns, key, next_ts(&w->last_ts), val, len) != 0) {
            w->err = 1;
            break;
        }
        w->sq_n++;
        w->ops++;
    }
    return NULL;
}

double run_writers(writer *w, int nt, void *(*body)(void *), double seconds) {
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

/* ---- the table of figures ------------------------------------------------------- */

static figure g_fig[32];
static int g_nfig;

void add_figure(figure f) {
    if (g_nfig < (int)(sizeof g_fig / sizeof g_fig[0])) g_fig[g_nfig++] = f;
}

void order_figures(const char *const *names, size_t n) {
    figure sorted[sizeof g_fig / sizeof g_fig[0]];
    int ns = 0;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < g_nfig; j++)
            if (strcmp(g_fig[j].name, names[i]) == 0) sorted[ns++] = g_fig[j];
    memcpy(g_fig, sorted, (size_t)ns * sizeof *sorted);
    g_nfig = ns;
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

void print_table(void) {
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

/* The objects of a list that write_json wrote ("[\n  {...},\n  {...}\n]\n"): the text up
** to and including its last '}', malloc'd, or NULL when the file is missing, not such a
** list, or empty. */
static char *old_objects(const char *path) {
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        char *end = strrchr(buf, ']'), *last = strrchr(buf, '}');
        if (buf[0] == '[' && end && last && last < end && strspn(end + 1, " \n") == strlen(end + 1)) {
            last[1] = 0;
        } else {
            fprintf(stderr, "%s: %s is not a list of figures; writing it afresh\n", g_prog, path);
            free(buf);
            buf = NULL;
        }
    } else {
        free(buf);
        buf = NULL;
    }
    if (f) fclose(f);
    return buf;
}

int write_json(const char *path, int append) {
    char *old = append ? old_objects(path) : NULL;
    FILE *f = fopen(path, "w");
    if (!f) {
        fail("cannot write %s: %s", path, strerror(errno));
        free(old);
        return -1;
    }
    fputs(old ? old : "[", f);
    for (int i = 0; i < g_nfig; i++) {
        const figure *g = &g_fig[i];
        fputs(i == 0 && !old ? "\n  {\"name\":" : ",\n  {\"name\":", f);
        json_str(f, g->name);
        fputs(",\"unit\":", f);
        json_str(f, g->unit);
        fputs(",\"kdelta\":", f);
        json_num(f, g->kd);
        fputs(",\"baseline\":", f);
        json_num(f, g->base);
        fputs(",\"baseline_name\":", f);
        json_str(f, isnan(g->base) ? NULL : g->base_name);
        fputs(",\"ratio\":", f);
        json_num(f, ratio_of(g));
        fputs("}", f);
    }
    fputs("\n]\n", f);
    free(old);
    if (fclose(f) != 0) {
        fail("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- SQLite ----------------------------------------------------------------------- */

int sq_exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    fail("sqlite: %s: %s", sql, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -1;
}

/* One connection per thread (hence NOMUTEX), each configured the same way. */
sqlite3 *sq_open(const char *path, long long mmap_bytes) {
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
             SQLITE_CACHE_KIB, mmap_bytes);
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
int sq_insert(sqlite3_stmt *st, const char *ns, const char *key, int64_t ts, const char *val,
              size_t len) {
    int rc;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ts);
    sqlite3_bind_text(st, 4, val, (int)len, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY) sqlite3_reset(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return 0;
    fail("sqlite insert: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
    return -1;
}

int64_t sq_count(sqlite3 *db) {
    int64_t n = -1;
    sqlite3_stmt *st = sq_prepare(db, "SELECT count(*) FROM history");
    if (st && sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}
