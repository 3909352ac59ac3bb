/*
** routes_export.c — export and import over HTTP (docs/http.md, "Export and import"):
** GET /api/v1/_export streams the NDJSON export of kd_export_* (the bytes `kdelta export`
** writes), and POST /api/v1/_import takes an export, or a piece of one, as the request
** body and imports it with kd_import_* (what `kdelta import` does, through a server in
** pieces of at most a few MiB that split no commit).
**
** May call: the public API (korudelta.h), libmicrohttpd (responses), the helpers of
** server.c and routes.c (server_int.h), the C library.
**
** The export is produced while it is sent: each call of the response callback takes the
** next lines. An error after the first bytes (or a server stop) ends the stream without
** its final chunk, which a client sees as a broken transfer rather than a short export.
*/
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

#define EXPORT_BLOCK (64 * 1024)

typedef struct export_stream {
    srv *s;
    kd_export *ex;
    const char *line; /* what is left of the current line */
    size_t left;
    int done;
} export_stream;

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max) {
    export_stream *es = cls;
    size_t n = 0;
    (void)pos;
    if (atomic_load(&es->s->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
    while (n < max) {
        if (es->left == 0) {
            if (es->done) break;
            int rc = kd_export_next(es->ex, &es->line, &es->left);
            if (rc == KD_DONE) {
                es->done = 1;
                break;
            }
            if (rc != KD_OK) {
                srv_log(es->s, SRV_LOG_ERROR, "export failed: %s", kd_errmsg(NULL));
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        size_t k = es->left < max - n ? es->left : max - n;
        memcpy(buf + n, es->line, k);
        es->line += k;
        es->left -= k;
        n += k;
    }
    if (n == 0 && es->done) return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)n;
}

static void export_free(void *cls) {
    export_stream *es = cls;
    kd_export_close(es->ex);
    free(es);
}

/* GET /api/v1/_export[?ns=A&ns=B][&at=T | &current=1] */
struct MHD_Response *srv_h_export(srv *s, srv_req *r, unsigned *status) {
    const char *at = srv_arg(r, "at");
    const char *ns[SRV_MAX_ARGS];
    struct MHD_Response *resp;
    kd_export_opts o;
    int rc, current;
    memset(&o, 0, sizeof o);
    o.mode = KD_EXPORT_HISTORY;
    for (size_t i = 0; i < r->nargs; i++) {
        const char *name = r->arg_name[i];
        if (strcmp(name, "ns") == 0) ns[o.nnamespaces++] = r->arg_val[i];
        else if (strcmp(name, "at") != 0 && strcmp(name, "current") != 0)
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                            "unknown argument '%.100s' (_export takes ns, at and current)", name);
    }
    o.namespaces = ns;
    if ((resp = srv_arg_bool(r, "current", &current, status))) return resp;
    if (at && current)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "at and current do not go together");
    if (current) o.mode = KD_EXPORT_CURRENT;
    if (at) {
        o.mode = KD_EXPORT_AT;
        if ((rc = kd_parse_time(s->db, at, &o.at)) != KD_OK) return srv_fail_kd(status, rc, "at");
    }
    export_stream *es = calloc(1, sizeof *es);
    if (!es) return srv_fail_kd(status, KD_NOMEM, NULL);
    es->s = s;
    if ((rc = kd_export_open(s->db, &o, &es->ex)) != KD_OK) {
        resp = srv_fail_kd(status, rc, NULL);
        free(es);
        return resp;
    }
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EXPORT_BLOCK, export_read, es, export_free);
    if (!resp) {
        export_free(es);
        return srv_fail_kd(status, KD_NOMEM, NULL);
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson") != MHD_YES) {
        MHD_destroy_response(resp);
        return srv_fail_kd(status, KD_NOMEM, NULL);
    }
    *status = MHD_HTTP_OK;
    return resp;
}

/* POST /api/v1/_import[?line=N]: the body is an export (or a piece of one that starts with
** its header line); N is the number, in the whole export, of the piece's first line after
** the header (for error messages; default 2). */
struct MHD_Response *srv_h_import(srv *s, srv_req *r, unsigned *status) {
    struct MHD_Response *resp;
    kd_import *im = NULL;
    uint64_t written = 0, skipped = 0, first = 2;
    int rc, given;
    if ((resp = srv_arg_uint(r, "line", UINT64_MAX, &first, &given, status))) return resp;
    if (given && first < 2)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "line must be a line number of 2 or more");
    if ((rc = kd_import_begin(s->db, first, &im)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    const char *p = r->body, *end = r->body + r->body_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if ((rc = kd_import_line(im, p, (size_t)(stop - p))) != KD_OK) {
            resp = srv_fail_kd(status, rc, NULL);
            kd_import_end(im, NULL, NULL);
            return resp;
        }
        p = nl ? nl + 1 : end;
    }
    if ((rc = kd_import_end(im, &written, &skipped)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    srv_buf b = {0};
    srv_buf_printf(&b, "{\"skipped\":%llu,\"written\":%llu}", (unsigned long long)skipped,
                   (unsigned long long)written);
    *status = MHD_HTTP_OK;
    return srv_buf_response(&b);
}
