/*
** cli_batch.c — `kdelta batch FILE|-`: reads NDJSON lines of the form
**   {"op":"put"|"delete","namespace":"..","key":"..","value":<any JSON>}
** and commits them as one atomic batch (kd_batch_*).
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h, the C library.
**
** There is no public JSON tree, so each line is first validated and canonicalised by
** kd_json_canonical (which rejects bad JSON, duplicate members, bad UTF-8) and then read
** by the small extractor below. Working on canonical text keeps the extractor simple: no
** whitespace, and strings escape only `"`, `\` and control characters. The extractor only
** needs the top-level members: the string fields are unescaped, `value` is kept as its raw
** (already canonical) text.
**
** Every line is checked before the database is opened, and deletes of missing keys before
** the commit, so a bad line is reported by its line number and nothing is written; the
** library (or the server, which commits the batch the same way) refuses a failing batch
** whole in any case.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"

typedef struct batch_item {
    size_t line;        /* 1-based line number in the input */
    int is_delete;
    char *ns, *key;     /* unescaped, NUL-free */
    char *canon;        /* the line's canonical text (owns the value bytes) */
    const char *value;  /* into canon; NULL for a delete */
    size_t value_len;
} batch_item;

/* ---- reading canonical JSON ------------------------------------------------------------ */

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = s[k];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(cli_buf *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    cli_buf_add(b, u, n);
}

/* Unescapes the string literal s[0..n) (quotes included) into a fresh C string. Returns
** NULL when out of memory or when the string holds a NUL (*has_nul is then set). */
static char *unescape(const char *s, size_t n, int *has_nul) {
    cli_buf b = {0};
    *has_nul = 0;
    cli_buf_add(&b, "", 0);
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] != '\\') {
            cli_buf_add(&b, s + i, 1);
            continue;
        }
        char e = s[++i];
        unsigned cp, lo;
        switch (e) {
        case 'b': cli_buf_add(&b, "\b", 1); break;
        case 'f': cli_buf_add(&b, "\f", 1); break;
        case 'n': cli_buf_add(&b, "\n", 1); break;
        case 'r': cli_buf_add(&b, "\r", 1); break;
        case 't': cli_buf_add(&b, "\t", 1); break;
        case 'u':
            if (i + 4 >= n || hex4(s + i + 1, &cp) != 0) goto bad;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u' &&
                hex4(s + i + 3, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            if (cp == 0) {
                *has_nul = 1;
                goto bad;
            }
            put_utf8(&b, cp);
            break;
        default: cli_buf_add(&b, &e, 1); break; /* \" \\ \/ */
        }
    }
    if (b.oom) goto bad;
    return b.p;
bad:
    cli_buf_free(&b);
    return NULL;
}

/* Fills item from the canonical text of one line. Returns 0 or an exit code. */
static int parse_line(cli *c, batch_item *it) {
    const char *s = it->canon;
    size_t n = strlen(s), i = 1;
    size_t op_at = 0, op_len = 0, ns_at = 0, ns_len = 0, key_at = 0, key_len = 0;
    int has_op = 0, has_ns = 0, has_key = 0, has_value = 0;
    int nul = 0;

    if (n < 2 || s[0] != '{')
        return cli_fail(c, KD_INVALID, "line %zu: expected a JSON object", it->line);
    while (i < n && s[i] == '"') {
        size_t name_end = cli_json_skip_string(s, i, n);
        const char *name = s + i + 1;
        size_t name_len = name_end - i - 2;
        size_t v = name_end + 1; /* past ':' */
        if (v >= n) break;
        size_t v_end = cli_json_skip_value(s, v, n);
#define IS(lit) (name_len == sizeof lit - 1 && memcmp(name, lit, name_len) == 0)
        if (IS("op") || IS("namespace") || IS("key")) {
            if (s[v] != '"')
                return cli_fail(c, KD_INVALID, "line %zu: \"%.*s\" must be a string", it->line,
                                (int)name_len, name);
            if (IS("op")) { op_at = v; op_len = v_end - v; has_op = 1; }
            else if (IS("namespace")) { ns_at = v; ns_len = v_end - v; has_ns = 1; }
            else { key_at = v; key_len = v_end - v; has_key = 1; }
        } else if (IS("value")) {
            it->value = s + v;
            it->value_len = v_end - v;
            has_value = 1;
        }
        /* other members are ignored */
#undef IS
        i = v_end;
        if (i < n && s[i] == ',') i++;
    }
    if (!has_op) return cli_fail(c, KD_INVALID, "line %zu: missing \"op\"", it->line);
    if (op_len == 5 && memcmp(s + op_at, "\"put\"", 5) == 0) it->is_delete = 0;
    else if (op_len == 8 && memcmp(s + op_at, "\"delete\"", 8) == 0) it->is_delete = 1;
    else
        return cli_fail(c, KD_INVALID, "line %zu: unknown op %.*s (want \"put\" or \"delete\")",
                        it->line, (int)(op_len > 64 ? 64 : op_len), s + op_at);
    if (!has_ns) return cli_fail(c, KD_INVALID, "line %zu: missing \"namespace\"", it->line);
    if (!has_key) return cli_fail(c, KD_INVALID, "line %zu: missing \"key\"", it->line);
    if (!it->is_delete && !has_value)
        return cli_fail(c, KD_INVALID, "line %zu: missing \"value\" for a put", it->line);
    if (it->is_delete) {
        it->value = NULL;
        it->value_len = 0;
    }
    it->ns = unescape(s + ns_at, ns_len, &nul);
    if (!it->ns)
        return nul ? cli_fail(c, KD_INVALID, "line %zu: namespace contains NUL", it->line)
                   : cli_fail(c, KD_NOMEM, "out of memory");
    it->key = unescape(s + key_at, key_len, &nul);
    if (!it->key)
        return nul ? cli_fail(c, KD_INVALID, "line %zu: key contains NUL", it->line)
                   : cli_fail(c, KD_NOMEM, "out of memory");
    return 0;
}

/* Validates names and sizes of one parsed item. */
static int check_item(cli *c, const batch_item *it, size_t max_value) {
    int rc;
    char what[64];
    snprintf(what, sizeof what, "line %zu", it->line);
    if (!*it->ns) return cli_fail(c, KD_INVALID, "line %zu: empty namespace", it->line);
    if (!*it->key) return cli_fail(c, KD_INVALID, "line %zu: empty key", it->line);
    if ((rc = kd_valid_namespace(it->ns, 0)) != KD_OK) return cli_fail_kd(c, rc, what);
    if ((rc = kd_valid_key(it->key)) != KD_OK) return cli_fail_kd(c, rc, what);
    if (it->value && it->value_len > max_value)
        return cli_fail(c, KD_TOOBIG, "line %zu: value is %zu bytes, over the limit of %zu",
                        it->line, it->value_len, max_value);
    return 0;
}

static int cmp_items(const void *pa, const void *pb) {
    const batch_item *a = *(const batch_item *const *)pa, *b = *(const batch_item *const *)pb;
    int r = strcmp(a->ns, b->ns);
    if (!r) r = strcmp(a->key, b->key);
    if (!r) r = a->line < b->line ? -1 : a->line > b->line;
    return r;
}

/* A key given twice is refused by the library too; we name both lines. */
static int check_duplicates(cli *c, batch_item *items, size_t n) {
    batch_item **v;
    int code = 0;
    if (n < 2) return 0;
    v = malloc(n * sizeof *v);
    if (!v) return cli_fail(c, KD_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) v[i] = &items[i];
    qsort(v, n, sizeof *v, cmp_items);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i]->ns, v[i - 1]->ns) == 0 && strcmp(v[i]->key, v[i - 1]->key) == 0) {
            code = cli_fail(c, KD_INVALID, "line %zu: %s/%s already appears on line %zu (a key may "
                            "appear once per batch)", v[i]->line, v[i]->ns, v[i]->key, v[i - 1]->line);
            break;
        }
    }
    free(v);
    return code;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Splits text into lines and parses every non-blank one into *items. */
static int parse_input(cli *c, const char *text, size_t len, size_t max_value,
                       batch_item **items, size_t *count) {
    size_t cap = 0, line = 0, pos = 0;
    int rc;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *s = text + pos;
        size_t n = end - pos;
        line++;
        pos = end + 1;
        if (is_blank(s, n)) continue;
        if (*count == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            batch_item *p = realloc(*items, ncap * sizeof *p);
            if (!p) return cli_fail(c, KD_NOMEM, "out of memory");
            *items = p;
            cap = ncap;
        }
        batch_item *it = &(*items)[*count];
        memset(it, 0, sizeof *it);
        it->line = line;
        (*count)++;
        size_t clen;
        rc = kd_json_canonical(s, n, &it->canon, &clen);
        if (rc != KD_OK) {
            char what[64];
            it->canon = NULL;
            snprintf(what, sizeof what, "line %zu: invalid JSON", line);
            return cli_fail_kd(c, rc, what);
        }
        if ((rc = parse_line(c, it)) != 0) return rc;
        if ((rc = check_item(c, it, max_value)) != 0) return rc;
    }
    return check_duplicates(c, *items, *count);
}

/* Deletes of keys without a live version would fail the commit; name the line instead. */
static int check_deletes(cli *c, const batch_item *items, size_t n) {
    for (size_t i = 0; i < n; i++) {
        kd_entry e;
        if (!items[i].is_delete) continue;
        int rc = cli_op_get(c, items[i].ns, items[i].key, &e);
        kd_entry_clear(&e);
        if (rc == KD_NOTFOUND)
            return cli_fail(c, KD_NOTFOUND, "line %zu: cannot delete %s/%s: not found", items[i].line,
                            items[i].ns, items[i].key);
        if (rc != KD_OK) return cli_fail_kd(c, rc, NULL);
    }
    return 0;
}

int cli_cmd_batch(cli *c) {
    char *text = NULL;
    size_t len = 0, count = 0, bad;
    batch_item *items = NULL;
    cli_batch_op *ops = NULL;
    kd_options o;
    uint64_t first = 0, last = 0;
    int rc, code;

    kd_options_init(&o);
    if ((code = cli_read_file(c, c->pos[0], &text, &len)) != 0) goto out;
    if ((code = parse_input(c, text, len, o.max_value_bytes, &items, &count)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    if ((code = check_deletes(c, items, count)) != 0) goto out;
    if (count > 0) {
        ops = calloc(count, sizeof *ops);
        if (!ops) {
            code = cli_fail(c, KD_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < count; i++)
            ops[i] = (cli_batch_op){items[i].ns, items[i].key, items[i].value, items[i].value_len,
                                    items[i].is_delete};
        rc = cli_op_batch(c, ops, count, &first, &last, &bad);
        if (rc != KD_OK && bad < count) {
            char what[64];
            snprintf(what, sizeof what, "line %zu", items[bad].line);
            code = cli_fail_kd(c, rc, what);
            goto out;
        }
        if (rc != KD_OK) {
            code = cli_fail_kd(c, rc, "batch refused, nothing written");
            goto out;
        }
    }
    if (c->json) {
        if (count) {
            cli_buf_printf(&c->out, "{\"committed\":%zu,\"first_seq\":%llu,\"last_seq\":%llu}\n", count,
                           (unsigned long long)first, (unsigned long long)last);
        } else {
            cli_buf_puts(&c->out, "{\"committed\":0,\"first_seq\":null,\"last_seq\":null}\n");
        }
    } else if (count) {
        cli_buf_printf(&c->out, "Committed %zu item%s atomically (seq %llu..%llu)\n", count,
                       count == 1 ? "" : "s", (unsigned long long)first, (unsigned long long)last);
    } else {
        cli_buf_puts(&c->out, "Committed 0 items (the input had no lines)\n");
    }
    code = 0;
out:
    free(ops);
    for (size_t i = 0; i < count; i++) {
        kd_free(items[i].canon);
        free(items[i].ns);
        free(items[i].key);
    }
    free(items);
    free(text);
    return code;
}
