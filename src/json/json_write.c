/*
** json_write.c — the canonical and pretty JSON writers.
**
** May call: base (kd_buf) and the C library.
**
** Invariants: output of kd__json_write_canonical parses back (kd__json_parse) to an equal
** tree and writes back to the same bytes. For that: strings are escaped in exactly one way
** (see json.h); an integral double within int64 is written as an integer; every other
** double in the shortest "%.{p}g" (p = 1..17) that strtod reads back to the same double,
** lengthened if that text would denote an int64 integer (it would read back as KD_JINT).
** That last rule is a guard: only doubles of magnitude >= 2^63 could be concerned, and the
** closest one, 2^63, prints as 9.223372036854776e+18, already above INT64_MAX. Number
** formatting and reading happen in the C locale whatever the application's locale is.
** Out of memory is reported only through kd_buf.oom: writers never fail half-way silently.
*/
#include "json/json.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void write_int(kd_buf *out, int64_t i) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)i);
    kd__buf_append(out, tmp, (size_t)n);
}

/* 1 when the "%g" text t (sign, digits, optional '.', optional exponent) denotes an
** integer within int64, i.e. would be read back as KD_JINT. */
static int text_is_int64(const char *t) {
    int neg = *t == '-';
    if (neg) t++;
    char dig[40];
    size_t nd = 0, nfrac = 0;
    int in_frac = 0;
    for (; *t && *t != 'e' && *t != 'E'; t++) {
        if (*t == '.') { in_frac = 1; continue; }
        if (*t < '0' || *t > '9' || nd >= sizeof dig) return 0;
        dig[nd++] = *t;
        nfrac += (size_t)in_frac;
    }
    long exp = (*t == 'e' || *t == 'E') ? strtol(t + 1, NULL, 10) : 0;
    while (nd > 0 && dig[nd - 1] == '0') { nd--; exp++; }           /* drop trailing zeros */
    size_t first = 0;
    while (first < nd && dig[first] == '0') first++;
    if (first == nd) return 1;                                       /* zero */
    long e2 = exp - (long)nfrac;
    if (e2 < 0) return 0;
    if ((long)(nd - first) + e2 > 19) return 0;
    uint64_t u = 0;
    for (size_t k = first; k < nd; k++) u = u * 10 + (uint64_t)(dig[k] - '0');
    for (long k = 0; k < e2; k++) u *= 10;
    return neg ? u <= (uint64_t)1 << 63 : u <= (uint64_t)INT64_MAX;
}

static int roundtrips(double d, int prec, char *tmp, size_t cap, locale_t c_locale) {
    snprintf(tmp, cap, "%.*g", prec, d);
    return strtod_l(tmp, NULL, c_locale) == d;
}

/* Writes a finite double in the canonical form described at the top of this file. */
static void write_double(kd_buf *out, double d) {
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(int64_t)d == d) {
        write_int(out, (int64_t)d);
        return;
    }
    char tmp[48];
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale) {
        out->oom = 1;
        return;
    }
    locale_t old = uselocale(c_locale);
    int prec;
    if (fabs(d) >= DBL_MIN) {
        /* For a normal double, 15-digit decimals are sparser than doubles, so if any p <= 15
        ** round-trips, "%.15g" (which drops trailing zeros) prints the same text as the
        ** shortest p does; only 16 and 17 remain to try. */
        for (prec = 15; prec < 17 && !roundtrips(d, prec, tmp, sizeof tmp, c_locale); prec++) {}
    } else {
        for (prec = 1; prec < 17 && !roundtrips(d, prec, tmp, sizeof tmp, c_locale); prec++) {}
    }
    if (prec == 17) snprintf(tmp, sizeof tmp, "%.17g", d);
    if (fabs(d) >= 9223372036854775808.0) {
        while (text_is_int64(tmp) && prec < 40) snprintf(tmp, sizeof tmp, "%.*g", ++prec, d);
    }
    uselocale(old);
    freelocale(c_locale);
    kd__buf_puts(out, tmp);
}

static const char hexdig[] = "0123456789abcdef";

void kd__json_write_string(kd_buf *out, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    kd__buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        kd__buf_append(out, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hexdig[c >> 4]; esc[5] = hexdig[c & 15];
            n = 6;
        }
        kd__buf_append(out, esc, n);
    }
    kd__buf_append(out, s + run, len - run);
    kd__buf_putc(out, '"');
}

static void write_scalar(const kd_json *v, kd_buf *out) {
    switch (v->type) {
    case KD_JNULL: kd__buf_append(out, "null", 4); break;
    case KD_JFALSE: kd__buf_append(out, "false", 5); break;
    case KD_JTRUE: kd__buf_append(out, "true", 4); break;
    case KD_JINT: write_int(out, v->u.i); break;
    case KD_JDOUBLE: write_double(out, v->u.d); break;
    case KD_JSTRING: kd__json_write_string(out, v->u.str.s, v->u.str.len); break;
    default: break;
    }
}

void kd__json_write_canonical(const kd_json *v, kd_buf *out) {
    if (out->oom) return;
    switch (v->type) {
    case KD_JARRAY:
        kd__buf_putc(out, '[');
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i) kd__buf_putc(out, ',');
            kd__json_write_canonical(v->u.arr.v[i], out);
        }
        kd__buf_putc(out, ']');
        break;
    case KD_JOBJECT:
        kd__buf_putc(out, '{');
        for (size_t i = 0; i < v->u.obj.n; i++) {
            if (i) kd__buf_putc(out, ',');
            kd__json_write_string(out, v->u.obj.m[i].key, v->u.obj.m[i].klen);
            kd__buf_putc(out, ':');
            kd__json_write_canonical(v->u.obj.m[i].val, out);
        }
        kd__buf_putc(out, '}');
        break;
    default: write_scalar(v, out);
    }
}

static void newline_indent(kd_buf *out, size_t spaces) {
    if (kd__buf_reserve(out, spaces + 1) != KD_OK) return;
    out->p[out->len++] = '\n';
    memset(out->p + out->len, ' ', spaces);
    out->len += spaces;
    out->p[out->len] = 0;
}

static void write_pretty(const kd_json *v, kd_buf *out, size_t indent, size_t level) {
    if (out->oom) return;
    switch (v->type) {
    case KD_JARRAY:
        if (v->u.arr.n == 0) {
            kd__buf_append(out, "[]", 2);
            break;
        }
        kd__buf_putc(out, '[');
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i) kd__buf_putc(out, ',');
            newline_indent(out, indent * (level + 1));
            write_pretty(v->u.arr.v[i], out, indent, level + 1);
        }
        newline_indent(out, indent * level);
        kd__buf_putc(out, ']');
        break;
    case KD_JOBJECT:
        if (v->u.obj.n == 0) {
            kd__buf_append(out, "{}", 2);
            break;
        }
        kd__buf_putc(out, '{');
        for (size_t i = 0; i < v->u.obj.n; i++) {
            if (i) kd__buf_putc(out, ',');
            newline_indent(out, indent * (level + 1));
            kd__json_write_string(out, v->u.obj.m[i].key, v->u.obj.m[i].klen);
            kd__buf_append(out, ": ", 2);
            write_pretty(v->u.obj.m[i].val, out, indent, level + 1);
        }
        newline_indent(out, indent * level);
        kd__buf_putc(out, '}');
        break;
    default: write_scalar(v, out);
    }
}

void kd__json_write_pretty(const kd_json *v, kd_buf *out, int indent) {
    write_pretty(v, out, indent > 0 ? (size_t)indent : 0, 0);
}

int kd__json_canonicalize(const char *text, size_t len, kd_buf *out, kd_json_err *err) {
    kd_json *v = NULL;
    int rc = kd__json_parse(text, len, &v, err);
    if (rc != KD_OK) goto out;
    kd__json_write_canonical(v, out);
    if (out->oom) {
        rc = kd__err(KD_NOMEM, "out of memory while writing JSON");
        if (err) {
            err->code = KD_NOMEM;
            err->pos = 0;
            snprintf(err->msg, sizeof err->msg, "out of memory");
        }
    }
out:
    kd__json_free(v);
    return rc;
}
