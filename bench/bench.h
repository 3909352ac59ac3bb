/*
** bench.h — what bench.c shares with the other benchmark groups (bench_query.c): the
** settings, the table of figures, timing and random helpers, and the SQLite set-up.
** docs/benchmarks.md says what each figure measures.
*/
#ifndef KD_BENCH_H
#define KD_BENCH_H

#include <sqlite3.h>
#include <stdint.h>

#define MAX_ROUNDS 15

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

/* ---- the table of figures ------------------------------------------------------- */

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

/* ---- helpers (bench.c) ------------------------------------------------------------ */

int wanted(const char *group);                /* is this group selected by --only? */
void fail(const char *fmt, ...);              /* prints an error; the bench exits 1 */
double mono(void);                            /* CLOCK_MONOTONIC, seconds */
uint64_t rnd(uint64_t *state);                /* splitmix64 */
double median(double *v, int n);              /* NAN if any value is NAN */
char *path_join(const char *dir, const char *name);   /* malloc'd dir/name */
char *put_s(char *p, const char *s);          /* appends s, returns the new end */
char *put_u(char *p, uint64_t v);             /* appends v in decimal */
extern const char *const CITIES[8];
extern const char *const TAGS[6];

/* SQLite, configured as every baseline is (WAL, synchronous=FULL, 64 MiB cache, mmap). */
int sq_exec(sqlite3 *db, const char *sql);
sqlite3 *sq_open(const char *path);
sqlite3_stmt *sq_prepare(sqlite3 *db, const char *sql);

/* ---- groups outside bench.c --------------------------------------------------------- */

void bench_query(void);       /* group "query" (bench_query.c) */
void bench_view_put(void);    /* group "viewput" (bench_query.c) */

#endif /* KD_BENCH_H */
