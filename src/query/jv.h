/*
** jv.h — reading canonical JSON text in place: a cursor (kd_qv) over one value inside a
** stored document, path lookup, comparison and string access, without building a tree.
**
** Queries touch a few fields of many documents; parsing every document into a kd_json tree
** would cost more than the whole filter. Stored values are canonical (json.h): objects
** with sorted, unique keys, no whitespace, one escaping form, numbers in one spelling. So:
**   - two values are equal exactly when their canonical texts are byte-equal (1 = 1.0
**     because both are stored as `1`);
**   - a string without a backslash in its text is its own UTF-8 bytes, and UTF-8 byte
**     order is code-point order.
** The text comes from the log, so it is not trusted blindly: every step is bounded by the
** value's length and malformed text reads as a missing field, never past the end.
**
** May call: base, json.
*/
#ifndef KD_QUERY_JV_H
#define KD_QUERY_JV_H

#include "base/base.h"

/* Type ranks, in the order values sort (DESIGN.md: missing last, then null < booleans <
** numbers < strings < arrays < objects). KD_QV_MISSING sorts after everything. */
typedef enum {
    KD_QV_NULL = 0,
    KD_QV_FALSE,
    KD_QV_TRUE,
    KD_QV_NUM,
    KD_QV_STR,
    KD_QV_ARR,
    KD_QV_OBJ,
    KD_QV_MISSING
} kd_qvtype;

/* One JSON value inside canonical text: p points at its first byte, n is the length of
** its text (strings include their quotes). For KD_QV_MISSING, p is NULL and n 0. */
typedef struct kd_qv {
    kd_qvtype t;
    const char *p;
    size_t n;
} kd_qv;

/* A number read from canonical text: an integer within int64 (is_int) or a double. */
typedef struct kd_qnum {
    int is_int;
    int64_t i;
    double d;
} kd_qnum;

/* The value that fills text[0..len) (a whole document). Malformed text gives MISSING. */
kd_qv kd__qv_doc(const char *text, size_t len);

/* Member key (klen bytes, raw UTF-8, not escaped) of an object; MISSING when v is not an
** object or has no such member. */
kd_qv kd__qv_member(const kd_qv *v, const char *key, size_t klen);

/* Element i of an array; MISSING when v is not an array or is too short. */
kd_qv kd__qv_index(const kd_qv *v, uint64_t i);

/* Iteration over an array's elements or an object's members: start with *pos = 0; returns
** 1 and fills *elem (and for objects *key with the key's cursor, a KD_QV_STR) while there
** are more, 0 at the end. key may be NULL. */
int kd__qv_next(const kd_qv *v, size_t *pos, kd_qv *key, kd_qv *elem);

/* The number in a KD_QV_NUM value. */
kd_qnum kd__qv_num(const kd_qv *v);

/* Exact comparison of two numbers by value, also between an int64 and a double at the
** int64 limits (-1, 0, 1). */
int kd__qnum_cmp(const kd_qnum *a, const kd_qnum *b);

/* The UTF-8 bytes of a KD_QV_STR value: when its text has no escape they are returned in
** place (*s points into the text); otherwise they are decoded into tmp (reset first) and
** *s points at tmp's bytes. Returns KD_OK or KD_NOMEM. The bytes may contain NUL. */
int kd__qv_str(const kd_qv *v, kd_buf *tmp, const char **s, size_t *len);

/* 1 when a and b are the same JSON value (MISSING equals only MISSING). */
int kd__qv_equal(const kd_qv *a, const kd_qv *b);

/* The total order of DESIGN.md used by sort, min/max, distinct and group by: type rank
** (MISSING last), then: false < true; numbers by value; strings by code point (UTF-8 byte
** order of the decoded strings); arrays element by element (a shorter prefix first);
** objects member by member, comparing the key and then the value (a shorter prefix
** first). Returns <0, 0, >0; 0 only for equal values. */
int kd__qv_cmp(const kd_qv *a, const kd_qv *b);

#endif /* KD_QUERY_JV_H */
