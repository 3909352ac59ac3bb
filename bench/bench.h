/*
** bench.h — what the benchmark programs share.
**
** The first part is bench_common.c, linked into both programs, build/bench (bench.c,
** bench_query.c, bench_vector.c) and build/bench_http (bench_http.c, bench_proc.c):
** errors, timing and random helpers, the values every figure writes, the durable-writer
** threads, the table of figures and its JSON file, and the SQLite baseline's set-up. The
** second part is what bench.c shares with bench_query.c and bench_vector.c only: its
** settings and its groups.
** docs/benchmarks.md says what each figure measures.
*/
#ifndef KD_BENCH_H
#define KD_BENCH_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ROUNDS 15
#define VALUE_MAX 256                  /* room for one make_value() */
#define PUT_KEYS 1000                  /* keys each durable writer cycles through */
#define SQLITE_CACHE_KIB 65536         /* = KoruDelta's default value cache budget */
#define SQLITE_MMAP_DEFAULT (1LL << 30)

/* ---- errors, time, numbers (bench_common.c) --------------------------------------- */

/* Each program defines these two. */
extern const char *const g_prog;       /* "bench" or "bench_http" */
int wanted(const char *group);         /* is this group selected by --only? */

void fail(const char *fmt, ...);       /* prints "<g_prog>: ERROR: ..."; the run exits 1 */
int failed(void);                      /* whether fail() was called */
int listed(const char *list, const char *name); /* name is an item of "a,b,c" (NULL: no) */
double mono(void);                     /* CLOCK_MONOTONIC, seconds */
int64_t next_ts(int64_t *last);        /* strictly increasing wall-clock microseconds */
void sleep_seconds(double s);
uint64_t rnd(uint64_t *state);         /* splitmix64 */
double median(double *v, int n);       /* sorts v; NAN if any value is NAN */
char *path_join(const char *dir, const char *name);   /* malloc'd dir/name */
int write_all(int fd, const void *p, size_t n);       /* 0, or -1 */
int read_all(int fd, void *p, size_t n);              /* 0, or -1 (also at EOF) */
void filesystem_of(const char *path, char *out, size_t n); /* "ext4 on /dev/vda (mounted at /)" */
void cpu_model(char *out, size_t n);   /* from /proc/cpuinfo */

/* ---- values --------------------------------------------------------------------- */

char *put_s(char *p, const char *s);   /* appends s, returns the new end */
char *put_u(char *p, uint64_t v);      /* appends v in decimal */
extern const char *const CITIES[8];
extern const char *const TAGS[6];

/* Version n of the record of `name`: a ~140-byte JSON object already in canonical form,
** different for every n. buf holds VALUE_MAX bytes; name is short. Returns its length. */
size_t make_value(char *buf, const char *name, uint64_t n);

/* Key of put n of writer id: "t7-k42", cycling over PUT_KEYS keys. key holds 32 bytes. */
void put_key(char *key, int id, uint64_t n);

/* ---- durable writers: one thread each, for a timed round ---------------------------- */

/* Writer id puts put_key(id, n) = make_value(key, n) for n = 0, 1, ... on each side. */
typedef struct writer {
    pthread_t th;
    int id;
    void *kd;                  /* KoruDelta side: kd_db * (bench) or hconn * (bench_http) */
    sqlite3 *sq;               /* SQLite side: this thread's connection */
    sqlite3_stmt *ins;         /* its SQ_INSERT */
    const char *ns;            /* the namespace both sides write to */
    int64_t last_ts;           /* the last ts SQLite got */
    uint64_t kd_n, sq_n;       /* puts each side acknowledged over all rounds */
    uint64_t ops;              /* puts done this round */
    int err;
    atomic_int *stop;
} writer;

/* The SQLite side's thread body: one INSERT (one transaction) per put, until stopped. */
void *sq_writer(void *arg);

/* Runs body on nt writers for `seconds`: total puts per second, from the start of the
** first thread to the join of the last; NAN when a thread failed. */
double run_writers(writer *w, int nt, void *(*body)(void *), double seconds);

/* ---- the table of figures --------------------------------------------------------- */

typedef enum { GOAL_NONE, GOAL_RATIO_MIN, GOAL_KD_MAX } goal_kind;

typedef struct figure {
    const char *name, *unit, *base_name;
    double kd, base;    /* NAN when missing */
    int higher_better;  /* throughput: ratio = kd/base; times and sizes: base/kd */
    int ratio_null;     /* baseline shown for information, not comparable */
    goal_kind goal_kind;
    double goal;
    const char *goal_text;
    const char *absent;  /* status when there is no figure; NULL = "ERROR" */
} figure;

void add_figure(figure f);
/* Puts the figures in this order; figures not named are dropped. */
void order_figures(const char *const *names, size_t n);
/* The table, rounded so that no printed number flatters KoruDelta. */
void print_table(void);
/* The figures as a JSON list: {"name","unit","kdelta","baseline","baseline_name","ratio"}.
** With append, after the objects of the list already at path (if it is one). 0, or -1. */
int write_json(const char *path, int append);

/* ---- SQLite, configured as every baseline is ----------------------------------------- */

#define SQ_SCHEMA                                                                        \
    "CREATE TABLE IF NOT EXISTS history(ns TEXT NOT NULL, key TEXT NOT NULL,"            \
    " ts INTEGER NOT NULL, value TEXT NOT NULL, PRIMARY KEY(ns, key, ts)) WITHOUT ROWID"
#define SQ_INSERT "INSERT INTO history(ns, key, ts, value) VALUES(?1, ?2, ?3, ?4)"

int sq_exec(sqlite3 *db, const char *sql);
/* WAL, synchronous=FULL, 64 MiB cache, PRAGMA mmap_size=mmap_bytes, the history table. */
sqlite3 *sq_open(const char *path, long long mmap_bytes);
sqlite3_stmt *sq_prepare(sqlite3 *db, const char *sql);
int sq_insert(sqlite3_stmt *ins, const char *ns, const char *key, int64_t ts, const char *val,
              size_t len);
int64_t sq_count(sqlite3 *db);         /* rows of history, or -1 */

/* ==== the bench program (bench.c, bench_query.c, bench_vector.c) ==================== */

typedef struct config {
    const char *dir;       /* scratch directory (the caller removes it) */
    const char *json;      /* where the figures go */
    const char *kdelta;    /* the CLI binary whose stripped size is measured */
    uint32_t keys;         /* keys in the big database */
    uint32_t vpk;          /* versions per key in the big database */
    double seconds;        /* length of one timed round */
    int rounds;            /* rounds per side; the median is kept */
    const char *only;      /* comma-separated groups to run (NULL = all), for profiling */
    long long sqlite_mmap; /* PRAGMA mmap_size for every SQLite connection */
} config;

extern config g_cfg;

void bench_query(void);         /* group "query" (bench_query.c) */
void bench_view_put(void);      /* group "viewput" (bench_query.c) */
void bench_vector(void);        /* group "vector" (bench_vector.c) */

#endif /* KD_BENCH_H */
