/*
** base.c — allocator hooks, growable buffers, the per-thread error message and the
** KORU_LOG logger. May call: the C library only.
*/
#include "base/base.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- allocation ---------------------------------------------------------------- */
/* The fail-at counter is the one piece of process-wide state: it exists for the
** out-of-memory tests, which run single-threaded. */
static _Atomic uint64_t alloc_fail_at;

void kd__alloc_fail_at(uint64_t n) { atomic_store(&alloc_fail_at, n); }

static int alloc_should_fail(void) {
    uint64_t n = atomic_load_explicit(&alloc_fail_at, memory_order_relaxed);
    if (n == 0) return 0;
    if (n == 1) { atomic_store(&alloc_fail_at, 0); return 1; }
    atomic_store(&alloc_fail_at, n - 1);
    return 0;
}

void *kd__malloc(size_t n) { return alloc_should_fail() ? NULL : malloc(n ? n : 1); }
void *kd__calloc(size_t n, size_t size) { return alloc_should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *kd__realloc(void *p, size_t n) { return alloc_should_fail() ? NULL : realloc(p, n ? n : 1); }
void kd__free(void *p) { free(p); }

char *kd__strndup(const char *s, size_t n) {
    char *d = kd__malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
char *kd__strdup(const char *s) { return kd__strndup(s, strlen(s)); }

int kd__grow(void *pp, size_t *cap, size_t n, size_t elem, size_t first) {
    if (n < *cap) return KD_OK;
    size_t nc = *cap ? *cap * 2 : first;
    void *old, *p;
    if (nc > SIZE_MAX / elem) return kd__err(KD_NOMEM, "out of memory");
    memcpy(&old, pp, sizeof old);
    if (!(p = kd__realloc(old, nc * elem))) return kd__err(KD_NOMEM, "out of memory");
    memcpy(pp, &p, sizeof p);
    *cap = nc;
    return KD_OK;
}

char *kd__path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = kd__malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- buffers --------------------------------------------------------------------- */
int kd__buf_reserve(kd_buf *b, size_t extra) {
    if (b->oom) return KD_NOMEM;
    if (b->len + extra + 1 <= b->cap) return KD_OK;
    size_t cap = b->cap ? b->cap : 64;
    if (extra > SIZE_MAX / 2 - b->len) { b->oom = 1; return KD_NOMEM; }
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) { b->oom = 1; return KD_NOMEM; }
        cap *= 2;
    }
    char *p = kd__realloc(b->p, cap);
    if (!p) { b->oom = 1; return KD_NOMEM; }
    b->p = p;
    b->cap = cap;
    return KD_OK;
}

void kd__buf_append_slow(kd_buf *b, const void *p, size_t n) {
    if (kd__buf_reserve(b, n) != KD_OK) return;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}
void kd__buf_puts(kd_buf *b, const char *s) { kd__buf_append(b, s, strlen(s)); }

void kd__buf_printf(kd_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = 1; return; }
    if ((size_t)n < sizeof small) { kd__buf_append(b, small, (size_t)n); return; }
    if (kd__buf_reserve(b, (size_t)n) != KD_OK) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void kd__buf_put_u8(kd_buf *b, uint8_t v) { kd__buf_append(b, &v, 1); }
void kd__buf_put_u16(kd_buf *b, uint16_t v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    kd__buf_append(b, x, 2);
}
void kd__buf_put_u32(kd_buf *b, uint32_t v) {
    uint8_t x[4];
    kd__set_u32(x, v);
    kd__buf_append(b, x, 4);
}
void kd__buf_put_u64(kd_buf *b, uint64_t v) {
    uint8_t x[8];
    kd__set_u64(x, v);
    kd__buf_append(b, x, 8);
}
void kd__buf_reset(kd_buf *b) {
    b->len = 0;
    b->oom = 0;
    if (b->p) b->p[0] = 0;
}
void kd__buf_free(kd_buf *b) {
    kd__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
char *kd__buf_take(kd_buf *b, size_t *len) {
    if (b->oom) { kd__buf_free(b); return NULL; }
    if (!b->p && kd__buf_reserve(b, 0) != KD_OK) return NULL;
    b->p[b->len] = 0; /* reserve alone does not terminate a never-written buffer */
    char *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- hashing --------------------------------------------------------------------- */
uint64_t kd__hash64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* ---- errors ---------------------------------------------------------------------- */
static _Thread_local char errmsg[1024];

int kd__err(int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return rc;
}
const char *kd__errmsg_get(void) { return errmsg[0] ? errmsg : "no error"; }
void kd__err_clear(void) { errmsg[0] = 0; }

const char *kd_errmsg(const kd_db *db) {
    (void)db;
    return kd__errmsg_get();
}

const char *kd_strerror(int rc) {
    switch (rc) {
    case KD_OK: return "ok";
    case KD_ERROR: return "error";
    case KD_NOTFOUND: return "not found";
    case KD_CONFLICT: return "conflict";
    case KD_CORRUPT: return "corrupt";
    case KD_IOERR: return "I/O error";
    case KD_NOMEM: return "out of memory";
    case KD_INVALID: return "invalid";
    case KD_BUSY: return "busy";
    case KD_TOOBIG: return "too big";
    case KD_FORMAT: return "unsupported format";
    case KD_READONLY: return "read-only";
    case KD_FULL: return "database full";
    case KD_AMBIGUOUS: return "ambiguous";
    case KD_DONE: return "done";
    default: return "unknown error";
    }
}

void kd_free(void *p) { kd__free(p); }
void *kd_malloc(size_t n) { return kd__malloc(n); }

/* ---- logging --------------------------------------------------------------------- */
static int log_level_from_env(void) {
    const char *s = getenv("KORU_LOG");
    if (!s) return KD_LOG_WARN;
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return KD_LOG_WARN;
}

void kd__log(int level, const char *fmt, ...) {
    if (level > log_level_from_env()) return;
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    const char *fmtenv = getenv("KORU_LOG_FORMAT");
    if (fmtenv && strcmp(fmtenv, "json") == 0) {
        kd_buf b = KD_BUF_INIT;
        kd__buf_printf(&b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"%s\",\"msg\":\"",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, ts.tv_nsec / 1000, names[level]);
        for (const char *p = line; *p; p++) {
            if (*p == '"' || *p == '\\') kd__buf_printf(&b, "\\%c", *p);
            else if ((unsigned char)*p < 0x20) kd__buf_printf(&b, "\\u%04x", *p);
            else kd__buf_putc(&b, *p);
        }
        kd__buf_puts(&b, "\"}\n");
        if (b.p) fputs(b.p, stderr);
        kd__buf_free(&b);
    } else {
        fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s %s\n", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000, names[level], line);
    }
}
