/*
** json_parse.c — the strict RFC 8259 parser, and the tree helpers (free, get, equal,
** clone, key order) that the other json_*.c files share.
**
** May call: base (allocator, kd_buf, kd__err) and the C library.
**
** How it works: a recursive-descent parser over a byte span (never reads past len, needs
** no NUL terminator). Finished values are pushed on a scratch value stack and object
** members on a scratch member stack; when a container closes, its children are moved off
** the stack into one exactly-sized array. Everything on the stacks is owned by the parser,
** so one cleanup path frees a half-built tree on any error. Object members are sorted once
** when the object closes (skipped when already in order, as in canonical input) and
** duplicates are found as neighbours in the sorted run.
**
** Invariants: depth <= KD_JSON_MAX_DEPTH (an error, never a stack overflow); strings are
** valid UTF-8 (no overlongs, no encoded surrogates, nothing above U+10FFFF); \u escapes
** pair surrogates correctly; numbers follow the RFC grammar; a number whose exact decimal
** value is an integer within int64 becomes KD_JINT (decided from the digits, not through
** a double), others are read with strtod in the C locale, infinities are rejected, and a
** double that turns out integral within int64 (e.g. 1e-400 -> 0) becomes KD_JINT too.
*/
#include "json/json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- tree helpers ---------------------------------------------------------------- */

void kd__json_free(kd_json *v) {
    if (!v) return;
    switch (v->type) {
    case KD_JSTRING: kd__free(v->u.str.s); break;
    case KD_JARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++) kd__json_free(v->u.arr.v[i]);
        kd__free(v->u.arr.v);
        break;
    case KD_JOBJECT:
        for (size_t i = 0; i < v->u.obj.n; i++) {
            kd__free(v->u.obj.m[i].key);
            kd__json_free(v->u.obj.m[i].val);
        }
        kd__free(v->u.obj.m);
        break;
    default: break;
    }
    kd__free(v);
}

int kd__json_keycmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

const kd_json *kd__json_get(const kd_json *obj, const char *key, size_t klen) {
    if (!obj || obj->type != KD_JOBJECT) return NULL;
    size_t lo = 0, hi = obj->u.obj.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kd_jmember *m = &obj->u.obj.m[mid];
        int c = kd__json_keycmp(m->key, m->klen, key, klen);
        if (c == 0) return m->val;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* An int and a double are equal when they denote the same number. The parser never makes
** such a pair (integral doubles within int64 become ints), but trees built by hand might. */
static int int_equals_double(int64_t i, double d) {
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 0;
    return (int64_t)d == i && (double)(int64_t)d == d;
}

int kd__json_equal(const kd_json *a, const kd_json *b) {
    if (a == b) return 1;
    if (!a || !b) return 0;
    if (a->type != b->type) {
        if (a->type == KD_JINT && b->type == KD_JDOUBLE) return int_equals_double(a->u.i, b->u.d);
        if (a->type == KD_JDOUBLE && b->type == KD_JINT) return int_equals_double(b->u.i, a->u.d);
        return 0;
    }
    switch (a->type) {
    case KD_JNULL:
    case KD_JFALSE:
    case KD_JTRUE: return 1;
    case KD_JINT: return a->u.i == b->u.i;
    case KD_JDOUBLE: return a->u.d == b->u.d;
    case KD_JSTRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case KD_JARRAY:
        if (a->u.arr.n != b->u.arr.n) return 0;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!kd__json_equal(a->u.arr.v[i], b->u.arr.v[i])) return 0;
        return 1;
    case KD_JOBJECT:
        if (a->u.obj.n != b->u.obj.n) return 0;
        for (size_t i = 0; i < a->u.obj.n; i++) {
            const kd_jmember *x = &a->u.obj.m[i], *y = &b->u.obj.m[i];
            if (x->klen != y->klen || memcmp(x->key, y->key, x->klen) != 0) return 0;
            if (!kd__json_equal(x->val, y->val)) return 0;
        }
        return 1;
    }
    return 0;
}

kd_json *kd__json_clone(const kd_json *v) {
    if (!v) return NULL;
    kd_json *c = kd__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->type = v->type;
    int ok = 1;
    switch (v->type) {
    case KD_JINT: c->u.i = v->u.i; break;
    case KD_JDOUBLE: c->u.d = v->u.d; break;
    case KD_JSTRING:
        c->u.str.s = kd__strndup(v->u.str.s, v->u.str.len);
        c->u.str.len = v->u.str.len;
        ok = c->u.str.s != NULL;
        break;
    case KD_JARRAY:
        c->u.arr.v = kd__calloc(v->u.arr.n, sizeof *c->u.arr.v);
        if (!c->u.arr.v) { ok = 0; break; }
        for (size_t i = 0; i < v->u.arr.n && ok; i++) {
            c->u.arr.v[i] = kd__json_clone(v->u.arr.v[i]);
            c->u.arr.n = i + 1; /* so a failure frees what was made */
            ok = c->u.arr.v[i] != NULL;
        }
        break;
    case KD_JOBJECT:
        c->u.obj.m = kd__calloc(v->u.obj.n, sizeof *c->u.obj.m);
        if (!c->u.obj.m) { ok = 0; break; }
        for (size_t i = 0; i < v->u.obj.n && ok; i++) {
            kd_jmember *d = &c->u.obj.m[i];
            const kd_jmember *s = &v->u.obj.m[i];
            c->u.obj.n = i + 1;
            d->klen = s->klen;
            d->key = kd__strndup(s->key, s->klen);
            d->val = d->key ? kd__json_clone(s->val) : NULL;
            ok = d->key && d->val;
        }
        break;
    default: break;
    }
    if (!ok) {
        kd__json_free(c);
        return NULL;
    }
    return c;
}

/* ---- parser ---------------------------------------------------------------------- */

typedef struct pmember {
    char *key;
    size_t klen;
    kd_json *val;
    size_t pos; /* offset of the key's opening quote, for the duplicate-key error */
} pmember;

typedef struct parser {
    const unsigned char *s;
    size_t len;
    size_t pos;
    int depth;
    kd_json **vals; /* scratch stack of finished values */
    size_t nvals, capvals;
    pmember *mems;  /* scratch stack of object members */
    size_t nmems, capmems;
    kd_buf scratch; /* unescaped string bytes, number text for strtod */
    kd_json_err *err;
} parser;

/* Records the first error (later ones are consequences of it). */
static int perr(parser *p, int code, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(parser *p, int code, size_t pos, const char *fmt, ...) {
    if (p->err->code != KD_OK) return p->err->code;
    p->err->code = code;
    p->err->pos = pos;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
    return code;
}

static int nomem(parser *p) { return perr(p, KD_NOMEM, p->pos, "out of memory"); }

/* Describes the byte at pos for an error message. */
static const char *describe(parser *p, size_t pos, char tmp[16]) {
    if (pos >= p->len) return "end of input";
    unsigned char c = p->s[pos];
    if (c >= 0x20 && c < 0x7f) snprintf(tmp, 16, "'%c'", c);
    else snprintf(tmp, 16, "byte 0x%02x", c);
    return tmp;
}

static int unexpected(parser *p, const char *expected) {
    char tmp[16];
    if (p->pos >= p->len)
        return perr(p, KD_INVALID, p->pos, "unexpected end of input, expected %s", expected);
    return perr(p, KD_INVALID, p->pos, "unexpected %s, expected %s", describe(p, p->pos, tmp), expected);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        p->pos++;
    }
}

static int push_val(parser *p, kd_json *v) {
    if (p->nvals == p->capvals) {
        size_t cap = p->capvals ? p->capvals * 2 : 16;
        kd_json **n = kd__realloc(p->vals, cap * sizeof *n);
        if (!n) {
            kd__json_free(v);
            return nomem(p);
        }
        p->vals = n;
        p->capvals = cap;
    }
    p->vals[p->nvals++] = v;
    return KD_OK;
}

static kd_json *new_node(parser *p, kd_jtype t) {
    kd_json *v = kd__calloc(1, sizeof *v);
    if (!v) {
        nomem(p);
        return NULL;
    }
    v->type = t;
    return v;
}

static int push_scalar(parser *p, kd_jtype t) {
    kd_json *v = new_node(p, t);
    return v ? push_val(p, v) : KD_NOMEM;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of the \u escape whose backslash is at `at`. */
static int read_u4(parser *p, size_t at, unsigned *cp) {
    unsigned v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (at + 2 + i >= p->len) return perr(p, KD_INVALID, p->len, "truncated \\u escape");
        int h = hexval(p->s[at + 2 + i]);
        if (h < 0) return perr(p, KD_INVALID, at + 2 + i, "invalid hex digit in \\u escape");
        v = v << 4 | (unsigned)h;
    }
    *cp = v;
    return KD_OK;
}

static void put_utf8(kd_buf *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    kd__buf_append(b, u, n);
}

/* Length of the valid UTF-8 sequence (2..4 bytes) starting at s[i], or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t i, size_t len) {
    unsigned char c = s[i];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;      /* no overlongs */
        else if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else return 0;
    if (len - i < n) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if ((s[i + k] & 0xC0) != 0x80) return 0;
    return n;
}

/* Parses the string starting at the opening quote at p->pos into a fresh allocation
** (*out, *outlen; NUL-terminated). */
static int parse_string(parser *p, char **out, size_t *outlen) {
    size_t start = ++p->pos;
    size_t run = start; /* start of bytes not yet copied to scratch */
    int escaped = 0;
    const unsigned char *s = p->s;
    kd__buf_reset(&p->scratch);
    for (;;) {
        size_t i = p->pos;
        while (i < p->len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
        p->pos = i;
        if (i >= p->len) return perr(p, KD_INVALID, p->len, "unterminated string");
        unsigned char c = s[i];
        if (c == '"') break;
        if (c < 0x20) return perr(p, KD_INVALID, i, "unescaped control character 0x%02x in string", c);
        if (c >= 0x80) {
            size_t n = utf8_seq(s, i, p->len);
            if (!n) return perr(p, KD_INVALID, i, "invalid UTF-8 in string");
            p->pos = i + n;
            continue;
        }
        /* a backslash */
        if (!escaped) escaped = 1;
        kd__buf_append(&p->scratch, s + run, i - run);
        if (i + 1 >= p->len) return perr(p, KD_INVALID, p->len, "unterminated string");
        unsigned char e = s[i + 1];
        char simple = 0;
        switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default: return perr(p, KD_INVALID, i, "invalid escape sequence");
        }
        if (e != 'u') {
            kd__buf_putc(&p->scratch, simple);
            p->pos = i + 2;
        } else {
            unsigned cp;
            if (read_u4(p, i, &cp) != KD_OK) return KD_INVALID;
            p->pos = i + 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return perr(p, KD_INVALID, i, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->pos + 1 >= p->len || s[p->pos] != '\\' || s[p->pos + 1] != 'u')
                    return perr(p, KD_INVALID, i, "high surrogate not followed by a low surrogate");
                if (read_u4(p, p->pos, &lo) != KD_OK) return KD_INVALID;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return perr(p, KD_INVALID, i, "high surrogate not followed by a low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            }
            put_utf8(&p->scratch, cp);
        }
        run = p->pos;
    }
    /* p->pos is at the closing quote */
    char *str;
    size_t n;
    if (!escaped) {
        n = p->pos - start;
        str = kd__strndup((const char *)s + start, n);
    } else {
        kd__buf_append(&p->scratch, s + run, p->pos - run);
        if (p->scratch.oom) return nomem(p);
        n = p->scratch.len;
        str = kd__strndup(p->scratch.p, n);
    }
    if (!str) return nomem(p);
    p->pos++;
    *out = str;
    *outlen = n;
    return KD_OK;
}

static int parse_string_value(parser *p) {
    char *s;
    size_t n;
    int rc = parse_string(p, &s, &n);
    if (rc != KD_OK) return rc;
    kd_json *v = new_node(p, KD_JSTRING);
    if (!v) {
        kd__free(s);
        return KD_NOMEM;
    }
    v->u.str.s = s;
    v->u.str.len = n;
    return push_val(p, v);
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Decides from the digits whether the number is an integer within int64. int digits are
** s[ip..ie), fraction digits s[fp..fe), exp the (saturated) exponent. */
static int exact_int64(const unsigned char *s, size_t ip, size_t ie, size_t fp, size_t fe,
                       int64_t exp, int neg, int64_t *out) {
    /* view the digits as one sequence D = int ++ frac; value = D * 10^(exp - nfrac) */
    size_t nint = ie - ip, nfrac = fe - fp, nd = nint + nfrac;
#define DIG(k) ((k) < nint ? s[ip + (k)] : s[fp + (k) - nint])
    size_t first = 0;
    while (first < nd && DIG(first) == '0') first++;
    if (first == nd) {
        *out = 0; /* zero, whatever the sign and exponent */
        return 1;
    }
    size_t last = nd - 1;
    while (DIG(last) == '0') last--;
    /* value = D[first..last] * 10^e2 */
    int64_t e2 = exp - (int64_t)nfrac + (int64_t)(nd - 1 - last);
    if (e2 < 0) return 0; /* the last significant digit is a fraction digit */
    int64_t ndig = (int64_t)(last - first + 1);
    if (ndig + e2 > 19) return 0; /* >= 10^19 > 2^63 */
    uint64_t u = 0;
    for (size_t k = first; k <= last; k++) u = u * 10 + (uint64_t)(DIG(k) - '0');
    for (int64_t k = 0; k < e2; k++) u *= 10; /* at most 19 digits: fits in uint64 */
#undef DIG
    if (neg) {
        if (u > (uint64_t)1 << 63) return 0;
        *out = u == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)u;
    }
    return 1;
}

static int parse_number(parser *p) {
    const unsigned char *s = p->s;
    size_t start = p->pos, i = p->pos;
    int neg = 0;
    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->len || !is_digit(s[i])) {
        p->pos = i;
        return unexpected(p, "a digit");
    }
    size_t ip = i;
    if (s[i] == '0') {
        i++;
        if (i < p->len && is_digit(s[i])) return perr(p, KD_INVALID, i - 1, "leading zeros are not allowed");
    } else {
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t ie = i, fp = i, fe = i;
    if (i < p->len && s[i] == '.') {
        i++;
        fp = i;
        while (i < p->len && is_digit(s[i])) i++;
        fe = i;
        if (fe == fp) {
            p->pos = i;
            return unexpected(p, "a digit after '.'");
        }
    }
    int64_t exp = 0;
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        if (i >= p->len || !is_digit(s[i])) {
            p->pos = i;
            return unexpected(p, "a digit in the exponent");
        }
        while (i < p->len && is_digit(s[i])) {
            if (exp < 1000000000) exp = exp * 10 + (s[i] - '0'); /* saturate: the value is 0 or inf anyway */
            i++;
        }
        if (eneg) exp = -exp;
    }
    p->pos = i;

    int64_t iv;
    kd_json *v;
    if (exact_int64(s, ip, ie, fp, fe, exp, neg, &iv)) {
        v = new_node(p, KD_JINT);
        if (!v) return KD_NOMEM;
        v->u.i = iv;
        return push_val(p, v);
    }
    kd__buf_reset(&p->scratch);
    kd__buf_append(&p->scratch, s + start, i - start);
    if (p->scratch.oom) return nomem(p);
    /* strtod in the C locale, whatever the application set: the decimal point is '.' */
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale) return nomem(p);
    char *end;
    errno = 0;
    double d = strtod_l(p->scratch.p, &end, c_locale);
    int range = errno == ERANGE;
    freelocale(c_locale);
    if (end != p->scratch.p + (i - start)) return perr(p, KD_INVALID, start, "malformed number");
    if (range && (d == HUGE_VAL || d == -HUGE_VAL)) return perr(p, KD_INVALID, start, "number out of range");
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(int64_t)d == d) {
        v = new_node(p, KD_JINT); /* e.g. 1e-400 or 0.99999999999999999999 */
        if (!v) return KD_NOMEM;
        v->u.i = (int64_t)d;
    } else {
        v = new_node(p, KD_JDOUBLE);
        if (!v) return KD_NOMEM;
        v->u.d = d;
    }
    return push_val(p, v);
}

static int parse_literal(parser *p, const char *word, kd_jtype t) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return perr(p, KD_INVALID, p->pos, "invalid literal (expected %s)", word);
    p->pos += n;
    return push_scalar(p, t);
}

static int parse_value(parser *p);

static int parse_array(parser *p) {
    size_t open = p->pos;
    if (++p->depth > KD_JSON_MAX_DEPTH)
        return perr(p, KD_INVALID, open, "nesting deeper than %d levels", KD_JSON_MAX_DEPTH);
    size_t base = p->nvals;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
    } else {
        for (;;) {
            int rc = parse_value(p);
            if (rc != KD_OK) return rc;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                skip_ws(p);
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == ']') {
                p->pos++;
                break;
            }
            return unexpected(p, "',' or ']'");
        }
    }
    p->depth--;
    size_t n = p->nvals - base;
    kd_json **items = n ? kd__malloc(n * sizeof *items) : NULL;
    kd_json *v = (items || !n) ? new_node(p, KD_JARRAY) : NULL;
    if (!v) {
        kd__free(items);
        return nomem(p);
    }
    if (n) memcpy(items, p->vals + base, n * sizeof *items);
    v->u.arr.v = items;
    v->u.arr.n = n;
    p->nvals = base; /* the array owns them now */
    return push_val(p, v);
}

static int pmember_cmp(const void *x, const void *y) {
    const pmember *a = x, *b = y;
    int c = kd__json_keycmp(a->key, a->klen, b->key, b->klen);
    if (c) return c;
    return a->pos < b->pos ? -1 : a->pos > b->pos; /* equal keys: in text order */
}

/* Sorts the members of the object being closed and reports the first duplicate key in
** text order. */
static int sort_members(parser *p, pmember *m, size_t n) {
    int sorted = 1;
    for (size_t i = 1; i < n && sorted; i++)
        if (kd__json_keycmp(m[i - 1].key, m[i - 1].klen, m[i].key, m[i].klen) >= 0) sorted = 0;
    if (sorted) return KD_OK;
    qsort(m, n, sizeof *m, pmember_cmp);
    size_t dup = SIZE_MAX;
    for (size_t i = 1; i < n; i++)
        if (m[i - 1].klen == m[i].klen && memcmp(m[i - 1].key, m[i].key, m[i].klen) == 0 && m[i].pos < dup)
            dup = m[i].pos; /* the second occurrence: equal keys are sorted by position */
    if (dup != SIZE_MAX) return perr(p, KD_INVALID, dup, "duplicate object key");
    return KD_OK;
}

static int parse_object(parser *p) {
    size_t open = p->pos;
    if (++p->depth > KD_JSON_MAX_DEPTH)
        return perr(p, KD_INVALID, open, "nesting deeper than %d levels", KD_JSON_MAX_DEPTH);
    size_t base = p->nmems;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
    } else {
        for (;;) {
            if (p->pos >= p->len || p->s[p->pos] != '"') return unexpected(p, "a string (object key)");
            if (p->nmems == p->capmems) {
                size_t cap = p->capmems ? p->capmems * 2 : 16;
                pmember *nm = kd__realloc(p->mems, cap * sizeof *nm);
                if (!nm) return nomem(p);
                p->mems = nm;
                p->capmems = cap;
            }
            pmember *m = &p->mems[p->nmems];
            m->pos = p->pos;
            m->val = NULL;
            int rc = parse_string(p, &m->key, &m->klen);
            if (rc != KD_OK) return rc;
            p->nmems++;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return unexpected(p, "':'");
            p->pos++;
            skip_ws(p);
            rc = parse_value(p);
            if (rc != KD_OK) return rc;
            /* the member may have moved if a nested object grew the stack */
            p->mems[p->nmems - 1].val = p->vals[--p->nvals];
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                skip_ws(p);
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == '}') {
                p->pos++;
                break;
            }
            return unexpected(p, "',' or '}'");
        }
    }
    p->depth--;
    size_t n = p->nmems - base;
    if (n > 1) {
        int rc = sort_members(p, p->mems + base, n);
        if (rc != KD_OK) return rc;
    }
    kd_jmember *members = n ? kd__malloc(n * sizeof *members) : NULL;
    kd_json *v = (members || !n) ? new_node(p, KD_JOBJECT) : NULL;
    if (!v) {
        kd__free(members);
        return nomem(p);
    }
    for (size_t k = 0; k < n; k++) {
        members[k].key = p->mems[base + k].key;
        members[k].klen = p->mems[base + k].klen;
        members[k].val = p->mems[base + k].val;
    }
    v->u.obj.m = members;
    v->u.obj.n = n;
    p->nmems = base; /* the object owns them now */
    return push_val(p, v);
}

/* Parses one value at p->pos (whitespace already skipped) and pushes it on the stack. */
static int parse_value(parser *p) {
    if (p->pos >= p->len) return unexpected(p, "a JSON value");
    switch (p->s[p->pos]) {
    case '{': return parse_object(p);
    case '[': return parse_array(p);
    case '"': return parse_string_value(p);
    case 't': return parse_literal(p, "true", KD_JTRUE);
    case 'f': return parse_literal(p, "false", KD_JFALSE);
    case 'n': return parse_literal(p, "null", KD_JNULL);
    default:
        if (p->s[p->pos] == '-' || is_digit(p->s[p->pos])) return parse_number(p);
        return unexpected(p, "a JSON value");
    }
}

int kd__json_parse(const char *text, size_t len, kd_json **out, kd_json_err *err) {
    kd_json_err local;
    parser p;
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)text;
    p.len = text ? len : 0;
    p.err = err ? err : &local;
    p.err->code = KD_OK;
    p.err->pos = 0;
    p.err->msg[0] = 0;
    p.scratch = (kd_buf)KD_BUF_INIT;
    *out = NULL;

    skip_ws(&p);
    int rc = parse_value(&p);
    if (rc == KD_OK) {
        skip_ws(&p);
        if (p.pos < p.len) rc = unexpected(&p, "end of input after the JSON value");
    }
    if (rc == KD_OK) {
        *out = p.vals[0];
        p.nvals = 0;
    }
    for (size_t i = 0; i < p.nvals; i++) kd__json_free(p.vals[i]);
    for (size_t i = 0; i < p.nmems; i++) {
        kd__free(p.mems[i].key);
        kd__json_free(p.mems[i].val);
    }
    kd__free(p.vals);
    kd__free(p.mems);
    kd__buf_free(&p.scratch);
    if (rc == KD_NOMEM) kd__err(KD_NOMEM, "out of memory while parsing JSON");
    else if (rc != KD_OK) kd__err(rc, "invalid JSON at byte %zu: %s", p.err->pos, p.err->msg);
    return rc;
}
