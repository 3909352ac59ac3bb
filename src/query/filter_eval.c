/*
** filter_eval.c — everything that reads a built filter (query/filter.h): evaluation over
** one stored document with the per-operator rules for missing fields, null and mismatched
** types; path lookup, writing and comparison; the two writers; freeing. Building (both
** parsers) is filter_parse.c.
**
** May call: base, json (string escaping), query/jv, and POSIX regexec.
**
** Invariants: evaluation allocates nothing on the common path: = and != compare canonical
** texts, the ordering operators compare numbers exactly and strings by streaming their
** decoded bytes (kd__qv_cmp), contains on arrays and objects compares texts. Only contains
** and ~ on a string whose text holds an escape decode it into a kd_buf, the one source of
** -KD_NOMEM. Nothing is written to the filter, so one filter may be evaluated by many
** threads at once (glibc's regexec is thread-safe). kd__filter_write_text puts
** parentheses exactly where the grammar needs them to rebuild the same tree: an OR inside
** an AND or a NOT, and a node inside another of the same kind (the parser never merges
** "(a and b) and c" into one node).
*/
#include "query/filter.h"

/* ---- paths ----------------------------------------------------------------------- */

/* Character classes and keywords of the path syntax; they must agree with the lexer in
** filter_parse.c, or a written path would not read back. */
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_ident_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}
static int is_ident_char(unsigned char c) { return is_ident_start(c) || is_digit(c) || c == '-'; }

static int is_keyword(const char *s, size_t n) {
    static const char *kw[] = {"and", "or", "not", "exists", "contains"};
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++) {
        if (strlen(kw[k]) != n) continue;
        size_t i = 0;
        while (i < n && (s[i] | 0x20) == kw[k][i]) i++; /* ASCII letters, any case */
        if (i == n) return 1;
    }
    return 0;
}

void kd__path_free(kd_path *p) {
    for (size_t i = 0; i < p->n; i++) kd__free(p->seg[i].s);
    kd__free(p->seg);
    p->seg = NULL;
    p->n = 0;
}

/* A segment needs no backticks when it reads back alone as the same segment: all digits,
** or an identifier that is not a keyword. */
static int seg_is_bare(const kd_pseg *g) {
    const unsigned char *u = (const unsigned char *)g->s;
    if (g->len == 0) return 0;
    if (is_digit(u[0])) {
        for (size_t i = 1; i < g->len; i++)
            if (!is_digit(u[i])) return 0;
        return 1;
    }
    if (!is_ident_start(u[0])) return 0;
    for (size_t i = 1; i < g->len; i++)
        if (!is_ident_char(u[i])) return 0;
    return !is_keyword(g->s, g->len);
}

void kd__path_write(const kd_path *p, kd_buf *out) {
    for (size_t i = 0; i < p->n; i++) {
        const kd_pseg *g = &p->seg[i];
        if (i) kd__buf_putc(out, '.');
        if (seg_is_bare(g)) {
            kd__buf_append(out, g->s, g->len);
            continue;
        }
        kd__buf_putc(out, '`');
        size_t run = 0;
        for (size_t k = 0; k < g->len; k++) {
            if (g->s[k] != '`') continue;
            kd__buf_append(out, g->s + run, k + 1 - run); /* the backtick, then its double */
            kd__buf_putc(out, '`');
            run = k + 1;
        }
        kd__buf_append(out, g->s + run, g->len - run);
        kd__buf_putc(out, '`');
    }
}

int kd__path_equal(const kd_path *a, const kd_path *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->seg[i].len != b->seg[i].len || memcmp(a->seg[i].s, b->seg[i].s, a->seg[i].len) != 0)
            return 0;
    return 1;
}


kd_qv kd__path_get(const kd_qv *doc, const kd_path *p) {
    kd_qv v = *doc;
    for (size_t i = 0; i < p->n && v.t != KD_QV_MISSING; i++) {
        const kd_pseg *g = &p->seg[i];
        if (v.t == KD_QV_OBJ) v = kd__qv_member(&v, g->s, g->len);
        else if (v.t == KD_QV_ARR && g->idx >= 0) v = kd__qv_index(&v, (uint64_t)g->idx);
        else v = (kd_qv){KD_QV_MISSING, NULL, 0};
    }
    return v;
}

/* Decoded bytes of a string field for memmem and regexec; tmp holds them when the text
** has escapes. 0 or -KD_NOMEM. */
static int field_bytes(const kd_qv *v, kd_buf *tmp, const char **s, size_t *n) {
    return kd__qv_str(v, tmp, s, n) == KD_OK ? 0 : -KD_NOMEM;
}

static int eval_contains(const kd_filter *f, const kd_qv *v) {
    size_t pos = 0;
    kd_qv key, elem;
    switch (v->t) {
    case KD_QV_STR: {
        if (f->litv.t != KD_QV_STR) return 0;
        kd_buf tmp = KD_BUF_INIT;
        const char *s;
        size_t n;
        int r = field_bytes(v, &tmp, &s, &n);
        if (r == 0) r = f->litstrlen == 0 || memmem(s, n, f->litstr, f->litstrlen) != NULL;
        kd__buf_free(&tmp);
        return r;
    }
    case KD_QV_ARR:
        while (kd__qv_next(v, &pos, NULL, &elem))
            if (kd__qv_equal(&elem, &f->litv)) return 1;
        return 0;
    case KD_QV_OBJ:
        if (f->litv.t != KD_QV_STR) return 0;
        while (kd__qv_next(v, &pos, &key, &elem)) /* canonical keys: equal text, equal key */
            if (kd__qv_equal(&key, &f->litv)) return 1;
        return 0;
    default: return 0;
    }
}

static int eval_regex(const kd_filter *f, const kd_qv *v) {
    if (v->t != KD_QV_STR || !f->re) return 0;
    kd_buf tmp = KD_BUF_INIT;
    const char *s;
    size_t n;
    int r = field_bytes(v, &tmp, &s, &n);
    if (r == 0) {
        /* REG_STARTEND: the bytes need no terminator and may hold NUL */
        regmatch_t m = {.rm_so = 0, .rm_eo = (regoff_t)n};
        r = regexec(f->re, s, 1, &m, REG_STARTEND) == 0;
    }
    kd__buf_free(&tmp);
    return r;
}

/* The order of v against the literal for > >= < <=, or 2 when they are not comparable
** (only number-number and string-string are). */
static int order(const kd_filter *f, const kd_qv *v) {
    if (v->t == KD_QV_NUM && f->litv.t == KD_QV_NUM) {
        kd_qnum x = kd__qv_num(v);
        return kd__qnum_cmp(&x, &f->litnum);
    }
    if (v->t == KD_QV_STR && f->litv.t == KD_QV_STR) {
        int c = kd__qv_cmp(v, &f->litv);
        return c < 0 ? -1 : c > 0;
    }
    return 2;
}

static int eval_cmp(const kd_filter *f, const kd_qv *doc) {
    kd_qv v = kd__path_get(doc, &f->path);
    if (v.t == KD_QV_MISSING) return f->op == KD_OP_NE;
    int c;
    switch (f->op) {
    case KD_OP_EQ: return kd__qv_equal(&v, &f->litv);
    case KD_OP_NE: return !kd__qv_equal(&v, &f->litv);
    case KD_OP_GT: return order(f, &v) == 1;
    case KD_OP_GE: c = order(f, &v); return c == 0 || c == 1;
    case KD_OP_LT: return order(f, &v) == -1;
    case KD_OP_LE: c = order(f, &v); return c == 0 || c == -1;
    case KD_OP_CONTAINS: return eval_contains(f, &v);
    case KD_OP_REGEX: return eval_regex(f, &v);
    }
    return 0;
}

int kd__filter_eval(const kd_filter *f, const kd_qv *doc) {
    int r;
    switch (f->kind) {
    case KD_F_AND:
    case KD_F_OR: {
        int want = f->kind == KD_F_OR; /* the value that decides at once */
        for (size_t i = 0; i < f->nkids; i++) {
            r = kd__filter_eval(f->kids[i], doc);
            if (r < 0 || r == want) return r;
        }
        return !want;
    }
    case KD_F_NOT:
        r = kd__filter_eval(f->kids[0], doc);
        return r < 0 ? r : !r;
    case KD_F_EXISTS: return kd__path_get(doc, &f->path).t != KD_QV_MISSING;
    case KD_F_CMP: return eval_cmp(f, doc);
    }
    return 0;
}

/* ---- freeing ---------------------------------------------------------------------- */

void kd__filter_free(kd_filter *f) {
    if (!f) return;
    for (size_t i = 0; i < f->nkids; i++) kd__filter_free(f->kids[i]);
    kd__free(f->kids);
    kd__path_free(&f->path);
    kd__free(f->lit);
    kd__free(f->litstr);
    if (f->re) {
        regfree(f->re);
        kd__free(f->re);
    }
    kd__free(f);
}

/* ---- writers ------------------------------------------------------------------------ */

/* Spellings of kd_fop, in its order (both forms use the same ones). */
static const char *const op_text[] = {"=", "!=", ">", ">=", "<", "<=", "contains", "~"};


static void write_path_json(const kd_path *p, kd_buf *out) {
    kd_buf t = KD_BUF_INIT;
    kd__path_write(p, &t);
    if (t.oom) out->oom = 1;
    else kd__json_write_string(out, t.p ? t.p : "", t.len);
    kd__buf_free(&t);
}

void kd__filter_write_json(const kd_filter *f, kd_buf *out) {
    switch (f->kind) {
    case KD_F_AND:
    case KD_F_OR:
        kd__buf_puts(out, f->kind == KD_F_AND ? "{\"and\":[" : "{\"or\":[");
        for (size_t i = 0; i < f->nkids; i++) {
            if (i) kd__buf_putc(out, ',');
            kd__filter_write_json(f->kids[i], out);
        }
        kd__buf_puts(out, "]}");
        break;
    case KD_F_NOT:
        kd__buf_puts(out, "{\"not\":");
        kd__filter_write_json(f->kids[0], out);
        kd__buf_putc(out, '}');
        break;
    case KD_F_EXISTS:
        kd__buf_puts(out, "{\"exists\":");
        write_path_json(&f->path, out);
        kd__buf_putc(out, '}');
        break;
    case KD_F_CMP:
        kd__buf_puts(out, "{\"field\":");
        write_path_json(&f->path, out);
        kd__buf_puts(out, ",\"op\":");
        kd__json_write_string(out, op_text[f->op], strlen(op_text[f->op]));
        kd__buf_puts(out, ",\"value\":");
        kd__buf_append(out, f->lit, f->litlen);
        kd__buf_putc(out, '}');
        break;
    }
}

/* Binding strength: or 1, and 2, the rest 3. A node is parenthesized when it binds no
** tighter than its context requires (min), which also keeps same-kind nesting apart. */
static int strength(const kd_filter *f) { return f->kind == KD_F_OR ? 1 : f->kind == KD_F_AND ? 2 : 3; }

static void write_text(const kd_filter *f, kd_buf *out, int min) {
    int paren = strength(f) <= min;
    if (paren) kd__buf_putc(out, '(');
    switch (f->kind) {
    case KD_F_AND:
    case KD_F_OR:
        for (size_t i = 0; i < f->nkids; i++) {
            if (i) kd__buf_puts(out, f->kind == KD_F_AND ? " and " : " or ");
            write_text(f->kids[i], out, strength(f));
        }
        break;
    case KD_F_NOT:
        kd__buf_puts(out, "not ");
        write_text(f->kids[0], out, 2);
        break;
    case KD_F_EXISTS:
        kd__buf_puts(out, "exists(");
        kd__path_write(&f->path, out);
        kd__buf_putc(out, ')');
        break;
    case KD_F_CMP:
        kd__path_write(&f->path, out);
        kd__buf_putc(out, ' ');
        kd__buf_puts(out, op_text[f->op]);
        kd__buf_putc(out, ' ');
        kd__buf_append(out, f->lit, f->litlen);
        break;
    }
    if (paren) kd__buf_putc(out, ')');
}

void kd__filter_write_text(const kd_filter *f, kd_buf *out) { write_text(f, out, 0); }
