/*
** server.h — the HTTP server behind `kdelta serve` (docs/http.md is its contract).
**
** May call: the public API (korudelta.h), libmicrohttpd, the C library and POSIX. The
** server is a client of the library like the CLI: it sees nothing from src/ outside
** server/.
**
** Files: server.c (daemon life cycle, request intake, errors, access log, shutdown,
** address file), routes.c (records, history, diff, batch, query, keys, namespaces,
** status, check, views), changes.c (the change feed: SSE and long-poll), metrics.c
** (counters, histograms and the /metrics page).
*/
#ifndef KD_SERVER_H
#define KD_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "korudelta.h"

typedef struct kd_server_options {
    const char *bind;          /* address to listen on; default "127.0.0.1" */
    unsigned port;             /* 0 = any free port */
    size_t max_body;           /* largest request body; default 16 MiB */
    unsigned max_connections;  /* default 1024 */
    const char *db_path;       /* the database directory: where serve.addr goes */
} kd_server_options;

/* Blocks the stop signals (SIGINT, SIGTERM, and SIGHUP unless it was ignored when the
** program started, as under nohup) in the calling thread and ignores SIGPIPE. Call it
** before the database is opened: every thread started afterwards (the library's and the
** server's) inherits the mask, so a stop signal can only be taken by kd_server_run's
** sigwait and never kills the process, whenever it arrives. Idempotent; the signals stay
** blocked when kd_server_run returns. Fills *set with the stop signals when set is not
** NULL. */
void kd_server_block_signals(sigset_t *set);

/* Serves db until a stop signal arrives, then stops in order (docs/http.md) and returns
** 0. Calls kd_server_block_signals itself (too late to cover threads the caller started
** earlier, such as the library's maintenance thread of db: call it before kd_open). The
** caller closes db afterwards. On a failure to start (port in use, ...) returns non-zero
** after writing *err (a one-line message) when err is not NULL. */
int kd_server_run(kd_db *db, const kd_server_options *opt, char *err, size_t errlen);

#endif /* KD_SERVER_H */
