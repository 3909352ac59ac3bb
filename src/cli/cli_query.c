/*
** cli_query.c — `kdelta query` and `kdelta view`: queries over the current (or past)
** values of a namespace, and materialized views (create, list, show, query, refresh,
** delete).
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h (the database, local or
** remote), the C library.
**
** Both commands build a kd_query from the command-line options in the order they were
** given (sort keys apply in turn) before the database is opened: the filter is parsed by
** kd_query_set_filter and every field by the library, so a syntax error (reported with
** its column) or a bad regex writes nothing. With --json a result is printed exactly as
** kd_result_to_json writes it; for people, one line per record (key, then the compact
** value), `total: N`, and the aggregations as `name: value` lines or, with --group-by, a
** table with one row per group.
**
** The aggregation object comes back as canonical JSON and there is no public JSON tree,
** so the human rendering walks it with the small reader below. Canonical text keeps the
** reader simple: no whitespace, strings escape only `"`, `\` and control characters.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_ops.h"

/* ---- reading canonical JSON ------------------------------------------------------------ */

/* A span of JSON text. */
typedef struct jspan {
    const char *p;
    size_t len;
} jspan;

/* The next member of the object s[0..n): *pos is 0 before the first call. Sets *name to
** the member's string literal (quotes included) and *val to its value. Returns 0 at the
** end (or on anything that is not an object). */
static int next_member(const char *s, size_t n, size_t *pos, jspan *name, jspan *val) {
    size_t i = *pos;
    if (i == 0) {
        if (n < 2 || s[0] != '{') return 0;
        i = 1;
    } else if (i < n && s[i] == ',') {
        i++;
    }
    if (i >= n || s[i] != '"') return 0;
    size_t e = cli_json_skip_string(s, i, n);
    if (e >= n || s[e] != ':') return 0;
    name->p = s + i;
    name->len = e - i;
    i = e + 1;
    e = cli_json_skip_value(s, i, n);
    val->p = s + i;
    val->len = e - i;
    *pos = e;
    return 1;
}

/* The next element of the array s[0..n), as next_member. */
static int next_element(const char *s, size_t n, size_t *pos, jspan *val) {
    size_t i = *pos;
    if (i == 0) {
        if (n < 2 || s[0] != '[') return 0;
        i = 1;
    } else if (i < n && s[i] == ',') {
        i++;
    }
    if (i >= n || s[i] == ']') return 0;
    size_t e = cli_json_skip_value(s, i, n);
    val->p = s + i;
    val->len = e - i;
    *pos = e;
    return 1;
}

static int span_is(jspan a, const char *lit) {
    return a.len == strlen(lit) && memcmp(a.p, lit, a.len) == 0;
}

/* The value of the member whose literal name is `name` (quotes included). */
static int find_member(jspan obj, jspan name, jspan *val) {
    size_t pos = 0;
    jspan k, v;
    while (next_member(obj.p, obj.len, &pos, &k, &v)) {
        if (k.len == name.len && memcmp(k.p, name.p, k.len) == 0) {
            *val = v;
            return 1;
        }
    }
    return 0;
}

/* A member name for people: the string without its quotes when it holds no escape (the
** names here are "count", "sum(price)", ...), else the literal as it is. */
static jspan name_text(jspan lit) {
    if (lit.len >= 2 && !memchr(lit.p, '\\', lit.len)) return (jspan){lit.p + 1, lit.len - 2};
    return lit;
}

/* Width on a terminal, counted in UTF-8 characters (good enough for alignment). */
static size_t text_width(const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) w++;
    return w;
}

/* Appends s[0..n) padded with spaces to width w. Control characters (a key or a
** description may hold a newline) become spaces so that a table stays a table. */
static void add_cell(cli_buf *b, const char *s, size_t n, size_t w) {
    size_t tw = text_width(s, n);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20) cli_buf_add(b, " ", 1);
        else cli_buf_add(b, s + i, 1);
    }
    for (; tw < w; tw++) cli_buf_add(b, " ", 1);
}

/* ---- printing a result ----------------------------------------------------------------- */

/* Keys longer than this do not widen the key column of human output. */
#define KEY_COL_MAX 24

static void human_records(cli_buf *b, const kd_result *r) {
    size_t w = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t kw = text_width(r->records[i].key, strlen(r->records[i].key));
        if (kw > w && kw <= KEY_COL_MAX) w = kw;
    }
    for (size_t i = 0; i < r->n; i++) {
        const kd_record *rec = &r->records[i];
        add_cell(b, rec->key, strlen(rec->key), w);
        cli_buf_add(b, "  ", 2);
        if (rec->value) cli_buf_add(b, rec->value, rec->value_len);
        else cli_buf_puts(b, "null");
        cli_buf_add(b, "\n", 1);
    }
}

/* The groups of an aggregation ([{"key":..,"count":..,...},...]) as a table: the group's
** value, then one column per aggregation, in the (sorted) order of the first group. */
static int human_groups(cli *c, jspan groups, const char *group_field) {
    cli_buf *b = &c->out;
    jspan first = {0}, g, k, v, *cols = NULL;
    size_t ncols = 0, ngroups = 0, pos = 0, *w = NULL;
    const jspan key_name = {"\"key\"", 5};
    const char *head = group_field ? group_field : "group";
    int code = 0;

    while (next_element(groups.p, groups.len, &pos, &g)) {
        if (ngroups++ == 0) first = g;
    }
    cli_buf_printf(b, "groups: %zu\n", ngroups);
    if (ngroups == 0) return 0;
    pos = 0;
    while (next_member(first.p, first.len, &pos, &k, &v)) ncols++;
    cols = calloc(ncols + 1, sizeof *cols);
    w = calloc(ncols + 1, sizeof *w);
    if (!cols || !w) {
        code = cli_fail(c, KD_NOMEM, "out of memory");
        goto out;
    }
    /* Column 0 is the group's value; the others the aggregations, "key" left out. */
    cols[0] = key_name;
    w[0] = text_width(head, strlen(head));
    ncols = 1;
    pos = 0;
    while (next_member(first.p, first.len, &pos, &k, &v)) {
        if (span_is(k, "\"key\"")) continue;
        cols[ncols] = k;
        jspan t = name_text(k);
        w[ncols++] = text_width(t.p, t.len);
    }
    pos = 0;
    while (next_element(groups.p, groups.len, &pos, &g)) {
        for (size_t j = 0; j < ncols; j++) {
            if (find_member(g, cols[j], &v) && text_width(v.p, v.len) > w[j])
                w[j] = text_width(v.p, v.len);
        }
    }
    cli_buf_add(b, "  ", 2);
    add_cell(b, head, strlen(head), w[0]);
    for (size_t j = 1; j < ncols; j++) {
        jspan t = name_text(cols[j]);
        cli_buf_add(b, "  ", 2);
        add_cell(b, t.p, t.len, j + 1 < ncols ? w[j] : 0);
    }
    cli_buf_add(b, "\n", 1);
    pos = 0;
    while (next_element(groups.p, groups.len, &pos, &g)) {
        for (size_t j = 0; j < ncols; j++) {
            if (!find_member(g, cols[j], &v)) v = (jspan){"-", 1};
            cli_buf_add(b, "  ", 2);
            add_cell(b, v.p, v.len, j + 1 < ncols ? w[j] : 0);
        }
        cli_buf_add(b, "\n", 1);
    }
out:
    free(cols);
    free(w);
    return code;
}

/* The aggregation object: `name: value` lines, and the groups as a table. */
static int human_aggregation(cli *c, const char *agg, size_t len, const char *group_field) {
    size_t pos = 0;
    jspan k, v;
    int code;
    while (next_member(agg, len, &pos, &k, &v)) {
        if (span_is(k, "\"groups\"") && v.len && v.p[0] == '[') {
            if ((code = human_groups(c, v, group_field)) != 0) return code;
            continue;
        }
        jspan t = name_text(k);
        cli_buf_add(&c->out, t.p, t.len);
        cli_buf_add(&c->out, ": ", 2);
        cli_buf_add(&c->out, v.p, v.len);
        cli_buf_add(&c->out, "\n", 1);
    }
    return 0;
}

/* Prints r: the JSON of kd_result_to_json, or records, total and aggregations. */
static int print_result(cli *c, const kd_result *r, const char *group_field) {
    if (c->json) {
        char *json = NULL;
        size_t len = 0;
        int rc = kd_result_to_json(r, &json, &len);
        if (rc != KD_OK) return cli_fail_kd(c, rc, "formatting the result");
        cli_buf_add(&c->out, json, len);
        if (len == 0 || json[len - 1] != '\n') cli_buf_add(&c->out, "\n", 1);
        kd_free(json);
        return 0;
    }
    human_records(&c->out, r);
    cli_buf_printf(&c->out, "total: %llu", (unsigned long long)r->total);
    if (r->n < r->total) cli_buf_printf(&c->out, " (%zu shown)", r->n);
    cli_buf_add(&c->out, "\n", 1);
    if (r->aggregation) return human_aggregation(c, r->aggregation, r->aggregation_len, group_field);
    return 0;
}

/* ---- building a query from the options ------------------------------------------------- */

/* Where a field list or a sort spec may be split: outside `backticks`. Returns the last
** (or first, when !last) occurrence of ch in s outside backticks, or NULL. */
static const char *find_outside_ticks(const char *s, char ch, int last) {
    const char *found = NULL;
    int in_ticks = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '`') in_ticks = !in_ticks; /* `` inside backticks toggles twice */
        else if (*p == ch && !in_ticks) {
            found = p;
            if (!last) break;
        }
    }
    return found;
}

/* --sort FIELD, FIELD:asc or FIELD:desc. */
static int add_sort(cli *c, kd_query *q, const char *spec) {
    const char *colon = find_outside_ticks(spec, ':', 1);
    size_t flen = colon ? (size_t)(colon - spec) : strlen(spec);
    int desc = 0, rc, code = 0;
    char *field;
    if (colon) {
        if (strcasecmp(colon + 1, "desc") == 0) desc = 1;
        else if (strcasecmp(colon + 1, "asc") != 0)
            return cli_fail(c, CLI_RC_USAGE,
                            "invalid --sort '%s': unknown order '%s' (want FIELD, FIELD:asc or "
                            "FIELD:desc)",
                            spec, colon + 1);
    }
    if (flen == 0)
        return cli_fail(c, CLI_RC_USAGE, "invalid --sort '%s': no field (want FIELD[:asc|:desc])",
                        spec);
    field = strndup(spec, flen);
    if (!field) return cli_fail(c, KD_NOMEM, "out of memory");
    rc = kd_query_add_sort(q, field, desc);
    if (rc != KD_OK) {
        char what[300];
        snprintf(what, sizeof what, "invalid --sort '%.200s'", spec);
        code = cli_fail_kd(c, rc, what);
    }
    free(field);
    return code;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* --select F,F,...: fields separated by commas outside backticks, spaces around ignored. */
static int add_select(cli *c, kd_query *q, const char *list) {
    const char *p = list;
    for (;;) {
        const char *comma = find_outside_ticks(p, ',', 0);
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *z = end;
        while (a < z && is_space(*a)) a++;
        while (z > a && is_space(z[-1])) z--;
        if (a == z)
            return cli_fail(c, CLI_RC_USAGE, "invalid --select '%s': empty field (want F,F,...)",
                            list);
        char *field = strndup(a, (size_t)(z - a));
        if (!field) return cli_fail(c, KD_NOMEM, "out of memory");
        int rc = kd_query_add_select(q, field);
        free(field);
        if (rc != KD_OK) {
            char what[300];
            snprintf(what, sizeof what, "invalid --select '%.200s'", list);
            return cli_fail_kd(c, rc, what);
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

static const char *agg_fn(int kind) {
    switch (kind) {
    case CLI_Q_COUNT: return "count";
    case CLI_Q_SUM: return "sum";
    case CLI_Q_AVG: return "avg";
    case CLI_Q_MIN: return "min";
    case CLI_Q_MAX: return "max";
    case CLI_Q_DISTINCT: return "distinct";
    default: return NULL;
    }
}

/* One query option applied to q; seen_filter and seen_group catch options given twice. */
static int apply_qopt(cli *c, kd_query *q, const cli_qopt *o, int *seen_filter, int *seen_group) {
    char what[300];
    int rc;
    switch (o->kind) {
    case CLI_Q_FILTER:
        if ((*seen_filter)++)
            return cli_fail(c, CLI_RC_USAGE, "--filter given twice (join the conditions with 'and')");
        rc = kd_query_set_filter(q, o->val);
        snprintf(what, sizeof what, "invalid --filter '%.200s'", o->val);
        break;
    case CLI_Q_SORT: return add_sort(c, q, o->val);
    case CLI_Q_SELECT: return add_select(c, q, o->val);
    case CLI_Q_GROUP_BY:
        if ((*seen_group)++) return cli_fail(c, CLI_RC_USAGE, "--group-by given twice");
        rc = kd_query_set_group_by(q, o->val);
        snprintf(what, sizeof what, "invalid --group-by '%.200s'", o->val);
        break;
    default:
        rc = kd_query_add_aggregate(q, agg_fn(o->kind), o->val);
        if (o->val) snprintf(what, sizeof what, "invalid --%s '%.200s'", o->name, o->val);
        else snprintf(what, sizeof what, "invalid --%s", o->name);
        break;
    }
    return rc == KD_OK ? 0 : cli_fail_kd(c, rc, what);
}

/* The query the options describe (filter, sorts, page, selection, aggregations; --at is
** applied later, once the database can resolve a version id). */
static int build_query(cli *c, kd_query **out) {
    kd_query *q = NULL;
    int seen_filter = 0, seen_group = 0, code = 0;
    int rc = kd_query_new(&q);
    *out = NULL;
    if (rc != KD_OK) return cli_fail_kd(c, rc, NULL);
    for (int i = 0; i < c->nqopts; i++) {
        if ((code = apply_qopt(c, q, &c->qopts[i], &seen_filter, &seen_group)) != 0) {
            kd_query_free(q);
            return code;
        }
    }
    if (c->has_limit || c->has_offset) {
        size_t limit = KD_QUERY_ALL, offset = SIZE_MAX;
        if (c->has_limit && c->limit < (uint64_t)SIZE_MAX) limit = (size_t)c->limit;
        if (c->offset < (uint64_t)SIZE_MAX) offset = (size_t)c->offset;
        kd_query_set_page(q, offset, limit);
    }
    *out = q;
    return 0;
}

static int has_query_options(const cli *c) { return c->nqopts > 0 || c->has_limit || c->has_offset; }

/* The --group-by field named on the command line, for the head of the groups table. */
static const char *group_field(const cli *c) {
    for (int i = 0; i < c->nqopts; i++)
        if (c->qopts[i].kind == CLI_Q_GROUP_BY) return c->qopts[i].val;
    return NULL;
}

/* ---- query ------------------------------------------------------------------------------- */

int cli_cmd_query(cli *c) {
    const char *ns = c->pos[0];
    kd_query *q = NULL;
    kd_result *r = NULL;
    int64_t ts = 0;
    int rc, code;

    /* System namespaces may be read, as with get and list. */
    if ((rc = kd_valid_namespace(ns, 1)) != KD_OK) {
        code = cli_fail_kd(c, rc, NULL);
        goto out;
    }
    if ((code = build_query(c, &q)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    if (c->at) {
        rc = cli_op_parse_time(c, c->at, &ts);
        if (rc != KD_OK) {
            char what[256];
            snprintf(what, sizeof what, "--at '%.200s'", c->at);
            code = cli_fail_kd(c, rc, what);
            goto out;
        }
        if (ts != CLI_TS_SERVER) kd_query_set_at(q, ts);
    }
    rc = cli_op_query(c, ns, q, c->at && ts == CLI_TS_SERVER ? c->at : NULL, &r);
    if (rc != KD_OK) {
        char what[200];
        snprintf(what, sizeof what, "query %s", ns);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    code = print_result(c, r, group_field(c));
out:
    if (r) kd_result_free(r);
    kd_query_free(q);
    return code;
}

/* ---- views ------------------------------------------------------------------------------- */

/* View names follow the rules of namespace names; the message says "view". */
static int check_view_name(cli *c, const char *name) {
    if (kd_valid_namespace(name, 0) == KD_OK) return 0;
    return cli_fail(c, KD_INVALID,
                    "invalid view name '%.200s' (want 1-128 bytes of A-Z a-z 0-9 _ . -, starting "
                    "with a letter or digit)",
                    name);
}

static int fail_view(cli *c, int rc, const char *what, const char *name) {
    char w[300];
    if (rc == KD_NOTFOUND) return cli_fail(c, KD_NOTFOUND, "view '%.200s' not found", name);
    snprintf(w, sizeof w, "%s view '%.200s'", what, name);
    return cli_fail_kd(c, rc, w);
}

/* The members of a view's JSON description (no braces). */
static void json_view_members(cli_buf *b, const kd_view_info *v) {
    cli_json_key(b, "name");
    cli_json_cstr(b, v->name);
    cli_buf_puts(b, ",");
    cli_json_key(b, "source");
    cli_json_cstr(b, v->source);
    cli_buf_printf(b, ",\"auto_refresh\":%s,\"records\":%llu,", v->auto_refresh ? "true" : "false",
                   (unsigned long long)v->records);
    cli_json_key(b, "description");
    cli_json_cstr(b, v->description ? v->description : "");
    cli_buf_puts(b, ",");
    cli_json_key(b, "filter");
    cli_json_cstr(b, v->filter ? v->filter : "");
    cli_buf_puts(b, ",");
    cli_json_key(b, "query");
    if (v->query && *v->query) cli_buf_puts(b, v->query); /* canonical JSON from the library */
    else cli_buf_puts(b, "null");
    cli_buf_puts(b, ",");
    cli_json_key(b, "created");
    cli_json_time(b, v->created);
    cli_buf_puts(b, ",");
    cli_json_key(b, "refreshed");
    cli_json_time(b, v->refreshed);
}

static const char *refresh_mode(const kd_view_info *v) { return v->auto_refresh ? "auto" : "manual"; }

static int view_create(cli *c) {
    const char *name = c->pos[1], *source = c->pos[2];
    kd_query *q = NULL;
    kd_view_info *info = NULL;
    int rc, code;

    if ((code = check_view_name(c, name)) != 0) goto out;
    if ((rc = kd_valid_namespace(source, 0)) != KD_OK) {
        code = cli_fail_kd(c, rc, "view source");
        goto out;
    }
    if ((code = build_query(c, &q)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    rc = cli_op_view_create(c, name, source, q, c->description, c->auto_refresh, &info);
    if (rc != KD_OK) {
        code = rc == KD_CONFLICT
                   ? cli_fail(c, KD_CONFLICT, "view '%s' already exists (delete it first)", name)
                   : fail_view(c, rc, "cannot create", name);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "name");
        cli_json_cstr(&c->out, info->name);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "source");
        cli_json_cstr(&c->out, info->source);
        cli_buf_printf(&c->out, ",\"auto_refresh\":%s,\"records\":%llu,\"created\":true}\n",
                       info->auto_refresh ? "true" : "false", (unsigned long long)info->records);
    } else {
        cli_buf_printf(&c->out, "Created view %s on %s (%s refresh): %llu record%s\n", info->name,
                       info->source, refresh_mode(info), (unsigned long long)info->records,
                       info->records == 1 ? "" : "s");
    }
    code = 0;
out:
    if (info) kd_view_list_free(info, 1);
    kd_query_free(q);
    return code;
}

static void human_view_table(cli_buf *b, const kd_view_info *v, size_t n) {
    static const char *head[] = {"NAME", "SOURCE", "REFRESH", "RECORDS", "DESCRIPTION"};
    size_t w[4] = {4, 6, 7, 7};
    char num[32];
    for (size_t i = 0; i < n; i++) {
        size_t nw = text_width(v[i].name, strlen(v[i].name));
        size_t sw = text_width(v[i].source, strlen(v[i].source));
        if (nw > w[0]) w[0] = nw;
        if (sw > w[1]) w[1] = sw;
        if ((size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)v[i].records) > w[3])
            w[3] = strlen(num);
    }
    for (int j = 0; j < 5; j++) {
        cli_buf_add(b, "  ", 2);
        add_cell(b, head[j], strlen(head[j]), j < 4 ? w[j] : 0);
    }
    cli_buf_add(b, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        const char *d = v[i].description ? v[i].description : "";
        const char *mode = refresh_mode(&v[i]);
        snprintf(num, sizeof num, "%llu", (unsigned long long)v[i].records);
        cli_buf_add(b, "  ", 2);
        add_cell(b, v[i].name, strlen(v[i].name), w[0]);
        cli_buf_add(b, "  ", 2);
        add_cell(b, v[i].source, strlen(v[i].source), w[1]);
        cli_buf_add(b, "  ", 2);
        add_cell(b, mode, strlen(mode), w[2]);
        cli_buf_add(b, "  ", 2);
        add_cell(b, num, strlen(num), *d ? w[3] : 0);
        if (*d) {
            cli_buf_add(b, "  ", 2);
            add_cell(b, d, strlen(d), 0);
        }
        cli_buf_add(b, "\n", 1);
    }
}

static int view_list(cli *c) {
    kd_view_info *v = NULL;
    size_t n = 0;
    int rc;
    if ((rc = cli_connect(c)) != 0) return rc;
    rc = cli_op_view_list(c, &v, &n);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "listing views");
    if (c->json) {
        cli_buf_puts(&c->out, "{\"views\":[");
        for (size_t i = 0; i < n; i++) {
            cli_buf_puts(&c->out, i ? ",{" : "{");
            json_view_members(&c->out, &v[i]);
            cli_buf_puts(&c->out, "}");
        }
        cli_buf_puts(&c->out, "]}\n");
    } else if (n == 0) {
        cli_buf_puts(&c->out, "No views.\n");
    } else {
        human_view_table(&c->out, v, n);
    }
    if (v) kd_view_list_free(v, n);
    return 0;
}

static int view_show(cli *c) {
    const char *name = c->pos[1];
    kd_view_info *v = NULL;
    char t[32];
    int rc;
    if ((rc = check_view_name(c, name)) != 0) return rc;
    if ((rc = cli_connect(c)) != 0) return rc;
    rc = cli_op_view_get(c, name, &v);
    if (rc != KD_OK) return fail_view(c, rc, "reading", name);
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        json_view_members(&c->out, v);
        cli_buf_puts(&c->out, "}\n");
    } else {
        cli_buf_printf(&c->out, "view:        %s\n", v->name);
        cli_buf_printf(&c->out, "source:      %s\n", v->source);
        cli_buf_printf(&c->out, "refresh:     %s\n",
                       v->auto_refresh ? "auto (current at every commit)"
                                       : "manual (kdelta view refresh)");
        cli_buf_printf(&c->out, "filter:      %s\n", v->filter && *v->filter ? v->filter : "(none)");
        cli_buf_printf(&c->out, "query:       %s\n", v->query ? v->query : "{}");
        cli_buf_printf(&c->out, "records:     %llu\n", (unsigned long long)v->records);
        kd_format_time(v->created, t);
        cli_buf_printf(&c->out, "created:     %s\n", t);
        kd_format_time(v->refreshed, t); /* the commit time of the latest write it reflects */
        cli_buf_printf(&c->out, "as of:       %s\n", t);
        if (v->description && *v->description)
            cli_buf_printf(&c->out, "description: %s\n", v->description);
    }
    kd_view_list_free(v, 1);
    return 0;
}

/* The view's own group-by field (from its query's JSON form), for the head of the groups
** table when the command line does not name one. NULL when there is none or it is not a
** plain string; *owned receives what to free. */
static const char *view_group_field(cli *c, const char *name, char **owned) {
    kd_view_info *v = NULL;
    jspan val;
    const jspan key = {"\"group_by\"", 10};
    *owned = NULL;
    if (cli_op_view_get(c, name, &v) != KD_OK) return NULL;
    if (v->query && find_member((jspan){v->query, strlen(v->query)}, key, &val) && val.len >= 2 &&
        val.p[0] == '"' && !memchr(val.p, '\\', val.len))
        *owned = strndup(val.p + 1, val.len - 2);
    kd_view_list_free(v, 1);
    return *owned;
}

static int view_query(cli *c) {
    const char *name = c->pos[1], *group = group_field(c);
    char *group_owned = NULL;
    kd_query *extra = NULL;
    kd_result *r = NULL;
    int rc, code;
    if ((code = check_view_name(c, name)) != 0) goto out;
    if (has_query_options(c) && (code = build_query(c, &extra)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    rc = cli_op_view_query(c, name, extra, (c->has_limit || c->has_offset) && c->offset == 0, &r);
    if (rc != KD_OK) {
        code = fail_view(c, rc, "cannot query", name);
        goto out;
    }
    if (!group && !c->json && r->aggregation) group = view_group_field(c, name, &group_owned);
    code = print_result(c, r, group);
out:
    if (r) kd_result_free(r);
    kd_query_free(extra);
    free(group_owned);
    return code;
}

static int view_refresh(cli *c) {
    const char *name = c->pos[1];
    kd_view_info *v = NULL;
    char t[32];
    int rc;
    if ((rc = check_view_name(c, name)) != 0) return rc;
    if ((rc = cli_connect(c)) != 0) return rc;
    rc = cli_op_view_refresh(c, name, &v);
    if (rc != KD_OK) return fail_view(c, rc, "cannot refresh", name);
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "name");
        cli_json_cstr(&c->out, v->name);
        cli_buf_printf(&c->out, ",\"refreshed\":true,\"records\":%llu,",
                       (unsigned long long)v->records);
        cli_json_key(&c->out, "as_of");
        cli_json_time(&c->out, v->refreshed);
        cli_buf_puts(&c->out, "}\n");
    } else {
        kd_format_time(v->refreshed, t);
        cli_buf_printf(&c->out, "Refreshed view %s: %llu record%s as of %s\n", v->name,
                       (unsigned long long)v->records, v->records == 1 ? "" : "s", t);
    }
    kd_view_list_free(v, 1);
    return 0;
}

static int view_delete(cli *c) {
    const char *name = c->pos[1];
    int rc;
    if ((rc = check_view_name(c, name)) != 0) return rc;
    if ((rc = cli_connect(c)) != 0) return rc;
    rc = cli_op_view_delete(c, name);
    if (rc != KD_OK) return fail_view(c, rc, "cannot delete", name);
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "name");
        cli_json_cstr(&c->out, name);
        cli_buf_puts(&c->out, ",\"deleted\":true}\n");
    } else {
        cli_buf_printf(&c->out, "Deleted view %s\n", name);
    }
    return 0;
}

#define VIEW_QUERY_OPTS (CLI_OPT_FILTER | CLI_OPT_SORT | CLI_OPT_LIMIT | CLI_OPT_OFFSET | \
                         CLI_OPT_SELECT | CLI_OPT_AGG)

static const struct view_sub {
    const char *name;
    const char *args;
    int nargs;              /* arguments after the subcommand */
    unsigned opts;          /* CLI_OPT_* it takes */
    int (*run)(cli *c);
} view_subs[] = {
    {"create", "NAME NS", 2, VIEW_QUERY_OPTS | CLI_OPT_AUTO_REFRESH | CLI_OPT_DESCRIPTION,
     view_create},
    {"list", "", 0, 0, view_list},
    {"show", "NAME", 1, 0, view_show},
    {"query", "NAME", 1, VIEW_QUERY_OPTS, view_query},
    {"refresh", "NAME", 1, 0, view_refresh},
    {"delete", "NAME", 1, 0, view_delete},
};

int cli_cmd_view(cli *c) {
    const struct view_sub *s = NULL;
    for (size_t i = 0; i < sizeof view_subs / sizeof view_subs[0]; i++)
        if (strcmp(view_subs[i].name, c->pos[0]) == 0) s = &view_subs[i];
    if (!s)
        return cli_fail(c, CLI_RC_USAGE,
                        "unknown view subcommand '%s' (want create, list, show, query, refresh or "
                        "delete; see kdelta view --help)",
                        c->pos[0]);
    if (c->npos - 1 < s->nargs)
        return cli_fail(c, CLI_RC_USAGE, "missing argument for 'view %s' (usage: kdelta view %s %s)",
                        s->name, s->name, s->args);
    if (c->npos - 1 > s->nargs)
        return cli_fail(c, CLI_RC_USAGE,
                        "unexpected argument '%s' for 'view %s' (usage: kdelta view %s%s%s)",
                        c->pos[s->nargs + 1], s->name, s->name, *s->args ? " " : "", s->args);
    unsigned bad = c->opt_seen & ~s->opts;
    if (bad)
        return cli_fail(c, CLI_RC_USAGE,
                        "option '%s' does not apply to 'view %s' (see kdelta view --help)",
                        c->opt_first[__builtin_ctz(bad)], s->name);
    return s->run(c);
}
