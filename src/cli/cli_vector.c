/*
** cli_vector.c — the vector-search commands of `kdelta`: `embed` (store or delete the
** embedding of a key), `embedding` (print it, now or as of a time) and `search` (the keys
** whose embeddings are nearest to a query vector), and the reading and writing of vectors
** as JSON arrays that they and cli_ops.c share.
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h (the database, local or
** remote), the C library.
**
** Numbers: a component is read as a double (a JSON number, checked against the RFC
** grammar here, so that the message can name the component), then converted to float32;
** one that is not finite, or whose conversion would overflow to infinity, is refused.
** Writing uses "%.9g", which reads back to the same float (-0 stays -0). Scores are
** written "%.17g" in JSON (the same double) and "%.6f" for people.
**
** Every check of the command line (vector, names, options, filters, metadata) happens
** before the database is reached, so bad input writes nothing and reads the same locally
** and through a server.
*/
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_ops.h"

/* ---- vectors as JSON ------------------------------------------------------------------- */

static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* The end of a JSON number starting at s[i] (RFC 8259 grammar), or i when there is none. */
static size_t number_end(const char *s, size_t i, size_t n) {
    size_t start = i;
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i])) i++;
    } else {
        return start;
    }
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i])) return start;
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return start;
        while (i < n && is_digit(s[i])) i++;
    }
    return i;
}

/* Whether s[0..n) spells NaN or an infinity (what strtod and other languages print). */
static int names_non_finite(const char *s, size_t n) {
    static const char *const names[] = {"nan", "inf", "infinity"};
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        s++;
        n--;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0) return 1;
    return 0;
}

/* The largest magnitude that converts to a finite float: FLT_MAX plus half an ulp
** (2^128 - 2^104 + 2^103), exclusive; from there on the conversion rounds to infinity. */
static double float_limit(void) { return ldexp(1.0, 128) - ldexp(1.0, 103); }

/* Reads the number s[0..n) (already checked against the grammar). */
static double read_number(const char *s, size_t n, int *ok) {
    char small[64], *buf = small, *end;
    double d;
    *ok = 1;
    if (n >= sizeof small && !(buf = malloc(n + 1))) {
        *ok = 0;
        return 0;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    d = strtod(buf, &end); /* underflow (ERANGE towards 0) is fine: it becomes 0 or a
                              subnormal, as the float conversion would anyway */
    if (buf != small) free(buf);
    return d;
}

int cli_parse_vector(const char *text, size_t len, float **v, size_t *dim, char *msg,
                     size_t msglen) {
    const char *s = text;
    size_t i = 0, n = len, count = 0, cap = 0;
    float *out = NULL;
    int rc = KD_INVALID;
    *v = NULL;
    *dim = 0;
    while (i < n && is_ws(s[i])) i++;
    if (i >= n || s[i] != '[') {
        snprintf(msg, msglen, "the vector must be a JSON array of numbers, e.g. [0.1,0.2,0.3]");
        goto out;
    }
    i++;
    while (i < n && is_ws(s[i])) i++;
    if (i < n && s[i] == ']') {
        snprintf(msg, msglen, "the vector is empty (it needs at least one component)");
        goto out;
    }
    for (;;) {
        size_t start, end;
        double d;
        int ok;
        while (i < n && is_ws(s[i])) i++;
        start = i;
        end = number_end(s, i, n);
        if (end == start) {
            /* Name what is there, up to the next separator. */
            size_t e = i;
            while (e < n && !is_ws(s[e]) && s[e] != ',' && s[e] != ']') e++;
            if (names_non_finite(s + i, e - i))
                snprintf(msg, msglen, "vector component %zu is not a finite number (%.*s)", count,
                         (int)(e - i), s + i);
            else if (i >= n)
                snprintf(msg, msglen, "the vector ends after %zu component%s (missing ']')", count,
                         count == 1 ? "" : "s");
            else
                snprintf(msg, msglen, "vector component %zu is not a number (%.*s)", count,
                         (int)(e - i > 40 ? 40 : e - i), s + i);
            goto out;
        }
        d = read_number(s + start, end - start, &ok);
        if (!ok) {
            rc = KD_NOMEM;
            snprintf(msg, msglen, "out of memory");
            goto out;
        }
        if (!isfinite(d)) {
            snprintf(msg, msglen, "vector component %zu is not a finite number (%.*s)", count,
                     (int)(end - start > 40 ? 40 : end - start), s + start);
            goto out;
        }
        if (fabs(d) >= float_limit()) {
            snprintf(msg, msglen,
                     "vector component %zu (%.*s) overflows a float32 (largest magnitude %.9g)",
                     count, (int)(end - start > 40 ? 40 : end - start), s + start, FLT_MAX);
            goto out;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            float *p = realloc(out, ncap * sizeof *p);
            if (!p) {
                rc = KD_NOMEM;
                snprintf(msg, msglen, "out of memory");
                goto out;
            }
            out = p;
            cap = ncap;
        }
        out[count++] = (float)d;
        i = end;
        while (i < n && is_ws(s[i])) i++;
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == ']') break;
        if (i >= n)
            snprintf(msg, msglen, "the vector ends after %zu component%s (missing ']')", count,
                     count == 1 ? "" : "s");
        else
            snprintf(msg, msglen, "expected ',' or ']' after vector component %zu", count - 1);
        goto out;
    }
    i++;
    while (i < n && is_ws(s[i])) i++;
    if (i < n) {
        snprintf(msg, msglen, "unexpected text after the vector's closing ']'");
        goto out;
    }
    *v = out;
    *dim = count;
    out = NULL;
    rc = KD_OK;
out:
    free(out);
    return rc;
}

void cli_json_vector(cli_buf *b, const float *v, size_t dim) {
    cli_buf_add(b, "[", 1);
    for (size_t i = 0; i < dim; i++) cli_buf_printf(b, i ? ",%.9g" : "%.9g", (double)v[i]);
    cli_buf_add(b, "]", 1);
}

/* The vector of --vector or --vector-file: exactly one of them must be given. */
static int load_vector(cli *c, float **v, size_t *dim) {
    char msg[300], *text = NULL;
    size_t len = 0;
    int rc, code = 0;
    *v = NULL;
    *dim = 0;
    if (c->vector && c->vector_file)
        return cli_fail(c, CLI_RC_USAGE, "--vector and --vector-file cannot be used together");
    if (!c->vector && !c->vector_file)
        return cli_fail(c, CLI_RC_USAGE, "'%s' needs a vector: --vector JSON or --vector-file F",
                        c->cmd->name);
    if (c->vector_file) {
        if ((code = cli_read_file(c, c->vector_file, &text, &len)) != 0) return code;
        rc = cli_parse_vector(text, len, v, dim, msg, sizeof msg);
    } else {
        rc = cli_parse_vector(c->vector, strlen(c->vector), v, dim, msg, sizeof msg);
    }
    if (rc != KD_OK) {
        if (c->vector_file)
            code = cli_fail(c, rc, "%s: %s",
                            strcmp(c->vector_file, "-") == 0 ? "standard input" : c->vector_file,
                            msg);
        else
            code = cli_fail(c, rc, "%s", msg);
    } else if (*dim > KD_EMBED_DIM_MAX) {
        code = cli_fail(c, KD_INVALID, "the vector has %zu components (limit %d)", *dim,
                        KD_EMBED_DIM_MAX);
    }
    if (code != 0) {
        free(*v);
        *v = NULL;
    }
    free(text);
    return code;
}

/* Parses a --at given to embedding or search (version ids need the database). */
static int parse_at(cli *c, int64_t *ts) {
    int rc = cli_op_parse_time(c, c->at, ts);
    if (rc != KD_OK) {
        char what[256];
        snprintf(what, sizeof what, "--at '%.200s'", c->at);
        return cli_fail_kd(c, rc, what);
    }
    return 0;
}

/* ---- embed ----------------------------------------------------------------------------- */

/* The members shared by the JSON of an embedding's versions (no braces, no comma at the
** ends): key, namespace. */
static void json_names(cli_buf *b, const char *ns, const char *key) {
    cli_json_key(b, "key");
    cli_json_cstr(b, key);
    cli_buf_puts(b, ",");
    cli_json_key(b, "namespace");
    cli_json_cstr(b, ns);
}

/* seq, timestamp, version_id (after a comma). */
static void json_version_tail(cli_buf *b, uint64_t seq, int64_t ts, const uint8_t id[32]) {
    cli_buf_printf(b, ",\"seq\":%llu,", (unsigned long long)seq);
    cli_json_key(b, "timestamp");
    cli_json_time(b, ts);
    cli_buf_puts(b, ",");
    cli_json_key(b, "version_id");
    cli_json_hex(b, id);
}

static int embed_delete(cli *c, const char *ns, const char *key) {
    kd_entry e;
    char id[9], ts[32];
    int rc, code = 0;
    if (c->vector || c->vector_file || c->model || c->meta)
        return cli_fail(c, CLI_RC_USAGE,
                        "--delete takes no --vector, --vector-file, --model or --meta");
    if ((code = cli_connect(c)) != 0) return code;
    rc = cli_op_embed_delete(c, ns, key, &e);
    if (rc == KD_NOTFOUND) {
        code = cli_fail_kd(c, rc, NULL); /* "no embedding for NS/KEY" */
        goto out;
    }
    if (rc != KD_OK) {
        char what[64 + 2 * 1200];
        snprintf(what, sizeof what, "cannot delete the embedding of %s/%s", ns, key);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{\"deleted\":true,");
        json_names(&c->out, ns, key);
        json_version_tail(&c->out, e.seq, e.timestamp, e.version_id);
        cli_buf_puts(&c->out, "}\n");
    } else {
        cli_short_id(e.version_id, id);
        kd_format_time(e.timestamp, ts);
        cli_buf_printf(&c->out, "Deleted the embedding of %s/%s: version %s, seq %llu, %s\n", ns,
                       key, id, (unsigned long long)e.seq, ts);
    }
out:
    kd_entry_clear(&e);
    return code;
}

int cli_cmd_embed(cli *c) {
    char *ns = NULL, *key = NULL, *meta = NULL;
    const char *model;
    float *v = NULL;
    size_t dim = 0, mlen = 0;
    kd_entry e;
    int rc, code;
    memset(&e, 0, sizeof e);

    if ((code = cli_split_name(c, c->pos[0], 0, &ns, &key)) != 0) goto out;
    if (c->embed_delete) {
        code = embed_delete(c, ns, key);
        goto out;
    }
    if ((code = load_vector(c, &v, &dim)) != 0) goto out;
    if (c->meta && (rc = kd_json_canonical(c->meta, strlen(c->meta), &meta, &mlen)) != KD_OK) {
        code = cli_fail_kd(c, rc, "invalid --meta JSON");
        goto out;
    }
    if ((code = cli_connect(c)) != 0) goto out;
    rc = cli_op_embed(c, ns, key, v, dim, c->model, meta, &e);
    if (rc != KD_OK) {
        char what[64 + 2 * 1200];
        snprintf(what, sizeof what, "cannot embed %s/%s", ns, key);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    model = c->model ? c->model : "default";
    if (c->json) {
        cli_buf_printf(&c->out, "{\"dim\":%zu,", dim);
        cli_json_key(&c->out, "key");
        cli_json_cstr(&c->out, key);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "model");
        cli_json_cstr(&c->out, model);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "namespace");
        cli_json_cstr(&c->out, ns);
        json_version_tail(&c->out, e.seq, e.timestamp, e.version_id);
        cli_buf_puts(&c->out, "}\n");
    } else {
        char id[9], ts[32];
        cli_short_id(e.version_id, id);
        kd_format_time(e.timestamp, ts);
        cli_buf_printf(&c->out, "Stored the embedding of %s/%s (model %s, %zu dims): version %s, "
                       "seq %llu, %s\n",
                       ns, key, model, dim, id, (unsigned long long)e.seq, ts);
    }
    code = 0;
out:
    kd_entry_clear(&e);
    kd_free(meta);
    free(v);
    free(ns);
    free(key);
    return code;
}

/* ---- embedding ------------------------------------------------------------------------- */

static void json_embedding(cli_buf *b, const kd_embedding *em) {
    cli_buf_printf(b, "{\"dim\":%zu,", em->dim);
    cli_json_key(b, "key");
    cli_json_cstr(b, em->key);
    cli_buf_puts(b, ",\"metadata\":");
    cli_buf_puts(b, em->metadata ? em->metadata : "null");
    cli_buf_puts(b, ",");
    cli_json_key(b, "model");
    cli_json_cstr(b, em->model);
    cli_buf_puts(b, ",");
    cli_json_key(b, "namespace");
    cli_json_cstr(b, em->ns);
    cli_buf_printf(b, ",\"seq\":%llu,", (unsigned long long)em->seq);
    cli_json_key(b, "timestamp");
    cli_json_time(b, em->timestamp);
    cli_buf_puts(b, ",\"vector\":");
    cli_json_vector(b, em->vector, em->dim);
    cli_buf_puts(b, ",");
    cli_json_key(b, "version_id");
    cli_json_hex(b, em->version_id);
    cli_buf_puts(b, "}\n");
}

static void human_embedding(cli_buf *b, const kd_embedding *em) {
    char hex[65], ts[32];
    cli_buf_printf(b, "model:      %s\n", em->model);
    cli_buf_printf(b, "dim:        %zu\n", em->dim);
    cli_buf_puts(b, "vector:     ");
    cli_json_vector(b, em->vector, em->dim);
    cli_buf_printf(b, "\nmetadata:   %s\n", em->metadata ? em->metadata : "null");
    kd_hex(em->version_id, hex);
    cli_buf_printf(b, "version:    %s\n", hex);
    cli_buf_printf(b, "seq:        %llu\n", (unsigned long long)em->seq);
    kd_format_time(em->timestamp, ts);
    cli_buf_printf(b, "timestamp:  %s\n", ts);
}

int cli_cmd_embedding(cli *c) {
    char *ns = NULL, *key = NULL;
    kd_embedding *em = NULL;
    int64_t ts = 0;
    int rc, code;

    if ((code = cli_split_name(c, c->pos[0], 0, &ns, &key)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    if (c->at && (code = parse_at(c, &ts)) != 0) goto out;
    rc = cli_op_embedding_get(c, ns, key, c->at, ts, &em);
    if (rc != KD_OK) {
        char what[64 + 2 * 1200];
        snprintf(what, sizeof what, "embedding of %s/%s", ns, key);
        code = cli_fail_kd(c, rc, rc == KD_NOTFOUND ? NULL : what);
        goto out;
    }
    if (c->json) json_embedding(&c->out, em);
    else human_embedding(&c->out, em);
    code = 0;
out:
    kd_embedding_free(em);
    free(ns);
    free(key);
    return code;
}

/* ---- search ---------------------------------------------------------------------------- */

/* A whole decimal number in [lo, hi]. */
static int parse_range(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    uint64_t v = 0;
    if (!*s) return -1;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p)) return -1;
        if (v > hi) return -1; /* keeps going only while it can still fit */
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The search's options other than the vector and the filters. */
static int parse_search_opts(cli *c, kd_search_opts *o) {
    uint64_t u;
    if (c->top_k) {
        if (parse_range(c->top_k, 1, 1000000, &u) != 0)
            return cli_fail(c, CLI_RC_USAGE,
                            "invalid --top-k '%s' (want a number from 1 to 1000000)", c->top_k);
        o->top_k = (size_t)u;
    }
    if (c->ef) {
        if (parse_range(c->ef, 1, 100000, &u) != 0)
            return cli_fail(c, CLI_RC_USAGE, "invalid --ef '%s' (want a number from 1 to 100000)",
                            c->ef);
        o->ef_search = (uint32_t)u;
    }
    if (c->metric) {
        if (strcmp(c->metric, "cosine") == 0) o->metric = KD_METRIC_COSINE;
        else if (strcmp(c->metric, "dot") == 0) o->metric = KD_METRIC_DOT;
        else if (strcmp(c->metric, "l2") == 0) o->metric = KD_METRIC_L2;
        else
            return cli_fail(c, CLI_RC_USAGE, "invalid --metric '%s' (use cosine, dot or l2)",
                            c->metric);
    }
    if (c->threshold) {
        char *end;
        double d;
        errno = 0;
        d = strtod(c->threshold, &end);
        if (end == c->threshold || *end || !isfinite(d) || isspace((unsigned char)*c->threshold))
            return cli_fail(c, CLI_RC_USAGE, "invalid --threshold '%s' (want a finite number)",
                            c->threshold);
        o->has_threshold = 1;
        o->threshold = d;
    }
    o->model = c->model;
    o->exact = c->exact;
    return 0;
}

/* A kd_query holding only the filter expr (of option `opt`), or NULL when expr is NULL. */
static int build_filter(cli *c, const char *opt, const char *expr, kd_query **q) {
    int rc;
    *q = NULL;
    if (!expr) return 0;
    if ((rc = kd_query_new(q)) != KD_OK) return cli_fail_kd(c, rc, NULL);
    if ((rc = kd_query_set_filter(*q, expr)) != KD_OK) {
        char what[300];
        snprintf(what, sizeof what, "invalid %s '%.200s'", opt, expr);
        kd_query_free(*q);
        *q = NULL;
        return cli_fail_kd(c, rc, what);
    }
    return 0;
}

/* The --filter of the command line (kept with the query options), NULL when none. */
static int value_filter(cli *c, const char **expr) {
    *expr = NULL;
    for (int i = 0; i < c->nqopts; i++) {
        if (c->qopts[i].kind != CLI_Q_FILTER) continue;
        if (*expr)
            return cli_fail(c, CLI_RC_USAGE,
                            "--filter given twice (join the conditions with 'and')");
        *expr = c->qopts[i].val;
    }
    return 0;
}

/* A score as printed: -0 (a dot product can give one) prints as 0, as it reads back from
** a server's canonical JSON. */
static double shown_score(double s) { return s == 0 ? 0.0 : s; }

static void print_hits(cli *c, const kd_search_hit *h, size_t n) {
    cli_buf *b = &c->out;
    if (c->json) {
        cli_buf_puts(b, "{\"results\":[");
        for (size_t i = 0; i < n; i++) {
            cli_buf_puts(b, i ? ",{" : "{");
            json_names(b, h[i].ns, h[i].key);
            cli_buf_printf(b, ",\"score\":%.17g,", shown_score(h[i].score));
            cli_json_key(b, "version_id");
            cli_json_hex(b, h[i].version_id);
            cli_buf_puts(b, "}");
        }
        cli_buf_puts(b, "]}\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        kd_hex(h[i].version_id, hex);
        cli_buf_printf(b, "%.6f  %s/%s  %.12s\n", shown_score(h[i].score), h[i].ns, h[i].key, hex);
    }
}

int cli_cmd_search(cli *c) {
    const char *ns = c->npos ? c->pos[0] : NULL;
    kd_search_opts o;
    cli_search_text text = {0};
    kd_query *filter = NULL, *meta_filter = NULL;
    kd_search_hit *hits = NULL;
    size_t n = 0;
    float *v = NULL;
    size_t dim = 0;
    int64_t ts = 0;
    int rc, code;

    kd_search_opts_init(&o);
    if (ns && (rc = kd_valid_namespace(ns, 0)) != KD_OK) {
        code = cli_fail_kd(c, rc, NULL);
        goto out;
    }
    if ((code = parse_search_opts(c, &o)) != 0) goto out;
    if ((code = value_filter(c, &text.filter)) != 0) goto out;
    if (c->nmeta_filters > 1) {
        code = cli_fail(c, CLI_RC_USAGE,
                        "--meta-filter given twice (join the conditions with 'and')");
        goto out;
    }
    text.meta_filter = c->meta_filter;
    if ((code = load_vector(c, &v, &dim)) != 0) goto out;
    if ((code = build_filter(c, "--filter", text.filter, &filter)) != 0) goto out;
    if ((code = build_filter(c, "--meta-filter", text.meta_filter, &meta_filter)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    if (c->at) {
        if ((code = parse_at(c, &ts)) != 0) goto out;
        o.at = ts;
        if (ts == CLI_TS_SERVER) text.at_spec = c->at;
    }
    o.ns = ns;
    o.vector = v;
    o.dim = dim;
    o.filter = filter;
    o.meta_filter = meta_filter;
    rc = cli_op_search(c, &o, &text, &hits, &n);
    if (rc != KD_OK) {
        code = cli_fail_kd(c, rc, "search");
        goto out;
    }
    print_hits(c, hits, n);
    code = 0;
out:
    kd_search_free(hits, n);
    kd_query_free(filter);
    kd_query_free(meta_filter);
    free(v);
    return code;
}
