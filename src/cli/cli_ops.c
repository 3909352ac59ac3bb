/*
** cli_ops.c — how the commands of `kdelta` reach the database (see cli_ops.h): connecting
** (local open, --url / $KORU_URL, or automatic routing through <db>/serve.addr), and every
** operation twice — a call of the public API, or a request to the server (docs/http.md)
** whose answer is read back into the library's structures.
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h (cli_http.c), the C
** library and POSIX.
**
** Invariants:
**   - What a remote operation hands back is allocated with kd_malloc (or by the library's
**     own readers: kd_entry_from_json, kd_json_string), exactly the parts that
**     kd_entry_clear, kd_entries_free, kd_result_free, kd_view_list_free, kd_ns_list_free,
**     kd_keys_free, kd_embedding_free and kd_search_free release, so callers free results
**     the same way in both modes. (The kd_entry of an embedding's write or delete carries
**     what the answer says: ns, key, seq, timestamp, version id, deleted.)
**   - Answers are untrusted: a missing or mistyped member is an error ("the server sent a
**     malformed answer"), never a crash. They are read from their canonical form.
**   - A remote operation sets c->op_msg only when it fails, and clears it first, so that
**     cli_fail_kd never picks up a stale message.
*/
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"

/* Keys per request when `list NS` pages through a namespace (the server allows up to
** 100000; smaller pages keep each answer's memory modest and cost one round trip per
** 10000 keys on a keep-alive connection). */
#define KEYS_PAGE 10000

/* ---- connecting ------------------------------------------------------------------------- */

const char *cli_explicit_url(const cli *c) {
    const char *env;
    if (c->url) return c->url;
    env = getenv("KORU_URL");
    return env && *env ? env : NULL;
}

/* Switches c to remote mode against url ("http://HOST:PORT", trailing '/' dropped). */
static int use_server(cli *c, const char *url, const char *from) {
    size_t n = strlen(url);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return cli_fail(c, CLI_RC_USAGE, "invalid %s '%s' (want http://HOST:PORT)", from, url);
    while (n > 0 && url[n - 1] == '/') n--;
    free(c->remote_url);
    c->remote_url = strndup(url, n);
    if (!c->remote_url) return cli_fail(c, KD_NOMEM, "out of memory");
    c->remote = 1;
    return 0;
}

int cli_connect(cli *c) {
    const char *url = cli_explicit_url(c);
    int code;
    if (url) {
        if (c->sync >= 0)
            return cli_fail(c, CLI_RC_USAGE,
                            "--sync does not apply with %s: the server's own --sync setting "
                            "decides durability",
                            c->url ? "--url" : "KORU_URL");
        if (c->max_db_bytes)
            return cli_fail(c, CLI_RC_USAGE,
                            "--max-db-bytes does not apply with %s: the server's own --max-db-bytes "
                            "setting is the quota",
                            c->url ? "--url" : "KORU_URL");
        return use_server(c, url, c->url ? "--url" : "KORU_URL");
    }
    code = cli_open_db(c);
    if (code != 0 && c->err_rc == KD_BUSY && cli_route_busy(c)) return 0;
    return code;
}

int cli_route_busy(cli *c) {
    char path[PATH_MAX], line[512];
    FILE *f;
    size_t n;
    if (snprintf(path, sizeof path, "%s/serve.addr", c->db_path) >= (int)sizeof path) return 0;
    f = fopen(path, "r");
    if (!f) return 0;
    n = fgets(line, sizeof line, f) ? strlen(line) : 0;
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
    line[n] = '\0';
    if (n == 0 || (strncmp(line, "http://", 7) != 0 && strncmp(line, "https://", 8) != 0))
        return 0;
    /* Keep the busy error: it is what we report if the server cannot be reached. */
    snprintf(c->busy_msg, sizeof c->busy_msg, "%s", c->err_msg);
    if (use_server(c, line, "serve.addr") != 0) return 0;
    c->routed = 1;
    c->err_rc = 0;
    c->err_msg[0] = '\0';
    return 1;
}

void cli_disconnect(cli *c) {
    cli_http_close(c);
    free(c->remote_url);
    c->remote_url = NULL;
    c->remote = 0;
}

/* ---- requests and answers --------------------------------------------------------------- */

/* Records the message of a failed remote operation (for cli_fail_kd) and returns rc. */
static int op_error(cli *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int op_error(cli *c, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->op_msg, sizeof c->op_msg, fmt, ap);
    va_end(ap);
    c->op_msg_set = 1;
    return rc;
}

static int malformed(cli *c, const char *what) {
    return op_error(c, KD_ERROR, "the server at %s sent a malformed answer (%s)", c->remote_url,
                    what);
}

/* Sends a request whose answer must be a JSON document. KD_OK with res->doc on a 2xx
** answer; the error's code (and message, for cli_fail_kd) on an error answer. */
static int call(cli *c, const char *method, const cli_buf *path, const char *body, size_t len,
                const char *const *headers, cli_http_res *res) {
    int rc;
    memset(res, 0, sizeof *res);
    c->op_msg_set = 0;
    if (path->oom) return op_error(c, KD_NOMEM, "out of memory");
    if ((rc = cli_http_call(c, method, path->p, body, len, headers, res)) != KD_OK) return rc;
    if (res->status < 200 || res->status > 299) return cli_http_error(c, res);
    if (!res->doc)
        return op_error(c, KD_ERROR, "the server at %s answered HTTP %ld without a JSON document",
                        c->remote_url, res->status);
    return KD_OK;
}

static kd_json_val root(const cli_http_res *res) { return kd_json_doc(res->doc, res->doc_len); }

/* The system namespaces have no routes of their own in the HTTP API (every path segment
** starting with '_' is a route), so they cannot be read through a server. */
static int refuse_system(cli *c, const char *ns) {
    if (ns[0] != '_') return KD_OK;
    return op_error(c, KD_INVALID,
                    "system namespace '%s' cannot be read through the server (the HTTP API has "
                    "no route for it)",
                    ns);
}

/* "/api/v1/NS/KEY" (percent-encoded), then `tail` (a route such as "/_history"). */
static void record_path(cli_buf *b, const char *ns, const char *key, const char *tail) {
    cli_buf_puts(b, "/api/v1/");
    cli_url_add(b, ns);
    if (key) {
        cli_buf_puts(b, "/");
        cli_url_add(b, key);
    }
    if (tail) cli_buf_puts(b, tail);
}

/* Appends "?name=value" or "&name=value" (value percent-encoded). */
static void add_param(cli_buf *b, const char *name, const char *value) {
    cli_buf_puts(b, memchr(b->p ? b->p : "", '?', b->len) ? "&" : "?");
    cli_buf_puts(b, name);
    cli_buf_puts(b, "=");
    cli_url_add(b, value);
}

/* ---- reading members -------------------------------------------------------------------- */

static int read_u64(kd_json_val v, uint64_t *out) {
    int64_t i;
    if (kd_json_int(v, &i) != KD_OK || i < 0) return KD_ERROR;
    *out = (uint64_t)i;
    return KD_OK;
}

static int read_time(kd_json_val v, int64_t *ts) {
    char *s = NULL;
    int rc = kd_json_string(v, &s, NULL);
    if (rc == KD_OK) rc = kd_parse_time(NULL, s, ts);
    kd_free(s);
    return rc;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* A version id: a string of 64 hex digits. */
static int read_id(kd_json_val v, uint8_t id[32]) {
    if (kd_json_type(v) != KD_JSON_STRING || v.len != 66) return KD_ERROR;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(v.p[1 + 2 * i]), lo = hexval(v.p[2 + 2 * i]);
        if (hi < 0 || lo < 0) return KD_ERROR;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return KD_OK;
}

/* A copy of the value's JSON text, NUL-terminated, from kd_malloc. */
static char *copy_text(kd_json_val v) {
    char *s = kd_malloc(v.len + 1);
    if (!s) return NULL;
    memcpy(s, v.p, v.len);
    s[v.len] = '\0';
    return s;
}

/* The elements of an array: 0 when v is not one. */
static size_t count_elements(kd_json_val v) {
    size_t pos = 0, n = 0;
    kd_json_val e;
    if (kd_json_type(v) != KD_JSON_ARRAY) return 0;
    while (kd_json_next(v, &pos, NULL, &e)) n++;
    return n;
}

static int read_entry(kd_json_val v, kd_entry *e) {
    memset(e, 0, sizeof *e);
    if (kd_json_type(v) != KD_JSON_OBJECT) return KD_ERROR;
    return kd_entry_from_json(v.p, v.len, e) == KD_OK ? KD_OK : KD_ERROR;
}

/* ---- times ------------------------------------------------------------------------------- */

static int is_version_spec(const char *s) {
    size_t n = strlen(s);
    if (n < 8 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (hexval(s[i]) < 0) return 0;
    return 1;
}

int cli_op_parse_time(cli *c, const char *spec, int64_t *ts) {
    if (!c->remote) return kd_parse_time(c->db, spec, ts);
    c->op_msg_set = 0;
    if (is_version_spec(spec)) {
        *ts = CLI_TS_SERVER;
        return KD_OK;
    }
    return kd_parse_time(NULL, spec, ts);
}

/* ---- records ----------------------------------------------------------------------------- */

/* GET of a record, now (at == NULL) or at a time the server parses. A deleted key's 404
** carries the tombstone, which goes to *e as kd_get leaves it. */
static int remote_get(cli *c, const char *ns, const char *key, const char *at, kd_entry *e) {
    cli_buf path = {0};
    cli_http_res res;
    int rc;
    if ((rc = refuse_system(c, ns)) != KD_OK) return rc;
    record_path(&path, ns, key, NULL);
    if (at) add_param(&path, "at", at);
    rc = call(c, "GET", &path, NULL, 0, NULL, &res);
    if (rc == KD_OK) {
        if (read_entry(root(&res), e) != KD_OK) rc = malformed(c, "a version document");
    } else if (rc == KD_NOTFOUND && res.doc) {
        kd_json_val tomb = kd_json_get(kd_json_get(root(&res), "error"), "version");
        if (kd_json_type(tomb) == KD_JSON_OBJECT && read_entry(tomb, e) != KD_OK) kd_entry_clear(e);
    }
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

int cli_op_get(cli *c, const char *ns, const char *key, kd_entry *e) {
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_get(c->db, ns, key, e);
    return remote_get(c, ns, key, NULL, e);
}

int cli_op_get_at(cli *c, const char *ns, const char *key, const char *spec, int64_t ts,
                  kd_entry *e) {
    char t[32];
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_get_at(c->db, ns, key, ts, e);
    if (ts == CLI_TS_SERVER) return remote_get(c, ns, key, spec, e);
    kd_format_time(ts, t); /* exact to the microsecond, as parsed here */
    return remote_get(c, ns, key, t, e);
}

int cli_op_put(cli *c, const char *ns, const char *key, const char *json, size_t len,
               const kd_put_cond *cond, kd_entry *e) {
    cli_buf path = {0}, body = {0}, cond_hdr = {0};
    const char *headers[2] = {NULL, NULL};
    cli_http_res res = {0};
    int rc;
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_put(c->db, ns, key, json, len, cond, e);
    record_path(&path, ns, key, NULL);
    cli_buf_puts(&body, "{\"value\":");
    cli_buf_add(&body, json, len);
    cli_buf_puts(&body, "}");
    if (cond && cond->if_version) {
        cli_buf_printf(&cond_hdr, "If-Match: \"%s\"", cond->if_version);
        headers[0] = cond_hdr.p;
    } else if (cond && cond->if_absent) {
        headers[0] = "If-None-Match: *";
    }
    if (body.oom || cond_hdr.oom) rc = op_error(c, KD_NOMEM, "out of memory");
    else rc = call(c, "PUT", &path, body.p, body.len, headers, &res);
    if (rc == KD_OK && read_entry(root(&res), e) != KD_OK) rc = malformed(c, "a version document");
    cli_http_res_free(&res);
    cli_buf_free(&path);
    cli_buf_free(&body);
    cli_buf_free(&cond_hdr);
    return rc;
}

int cli_op_delete(cli *c, const char *ns, const char *key, kd_entry *e) {
    cli_buf path = {0};
    cli_http_res res;
    int rc;
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_delete(c->db, ns, key, e);
    record_path(&path, ns, key, NULL);
    rc = call(c, "DELETE", &path, NULL, 0, NULL, &res);
    if (rc == KD_OK && read_entry(root(&res), e) != KD_OK) rc = malformed(c, "a version document");
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

static int local_history_newest(cli *c, const char *ns, const char *key, size_t limit,
                                kd_entry **v, size_t *n, size_t *total) {
    size_t offset = 0;
    int rc;
    /* kd_history pages oldest first; for the N newest, learn the total first. */
    if (limit > 0) {
        rc = kd_history(c->db, ns, key, 0, 1, 0, v, n, total);
        if (*v) kd_entries_free(*v, *n);
        *v = NULL;
        *n = 0;
        if (rc != KD_OK) return rc;
        if (*total > limit) offset = *total - limit;
    }
    return kd_history(c->db, ns, key, offset, limit, 1, v, n, total);
}

int cli_op_history_newest(cli *c, const char *ns, const char *key, size_t limit, kd_entry **v,
                          size_t *n, size_t *total) {
    cli_buf path = {0};
    cli_http_res res;
    kd_json_val doc, versions, elem;
    size_t count, pos = 0, i;
    uint64_t tot;
    int rc;
    *v = NULL;
    *n = *total = 0;
    if (!c->remote) return local_history_newest(c, ns, key, limit, v, n, total);
    if ((rc = refuse_system(c, ns)) != KD_OK) return rc;
    record_path(&path, ns, key, "/_history?order=desc");
    if (limit > 0) cli_buf_printf(&path, "&limit=%zu", limit);
    if ((rc = call(c, "GET", &path, NULL, 0, NULL, &res)) != KD_OK) goto out;
    doc = root(&res);
    versions = kd_json_get(doc, "versions");
    if (kd_json_type(versions) != KD_JSON_ARRAY || read_u64(kd_json_get(doc, "total"), &tot)) {
        rc = malformed(c, "a history");
        goto out;
    }
    count = count_elements(versions);
    if (count > 0) {
        *v = kd_malloc(count * sizeof **v);
        if (!*v) {
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
        memset(*v, 0, count * sizeof **v);
        *n = count;
    }
    /* The answer is newest first; kd_history's order is oldest first. */
    for (i = 0; kd_json_next(versions, &pos, NULL, &elem); i++) {
        if (read_entry(elem, &(*v)[count - 1 - i]) != KD_OK) {
            rc = malformed(c, "a version in the history");
            goto out;
        }
    }
    *total = (size_t)tot;
out:
    if (rc != KD_OK && *v) {
        kd_entries_free(*v, *n);
        *v = NULL;
        *n = 0;
    }
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

/* GET _diff: both sides with their values and the patch (patch may be NULL). */
static int remote_diff(cli *c, const char *ns, const char *key, const char *from, const char *to,
                       kd_entry *from_e, kd_entry *to_e, char **patch) {
    cli_buf path = {0};
    cli_http_res res;
    kd_json_val doc, f, p;
    int rc;
    if ((rc = refuse_system(c, ns)) != KD_OK) return rc;
    record_path(&path, ns, key, "/_diff");
    if (from) add_param(&path, "from", from);
    if (to) add_param(&path, "to", to);
    if ((rc = call(c, "GET", &path, NULL, 0, NULL, &res)) != KD_OK) goto out;
    doc = root(&res);
    f = kd_json_get(doc, "from");
    p = kd_json_get(doc, "patch");
    if (read_entry(kd_json_get(doc, "to"), to_e) != KD_OK ||
        (kd_json_type(f) != KD_JSON_NULL && read_entry(f, from_e) != KD_OK) ||
        kd_json_type(p) != KD_JSON_ARRAY) {
        rc = malformed(c, "a diff");
        goto out;
    }
    if (patch && !(*patch = copy_text(p))) rc = op_error(c, KD_NOMEM, "out of memory");
out:
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

int cli_op_diff(cli *c, const char *ns, const char *key, const char *from, const char *to,
                kd_entry *from_e, kd_entry *to_e, char **patch) {
    int rc;
    memset(from_e, 0, sizeof *from_e);
    memset(to_e, 0, sizeof *to_e);
    *patch = NULL;
    if (!c->remote) return kd_diff(c->db, ns, key, from, to, from_e, to_e, patch);
    rc = remote_diff(c, ns, key, from, to, from_e, to_e, patch);
    if (rc != KD_OK) {
        kd_entry_clear(from_e);
        kd_entry_clear(to_e);
        kd_free(*patch);
        *patch = NULL;
    }
    return rc;
}

int cli_op_version(cli *c, const char *ns, const char *key, const char *spec, kd_entry *e) {
    kd_entry unused;
    int rc;
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_resolve_version(c->db, ns, key, spec, e);
    /* The diff of a version with itself names it, value included. */
    memset(&unused, 0, sizeof unused);
    rc = remote_diff(c, ns, key, spec, spec, &unused, e, NULL);
    kd_entry_clear(&unused);
    if (rc != KD_OK) kd_entry_clear(e);
    return rc;
}

static int local_batch(cli *c, const cli_batch_op *ops, size_t n, uint64_t *first,
                       uint64_t *last, size_t *bad) {
    kd_batch *b = kd_batch_new();
    int rc = KD_OK;
    if (!b) return KD_NOMEM;
    for (size_t i = 0; i < n && rc == KD_OK; i++) {
        rc = ops[i].is_delete ? kd_batch_delete(b, ops[i].ns, ops[i].key)
                              : kd_batch_put(b, ops[i].ns, ops[i].key, ops[i].value,
                                             ops[i].value_len);
        if (rc != KD_OK) *bad = i;
    }
    if (rc == KD_OK) rc = kd_batch_commit(c->db, b, first, last);
    kd_batch_free(b);
    return rc;
}

int cli_op_batch(cli *c, const cli_batch_op *ops, size_t n, uint64_t *first, uint64_t *last,
                 size_t *bad) {
    cli_buf path = {0}, body = {0};
    cli_http_res res;
    kd_json_val doc;
    int rc;
    *bad = (size_t)-1;
    if (!c->remote) return local_batch(c, ops, n, first, last, bad);
    cli_buf_puts(&path, "/api/v1/_batch");
    cli_buf_puts(&body, "{\"ops\":[");
    for (size_t i = 0; i < n; i++) {
        cli_buf_puts(&body, i ? ",{\"op\":" : "{\"op\":");
        cli_buf_puts(&body, ops[i].is_delete ? "\"delete\"" : "\"put\"");
        cli_buf_puts(&body, ",\"namespace\":");
        cli_json_cstr(&body, ops[i].ns);
        cli_buf_puts(&body, ",\"key\":");
        cli_json_cstr(&body, ops[i].key);
        if (!ops[i].is_delete) {
            cli_buf_puts(&body, ",\"value\":");
            cli_buf_add(&body, ops[i].value, ops[i].value_len);
        }
        cli_buf_puts(&body, "}");
    }
    cli_buf_puts(&body, "]}");
    memset(&res, 0, sizeof res);
    if (body.oom) rc = op_error(c, KD_NOMEM, "out of memory");
    else rc = call(c, "POST", &path, body.p, body.len, NULL, &res);
    if (rc == KD_OK) {
        doc = root(&res);
        if (read_u64(kd_json_get(doc, "first_seq"), first) != KD_OK ||
            read_u64(kd_json_get(doc, "last_seq"), last) != KD_OK)
            rc = malformed(c, "a batch result");
    }
    cli_http_res_free(&res);
    cli_buf_free(&path);
    cli_buf_free(&body);
    return rc;
}

/* ---- listings, stats, integrity --------------------------------------------------------- */

int cli_op_namespaces(cli *c, int include_system, kd_ns_info **l, size_t *n) {
    cli_buf path = {0};
    cli_http_res res;
    kd_json_val list, elem;
    size_t count, pos = 0, i;
    int rc;
    *l = NULL;
    *n = 0;
    if (!c->remote) return kd_list_namespaces(c->db, include_system, l, n);
    cli_buf_puts(&path, include_system ? "/api/v1/_namespaces?all=1" : "/api/v1/_namespaces");
    if ((rc = call(c, "GET", &path, NULL, 0, NULL, &res)) != KD_OK) goto out;
    list = kd_json_get(root(&res), "namespaces");
    if (kd_json_type(list) != KD_JSON_ARRAY) {
        rc = malformed(c, "a namespace list");
        goto out;
    }
    count = count_elements(list);
    if (count > 0) {
        if (!(*l = kd_malloc(count * sizeof **l))) {
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
        memset(*l, 0, count * sizeof **l);
        *n = count;
    }
    for (i = 0; kd_json_next(list, &pos, NULL, &elem) && i < count; i++) {
        kd_ns_info *ni = &(*l)[i];
        if (kd_json_string(kd_json_get(elem, "name"), &ni->name, NULL) != KD_OK ||
            read_u64(kd_json_get(elem, "keys"), &ni->keys) != KD_OK) {
            rc = malformed(c, "a namespace");
            goto out;
        }
        read_u64(kd_json_get(elem, "versions"), &ni->versions); /* optional for the CLI */
    }
out:
    if (rc != KD_OK && *l) {
        kd_ns_list_free(*l, *n);
        *l = NULL;
        *n = 0;
    }
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

/* Growable list of keys while paging; handed over as one kd_malloc'd array at the end. */
typedef struct key_list {
    char **v;
    size_t n, cap;
} key_list;

static int key_list_push(key_list *k, char *s) {
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        char **p = realloc(k->v, cap * sizeof *p);
        if (!p) return KD_NOMEM;
        k->v = p;
        k->cap = cap;
    }
    k->v[k->n++] = s;
    return KD_OK;
}

/* One page of _keys after `after` (NULL = from the start): appends to k, sets *more. */
static int keys_page(cli *c, const char *ns, const char *after, key_list *k, int *more) {
    cli_buf path = {0};
    cli_http_res res;
    kd_json_val doc, keys, elem;
    size_t pos = 0;
    int rc;
    record_path(&path, ns, NULL, "/_keys");
    cli_buf_printf(&path, "?limit=%d", KEYS_PAGE);
    if (after) add_param(&path, "after", after);
    if ((rc = call(c, "GET", &path, NULL, 0, NULL, &res)) != KD_OK) goto out;
    doc = root(&res);
    keys = kd_json_get(doc, "keys");
    if (kd_json_type(keys) != KD_JSON_ARRAY || kd_json_bool(kd_json_get(doc, "more"), more)) {
        rc = malformed(c, "a key list");
        goto out;
    }
    while (kd_json_next(keys, &pos, NULL, &elem)) {
        char *s = NULL;
        if (kd_json_string(elem, &s, NULL) != KD_OK) {
            rc = malformed(c, "a key");
            goto out;
        }
        if (key_list_push(k, s) != KD_OK) {
            kd_free(s);
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
    }
    /* A page that ends without progress would loop forever. */
    if (*more && (k->n == 0 || (after && strcmp(k->v[k->n - 1], after) == 0)))
        rc = malformed(c, "a key list that does not advance");
out:
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

int cli_op_keys(cli *c, const char *ns, char ***keys, size_t *n) {
    key_list k = {0};
    int more = 1, rc = KD_OK;
    *keys = NULL;
    *n = 0;
    if (!c->remote) return kd_list_keys(c->db, ns, NULL, 0, keys, n);
    if ((rc = refuse_system(c, ns)) != KD_OK) return rc;
    while (more && rc == KD_OK) rc = keys_page(c, ns, k.n ? k.v[k.n - 1] : NULL, &k, &more);
    if (rc == KD_OK && k.n > 0) {
        if ((*keys = kd_malloc(k.n * sizeof **keys))) {
            memcpy(*keys, k.v, k.n * sizeof **keys);
            *n = k.n;
            k.n = 0;
        } else {
            rc = op_error(c, KD_NOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < k.n; i++) kd_free(k.v[i]);
    free(k.v);
    return rc;
}

/* GET /_status into *st and, when path is not NULL, *path (malloc). */
static int remote_status(cli *c, kd_stats *st, char **path) {
    cli_buf p = {0};
    cli_http_res res;
    kd_json_val doc;
    char *s = NULL;
    int rc;
    cli_buf_puts(&p, "/api/v1/_status");
    if ((rc = call(c, "GET", &p, NULL, 0, NULL, &res)) != KD_OK) goto out;
    doc = root(&res);
    static const struct {
        const char *name;
        size_t off;
    } members[] = {
        {"namespaces", offsetof(kd_stats, namespaces)}, {"keys", offsetof(kd_stats, keys)},
        {"versions", offsetof(kd_stats, versions)},     {"seq", offsetof(kd_stats, seq)},
        {"values", offsetof(kd_stats, values)},         {"disk_bytes", offsetof(kd_stats, disk_bytes)},
        {"log_bytes", offsetof(kd_stats, log_bytes)},   {"segments", offsetof(kd_stats, segments)},
        {"index_bytes", offsetof(kd_stats, index_bytes)},
        {"cache_bytes", offsetof(kd_stats, cache_bytes)},
        {"cache_hits", offsetof(kd_stats, cache_hits)},
        {"cache_misses", offsetof(kd_stats, cache_misses)},
        {"fsyncs", offsetof(kd_stats, fsyncs)},
        {"max_db_bytes", offsetof(kd_stats, max_db_bytes)},
    };
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        if (read_u64(kd_json_get(doc, members[i].name), (uint64_t *)((char *)st + members[i].off))) {
            rc = malformed(c, "a status");
            goto out;
        }
    }
    if (path) {
        if (kd_json_string(kd_json_get(doc, "path"), &s, NULL) != KD_OK) {
            rc = malformed(c, "a status without a path");
            goto out;
        }
        if (!(*path = strdup(s))) rc = op_error(c, KD_NOMEM, "out of memory");
    }
out:
    kd_free(s);
    cli_http_res_free(&res);
    cli_buf_free(&p);
    return rc;
}

static char *local_path(cli *c) {
    char abs[PATH_MAX];
    return strdup(realpath(c->db_path, abs) ? abs : c->db_path);
}

int cli_op_status(cli *c, kd_stats *st, char **path) {
    int rc;
    memset(st, 0, sizeof *st);
    *path = NULL;
    if (c->remote) return remote_status(c, st, path);
    rc = kd_stats_get(c->db, st);
    if (rc == KD_OK && !(*path = local_path(c))) rc = KD_NOMEM;
    return rc;
}

int cli_op_check(cli *c, int deep, kd_check_report *r, char **path, kd_progress_fn progress, void *ctx) {
    cli_buf p = {0};
    cli_http_res res;
    kd_json_val doc, fe;
    kd_stats st;
    char *s = NULL;
    int rc;
    memset(r, 0, sizeof *r);
    if (path) *path = NULL;
    if (!c->remote) {
        rc = kd_check_progress(c->db, deep, r, progress, ctx);
        if (rc == KD_OK && path && !(*path = local_path(c))) rc = KD_NOMEM;
        return rc;
    }
    cli_buf_puts(&p, deep ? "/api/v1/_check?deep=1" : "/api/v1/_check");
    if ((rc = call(c, "GET", &p, NULL, 0, NULL, &res)) != KD_OK) goto out;
    doc = root(&res);
    fe = kd_json_get(doc, "first_error");
    if (kd_json_bool(kd_json_get(doc, "ok"), &r->ok) ||
        read_u64(kd_json_get(doc, "records"), &r->records) ||
        read_u64(kd_json_get(doc, "versions"), &r->versions) ||
        read_u64(kd_json_get(doc, "values"), &r->values) ||
        read_u64(kd_json_get(doc, "segments"), &r->segments) ||
        read_u64(kd_json_get(doc, "errors"), &r->errors) ||
        (kd_json_type(fe) != KD_JSON_NULL && kd_json_string(fe, &s, NULL) != KD_OK)) {
        rc = malformed(c, "a check report");
        goto out;
    }
    if (s) snprintf(r->first_error, sizeof r->first_error, "%s", s);
    size_t used = 0, pos = 0;
    kd_json_val list = kd_json_get(doc, "error_list"), it;
    while (kd_json_next(list, &pos, NULL, &it)) {
        char *e = NULL;
        size_t n = 0;
        if (kd_json_string(it, &e, &n) != KD_OK) {
            kd_free(e);
            rc = malformed(c, "a check report's error_list");
            goto out;
        }
        if (used + n + 2 <= sizeof r->error_list) {
            memcpy(r->error_list + used, e, n);
            memcpy(r->error_list + used + n, "\n", 2);
            used += n + 1;
        }
        kd_free(e);
    }
    /* The report does not name the database; its status does. */
    if (path) rc = remote_status(c, &st, path);
out:
    kd_free(s);
    cli_http_res_free(&res);
    cli_buf_free(&p);
    return rc;
}

typedef struct backup_count {
    kd_progress_fn progress;
    void *ctx;
    uint64_t bytes;
} backup_count;

static void backup_progress(void *ctx, uint64_t done, uint64_t total) {
    backup_count *b = ctx;
    b->bytes = done;
    if (b->progress) b->progress(b->ctx, done, total);
}

int cli_op_backup(cli *c, const char *dir, kd_progress_fn progress, void *ctx, uint64_t *bytes) {
    cli_buf p = {0}, body = {0};
    cli_http_res res;
    int rc;
    *bytes = 0;
    if (!c->remote) {
        backup_count b = {progress, ctx, 0};
        rc = kd_backup(c->db, dir, backup_progress, &b);
        *bytes = b.bytes;
        return rc;
    }
    cli_buf_puts(&p, "/api/v1/_backup");
    cli_buf_puts(&body, "{\"dir\":");
    cli_json_cstr(&body, dir);
    cli_buf_puts(&body, "}");
    if (body.oom) {
        cli_buf_free(&p);
        return op_error(c, KD_NOMEM, "out of memory");
    }
    if ((rc = call(c, "POST", &p, body.p, body.len, NULL, &res)) == KD_OK &&
        read_u64(kd_json_get(root(&res), "bytes"), bytes) != KD_OK)
        rc = malformed(c, "a backup report");
    cli_http_res_free(&res);
    cli_buf_free(&p);
    cli_buf_free(&body);
    return rc;
}

/* ---- export and import --------------------------------------------------------------------- */

int cli_op_export(cli *c, const kd_export_opts *o, const char *at_spec, cli_export_sink out, void *ctx) {
    cli_buf p = {0};
    cli_http_res res;
    char err[256];
    int rc;
    if (!c->remote) {
        kd_export *ex = NULL;
        const char *line;
        size_t len;
        if ((rc = kd_export_open(c->db, o, &ex)) != KD_OK) return rc;
        while ((rc = kd_export_next(ex, &line, &len)) == KD_OK)
            if (out(ctx, line, len) != 0) break;
        kd_export_close(ex);
        return rc == KD_DONE ? KD_OK : rc;
    }
    cli_buf_puts(&p, "/api/v1/_export");
    char sep = '?';
    for (size_t i = 0; i < o->nnamespaces; i++, sep = '&') {
        cli_buf_printf(&p, "%cns=", sep);
        cli_url_add(&p, o->namespaces[i]);
    }
    if (o->mode == KD_EXPORT_CURRENT) cli_buf_printf(&p, "%ccurrent=1", sep);
    if (o->mode == KD_EXPORT_AT) {
        cli_buf_printf(&p, "%cat=", sep);
        cli_url_add(&p, at_spec);
    }
    if (p.oom) {
        cli_buf_free(&p);
        return op_error(c, KD_NOMEM, "out of memory");
    }
    c->op_msg_set = 0;
    rc = cli_http_stream(c, p.p, NULL, 0, out, ctx, NULL, &res, err, sizeof err);
    cli_buf_free(&p);
    if (rc != KD_OK) rc = op_error(c, KD_IOERR, "the export from %s broke off: %s", c->remote_url, err);
    else if (res.status != 200) rc = cli_http_error(c, &res);
    cli_http_res_free(&res);
    return rc;
}

int cli_op_import_piece(cli *c, const char *body, size_t len, uint64_t first_line, uint64_t *written,
                        uint64_t *skipped) {
    cli_buf p = {0};
    cli_http_res res;
    int rc;
    cli_buf_printf(&p, "/api/v1/_import?line=%llu", (unsigned long long)first_line);
    if ((rc = call(c, "POST", &p, body, len, NULL, &res)) == KD_OK &&
        (read_u64(kd_json_get(root(&res), "written"), written) != KD_OK ||
         read_u64(kd_json_get(root(&res), "skipped"), skipped) != KD_OK))
        rc = malformed(c, "an import report");
    cli_http_res_free(&res);
    cli_buf_free(&p);
    return rc;
}

/* ---- queries and views ------------------------------------------------------------------- */

/* The JSON form of q for a request body, with what kd_query_to_json cannot say: a time the
** server must resolve (a version id), and a page whose offset is 0 (left out of the JSON
** form, but a page given on the command line replaces a view's, "all from 0" included).
** NULL q is "{}". */
static int query_body(cli *c, const kd_query *q, const char *at_spec, int zero_offset,
                      cli_buf *body) {
    char *json = NULL;
    size_t len = 0;
    int rc;
    if (q) {
        if ((rc = kd_query_to_json(q, &json, &len)) != KD_OK)
            return op_error(c, rc, "%s", kd_errmsg(NULL));
    }
    if (!json || len < 2) {
        cli_buf_puts(body, "{}");
    } else {
        cli_buf_add(body, json, len);
    }
    kd_free(json);
    /* Append members before the closing brace. */
    body->len--;
    int empty = body->len == 1;
    if (at_spec) {
        cli_buf_puts(body, empty ? "\"at\":" : ",\"at\":");
        cli_json_cstr(body, at_spec);
        empty = 0;
    }
    if (zero_offset) cli_buf_puts(body, empty ? "\"offset\":0" : ",\"offset\":0");
    cli_buf_puts(body, "}");
    return body->oom ? op_error(c, KD_NOMEM, "out of memory") : KD_OK;
}

/* A query result document into a kd_result from kd_malloc. */
static int read_result(cli *c, kd_json_val doc, kd_result **out) {
    kd_json_val recs = kd_json_get(doc, "records"), agg = kd_json_get(doc, "aggregation"), elem;
    size_t n = count_elements(recs), pos = 0, i;
    kd_result *r = kd_malloc(sizeof *r);
    int rc = KD_OK;
    *out = NULL;
    if (!r) return op_error(c, KD_NOMEM, "out of memory");
    memset(r, 0, sizeof *r);
    if (n > 0) {
        if (!(r->records = kd_malloc(n * sizeof *r->records))) {
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
        memset(r->records, 0, n * sizeof *r->records);
        r->n = n;
    }
    if (kd_json_type(recs) != KD_JSON_ARRAY ||
        kd_json_string(kd_json_get(doc, "namespace"), &r->ns, NULL) != KD_OK ||
        read_u64(kd_json_get(doc, "total"), &r->total) != KD_OK) {
        rc = malformed(c, "a query result");
        goto out;
    }
    for (i = 0; kd_json_next(recs, &pos, NULL, &elem) && i < n; i++) {
        kd_record *rec = &r->records[i];
        kd_json_val v = kd_json_get(elem, "value");
        if (kd_json_string(kd_json_get(elem, "key"), &rec->key, NULL) != KD_OK || !v.p ||
            read_u64(kd_json_get(elem, "seq"), &rec->seq) != KD_OK ||
            read_time(kd_json_get(elem, "timestamp"), &rec->timestamp) != KD_OK ||
            read_id(kd_json_get(elem, "version_id"), rec->version_id) != KD_OK) {
            rc = malformed(c, "a query record");
            goto out;
        }
        if (!(rec->value = copy_text(v))) {
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
        rec->value_len = v.len;
    }
    if (agg.p && kd_json_type(agg) != KD_JSON_NULL) {
        if (!(r->aggregation = copy_text(agg))) {
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
        r->aggregation_len = agg.len;
    }
out:
    if (rc != KD_OK) kd_result_free(r);
    else *out = r;
    return rc;
}

/* POSTs a query body to path and reads the result. */
static int post_query(cli *c, const cli_buf *path, const cli_buf *body, kd_result **r) {
    cli_http_res res;
    int rc = call(c, "POST", path, body->p, body->len, NULL, &res);
    if (rc == KD_OK) rc = read_result(c, root(&res), r);
    cli_http_res_free(&res);
    return rc;
}

int cli_op_query(cli *c, const char *ns, const kd_query *q, const char *at_spec, kd_result **r) {
    cli_buf path = {0}, body = {0};
    int rc;
    *r = NULL;
    if (!c->remote) return kd_query_run(c->db, ns, q, r);
    c->op_msg_set = 0;
    if ((rc = refuse_system(c, ns)) != KD_OK) return rc;
    record_path(&path, ns, NULL, "/_query");
    if ((rc = query_body(c, q, at_spec, 0, &body)) == KD_OK) rc = post_query(c, &path, &body, r);
    cli_buf_free(&path);
    cli_buf_free(&body);
    return rc;
}

/* A view document into *v (strings from kd_malloc). */
static int read_view(cli *c, kd_json_val doc, kd_view_info *v) {
    kd_json_val q = kd_json_get(doc, "query"), d = kd_json_get(doc, "description"),
                f = kd_json_get(doc, "filter");
    memset(v, 0, sizeof *v);
    if (kd_json_string(kd_json_get(doc, "name"), &v->name, NULL) != KD_OK ||
        kd_json_string(kd_json_get(doc, "source"), &v->source, NULL) != KD_OK ||
        kd_json_bool(kd_json_get(doc, "auto_refresh"), &v->auto_refresh) != KD_OK ||
        read_u64(kd_json_get(doc, "records"), &v->records) != KD_OK ||
        read_time(kd_json_get(doc, "created"), &v->created) != KD_OK ||
        read_time(kd_json_get(doc, "refreshed"), &v->refreshed) != KD_OK)
        return malformed(c, "a view");
    if (kd_json_type(d) == KD_JSON_STRING ? kd_json_string(d, &v->description, NULL) != KD_OK
                                          : !(v->description = copy_text((kd_json_val){"", 0})))
        return malformed(c, "a view description");
    if (kd_json_type(f) == KD_JSON_STRING ? kd_json_string(f, &v->filter, NULL) != KD_OK
                                          : !(v->filter = copy_text((kd_json_val){"", 0})))
        return malformed(c, "a view filter");
    if (!(v->query = copy_text(kd_json_type(q) == KD_JSON_OBJECT ? q : (kd_json_val){"", 0})))
        return op_error(c, KD_NOMEM, "out of memory");
    return KD_OK;
}

/* One view from a request's answer, into a kd_malloc'd single-element list. */
static int view_call(cli *c, const char *method, const cli_buf *path, const cli_buf *body,
                     kd_view_info **info) {
    cli_http_res res;
    int rc = call(c, method, path, body ? body->p : NULL, body ? body->len : 0, NULL, &res);
    if (rc == KD_OK) {
        kd_view_info *v = kd_malloc(sizeof *v);
        if (!v) {
            rc = op_error(c, KD_NOMEM, "out of memory");
        } else if ((rc = read_view(c, root(&res), v)) != KD_OK) {
            kd_view_list_free(v, 1);
        } else {
            *info = v;
        }
    }
    cli_http_res_free(&res);
    return rc;
}

static void view_path(cli_buf *b, const char *name, const char *tail) {
    cli_buf_puts(b, "/api/v1/_views");
    if (name) {
        cli_buf_puts(b, "/");
        cli_url_add(b, name);
    }
    if (tail) cli_buf_puts(b, tail);
}

int cli_op_view_create(cli *c, const char *name, const char *source, const kd_query *q,
                       const char *description, int auto_refresh, kd_view_info **info) {
    cli_buf path = {0}, body = {0}, qb = {0};
    int rc;
    *info = NULL;
    if (!c->remote) {
        rc = kd_view_create(c->db, name, source, q, description, auto_refresh);
        return rc == KD_OK ? kd_view_get(c->db, name, info) : rc;
    }
    c->op_msg_set = 0;
    if ((rc = query_body(c, q, NULL, 0, &qb)) != KD_OK) goto out;
    view_path(&path, NULL, NULL);
    cli_buf_puts(&body, "{\"name\":");
    cli_json_cstr(&body, name);
    cli_buf_puts(&body, ",\"source\":");
    cli_json_cstr(&body, source);
    cli_buf_puts(&body, ",\"query\":");
    cli_buf_add(&body, qb.p, qb.len);
    if (description) {
        cli_buf_puts(&body, ",\"description\":");
        cli_json_cstr(&body, description);
    }
    cli_buf_printf(&body, ",\"auto_refresh\":%s}", auto_refresh ? "true" : "false");
    if (body.oom) rc = op_error(c, KD_NOMEM, "out of memory");
    else rc = view_call(c, "POST", &path, &body, info);
out:
    cli_buf_free(&path);
    cli_buf_free(&body);
    cli_buf_free(&qb);
    return rc;
}

int cli_op_view_list(cli *c, kd_view_info **v, size_t *n) {
    cli_buf path = {0};
    cli_http_res res;
    kd_json_val list, elem;
    size_t count, pos = 0, i;
    int rc;
    *v = NULL;
    *n = 0;
    if (!c->remote) return kd_view_list(c->db, v, n);
    view_path(&path, NULL, NULL);
    if ((rc = call(c, "GET", &path, NULL, 0, NULL, &res)) != KD_OK) goto out;
    list = kd_json_get(root(&res), "views");
    if (kd_json_type(list) != KD_JSON_ARRAY) {
        rc = malformed(c, "a view list");
        goto out;
    }
    count = count_elements(list);
    if (count > 0) {
        if (!(*v = kd_malloc(count * sizeof **v))) {
            rc = op_error(c, KD_NOMEM, "out of memory");
            goto out;
        }
        memset(*v, 0, count * sizeof **v);
        *n = count;
    }
    for (i = 0; kd_json_next(list, &pos, NULL, &elem) && i < count; i++)
        if ((rc = read_view(c, elem, &(*v)[i])) != KD_OK) goto out;
out:
    if (rc != KD_OK && *v) {
        kd_view_list_free(*v, *n);
        *v = NULL;
        *n = 0;
    }
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

int cli_op_view_get(cli *c, const char *name, kd_view_info **info) {
    cli_buf path = {0};
    int rc;
    *info = NULL;
    if (!c->remote) return kd_view_get(c->db, name, info);
    view_path(&path, name, NULL);
    rc = view_call(c, "GET", &path, NULL, info);
    cli_buf_free(&path);
    return rc;
}

int cli_op_view_query(cli *c, const char *name, const kd_query *extra, int zero_offset,
                      kd_result **r) {
    cli_buf path = {0}, body = {0};
    int rc;
    *r = NULL;
    if (!c->remote) return kd_view_query(c->db, name, extra, r);
    c->op_msg_set = 0;
    view_path(&path, name, "/_query");
    if ((rc = query_body(c, extra, NULL, zero_offset, &body)) == KD_OK)
        rc = post_query(c, &path, &body, r);
    cli_buf_free(&path);
    cli_buf_free(&body);
    return rc;
}

int cli_op_view_refresh(cli *c, const char *name, kd_view_info **info) {
    cli_buf path = {0};
    int rc;
    *info = NULL;
    if (!c->remote) {
        rc = kd_view_refresh(c->db, name);
        return rc == KD_OK ? kd_view_get(c->db, name, info) : rc;
    }
    view_path(&path, name, "/_refresh");
    rc = view_call(c, "POST", &path, NULL, info);
    cli_buf_free(&path);
    return rc;
}

int cli_op_view_delete(cli *c, const char *name) {
    cli_buf path = {0};
    cli_http_res res;
    int rc;
    if (!c->remote) return kd_view_delete(c->db, name);
    view_path(&path, name, NULL);
    rc = call(c, "DELETE", &path, NULL, 0, NULL, &res);
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

/* ---- embeddings and vector search ---------------------------------------------------------- */

/* A copy of s from kd_malloc (NULL when out of memory). */
static char *kd_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = kd_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The vector member of an answer, read from the body as the server sent it when possible:
** the canonical form writes -0 as 0, which would not give back the same float. */
static int read_vector(const cli_http_res *res, kd_json_val canon, float **v, size_t *dim) {
    kd_json_val raw = {0};
    char msg[160];
    float *tmp = NULL;
    size_t n = 0;
    if (res->body.p) raw = kd_json_get(kd_json_doc(res->body.p, res->body.len), "vector");
    if (kd_json_type(raw) != KD_JSON_ARRAY) raw = canon;
    if (kd_json_type(raw) != KD_JSON_ARRAY) return KD_ERROR;
    if (cli_parse_vector(raw.p, raw.len, &tmp, &n, msg, sizeof msg) != KD_OK) return KD_ERROR;
    /* Handed over with kd_malloc, as kd_embedding_free releases it. */
    *v = kd_malloc(n * sizeof **v);
    if (*v) memcpy(*v, tmp, n * sizeof **v);
    free(tmp);
    if (!*v) return KD_NOMEM;
    *dim = n;
    return KD_OK;
}

/* The version members an embedding's write or delete answers with, into *e (ns is the
** system namespace, as the library's kd_entry has it). */
static int read_embed_version(cli *c, kd_json_val doc, const char *ns, const char *key,
                              kd_entry *e) {
    char sys[KD_EMBED_NS_MAX + 8];
    if (read_u64(kd_json_get(doc, "seq"), &e->seq) != KD_OK ||
        read_time(kd_json_get(doc, "timestamp"), &e->timestamp) != KD_OK ||
        read_id(kd_json_get(doc, "version_id"), e->version_id) != KD_OK)
        return malformed(c, "an embedding version");
    snprintf(sys, sizeof sys, "_emb.%s", ns);
    if (!(e->ns = kd_strdup(sys)) || !(e->key = kd_strdup(key)))
        return op_error(c, KD_NOMEM, "out of memory");
    return KD_OK;
}

int cli_op_embed(cli *c, const char *ns, const char *key, const float *v, size_t dim,
                 const char *model, const char *meta_json, kd_entry *e) {
    cli_buf path = {0}, body = {0};
    cli_http_res res = {0};
    int rc;
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_embed(c->db, ns, key, v, dim, model, meta_json, e);
    record_path(&path, ns, key, "/_embedding");
    cli_buf_puts(&body, "{\"vector\":");
    cli_json_vector(&body, v, dim);
    if (model) {
        cli_buf_puts(&body, ",\"model\":");
        cli_json_cstr(&body, model);
    }
    if (meta_json) {
        cli_buf_puts(&body, ",\"metadata\":");
        cli_buf_puts(&body, meta_json);
    }
    cli_buf_puts(&body, "}");
    if (body.oom) rc = op_error(c, KD_NOMEM, "out of memory");
    else rc = call(c, "PUT", &path, body.p, body.len, NULL, &res);
    if (rc == KD_OK) rc = read_embed_version(c, root(&res), ns, key, e);
    if (rc != KD_OK) kd_entry_clear(e);
    cli_http_res_free(&res);
    cli_buf_free(&path);
    cli_buf_free(&body);
    return rc;
}

/* An embedding document into a kd_embedding from kd_malloc. */
static int read_embedding(cli *c, const cli_http_res *res, kd_embedding **out) {
    kd_json_val doc = root(res), meta = kd_json_get(doc, "metadata");
    kd_embedding *em = kd_malloc(sizeof *em);
    uint64_t dim;
    int rc = KD_OK;
    if (!em) return op_error(c, KD_NOMEM, "out of memory");
    memset(em, 0, sizeof *em);
    if (kd_json_string(kd_json_get(doc, "namespace"), &em->ns, NULL) != KD_OK ||
        kd_json_string(kd_json_get(doc, "key"), &em->key, NULL) != KD_OK ||
        kd_json_string(kd_json_get(doc, "model"), &em->model, NULL) != KD_OK ||
        read_u64(kd_json_get(doc, "dim"), &dim) != KD_OK ||
        read_u64(kd_json_get(doc, "seq"), &em->seq) != KD_OK ||
        read_time(kd_json_get(doc, "timestamp"), &em->timestamp) != KD_OK ||
        read_id(kd_json_get(doc, "version_id"), em->version_id) != KD_OK || !meta.p) {
        rc = malformed(c, "an embedding");
        goto out;
    }
    rc = read_vector(res, kd_json_get(doc, "vector"), &em->vector, &em->dim);
    if (rc == KD_NOMEM) {
        rc = op_error(c, KD_NOMEM, "out of memory");
        goto out;
    }
    if (rc != KD_OK || em->dim != dim) {
        rc = malformed(c, "an embedding's vector");
        goto out;
    }
    if (kd_json_type(meta) != KD_JSON_NULL && !(em->metadata = copy_text(meta)))
        rc = op_error(c, KD_NOMEM, "out of memory");
out:
    if (rc != KD_OK) kd_embedding_free(em);
    else *out = em;
    return rc;
}

int cli_op_embedding_get(cli *c, const char *ns, const char *key, const char *spec, int64_t ts,
                         kd_embedding **out) {
    cli_buf path = {0};
    cli_http_res res = {0};
    char t[32];
    int rc;
    *out = NULL;
    if (!c->remote) return kd_embedding_get(c->db, ns, key, spec ? ts : KD_AT_NOW, out);
    record_path(&path, ns, key, "/_embedding");
    if (spec) {
        if (ts != CLI_TS_SERVER) kd_format_time(ts, t); /* exact to the microsecond */
        add_param(&path, "at", ts == CLI_TS_SERVER ? spec : t);
    }
    rc = call(c, "GET", &path, NULL, 0, NULL, &res);
    if (rc == KD_OK) rc = read_embedding(c, &res, out);
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

int cli_op_embed_delete(cli *c, const char *ns, const char *key, kd_entry *e) {
    cli_buf path = {0};
    cli_http_res res = {0};
    int rc;
    memset(e, 0, sizeof *e);
    if (!c->remote) return kd_embed_delete(c->db, ns, key, e);
    record_path(&path, ns, key, "/_embedding");
    rc = call(c, "DELETE", &path, NULL, 0, NULL, &res);
    if (rc == KD_OK) rc = read_embed_version(c, root(&res), ns, key, e);
    if (rc == KD_OK) e->deleted = 1;
    else kd_entry_clear(e);
    cli_http_res_free(&res);
    cli_buf_free(&path);
    return rc;
}

static const char *metric_name(kd_metric m) {
    switch (m) {
    case KD_METRIC_DOT: return "dot";
    case KD_METRIC_L2: return "l2";
    default: return "cosine";
    }
}

/* The body of POST _search for o (every member the server takes; see docs/http.md). */
static void search_body(const kd_search_opts *o, const cli_search_text *t, cli_buf *b) {
    char ts[32];
    cli_buf_puts(b, "{\"vector\":");
    cli_json_vector(b, o->vector, o->dim);
    cli_buf_printf(b, ",\"top_k\":%zu,\"metric\":\"%s\"", o->top_k ? o->top_k : 10,
                   metric_name(o->metric));
    if (o->has_threshold) cli_buf_printf(b, ",\"threshold\":%.17g", o->threshold);
    if (o->model) {
        cli_buf_puts(b, ",\"model\":");
        cli_json_cstr(b, o->model);
    }
    if (t && t->filter) {
        cli_buf_puts(b, ",\"filter\":");
        cli_json_cstr(b, t->filter);
    }
    if (t && t->meta_filter) {
        cli_buf_puts(b, ",\"meta_filter\":");
        cli_json_cstr(b, t->meta_filter);
    }
    if (t && t->at_spec && o->at == CLI_TS_SERVER) {
        cli_buf_puts(b, ",\"at\":");
        cli_json_cstr(b, t->at_spec);
    } else if (o->at != KD_AT_NOW && o->at != CLI_TS_SERVER) {
        kd_format_time(o->at, ts);
        cli_buf_printf(b, ",\"at\":\"%s\"", ts);
    }
    if (o->exact) cli_buf_puts(b, ",\"exact\":true");
    if (o->ef_search) cli_buf_printf(b, ",\"ef_search\":%u", (unsigned)o->ef_search);
    cli_buf_puts(b, "}");
}

/* A search answer into hits from kd_malloc. */
static int read_hits(cli *c, kd_json_val doc, kd_search_hit **hits, size_t *n) {
    kd_json_val list = kd_json_get(doc, "results"), elem;
    size_t count = count_elements(list), pos = 0, i;
    kd_search_hit *h = NULL;
    int rc = KD_OK;
    if (kd_json_type(list) != KD_JSON_ARRAY) return malformed(c, "a search result");
    if (count > 0) {
        if (!(h = kd_malloc(count * sizeof *h))) return op_error(c, KD_NOMEM, "out of memory");
        memset(h, 0, count * sizeof *h);
    }
    for (i = 0; i < count && kd_json_next(list, &pos, NULL, &elem); i++) {
        if (kd_json_string(kd_json_get(elem, "namespace"), &h[i].ns, NULL) != KD_OK ||
            kd_json_string(kd_json_get(elem, "key"), &h[i].key, NULL) != KD_OK ||
            kd_json_double(kd_json_get(elem, "score"), &h[i].score) != KD_OK ||
            read_u64(kd_json_get(elem, "seq"), &h[i].seq) != KD_OK ||
            read_time(kd_json_get(elem, "timestamp"), &h[i].timestamp) != KD_OK ||
            read_id(kd_json_get(elem, "version_id"), h[i].version_id) != KD_OK) {
            rc = malformed(c, "a search hit");
            break;
        }
    }
    if (rc != KD_OK) {
        kd_search_free(h, count);
        return rc;
    }
    *hits = h;
    *n = count;
    return KD_OK;
}

int cli_op_search(cli *c, const kd_search_opts *o, const cli_search_text *t, kd_search_hit **hits,
                  size_t *n) {
    cli_buf path = {0}, body = {0};
    cli_http_res res = {0};
    int rc;
    *hits = NULL;
    *n = 0;
    if (!c->remote) return kd_search(c->db, o, hits, n);
    if (o->ns) record_path(&path, o->ns, NULL, "/_search");
    else cli_buf_puts(&path, "/api/v1/_search");
    search_body(o, t, &body);
    if (body.oom) rc = op_error(c, KD_NOMEM, "out of memory");
    else rc = call(c, "POST", &path, body.p, body.len, NULL, &res);
    if (rc == KD_OK) rc = read_hits(c, root(&res), hits, n);
    cli_http_res_free(&res);
    cli_buf_free(&path);
    cli_buf_free(&body);
    return rc;
}
