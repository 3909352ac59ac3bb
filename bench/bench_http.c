/*
** bench_http.c — the HTTP figures of `make bench` (docs/benchmarks.md, "The HTTP server"):
**
**   group "httpget": http_get — GET of one hot key from `kdelta serve`, against nginx
**                    with Debian's stock settings serving a static file that holds the
**                    very same body bytes; wrk with 2 threads and 32 keep-alive
**                    connections on each side. http_get_vs_tuned_nginx — the same kdelta
**                    rounds against nginx tuned for small static files; for information,
**                    no goal.
**   group "httpput": http_put_durable_32conn — durable PUTs (sync=full) from 32 keep-alive
**                    connections, against SQLite durable INSERTs from 32 threads (as
**                    put_durable_8threads in bench.c, with 32 threads).
**   group "sse":     sse_fanout_50 — change events per second delivered to 50 SSE
**                    subscribers of /api/v1/_changes while one writer commits N puts in
**                    batches of 100. No baseline.
**   ("http" selects the three.)
**
** This is a program of its own, not a group of bench.c: it drives real processes
** (kdelta serve, nginx, wrk; bench_proc.c starts and stops them) over loopback and links
** no KoruDelta code, so the server is measured as its clients see it. Processes are only
** started from the main thread, while no other thread runs.
**
** Paired figures alternate the sides' rounds (and their order: reversed every other
** round) and keep each side's median. Output: every round, then the table, and the
** figures in bench's JSON format, appended to the list already at --json with --append
** (bench/run.sh runs bench first, then this); bench_common.c prints and writes both.
** Exit status: 0 when every measurement ran, 1 when one failed (a server that would not
** start or stop cleanly, an HTTP error, a wrong value or count read back), 2 on bad usage.
**
** Uses SQLite, POSIX and Linux (epoll), bench_common.c and bench_proc.c.
*/
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "bench_proc.h"

#define WRK_THREADS 2
#define WRK_CONNS 32
#define PUT_CONNS 32          /* connections (KoruDelta) and threads (SQLite) of the put figure */
#define PUT_NS "bench"
#define HOT_PATH "/api/v1/bench/hot"
#define SSE_SUBS 50
#define SSE_BATCH 100         /* puts per POST /api/v1/_batch of the SSE writer */
#define SSE_NS "fan"
#define SSE_WAIT_S 120.0      /* a round that has not delivered everything by then fails */

/* ---- settings --------------------------------------------------------------------- */

typedef struct http_config {
    const char *dir;       /* scratch directory (the caller removes it) */
    const char *json;      /* where the figures go */
    const char *kdelta;    /* the server binary */
    const char *http_dir;  /* bench/http: the wrk script and the nginx config templates */
    const char *wrk, *nginx;
    const char *only;      /* comma-separated groups (NULL = all) */
    int seconds;           /* length of one timed round (whole seconds: wrk's -d) */
    int rounds;            /* rounds per side; the median is kept */
    int sse_writes;        /* writes committed in each sse_fanout_50 round */
    int append;            /* append to the list at --json instead of replacing it */
} http_config;

const char *const g_prog = "bench_http";
static http_config g_http = {.json = "build/bench.json", .kdelta = "build/kdelta",
                             .http_dir = "bench/http", .wrk = "wrk", .nginx = "nginx",
                             .seconds = 5, .rounds = 5, .sse_writes = 10000};

int wanted(const char *g) {
    return !g_http.only || listed(g_http.only, g) || listed(g_http.only, "http");
}

/* ---- nginx ------------------------------------------------------------------------ */

/* The two baselines of http_get: bench/http/<conf> (docs/benchmarks.md says why each
** setting is what it is), run in <dir>/<name>. */
typedef struct nginx_kind {
    const char *name, *conf;
} nginx_kind;

static const nginx_kind NGINX_STOCK = {"nginx-stock", "nginx-stock.conf.in"};
static const nginx_kind NGINX_TUNED = {"nginx-tuned", "nginx-tuned.conf.in"};

typedef struct nginx {
    pid_t pid;
    int port;
    char *prefix, *log;
} nginx;

/* The config: the template with @PREFIX@, @PORT@ and @USER@ filled in. */
static int nginx_config(const nginx *n, const char *tpl, const char *conf) {
    char line[1024];
    FILE *in = fopen(tpl, "r"), *out = in ? fopen(conf, "w") : NULL;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && fgets(line, sizeof line, in)) {
        for (char *p = line; *p; p++) {
            if (*p != '@') {
                fputc(*p, out);
            } else if (strncmp(p, "@PREFIX@", 8) == 0) {
                fputs(n->prefix, out);
                p += 7;
            } else if (strncmp(p, "@PORT@", 6) == 0) {
                fprintf(out, "%d", n->port);
                p += 5;
            } else if (strncmp(p, "@USER@", 6) == 0) {
                if (geteuid() == 0) fputs("user root root;", out);
                p += 5;
            } else {
                fputc(*p, out);
            }
        }
    }
    if (out && fclose(out) != 0) rc = -1;
    if (in) fclose(in);
    if (rc) fail("cannot make %s from %s", conf, tpl);
    return rc;
}

/* Starts nginx of kind k serving `body` at HOT_PATH on a free port; checks that it
** answers exactly those bytes. */
static int nginx_start(nginx *n, const nginx_kind *k, const char *exe, const char *body,
                       size_t blen) {
    static const char *const dirs[] = {"", "/www", "/www/api", "/www/api/v1", "/www/api/v1/bench",
                                       "/tmp"};
    char path[PATH_MAX], conf[PATH_MAX];
    char *tpl = path_join(g_http.http_dir, k->conf);
    hresp r = {0};
    int rc = -1, status;
    memset(n, 0, sizeof *n);
    n->prefix = path_join(g_http.dir, k->name);
    n->log = n->prefix ? path_join(n->prefix, "error.log") : NULL;
    if (!n->log || !tpl) goto out;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", n->prefix, dirs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fail("mkdir %s: %s", path, strerror(errno));
            goto out;
        }
    }
    snprintf(path, sizeof path, "%s/www%s", n->prefix, HOT_PATH);
    snprintf(conf, sizeof conf, "%s/nginx.conf", n->prefix);
    if (write_file(path, body, blen) != 0) goto out;
    /* A free port can be taken between our check and nginx's bind: try a few. */
    for (int attempt = 0; attempt < 5 && n->pid == 0; attempt++) {
        if (!(n->port = free_port()) || nginx_config(n, tpl, conf) != 0) goto out;
        char *argv[] = {(char *)exe, "-p", n->prefix, "-c", conf, "-e", n->log, NULL};
        if ((n->pid = spawn(argv, -1, n->log, NULL)) < 0) goto out;
        for (double end = mono() + 10;; sleep_seconds(0.02)) {
            if (proc_wait(n->pid, 0, &status)) {
                n->pid = 0;
                break; /* bind failed? another port */
            }
            int fd = tcp_connect(n->port);
            if (fd >= 0) {
                close(fd);
                break;
            }
            if (mono() > end) {
                fail("%s does not accept connections on port %d after 10 s", k->name, n->port);
                goto out;
            }
        }
    }
    if (n->pid == 0) {
        fail("%s would not start", k->name);
        log_tail(n->log);
        goto out;
    }
    if (http_once(n->port, "GET", HOT_PATH, NULL, &r) != 0 || r.status != 200 || r.len != blen ||
        memcmp(r.body, body, blen) != 0) {
        fail("%s: GET %s gave status %d and %zu bytes, expected 200 and the %zu bytes of"
             " kdelta's answer", k->name, HOT_PATH, r.status, r.len, blen);
        goto out;
    }
    rc = 0;
out:
    free(tpl);
    free(r.body);
    return rc;
}

static void nginx_stop(nginx *n, const nginx_kind *k) {
    if (n->pid > 0) proc_stop(n->pid, SIGTERM, k->name, n->log);
    free(n->prefix);
    free(n->log);
    memset(n, 0, sizeof *n);
}

/* ---- http_get: kdelta serve against nginx, both driven by wrk ---------------------- */

/* One wrk run of `seconds` against GET HOT_PATH on port: requests/s (and the bytes
** received per answer, headers included), or NAN when wrk failed or saw any error. */
static double wrk_run(const char *wrk, int port, int seconds, double *bytes_per_answer) {
    char dur[32], threads[16], conns[16], url[128], out[8192];
    char *script = path_join(g_http.http_dir, "report.lua");
    long long req, us, bytes, e[5];
    snprintf(dur, sizeof dur, "%ds", seconds);
    snprintf(threads, sizeof threads, "%d", WRK_THREADS);
    snprintf(conns, sizeof conns, "%d", WRK_CONNS);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, HOT_PATH);
    char *argv[] = {(char *)wrk, "-t", threads, "-c", conns, "-d", dur, "--timeout", "10s",
                    "-s", script, url, NULL};
    int rc = script ? run_capture(argv, out, sizeof out) : -1;
    free(script);
    const char *line = rc >= 0 ? strstr(out, "wrk-result ") : NULL;
    if (rc != 0 || !line ||
        sscanf(line, "wrk-result requests=%lld duration_us=%lld bytes=%lld connect=%lld read=%lld"
               " write=%lld status=%lld timeout=%lld", &req, &us, &bytes, &e[0], &e[1], &e[2],
               &e[3], &e[4]) != 8) {
        fail("wrk failed (exit %d):\n%s", rc, rc >= 0 ? out : "");
        return NAN;
    }
    if (e[0] || e[1] || e[2] || e[3] || e[4] || req <= 0 || us <= 0) {
        fail("wrk on port %d: %lld requests with errors: connect %lld, read %lld, write %lld,"
             " status>399 %lld, timeout %lld", port, req, e[0], e[1], e[2], e[3], e[4]);
        return NAN;
    }
    *bytes_per_answer = (double)bytes / (double)req;
    return (double)req / ((double)us / 1e6);
}

/* The sides of http_get, in the order of odd rounds; even rounds run them backwards, so
** a drift in the machine's speed favours no side. */
enum { SIDE_KD, SIDE_STOCK, SIDE_TUNED, SIDES };
static const char *const SIDE_NAME[SIDES] = {"kdelta", "nginx stock", "nginx tuned"};

/* Puts the hot key, reads it back: its answer's body in *r. */
static int hot_key(int port, hresp *r) {
    char val[VALUE_MAX], body[VALUE_MAX + 16];
    size_t vn = make_value(val, "hot", 1);
    snprintf(body, sizeof body, "{\"value\":%.*s}", (int)vn, val);
    if (http_once(port, "PUT", HOT_PATH, body, r) != 0 || r->status != 200) {
        fail("PUT %s: status %d %s", HOT_PATH, r->status, r->body ? r->body : "");
        return -1;
    }
    if (http_once(port, "GET", HOT_PATH, NULL, r) != 0 || r->status != 200 ||
        !doc_has_value(r->body, r->len, val, vn)) {
        fail("GET %s: status %d, answer %s; expected the value put", HOT_PATH, r->status,
             r->body ? r->body : "");
        return -1;
    }
    return 0;
}

static void bench_http_get(void) {
    char wrk[PATH_MAX], ngx[PATH_MAX];
    kserver ks = {0};
    nginx stock = {0}, tuned = {0};
    hresp r = {0};
    double med[SIDES] = {NAN, NAN, NAN}, v[SIDES][MAX_ROUNDS], bytes[SIDES] = {0};
    int port[SIDES];
    const char *absent = NULL;
    if (!find_tool(g_http.wrk, wrk, sizeof wrk) || !find_tool(g_http.nginx, ngx, sizeof ngx) ||
        access(g_http.kdelta, X_OK) != 0) {
        printf("http_get: wrk, nginx or %s is missing (scripts/deps.sh bench installs wrk and"
               " nginx-light)\n", g_http.kdelta);
        absent = "MISSING";
        goto out;
    }
    if (kserver_start(&ks, g_http.kdelta, g_http.dir, "http_get", NULL) != 0 ||
        hot_key(ks.port, &r) != 0)
        goto out;
    printf("http_get: kdelta serve on port %d answers GET %s with %zu body bytes; two nginx"
           " (worker_processes auto: %ld CPUs online), Debian's stock settings and tuned,"
           " serve a file of those bytes\n", ks.port, HOT_PATH, r.len,
           sysconf(_SC_NPROCESSORS_ONLN));
    if (nginx_start(&stock, &NGINX_STOCK, ngx, r.body, r.len) != 0 ||
        nginx_start(&tuned, &NGINX_TUNED, ngx, r.body, r.len) != 0)
        goto out;
    port[SIDE_KD] = ks.port;
    port[SIDE_STOCK] = stock.port;
    port[SIDE_TUNED] = tuned.port;
    /* Warm-up, not counted: a short run on each side. */
    for (int s = 0; s < SIDES; s++)
        if (isnan(wrk_run(wrk, port[s], 1, &bytes[s]))) goto out;
    for (int i = 0; i < g_http.rounds; i++) {
        for (int j = 0; j < SIDES; j++) {
            int s = i % 2 == 0 ? j : SIDES - 1 - j;
            v[s][i] = wrk_run(wrk, port[s], g_http.seconds, &bytes[s]);
        }
        printf("  %-24s round %d: %s %10.1f   %s %10.1f   %s %10.1f   (%.0f / %.0f / %.0f"
               " bytes per answer with headers)\n", "http_get", i + 1, SIDE_NAME[0], v[0][i],
               SIDE_NAME[1], v[1][i], SIDE_NAME[2], v[2][i], bytes[0], bytes[1], bytes[2]);
        fflush(stdout);
    }
    for (int s = 0; s < SIDES; s++) med[s] = median(v[s], g_http.rounds);
out:
    nginx_stop(&tuned, &NGINX_TUNED);
    nginx_stop(&stock, &NGINX_STOCK);
    kserver_stop(&ks);
    free(r.body);
    add_figure((figure){.name = "http_get", .unit = "req/s", .kd = med[SIDE_KD],
                        .base = med[SIDE_STOCK], .higher_better = 1,
                        .base_name = "nginx, Debian's stock settings (bench/http/"
                                     "nginx-stock.conf.in): static file of the same body,"
                                     " wrk -t2 -c32",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 0.8, .goal_text = ">= 0.8x",
                        .absent = absent});
    add_figure((figure){.name = "http_get_vs_tuned_nginx", .unit = "req/s", .kd = med[SIDE_KD],
                        .base = med[SIDE_TUNED], .higher_better = 1,
                        .base_name = "nginx tuned for small files (bench/http/"
                                     "nginx-tuned.conf.in): static file of the same body,"
                                     " wrk -t2 -c32",
                        .absent = absent});
}

/* ---- http_put_durable_32conn: 32 connections against SQLite's 32 threads ------------ */

/* The KoruDelta side of a writer (bench.h): w->kd is its keep-alive connection. */
static void *kd_http_writer(void *arg) {
    writer *w = arg;
    hconn *hc = w->kd;
    char key[32], val[VALUE_MAX], body[VALUE_MAX + 16], path[64];
    hresp r = {0};
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        put_key(key, w->id, w->kd_n);
        size_t len = make_value(val, key, w->kd_n);
        int bn = snprintf(body, sizeof body, "{\"value\":%.*s}", (int)len, val);
        snprintf(path, sizeof path, "/api/v1/" PUT_NS "/%s", key);
        if (hc_request(hc, "PUT", path, body, (size_t)bn, &r) != 0 || r.status != 200) {
            fail("PUT %s: status %d %s", path, r.status, r.body ? r.body : "(no answer)");
            w->err = 1;
            break;
        }
        w->kd_n++;
        w->ops++;
    }
    free(r.body);
    return NULL;
}

static double put_round(writer *w, int sqlite_side) {
    return run_writers(w, PUT_CONNS, sqlite_side ? sq_writer : kd_http_writer, g_http.seconds);
}

/* After the rounds: the server holds exactly the puts it acknowledged, the last put of
** one key reads back, and SQLite holds exactly its acknowledged inserts. */
static void put_check(const writer *w, int port, sqlite3 *sq, long long fsyncs0) {
    uint64_t kdn = 0, sqn = 0;
    long long versions, fsyncs;
    char key[32], val[VALUE_MAX], path[64];
    hresp r = {0};
    for (int i = 0; i < PUT_CONNS; i++) {
        kdn += w[i].kd_n;
        sqn += w[i].sq_n;
    }
    if (kserver_status(port, &versions, NULL, &fsyncs) == 0) {
        if (versions != (long long)kdn)
            fail("the server holds %lld versions, %llu puts were acknowledged", versions,
                 (unsigned long long)kdn);
        if (fsyncs > fsyncs0 && fsyncs0 >= 0)
            printf("  %-24s KoruDelta: %llu puts, %lld fsyncs (%.2f puts per fsync)\n",
                   "http_put_durable_32conn", (unsigned long long)kdn, fsyncs - fsyncs0,
                   (double)kdn / (double)(fsyncs - fsyncs0));
    }
    if (w[0].kd_n > 0) {
        put_key(key, 0, w[0].kd_n - 1);
        size_t vn = make_value(val, key, w[0].kd_n - 1);
        snprintf(path, sizeof path, "/api/v1/" PUT_NS "/%s", key);
        if (http_once(port, "GET", path, NULL, &r) != 0 || r.status != 200 ||
            !doc_has_value(r.body, r.len, val, vn))
            fail("GET %s after the puts: status %d, %s", path, r.status, r.body ? r.body : "");
    }
    int64_t n = sq_count(sq);
    if (n != (int64_t)sqn)
        fail("SQLite holds %lld rows, %llu inserts were acknowledged", (long long)n,
             (unsigned long long)sqn);
    free(r.body);
}

static void bench_http_put(void) {
    kserver ks = {0};
    writer *w = calloc(PUT_CONNS, sizeof *w);
    char *sq_path = path_join(g_http.dir, "http_put.sqlite");
    double kd = NAN, base = NAN, a[MAX_ROUNDS], b[MAX_ROUNDS];
    long long fsyncs0 = -1;
    const char *absent = NULL;
    if (!w || !sq_path) {
        fail("out of memory");
        goto out;
    }
    if (access(g_http.kdelta, X_OK) != 0) {
        printf("http_put_durable_32conn: %s is missing\n", g_http.kdelta);
        absent = "MISSING";
        goto out;
    }
    if (kserver_start(&ks, g_http.kdelta, g_http.dir, "http_put", "full") != 0) goto out;
    for (int i = 0; i < PUT_CONNS; i++) {
        w[i].id = i;
        w[i].ns = PUT_NS;
        if (!(w[i].kd = hc_new(ks.port)) || !(w[i].sq = sq_open(sq_path, SQLITE_MMAP_DEFAULT)) ||
            !(w[i].ins = sq_prepare(w[i].sq, SQ_INSERT)))
            goto out;
    }
    if (kserver_status(ks.port, NULL, NULL, &fsyncs0) != 0) goto out;
    printf("http_put_durable_32conn: kdelta serve --sync full on port %d; %d keep-alive"
           " connections, one thread each, against SQLite with %d threads\n", ks.port,
           PUT_CONNS, PUT_CONNS);
    for (int i = 0; i < g_http.rounds; i++) {
        int kd_first = i % 2 == 0;
        if (kd_first) a[i] = put_round(w, 0);
        b[i] = put_round(w, 1);
        if (!kd_first) a[i] = put_round(w, 0);
        printf("  %-24s round %d: kdelta %12.1f   sqlite %12.1f\n", "http_put_durable_32conn",
               i + 1, a[i], b[i]);
        fflush(stdout);
    }
    kd = median(a, g_http.rounds);
    base = median(b, g_http.rounds);
    put_check(w, ks.port, w[0].sq, fsyncs0);
out:
    for (int i = 0; w && i < PUT_CONNS; i++) {
        hc_free(w[i].kd);
        sqlite3_finalize(w[i].ins);
        sqlite3_close(w[i].sq);
    }
    kserver_stop(&ks);
    free(w);
    free(sq_path);
    add_figure((figure){.name = "http_put_durable_32conn", .unit = "ops/s", .kd = kd,
                        .base = base, .higher_better = 1,
                        .base_name = "sqlite: 32 threads, 1 INSERT per transaction",
                        .goal_kind = GOAL_RATIO_MIN, .goal = 3, .goal_text = ">= 3x",
                        .absent = absent});
}

/* ---- sse_fanout_50: one writer, 50 subscribers ------------------------------------ */

enum { CH_SIZE, CH_EXT, CH_DATA, CH_CRLF, CH_END };

typedef struct sub {
    int fd;
    int headers_done, chunked, ended;
    char hdr[4096];
    size_t hdr_len;
    int ch_state;
    uint64_t ch_left;
    char line[48];            /* the start of the current line: enough to know what it is */
    size_t line_len;
    long long ev_id;          /* the event being read: its id, whether it has data and */
    int ev_data, ev_change;   /* whether its type is "change" */
    long long last_id;        /* id of the last change event */
    long events, other, bad;  /* change events, other events, malformed or out-of-order */
    double done_at;           /* when the expected number of events had arrived */
} sub;

static long g_sse_target; /* events each subscriber must receive in a round */

static void sse_line(sub *s) {
    size_t n = s->line_len;
    if (n && s->line[n - 1] == '\r') n--;
    s->line[n] = 0;
    if (n == 0) { /* end of an event */
        if (s->ev_data && s->ev_change) {
            if (s->ev_id <= s->last_id) s->bad++;
            s->last_id = s->ev_id;
            if (++s->events == g_sse_target) s->done_at = mono();
        } else if (s->ev_data) {
            s->other++;
        }
        s->ev_id = -1;
        s->ev_data = s->ev_change = 0;
    } else if (strncmp(s->line, "id:", 3) == 0) {
        s->ev_id = strtoll(s->line + 3, NULL, 10);
    } else if (strncmp(s->line, "event:", 6) == 0) {
        s->ev_change = strcmp(s->line + 6 + (s->line[6] == ' '), "change") == 0;
    } else if (strncmp(s->line, "data:", 5) == 0) {
        s->ev_data = 1;
        if (strncmp(s->line + 5 + (s->line[5] == ' '), "{\"change\":", 10) != 0) s->bad++;
    } /* a comment (": heartbeat") or another field: nothing to count */
}

/* Event-stream bytes: lines are cut with memchr; only each line's start is kept. */
static void sse_feed(sub *s, const char *p, size_t n) {
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n, room = sizeof s->line - 1 - s->line_len;
        size_t k = seg < room ? seg : room;
        memcpy(s->line + s->line_len, p, k);
        s->line_len += k;
        if (!nl) break;
        sse_line(s);
        s->line_len = 0;
        p = nl + 1;
        n -= seg + 1;
    }
}

/* Skips *p past the next '\n': 1, or 0 when these bytes hold none (all are skipped). */
static int skip_line(const char **p, size_t *n) {
    const char *nl = memchr(*p, '\n', *n);
    if (!nl) return 0;
    *n -= (size_t)(nl + 1 - *p);
    *p = nl + 1;
    return 1;
}

/* Body bytes of the answer, de-chunked when the server chunks them. */
static void sub_body(sub *s, const char *p, size_t n) {
    if (!s->chunked) {
        sse_feed(s, p, n);
        return;
    }
    while (n > 0) {
        switch (s->ch_state) {
        case CH_SIZE: {
            int c = (unsigned char)*p, v = isdigit(c) ? c - '0'
                                          : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
            if (v >= 0) {
                s->ch_left = s->ch_left * 16 + (uint64_t)v;
                p++, n--;
                break;
            }
            s->ch_state = CH_EXT;
            break;
        }
        case CH_EXT: /* the rest of the size line */
            if (!skip_line(&p, &n)) return;
            s->ch_state = s->ch_left ? CH_DATA : CH_END;
            break;
        case CH_DATA: {
            size_t k = s->ch_left < n ? (size_t)s->ch_left : n;
            sse_feed(s, p, k);
            p += k, n -= k;
            if ((s->ch_left -= k) == 0) s->ch_state = CH_CRLF;
            break;
        }
        case CH_CRLF: /* the end of the chunk's data */
            if (!skip_line(&p, &n)) return;
            s->ch_state = CH_SIZE;
            break;
        default: /* the last chunk came: the stream is over */
            s->ended = 1;
            return;
        }
    }
}

/* Answer bytes: the head first (status 200, text/event-stream), then the body. */
static int sub_input(sub *s, const char *p, size_t n) {
    if (s->headers_done) {
        sub_body(s, p, n);
        return 0;
    }
    size_t k = n < sizeof s->hdr - 1 - s->hdr_len ? n : sizeof s->hdr - 1 - s->hdr_len;
    memcpy(s->hdr + s->hdr_len, p, k);
    s->hdr_len += k;
    s->hdr[s->hdr_len] = 0;
    char *end = strstr(s->hdr, "\r\n\r\n");
    if (!end) return k < n ? -1 : 0;
    size_t head = (size_t)(end + 4 - s->hdr), rest = s->hdr_len - head;
    end[2] = 0;
    int status = 0;
    if (sscanf(s->hdr, "HTTP/%*d.%*d %d", &status) != 1 || status != 200 ||
        !strcasestr(s->hdr, "content-type: text/event-stream")) {
        fail("GET /api/v1/_changes: expected 200 text/event-stream, got:\n%s", s->hdr);
        return -1;
    }
    s->chunked = strcasestr(s->hdr, "transfer-encoding: chunked") != NULL;
    s->headers_done = 1;
    sub_body(s, s->hdr + head, rest);
    if (k < n) sub_body(s, p + k, n - k);
    return 0;
}

typedef struct sse_writer {
    pthread_t th;
    hconn *hc;
    int round, writes;
    long long last_seq;
    double t_end;
    atomic_int err;
} sse_writer;

/* Commits the round's writes as batches of SSE_BATCH puts, one POST /api/v1/_batch each,
** one after the other. Key i gets version number round * writes + i. */
static void *sse_write_thread(void *arg) {
    sse_writer *w = arg;
    size_t cap = (size_t)SSE_BATCH * (VALUE_MAX + 96) + 64;
    char *body = malloc(cap), key[32], val[VALUE_MAX];
    hresp r = {0};
    for (int i0 = 0; body && i0 < w->writes; i0 += SSE_BATCH) {
        char *p = put_s(body, "{\"ops\":[");
        for (int i = i0; i < i0 + SSE_BATCH; i++) {
            char *k = put_s(key, "k");
            *put_u(k, (uint64_t)i) = 0;
            size_t vn = make_value(val, key, (uint64_t)w->round * (uint64_t)w->writes + (uint64_t)i);
            p = put_s(p, i > i0 ? ",{\"op\":\"put\",\"namespace\":\"" SSE_NS "\",\"key\":\""
                                : "{\"op\":\"put\",\"namespace\":\"" SSE_NS "\",\"key\":\"");
            p = put_s(p, key);
            p = put_s(p, "\",\"value\":");
            memcpy(p, val, vn);
            p += vn;
            *p++ = '}';
        }
        p = put_s(p, "]}");
        if (hc_request(w->hc, "POST", "/api/v1/_batch", body, (size_t)(p - body), &r) != 0 ||
            r.status != 200 || json_int(r.body, "committed") != SSE_BATCH) {
            fail("POST /api/v1/_batch: status %d %s", r.status, r.body ? r.body : "(no answer)");
            w->err = 1;
            break;
        }
        w->last_seq = json_int(r.body, "last_seq");
    }
    if (!body) w->err = 1;
    w->t_end = mono();
    free(body);
    free(r.body);
    return NULL;
}

/* korudelta_open_feeds from /metrics, or -1. */
static long open_feeds(int port) {
    hresp r = {0};
    long n = -1;
    if (http_once(port, "GET", "/metrics", NULL, &r) == 0 && r.status == 200) {
        const char *p = strstr(r.body, "\nkorudelta_open_feeds ");
        if (p) n = strtol(p + 22, NULL, 10);
    }
    free(r.body);
    return n;
}

/* One round: 50 streams from the current seq, then the writer; events delivered per
** second from the writer's start to the last event at the last subscriber. */
static double sse_round(int port, int round) {
    sub *subs = calloc(SSE_SUBS, sizeof *subs);
    sse_writer wr = {.round = round, .writes = g_http.sse_writes};
    long long seq0 = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC), ready = 0, done = 0, writer_started = 0;
    double result = NAN, t0 = 0, first_done = 0, last_done = 0;
    char req[256], buf[1 << 16];
    g_sse_target = g_http.sse_writes;
    for (int i = 0; subs && i < SSE_SUBS; i++) subs[i].fd = -1;
    if (!subs || ep < 0 || !(wr.hc = hc_new(port))) {
        fail("sse: out of memory or epoll: %s", strerror(errno));
        goto out;
    }
    if (kserver_status(port, NULL, &seq0, NULL) != 0 || seq0 < 0) {
        fail("sse: no seq in GET /api/v1/_status");
        goto out;
    }
    int rn = snprintf(req, sizeof req, "GET /api/v1/_changes?since=%lld&ns=" SSE_NS " HTTP/1.1\r\n"
                      "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n", seq0);
    for (int i = 0; i < SSE_SUBS; i++) {
        sub *s = &subs[i];
        s->ev_id = s->last_id = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if ((s->fd = tcp_connect(port)) < 0 || write_all(s->fd, req, (size_t)rn) != 0 ||
            fcntl(s->fd, F_SETFL, O_NONBLOCK) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev)) {
            fail("sse: subscriber %d: %s", i, strerror(errno));
            goto out;
        }
    }
    /* The streams start from seq0, so nothing is lost whenever they attach; still, wait
    ** (up to 5 s) for every answer head, so that the clock does not time the set-up. */
    double head_end = mono() + 5, end = 0;
    for (;;) {
        if (!writer_started && (ready == SSE_SUBS || mono() > head_end)) {
            if (ready < SSE_SUBS)
                printf("  sse: only %d of %d streams had answered before the first write\n",
                       ready, SSE_SUBS);
            wr.hc->fd = tcp_connect(port); /* before the clock; hc_request reconnects if -1 */
            t0 = mono();
            end = t0 + SSE_WAIT_S;
            if (pthread_create(&wr.th, NULL, sse_write_thread, &wr) != 0) {
                fail("pthread_create failed");
                goto out;
            }
            writer_started = 1;
        }
        if (done == SSE_SUBS || (writer_started && wr.err)) break;
        if (writer_started && mono() > end) {
            fail("sse: after %.0f s, %d of %d subscribers had all %d events", SSE_WAIT_S, done,
                 SSE_SUBS, g_http.sse_writes);
            break;
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 100);
        for (int j = 0; j < n; j++) {
            sub *s = &subs[evs[j].data.u32];
            ssize_t got = read(s->fd, buf, sizeof buf);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            int had_head = s->headers_done;
            long before = s->events;
            if (got <= 0 || sub_input(s, buf, (size_t)got) != 0 || s->ended) {
                fail("sse: subscriber %d: stream %s after %ld events", (int)evs[j].data.u32,
                     got < 0 ? strerror(errno) : "ended", s->events);
                goto out;
            }
            ready += !had_head && s->headers_done;
            if (before < g_sse_target && s->events >= g_sse_target) {
                done++;
                if (done == 1) first_done = s->done_at;
                last_done = s->done_at;
            }
        }
    }
    pthread_join(wr.th, NULL);
    writer_started = 0;
    if (wr.err || done < SSE_SUBS) goto out;
    long bad = 0, extra = 0;
    for (int i = 0; i < SSE_SUBS; i++) {
        bad += subs[i].bad + (subs[i].last_id != wr.last_seq);
        extra += subs[i].events - g_sse_target + subs[i].other;
    }
    if (bad || wr.last_seq != seq0 + g_http.sse_writes) {
        fail("sse: %ld streams had events out of order, malformed or not ending at the last"
             " write's seq %lld (first seq %lld, %d writes)", bad, wr.last_seq, seq0,
             g_http.sse_writes);
        goto out;
    }
    result = (double)SSE_SUBS * (double)g_http.sse_writes / (last_done - t0);
    printf("  %-24s round %d: %12.1f events/s   (%d x %d events; writes committed in %.3f s;"
           " subscribers done after %.3f .. %.3f s%s)\n", "sse_fanout_50", round + 1, result,
           SSE_SUBS, g_http.sse_writes, wr.t_end - t0, first_done - t0, last_done - t0,
           extra ? "; MORE events than written" : "");
    if (extra) {
        fail("sse: %ld events more than the writes", extra);
        result = NAN;
    }
out:
    if (writer_started) pthread_join(wr.th, NULL);
    for (int i = 0; subs && i < SSE_SUBS; i++)
        if (subs[i].fd >= 0) close(subs[i].fd);
    if (ep >= 0) close(ep);
    hc_free(wr.hc);
    free(subs);
    fflush(stdout);
    return result;
}

static void bench_sse(void) {
    kserver ks = {0};
    double v[MAX_ROUNDS], fig = NAN;
    const char *absent = NULL;
    if (access(g_http.kdelta, X_OK) != 0) {
        printf("sse_fanout_50: %s is missing\n", g_http.kdelta);
        absent = "MISSING";
        goto out;
    }
    if (kserver_start(&ks, g_http.kdelta, g_http.dir, "sse", NULL) != 0) goto out;
    printf("sse_fanout_50: kdelta serve on port %d; %d subscribers of /api/v1/_changes?ns=" SSE_NS
           "; one writer commits %d puts as POST /api/v1/_batch of %d\n", ks.port, SSE_SUBS,
           g_http.sse_writes, SSE_BATCH);
    for (int i = 0; i < g_http.rounds; i++) {
        v[i] = sse_round(ks.port, i);
        /* The closed streams should leave the server's feed count (informational). */
        long feeds = -1;
        for (double end = mono() + 3; (feeds = open_feeds(ks.port)) > 0 && mono() < end;)
            sleep_seconds(0.05);
        if (feeds != 0)
            printf("  sse: /metrics shows korudelta_open_feeds %ld after the round's streams"
                   " were closed\n", feeds);
    }
    fig = median(v, g_http.rounds);
out:
    kserver_stop(&ks);
    add_figure((figure){.name = "sse_fanout_50", .unit = "events/s", .kd = fig, .base = NAN,
                        .higher_better = 1, .absent = absent});
}

/* ---- main ------------------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: bench_http --dir SCRATCH_DIR [--json PATH] [--append] [--kdelta PATH]\n"
            "                  [--http-dir DIR] [--wrk PATH] [--nginx PATH] [--seconds N]\n"
            "                  [--rounds N] [--sse-writes N] [--only httpget,httpput,sse|http]\n"
            "Defaults: --json build/bench.json --kdelta build/kdelta --http-dir bench/http\n"
            "          --seconds 5 --rounds 5 --sse-writes 10000 (a multiple of %d)\n",
            SSE_BATCH);
    return 2;
}

static int parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--append") == 0) {
            g_http.append = 1;
            continue;
        }
        if (!v) return -1;
        if (strcmp(a, "--dir") == 0) g_http.dir = v;
        else if (strcmp(a, "--json") == 0) g_http.json = v;
        else if (strcmp(a, "--kdelta") == 0) g_http.kdelta = v;
        else if (strcmp(a, "--http-dir") == 0) g_http.http_dir = v;
        else if (strcmp(a, "--wrk") == 0) g_http.wrk = v;
        else if (strcmp(a, "--nginx") == 0) g_http.nginx = v;
        else if (strcmp(a, "--seconds") == 0) g_http.seconds = atoi(v);
        else if (strcmp(a, "--rounds") == 0) g_http.rounds = atoi(v);
        else if (strcmp(a, "--sse-writes") == 0) g_http.sse_writes = atoi(v);
        else if (strcmp(a, "--only") == 0) g_http.only = v;
        else return -1;
        i++;
    }
    if (!g_http.dir || g_http.seconds < 1 || g_http.rounds < 1 || g_http.rounds > MAX_ROUNDS ||
        g_http.sse_writes < SSE_BATCH || g_http.sse_writes % SSE_BATCH != 0)
        return -1;
    return 0;
}

/* "0.52 1.10 2.31" from /proc/loadavg: a busy machine explains low figures. */
static void load_average(char *out, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l1, l5, l15;
    if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
        snprintf(out, n, "%.2f %.2f %.2f", l1, l5, l15);
    else
        snprintf(out, n, "unknown");
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    char fs[PATH_MAX + 1024], cpu[256], load[64], tool[PATH_MAX], ver[512];
    if (parse_args(argc, argv) != 0) return usage();
    signal(SIGPIPE, SIG_IGN); /* a server that closes on us is an error we report */
    filesystem_of(g_http.dir, fs, sizeof fs);
    cpu_model(cpu, sizeof cpu);
    load_average(load, sizeof load);
    printf("\nHTTP figures: kdelta serve (%s) against nginx and SQLite %s\n", g_http.kdelta,
           sqlite3_libversion());
    printf("machine: %s, %ld CPUs, load average %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), load);
    printf("scratch: %s on %s\n", g_http.dir, fs);
    if (find_tool(g_http.nginx, tool, sizeof tool)) {
        char *argv_v[] = {tool, "-v", NULL};
        if (run_capture(argv_v, ver, sizeof ver) >= 0) printf("nginx: %s", ver);
    }
    if (find_tool(g_http.wrk, tool, sizeof tool)) {
        char *argv_v[] = {tool, "-v", NULL};
        if (run_capture(argv_v, ver, sizeof ver) >= 0) {
            ver[strcspn(ver, "\n")] = 0;
            printf("wrk: %s; -t%d -c%d\n", ver, WRK_THREADS, WRK_CONNS);
        }
    }
    printf("rounds: %d x %d s per side, alternating (the order reversed every other round);"
           " medians kept\n\n", g_http.rounds, g_http.seconds);
    fflush(stdout);

    double t0 = mono();
    if (wanted("httpget")) bench_http_get();
    if (wanted("httpput")) bench_http_put();
    if (wanted("sse")) bench_sse();

    print_table();
    printf("\n(ratio > 1: KoruDelta better; ratio = kdelta/baseline; the baseline is named by"
           " baseline_name in the JSON; HTTP bench time %.0f s)\n", mono() - t0);
    if (write_json(g_http.json, g_http.append) == 0)
        printf("figures %s %s\n", g_http.append ? "appended to" : "written to", g_http.json);
    return failed() ? 1 : 0;
}
