/*
** hnswlib_shim.h — a small C interface to hnswlib's HierarchicalNSW<float> (Debian's
** header-only libhnswlib-dev), the baseline of the vector figures of `make bench`
** (bench/bench_vector.c). Only build/bench links it (bench/hnswlib_shim.cpp, built with
** g++): neither the library nor kdelta depends on C++ or on hnswlib.
**
** The index uses hnswlib's InnerProductSpace (distance = 1 - dot): with vectors and
** queries normalised by the caller, that is cosine distance. Every call catches C++
** exceptions and turns them into an error return; none throws into C.
*/
#ifndef KD_BENCH_HNSWLIB_SHIM_H
#define KD_BENCH_HNSWLIB_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hnswshim hnswshim;

/* An empty index for up to max_elements vectors of dim floats, with hnswlib's M,
** ef_construction and level seed. NULL on failure. Release with hnswshim_free. */
hnswshim *hnswshim_new(size_t dim, size_t max_elements, size_t M, size_t ef_construction,
                       size_t seed);
void hnswshim_free(hnswshim *h); /* NULL is a no-op */

/* Inserts v (dim floats, copied) under label. 0, or -1 (full, or an exception). */
int hnswshim_add(hnswshim *h, const float *v, size_t label);

/* The size of the search's dynamic candidate list (hnswlib raises it to k per search). */
void hnswshim_set_ef(hnswshim *h, size_t ef);

/* The k nearest labels to q, nearest first, into labels[] (and their distances into
** dist[] unless NULL); both have room for k. Returns how many, or -1 on an exception. */
long hnswshim_search(hnswshim *h, const float *q, size_t k, size_t *labels, float *dist);

/* The name and version of the library, for the bench's header line. */
const char *hnswshim_version(void);

#ifdef __cplusplus
}
#endif

#endif /* KD_BENCH_HNSWLIB_SHIM_H */
