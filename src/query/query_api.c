/*
** query_api.c — building a kd_query: the kd_query_* setters, the JSON form the HTTP API
** and views use (kd_query_from_json / kd_query_to_json), and deep copies.
**
** The JSON form is what a view stores in `_views`, so kd_query_to_json must write
** everything kd_query_from_json reads, and read back to the same query.
**
** May call: query/filter, json, base, db (kd_parse_time for "at").
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

int kd_query_new(kd_query **out) {
    kd__err_clear();
    if (!out) return kd__err(KD_INVALID, "missing query pointer");
    kd_query *q = kd__calloc(1, sizeof *q);
    if (!q) return kd__err(KD_NOMEM, "out of memory");
    q->limit = KD_QUERY_ALL;
    *out = q;
    return KD_OK;
}

void kd_query_free(kd_query *q) {
    if (!q) return;
    kd__filter_free(q->filter);
    for (size_t i = 0; i < q->nsort; i++) kd__path_free(&q->sort[i].path);
    kd__free(q->sort);
    for (size_t i = 0; i < q->nselect; i++) kd__path_free(&q->select[i]);
    kd__free(q->select);
    for (size_t i = 0; i < q->nagg; i++) {
        if (q->agg[i].fn != KD_AGG_COUNT) kd__path_free(&q->agg[i].path);
        kd__free(q->agg[i].name);
    }
    kd__free(q->agg);
    if (q->has_group) kd__path_free(&q->group);
    kd__free(q);
}

int kd_query_set_filter(kd_query *q, const char *expr) {
    kd__err_clear();
    if (!q || !expr) return kd__err(KD_INVALID, "missing query or filter");
    kd_filter *f = NULL;
    int rc = kd__filter_parse(expr, strlen(expr), &f);
    if (rc != KD_OK) return rc;
    kd__filter_free(q->filter);
    q->filter = f;
    return KD_OK;
}

int kd_query_set_filter_json(kd_query *q, const char *json, size_t len) {
    kd__err_clear();
    if (!q || !json) return kd__err(KD_INVALID, "missing query or filter");
    kd_filter *f = NULL;
    int rc = kd__filter_parse_json(json, len, &f);
    if (rc != KD_OK) return rc;
    kd__filter_free(q->filter);
    q->filter = f;
    return KD_OK;
}

static int grow(void **arr, size_t n, size_t elem) {
    void *p = kd__realloc(*arr, (n + 1) * elem);
    if (!p) return kd__err(KD_NOMEM, "out of memory");
    *arr = p;
    return KD_OK;
}

/* The three ways a parsed path joins a query, shared by the setters and the JSON form.
** Each takes ownership of *p (freed on failure). */
static int push_sort(kd_query *q, kd_path *p, int desc) {
    int rc = grow((void **)&q->sort, q->nsort, sizeof *q->sort);
    if (rc != KD_OK) {
        kd__path_free(p);
        return rc;
    }
    q->sort[q->nsort].path = *p;
    q->sort[q->nsort++].desc = desc != 0;
    return KD_OK;
}

static int push_select(kd_query *q, kd_path *p) {
    int rc = grow((void **)&q->select, q->nselect, sizeof *q->select);
    if (rc != KD_OK) {
        kd__path_free(p);
        return rc;
    }
    q->select[q->nselect++] = *p;
    return KD_OK;
}

static void set_group(kd_query *q, kd_path *p) {
    if (q->has_group) kd__path_free(&q->group);
    q->group = *p;
    q->has_group = 1;
}

static int parse_field(const char *what, const char *field, kd_path *out) {
    if (!field) return kd__err(KD_INVALID, "%s needs a field", what);
    int rc = kd__path_parse(field, strlen(field), out);
    if (rc == KD_INVALID) {
        char m[400];
        snprintf(m, sizeof m, "%s", kd__errmsg_get());
        return kd__err(KD_INVALID, "%s: %s", what, m);
    }
    return rc;
}

int kd_query_add_sort(kd_query *q, const char *field, int descending) {
    kd__err_clear();
    if (!q) return kd__err(KD_INVALID, "missing query");
    kd_path p;
    int rc = parse_field("sort", field, &p);
    return rc != KD_OK ? rc : push_sort(q, &p, descending);
}

void kd_query_set_page(kd_query *q, size_t offset, size_t limit) {
    if (!q) return;
    q->offset = offset;
    q->limit = limit;
    q->has_page = 1;
}

int kd_query_add_select(kd_query *q, const char *field) {
    kd__err_clear();
    if (!q) return kd__err(KD_INVALID, "missing query");
    kd_path p;
    int rc = parse_field("select", field, &p);
    return rc != KD_OK ? rc : push_select(q, &p);
}

static const char *const AGG_NAMES[] = {"count", "sum", "avg", "min", "max", "distinct"};

int kd_query_add_aggregate(kd_query *q, const char *fn, const char *field) {
    kd__err_clear();
    if (!q || !fn) return kd__err(KD_INVALID, "missing query or aggregation");
    int f = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(fn, AGG_NAMES[i]) == 0) f = i;
    if (f < 0)
        return kd__err(KD_INVALID, "unknown aggregation \"%.64s\" (expected count, sum, avg, min, max or distinct)", fn);
    kd_agg a;
    memset(&a, 0, sizeof a);
    a.fn = (kd_aggfn)f;
    kd_buf name = KD_BUF_INIT;
    int rc = KD_OK;
    if (a.fn == KD_AGG_COUNT) {
        if (field && *field) return kd__err(KD_INVALID, "count takes no field");
        kd__buf_puts(&name, "count");
    } else {
        if (!field || !*field) return kd__err(KD_INVALID, "%s needs a field", fn);
        if ((rc = parse_field(fn, field, &a.path)) != KD_OK) return rc;
        kd__buf_printf(&name, "%s(", fn);
        kd__path_write(&a.path, &name);
        kd__buf_putc(&name, ')');
    }
    if (name.oom || !(a.name = kd__buf_take(&name, NULL))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < q->nagg; i++)
        if (strcmp(q->agg[i].name, a.name) == 0) { /* asked twice: once is enough */
            kd__free(a.name);
            if (a.fn != KD_AGG_COUNT) kd__path_free(&a.path);
            return KD_OK;
        }
    if ((rc = grow((void **)&q->agg, q->nagg, sizeof *q->agg)) != KD_OK) goto fail;
    q->agg[q->nagg++] = a;
    return KD_OK;
fail:
    kd__buf_free(&name);
    kd__free(a.name);
    if (a.fn != KD_AGG_COUNT) kd__path_free(&a.path);
    return rc;
}

int kd_query_set_group_by(kd_query *q, const char *field) {
    kd__err_clear();
    if (!q) return kd__err(KD_INVALID, "missing query");
    kd_path p;
    int rc = parse_field("group by", field, &p);
    if (rc == KD_OK) set_group(q, &p);
    return rc;
}

void kd_query_set_at(kd_query *q, int64_t ts) {
    if (!q) return;
    q->has_at = 1;
    q->at = ts;
}

int kd_query_filter_text(const kd_query *q, char **out) {
    kd__err_clear();
    if (!q || !out) return kd__err(KD_INVALID, "missing query");
    kd_buf b = KD_BUF_INIT;
    if (q->filter) kd__filter_write_text(q->filter, &b);
    else kd__buf_puts(&b, "");
    if (b.oom || !(*out = kd__buf_take(&b, NULL))) {
        kd__buf_free(&b);
        return kd__err(KD_NOMEM, "out of memory");
    }
    return KD_OK;
}

/* ---- JSON form ------------------------------------------------------------------------ */

static void write_path_json(kd_buf *b, const kd_path *p) {
    kd_buf t = KD_BUF_INIT;
    kd__path_write(p, &t);
    kd__json_write_string(b, t.p ? t.p : "", t.len);
    if (t.oom) b->oom = 1;
    kd__buf_free(&t);
}

int kd_query_to_json(const kd_query *q, char **out, size_t *len) {
    kd__err_clear();
    if (!q || !out) return kd__err(KD_INVALID, "missing query");
    kd_buf b = KD_BUF_INIT;
    kd__buf_putc(&b, '{');
    int first = 1;
#define MEMBER(name) (kd__buf_puts(&b, first ? "\"" name "\":" : ",\"" name "\":"), first = 0)
    if (q->nagg) {
        MEMBER("aggregate");
        kd__buf_putc(&b, '[');
        for (size_t i = 0; i < q->nagg; i++) {
            if (i) kd__buf_putc(&b, ',');
            kd__json_write_string(&b, q->agg[i].name, strlen(q->agg[i].name));
        }
        kd__buf_putc(&b, ']');
    }
    if (q->has_at) {
        MEMBER("at");
        kd__buf_printf(&b, "%lld", (long long)q->at);
    }
    if (q->filter) {
        MEMBER("filter");
        kd__filter_write_json(q->filter, &b);
    }
    if (q->has_group) {
        MEMBER("group_by");
        write_path_json(&b, &q->group);
    }
    if (q->has_page && q->limit != KD_QUERY_ALL) {
        MEMBER("limit");
        kd__buf_printf(&b, "%zu", q->limit);
    }
    if (q->has_page && q->offset) {
        MEMBER("offset");
        kd__buf_printf(&b, "%zu", q->offset);
    }
    if (q->nselect) {
        MEMBER("select");
        kd__buf_putc(&b, '[');
        for (size_t i = 0; i < q->nselect; i++) {
            if (i) kd__buf_putc(&b, ',');
            write_path_json(&b, &q->select[i]);
        }
        kd__buf_putc(&b, ']');
    }
    if (q->nsort) {
        MEMBER("sort");
        kd__buf_putc(&b, '[');
        for (size_t i = 0; i < q->nsort; i++) {
            if (i) kd__buf_putc(&b, ',');
            kd__buf_puts(&b, "{\"field\":");
            write_path_json(&b, &q->sort[i].path);
            kd__buf_puts(&b, q->sort[i].desc ? ",\"order\":\"desc\"}" : ",\"order\":\"asc\"}");
        }
        kd__buf_putc(&b, ']');
    }
#undef MEMBER
    kd__buf_putc(&b, '}');
    if (b.oom) {
        kd__buf_free(&b);
        return kd__err(KD_NOMEM, "out of memory");
    }
    /* Canonicalize: member order and number spelling as everywhere else. */
    kd_buf c = KD_BUF_INIT;
    int rc = kd__json_canonicalize(b.p, b.len, &c, NULL);
    kd__buf_free(&b);
    if (rc != KD_OK) {
        kd__buf_free(&c);
        return rc == KD_NOMEM ? kd__err(KD_NOMEM, "out of memory") : kd__err(KD_ERROR, "internal error: query JSON");
    }
    size_t l;
    *out = kd__buf_take(&c, &l);
    if (len) *len = l;
    return KD_OK;
}

/* A C string copy of a JSON string member (NUL inside is refused). */
static int json_cstr(const kd_json *v, const char *what, char **out) {
    if (v->type != KD_JSTRING) return kd__err(KD_INVALID, "invalid query: \"%s\" must be a string", what);
    if (strlen(v->u.str.s) != v->u.str.len) return kd__err(KD_INVALID, "invalid query: \"%s\" holds a NUL", what);
    *out = v->u.str.s;
    return KD_OK;
}

static int json_size(const kd_json *v, const char *what, size_t *out) {
    if (v->type != KD_JINT || v->u.i < 0)
        return kd__err(KD_INVALID, "invalid query: \"%s\" must be a non-negative integer", what);
    *out = (size_t)v->u.i;
    return KD_OK;
}

/* "sort": ["age", "age:desc", {"field":"age","order":"desc"}, {"field":["a.b",0]}] */
static int sort_from_json(kd_query *q, const kd_json *v) {
    if (v->type == KD_JSTRING) {
        kd_json one = *v;
        kd_json *arr[1] = {&one};
        kd_json wrap;
        wrap.type = KD_JARRAY;
        wrap.u.arr.v = arr;
        wrap.u.arr.n = 1;
        return sort_from_json(q, &wrap);
    }
    if (v->type != KD_JARRAY) return kd__err(KD_INVALID, "invalid query: \"sort\" must be an array");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const kd_json *e = v->u.arr.v[i];
        int rc, desc = 0;
        kd_path p;
        if (e->type == KD_JSTRING) {
            char *s = NULL;
            if ((rc = json_cstr(e, "sort", &s)) != KD_OK) return rc;
            size_t n = strlen(s);
            if (n > 5 && strcmp(s + n - 5, ":desc") == 0) desc = 1, n -= 5;
            else if (n > 4 && strcmp(s + n - 4, ":asc") == 0) n -= 4;
            if ((rc = kd__path_parse(s, n, &p)) != KD_OK) return rc;
        } else if (e->type == KD_JOBJECT) {
            const kd_json *f = kd__json_get(e, "field", 5), *o = kd__json_get(e, "order", 5);
            if (!f) return kd__err(KD_INVALID, "invalid query: sort[%zu] has no \"field\"", i);
            if (e->u.obj.n != 1u + (o != NULL))
                return kd__err(KD_INVALID, "invalid query: sort[%zu] takes only \"field\" and \"order\"", i);
            if (o) {
                if (o->type != KD_JSTRING || (strcmp(o->u.str.s, "asc") && strcmp(o->u.str.s, "desc")))
                    return kd__err(KD_INVALID, "invalid query: sort[%zu].order must be \"asc\" or \"desc\"", i);
                desc = o->u.str.s[0] == 'd';
            }
            if ((rc = kd__path_from_json(f, &p)) != KD_OK) return rc;
        } else {
            return kd__err(KD_INVALID, "invalid query: sort[%zu] must be a string or an object", i);
        }
        if ((rc = push_sort(q, &p, desc)) != KD_OK) return rc;
    }
    return KD_OK;
}

/* "aggregate": ["count", "sum(price)", {"fn":"avg","field":"age"}] */
static int agg_from_json(kd_query *q, const kd_json *v) {
    if (v->type != KD_JARRAY) return kd__err(KD_INVALID, "invalid query: \"aggregate\" must be an array");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const kd_json *e = v->u.arr.v[i];
        int rc;
        if (e->type == KD_JSTRING) {
            char *s = NULL;
            if ((rc = json_cstr(e, "aggregate", &s)) != KD_OK) return rc;
            char *open = strchr(s, '(');
            size_t n = strlen(s);
            if (!open) {
                rc = kd_query_add_aggregate(q, s, NULL);
            } else {
                if (s[n - 1] != ')')
                    return kd__err(KD_INVALID, "invalid query: aggregate[%zu] \"%.64s\": expected fn(field)", i, s);
                char fn[16], *field = kd__strndup(open + 1, (size_t)(s + n - 1 - (open + 1)));
                if (!field) return kd__err(KD_NOMEM, "out of memory");
                snprintf(fn, sizeof fn, "%.*s", (int)(open - s), s);
                rc = (size_t)(open - s) >= sizeof fn ? kd__err(KD_INVALID, "unknown aggregation \"%.64s\"", s)
                                                     : kd_query_add_aggregate(q, fn, field);
                kd__free(field);
            }
        } else if (e->type == KD_JOBJECT) {
            const kd_json *f = kd__json_get(e, "fn", 2), *fld = kd__json_get(e, "field", 5);
            char *fs = NULL, *flds = NULL;
            if (!f || (rc = json_cstr(f, "fn", &fs)) != KD_OK)
                return kd__err(KD_INVALID, "invalid query: aggregate[%zu] needs \"fn\"", i);
            if (fld && fld->type != KD_JSTRING)
                return kd__err(KD_INVALID, "invalid query: aggregate[%zu].field must be a string", i);
            if (fld && (rc = json_cstr(fld, "field", &flds)) != KD_OK) return rc;
            rc = kd_query_add_aggregate(q, fs, flds);
        } else {
            return kd__err(KD_INVALID, "invalid query: aggregate[%zu] must be a string or an object", i);
        }
        if (rc != KD_OK) return rc;
    }
    return KD_OK;
}

static int select_from_json(kd_query *q, const kd_json *v) {
    if (v->type != KD_JARRAY) return kd__err(KD_INVALID, "invalid query: \"select\" must be an array");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        kd_path p;
        int rc = kd__path_from_json(v->u.arr.v[i], &p);
        if (rc == KD_OK) rc = push_select(q, &p);
        if (rc != KD_OK) return rc;
    }
    return KD_OK;
}

static int member_from_json(kd_db *db, kd_query *q, const kd_jmember *m) {
    const char *k = m->key;
    const kd_json *v = m->val;
    int rc;
    if (v->type == KD_JNULL) return KD_OK; /* an absent member */
    if (strcmp(k, "filter") == 0) {
        kd_filter *f = NULL;
        if (v->type == KD_JSTRING) {
            rc = kd__filter_parse(v->u.str.s, v->u.str.len, &f);
        } else {
            rc = kd__filter_from_json(v, &f);
        }
        if (rc != KD_OK) return rc;
        kd__filter_free(q->filter);
        q->filter = f;
        return KD_OK;
    }
    if (strcmp(k, "sort") == 0) return sort_from_json(q, v);
    if (strcmp(k, "limit") == 0) {
        q->has_page = 1;
        return json_size(v, "limit", &q->limit);
    }
    if (strcmp(k, "offset") == 0) {
        q->has_page = 1;
        return json_size(v, "offset", &q->offset);
    }
    if (strcmp(k, "select") == 0) return select_from_json(q, v);
    if (strcmp(k, "aggregate") == 0) return agg_from_json(q, v);
    if (strcmp(k, "group_by") == 0) {
        kd_path p;
        if ((rc = kd__path_from_json(v, &p)) != KD_OK) return rc;
        set_group(q, &p);
        return KD_OK;
    }
    if (strcmp(k, "at") == 0) {
        if (v->type == KD_JINT) {
            kd_query_set_at(q, v->u.i);
            return KD_OK;
        }
        char *s = NULL;
        if ((rc = json_cstr(v, "at", &s)) != KD_OK) return rc;
        int64_t ts;
        if ((rc = kd_parse_time(db, s, &ts)) != KD_OK) return rc;
        kd_query_set_at(q, ts);
        return KD_OK;
    }
    return kd__err(KD_INVALID, "invalid query: unknown member \"%.64s\" (expected filter, sort, limit, offset, "
                               "select, aggregate, group_by or at)", k);
}

int kd_query_from_json(kd_db *db, const char *json, size_t len, kd_query **out) {
    kd__err_clear();
    if (!out) return kd__err(KD_INVALID, "missing query pointer");
    *out = NULL;
    if (!json) return kd__err(KD_INVALID, "missing query");
    kd_json *v = NULL;
    kd_query *q = NULL;
    kd_json_err jerr;
    int rc = kd__json_parse(json, len, &v, &jerr);
    if (rc == KD_INVALID) return kd__err(KD_INVALID, "invalid query: bad JSON at byte %zu: %s", jerr.pos, jerr.msg);
    if (rc != KD_OK) return rc;
    if (v->type != KD_JOBJECT) {
        rc = kd__err(KD_INVALID, "invalid query: expected a JSON object");
        goto out;
    }
    if ((rc = kd_query_new(&q)) != KD_OK) goto out;
    for (size_t i = 0; i < v->u.obj.n && rc == KD_OK; i++) rc = member_from_json(db, q, &v->u.obj.m[i]);
out:
    kd__json_free(v);
    if (rc != KD_OK) kd_query_free(q);
    else *out = q;
    return rc;
}

int kd__query_copy(const kd_query *src, kd_query **dst) {
    char *j = NULL;
    size_t n;
    int rc = kd_query_to_json(src, &j, &n);
    if (rc == KD_OK) rc = kd_query_from_json(NULL, j, n, dst);
    kd__free(j);
    return rc;
}
