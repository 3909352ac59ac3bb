/*
** filter_parse.c — building filters (query/filter.h): field paths in the string syntax
** and the JSON form, the filter string form (recursive descent, one function per grammar
** rule) and the filter JSON form. Using a built filter (evaluation, writers, freeing) is
** filter_eval.c.
**
** May call: base, json (the parser reads literals and the JSON form; literals are stored
** as canonical text), query/jv, and POSIX regcomp.
**
** Invariants: every error path frees what it built (one owner at a time: a subtree is
** owned by its caller until it is linked into its parent); errors set the thread's message
** with a 1-based column counted in UTF-8 characters, or name the place in the JSON form
** ("and[1].not"). Nesting is limited (FILTER_MAX_DEPTH) so hostile input cannot exhaust
** the stack of the recursive parser, evaluator and writers.
*/
#include "query/filter.h"

#include <stdio.h>
#include <stdlib.h>

#define FILTER_MAX_DEPTH 500

/* ---- characters ------------------------------------------------------------------ */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_ident_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}
static int is_ident_char(unsigned char c) { return is_ident_start(c) || is_digit(c) || c == '-'; }
static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_op_char(unsigned char c) { return c == '=' || c == '!' || c == '<' || c == '>' || c == '~'; }

/* 1-based column of byte pos: characters are counted, not UTF-8 continuation bytes. */
static size_t column(const char *s, size_t pos) {
    size_t col = 1;
    for (size_t i = 0; i < pos; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) col++;
    return col;
}

/* Length of the valid UTF-8 character at s[i] (1..4), or 0. */
static size_t utf8_len(const unsigned char *s, size_t i, size_t len) {
    unsigned char c = s[i], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (len - i < n || s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if ((s[i + k] & 0xC0) != 0x80) return 0;
    return n;
}

/* 's' in quotes for a message, cut after 24 bytes (at a character boundary). */
static void quote(const char *s, size_t n, char *out, size_t cap) {
    size_t max = 24;
    if (n > max) {
        while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
        snprintf(out, cap, "'%.*s...'", (int)max, s);
    } else {
        snprintf(out, cap, "'%.*s'", (int)n, s);
    }
}

/* Describes what is at s[pos] for "found ...": end of input, or the token there in
** quotes (a word, a string, a run of operator characters, else one character). */
static void describe(const char *s, size_t len, size_t pos, char *out, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    if (pos >= len) {
        snprintf(out, cap, "end of input");
        return;
    }
    size_t e = pos + 1;
    if (is_ident_char(u[pos])) { /* a word, a number, a dotted path */
        while (e < len && (is_ident_char(u[e]) || u[e] == '.' || u[e] == '+')) e++;
    } else if (u[pos] == '"') {
        while (e < len && u[e] != '"') e += u[e] == '\\' ? 2 : 1;
        e = e < len ? e + 1 : len;
    } else if (is_op_char(u[pos])) {
        while (e < len && is_op_char(u[e])) e++;
    } else if (u[pos] < 0x20 || u[pos] == 0x7f || !utf8_len(u, pos, len)) {
        snprintf(out, cap, "byte 0x%02x", u[pos]);
        return;
    } else {
        e = pos + utf8_len(u, pos, len);
    }
    quote(s + pos, e - pos, out, cap);
}

static int ieq(const char *s, size_t n, const char *kw) {
    size_t k = strlen(kw);
    if (n != k) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != kw[i]) return 0;
    }
    return 1;
}

/* ---- paths ----------------------------------------------------------------------- */

/* The array index a segment may denote: all digits, within int64; else -1. */
static int64_t seg_index(const char *s, size_t n) {
    if (n == 0) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i])) return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    return v;
}

/* Appends a copy of s[0..n) as a segment. */
static int seg_push(kd_path *p, const char *s, size_t n) {
    if (p->n == 0 || (p->n & (p->n - 1)) == 0) { /* capacity doubles at powers of two */
        kd_pseg *g = kd__realloc(p->seg, (p->n ? p->n * 2 : 1) * sizeof *g);
        if (!g) return KD_NOMEM;
        p->seg = g;
    }
    char *c = kd__strndup(s, n);
    if (!c) return KD_NOMEM;
    p->seg[p->n++] = (kd_pseg){c, n, seg_index(s, n)};
    return KD_OK;
}

/* Reads a path at s[*pos..len). KD_INVALID sets *errpos and *expected (the caller words
** the message); KD_NOMEM. On success *pos is just past the path. */
static int lex_path(const char *s, size_t len, size_t *pos, kd_path *out, size_t *errpos,
                    const char **expected) {
    const unsigned char *u = (const unsigned char *)s;
    kd_path p = {NULL, 0};
    kd_buf b = KD_BUF_INIT;
    size_t i = *pos;
    int rc = KD_OK;
    for (;;) {
        if (i < len && u[i] == '`') {
            kd__buf_reset(&b);
            kd__buf_append(&b, "", 0);
            for (i++;;) {
                if (i >= len) {
                    *errpos = len;
                    *expected = "'`'";
                    rc = KD_INVALID;
                    goto out;
                }
                if (u[i] == '`') {
                    if (i + 1 < len && u[i + 1] == '`') {
                        kd__buf_putc(&b, '`');
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                size_t n = utf8_len(u, i, len);
                if (!n) {
                    *errpos = i;
                    *expected = "valid UTF-8";
                    rc = KD_INVALID;
                    goto out;
                }
                kd__buf_append(&b, s + i, n);
                i += n;
            }
            if (b.oom) rc = KD_NOMEM;
            else rc = seg_push(&p, b.p, b.len);
        } else if (i < len && (is_ident_start(u[i]) || is_digit(u[i]))) {
            size_t j = i + 1;
            if (is_digit(u[i])) while (j < len && is_digit(u[j])) j++;
            else while (j < len && is_ident_char(u[j])) j++;
            rc = seg_push(&p, s + i, j - i);
            i = j;
        } else {
            *errpos = i;
            *expected = p.n ? "a field name after '.'" : "a field";
            rc = KD_INVALID;
        }
        if (rc != KD_OK) goto out;
        if (i < len && u[i] == '.') {
            i++;
            continue;
        }
        break;
    }
out:
    kd__buf_free(&b);
    if (rc != KD_OK) {
        kd__path_free(&p);
        return rc;
    }
    *out = p;
    *pos = i;
    return KD_OK;
}

int kd__path_parse(const char *text, size_t len, kd_path *out) {
    out->seg = NULL;
    out->n = 0;
    size_t i = 0, errpos = 0;
    const char *expected = NULL;
    while (i < len && is_space((unsigned char)text[i])) i++;
    int rc = lex_path(text, len, &i, out, &errpos, &expected);
    if (rc == KD_OK) {
        while (i < len && is_space((unsigned char)text[i])) i++;
        if (i < len) {
            kd__path_free(out);
            errpos = i;
            expected = "'.' or the end of the field";
            rc = KD_INVALID;
        }
    }
    if (rc == KD_NOMEM) return kd__err(KD_NOMEM, "out of memory");
    if (rc != KD_OK) {
        char found[64];
        describe(text, len, errpos, found, sizeof found);
        size_t show = len > 80 ? 80 : len;
        while (show < len && show > 0 && ((unsigned char)text[show] & 0xC0) == 0x80) show--;
        return kd__err(KD_INVALID, "invalid field \"%.*s%s\" at column %zu: expected %s, found %s",
                       (int)show, text, show < len ? "..." : "", column(text, errpos), expected, found);
    }
    return KD_OK;
}

int kd__path_from_json(const kd_json *v, kd_path *out) {
    out->seg = NULL;
    out->n = 0;
    if (v->type == KD_JSTRING) return kd__path_parse(v->u.str.s, v->u.str.len, out);
    if (v->type != KD_JARRAY || v->u.arr.n == 0)
        return kd__err(KD_INVALID, "invalid field: expected a string or a non-empty array of segments");
    int rc = KD_OK;
    for (size_t i = 0; i < v->u.arr.n && rc == KD_OK; i++) {
        const kd_json *e = v->u.arr.v[i];
        char num[24];
        if (e->type == KD_JSTRING) {
            rc = seg_push(out, e->u.str.s, e->u.str.len);
        } else if (e->type == KD_JINT && e->u.i >= 0) {
            int n = snprintf(num, sizeof num, "%lld", (long long)e->u.i);
            rc = seg_push(out, num, (size_t)n);
        } else {
            kd__path_free(out);
            return kd__err(KD_INVALID, "invalid field: segment %zu is not a string or a non-negative integer", i);
        }
    }
    if (rc != KD_OK) {
        kd__path_free(out);
        return kd__err(KD_NOMEM, "out of memory");
    }
    return KD_OK;
}

int kd__path_copy(const kd_path *src, kd_path *dst) {
    dst->seg = NULL;
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++) {
        if (seg_push(dst, src->seg[i].s, src->seg[i].len) != KD_OK) {
            kd__path_free(dst);
            return kd__err(KD_NOMEM, "out of memory");
        }
    }
    return KD_OK;
}

/* ---- nodes ----------------------------------------------------------------------- */

static kd_filter *new_node(kd_fkind kind) {
    kd_filter *f = kd__calloc(1, sizeof *f);
    if (f) f->kind = kind;
    return f;
}

/* Links kid under f; on failure frees kid. */
static int add_kid(kd_filter *f, kd_filter *kid) {
    size_t n = f->nkids;
    if (n < 2 || (n & (n - 1)) == 0) {
        kd_filter **k = kd__realloc(f->kids, (n < 2 ? 2 : n * 2) * sizeof *k);
        if (!k) {
            kd__filter_free(kid);
            return KD_NOMEM;
        }
        f->kids = k;
    }
    f->kids[f->nkids++] = kid;
    return KD_OK;
}

/* A node wrapping one kid (NOT); frees kid on failure. */
static int wrap_not(kd_filter *kid, kd_filter **out) {
    kd_filter *f = new_node(KD_F_NOT);
    if (!f) {
        kd__filter_free(kid);
        return KD_NOMEM;
    }
    int rc = add_kid(f, kid);
    if (rc != KD_OK) kd__filter_free(f);
    else *out = f;
    return rc;
}

/* A comparison node. Takes *path (freed on failure). The caller checked that a regex is a
** string; a pattern regcomp refuses gives KD_INVALID with the reason in why. */
static int make_cmp(kd_path *path, kd_fop op, const kd_json *val, kd_filter **out, char *why,
                    size_t whylen) {
    int rc = KD_NOMEM;
    kd_buf b = KD_BUF_INIT;
    kd_filter *f = new_node(KD_F_CMP);
    if (!f) goto out;
    f->op = op;
    f->path = *path;
    path->seg = NULL;
    path->n = 0;
    kd__json_write_canonical(val, &b);
    f->lit = kd__buf_take(&b, &f->litlen);
    if (!f->lit) goto out;
    f->litv = kd__qv_doc(f->lit, f->litlen);
    if (f->litv.t == KD_QV_NUM) f->litnum = kd__qv_num(&f->litv);
    if (val->type == KD_JSTRING) {
        f->litstr = kd__strndup(val->u.str.s, val->u.str.len);
        f->litstrlen = val->u.str.len;
        if (!f->litstr) goto out;
    }
    if (op == KD_OP_REGEX) {
        if (memchr(f->litstr, 0, f->litstrlen)) {
            snprintf(why, whylen, "the pattern contains a NUL character");
            rc = KD_INVALID;
            goto out;
        }
        f->re = kd__malloc(sizeof *f->re);
        if (!f->re) goto out;
        int e = regcomp(f->re, f->litstr, REG_EXTENDED | REG_NOSUB);
        if (e != 0) {
            regerror(e, f->re, why, whylen);
            kd__free(f->re);
            f->re = NULL;
            rc = e == REG_ESPACE ? KD_NOMEM : KD_INVALID;
            goto out;
        }
    }
    rc = KD_OK;
    *out = f;
out:
    kd__buf_free(&b);
    kd__path_free(path);
    if (rc != KD_OK) kd__filter_free(f);
    return rc;
}

static const struct { const char *s; kd_fop op; } op_names[] = {
    {"=", KD_OP_EQ}, {"==", KD_OP_EQ}, {"!=", KD_OP_NE}, {">", KD_OP_GT}, {">=", KD_OP_GE},
    {"<", KD_OP_LT}, {"<=", KD_OP_LE}, {"~", KD_OP_REGEX}, {"contains", KD_OP_CONTAINS},
};

static int op_lookup(const char *s, size_t n, kd_fop *op) {
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (strlen(op_names[i].s) == n && memcmp(op_names[i].s, s, n) == 0) {
            *op = op_names[i].op;
            return 1;
        }
    return 0;
}

/* ---- the string form --------------------------------------------------------------- */

typedef struct fparser {
    const char *s;
    size_t len, pos;
    int depth;
} fparser;

static int syntax_err(const fparser *p, size_t pos, const char *expected) {
    char found[64];
    describe(p->s, p->len, pos, found, sizeof found);
    return kd__err(KD_INVALID, "filter syntax error at column %zu: expected %s, found %s",
                   column(p->s, pos), expected, found);
}

static int nomem(void) { return kd__err(KD_NOMEM, "out of memory"); }

/* An exists(path) node, taking ownership of *path (freed on failure). */
static int exists_node(kd_path *path, kd_filter **out) {
    kd_filter *f = new_node(KD_F_EXISTS);
    if (!f) {
        kd__path_free(path);
        return nomem();
    }
    f->path = *path;
    *out = f;
    return KD_OK;
}

static void skip_ws(fparser *p) {
    while (p->pos < p->len && is_space((unsigned char)p->s[p->pos])) p->pos++;
}

/* 1 when the word at the current position is the keyword kw (any case). */
static int at_keyword(const fparser *p, const char *kw) {
    size_t e = p->pos;
    while (e < p->len && is_ident_char((unsigned char)p->s[e])) e++;
    return ieq(p->s + p->pos, e - p->pos, kw);
}

static int deeper(fparser *p) {
    if (++p->depth <= FILTER_MAX_DEPTH) return KD_OK;
    return kd__err(KD_INVALID, "filter syntax error at column %zu: nesting deeper than %d levels",
                   column(p->s, p->pos), FILTER_MAX_DEPTH);
}

static int parse_or(fparser *p, kd_filter **out);

/* End of the literal starting at s[i]: a string to its closing quote, an array or object
** to its matching bracket (outside strings), anything else as a run of word characters.
** The JSON parser then decides whether that text is a value. */
static size_t literal_end(const char *s, size_t len, size_t i) {
    if (s[i] == '"') {
        for (i++; i < len; i++) {
            if (s[i] == '"') return i + 1;
            if (s[i] == '\\') i++;
        }
        return len;
    }
    if (s[i] == '[' || s[i] == '{') {
        size_t depth = 0;
        for (; i < len; i++) {
            char c = s[i];
            if (c == '"') {
                for (i++; i < len && s[i] != '"'; i++)
                    if (s[i] == '\\') i++;
                if (i >= len) return len;
            } else if (c == '[' || c == '{') {
                depth++;
            } else if ((c == ']' || c == '}') && --depth == 0) {
                return i + 1;
            }
        }
        return len;
    }
    while (i < len && (is_ident_char((unsigned char)s[i]) || s[i] == '.' || s[i] == '+')) i++;
    return i;
}

static int parse_literal(fparser *p, kd_json **out) {
    size_t at = p->pos;
    char c = at < p->len ? p->s[at] : 0;
    if (!(c == '"' || c == '[' || c == '{' || c == '-' || is_digit((unsigned char)c) || c == 't' ||
          c == 'f' || c == 'n'))
        return syntax_err(p, at, "a value");
    size_t end = literal_end(p->s, p->len, at);
    kd_json_err err;
    int rc = kd__json_parse(p->s + at, end - at, out, &err);
    if (rc == KD_NOMEM) return nomem();
    if (rc != KD_OK) {
        size_t epos = at + (err.pos < end - at ? err.pos : end - at);
        char found[64];
        if (epos >= p->len) snprintf(found, sizeof found, "end of input");
        else quote(p->s + at, end - at, found, sizeof found);
        return kd__err(KD_INVALID, "filter syntax error at column %zu: expected a value, found %s (%s)",
                       column(p->s, epos), found, err.msg);
    }
    p->pos = end;
    return KD_OK;
}

/* The path at the current position, reporting errors in filter columns. */
static int parse_path(fparser *p, kd_path *path) {
    size_t errpos = 0;
    const char *expected = NULL;
    int rc = lex_path(p->s, p->len, &p->pos, path, &errpos, &expected);
    if (rc == KD_NOMEM) return nomem();
    if (rc != KD_OK) return syntax_err(p, errpos, expected);
    return KD_OK;
}

static int parse_exists(fparser *p, kd_filter **out) {
    kd_path path = {NULL, 0};
    p->pos += 6;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '(') return syntax_err(p, p->pos, "'('");
    p->pos++;
    skip_ws(p);
    int rc = parse_path(p, &path);
    if (rc != KD_OK) return rc;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ')') {
        kd__path_free(&path);
        return syntax_err(p, p->pos, "')'");
    }
    p->pos++;
    return exists_node(&path, out);
}

static int parse_op(fparser *p, kd_fop *op) {
    size_t at = p->pos, e = at;
    if (at < p->len && is_ident_char((unsigned char)p->s[at])) {
        while (e < p->len && is_ident_char((unsigned char)p->s[e])) e++;
        if (!ieq(p->s + at, e - at, "contains")) return syntax_err(p, at, "an operator");
        *op = KD_OP_CONTAINS;
    } else {
        while (e < p->len && is_op_char((unsigned char)p->s[e])) e++;
        if (e == at || !op_lookup(p->s + at, e - at, op) || *op == KD_OP_CONTAINS)
            return syntax_err(p, at, "an operator");
    }
    p->pos = e;
    return KD_OK;
}

static int parse_comparison(fparser *p, kd_filter **out) {
    kd_path path = {NULL, 0};
    kd_json *lit = NULL;
    kd_fop op = KD_OP_EQ;
    int rc = parse_path(p, &path);
    if (rc != KD_OK) return rc;
    skip_ws(p);
    rc = parse_op(p, &op);
    if (rc == KD_OK) {
        skip_ws(p);
        size_t at = p->pos;
        rc = parse_literal(p, &lit);
        if (rc == KD_OK && op == KD_OP_REGEX && lit->type != KD_JSTRING) {
            p->pos = at;
            rc = syntax_err(p, at, "a string (a regex)");
        }
        if (rc == KD_OK) {
            char why[256];
            rc = make_cmp(&path, op, lit, out, why, sizeof why);
            if (rc == KD_NOMEM) nomem();
            else if (rc != KD_OK)
                kd__err(rc, "invalid regex at column %zu: %s", column(p->s, at), why);
        }
    }
    kd__path_free(&path);
    kd__json_free(lit);
    return rc;
}

static int parse_primary(fparser *p, kd_filter **out) {
    skip_ws(p);
    size_t at = p->pos;
    if (at < p->len && p->s[at] == '(') {
        int rc = deeper(p);
        if (rc != KD_OK) return rc;
        p->pos++;
        kd_filter *f = NULL;
        rc = parse_or(p, &f);
        p->depth--;
        if (rc != KD_OK) return rc;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ')') {
            kd__filter_free(f);
            return syntax_err(p, p->pos, "'and', 'or' or ')'");
        }
        p->pos++;
        *out = f;
        return KD_OK;
    }
    if (at_keyword(p, "exists")) return parse_exists(p, out);
    if (at_keyword(p, "and") || at_keyword(p, "or") || at_keyword(p, "contains"))
        return syntax_err(p, at, "a field");
    return parse_comparison(p, out);
}

static int parse_not(fparser *p, kd_filter **out) {
    skip_ws(p);
    if (!at_keyword(p, "not")) return parse_primary(p, out);
    int rc = deeper(p);
    if (rc != KD_OK) return rc;
    p->pos += 3;
    kd_filter *kid = NULL;
    rc = parse_not(p, &kid);
    p->depth--;
    if (rc != KD_OK) return rc;
    rc = wrap_not(kid, out);
    return rc == KD_OK ? KD_OK : nomem();
}

/* andexp (kind AND, operands notexp) or orexp (kind OR, operands andexp). */
static int parse_list(fparser *p, kd_fkind kind, kd_filter **out) {
    const char *kw = kind == KD_F_OR ? "or" : "and";
    kd_filter *first = NULL, *node = NULL;
    int rc = kind == KD_F_OR ? parse_list(p, KD_F_AND, &first) : parse_not(p, &first);
    if (rc != KD_OK) return rc;
    for (;;) {
        skip_ws(p);
        if (!at_keyword(p, kw)) break;
        p->pos += strlen(kw);
        kd_filter *next = NULL;
        rc = kind == KD_F_OR ? parse_list(p, KD_F_AND, &next) : parse_not(p, &next);
        if (rc != KD_OK) goto fail;
        if (!node) {
            node = new_node(kind);
            if (!node) {
                kd__filter_free(next);
                rc = nomem();
                goto fail;
            }
            if (add_kid(node, first) != KD_OK) { /* add_kid freed first */
                kd__filter_free(node);
                kd__filter_free(next);
                return nomem();
            }
        }
        if (add_kid(node, next) != KD_OK) {
            rc = nomem();
            goto fail;
        }
    }
    *out = node ? node : first;
    return KD_OK;
fail:
    kd__filter_free(node ? node : first);
    return rc;
}

static int parse_or(fparser *p, kd_filter **out) { return parse_list(p, KD_F_OR, out); }

int kd__filter_parse(const char *text, size_t len, kd_filter **out) {
    *out = NULL;
    fparser p = {text ? text : "", text ? len : 0, 0, 0};
    kd_filter *f = NULL;
    int rc = parse_or(&p, &f);
    if (rc != KD_OK) return rc;
    skip_ws(&p);
    if (p.pos < p.len) {
        kd__filter_free(f);
        return syntax_err(&p, p.pos, "'and', 'or' or end of input");
    }
    *out = f;
    return KD_OK;
}

/* ---- the JSON form ----------------------------------------------------------------- */

static int jerr(const char *place, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jerr(const char *place, const char *fmt, ...) {
    char msg[768]; /* formatted first: an argument may be the thread's message itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (place[0]) return kd__err(KD_INVALID, "invalid filter at %s: %s", place, msg);
    return kd__err(KD_INVALID, "invalid filter: %s", msg);
}

static const char *jtype_name(const kd_json *v) {
    static const char *names[] = {"null", "false", "true", "a number", "a number", "a string",
                                  "an array", "an object"};
    return names[v->type];
}

/* place + suffix into buf (the place of a child node). */
static void sub_place(char *buf, size_t cap, const char *place, const char *key, long idx) {
    const char *dot = place[0] ? "." : "";
    if (idx >= 0) snprintf(buf, cap, "%s%s%s[%ld]", place, dot, key, idx);
    else snprintf(buf, cap, "%s%s%s", place, dot, key);
}

static int from_json(const kd_json *v, const char *place, kd_filter **out);

static int from_json_list(const kd_json *list, const char *key, const char *place, kd_filter **out) {
    char sub[256];
    if (list->type != KD_JARRAY || list->u.arr.n == 0)
        return jerr(place, "\"%s\" must be a non-empty array of filters", key);
    if (list->u.arr.n == 1) { /* one operand: the operand itself */
        sub_place(sub, sizeof sub, place, key, 0);
        return from_json(list->u.arr.v[0], sub, out);
    }
    kd_filter *f = new_node(strcmp(key, "and") == 0 ? KD_F_AND : KD_F_OR);
    if (!f) return nomem();
    for (size_t i = 0; i < list->u.arr.n; i++) {
        kd_filter *kid = NULL;
        sub_place(sub, sizeof sub, place, key, (long)i);
        int rc = from_json(list->u.arr.v[i], sub, &kid);
        if (rc == KD_OK && add_kid(f, kid) != KD_OK) rc = nomem();
        if (rc != KD_OK) {
            kd__filter_free(f);
            return rc;
        }
    }
    *out = f;
    return KD_OK;
}

static int path_json(const kd_json *v, const char *place, kd_path *path) {
    int rc = kd__path_from_json(v, path);
    if (rc == KD_INVALID) return jerr(place, "%s", kd__errmsg_get());
    return rc;
}

static int from_json_cmp(const kd_json *v, const char *place, kd_filter **out) {
    const kd_json *field = kd__json_get(v, "field", 5), *op = kd__json_get(v, "op", 2),
                  *val = kd__json_get(v, "value", 5);
    if (!op) return jerr(place, "missing \"op\"");
    if (!val) return jerr(place, "missing \"value\"");
    if (v->u.obj.n != 3) return jerr(place, "a comparison has only \"field\", \"op\" and \"value\"");
    kd_fop fop;
    if (op->type != KD_JSTRING) return jerr(place, "\"op\" must be a string");
    if (!op_lookup(op->u.str.s, op->u.str.len, &fop))
        return jerr(place, "unknown op \"%.*s\"", (int)KD_MIN(op->u.str.len, 40), op->u.str.s);
    if (fop == KD_OP_REGEX && val->type != KD_JSTRING)
        return jerr(place, "the value of op \"~\" must be a string (a regex), not %s", jtype_name(val));
    kd_path path;
    int rc = path_json(field, place, &path);
    if (rc != KD_OK) return rc;
    char why[256];
    rc = make_cmp(&path, fop, val, out, why, sizeof why);
    if (rc == KD_NOMEM) return nomem();
    if (rc != KD_OK)
        return jerr(place, "invalid regex \"%.*s\": %s", (int)KD_MIN(val->u.str.len, 60), val->u.str.s, why);
    return KD_OK;
}

static int from_json(const kd_json *v, const char *place, kd_filter **out) {
    static const char *keys[] = {"and", "or", "not", "exists", "field", "op", "value"};
    if (v->type != KD_JOBJECT) return jerr(place, "expected an object, found %s", jtype_name(v));
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const kd_jmember *m = &v->u.obj.m[i];
        int known = 0;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (strlen(keys[k]) == m->klen && memcmp(keys[k], m->key, m->klen) == 0) known = 1;
        if (!known) return jerr(place, "unknown key \"%.*s\"", (int)KD_MIN(m->klen, 40), m->key);
    }
    for (size_t k = 0; k < 4; k++) {
        const kd_json *x = kd__json_get(v, keys[k], strlen(keys[k]));
        if (!x) continue;
        if (v->u.obj.n != 1) return jerr(place, "\"%s\" must be the only key of its object", keys[k]);
        char sub[256];
        if (k < 2) return from_json_list(x, keys[k], place, out);
        if (k == 2) {
            kd_filter *kid = NULL;
            sub_place(sub, sizeof sub, place, "not", -1);
            int rc = from_json(x, sub, &kid);
            if (rc != KD_OK) return rc;
            return wrap_not(kid, out) == KD_OK ? KD_OK : nomem();
        }
        kd_path path;
        int rc = path_json(x, place, &path);
        if (rc != KD_OK) return rc;
        return exists_node(&path, out);
    }
    if (!kd__json_get(v, "field", 5))
        return jerr(place, "expected one of \"and\", \"or\", \"not\", \"exists\" or \"field\"");
    return from_json_cmp(v, place, out);
}

int kd__filter_from_json(const kd_json *v, kd_filter **out) {
    *out = NULL;
    if (!v) return kd__err(KD_INVALID, "invalid filter: no JSON value");
    return from_json(v, "", out);
}

int kd__filter_parse_json(const char *json, size_t len, kd_filter **out) {
    kd_json *v = NULL;
    *out = NULL;
    int rc = kd__json_parse(json, len, &v, NULL);
    if (rc == KD_OK) rc = kd__filter_from_json(v, out);
    kd__json_free(v);
    return rc;
}

