/*
** hnswlib_shim.cpp — the C interface of hnswlib_shim.h over hnswlib's header-only
** HierarchicalNSW<float> with InnerProductSpace, for build/bench only (the vector
** figures' baseline, bench/bench_vector.c). Built with g++ -O2 -std=c++11 -march=native:
** hnswlib picks its SIMD kernels at compile time, and the library picks its own at run
** time (AVX-512F or AVX2+FMA), so without -march=native the baseline would be held to SSE
** on a machine where KoruDelta uses AVX-512.
**
** It adds nothing to hnswlib's work: each call forwards to one hnswlib call and copies
** the result out. Exceptions stop here and become error returns.
*/
#include <hnswlib/hnswlib.h>

#include <new>
#include <queue>
#include <utility>

#include "hnswlib_shim.h"

struct hnswshim {
    hnswlib::InnerProductSpace space;
    hnswlib::HierarchicalNSW<float> index;
    hnswshim(size_t dim, size_t max_elements, size_t M, size_t efc, size_t seed)
        : space(dim), index(&space, max_elements, M, efc, seed) {}
};

extern "C" hnswshim *hnswshim_new(size_t dim, size_t max_elements, size_t M,
                                  size_t ef_construction, size_t seed) {
    try {
        return new hnswshim(dim, max_elements, M, ef_construction, seed);
    } catch (...) {
        return NULL;
    }
}

extern "C" void hnswshim_free(hnswshim *h) { delete h; }

extern "C" int hnswshim_add(hnswshim *h, const float *v, size_t label) {
    try {
        h->index.addPoint(v, label);
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" void hnswshim_set_ef(hnswshim *h, size_t ef) { h->index.setEf(ef); }

extern "C" long hnswshim_search(hnswshim *h, const float *q, size_t k, size_t *labels,
                                float *dist) {
    try {
        std::priority_queue<std::pair<float, hnswlib::labeltype>> r = h->index.searchKnn(q, k);
        long n = (long)r.size();
        /* The queue holds the farthest on top: fill from the back. */
        for (long i = n - 1; i >= 0; i--) {
            labels[i] = (size_t)r.top().second;
            if (dist) dist[i] = r.top().first;
            r.pop();
        }
        return n;
    } catch (...) {
        return -1;
    }
}

/* The Makefile passes the Debian package's version. The kernels are hnswlib's choice at
** compile time (hnswlib.h: from __AVX512F__, __AVX__, __SSE__). */
#ifndef HNSWLIB_DEB_VERSION
#define HNSWLIB_DEB_VERSION "(version unknown)"
#endif
#if defined(USE_AVX512)
#define SHIM_KERNELS "AVX-512"
#elif defined(USE_AVX)
#define SHIM_KERNELS "AVX"
#elif defined(USE_SSE)
#define SHIM_KERNELS "SSE"
#else
#define SHIM_KERNELS "scalar"
#endif
extern "C" const char *hnswshim_version(void) {
    return "hnswlib " HNSWLIB_DEB_VERSION " (" SHIM_KERNELS " distance kernels)";
}
