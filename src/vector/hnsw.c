/*
** hnsw.c — the HNSW graph index (see hnsw.h for the contract), written from Malkov &
** Yashunin's paper: greedy descent through sparse upper layers, a best-first beam search
** (ef) on each layer, neighbours chosen with the paper's diversity heuristic
** (Algorithm 4, without keeping pruned connections), levels drawn as floor(-ln(U) / ln M).
**
** May call: base, crypto/crc32c, the C library, pthreads.
**
** Memory layout, node numbers 0..n-1 in insertion order (nodes are never reused):
**   blk     cap records of `stride` bytes, one per node: its level-0 links as (1 + 2M)
**           uint32 [count, neighbour...], then its dim floats (normalised for cosine).
**           Keeping a node's links next to its vector means the lines a search reads to
**           score a node are the ones it reads again to expand it;
**   level   cap bytes: bits 0-6 the node's top level, bit 7 "deleted";
**   upper   cap pointers; for a node of level L > 0 a list of L records of (1 + M) uint32
**           (levels 1..L), NULL otherwise (~1/M of the nodes);
**   node_id cap uint32: the caller's id of each node;
**   id_node id_cap uint32: the live node of each id, NONE if absent.
** Invariants: every neighbour of a node at level l is < n and has level >= l; the entry
** point has level max_level; a deleted node keeps its links (it still routes searches)
** but is absent from id_node and never reported.
**
** Searches borrow a scratch area (visited marks with an epoch, two heaps, buffers) from a
** small mutex-protected pool, so concurrent readers do not share mutable state.
*/
#include "vector/hnsw.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "crypto/crc32c.h"

#define NONE UINT32_MAX
#define DELETED_BIT 0x80u
#define LEVEL_MASK 0x7fu
#define MAX_LEVEL 32

typedef struct cand {
    float d;    /* heap key: distance (candidates) or -distance (results) */
    uint32_t n; /* node */
} cand;

typedef struct heap { /* binary min-heap on d */
    cand *a;
    uint32_t len, cap;
} heap;

typedef struct scratch {
    struct scratch *next;
    uint16_t *mark; /* visited iff mark[node] == epoch */
    uint32_t mark_cap;
    uint16_t epoch;
    int oom; /* a heap push failed: results may be incomplete */
    heap cand, res;
    cand *sel;  /* sorted candidates / selection work space */
    uint32_t sel_cap;
    float *q;   /* normalised query */
} scratch;

struct kd__hnsw {
    pthread_rwlock_t lock;
    pthread_mutex_t pool_lock;
    scratch *pool;
    uint32_t dim, M, M0, efc;
    int metric;
    double level_mult;
    uint64_t rng;
    uint32_t n, cap;
    uint8_t *blk;   /* cap * stride bytes */
    size_t stride, vec_off;
    uint8_t *level;
    uint32_t **upper;
    uint32_t *node_id;
    uint32_t *id_node;
    uint32_t id_cap;
    uint32_t entry;
    uint32_t max_level;
    uint32_t live, deleted;
    size_t upper_bytes;
};

/* ---- distances ------------------------------------------------------------------- */
/* The portable versions keep eight independent sums, which the compiler turns into SIMD
** without -ffast-math (it may not reorder a single sum). On x86-64 the widest kernel the
** CPU has (AVX-512F, else AVX2 with FMA) is chosen once at run time; the build itself
** stays generic. Sums in another order differ in the last bits: these distances only
** steer the graph, and kd_search rescores its hits in double precision. */
static float dot_generic(const float *a, const float *b, uint32_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    for (; i < n; i++) s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
static float l2sq_generic(const float *a, const float *b, uint32_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float d = a[i + j] - b[i + j];
            s[j] += d * d;
        }
    for (; i < n; i++) s[0] += (a[i] - b[i]) * (a[i] - b[i]);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

typedef float (*kernel)(const float *a, const float *b, uint32_t n);
static kernel k_dot = dot_generic, k_l2sq = l2sq_generic;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static float hsum256(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, uint32_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
__attribute__((target("avx2,fma"))) static float l2sq_avx2(const float *a, const float *b, uint32_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return s;
}
__attribute__((target("avx512f"))) static float dot_avx512(const float *a, const float *b, uint32_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
__attribute__((target("avx512f"))) static float l2sq_avx512(const float *a, const float *b, uint32_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void pick_kernels(void) {
    __builtin_cpu_init();
    if (getenv("KD_HNSW_GENERIC")) return; /* tests and comparisons */
    if (__builtin_cpu_supports("avx512f")) {
        k_dot = dot_avx512;
        k_l2sq = l2sq_avx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k_dot = dot_avx2;
        k_l2sq = l2sq_avx2;
    }
}
#else
static void pick_kernels(void) {}
#endif

static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

/* The kernel names for kd__hnsw_kernel(). */
const char *kd__hnsw_kernel(void) {
    pthread_once(&kernels_once, pick_kernels);
#if defined(__x86_64__) && defined(__GNUC__)
    if (k_dot == dot_avx512) return "avx512f";
    if (k_dot == dot_avx2) return "avx2+fma";
#endif
    return "generic";
}

static float dot(const float *a, const float *b, uint32_t n) { return k_dot(a, b, n); }
static float l2sq(const float *a, const float *b, uint32_t n) { return k_l2sq(a, b, n); }
static float dist(const kd__hnsw *h, const float *a, const float *b) {
    switch (h->metric) {
    case KD__HNSW_L2: return l2sq(a, b, h->dim);
    case KD__HNSW_COSINE: return 1.0f - dot(a, b, h->dim);
    default: return -dot(a, b, h->dim);
    }
}
static float score_of(const kd__hnsw *h, float d) {
    return h->metric == KD__HNSW_L2 ? d : h->metric == KD__HNSW_COSINE ? 1.0f - d : -d;
}
static const float *vec(const kd__hnsw *h, uint32_t node) {
    return (const float *)(h->blk + (size_t)node * h->stride + h->vec_off);
}
static void normalise(float *v, uint32_t n) {
    double s = 0;
    for (uint32_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    if (s > 0) {
        float inv = (float)(1.0 / sqrt(s));
        for (uint32_t i = 0; i < n; i++) v[i] *= inv;
    }
}

/* ---- links ------------------------------------------------------------------------ */
static uint32_t node_level(const kd__hnsw *h, uint32_t node) {
    return h->level[node] & LEVEL_MASK;
}
static int is_deleted(const kd__hnsw *h, uint32_t node) {
    return (h->level[node] & DELETED_BIT) != 0;
}
/* The record [count, ids...] of node at level lev (lev <= node_level). */
static uint32_t *links(const kd__hnsw *h, uint32_t node, uint32_t lev) {
    if (lev == 0) return (uint32_t *)(h->blk + (size_t)node * h->stride);
    return h->upper[node] + (size_t)(lev - 1) * (1 + h->M);
}
static uint32_t max_links(const kd__hnsw *h, uint32_t lev) { return lev ? h->M : h->M0; }

/* ---- heaps ------------------------------------------------------------------------ */
static int heap_push(scratch *s, heap *hp, float d, uint32_t n) {
    if (hp->len == hp->cap) {
        uint32_t nc = hp->cap ? hp->cap * 2 : 256;
        cand *na = kd__realloc(hp->a, (size_t)nc * sizeof *na);
        if (!na) {
            s->oom = 1;
            return 0;
        }
        hp->a = na;
        hp->cap = nc;
    }
    uint32_t i = hp->len++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (hp->a[p].d <= d) break;
        hp->a[i] = hp->a[p];
        i = p;
    }
    hp->a[i].d = d;
    hp->a[i].n = n;
    return 1;
}
/* Replaces the top (the smallest d) with (d, n) and restores the heap: a pop and a push
** in one sift. */
static void heap_replace_top(heap *hp, float d, uint32_t n) {
    uint32_t i = 0, len = hp->len;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= len) break;
        if (c + 1 < len && hp->a[c + 1].d < hp->a[c].d) c++;
        if (d <= hp->a[c].d) break;
        hp->a[i] = hp->a[c];
        i = c;
    }
    hp->a[i].d = d;
    hp->a[i].n = n;
}
static cand heap_pop(heap *hp) {
    cand top = hp->a[0], last = hp->a[--hp->len];
    uint32_t i = 0, n = hp->len;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hp->a[c + 1].d < hp->a[c].d) c++;
        if (last.d <= hp->a[c].d) break;
        hp->a[i] = hp->a[c];
        i = c;
    }
    if (n) hp->a[i] = last;
    return top;
}

/* ---- scratch pool ----------------------------------------------------------------- */
static scratch *scratch_get(kd__hnsw *h) {
    pthread_mutex_lock(&h->pool_lock);
    scratch *s = h->pool;
    if (s) h->pool = s->next;
    pthread_mutex_unlock(&h->pool_lock);
    if (!s) {
        s = kd__calloc(1, sizeof *s);
        if (!s) return NULL;
        s->q = kd__malloc((size_t)h->dim * sizeof(float));
        if (!s->q) {
            kd__free(s);
            return NULL;
        }
    }
    s->oom = 0;
    return s;
}
static void scratch_free(scratch *s) {
    kd__free(s->mark);
    kd__free(s->cand.a);
    kd__free(s->res.a);
    kd__free(s->sel);
    kd__free(s->q);
    kd__free(s);
}
static void scratch_put(kd__hnsw *h, scratch *s) {
    pthread_mutex_lock(&h->pool_lock);
    s->next = h->pool;
    h->pool = s;
    pthread_mutex_unlock(&h->pool_lock);
}
/* Starts a new visit (all nodes unvisited) sized for the current graph. */
static int scratch_visit(const kd__hnsw *h, scratch *s) {
    if (s->mark_cap < h->n) {
        uint32_t nc = h->cap > h->n ? h->cap : h->n;
        uint16_t *m = kd__calloc(nc, sizeof *m);
        if (!m) return KD_NOMEM;
        kd__free(s->mark);
        s->mark = m;
        s->mark_cap = nc;
        s->epoch = 0;
    }
    if (++s->epoch == 0) {
        memset(s->mark, 0, (size_t)s->mark_cap * sizeof *s->mark);
        s->epoch = 1;
    }
    return KD_OK;
}
static int scratch_sel(scratch *s, uint32_t n) {
    if (s->sel_cap >= n) return KD_OK;
    cand *c = kd__realloc(s->sel, (size_t)n * sizeof *c);
    if (!c) return KD_NOMEM;
    s->sel = c;
    s->sel_cap = n;
    return KD_OK;
}

/* ---- search ----------------------------------------------------------------------- */
typedef struct filter {
    int live_only; /* skip deleted nodes and call accept */
    int (*accept)(void *ctx, uint32_t id);
    void *ctx;
} filter;

static int wanted(const kd__hnsw *h, const filter *f, uint32_t node) {
    if (!f->live_only || (h->deleted == 0 && !f->accept)) return 1; /* no level[] read */
    if (is_deleted(h, node)) return 0;
    return !f->accept || f->accept(f->ctx, h->node_id[node]);
}

/* Greedy walk at levels top..stop+1 from *cur: returns the nearest node found. */
static void descend(const kd__hnsw *h, const float *q, uint32_t top, uint32_t stop,
                    uint32_t *cur, float *curd) {
    for (uint32_t lev = top; lev > stop; lev--) {
        int moved = 1;
        while (moved) {
            moved = 0;
            const uint32_t *l = links(h, *cur, lev);
            for (uint32_t i = 1; i <= l[0]; i++) __builtin_prefetch(vec(h, l[i]));
            for (uint32_t i = 1; i <= l[0]; i++) {
                float d = dist(h, q, vec(h, l[i]));
                if (d < *curd) {
                    *curd = d;
                    *cur = l[i];
                    moved = 1;
                }
            }
        }
    }
}

/* Beam search on one level from ep (the paper's SEARCH-LAYER). Leaves the best ef wanted
** nodes in s->res as a heap keyed by -distance. Every node is explored, wanted or not;
** only wanted nodes fill the result list, so the stopping bound only closes once ef
** wanted nodes are known. Heap push failures set s->oom and drop the element. */
static int search_layer(const kd__hnsw *h, scratch *s, const float *q, uint32_t ep,
                        float ep_d, uint32_t ef, uint32_t lev, const filter *f) {
    int rc = scratch_visit(h, s);
    if (rc) return rc;
    s->cand.len = s->res.len = 0;
    s->mark[ep] = s->epoch;
    heap_push(s, &s->cand, ep_d, ep);
    if (wanted(h, f, ep)) heap_push(s, &s->res, -ep_d, ep);
    while (s->cand.len) {
        if (s->res.len >= ef && s->cand.a[0].d > -s->res.a[0].d) break;
        cand c = heap_pop(&s->cand);
        const uint32_t *l = links(h, c.n, lev);
        uint32_t cnt = l[0], todo[2 * 256 + 1], nt = 0; /* M0 <= 2 * 256 */
        /* First the neighbours not seen yet, each vector's first lines requested from
        ** memory; then their distances, while the next ones arrive. */
        for (uint32_t i = 1; i <= cnt; i++) {
            uint32_t e = l[i];
            if (s->mark[e] == s->epoch) continue;
            s->mark[e] = s->epoch;
            todo[nt++] = e;
            __builtin_prefetch(vec(h, e));
        }
        for (uint32_t j = 0; j < nt; j++) {
            uint32_t e = todo[j];
            if (j + 1 < nt) { /* the rest of the next vector */
                const char *nv = (const char *)vec(h, todo[j + 1]);
                for (size_t b = 64; b < (size_t)h->dim * sizeof(float); b += 64) __builtin_prefetch(nv + b);
            }
            float d = dist(h, q, vec(h, e));
            if (s->res.len < ef || d < -s->res.a[0].d) {
                heap_push(s, &s->cand, d, e);
                if (wanted(h, f, e)) {
                    if (s->res.len < ef) heap_push(s, &s->res, -d, e);
                    else heap_replace_top(&s->res, -d, e);
                }
            }
        }
    }
    return KD_OK;
}

/* Moves s->res into s->sel sorted nearest first (distances positive again); returns n. */
static uint32_t drain_sorted(scratch *s) {
    uint32_t n = s->res.len;
    if (scratch_sel(s, n ? n : 1)) {
        s->oom = 1;
        return 0;
    }
    for (uint32_t i = n; i > 0; i--) {
        cand c = heap_pop(&s->res);
        c.d = -c.d;
        s->sel[i - 1] = c;
    }
    return n;
}

/* The paper's neighbour heuristic: walking candidates nearest first, keep one only if it
** is nearer to the base than to every neighbour kept so far (spreads links over
** directions, which keeps clustered data navigable). c[] sorted ascending; the kept ones
** are compacted to the front; returns how many (<= m). */
static uint32_t select_heuristic(const kd__hnsw *h, cand *c, uint32_t n, uint32_t m) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n && kept < m; i++) {
        int ok = 1;
        for (uint32_t j = 0; j < kept; j++) {
            if (dist(h, vec(h, c[i].n), vec(h, c[j].n)) < c[i].d) {
                ok = 0;
                break;
            }
        }
        if (ok) c[kept++] = c[i];
    }
    return kept;
}

static void sort_cands(cand *c, uint32_t n) { /* insertion sort: n <= 2M + 1 */
    for (uint32_t i = 1; i < n; i++) {
        cand x = c[i];
        uint32_t j = i;
        while (j > 0 && c[j - 1].d > x.d) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/* Adds node as a neighbour of r at lev; when r's list is full, re-selects r's neighbours
** from old + new with the heuristic. */
static void link_back(const kd__hnsw *h, uint32_t r, uint32_t node, uint32_t lev) {
    uint32_t *l = links(h, r, lev);
    uint32_t mx = max_links(h, lev);
    if (l[0] < mx) {
        l[1 + l[0]++] = node;
        return;
    }
    cand c[2 * 256 + 1];
    const float *rv = vec(h, r);
    for (uint32_t i = 0; i < l[0]; i++) {
        c[i].n = l[1 + i];
        c[i].d = dist(h, rv, vec(h, c[i].n));
    }
    c[mx].n = node;
    c[mx].d = dist(h, rv, vec(h, node));
    sort_cands(c, mx + 1);
    uint32_t k = select_heuristic(h, c, mx + 1, mx);
    for (uint32_t i = 0; i < k; i++) l[1 + i] = c[i].n;
    l[0] = k;
}

/* Links a new node (vector, level and mappings already in place) into the graph. Cannot
** fail: on a heap allocation failure the node just gets fewer links. */
static void insert_node(kd__hnsw *h, scratch *s, uint32_t node) {
    uint32_t L = node_level(h, node);
    if (h->entry == NONE) {
        h->entry = node;
        h->max_level = L;
        return;
    }
    const float *q = vec(h, node);
    uint32_t cur = h->entry;
    float curd = dist(h, q, vec(h, cur));
    if (h->max_level > L) descend(h, q, h->max_level, L, &cur, &curd);
    filter all = {0, NULL, NULL};
    for (uint32_t lev = (L < h->max_level ? L : h->max_level) + 1; lev-- > 0;) {
        if (search_layer(h, s, q, cur, curd, h->efc, lev, &all)) continue;
        uint32_t n = drain_sorted(s);
        if (n == 0) continue;
        cur = s->sel[0].n;
        curd = s->sel[0].d;
        uint32_t k = select_heuristic(h, s->sel, n, h->M);
        uint32_t *l = links(h, node, lev);
        l[0] = k;
        for (uint32_t i = 0; i < k; i++) l[1 + i] = s->sel[i].n;
        for (uint32_t i = 0; i < k; i++) link_back(h, s->sel[i].n, node, lev);
    }
    if (L > h->max_level) {
        h->entry = node;
        h->max_level = L;
    }
}

/* ---- life cycle ------------------------------------------------------------------- */
static uint64_t rng_next(uint64_t *st) { /* splitmix64 */
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t draw_level(kd__hnsw *h) {
    double u = ((double)(rng_next(&h->rng) >> 11) + 1.0) / 9007199254740993.0; /* (0,1] */
    double l = floor(-log(u) * h->level_mult);
    return l >= MAX_LEVEL ? MAX_LEVEL : (uint32_t)l;
}

static int check_params(uint32_t dim, int metric, uint32_t M, uint32_t efc) {
    if (dim < 1 || dim > KD__HNSW_MAX_DIM)
        return kd__err(KD_INVALID, "hnsw: dimension %u out of range 1..%u", dim,
                       KD__HNSW_MAX_DIM);
    if (metric != KD__HNSW_COSINE && metric != KD__HNSW_DOT && metric != KD__HNSW_L2)
        return kd__err(KD_INVALID, "hnsw: unknown metric %d", metric);
    if (M < 2 || M > 256) return kd__err(KD_INVALID, "hnsw: M %u out of range 2..256", M);
    if (efc < 1 || efc > 100000)
        return kd__err(KD_INVALID, "hnsw: ef_construction %u out of range 1..100000", efc);
    return KD_OK;
}

static kd__hnsw *alloc_handle(uint32_t dim, int metric, uint32_t M, uint32_t efc,
                              uint64_t seed) {
    kd__hnsw *h = kd__calloc(1, sizeof *h);
    if (!h) return NULL;
    if (pthread_rwlock_init(&h->lock, NULL)) {
        kd__free(h);
        return NULL;
    }
    if (pthread_mutex_init(&h->pool_lock, NULL)) {
        pthread_rwlock_destroy(&h->lock);
        kd__free(h);
        return NULL;
    }
    h->dim = dim;
    h->metric = metric;
    h->M = M;
    h->M0 = 2 * M;
    h->vec_off = (1 + (size_t)h->M0) * sizeof(uint32_t);
    h->stride = h->vec_off + (size_t)dim * sizeof(float);
    h->efc = efc < M ? M : efc;
    h->level_mult = 1.0 / log((double)M);
    h->rng = seed;
    h->entry = NONE;
    return h;
}

int kd__hnsw_create(uint32_t dim, int metric, uint32_t M, uint32_t ef_construction,
                    uint64_t seed, kd__hnsw **out) {
    pthread_once(&kernels_once, pick_kernels);
    if (!M) M = KD__HNSW_DEFAULT_M;
    if (!ef_construction) ef_construction = KD__HNSW_DEFAULT_EF_CONSTRUCTION;
    *out = NULL;
    int rc = check_params(dim, metric, M, ef_construction);
    if (rc) return rc;
    *out = alloc_handle(dim, metric, M, ef_construction, seed);
    return *out ? KD_OK : KD_NOMEM;
}

void kd__hnsw_free(kd__hnsw *h) {
    if (!h) return;
    while (h->pool) {
        scratch *s = h->pool;
        h->pool = s->next;
        scratch_free(s);
    }
    if (h->upper)
        for (uint32_t i = 0; i < h->n; i++) kd__free(h->upper[i]);
    kd__free(h->blk);
    kd__free(h->level);
    kd__free(h->upper);
    kd__free(h->node_id);
    kd__free(h->id_node);
    pthread_mutex_destroy(&h->pool_lock);
    pthread_rwlock_destroy(&h->lock);
    kd__free(h);
}

/* Grows the node arrays to hold at least want nodes. All-or-nothing per array; a failure
** leaves the old (still valid) capacity in every array that was not grown yet. */
static int grow_nodes(kd__hnsw *h, uint32_t want) {
    if (want <= h->cap) return KD_OK;
    uint64_t nc64 = h->cap ? (uint64_t)h->cap + h->cap / 2 : 64; /* 1.5x: less slack */
    if (nc64 < want) nc64 = want;
    if (nc64 > NONE - 1) nc64 = NONE - 1;
    uint32_t nc = (uint32_t)nc64;
    uint8_t *b = kd__realloc(h->blk, (size_t)nc * h->stride);
    if (!b) return KD_NOMEM;
    h->blk = b;
    uint8_t *lv = kd__realloc(h->level, nc);
    if (!lv) return KD_NOMEM;
    h->level = lv;
    uint32_t **up = kd__realloc(h->upper, (size_t)nc * sizeof *up);
    if (!up) return KD_NOMEM;
    h->upper = up;
    uint32_t *ni = kd__realloc(h->node_id, (size_t)nc * sizeof *ni);
    if (!ni) return KD_NOMEM;
    h->node_id = ni;
    h->cap = nc;
    return KD_OK;
}
static int grow_ids(kd__hnsw *h, uint32_t id) {
    if (id < h->id_cap) return KD_OK;
    uint64_t nc = h->id_cap ? (uint64_t)h->id_cap * 2 : 64;
    while (nc <= id) nc *= 2;
    if (nc > NONE) nc = NONE;
    uint32_t *m = kd__realloc(h->id_node, (size_t)nc * sizeof *m);
    if (!m) return KD_NOMEM;
    for (uint64_t i = h->id_cap; i < nc; i++) m[i] = NONE;
    h->id_node = m;
    h->id_cap = (uint32_t)nc;
    return KD_OK;
}

/* Ids are the caller's dense numbers; the id map is an array, so a bound on the largest
** id keeps a damaged file (or a stray id) from asking for gigabytes. */
static uint64_t id_limit(uint64_t nodes) { return 64 * nodes + (1u << 20); }

static void mark_deleted(kd__hnsw *h, uint32_t id) {
    uint32_t node = h->id_node[id];
    h->level[node] |= DELETED_BIT;
    h->id_node[id] = NONE;
    h->live--;
    h->deleted++;
}

int kd__hnsw_add(kd__hnsw *h, uint32_t id, const float *v) {
    int rc = KD_OK;
    scratch *s = NULL;
    uint32_t *up = NULL;
    if (id == NONE) return kd__err(KD_INVALID, "hnsw: id %u out of range", id);
    for (uint32_t i = 0; i < h->dim; i++)
        if (!isfinite(v[i]))
            return kd__err(KD_INVALID, "hnsw: component %u of the vector is not finite", i);
    pthread_rwlock_wrlock(&h->lock);
    if (h->n == NONE - 1) {
        rc = kd__err(KD_INVALID, "hnsw: index full");
        goto out;
    }
    if (id > id_limit(h->n + 1)) {
        rc = kd__err(KD_INVALID, "hnsw: id %u is not dense (limit %llu for %u nodes)", id,
                     (unsigned long long)id_limit(h->n + 1), h->n + 1);
        goto out;
    }
    if ((rc = grow_nodes(h, h->n + 1)) || (rc = grow_ids(h, id))) goto out;
    s = scratch_get(h);
    if (!s || scratch_sel(s, h->efc + 1)) {
        rc = KD_NOMEM;
        goto out;
    }
    uint32_t lev = draw_level(h);
    if (lev) {
        up = kd__malloc((size_t)lev * (1 + h->M) * sizeof *up);
        if (!up) {
            rc = KD_NOMEM;
            goto out;
        }
        for (uint32_t i = 0; i < lev; i++) up[(size_t)i * (1 + h->M)] = 0;
        h->upper_bytes += (size_t)lev * (1 + h->M) * sizeof *up;
    }
    /* From here on nothing can fail. */
    if (h->id_node[id] != NONE) mark_deleted(h, id);
    uint32_t node = h->n++;
    float *dst = (float *)(h->blk + (size_t)node * h->stride + h->vec_off);
    memcpy(dst, v, (size_t)h->dim * sizeof *dst);
    if (h->metric == KD__HNSW_COSINE) normalise(dst, h->dim);
    h->level[node] = (uint8_t)lev;
    h->upper[node] = up;
    up = NULL;
    links(h, node, 0)[0] = 0;
    h->node_id[node] = id;
    h->id_node[id] = node;
    h->live++;
    insert_node(h, s, node);
out:
    if (s) scratch_put(h, s);
    kd__free(up);
    pthread_rwlock_unlock(&h->lock);
    return rc;
}

int kd__hnsw_reserve(kd__hnsw *h, uint32_t nodes) {
    int rc = KD_OK;
    pthread_rwlock_wrlock(&h->lock);
    if (nodes >= NONE) rc = kd__err(KD_INVALID, "hnsw: cannot reserve %u nodes", nodes);
    else if (grow_nodes(h, nodes)) rc = kd__err(KD_NOMEM, "hnsw: out of memory reserving");
    pthread_rwlock_unlock(&h->lock);
    return rc;
}

int kd__hnsw_shrink(kd__hnsw *h) {
    pthread_rwlock_wrlock(&h->lock);
    uint32_t n = h->n ? h->n : 1;
    if (h->cap > n) { /* an array whose shrink fails keeps its larger block: cap = n is a lower bound for all */
        uint8_t *b = kd__realloc(h->blk, (size_t)n * h->stride);
        if (b) h->blk = b;
        uint8_t *lv = kd__realloc(h->level, n);
        if (lv) h->level = lv;
        uint32_t **up = kd__realloc(h->upper, (size_t)n * sizeof *up);
        if (up) h->upper = up;
        uint32_t *ni = kd__realloc(h->node_id, (size_t)n * sizeof *ni);
        if (ni) h->node_id = ni;
        h->cap = n;
    }
    pthread_rwlock_unlock(&h->lock);
    return KD_OK;
}

int kd__hnsw_remove(kd__hnsw *h, uint32_t id) {
    int rc = KD_OK;
    pthread_rwlock_wrlock(&h->lock);
    if (id >= h->id_cap || h->id_node[id] == NONE)
        rc = kd__err(KD_NOTFOUND, "hnsw: id %u is not in the index", id);
    else
        mark_deleted(h, id);
    pthread_rwlock_unlock(&h->lock);
    return rc;
}

int kd__hnsw_search(kd__hnsw *h, const float *q, uint32_t k, uint32_t ef_search,
                    int (*accept)(void *ctx, uint32_t id), void *ctx, uint32_t *ids_out,
                    float *scores_out, uint32_t *n_out) {
    int rc = KD_OK;
    scratch *s = NULL;
    *n_out = 0;
    for (uint32_t i = 0; i < h->dim; i++)
        if (!isfinite(q[i]))
            return kd__err(KD_INVALID, "hnsw: component %u of the query is not finite", i);
    pthread_rwlock_rdlock(&h->lock);
    if (k == 0 || h->entry == NONE || h->live == 0) goto out;
    s = scratch_get(h);
    if (!s) {
        rc = KD_NOMEM;
        goto out;
    }
    const float *qv = q;
    if (h->metric == KD__HNSW_COSINE) {
        memcpy(s->q, q, (size_t)h->dim * sizeof *q);
        normalise(s->q, h->dim);
        qv = s->q;
    }
    uint32_t ef = ef_search ? ef_search : 64;
    if (ef < k) ef = k;
    uint32_t cur = h->entry;
    float curd = dist(h, qv, vec(h, cur));
    descend(h, qv, h->max_level, 0, &cur, &curd);
    filter f = {1, accept, ctx};
    if ((rc = search_layer(h, s, qv, cur, curd, ef, 0, &f))) goto out;
    uint32_t n = drain_sorted(s);
    if (s->oom) {
        rc = kd__err(KD_NOMEM, "hnsw: out of memory in search");
        goto out;
    }
    if (n > k) n = k;
    for (uint32_t i = 0; i < n; i++) {
        if (ids_out) ids_out[i] = h->node_id[s->sel[i].n];
        if (scores_out) scores_out[i] = score_of(h, s->sel[i].d);
    }
    *n_out = n;
out:
    if (s) scratch_put(h, s);
    pthread_rwlock_unlock(&h->lock);
    return rc;
}

void kd__hnsw_count(kd__hnsw *h, uint32_t *live, uint32_t *deleted) {
    pthread_rwlock_rdlock(&h->lock);
    if (live) *live = h->live;
    if (deleted) *deleted = h->deleted;
    pthread_rwlock_unlock(&h->lock);
}

size_t kd__hnsw_bytes(kd__hnsw *h) {
    pthread_rwlock_rdlock(&h->lock);
    size_t per_node = (size_t)h->dim * sizeof(float) + (1 + (size_t)h->M0) * 4 + 1 +
                      sizeof(uint32_t *) + 4;
    size_t b = sizeof *h + (size_t)h->cap * per_node + (size_t)h->id_cap * 4 + h->upper_bytes;
    pthread_mutex_lock(&h->pool_lock);
    for (scratch *s = h->pool; s; s = s->next)
        b += sizeof *s + (size_t)s->mark_cap * 2 + ((size_t)s->cand.cap + s->res.cap +
             s->sel_cap) * sizeof(cand) + (size_t)h->dim * sizeof(float);
    pthread_mutex_unlock(&h->pool_lock);
    pthread_rwlock_unlock(&h->lock);
    return b;
}

uint32_t kd__hnsw_dim(const kd__hnsw *h) { return h->dim; }
int kd__hnsw_metric(const kd__hnsw *h) { return h->metric; }
uint32_t kd__hnsw_m(const kd__hnsw *h) { return h->M; }
uint32_t kd__hnsw_ef_construction(const kd__hnsw *h) { return h->efc; }

const float *kd__hnsw_vector(kd__hnsw *h, uint32_t id) {
    pthread_rwlock_rdlock(&h->lock);
    const float *v = id < h->id_cap && h->id_node[id] != NONE ? vec(h, h->id_node[id]) : NULL;
    pthread_rwlock_unlock(&h->lock);
    return v;
}

int kd__hnsw_contains(kd__hnsw *h, uint32_t id) {
    pthread_rwlock_rdlock(&h->lock);
    int in = id < h->id_cap && h->id_node[id] != NONE;
    pthread_rwlock_unlock(&h->lock);
    return in;
}

/* ---- serialisation ---------------------------------------------------------------- */
/* Byte layout (all integers little-endian; floats as their IEEE-754 bit patterns):
**   0  8  magic "KDHNSW\0\0"
**   8  4  format version (1)
**  12  4  dim          16  4  metric       20  4  M           24  4  ef_construction
**  28  4  n (nodes)    32  4  entry node (0xFFFFFFFF when empty)
**  36  4  max_level    40  4  live         44  4  deleted     48  8  rng state
**  56     node_id[n] (4 bytes each)
**         level[n] (1 byte each: bits 0-6 level, bit 7 deleted)
**         vectors: n * dim floats
**         level-0 records: n * (1 + 2M) uint32 [count, ids..., unused slots zero]
**         upper records: for each node with level L > 0, L * (1 + M) uint32
**   end-4 4  CRC-32C of every byte before it */
#define HDR_SIZE 56
#define FORMAT_VERSION 1
static const char MAGIC[8] = {'K', 'D', 'H', 'N', 'S', 'W', 0, 0};

static void put_f32(kd_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    kd__buf_put_u32(b, u);
}
static void put_record(kd_buf *b, const uint32_t *l, uint32_t max) {
    kd__buf_put_u32(b, l[0]);
    for (uint32_t i = 1; i <= max; i++) kd__buf_put_u32(b, i <= l[0] ? l[i] : 0);
}

int kd__hnsw_save(kd__hnsw *h, kd_buf *out) {
    pthread_rwlock_rdlock(&h->lock);
    size_t start = out->len;
    kd__buf_append(out, MAGIC, 8);
    kd__buf_put_u32(out, FORMAT_VERSION);
    kd__buf_put_u32(out, h->dim);
    kd__buf_put_u32(out, (uint32_t)h->metric);
    kd__buf_put_u32(out, h->M);
    kd__buf_put_u32(out, h->efc);
    kd__buf_put_u32(out, h->n);
    kd__buf_put_u32(out, h->entry);
    kd__buf_put_u32(out, h->max_level);
    kd__buf_put_u32(out, h->live);
    kd__buf_put_u32(out, h->deleted);
    kd__buf_put_u64(out, h->rng);
    for (uint32_t i = 0; i < h->n; i++) kd__buf_put_u32(out, h->node_id[i]);
    if (h->n) kd__buf_append(out, h->level, h->n);
    for (uint32_t i = 0; i < h->n; i++)
        for (uint32_t j = 0; j < h->dim; j++) put_f32(out, vec(h, i)[j]);
    for (uint32_t i = 0; i < h->n; i++) put_record(out, links(h, i, 0), h->M0);
    for (uint32_t i = 0; i < h->n; i++)
        for (uint32_t lev = 1; lev <= node_level(h, i); lev++)
            put_record(out, links(h, i, lev), h->M);
    if (!out->oom)
        kd__buf_put_u32(out, kd__crc32c(0, out->p + start, out->len - start));
    pthread_rwlock_unlock(&h->lock);
    return out->oom ? kd__err(KD_NOMEM, "hnsw: out of memory saving the index") : KD_OK;
}

/* Reads one link record at p and checks it: count <= max, neighbours < n with level >=
** lev. Returns 0 when bad. */
static int load_record(const kd__hnsw *h, const uint8_t *p, uint32_t *dst, uint32_t max,
                       uint32_t lev) {
    uint32_t cnt = kd__get_u32(p);
    if (cnt > max) return 0;
    dst[0] = cnt;
    for (uint32_t i = 1; i <= cnt; i++) {
        uint32_t e = kd__get_u32(p + 4 * (size_t)i);
        if (e >= h->n || node_level(h, e) < lev) return 0;
        dst[i] = e;
    }
    return 1;
}

int kd__hnsw_load(const void *buf, size_t len, kd__hnsw **out) {
    pthread_once(&kernels_once, pick_kernels);
    const uint8_t *p = buf;
    kd__hnsw *h = NULL;
    int rc = KD_OK;
    *out = NULL;
#define CORRUPT(...) do { rc = kd__err(KD_CORRUPT, "hnsw: " __VA_ARGS__); goto out; } while (0)
    if (len < HDR_SIZE + 4) CORRUPT("index too short (%zu bytes)", len);
    if (memcmp(p, MAGIC, 8) != 0) CORRUPT("bad magic");
    if (kd__crc32c(0, p, len - 4) != kd__get_u32(p + len - 4)) CORRUPT("checksum mismatch");
    uint32_t version = kd__get_u32(p + 8);
    if (version > FORMAT_VERSION) {
        rc = kd__err(KD_FORMAT, "hnsw: index format %u is newer than %u", version,
                     FORMAT_VERSION);
        goto out;
    }
    if (version != FORMAT_VERSION) CORRUPT("bad format version %u", version);
    uint32_t dim = kd__get_u32(p + 12), metric = kd__get_u32(p + 16);
    uint32_t M = kd__get_u32(p + 20), efc = kd__get_u32(p + 24), n = kd__get_u32(p + 28);
    uint32_t entry = kd__get_u32(p + 32), max_level = kd__get_u32(p + 36);
    uint32_t live = kd__get_u32(p + 40), deleted = kd__get_u32(p + 44);
    if (metric > 2 || check_params(dim, (int)metric, M, efc)) CORRUPT("bad parameters");
    if (n == NONE || max_level > MAX_LEVEL) CORRUPT("bad counts");
    uint64_t fixed = HDR_SIZE + 4 + (uint64_t)n * (4 + 1) + (uint64_t)n * dim * 4 +
                     (uint64_t)n * (1 + 2 * (uint64_t)M) * 4;
    if (fixed > len) CORRUPT("index truncated");
    h = alloc_handle(dim, (int)metric, M, efc, kd__get_u64(p + 48));
    if (!h || grow_nodes(h, n ? n : 1)) {
        rc = KD_NOMEM;
        goto out;
    }
    memset(h->upper, 0, (size_t)h->cap * sizeof *h->upper);
    const uint8_t *q = p + HDR_SIZE;
    /* levels first: the link checks below need every node's level */
    const uint8_t *lv = q + (size_t)n * 4;
    uint64_t upper_words = 0;
    uint32_t n_del = 0, max_id = 0, any_live = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = lv[i] & LEVEL_MASK;
        if (l > max_level) CORRUPT("node %u above the top level", i);
        upper_words += (uint64_t)l * (1 + M);
        if (lv[i] & DELETED_BIT)
            n_del++;
        else {
            uint32_t id = kd__get_u32(q + 4 * (size_t)i);
            if (id == NONE) CORRUPT("bad id");
            if (id > max_id) max_id = id;
            any_live = 1;
        }
        h->level[i] = lv[i];
        h->node_id[i] = kd__get_u32(q + 4 * (size_t)i);
    }
    h->n = n; /* from here kd__hnsw_free releases per-node lists */
    if (n_del != deleted || live != n - n_del) CORRUPT("counts do not match");
    if (fixed + upper_words * 4 != len) CORRUPT("index size does not match its contents");
    if (n ? (entry >= n || node_level(h, entry) != max_level) : (entry != NONE || max_level))
        CORRUPT("bad entry point");
    if (any_live && max_id > id_limit(n)) CORRUPT("id %u out of range", max_id);
    if (any_live && grow_ids(h, max_id)) {
        rc = KD_NOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (is_deleted(h, i)) continue;
        uint32_t id = h->node_id[i];
        if (h->id_node[id] != NONE) CORRUPT("id %u appears twice", id);
        h->id_node[id] = i;
    }
    h->live = live;
    h->deleted = deleted;
    h->entry = entry;
    h->max_level = max_level;
    q = lv + n;
    for (size_t i = 0; i < (size_t)n * dim; i++, q += 4) {
        uint32_t u = kd__get_u32(q);
        float f;
        memcpy(&f, &u, 4);
        if (!isfinite(f)) CORRUPT("non-finite vector component");
        ((float *)(h->blk + i / dim * h->stride + h->vec_off))[i % dim] = f;
    }
    for (uint32_t i = 0; i < n; i++, q += 4 * (size_t)(1 + h->M0))
        if (!load_record(h, q, links(h, i, 0), h->M0, 0)) CORRUPT("bad links of node %u", i);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = node_level(h, i);
        if (!l) continue;
        h->upper[i] = kd__malloc((size_t)l * (1 + M) * sizeof(uint32_t));
        if (!h->upper[i]) {
            rc = KD_NOMEM;
            goto out;
        }
        h->upper_bytes += (size_t)l * (1 + M) * sizeof(uint32_t);
        for (uint32_t lev = 1; lev <= l; lev++, q += 4 * (size_t)(1 + M))
            if (!load_record(h, q, links(h, i, lev), M, lev))
                CORRUPT("bad links of node %u at level %u", i, lev);
    }
#undef CORRUPT
out:
    if (rc) {
        kd__hnsw_free(h);
        h = NULL;
    }
    if (!rc && !h) rc = KD_NOMEM;
    *out = h;
    return rc;
}
