/*
** test_filter.c — the query layer's reading side (src/query/jv.c, filter_parse.c,
** filter_eval.c): the cursor over canonical JSON text, exact number comparison, the total
** order, the filter language (both forms, errors with columns, the writers) and its
** evaluation.
**
** Besides tables of exact inputs and outputs, it checks properties on random documents and
** random filters: evaluation agrees with an oracle written over the parsed kd_json tree
** (independent of the text cursor), De Morgan's laws hold, the string and JSON forms build
** the same tree, and kd__filter_write_text reads back to the same tree. The cursor is run
** over every prefix of documents in buffers of exact size (valgrind / ASan would see a read
** past the end). Out-of-memory is exercised by failing every allocation in turn.
*/
#include <math.h>
#include <regex.h>
#include <stdint.h>

#include "json/json.h"
#include "query/filter.h"
#include "query/jv.h"
#include "t.h"

/* ---- helpers --------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}
static size_t rndn(size_t n) { return (size_t)(rnd() % n); }

static char *take_str(kd_buf *b) {
    kd__buf_append(b, "", 0);
    return kd__buf_take(b, NULL);
}

/* Canonical text of JSON (NULL when invalid). */
static char *canon(const char *text) {
    kd_buf b = KD_BUF_INIT;
    if (kd__json_canonicalize(text, strlen(text), &b, NULL) != KD_OK) {
        kd__buf_free(&b);
        return NULL;
    }
    return take_str(&b);
}

static kd_filter *fparse(const char *text) {
    kd_filter *f = NULL;
    if (kd__filter_parse(text, strlen(text), &f) != KD_OK) {
        fprintf(stderr, "    parse failed: %s: %s\n", text, kd__errmsg_get());
        return NULL;
    }
    return f;
}

static char *wjson(const kd_filter *f) {
    kd_buf b = KD_BUF_INIT;
    if (f) kd__filter_write_json(f, &b);
    return take_str(&b);
}
static char *wtext(const kd_filter *f) {
    kd_buf b = KD_BUF_INIT;
    if (f) kd__filter_write_text(f, &b);
    return take_str(&b);
}

/* Evaluates filter text over a document given as (any) JSON text: 1/0, or -100 when the
** filter or document does not parse. */
static int ev(const char *filter, const char *doc) {
    char *c = canon(doc);
    kd_filter *f = fparse(filter);
    int r = -100;
    if (c && f) {
        kd_qv d = kd__qv_doc(c, strlen(c));
        r = kd__filter_eval(f, &d);
    }
    kd__filter_free(f);
    kd__free(c);
    return r;
}

/* The error message of a filter that must not parse ("PARSED" when it did). */
static char *perr(const char *filter) {
    kd_filter *f = NULL;
    int rc = kd__filter_parse(filter, strlen(filter), &f);
    kd__filter_free(f);
    if (rc == KD_OK) return kd__strdup("PARSED");
    return kd__strdup(kd__errmsg_get());
}
static char *perr_json(const char *json) {
    kd_filter *f = NULL;
    int rc = kd__filter_parse_json(json, strlen(json), &f);
    kd__filter_free(f);
    if (rc == KD_OK) return kd__strdup("PARSED");
    return kd__strdup(kd__errmsg_get());
}

#define CHECK_EV(filter, doc, want)                                                         \
    do {                                                                                    \
        int got_ = ev((filter), (doc));                                                     \
        if (got_ != (want)) {                                                               \
            fprintf(stderr, "  %s:%d: eval %s over %s: got %d, want %d\n", __FILE__,        \
                    __LINE__, (filter), (doc), got_, (want));                               \
            t_cur_failed = 1;                                                               \
        }                                                                                   \
    } while (0)

#define CHECK_ERR(filter, want)                                                             \
    do {                                                                                    \
        char *m_ = perr(filter);                                                            \
        CHECK_EQ_STR(m_, (want));                                                           \
        kd__free(m_);                                                                       \
    } while (0)

#define CHECK_JERR(json, want)                                                              \
    do {                                                                                    \
        char *m_ = perr_json(json);                                                         \
        CHECK_EQ_STR(m_, (want));                                                           \
        kd__free(m_);                                                                       \
    } while (0)

static int sign(int c) { return c < 0 ? -1 : c > 0; }

/* ---- the cursor ------------------------------------------------------------------ */

TEST(cursor_basics) {
    char *c = canon("{\"b\":[10,\"x\",{\"k\":null}],\"a\":true,\"s\":\"h\\u00e9\\n\",\"n\":-1.5,"
                    "\"e\":{},\"z\":[]}");
    kd_qv d = kd__qv_doc(c, strlen(c));
    CHECK(d.t == KD_QV_OBJ);
    kd_qv a = kd__qv_member(&d, "a", 1), b = kd__qv_member(&d, "b", 1);
    CHECK(a.t == KD_QV_TRUE && a.n == 4);
    CHECK(b.t == KD_QV_ARR);
    CHECK(kd__qv_member(&d, "c", 1).t == KD_QV_MISSING);
    CHECK(kd__qv_member(&d, "", 0).t == KD_QV_MISSING);
    CHECK(kd__qv_member(&b, "a", 1).t == KD_QV_MISSING); /* not an object */
    kd_qv b0 = kd__qv_index(&b, 0), b1 = kd__qv_index(&b, 1), b2 = kd__qv_index(&b, 2);
    CHECK(b0.t == KD_QV_NUM && b0.n == 2 && memcmp(b0.p, "10", 2) == 0);
    CHECK(b1.t == KD_QV_STR && b1.n == 3);
    CHECK(b2.t == KD_QV_OBJ && kd__qv_member(&b2, "k", 1).t == KD_QV_NULL);
    CHECK(kd__qv_index(&b, 3).t == KD_QV_MISSING);
    CHECK(kd__qv_index(&d, 0).t == KD_QV_MISSING); /* not an array */
    kd_qv e = kd__qv_member(&d, "e", 1), z = kd__qv_member(&d, "z", 1);
    size_t pos = 0;
    kd_qv k, v;
    CHECK(e.t == KD_QV_OBJ && !kd__qv_next(&e, &pos, &k, &v));
    pos = 0;
    CHECK(z.t == KD_QV_ARR && !kd__qv_next(&z, &pos, NULL, &v));
    /* iteration over the members, in key order */
    const char *want[] = {"a", "b", "e", "n", "s", "z"};
    size_t i = 0;
    pos = 0;
    while (kd__qv_next(&d, &pos, &k, &v)) {
        CHECK(i < 6 && k.t == KD_QV_STR && k.n == 3 && k.p[1] == want[i][0]);
        i++;
    }
    CHECK_EQ_INT(i, 6);
    CHECK(!kd__qv_next(&d, &pos, &k, &v)); /* stays at the end */
    /* scalars as whole documents */
    CHECK(kd__qv_doc("null", 4).t == KD_QV_NULL);
    CHECK(kd__qv_doc(" 12 ", 4).t == KD_QV_NUM);
    CHECK(kd__qv_doc("\"x\"", 3).t == KD_QV_STR);
    CHECK(kd__qv_doc("false", 5).t == KD_QV_FALSE);
    CHECK(kd__qv_doc("", 0).t == KD_QV_MISSING);
    CHECK(kd__qv_doc("nul", 3).t == KD_QV_MISSING);
    CHECK(kd__qv_doc("\"x", 2).t == KD_QV_MISSING);
    CHECK(kd__qv_doc("{\"a\":1", 6).t == KD_QV_MISSING);
    CHECK(kd__qv_doc("x", 1).t == KD_QV_MISSING);
    kd__free(c);
}

TEST(cursor_strings) {
    char *c = canon("[\"plain\",\"a\\nb\",\"\\u00e9\\ud83d\\ude00\",\"x\\u0000y\",\"q\\\"\\\\/\",\"\"]");
    kd_qv d = kd__qv_doc(c, strlen(c));
    kd_buf tmp = KD_BUF_INIT;
    const char *s;
    size_t n;
    kd_qv v = kd__qv_index(&d, 0);
    CHECK(kd__qv_str(&v, &tmp, &s, &n) == KD_OK && n == 5 && memcmp(s, "plain", 5) == 0);
    CHECK(s == v.p + 1); /* in place */
    v = kd__qv_index(&d, 1);
    CHECK(kd__qv_str(&v, &tmp, &s, &n) == KD_OK && n == 3 && memcmp(s, "a\nb", 3) == 0);
    v = kd__qv_index(&d, 2);
    CHECK(kd__qv_str(&v, &tmp, &s, &n) == KD_OK && n == 6 &&
          memcmp(s, "\xc3\xa9\xf0\x9f\x98\x80", 6) == 0); /* é raw in canonical text, 😀 too */
    v = kd__qv_index(&d, 3);
    CHECK(kd__qv_str(&v, &tmp, &s, &n) == KD_OK && n == 3 && memcmp(s, "x\0y", 3) == 0);
    v = kd__qv_index(&d, 4);
    CHECK(kd__qv_str(&v, &tmp, &s, &n) == KD_OK && n == 4 && memcmp(s, "q\"\\/", 4) == 0);
    v = kd__qv_index(&d, 5);
    CHECK(kd__qv_str(&v, &tmp, &s, &n) == KD_OK && n == 0);
    /* escapes the canonical writer never produces still decode (non-canonical input) */
    const char *raw = "\"\\u0041\\/\\ud83d\\ude00\\t\"";
    kd_qv r = kd__qv_doc(raw, strlen(raw));
    CHECK(kd__qv_str(&r, &tmp, &s, &n) == KD_OK && n == 7 && memcmp(s, "A/\xf0\x9f\x98\x80\t", 7) == 0);
    /* a lone surrogate (malformed) decodes to U+FFFD rather than failing */
    const char *lone = "\"\\ud800x\"";
    r = kd__qv_doc(lone, strlen(lone));
    CHECK(kd__qv_str(&r, &tmp, &s, &n) == KD_OK && n == 4 && memcmp(s, "\xef\xbf\xbdx", 4) == 0);
    /* member lookup of a key written with escapes */
    char *o = canon("{\"a\\nb\":1,\"q\\\"\":2,\"\\u0000\":3}");
    kd_qv od = kd__qv_doc(o, strlen(o));
    CHECK(kd__qv_member(&od, "a\nb", 3).t == KD_QV_NUM);
    CHECK(kd__qv_member(&od, "q\"", 2).t == KD_QV_NUM);
    CHECK(kd__qv_member(&od, "\0", 1).t == KD_QV_NUM);
    CHECK(kd__qv_member(&od, "a\n", 2).t == KD_QV_MISSING);
    kd__buf_free(&tmp);
    kd__free(o);
    kd__free(c);
}

/* i against d exactly: above/below the int64 range the sign decides; inside it, floor(d)
** is an exact int64 and d - floor(d) says whether d is beyond it. */
static int oracle_int_double(int64_t i, double d) {
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    int64_t fl = (int64_t)floor(d);
    if (i != fl) return i < fl ? -1 : 1;
    return d == floor(d) ? 0 : -1;
}

static kd_qnum qn_int(int64_t i) { kd_qnum q = {1, i, (double)i}; return q; }
static kd_qnum qn_dbl(double d) { kd_qnum q = {0, 0, d}; return q; }
static int qcmp(kd_qnum a, kd_qnum b) { return kd__qnum_cmp(&a, &b); }

TEST(numbers_exact) {
    const double two63 = 9223372036854775808.0, two53 = 9007199254740992.0;
    CHECK_EQ_INT(qcmp(qn_int(INT64_MAX), qn_dbl(two63)), -1);
    CHECK_EQ_INT(qcmp(qn_dbl(two63), qn_int(INT64_MAX)), 1);
    CHECK_EQ_INT(qcmp(qn_int(INT64_MAX), qn_dbl(9.223372036854775807e18)), -1); /* that is 2^63 */
    CHECK_EQ_INT(qcmp(qn_int(INT64_MIN), qn_dbl(-two63)), 0);
    CHECK_EQ_INT(qcmp(qn_int(INT64_MIN + 1), qn_dbl(-two63)), 1);
    CHECK_EQ_INT(qcmp(qn_int(INT64_MIN), qn_dbl(-two63 * 2)), 1);
    CHECK_EQ_INT(qcmp(qn_int(9007199254740993), qn_dbl(two53)), 1); /* (double)i would be 2^53 */
    CHECK_EQ_INT(qcmp(qn_int(9007199254740992), qn_dbl(two53)), 0);
    CHECK_EQ_INT(qcmp(qn_int(9007199254740991), qn_dbl(two53)), -1);
    CHECK_EQ_INT(qcmp(qn_int(1), qn_dbl(1.5)), -1);
    CHECK_EQ_INT(qcmp(qn_int(2), qn_dbl(1.5)), 1);
    CHECK_EQ_INT(qcmp(qn_int(-1), qn_dbl(-1.5)), 1);
    CHECK_EQ_INT(qcmp(qn_int(-2), qn_dbl(-1.5)), -1);
    CHECK_EQ_INT(qcmp(qn_int(0), qn_dbl(-0.0)), 0);
    CHECK_EQ_INT(qcmp(qn_int(0), qn_dbl(5e-324)), -1);
    CHECK_EQ_INT(qcmp(qn_int(INT64_MAX), qn_int(INT64_MIN)), 1);
    CHECK_EQ_INT(qcmp(qn_dbl(1e300), qn_dbl(-1e300)), 1);
    CHECK_EQ_INT(qcmp(qn_dbl(0.5), qn_dbl(0.5)), 0);
    /* against an oracle built another way (floor, not truncation; no long double, which
    ** valgrind computes with only double precision) */
    int bad = 0;
    for (int k = 0; k < 200000; k++) {
        int64_t i = (int64_t)rnd();
        if (k % 3 == 0) i >>= rndn(63);
        double d;
        switch (k % 4) {
        case 0: d = (double)i + (double)((int64_t)rndn(5) - 2); break;
        case 1: d = ldexp((double)(rnd() >> 11), (int)rndn(80) - 60) * (rnd() & 1 ? -1 : 1); break;
        case 2: d = (double)(int64_t)(rnd() >> rndn(64)) * (rnd() & 1 ? -1 : 1); break;
        default: d = nextafter((double)i, rnd() & 1 ? INFINITY : -INFINITY); break;
        }
        int want = oracle_int_double(i, d);
        if (qcmp(qn_int(i), qn_dbl(d)) != want || qcmp(qn_dbl(d), qn_int(i)) != -want) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(numbers_read) {
    static const struct { const char *text; int is_int; int64_t i; double d; } t[] = {
        {"0", 1, 0, 0}, {"-0", 1, 0, 0}, {"42", 1, 42, 0}, {"-42", 1, -42, 0},
        {"9223372036854775807", 1, INT64_MAX, 0}, {"-9223372036854775808", 1, INT64_MIN, 0},
        {"9223372036854775808", 0, 0, 9223372036854775808.0},
        {"9.223372036854776e+18", 0, 0, 9223372036854775808.0},
        {"1.5", 0, 0, 1.5}, {"-0.001", 0, 0, -0.001}, {"1e-05", 0, 0, 1e-5},
        {"1.7976931348623157e+308", 0, 0, 1.7976931348623157e308}, {"5e-324", 0, 0, 5e-324},
        {"0.30000000000000004", 0, 0, 0.30000000000000004}, {"1e+22", 0, 0, 1e22},
        {"123456789012345678901234567890", 0, 0, 123456789012345678901234567890.0},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        kd_qv v = kd__qv_doc(t[k].text, strlen(t[k].text));
        kd_qnum q = kd__qv_num(&v);
        int ok = v.t == KD_QV_NUM && q.is_int == t[k].is_int &&
                 (q.is_int ? q.i == t[k].i : q.d == t[k].d);
        if (!ok) {
            fprintf(stderr, "  number %s read wrong\n", t[k].text);
            t_cur_failed = 1;
        }
    }
    /* every canonical double reads back to itself (fast path and strtod path alike) */
    int bad = 0;
    for (int k = 0; k < 100000; k++) {
        double d;
        uint64_t bits = rnd();
        if (k % 2) memcpy(&d, &bits, sizeof d);
        else d = (double)(int64_t)(rnd() % 2000000 - 1000000) / (double)(1 + rndn(100000));
        if (!isfinite(d)) continue;
        kd_json j = {.type = KD_JDOUBLE, .u.d = d};
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d) continue;
        kd_buf b = KD_BUF_INIT;
        kd__json_write_canonical(&j, &b);
        kd_qv v = kd__qv_doc(b.p, b.len);
        kd_qnum q = kd__qv_num(&v);
        if (q.is_int || q.d != d) bad++;
        kd__buf_free(&b);
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- the total order --------------------------------------------------------------- */

TEST(total_order) {
    /* ascending; MISSING (NULL here) last */
    static const char *vals[] = {
        "null", "false", "true", "-1e300", "-9223372036854775809", "-9223372036854775807",
        "-1.5", "-1", "0", "5e-324", "0.5", "1", "9007199254740992", "9007199254740993",
        "9223372036854775807", "9223372036854775808", "1e300",
        "\"\"", "\"\\u0000\"", "\"\\u0000a\"", "\"\\n\"", "\"\\\"\"", "\"A\"", "\"\\\\\"", "\"a\"",
        "\"a\\u0000\"", "\"ab\"", "\"b\"", "\"\\u007f\"", "\"\\u00e9\"", "\"\\u00e9a\"", "\"\\uffff\"",
        "\"\\ud83d\\ude00\"",
        "[]", "[null]", "[false]", "[1]", "[1,null]", "[1,2]", "[1.5]", "[2]", "[\"a\"]", "[[]]",
        "[{}]", "{}", "{\"\":5}", "{\"a\":null}", "{\"a\":1}", "{\"a\":1,\"b\":0}", "{\"a\":2}",
        "{\"a\\n\":0}", "{\"b\":0}", NULL,
    };
    size_t n = sizeof vals / sizeof vals[0];
    char *c[64];
    kd_qv v[64];
    for (size_t i = 0; i < n; i++) {
        c[i] = vals[i] ? canon(vals[i]) : NULL;
        v[i] = c[i] ? kd__qv_doc(c[i], strlen(c[i])) : (kd_qv){KD_QV_MISSING, NULL, 0};
        if (vals[i]) CHECK(v[i].t != KD_QV_MISSING);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int want = i < j ? -1 : i > j;
            int got = sign(kd__qv_cmp(&v[i], &v[j]));
            if (got != want) {
                fprintf(stderr, "  cmp(%s, %s) = %d, want %d\n", vals[i] ? vals[i] : "MISSING",
                        vals[j] ? vals[j] : "MISSING", got, want);
                t_cur_failed = 1;
            }
            if (kd__qv_equal(&v[i], &v[j]) != (i == j)) {
                fprintf(stderr, "  equal(%s, %s) wrong\n", vals[i] ? vals[i] : "MISSING",
                        vals[j] ? vals[j] : "MISSING");
                t_cur_failed = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) kd__free(c[i]);
    /* types rank in the documented order */
    CHECK(KD_QV_NULL < KD_QV_FALSE && KD_QV_FALSE < KD_QV_TRUE && KD_QV_TRUE < KD_QV_NUM &&
          KD_QV_NUM < KD_QV_STR && KD_QV_STR < KD_QV_ARR && KD_QV_ARR < KD_QV_OBJ &&
          KD_QV_OBJ < KD_QV_MISSING);
}

/* ---- random documents ------------------------------------------------------------ */

static const char *scalar_pool[] = {
    "null", "true", "false", "0", "1", "-1", "2", "1.5", "-2.5", "1e300", "9223372036854775807",
    "-9223372036854775808", "9223372036854775808", "9007199254740993", "\"\"", "\"x\"", "\"ab\"",
    "\"abc\"", "\"a\\nb\"", "\"b\"", "\"x\\u0000y\"", "\"\\u00e9t\\u00e9\"", "\"A\"", "\"k\"",
    "\"a.b\"",
};
#define NSCALAR (sizeof scalar_pool / sizeof scalar_pool[0])
static const char *key_pool[] = {"a", "b", "c", "l", "o", "s p", "k", "x", "a.b", "0"};
#define NKEY (sizeof key_pool / sizeof key_pool[0])

static void gen_value(kd_buf *b, int depth) {
    size_t r = rndn(depth > 2 ? 1 : 10);
    if (r < 6) {
        kd__buf_puts(b, scalar_pool[rndn(NSCALAR)]);
    } else if (r < 8) {
        size_t n = rndn(4);
        kd__buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) kd__buf_putc(b, ',');
            gen_value(b, depth + 1);
        }
        kd__buf_putc(b, ']');
    } else {
        size_t n = rndn(4);
        int used[NKEY] = {0};
        kd__buf_putc(b, '{');
        for (size_t i = 0, w = 0; i < n; i++) {
            size_t k = rndn(NKEY);
            if (used[k]) continue;
            used[k] = 1;
            if (w++) kd__buf_putc(b, ',');
            kd__json_write_string(b, key_pool[k], strlen(key_pool[k]));
            kd__buf_putc(b, ':');
            gen_value(b, depth + 1);
        }
        kd__buf_putc(b, '}');
    }
}

/* A random document: an object over the key pool, canonical. */
static char *gen_doc(void) {
    kd_buf b = KD_BUF_INIT;
    int used[NKEY] = {0};
    size_t w = 0;
    kd__buf_putc(&b, '{');
    for (size_t i = 0; i < 6; i++) {
        size_t k = rndn(NKEY);
        if (used[k]) continue;
        used[k] = 1;
        if (w++) kd__buf_putc(&b, ',');
        kd__json_write_string(&b, key_pool[k], strlen(key_pool[k]));
        kd__buf_putc(&b, ':');
        gen_value(&b, 0);
    }
    kd__buf_putc(&b, '}');
    char *c = canon(b.p);
    kd__buf_free(&b);
    return c;
}

/* Walks every value under v, exercising every reading function. */
static void walk(const kd_qv *v, int depth) {
    kd_buf tmp = KD_BUF_INIT;
    const char *s;
    size_t n;
    CHECK(kd__qv_cmp(v, v) == 0 && kd__qv_equal(v, v));
    if (v->t == KD_QV_NUM) (void)kd__qv_num(v);
    if (v->t == KD_QV_STR) CHECK(kd__qv_str(v, &tmp, &s, &n) == KD_OK);
    kd__buf_free(&tmp);
    size_t pos = 0;
    kd_qv k, e, prev = {KD_QV_MISSING, NULL, 0};
    while (depth < 20 && kd__qv_next(v, &pos, &k, &e)) {
        if (v->t == KD_QV_OBJ) {
            walk(&k, depth + 1);
            (void)kd__qv_member(v, k.p + 1, k.n - 2);
        }
        walk(&e, depth + 1);
        (void)kd__qv_cmp(&e, &prev);
        prev = e;
    }
    (void)kd__qv_index(v, 2);
}

TEST(cursor_bounded) {
    /* Every prefix and a few corruptions of random documents, each in a buffer of exactly
    ** its size: the cursor must stay inside (valgrind/ASan check that) and not crash. */
    for (int round = 0; round < 150; round++) {
        char *c = gen_doc();
        size_t len = strlen(c);
        for (size_t cut = 0; cut <= len; cut++) {
            for (int mut = 0; mut < 2; mut++) {
                char *buf = malloc(cut ? cut : 1);
                memcpy(buf, c, cut);
                if (mut && cut) buf[rndn(cut)] = "\"\\[]{},:0-e"[rndn(11)];
                kd_qv d = kd__qv_doc(buf, cut);
                walk(&d, 0);
                free(buf);
            }
        }
        kd__free(c);
    }
}

/* ---- the oracle: the semantics of filter.h over a kd_json tree --------------------- */

static const kd_json *tree_get(const kd_json *doc, const kd_path *p) {
    const kd_json *v = doc;
    for (size_t i = 0; i < p->n && v; i++) {
        if (v->type == KD_JOBJECT) v = kd__json_get(v, p->seg[i].s, p->seg[i].len);
        else if (v->type == KD_JARRAY && p->seg[i].idx >= 0)
            v = (uint64_t)p->seg[i].idx < v->u.arr.n ? v->u.arr.v[p->seg[i].idx] : NULL;
        else v = NULL;
    }
    return v;
}

static int is_num(const kd_json *v) { return v->type == KD_JINT || v->type == KD_JDOUBLE; }
static int tree_num_cmp(const kd_json *a, const kd_json *b) {
    if (a->type == KD_JINT && b->type == KD_JINT) return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    if (a->type == KD_JINT) return oracle_int_double(a->u.i, b->u.d);
    if (b->type == KD_JINT) return -oracle_int_double(b->u.i, a->u.d);
    return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
}

static int oracle(const kd_filter *f, const kd_json *doc) {
    switch (f->kind) {
    case KD_F_AND:
        for (size_t i = 0; i < f->nkids; i++)
            if (!oracle(f->kids[i], doc)) return 0;
        return 1;
    case KD_F_OR:
        for (size_t i = 0; i < f->nkids; i++)
            if (oracle(f->kids[i], doc)) return 1;
        return 0;
    case KD_F_NOT: return !oracle(f->kids[0], doc);
    case KD_F_EXISTS: return tree_get(doc, &f->path) != NULL;
    case KD_F_CMP: break;
    }
    const kd_json *v = tree_get(doc, &f->path);
    kd_json *lit = NULL;
    kd__json_parse(f->lit, f->litlen, &lit, NULL);
    int r = 0, c = 2;
    if (v && (f->op >= KD_OP_GT && f->op <= KD_OP_LE)) {
        if (is_num(v) && is_num(lit)) c = tree_num_cmp(v, lit);
        else if (v->type == KD_JSTRING && lit->type == KD_JSTRING) {
            size_t m = KD_MIN(v->u.str.len, lit->u.str.len);
            c = sign(memcmp(v->u.str.s, lit->u.str.s, m));
            if (!c) c = v->u.str.len < lit->u.str.len ? -1 : v->u.str.len > lit->u.str.len;
        }
    }
    if (!v) r = f->op == KD_OP_NE;
    else switch (f->op) {
    case KD_OP_EQ: r = kd__json_equal(v, lit); break;
    case KD_OP_NE: r = !kd__json_equal(v, lit); break;
    case KD_OP_GT: r = c == 1; break;
    case KD_OP_GE: r = c == 1 || c == 0; break;
    case KD_OP_LT: r = c == -1; break;
    case KD_OP_LE: r = c == -1 || c == 0; break;
    case KD_OP_CONTAINS:
        if (v->type == KD_JSTRING && lit->type == KD_JSTRING)
            r = memmem(v->u.str.s, v->u.str.len, lit->u.str.s, lit->u.str.len) != NULL;
        else if (v->type == KD_JARRAY)
            for (size_t i = 0; i < v->u.arr.n && !r; i++) r = kd__json_equal(v->u.arr.v[i], lit);
        else if (v->type == KD_JOBJECT && lit->type == KD_JSTRING)
            r = kd__json_get(v, lit->u.str.s, lit->u.str.len) != NULL;
        break;
    case KD_OP_REGEX:
        if (v->type == KD_JSTRING) {
            regex_t re;
            regcomp(&re, lit->u.str.s, REG_EXTENDED | REG_NOSUB);
            regmatch_t m = {0, (regoff_t)v->u.str.len};
            r = regexec(&re, v->u.str.s, 1, &m, REG_STARTEND) == 0;
            regfree(&re);
        }
        break;
    }
    kd__json_free(lit);
    return r;
}

/* ---- random filters: the string form and the JSON form together --------------------- */

static const char *path_pool[][2] = { /* text, JSON */
    {"a", "\"a\""}, {"b", "[\"b\"]"}, {"c", "\"c\""}, {"l.0", "[\"l\",0]"}, {"l.1", "\"l.1\""},
    {"o.k", "[\"o\",\"k\"]"}, {"o.x.a", "\"o.x.a\""}, {"`s p`", "[\"s p\"]"}, {"`a.b`", "[\"a.b\"]"},
    {"a.b", "\"a.b\""}, {"x.0", "\"x.0\""}, {"`0`", "\"0\""}, {"l.2.k", "[\"l\",2,\"k\"]"},
    {"`k`", "\"`k`\""},
};
#define NPATH (sizeof path_pool / sizeof path_pool[0])
static const char *lit_pool[] = {
    "null", "true", "false", "0", "1", "1.0", "-1", "2", "1.5", "-2.5", "1e300", "9223372036854775807",
    "9223372036854775808", "-9223372036854775809", "9007199254740993", "\"\"", "\"x\"", "\"ab\"",
    "\"a\\nb\"", "\"b\"", "\"x\\u0000y\"", "\"\\u00e9t\\u00e9\"", "\"k\"", "[1]", "[]", "{}",
    "{\"k\":1}", "[1,\"x\"]", "\"a.b\"",
};
#define NLIT (sizeof lit_pool / sizeof lit_pool[0])
static const char *regex_pool[] = {"\"a\"", "\"^a\"", "\"b$\"", "\"x.y\"", "\"^$\"", "\"[0-9]\"",
                                   "\"\\u00e9\"", "\"a|k\"", "\"\\n\"", "\"^(ab|x)+\""};
#define NREGEX (sizeof regex_pool / sizeof regex_pool[0])

static const char *kw_case(const char *kw) {
    static char buf[4][16];
    static int slot;
    char *o = buf[slot++ & 3];
    size_t i = 0;
    for (; kw[i]; i++) o[i] = (char)((rnd() & 3) == 0 ? kw[i] - 'a' + 'A' : kw[i]);
    o[i] = 0;
    return o;
}

/* A random filter, fully parenthesized in text, and its JSON form. */
static void gen_filter(kd_buf *t, kd_buf *j, int depth) {
    size_t r = rndn(depth >= 3 ? 4 : 8);
    if (r < 3) { /* comparison */
        static const char *ops[][2] = {{"=", "="}, {"==", "="}, {"!=", "!="}, {">", ">"},
                                       {">=", ">="}, {"<", "<"}, {"<=", "<="},
                                       {"contains", "contains"}, {"~", "~"}};
        size_t o = rndn(9), p = rndn(NPATH);
        const char *lit = o == 8 ? regex_pool[rndn(NREGEX)] : lit_pool[rndn(NLIT)];
        kd__buf_printf(t, "%s %s %s", path_pool[p][0], o == 7 ? kw_case("contains") : ops[o][0], lit);
        kd__buf_printf(j, "{\"field\":%s,\"op\":\"%s\",\"value\":%s}", path_pool[p][1], ops[o][1], lit);
    } else if (r == 3) {
        size_t p = rndn(NPATH);
        kd__buf_printf(t, "%s ( %s )", kw_case("exists"), path_pool[p][0]);
        kd__buf_printf(j, "{\"exists\":%s}", path_pool[p][1]);
    } else if (r == 4) {
        kd__buf_printf(t, "%s (", kw_case("not"));
        kd__buf_puts(j, "{\"not\":");
        gen_filter(t, j, depth + 1);
        kd__buf_puts(t, ")");
        kd__buf_puts(j, "}");
    } else {
        int is_and = r & 1;
        size_t n = 2 + rndn(3);
        kd__buf_printf(j, "{\"%s\":[", is_and ? "and" : "or");
        kd__buf_putc(t, '(');
        for (size_t i = 0; i < n; i++) {
            if (i) {
                kd__buf_printf(t, " %s ", kw_case(is_and ? "and" : "or"));
                kd__buf_putc(j, ',');
            }
            kd__buf_putc(t, '(');
            gen_filter(t, j, depth + 1);
            kd__buf_putc(t, ')');
        }
        kd__buf_putc(t, ')');
        kd__buf_puts(j, "]}");
    }
}

TEST(random_forms_agree) {
    /* string form, JSON form, and write_text all build the same tree */
    int bad = 0;
    for (int k = 0; k < 3000 && bad < 5; k++) {
        kd_buf t = KD_BUF_INIT, j = KD_BUF_INIT;
        gen_filter(&t, &j, 0);
        kd_filter *ft = fparse(t.p), *fj = NULL;
        if (kd__filter_parse_json(j.p, j.len, &fj) != KD_OK)
            fprintf(stderr, "    JSON form refused: %s: %s\n", j.p, kd__errmsg_get());
        char *a = wjson(ft), *b = wjson(fj);
        char *text = wtext(ft);
        kd_filter *fr = fparse(text);
        char *c = wjson(fr);
        if (!ft || !fj || !fr || strcmp(a, b) != 0 || strcmp(a, c) != 0) {
            fprintf(stderr, "  forms differ:\n    text %s\n    json %s\n    wrote %s\n    %s\n    %s\n    %s\n",
                    t.p, j.p, text, a, b, c);
            bad++;
        }
        /* the written JSON form reads back too */
        kd_filter *fw = NULL;
        if (ft && kd__filter_parse_json(a, strlen(a), &fw) == KD_OK) {
            char *d = wjson(fw);
            if (strcmp(a, d) != 0) bad++;
            kd__free(d);
        } else if (ft) {
            bad++;
        }
        kd__filter_free(fw);
        kd__free(a); kd__free(b); kd__free(c); kd__free(text);
        kd__filter_free(ft); kd__filter_free(fj); kd__filter_free(fr);
        kd__buf_free(&t); kd__buf_free(&j);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(random_eval_oracle_and_de_morgan) {
    int bad = 0, matched = 0, total = 0;
    for (int k = 0; k < 400 && bad < 5; k++) {
        char *doc = gen_doc();
        kd_json *tree = NULL;
        CHECK(kd__json_parse(doc, strlen(doc), &tree, NULL) == KD_OK);
        kd_qv d = kd__qv_doc(doc, strlen(doc));
        for (int m = 0; m < 25; m++) {
            kd_buf a = KD_BUF_INIT, b = KD_BUF_INIT, ja = KD_BUF_INIT, jb = KD_BUF_INIT;
            gen_filter(&a, &ja, 1);
            gen_filter(&b, &jb, 1);
            char *forms[8];
            size_t nf = 0;
            kd_buf x = KD_BUF_INIT;
#define FORM(...) do { kd__buf_reset(&x); kd__buf_printf(&x, __VA_ARGS__); forms[nf++] = kd__strdup(x.p); } while (0)
            FORM("not ((%s) and (%s))", a.p, b.p);
            FORM("not (%s) or not (%s)", a.p, b.p);
            FORM("not ((%s) or (%s))", a.p, b.p);
            FORM("not (%s) and not (%s)", a.p, b.p);
            FORM("not not (%s)", a.p);
            FORM("%s", a.p);
            FORM("%s", b.p);
            FORM("(%s) and (%s)", a.p, b.p);
#undef FORM
            int r[8];
            for (size_t i = 0; i < nf; i++) {
                kd_filter *f = fparse(forms[i]);
                r[i] = f ? kd__filter_eval(f, &d) : -100;
                if (f && r[i] != oracle(f, tree)) {
                    fprintf(stderr, "  oracle differs: %s over %s: %d\n", forms[i], doc, r[i]);
                    bad++;
                }
                kd__filter_free(f);
            }
            if (r[0] != r[1] || r[2] != r[3] || r[4] != r[5] || r[7] != (r[5] && r[6]) ||
                r[0] != !r[7] || r[2] != !(r[5] || r[6])) {
                fprintf(stderr, "  De Morgan fails for %s / %s over %s\n", a.p, b.p, doc);
                bad++;
            }
            matched += r[5] == 1;
            total++;
            for (size_t i = 0; i < nf; i++) kd__free(forms[i]);
            kd__buf_free(&x);
            kd__buf_free(&a); kd__buf_free(&b); kd__buf_free(&ja); kd__buf_free(&jb);
        }
        kd__json_free(tree);
        kd__free(doc);
    }
    CHECK_EQ_INT(bad, 0);
    /* the random filters are not trivially all-true or all-false */
    CHECK(matched > total / 10 && matched < total * 9 / 10);
}

static size_t chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

TEST(random_mutations) {
    /* Damaged filters: each either parses (and then round-trips through write_text) or
    ** fails with a syntax/regex error whose column lies within the text (+1 for the end). */
    static const char alphabet[] = "()`\"\\.=!<>~ aAnN0-9[]{},:e\xc3\xa9";
    int bad = 0, parsed = 0, failed = 0;
    for (int k = 0; k < 4000 && bad < 5; k++) {
        kd_buf t = KD_BUF_INIT, j = KD_BUF_INIT;
        gen_filter(&t, &j, 1);
        for (int m = 1 + (int)rndn(3); m > 0 && t.len > 0; m--) {
            size_t at = rndn(t.len);
            if (rnd() & 1) t.p[at] = alphabet[rndn(sizeof alphabet - 1)];
            else { memmove(t.p + at, t.p + at + 1, t.len - at); t.len--; }
        }
        kd_filter *f = NULL;
        int rc = kd__filter_parse(t.p, t.len, &f);
        if (rc == KD_OK) {
            parsed++;
            char *a = wjson(f), *x = wtext(f);
            kd_filter *g = fparse(x);
            char *b = wjson(g);
            if (!g || strcmp(a, b) != 0) bad++;
            kd__free(a); kd__free(b); kd__free(x);
            kd__filter_free(g);
        } else {
            failed++;
            const char *msg = kd__errmsg_get();
            size_t col = 0;
            if (rc != KD_INVALID || f != NULL ||
                (sscanf(msg, "filter syntax error at column %zu:", &col) != 1 &&
                 sscanf(msg, "invalid regex at column %zu:", &col) != 1) ||
                col < 1 || col > chars(t.p, t.len) + 1) {
                fprintf(stderr, "  bad error for [%.*s]: %s\n", (int)t.len, t.p, msg);
                bad++;
            }
        }
        /* the JSON form, damaged the same way */
        if (j.len) j.p[rndn(j.len)] = alphabet[rndn(sizeof alphabet - 1)];
        kd_filter *h = NULL;
        rc = kd__filter_parse_json(j.p, j.len, &h);
        if ((rc == KD_OK) != (h != NULL) || (rc != KD_OK && rc != KD_INVALID)) bad++;
        kd__filter_free(h);
        kd__filter_free(f);
        kd__buf_free(&t);
        kd__buf_free(&j);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(parsed > 100 && failed > 100);
}

/* ---- semantics, exact cases --------------------------------------------------------- */

TEST(null_and_missing_every_operator) {
    const char *doc = "{\"n\":null,\"s\":\"abc\",\"i\":5}";
    static const struct { const char *f; int want; } t[] = {
        /* a null field */
        {"n = null", 1}, {"n != null", 0}, {"n = 0", 0}, {"n != 0", 1}, {"n = false", 0},
        {"n > null", 0}, {"n >= null", 0}, {"n < null", 0}, {"n <= null", 0}, {"n > 0", 0},
        {"n < 0", 0}, {"n contains null", 0}, {"n contains \"\"", 0}, {"n ~ \"\"", 0},
        {"n ~ \"null\"", 0}, {"exists(n)", 1}, {"not exists(n)", 0},
        /* a missing field: every comparison false except != */
        {"m = null", 0}, {"m != null", 1}, {"m = 1", 0}, {"m != 1", 1}, {"m > 0", 0},
        {"m >= 0", 0}, {"m < 0", 0}, {"m <= 0", 0}, {"m contains \"\"", 0}, {"m contains null", 0},
        {"m ~ \"\"", 0}, {"m ~ \".*\"", 0}, {"exists(m)", 0}, {"not exists(m)", 1},
        {"not m = 1", 1}, {"not m != 1", 0}, {"m.x != 1", 1}, {"i.x != 1", 1}, {"i.x = 5", 0},
        {"s.0 != \"a\"", 1}, {"exists(s.0)", 0}, {"exists(i.0)", 0},
        /* a null literal against present values */
        {"s = null", 0}, {"s != null", 1}, {"i > null", 0}, {"i < null", 0}, {"s >= null", 0},
        {"s contains null", 0},
        /* type mismatches are false for ordering, unequal for = */
        {"s > 1", 0}, {"s < 1", 0}, {"i > \"a\"", 0}, {"i < \"a\"", 0}, {"i = \"5\"", 0},
        {"i != \"5\"", 1}, {"i ~ \"5\"", 0}, {"i contains 5", 0}, {"s contains 1", 0},
        /* same types */
        {"i = 5", 1}, {"i = 5.0", 1}, {"i = 5e0", 1}, {"i == 5", 1}, {"i > 4.5", 1},
        {"i >= 5", 1}, {"i <= 5", 1}, {"i < 5", 0}, {"s > \"ab\"", 1}, {"s >= \"abc\"", 1},
        {"s < \"abd\"", 1}, {"s < \"ab\"", 0}, {"s <= \"abc\"", 1}, {"s > \"abc\"", 0},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) CHECK_EV(t[k].f, doc, t[k].want);
    /* the whole document as the value: never an object field, so a path is needed */
    CHECK_EV("a = 1", "[1]", 0);
    CHECK_EV("0 = 1", "[1]", 1);
    CHECK_EV("a != 1", "5", 1);
}

TEST(int64_limits) {
    const char *doc = "{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
                      "\"two63\":9223372036854775808,\"p\":9007199254740993,\"h\":1.5}";
    static const struct { const char *f; int want; } t[] = {
        /* 9.223372036854775807e18 is a C double literal for 2^63, but as JSON its exact
        ** value is the integer 2^63 - 1, and canonical JSON keeps it an integer */
        {"max < 9223372036854775808", 1}, {"max = 9.223372036854775807e18", 1},
        {"max >= 9223372036854775808", 0}, {"max = 9223372036854775808", 0},
        {"max != 9223372036854775808", 1}, {"max = 9223372036854775807", 1},
        {"max > 9223372036854775806", 1}, {"max <= 9223372036854775807.0", 1},
        {"two63 > 9223372036854775807", 1}, {"two63 = 9223372036854775808", 1},
        {"two63 = 9.223372036854775807e18", 0},
        {"two63 > 9.223372036854775807e18", 1}, {"two63 = 9.223372036854775808e18", 1}, {"two63 >= 9.3e18", 0},
        {"min = -9223372036854775808", 1}, {"min = -9223372036854775809", 1}, /* rounds to -2^63 */
        {"min > -9.3e18", 1}, {"min < -9223372036854775807", 1}, {"min > -1e300", 1},
        {"p > 9007199254740992", 1}, {"p = 9007199254740993", 1}, {"p < 9007199254740994", 1},
        {"p > 9.007199254740992e15", 1}, {"p != 9007199254740992", 1},
        {"h > 1", 1}, {"h < 2", 1}, {"h = 1.5", 1}, {"h = 1.50", 1}, {"h = 15e-1", 1},
        {"h > 1.4999999999999998", 1}, {"h < 1.5000000000000002", 1},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) CHECK_EV(t[k].f, doc, t[k].want);
}

TEST(contains) {
    const char *doc = "{\"s\":\"hello world\",\"e\":\"tab\\there\",\"z\":\"x\\u0000y\","
                      "\"a\":[1,\"two\",[3],{\"k\":4},null,2.5],\"o\":{\"key\":1,\"a\\nb\":2},"
                      "\"n\":5,\"b\":true,\"nul\":null}";
    static const struct { const char *f; int want; } t[] = {
        {"s contains \"lo w\"", 1}, {"s contains \"hello world\"", 1}, {"s contains \"\"", 1},
        {"s contains \"World\"", 0}, {"s contains \"hello world!\"", 0}, {"s contains 1", 0},
        {"s contains [\"hello\"]", 0}, {"e contains \"\\t\"", 1}, {"e contains \"b\\th\"", 1},
        {"e contains \"\\n\"", 0}, {"z contains \"\\u0000\"", 1}, {"z contains \"\\u0000y\"", 1},
        {"z contains \"y\"", 1},
        {"a contains 1", 1}, {"a contains 1.0", 1}, {"a contains \"two\"", 1}, {"a contains [3]", 1},
        {"a contains {\"k\":4}", 1}, {"a contains { \"k\" : 4.0 }", 1}, {"a contains null", 1},
        {"a contains 2.5", 1}, {"a contains 3", 0}, {"a contains \"tw\"", 0}, {"a contains {}", 0},
        {"a contains [[3]]", 0}, {"o contains \"key\"", 1}, {"o contains \"a\\nb\"", 1},
        {"o contains \"ke\"", 0}, {"o contains 1", 0}, {"o contains {\"key\":1}", 0},
        {"n contains 5", 0}, {"b contains true", 0}, {"nul contains null", 0},
        {"missing contains 1", 0}, {"not missing contains 1", 1}, {"s CONTAINS \"h\"", 1},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) CHECK_EV(t[k].f, doc, t[k].want);
}

TEST(regex) {
    const char *doc = "{\"s\":\"Hello World\",\"e\":\"a\\nb\",\"z\":\"x\\u0000y\",\"u\":\"\\u00e9t\\u00e9\","
                      "\"n\":5,\"a\":[\"Hello\"],\"nul\":null}";
    static const struct { const char *f; int want; } t[] = {
        {"s ~ \"World\"", 1}, {"s ~ \"world\"", 0}, {"s ~ \"^Hello\"", 1}, {"s ~ \"^World\"", 0},
        {"s ~ \"o W\"", 1}, {"s ~ \"^H.*d$\"", 1}, {"s ~ \"l{2}\"", 1}, {"s ~ \"l{3}\"", 0},
        {"s ~ \"(Hi|Hello) \"", 1}, {"s ~ \"[[:digit:]]\"", 0}, {"s ~ \"\"", 1},
        {"e ~ \"a.b\"", 1}, {"e ~ \"^b\"", 0}, {"e ~ \"b$\"", 1}, {"z ~ \"y$\"", 1},
        {"z ~ \"^x\"", 1}, {"n ~ \"5\"", 0}, {"a ~ \"Hello\"", 0}, {"nul ~ \"\"", 0},
        {"missing ~ \"\"", 0}, {"s ~ \"\\\\w+\"", 1},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) CHECK_EV(t[k].f, doc, t[k].want);
    /* errors: the column of the literal and regerror's reason */
    char *m = perr("a ~ \"[\"");
    CHECK(strncmp(m, "invalid regex at column 5: ", 27) == 0 && strlen(m) > 27);
    kd__free(m);
    m = perr("name = 1 and a ~ \"(x\"");
    CHECK(strncmp(m, "invalid regex at column 18: ", 28) == 0 && strlen(m) > 28);
    kd__free(m);
    CHECK_ERR("a ~ \"x\\u0000\"", "invalid regex at column 5: the pattern contains a NUL character");
    CHECK_ERR("a ~ 5", "filter syntax error at column 5: expected a string (a regex), found '5'");
    CHECK_ERR("a ~ [\"x\"]", "filter syntax error at column 5: expected a string (a regex), found '['");
}

TEST(syntax_errors) {
    static const struct { const char *in, *msg; } t[] = {
        {"age >", "filter syntax error at column 6: expected a value, found end of input"},
        {"age > 30 and", "filter syntax error at column 13: expected a field, found end of input"},
        {"age > 30 and ", "filter syntax error at column 14: expected a field, found end of input"},
        {"(a = 1", "filter syntax error at column 7: expected 'and', 'or' or ')', found end of input"},
        {"a = 1)", "filter syntax error at column 6: expected 'and', 'or' or end of input, found ')'"},
        {"a => 1", "filter syntax error at column 3: expected an operator, found '=>'"},
        {"a <> 1", "filter syntax error at column 3: expected an operator, found '<>'"},
        {"a like \"x\"", "filter syntax error at column 3: expected an operator, found 'like'"},
        {"a", "filter syntax error at column 2: expected an operator, found end of input"},
        {"`a b = 1", "filter syntax error at column 9: expected '`', found end of input"},
        {"", "filter syntax error at column 1: expected a field, found end of input"},
        {"   ", "filter syntax error at column 4: expected a field, found end of input"},
        {"a = active", "filter syntax error at column 5: expected a value, found 'active'"},
        {"a = tru", "filter syntax error at column 5: expected a value, found 'tru' (invalid literal (expected true))"},
        {"a = 1x", "filter syntax error at column 6: expected a value, found '1x' (unexpected 'x', expected end of input after the JSON value)"},
        {"a = [1, 2", "filter syntax error at column 10: expected a value, found end of input (unexpected end of input, expected ',' or ']')"},
        {"a = \"abc", "filter syntax error at column 9: expected a value, found end of input (unterminated string)"},
        {"a = 1 b = 2", "filter syntax error at column 7: expected 'and', 'or' or end of input, found 'b'"},
        {"(a = 1 b = 2)", "filter syntax error at column 8: expected 'and', 'or' or ')', found 'b'"},
        {"a = 1 and or b = 2", "filter syntax error at column 11: expected a field, found 'or'"},
        {"and = 1", "filter syntax error at column 1: expected a field, found 'and'"},
        {"exists a", "filter syntax error at column 8: expected '(', found 'a'"},
        {"exists(a", "filter syntax error at column 9: expected ')', found end of input"},
        {"exists()", "filter syntax error at column 8: expected a field, found ')'"},
        {"not", "filter syntax error at column 4: expected a field, found end of input"},
        {"a. = 1", "filter syntax error at column 3: expected a field name after '.', found ' '"},
        {"a..b = 1", "filter syntax error at column 3: expected a field name after '.', found '.'"},
        {".a = 1", "filter syntax error at column 1: expected a field, found '.'"},
        {"-a = 1", "filter syntax error at column 1: expected a field, found '-a'"},
        {"a = )", "filter syntax error at column 5: expected a value, found ')'"},
        {"()", "filter syntax error at column 2: expected a field, found ')'"},
        /* columns count characters, not bytes */
        {"\xc3\xa9 = 1", "filter syntax error at column 1: expected a field, found '\xc3\xa9'"},
        {"`\xc3\xbc` = 1 and \xc3\xa9", "filter syntax error at column 13: expected a field, found '\xc3\xa9'"},
        {"`\xc3\xbc\xc3\xbc` >", "filter syntax error at column 7: expected a value, found end of input"},
        {"`a\xff` = 1", "filter syntax error at column 3: expected valid UTF-8, found byte 0xff"},
        {"a = 1 \x01", "filter syntax error at column 7: expected 'and', 'or' or end of input, found byte 0x01"},
        {"a = \"a very long string literal that goes on\" b",
         "filter syntax error at column 47: expected 'and', 'or' or end of input, found 'b'"},
        {"a = 1 and bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
         "filter syntax error at column 52: expected an operator, found end of input"},
        {"a = 1 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
         "filter syntax error at column 7: expected 'and', 'or' or end of input, found 'xxxxxxxxxxxxxxxxxxxxxxxx...'"},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        kd__err_clear();
        char *m = perr(t[k].in);
        if (strcmp(m, t[k].msg) != 0) {
            fprintf(stderr, "  %s:\n    got:  %s\n    want: %s\n", t[k].in, m, t[k].msg);
            t_cur_failed = 1;
        }
        kd__free(m);
    }
    /* the return code is KD_INVALID */
    kd_filter *f = (kd_filter *)1;
    CHECK_EQ_INT(kd__filter_parse("a >", 3, &f), KD_INVALID);
    CHECK(f == NULL);
    /* text need not be NUL-terminated: only len bytes are read */
    CHECK_EQ_INT(kd__filter_parse("a = 1 garbage", 5, &f), KD_OK);
    kd__filter_free(f);
    /* nesting is bounded */
    kd_buf b = KD_BUF_INIT;
    for (int i = 0; i < 600; i++) kd__buf_puts(&b, "not ");
    kd__buf_puts(&b, "a = 1");
    CHECK_EQ_INT(kd__filter_parse(b.p, b.len, &f), KD_INVALID);
    CHECK(strstr(kd__errmsg_get(), "nesting deeper than 500 levels") != NULL);
    kd__buf_reset(&b);
    for (int i = 0; i < 400; i++) kd__buf_puts(&b, "(");
    kd__buf_puts(&b, "a = 1");
    for (int i = 0; i < 400; i++) kd__buf_puts(&b, ")");
    CHECK_EQ_INT(kd__filter_parse(b.p, b.len, &f), KD_OK);
    kd__filter_free(f);
    kd__buf_free(&b);
}

TEST(paths_and_backticks) {
    const char *doc = "{\"a.b\":1,\"first name\":2,\"we`ird\":3,\"\":4,\"and\":5,\"a\":{\"b\":6,\"0\":7},"
                      "\"items\":[{\"price\":10},{\"price\":20,\"tags\":[\"x\",\"y\"]}],\"$v\":8,"
                      "\"x-y\":9,\"\xc3\xa9\":10,\"7\":11,\"`\":12}";
    static const struct { const char *f; int want; } t[] = {
        {"`a.b` = 1", 1}, {"a.b = 6", 1}, {"a.b = 1", 0}, {"`first name` = 2", 1},
        {"`we``ird` = 3", 1}, {"`` = 4", 1}, {"`and` = 5", 1}, {"`a`.`b` = 6", 1},
        {"a.`0` = 7", 1}, {"a.0 = 7", 1}, /* digits name a member of an object */
        {"items.0.price = 10", 1}, {"items.1.price = 20", 1}, {"items.1.tags.1 = \"y\"", 1},
        {"items.2.price != 1", 1}, {"exists(items.2)", 0}, {"exists(items.1.tags.0)", 1},
        {"items.00.price = 10", 1}, {"items.99999999999999999999.price = 1", 0},
        {"$v = 8", 1}, {"x-y = 9", 1}, {"`\xc3\xa9` = 10", 1}, {"7 = 11", 1}, {"```` = 12", 1},
        {"a.b>5", 1}, {"a.b<7", 1}, {"a.b=6", 1}, {"exists(`first name`)", 1},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) CHECK_EV(t[k].f, doc, t[k].want);

    /* kd__path_parse: segments and their indexes */
    kd_path p;
    CHECK_EQ_INT(kd__path_parse(" a.`b.c`.12.`x``y`.`` ", 22, &p), KD_OK);
    CHECK_EQ_INT(p.n, 5);
    if (p.n == 5) {
        CHECK(p.seg[0].len == 1 && strcmp(p.seg[0].s, "a") == 0 && p.seg[0].idx == -1);
        CHECK(p.seg[1].len == 3 && strcmp(p.seg[1].s, "b.c") == 0);
        CHECK(p.seg[2].len == 2 && strcmp(p.seg[2].s, "12") == 0 && p.seg[2].idx == 12);
        CHECK(p.seg[3].len == 3 && strcmp(p.seg[3].s, "x`y") == 0);
        CHECK(p.seg[4].len == 0 && p.seg[4].idx == -1);
    }
    kd_buf b = KD_BUF_INIT;
    kd__path_write(&p, &b);
    CHECK_EQ_STR(b.p, "a.`b.c`.12.`x``y`.``");
    kd_path q;
    CHECK_EQ_INT(kd__path_copy(&p, &q), KD_OK);
    CHECK(kd__path_equal(&p, &q));
    kd__path_free(&q);
    CHECK_EQ_INT(kd__path_parse(b.p, b.len, &q), KD_OK);
    CHECK(kd__path_equal(&p, &q));
    kd__path_free(&q);
    CHECK_EQ_INT(kd__path_parse("a.b", 3, &q), KD_OK);
    CHECK(!kd__path_equal(&p, &q));
    kd__path_free(&q);
    kd__path_free(&p);
    /* keywords and odd names get backticks when written */
    const char *names[] = {"and", "OR", "Not", "exists", "contains", "x y", "-a", "1a", "", "`",
                           "\xc3\xa9", "ok_$-1", "007", "a.b", "true"};
    const char *want[] = {"`and`", "`OR`", "`Not`", "`exists`", "`contains`", "`x y`", "`-a`",
                          "`1a`", "``", "````", "`\xc3\xa9`", "ok_$-1", "007", "`a.b`", "true"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        kd_pseg seg = {(char *)names[i], strlen(names[i]), -1};
        kd_path one = {&seg, 1};
        kd__buf_reset(&b);
        kd__path_write(&one, &b);
        CHECK_EQ_STR(b.p, want[i]);
        kd_path back;
        CHECK(kd__path_parse(b.p, b.len, &back) == KD_OK && kd__path_equal(&one, &back));
        kd__path_free(&back);
    }
    kd__buf_free(&b);
    /* errors */
    CHECK_EQ_INT(kd__path_parse("a b", 3, &p), KD_INVALID);
    CHECK_EQ_STR(kd__errmsg_get(), "invalid field \"a b\" at column 3: expected '.' or the end of the field, found 'b'");
    CHECK_EQ_INT(kd__path_parse("a.", 2, &p), KD_INVALID);
    CHECK_EQ_STR(kd__errmsg_get(), "invalid field \"a.\" at column 3: expected a field name after '.', found end of input");
    CHECK_EQ_INT(kd__path_parse("", 0, &p), KD_INVALID);
    CHECK_EQ_STR(kd__errmsg_get(), "invalid field \"\" at column 1: expected a field, found end of input");
    /* the JSON form of a path */
    kd_json *j = NULL;
    const char *pj = "[\"a.b\",0,\"\",\"12\"]";
    CHECK(kd__json_parse(pj, strlen(pj), &j, NULL) == KD_OK);
    CHECK_EQ_INT(j ? kd__path_from_json(j, &p) : -1, KD_OK);
    CHECK(p.n == 4 && strcmp(p.seg[0].s, "a.b") == 0 && p.seg[1].idx == 0 &&
          strcmp(p.seg[1].s, "0") == 0 && p.seg[2].len == 0 && p.seg[3].idx == 12);
    kd__path_free(&p);
    kd__json_free(j);
    const char *badpaths[] = {"[]", "[-1]", "[1.5]", "[null]", "5", "{}", "\"a..b\""};
    for (size_t i = 0; i < sizeof badpaths / sizeof badpaths[0]; i++) {
        CHECK(kd__json_parse(badpaths[i], strlen(badpaths[i]), &j, NULL) == KD_OK);
        CHECK_EQ_INT(kd__path_from_json(j, &p), KD_INVALID);
        CHECK(p.n == 0 && p.seg == NULL);
        kd__json_free(j);
    }
}

TEST(keywords_case_insensitive) {
    const char *doc = "{\"a\":1,\"b\":2,\"s\":\"xyz\",\"AND\":3}";
    CHECK_EV("a = 1 AND b = 2", doc, 1);
    CHECK_EV("a = 1 And b = 3", doc, 0);
    CHECK_EV("a = 2 OR b = 2", doc, 1);
    CHECK_EV("a = 2 oR b = 3", doc, 0);
    CHECK_EV("NOT a = 2", doc, 1);
    CHECK_EV("nOt a = 1", doc, 0);
    CHECK_EV("EXISTS(a)", doc, 1);
    CHECK_EV("Exists (zz)", doc, 0);
    CHECK_EV("s CONTAINS \"y\"", doc, 1);
    CHECK_EV("s Contains \"q\"", doc, 0);
    CHECK_EV("`AND` = 3", doc, 1);
    CHECK_EV("s=\"xyz\"and b=2", doc, 1); /* a string ends itself: no space needed */
    char *m = perr("a=1and b=2");         /* but a number runs into the word */
    CHECK_EQ_STR(m, "filter syntax error at column 4: expected a value, found '1and' "
                    "(unexpected 'a', expected end of input after the JSON value)");
    kd__free(m);
    CHECK_EV("(a=1)or(b=5)", doc, 1);
    CHECK_EV("nota = 1", "{\"nota\":1}", 1); /* a longer word is a field, not a keyword */
    CHECK_EV("notexists = 1", "{\"notexists\":1}", 1);
    m = perr("a = 1 andy = 2");
    CHECK_EQ_STR(m, "filter syntax error at column 7: expected 'and', 'or' or end of input, found 'andy'");
    kd__free(m);
    static const char *pairs[][2] = {
        {"A = 1 AND NOT b = 2 OR EXISTS(c)", "a = 1 and not b = 2 or exists(c)"},
        {"x = 1 AND NOT y = 2 OR EXISTS(z)", "x = 1 and not y = 2 or exists(z)"},
    };
    for (int k = 0; k < 2; k++) {
        kd_filter *f = fparse(pairs[k][0]), *g = fparse(pairs[k][1]);
        char *a = wjson(f), *b = wjson(g);
        /* field names keep their case (first pair), keywords do not (second pair) */
        CHECK(k == 0 ? strcmp(a, b) != 0 : strcmp(a, b) == 0);
        kd__free(a);
        kd__free(b);
        kd__filter_free(f);
        kd__filter_free(g);
    }
}

TEST(precedence) {
    static const struct { const char *in, *json, *text; } t[] = {
        {"a = 1 or b = 1 and c = 1",
         "{\"or\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"and\":[{\"field\":\"b\",\"op\":\"=\",\"value\":1},{\"field\":\"c\",\"op\":\"=\",\"value\":1}]}]}",
         "a = 1 or b = 1 and c = 1"},
        {"not a = 1 and b = 1",
         "{\"and\":[{\"not\":{\"field\":\"a\",\"op\":\"=\",\"value\":1}},{\"field\":\"b\",\"op\":\"=\",\"value\":1}]}",
         "not a = 1 and b = 1"},
        {"not (a = 1 and b = 1)",
         "{\"not\":{\"and\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"field\":\"b\",\"op\":\"=\",\"value\":1}]}}",
         "not (a = 1 and b = 1)"},
        {"(a = 1 or b = 1) and c = 1",
         "{\"and\":[{\"or\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"field\":\"b\",\"op\":\"=\",\"value\":1}]},{\"field\":\"c\",\"op\":\"=\",\"value\":1}]}",
         "(a = 1 or b = 1) and c = 1"},
        {"a = 1 and b = 1 and c = 1 or d = 1",
         "{\"or\":[{\"and\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"field\":\"b\",\"op\":\"=\",\"value\":1},{\"field\":\"c\",\"op\":\"=\",\"value\":1}]},{\"field\":\"d\",\"op\":\"=\",\"value\":1}]}",
         "a = 1 and b = 1 and c = 1 or d = 1"},
        {"((a = 1))", "{\"field\":\"a\",\"op\":\"=\",\"value\":1}", "a = 1"},
        {"(a = 1 and b = 1) and c = 1",
         "{\"and\":[{\"and\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"field\":\"b\",\"op\":\"=\",\"value\":1}]},{\"field\":\"c\",\"op\":\"=\",\"value\":1}]}",
         "(a = 1 and b = 1) and c = 1"},
        {"not not exists(a)", "{\"not\":{\"not\":{\"exists\":\"a\"}}}", "not not exists(a)"},
        {"a == 1.0 or (b != \"x\" or not c contains [1 , 2])",
         "{\"or\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"or\":[{\"field\":\"b\",\"op\":\"!=\",\"value\":\"x\"},{\"not\":{\"field\":\"c\",\"op\":\"contains\",\"value\":[1,2]}}]}]}",
         "a = 1 or (b != \"x\" or not c contains [1,2])"},
        {"`first name` ~ \"^J\" and `and`.0 >= -1.5e-7",
         "{\"and\":[{\"field\":\"`first name`\",\"op\":\"~\",\"value\":\"^J\"},{\"field\":\"`and`.0\",\"op\":\">=\",\"value\":-1.5e-07}]}",
         "`first name` ~ \"^J\" and `and`.0 >= -1.5e-07"},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        kd_filter *f = fparse(t[k].in);
        char *j = wjson(f), *x = wtext(f);
        CHECK_EQ_STR(j, t[k].json);
        CHECK_EQ_STR(x, t[k].text);
        kd__free(j);
        kd__free(x);
        kd__filter_free(f);
    }
    /* and the evaluation follows the tree: or of (false, and(true,false)) */
    CHECK_EV("a = 1 or b = 1 and c = 1", "{\"a\":0,\"b\":1,\"c\":0}", 0);
    CHECK_EV("(a = 1 or b = 1) and c = 1", "{\"a\":1,\"b\":0,\"c\":0}", 0);
    CHECK_EV("a = 1 or b = 1 and c = 1", "{\"a\":1,\"b\":0,\"c\":0}", 1);
    CHECK_EV("not a = 1 and b = 1", "{\"a\":0,\"b\":1}", 1);
    CHECK_EV("not (a = 1 and b = 1)", "{\"a\":0,\"b\":0}", 1);
    CHECK_EV("not a = 1 and b = 1", "{\"a\":0,\"b\":0}", 0);
}

TEST(json_form) {
    static const struct { const char *text, *json; } t[] = {
        {"a = 1", "{\"field\":\"a\",\"op\":\"=\",\"value\":1}"},
        {"a = 1", "{\"field\":\"a\",\"op\":\"==\",\"value\":1.0}"},
        {"`a.b` = 1", "{\"field\":[\"a.b\"],\"op\":\"=\",\"value\":1}"},
        {"items.0.price > 5", "{\"field\":[\"items\",0,\"price\"],\"op\":\">\",\"value\":5}"},
        {"items.0.price > 5", "{\"value\":5,\"op\":\">\",\"field\":\"items.0.price\"}"},
        {"exists(a.b)", "{\"exists\":[\"a\",\"b\"]}"},
        {"not exists(a)", "{\"not\":{\"exists\":\"a\"}}"},
        {"a = 1 and b = 2", "{\"and\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"field\":\"b\",\"op\":\"=\",\"value\":2}]}"},
        {"a = 1", "{\"and\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1}]}"}, /* one operand */
        {"a contains {\"x\":[1]}", "{\"field\":\"a\",\"op\":\"contains\",\"value\":{\"x\":[1.0]}}"},
        {"s ~ \"^a\\\\d\"", "{\"field\":\"s\",\"op\":\"~\",\"value\":\"^a\\\\d\"}"},
        {"a = null or b != \"\\u00e9\"", " { \"or\" : [ {\"field\":\"a\",\"op\":\"=\",\"value\":null} , {\"field\":\"b\",\"op\":\"!=\",\"value\":\"\xc3\xa9\"} ] } "},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        kd_filter *a = fparse(t[k].text), *b = NULL;
        CHECK_EQ_INT(kd__filter_parse_json(t[k].json, strlen(t[k].json), &b), KD_OK);
        char *x = wjson(a), *y = wjson(b);
        CHECK_EQ_STR(x, y);
        kd__free(x);
        kd__free(y);
        kd__filter_free(a);
        kd__filter_free(b);
    }
    /* kd__filter_from_json over a tree */
    kd_json *j = NULL;
    kd_filter *f = NULL;
    CHECK(kd__json_parse("{\"exists\":\"a\"}", 14, &j, NULL) == KD_OK);
    CHECK_EQ_INT(kd__filter_from_json(j, &f), KD_OK);
    CHECK(f && f->kind == KD_F_EXISTS && f->path.n == 1);
    kd__filter_free(f);
    kd__json_free(j);
}

TEST(json_form_errors) {
    CHECK_JERR("{\"and\":[{\"field\":\"a\",\"op\":\"=\",\"value\":1},{\"field\":\"b\",\"op\":\"=>\",\"value\":1}]}",
               "invalid filter at and[1]: unknown op \"=>\"");
    CHECK_JERR("{\"or\":[{\"not\":{\"field\":\"a\",\"op\":\"~\",\"value\":\"(\"}},{\"exists\":\"a\"}]}",
               "invalid filter at or[0].not: invalid regex \"(\": Unmatched ( or \\(");
    CHECK_JERR("{\"not\":{\"and\":[{\"exists\":\"a\"},{\"or\":[{\"exists\":\"b\"},{\"exists\":\"c..d\"}]}]}}",
               "invalid filter at not.and[1].or[1]: invalid field \"c..d\" at column 3: expected a field name after '.', found '.'");
    CHECK_JERR("[1]", "invalid filter: expected an object, found an array");
    CHECK_JERR("{}", "invalid filter: expected one of \"and\", \"or\", \"not\", \"exists\" or \"field\"");
    CHECK_JERR("{\"and\":{}}", "invalid filter: \"and\" must be a non-empty array of filters");
    CHECK_JERR("{\"or\":[]}", "invalid filter: \"or\" must be a non-empty array of filters");
    CHECK_JERR("{\"and\":[5,{\"exists\":\"a\"}]}", "invalid filter at and[0]: expected an object, found a number");
    CHECK_JERR("{\"field\":\"a\",\"op\":\"=\"}", "invalid filter: missing \"value\"");
    CHECK_JERR("{\"field\":\"a\",\"value\":1}", "invalid filter: missing \"op\"");
    CHECK_JERR("{\"op\":\"=\",\"value\":1}", "invalid filter: expected one of \"and\", \"or\", \"not\", \"exists\" or \"field\"");
    CHECK_JERR("{\"field\":\"a\",\"op\":1,\"value\":1}", "invalid filter: \"op\" must be a string");
    CHECK_JERR("{\"field\":\"a\",\"op\":\"~\",\"value\":1}", "invalid filter: the value of op \"~\" must be a string (a regex), not a number");
    CHECK_JERR("{\"field\":\"a\",\"op\":\"=\",\"value\":1,\"x\":2}", "invalid filter: unknown key \"x\"");
    CHECK_JERR("{\"field\":\"a\",\"op\":\"=\",\"value\":1,\"not\":{}}", "invalid filter: \"not\" must be the only key of its object");
    CHECK_JERR("{\"exists\":[1,-1]}", "invalid filter: invalid field: segment 1 is not a string or a non-negative integer");
    CHECK_JERR("{\"exists\":7}", "invalid filter: invalid field: expected a string or a non-empty array of segments");
    CHECK_JERR("{\"field\":\"a b\",\"op\":\"=\",\"value\":1}", "invalid filter: invalid field \"a b\" at column 3: expected '.' or the end of the field, found 'b'");
    CHECK_JERR("{\"not\":{\"field\":\"a\",\"op\":\"CONTAINS\",\"value\":1}}", "invalid filter at not: unknown op \"CONTAINS\"");
    CHECK_JERR("{\"and\":[{\"exists\":\"a\"}", "invalid JSON at byte 22: unexpected end of input, expected ',' or ']'");
    kd_filter *f = (kd_filter *)1;
    CHECK_EQ_INT(kd__filter_parse_json("{\"exists\":5}", 12, &f), KD_INVALID);
    CHECK(f == NULL);
}

TEST(write_text_examples) {
    static const struct { const char *in, *out; } t[] = {
        {"a=1", "a = 1"},
        {"a   >=   1.50", "a >= 1.5"},
        {"a contains \"x\\/y\"", "a contains \"x/y\""},
        {"((a = 1 or b = 2)) or c = 3", "(a = 1 or b = 2) or c = 3"},
        {"a = 1 or (b = 2 or c = 3)", "a = 1 or (b = 2 or c = 3)"},
        {"a = 1 or (b = 2 and c = 3)", "a = 1 or b = 2 and c = 3"},
        {"not (not (a = 1))", "not not a = 1"},
        {"not (a = 1 or b = 2) and c = 3", "not (a = 1 or b = 2) and c = 3"},
        {"EXISTS ( `x y`.0 )", "exists(`x y`.0)"},
        {"`not` = \"\\u0001\\t\"", "`not` = \"\\u0001\\t\""},
        {"a ~ \"\\u00e9\"", "a ~ \"\xc3\xa9\""},
        {"a = {\"b\" : [ 1 , 2.0 ] , \"a\" : null}", "a = {\"a\":null,\"b\":[1,2]}"},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        kd_filter *f = fparse(t[k].in);
        char *x = wtext(f);
        CHECK_EQ_STR(x, t[k].out);
        kd_filter *g = fparse(x);
        char *a = wjson(f), *b = wjson(g);
        CHECK_EQ_STR(a, b);
        kd__free(a);
        kd__free(b);
        kd__free(x);
        kd__filter_free(f);
        kd__filter_free(g);
    }
}

TEST(filter_fields) {
    /* the parsed literal: canonical text, cursor, number, decoded string */
    kd_filter *f = fparse("a.b = 1.0");
    CHECK(f && f->kind == KD_F_CMP && f->op == KD_OP_EQ && f->path.n == 2);
    CHECK(f && f->litlen == 1 && strcmp(f->lit, "1") == 0 && f->litv.t == KD_QV_NUM &&
          f->litnum.is_int && f->litnum.i == 1 && f->litstr == NULL && f->re == NULL);
    kd__filter_free(f);
    f = fparse("a contains \"x\\u0000\\n\"");
    CHECK(f && f->litstrlen == 3 && memcmp(f->litstr, "x\0\n", 4) == 0 && f->litv.t == KD_QV_STR);
    CHECK(f && strcmp(f->lit, "\"x\\u0000\\n\"") == 0);
    kd__filter_free(f);
    f = fparse("a ~ \"^x\" and b >= 9223372036854775808");
    CHECK(f && f->kind == KD_F_AND && f->nkids == 2 && f->kids[0]->re != NULL &&
          f->kids[1]->op == KD_OP_GE && !f->kids[1]->litnum.is_int &&
          f->kids[1]->litnum.d == 9223372036854775808.0);
    kd__filter_free(f);
    kd__filter_free(NULL);
}

/* ---- concurrency and resources ------------------------------------------------------ */

TEST(eval_no_nomem_paths_and_escaped_fields) {
    /* contains / ~ over an escaped string decode it (allocation); failing it gives -KD_NOMEM */
    char *c = canon("{\"s\":\"a\\nbc\",\"p\":\"abc\"}");
    kd_qv d = kd__qv_doc(c, strlen(c));
    kd_filter *f = fparse("s contains \"bc\""), *g = fparse("p contains \"bc\" and p ~ \"b\" and s > \"a\"");
    CHECK_EQ_INT(kd__filter_eval(f, &d), 1);
    kd__alloc_fail_at(1);
    CHECK_EQ_INT(kd__filter_eval(f, &d), -KD_NOMEM);
    kd__alloc_fail_at(1);
    CHECK_EQ_INT(kd__filter_eval(g, &d), 1); /* unescaped fields and orderings allocate nothing */
    kd__alloc_fail_at(0);
    kd_filter *n = fparse("not s contains \"bc\"");
    kd__alloc_fail_at(1);
    CHECK_EQ_INT(kd__filter_eval(n, &d), -KD_NOMEM); /* not propagates the error, not a truth */
    kd__alloc_fail_at(0);
    kd__filter_free(n);
    kd__filter_free(f);
    kd__filter_free(g);
    kd__free(c);
}

TEST(out_of_memory) {
    const char *texts[] = {
        "a = 1 and (b.`x y`.0 != \"q\\n\" or not exists(c)) and d contains [1,{\"a\":2}]",
        "s ~ \"^a+$\" or t >= 2.5 or u < \"z\" or v = null",
    };
    const char *jsons[] = {
        "{\"and\":[{\"field\":[\"a\",0],\"op\":\"=\",\"value\":[1]},{\"not\":{\"exists\":\"b.c\"}},"
        "{\"or\":[{\"field\":\"x\",\"op\":\"~\",\"value\":\"y\"},{\"field\":\"z\",\"op\":\"contains\",\"value\":\"w\"}]}]}",
    };
    for (size_t t = 0; t < 3; t++) {
        int done = 0, bad = 0;
        char *want = NULL;
        for (uint64_t n = 1; n < 2000 && !done; n++) {
            kd_filter *f = NULL;
            kd__alloc_fail_at(n);
            int rc = t < 2 ? kd__filter_parse(texts[t], strlen(texts[t]), &f)
                           : kd__filter_parse_json(jsons[0], strlen(jsons[0]), &f);
            kd__alloc_fail_at(0);
            if (rc == KD_OK) {
                done = 1;
                char *w = wjson(f);
                kd_filter *g = NULL;
                rc = t < 2 ? kd__filter_parse(texts[t], strlen(texts[t]), &g)
                           : kd__filter_parse_json(jsons[0], strlen(jsons[0]), &g);
                want = wjson(g);
                if (strcmp(w, want) != 0) bad++;
                kd__free(w);
                kd__filter_free(g);
            } else if (rc != KD_NOMEM || f != NULL) {
                bad++;
            }
            kd__filter_free(f);
        }
        CHECK(done);
        CHECK_EQ_INT(bad, 0);
        kd__free(want);
    }
    /* the writers report out of memory through the buffer */
    kd_filter *f = fparse("a = 1 and b = \"x\"");
    kd_buf b = KD_BUF_INIT;
    kd__alloc_fail_at(1);
    kd__filter_write_json(f, &b);
    kd__alloc_fail_at(0);
    CHECK(b.oom);
    kd__buf_free(&b);
    kd__alloc_fail_at(1);
    kd__filter_write_text(f, &b);
    kd__alloc_fail_at(0);
    CHECK(b.oom);
    kd__buf_free(&b);
    kd__filter_free(f);
    /* path copy */
    kd_path p, q;
    CHECK_EQ_INT(kd__path_parse("a.b.c", 5, &p), KD_OK);
    kd__alloc_fail_at(2);
    CHECK_EQ_INT(kd__path_copy(&p, &q), KD_NOMEM);
    kd__alloc_fail_at(0);
    CHECK(q.n == 0 && q.seg == NULL);
    kd__path_free(&p);
}

int main(void) {
    RUN(cursor_basics);
    RUN(cursor_strings);
    RUN(numbers_exact);
    RUN(numbers_read);
    RUN(total_order);
    RUN(cursor_bounded);
    RUN(null_and_missing_every_operator);
    RUN(int64_limits);
    RUN(contains);
    RUN(regex);
    RUN(syntax_errors);
    RUN(paths_and_backticks);
    RUN(keywords_case_insensitive);
    RUN(precedence);
    RUN(json_form);
    RUN(json_form_errors);
    RUN(write_text_examples);
    RUN(filter_fields);
    RUN(random_forms_agree);
    RUN(random_eval_oracle_and_de_morgan);
    RUN(random_mutations);
    RUN(eval_no_nomem_paths_and_escaped_fields);
    RUN(out_of_memory);
    return t_done();
}
