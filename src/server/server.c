/*
** server.c — the daemon behind `kdelta serve`: its life cycle (listen, serve, stop in
** order), request intake (path and argument decoding, bodies, early rejections), the
** response and error helpers the routes share, the access log and the address file.
**
** May call: the public API (korudelta.h), libmicrohttpd, routes.c (srv_route and the
** handlers it returns), changes.c (srv_changes_shutdown), metrics.c, the C library, POSIX.
**
** How a request goes. libmicrohttpd (MHD) runs a thread per connection and calls
** on_request several times per request: once when the headers are in, once per piece of
** body, and a last time with no data. The first call decodes the path and the arguments
** and finds the route (so 404/405/400 are decided before any body is read), the middle
** calls collect the body, the last call runs the handler and queues its answer. Answers
** are queued on the last call, never the first, because MHD 0.9.75 closes a keep-alive
** connection whose response is queued on the first call; the exceptions are the answers
** after which the connection should close anyway (413, 415, 503 while stopping).
**
** Raw paths. A key is one percent-decoded path segment, so `a%2Fb` must stay one segment:
** the unescape callback leaves everything as it is, and this file splits the raw path at
** '/' before decoding each segment. MHD hands the query-string arguments over undecoded
** too ('+' already turned into a space), so they are decoded here as well, into the
** connection's arena; routes read them with srv_arg (changes.c with srv_conn_arg).
**
** Memory: each connection owns one srv_conn (made when MHD opens the connection, freed
** when it closes) holding the request, an arena for decoded segments and arguments and the
** body buffer; they are reused by the next request on the connection, so a keep-alive GET
** allocates nothing here.
**
** Stopping: the stop signals (SIGINT, SIGTERM, SIGHUP) are blocked before the database is
** opened (kd_server_block_signals, called by `kdelta serve`), so every thread inherits the
** mask and kd_server_run alone takes them, with sigwait. Then: stopping is set (new
** requests get 503 shutting_down with Connection: close; /healthz says shutting_down), MHD
** stops accepting, change streams are woken and end, and in-flight requests are waited for
** (drain). After SRV_STOP_GRACE_NS the connections that cannot end by themselves are shut
** down: SSE streams whose client stopped reading (MHD's thread is stuck in send) and
** requests whose body is still arriving (not acknowledged, nothing written). The drain
** ends when nothing is in flight, after SRV_DRAIN_TIMEOUT_NS, or at a second stop signal
** ("stopping now"). Then the daemon stops (MHD shuts down the sockets left and joins their
** threads), the database is synced and serve.addr removed; kd_server_run returns 0. The
** caller closes the database, which releases the lock.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_int.h"

#define SRV_IDLE_TIMEOUT_S 60       /* docs/http.md: an idle connection is closed */
#define SRV_DRAIN_TIMEOUT_NS (30ull * 1000000000ull)
#define SRV_STOP_GRACE_NS (1000000000ull) /* then stalled streams and bodies are cut */
/* MHD's per-connection pool: the read buffer, the parsed headers and the response head.
** It bounds a request's head (request line and headers) at about this size, and MHD
** zeroes about 1.5 times it on every request (the read buffer when the answer is built,
** the whole pool at the reset between keep-alive requests). 32 KiB is MHD's default and
** what nginx accepts by default (4 x 8 KiB header buffers); 64 KiB cost ~5% of a GET's
** CPU in memset. */
#define SRV_CONN_MEMORY (32 * 1024)
#define SRV_BODY_KEEP (64 * 1024)   /* a body buffer larger than this is freed after use */
#define SRV_LOG_PATH_MAX 512        /* bytes of the path kept for the access log */
#define SRV_DISCARD_MAX (16u << 20) /* body bytes read past an early answer before closing */

/* Where a connection's request is, for the stop (srv_conn.phase). Only a request still
** receiving its body may be cut: the CAS from RECEIVING decides, once, between running
** the handler and cutting, so a cut request never writes anything. */
enum { PH_IDLE = 0, PH_RECEIVING, PH_RUNNING, PH_CUT };

/* One per TCP connection (MHD's socket context). */
typedef struct srv_conn {
    srv *s;
    int fd;                        /* the socket; open while the connection is in s->conns */
    struct srv_conn *next, *prev;  /* s->conns, under s->conns_mu */
    atomic_int phase;              /* PH_* */
    srv_req req;
    int active;                    /* a request is in flight (counted in s->in_flight) */
    srv_handler handler;           /* the matched route's handler, or NULL */
    int wants_body;                /* the route reads a body */
    struct MHD_Response *early;    /* an answer decided on the first call, queued on the last */
    unsigned early_status;
    int queued;                    /* a response was queued for this request */
    unsigned status;               /* what was queued (0: nothing) */
    size_t resp_bytes;
    char *arena;                   /* decoded path segments and arguments */
    size_t arena_cap;
    char *body;
    size_t body_len, body_cap;
    size_t received;               /* body bytes received */
    size_t discarded;              /* body bytes thrown away after an early answer */
    uint64_t start_ns;
    char method[12];               /* these two are for the access log: filled only */
    char path[SRV_LOG_PATH_MAX];   /* when it is on (raw path, cut at 511 bytes) */
    char remote[INET6_ADDRSTRLEN];
} srv_conn;

/* Size of the last response built by the helpers below on this thread: the access log's
** byte count (a streamed response leaves it 0). */
static _Thread_local size_t last_resp_len;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- output buffer ------------------------------------------------------------------------ */

static int buf_grow(srv_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void srv_buf_add(srv_buf *b, const char *s, size_t n) {
    if (!buf_grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void srv_buf_puts(srv_buf *b, const char *s) { srv_buf_add(b, s, strlen(s)); }

void srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    va_list ap;
    char tmp[256];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        srv_buf_add(b, tmp, (size_t)n);
        return;
    }
    if (!buf_grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void srv_buf_json_str(srv_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    srv_buf_add(b, "\"", 1);
    while (i < n) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(u + i, n - i);
            if (l) {
                i += l;
                continue;
            }
        }
        srv_buf_add(b, s + run, i - run);
        switch (c) {
        case '"': srv_buf_add(b, "\\\"", 2); break;
        case '\\': srv_buf_add(b, "\\\\", 2); break;
        case '\b': srv_buf_add(b, "\\b", 2); break;
        case '\f': srv_buf_add(b, "\\f", 2); break;
        case '\n': srv_buf_add(b, "\\n", 2); break;
        case '\r': srv_buf_add(b, "\\r", 2); break;
        case '\t': srv_buf_add(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                srv_buf_add(b, esc, 6);
            } else {
                srv_buf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD for a byte that is not UTF-8 */
            }
        }
        run = ++i;
    }
    srv_buf_add(b, s + run, n - run);
    srv_buf_add(b, "\"", 1);
}

void srv_buf_free(srv_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- responses ---------------------------------------------------------------------------- */

static struct MHD_Response *with_json_type(struct MHD_Response *r, size_t len) {
    if (!r) return NULL;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    last_resp_len = len;
    return r;
}

struct MHD_Response *srv_json_response(const char *body, size_t len) {
    return with_json_type(MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY),
                          len);
}

struct MHD_Response *srv_json_response_static(const char *body, size_t len) {
    return with_json_type(MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT),
                          len);
}

struct MHD_Response *srv_json_response_kd(char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, kd_free);
    if (!r) {
        kd_free(body);
        return NULL;
    }
    return with_json_type(r, len);
}

struct MHD_Response *srv_buf_response_type(srv_buf *b, const char *content_type) {
    if (b->oom || !b->p) {
        srv_buf_free(b);
        return NULL;
    }
    size_t len = b->len;
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, b->p, free);
    if (!r) {
        srv_buf_free(b);
        return NULL;
    }
    memset(b, 0, sizeof *b); /* the response owns the memory now */
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    last_resp_len = len;
    return r;
}

struct MHD_Response *srv_buf_response(srv_buf *b) {
    return srv_buf_response_type(b, "application/json");
}

struct MHD_Response *srv_error_response(const char *code, const char *message,
                                        const char *extra_name, const char *extra_json) {
    srv_buf b = {0};
    /* Canonical JSON: members in byte order, so the extra member goes where it sorts. */
    int extra_first = extra_name && extra_json && strcmp(extra_name, "message") < 0;
    int extra_last = extra_name && extra_json && !extra_first;
    srv_buf_puts(&b, "{\"error\":{\"code\":");
    srv_buf_json_str(&b, code, strlen(code));
    if (extra_first) {
        srv_buf_puts(&b, ",");
        srv_buf_json_str(&b, extra_name, strlen(extra_name));
        srv_buf_puts(&b, ":");
        srv_buf_puts(&b, extra_json);
    }
    srv_buf_puts(&b, ",\"message\":");
    srv_buf_json_str(&b, message, strlen(message));
    if (extra_last) {
        srv_buf_puts(&b, ",");
        srv_buf_json_str(&b, extra_name, strlen(extra_name));
        srv_buf_puts(&b, ":");
        srv_buf_puts(&b, extra_json);
    }
    srv_buf_puts(&b, "}}");
    return srv_buf_response(&b);
}

unsigned srv_status_for(int rc, const char **code) {
    const char *c;
    unsigned st;
    switch (rc) {
    case KD_INVALID: st = MHD_HTTP_BAD_REQUEST, c = "invalid"; break;
    case KD_AMBIGUOUS: st = MHD_HTTP_BAD_REQUEST, c = "ambiguous"; break;
    case KD_NOTFOUND: st = MHD_HTTP_NOT_FOUND, c = "not_found"; break;
    case KD_CONFLICT: st = MHD_HTTP_CONFLICT, c = "conflict"; break;
    case KD_TOOBIG: st = MHD_HTTP_CONTENT_TOO_LARGE, c = "too_big"; break;
    case KD_IOERR: st = MHD_HTTP_INTERNAL_SERVER_ERROR, c = "io_error"; break;
    case KD_CORRUPT: st = MHD_HTTP_INTERNAL_SERVER_ERROR, c = "corrupt"; break;
    case KD_READONLY: st = MHD_HTTP_SERVICE_UNAVAILABLE, c = "read_only"; break;
    case KD_FULL: st = MHD_HTTP_INSUFFICIENT_STORAGE, c = "disk_full"; break;
    default: st = MHD_HTTP_INTERNAL_SERVER_ERROR, c = "error"; break;
    }
    if (code) *code = c;
    return st;
}

struct MHD_Response *srv_fail(unsigned *status, unsigned st, const char *code, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *status = st;
    return srv_error_response(code, msg, NULL, NULL);
}

struct MHD_Response *srv_fail_kd(unsigned *status, int rc, const char *what) {
    const char *code;
    const char *m = kd_errmsg(NULL);
    if (!m || !*m) m = kd_strerror(rc);
    unsigned st = srv_status_for(rc, &code);
    if (what) return srv_fail(status, st, code, "%s: %s", what, m);
    return srv_fail(status, st, code, "%s", m);
}

/* ---- logging ------------------------------------------------------------------------------ */

static const char *level_name(int level, int upper) {
    static const char *lo[] = {"error", "warn", "info", "debug", "trace"};
    static const char *up[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    if (level < 0 || level > SRV_LOG_TRACE) level = SRV_LOG_INFO;
    return upper ? up[level] : lo[level];
}

/* Writes the whole line with one write(2) so that lines from threads never interleave. */
static void write_line(const char *p, size_t n) {
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

void srv_log(const srv *s, int level, const char *fmt, ...) {
    if (level > s->log_level) return;
    char msg[1024], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kd_format_time(wall_us(), ts);
    srv_buf b = {0};
    if (s->log_json) {
        srv_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_name(level, 0));
        srv_buf_json_str(&b, msg, strlen(msg));
        srv_buf_puts(&b, "}\n");
    } else {
        srv_buf_printf(&b, "%s %s ", ts, level_name(level, 1));
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        srv_buf_puts(&b, msg);
        srv_buf_puts(&b, "\n");
    }
    if (!b.oom) write_line(b.p, b.len);
    srv_buf_free(&b);
}

/* The access-log line of a finished request (docs/http.md, "Logs"). */
static void access_log(srv_conn *c, uint64_t dur_ns) {
    char line[SRV_LOG_PATH_MAX * 3 + 256], ts[32], path[SRV_LOG_PATH_MAX * 3 + 1];
    double ms = (double)dur_ns / 1e6;
    size_t o = 0;
    int n;
    kd_format_time(wall_us(), ts);
    if (c->s->log_json) {
        srv_buf b = {0};
        srv_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"remote\":", ts);
        srv_buf_json_str(&b, c->remote, strlen(c->remote));
        srv_buf_puts(&b, ",\"method\":");
        srv_buf_json_str(&b, c->method, strlen(c->method));
        srv_buf_puts(&b, ",\"path\":");
        srv_buf_json_str(&b, c->path, strlen(c->path));
        srv_buf_printf(&b, ",\"status\":%u,\"bytes\":%zu,\"ms\":%.3f}\n", c->status, c->resp_bytes, ms);
        if (!b.oom) write_line(b.p, b.len);
        srv_buf_free(&b);
        return;
    }
    /* The text form keeps the line one line: quotes, backslashes and control bytes of the
    ** raw path are written %XX. */
    for (const unsigned char *p = (const unsigned char *)c->path; *p; p++) {
        if (*p < 0x21 || *p == '"' || *p == '\\' || *p == 0x7f) {
            o += (size_t)snprintf(path + o, 4, "%%%02X", *p);
        } else {
            path[o++] = (char)*p;
        }
    }
    path[o] = '\0';
    n = snprintf(line, sizeof line, "%s INFO %s \"%s %s\" %u %zuB %.3fms\n", ts, c->remote,
                 c->method, path, c->status, c->resp_bytes, ms);
    if (n > 0) write_line(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    srv *s = cls;
    char msg[512];
    if (s->log_level < SRV_LOG_DEBUG) return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    srv_log(s, SRV_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* ---- decoding ----------------------------------------------------------------------------- */

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes in[0..n) into out (NUL-terminated; never longer than the input) and
** sets *outlen. Returns 0, or -1 for a bad escape and -2 for a NUL byte. */
static int pct_decode(const char *in, size_t n, char *out, size_t *outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) return -1;
            hi = hexval((unsigned char)in[i + 1]);
            lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c == 0) return -2;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

/* MHD's unescape callback: leave the text as it is (see the file comment). */
static size_t keep_raw(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    (void)conn;
    return strlen(s);
}

typedef struct arg_scan {
    srv_req *r;
    int too_many;
    size_t bytes;
} arg_scan;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    arg_scan *a = cls;
    (void)kind;
    if (a->r->nargs == SRV_MAX_ARGS) {
        a->too_many = 1;
        return MHD_NO;
    }
    a->r->arg_name[a->r->nargs] = key;
    a->r->arg_val[a->r->nargs] = value ? value : "";
    a->r->nargs++;
    a->bytes += strlen(key) + 1 + (value ? strlen(value) : 0) + 1;
    return MHD_YES;
}

/* Decodes the raw path into segments and the query-string arguments, all into the
** connection's arena. On failure returns the error response (and *status). */
static struct MHD_Response *decode_request(srv_conn *c, const char *url, unsigned *status) {
    srv_req *r = &c->req;
    arg_scan a = {r, 0, 0};
    size_t ulen = strlen(url), o = 0;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &a);
    if (a.too_many)
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                        "too many query parameters (at most %d)", SRV_MAX_ARGS);
    size_t need = ulen + 1 + a.bytes;
    if (need > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap : 256;
        while (cap < need) cap *= 2;
        char *p = realloc(c->arena, cap);
        if (!p) return srv_fail(status, MHD_HTTP_INTERNAL_SERVER_ERROR, "error", "out of memory");
        c->arena = p;
        c->arena_cap = cap;
    }
    if (url[0] != '/')
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "the request target must be a path");
    /* Segments: "/api/v1/a%2Fb" -> "api", "v1", "a/b". */
    const char *p = url + 1, *uend = url + ulen;
    for (;;) {
        const char *end = memchr(p, '/', (size_t)(uend - p));
        size_t n = (size_t)((end ? end : uend) - p), dn;
        if (r->nseg == SRV_MAX_SEGS) {
            r->nseg = SRV_MAX_SEGS + 1; /* matches no route */
            break;
        }
        int rc = pct_decode(p, n, c->arena + o, &dn);
        if (rc != 0)
            return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "%s in the path",
                            rc == -2 ? "a NUL byte (%00)" : "bad percent-encoding");
        r->seg[r->nseg++] = c->arena + o;
        o += dn + 1;
        if (!end) break;
        p = end + 1;
    }
    for (size_t i = 0; i < r->nargs; i++) {
        const char *raw[2] = {r->arg_name[i], r->arg_val[i]};
        for (int k = 0; k < 2; k++) {
            size_t dn;
            int rc = pct_decode(raw[k], strlen(raw[k]), c->arena + o, &dn);
            if (rc != 0)
                return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid",
                                "%s in query parameter '%.100s'",
                                rc == -2 ? "a NUL byte (%00)" : "bad percent-encoding",
                                r->arg_name[i]);
            if (k == 0) r->arg_name[i] = c->arena + o;
            else r->arg_val[i] = c->arena + o;
            o += dn + 1;
        }
    }
    return NULL;
}

const char *srv_arg(const srv_req *r, const char *name) {
    for (size_t i = 0; i < r->nargs; i++)
        if (strcmp(r->arg_name[i], name) == 0) return r->arg_val[i];
    return NULL;
}

const char *srv_conn_arg(struct MHD_Connection *conn, const char *name) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    srv_conn *c = ci ? ci->socket_context : NULL;
    if (!c || !c->active) return NULL;
    return srv_arg(&c->req, name);
}

/* ---- request intake ----------------------------------------------------------------------- */

static int method_id(const char *m) {
    if (strcmp(m, "GET") == 0) return SRV_GET;
    if (strcmp(m, "PUT") == 0) return SRV_PUT;
    if (strcmp(m, "POST") == 0) return SRV_POST;
    if (strcmp(m, "DELETE") == 0) return SRV_DELETE;
    return SRV_OTHER;
}

/* The media type of a Content-Type header is want (parameters such as charset allowed). */
static int is_type(const char *ct, const char *want) {
    size_t n = strlen(want);
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, want, n) != 0) return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

/* Copies src into dst[cap], cut short when it does not fit. */
static void copy_trunc(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static enum MHD_Result queue(srv_conn *c, struct MHD_Response *resp, unsigned status) {
    enum MHD_Result ret;
    if (!resp) {
        /* Out of memory while building the answer: a fixed one needs no allocation but
        ** MHD's own. */
        static const char oom[] = "{\"error\":{\"code\":\"error\",\"message\":\"out of memory\"}}";
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        last_resp_len = sizeof oom - 1;
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    c->status = status;
    c->resp_bytes = last_resp_len;
    c->queued = 1;
    atomic_store(&c->phase, PH_RUNNING);
    ret = MHD_queue_response(c->req.conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* An answer given at once, after which the connection closes (the body, if any, is not
** read; or the server is stopping). */
static enum MHD_Result queue_and_close(srv_conn *c, struct MHD_Response *resp, unsigned status) {
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return queue(c, resp, status);
}

/* The answer to a request that arrives while the server stops: 503 shutting_down, except
** for GET /healthz, which answers in its own words (docs/http.md). */
static struct MHD_Response *stopping_answer(srv_conn *c, const char *url, unsigned *status) {
    srv_req *r = &c->req;
    const char *allow = NULL;
    unsigned st = 0;
    int body;
    struct MHD_Response *resp = decode_request(c, url, &st);
    if (resp) {
        MHD_destroy_response(resp);
    } else if (!st) {
        srv_handler h = srv_route(r, &st, &allow, &body);
        if (h && r->route == SRV_R_HEALTHZ) return h(c->s, r, status);
    }
    *status = MHD_HTTP_SERVICE_UNAVAILABLE;
    return srv_error_response("shutting_down", "the server is stopping", NULL, NULL);
}

/* The first call for a request. */
static enum MHD_Result begin_request(srv_conn *c, struct MHD_Connection *conn, const char *url,
                                     const char *method) {
    srv *s = c->s;
    srv_req *r = &c->req;
    unsigned status = 0;
    const char *allow = NULL;
    struct MHD_Response *resp;

    /* Only what the routes read: seg and arg are read up to nseg and nargs. */
    r->conn = conn;
    r->method = method_id(method);
    r->route = SRV_R_UNMATCHED;
    r->nseg = 0;
    r->nargs = 0;
    r->body = "";
    r->body_len = 0;
    c->start_ns = now_ns();
    c->active = 1;
    c->handler = NULL;
    c->wants_body = 0;
    c->early = NULL;
    c->early_status = 0;
    c->queued = 0;
    c->status = 0;
    c->resp_bytes = 0;
    c->body_len = 0;
    c->discarded = 0;
    c->received = 0;
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    if (s->log_level >= SRV_LOG_INFO) { /* only the access log reads them */
        copy_trunc(c->method, sizeof c->method, method);
        copy_trunc(c->path, sizeof c->path, url);
    }
    last_resp_len = 0;

    if (atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
        resp = stopping_answer(c, url, &status);
        return queue_and_close(c, resp, status);
    }
    atomic_store(&c->phase, PH_RECEIVING);
    if ((resp = decode_request(c, url, &status)) != NULL || status) {
        c->early = resp;
        c->early_status = status;
        return MHD_YES;
    }
    c->handler = srv_route(r, &status, &allow, &c->wants_body);
    if (!c->handler) {
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
            resp = srv_fail(&status, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                            "%s is not allowed on %s (allowed: %s)", method,
                            srv_route_pattern(r->route), allow);
            if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        } else {
            resp = srv_fail(&status, MHD_HTTP_NOT_FOUND, "not_found", "no such route: %s %.300s",
                            method, url);
        }
        c->early = resp;
        c->early_status = status;
        return MHD_YES;
    }
    if (c->wants_body) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        /* An import body is NDJSON; application/json is taken too. */
        if (ct && !is_type(ct, "application/json") &&
            !(r->route == SRV_R_IMPORT && is_type(ct, "application/x-ndjson"))) {
            resp = srv_fail(&status, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                            "the body must be application/json%s, not '%.100s'",
                            r->route == SRV_R_IMPORT ? " or application/x-ndjson" : "", ct);
            return queue_and_close(c, resp, status);
        }
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && n > s->opt.max_body) {
                resp = srv_fail(&status, MHD_HTTP_CONTENT_TOO_LARGE, "too_big",
                                "the body (%llu bytes) is larger than the limit of %zu bytes", n,
                                s->opt.max_body);
                return queue_and_close(c, resp, status);
            }
        }
    }
    return MHD_YES;
}

/* A piece of the body. One that grows past the limit is answered 413 once it has all
** arrived (MHD 0.9.75 drops a response queued in the middle of a chunked upload); what
** follows is discarded, up to a bound after which the connection is simply closed. */
static enum MHD_Result take_body(srv_conn *c, const char *data, size_t n) {
    size_t max = c->s->opt.max_body;
    if (c->early_status) {
        c->discarded += n;
        return c->discarded > max + SRV_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (n > max - c->received) {
        unsigned status;
        c->early = srv_fail(&status, MHD_HTTP_CONTENT_TOO_LARGE, "too_big",
                            "the body is larger than the limit of %zu bytes", max);
        if (c->early) MHD_add_response_header(c->early, MHD_HTTP_HEADER_CONNECTION, "close");
        c->early_status = status;
        c->discarded = c->received + n;
        c->body_len = 0;
        return MHD_YES;
    }
    c->received += n;
    if (!c->wants_body) return MHD_YES; /* a route that reads no body: ignore it */
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + n + 1) cap *= 2;
        char *p = realloc(c->body, cap);
        if (!p) return MHD_NO; /* out of memory: drop the connection */
        c->body = p;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    return MHD_YES;
}

/* The last call: run the route. */
static enum MHD_Result finish_request(srv_conn *c) {
    struct MHD_Response *resp;
    unsigned status = MHD_HTTP_OK;
    if (c->early || c->early_status) {
        resp = c->early;
        c->early = NULL;
        return queue(c, resp, c->early_status);
    }
    int expect = PH_RECEIVING;
    if (!atomic_compare_exchange_strong(&c->phase, &expect, PH_RUNNING))
        return MHD_NO; /* cut by the stop (cut_receivers): its socket is already shut down */
    if (c->body_len) {
        c->body[c->body_len] = '\0';
        c->req.body = c->body;
        c->req.body_len = c->body_len;
    }
    last_resp_len = 0;
    resp = c->handler(c->s, &c->req, &status);
    return queue(c, resp, status);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    srv_conn *c = *con_cls;
    (void)cls;
    (void)version;
    if (!c) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c) return MHD_NO; /* no context (out of memory when the connection opened) */
        *con_cls = c;
        return begin_request(c, conn, url, method);
    }
    if (c->queued) {
        *upload_data_size = 0; /* answered early: MHD discards the rest */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return take_body(c, upload_data, n);
    }
    return finish_request(c);
}

static void end_request(srv_conn *c) {
    srv *s = c->s;
    uint64_t dur = now_ns() - c->start_ns;
    if (c->early) {
        MHD_destroy_response(c->early);
        c->early = NULL;
    }
    if (c->status) srv_metrics_request(s, c->req.route, c->req.method, c->status, dur);
    if (s->log_level >= SRV_LOG_INFO) access_log(c, dur);
    if (c->body_cap > SRV_BODY_KEEP) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    c->body_len = 0;
    c->active = 0;
    atomic_store(&c->phase, PH_IDLE);
    atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_release);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_conn *c = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    *con_cls = NULL;
    if (c && c->active) end_request(c);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    srv *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        srv_conn *c = calloc(1, sizeof *c);
        if (c) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            const struct sockaddr *sa = ci ? ci->client_addr : NULL;
            c->s = s;
            ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            c->fd = ci ? ci->connect_fd : -1;
            atomic_init(&c->phase, PH_IDLE);
            snprintf(c->remote, sizeof c->remote, "-");
            if (sa && sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->remote,
                          sizeof c->remote);
            else if (sa && sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->remote,
                          sizeof c->remote);
            pthread_mutex_lock(&s->conns_mu);
            c->next = s->conns;
            if (s->conns) s->conns->prev = c;
            s->conns = c;
            pthread_mutex_unlock(&s->conns_mu);
        }
        *socket_context = c;
        srv_metrics_connection(s, 1);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn *c = *socket_context;
        if (c) {
            /* MHD tells before it closes the socket: c->fd stays valid while c is listed. */
            pthread_mutex_lock(&s->conns_mu);
            if (c->prev) c->prev->next = c->next;
            else s->conns = c->next;
            if (c->next) c->next->prev = c->prev;
            pthread_mutex_unlock(&s->conns_mu);
            if (c->active) end_request(c); /* MHD did not report the request's end */
            free(c->arena);
            free(c->body);
            free(c);
        }
        *socket_context = NULL;
        srv_metrics_connection(s, -1);
    }
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void fail_msg(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_msg(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    if (!err || !errlen) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int parse_log_level(const char *v, int *level) {
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i <= SRV_LOG_TRACE; i++)
        if (strcasecmp(v, names[i]) == 0) {
            *level = i;
            return 1;
        }
    return 0;
}

/* Opens the listening socket on bind:port. Returns the fd (and the bound port in *port,
** whether the address is IPv6 in *v6) or -1 after writing err. */
static int open_listener(const char *bind_addr, unsigned *port, int *v6, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    socklen_t sl;
    const char *host = bind_addr;
    int fd = -1, one = 1;
    memset(&ss, 0, sizeof ss);
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)*port);
        sl = sizeof *sin;
        *v6 = 0;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)*port);
        sl = sizeof *sin6;
        *v6 = 1;
    } else {
        fail_msg(err, errlen, "cannot listen on '%s': not an IPv4 or IPv6 address", bind_addr);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (*v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) goto fail;
    if (listen(fd, 1024) != 0) goto fail;
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) goto fail;
    *port = ntohs(*v6 ? sin6->sin6_port : sin->sin_port);
    return fd;
fail:
    fail_msg(err, errlen, "cannot listen on %s%s%s:%u: %s", *v6 ? "[" : "", bind_addr,
             *v6 ? "]" : "", *port, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

/* Writes <db>/serve.addr atomically (a temporary file renamed over it). */
static int write_addr_file(const char *dir, const char *url, char *err, size_t errlen) {
    char path[PATH_MAX], tmp[PATH_MAX];
    int fd, ok;
    size_t n = strlen(url);
    if ((size_t)snprintf(path, sizeof path, "%s/serve.addr", dir) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/serve.addr.%ld.tmp", dir, (long)getpid()) >= sizeof tmp) {
        fail_msg(err, errlen, "database path too long");
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto fail;
    ok = write(fd, url, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        goto fail;
    }
    return 0;
fail:
    fail_msg(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return -1;
}

static void remove_addr_file(const char *dir) {
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/serve.addr", dir) < sizeof path) unlink(path);
}

/* More connections than the default soft limit of open files may be asked for. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
    }
}

void kd_server_block_signals(sigset_t *set) {
    sigset_t stop;
    struct sigaction hup;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    /* A hang-up (the terminal went away) would kill the process unsynced: it stops the
    ** server like SIGTERM instead. Under nohup, which ignores it, it stays ignored (a
    ** blocked signal is queued even when ignored, so it must not be blocked then). */
    if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN) sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* A client that closes mid-answer (MHD sends with MSG_NOSIGNAL anyway) or a closed
    ** stderr is an error on one write, never a reason to die. */
    signal(SIGPIPE, SIG_IGN);
    if (set) *set = stop;
}

/* Shuts down the connections whose request is still receiving its body: not acknowledged,
** so nothing is lost, and a client that never sends the rest would otherwise hold the
** stop for the whole drain timeout. */
static void cut_receivers(srv *s) {
    unsigned n = 0;
    pthread_mutex_lock(&s->conns_mu);
    for (srv_conn *c = s->conns; c; c = c->next) {
        int expect = PH_RECEIVING;
        if (c->fd >= 0 && atomic_compare_exchange_strong(&c->phase, &expect, PH_CUT)) {
            shutdown(c->fd, SHUT_RDWR);
            n++;
        }
    }
    pthread_mutex_unlock(&s->conns_mu);
    if (n)
        srv_log(s, SRV_LOG_INFO,
                "stopping: closed %u connection(s) whose request body had not arrived", n);
}

/* Waits until no request is in flight, the drain timeout passes or a second stop signal
** arrives. Change streams are woken again each round, in case one opened while the first
** wake-up went out; after the grace period what cannot end by itself is cut. */
static void drain(srv *s, const sigset_t *stop) {
    uint64_t start = now_ns();
    struct timespec tick = {0, 10 * 1000 * 1000};
    unsigned round = 0;
    int cut = 0;
    while (atomic_load_explicit(&s->in_flight, memory_order_acquire) > 0) {
        uint64_t waited = now_ns() - start;
        if (waited >= SRV_DRAIN_TIMEOUT_NS) {
            srv_log(s, SRV_LOG_WARN, "stopping with %ld request(s) still running",
                    (long)atomic_load(&s->in_flight));
            return;
        }
        if (!cut && waited >= SRV_STOP_GRACE_NS) {
            cut = 1;
            cut_receivers(s);
            srv_changes_shutdown(s, 1);
        } else if (++round % 10 == 0) {
            srv_changes_shutdown(s, cut);
        }
        /* The pause between rounds, cut short by another stop signal. */
        int sig = sigtimedwait(stop, NULL, &tick);
        if (sig > 0) {
            srv_log(s, SRV_LOG_WARN, "second signal (%s): stopping now, %ld request(s) cut short",
                    signal_name(sig), (long)atomic_load(&s->in_flight));
            return;
        }
    }
}

int kd_server_run(kd_db *db, const kd_server_options *opt, char *err, size_t errlen) {
    srv s;
    sigset_t set;
    int lfd = -1, v6 = 0, rc = 1, sig = 0, addr_written = 0, lfd_owned_by_mhd = 0;
    unsigned port;
    char host[INET6_ADDRSTRLEN + 2];
    const char *env, *bad_level = NULL;

    memset(&s, 0, sizeof s);
    if (err && errlen) err[0] = '\0';
    s.db = db;
    s.opt = *opt;
    if (!s.opt.bind || !*s.opt.bind) s.opt.bind = "127.0.0.1";
    if (!s.opt.max_body) s.opt.max_body = 16u << 20;
    if (!s.opt.max_connections) s.opt.max_connections = 1024;
    if (!s.opt.db_path) s.opt.db_path = ".";
    atomic_init(&s.stopping, 0);
    atomic_init(&s.open_feeds, 0);
    atomic_init(&s.in_flight, 0);
    s.start_ns = now_ns();
    s.log_level = SRV_LOG_INFO;
    if ((env = getenv("KORU_LOG")) && *env && !parse_log_level(env, &s.log_level))
        bad_level = env; /* said once the startup line is out (tests read it first) */
    s.log_json = (env = getenv("KORU_LOG_FORMAT")) && strcasecmp(env, "json") == 0;
    s.abs_path = realpath(s.opt.db_path, NULL);
    if (!s.abs_path && !(s.abs_path = strdup(s.opt.db_path))) {
        fail_msg(err, errlen, "out of memory");
        return 1;
    }
    pthread_mutex_init(&s.conns_mu, NULL); /* destroyed at out */
    if (srv_metrics_init(&s) != KD_OK) {
        fail_msg(err, errlen, "out of memory");
        goto out;
    }

    port = s.opt.port;
    if ((lfd = open_listener(s.opt.bind, &port, &v6, err, errlen)) < 0) goto out;
    if (strcmp(s.opt.bind, "0.0.0.0") == 0) snprintf(host, sizeof host, "127.0.0.1");
    else if (v6 && strcmp(s.opt.bind, "::") == 0) snprintf(host, sizeof host, "[::1]");
    else if (v6) snprintf(host, sizeof host, "[%s]", s.opt.bind);
    else snprintf(host, sizeof host, "%s", strcmp(s.opt.bind, "localhost") == 0 ? "127.0.0.1" : s.opt.bind);
    snprintf(s.url, sizeof s.url, "http://%s:%u", host, port);

    /* Blocked before MHD starts its threads, which inherit the mask: only sigwait below
    ** receives the stop signals (`kdelta serve` blocked them already, before kd_open). */
    kd_server_block_signals(&set);
    raise_fd_limit();

    s.daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, on_request, &s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lfd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s.opt.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SRV_IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SRV_CONN_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, &s,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, &s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, &s,
        MHD_OPTION_END);
    lfd_owned_by_mhd = 1; /* MHD closes it on stop (or on a failed start) unless quiesced */
    if (!s.daemon) {
        fail_msg(err, errlen, "cannot start the HTTP server on %s", s.url);
        goto out;
    }
    if (write_addr_file(s.opt.db_path, s.url, err, errlen) != 0) goto out;
    addr_written = 1;
    {
        /* The one line tests and people read, whatever KORU_LOG says. */
        char line[PATH_MAX + 160];
        int n = snprintf(line, sizeof line, "kdelta: serving %s at %s\n", s.opt.db_path, s.url);
        if (n > 0) write_line(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    if (bad_level)
        srv_log(&s, SRV_LOG_WARN, "KORU_LOG=%.100s is not error|warn|info|debug|trace; using info",
                bad_level);
    srv_log(&s, SRV_LOG_INFO, "listening on %s (database %s, max body %zu bytes, max %u connections)",
            s.url, s.abs_path, s.opt.max_body, s.opt.max_connections);

    while (sigwait(&set, &sig) != 0) {
    }
    srv_log(&s, SRV_LOG_INFO, "%s received: stopping", signal_name(sig));

    atomic_store(&s.stopping, 1);
    {
        /* Stop accepting; shutting the socket down also refuses new connections at once
        ** instead of leaving them in the backlog. It is closed after MHD_stop_daemon. */
        MHD_socket q = MHD_quiesce_daemon(s.daemon);
        if (q != MHD_INVALID_SOCKET) {
            shutdown(q, SHUT_RDWR);
            lfd_owned_by_mhd = 0;
        }
    }
    srv_changes_shutdown(&s, 0);
    drain(&s, &set);
    MHD_stop_daemon(s.daemon);
    s.daemon = NULL;
    rc = kd_sync(db);
    if (rc != KD_OK) {
        fail_msg(err, errlen, "syncing the database: %s", kd_errmsg(NULL));
        srv_log(&s, SRV_LOG_ERROR, "syncing the database: %s", kd_errmsg(NULL));
        rc = 1;
    } else {
        srv_log(&s, SRV_LOG_INFO, "stopped");
    }
out:
    if (s.daemon) MHD_stop_daemon(s.daemon);
    if (lfd >= 0 && !lfd_owned_by_mhd) close(lfd);
    if (addr_written) remove_addr_file(s.opt.db_path);
    srv_metrics_free(&s);
    pthread_mutex_destroy(&s.conns_mu);
    free(s.abs_path);
    return rc;
}
