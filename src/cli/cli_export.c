/*
** cli_export.c — `kdelta export` and `kdelta import`: the database as NDJSON and back
** (the format and its rules: src/wire/export.c and docs/cli.md, "export"). Locally they run
** kd_export_* / kd_import_*; through a server, export streams GET /api/v1/_export to
** stdout and import sends the file in pieces of about PIECE_BYTES (each with the header
** line, none splitting a commit) to POST /api/v1/_import, which the server imports with
** the same functions: the result is the same either way.
**
** May call: the public API, cli.h helpers, the C library.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ops.h"

#define PIECE_BYTES (1u << 20) /* an import piece sent to a server (its --max-body: 16 MiB) */

/* ---- export ----------------------------------------------------------------------------- */

typedef struct out_ctx {
    int failed;      /* a write to stdout failed (errno kept) */
    int err;
    int tty, bar;
    int remote;      /* the bar follows the lines received (locally the library drives it) */
    uint64_t last;   /* remote: the export's last seq, from the header */
    cli_buf part;    /* remote, on a terminal: the line being received */
} out_ctx;

/* Remote progress: the seq of each line received, of the header's seq. */
static void remote_progress(out_ctx *o, const char *p, size_t n) {
    const char *nl, *end = p + n;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        cli_buf_add(&o->part, p, (size_t)(nl - p));
        p = nl + 1;
        uint64_t seq = 0;
        kd_json_val doc = kd_json_doc(o->part.p, o->part.len);
        int64_t v;
        if (kd_json_int(kd_json_get(doc, "seq"), &v) == KD_OK && v >= 0) seq = (uint64_t)v;
        if (o->last == 0) o->last = seq; /* the header */
        else cli_progress_bar(&o->bar, seq, o->last);
        o->part.len = 0;
    }
    cli_buf_add(&o->part, p, (size_t)(end - p)); /* the start of the next line */
}

static int to_stdout(void *ctx, const char *p, size_t n) {
    out_ctx *o = ctx;
    if (fwrite(p, 1, n, stdout) != n) {
        o->failed = 1;
        o->err = errno;
        return -1;
    }
    if (o->tty && o->remote) remote_progress(o, p, n);
    return 0;
}

int cli_cmd_export(cli *c) {
    kd_export_opts o;
    out_ctx out;
    int code, rc;
    memset(&o, 0, sizeof o);
    memset(&out, 0, sizeof out);
    out.bar = -1;
    if (c->current && c->at) return cli_fail(c, CLI_RC_USAGE, "export: --at and --current do not go together");
    for (int i = 0; i < c->npos; i++)
        if ((rc = kd_valid_namespace(c->pos[i], 0)) != KD_OK) return cli_fail_kd(c, rc, "export");
    if ((code = cli_connect(c)) != 0) return code;
    o.mode = c->current ? KD_EXPORT_CURRENT : c->at ? KD_EXPORT_AT : KD_EXPORT_HISTORY;
    o.namespaces = (const char *const *)c->pos;
    o.nnamespaces = (size_t)c->npos;
    out.tty = isatty(STDERR_FILENO);
    if (!c->remote) {
        if (c->at && (rc = kd_parse_time(c->db, c->at, &o.at)) != KD_OK) return cli_fail_kd(c, rc, "--at");
        if (out.tty) {
            o.progress = cli_progress_bar;
            o.progress_ctx = &out.bar;
        }
    }
    out.remote = c->remote;
    rc = cli_op_export(c, &o, c->at, to_stdout, &out);
    if (out.tty && out.bar >= 0) fputs("\n", stderr);
    cli_buf_free(&out.part);
    if (out.failed) return cli_fail(c, KD_IOERR, "export: cannot write to stdout: %s", strerror(out.err));
    if (rc != KD_OK) return cli_fail_kd(c, rc, "export");
    if (fflush(stdout) != 0) return cli_fail(c, KD_IOERR, "export: cannot write to stdout: %s", strerror(errno));
    return 0;
}

/* ---- import ----------------------------------------------------------------------------- */

/* Through a server: the lines so far of the piece being built. */
typedef struct piece {
    cli_buf body;          /* the header line, whole commits, then the commit being read */
    size_t header_len;
    size_t commit_start;   /* where the commit being read begins in body */
    uint64_t first_line;   /* the number of body's first line after the header */
    uint64_t commit_line;  /* the number of the commit being read's first line */
    char ts[48];           /* the timestamp of the commit being read ("" before the first) */
    int snapshot, sent;
    uint64_t written, skipped;
} piece;

/* Sends body[0, upto) — the header and whole commits — and keeps the rest after the header
** as the start of the next piece, whose first line is next_line. A piece without versions
** is sent only when nothing was (the server then judges the header alone). */
static int send_upto(cli *c, piece *pc, size_t upto, uint64_t next_line) {
    uint64_t w = 0, s = 0;
    if (upto > pc->header_len || !pc->sent) {
        int rc = cli_op_import_piece(c, pc->body.p, upto, pc->first_line, &w, &s);
        if (rc != KD_OK) return rc;
        pc->sent = 1;
        pc->written += w;
        pc->skipped += s;
    }
    memmove(pc->body.p + pc->header_len, pc->body.p + upto, pc->body.len - upto);
    pc->body.len -= upto - pc->header_len;
    pc->commit_start = pc->commit_start > upto ? pc->commit_start - upto + pc->header_len : pc->header_len;
    pc->first_line = next_line;
    return KD_OK;
}

/* The commit being read is complete (the next line is number next, or the file ended):
** when the piece has grown past PIECE_BYTES, send the commits before it, then it too if it
** alone is that big. A piece is thus at most PIECE_BYTES or one commit, whichever is more. */
static int commit_done(cli *c, piece *pc, uint64_t next) {
    int rc;
    if (pc->body.len > PIECE_BYTES && pc->commit_start > pc->header_len &&
        (rc = send_upto(c, pc, pc->commit_start, pc->commit_line)) != KD_OK)
        return rc;
    if (pc->body.len > PIECE_BYTES && (rc = send_upto(c, pc, pc->body.len, next)) != KD_OK) return rc;
    pc->commit_start = pc->body.len;
    pc->commit_line = next;
    return KD_OK;
}

/* Adds line (number lineno, newline stripped) to the piece; sends what is ready. A commit
** is the run of lines with one timestamp; every snapshot line stands alone. Blank lines
** and lines without a timestamp stay in the commit being read (the server numbers lines
** by counting them, and judges them). */
static int remote_line(cli *c, piece *pc, const char *line, size_t len, uint64_t lineno) {
    int rc;
    if (lineno == 1) {
        kd_json_val h = kd_json_doc(line, len);
        char *mode = NULL;
        if (kd_json_string(kd_json_get(h, "mode"), &mode, NULL) == KD_OK) pc->snapshot = strcmp(mode, "snapshot") == 0;
        kd_free(mode);
        cli_buf_add(&pc->body, line, len);
        cli_buf_add(&pc->body, "\n", 1);
        pc->header_len = pc->commit_start = pc->body.len;
        pc->first_line = pc->commit_line = 2;
        return pc->body.oom ? KD_NOMEM : KD_OK;
    }
    char ts[48] = "";
    if (len) {
        char *t = NULL;
        size_t tl = 0;
        if (kd_json_string(kd_json_get(kd_json_doc(line, len), "timestamp"), &t, &tl) == KD_OK && tl < sizeof ts)
            memcpy(ts, t, tl + 1);
        kd_free(t);
    }
    if (ts[0] && (pc->snapshot || strcmp(ts, pc->ts) != 0)) { /* a new commit begins here */
        if (pc->ts[0] && (rc = commit_done(c, pc, lineno)) != KD_OK) return rc;
        memcpy(pc->ts, ts, sizeof ts);
    }
    cli_buf_add(&pc->body, line, len);
    cli_buf_add(&pc->body, "\n", 1);
    return pc->body.oom ? KD_NOMEM : KD_OK;
}

int cli_cmd_import(cli *c) {
    const char *path = c->pos[0];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL, what[PATH_MAX + 32];
    size_t lcap = 0;
    ssize_t len;
    uint64_t lineno = 0, written = 0, skipped = 0, size = 0, done = 0;
    kd_import *im = NULL;
    piece pc;
    int code = 0, rc = KD_OK, bar = -1;
    struct stat sb;
    memset(&pc, 0, sizeof pc);
    if (!in) return cli_fail(c, KD_IOERR, "cannot open %s: %s", path, strerror(errno));
    snprintf(what, sizeof what, "import %s", strcmp(path, "-") == 0 ? "(stdin)" : path);
    int tty = in != stdin && isatty(STDERR_FILENO) && fstat(fileno(in), &sb) == 0;
    if (tty) size = (uint64_t)sb.st_size;
    if ((code = cli_connect(c)) != 0) goto out;
    if (!c->remote && (rc = kd_import_begin(c->db, 0, &im)) != KD_OK) goto fail;
    while ((len = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        done += (uint64_t)len;
        if (tty) cli_progress_bar(&bar, done, size);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        rc = c->remote ? remote_line(c, &pc, line, (size_t)len, lineno) : kd_import_line(im, line, (size_t)len);
        if (rc != KD_OK) goto fail;
    }
    if (ferror(in)) {
        code = cli_fail(c, KD_IOERR, "%s: %s", what, strerror(errno));
        goto out;
    }
    if (c->remote) {
        if (lineno == 0) { /* the server says what an empty import is */
            if ((rc = cli_op_import_piece(c, "", 0, 2, &written, &skipped)) != KD_OK) goto fail;
        } else if ((rc = commit_done(c, &pc, lineno + 1)) != KD_OK ||
                   (rc = send_upto(c, &pc, pc.body.len, lineno + 1)) != KD_OK) {
            goto fail;
        }
        written += pc.written;
        skipped += pc.skipped;
    } else {
        rc = kd_import_end(im, &written, &skipped);
        im = NULL;
        if (rc != KD_OK) goto fail;
    }
    if (c->json)
        cli_buf_printf(&c->out, "{\"skipped\":%llu,\"written\":%llu}\n", (unsigned long long)skipped,
                       (unsigned long long)written);
    else
        cli_buf_printf(&c->out, "Imported %llu version%s (%llu already present)\n", (unsigned long long)written,
                       written == 1 ? "" : "s", (unsigned long long)skipped);
    goto out;
fail:
    code = cli_fail_kd(c, rc, what);
out:
    if (tty && bar >= 0) fputs("\n", stderr);
    if (im) kd_import_end(im, NULL, NULL); /* after a failure: writes nothing more */
    cli_buf_free(&pc.body);
    free(line);
    if (in != stdin) fclose(in);
    return code;
}
