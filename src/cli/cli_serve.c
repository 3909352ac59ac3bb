/*
** cli_serve.c — `kdelta serve`: validates the server options, opens the database and runs
** the HTTP server (src/server/, docs/http.md) until SIGINT, SIGTERM or SIGHUP. The stop
** signals are blocked before the database is opened, so that every thread inherits the
** mask and only the server's sigwait ever takes them.
**
** May call: the public API (korudelta.h), cli.h helpers, the server's entry point
** (server/server.h), the C library.
**
** Bad option values are usage errors, reported before the database is opened. The server
** writes its own startup line and logs on stderr; the command prints nothing on stdout.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "../server/server.h"

#define SERVE_DEFAULT_PORT 8080
#define SERVE_MAX_CONNECTIONS 100000

/* A decimal integer in [lo, hi]. */
static int parse_uint(const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out) {
    char *end;
    if (!s || *s < '0' || *s > '9') return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int valid_bind(const char *a) {
    unsigned char buf[sizeof(struct in6_addr)];
    return strcmp(a, "localhost") == 0 || inet_pton(AF_INET, a, buf) == 1 ||
           inet_pton(AF_INET6, a, buf) == 1;
}

int cli_cmd_serve(cli *c) {
    kd_server_options opt;
    unsigned long long v;
    char err[512];
    int rc;

    memset(&opt, 0, sizeof opt);
    opt.port = SERVE_DEFAULT_PORT;
    opt.bind = "127.0.0.1";
    opt.max_body = 16u << 20;
    opt.max_connections = 1024;
    opt.db_path = c->db_path;

    if (c->port) {
        if (!parse_uint(c->port, 0, 65535, &v))
            return cli_fail(c, CLI_RC_USAGE, "--port: '%s' is not a port number (0-65535; 0 = any free port)",
                            c->port);
        opt.port = (unsigned)v;
    }
    if (c->bind) {
        if (!valid_bind(c->bind))
            return cli_fail(c, CLI_RC_USAGE,
                            "--bind: '%s' is not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)",
                            c->bind);
        opt.bind = c->bind;
    }
    uint64_t body = 0;
    if (c->max_body && (!cli_parse_size(c->max_body, &body) || body > SIZE_MAX >> 1))
        return cli_fail(c, CLI_RC_USAGE,
                        "--max-body: '%s' is not a size (a positive number of bytes, optionally "
                        "with KiB, MiB or GiB)",
                        c->max_body);
    if (body) opt.max_body = (size_t)body;
    if (c->max_connections) {
        if (!parse_uint(c->max_connections, 1, SERVE_MAX_CONNECTIONS, &v))
            return cli_fail(c, CLI_RC_USAGE, "--max-connections: '%s' is not a number from 1 to %d",
                            c->max_connections, SERVE_MAX_CONNECTIONS);
        opt.max_connections = (unsigned)v;
    }

    /* Before the database is opened: kd_open starts the library's maintenance thread, and
    ** a thread that has the stop signals unblocked lets one kill the process (without a
    ** sync, leaving serve.addr behind) whenever the main thread is not in sigwait. */
    kd_server_block_signals(NULL);
    if ((rc = cli_open_db(c)) != 0) return rc;
    if (kd_server_run(c->db, &opt, err, sizeof err) != 0)
        return cli_fail(c, KD_ERROR, "%s", err[0] ? err : "the server failed");
    return 0;
}
