/*
** cli_watch.c — `kdelta watch [NS[/KEY]]`: prints committed changes as they happen, in
** seq order, until SIGINT/SIGTERM (exit 0) or until stdout is closed (exit 0, quietly).
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h (cli_http.c for the stream),
** the C library and POSIX (signals, threads).
**
** Two sources, one printer:
**   - locally, a subscription (kd_subscribe) calls back on its own thread; the main thread
**     waits for a signal in sigwait. Output is serialised with a mutex.
**   - remotely (--url, or automatic routing while `kdelta serve` holds the database), the
**     server's Server-Sent Events stream GET /api/v1/_changes, parsed as it arrives
**     (`id:` / `data:` lines, blank line = end of event). When the connection drops the
**     stream is resumed with Last-Event-ID (the server guarantees no gap and no repeat),
**     after a short backoff; a server gone for WATCH_GIVE_UP_S seconds ends the command
**     with an error, and so does an error answer at once (503 excepted: a server that is
**     stopping may be restarted).
** "From now" (the default) is resolved remotely to the server's current seq before the
** stream opens, so that a reconnect before the first change still misses nothing.
**
** Output: one line per change, `seq 12 update users/alice 3f2a9c1e
** 2026-01-01T12:00:00.000000Z {"age":31}` (value shortened as in `log`, the change type
** coloured on a terminal), or with --json the change's wire form (kd_entry_to_json with
** value and change, as the server's `data:` line), one document per line. Each line is
** flushed at once.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_ops.h"

#define WATCH_GIVE_UP_S 10      /* a server gone this long ends a remote watch */
#define WATCH_IDLE_S 45L        /* silence (three default heartbeats) = dropped connection */
#define WATCH_BACKOFF_MIN_MS 100
#define WATCH_BACKOFF_MAX_MS 1000

static volatile sig_atomic_t watch_stop; /* set by SIGINT/SIGTERM in remote mode */

typedef struct watch {
    cli *c;
    char *ns, *key;             /* NULL = every namespace / key */
    int types;                  /* KD_SUB_* bits, 0 = all */
    const char *filter;         /* --filter text, or NULL */
    kd_query *fq;               /* the filter as a query (validated here) */
    uint64_t since;             /* KD_SUB_NOW = from now */

    pthread_mutex_t mu;         /* one line at a time */
    int closed;                 /* stdout is gone: stop quietly */
    pthread_t main_thread;      /* woken with SIGUSR1 when stdout closes (local mode) */
    uint64_t last_seq;          /* the last change printed */

    /* SSE parsing (remote) */
    cli_buf line;               /* the line being received */
    cli_buf data;               /* the event's data lines */
    char event[32];             /* the event's type ("" = message) */
    int bad_event;              /* an event that could not be read */
    char bad_msg[600];
} watch;

/* ---- options ----------------------------------------------------------------------------- */

static int parse_types(cli *c, const char *list, int *bits) {
    const char *p = list;
    *bits = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 6 && memcmp(p, "insert", 6) == 0) *bits |= KD_SUB_INSERT;
        else if (n == 6 && memcmp(p, "update", 6) == 0) *bits |= KD_SUB_UPDATE;
        else if (n == 6 && memcmp(p, "delete", 6) == 0) *bits |= KD_SUB_DELETE;
        else
            return cli_fail(c, CLI_RC_USAGE,
                            "invalid --types '%s': unknown change type '%.*s' (want a list of "
                            "insert, update, delete)",
                            list, (int)(n > 64 ? 64 : n), p);
        if (!comma) return 0;
        p = comma + 1;
    }
}

static int parse_since(cli *c, const char *s, uint64_t *since) {
    uint64_t v = 0;
    if (!s || strcmp(s, "now") == 0) {
        *since = KD_SUB_NOW;
        return 0;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 10) / 10) goto bad;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (!*s) goto bad;
    *since = v;
    return 0;
bad:
    return cli_fail(c, CLI_RC_USAGE, "invalid --since '%s' (want a seq number, 0 = from the first "
                    "change, or 'now')", s);
}

/* NS or NS/KEY (system namespaces allowed: a watch may follow _views). */
static int parse_target(cli *c, watch *w) {
    int rc;
    if (c->npos == 0) return 0;
    if (strchr(c->pos[0], '/')) return cli_split_name(c, c->pos[0], 1, &w->ns, &w->key);
    if ((rc = kd_valid_namespace(c->pos[0], 1)) != KD_OK) return cli_fail_kd(c, rc, NULL);
    if (!(w->ns = strdup(c->pos[0]))) return cli_fail(c, KD_NOMEM, "out of memory");
    return 0;
}

static int parse_filter(cli *c, watch *w) {
    int rc;
    for (int i = 0; i < c->nqopts; i++) {
        if (c->qopts[i].kind != CLI_Q_FILTER) continue;
        if (w->filter)
            return cli_fail(c, CLI_RC_USAGE, "--filter given twice (join the conditions with 'and')");
        w->filter = c->qopts[i].val;
    }
    if (!w->filter) return 0;
    if ((rc = kd_query_new(&w->fq)) != KD_OK) return cli_fail_kd(c, rc, NULL);
    if ((rc = kd_query_set_filter(w->fq, w->filter)) != KD_OK) {
        char what[300];
        snprintf(what, sizeof what, "invalid --filter '%.200s'", w->filter);
        return cli_fail_kd(c, rc, what);
    }
    return 0;
}

/* ---- printing ---------------------------------------------------------------------------- */

static const char *change_name(int change) {
    switch (change) {
    case KD_CHANGE_INSERT: return "insert";
    case KD_CHANGE_UPDATE: return "update";
    case KD_CHANGE_DELETE: return "delete";
    default: return "change";
    }
}

static const char *change_color(int change) {
    switch (change) {
    case KD_CHANGE_INSERT: return "\033[32m";
    case KD_CHANGE_DELETE: return "\033[31m";
    default: return "\033[33m";
    }
}

/* stdout is closed: later writes (main's final flush) go nowhere instead of failing. */
static void drop_stdout(void) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    clearerr(stdout);
}

/* Prints one change. Returns 0, or -1 once stdout is closed. */
static int print_change(watch *w, const kd_entry *e) {
    cli_buf b = {0};
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (w->closed) {
        rc = -1;
        goto out;
    }
    if (w->last_seq && e->seq <= w->last_seq) goto out; /* never twice, never backwards */
    if (w->c->json) {
        char *json = NULL;
        size_t len = 0;
        if (kd_entry_to_json(e, KD_WIRE_VALUE | KD_WIRE_CHANGE, &json, &len) != KD_OK) {
            cli_buf_puts(&b, "{\"error\":\"cannot write a change\"}");
        } else {
            cli_buf_add(&b, json, len);
        }
        kd_free(json);
    } else {
        char id[9], ts[32];
        cli_short_id(e->version_id, id);
        kd_format_time(e->timestamp, ts);
        cli_buf_printf(&b, "seq %llu ", (unsigned long long)e->seq);
        if (w->c->color) cli_buf_puts(&b, change_color(e->change));
        cli_buf_puts(&b, change_name(e->change));
        if (w->c->color) cli_buf_puts(&b, "\033[0m");
        cli_buf_printf(&b, " %s/%s %s %s ", e->ns ? e->ns : "", e->key ? e->key : "", id, ts);
        if (e->deleted) cli_buf_puts(&b, "(deleted)");
        else if (e->value) cli_add_short_value(&b, e->value, e->value_len);
        else cli_buf_puts(&b, "null");
    }
    cli_buf_puts(&b, "\n");
    w->last_seq = e->seq;
    if (b.oom || fwrite(b.p, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
        w->closed = 1;
        drop_stdout();
        rc = -1;
    }
out:
    pthread_mutex_unlock(&w->mu);
    cli_buf_free(&b);
    return rc;
}

/* ---- local: a subscription --------------------------------------------------------------- */

static void on_signal(int sig) {
    (void)sig;
    watch_stop = 1;
}

/* SIGINT and SIGTERM end a watch (exit 0), even where the shell had them ignored; SIGUSR1
** is only ever sent by ourselves. No SA_RESTART: a sleep or a wait ends at once. */
static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static void on_change(void *ctx, const kd_entry *e) {
    watch *w = ctx;
    if (print_change(w, e) != 0) pthread_kill(w->main_thread, SIGUSR1);
}

static int watch_local(watch *w) {
    cli *c = w->c;
    sigset_t set;
    kd_sub_options so;
    kd_subscription *sub = NULL;
    int sig, rc;
    /* Every thread (the subscription's included) blocks these; the main thread takes them
    ** with sigwait. SIGUSR1 is the callback telling it that stdout closed. A handler is
    ** installed first because an ignored signal (a background job's SIGINT) would never
    ** become pending, and sigwait would not see it. */
    catch_stop_signals();
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    w->main_thread = pthread_self();
    memset(&so, 0, sizeof so);
    so.ns = w->ns;
    so.key = w->key;
    so.types = w->types;
    so.filter = w->fq;
    so.since = w->since;
    rc = kd_subscribe(c->db, &so, on_change, w, &sub);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "watch");
    while (sigwait(&set, &sig) != 0) {
    }
    kd_unsubscribe(sub);
    /* The signals stay blocked: a late SIGUSR1 must not end the process while main() closes
    ** the database. */
    return 0;
}

/* ---- remote: the SSE stream -------------------------------------------------------------- */

/* The change type of a wire document, when kd_entry_from_json left it unset. */
static int change_of(const char *data, size_t len) {
    char *canon = NULL, *s = NULL;
    size_t clen;
    int change = 0;
    if (kd_json_canonical(data, len, &canon, &clen) != KD_OK) return 0;
    if (kd_json_string(kd_json_get(kd_json_doc(canon, clen), "change"), &s, NULL) == KD_OK) {
        if (strcmp(s, "insert") == 0) change = KD_CHANGE_INSERT;
        else if (strcmp(s, "update") == 0) change = KD_CHANGE_UPDATE;
        else if (strcmp(s, "delete") == 0) change = KD_CHANGE_DELETE;
    }
    kd_free(s);
    kd_free(canon);
    return change;
}

/* The end of an event: print it if it is a change. Returns non-zero to stop the stream. */
static int dispatch(watch *w) {
    kd_entry e;
    int stop = 0;
    if (w->data.len == 0 || (w->event[0] && strcmp(w->event, "change") != 0)) goto out;
    memset(&e, 0, sizeof e);
    if (kd_entry_from_json(w->data.p, w->data.len, &e) != KD_OK) {
        w->bad_event = 1;
        snprintf(w->bad_msg, sizeof w->bad_msg, "%s", kd_errmsg(NULL));
        stop = 1;
        goto out;
    }
    if (!e.change) e.change = change_of(w->data.p, w->data.len);
    stop = print_change(w, &e) != 0;
    kd_entry_clear(&e);
out:
    w->data.len = 0;
    w->event[0] = '\0';
    return stop;
}

/* One line of the stream (no line end). */
static int on_line(watch *w, const char *s, size_t n) {
    const char *colon, *v;
    size_t fn, vn;
    if (n == 0) return dispatch(w);
    if (s[0] == ':') return 0; /* a comment: the heartbeat */
    colon = memchr(s, ':', n);
    fn = colon ? (size_t)(colon - s) : n;
    v = colon ? colon + 1 : s + n;
    vn = (size_t)(s + n - v);
    if (vn && *v == ' ') v++, vn--;
    if (fn == 4 && memcmp(s, "data", 4) == 0) {
        if (w->data.len) cli_buf_add(&w->data, "\n", 1);
        cli_buf_add(&w->data, v, vn);
        if (w->data.oom) return 1;
    } else if (fn == 5 && memcmp(s, "event", 5) == 0) {
        snprintf(w->event, sizeof w->event, "%.*s", (int)(vn < 31 ? vn : 31), v);
    }
    /* id: is the seq, which the event's data carries too; retry: is ignored (our own
    ** backoff applies). */
    return 0;
}

static int on_bytes(void *ctx, const char *p, size_t n) {
    watch *w = ctx;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            cli_buf_add(&w->line, p + i, 1);
            if (w->line.oom) return 1;
            continue;
        }
        size_t len = w->line.len;
        if (len && w->line.p[len - 1] == '\r') len--;
        int stop = on_line(w, w->line.p ? w->line.p : "", len);
        w->line.len = 0;
        if (stop) return 1;
    }
    return 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The query string of the stream, resuming after seq `since`. */
static void stream_path(watch *w, uint64_t since, cli_buf *b) {
    cli_buf_printf(b, "/api/v1/_changes?since=%llu", (unsigned long long)since);
    if (w->ns) {
        cli_buf_puts(b, "&ns=");
        cli_url_add(b, w->ns);
    }
    if (w->key) {
        cli_buf_puts(b, "&key=");
        cli_url_add(b, w->key);
    }
    if (w->types) {
        const char *sep = "";
        cli_buf_puts(b, "&types=");
        for (int ch = KD_CHANGE_INSERT; ch <= KD_CHANGE_DELETE; ch++) {
            if (!(w->types & (1 << ch))) continue;
            cli_buf_puts(b, sep);
            cli_buf_puts(b, change_name(ch));
            sep = "%2C";
        }
    }
    if (w->filter) {
        cli_buf_puts(b, "&filter=");
        cli_url_add(b, w->filter);
    }
}

/* Gives up: the server has been unreachable too long (or at the first attempt). */
static int fail_gone(watch *w, const char *err) {
    cli *c = w->c;
    if (c->routed) {
        snprintf(c->err_msg, sizeof c->err_msg, "%s", c->busy_msg);
        c->err_rc = KD_BUSY;
        return cli_exit_code(KD_BUSY);
    }
    return cli_fail(c, KD_ERROR, "cannot reach the server at %s: %s", c->remote_url, err);
}

static int watch_remote(watch *w) {
    cli *c = w->c;
    uint64_t since = w->since;
    int connected_once = 0, backoff = WATCH_BACKOFF_MIN_MS, code = 0;
    double down_since = 0;
    char err[512];

    catch_stop_signals();

    if (since == KD_SUB_NOW) {
        kd_stats st;
        char *path = NULL;
        int rc = cli_op_status(c, &st, &path);
        free(path);
        if (rc != KD_OK) return cli_fail_kd(c, rc, "watch");
        since = st.seq;
        connected_once = 1;
    }
    while (!watch_stop && !w->closed) {
        cli_buf path = {0};
        cli_http_res res;
        uint64_t resume = w->last_seq > since ? w->last_seq : since;
        stream_path(w, resume, &path);
        if (path.oom) {
            cli_buf_free(&path);
            return cli_fail(c, KD_NOMEM, "out of memory");
        }
        w->line.len = w->data.len = 0;
        w->event[0] = '\0';
        /* Resuming after the last change printed: the header is the protocol's way (it wins
        ** over since=), since= says the same for a server that ignores it. */
        char last_id[64];
        const char *headers[2] = {NULL, NULL};
        if (w->last_seq) {
            snprintf(last_id, sizeof last_id, "Last-Event-ID: %llu", (unsigned long long)w->last_seq);
            headers[0] = last_id;
        }
        int rc = cli_http_stream(c, path.p, headers, WATCH_IDLE_S, on_bytes, w, &watch_stop, &res,
                                 err, sizeof err);
        cli_buf_free(&path);
        if (watch_stop || w->closed) {
            cli_http_res_free(&res);
            break;
        }
        if (w->bad_event) {
            cli_http_res_free(&res);
            return cli_fail(c, KD_ERROR, "the server at %s sent a change that cannot be read: %s",
                            c->remote_url, w->bad_msg);
        }
        if (rc == KD_OK && res.status == 200 && !res.event_stream) {
            cli_http_res_free(&res);
            return cli_fail(c, KD_ERROR, "the server at %s did not answer with an event stream",
                            c->remote_url);
        }
        if (rc == KD_OK && res.status != 200 && res.status != 503) {
            /* The server refused the request itself: retrying would not help. */
            int erc = cli_http_error(c, &res);
            cli_http_res_free(&res);
            return cli_fail_kd(c, erc, "watch");
        }
        if (rc == KD_OK && res.status == 200) {
            /* The stream ended (the server is stopping): resume where it stopped. */
            connected_once = 1;
            down_since = 0;
            backoff = WATCH_BACKOFF_MIN_MS;
        } else if (rc == KD_NOMEM) {
            cli_http_res_free(&res);
            return cli_fail(c, KD_NOMEM, "%s", err);
        } else {
            if (!connected_once) {
                cli_http_res_free(&res);
                return fail_gone(w, err);
            }
            if (!down_since) down_since = now_s();
            if (rc != KD_OK) snprintf(w->bad_msg, sizeof w->bad_msg, "%s", err);
            else snprintf(w->bad_msg, sizeof w->bad_msg, "the server is shutting down");
            if (now_s() - down_since > WATCH_GIVE_UP_S) {
                cli_http_res_free(&res);
                return fail_gone(w, w->bad_msg);
            }
        }
        cli_http_res_free(&res);
        sleep_ms(backoff);
        backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : backoff * 2;
    }
    return code;
}

/* ---- the command ------------------------------------------------------------------------- */

int cli_cmd_watch(cli *c) {
    watch w;
    int code;
    memset(&w, 0, sizeof w);
    w.c = c;
    pthread_mutex_init(&w.mu, NULL);
    if ((code = parse_target(c, &w)) != 0) goto out;
    if (c->types && (code = parse_types(c, c->types, &w.types)) != 0) goto out;
    if ((code = parse_since(c, c->since, &w.since)) != 0) goto out;
    if ((code = parse_filter(c, &w)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    /* A reader that goes away is the normal end of a watch, not an error to die of. */
    signal(SIGPIPE, SIG_IGN);
    code = c->remote ? watch_remote(&w) : watch_local(&w);
out:
    pthread_mutex_destroy(&w.mu);
    cli_buf_free(&w.line);
    cli_buf_free(&w.data);
    kd_query_free(w.fq);
    free(w.ns);
    free(w.key);
    return code;
}
