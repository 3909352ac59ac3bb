/*
** bench_proc.c — the process and HTTP plumbing of bench_http (declared in bench_proc.h):
** starting, waiting for and stopping child processes (kdelta serve, nginx, wrk), a small
** blocking HTTP/1.1 client over 127.0.0.1 with keep-alive, and `kdelta serve` as a child
** on a fresh database.
**
** Children get SIGTERM if the bench dies (PR_SET_PDEATHSIG) and must exit 0 when stopped.
** Uses POSIX and Linux (prctl) and bench_common.c (fail, mono, write_all, ...).
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_proc.h"

/* ---- processes -------------------------------------------------------------------- */

/* Starts argv with stdout and stderr on out_fd (when >= 0) or appended to the file
** out_path; env_set ("NAME=value") is added to its environment. The child gets SIGTERM
** if this process dies. */
pid_t spawn(char *const argv[], int out_fd, const char *out_path, const char *env_set) {
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(126);
        int fd = out_fd >= 0 ? out_fd : open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0) dup2(nul, 0);
        if (env_set) putenv((char *)env_set);
        execv(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid < 0) fail("fork: %s", strerror(errno));
    return pid;
}

/* Waits up to `seconds` for pid: 1 and *status when it has exited, 0 when it still runs. */
int proc_wait(pid_t pid, double seconds, int *status) {
    double end = mono() + seconds;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) return 1;
        if (mono() > end) return 0;
        sleep_seconds(0.01);
    }
}

/* The end of a log file on stderr, to explain a failure. */
void log_tail(const char *path) {
    char buf[2048];
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    fprintf(stderr, "--- end of %s ---\n%s%s--- end ---\n", path, buf,
            n && buf[n - 1] != '\n' ? "\n" : "");
}

/* Sends sig and waits for a clean exit (status 0); SIGKILL after 20 s. 0 when clean. */
int proc_stop(pid_t pid, int sig, const char *what, const char *log) {
    int status = 0;
    if (pid <= 0) return 0;
    kill(pid, sig);
    if (!proc_wait(pid, 20, &status)) {
        kill(pid, SIGKILL);
        proc_wait(pid, 5, &status);
        fail("%s did not stop within 20 s of signal %d; killed", what, sig);
        log_tail(log);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail("%s ended with %s %d", what, WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        log_tail(log);
        return -1;
    }
    return 0;
}

/* Runs argv to its end; its output (stdout and stderr, at most n-1 bytes kept) in out.
** Returns its exit status, or -1. */
int run_capture(char *const argv[], char *out, size_t n) {
    int p[2], status = 0;
    size_t len = 0;
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_t pid = spawn(argv, p[1], NULL, NULL);
    close(p[1]);
    for (;;) {
        char tmp[4096];
        ssize_t r = read(p[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t k = (size_t)r < n - 1 - len ? (size_t)r : n - 1 - len;
        memcpy(out + len, tmp, k);
        len += k;
    }
    out[len] = 0;
    close(p[0]);
    if (pid < 0) return -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The full path of tool `name` (searched in PATH, then /usr/sbin and /sbin, where nginx
** lives), or 0 when it is not there. */
int find_tool(const char *name, char *out, size_t n) {
    if (strchr(name, '/')) {
        snprintf(out, n, "%s", name);
        return access(out, X_OK) == 0;
    }
    const char *env = getenv("PATH");
    char path[4096];
    snprintf(path, sizeof path, "%s:/usr/sbin:/sbin", env ? env : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(path, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/%s", d, name);
        if (access(out, X_OK) == 0) return 1;
    }
    return 0;
}

int free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int port = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

int write_file(const char *path, const char *p, size_t n) {
    FILE *f = fopen(path, "w");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fail("cannot write %s: %s", path, strerror(errno));
    return ok ? 0 : -1;
}

/* ---- a small HTTP/1.1 client (keep-alive, Content-Length and chunked answers) ----- */

int tcp_connect(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {30, 0}; /* a server that stops answering fails the bench, not hangs it */
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

hconn *hc_new(int port) {
    hconn *c = calloc(1, sizeof *c);
    if (c) {
        c->fd = -1;
        c->port = port;
    }
    return c;
}

static void hc_close(hconn *c) {
    if (c && c->fd >= 0) close(c->fd);
    if (c) c->fd = -1;
}

void hc_free(hconn *c) {
    if (!c) return;
    hc_close(c);
    free(c->out);
    free(c);
}

/* Reads more of the answer into in[]. 0, or -1 at EOF, error or timeout. */
static int hc_fill(hconn *c) {
    if (c->off > 0) {
        memmove(c->in, c->in + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof c->in) return -1;
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->len, sizeof c->in - c->len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        c->len += (size_t)n;
        return 0;
    }
}

/* The next line of the answer, without its CRLF; valid until the next read. */
static int hc_line(hconn *c, char **line) {
    for (;;) {
        char *s = c->in + c->off, *nl = memchr(s, '\n', c->len - c->off);
        if (nl) {
            *nl = 0;
            if (nl > s && nl[-1] == '\r') nl[-1] = 0;
            c->off = (size_t)(nl + 1 - c->in);
            *line = s;
            return 0;
        }
        if (hc_fill(c) != 0) return -1;
    }
}

static int resp_append(hresp *r, const char *p, size_t n) {
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1) cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) return -1;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = 0;
    return 0;
}

/* Moves n body bytes of the answer into r. */
static int hc_take(hconn *c, hresp *r, size_t n) {
    while (n > 0) {
        if (c->off == c->len && hc_fill(c) != 0) return -1;
        size_t k = c->len - c->off < n ? c->len - c->off : n;
        if (resp_append(r, c->in + c->off, k) != 0) return -1;
        c->off += k;
        n -= k;
    }
    return 0;
}

static int hc_read_answer(hconn *c, hresp *r) {
    char *line;
    long long length = -1;
    int chunked = 0, close_after = 0;
    r->len = 0;
    r->status = 0;
    if (resp_append(r, "", 0) != 0 || hc_line(c, &line) != 0 ||
        sscanf(line, "HTTP/%*d.%*d %d", &r->status) != 1)
        return -1;
    for (;;) {
        if (hc_line(c, &line) != 0) return -1;
        if (!*line) break;
        char *colon = strchr(line, ':');
        if (!colon) return -1;
        *colon = 0;
        char *v = colon + 1 + strspn(colon + 1, " \t");
        if (strcasecmp(line, "content-length") == 0) length = strtoll(v, NULL, 10);
        else if (strcasecmp(line, "transfer-encoding") == 0) chunked = strcasestr(v, "chunked") != NULL;
        else if (strcasecmp(line, "connection") == 0) close_after = strcasestr(v, "close") != NULL;
    }
    if (chunked) {
        for (;;) {
            if (hc_line(c, &line) != 0) return -1;
            char *end;
            unsigned long long n = strtoull(line, &end, 16);
            if (end == line) return -1;
            if (n == 0) break;
            if (hc_take(c, r, (size_t)n) != 0 || hc_line(c, &line) != 0 || *line) return -1;
        }
        do { /* trailers, up to the empty line */
            if (hc_line(c, &line) != 0) return -1;
        } while (*line);
    } else if (length >= 0) {
        if (hc_take(c, r, (size_t)length) != 0) return -1;
    } else if (r->status >= 200 && r->status != 204 && r->status != 304) {
        return -1; /* an answer delimited by closing: none of the routes used here */
    }
    if (close_after) hc_close(c);
    return 0;
}

/* Sends one request (body: JSON, or NULL) and reads its answer into r. 0, or -1 when the
** exchange failed (the connection is closed then; the next request reconnects). */
int hc_request(hconn *c, const char *method, const char *path, const char *body,
                      size_t blen, hresp *r) {
    size_t need = strlen(method) + strlen(path) + 160 + blen;
    if (need > c->out_cap) {
        char *o = realloc(c->out, need);
        if (!o) return -1;
        c->out = o;
        c->out_cap = need;
    }
    int h = body ? snprintf(c->out, c->out_cap,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n", method, path, blen)
                 : snprintf(c->out, c->out_cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                            method, path);
    if (h < 0 || (size_t)h + blen > c->out_cap) return -1;
    if (body) memcpy(c->out + h, body, blen);
    if (c->fd < 0) {
        c->off = c->len = 0;
        if ((c->fd = tcp_connect(c->port)) < 0) return -1;
    }
    if (write_all(c->fd, c->out, (size_t)h + blen) != 0 || hc_read_answer(c, r) != 0) {
        hc_close(c);
        return -1;
    }
    return 0;
}

/* One request on a new connection, for set-up and checks. */
int http_once(int port, const char *method, const char *path, const char *body, hresp *r) {
    hconn *c = hc_new(port);
    int rc = c ? hc_request(c, method, path, body, body ? strlen(body) : 0, r) : -1;
    hc_free(c);
    return rc;
}

/* Whether the version document `doc` holds "value":<val> as a member — the value a GET
** returned is the one that was put. (Members come in canonical order, so "value" is
** not last.) */
int doc_has_value(const char *doc, size_t n, const char *val, size_t vn) {
    char pat[VALUE_MAX + 16];
    int pn = snprintf(pat, sizeof pat, "\"value\":%.*s", (int)vn, val);
    const char *p = doc ? memmem(doc, n, pat, (size_t)pn) : NULL;
    return p && p + pn < doc + n && (p[pn] == ',' || p[pn] == '}');
}

/* The integer after "name": in a JSON text, or -1. Enough for the flat answers read here
** (_status, _batch), whose member names are unique. */
long long json_int(const char *doc, const char *name) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = doc ? strstr(doc, pat) : NULL;
    if (!p) return -1;
    p += strlen(pat);
    p += strspn(p, " \t\r\n");
    return isdigit((unsigned char)*p) ? strtoll(p, NULL, 10) : -1;
}

/* ---- kdelta serve ----------------------------------------------------------------- */

/* The port in <db>/serve.addr ("http://127.0.0.1:PORT"), or 0. */
static int read_addr_file(const char *path) {
    char line[256];
    int port = 0;
    FILE *f = fopen(path, "r");
    if (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "127.0.0.1:");
        if (p) port = atoi(p + 10);
    }
    if (f) fclose(f);
    return port > 0 && port < 65536 ? port : 0;
}

/* Starts `kdelta --db <dir>/<name>.kd serve --port 0 [--sync S]` with KORU_LOG=warn (no
** access log), its output in <dir>/<name>.log; waits for serve.addr and /healthz. */
int kserver_start(kserver *s, const char *exe, const char *dir, const char *name,
                  const char *sync) {
    char buf[256];
    hresp r = {0};
    int status, rc = -1;
    memset(s, 0, sizeof *s);
    snprintf(buf, sizeof buf, "%s.kd", name);
    s->db = path_join(dir, buf);
    snprintf(buf, sizeof buf, "%s.log", name);
    s->log = path_join(dir, buf);
    s->addr = s->db ? path_join(s->db, "serve.addr") : NULL;
    if (!s->db || !s->log || !s->addr) {
        fail("out of memory");
        goto out;
    }
    char *argv[] = {(char *)exe, "--db", s->db, "serve", "--port", "0",
                    sync ? "--sync" : NULL, (char *)sync, NULL};
    if ((s->pid = spawn(argv, -1, s->log, "KORU_LOG=warn")) < 0) goto out;
    for (double end = mono() + 20; !(s->port = read_addr_file(s->addr)); sleep_seconds(0.02)) {
        if (proc_wait(s->pid, 0, &status)) {
            fail("kdelta serve (%s) exited at start", name);
            s->pid = 0;
            log_tail(s->log);
            goto out;
        }
        if (mono() > end) {
            fail("kdelta serve (%s) wrote no %s within 20 s", name, s->addr);
            log_tail(s->log);
            goto out;
        }
    }
    if (http_once(s->port, "GET", "/healthz", NULL, &r) != 0 || r.status != 200) {
        fail("kdelta serve (%s) on port %d: GET /healthz failed (status %d)", name, s->port,
             r.status);
        goto out;
    }
    rc = 0;
out:
    free(r.body);
    return rc;
}

/* Stops the server with SIGTERM: it must exit 0 and remove serve.addr. */
void kserver_stop(kserver *s) {
    if (s->pid > 0 && proc_stop(s->pid, SIGTERM, "kdelta serve", s->log) == 0 && s->addr &&
        access(s->addr, F_OK) == 0)
        fail("kdelta serve left %s behind after a clean stop", s->addr);
    s->pid = 0;
    free(s->db);
    free(s->log);
    free(s->addr);
    memset(s, 0, sizeof *s);
}

/* GET /api/v1/_status: versions, seq and fsyncs (-1 each when unreadable). */
int kserver_status(int port, long long *versions, long long *seq, long long *fsyncs) {
    hresp r = {0};
    int rc = http_once(port, "GET", "/api/v1/_status", NULL, &r) == 0 && r.status == 200 ? 0 : -1;
    if (versions) *versions = rc ? -1 : json_int(r.body, "versions");
    if (seq) *seq = rc ? -1 : json_int(r.body, "seq");
    if (fsyncs) *fsyncs = rc ? -1 : json_int(r.body, "fsyncs");
    if (rc) fail("GET /api/v1/_status failed (status %d)", r.status);
    free(r.body);
    return rc;
}
