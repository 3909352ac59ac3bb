/*
** routes.c — the routes of the HTTP API (docs/http.md): the routing table, and the handlers
** for records (get, put, delete, as-of, history, diff), batches, namespaces, keys, queries,
** views, status, check and health. The change feed is changes.c's; /metrics is metrics.c's;
** embeddings and vector search are routes_vector.c's.
**
** May call: the public API (korudelta.h), libmicrohttpd (responses and request headers),
** server.c's helpers (server_int.h), the C library.
**
** Every route is a path under /api/v1 whose system segments start with '_', and names
** never start with '_', so a record can never be shadowed by a route: /api/v1/users/history
** is the record users/history. An unknown `_x` segment is 404; a known route with a method
** it does not take is 405 with Allow. Handlers answer canonical JSON (members in byte
** order, no whitespace), which is what clients read with kd_json_get.
**
** A handler validates its input, calls the library, and builds its answer; any library
** error becomes {"error":{"code","message"}} through srv_fail_kd with kd_errmsg taken right
** after the failing call.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server_int.h"

/* Positions of the named segments: /api/v1/{ns}/{key}/_at/{T}, /api/v1/_views/{name}. */
#define SEG_NS 2
#define SEG_KEY 3
#define SEG_T 5
#define SEG_VIEW 3

#define KEYS_LIMIT_DEFAULT 1000
#define KEYS_LIMIT_MAX 100000

static int streq(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* ---- small helpers ------------------------------------------------------------------------ */
/* srv_arg_uint and srv_arg_bool: see server_int.h. */

struct MHD_Response *srv_arg_uint(const srv_req *r, const char *name, uint64_t max, uint64_t *out,
                                  int *given, unsigned *status) {
    const char *v = srv_arg(r, name);
    uint64_t n = 0;
    if (given) *given = v != NULL;
    if (!v) return NULL;
    const char *p = v;
    if (!*p) goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') goto bad;
        if (n > (UINT64_MAX - 9) / 10) goto bad;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n > max) goto bad;
    *out = n;
    return NULL;
bad:
    if (max >= SIZE_MAX)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "query parameter '%s' must be a non-negative integer, not '%.100s'", name, v);
    return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                    "query parameter '%s' must be an integer from 0 to %llu, not '%.100s'", name,
                    (unsigned long long)max, v);
}

struct MHD_Response *srv_arg_bool(const srv_req *r, const char *name, int *out, unsigned *status) {
    const char *v = srv_arg(r, name);
    *out = 0;
    if (!v) return NULL;
    if (!*v || streq(v, "1") || streq(v, "true") || streq(v, "yes")) *out = 1;
    else if (streq(v, "0") || streq(v, "false") || streq(v, "no")) *out = 0;
    else
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "query parameter '%s' must be 1 or 0 (true or false), not '%.100s'", name, v);
    return NULL;
}

static const char *header(const srv_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Appends a version document (kd_entry_to_json) to b. Returns KD_OK or the library's code. */
static int add_entry(srv_buf *b, const kd_entry *e, int flags) {
    char *j = NULL;
    size_t jl = 0;
    int rc = kd_entry_to_json(e, flags, &j, &jl);
    if (rc != KD_OK) return rc;
    srv_buf_add(b, j, jl);
    kd_free(j);
    return KD_OK;
}

/* The canonical form of a JSON request body that must be an object. On failure returns the
** error response. *out is released with kd_free. */
struct MHD_Response *srv_body_object(const srv_req *r, const char *shape, char **out,
                                     size_t *len, kd_json_val *doc, unsigned *status) {
    int rc;
    *out = NULL;
    if (!r->body_len)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "missing body: expected %s", shape);
    if ((rc = kd_json_canonical(r->body, r->body_len, out, len)) != KD_OK)
        return srv_fail_kd(status, rc, "invalid JSON body");
    *doc = kd_json_doc(*out, *len);
    if (kd_json_type(*doc) != KD_JSON_OBJECT) {
        kd_free(*out);
        *out = NULL;
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "the body must be %s", shape);
    }
    return NULL;
}

/* An optional string member of a request object: NULL when absent or null; 400 when it is
** something else. *out is released with kd_free. */
struct MHD_Response *srv_member_string(kd_json_val obj, const char *name, const char *where,
                                       char **out, unsigned *status) {
    kd_json_val v = kd_json_get(obj, name);
    int t = kd_json_type(v);
    int rc;
    *out = NULL;
    if (t == KD_JSON_MISSING || t == KD_JSON_NULL) return NULL;
    if (t != KD_JSON_STRING)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "%s\"%s\" must be a string", where,
                        name);
    if ((rc = kd_json_string(v, out, NULL)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    return NULL;
}

static struct MHD_Response *check_record_names(const srv_req *r, unsigned *status) {
    int rc;
    if ((rc = kd_valid_namespace(r->seg[SEG_NS], 0)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    if ((rc = kd_valid_key(r->seg[SEG_KEY])) != KD_OK) return srv_fail_kd(status, rc, NULL);
    return NULL;
}

/* The ETag of a version: its id as 64 lowercase hex digits in quotes. */
static void etag_of(const kd_entry *e, char out[67]) {
    static const char digits[] = "0123456789abcdef";
    out[0] = '"';
    for (int i = 0; i < 32; i++) {
        out[1 + 2 * i] = digits[e->version_id[i] >> 4];
        out[2 + 2 * i] = digits[e->version_id[i] & 15];
    }
    out[65] = '"';
    out[66] = '\0';
}

/* An If-None-Match list ("a", W/"b", *) names the version whose quoted id is etag. */
static int etag_listed(const char *list, const char *etag) {
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (*p == '*') return 1;
        if (p[0] == 'W' && p[1] == '/') p += 2;
        const char *start = p;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') p++;
            if (*p == '"') p++;
        } else {
            while (*p && *p != ',' && *p != ' ' && *p != '\t') p++;
        }
        size_t n = (size_t)(p - start);
        if (n == 66 && memcmp(start, etag, 66) == 0) return 1;
        if (n == 64 && memcmp(start, etag + 1, 64) == 0) return 1; /* unquoted */
        while (*p && *p != ',') p++;
    }
    return 0;
}

struct MHD_Response *srv_with_etag(struct MHD_Response *resp, const char *etag) {
    if (resp && MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* A version document (flags as kd_entry_to_json) as the 200 answer, with its ETag
** (etag_of(e), or NULL to have it made here). */
static struct MHD_Response *entry_response(const kd_entry *e, int flags, const char *etag,
                                           unsigned *status) {
    char *j = NULL, own[67];
    size_t jl = 0;
    int rc = kd_entry_to_json(e, flags, &j, &jl);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    if (!etag) {
        etag_of(e, own);
        etag = own;
    }
    *status = MHD_HTTP_OK;
    return srv_with_etag(srv_json_response_kd(j, jl), etag);
}

/* ---- health ------------------------------------------------------------------------------- */

static struct MHD_Response *h_healthz(srv *s, srv_req *r, unsigned *status) {
    static const char ok[] = "{\"status\":\"ok\"}";
    static const char stopping[] = "{\"status\":\"shutting_down\"}";
    (void)r;
    if (atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
        *status = MHD_HTTP_SERVICE_UNAVAILABLE;
        return srv_json_response_static(stopping, sizeof stopping - 1);
    }
    *status = MHD_HTTP_OK;
    return srv_json_response_static(ok, sizeof ok - 1);
}

/* ---- records ------------------------------------------------------------------------------ */

/* GET of a record now or as of a time spec (?at=T or /_at/T). */
static struct MHD_Response *get_record(srv *s, srv_req *r, const char *at, unsigned *status) {
    const char *ns = r->seg[SEG_NS], *key = r->seg[SEG_KEY];
    struct MHD_Response *resp;
    kd_entry e;
    int64_t ts;
    int rc;
    char etag[67];
    memset(&e, 0, sizeof e);
    if ((resp = check_record_names(r, status))) return resp;
    if (at) {
        if ((rc = kd_parse_time(s->db, at, &ts)) != KD_OK) return srv_fail_kd(status, rc, "at");
        rc = kd_get_at(s->db, ns, key, ts, &e);
    } else {
        rc = kd_get(s->db, ns, key, &e);
    }
    if (rc == KD_NOTFOUND && e.seq && e.deleted) {
        /* Deleted (at that time): say when, with the tombstone. */
        char msg[1024], *j = NULL;
        size_t jl;
        snprintf(msg, sizeof msg, "%s", kd_errmsg(NULL));
        if (kd_entry_to_json(&e, KD_WIRE_VALUE, &j, &jl) == KD_OK) {
            *status = MHD_HTTP_NOT_FOUND;
            resp = srv_error_response("not_found", msg, "version", j);
            kd_free(j);
        } else {
            resp = srv_fail(status, MHD_HTTP_NOT_FOUND, "not_found", "%s", msg);
        }
        kd_entry_clear(&e);
        return resp;
    }
    if (rc != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        kd_entry_clear(&e);
        return resp;
    }
    etag_of(&e, etag);
    const char *inm = header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && etag_listed(inm, etag)) {
        kd_entry_clear(&e);
        *status = MHD_HTTP_NOT_MODIFIED;
        return srv_with_etag(MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), etag);
    }
    resp = entry_response(&e, KD_WIRE_VALUE, etag, status);
    kd_entry_clear(&e);
    return resp;
}

static struct MHD_Response *h_get_record(srv *s, srv_req *r, unsigned *status) {
    return get_record(s, r, srv_arg(r, "at"), status);
}

static struct MHD_Response *h_get_record_at(srv *s, srv_req *r, unsigned *status) {
    return get_record(s, r, r->seg[SEG_T], status);
}

/* An If-Match value: a version id or a prefix of 8+ hex digits, quotes optional; copied
** into out without quotes. Returns 0 when it is not one. */
static int parse_if_match(const char *v, char out[65]) {
    while (*v == ' ' || *v == '\t') v++;
    if (v[0] == 'W' && v[1] == '/') v += 2;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n < 8 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return 0;
        out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    return 1;
}

/* Whether the version readers see would have passed cond: then the write that made the
** condition fail is still in flight (committed, not yet visible: readers see a commit once
** its group fsync is done). */
static int cond_holds(const kd_put_cond *cond, int rc, const kd_entry *cur) {
    int live = rc == KD_OK;
    if (cond->if_absent && live) return 0;
    if (cond->if_version) {
        char hex[65];
        if (!live) return 0;
        kd_hex(cur->version_id, hex);
        if (strncmp(hex, cond->if_version, strlen(cond->if_version)) != 0) return 0;
    }
    return 1;
}

/* The 412 answer: error.current holds the key's current version, or null. The version
** that won may not be visible yet; wait for it (briefly) so that error.current names it. */
static struct MHD_Response *precondition_failed(srv *s, srv_req *r, const kd_put_cond *cond,
                                                unsigned *status) {
    char msg[1024], *cur = NULL;
    size_t cl;
    kd_entry e;
    struct MHD_Response *resp;
    struct timespec pause = {0, 200 * 1000};
    int rc;
    snprintf(msg, sizeof msg, "%s", kd_errmsg(NULL));
    for (int tries = 0;; tries++) {
        memset(&e, 0, sizeof e);
        rc = kd_get(s->db, r->seg[SEG_NS], r->seg[SEG_KEY], &e);
        if (rc != KD_OK && rc != KD_NOTFOUND) break;
        if (!cond_holds(cond, rc, &e) || tries == 10000) break; /* 10000 x 200 us: 2 s */
        kd_entry_clear(&e);
        nanosleep(&pause, NULL);
    }
    if (rc != KD_OK || kd_entry_to_json(&e, 0, &cur, &cl) != KD_OK) cur = NULL;
    *status = MHD_HTTP_PRECONDITION_FAILED;
    resp = srv_error_response("conflict", msg, "current", cur ? cur : "null");
    kd_free(cur);
    kd_entry_clear(&e);
    return resp;
}

static struct MHD_Response *h_put_record(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->seg[SEG_NS], *key = r->seg[SEG_KEY];
    struct MHD_Response *resp;
    char *canon = NULL, if_version[65];
    size_t clen = 0;
    kd_json_val doc, val;
    kd_put_cond cond;
    kd_entry e;
    int rc, has_cond = 0;
    memset(&e, 0, sizeof e);
    memset(&cond, 0, sizeof cond);
    if ((resp = check_record_names(r, status))) return resp;

    const char *im = header(r, MHD_HTTP_HEADER_IF_MATCH);
    const char *inm = header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm) {
        const char *p = inm;
        while (*p == ' ' || *p == '\t') p++;
        if (p[0] != '*' || (p[1] && p[1] != ' ' && p[1] != '\t'))
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                            "on PUT, If-None-Match takes only * (write only when the key has no "
                            "live version)");
        cond.if_absent = 1;
        has_cond = 1;
    }
    if (im) {
        const char *p = im;
        while (*p == ' ' || *p == '\t') p++;
        if (p[0] == '*' && (!p[1] || p[1] == ' ' || p[1] == '\t')) {
            /* Any live version: pin the current one (a concurrent write then fails the
            ** condition, which is what a writer holding no version expects). */
            kd_entry cur;
            memset(&cur, 0, sizeof cur);
            rc = kd_get(s->db, ns, key, &cur);
            if (rc == KD_OK) kd_hex(cur.version_id, if_version);
            kd_entry_clear(&cur);
            if (rc == KD_NOTFOUND) {
                *status = MHD_HTTP_PRECONDITION_FAILED;
                return srv_error_response("conflict", "If-Match: * failed: the key has no live version",
                                          "current", "null");
            }
            if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
        } else if (!parse_if_match(im, if_version)) {
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                            "If-Match must be a version id or a prefix of 8 to 64 hex digits, not "
                            "'%.100s'",
                            im);
        }
        cond.if_version = if_version;
        has_cond = 1;
    }

    if ((resp = srv_body_object(r, "{\"value\": <JSON>}", &canon, &clen, &doc, status))) return resp;
    val = kd_json_get(doc, "value");
    if (!val.p) {
        kd_free(canon);
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "the body must be {\"value\": <JSON>}: \"value\" is missing");
    }
    rc = kd_put(s->db, ns, key, val.p, val.len, has_cond ? &cond : NULL, &e);
    kd_free(canon);
    if (rc == KD_CONFLICT) resp = precondition_failed(s, r, &cond, status);
    else if (rc != KD_OK) resp = srv_fail_kd(status, rc, NULL);
    else resp = entry_response(&e, 0, NULL, status);
    kd_entry_clear(&e);
    return resp;
}

static struct MHD_Response *h_delete_record(srv *s, srv_req *r, unsigned *status) {
    struct MHD_Response *resp;
    kd_entry e;
    int rc;
    memset(&e, 0, sizeof e);
    if ((resp = check_record_names(r, status))) return resp;
    rc = kd_delete(s->db, r->seg[SEG_NS], r->seg[SEG_KEY], &e);
    resp = rc == KD_OK ? entry_response(&e, 0, NULL, status) : srv_fail_kd(status, rc, NULL);
    kd_entry_clear(&e);
    return resp;
}

static struct MHD_Response *h_history(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->seg[SEG_NS], *key = r->seg[SEG_KEY];
    const char *order = srv_arg(r, "order");
    struct MHD_Response *resp;
    kd_entry *v = NULL;
    size_t n = 0, total = 0;
    uint64_t offset = 0, limit = 0;
    int has_limit = 0, desc = 0, rc;
    srv_buf b = {0};

    if ((resp = check_record_names(r, status))) return resp;
    if (order && streq(order, "desc")) desc = 1;
    else if (order && !streq(order, "asc"))
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "query parameter 'order' must be asc or desc, not '%.100s'", order);
    if ((resp = srv_arg_uint(r, "offset", SIZE_MAX, &offset, NULL, status))) return resp;
    if ((resp = srv_arg_uint(r, "limit", SIZE_MAX, &limit, &has_limit, status))) return resp;

    if (desc || (has_limit && limit == 0)) {
        /* Newest first: learn the total, then read the matching slice oldest first. */
        rc = kd_history(s->db, ns, key, 0, 1, 0, &v, &n, &total);
        if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
        kd_entries_free(v, n);
        v = NULL;
        n = 0;
        size_t start = 0, count = 0;
        if (desc && offset < total && !(has_limit && limit == 0)) {
            size_t end = total - (size_t)offset;
            start = has_limit && end > limit ? end - (size_t)limit : 0;
            count = end - start;
        } else if (!desc && has_limit && limit == 0) {
            count = 0;
        }
        if (count) {
            rc = kd_history(s->db, ns, key, start, count, 1, &v, &n, &total);
            if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
        }
    } else {
        rc = kd_history(s->db, ns, key, (size_t)offset, (size_t)limit, 1, &v, &n, &total);
        if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    }

    srv_buf_puts(&b, "{\"key\":");
    srv_buf_json_str(&b, key, strlen(key));
    srv_buf_puts(&b, ",\"namespace\":");
    srv_buf_json_str(&b, ns, strlen(ns));
    srv_buf_printf(&b, ",\"total\":%zu,\"versions\":[", total);
    rc = KD_OK;
    for (size_t i = 0; i < n && rc == KD_OK; i++) {
        if (i) srv_buf_add(&b, ",", 1);
        rc = add_entry(&b, &v[desc ? n - 1 - i : i], KD_WIRE_VALUE);
    }
    srv_buf_puts(&b, "]}");
    kd_entries_free(v, n);
    if (rc != KD_OK) {
        srv_buf_free(&b);
        return srv_fail_kd(status, rc, NULL);
    }
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

static struct MHD_Response *h_diff(srv *s, srv_req *r, unsigned *status) {
    const char *from = srv_arg(r, "from"), *to = srv_arg(r, "to");
    struct MHD_Response *resp;
    kd_entry fe, te;
    char *patch = NULL;
    srv_buf b = {0};
    int rc;
    memset(&fe, 0, sizeof fe);
    memset(&te, 0, sizeof te);
    if ((resp = check_record_names(r, status))) return resp;
    if (from && !*from) from = NULL;
    if (to && !*to) to = NULL;
    rc = kd_diff(s->db, r->seg[SEG_NS], r->seg[SEG_KEY], from, to, &fe, &te, &patch);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    srv_buf_puts(&b, "{\"from\":");
    if (fe.seq) rc = add_entry(&b, &fe, KD_WIRE_VALUE);
    else srv_buf_puts(&b, "null");
    srv_buf_puts(&b, ",\"patch\":");
    srv_buf_puts(&b, patch ? patch : "[]");
    srv_buf_puts(&b, ",\"to\":");
    if (rc == KD_OK) rc = add_entry(&b, &te, KD_WIRE_VALUE);
    srv_buf_puts(&b, "}");
    kd_free(patch);
    kd_entry_clear(&fe);
    kd_entry_clear(&te);
    if (rc != KD_OK) {
        srv_buf_free(&b);
        return srv_fail_kd(status, rc, NULL);
    }
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

/* ---- batch -------------------------------------------------------------------------------- */

/* Adds op number i (1-based) of a batch body to b. On failure returns the error. */
static struct MHD_Response *batch_op(kd_batch *b, kd_json_val op, size_t i, unsigned *status) {
    struct MHD_Response *resp = NULL;
    char *kind = NULL, *ns = NULL, *key = NULL, where[48];
    int rc;
    snprintf(where, sizeof where, "op %zu: ", i);
    if (kd_json_type(op) != KD_JSON_OBJECT) {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "op %zu: not an object", i);
        goto out;
    }
    if ((resp = srv_member_string(op, "op", where, &kind, status))) goto out;
    if ((resp = srv_member_string(op, "namespace", where, &ns, status))) goto out;
    if ((resp = srv_member_string(op, "key", where, &key, status))) goto out;
    if (!kind || (!streq(kind, "put") && !streq(kind, "delete"))) {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "op %zu: \"op\" must be \"put\" or \"delete\"", i);
        goto out;
    }
    if (!ns || !key) {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "op %zu: \"%s\" is missing", i,
                        ns ? "key" : "namespace");
        goto out;
    }
    /* Checked here so that the message names the op (the library names an item only in
    ** batches of more than one). */
    if ((rc = kd_valid_namespace(ns, 0)) != KD_OK || (rc = kd_valid_key(key)) != KD_OK) {
        char what[32];
        snprintf(what, sizeof what, "op %zu", i);
        resp = srv_fail_kd(status, rc, what);
        goto out;
    }
    if (streq(kind, "put")) {
        kd_json_val v = kd_json_get(op, "value");
        if (!v.p) {
            resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "op %zu: a put needs \"value\"", i);
            goto out;
        }
        rc = kd_batch_put(b, ns, key, v.p, v.len);
    } else {
        rc = kd_batch_delete(b, ns, key);
    }
    if (rc != KD_OK) {
        char what[32];
        snprintf(what, sizeof what, "op %zu", i);
        resp = srv_fail_kd(status, rc, what);
    }
out:
    kd_free(kind);
    kd_free(ns);
    kd_free(key);
    return resp;
}

/* The error of a failed commit of n ops, its message naming the op by its 1-based
** position as the rest of the batch errors do: the library's "item N (ns/key): ..." and
** "items N and M ..." become "op N (ns/key): ..." and "ops N and M ...", and the one op of
** a single-op batch (which the library does not number) gets "op 1: ". A failure of the
** whole commit (I/O, disk full, read-only) names no op. Call right after the commit. */
static struct MHD_Response *commit_error(int rc, size_t n, unsigned *status) {
    const char *code;
    const char *m = kd_errmsg(NULL);
    unsigned st = srv_status_for(rc, &code);
    int op_error = rc == KD_INVALID || rc == KD_NOTFOUND || rc == KD_TOOBIG || rc == KD_CONFLICT;
    if (!m || !*m) m = kd_strerror(rc);
    if (strncmp(m, "item ", 5) == 0 && m[5] >= '1' && m[5] <= '9')
        return srv_fail(status, st, code, "op %s", m + 5);
    if (strncmp(m, "items ", 6) == 0 && m[6] >= '1' && m[6] <= '9')
        return srv_fail(status, st, code, "ops %s", m + 6);
    if (op_error && n == 1) return srv_fail(status, st, code, "op 1: %s", m);
    return srv_fail(status, st, code, "%s", m);
}

static struct MHD_Response *h_batch(srv *s, srv_req *r, unsigned *status) {
    static const char shape[] = "{\"ops\":[{\"op\":\"put\"|\"delete\",\"namespace\",\"key\",\"value\"}...]}";
    struct MHD_Response *resp;
    char *canon = NULL;
    size_t clen, pos = 0, i = 0;
    kd_json_val doc, ops, op;
    kd_batch *b = NULL;
    uint64_t first = 0, last = 0;
    int rc;
    if ((resp = srv_body_object(r, shape, &canon, &clen, &doc, status))) return resp;
    ops = kd_json_get(doc, "ops");
    if (kd_json_type(ops) != KD_JSON_ARRAY) {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "the body must be %s: \"ops\" %s",
                        shape, ops.p ? "must be an array" : "is missing");
        goto out;
    }
    if (!(b = kd_batch_new())) {
        resp = srv_fail(status, MHD_HTTP_INTERNAL_SERVER_ERROR, "error", "out of memory");
        goto out;
    }
    while (kd_json_next(ops, &pos, NULL, &op))
        if ((resp = batch_op(b, op, ++i, status))) goto out;
    if (kd_batch_count(b) && (rc = kd_batch_commit(s->db, b, &first, &last)) != KD_OK) {
        resp = commit_error(rc, kd_batch_count(b), status);
        goto out;
    }
    {
        char out[160];
        int n;
        if (kd_batch_count(b))
            n = snprintf(out, sizeof out, "{\"committed\":%zu,\"first_seq\":%llu,\"last_seq\":%llu}",
                         kd_batch_count(b), (unsigned long long)first, (unsigned long long)last);
        else
            n = snprintf(out, sizeof out, "{\"committed\":0,\"first_seq\":null,\"last_seq\":null}");
        *status = MHD_HTTP_OK;
        resp = srv_json_response(out, (size_t)n);
    }
out:
    kd_batch_free(b);
    kd_free(canon);
    return resp;
}

/* ---- namespaces, keys, queries ------------------------------------------------------------ */

static struct MHD_Response *h_namespaces(srv *s, srv_req *r, unsigned *status) {
    struct MHD_Response *resp;
    kd_ns_info *list = NULL;
    size_t n = 0;
    int all, rc;
    srv_buf b = {0};
    if ((resp = srv_arg_bool(r, "all", &all, status))) return resp;
    if ((rc = kd_list_namespaces(s->db, all, &list, &n)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    srv_buf_puts(&b, "{\"namespaces\":[");
    for (size_t i = 0; i < n; i++) {
        srv_buf_printf(&b, "%s{\"keys\":%llu,\"name\":", i ? "," : "", (unsigned long long)list[i].keys);
        srv_buf_json_str(&b, list[i].name, strlen(list[i].name));
        srv_buf_printf(&b, ",\"versions\":%llu}", (unsigned long long)list[i].versions);
    }
    srv_buf_puts(&b, "]}");
    kd_ns_list_free(list, n);
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

static struct MHD_Response *h_keys(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->seg[SEG_NS], *after = srv_arg(r, "after");
    struct MHD_Response *resp;
    uint64_t limit = KEYS_LIMIT_DEFAULT;
    char **keys = NULL;
    size_t n = 0;
    int rc;
    srv_buf b = {0};
    if ((rc = kd_valid_namespace(ns, 0)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    if ((resp = srv_arg_uint(r, "limit", KEYS_LIMIT_MAX, &limit, NULL, status))) return resp;
    if (limit == 0) /* a page of nothing with "more":true would never let a pager finish */
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "query parameter 'limit' must be an integer from 1 to %d, not '0'",
                        KEYS_LIMIT_MAX);
    /* One more than asked says whether more remain. */
    rc = kd_list_keys(s->db, ns, after, (size_t)limit + 1, &keys, &n);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    size_t shown = n > limit ? (size_t)limit : n;
    srv_buf_puts(&b, "{\"keys\":[");
    for (size_t i = 0; i < shown; i++) {
        if (i) srv_buf_add(&b, ",", 1);
        srv_buf_json_str(&b, keys[i], strlen(keys[i]));
    }
    srv_buf_printf(&b, "],\"more\":%s,\"namespace\":", n > shown ? "true" : "false");
    srv_buf_json_str(&b, ns, strlen(ns));
    srv_buf_puts(&b, "}");
    kd_keys_free(keys, n);
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

/* A query from the request body (an empty body is the empty query). */
static struct MHD_Response *body_query(srv *s, const srv_req *r, kd_query **q, unsigned *status) {
    int rc;
    if (r->body_len) rc = kd_query_from_json(s->db, r->body, r->body_len, q);
    else rc = kd_query_new(q);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    return NULL;
}

static struct MHD_Response *result_response(kd_result *res, unsigned *status) {
    char *j = NULL;
    size_t jl = 0;
    int rc = kd_result_to_json(res, &j, &jl);
    kd_result_free(res);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    *status = MHD_HTTP_OK;
    return srv_json_response_kd(j, jl);
}

static struct MHD_Response *h_query(srv *s, srv_req *r, unsigned *status) {
    const char *ns = r->seg[SEG_NS];
    struct MHD_Response *resp;
    kd_query *q = NULL;
    kd_result *res = NULL;
    int rc;
    if ((rc = kd_valid_namespace(ns, 0)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    if ((resp = body_query(s, r, &q, status))) return resp;
    rc = kd_query_run(s->db, ns, q, &res);
    kd_query_free(q);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    return result_response(res, status);
}

/* ---- views -------------------------------------------------------------------------------- */

/* A view document (kd_view_info_to_json) of the named view, as the answer with status st. */
static struct MHD_Response *view_response(srv *s, const char *name, unsigned st, unsigned *status) {
    kd_view_info *v = NULL;
    char *j = NULL;
    size_t jl;
    int rc = kd_view_get(s->db, name, &v);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    rc = kd_view_info_to_json(v, &j, &jl);
    kd_view_list_free(v, 1);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    *status = st;
    return srv_json_response_kd(j, jl);
}

static struct MHD_Response *h_views_list(srv *s, srv_req *r, unsigned *status) {
    kd_view_info *v = NULL;
    size_t n = 0;
    int rc;
    srv_buf b = {0};
    (void)r;
    if ((rc = kd_view_list(s->db, &v, &n)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    srv_buf_puts(&b, "{\"views\":[");
    for (size_t i = 0; i < n && rc == KD_OK; i++) {
        char *j = NULL;
        size_t jl;
        if ((rc = kd_view_info_to_json(&v[i], &j, &jl)) != KD_OK) break;
        if (i) srv_buf_add(&b, ",", 1);
        srv_buf_add(&b, j, jl);
        kd_free(j);
    }
    srv_buf_puts(&b, "]}");
    kd_view_list_free(v, n);
    if (rc != KD_OK) {
        srv_buf_free(&b);
        return srv_fail_kd(status, rc, NULL);
    }
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

static struct MHD_Response *h_views_create(srv *s, srv_req *r, unsigned *status) {
    static const char shape[] =
        "{\"name\",\"source\",\"query\":{...},\"description\",\"auto_refresh\"}";
    struct MHD_Response *resp;
    char *canon = NULL, *name = NULL, *source = NULL, *desc = NULL;
    size_t clen;
    kd_json_val doc, qv, av;
    kd_query *q = NULL;
    int auto_refresh = 0, rc, t;
    if ((resp = srv_body_object(r, shape, &canon, &clen, &doc, status))) return resp;
    if ((resp = srv_member_string(doc, "name", "", &name, status))) goto out;
    if ((resp = srv_member_string(doc, "source", "", &source, status))) goto out;
    if ((resp = srv_member_string(doc, "description", "", &desc, status))) goto out;
    if (!name || !source) {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "the body must be %s: \"%s\" is missing",
                        shape, name ? "source" : "name");
        goto out;
    }
    av = kd_json_get(doc, "auto_refresh");
    t = kd_json_type(av);
    if (t != KD_JSON_MISSING && t != KD_JSON_NULL && kd_json_bool(av, &auto_refresh) != KD_OK) {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"auto_refresh\" must be true or false");
        goto out;
    }
    qv = kd_json_get(doc, "query");
    t = kd_json_type(qv);
    if (t == KD_JSON_MISSING || t == KD_JSON_NULL) rc = kd_query_new(&q);
    else if (t != KD_JSON_OBJECT) rc = KD_INVALID, resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "\"query\" must be an object");
    else rc = kd_query_from_json(s->db, qv.p, qv.len, &q);
    if (resp) goto out;
    if (rc != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        goto out;
    }
    if ((rc = kd_view_create(s->db, name, source, q, desc, auto_refresh)) != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL); /* KD_CONFLICT: 409, the name is in use */
        goto out;
    }
    resp = view_response(s, name, MHD_HTTP_CREATED, status);
out:
    kd_query_free(q);
    kd_free(canon);
    kd_free(name);
    kd_free(source);
    kd_free(desc);
    return resp;
}

static struct MHD_Response *h_view_get(srv *s, srv_req *r, unsigned *status) {
    return view_response(s, r->seg[SEG_VIEW], MHD_HTTP_OK, status);
}

static struct MHD_Response *h_view_delete(srv *s, srv_req *r, unsigned *status) {
    const char *name = r->seg[SEG_VIEW];
    srv_buf b = {0};
    int rc = kd_view_delete(s->db, name);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    srv_buf_puts(&b, "{\"deleted\":true,\"name\":");
    srv_buf_json_str(&b, name, strlen(name));
    srv_buf_puts(&b, "}");
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

static struct MHD_Response *h_view_refresh(srv *s, srv_req *r, unsigned *status) {
    int rc = kd_view_refresh(s->db, r->seg[SEG_VIEW]);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    return view_response(s, r->seg[SEG_VIEW], MHD_HTTP_OK, status);
}

static struct MHD_Response *h_view_query(srv *s, srv_req *r, unsigned *status) {
    struct MHD_Response *resp;
    kd_query *q = NULL;
    kd_result *res = NULL;
    int rc;
    if ((resp = body_query(s, r, &q, status))) return resp;
    rc = kd_view_query(s->db, r->seg[SEG_VIEW], q, &res);
    kd_query_free(q);
    if (rc != KD_OK) return srv_fail_kd(status, rc, NULL);
    return result_response(res, status);
}

/* ---- database ----------------------------------------------------------------------------- */

static struct MHD_Response *h_status(srv *s, srv_req *r, unsigned *status) {
    kd_stats st;
    srv_buf b = {0};
    struct timespec now;
    int rc;
    (void)r;
    memset(&st, 0, sizeof st);
    if ((rc = kd_stats_get(s->db, &st)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t up = ((uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec - s->start_ns) /
                  1000000000ull;
#define U(x) (unsigned long long)(x)
    srv_buf_printf(&b,
                   "{\"cache_bytes\":%llu,\"cache_hits\":%llu,\"cache_misses\":%llu,"
                   "\"disk_bytes\":%llu,\"fsyncs\":%llu,\"index_bytes\":%llu,\"keys\":%llu,"
                   "\"log_bytes\":%llu,\"max_db_bytes\":%llu,\"namespaces\":%llu,\"path\":",
                   U(st.cache_bytes), U(st.cache_hits), U(st.cache_misses), U(st.disk_bytes),
                   U(st.fsyncs), U(st.index_bytes), U(st.keys), U(st.log_bytes), U(st.max_db_bytes),
                   U(st.namespaces));
    srv_buf_json_str(&b, s->abs_path, strlen(s->abs_path));
    srv_buf_printf(&b,
                   ",\"segments\":%llu,\"seq\":%llu,\"uptime_seconds\":%llu,\"values\":%llu,"
                   "\"version\":\"%s\",\"versions\":%llu}",
                   U(st.segments), U(st.seq), U(up), U(st.values), KD_VERSION_STRING, U(st.versions));
#undef U
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

static struct MHD_Response *h_check(srv *s, srv_req *r, unsigned *status) {
    struct MHD_Response *resp;
    kd_check_report rep;
    srv_buf b = {0};
    int deep, rc;
    memset(&rep, 0, sizeof rep);
    if ((resp = srv_arg_bool(r, "deep", &deep, status))) return resp;
    if ((rc = kd_check(s->db, deep, &rep)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    rep.first_error[sizeof rep.first_error - 1] = '\0';
    rep.error_list[sizeof rep.error_list - 1] = '\0';
    srv_buf_puts(&b, "{\"error_list\":[");
    for (const char *p = rep.error_list, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        if (p != rep.error_list) srv_buf_puts(&b, ",");
        srv_buf_json_str(&b, p, (size_t)(nl - p));
    }
    srv_buf_printf(&b, "],\"errors\":%llu,\"first_error\":", (unsigned long long)rep.errors);
    if (rep.ok || !rep.first_error[0]) srv_buf_puts(&b, "null");
    else srv_buf_json_str(&b, rep.first_error, strlen(rep.first_error));
    srv_buf_printf(&b, ",\"ok\":%s,\"records\":%llu,\"segments\":%llu,\"values\":%llu,\"versions\":%llu}",
                   rep.ok ? "true" : "false", (unsigned long long)rep.records,
                   (unsigned long long)rep.segments, (unsigned long long)rep.values,
                   (unsigned long long)rep.versions);
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}

/* 400 for the first member of obj that is not in allowed. */
struct MHD_Response *srv_only_members(kd_json_val obj, const char *const *allowed,
                                         const char *shape, unsigned *status) {
    kd_json_val name;
    size_t pos = 0;
    while (kd_json_next(obj, &pos, &name, NULL)) {
        char *s = NULL;
        size_t sl = 0;
        int known = 0;
        if (kd_json_string(name, &s, &sl) != KD_OK) return srv_fail_kd(status, KD_NOMEM, NULL);
        for (size_t i = 0; allowed[i] && !known; i++) /* by length: a name may hold U+0000 */
            known = sl == strlen(allowed[i]) && memcmp(s, allowed[i], sl) == 0;
        if (!known) {
            struct MHD_Response *resp =
                srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                         "unknown member \"%.64s\": the body must be %s", s, shape);
            kd_free(s);
            return resp;
        }
        kd_free(s);
    }
    return NULL;
}

static void count_bytes(void *ctx, uint64_t done, uint64_t total) {
    (void)total;
    *(uint64_t *)ctx = done;
}

/* POST /api/v1/_backup {"dir": absolute path on the server's machine}. */
static struct MHD_Response *h_backup(srv *s, srv_req *r, unsigned *status) {
    static const char shape[] = "{\"dir\":\"/absolute/path\"}";
    struct MHD_Response *resp;
    char *canon = NULL, *dir = NULL;
    size_t clen;
    kd_json_val doc;
    uint64_t bytes = 0;
    srv_buf b = {0};
    int rc;
    static const char *const members[] = {"dir", NULL};
    if ((resp = srv_body_object(r, shape, &canon, &clen, &doc, status))) return resp;
    if ((resp = srv_only_members(doc, members, shape, status))) goto out;
    if ((resp = srv_member_string(doc, "dir", "", &dir, status))) goto out;
    if (!dir || dir[0] != '/') {
        resp = srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "\"dir\" must be an absolute path on the server's machine");
        goto out;
    }
    if ((rc = kd_backup(s->db, dir, count_bytes, &bytes)) != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        goto out;
    }
    srv_buf_printf(&b, "{\"bytes\":%llu,\"dir\":", (unsigned long long)bytes);
    srv_buf_json_str(&b, dir, strlen(dir));
    srv_buf_puts(&b, "}");
    *status = MHD_HTTP_OK;
    resp = srv_buf_response(&b);
out:
    kd_free(canon);
    kd_free(dir);
    return resp;
}

static struct MHD_Response *h_changes(srv *s, srv_req *r, unsigned *status) {
    *status = MHD_HTTP_OK;
    return srv_changes(s, r->conn, status);
}

/* ---- routing ------------------------------------------------------------------------------ */

typedef struct route_def {
    const char *pattern;
    const char *allow;                /* the Allow header of a 405 */
    srv_handler on[SRV_NMETHODS];     /* by method; NULL = not allowed */
} route_def;

static const route_def routes[SRV_NROUTES] = {
    [SRV_R_UNMATCHED] = {"unmatched", "", {0}},
    [SRV_R_HEALTHZ] = {"/healthz", "GET", {[SRV_GET] = h_healthz}},
    [SRV_R_METRICS] = {"/metrics", "GET", {[SRV_GET] = srv_metrics_page}},
    [SRV_R_RECORD] = {"/api/v1/{ns}/{key}", "GET, PUT, DELETE",
                      {[SRV_GET] = h_get_record, [SRV_PUT] = h_put_record,
                       [SRV_DELETE] = h_delete_record}},
    [SRV_R_RECORD_AT] = {"/api/v1/{ns}/{key}/_at/{t}", "GET", {[SRV_GET] = h_get_record_at}},
    [SRV_R_HISTORY] = {"/api/v1/{ns}/{key}/_history", "GET", {[SRV_GET] = h_history}},
    [SRV_R_DIFF] = {"/api/v1/{ns}/{key}/_diff", "GET", {[SRV_GET] = h_diff}},
    [SRV_R_BATCH] = {"/api/v1/_batch", "POST", {[SRV_POST] = h_batch}},
    [SRV_R_NAMESPACES] = {"/api/v1/_namespaces", "GET", {[SRV_GET] = h_namespaces}},
    [SRV_R_KEYS] = {"/api/v1/{ns}/_keys", "GET", {[SRV_GET] = h_keys}},
    [SRV_R_QUERY] = {"/api/v1/{ns}/_query", "POST", {[SRV_POST] = h_query}},
    [SRV_R_VIEWS] = {"/api/v1/_views", "GET, POST",
                     {[SRV_GET] = h_views_list, [SRV_POST] = h_views_create}},
    [SRV_R_VIEW] = {"/api/v1/_views/{name}", "GET, DELETE",
                    {[SRV_GET] = h_view_get, [SRV_DELETE] = h_view_delete}},
    [SRV_R_VIEW_REFRESH] = {"/api/v1/_views/{name}/_refresh", "POST", {[SRV_POST] = h_view_refresh}},
    [SRV_R_VIEW_QUERY] = {"/api/v1/_views/{name}/_query", "POST", {[SRV_POST] = h_view_query}},
    [SRV_R_STATUS] = {"/api/v1/_status", "GET", {[SRV_GET] = h_status}},
    [SRV_R_CHECK] = {"/api/v1/_check", "GET", {[SRV_GET] = h_check}},
    [SRV_R_CHANGES] = {"/api/v1/_changes", "GET", {[SRV_GET] = h_changes}},
    [SRV_R_BACKUP] = {"/api/v1/_backup", "POST", {[SRV_POST] = h_backup}},
    [SRV_R_EXPORT] = {"/api/v1/_export", "GET", {[SRV_GET] = srv_h_export}},
    [SRV_R_IMPORT] = {"/api/v1/_import", "POST", {[SRV_POST] = srv_h_import}},
    /* vector search: routes_vector.c */
    [SRV_R_EMBEDDING] = {"/api/v1/{ns}/{key}/_embedding", "GET, PUT, DELETE",
                         {[SRV_GET] = srv_h_embedding_get, [SRV_PUT] = srv_h_embedding_put,
                          [SRV_DELETE] = srv_h_embedding_delete}},
    [SRV_R_SEARCH] = {"/api/v1/_search", "POST", {[SRV_POST] = srv_h_search}},
    [SRV_R_NS_SEARCH] = {"/api/v1/{ns}/_search", "POST", {[SRV_POST] = srv_h_search}},
};

const char *srv_route_pattern(int route) {
    if (route < 0 || route >= SRV_NROUTES) route = SRV_R_UNMATCHED;
    return routes[route].pattern;
}

static int is_system(const char *seg) { return seg[0] == '_'; }

/* The route of a decoded path (see the file comment for the rules). */
static int match_route(const srv_req *r) {
    const char *const *g = r->seg;
    size_t n = r->nseg;
    if (n > SRV_MAX_SEGS) return SRV_R_UNMATCHED;
    for (size_t i = 0; i < n; i++)
        if (!g[i][0]) return SRV_R_UNMATCHED; /* "//", a trailing '/' */
    if (n == 1 && streq(g[0], "healthz")) return SRV_R_HEALTHZ;
    if (n == 1 && streq(g[0], "metrics")) return SRV_R_METRICS;
    if (n < 3 || !streq(g[0], "api") || !streq(g[1], "v1")) return SRV_R_UNMATCHED;
    g += 2;
    n -= 2;
    if (is_system(g[0])) {
        if (streq(g[0], "_views")) {
            if (n == 1) return SRV_R_VIEWS;
            if (is_system(g[1])) return SRV_R_UNMATCHED;
            if (n == 2) return SRV_R_VIEW;
            if (n == 3 && streq(g[2], "_refresh")) return SRV_R_VIEW_REFRESH;
            if (n == 3 && streq(g[2], "_query")) return SRV_R_VIEW_QUERY;
            return SRV_R_UNMATCHED;
        }
        if (n != 1) return SRV_R_UNMATCHED;
        if (streq(g[0], "_batch")) return SRV_R_BATCH;
        if (streq(g[0], "_namespaces")) return SRV_R_NAMESPACES;
        if (streq(g[0], "_status")) return SRV_R_STATUS;
        if (streq(g[0], "_check")) return SRV_R_CHECK;
        if (streq(g[0], "_changes")) return SRV_R_CHANGES;
        if (streq(g[0], "_backup")) return SRV_R_BACKUP;
        if (streq(g[0], "_export")) return SRV_R_EXPORT;
        if (streq(g[0], "_import")) return SRV_R_IMPORT;
        if (streq(g[0], "_search")) return SRV_R_SEARCH;
        return SRV_R_UNMATCHED;
    }
    if (n == 1) return SRV_R_UNMATCHED; /* /api/v1/{ns} alone is no route */
    if (n == 2) {
        if (!is_system(g[1])) return SRV_R_RECORD;
        if (streq(g[1], "_keys")) return SRV_R_KEYS;
        if (streq(g[1], "_query")) return SRV_R_QUERY;
        if (streq(g[1], "_search")) return SRV_R_NS_SEARCH;
        return SRV_R_UNMATCHED;
    }
    if (is_system(g[1])) return SRV_R_UNMATCHED;
    if (n == 3 && streq(g[2], "_history")) return SRV_R_HISTORY;
    if (n == 3 && streq(g[2], "_diff")) return SRV_R_DIFF;
    if (n == 3 && streq(g[2], "_embedding")) return SRV_R_EMBEDDING;
    if (n == 4 && streq(g[2], "_at")) return SRV_R_RECORD_AT;
    return SRV_R_UNMATCHED;
}

srv_handler srv_route(srv_req *r, unsigned *status, const char **allow, int *body) {
    r->route = match_route(r);
    *body = 0;
    if (r->route == SRV_R_UNMATCHED) {
        *status = MHD_HTTP_NOT_FOUND;
        return NULL;
    }
    srv_handler h = routes[r->route].on[r->method];
    if (!h) {
        *status = MHD_HTTP_METHOD_NOT_ALLOWED;
        *allow = routes[r->route].allow;
        return NULL;
    }
    *body = r->method == SRV_PUT || r->method == SRV_POST;
    return h;
}
