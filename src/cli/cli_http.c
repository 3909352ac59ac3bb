/*
** cli_http.c — the HTTP client under `kdelta --url` (and automatic routing, and remote
** `watch`): one libcurl easy handle per process, so consecutive requests of a command
** share a keep-alive connection; plain requests with JSON bodies; a streaming GET for the
** change feed; percent-encoding; and the mapping of the server's error documents back to
** the library's status codes.
**
** May call: libcurl, the public API (korudelta.h: kd_json_* to read error documents),
** cli.h helpers, the C library.
**
** Timeouts: 5 s to connect; no total timeout (a large batch or a long watch must not be
** cut off). A stream that stays silent longer than the caller's idle limit (a few of the
** server's heartbeats) counts as dropped.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli_ops.h"

#define CONNECT_TIMEOUT_S 5L

struct cli_http {
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
};

/* Where the write callback puts the body: into res->body, or into the sink while the
** answer is a 200 stream. */
typedef struct transfer {
    CURL *curl;
    cli_http_res *res;
    cli_http_sink sink;
    void *ctx;
    volatile sig_atomic_t *stop;
    int sink_stopped;
} transfer;

static CURL *handle(cli *c) {
    if (c->http) return c->http->curl;
    struct cli_http *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->curl = curl_easy_init())) {
        free(h);
        return NULL;
    }
    c->http = h;
    return h->curl;
}

void cli_http_close(cli *c) {
    if (!c->http) return;
    curl_easy_cleanup(c->http->curl);
    curl_global_cleanup();
    free(c->http);
    c->http = NULL;
}

void cli_http_res_free(cli_http_res *res) {
    cli_buf_free(&res->body);
    kd_free(res->doc);
    memset(res, 0, sizeof *res);
}

void cli_url_add(cli_buf *b, const char *s) {
    static const char hx[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            char one = (char)ch;
            cli_buf_add(b, &one, 1);
        } else {
            char esc[3] = {'%', hx[ch >> 4], hx[ch & 15]};
            cli_buf_add(b, esc, 3);
        }
    }
}

/* The server cannot be reached: that is the command's error, whatever it does next. When
** the server was found through serve.addr, the honest answer is the local one: the
** database is in use. */
static void record_unreachable(cli *c, const char *detail) {
    if (c->err_final) return;
    if (c->routed) {
        snprintf(c->err_msg, sizeof c->err_msg, "%s", c->busy_msg);
        c->err_rc = KD_BUSY;
    } else {
        cli_fail(c, KD_ERROR, "cannot reach the server at %s: %s", c->remote_url, detail);
    }
    c->err_final = 1;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg) {
    transfer *t = arg;
    size_t n = size * nmemb;
    if (t->sink) {
        long status = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            if (t->sink(t->ctx, p, n) != 0) {
                t->sink_stopped = 1;
                return 0; /* ends the transfer (CURLE_WRITE_ERROR) */
            }
            return n;
        }
    }
    cli_buf_add(&t->res->body, p, n);
    return t->res->body.oom ? 0 : n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    transfer *t = arg;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return t->stop && *t->stop ? 1 : 0;
}

/* Sets up h for one request; returns the header list to free after it. */
static struct curl_slist *prepare(cli *c, CURL *h, const char *method, const char *path,
                                  const char *body, size_t len, const char *const *headers,
                                  transfer *t, int *bad) {
    struct curl_slist *list = NULL, *next;
    cli_buf url = {0};
    *bad = 0;
    cli_buf_puts(&url, c->remote_url);
    cli_buf_puts(&url, path);
    if (url.oom) {
        *bad = 1;
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_URL, url.p); /* libcurl copies the string */
    cli_buf_free(&url);
    c->http->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->http->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 0L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 0L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kdelta/" KD_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, t->stop ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        list = curl_slist_append(list, "Content-Type: application/json");
        /* No "Expect: 100-continue" round trip for large bodies. */
        if (list && (next = curl_slist_append(list, "Expect:"))) list = next;
        else *bad = 1;
    } else if (strcmp(method, "POST") == 0) {
        /* No body: no Content-Type either (curl would send a form's). */
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        list = curl_slist_append(list, "Content-Type:");
        if (!list) *bad = 1;
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    /* GET and POST are curl's own; PUT and DELETE are named over them. */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ? NULL : method);
    for (size_t i = 0; headers && headers[i]; i++) {
        next = curl_slist_append(list, headers[i]);
        if (!next) {
            *bad = 1;
            break;
        }
        list = next;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    return list;
}

/* After the transfer: status and the canonical form of a JSON body. */
static void finish(CURL *h, cli_http_res *res) {
    size_t n;
    char *type = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type);
    res->event_stream = type && strncmp(type, "text/event-stream", 17) == 0;
    if (res->body.len && kd_json_canonical(res->body.p, res->body.len, &res->doc, &n) == KD_OK)
        res->doc_len = n;
    else
        res->doc = NULL;
}

int cli_http_call(cli *c, const char *method, const char *path, const char *body, size_t len,
                  const char *const *headers, cli_http_res *res) {
    CURL *h = handle(c);
    transfer t;
    struct curl_slist *list;
    CURLcode cc;
    int bad;
    memset(res, 0, sizeof *res);
    memset(&t, 0, sizeof t);
    t.curl = h;
    t.res = res;
    list = h ? prepare(c, h, method, path, body, len, headers, &t, &bad) : NULL;
    if (!h || bad) {
        curl_slist_free_all(list);
        cli_fail(c, KD_NOMEM, "out of memory starting an HTTP request");
        c->err_final = 1;
        return KD_NOMEM;
    }
    cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(list);
    if (cc != CURLE_OK) {
        record_unreachable(c, c->http->errbuf[0] ? c->http->errbuf : curl_easy_strerror(cc));
        cli_http_res_free(res);
        return KD_ERROR;
    }
    finish(h, res);
    return KD_OK;
}

int cli_http_stream(cli *c, const char *path, const char *const *headers, long idle_s,
                    cli_http_sink sink, void *ctx, volatile sig_atomic_t *stop, cli_http_res *res,
                    char *err, size_t errlen) {
    CURL *h = handle(c);
    transfer t;
    struct curl_slist *list;
    CURLcode cc;
    int bad;
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    if (!h) {
        snprintf(err, errlen, "cannot start the HTTP client");
        return KD_NOMEM;
    }
    memset(&t, 0, sizeof t);
    t.curl = h;
    t.res = res;
    t.sink = sink;
    t.ctx = ctx;
    t.stop = stop;
    list = prepare(c, h, "GET", path, NULL, 0, headers, &t, &bad);
    if (bad) {
        curl_slist_free_all(list);
        snprintf(err, errlen, "out of memory");
        return KD_NOMEM;
    }
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, idle_s);
    cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(list);
    if (cc != CURLE_OK && !t.sink_stopped && !(stop && *stop)) {
        snprintf(err, errlen, "%s", c->http->errbuf[0] ? c->http->errbuf : curl_easy_strerror(cc));
        cli_http_res_free(res);
        return KD_ERROR;
    }
    finish(h, res);
    return KD_OK;
}

/* ---- the server's errors ------------------------------------------------------------- */

/* Error codes of docs/http.md that the CLI's vocabulary (cli_error_code) lacks. */
static const struct {
    const char *code;
    int rc;
} extra_codes[] = {
    {"shutting_down", KD_BUSY},
    {"method_not_allowed", KD_ERROR},
    {"unsupported_media_type", KD_INVALID},
};

/* The code of an error document whose code we do not know. */
static int rc_for_status(long status) {
    switch (status) {
    case 400: return KD_INVALID;
    case 404: return KD_NOTFOUND;
    case 409:
    case 412: return KD_CONFLICT;
    case 413: return KD_TOOBIG;
    case 503: return KD_BUSY;
    case 507: return KD_FULL;
    default: return KD_ERROR;
    }
}

static int rc_for_code(const char *code, long status) {
    for (int rc = 1; rc <= KD_DONE; rc++)
        if (strcmp(cli_error_code(rc), code) == 0 && strcmp(code, "error") != 0) return rc;
    for (size_t i = 0; i < sizeof extra_codes / sizeof extra_codes[0]; i++)
        if (strcmp(extra_codes[i].code, code) == 0) return extra_codes[i].rc;
    return strcmp(code, "error") == 0 ? KD_ERROR : rc_for_status(status);
}

int cli_http_error(cli *c, const cli_http_res *res) {
    char *code = NULL, *msg = NULL;
    int rc;
    kd_json_val err = {0};
    if (res->doc) err = kd_json_get(kd_json_doc(res->doc, res->doc_len), "error");
    if (kd_json_type(err) == KD_JSON_OBJECT) {
        kd_json_string(kd_json_get(err, "code"), &code, NULL);
        kd_json_string(kd_json_get(err, "message"), &msg, NULL);
    }
    /* An answer that is not an error document (a proxy's page, another program on that
    ** port) says nothing about the key or view asked for: a plain error, not "not found". */
    rc = code ? rc_for_code(code, res->status) : KD_ERROR;
    if (msg && *msg)
        snprintf(c->op_msg, sizeof c->op_msg, "%s", msg);
    else
        snprintf(c->op_msg, sizeof c->op_msg, "the server at %s answered HTTP %ld%s", c->remote_url,
                 res->status, code ? "" : ", not a kdelta error document");
    c->op_msg_set = 1;
    kd_free(code);
    kd_free(msg);
    return rc;
}
