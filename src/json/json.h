/*
** json.h — the JSON layer: a strict RFC 8259 parser into a small tree, the canonical and
** pretty writers, equality, cloning and RFC 6902 JSON Patch (diff and apply).
**
** May call: base (src/base/base.h) and the C library only.
**
** Canonical JSON (what every hash and every stored value uses):
**   - object members sorted by key bytes (memcmp order, a shorter key first on a tie);
**     duplicate keys are rejected at parse time, so a parsed object never holds two;
**   - no insignificant whitespace;
**   - strings escape only `"` `\` and control characters: \b \f \n \r \t, the others as
**     \u00xx (lowercase hex); DEL, `/` and all non-ASCII are written raw (UTF-8);
**   - a number whose exact value is an integer within int64 is a KD_JINT and is written
**     as an integer (`1`, `1.0`, `1e0`, `10E-1`, `-0` are all `0`/`1`...); every other
**     number is a KD_JDOUBLE written in the shortest `%.{p}g` form that reads back to the
**     same double. Canonical text parses back to an equal tree and re-writes byte-for-byte.
**
** Tree invariants (established by the parser, kept by clone and patch apply):
**   - a KD_JDOUBLE is never integral within int64 (such values are KD_JINT);
**   - strings are valid UTF-8 (they may contain NUL) and NUL-terminated after len bytes;
**   - object members are sorted and unique as described above.
** Nodes are allocated with kd__malloc; kd__json_free releases a whole tree.
*/
#ifndef KD_JSON_H
#define KD_JSON_H

#include "base/base.h"

typedef enum {
    KD_JNULL,
    KD_JFALSE,
    KD_JTRUE,
    KD_JINT,
    KD_JDOUBLE,
    KD_JSTRING,
    KD_JARRAY,
    KD_JOBJECT
} kd_jtype;

typedef struct kd_json kd_json;
typedef struct kd_jmember {
    char *key;
    size_t klen;
    kd_json *val;
} kd_jmember;

struct kd_json {
    kd_jtype type;
    union {
        int64_t i;
        double d;
        struct { char *s; size_t len; } str;     /* NUL-terminated too; may contain \0 */
        struct { kd_json **v; size_t n; } arr;
        struct { kd_jmember *m; size_t n; } obj; /* sorted by key bytes (memcmp, shorter first on tie) */
    } u;
};

/* Nesting deeper than this many arrays/objects is rejected by the parser. */
#define KD_JSON_MAX_DEPTH 512

/* A parse error: code (KD_INVALID or KD_NOMEM), pos = byte offset of the problem in the
** text (the text length for an unexpected end), msg = what is wrong, without the position
** (e.g. "duplicate object key"). */
typedef struct kd_json_err {
    int code;
    size_t pos;
    char msg[160];
} kd_json_err;

/* Parses len bytes of text (need not be NUL-terminated) holding exactly one JSON value of
** any type, with optional whitespace around it. On KD_OK *out is a tree to release with
** kd__json_free. On failure *out is NULL, err (may be NULL) is filled and the thread's
** error message is "invalid JSON at byte N: ..." (or "out of memory").
** Returns KD_OK, KD_INVALID or KD_NOMEM. */
int kd__json_parse(const char *text, size_t len, kd_json **out, kd_json_err *err);

/* Releases a tree; NULL is a no-op. */
void kd__json_free(kd_json *v);

/* Appends the canonical text of v to out. Out of memory is reported through out->oom. */
void kd__json_write_canonical(const kd_json *v, kd_buf *out);

/* Appends a human-readable form of v to out: one member or element per line, nested levels
** indented by `indent` spaces (kd_json_pretty uses 2; values < 0 count as 0), sorted keys,
** `"key": value`, empty {} and [] on one line, no newline at the end. Scalars are written
** exactly as in canonical form. Out of memory is reported through out->oom. */
void kd__json_write_pretty(const kd_json *v, kd_buf *out, int indent);

/* Parses text and appends its canonical form to out. Returns as kd__json_parse; on
** KD_NOMEM while writing, out->oom is set too. */
int kd__json_canonicalize(const char *text, size_t len, kd_buf *out, kd_json_err *err);

/* 1 when a and b are the same JSON value (numbers compared by value), else 0. NULL equals
** only NULL. */
int kd__json_equal(const kd_json *a, const kd_json *b);

/* The value of member key (klen bytes) of obj, by binary search; NULL when obj is not an
** object or has no such member. */
const kd_json *kd__json_get(const kd_json *obj, const char *key, size_t klen);

/* A deep copy of v (NULL when v is NULL or out of memory). */
kd_json *kd__json_clone(const kd_json *v);

/* Appends to patch a canonical JSON array of RFC 6902 operations (add/remove/replace)
** turning a into b; a or b may be NULL, meaning absent: from absent the patch is
** [{"op":"add","path":"","value":b}], to absent [{"op":"remove","path":""}]. Equal
** documents give []. Only changed paths appear: objects are compared member by member,
** arrays trim their common prefix and suffix, then pair up the middle elements (recursing
** into each pair) and remove the surplus (highest index first) or add the new ones.
** Returns KD_OK or KD_NOMEM (patch->oom is then set). */
int kd__json_diff(const kd_json *a, const kd_json *b, kd_buf *patch);

/* Applies an RFC 6902 patch (an array of operation objects: add, remove, replace, move,
** copy, test) to *doc, which may be NULL (an absent document: only an add or replace at
** the root path "" can create it; a remove of "" makes it absent again). The patch is
** applied to a copy, so on any failure *doc is unchanged. Returns KD_OK, KD_INVALID (a
** malformed patch, a path that does not exist, a failed test, a result nesting deeper
** than KD_JSON_MAX_DEPTH; the message says which operation, by 0-based index) or
** KD_NOMEM. */
int kd__json_patch_apply(kd_json **doc, const kd_json *patch);

/* ---- shared between the json_*.c files ------------------------------------------- */
/* Appends s (len bytes) as a canonical JSON string literal, quotes included. */
void kd__json_write_string(kd_buf *out, const char *s, size_t len);
/* Orders two object keys as members are sorted: memcmp, then the shorter first. */
int kd__json_keycmp(const char *a, size_t alen, const char *b, size_t blen);

#endif /* KD_JSON_H */
