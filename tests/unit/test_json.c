/*
** test_json.c — the json layer (src/json/): parser, canonical and pretty writers, RFC 6902
** diff and apply, the public kd_json_* helpers.
**
** Besides tables of exact inputs and outputs, it checks properties on random documents:
** canonical form is idempotent, apply(diff(a, b), a) == b, and jansson (linked into this
** test only) agrees with our parser on accept/reject and on the parsed structure for
** thousands of valid and mutated texts. Known, deliberate differences from jansson:
**   - integer literals outside int64 ("9223372036854775808"): jansson refuses them
**     ("too big integer"); we read them as doubles, as RFC 8259 allows;
**   - \u0000 inside object keys: jansson refuses ("NUL byte in object key not
**     supported"); we accept it (keys carry their length);
**   - nesting: our limit is 512 levels, jansson's 2048 (checked in depth_limit).
** Out-of-memory is exercised by failing every allocation in turn (kd__alloc_fail_at).
*/
#include <float.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "json/json.h"
#include "t.h"

/* ---- helpers --------------------------------------------------------------------- */

/* kd__buf_take of a never-written buffer is not terminated (base.c), so terminate first. */
static char *take_str(kd_buf *b) {
    kd__buf_append(b, "", 0);
    return kd__buf_take(b, NULL);
}

/* Canonical text of len bytes of JSON, or NULL when invalid. */
static char *canon_n(const char *text, size_t len) {
    kd_buf b = KD_BUF_INIT;
    int rc = kd__json_canonicalize(text, len, &b, NULL);
    if (rc != KD_OK) {
        kd__buf_free(&b);
        return NULL;
    }
    return take_str(&b);
}
static char *canon(const char *text) { return canon_n(text, strlen(text)); }

static kd_json *parse(const char *text) {
    kd_json *v = NULL;
    if (kd__json_parse(text, strlen(text), &v, NULL) != KD_OK) return NULL;
    return v;
}

static char *write_canon(const kd_json *v) {
    kd_buf b = KD_BUF_INIT;
    kd__json_write_canonical(v, &b);
    return b.oom ? (kd__buf_free(&b), NULL) : take_str(&b);
}

static char *diff_text(const char *a, const char *b) {
    kd_json *va = a ? parse(a) : NULL, *vb = b ? parse(b) : NULL;
    kd_buf out = KD_BUF_INIT;
    char *r = NULL;
    if ((a && !va) || (b && !vb)) goto out;
    if (kd__json_diff(va, vb, &out) == KD_OK) r = take_str(&out);
out:
    kd__buf_free(&out);
    kd__json_free(va);
    kd__json_free(vb);
    return r;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}
static double rnd_unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

#define CHECK_CANON(in, want)              \
    do {                                   \
        char *got_ = canon(in);            \
        CHECK_EQ_STR(got_, (want));        \
        kd__free(got_);                    \
    } while (0)

/* ---- numbers --------------------------------------------------------------------- */

TEST(numbers) {
    static const struct { const char *in, *out; } t[] = {
        {"0", "0"}, {"-0", "0"}, {"-0.0", "0"}, {"0.0", "0"}, {"0e10", "0"}, {"-0E-7", "0"},
        {"0e999999999999999999", "0"}, {"1", "1"}, {"1.0", "1"}, {"1e0", "1"}, {"1E+0", "1"},
        {"10E-1", "1"}, {"0.5e1", "5"}, {"0.1e1", "1"}, {"-12.5e1", "-125"}, {"1.23e2", "123"},
        {"1E2", "100"}, {"100e-2", "1"}, {"1.000000000000000000000000000", "1"},
        {"12345678901234567890e-10", "1234567890.1234567"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"9223372036854775807.0", "9223372036854775807"},
        {"922337203685477580.7e1", "9223372036854775807"},
        {"9223372036854775808", "9.223372036854776e+18"},  /* 2^63: a double, and stays one */
        {"9223372036854775808.0", "9.223372036854776e+18"},
        {"9.223372036854775808e18", "9.223372036854776e+18"},
        {"9223372036854775807.5", "9.223372036854776e+18"},
        {"9.223372036854776e+18", "9.223372036854776e+18"},
        {"-9223372036854775809", "-9223372036854775808"},  /* rounds to the double -2^63 */
        {"18446744073709551616", "1.8446744073709552e+19"},
        {"9007199254740993", "9007199254740993"},          /* exact, not through a double */
        {"9.007199254740993e15", "9007199254740993"},
        {"1.5", "1.5"}, {"-1.5", "-1.5"}, {"0.1", "0.1"}, {"1.25", "1.25"}, {"12.5e-1", "1.25"},
        {"1.234e2", "123.4"}, {"-1e-2", "-0.01"}, {"1e-5", "1e-05"},
        {"-1.5e-7", "-1.5e-07"}, {"0.30000000000000004", "0.30000000000000004"},
        {"1e22", "1e+22"}, {"1e20", "1e+20"}, {"1.5e300", "1.5e+300"},
        {"123456789012345678901234567890", "1.2345678901234568e+29"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"},
        {"2.2250738585072014e-308", "2.2250738585072014e-308"},
        {"4.9406564584124654e-324", "5e-324"}, {"5e-324", "5e-324"},
        {"1e-400", "0"}, {"-1e-400", "0"}, {"2e-324", "0"},
        {"0.99999999999999999999", "1"}, {"3.0000000000000000001", "3"},
        {"0.1000000000000000055511151231257827", "0.1"},
        {"[1,1.0,1e0,-0,2.5]", "[1,1,1,0,2.5]"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *got = canon(t[i].in);
        if (!got || strcmp(got, t[i].out) != 0) {
            fprintf(stderr, "  number %s: got %s, want %s\n", t[i].in, got ? got : "(invalid)", t[i].out);
            t_cur_failed = 1;
        }
        kd__free(got);
    }
    /* the types, not only the text */
    kd_json *v = parse("[9223372036854775807,-9223372036854775808,9223372036854775808,1.0,0.5,1e-400]");
    CHECK(v && v->u.arr.n == 6);
    if (v) {
        CHECK(v->u.arr.v[0]->type == KD_JINT && v->u.arr.v[0]->u.i == INT64_MAX);
        CHECK(v->u.arr.v[1]->type == KD_JINT && v->u.arr.v[1]->u.i == INT64_MIN);
        CHECK(v->u.arr.v[2]->type == KD_JDOUBLE && v->u.arr.v[2]->u.d == 9223372036854775808.0);
        CHECK(v->u.arr.v[3]->type == KD_JINT && v->u.arr.v[3]->u.i == 1);
        CHECK(v->u.arr.v[4]->type == KD_JDOUBLE && v->u.arr.v[4]->u.d == 0.5);
        CHECK(v->u.arr.v[5]->type == KD_JINT && v->u.arr.v[5]->u.i == 0);
    }
    kd__json_free(v);
}

/* The shortest-"%.{p}g" rule taken literally (p = 1..17), plus: integral within int64 is
** an integer, and the text must not read back as an int (only 2^63 needs a longer form). */
static void literal_canonical(double d, char *out, size_t cap) {
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d) {
        snprintf(out, cap, "%lld", (long long)(int64_t)d);
        return;
    }
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, d);
        if (strtod(out, NULL) == d) break;
    }
    for (; p < 40; p++) {
        kd_json *v = parse(out);
        int is_int = v && v->type == KD_JINT;
        kd__json_free(v);
        if (!is_int) break;
        snprintf(out, cap, "%.*g", p + 1, d);
    }
}

static double random_double(void) {
    switch (rnd() % 6) {
    case 0: { /* any finite bit pattern */
        double d;
        do {
            uint64_t bits = rnd();
            memcpy(&d, &bits, sizeof d);
        } while (!isfinite(d));
        return d;
    }
    case 1: return (rnd_unit() - 0.5) * pow(10, (double)(rnd() % 40) - 20);
    case 2: return (double)(int64_t)(rnd() % 2000000 - 1000000) / 1000.0; /* "nice" decimals */
    case 3: { /* subnormals */
        uint64_t bits = rnd() & 0x000FFFFFFFFFFFFFull;
        double d;
        memcpy(&d, &bits, sizeof d);
        return (rnd() & 1) ? -d : d;
    }
    case 4: return ldexp(1.0, (int)(rnd() % 2000) - 1000) * ((rnd() & 1) ? -1 : 1);
    default: return ldexp((double)(rnd() % 4096), 50 + (int)(rnd() % 20)) * ((rnd() & 1) ? -1 : 1);
    }
}

TEST(double_formatting) {
    int bad = 0;
    char want[64];
    for (int i = 0; i < 60000; i++) {
        double d = random_double();
        if (i == 0) d = 9223372036854775808.0;
        if (i == 1) d = -9223372036854775808.0;
        if (i == 2) d = DBL_MAX;
        if (i == 3) d = DBL_MIN;
        if (i == 4) d = 4.9406564584124654e-324;
        kd_json v = {.type = KD_JDOUBLE, .u.d = d};
        char *got = write_canon(&v);
        literal_canonical(d, want, sizeof want);
        kd_json *back = got ? parse(got) : NULL;
        char *again = back ? write_canon(back) : NULL;
        int ok = got && strcmp(got, want) == 0 && back && kd__json_equal(back, &v) && again &&
                 strcmp(again, got) == 0;
        if (!ok && bad++ < 5)
            fprintf(stderr, "  double %.17g: got %s want %s again %s\n", d, got ? got : "-", want,
                    again ? again : "-");
        kd__free(got);
        kd__free(again);
        kd__json_free(back);
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- rejections with positions ---------------------------------------------------- */

TEST(rejections) {
    static const struct { const char *in; size_t len; size_t pos; const char *msg; } t[] = {
        {"", 0, 0, "end of input"},
        {"   ", 0, 3, "end of input"},
        {"[1,]", 0, 3, "unexpected ']'"},
        {"{\"a\":1,}", 0, 7, "expected a string"},
        {"[1 2]", 0, 3, "expected ',' or ']'"},
        {"{1:2}", 0, 1, "object key"},
        {"{\"a\" 1}", 0, 5, "expected ':'"},
        {"{\"a\":1 \"b\":2}", 0, 7, "',' or '}'"},
        {"[", 0, 1, "end of input"},
        {"{\"a\":", 0, 5, "end of input"},
        {"01", 0, 0, "leading zero"},
        {"-01", 0, 1, "leading zero"},
        {"[00]", 0, 1, "leading zero"},
        {"+1", 0, 0, "unexpected '+'"},
        {".5", 0, 0, "unexpected '.'"},
        {"1.", 0, 2, "digit after '.'"},
        {"1.e5", 0, 2, "digit after '.'"},
        {"1e", 0, 2, "exponent"},
        {"1e+", 0, 3, "exponent"},
        {"-", 0, 1, "a digit"},
        {"-a", 0, 1, "a digit"},
        {"NaN", 0, 0, "unexpected 'N'"},
        {"Infinity", 0, 0, "unexpected 'I'"},
        {"-Infinity", 0, 1, "a digit"},
        {"1e400", 0, 0, "out of range"},
        {"[0,-1e400]", 0, 3, "out of range"},
        {"[1] x", 0, 4, "end of input after"},
        {"1 2", 0, 2, "end of input after"},
        {"/*c*/1", 0, 0, "unexpected '/'"},
        {"1 // c", 0, 2, "unexpected '/'"},
        {"tru", 0, 0, "invalid literal"},
        {"nul", 0, 0, "invalid literal"},
        {"True", 0, 0, "unexpected 'T'"},
        {"nulll", 0, 4, "end of input after"},
        {"\"a\tb\"", 0, 2, "control character"},
        {"\"a\nb\"", 0, 2, "control character"},
        {"\"a\x1f\"", 0, 2, "control character"},
        {"\"abc", 0, 4, "unterminated string"},
        {"\"abc\\", 0, 5, "unterminated string"},
        {"\"\\x\"", 0, 1, "invalid escape"},
        {"\"\\U0041\"", 0, 1, "invalid escape"},
        {"\"\\u12G4\"", 0, 5, "hex digit"},
        {"\"\\u12\"", 0, 5, "hex digit"},
        {"\"\\u12", 0, 5, "truncated"},
        {"\"\\u", 0, 3, "truncated"},
        {"\"\\ud800\"", 0, 1, "surrogate"},
        {"\"x\\udc00\"", 0, 2, "lone low surrogate"},
        {"\"\\ud800\\u0041\"", 0, 1, "surrogate"},
        {"\"\\ud800\\n\"", 0, 1, "surrogate"},
        {"\"\\ud800\\ud800\"", 0, 1, "surrogate"},
        {"\"\xc0\x80\"", 0, 1, "UTF-8"},              /* overlong NUL */
        {"\"\xc1\xbf\"", 0, 1, "UTF-8"},              /* overlong */
        {"\"\xe0\x9f\xbf\"", 0, 1, "UTF-8"},          /* overlong 3-byte */
        {"\"\xf0\x8f\xbf\xbf\"", 0, 1, "UTF-8"},      /* overlong 4-byte */
        {"\"\xed\xa0\x80\"", 0, 1, "UTF-8"},          /* encoded surrogate U+D800 */
        {"\"\xed\xbf\xbf\"", 0, 1, "UTF-8"},          /* encoded surrogate U+DFFF */
        {"\"\xf4\x90\x80\x80\"", 0, 1, "UTF-8"},      /* U+110000 */
        {"\"\xf5\x80\x80\x80\"", 0, 1, "UTF-8"},
        {"\"ab\xe2\x82\"", 0, 3, "UTF-8"},            /* truncated sequence */
        {"\"ab\xe2\x82", 0, 3, "UTF-8"},              /* truncated at the end of input */
        {"\"\x80\"", 0, 1, "UTF-8"},                  /* stray continuation byte */
        {"\"\xff\"", 0, 1, "UTF-8"},
        {"\xef\xbb\xbf" "1", 0, 0, "byte 0xef"},      /* no BOM */
        {"\xc3\xa9", 0, 0, "byte 0xc3"},
        {"{\"a\":1,\"a\":2}", 0, 7, "duplicate object key"},
        {"{\"b\":1,\"a\":2,\"b\":3}", 0, 13, "duplicate object key"},
        {"{\"b\":1,\"a\":2,\"a\":3,\"b\":4}", 0, 13, "duplicate object key"},
        {"{\"a\\u0062\":1,\"ab\":2}", 0, 13, "duplicate object key"},
        {"[{\"x\":{},\"x\":[]}]", 0, 9, "duplicate object key"},
        {"\x00", 1, 0, "byte 0x00"},
        {"1\x00", 2, 1, "byte 0x00"},
        {"\"a\x00\"", 4, 2, "control character"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t len = t[i].len ? t[i].len : strlen(t[i].in);
        kd_json *v = (kd_json *)1;
        kd_json_err err;
        kd__err_clear();
        int rc = kd__json_parse(t[i].in, len, &v, &err);
        char want_prefix[64];
        snprintf(want_prefix, sizeof want_prefix, "invalid JSON at byte %zu: ", t[i].pos);
        const char *em = kd__errmsg_get();
        if (rc != KD_INVALID || v != NULL || err.code != KD_INVALID || err.pos != t[i].pos ||
            !strstr(err.msg, t[i].msg) || strncmp(em, want_prefix, strlen(want_prefix)) != 0 ||
            !strstr(em, err.msg)) {
            fprintf(stderr, "  reject #%zu %s: rc %d pos %zu msg \"%s\" errmsg \"%s\" (want pos %zu, \"%s\")\n",
                    i, t[i].in, rc, err.pos, err.msg, em, t[i].pos, t[i].msg);
            t_cur_failed = 1;
        }
        if (rc == KD_OK) kd__json_free(v);
    }
}

TEST(not_nul_terminated) {
    /* the parser reads exactly len bytes */
    char *got = canon_n("123456", 3);
    CHECK_EQ_STR(got, "123");
    kd__free(got);
    got = canon_n("[1,2]xxxx", 5);
    CHECK_EQ_STR(got, "[1,2]");
    kd__free(got);
    got = canon_n("\"ab\"", 3);
    CHECK(got == NULL);
    got = canon_n("truex", 3);
    CHECK(got == NULL);
    /* a buffer with no terminator at all, under ASan/valgrind */
    char *buf = malloc(4);
    memcpy(buf, "1e10", 4);
    got = canon_n(buf, 4);
    CHECK_EQ_STR(got, "10000000000");
    kd__free(got);
    memcpy(buf, "1.5e", 4);
    CHECK(canon_n(buf, 4) == NULL);
    memcpy(buf, "\"\\u1", 4);
    CHECK(canon_n(buf, 4) == NULL);
    free(buf);
    CHECK(canon_n(NULL, 0) == NULL);
}

TEST(depth_limit) {
    kd_buf b = KD_BUF_INIT;
    for (int i = 0; i < KD_JSON_MAX_DEPTH; i++) kd__buf_puts(&b, (i & 1) ? "{\"k\":" : "[");
    kd__buf_puts(&b, "0");
    for (int i = KD_JSON_MAX_DEPTH - 1; i >= 0; i--) kd__buf_puts(&b, (i & 1) ? "}" : "]");
    kd_json *v = NULL;
    CHECK_EQ_INT(kd__json_parse(b.p, b.len, &v, NULL), KD_OK);
    kd__json_free(v);

    kd__buf_reset(&b);
    for (int i = 0; i < KD_JSON_MAX_DEPTH + 1; i++) kd__buf_puts(&b, "[");
    for (int i = 0; i < KD_JSON_MAX_DEPTH + 1; i++) kd__buf_puts(&b, "]");
    kd_json_err err;
    CHECK_EQ_INT(kd__json_parse(b.p, b.len, &v, &err), KD_INVALID);
    CHECK_EQ_INT(err.pos, KD_JSON_MAX_DEPTH);
    CHECK(strstr(err.msg, "nesting") != NULL);
    /* jansson accepts this depth (its limit is 2048): a documented difference */
    json_error_t jerr;
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY, &jerr);
    CHECK(j != NULL);
    json_decref(j);

    /* a very deep unterminated input fails fast, without recursing deeper than the limit */
    kd__buf_reset(&b);
    for (int i = 0; i < 1000000; i++) kd__buf_putc(&b, (i % 3) ? '[' : ' ');
    CHECK_EQ_INT(kd__json_parse(b.p, b.len, &v, &err), KD_INVALID);
    kd__buf_free(&b);
}

/* ---- strings and unicode ----------------------------------------------------------- */

TEST(escapes) {
    CHECK_CANON("\"\\u0000\\u001f\\b\\f\\n\\r\\t\\/\\\"\\\\\\u007f\\u00e9\\ud83d\\ude00\"",
                "\"\\u0000\\u001f\\b\\f\\n\\r\\t/\\\"\\\\\x7f\xc3\xa9\xf0\x9f\x98\x80\"");
    CHECK_CANON("\"\\u0001\\u0002\\u000b\\u000E\\u001A\"", "\"\\u0001\\u0002\\u000b\\u000e\\u001a\"");
    CHECK_CANON("\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\"");            /* uppercase hex */
    CHECK_CANON("\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\"");            /* U+10FFFF */
    CHECK_CANON("\"\\ud800\\udc00\"", "\"\xf0\x90\x80\x80\"");            /* U+10000 */
    CHECK_CANON("\"\\u0041\\u00DF\\u20AC\\uFFFF\"", "\"A\xc3\x9f\xe2\x82\xac\xef\xbf\xbf\"");
    CHECK_CANON("\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \x7f /\"", "\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \x7f /\"");
    CHECK_CANON("\"\xef\xbb\xbf\"", "\"\xef\xbb\xbf\"");  /* a BOM inside a string is just text */
    CHECK_CANON("\"\"", "\"\"");
    /* NUL inside strings and keys, kept with its length */
    kd_json *v = parse("{\"a\\u0000b\":\"x\\u0000y\"}");
    CHECK(v && v->type == KD_JOBJECT && v->u.obj.n == 1);
    if (v && v->u.obj.n == 1) {
        CHECK_EQ_INT(v->u.obj.m[0].klen, 3);
        CHECK(memcmp(v->u.obj.m[0].key, "a\0b", 4) == 0);
        const kd_json *s = kd__json_get(v, "a\0b", 3);
        CHECK(s && s->type == KD_JSTRING && s->u.str.len == 3 && memcmp(s->u.str.s, "x\0y", 4) == 0);
        CHECK(kd__json_get(v, "a", 1) == NULL);
        char *w = write_canon(v);
        CHECK_EQ_STR(w, "{\"a\\u0000b\":\"x\\u0000y\"}");
        kd__free(w);
    }
    kd__json_free(v);
}

TEST(key_order) {
    CHECK_CANON("{\"b\":1,\"a\":2}", "{\"a\":2,\"b\":1}");
    char *x = canon("{\"b\":1,\"a\":2}"), *y = canon("{ \"a\" : 2.0 , \"b\" : 1 }");
    CHECK(x && y && strcmp(x, y) == 0);
    kd__free(x);
    kd__free(y);
    CHECK_CANON("{\"ab\":1,\"a\":2,\"\":3,\"b\":0}", "{\"\":3,\"a\":2,\"ab\":1,\"b\":0}");
    CHECK_CANON("{\"\xc3\xa9\":1,\"z\":2,\"Z\":3}", "{\"Z\":3,\"z\":2,\"\xc3\xa9\":1}");
    CHECK_CANON("{\"a\\u0000\":1,\"a\":2}", "{\"a\":2,\"a\\u0000\":1}");
    CHECK_CANON("{\"\\u00e9\":1,\"\xc3\xa8\":2}", "{\"\xc3\xa8\":2,\"\xc3\xa9\":1}");
    CHECK_CANON(" \t\r\n{ \"k\" :\n[ 1 ,\t2 ] } \n", "{\"k\":[1,2]}");
    CHECK_CANON("[]", "[]");
    CHECK_CANON("{}", "{}");
    CHECK_CANON("null", "null");
    CHECK_CANON(" true ", "true");
    CHECK_CANON("false", "false");
    CHECK_CANON("\"s\"", "\"s\"");
    /* a big object in reverse order sorts; lookups find every key */
    kd_buf b = KD_BUF_INIT;
    kd__buf_putc(&b, '{');
    for (int i = 2000; i > 0; i--) kd__buf_printf(&b, "%s\"k%05d\":%d", i == 2000 ? "" : ",", i, i);
    kd__buf_putc(&b, '}');
    kd_json *v = parse(b.p);
    CHECK(v && v->u.obj.n == 2000);
    int found = 0;
    for (int i = 1; v && i <= 2000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%05d", i);
        const kd_json *m = kd__json_get(v, k, strlen(k));
        found += m && m->type == KD_JINT && m->u.i == i;
    }
    CHECK_EQ_INT(found, 2000);
    CHECK(kd__json_get(v, "k00000", 6) == NULL);
    CHECK(kd__json_get(v, "k", 1) == NULL);
    kd__json_free(v);
    kd__buf_free(&b);
}

/* ---- pretty ---------------------------------------------------------------------- */

static char *pretty(const char *text, int indent) {
    kd_json *v = parse(text);
    if (!v) return NULL;
    kd_buf b = KD_BUF_INIT;
    kd__json_write_pretty(v, &b, indent);
    kd__json_free(v);
    return take_str(&b);
}

TEST(pretty_output) {
    char *p = pretty("{\"b\":[1,2.5,{}],\"a\":{\"y\":[],\"x\":null},\"c\":\"s\\n\",\"d\":[[true]]}", 2);
    CHECK_EQ_STR(p,
                 "{\n"
                 "  \"a\": {\n"
                 "    \"x\": null,\n"
                 "    \"y\": []\n"
                 "  },\n"
                 "  \"b\": [\n"
                 "    1,\n"
                 "    2.5,\n"
                 "    {}\n"
                 "  ],\n"
                 "  \"c\": \"s\\n\",\n"
                 "  \"d\": [\n"
                 "    [\n"
                 "      true\n"
                 "    ]\n"
                 "  ]\n"
                 "}");
    kd__free(p);
    p = pretty("[1,{\"a\":false}]", 4);
    CHECK_EQ_STR(p, "[\n    1,\n    {\n        \"a\": false\n    }\n]");
    kd__free(p);
    p = pretty(" 1.0 ", 2);
    CHECK_EQ_STR(p, "1");
    kd__free(p);
    p = pretty("{}", 2);
    CHECK_EQ_STR(p, "{}");
    kd__free(p);
    p = pretty("[]", 2);
    CHECK_EQ_STR(p, "[]");
    kd__free(p);
    /* pretty output is valid JSON with the same canonical form */
    const char *doc = "{\"z\":{\"q\":[1,{\"w\":\"\\u0000\"}]},\"a\":1e300}";
    p = pretty(doc, 2);
    char *c1 = canon(doc), *c2 = p ? canon(p) : NULL;
    CHECK(c1 && c2 && strcmp(c1, c2) == 0);
    kd__free(c1);
    kd__free(c2);
    kd__free(p);
}

/* ---- tree helpers ---------------------------------------------------------------- */

TEST(equal_clone_get) {
    kd_json *a = parse("{\"a\":[1,2.5,\"x\",null,true,false,{\"b\":{}}],\"c\":-7}");
    kd_json *b = parse("{\"c\":-7.0,\"a\":[1e0,25e-1,\"x\",null,true,false,{\"b\":{}}]}");
    kd_json *c = parse("{\"c\":-7,\"a\":[1,2.5,\"x\",null,true,false,{\"b\":[]}]}");
    CHECK(a && b && c);
    CHECK(kd__json_equal(a, b));
    CHECK(!kd__json_equal(a, c));
    CHECK(!kd__json_equal(a, NULL));
    CHECK(kd__json_equal(NULL, NULL));
    kd_json *k = kd__json_clone(a);
    CHECK(k && k != a && kd__json_equal(k, a));
    char *w1 = write_canon(a), *w2 = k ? write_canon(k) : NULL;
    CHECK(w1 && w2 && strcmp(w1, w2) == 0);
    kd__free(w1);
    kd__free(w2);
    const kd_json *arr = kd__json_get(a, "a", 1);
    CHECK(arr && arr->type == KD_JARRAY && arr->u.arr.n == 7);
    CHECK(kd__json_get(arr, "a", 1) == NULL); /* not an object */
    CHECK(kd__json_get(NULL, "a", 1) == NULL);
    /* int and double nodes made by hand compare by value */
    kd_json i1 = {.type = KD_JINT, .u.i = 3}, d1 = {.type = KD_JDOUBLE, .u.d = 3.0},
            d2 = {.type = KD_JDOUBLE, .u.d = 3.5}, big = {.type = KD_JDOUBLE, .u.d = 9223372036854775808.0},
            imax = {.type = KD_JINT, .u.i = INT64_MAX};
    CHECK(kd__json_equal(&i1, &d1) && kd__json_equal(&d1, &i1));
    CHECK(!kd__json_equal(&i1, &d2));
    CHECK(!kd__json_equal(&imax, &big));
    kd__json_free(a);
    kd__json_free(b);
    kd__json_free(c);
    kd__json_free(k);
    CHECK(kd__json_clone(NULL) == NULL);
}

/* ---- diff ------------------------------------------------------------------------ */

#define CHECK_DIFF(a, b, want)                  \
    do {                                        \
        char *got_ = diff_text((a), (b));       \
        CHECK_EQ_STR(got_, (want));             \
        kd__free(got_);                         \
    } while (0)

TEST(diff_examples) {
    CHECK_DIFF("{\"a\":{\"b\":1,\"c\":2},\"d\":[1,2]}", "{\"a\":{\"b\":2,\"c\":2},\"d\":[1,2]}",
               "[{\"op\":\"replace\",\"path\":\"/a/b\",\"value\":2}]");
    CHECK_DIFF("[1,2,3]", "[1,9,2,3]", "[{\"op\":\"add\",\"path\":\"/1\",\"value\":9}]");
    CHECK_DIFF("[1,2,3]", "[0,1,2,3]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":0}]");
    CHECK_DIFF("[1,2,3]", "[1,2,3,4]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":4}]");
    CHECK_DIFF("[1,2,3,4]", "[1,4]", "[{\"op\":\"remove\",\"path\":\"/2\"},{\"op\":\"remove\",\"path\":\"/1\"}]");
    CHECK_DIFF("[1,2,3]", "[1,5,6,7,3]",
               "[{\"op\":\"replace\",\"path\":\"/1\",\"value\":5},{\"op\":\"add\",\"path\":\"/2\",\"value\":6},"
               "{\"op\":\"add\",\"path\":\"/3\",\"value\":7}]");
    CHECK_DIFF("[{\"id\":1,\"n\":\"a\"},{\"id\":2,\"n\":\"b\"}]", "[{\"id\":1,\"n\":\"a\"},{\"id\":2,\"n\":\"B\"}]",
               "[{\"op\":\"replace\",\"path\":\"/1/n\",\"value\":\"B\"}]");
    CHECK_DIFF("{\"a\":1}", "{\"a\":\"1\"}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":\"1\"}]");
    CHECK_DIFF("{\"a\":[1]}", "{\"a\":{\"0\":1}}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{\"0\":1}}]");
    CHECK_DIFF("{\"a\":1,\"b\":2}", "{\"b\":2,\"c\":3}",
               "[{\"op\":\"remove\",\"path\":\"/a\"},{\"op\":\"add\",\"path\":\"/c\",\"value\":3}]");
    CHECK_DIFF("{\"a/b\":1,\"m~n\":1,\"\":1}", "{\"a/b\":2,\"m~n\":2,\"\":2}",
               "[{\"op\":\"replace\",\"path\":\"/\",\"value\":2},{\"op\":\"replace\",\"path\":\"/a~1b\",\"value\":2},"
               "{\"op\":\"replace\",\"path\":\"/m~0n\",\"value\":2}]");
    CHECK_DIFF("{\"x\\\"\\u0001\":1}", "{}", "[{\"op\":\"remove\",\"path\":\"/x\\\"\\u0001\"}]");
    CHECK_DIFF(NULL, "5", "[{\"op\":\"add\",\"path\":\"\",\"value\":5}]");
    CHECK_DIFF(NULL, "{\"b\":1,\"a\":[]}", "[{\"op\":\"add\",\"path\":\"\",\"value\":{\"a\":[],\"b\":1}}]");
    CHECK_DIFF("{\"a\":1}", NULL, "[{\"op\":\"remove\",\"path\":\"\"}]");
    CHECK_DIFF(NULL, NULL, "[]");
    CHECK_DIFF("1", "2", "[{\"op\":\"replace\",\"path\":\"\",\"value\":2}]");
    CHECK_DIFF("[]", "{}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{}}]");
    CHECK_DIFF("{\"a\":[1,{\"b\":2}]}", "{\"a\":[1.0,{\"b\":2e0}]}", "[]");
    CHECK_DIFF("null", "null", "[]");
    CHECK_DIFF("1", "1.5", "[{\"op\":\"replace\",\"path\":\"\",\"value\":1.5}]");
    CHECK_DIFF("true", "false", "[{\"op\":\"replace\",\"path\":\"\",\"value\":false}]");
    CHECK_DIFF("[[1,2],[3]]", "[[1,2,5],[3]]", "[{\"op\":\"add\",\"path\":\"/0/2\",\"value\":5}]");

    /* a big object with one nested field changed gives exactly one op */
    kd_buf a = KD_BUF_INIT, b = KD_BUF_INIT;
    kd__buf_putc(&a, '{');
    kd__buf_putc(&b, '{');
    for (int i = 0; i < 500; i++) {
        kd__buf_printf(&a, "%s\"f%d\":{\"x\":%d,\"y\":[%d,%d,\"s\"]}", i ? "," : "", i, i, i, i + 1);
        kd__buf_printf(&b, "%s\"f%d\":{\"x\":%d,\"y\":[%d,%d,\"s\"]}", i ? "," : "", i, i, i, i == 321 ? -1 : i + 1);
    }
    kd__buf_putc(&a, '}');
    kd__buf_putc(&b, '}');
    CHECK_DIFF(a.p, b.p, "[{\"op\":\"replace\",\"path\":\"/f321/y/1\",\"value\":-1}]");
    kd__buf_free(&a);
    kd__buf_free(&b);
}

/* ---- patch apply ------------------------------------------------------------------ */

/* Applies patch to doc (NULL = absent); returns the canonical result, "<absent>", or
** "<rc N>" on failure (and then checks that the document was left unchanged). */
static char *apply_text(const char *doc, const char *patch) {
    kd_json *d = doc ? parse(doc) : NULL, *p = parse(patch);
    char *r = NULL;
    if (!p || (doc && !d)) {
        r = kd__strdup("<bad input>");
        goto out;
    }
    kd_json *orig = kd__json_clone(d);
    int rc = kd__json_patch_apply(&d, p);
    if (rc == KD_OK) {
        r = d ? write_canon(d) : kd__strdup("<absent>");
    } else {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "<rc %d>", rc);
        r = kd__strdup(tmp);
        if (!kd__json_equal(orig, d)) {
            fprintf(stderr, "  failed patch changed the document\n");
            t_cur_failed = 1;
        }
    }
    kd__json_free(orig);
out:
    kd__json_free(d);
    kd__json_free(p);
    return r;
}

#define CHECK_APPLY(doc, patch, want)                \
    do {                                             \
        char *got_ = apply_text((doc), (patch));     \
        CHECK_EQ_STR(got_, (want));                  \
        kd__free(got_);                              \
    } while (0)

TEST(patch_apply) {
    /* the operations, after the examples of RFC 6902 appendix A */
    CHECK_APPLY("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
                "{\"baz\":\"qux\",\"foo\":\"bar\"}");
    CHECK_APPLY("{\"foo\":[\"bar\",\"baz\"]}", "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
                "{\"foo\":[\"bar\",\"qux\",\"baz\"]}");
    CHECK_APPLY("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}");
    CHECK_APPLY("{\"foo\":[\"bar\",\"qux\",\"baz\"]}", "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
                "{\"foo\":[\"bar\",\"baz\"]}");
    CHECK_APPLY("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
                "{\"baz\":\"boo\",\"foo\":\"bar\"}");
    CHECK_APPLY("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
                "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
                "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}");
    CHECK_APPLY("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}", "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
                "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}");
    CHECK_APPLY("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
                "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
                "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}");
    CHECK_APPLY("{\"baz\":\"qux\"}", "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", "<rc 7>");
    CHECK_APPLY("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]",
                "{\"child\":{\"grandchild\":{}},\"foo\":\"bar\"}");
    CHECK_APPLY("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]",
                "{\"baz\":\"qux\",\"foo\":\"bar\"}");                          /* extra members ignored */
    CHECK_APPLY("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", "<rc 7>");
    CHECK_APPLY("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]", "{\"/\":9,\"~1\":10}");
    CHECK_APPLY("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", "<rc 7>");
    CHECK_APPLY("{\"foo\":[\"bar\"]}", "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]",
                "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}");
    CHECK_APPLY("{\"foo\":1}", "[{\"op\":\"copy\",\"from\":\"/foo\",\"path\":\"/bar\"}]", "{\"bar\":1,\"foo\":1}");
    CHECK_APPLY("{\"a\":{\"b\":[1,2]}}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/a/b/0\"}]",
                "{\"a\":{\"b\":[{\"b\":[1,2]},1,2]}}");
    /* root operations and absent documents */
    CHECK_APPLY(NULL, "[{\"op\":\"add\",\"path\":\"\",\"value\":{\"a\":1}}]", "{\"a\":1}");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"\"}]", "<absent>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":[1]}]", "[1]");
    CHECK_APPLY(NULL, "[{\"op\":\"replace\",\"path\":\"\",\"value\":1}]", "<rc 7>");
    CHECK_APPLY(NULL, "[{\"op\":\"remove\",\"path\":\"\"}]", "<rc 7>");
    CHECK_APPLY(NULL, "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]", "<rc 7>");
    CHECK_APPLY(NULL, "[]", "<absent>");
    CHECK_APPLY("{\"a\":1}", "[]", "{\"a\":1}");
    CHECK_APPLY("{\"\":1}", "[{\"op\":\"replace\",\"path\":\"/\",\"value\":2}]", "{\"\":2}");
    /* errors: each leaves the document unchanged (checked in apply_text) */
    CHECK_APPLY("{\"a\":1}", "{\"op\":\"remove\",\"path\":\"/a\"}", "<rc 7>");       /* not an array */
    CHECK_APPLY("{\"a\":1}", "[1]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"path\":\"/a\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"frob\",\"path\":\"/a\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"add\\u0000\",\"path\":\"/a\",\"value\":1}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\"}]", "<rc 7>");         /* no value */
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"add\",\"path\":1,\"value\":1}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"a\",\"value\":1}]", "<rc 7>"); /* no leading / */
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":1}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/a~2\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/a~\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":1}", "[{\"op\":\"move\",\"path\":\"/b\"}]", "<rc 7>");          /* no from */
    CHECK_APPLY("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/c\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]", "{\"a\":{\"b\":1}}");
    CHECK_APPLY("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/x\"}]", "<rc 7>");
    CHECK_APPLY("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/ab\"}]", "{\"ab\":{\"b\":1}}");
    CHECK_APPLY("[1,2]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":0}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"add\",\"path\":\"/2\",\"value\":0}]", "[1,2,0]");
    CHECK_APPLY("[1,2]", "[{\"op\":\"add\",\"path\":\"/01\",\"value\":0}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"add\",\"path\":\"/-1\",\"value\":0}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"add\",\"path\":\"/1e0\",\"value\":0}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"add\",\"path\":\"/99999999999999999999999\",\"value\":0}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"remove\",\"path\":\"/2\"}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"remove\",\"path\":\"/-\"}]", "<rc 7>");
    CHECK_APPLY("[1,2]", "[{\"op\":\"replace\",\"path\":\"/0\",\"value\":9},{\"op\":\"remove\",\"path\":\"/5\"}]",
                "<rc 7>");                                                      /* atomic: nothing applied */
    CHECK_APPLY("{\"a\":5}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":0}]", "<rc 7>"); /* scalar parent */
    CHECK_APPLY("{\"a\":[]}", "[{\"op\":\"add\",\"path\":\"/a/x\",\"value\":0}]", "<rc 7>");
    CHECK_APPLY("{\"a\":{\"0\":1}}", "[{\"op\":\"add\",\"path\":\"/a/0\",\"value\":2}]", "{\"a\":{\"0\":2}}");
    CHECK_APPLY("{\"a\":[{\"b\":[0]}]}", "[{\"op\":\"replace\",\"path\":\"/a/0/b/0\",\"value\":7}]", "{\"a\":[{\"b\":[7]}]}");

    /* moving a value into its own child is refused with a clear message */
    kd_json *d0 = parse("{\"a\":{\"b\":1}}"), *p0 = parse("[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/c\"}]");
    CHECK_EQ_INT(kd__json_patch_apply(&d0, p0), KD_INVALID);
    CHECK(strstr(kd__errmsg_get(), "into itself") != NULL);
    kd__json_free(d0);
    kd__json_free(p0);
    /* the failure message names the operation */
    kd_json *d = parse("{\"a\":1}"), *p = parse("[{\"op\":\"test\",\"path\":\"/a\",\"value\":1},{\"op\":\"remove\",\"path\":\"/zz\"}]");
    CHECK_EQ_INT(kd__json_patch_apply(&d, p), KD_INVALID);
    CHECK(strstr(kd__errmsg_get(), "operation 1") && strstr(kd__errmsg_get(), "/zz"));
    kd__json_free(d);
    kd__json_free(p);
}

/* A patch cannot build a document deeper than the parser accepts. */
TEST(patch_depth_limit) {
    kd_buf doc = KD_BUF_INIT, path = KD_BUF_INIT, patch = KD_BUF_INIT;
    for (int i = 0; i < 510; i++) kd__buf_putc(&doc, '[');
    for (int i = 0; i < 510; i++) kd__buf_putc(&doc, ']');
    for (int i = 0; i < 510; i++) kd__buf_puts(&path, "/0");
    kd_json *d = parse(doc.p);
    CHECK(d != NULL);
    kd__buf_printf(&patch, "[{\"op\":\"add\",\"path\":\"%s\",\"value\":[[1]]}]", path.p);
    kd_json *p = parse(patch.p);
    CHECK_EQ_INT(kd__json_patch_apply(&d, p), KD_OK);  /* 510 + 2 = 512 levels: fine */
    char *w = d ? write_canon(d) : NULL;
    kd_json *back = w ? parse(w) : NULL;
    CHECK(back && kd__json_equal(back, d));
    kd__json_free(back);
    kd__free(w);
    kd__json_free(p);
    kd__buf_reset(&patch);
    kd__buf_printf(&patch, "[{\"op\":\"add\",\"path\":\"%s\",\"value\":[[[1]]]}]", path.p);
    p = parse(patch.p);
    CHECK_EQ_INT(kd__json_patch_apply(&d, p), KD_INVALID);
    CHECK(strstr(kd__errmsg_get(), "deeper") != NULL);
    kd__json_free(p);
    kd__buf_reset(&patch);
    kd__buf_printf(&patch, "[{\"op\":\"replace\",\"path\":\"%s\",\"value\":[[[1]]]}]", path.p);
    p = parse(patch.p);
    CHECK_EQ_INT(kd__json_patch_apply(&d, p), KD_INVALID);
    kd__json_free(p);
    /* copying a deep part under itself would double the depth */
    p = parse("[{\"op\":\"copy\",\"from\":\"/0\",\"path\":\"/0/0/0/0/0/0/0/0/0/0/0\"}]");
    CHECK_EQ_INT(kd__json_patch_apply(&d, p), KD_INVALID);
    kd__json_free(p);
    kd__json_free(d);
    kd__buf_free(&doc);
    kd__buf_free(&path);
    kd__buf_free(&patch);
}

/* ---- random documents -------------------------------------------------------------- */

/* Appends random whitespace (often none). */
static void gen_ws(kd_buf *b) {
    static const char ws[] = " \t\n\r";
    if (rnd() % 4) return;
    for (int n = 1 + (int)(rnd() % 3); n > 0; n--) kd__buf_putc(b, ws[rnd() % 4]);
}

/* Random decoded string content (valid UTF-8, may hold NUL). */
static void gen_raw_string(kd_buf *s, int keyish) {
    size_t n = keyish ? rnd() % 4 : rnd() % 12;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd() % 20;
        unsigned cp;
        if (keyish && r == 15 && rnd() % 4 == 0) cp = 0;
        else if (keyish && r < 16) cp = "abcd/~"[rnd() % 6];
        else if (r < 10) cp = 0x20 + (unsigned)(rnd() % 95);
        else if (r < 12) cp = (unsigned)(rnd() % 0x20);               /* controls, NUL */
        else if (r < 13) cp = "\"\\/"[rnd() % 3];
        else if (r < 15) cp = 0x80 + (unsigned)(rnd() % 0x780);
        else if (r < 18) {
            do cp = 0x800 + (unsigned)(rnd() % 0xF800); while (cp >= 0xD800 && cp <= 0xDFFF);
        } else cp = 0x10000 + (unsigned)(rnd() % 0x100000);
        char u[4];
        size_t k;
        if (cp < 0x80) { u[0] = (char)cp; k = 1; }
        else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); k = 2; }
        else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63)); k = 3;
        } else {
            u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
            u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); k = 4;
        }
        kd__buf_append(s, u, k);
    }
}

/* Decodes one UTF-8 sequence (valid by construction). */
static unsigned utf8_decode(const unsigned char *s, size_t *k) {
    if (s[0] < 0x80) { *k = 1; return s[0]; }
    if (s[0] < 0xE0) { *k = 2; return (unsigned)(s[0] & 31) << 6 | (s[1] & 63); }
    if (s[0] < 0xF0) { *k = 3; return (unsigned)(s[0] & 15) << 12 | (unsigned)(s[1] & 63) << 6 | (s[2] & 63); }
    *k = 4;
    return (unsigned)(s[0] & 7) << 18 | (unsigned)(s[1] & 63) << 12 | (unsigned)(s[2] & 63) << 6 | (s[3] & 63);
}

/* Writes content as a JSON string literal, choosing escapes at random. */
static void gen_encode_string(kd_buf *b, const char *s, size_t len) {
    kd__buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        size_t k;
        unsigned cp = utf8_decode((const unsigned char *)s + i, &k);
        int esc = rnd() % 8 == 0;
        if (cp == '"' || cp == '\\' || cp < 0x20) esc = 1;
        if (!esc) kd__buf_append(b, s + i, k);
        else if (cp < 0x80 && strchr("\"\\/\b\f\n\r\t", (int)cp) && cp && rnd() % 2)
            kd__buf_printf(b, "\\%c", "\"\\/bfnrt"[strchr("\"\\/\b\f\n\r\t", (int)cp) - "\"\\/\b\f\n\r\t"]);
        else if (cp < 0x10000) kd__buf_printf(b, rnd() % 2 ? "\\u%04x" : "\\u%04X", cp);
        else {
            unsigned v = cp - 0x10000;
            kd__buf_printf(b, "\\u%04x\\u%04X", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        }
        i += k;
    }
    kd__buf_putc(b, '"');
}

static void gen_number(kd_buf *b) {
    switch (rnd() % 8) {
    case 0: kd__buf_printf(b, "%lld", (long long)(rnd() % 2000) - 1000); break;
    case 1: kd__buf_printf(b, "%lld", (long long)rnd()); break;  /* any int64 */
    case 2: { /* integers in decimal disguise */
        long long v = (long long)(rnd() % 100000) - 50000;
        switch (rnd() % 4) {
        case 0: kd__buf_printf(b, "%lld.0", v); break;
        case 1: kd__buf_printf(b, "%llde0", v); break;
        case 2: kd__buf_printf(b, "%lld0E-1", v); break;
        default: kd__buf_printf(b, "%s%lld.%lldE+1", v < 0 ? "-" : "", llabs(v) / 10, llabs(v) % 10); break;
        }
        break;
    }
    case 3: kd__buf_printf(b, "%.17g", random_double()); break;
    case 4: kd__buf_printf(b, "%.*g", 1 + (int)(rnd() % 17), random_double()); break;
    case 5: kd__buf_printf(b, "%.*e", (int)(rnd() % 20), random_double()); break;
    case 6: kd__buf_printf(b, "%.3f", (rnd_unit() - 0.5) * 1000); break;
    default: kd__buf_printf(b, "%s%llu%s", rnd() % 2 ? "-" : "", (unsigned long long)rnd(),
                            rnd() % 2 ? "" : "99"); break; /* often beyond int64 */
    }
}

/* Appends a random JSON value as text (random formatting, random escapes). */
static void gen_value(kd_buf *b, int depth) {
    uint64_t r = rnd() % (depth > 4 ? 6 : 10);
    kd_buf s = KD_BUF_INIT;
    switch (r) {
    case 0: kd__buf_puts(b, "null"); break;
    case 1: kd__buf_puts(b, rnd() % 2 ? "true" : "false"); break;
    case 2:
    case 3: gen_number(b); break;
    case 4:
    case 5:
        gen_raw_string(&s, 0);
        gen_encode_string(b, s.p ? s.p : "", s.len);
        break;
    case 6:
    case 7: {
        size_t n = rnd() % 6;
        kd__buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) kd__buf_putc(b, ',');
            gen_ws(b);
            gen_value(b, depth + 1);
            gen_ws(b);
        }
        if (!n) gen_ws(b);
        kd__buf_putc(b, ']');
        break;
    }
    default: {
        size_t n = rnd() % 6;
        char keys[6][16];
        size_t klens[6], nk = 0;
        kd__buf_putc(b, '{');
        for (size_t i = 0; i < n; i++) {
            kd__buf_reset(&s);
            gen_raw_string(&s, 1);
            int dup = 0;
            for (size_t k = 0; k < nk; k++)
                if (klens[k] == s.len && memcmp(keys[k], s.p ? s.p : "", s.len) == 0) dup = 1;
            if (dup || s.len >= 16) continue;
            memcpy(keys[nk], s.p ? s.p : "", s.len);
            klens[nk++] = s.len;
            if (nk > 1) kd__buf_putc(b, ',');
            gen_ws(b);
            gen_encode_string(b, s.p ? s.p : "", s.len);
            gen_ws(b);
            kd__buf_putc(b, ':');
            gen_ws(b);
            gen_value(b, depth + 1);
            gen_ws(b);
        }
        if (!nk) gen_ws(b);
        kd__buf_putc(b, '}');
        break;
    }
    }
    kd__buf_free(&s);
}

static char *gen_doc(size_t *len) {
    kd_buf b = KD_BUF_INIT;
    gen_ws(&b);
    gen_value(&b, 0);
    gen_ws(&b);
    if (len) *len = b.len;
    return take_str(&b);
}

TEST(canonical_idempotent) {
    int bad = 0, invalid = 0;
    for (int i = 0; i < 4000; i++) {
        size_t len;
        char *text = gen_doc(&len);
        kd_json *v = NULL;
        int rc = kd__json_parse(text, len, &v, NULL);
        if (rc != KD_OK) { /* rare generator output such as 2e+308; the oracle test covers it */
            invalid++;
            kd__free(text);
            continue;
        }
        char *c1 = rc == KD_OK ? write_canon(v) : NULL;
        char *c2 = c1 ? canon(c1) : NULL;
        kd_json *v2 = c1 ? parse(c1) : NULL;
        int ok = rc == KD_OK && c1 && c2 && strcmp(c1, c2) == 0 && v2 && kd__json_equal(v, v2);
        if (!ok && bad++ < 3) fprintf(stderr, "  doc %s\n  c1 %s\n  c2 %s\n", text, c1 ? c1 : "-", c2 ? c2 : "-");
        kd__free(text);
        kd__free(c1);
        kd__free(c2);
        kd__json_free(v);
        kd__json_free(v2);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(invalid < 40);
}

/* Builds b from a by random edits on the tree, so that diffs find real structure: change
** scalars, add/remove object members, insert/delete array elements in the middle. */
static kd_json *mutate_tree(const kd_json *a, int *changes);

/* A random document (the generator can make a rare invalid text, e.g. "2e+308" from
** rounding DBL_MAX to one digit: retry then). */
static kd_json *random_value(void) {
    kd_json *v = NULL;
    while (!v) {
        size_t len;
        char *t = gen_doc(&len);
        kd__json_parse(t, len, &v, NULL);
        kd__free(t);
    }
    return v;
}

static kd_json *mutate_tree(const kd_json *a, int *changes) {
    if (rnd() % 12 == 0) {
        (*changes)++;
        return random_value();
    }
    kd_json *c = kd__json_clone(a);
    if (a->type == KD_JARRAY) {
        for (size_t i = 0; i < c->u.arr.n; i++) {
            if (rnd() % 3 == 0) {
                kd_json *m = mutate_tree(c->u.arr.v[i], changes);
                kd__json_free(c->u.arr.v[i]);
                c->u.arr.v[i] = m;
            }
        }
        int edits = (int)(rnd() % 3);
        for (int e = 0; e < edits; e++) {
            (*changes)++;
            if (c->u.arr.n && rnd() % 2) { /* delete from anywhere */
                size_t k = rnd() % c->u.arr.n;
                kd__json_free(c->u.arr.v[k]);
                memmove(c->u.arr.v + k, c->u.arr.v + k + 1, (c->u.arr.n - k - 1) * sizeof *c->u.arr.v);
                c->u.arr.n--;
            } else { /* insert anywhere */
                size_t k = rnd() % (c->u.arr.n + 1);
                c->u.arr.v = realloc(c->u.arr.v, (c->u.arr.n + 1) * sizeof *c->u.arr.v);
                memmove(c->u.arr.v + k + 1, c->u.arr.v + k, (c->u.arr.n - k) * sizeof *c->u.arr.v);
                c->u.arr.v[k] = random_value();
                c->u.arr.n++;
            }
        }
    } else if (a->type == KD_JOBJECT) {
        for (size_t i = 0; i < c->u.obj.n; i++) {
            if (rnd() % 3 == 0) {
                kd_json *m = mutate_tree(c->u.obj.m[i].val, changes);
                kd__json_free(c->u.obj.m[i].val);
                c->u.obj.m[i].val = m;
            }
        }
        if (c->u.obj.n && rnd() % 3 == 0) {
            (*changes)++;
            size_t k = rnd() % c->u.obj.n;
            kd__free(c->u.obj.m[k].key);
            kd__json_free(c->u.obj.m[k].val);
            memmove(c->u.obj.m + k, c->u.obj.m + k + 1, (c->u.obj.n - k - 1) * sizeof *c->u.obj.m);
            c->u.obj.n--;
        }
        if (rnd() % 3 == 0) { /* add a member through a patch, which keeps the order */
            char key[8];
            snprintf(key, sizeof key, "n%u", (unsigned)(rnd() % 5));
            kd_json *val = random_value();
            kd_buf pb = KD_BUF_INIT;
            kd__buf_printf(&pb, "[{\"op\":\"add\",\"path\":\"/%s\",\"value\":", key);
            kd__json_write_canonical(val, &pb);
            kd__buf_puts(&pb, "}]");
            kd_json *p = parse(pb.p);
            kd__json_patch_apply(&c, p);
            kd__json_free(p);
            kd__json_free(val);
            kd__buf_free(&pb);
            (*changes)++;
        }
    } else if (rnd() % 2) {
        (*changes)++;
        kd__json_free(c);
        c = random_value();
    }
    return c;
}

TEST(diff_apply_property) {
    int bad = 0, total_ops = 0;
    for (int i = 0; i < 3000; i++) {
        kd_json *a = NULL;
        while (!a || (i % 4 && a->type != KD_JOBJECT && a->type != KD_JARRAY)) {
            kd__json_free(a);
            a = random_value();
        }
        int changes = 0;
        kd_json *b = mutate_tree(a, &changes);
        if (i % 50 == 0) { /* now and then diff from or to absent */
            kd__json_free(i % 100 ? a : b);
            if (i % 100) a = NULL;
            else b = NULL;
        }
        kd_buf pb = KD_BUF_INIT;
        int rc = kd__json_diff(a, b, &pb);
        char *ptext = rc == KD_OK ? take_str(&pb) : NULL;
        kd_json *patch = ptext ? parse(ptext) : NULL;
        char *pcanon = ptext ? canon(ptext) : NULL;
        kd_json *doc = kd__json_clone(a);
        int arc = patch ? kd__json_patch_apply(&doc, patch) : -1;
        int ok = rc == KD_OK && patch && pcanon && strcmp(pcanon, ptext) == 0 && arc == KD_OK &&
                 ((doc == NULL && b == NULL) || kd__json_equal(doc, b));
        if (ok && kd__json_equal(a, b)) ok = strcmp(ptext, "[]") == 0;
        if (ok && patch) total_ops += (int)patch->u.arr.n;
        if (!ok && bad++ < 3) {
            char *ta = a ? write_canon(a) : NULL, *tb = b ? write_canon(b) : NULL;
            fprintf(stderr, "  a %s\n  b %s\n  patch %s (apply rc %d)\n", ta ? ta : "-", tb ? tb : "-",
                    ptext ? ptext : "-", arc);
            kd__free(ta);
            kd__free(tb);
        }
        kd__free(ptext);
        kd__free(pcanon);
        kd__json_free(patch);
        kd__json_free(doc);
        kd__json_free(a);
        kd__json_free(b);
        kd__buf_free(&pb);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(total_ops > 1000); /* the mutations really changed things */
}

/* Changing exactly one scalar leaf of a random document yields exactly one replace op at
** that leaf's path. */
TEST(diff_single_leaf) {
    int bad = 0, tried = 0;
    for (int i = 0; i < 1500; i++) {
        kd_json *a = random_value(), *b = kd__json_clone(a);
        /* walk down b at random to a scalar */
        kd_json *cur = b;
        kd_buf path = KD_BUF_INIT;
        kd__buf_append(&path, "", 0);
        for (;;) {
            if (cur->type == KD_JARRAY && cur->u.arr.n) {
                size_t k = rnd() % cur->u.arr.n;
                kd__buf_printf(&path, "/%zu", k);
                cur = cur->u.arr.v[k];
            } else if (cur->type == KD_JOBJECT && cur->u.obj.n) {
                size_t k = rnd() % cur->u.obj.n;
                kd__buf_putc(&path, '/');
                for (size_t j = 0; j < cur->u.obj.m[k].klen; j++) {
                    char ch = cur->u.obj.m[k].key[j];
                    if (ch == '~') kd__buf_puts(&path, "~0");
                    else if (ch == '/') kd__buf_puts(&path, "~1");
                    else kd__buf_putc(&path, ch);
                }
                cur = cur->u.obj.m[k].val;
            } else break;
        }
        if (cur->type == KD_JARRAY || cur->type == KD_JOBJECT) goto next; /* empty container */
        if (cur->type == KD_JSTRING) kd__free(cur->u.str.s);
        cur->type = KD_JINT;
        cur->u.i = 123456789;
        if (kd__json_equal(a, b)) goto next;
        tried++;
        kd_buf want = KD_BUF_INIT, got = KD_BUF_INIT;
        kd__buf_puts(&want, "[{\"op\":\"replace\",\"path\":");
        kd__json_write_string(&want, path.p, path.len);
        kd__buf_puts(&want, ",\"value\":123456789}]");
        kd__json_diff(a, b, &got);
        if ((!got.p || strcmp(got.p, want.p) != 0) && bad++ < 3)
            fprintf(stderr, "  got %s\n  want %s\n", got.p ? got.p : "-", want.p);
        kd__buf_free(&want);
        kd__buf_free(&got);
    next:
        kd__buf_free(&path);
        kd__json_free(a);
        kd__json_free(b);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(tried > 500);
}

/* ---- jansson as an oracle ------------------------------------------------------------ */

static int same_as_jansson(const kd_json *v, const json_t *j) {
    switch (v->type) {
    case KD_JNULL: return json_is_null(j);
    case KD_JTRUE: return json_is_true(j);
    case KD_JFALSE: return json_is_false(j);
    case KD_JINT:
        if (json_is_integer(j)) return json_integer_value(j) == v->u.i;
        return json_is_real(j) && json_real_value(j) == (double)v->u.i;
    case KD_JDOUBLE:
        return json_is_real(j) && json_real_value(j) == v->u.d;
    case KD_JSTRING:
        return json_is_string(j) && json_string_length(j) == v->u.str.len &&
               memcmp(json_string_value(j), v->u.str.s, v->u.str.len) == 0;
    case KD_JARRAY:
        if (!json_is_array(j) || json_array_size(j) != v->u.arr.n) return 0;
        for (size_t i = 0; i < v->u.arr.n; i++)
            if (!same_as_jansson(v->u.arr.v[i], json_array_get(j, i))) return 0;
        return 1;
    case KD_JOBJECT:
        if (!json_is_object(j) || json_object_size(j) != v->u.obj.n) return 0;
        for (size_t i = 0; i < v->u.obj.n; i++) {
            json_t *m = json_object_getn(j, v->u.obj.m[i].key, v->u.obj.m[i].klen);
            if (!m || !same_as_jansson(v->u.obj.m[i].val, m)) return 0;
        }
        return 1;
    }
    return 0;
}

/* Compares one text; returns 0 when they disagree (and says how). */
static int oracle_check(const char *text, size_t len, int *accepted, int *special) {
    kd_json *v = NULL;
    kd_json_err err;
    int rc = kd__json_parse(text, len, &v, &err);
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    int ok;
    if (rc == KD_OK && j) {
        ok = same_as_jansson(v, j);
        (*accepted)++;
    } else if (rc != KD_OK && !j) {
        ok = rc == KD_INVALID && err.pos <= len;
    } else if (rc == KD_OK && !j && strstr(jerr.text, "too big") &&
               json_error_code(&jerr) == json_error_numeric_overflow) {
        ok = 1; /* integer literal beyond int64: a double for us */
        (*special)++;
    } else if (rc == KD_OK && !j && json_error_code(&jerr) == json_error_null_byte_in_key) {
        ok = 1; /* NUL in a key: fine for us */
        (*special)++;
    } else if (rc == KD_INVALID && j && err.pos < len && text[err.pos] == 0) {
        /* jansson's lexer loses a raw NUL byte that follows a literal or a number (its
        ** stream buffer uses NUL as "refill"), so it accepts "true\0". RFC 8259 does not: we
        ** reject. Check that without that byte both agree again. */
        char *copy = malloc(len);
        memcpy(copy, text, err.pos);
        memcpy(copy + err.pos, text + err.pos + 1, len - err.pos - 1);
        ok = oracle_check(copy, len - 1, accepted, special);
        free(copy);
        (*special)++;
    } else {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "  disagreement on %zu bytes: ", len);
        for (size_t i = 0; i < len && i < 200; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c >= 0x20 && c < 0x7f) fputc(c, stderr);
            else fprintf(stderr, "\\x%02x", c);
        }
        fprintf(stderr, "\n    ours: %s (pos %zu: %s)\n    jansson: %s\n", rc == KD_OK ? "ok" : "rejected",
                err.pos, rc == KD_OK ? "" : err.msg, j ? "ok" : jerr.text);
    }
    kd__json_free(v);
    json_decref(j);
    return ok;
}

static void mutate_text(kd_buf *b) {
    static const char interesting[] = ",\"\\]}[{:0-.eE+u\x80\xc0\xc3\xed\xf0\xf4\xff\x01\x1f\x7f 1dD";
    int edits = 1 + (int)(rnd() % 3);
    for (int e = 0; e < edits; e++) {
        size_t pos = b->len ? rnd() % (b->len + 1) : 0;
        char c = (rnd() % 4) ? interesting[rnd() % (sizeof interesting - 1)] : (char)(rnd() & 0xFF);
        if (rnd() % 10 == 0) c = 0;
        switch (rnd() % 4) {
        case 0: /* replace */
            if (pos < b->len) b->p[pos] = c;
            break;
        case 1: /* insert */
            kd__buf_putc(b, 0);
            memmove(b->p + pos + 1, b->p + pos, b->len - 1 - pos);
            b->p[pos] = c;
            break;
        case 2: /* delete */
            if (pos < b->len) {
                memmove(b->p + pos, b->p + pos + 1, b->len - pos - 1);
                b->len--;
            }
            break;
        default: /* truncate */
            b->len = pos;
        }
    }
}

TEST(jansson_oracle) {
    int bad = 0, accepted = 0, special = 0, n = 0;
    for (int i = 0; i < 6000; i++) {
        size_t len;
        char *text = gen_doc(&len);
        n++;
        if (!oracle_check(text, len, &accepted, &special)) bad++;
        kd_buf b = KD_BUF_INIT;
        kd__buf_append(&b, text, len);
        for (int m = 0; m < 3; m++) {
            kd_buf c = KD_BUF_INIT;
            kd__buf_append(&c, b.p, b.len);
            mutate_text(&c);
            n++;
            if (!oracle_check(c.p ? c.p : "", c.len, &accepted, &special)) bad++;
            kd__buf_free(&c);
        }
        kd__buf_free(&b);
        kd__free(text);
        if (bad > 5) break;
    }
    /* hand-picked edge cases */
    static const char *edge[] = {"\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                                 "\"\xc0\xaf\"", "-0", "-0.0", "1e-400", "1e400", "9223372036854775807", "-9223372036854775808",
                                 "9223372036854775808", "-9223372036854775809", "[1,]", "01", "\"\\u0000\"", "{\"\\u0000\":1}",
                                 "{\"a\":1,\"a\":1}", "{\"a\":1,\"\\u0061\":1}", " ", "\"\x7f\"", "[\"\xe2\x82\xac\"]", "1.5e+3",
                                 "[-]", "[1e]", "{\"a\"}", "\"\\/\"", "[true,false,null]", "\xef\xbb\xbf[]"};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        n++;
        if (!oracle_check(edge[i], strlen(edge[i]), &accepted, &special)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(accepted > n / 4);  /* both valid and invalid texts were really exercised */
    CHECK(accepted < n * 9 / 10);
    CHECK(special > 0);
}

/* ---- public API -------------------------------------------------------------------- */

TEST(public_api) {
    char *out = NULL;
    size_t n = 0;
    const char *in = "{\"b\":1, \"a\":[1.0, 2.50]}";
    CHECK_EQ_INT(kd_json_canonical(in, strlen(in), &out, &n), KD_OK);
    CHECK_EQ_STR(out, "{\"a\":[1,2.5],\"b\":1}");
    CHECK_EQ_INT(n, strlen("{\"a\":[1,2.5],\"b\":1}"));
    kd_free(out);
    CHECK_EQ_INT(kd_json_canonical("{\"a\":1,}", 8, &out, &n), KD_INVALID);
    CHECK(out == NULL);
    CHECK(strstr(kd_errmsg(NULL), "invalid JSON at byte 7") != NULL);
    CHECK_EQ_INT(kd_json_canonical(NULL, 0, &out, &n), KD_INVALID);
    CHECK_EQ_INT(kd_json_canonical("1", 1, &out, NULL), KD_OK);
    CHECK_EQ_STR(out, "1");
    kd_free(out);

    in = "{\"b\":[1],\"a\":{}}";
    CHECK_EQ_INT(kd_json_pretty(in, strlen(in), &out, &n), KD_OK);
    CHECK_EQ_STR(out, "{\n  \"a\": {},\n  \"b\": [\n    1\n  ]\n}");
    CHECK_EQ_INT(n, strlen(out));
    kd_free(out);
    CHECK_EQ_INT(kd_json_pretty("[", 1, &out, &n), KD_INVALID);
    CHECK(out == NULL);

    CHECK_EQ_INT(kd_json_diff("{\"a\":1}", 7, "{\"a\":2}", 7, &out), KD_OK);
    CHECK_EQ_STR(out, "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]");
    kd_free(out);
    CHECK_EQ_INT(kd_json_diff(NULL, 0, "[1]", 3, &out), KD_OK);
    CHECK_EQ_STR(out, "[{\"op\":\"add\",\"path\":\"\",\"value\":[1]}]");
    kd_free(out);
    CHECK_EQ_INT(kd_json_diff("[1]", 3, NULL, 0, &out), KD_OK);
    CHECK_EQ_STR(out, "[{\"op\":\"remove\",\"path\":\"\"}]");
    kd_free(out);
    CHECK_EQ_INT(kd_json_diff("[1]", 3, "[1", 2, &out), KD_INVALID);
    CHECK(out == NULL);
    CHECK(strstr(kd_errmsg(NULL), "second document at byte 2") != NULL);
    CHECK_EQ_INT(kd_json_diff("{", 1, "[1]", 3, &out), KD_INVALID);
    CHECK(strstr(kd_errmsg(NULL), "first document at byte 1") != NULL);
}

/* ---- out of memory ------------------------------------------------------------------ */

static const char medium_doc[] =
    "{\"name\":\"Alice \\u00e9\\ud83d\\ude00\",\"age\":30,\"tags\":[\"a\",\"b\\n\",\"c\"],"
    "\"nested\":{\"z\":[1,2.5,{\"deep\":[null,true,false,1e300]}],\"y\":{},\"x\":[]},"
    "\"list\":[{\"id\":1,\"v\":\"one\"},{\"id\":2,\"v\":\"two\"},{\"id\":3,\"v\":\"three\"}],"
    "\"b\":1,\"a\":2,\"n\":-0.125,\"s\":\"" "long string long string long string long string long string "
    "long string long string long string long string long string long string long string\"}";
static const char medium_doc2[] =
    "{\"name\":\"Bob\",\"age\":31,\"tags\":[\"a\",\"x\",\"b\\n\",\"c\"],"
    "\"nested\":{\"z\":[1,2.5,{\"deep\":[null,false,1e300]}],\"w\":1,\"x\":[]},"
    "\"list\":[{\"id\":1,\"v\":\"one\"},{\"id\":3,\"v\":\"three\"}],\"b\":1,\"a\":3}";

/* Runs op with the Nth allocation failing, for N = 1, 2, ... until it succeeds: every
** failure must be KD_NOMEM (leaks are caught by valgrind / ASan). Returns the number of
** failures seen, or -1 if a failure was not KD_NOMEM or it never succeeded. */
static int oom_loop(int (*op)(void)) {
    for (uint64_t n = 1; n < 100000; n++) {
        kd__alloc_fail_at(n);
        int rc = op();
        kd__alloc_fail_at(0);
        if (rc == KD_OK) return (int)n - 1;
        if (rc != KD_NOMEM) {
            fprintf(stderr, "  allocation %llu failed with rc %d\n", (unsigned long long)n, rc);
            return -1;
        }
    }
    return -1;
}

static int oom_parse(void) {
    kd_json *v = NULL;
    kd_json_err err;
    int rc = kd__json_parse(medium_doc, sizeof medium_doc - 1, &v, &err);
    if (rc == KD_NOMEM && (err.code != KD_NOMEM || v)) rc = -2;
    kd__json_free(v);
    return rc;
}
static int oom_canonical(void) {
    char *out = NULL;
    int rc = kd_json_canonical(medium_doc, sizeof medium_doc - 1, &out, NULL);
    if (rc == KD_OK && !strstr(out, "\"a\":2,\"age\":30")) rc = -3;
    kd_free(out);
    return rc;
}
static int oom_pretty(void) {
    char *out = NULL;
    int rc = kd_json_pretty(medium_doc, sizeof medium_doc - 1, &out, NULL);
    kd_free(out);
    return rc;
}
static int oom_diff(void) {
    char *out = NULL;
    int rc = kd_json_diff(medium_doc, sizeof medium_doc - 1, medium_doc2, sizeof medium_doc2 - 1, &out);
    kd_free(out);
    return rc;
}
static kd_json *oom_a, *oom_b, *oom_patch;
static int oom_apply(void) {
    kd_json *doc = kd__json_clone(oom_a);
    int rc = doc ? kd__json_patch_apply(&doc, oom_patch) : KD_NOMEM;
    if (rc == KD_OK && !kd__json_equal(doc, oom_b)) rc = -4;
    if (rc == KD_NOMEM && doc && !kd__json_equal(doc, oom_a)) rc = -5; /* unchanged on failure */
    kd__json_free(doc);
    return rc;
}
static int oom_apply_ops(void) {
    /* every operation kind, on a patch built by hand */
    kd_json *doc = kd__json_clone(oom_a);
    kd_json *p = parse("[{\"op\":\"copy\",\"from\":\"/list\",\"path\":\"/copy\"},"
                       "{\"op\":\"move\",\"from\":\"/nested/z\",\"path\":\"/moved\"},"
                       "{\"op\":\"add\",\"path\":\"/tags/1\",\"value\":{\"k\":[1,2]}},"
                       "{\"op\":\"add\",\"path\":\"/new\",\"value\":\"v\"},"
                       "{\"op\":\"replace\",\"path\":\"/age\",\"value\":[31]},"
                       "{\"op\":\"test\",\"path\":\"/age\",\"value\":[31]},"
                       "{\"op\":\"remove\",\"path\":\"/b\"}]");
    int rc = (doc && p) ? kd__json_patch_apply(&doc, p) : KD_NOMEM;
    kd__json_free(doc);
    kd__json_free(p);
    return rc;
}
static int oom_clone(void) {
    kd_json *c = kd__json_clone(oom_a);
    int rc = c ? (kd__json_equal(c, oom_a) ? KD_OK : -6) : KD_NOMEM;
    kd__json_free(c);
    return rc;
}
static int oom_canonicalize_buf(void) {
    kd_buf b = KD_BUF_INIT;
    kd_json_err err;
    int rc = kd__json_canonicalize(medium_doc, sizeof medium_doc - 1, &b, &err);
    if (rc == KD_NOMEM && err.code != KD_NOMEM) rc = -7;
    kd__buf_free(&b);
    return rc;
}

TEST(out_of_memory) {
    oom_a = parse(medium_doc);
    oom_b = parse(medium_doc2);
    kd_buf pb = KD_BUF_INIT;
    kd__json_diff(oom_a, oom_b, &pb);
    oom_patch = parse(pb.p);
    kd__buf_free(&pb);
    CHECK(oom_a && oom_b && oom_patch);
    CHECK(oom_loop(oom_parse) > 20);
    CHECK(oom_loop(oom_canonical) > 20);
    CHECK(oom_loop(oom_canonicalize_buf) > 20);
    CHECK(oom_loop(oom_pretty) > 20);
    CHECK(oom_loop(oom_diff) > 20);
    CHECK(oom_loop(oom_apply) > 10);
    CHECK(oom_loop(oom_apply_ops) > 10);
    CHECK(oom_loop(oom_clone) > 10);
    kd__json_free(oom_a);
    kd__json_free(oom_b);
    kd__json_free(oom_patch);
}

/* ---- scale ------------------------------------------------------------------------ */

/* Big inputs finish quickly: nothing in parse or write is quadratic. */
TEST(scale) {
    kd_buf b = KD_BUF_INIT;
    clock_t t0 = clock();
    /* 100k members in reverse order, 300k array elements, a 2 MB string full of escapes */
    kd__buf_putc(&b, '{');
    for (int i = 100000; i > 0; i--) kd__buf_printf(&b, "\"key%07d\":[%d,%d.5,\"v\"],", i, i, i);
    kd__buf_puts(&b, "\"arr\":[");
    for (int i = 0; i < 300000; i++) kd__buf_printf(&b, "%s%d", i ? "," : "", i * 7);
    kd__buf_puts(&b, "],\"str\":\"");
    for (int i = 0; i < 200000; i++) kd__buf_puts(&b, "ab\\n\\u00e9\\\"");
    kd__buf_puts(&b, "\"}");
    kd_json *v = NULL;
    CHECK_EQ_INT(kd__json_parse(b.p, b.len, &v, NULL), KD_OK);
    char *c = v ? write_canon(v) : NULL;
    char *c2 = c ? canon(c) : NULL;
    CHECK(c && c2 && strcmp(c, c2) == 0);
    CHECK(v && v->u.obj.n == 100002);
    kd_json *w = kd__json_clone(v);
    if (w) { /* one change deep inside: a one-op diff */
        kd_json *arr = (kd_json *)kd__json_get(w, "arr", 3);
        arr->u.arr.v[150000]->u.i = -1;
        kd_buf pb = KD_BUF_INIT;
        kd__json_diff(v, w, &pb);
        CHECK_EQ_STR(pb.p, "[{\"op\":\"replace\",\"path\":\"/arr/150000\",\"value\":-1}]");
        kd__buf_free(&pb);
    }
    /* ~0.3 s natively, ~15 s under valgrind; anything quadratic here takes hours */
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 60.0);
    kd__free(c);
    kd__free(c2);
    kd__json_free(v);
    kd__json_free(w);
    kd__buf_free(&b);
}

int main(void) {
    RUN(numbers);
    RUN(double_formatting);
    RUN(rejections);
    RUN(not_nul_terminated);
    RUN(depth_limit);
    RUN(escapes);
    RUN(key_order);
    RUN(pretty_output);
    RUN(equal_clone_get);
    RUN(diff_examples);
    RUN(patch_apply);
    RUN(patch_depth_limit);
    RUN(canonical_idempotent);
    RUN(diff_apply_property);
    RUN(diff_single_leaf);
    RUN(jansson_oracle);
    RUN(public_api);
    RUN(out_of_memory);
    RUN(scale);
    return t_done();
}
