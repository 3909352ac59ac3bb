/*
** metrics.c — the server's counters and the /metrics page (Prometheus text format 0.0.4):
** requests by route pattern, method and status, a latency histogram per route, the open
** connections, and the database's own figures (kd_stats_get) read when the page is asked for.
**
** May call: the public API (korudelta.h), libmicrohttpd (the response), server.c's helpers,
** the C library.
**
** Cost: counting a request is a handful of relaxed atomic additions on fixed arrays (no lock,
** no allocation); every label combination has its slot from the start. Only the page itself
** allocates.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

/* The statuses the server answers with; anything else is counted under "other". */
static const unsigned statuses[] = {200, 201, 304, 400, 404, 405, 409, 412,
                                    413, 415, 500, 503, 507};
#define NSTATUS (sizeof statuses / sizeof statuses[0] + 1)

/* Latency bucket bounds, seconds: Prometheus' defaults with finer steps below 5 ms, where
** most requests of an embedded database land. */
static const double lat_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NLAT (sizeof lat_bounds / sizeof lat_bounds[0])

static const char *method_names[SRV_NMETHODS] = {"GET", "PUT", "POST", "DELETE", "OTHER"};

struct srv_metrics {
    _Atomic uint64_t requests[SRV_NROUTES][SRV_NMETHODS][NSTATUS];
    _Atomic uint64_t lat[SRV_NROUTES][NLAT + 1]; /* per bucket, not cumulative; last = +Inf */
    _Atomic uint64_t lat_sum_ns[SRV_NROUTES];
    _Atomic long connections;
    uint64_t lat_bounds_ns[NLAT];
};

int srv_metrics_init(srv *s) {
    struct srv_metrics *m = calloc(1, sizeof *m);
    if (!m) return KD_NOMEM;
    for (size_t i = 0; i < NLAT; i++) m->lat_bounds_ns[i] = (uint64_t)(lat_bounds[i] * 1e9 + 0.5);
    s->metrics = m;
    return KD_OK;
}

void srv_metrics_free(srv *s) {
    free(s->metrics);
    s->metrics = NULL;
}

static size_t status_index(unsigned status) {
    for (size_t i = 0; i < NSTATUS - 1; i++)
        if (statuses[i] == status) return i;
    return NSTATUS - 1;
}

void srv_metrics_request(srv *s, int route, int method, unsigned status, uint64_t ns) {
    struct srv_metrics *m = s->metrics;
    size_t b = 0;
    if (!m) return;
    if (route < 0 || route >= SRV_NROUTES) route = SRV_R_UNMATCHED;
    if (method < 0 || method >= SRV_NMETHODS) method = SRV_OTHER;
    while (b < NLAT && ns > m->lat_bounds_ns[b]) b++;
    atomic_fetch_add_explicit(&m->requests[route][method][status_index(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat[route][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->lat_sum_ns[route], ns, memory_order_relaxed);
}

void srv_metrics_connection(srv *s, int delta) {
    if (s->metrics) atomic_fetch_add_explicit(&s->metrics->connections, delta, memory_order_relaxed);
}

static void head(srv_buf *b, const char *name, const char *type, const char *help) {
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(srv_buf *b, const char *name, const char *type, const char *help, uint64_t v) {
    head(b, name, type, help);
    srv_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void http_metrics(srv_buf *b, struct srv_metrics *m) {
    head(b, "korudelta_http_requests_total", "counter", "HTTP requests answered.");
    for (int r = 0; r < SRV_NROUTES; r++)
        for (int meth = 0; meth < SRV_NMETHODS; meth++)
            for (size_t st = 0; st < NSTATUS; st++) {
                uint64_t v = atomic_load_explicit(&m->requests[r][meth][st], memory_order_relaxed);
                if (!v) continue;
                char code[16];
                if (st < NSTATUS - 1) snprintf(code, sizeof code, "%u", statuses[st]);
                else snprintf(code, sizeof code, "other");
                srv_buf_printf(b,
                               "korudelta_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
                               srv_route_pattern(r), method_names[meth], code, (unsigned long long)v);
            }
    head(b, "korudelta_http_request_duration_seconds", "histogram",
         "Time from a request's headers to the end of its answer.");
    for (int r = 0; r < SRV_NROUTES; r++) {
        uint64_t counts[NLAT + 1], total = 0;
        for (size_t i = 0; i <= NLAT; i++) {
            counts[i] = atomic_load_explicit(&m->lat[r][i], memory_order_relaxed);
            total += counts[i];
        }
        if (!total) continue;
        const char *pat = srv_route_pattern(r);
        uint64_t cum = 0;
        for (size_t i = 0; i < NLAT; i++) {
            cum += counts[i];
            srv_buf_printf(b, "korudelta_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                           pat, lat_bounds[i], (unsigned long long)cum);
        }
        srv_buf_printf(b, "korudelta_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                       pat, (unsigned long long)total);
        srv_buf_printf(b, "korudelta_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", pat,
                       (double)atomic_load_explicit(&m->lat_sum_ns[r], memory_order_relaxed) / 1e9);
        srv_buf_printf(b, "korudelta_http_request_duration_seconds_count{route=\"%s\"} %llu\n", pat,
                       (unsigned long long)total);
    }
    long conns = atomic_load_explicit(&m->connections, memory_order_relaxed);
    gauge(b, "korudelta_http_connections", "gauge", "Open HTTP connections.",
          conns > 0 ? (uint64_t)conns : 0);
}

static void db_metrics(srv_buf *b, const kd_stats *st, long feeds) {
    gauge(b, "korudelta_writes_total", "counter", "Versions committed since the database was opened.",
          st->writes);
    gauge(b, "korudelta_fsyncs_total", "counter", "fsync calls on the log.", st->fsyncs);
    head(b, "korudelta_fsync_duration_seconds", "histogram", "Time spent in each fsync of the log.");
    uint64_t cum = 0;
    for (int i = 0; i < KD_FSYNC_BUCKETS; i++) {
        cum += st->fsync_hist[i];
        if (i == KD_FSYNC_BUCKETS - 1) break; /* the last bucket is unbounded: +Inf below */
        srv_buf_printf(b, "korudelta_fsync_duration_seconds_bucket{le=\"%g\"} %llu\n",
                       (double)kd_fsync_bucket_us[i] / 1e6, (unsigned long long)cum);
    }
    srv_buf_printf(b, "korudelta_fsync_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                   (unsigned long long)cum);
    srv_buf_printf(b, "korudelta_fsync_duration_seconds_sum %.6f\n", (double)st->fsync_us / 1e6);
    srv_buf_printf(b, "korudelta_fsync_duration_seconds_count %llu\n", (unsigned long long)cum);
    gauge(b, "korudelta_log_bytes", "gauge", "Bytes of log records.", st->log_bytes);
    gauge(b, "korudelta_disk_bytes", "gauge", "Bytes of the database's files.", st->disk_bytes);
    gauge(b, "korudelta_cache_hits_total", "counter", "Reads served by the value cache.", st->cache_hits);
    gauge(b, "korudelta_cache_misses_total", "counter", "Reads that went to the log.", st->cache_misses);
    gauge(b, "korudelta_keys", "gauge", "Live keys (system namespaces excluded).", st->keys);
    gauge(b, "korudelta_versions", "gauge", "Versions stored, tombstones included.", st->versions);
    gauge(b, "korudelta_seq", "gauge", "Last committed sequence number.", st->seq);
    gauge(b, "korudelta_open_feeds", "gauge", "Open change streams and waiting long-polls.",
          feeds > 0 ? (uint64_t)feeds : 0);
}

struct MHD_Response *srv_metrics_page(srv *s, srv_req *r, unsigned *status) {
    kd_stats st;
    srv_buf b = {0};
    struct MHD_Response *resp;
    int rc;
    (void)r;
    memset(&st, 0, sizeof st);
    if ((rc = kd_stats_get(s->db, &st)) != KD_OK) return srv_fail_kd(status, rc, NULL);
    http_metrics(&b, s->metrics);
    db_metrics(&b, &st, atomic_load_explicit(&s->open_feeds, memory_order_relaxed));
    resp = srv_buf_response_type(&b, "text/plain; version=0.0.4; charset=utf-8");
    *status = MHD_HTTP_OK;
    return resp;
}
