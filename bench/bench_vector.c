/*
** bench_vector.c — the vector search figures of `make bench` (group "vector";
** docs/benchmarks.md, "Vector search"): KoruDelta's kd_search against hnswlib
** (bench/hnswlib_shim.h) and against KoruDelta's own exact search, in one run, on the
** same data:
**
**   vector_qps_recall95      single-thread queries/s at the smallest ef whose recall@10 is
**                            >= 0.95, each side at its own ef (ratio ours/hnswlib)
**   vector_qps_vs_exact      the same figure against exact search (information)
**   vector_build             vectors indexed per second (ratio ours/hnswlib)
**   vector_bytes_per_vector  heap retained by the index per vector (ratio hnswlib/ours)
**   vector_reopen_seconds    kd_open + first search with the saved index; the rebuild
**                            without it is shown beside it (not a ratio)
**
** The data: N (default 100,000) 128-d vectors in 100 Gaussian clusters and Q (default
** 1,000) queries drawn the same way, from a fixed seed (the splitmix64 of bench_common.c),
** so every run and both sides see the same numbers. The ground truth (top 10 by cosine,
** double precision, ties by index as kd_search breaks them by key) is brute force.
** Both indexes use M = 16 and ef_construction = 200 and run on this one thread. The
** metric is cosine: KoruDelta gets the raw vectors (KD_METRIC_COSINE normalises them);
** hnswlib gets each vector normalised in the timed loop, in its InnerProductSpace.
** KD_BENCH_VEC_N (at least 5,000) and KD_BENCH_VEC_Q shrink the data for a quick run.
**
** Uses only the public API of the library, the hnswlib shim, POSIX and glibc's
** mallinfo2 (the heap figure).
*/
#include <dirent.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "korudelta.h"
#include "bench.h"
#include "hnswlib_shim.h"

#define VNS "vec"
#define VMODEL "bench"
#define VDIM 128
#define VCLUSTERS 100
#define VSPREAD 0.5            /* noise sigma per component; centres are N(0, 1) */
#define VK 10                  /* recall@10 */
#define VM 16
#define VEFC 200
#define VSEED 0x76656374ull    /* "vect" */
#define VN_DEFAULT 100000u
#define VQ_DEFAULT 1000u
#define VEXACT_Q 50u           /* queries for exact search's QPS (it scans every vector) */
#define VREOPEN_Q 100u         /* queries compared before close and after reopen */
#define RECALL_GOAL 0.95
#define CURVE_SECONDS 0.3      /* least time per point of the curve and side */
#define VKEY_W 16

/* ef values of the recall/QPS curve, the same for both sides. */
static const uint32_t EF_CURVE[] = {10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160,
                                    192, 256, 384, 512};
#define NEF (sizeof EF_CURVE / sizeof EF_CURVE[0])

typedef struct vdata {
    uint32_t n, q;
    float *base;               /* n x VDIM */
    float *query;              /* q x VDIM */
    uint32_t *truth;           /* q x VK, best first */
} vdata;

/* ---- the data ------------------------------------------------------------------------ */

/* A standard normal draw (Box-Muller; one of the pair is dropped, for simplicity). */
static double gauss(uint64_t *s) {
    double u1 = (double)((rnd(s) >> 11) + 1) * 0x1p-53; /* (0, 1] */
    double u2 = (double)(rnd(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* count vectors around the centres: pick a cluster, add VSPREAD * N(0, 1) per component. */
static void draw(float *out, uint32_t count, const double *centre, uint64_t *s) {
    for (uint32_t i = 0; i < count; i++) {
        const double *c = centre + (rnd(s) % VCLUSTERS) * VDIM;
        for (int d = 0; d < VDIM; d++) out[(size_t)i * VDIM + d] = (float)(c[d] + VSPREAD * gauss(s));
    }
}

typedef struct truth_job {
    const vdata *v;
    const double *inv_norm;    /* 1 / |base[i]| */
    uint32_t q0, q1;
    pthread_t th;
} truth_job;

/* Brute force top VK by cosine, in double, for queries q0..q1-1. Ties go to the smaller
** index, as kd_search breaks them by key ("v0000042" sorts as its number). */
static void *truth_run(void *arg) {
    truth_job *j = arg;
    const vdata *v = j->v;
    for (uint32_t qi = j->q0; qi < j->q1; qi++) {
        const float *q = v->query + (size_t)qi * VDIM;
        double best[VK], qn = 0;
        uint32_t id[VK];
        int have = 0;
        for (int d = 0; d < VDIM; d++) qn += (double)q[d] * q[d];
        qn = 1.0 / sqrt(qn);
        for (uint32_t i = 0; i < v->n; i++) {
            const float *x = v->base + (size_t)i * VDIM;
            double dot = 0;
            for (int d = 0; d < VDIM; d++) dot += (double)q[d] * x[d];
            double s = dot * qn * j->inv_norm[i];
            if (have == VK && s <= best[VK - 1]) continue; /* equal: the earlier index stays */
            int p = have < VK ? have++ : VK - 1;
            while (p > 0 && best[p - 1] < s) {
                best[p] = best[p - 1];
                id[p] = id[p - 1];
                p--;
            }
            best[p] = s;
            id[p] = i;
        }
        memcpy(v->truth + (size_t)qi * VK, id, sizeof id);
    }
    return NULL;
}

static void vdata_free(vdata *v) {
    free(v->base);
    free(v->query);
    free(v->truth);
}

static uint32_t env_u32(const char *name, uint32_t dflt, uint32_t lo, uint32_t hi) {
    const char *e = getenv(name);
    unsigned long x = e && *e ? strtoul(e, NULL, 10) : dflt;
    return x < lo ? lo : x > hi ? hi : (uint32_t)x;
}

static int vdata_make(vdata *v) {
    double *centre = malloc(sizeof(double) * VCLUSTERS * VDIM), *inv = NULL;
    uint64_t s = VSEED;
    int rc = -1;
    memset(v, 0, sizeof *v);
    /* At least 5,000: below 2,000 candidates kd_search answers exactly (docs/vector.md). */
    v->n = env_u32("KD_BENCH_VEC_N", VN_DEFAULT, 5000, 10000000);
    v->q = env_u32("KD_BENCH_VEC_Q", VQ_DEFAULT, 1, 100000);
    v->base = malloc(sizeof(float) * v->n * VDIM);
    v->query = malloc(sizeof(float) * v->q * VDIM);
    v->truth = malloc(sizeof(uint32_t) * v->q * VK);
    inv = malloc(sizeof(double) * v->n);
    if (!centre || !v->base || !v->query || !v->truth || !inv) {
        fail("out of memory");
        goto out;
    }
    for (int i = 0; i < VCLUSTERS * VDIM; i++) centre[i] = gauss(&s);
    draw(v->base, v->n, centre, &s);
    draw(v->query, v->q, centre, &s);
    for (uint32_t i = 0; i < v->n; i++) {
        double n2 = 0;
        for (int d = 0; d < VDIM; d++) n2 += (double)v->base[(size_t)i * VDIM + d] * v->base[(size_t)i * VDIM + d];
        inv[i] = 1.0 / sqrt(n2);
    }
    /* Two threads: the machine has 2 cores and this is set-up, not a figure. */
    double t0 = mono();
    truth_job job[2];
    uint32_t half = v->q / 2;
    for (int t = 0; t < 2; t++) {
        job[t] = (truth_job){.v = v, .inv_norm = inv, .q0 = t ? half : 0, .q1 = t ? v->q : half};
    }
    int started = pthread_create(&job[1].th, NULL, truth_run, &job[1]) == 0;
    truth_run(&job[0]);
    if (started) pthread_join(job[1].th, NULL);
    else truth_run(&job[1]);
    printf("  data: %u vectors + %u queries, %d-d, %d clusters (sigma %.2f), seed %#llx;"
           " ground truth by brute force in %.1f s\n", v->n, v->q, VDIM, VCLUSTERS, VSPREAD,
           (unsigned long long)VSEED, mono() - t0);
    rc = 0;
out:
    free(centre);
    free(inv);
    return rc;
}

/* Recall@VK of got (q x VK labels, UINT32_MAX = none) against the truth. */
static double recall(const vdata *v, const uint32_t *got, uint32_t q) {
    uint64_t hit = 0;
    for (uint32_t i = 0; i < q; i++) {
        const uint32_t *t = v->truth + (size_t)i * VK, *g = got + (size_t)i * VK;
        for (int a = 0; a < VK; a++)
            for (int b = 0; b < VK; b++)
                if (g[a] == t[b]) {
                    hit++;
                    break;
                }
    }
    return (double)hit / ((double)q * VK);
}

static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ---- the KoruDelta side -------------------------------------------------------------- */

static void vkey(char *out, uint32_t i) { snprintf(out, VKEY_W, "v%07u", i); }

static uint32_t key_index(const char *key) {
    char *end = NULL;
    if (!key || key[0] != 'v') return UINT32_MAX;
    unsigned long x = strtoul(key + 1, &end, 10);
    return x > UINT32_MAX || *end ? UINT32_MAX : (uint32_t)x;
}

static kd_db *vk_open(const char *dir) {
    kd_options o;
    kd_db *db = NULL;
    kd_options_init(&o);
    o.sync = KD_SYNC_OFF; /* loading is not a figure */
    o.hnsw_m = VM;
    o.hnsw_ef_construction = VEFC;
    if (kd_open(dir, &o, &db) != KD_OK) fail("kd_open %s: %s", dir, kd_errmsg(NULL));
    return db;
}

/* One search of query qi: its hit labels (UINT32_MAX-padded) into out[VK], and the hits'
** scores into score[VK] unless NULL. 0, or -1 (failed). */
static int vk_search(kd_db *db, const vdata *v, uint32_t qi, uint32_t ef, int exact,
                    uint32_t *out, double *score) {
    kd_search_opts o;
    kd_search_hit *hits = NULL;
    size_t n = 0;
    kd_search_opts_init(&o);
    o.ns = VNS;
    o.model = VMODEL;
    o.vector = v->query + (size_t)qi * VDIM;
    o.dim = VDIM;
    o.top_k = VK;
    o.metric = KD_METRIC_COSINE;
    o.exact = exact;
    o.ef_search = ef;
    if (kd_search(db, &o, &hits, &n) != KD_OK) {
        fail("kd_search: %s", kd_errmsg(db));
        return -1;
    }
    for (size_t i = 0; i < VK; i++) {
        out[i] = i < n ? key_index(hits[i].key) : UINT32_MAX;
        if (score) score[i] = i < n ? hits[i].score : NAN;
    }
    kd_search_free(hits, n);
    return 0;
}

/* The first q queries at ef, over and over until at least min_s seconds have passed
** (whole passes only): the labels of the first pass into got (q x VK); queries per
** second, NAN on failure. */
static double vk_pass(kd_db *db, const vdata *v, uint32_t q, uint32_t ef, int exact,
                      uint32_t *got, double min_s) {
    uint32_t scratch[VK];
    uint64_t done = 0;
    double t0 = mono(), t;
    do {
        for (uint32_t i = 0; i < q; i++, done++) {
            uint32_t *out = done < q ? got + (size_t)i * VK : scratch;
            if (vk_search(db, v, i, ef, exact, out, NULL) != 0) return NAN;
        }
    } while ((t = mono() - t0) < min_s);
    return (double)done / t;
}

static int vk_load(kd_db *db, const vdata *v) {
    char key[VKEY_W];
    double t0 = mono();
    for (uint32_t i = 0; i < v->n; i++) {
        vkey(key, i);
        if (kd_embed(db, VNS, key, v->base + (size_t)i * VDIM, VDIM, VMODEL, NULL, NULL) != KD_OK) {
            fail("kd_embed %s/%s: %s", VNS, key, kd_errmsg(db));
            return -1;
        }
    }
    printf("  kdelta: %u kd_embed (sync off) in %.2f s\n", v->n, mono() - t0);
    return 0;
}

/* ---- the hnswlib side ------------------------------------------------------------------ */

static void normalise(float *out, const float *x) {
    double n2 = 0;
    for (int d = 0; d < VDIM; d++) n2 += (double)x[d] * x[d];
    double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0;
    for (int d = 0; d < VDIM; d++) out[d] = (float)(x[d] * inv);
}

static hnswshim *hl_build(const vdata *v, double *seconds) {
    float buf[VDIM];
    double t0 = mono();
    hnswshim *h = hnswshim_new(VDIM, v->n, VM, VEFC, 100);
    if (!h) {
        fail("hnswlib: cannot create an index of %u vectors", v->n);
        return NULL;
    }
    for (uint32_t i = 0; i < v->n; i++) {
        normalise(buf, v->base + (size_t)i * VDIM);
        if (hnswshim_add(h, buf, i) != 0) {
            fail("hnswlib: addPoint %u failed", i);
            hnswshim_free(h);
            return NULL;
        }
    }
    *seconds = mono() - t0;
    return h;
}

/* As vk_pass, for hnswlib. Each query is normalised inside the timed loop (KoruDelta
** normalises its queries inside kd_search). */
static double hl_pass(hnswshim *h, const vdata *v, uint32_t q, uint32_t ef, uint32_t *got,
                      double min_s) {
    float buf[VDIM];
    size_t lab[VK];
    uint64_t done = 0;
    double t0 = mono(), t;
    hnswshim_set_ef(h, ef);
    do {
        for (uint32_t i = 0; i < q; i++, done++) {
            normalise(buf, v->query + (size_t)i * VDIM);
            long n = hnswshim_search(h, buf, VK, lab, NULL);
            if (n < 0) {
                fail("hnswlib: searchKnn failed");
                return NAN;
            }
            for (long j = 0; done < q && j < VK; j++)
                got[(size_t)i * VK + j] = j < n ? (uint32_t)lab[j] : UINT32_MAX;
        }
    } while ((t = mono() - t0) < min_s);
    return (double)done / t;
}

/* ---- the reopen figure ---------------------------------------------------------------- */

/* Bytes of the saved vector index files (<dir>/vec-*.idx); with del, removes them too.
** *files gets their number. */
static long long idx_files(const char *dir, int del, int *files) {
    long long bytes = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    *files = 0;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "vec-", 4) != 0 || n < 8 || strcmp(e->d_name + n - 4, ".idx") != 0)
            continue;
        char *p = path_join(dir, e->d_name);
        struct stat st;
        if (p && stat(p, &st) == 0) {
            bytes += st.st_size;
            ++*files;
            if (del && unlink(p) != 0) fail("cannot remove %s", p);
        }
        free(p);
    }
    if (d) closedir(d);
    return bytes;
}

/* kd_open + the first search (which loads or rebuilds the index): seconds, NAN on
** failure. Leaves the handle open in *db. */
static double timed_reopen(const char *dir, const vdata *v, uint32_t ef, kd_db **db) {
    uint32_t got[VK];
    double t0 = mono();
    if (!(*db = vk_open(dir))) return NAN;
    if (vk_search(*db, v, 0, ef, 0, got, NULL) != 0) return NAN;
    return mono() - t0;
}

/* Whether queries 0..nq-1 give the same hits (keys and scores, in order) as before. */
static int same_hits(kd_db *db, const vdata *v, uint32_t nq, uint32_t ef, const uint32_t *lab,
                     const double *score, uint32_t *differ) {
    uint32_t got[VK];
    double sc[VK];
    *differ = 0;
    for (uint32_t i = 0; i < nq; i++) {
        if (vk_search(db, v, i, ef, 0, got, sc) != 0) return -1;
        if (memcmp(got, lab + (size_t)i * VK, sizeof got) != 0 ||
            memcmp(sc, score + (size_t)i * VK, sizeof sc) != 0)
            ++*differ;
    }
    return 0;
}

/* ---- the group ------------------------------------------------------------------------ */

typedef struct curve_pt { double kd_r, kd_qps, hl_r, hl_qps; } curve_pt;

/* The first point of the curve at or above the recall goal, for one side; -1 if none. */
static int first_at_goal(const curve_pt *c, int hl) {
    for (size_t i = 0; i < NEF; i++)
        if ((hl ? c[i].hl_r : c[i].kd_r) >= RECALL_GOAL) return (int)i;
    return -1;
}

void bench_vector(void) {
    vdata v = {0};
    kd_db *db = NULL;
    hnswshim *h = NULL;
    char *dir = path_join(g_cfg.dir, "vector.kd");
    uint32_t *got = NULL, *lab = NULL;
    double *score = NULL;
    curve_pt curve[NEF];
    double build_kd = NAN, build_hl = NAN, bytes_kd = NAN, bytes_hl = NAN;
    double qps_kd = NAN, qps_hl = NAN, qps_exact = NAN, reopen = NAN, rebuild = NAN;
    kd_stats st;

    printf("vector search: KoruDelta against %s and exact search; M=%d, ef_construction=%d,"
           " cosine, one thread\n", hnswshim_version(), VM, VEFC);
    fflush(stdout);
    if (!dir || vdata_make(&v) != 0) goto out;
    uint32_t nreopen = v.q < VREOPEN_Q ? v.q : VREOPEN_Q;
    got = malloc(sizeof(uint32_t) * v.q * VK);
    lab = malloc(sizeof(uint32_t) * nreopen * VK);
    score = malloc(sizeof(double) * nreopen * VK);
    if (!got || !lab || !score) {
        fail("out of memory");
        goto out;
    }

    /* Build: KoruDelta's index is built by the first search from the stored embeddings;
    ** hnswlib's by its addPoint loop. Heap retained across each build, per vector. */
    if (!(db = vk_open(dir)) || vk_load(db, &v) != 0) goto out;
    size_t heap0 = heap_in_use();
    double t0 = mono();
    if (vk_search(db, &v, 0, 0, 0, got, NULL) != 0) goto out;
    build_kd = (double)v.n / (mono() - t0);
    bytes_kd = ((double)heap_in_use() - (double)heap0) / v.n;
    if (kd_stats_get(db, &st) != KD_OK) {
        fail("kd_stats_get: %s", kd_errmsg(db));
        goto out;
    }
    printf("  kdelta build (first kd_search): %.2f s, %.0f vectors/s; heap retained %.1f B/vector;"
           " kd_stats: %llu index(es), %llu vectors, %llu bytes (%.1f B/vector)\n",
           v.n / build_kd, build_kd, bytes_kd, (unsigned long long)st.vector_indexes,
           (unsigned long long)st.vector_index_vectors,
           (unsigned long long)st.vector_index_bytes,
           st.vector_index_vectors ? (double)st.vector_index_bytes / st.vector_index_vectors : NAN);
    if (st.vector_indexes < 1 || st.vector_index_vectors != v.n) {
        fail("kd_search did not build an HNSW index of %u vectors (kd_stats: %llu indexes,"
             " %llu vectors): the figures would measure exact search", v.n,
             (unsigned long long)st.vector_indexes, (unsigned long long)st.vector_index_vectors);
        build_kd = bytes_kd = NAN;
        goto out;
    }
    fflush(stdout);
    heap0 = heap_in_use();
    double hs = NAN;
    if (!(h = hl_build(&v, &hs))) goto out;
    build_hl = v.n / hs;
    bytes_hl = ((double)heap_in_use() - (double)heap0) / v.n;
    printf("  hnswlib build (addPoint loop): %.2f s, %.0f vectors/s; heap retained %.1f B/vector\n",
           hs, build_hl, bytes_hl);

    /* The curve: one pass over every query per ef and side, alternating, after one
    ** untimed pass per side (each build pushed the other's memory out of the caches). */
    if (isnan(vk_pass(db, &v, v.q, EF_CURVE[0], 0, got, 0)) ||
        isnan(hl_pass(h, &v, v.q, EF_CURVE[0], got, 0)))
        goto out;
    printf("  %6s  %14s %12s  %14s %12s\n", "ef", "kdelta recall", "queries/s", "hnswlib recall",
           "queries/s");
    for (size_t i = 0; i < NEF; i++) {
        curve[i].kd_qps = vk_pass(db, &v, v.q, EF_CURVE[i], 0, got, CURVE_SECONDS);
        curve[i].kd_r = recall(&v, got, v.q);
        curve[i].hl_qps = hl_pass(h, &v, v.q, EF_CURVE[i], got, CURVE_SECONDS);
        curve[i].hl_r = recall(&v, got, v.q);
        if (isnan(curve[i].kd_qps) || isnan(curve[i].hl_qps)) goto out;
        printf("  %6u  %14.4f %12.0f  %14.4f %12.0f\n", EF_CURVE[i], curve[i].kd_r,
               curve[i].kd_qps, curve[i].hl_r, curve[i].hl_qps);
        fflush(stdout);
    }

    /* The figure: each side at its own smallest ef reaching the goal, alternating rounds
    ** of every query, medians kept. The recall of every round must be the curve's. */
    int ik = first_at_goal(curve, 0), ih = first_at_goal(curve, 1);
    if (ik < 0 || ih < 0) {
        printf("  recall %.2f not reached on the curve by %s\n", RECALL_GOAL,
               ik < 0 && ih < 0 ? "either side" : ik < 0 ? "kdelta" : "hnswlib");
    } else {
        double a[MAX_ROUNDS], b[MAX_ROUNDS];
        for (int r = 0; r < g_cfg.rounds; r++) {
            a[r] = vk_pass(db, &v, v.q, EF_CURVE[ik], 0, got, g_cfg.seconds);
            if (recall(&v, got, v.q) != curve[ik].kd_r) fail("kdelta: recall moved between passes");
            b[r] = hl_pass(h, &v, v.q, EF_CURVE[ih], got, g_cfg.seconds);
            if (recall(&v, got, v.q) != curve[ih].hl_r) fail("hnswlib: recall moved between passes");
            printf("  %-24s round %d: kdelta %10.1f (ef %u)   hnswlib %10.1f (ef %u)\n",
                   "vector_qps_recall95", r + 1, a[r], EF_CURVE[ik], b[r], EF_CURVE[ih]);
            fflush(stdout);
        }
        qps_kd = median(a, g_cfg.rounds);
        qps_hl = median(b, g_cfg.rounds);
        printf("  at recall >= %.2f: kdelta ef %u (recall %.4f), hnswlib ef %u (recall %.4f)\n",
               RECALL_GOAL, EF_CURVE[ik], curve[ik].kd_r, EF_CURVE[ih], curve[ih].hl_r);
    }

    /* Exact search: the other baseline; its recall must be 1. */
    {
        uint32_t ne = v.q < VEXACT_Q ? v.q : VEXACT_Q;
        double x = vk_pass(db, &v, ne, 0, 1, got, 0);
        double r = recall(&v, got, ne);
        printf("  exact kd_search: %.1f queries/s over %u queries, recall %.4f\n", x, ne, r);
        if (!isnan(x) && r != 1.0) fail("exact search: recall@10 %.4f, expected 1", r);
        else qps_exact = x;
    }
    hnswshim_free(h);
    h = NULL;

    /* Reopen: hits before the close, then open + first search with the saved index,
    ** the same hits after; then the same without the index files (a rebuild). */
    {
        uint32_t ef = ik >= 0 ? EF_CURVE[ik] : 0, differ = 0;
        for (uint32_t i = 0; i < nreopen; i++)
            if (vk_search(db, &v, i, ef, 0, lab + (size_t)i * VK, score + (size_t)i * VK) != 0)
                goto out;
        t0 = mono();
        int rc = kd_close(db);
        db = NULL;
        if (rc != KD_OK) {
            fail("kd_close: %s", kd_errmsg(NULL));
            goto out;
        }
        int files = 0;
        long long bytes = idx_files(dir, 0, &files);
        printf("  kd_close: %.2f s; %d index file(s) vec-*.idx, %lld bytes (%.1f B/vector)\n",
               mono() - t0, files, bytes, (double)bytes / v.n);
        reopen = timed_reopen(dir, &v, ef, &db);
        if (isnan(reopen) || same_hits(db, &v, nreopen, ef, lab, score, &differ) != 0) goto out;
        printf("  reopen with %s: %.4f s; %u of %u queries differ from before the close\n",
               files ? "the saved index" : "NO saved index (rebuilt)", reopen, differ, nreopen);
        if (differ) fail("after the reopen, %u of %u searches return other hits", differ, nreopen);
        if (files == 0)
            printf("  (no vec-*.idx after kd_close: the library does not save the index yet)\n");
        rc = kd_close(db);
        db = NULL;
        if (rc != KD_OK) {
            fail("kd_close: %s", kd_errmsg(NULL));
            goto out;
        }
        idx_files(dir, 1, &files);
        rebuild = timed_reopen(dir, &v, ef, &db);
        if (isnan(rebuild) || same_hits(db, &v, nreopen, ef, lab, score, &differ) != 0) goto out;
        printf("  reopen without vec-*.idx (rebuild from the log): %.4f s; %u of %u queries"
               " differ\n", rebuild, differ, nreopen);
    }

out:
    if (db && kd_close(db) != KD_OK) fail("kd_close: %s", kd_errmsg(NULL));
    hnswshim_free(h);
    vdata_free(&v);
    free(got);
    free(lab);
    free(score);
    free(dir);
    fflush(stdout);
    add_figure((figure){.name = "vector_qps_recall95", .unit = "queries/s", .kd = qps_kd,
                        .base = qps_hl, .higher_better = 1,
                        .base_name = "hnswlib: queries/s at recall@10 >= 0.95",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 1.0, .goal_text = ">= 1.0x"});
    add_figure((figure){.name = "vector_qps_vs_exact", .unit = "queries/s", .kd = qps_kd,
                        .base = qps_exact, .higher_better = 1,
                        .base_name = "kdelta: exact search (recall 1)"});
    add_figure((figure){.name = "vector_build", .unit = "vectors/s", .kd = build_kd,
                        .base = build_hl, .higher_better = 1,
                        .base_name = "hnswlib: addPoint loop",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 0.67, .goal_text = ">= 0.67x"});
    add_figure((figure){.name = "vector_bytes_per_vector", .unit = "bytes/vector",
                        .kd = bytes_kd, .base = bytes_hl,
                        .base_name = "hnswlib: heap retained by the index",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 0.77, .goal_text = ">= 0.77x"});
    add_figure((figure){.name = "vector_reopen_seconds", .unit = "s", .kd = reopen,
                        .base = rebuild, .ratio_null = 1,
                        .base_name = "kdelta: open + rebuild without the saved index"});
}
