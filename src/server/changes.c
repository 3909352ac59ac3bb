/*
** changes.c — the change feed of the HTTP server: GET /api/v1/_changes as Server-Sent
** Events or as a long-poll JSON answer (docs/http.md, "Changes").
**
** May call: the public API (korudelta.h), libmicrohttpd, server_int.h, the C library and
** POSIX threads.
**
** Both forms sit on a library subscription (kd_subscribe), which reads the log on its own
** thread, in seq order, and never misses a version. A `feed` joins that thread (the
** producer, which formats each event) to the connection's thread (the consumer):
**   - SSE: the producer appends "id/event/data" blocks to the feed's buffer; when more
**     than SSE_BOUND bytes wait unsent it blocks, so a slow client only slows its own
**     subscription (which later catches up from the log) and never a writer. The
**     content-reader callback of the response copies from the buffer, or waits up to the
**     heartbeat interval and then sends ": heartbeat". MHD runs a thread per connection,
**     so blocking in that callback holds up only this connection.
**   - long-poll: the producer appends each event's JSON to the buffer until `limit` (or
**     LP_MAX_BYTES) is reached and refuses the rest, remembering the first seq it refused;
**     the handler waits for the first event, drains what is already committed, and
**     answers {"changes":[...],"last_seq":S}. S covers versions the filter skipped but
**     never one that was refused, so resuming from it gives no gap and no repeat.
**
** Invariants and locking:
**   - feed.mu guards the buffer and the flags. The only library calls made under it are
**     kd_subscription_seq and kd_stats_get, which take only the database's own locks and
**     never wait for a subscriber, so the producer cannot deadlock on it.
**   - While events flow, the SSE consumer lingers SSE_LINGER_MS before sending less than
**     SSE_BATCH bytes, so that a burst goes out in one send instead of one per event; a
**     lone event (no send in the last SSE_FLOW_MS) goes out at once.
**   - Lock order: reg_mu before feed.mu. srv_changes_shutdown broadcasts every feed's
**     condition under its mutex after s->stopping is set, and every wait re-checks
**     s->stopping under that mutex, so no wake-up is lost.
**   - A feed is torn down by first setting `closed` (which releases a producer waiting
**     for space) and only then calling kd_unsubscribe, which waits for the producer to
**     return.
**   - The open_feeds gauge counts a feed from registration to teardown.
**   - A client that leaves is noticed within HANGUP_CHECK_MS (peer_gone) by an idle SSE
**     stream and by a waiting long-poll, which then end their subscription.
**   - Stopping: srv_changes_shutdown wakes every feed; SSE streams end at once. After a
**     grace period server.c calls it again with cut, which shuts down the sockets of the
**     streams still open (their client stopped reading, so MHD's thread is stuck in send).
**
** Parameters come from srv_conn_arg (server.c), already percent-decoded: the server's
** unescape callback leaves URLs raw and server.c decodes the arguments itself.
*/
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server_int.h"

#define SSE_BOUND          (1u << 20)    /* unsent bytes after which the producer waits */
#define SSE_BLOCK          (64u * 1024)  /* MHD's buffer for the stream's chunks */
#define SSE_BATCH          (16u * 1024)  /* a send this big never lingers */
#define SSE_LINGER_MS      2             /* how long a small send waits for company */
#define SSE_FLOW_MS        10            /* events "flow" when the last send is this recent */
#define LP_MAX_BYTES       (32u << 20)   /* a long-poll answer stops taking events here */
#define LP_SCAN_MS         2000          /* at least this long to scan what already exists */
#define LP_DRAIN_MS        1000          /* at most this long to drain after a first event */
#define LP_POLL_MS         2             /* how often to look at the subscription's progress */
#define HANGUP_CHECK_MS    1000          /* how often an idle stream or a waiting long-poll
                                            looks for a closed peer */

#define DEFAULT_LIMIT      1000
#define MAX_LIMIT          10000
#define DEFAULT_TIMEOUT_MS 30000
#define MAX_TIMEOUT_MS     300000
#define DEFAULT_HEARTBEAT  15000
#define MIN_HEARTBEAT      100
#define MAX_HEARTBEAT      86400000      /* a day: keeps the time arithmetic far from overflow */

/* ---- the feed: what a subscription and a connection share ------------------------------ */

typedef struct feed {
    srv *s;
    kd_subscription *sub;
    pthread_mutex_t mu;
    pthread_cond_t cond;      /* data, space, first event, closing, shutdown */
    int closed;               /* the consumer is done: the producer discards from now on */
    int failed;               /* the producer could not format an event (out of memory) */
    char *buf;                /* SSE: bytes not yet sent are buf[off..len).
                                 long-poll: the events so far, comma-separated */
    size_t off, len, cap;
    int fd;                   /* the connection's socket, -1 when unknown */
    int cut;                  /* under reg_mu: the stop shut the socket down */
    /* SSE */
    int sse;                  /* an SSE stream (else a long-poll) */
    unsigned heartbeat_ms;
    struct timespec next_beat; /* consumer only */
    int lingering;            /* the consumer waits SSE_LINGER_MS for a fuller batch */
    int lingered;             /* consumer only: the bytes pending have had their wait */
    struct timespec last_send; /* consumer only */
    /* long-poll */
    size_t count, limit;
    uint64_t last_taken;      /* seq of the last event taken */
    uint64_t first_refused;   /* seq of the first wanted event not taken; 0 = none */
    int gone;                 /* the client closed the connection while we waited */
    /* the registry of open feeds, under reg_mu */
    struct feed *reg_next, *reg_prev;
    int registered;
} feed;

/* Every open feed of every server in the process, for srv_changes_shutdown. Static
** because srv (server.c) has no slot for it; entries carry their srv, so two servers in
** one process stay apart. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static feed *reg_head;

static void reg_add(feed *f) {
    pthread_mutex_lock(&reg_mu);
    f->reg_prev = NULL;
    f->reg_next = reg_head;
    if (reg_head) reg_head->reg_prev = f;
    reg_head = f;
    f->registered = 1;
    pthread_mutex_unlock(&reg_mu);
    atomic_fetch_add(&f->s->open_feeds, 1);
}

static void reg_remove(feed *f) {
    if (!f->registered) return;
    pthread_mutex_lock(&reg_mu);
    if (f->reg_prev) f->reg_prev->reg_next = f->reg_next;
    else reg_head = f->reg_next;
    if (f->reg_next) f->reg_next->reg_prev = f->reg_prev;
    f->registered = 0;
    pthread_mutex_unlock(&reg_mu);
    atomic_fetch_sub(&f->s->open_feeds, 1);
}

/* A registered feed's fd is an open socket: MHD destroys a connection's response (whose
** free callback, sse_free, unregisters the feed) before it closes the socket, which it
** does only after the connection's thread has ended. Holding reg_mu keeps the feed
** registered, so shutting its socket down here can never hit a reused descriptor. A
** long-poll is not cut: woken, it answers at once. */
void srv_changes_shutdown(srv *s, int cut) {
    pthread_mutex_lock(&reg_mu);
    for (feed *f = reg_head; f; f = f->reg_next) {
        if (f->s != s) continue;
        pthread_mutex_lock(&f->mu);
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
        if (cut && f->sse && f->fd >= 0 && !f->cut) {
            f->cut = 1;
            shutdown(f->fd, SHUT_RDWR);
            srv_log(s, SRV_LOG_INFO, "stopping: closed a change stream whose client does not read");
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

static feed *feed_new(srv *s) {
    feed *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    pthread_condattr_t ca;
    int ok = pthread_condattr_init(&ca) == 0;
    if (ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&f->cond, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!ok) {
        free(f);
        return NULL;
    }
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        pthread_cond_destroy(&f->cond);
        free(f);
        return NULL;
    }
    f->s = s;
    f->fd = -1;
    return f;
}

/* Ends the subscription (if any) and leaves the registry. Safe to call once per feed. */
static void feed_stop(feed *f) {
    pthread_mutex_lock(&f->mu);
    f->closed = 1;
    pthread_cond_broadcast(&f->cond);   /* a producer waiting for space gives up */
    pthread_mutex_unlock(&f->mu);
    kd_unsubscribe(f->sub);             /* waits for the producer to return */
    f->sub = NULL;
    reg_remove(f);
}

static void feed_free(feed *f) {
    if (!f) return;
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f->buf);
    free(f);
}

/* True once the producer must stop adding (caller holds f->mu). */
static int feed_over(const feed *f) {
    return f->closed || f->failed || atomic_load(&f->s->stopping);
}

/* Appends the n pieces to the buffer, compacting or growing it (caller holds f->mu).
** -1 when out of memory (the buffer is then unchanged). */
static int buf_append(feed *f, const char *const *parts, const size_t *lens, int n) {
    size_t need = 0;
    for (int i = 0; i < n; i++) need += lens[i];
    if (f->off && f->len + need > f->cap) {
        memmove(f->buf, f->buf + f->off, f->len - f->off);
        f->len -= f->off;
        f->off = 0;
    }
    if (f->len + need > f->cap) {
        size_t cap = f->cap ? f->cap : 16 * 1024;
        while (cap < f->len + need) cap *= 2;
        char *nb = realloc(f->buf, cap);
        if (!nb) return -1;
        f->buf = nb;
        f->cap = cap;
    }
    for (int i = 0; i < n; i++) {
        memcpy(f->buf + f->len, parts[i], lens[i]);
        f->len += lens[i];
    }
    return 0;
}

/* ---- time ------------------------------------------------------------------------------ */

static struct timespec mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static struct timespec ts_add_ms(struct timespec t, uint64_t ms) {
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static int ts_before(struct timespec a, struct timespec b) {
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static struct timespec ts_min(struct timespec a, struct timespec b) {
    return ts_before(a, b) ? a : b;
}

/* ---- parameters ------------------------------------------------------------------------ */

typedef struct params {
    uint64_t since;           /* or KD_SUB_NOW */
    const char *ns, *key;     /* the request's arguments, or NULL (kd_subscribe copies them) */
    int types;                /* KD_SUB_* bits, 0 = all */
    kd_query *filter;         /* or NULL */
    int longpoll;
    size_t limit;
    unsigned timeout_ms, heartbeat_ms;
} params;

static void params_clear(params *p) {
    kd_query_free(p->filter);
    memset(p, 0, sizeof *p);
}

/* A decimal number of at most `max`, digits only. */
static int parse_uint(const char *txt, uint64_t max, uint64_t *out) {
    if (!*txt) return -1;
    uint64_t v = 0;
    for (const char *c = txt; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        unsigned d = (unsigned)(*c - '0');
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_types(const char *txt, int *out) {
    int types = 0;
    const char *c = txt;
    for (;;) {
        const char *end = strchr(c, ',');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == 6 && memcmp(c, "insert", 6) == 0) types |= KD_SUB_INSERT;
        else if (n == 6 && memcmp(c, "update", 6) == 0) types |= KD_SUB_UPDATE;
        else if (n == 6 && memcmp(c, "delete", 6) == 0) types |= KD_SUB_DELETE;
        else return -1;
        if (!end) break;
        c = end + 1;
    }
    *out = types;
    return 0;
}

/* Reads and checks every parameter into *p. On a bad one returns KD_INVALID with a
** message in msg; KD_NOMEM when out of memory. */
static int parse_params(srv *s, struct MHD_Connection *conn, params *p, char *msg, size_t mlen) {
    enum { A_NS, A_KEY, A_SINCE, A_TYPES, A_FILTER, A_FEED, A_LIMIT, A_TIMEOUT, A_HEARTBEAT, A_N };
    static const char *const names[A_N] = {"ns", "key", "since", "types", "filter", "feed",
                                           "limit", "timeout", "heartbeat"};
    const char *v[A_N];
    int rc = KD_OK;
    memset(p, 0, sizeof *p);
    p->limit = DEFAULT_LIMIT;
    p->timeout_ms = DEFAULT_TIMEOUT_MS;
    p->heartbeat_ms = DEFAULT_HEARTBEAT;
    for (int i = 0; i < A_N; i++) v[i] = srv_conn_arg(conn, names[i]);
    p->ns = v[A_NS];
    p->key = v[A_KEY];

    /* since: Last-Event-ID (what an EventSource sends when it reconnects) wins. */
    const char *leid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (leid && *leid) {
        if (parse_uint(leid, UINT64_MAX - 1, &p->since) != 0) {
            snprintf(msg, mlen, "Last-Event-ID must be a seq (a decimal number), not \"%.64s\"",
                     leid);
            rc = KD_INVALID;
            goto out;
        }
    } else if (v[A_SINCE]) {
        if (strcmp(v[A_SINCE], "now") == 0) p->since = KD_SUB_NOW;
        else if (parse_uint(v[A_SINCE], UINT64_MAX - 1, &p->since) != 0) {
            snprintf(msg, mlen, "since must be a seq (a decimal number) or \"now\", not \"%.64s\"",
                     v[A_SINCE]);
            rc = KD_INVALID;
            goto out;
        }
    }

    if (p->key && !p->ns) {
        snprintf(msg, mlen, "key needs ns: a key is only unique within its namespace");
        rc = KD_INVALID;
        goto out;
    }
    if (p->ns && kd_valid_namespace(p->ns, 1) != KD_OK) {
        snprintf(msg, mlen, "ns: %s", kd_errmsg(s->db));
        rc = KD_INVALID;
        goto out;
    }
    if (p->key && kd_valid_key(p->key) != KD_OK) {
        snprintf(msg, mlen, "key: %s", kd_errmsg(s->db));
        rc = KD_INVALID;
        goto out;
    }
    if (v[A_TYPES] && parse_types(v[A_TYPES], &p->types) != 0) {
        snprintf(msg, mlen,
                 "types must be a comma-separated list of insert, update, delete, not \"%.64s\"",
                 v[A_TYPES]);
        rc = KD_INVALID;
        goto out;
    }
    if (v[A_FILTER] && v[A_FILTER][0]) {
        if ((rc = kd_query_new(&p->filter)) != KD_OK) goto out;
        if ((rc = kd_query_set_filter(p->filter, v[A_FILTER])) != KD_OK) {
            if (rc == KD_INVALID) snprintf(msg, mlen, "filter: %s", kd_errmsg(s->db));
            goto out;
        }
    }
    if (v[A_FEED]) {
        if (strcmp(v[A_FEED], "longpoll") == 0) p->longpoll = 1;
        else if (strcmp(v[A_FEED], "eventsource") != 0 && strcmp(v[A_FEED], "sse") != 0) {
            snprintf(msg, mlen,
                     "feed must be longpoll (or absent for Server-Sent Events), not \"%.64s\"",
                     v[A_FEED]);
            rc = KD_INVALID;
            goto out;
        }
    }
    uint64_t n;
    if (v[A_LIMIT]) {
        if (parse_uint(v[A_LIMIT], MAX_LIMIT, &n) != 0 || n == 0) {
            snprintf(msg, mlen, "limit must be a number from 1 to %d", MAX_LIMIT);
            rc = KD_INVALID;
            goto out;
        }
        p->limit = (size_t)n;
    }
    if (v[A_TIMEOUT]) {
        if (parse_uint(v[A_TIMEOUT], MAX_TIMEOUT_MS, &n) != 0) {
            snprintf(msg, mlen, "timeout must be a number of milliseconds from 0 to %d",
                     MAX_TIMEOUT_MS);
            rc = KD_INVALID;
            goto out;
        }
        p->timeout_ms = (unsigned)n;
    }
    if (v[A_HEARTBEAT]) {
        if (parse_uint(v[A_HEARTBEAT], MAX_HEARTBEAT, &n) != 0 || n < MIN_HEARTBEAT) {
            snprintf(msg, mlen, "heartbeat must be a number of milliseconds from %d to %d",
                     MIN_HEARTBEAT, MAX_HEARTBEAT);
            rc = KD_INVALID;
            goto out;
        }
        p->heartbeat_ms = (unsigned)n;
    }
out:
    if (rc != KD_OK) params_clear(p);
    return rc;
}

/* ---- Server-Sent Events ---------------------------------------------------------------- */

/* Producer: one event block per version. Waits while the client is SSE_BOUND behind. */
static void sse_on_change(void *ctx, const kd_entry *e) {
    feed *f = ctx;
    char *json = NULL;
    size_t jlen = 0;
    int rc = kd_entry_to_json(e, KD_WIRE_VALUE | KD_WIRE_CHANGE, &json, &jlen);
    char head[80];
    int hlen = snprintf(head, sizeof head, "id: %" PRIu64 "\nevent: change\ndata: ", e->seq);
    const char *parts[3] = {head, json, "\n\n"};
    size_t lens[3] = {(size_t)hlen, jlen, 2};

    pthread_mutex_lock(&f->mu);
    while (!feed_over(f) && f->len - f->off > SSE_BOUND) pthread_cond_wait(&f->cond, &f->mu);
    if (!feed_over(f)) {
        /* A lost event would be a silent gap: fail the stream instead, and the client
        ** resumes from the last id it saw. */
        if (rc != KD_OK || buf_append(f, parts, lens, 3) != 0) f->failed = 1;
        if (!f->lingering || f->failed || f->len - f->off >= SSE_BATCH)
            pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->mu);
    kd_free(json);
}

/* The connection's socket, -1 when MHD does not say. */
static int conn_fd(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* True when the client has closed its end. MHD would notice only at the next write (up
** to a heartbeat away); looking now ends the subscription and frees the thread sooner.
** A peer that only shut down its sending side looks the same; SSE clients do not. */
static int peer_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Consumer: MHD's content reader. Blocks until there is something to send. */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max) {
    feed *f = cls;
    ssize_t n;
    (void)pos;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        /* On shutdown the stream ends at once. An event cut short is harmless: an SSE
        ** client dispatches an event (and takes its id) only at its blank line. */
        if (atomic_load(&f->s->stopping)) {
            n = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        size_t pending = f->len - f->off;
        if (pending && pending < SSE_BATCH && !f->lingered && !f->failed &&
            ts_before(mono_now(), ts_add_ms(f->last_send, SSE_FLOW_MS))) {
            /* Events are flowing: gather a few more into this send (see the top). */
            struct timespec until = ts_add_ms(mono_now(), SSE_LINGER_MS);
            f->lingering = f->lingered = 1;
            pthread_cond_timedwait(&f->cond, &f->mu, &until);
            f->lingering = 0;
            continue;
        }
        if (pending) {
            f->lingered = 0;
            size_t k = pending < max ? pending : max;
            memcpy(out, f->buf + f->off, k);
            f->off += k;
            if (f->off == f->len) f->off = f->len = 0;
            if (pending > SSE_BOUND) pthread_cond_broadcast(&f->cond); /* room for the producer */
            f->last_send = mono_now();
            f->next_beat = ts_add_ms(f->last_send, f->heartbeat_ms);
            n = (ssize_t)k;
            break;
        }
        if (f->failed) {
            n = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (!ts_before(mono_now(), f->next_beat)) {
            static const char beat[] = ": heartbeat\n\n";
            const char *parts[1] = {beat};
            size_t lens[1] = {sizeof beat - 1};
            if (buf_append(f, parts, lens, 1) != 0) {
                n = MHD_CONTENT_READER_END_WITH_ERROR;
                break;
            }
            continue;
        }
        if (peer_gone(f->fd)) {
            n = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        struct timespec until = ts_min(f->next_beat, ts_add_ms(mono_now(), HANGUP_CHECK_MS));
        int wr = pthread_cond_timedwait(&f->cond, &f->mu, &until);
        if (wr != 0 && wr != ETIMEDOUT && wr != EINTR) {
            n = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* MHD is done with the response (the connection closed or the stream ended). */
static void sse_free(void *cls) {
    feed *f = cls;
    feed_stop(f);
    feed_free(f);
}

/* The library's error (kd_errmsg) for rc, with its status. */
static struct MHD_Response *error_for(int rc, unsigned *status) {
    return srv_fail_kd(status, rc, NULL);
}

static struct MHD_Response *nomem(unsigned *status) {
    return srv_fail(status, MHD_HTTP_INTERNAL_SERVER_ERROR, "error", "out of memory");
}

static kd_sub_options sub_options(const params *p) {
    kd_sub_options o;
    memset(&o, 0, sizeof o);
    o.ns = p->ns;
    o.key = p->key;
    o.types = p->types;
    o.filter = p->filter;
    o.since = p->since;
    return o;
}

/* Keeps MHD's idle timeout from closing a healthy stream: the longest silence on it is
** one heartbeat interval. */
static void sse_fit_timeout(struct MHD_Connection *conn, unsigned heartbeat_ms) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
    unsigned cur = ci ? ci->connection_timeout : 0;
    unsigned need = heartbeat_ms / 1000 * 2 + 5;
    if (cur != 0 && cur < need)
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, need);
}

static struct MHD_Response *sse_start(srv *s, struct MHD_Connection *conn, const params *p,
                                      unsigned *status) {
    struct MHD_Response *r = NULL;
    feed *f = feed_new(s);
    if (!f) return nomem(status);
    f->heartbeat_ms = p->heartbeat_ms;
    f->sse = 1;
    f->fd = conn_fd(conn);
    f->next_beat = ts_add_ms(mono_now(), p->heartbeat_ms);
    /* A first comment, so the client knows at once that the stream is open. */
    static const char hello[] = ": ok\n\n";
    const char *parts[1] = {hello};
    size_t lens[1] = {sizeof hello - 1};
    if (buf_append(f, parts, lens, 1) != 0) {
        feed_free(f);
        return nomem(status);
    }
    kd_sub_options o = sub_options(p);
    int rc = kd_subscribe(s->db, &o, sse_on_change, f, &f->sub);
    if (rc != KD_OK) {
        r = error_for(rc, status);
        feed_free(f);
        return r;
    }
    reg_add(f);
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_read, f, sse_free);
    if (!r) {
        feed_stop(f);
        feed_free(f);
        return nomem(status);
    }
    /* From here the response owns f: sse_free runs when MHD lets go of it. */
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES) {
        MHD_destroy_response(r);
        return nomem(status);
    }
    sse_fit_timeout(conn, p->heartbeat_ms);
    *status = MHD_HTTP_OK;
    return r;
}

/* ---- long-poll ------------------------------------------------------------------------- */

/* Producer: takes events until the limit, remembers the first one it refuses. */
static void lp_on_change(void *ctx, const kd_entry *e) {
    feed *f = ctx;
    char *json = NULL;
    size_t jlen = 0;
    int rc = kd_entry_to_json(e, KD_WIRE_VALUE | KD_WIRE_CHANGE, &json, &jlen);
    pthread_mutex_lock(&f->mu);
    /* Once one event is refused, so is every later one: the page ends at last_taken,
    ** and a smaller event taken after a refused one would come again on the next page. */
    int take = !f->closed && !f->failed && !f->first_refused && f->count < f->limit &&
               (f->count == 0 || f->len + jlen < LP_MAX_BYTES);
    if (take) {
        const char *parts[2] = {",", json};
        size_t lens[2] = {f->count ? 1u : 0u, jlen};
        if (rc != KD_OK || buf_append(f, parts, lens, 2) != 0) {
            f->failed = 1;
            take = 0;
        }
    }
    if (take) {
        f->count++;
        f->last_taken = e->seq;
    } else if (!f->first_refused) {
        f->first_refused = e->seq;
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    kd_free(json);
}

/* The last committed seq, or 0 when the stats cannot be read. */
static uint64_t committed_seq(kd_db *db) {
    kd_stats st;
    return kd_stats_get(db, &st) == KD_OK ? st.seq : 0;
}

/* Waits (f->mu held) until the answer is ready: some events taken and what was already
** committed drained, the limit reached, or the timeout passed with nothing. Every
** HANGUP_CHECK_MS it looks whether the client is still there (MHD does not watch the
** socket while its thread is here); when it has left, sets f->gone and returns, which
** ends the subscription and frees the thread and the connection slot. */
static void lp_wait(feed *f, unsigned timeout_ms, uint64_t committed_at_start) {
    struct timespec start = mono_now();
    struct timespec deadline = ts_add_ms(start, timeout_ms);
    struct timespec scan_deadline =
        ts_add_ms(start, timeout_ms > LP_SCAN_MS ? timeout_ms : LP_SCAN_MS);
    struct timespec drain_deadline = {0, 0};
    struct timespec next_check = ts_add_ms(start, HANGUP_CHECK_MS);
    uint64_t target = 0;
    for (;;) {
        if (atomic_load(&f->s->stopping) || f->failed || f->first_refused) return;
        uint64_t done = kd_subscription_seq(f->sub);
        struct timespec now = mono_now(), until;
        if (!ts_before(now, next_check)) {
            if (peer_gone(f->fd)) {
                f->gone = 1;
                return;
            }
            next_check = ts_add_ms(now, HANGUP_CHECK_MS);
        }
        if (f->count > 0) {
            if (!drain_deadline.tv_sec && !drain_deadline.tv_nsec) {
                /* Take what was committed along with the first event before answering. */
                target = committed_seq(f->s->db);
                drain_deadline = ts_add_ms(now, LP_DRAIN_MS);
            }
            if (done >= target || !ts_before(now, drain_deadline)) return;
            until = ts_min(ts_add_ms(now, LP_POLL_MS), drain_deadline);
        } else if (done < committed_at_start) {
            /* Still scanning versions that existed at the start (all skipped so far). */
            if (!ts_before(now, scan_deadline)) return;
            until = ts_min(ts_add_ms(now, LP_POLL_MS), scan_deadline);
        } else {
            if (!ts_before(now, deadline)) return;
            until = deadline;         /* the producer signals the first event */
        }
        until = ts_min(until, next_check);
        pthread_cond_timedwait(&f->cond, &f->mu, &until);
    }
}

static struct MHD_Response *longpoll(srv *s, struct MHD_Connection *conn, const params *p,
                                     unsigned *status) {
    struct MHD_Response *r = NULL;
    char *body = NULL;
    feed *f = feed_new(s);
    if (!f) return nomem(status);
    f->limit = p->limit;
    f->fd = conn_fd(conn);
    uint64_t committed = committed_seq(s->db);
    kd_sub_options o = sub_options(p);
    int rc = kd_subscribe(s->db, &o, lp_on_change, f, &f->sub);
    if (rc != KD_OK) {
        r = error_for(rc, status);
        goto out;
    }
    reg_add(f);

    /* MHD cannot watch the connection while this thread waits here, and would count the
    ** wait as idleness afterwards: lift its idle timeout for the wait, then put it back
    ** (which restarts its clock). */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
    unsigned idle_timeout = ci ? ci->connection_timeout : 0;
    if (idle_timeout) MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);

    pthread_mutex_lock(&f->mu);
    lp_wait(f, p->timeout_ms, committed);
    f->closed = 1;
    pthread_mutex_unlock(&f->mu);
    /* Every version up to `last` has been taken, skipped or refused by now; the feed is
    ** closed, so nothing more is taken. Read it before the handle goes away. */
    uint64_t last = kd_subscription_seq(f->sub);
    feed_stop(f);
    if (idle_timeout) MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, idle_timeout);
    /* A client that left gets its answer too: MHD fails to send it and closes. */
    if (f->gone) srv_log(s, SRV_LOG_DEBUG, "long-poll: the client left while it waited");

    if (last < f->last_taken) last = f->last_taken;       /* its seq is stored after the call */
    if (f->first_refused && last >= f->first_refused) last = f->first_refused - 1;
    if (f->failed && f->count == 0) {
        r = nomem(status);
        goto out;
    }
    size_t cap = f->len + 64;
    if (!(body = malloc(cap))) {
        r = nomem(status);
        goto out;
    }
    int head = snprintf(body, cap, "{\"changes\":[");
    memcpy(body + head, f->buf ? f->buf : "", f->len);
    int tail = snprintf(body + head + f->len, cap - (size_t)head - f->len,
                        "],\"last_seq\":%" PRIu64 "}", last);
    r = srv_json_response(body, (size_t)head + f->len + (size_t)tail);
    if (!r) {
        r = nomem(status);
        goto out;
    }
    *status = MHD_HTTP_OK;
out:
    if (f->sub || f->registered) feed_stop(f);
    feed_free(f);
    free(body);
    return r;
}

/* ---- the route ------------------------------------------------------------------------- */

struct MHD_Response *srv_changes(srv *s, struct MHD_Connection *conn, unsigned *status) {
    params p;
    char msg[512] = "";
    struct MHD_Response *r;
    int rc = parse_params(s, conn, &p, msg, sizeof msg);
    if (rc == KD_INVALID && msg[0])
        return srv_fail(status, MHD_HTTP_BAD_REQUEST, "invalid", "%s", msg);
    if (rc == KD_NOMEM) return nomem(status);
    if (rc != KD_OK) return error_for(rc, status);
    r = p.longpoll ? longpoll(s, conn, &p, status) : sse_start(s, conn, &p, status);
    params_clear(&p);
    return r;
}
