/*
** server_int.h — what the files of the HTTP server share: the server's state, the request
** as the routes see it, the error and JSON response helpers, a small output buffer, the
** change feed's entry points, the metrics hooks and the vector-search handlers.
**
** May call: as server.h.
**
** Threads: the daemon runs a thread per connection, so a handler may block (a durable
** write waits for its group fsync; a change stream waits for events). Everything a
** request owns lives in its connection's context; what the threads share is the srv
** below (read-only after start, or atomic) and the library handle, which is thread-safe.
*/
#ifndef KD_SERVER_INT_H
#define KD_SERVER_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

typedef struct srv srv;

/* Log levels (KORU_LOG). */
enum { SRV_LOG_ERROR = 0, SRV_LOG_WARN, SRV_LOG_INFO, SRV_LOG_DEBUG, SRV_LOG_TRACE };

/* The server's state. server.c owns it; other files read what they need. */
struct srv {
    kd_db *db;
    kd_server_options opt;
    atomic_int stopping;          /* set once SIGINT/SIGTERM arrived: new requests get 503,
                                     change streams end */
    atomic_long open_feeds;       /* SSE streams and waiting long-polls (a /metrics gauge) */
    struct srv_metrics *metrics;  /* metrics.c */
    /* server.c may add more below */
    struct MHD_Daemon *daemon;
    atomic_long in_flight;        /* requests between their first handler call and their
                                     completion: what shutdown waits for */
    int log_level;                /* SRV_LOG_*, from KORU_LOG, read once at start */
    int log_json;                 /* KORU_LOG_FORMAT=json */
    char *abs_path;               /* the database directory, absolute (for _status) */
    uint64_t start_ns;            /* CLOCK_MONOTONIC at start (uptime) */
    char url[96];                 /* http://HOST:PORT, as written to serve.addr */
    pthread_mutex_t conns_mu;     /* guards conns */
    struct srv_conn *conns;       /* every open connection (server.c): what the stop cuts */
};

/* ---- requests (server.c fills them, routes.c answers them) --------------------------------- */

enum { SRV_GET = 0, SRV_PUT, SRV_POST, SRV_DELETE, SRV_OTHER, SRV_NMETHODS };

/* Route ids: the label of the request counters and latency histograms (metrics.c) and the
** index of the routing table (routes.c). */
enum {
    SRV_R_UNMATCHED = 0, SRV_R_HEALTHZ, SRV_R_METRICS, SRV_R_RECORD, SRV_R_RECORD_AT,
    SRV_R_HISTORY, SRV_R_DIFF, SRV_R_BATCH, SRV_R_NAMESPACES, SRV_R_KEYS, SRV_R_QUERY,
    SRV_R_VIEWS, SRV_R_VIEW, SRV_R_VIEW_REFRESH, SRV_R_VIEW_QUERY, SRV_R_STATUS, SRV_R_CHECK,
    SRV_R_CHANGES, SRV_R_EMBEDDING, SRV_R_SEARCH, SRV_R_NS_SEARCH, SRV_R_BACKUP, SRV_R_EXPORT,
    SRV_R_IMPORT, SRV_NROUTES
};

#define SRV_MAX_SEGS 8    /* path segments looked at; a longer path matches no route */
#define SRV_MAX_ARGS 32   /* query-string arguments accepted (more: 400) */

typedef struct srv_req {
    struct MHD_Connection *conn;
    int method;                    /* SRV_GET, ... */
    int route;                     /* SRV_R_*, set by srv_route */
    const char *seg[SRV_MAX_SEGS]; /* the path's segments, each percent-decoded */
    size_t nseg;
    const char *arg_name[SRV_MAX_ARGS]; /* query-string arguments, percent-decoded */
    const char *arg_val[SRV_MAX_ARGS];
    size_t nargs;
    const char *body;              /* the request body, NUL-terminated ("" when none) */
    size_t body_len;
} srv_req;

/* A route's handler: returns the response to queue (NULL only when out of memory) and sets
** *status. Runs in the connection's thread. */
typedef struct MHD_Response *(*srv_handler)(srv *s, srv_req *r, unsigned *status);

/* A decoded query-string argument of the request, or NULL when absent ("" for `?x`).
** MHD does not decode arguments here (the server's unescape callback leaves URLs raw so
** that the path can be split before decoding); server.c decodes them into these. */
const char *srv_arg(const srv_req *r, const char *name);
/* The same for code that holds only the connection (changes.c): valid while the request
** runs, NULL when absent or when conn is not one of ours. */
const char *srv_conn_arg(struct MHD_Connection *conn, const char *name);

/* ---- routing (routes.c) ------------------------------------------------------------------- */
/* Matches r->seg/r->method: sets r->route and returns the handler, or returns NULL with
** *status 404 (no such route) or 405 (*allow = the methods the route takes). *body says
** whether the route reads a request body (so Content-Type is checked). */
srv_handler srv_route(srv_req *r, unsigned *status, const char **allow, int *body);
/* The route's pattern, e.g. "/api/v1/{ns}/{key}" (a metrics label). */
const char *srv_route_pattern(int route);

/* Helpers of routes.c that the other route files share. */
/* The canonical form of a JSON request body that must be an object (shape describes it in
** the error); *doc reads it. On failure returns the error response. *out: kd_free. */
struct MHD_Response *srv_body_object(const srv_req *r, const char *shape, char **out,
                                     size_t *len, kd_json_val *doc, unsigned *status);
/* An optional string member of a request object: *out NULL when absent or null; 400 when
** it is something else (where prefixes the message). *out: kd_free. */
struct MHD_Response *srv_member_string(kd_json_val obj, const char *name, const char *where,
                                       char **out, unsigned *status);
/* 400 (naming shape) for the first member of obj not in allowed (NULL-terminated);
** names compare with their length, so one holding U+0000 is never a known one. */
struct MHD_Response *srv_only_members(kd_json_val obj, const char *const *allowed, const char *shape,
                                      unsigned *status);
/* A non-negative integer query argument, at most max (400 otherwise); *given (may be NULL)
** says whether it was there. NULL when fine, else the error response. */
struct MHD_Response *srv_arg_uint(const srv_req *r, const char *name, uint64_t max, uint64_t *out,
                                  int *given, unsigned *status);
/* A boolean query argument: 1/true/yes (or present without a value), 0/false/no; *out 0
** when absent. NULL when fine, else the 400 response. */
struct MHD_Response *srv_arg_bool(const srv_req *r, const char *name, int *out, unsigned *status);
/* Adds the ETag header to resp; NULL (resp destroyed) when that fails. */
struct MHD_Response *srv_with_etag(struct MHD_Response *resp, const char *etag);

/* ---- vector search (routes_vector.c) ------------------------------------------------ */
/* GET, PUT, DELETE /api/v1/{ns}/{key}/_embedding; POST /api/v1/_search and
** /api/v1/{ns}/_search (docs/http.md, "Vector search"). */
struct MHD_Response *srv_h_embedding_get(srv *s, srv_req *r, unsigned *status);
struct MHD_Response *srv_h_embedding_put(srv *s, srv_req *r, unsigned *status);
struct MHD_Response *srv_h_embedding_delete(srv *s, srv_req *r, unsigned *status);
struct MHD_Response *srv_h_search(srv *s, srv_req *r, unsigned *status);

/* ---- export and import (routes_export.c) -------------------------------------------- */
/* GET /api/v1/_export (streamed NDJSON) and POST /api/v1/_import (docs/http.md). */
struct MHD_Response *srv_h_export(srv *s, srv_req *r, unsigned *status);
struct MHD_Response *srv_h_import(srv *s, srv_req *r, unsigned *status);

/* ---- responses (server.c) ------------------------------------------------------------ */
/* A JSON response with the given body (copied). */
struct MHD_Response *srv_json_response(const char *body, size_t len);
/* The same for a body that lives as long as the program (a string literal): not copied. */
struct MHD_Response *srv_json_response_static(const char *body, size_t len);
/* A JSON response that takes ownership of body, released with kd_free (text the library
** returned: kd_entry_to_json, kd_result_to_json, ...). */
struct MHD_Response *srv_json_response_kd(char *body, size_t len);
/* {"error":{"code","message"[,extra_name: extra_json]}}. extra_name/extra_json may be NULL;
** extra_json is raw JSON text (e.g. a version document or "null"). */
struct MHD_Response *srv_error_response(const char *code, const char *message,
                                        const char *extra_name, const char *extra_json);
/* The HTTP status and error code for a library status code (KD_INVALID -> 400 "invalid"). */
unsigned srv_status_for(int rc, const char **code);
/* Shorthands for handlers: set *status and return the error response. srv_fail formats
** its own message; srv_fail_kd uses kd_errmsg (call it right after the failing kd_* call),
** prefixed with `what: ` when what is not NULL. */
struct MHD_Response *srv_fail(unsigned *status, unsigned st, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
struct MHD_Response *srv_fail_kd(unsigned *status, int rc, const char *what);

/* ---- output buffer (server.c) ---------------------------------------------------------- */
/* Growable, NUL-terminated once anything was appended; after a failed allocation `oom` is
** set and appends are ignored, so callers check once at the end. */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
    int oom;
} srv_buf;
void srv_buf_add(srv_buf *b, const char *s, size_t n);
void srv_buf_puts(srv_buf *b, const char *s);
void srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal for n bytes of s, escaped as the library's canonical JSON escapes
** it; bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON. */
void srv_buf_json_str(srv_buf *b, const char *s, size_t n);
void srv_buf_free(srv_buf *b);
/* A 200-style JSON response that takes b's memory (b is emptied); NULL when b->oom. */
struct MHD_Response *srv_buf_response(srv_buf *b);
/* The same with another Content-Type (the /metrics page). */
struct MHD_Response *srv_buf_response_type(srv_buf *b, const char *content_type);

/* ---- logging (server.c) -------------------------------------------------------------------- */
/* One log line at level (dropped below KORU_LOG's level), written with a single write. */
void srv_log(const srv *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- the change feed (changes.c) ------------------------------------------------------ */
/* Answers GET /api/v1/_changes on conn (docs/http.md): an SSE stream, a long-poll JSON
** answer, or an error. Sets *status to the HTTP status to queue the response with. Runs
** in the connection's own thread (the daemon uses a thread per connection), so a stream's
** content callback may block while it waits for changes. */
struct MHD_Response *srv_changes(srv *s, struct MHD_Connection *conn, unsigned *status);
/* Wakes every open stream and long-poll so that they notice s->stopping and end. With
** cut, also shuts down the socket of every SSE stream still open: one whose client stopped
** reading leaves MHD's thread blocked in send, where no wake-up reaches it. */
void srv_changes_shutdown(srv *s, int cut);

/* ---- metrics (metrics.c) ------------------------------------------------------------------ */
int srv_metrics_init(srv *s);       /* KD_OK or KD_NOMEM */
void srv_metrics_free(srv *s);
/* Counts one finished request and its latency (nanoseconds). Lock-free. */
void srv_metrics_request(srv *s, int route, int method, unsigned status, uint64_t ns);
/* The open-connections gauge: +1 when a connection opens, -1 when it closes. */
void srv_metrics_connection(srv *s, int delta);
/* GET /metrics. */
struct MHD_Response *srv_metrics_page(srv *s, srv_req *r, unsigned *status);

#endif /* KD_SERVER_INT_H */
