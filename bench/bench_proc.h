/*
** bench_proc.h — what bench_http.c uses from bench_proc.c: child processes (start, wait,
** stop, capture), a small blocking HTTP/1.1 client over 127.0.0.1, and `kdelta serve`
** started and stopped as a child.
*/
#ifndef KD_BENCH_PROC_H
#define KD_BENCH_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* ---- processes -------------------------------------------------------------------- */

/* Starts argv with stdout and stderr on out_fd (when >= 0) or appended to the file
** out_path; env_set ("NAME=value", or NULL) is added to its environment. The child gets
** SIGTERM if this process dies. Returns its pid, or -1 (after fail()). Call it only while
** no other thread runs. */
pid_t spawn(char *const argv[], int out_fd, const char *out_path, const char *env_set);
/* Waits up to `seconds` for pid: 1 (and *status) when it has exited, 0 while it runs. */
int proc_wait(pid_t pid, double seconds, int *status);
/* Sends sig and waits for a clean exit (status 0); SIGKILL after 20 s. 0 when clean;
** otherwise fail() and the end of the log file `log` on stderr. */
int proc_stop(pid_t pid, int sig, const char *what, const char *log);
void log_tail(const char *path);
/* Runs argv to its end, its output (stdout and stderr, at most n-1 bytes) in out.
** Returns its exit status, or -1. */
int run_capture(char *const argv[], char *out, size_t n);
/* The full path of tool `name` (in PATH, then /usr/sbin and /sbin), or 0 if missing. */
int find_tool(const char *name, char *out, size_t n);
int free_port(void);                                  /* a free port on 127.0.0.1, or 0 */
int write_file(const char *path, const char *p, size_t n);  /* 0, or -1 after fail() */

/* ---- a small HTTP/1.1 client (keep-alive, Content-Length and chunked answers) ----- */

int tcp_connect(int port);   /* 127.0.0.1:port, TCP_NODELAY, 30 s read timeout; fd or -1 */

typedef struct hconn {
    int fd, port;
    size_t off, len;       /* unread answer bytes: in[off..len) */
    char *out;             /* the request being sent */
    size_t out_cap;
    char in[1 << 16];
} hconn;

typedef struct hresp {
    int status;
    char *body;            /* NUL-terminated; reused from one request to the next */
    size_t len, cap;
} hresp;                   /* zero it before the first use; free(body) after the last */

hconn *hc_new(int port);   /* connects on the first request */
void hc_free(hconn *c);
/* Sends one request (body: JSON of blen bytes, or NULL) and reads its answer into r.
** 0, or -1 when the exchange failed (the connection is closed then; the next request
** reconnects). */
int hc_request(hconn *c, const char *method, const char *path, const char *body, size_t blen,
               hresp *r);
/* One request on a new connection, for set-up and checks. */
int http_once(int port, const char *method, const char *path, const char *body, hresp *r);

/* Whether the version document `doc` holds "value":<val> as a member. */
int doc_has_value(const char *doc, size_t n, const char *val, size_t vn);
/* The integer after "name": in a flat JSON answer, or -1. */
long long json_int(const char *doc, const char *name);

/* ---- kdelta serve ----------------------------------------------------------------- */

typedef struct kserver {
    pid_t pid;
    int port;
    char *db, *log, *addr;
} kserver;

/* Starts `exe --db <dir>/<name>.kd serve --port 0 [--sync S]` with KORU_LOG=warn (no
** access log), its output in <dir>/<name>.log; waits for serve.addr and GET /healthz.
** 0, or -1 after fail(). */
int kserver_start(kserver *s, const char *exe, const char *dir, const char *name,
                  const char *sync);
/* Stops it with SIGTERM: it must exit 0 and remove serve.addr, or fail() says so. */
void kserver_stop(kserver *s);
/* GET /api/v1/_status: versions, seq and fsyncs (each may be NULL; -1 when unreadable). */
int kserver_status(int port, long long *versions, long long *seq, long long *fsyncs);

#endif /* KD_BENCH_PROC_H */
