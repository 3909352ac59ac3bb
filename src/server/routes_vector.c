/*
** routes_vector.c — the vector-search routes of the HTTP API (docs/http.md, "Vector
** search"): an embedding's PUT, GET (now or ?at=T) and DELETE under
** /api/v1/{ns}/{key}/_embedding, and the similarity search, POST /api/v1/_search (every
** namespace) and POST /api/v1/{ns}/_search (one).
**
** May call: the public API (korudelta.h), libmicrohttpd (responses), the helpers of
** server.c and routes.c (server_int.h), the C library.
**
** Numbers. A vector's components are read from the request body's own text, not from its
** canonical form: canonical JSON writes -0.0 as 0, and floats must come back bit-for-bit.
** Each component is read as a double (strtod: kdelta never calls setlocale, so the decimal
** point is '.') and narrowed to float32; one that is not a number, or that would round to
** infinity as a float32, is refused with its 0-based index. Components are written with
** "%.9g" (enough for any float32 to read back the same, -0.0 as "-0"), scores with "%.17g".
** The rest of a body (model, metadata, filters, ...) is read from its canonical form, which
** kd_json_canonical also validates: the raw walk below runs only on text known to be one
** well-formed JSON object without duplicate members.
**
** Answers are canonical JSON (members in byte order), as everywhere in the API.
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

/* Positions of the named segments: /api/v1/{ns}/{key}/_embedding, /api/v1/{ns}/_search. */
#define SEG_NS 2
#define SEG_KEY 3

#define TOP_K_MAX 1000000
#define EF_SEARCH_MAX 100000

/* A float32 rounds to infinity from here up (FLT_MAX plus half of its ulp; the tie rounds
** to even, which is infinity). */
#define FLT_ROUNDS_TO_INF 0x1.ffffffp+127

static const char put_shape[] = "{\"vector\":[numbers],\"model\",\"metadata\"}";
static const char search_shape[] =
    "{\"vector\":[numbers],\"top_k\",\"metric\",\"threshold\",\"model\",\"filter\",\"meta_filter\","
    "\"at\",\"exact\",\"ef_search\"}";
static const char *const put_members[] = {"vector", "model", "metadata", NULL};
static const char *const search_members[] = {"vector", "top_k", "metric", "threshold", "model",
                                             "filter", "meta_filter", "at", "exact", "ef_search",
                                             NULL};

/* ---- the raw walk of a request body ------------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && is_ws(*p)) p++;
    return p;
}

/* One past the closing quote of the string whose opening quote is *p. */
static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p == end) break;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return end;
}

/* One past the value that starts at p. A flat loop with a depth counter: deep nesting
** costs no stack. */
static const char *skip_value(const char *p, const char *end) {
    long depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '{' || c == '[') {
            depth++;
            p++;
            continue;
        }
        if (depth > 0 && (c == ',' || c == ':' || is_ws(c))) {
            p++;
            continue;
        }
        if (c == '"') p = skip_string(p, end);
        else if (c == '}' || c == ']') depth--, p++;
        else
            while (p < end && *p != ',' && *p != ']' && *p != '}' && !is_ws(*p)) p++; /* scalar */
        if (depth == 0) return p;
    }
    return end;
}

/* Whether the member name whose text (quotes included) is k[0..n) spells name. A name
** holding escapes is compared in its canonical (decoded) form. */
static int name_is(const char *k, size_t n, const char *name) {
    size_t len = strlen(name);
    if (!memchr(k, '\\', n)) return n == len + 2 && memcmp(k + 1, name, len) == 0;
    char *canon = NULL, *dec = NULL;
    size_t cl, dl = 0;
    int same = 0;
    if (kd_json_canonical(k, n, &canon, &cl) == KD_OK &&
        kd_json_string(kd_json_doc(canon, cl), &dec, &dl) == KD_OK)
        same = dl == len && memcmp(dec, name, len) == 0; /* lengths too: "a\u0000b" is not "a" */
    kd_free(canon);
    kd_free(dec);
    return same;
}

/* The text of member name of the object body[0..len), or p == NULL when it has none. */
static kd_json_val raw_member(const char *body, size_t len, const char *name) {
    const char *end = body + len, *p = skip_ws(body, end);
    if (p == end || *p != '{') return (kd_json_val){NULL, 0};
    for (p++;;) {
        p = skip_ws(p, end);
        if (p == end || *p != '"') break; /* '}' */
        const char *k = p;
        p = skip_string(p, end);
        int match = name_is(k, (size_t)(p - k), name);
        p = skip_ws(p, end);
        if (p == end || *p != ':') break;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = skip_value(p, end);
        if (match) return (kd_json_val){v, (size_t)(p - v)};
        p = skip_ws(p, end);
        if (p == end || *p != ',') break;
        p++;
    }
    return (kd_json_val){NULL, 0};
}

/* The float32 vector of a body's "vector" member: a non-empty array of numbers. *v is
** released with free. */
static struct MHD_Response *body_vector(const srv_req *r, float **v, size_t *dim, unsigned *status) {
    kd_json_val arr = raw_member(r->body, r->body_len, "vector");
    const char *end, *p;
    size_t n = 0;
    *v = NULL;
    *dim = 0;
    if (!arr.p)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"vector\" is missing");
    if (arr.p[0] != '[')
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "\"vector\" must be an array of numbers");
    end = arr.p + arr.len;
    /* Count first, then read: the body is bounded by --max-body, the count by the limit. */
    for (p = skip_ws(arr.p + 1, end); p < end && *p != ']'; n++) {
        p = skip_ws(skip_value(p, end), end);
        if (p < end && *p == ',') p = skip_ws(p + 1, end);
    }
    if (n == 0)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"vector\" is empty");
    if (n > KD_EMBED_DIM_MAX)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "the vector has %zu components (limit %d)", n, KD_EMBED_DIM_MAX);
    float *out = malloc(n * sizeof *out);
    if (!out) return srv_fail(status, MHD_HTTP_INTERNAL_SERVER_ERROR, "error", "out of memory");
    p = skip_ws(arr.p + 1, end);
    for (size_t i = 0; i < n; i++) {
        const char *e = skip_value(p, end);
        char *stop = NULL;
        double d = 0;
        /* The text is a valid JSON value: when it starts like a number, strtod reads all of
        ** it (JSON numbers are a subset of strtod's syntax) and stops at its end. */
        int num = *p == '-' || (*p >= '0' && *p <= '9');
        if (num) d = strtod(p, &stop);
        if (!num || stop != e || !isfinite(d) || fabs(d) >= FLT_ROUNDS_TO_INF) {
            free(out);
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                            "vector component %zu is not a finite number", i);
        }
        out[i] = (float)d;
        p = skip_ws(e, end);
        if (p < end && *p == ',') p = skip_ws(p + 1, end);
    }
    *v = out;
    *dim = n;
    return NULL;
}


/* Whether a member is given: present and not null (null reads as absent, as elsewhere). */
static int given(kd_json_val v) {
    int t = kd_json_type(v);
    return t != KD_JSON_MISSING && t != KD_JSON_NULL;
}

/* An integer member from 1 to max. */
static struct MHD_Response *member_count(kd_json_val obj, const char *name, int64_t max,
                                         int64_t *out, unsigned *status) {
    kd_json_val v = kd_json_get(obj, name);
    if (!given(v)) return NULL;
    if (kd_json_int(v, out) != KD_OK || *out < 1 || *out > max)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "\"%s\" must be an integer from 1 to %lld, not %.*s", name, (long long)max,
                        v.len > 64 ? 64 : (int)v.len, v.p);
    return NULL;
}

/* A filter member ("filter", "meta_filter") in the string or the JSON form: read by the
** very code that reads the "filter" of a _query body. *q is NULL when it is absent. */
static struct MHD_Response *member_filter(srv *s, kd_json_val obj, const char *name, kd_query **q,
                                          unsigned *status) {
    kd_json_val v = kd_json_get(obj, name);
    srv_buf b = {0};
    int rc;
    *q = NULL;
    if (!given(v)) return NULL;
    srv_buf_puts(&b, "{\"filter\":");
    srv_buf_add(&b, v.p, v.len);
    srv_buf_puts(&b, "}");
    if (b.oom) {
        srv_buf_free(&b);
        return srv_fail(status, MHD_HTTP_INTERNAL_SERVER_ERROR, "error", "out of memory");
    }
    rc = kd_query_from_json(s->db, b.p, b.len, q);
    srv_buf_free(&b);
    if (rc != KD_OK) return srv_fail_kd(status, rc, name);
    return NULL;
}

/* "at": a time spec string (as ?at=), or microseconds as in a _query body. */
static struct MHD_Response *member_at(srv *s, kd_json_val obj, int64_t *at, unsigned *status) {
    kd_json_val v = kd_json_get(obj, "at");
    char *spec = NULL;
    int rc;
    if (!given(v)) return NULL;
    if (kd_json_type(v) == KD_JSON_NUMBER) {
        if (kd_json_int(v, at) != KD_OK)
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                            "\"at\" must be a time (a string) or an integer of microseconds");
        return NULL;
    }
    if (kd_json_type(v) != KD_JSON_STRING)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"at\" must be a time (a string)");
    if ((rc = kd_json_string(v, &spec, NULL)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    rc = kd_parse_time(s->db, spec, at);
    kd_free(spec);
    if (rc != KD_OK) return srv_fail_kd(status, rc, "at");
    return NULL;
}

static struct MHD_Response *check_names(const srv_req *r, unsigned *status) {
    int rc;
    if ((rc = kd_valid_namespace(r->seg[SEG_NS], 0)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    if ((rc = kd_valid_key(r->seg[SEG_KEY])) != KD_OK) return srv_fail_kd(status, rc, NULL);
    return NULL;
}

/* ---- output ------------------------------------------------------------------------------- */

static void put_str(srv_buf *b, const char *name, const char *s) {
    srv_buf_printf(b, ",\"%s\":", name);
    srv_buf_json_str(b, s, strlen(s));
}

/* ,"seq":N,"timestamp":"...","version_id":"..." — the tail every document here ends with. */
static void put_version_tail(srv_buf *b, uint64_t seq, int64_t ts, const uint8_t id[32]) {
    char t[32], hex[65];
    kd_format_time(ts, t);
    kd_hex(id, hex);
    srv_buf_printf(b, ",\"seq\":%llu,\"timestamp\":\"%s\",\"version_id\":\"%s\"",
                   (unsigned long long)seq, t, hex);
}

/* The answer b with status 200 and the ETag of version id. */
static struct MHD_Response *versioned_response(srv_buf *b, const uint8_t id[32], unsigned *status) {
    char etag[67];
    kd_hex(id, etag + 1);
    etag[0] = etag[65] = '"';
    etag[66] = '\0';
    *status = MHD_HTTP_OK;
    return srv_with_etag(srv_buf_response(b), etag);
}

/* ---- the routes ----------------------------------------------------------------------------- */

struct MHD_Response *srv_h_embedding_put(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->seg[SEG_NS], *key = r->seg[SEG_KEY];
    struct MHD_Response *resp;
    char *canon = NULL, *model = NULL, *meta = NULL;
    size_t clen, dim = 0;
    float *v = NULL;
    kd_json_val doc, mv;
    kd_entry e;
    srv_buf b = {0};
    int rc;
    memset(&e, 0, sizeof e);
    if ((resp = check_names(r, status))) return resp;
    if ((resp = srv_body_object(r, put_shape, &canon, &clen, &doc, status))) return resp;
    if ((resp = srv_only_members(doc, put_members, put_shape, status))) goto out;
    if ((resp = srv_member_string(doc, "model", "", &model, status))) goto out;
    if ((resp = body_vector(r, &v, &dim, status))) goto out;
    mv = kd_json_get(doc, "metadata");
    if (given(mv)) {
        if (!(meta = malloc(mv.len + 1))) {
            resp = srv_fail(status, MHD_HTTP_INTERNAL_SERVER_ERROR, "error", "out of memory");
            goto out;
        }
        memcpy(meta, mv.p, mv.len);
        meta[mv.len] = '\0';
    }
    if ((rc = kd_embed(s->db, ns, key, v, dim, model, meta, &e)) != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        goto out;
    }
    srv_buf_printf(&b, "{\"dim\":%zu", dim);
    put_str(&b, "key", key);
    put_str(&b, "model", model ? model : "default");
    put_str(&b, "namespace", ns);
    put_version_tail(&b, e.seq, e.timestamp, e.version_id);
    srv_buf_puts(&b, "}");
    resp = versioned_response(&b, e.version_id, status);
out:
    kd_entry_clear(&e);
    kd_free(canon);
    kd_free(model);
    free(meta);
    free(v);
    return resp;
}

struct MHD_Response *srv_h_embedding_get(srv *s, srv_req *r, unsigned *status) {
    const char *at = srv_arg(r, "at");
    struct MHD_Response *resp;
    kd_embedding *e = NULL;
    int64_t ts = KD_AT_NOW;
    srv_buf b = {0};
    int rc;
    if ((resp = check_names(r, status))) return resp;
    if (at && (rc = kd_parse_time(s->db, at, &ts)) != KD_OK) return srv_fail_kd(status, rc, "at");
    if ((rc = kd_embedding_get(s->db, r->seg[SEG_NS], r->seg[SEG_KEY], ts, &e)) != KD_OK)
        return srv_fail_kd(status, rc, NULL);
    srv_buf_printf(&b, "{\"dim\":%zu", e->dim);
    put_str(&b, "key", e->key);
    srv_buf_printf(&b, ",\"metadata\":%s", e->metadata ? e->metadata : "null");
    put_str(&b, "model", e->model);
    put_str(&b, "namespace", e->ns);
    {
        char t[32], hex[65];
        kd_format_time(e->timestamp, t);
        kd_hex(e->version_id, hex);
        srv_buf_printf(&b, ",\"seq\":%llu,\"timestamp\":\"%s\",\"vector\":[",
                       (unsigned long long)e->seq, t);
        for (size_t i = 0; i < e->dim; i++)
            srv_buf_printf(&b, i ? ",%.9g" : "%.9g", (double)e->vector[i]);
        srv_buf_printf(&b, "],\"version_id\":\"%s\"}", hex);
    }
    resp = versioned_response(&b, e->version_id, status);
    kd_embedding_free(e);
    return resp;
}

struct MHD_Response *srv_h_embedding_delete(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->seg[SEG_NS], *key = r->seg[SEG_KEY];
    struct MHD_Response *resp;
    kd_entry e;
    srv_buf b = {0};
    int rc;
    memset(&e, 0, sizeof e);
    if ((resp = check_names(r, status))) return resp;
    if ((rc = kd_embed_delete(s->db, ns, key, &e)) != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        kd_entry_clear(&e);
        return resp;
    }
    srv_buf_puts(&b, "{\"deleted\":true");
    put_str(&b, "key", key);
    put_str(&b, "namespace", ns);
    put_version_tail(&b, e.seq, e.timestamp, e.version_id);
    srv_buf_puts(&b, "}");
    resp = versioned_response(&b, e.version_id, status);
    kd_entry_clear(&e);
    return resp;
}

/* The search options of a body, except the vector. The filters are the caller's to free. */
static struct MHD_Response *search_opts(srv *s, kd_json_val doc, kd_search_opts *o, char **model,
                                        kd_query **filter, kd_query **meta_filter,
                                        unsigned *status) {
    struct MHD_Response *resp;
    kd_json_val v;
    int64_t n;
    char *metric = NULL;
    if ((resp = srv_only_members(doc, search_members, search_shape, status))) return resp;
    n = 10;
    if ((resp = member_count(doc, "top_k", TOP_K_MAX, &n, status))) return resp;
    o->top_k = (size_t)n;
    n = 0;
    if ((resp = member_count(doc, "ef_search", EF_SEARCH_MAX, &n, status))) return resp;
    o->ef_search = (uint32_t)n;
    if ((resp = srv_member_string(doc, "metric", "", &metric, status))) return resp;
    if (metric) {
        if (strcmp(metric, "cosine") == 0) o->metric = KD_METRIC_COSINE;
        else if (strcmp(metric, "dot") == 0) o->metric = KD_METRIC_DOT;
        else if (strcmp(metric, "l2") == 0) o->metric = KD_METRIC_L2;
        else resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                             "\"metric\" must be \"cosine\", \"dot\" or \"l2\", not \"%.64s\"", metric);
        kd_free(metric);
        if (resp) return resp;
    }
    v = kd_json_get(doc, "threshold");
    if (given(v)) {
        if (kd_json_double(v, &o->threshold) != KD_OK)
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"threshold\" must be a number");
        o->has_threshold = 1;
    }
    v = kd_json_get(doc, "exact");
    if (given(v) && kd_json_bool(v, &o->exact) != KD_OK)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"exact\" must be true or false");
    if ((resp = member_at(s, doc, &o->at, status))) return resp;
    if ((resp = srv_member_string(doc, "model", "", model, status))) return resp;
    o->model = *model;
    if ((resp = member_filter(s, doc, "filter", filter, status))) return resp;
    o->filter = *filter;
    if ((resp = member_filter(s, doc, "meta_filter", meta_filter, status))) return resp;
    o->meta_filter = *meta_filter;
    return NULL;
}

static void put_hit(srv_buf *b, const kd_search_hit *h) {
    srv_buf_puts(b, "{\"key\":");
    srv_buf_json_str(b, h->key, strlen(h->key));
    put_str(b, "namespace", h->ns);
    if (isfinite(h->score)) srv_buf_printf(b, ",\"score\":%.17g", h->score);
    else srv_buf_puts(b, ",\"score\":null");
    put_version_tail(b, h->seq, h->timestamp, h->version_id);
    srv_buf_puts(b, "}");
}

struct MHD_Response *srv_h_search(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->route == SRV_R_NS_SEARCH ? r->seg[SEG_NS] : NULL;
    struct MHD_Response *resp;
    char *canon = NULL, *model = NULL;
    size_t clen, dim = 0, n = 0;
    float *v = NULL;
    kd_json_val doc;
    kd_query *filter = NULL, *meta_filter = NULL;
    kd_search_opts o;
    kd_search_hit *hits = NULL;
    srv_buf b = {0};
    int rc;
    kd_search_opts_init(&o);
    if (ns && (rc = kd_valid_namespace(ns, 0)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    if ((resp = srv_body_object(r, search_shape, &canon, &clen, &doc, status))) return resp;
    if ((resp = search_opts(s, doc, &o, &model, &filter, &meta_filter, status))) goto out;
    if ((resp = body_vector(r, &v, &dim, status))) goto out;
    o.ns = ns;
    o.vector = v;
    o.dim = dim;
    if ((rc = kd_search(s->db, &o, &hits, &n)) != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        goto out;
    }
    srv_buf_puts(&b, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) srv_buf_add(&b, ",", 1);
        put_hit(&b, &hits[i]);
    }
    srv_buf_puts(&b, "]}");
    kd_search_free(hits, n);
    *status = MHD_HTTP_OK;
    resp = srv_buf_response(&b);
out:
    kd_query_free(filter);
    kd_query_free(meta_filter);
    kd_free(canon);
    kd_free(model);
    free(v);
    return resp;
}
