/*
** base.h — the internal foundation shared by every layer above the OS: allocator hooks,
** growable byte buffers, the per-thread error message, small helpers.
**
** May call: the C library only. Every allocation in the library goes through kd__malloc
** and friends, so tests can fail the Nth allocation (kd__alloc_fail_at).
** Internal names shared across files start with kd__ (libuv style); static ones don't.
*/
#ifndef KD_BASE_H
#define KD_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "korudelta.h"

/* ---- allocation ---------------------------------------------------------------- */
void *kd__malloc(size_t n);
void *kd__calloc(size_t n, size_t size);
void *kd__realloc(void *p, size_t n);
void kd__free(void *p);
char *kd__strdup(const char *s);
char *kd__strndup(const char *s, size_t n);
/* Room for one more element in the array *pp (its element type elem bytes) holding n of
** *cap: when full, it doubles (or becomes first elements). pp is the address of the array
** pointer (e.g. &b->ops). KD_OK, or KD_NOMEM with the message and the array untouched. */
int kd__grow(void *pp, size_t *cap, size_t n, size_t elem, size_t first);
/* "dir/name", newly allocated (kd__free); NULL when out of memory. */
char *kd__path_join(const char *dir, const char *name);
/* Test hook: make the Nth allocation from now on fail (0 = never). Process-wide, for
** the out-of-memory tests only. */
void kd__alloc_fail_at(uint64_t n);

/* ---- growable buffer ------------------------------------------------------------ */
/* A byte buffer that is always NUL-terminated when p != NULL. Once an allocation fails
** the buffer sets `oom` and ignores further appends, so callers check once at the end. */
typedef struct kd_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} kd_buf;

#define KD_BUF_INIT {NULL, 0, 0, 0}
int kd__buf_reserve(kd_buf *b, size_t extra);          /* KD_OK or KD_NOMEM */
void kd__buf_append_slow(kd_buf *b, const void *p, size_t n);
/* Appends n bytes (inline fast path: the JSON writers append a few bytes at a time). */
static inline void kd__buf_append(kd_buf *b, const void *p, size_t n) {
    if (b->p && b->len + n < b->cap) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
        b->p[b->len] = 0;
    } else
        kd__buf_append_slow(b, p, n);
}
static inline void kd__buf_putc(kd_buf *b, char c) {
    if (b->p && b->len + 1 < b->cap) {
        b->p[b->len++] = c;
        b->p[b->len] = 0;
    } else
        kd__buf_append_slow(b, &c, 1);
}
void kd__buf_puts(kd_buf *b, const char *s);
void kd__buf_printf(kd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kd__buf_put_u8(kd_buf *b, uint8_t v);
void kd__buf_put_u16(kd_buf *b, uint16_t v);           /* little-endian */
void kd__buf_put_u32(kd_buf *b, uint32_t v);
void kd__buf_put_u64(kd_buf *b, uint64_t v);
void kd__buf_reset(kd_buf *b);                         /* len = 0, keeps memory */
void kd__buf_free(kd_buf *b);
/* Hands the bytes to the caller (NUL-terminated, free with kd__free); buffer is reset. */
char *kd__buf_take(kd_buf *b, size_t *len);

/* ---- little-endian decoding ------------------------------------------------------ */
static inline uint16_t kd__get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kd__get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t kd__get_u64(const uint8_t *p) {
    return (uint64_t)kd__get_u32(p) | ((uint64_t)kd__get_u32(p + 4) << 32);
}
static inline void kd__set_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void kd__set_u64(uint8_t *p, uint64_t v) {
    kd__set_u32(p, (uint32_t)v); kd__set_u32(p + 4, (uint32_t)(v >> 32));
}
/* 1 when the n bytes at p are all zero (n == 0 included). */
static inline int kd__all_zero(const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* ---- bounds-checked reading of a file image ---------------------------------------- */
/* Each take moves past n bytes and returns them; past the end it returns NULL (0 for the
** integers) and sets bad, which stays set: parse a whole structure, then check bad once.
** Used by the loaders of checkpoints and saved vector indexes, which must stay in bounds
** whatever the file holds. */
typedef struct kd_rd {
    const uint8_t *p;
    size_t len, off;
    int bad;
} kd_rd;
static inline const uint8_t *kd__take(kd_rd *r, size_t n) {
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}
static inline uint32_t kd__take8(kd_rd *r) { const uint8_t *p = kd__take(r, 1); return p ? *p : 0; }
static inline uint32_t kd__take16(kd_rd *r) { const uint8_t *p = kd__take(r, 2); return p ? kd__get_u16(p) : 0; }
static inline uint32_t kd__take32(kd_rd *r) { const uint8_t *p = kd__take(r, 4); return p ? kd__get_u32(p) : 0; }
static inline uint64_t kd__take64(kd_rd *r) { const uint8_t *p = kd__take(r, 8); return p ? kd__get_u64(p) : 0; }

/* ---- hashing --------------------------------------------------------------------- */
/* A 64-bit hash of n bytes for in-memory hash tables (FNV-1a with a final mix, so every
** bit depends on every byte; not for anything an attacker must not collide). */
uint64_t kd__hash64(const void *p, size_t n);

/* ---- errors ---------------------------------------------------------------------- */
/* Sets this thread's error message and returns rc, so code can say
** `return kd__err(KD_INVALID, "bad namespace %s", ns);`. */
int kd__err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *kd__errmsg_get(void);
void kd__err_clear(void);

/* ---- logging (KORU_LOG=error|warn|info|debug|trace, default warn) ---------------- */
enum { KD_LOG_ERROR = 0, KD_LOG_WARN, KD_LOG_INFO, KD_LOG_DEBUG, KD_LOG_TRACE };
void kd__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KD_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* KD_BASE_H */
