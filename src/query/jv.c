/*
** jv.c — a cursor over canonical JSON text (query/jv.h): type of a value, member and
** element lookup, iteration, numbers, string bytes, equality and the sort order.
**
** May call: base and the C library (strtod_l for the few doubles the fast path cannot
** read exactly).
**
** Invariants: every read is bounded by the cursor's own length (n), never by a NUL or by
** the text being well formed; a value whose text does not scan ends the walk and reads as
** MISSING. Nothing here allocates except kd__qv_str for strings holding escapes. Skipping
** a nested value is a flat loop with a bracket counter (no recursion), so deep or hostile
** text cannot exhaust the stack; kd__qv_cmp recurses, but only to QV_MAX_DEPTH levels and
** then falls back to comparing the texts.
*/
#include "query/jv.h"

#include <locale.h>
#include <stdlib.h>

#define BAD SIZE_MAX
#define QV_MAX_DEPTH 600

static const kd_qv qv_missing = {KD_QV_MISSING, NULL, 0};

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_numchar(unsigned char c) {
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* The type of the value whose first byte is c; 0 when no value starts with c. */
static int type_of(unsigned char c, kd_qvtype *t) {
    switch (c) {
    case '{': *t = KD_QV_OBJ; return 1;
    case '[': *t = KD_QV_ARR; return 1;
    case '"': *t = KD_QV_STR; return 1;
    case 't': *t = KD_QV_TRUE; return 1;
    case 'f': *t = KD_QV_FALSE; return 1;
    case 'n': *t = KD_QV_NULL; return 1;
    default:
        if (c == '-' || is_digit(c)) {
            *t = KD_QV_NUM;
            return 1;
        }
        return 0;
    }
}

/* One past the closing quote of the string whose opening quote is s[i], or BAD when it
** does not close before lim. memchr finds the candidate quotes (strings are most of a
** document's bytes); a quote preceded by an odd run of backslashes is escaped. */
static size_t skip_string(const unsigned char *s, size_t i, size_t lim) {
    for (i++; i < lim;) {
        const unsigned char *q = memchr(s + i, '"', lim - i);
        if (!q) return BAD;
        size_t e = (size_t)(q - s), b = e;
        while (b > i && s[b - 1] == '\\') b--;
        if ((e - b) % 2 == 0) return e + 1;
        i = e + 1;
    }
    return BAD;
}

/* Bytes that matter when skipping a container: 1 quote, 2 opening, 3 closing bracket. */
static const unsigned char skip_class[256] = {['"'] = 1, ['['] = 2, ['{'] = 2, [']'] = 3, ['}'] = 3};

static size_t skip_word(const unsigned char *s, size_t i, size_t lim, const char *w, size_t n) {
    return lim - i >= n && memcmp(s + i, w, n) == 0 ? i + n : BAD;
}

/* One past the value starting at s[i], or BAD. Containers are skipped by counting
** brackets outside strings; their inner structure is checked only when walked. */
static size_t skip_value(const unsigned char *s, size_t i, size_t lim) {
    if (i >= lim) return BAD;
    switch (s[i]) {
    case '"': return skip_string(s, i, lim);
    case 't': return skip_word(s, i, lim, "true", 4);
    case 'f': return skip_word(s, i, lim, "false", 5);
    case 'n': return skip_word(s, i, lim, "null", 4);
    case '[':
    case '{': {
        size_t depth = 0;
        for (; i < lim; i++) {
            switch (skip_class[s[i]]) {
            case 1:
                i = skip_string(s, i, lim);
                if (i == BAD) return BAD;
                i--; /* the loop steps past the closing quote */
                break;
            case 2: depth++; break;
            case 3:
                if (--depth == 0) return i + 1;
                break;
            default: break;
            }
        }
        return BAD;
    }
    default:
        if (s[i] != '-' && !is_digit(s[i])) return BAD;
        for (i++; i < lim && is_numchar(s[i]); i++) {}
        return i;
    }
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

kd_qv kd__qv_doc(const char *text, size_t len) {
    if (!text) return qv_missing;
    while (len && is_ws(*text)) { text++; len--; }
    while (len && is_ws(text[len - 1])) len--;
    kd_qv v = {KD_QV_MISSING, text, len};
    if (!len || !type_of((unsigned char)text[0], &v.t)) return qv_missing;
    const unsigned char *s = (const unsigned char *)text;
    if (v.t == KD_QV_OBJ || v.t == KD_QV_ARR) {
        /* the closing bracket is enough here: the inside is checked as it is walked */
        if (len < 2 || s[len - 1] != (v.t == KD_QV_OBJ ? '}' : ']')) return qv_missing;
        return v;
    }
    return skip_value(s, 0, len) == len ? v : qv_missing;
}

int kd__qv_next(const kd_qv *v, size_t *pos, kd_qv *key, kd_qv *elem) {
    if ((v->t != KD_QV_ARR && v->t != KD_QV_OBJ) || v->n < 2) return 0;
    const unsigned char *s = (const unsigned char *)v->p;
    size_t lim = v->n - 1; /* the closing bracket */
    size_t i = *pos;
    if (i == 0) {
        i = 1;
        if (i == lim) return 0;
    } else {
        if (i >= lim) return 0;
        if (s[i] != ',') goto bad;
        i++;
    }
    if (v->t == KD_QV_OBJ) {
        if (i >= lim || s[i] != '"') goto bad;
        size_t ke = skip_string(s, i, lim);
        if (ke == BAD || ke >= lim || s[ke] != ':') goto bad;
        if (key) *key = (kd_qv){KD_QV_STR, v->p + i, ke - i};
        i = ke + 1;
    }
    kd_qvtype t;
    if (i >= lim || !type_of(s[i], &t)) goto bad;
    size_t e = skip_value(s, i, lim);
    if (e == BAD) goto bad;
    *elem = (kd_qv){t, v->p + i, e - i};
    *pos = e;
    return 1;
bad:
    *pos = v->n; /* stays at the end: a malformed container has no more elements */
    return 0;
}

/* ---- strings --------------------------------------------------------------------- */

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at s[i..i+4), or -1. */
static long read_u4(const unsigned char *s, size_t i, size_t lim) {
    if (lim - i < 4 || i > lim) return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(s[i + k]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t put_utf8(unsigned char *u, unsigned long cp) {
    if (cp < 0x80) { u[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | cp >> 6); u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | cp >> 12); u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (unsigned char)(0xF0 | cp >> 18); u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape whose backslash is s[*i] into out (1..4 bytes) and moves *i past it.
** Malformed escapes decode to something deterministic (the escaped byte, or U+FFFD for a
** lone surrogate); a truncated one gives 0 bytes and moves *i to lim. */
static size_t decode_escape(const unsigned char *s, size_t *i, size_t lim, unsigned char out[4]) {
    size_t k = *i + 1;
    if (k >= lim) {
        *i = lim;
        return 0;
    }
    unsigned char e = s[k];
    *i = k + 1;
    switch (e) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: out[0] = e; return 1; /* \" \\ \/ and, leniently, anything else */
    }
    long cp = read_u4(s, k + 1, lim);
    if (cp < 0) {
        *i = lim;
        return 0;
    }
    *i = k + 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = (*i + 1 < lim && s[*i] == '\\' && s[*i + 1] == 'u') ? read_u4(s, *i + 2, lim) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *i += 6;
            return put_utf8(out, 0x10000 + (((unsigned long)cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00));
        }
        cp = 0xFFFD;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        cp = 0xFFFD;
    }
    return put_utf8(out, (unsigned long)cp);
}

/* A stream of the decoded bytes of a string's text (quotes excluded). */
typedef struct sdec {
    const unsigned char *s;
    size_t i, lim;
    unsigned char buf[4];
    size_t nb, ib;
} sdec;

static void sdec_init(sdec *d, const kd_qv *v) {
    d->s = (const unsigned char *)v->p;
    d->i = 1;
    d->lim = v->n >= 2 ? v->n - 1 : 1;
    d->nb = d->ib = 0;
}

/* The next byte, or -1 at the end. */
static int sdec_byte(sdec *d) {
    while (d->ib == d->nb) {
        if (d->i >= d->lim) return -1;
        if (d->s[d->i] != '\\') return d->s[d->i++];
        d->nb = decode_escape(d->s, &d->i, d->lim, d->buf);
        d->ib = 0;
    }
    return d->buf[d->ib++];
}

static int has_escape(const kd_qv *v) { return v->n > 2 && memchr(v->p + 1, '\\', v->n - 2) != NULL; }

/* memcmp order, then the shorter first (the order of object keys and of strings). */
static int bytes_cmp(const void *a, size_t an, const void *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

/* Orders the decoded bytes of string value a against raw bytes b. */
static int str_cmp_raw(const kd_qv *a, const char *b, size_t bn) {
    if (!has_escape(a)) return bytes_cmp(a->p + 1, a->n - 2, b, bn);
    sdec d;
    sdec_init(&d, a);
    const unsigned char *u = (const unsigned char *)b;
    for (size_t k = 0;; k++) {
        int c = sdec_byte(&d);
        if (c < 0) return k < bn ? -1 : 0;
        if (k == bn) return 1;
        if (c != u[k]) return c < u[k] ? -1 : 1;
    }
}

/* Orders the decoded bytes of two string values. */
static int str_cmp(const kd_qv *a, const kd_qv *b) {
    if (!has_escape(a) && !has_escape(b)) return bytes_cmp(a->p + 1, a->n - 2, b->p + 1, b->n - 2);
    sdec x, y;
    sdec_init(&x, a);
    sdec_init(&y, b);
    for (;;) {
        int c = sdec_byte(&x), d = sdec_byte(&y);
        if (c != d) return c < d ? -1 : 1;
        if (c < 0) return 0;
    }
}

int kd__qv_str(const kd_qv *v, kd_buf *tmp, const char **s, size_t *len) {
    if (v->t != KD_QV_STR || v->n < 2) {
        *s = "";
        *len = 0;
        return KD_OK;
    }
    if (!has_escape(v)) {
        *s = v->p + 1;
        *len = v->n - 2;
        return KD_OK;
    }
    kd__buf_reset(tmp);
    const unsigned char *u = (const unsigned char *)v->p;
    size_t i = 1, lim = v->n - 1;
    while (i < lim) {
        const unsigned char *bs = memchr(u + i, '\\', lim - i);
        size_t run = bs ? (size_t)(bs - u) : lim;
        kd__buf_append(tmp, u + i, run - i);
        i = run;
        if (i < lim) {
            unsigned char out[4];
            size_t n = decode_escape(u, &i, lim, out);
            kd__buf_append(tmp, out, n);
        }
    }
    if (!tmp->p) kd__buf_append(tmp, "", 0); /* only when the text was "\" alone */
    if (tmp->oom) return KD_NOMEM;
    *s = tmp->p;
    *len = tmp->len;
    return KD_OK;
}

/* ---- lookup ---------------------------------------------------------------------- */

kd_qv kd__qv_member(const kd_qv *v, const char *key, size_t klen) {
    /* The hot path of every query: one walk over the members, comparing each raw key
    ** with the wanted bytes and deciding by the raw bytes whenever the key holds no
    ** escape (then raw bytes are the key's bytes). */
    if (v->t != KD_QV_OBJ || v->n < 2) return qv_missing;
    const unsigned char *s = (const unsigned char *)v->p;
    size_t lim = v->n - 1, i = 1;
    while (i < lim) {
        if (s[i] != '"') return qv_missing;
        size_t ke = skip_string(s, i, lim);
        if (ke == BAD || ke >= lim || s[ke] != ':') return qv_missing;
        size_t vs = ke + 1;
        kd_qvtype t;
        if (vs >= lim || !type_of(s[vs], &t)) return qv_missing;
        size_t ve = skip_value(s, vs, lim);
        if (ve == BAD) return qv_missing;
        const unsigned char *kp = s + i + 1;
        size_t kn = ke - i - 2;
        int c;
        if (memchr(kp, '\\', kn)) { /* escaped: raw bytes say nothing; decide on decoded ones */
            kd_qv k = {KD_QV_STR, (const char *)kp - 1, kn + 2};
            c = str_cmp_raw(&k, key, klen);
        } else {
            c = bytes_cmp(kp, kn, key, klen);
        }
        if (c == 0) return (kd_qv){t, v->p + vs, ve - vs};
        if (c > 0) return qv_missing; /* sorted keys: it cannot come later */
        if (ve == lim) break;
        if (s[ve] != ',') return qv_missing;
        i = ve + 1;
    }
    return qv_missing;
}

kd_qv kd__qv_index(const kd_qv *v, uint64_t i) {
    if (v->t != KD_QV_ARR) return qv_missing;
    size_t pos = 0;
    kd_qv e;
    for (uint64_t k = 0; kd__qv_next(v, &pos, NULL, &e); k++)
        if (k == i) return e;
    return qv_missing;
}

/* ---- numbers --------------------------------------------------------------------- */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A double from number text. Most canonical doubles have at most 15 digits and a small
** exponent: then mantissa and power of ten are exact doubles and one IEEE division or
** multiplication rounds correctly (Clinger's fast path). Others go through strtod_l in
** the C locale. */
static double read_double(const unsigned char *s, size_t n) {
    size_t i = 0;
    int neg = 0, slow = 0;
    uint64_t m = 0;
    int64_t e10 = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    for (; i < n && is_digit(s[i]); i++) {
        if (m >= 100000000000000000ull) slow = 1;
        else m = m * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit(s[i]); i++) {
            if (m >= 100000000000000000ull) slow = 1;
            else { m = m * 10 + (uint64_t)(s[i] - '0'); e10--; }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        int64_t e = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        for (; i < n && is_digit(s[i]); i++)
            if (e < 100000) e = e * 10 + (s[i] - '0');
        e10 += eneg ? -e : e;
    }
    if (i != n) slow = 1;
    if (!slow && m <= ((uint64_t)1 << 53) && e10 >= -22 && e10 <= 22) {
        double d = (double)m;
        d = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
        return neg ? -d : d;
    }
    /* Canonical numbers are at most 25 bytes; longer (non-canonical) text is cut short,
    ** which may round it but never reads past it. */
    char tmp[512];
    size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, s, k);
    tmp[k] = 0;
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    double d = c_locale ? strtod_l(tmp, NULL, c_locale) : strtod(tmp, NULL);
    if (c_locale) freelocale(c_locale);
    return d;
}

kd_qnum kd__qv_num(const kd_qv *v) {
    kd_qnum r = {1, 0, 0.0};
    if (v->t != KD_QV_NUM || v->n == 0) return r;
    const unsigned char *s = (const unsigned char *)v->p;
    size_t n = v->n, i = s[0] == '-';
    uint64_t u = 0;
    int fits = i < n;
    for (size_t k = i; k < n && fits; k++) {
        if (!is_digit(s[k]) || u > (UINT64_MAX - 9) / 10) fits = 0;
        else u = u * 10 + (uint64_t)(s[k] - '0');
    }
    if (fits && !i && u <= (uint64_t)INT64_MAX) {
        r.i = (int64_t)u;
        r.d = (double)r.i;
        return r;
    }
    if (fits && i && u <= (uint64_t)1 << 63) {
        r.i = u == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)u;
        r.d = (double)r.i;
        return r;
    }
    r.is_int = 0;
    r.d = read_double(s, n);
    return r;
}

/* Orders an int64 against a double exactly: no conversion of i to double, which would
** round above 2^53 (2^53 + 1 would compare equal to 2^53). */
static int int_double_cmp(int64_t i, double d) {
    if (d != d) return -1; /* NaN cannot come from JSON; keep the order total anyway */
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    int64_t t = (int64_t)d; /* truncates toward zero; exact since |d| < 2^63 */
    if (i != t) return i < t ? -1 : 1;
    double frac = d - (double)t; /* exact: d and t share their integer part */
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

int kd__qnum_cmp(const kd_qnum *a, const kd_qnum *b) {
    if (a->is_int && b->is_int) return a->i < b->i ? -1 : a->i > b->i;
    if (a->is_int) return int_double_cmp(a->i, b->d);
    if (b->is_int) return -int_double_cmp(b->i, a->d);
    if (a->d < b->d) return -1;
    if (a->d > b->d) return 1;
    if (a->d == b->d) return 0;
    return (a->d != a->d) - (b->d != b->d); /* NaN last */
}

/* ---- equality and order ---------------------------------------------------------- */

int kd__qv_equal(const kd_qv *a, const kd_qv *b) {
    if (a->t != b->t) return 0;
    if (a->t == KD_QV_MISSING) return 1;
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

static int text_cmp(const kd_qv *a, const kd_qv *b) { return bytes_cmp(a->p, a->n, b->p, b->n); }

static int cmp_rec(const kd_qv *a, const kd_qv *b, int depth) {
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    int c = 0;
    switch (a->t) {
    case KD_QV_NUM: {
        kd_qnum x = kd__qv_num(a), y = kd__qv_num(b);
        c = kd__qnum_cmp(&x, &y);
        break;
    }
    case KD_QV_STR: c = str_cmp(a, b); break;
    case KD_QV_ARR:
    case KD_QV_OBJ: {
        if (depth >= QV_MAX_DEPTH) break;
        int obj = a->t == KD_QV_OBJ;
        size_t pa = 0, pb = 0;
        kd_qv ka, kb, ea, eb;
        for (;;) {
            int ha = kd__qv_next(a, &pa, &ka, &ea), hb = kd__qv_next(b, &pb, &kb, &eb);
            if (!ha || !hb) {
                c = ha - hb; /* a shorter prefix first */
                break;
            }
            if (obj && (c = str_cmp(&ka, &kb)) != 0) break;
            if ((c = cmp_rec(&ea, &eb, depth + 1)) != 0) break;
        }
        break;
    }
    default: break; /* null, false, true, missing: the type says it all */
    }
    if (c) return c;
    /* Equal by value: in canonical text that means equal text. Otherwise (non-canonical
    ** spellings, malformed text, too deep) the text decides, so 0 still means equal. */
    return text_cmp(a, b);
}

int kd__qv_cmp(const kd_qv *a, const kd_qv *b) { return cmp_rec(a, b, 0); }
