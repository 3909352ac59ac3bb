/*
** hnsw.h — an approximate nearest-neighbour index over float32 vectors: a Hierarchical
** Navigable Small World graph (Malkov & Yashunin, 2016/2018), written from the paper.
** It knows nothing about the database: it maps the caller's dense uint32 ids to vectors.
**
** May call: base (allocation, kd__err, byte buffers), crypto/crc32c, the C library,
** pthreads.
**
** Metrics (distance d; smaller is nearer; `score` is what search reports):
**   KD__HNSW_COSINE  vectors and queries are stored/used normalised; d = 1 - dot;
**                    score = cosine similarity (-1..1). A zero vector stays zero
**                    (similarity 0 to everything).
**   KD__HNSW_DOT     d = -dot (inner product); score = dot product.
**   KD__HNSW_L2      d = squared Euclidean distance; score = squared distance.
** Results come back best first: descending score for cosine/dot, ascending for L2.
**
** Thread safety: every call takes the handle's rwlock. add/remove/free take it
** exclusively; search, save, count and bytes share it, so any number of searches run
** concurrently with each other, one writer at a time. kd__hnsw_free must not race with
** other calls.
**
** Deletion: remove() and update-by-re-add only mark the old graph node deleted. It stays
** in the graph for navigation and is never returned; kd__hnsw_count() reports how many
** such nodes exist so the caller can rebuild (e.g. when deleted > live).
**
** Memory layout (see hnsw.c): one block per node holding its level-0 links (count + 2*M
** ids) followed by its vector, one byte of level per node, node->id and id->node arrays,
** and a small separately allocated list for the ~1/M nodes that live on upper levels.
**
** Errors: KD_INVALID (bad argument, with a kd__err message), KD_NOMEM, KD_NOTFOUND
** (remove of an id that is not in the index), KD_CORRUPT (load: checksum, bounds or
** structure wrong — load never crashes or reads out of bounds on any input), KD_FORMAT
** (load: newer format version).
*/
#ifndef KD_HNSW_H
#define KD_HNSW_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct kd__hnsw kd__hnsw;

enum { KD__HNSW_COSINE = 0, KD__HNSW_DOT = 1, KD__HNSW_L2 = 2 };

#define KD__HNSW_DEFAULT_M 16
#define KD__HNSW_DEFAULT_EF_CONSTRUCTION 200
#define KD__HNSW_MAX_DIM 65536

/* Creates an empty index. dim in 1..KD__HNSW_MAX_DIM; metric one of the enum; M in
** 2..256 (0 = default 16); ef_construction in 1..100000 (0 = default 200; raised to M if
** smaller); seed drives the level draws, so the same inputs give the same graph.
** *out is owned by the caller (kd__hnsw_free). Errors: KD_INVALID, KD_NOMEM. */
int kd__hnsw_create(uint32_t dim, int metric, uint32_t M, uint32_t ef_construction,
                    uint64_t seed, kd__hnsw **out);
void kd__hnsw_free(kd__hnsw *h); /* NULL is fine */

/* Inserts v (dim floats, copied) under id. Ids must be dense (the id map is an array):
** id <= 64 * (nodes after this add, deleted ones included) + 2^20, else KD_INVALID. If id is already present its
** old node is marked deleted and a new node is inserted (an update). Non-finite
** components give KD_INVALID. On KD_NOMEM the index is unchanged (everything is allocated
** before the graph is touched; if a work heap cannot grow while linking, the new node is
** kept with fewer links rather than failing half-way). */
int kd__hnsw_add(kd__hnsw *h, uint32_t id, const float *v);

/* Makes room for `nodes` graph nodes in total (deleted ones count) so a bulk build does
** not grow by 1.5x steps and leave slack. Errors: KD_INVALID, KD_NOMEM. */
int kd__hnsw_reserve(kd__hnsw *h, uint32_t nodes);

/* Gives back the room reserved beyond the nodes present (after a bulk build). */
int kd__hnsw_shrink(kd__hnsw *h);

/* Marks id deleted: it is never returned again. KD_NOTFOUND if id is not present. */
int kd__hnsw_remove(kd__hnsw *h, uint32_t id);

/* Finds up to k nearest live ids to q (dim floats) for which accept(ctx, id) returns
** non-zero (accept may be NULL = accept all; it is called under the read lock, possibly
** from several searching threads, and must not call back into this index). Writes
** *n_out <= k results, best first, to ids_out[] and scores_out[] (either may be NULL;
** both must have room for k). ef_search is the size of the dynamic candidate list
** (0 = 64; raised to k).
**
** Filtering strategy: the graph walk explores every node (deleted or rejected ones
** included, so the graph stays navigable), but only accepted live nodes enter the result
** list; the walk stops when its nearest unexplored candidate is farther than the worst
** of ef accepted results. With a selective filter the result list stays short, so the
** bound stays open and the walk widens on its own — up to the whole connected graph —
** until ef accepted nodes are found. Hence: if k accepted live ids exist, k come back;
** cost grows roughly as ef / selectivity node visits, so for a filter keeping fewer than
** about ef*50 ids the caller should prefer exact search.
** Errors: KD_INVALID (k == 0 is not an error: *n_out = 0), KD_NOMEM. */
int kd__hnsw_search(kd__hnsw *h, const float *q, uint32_t k, uint32_t ef_search,
                    int (*accept)(void *ctx, uint32_t id), void *ctx, uint32_t *ids_out,
                    float *scores_out, uint32_t *n_out);

/* The distance kernel in use: "avx512f", "avx2+fma" or "generic" (chosen once from the
** CPU; KD_HNSW_GENERIC in the environment forces the portable one). */
const char *kd__hnsw_kernel(void);

/* Counts: live ids, and deleted nodes still in the graph. Either pointer may be NULL. */
void kd__hnsw_count(kd__hnsw *h, uint32_t *live, uint32_t *deleted);
/* Bytes of memory the index holds (allocated capacity, all arrays and lists). */
size_t kd__hnsw_bytes(kd__hnsw *h);
uint32_t kd__hnsw_dim(const kd__hnsw *h);
int kd__hnsw_metric(const kd__hnsw *h);
uint32_t kd__hnsw_m(const kd__hnsw *h);               /* as created (defaults applied) */
uint32_t kd__hnsw_ef_construction(const kd__hnsw *h);
/* The vector stored for id (normalised for cosine), or NULL when id is not in the index.
** Valid until the next add, remove, reserve or shrink: the caller keeps writers out. */
const float *kd__hnsw_vector(kd__hnsw *h, uint32_t id);

/* 1 when id is in the index and was not removed since it was added. */
int kd__hnsw_contains(kd__hnsw *h, uint32_t id);

/* Appends the serialised index to out (format in hnsw.c: header, arrays, CRC-32C
** trailer; little-endian, independent of the host). KD_NOMEM if out ran out. */
int kd__hnsw_save(kd__hnsw *h, kd_buf *out);

/* Builds an index from n bytes written by kd__hnsw_save. Every field is validated
** (checksum, sizes, neighbour ids in range, levels, id uniqueness, finite vectors).
** *out is owned by the caller. Errors: KD_CORRUPT, KD_FORMAT, KD_NOMEM. */
int kd__hnsw_load(const void *p, size_t n, kd__hnsw **out);

#endif /* KD_HNSW_H */
