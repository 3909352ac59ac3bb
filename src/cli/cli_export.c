/*
** cli_export.c — `kdelta export` and `kdelta import`: the database as NDJSON and back.
**
** Format (docs/cli.md, "export"): a header line
**     {"korudelta_export":1,"mode":"history"|"snapshot","at":T|null,"namespaces":[...]|null,
**      "seq":N}
** then one version document per line, in the wire form of the HTTP API (kd_entry_to_json
** with the value), in commit order. A history export holds every version of the
** namespaces up to seq N, system namespaces included (embeddings live in `_emb.<ns>`, the
** models' dimensions in `_emb`, view definitions in `_views`). A snapshot (--at, --current)
** holds each key's live version at T.
**
** Import of a history replays it commit by commit: the lines of one commit share its
** timestamp (a commit's versions have consecutive seqs and one time; distinct commits
** never share one), and kd_batch_commit_at writes them with that timestamp and checks that
** each version gets the id it was exported with. A commit whose versions are already
** present is skipped, so importing twice does not duplicate. A snapshot is written as new
** versions, skipping keys whose current value already has the same hash.
**
** Both work on a local database: through a server they are refused for now.
**
** May call: the public API, cli.h helpers, the C library.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ops.h"

#define IMPORT_CHUNK 10000 /* snapshot lines per commit */

static int local_only(cli *c, const char *what) {
    if (!c->remote) return 0;
    return cli_fail(c, KD_INVALID,
                    "%s works on a local database for now; it is held by a server (stop it, or run %s on the "
                    "server's machine with the server stopped)",
                    what, what);
}

/* Is ns one of the namespaces asked for (or their embeddings, or the models' record)? */
static int wanted(cli *c, const char *ns) {
    if (c->npos == 0) return 1;
    if (strcmp(ns, "_emb") == 0) return 1;
    const char *user = strncmp(ns, "_emb.", 5) == 0 ? ns + 5 : ns;
    for (int i = 0; i < c->npos; i++)
        if (strcmp(c->pos[i], user) == 0) return 1;
    return 0;
}

static int put_line(cli *c, FILE *out, const kd_entry *e) {
    char *j = NULL;
    size_t n = 0;
    int rc = kd_entry_to_json(e, KD_WIRE_VALUE, &j, &n);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "export");
    int bad = fwrite(j, 1, n, out) != n || fputc('\n', out) == EOF;
    kd_free(j);
    if (bad) return cli_fail(c, KD_IOERR, "export: cannot write to stdout: %s", strerror(errno));
    return 0;
}

typedef struct pick {
    char *ns, *key;
} pick;

static int pick_cmp(const void *a, const void *b) {
    const pick *x = a, *y = b;
    int r = strcmp(x->ns, y->ns);
    return r ? r : strcmp(x->key, y->key);
}
static int entry_seq_cmp(const void *a, const void *b) {
    const kd_entry *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

int cli_cmd_export(cli *c) {
    kd_stats st;
    kd_feed *f = NULL;
    kd_entry e;
    pick *picks = NULL;
    kd_entry *snap = NULL;
    size_t np = 0, cap = 0, ns_ = 0;
    int64_t at = 0;
    int snapshot = c->current || c->at, code = 0, rc, bar = -1;
    int tty = isatty(STDERR_FILENO);
    char ts[40];
    memset(&e, 0, sizeof e);
    if (c->current && c->at) return cli_fail(c, CLI_RC_USAGE, "export: --at and --current do not go together");
    for (int i = 0; i < c->npos; i++)
        if ((rc = kd_valid_namespace(c->pos[i], 0)) != KD_OK) return cli_fail_kd(c, rc, "export");
    if ((code = cli_connect(c)) != 0) return code;
    if ((code = local_only(c, "export")) != 0) return code;
    if (c->at && (rc = kd_parse_time(c->db, c->at, &at)) != KD_OK) return cli_fail_kd(c, rc, "--at");
    if ((rc = kd_stats_get(c->db, &st)) != KD_OK) return cli_fail_kd(c, rc, "export");
    if (c->current) at = INT64_MAX;

    /* The header. */
    cli_buf h = {0};
    cli_buf_printf(&h, "{\"korudelta_export\":1,\"mode\":\"%s\",\"at\":", snapshot ? "snapshot" : "history");
    if (c->at) {
        kd_format_time(at, ts);
        cli_json_cstr(&h, ts);
    } else {
        cli_buf_puts(&h, c->current ? "\"now\"" : "null");
    }
    cli_buf_puts(&h, ",\"namespaces\":");
    if (c->npos == 0) {
        cli_buf_puts(&h, "null");
    } else {
        cli_buf_puts(&h, "[");
        for (int i = 0; i < c->npos; i++) {
            if (i) cli_buf_puts(&h, ",");
            cli_json_cstr(&h, c->pos[i]);
        }
        cli_buf_puts(&h, "]");
    }
    cli_buf_printf(&h, ",\"seq\":%llu}\n", (unsigned long long)st.seq);
    int bad = h.oom || fwrite(h.p, 1, h.len, stdout) != h.len;
    cli_buf_free(&h);
    if (bad) return cli_fail(c, KD_IOERR, "export: cannot write to stdout");

    if ((rc = kd_feed_open(c->db, 0, &f)) != KD_OK) return cli_fail_kd(c, rc, "export");
    for (;;) {
        kd_entry_clear(&e);
        rc = kd_feed_next(f, &e);
        if (rc == KD_DONE || (rc == KD_OK && e.seq > st.seq)) break;
        if (rc != KD_OK) {
            code = cli_fail_kd(c, rc, "export");
            goto out;
        }
        if (tty) cli_progress_bar(&bar, e.seq, st.seq);
        if (!wanted(c, e.ns)) continue;
        if (!snapshot) {
            if ((code = put_line(c, stdout, &e)) != 0) goto out;
            continue;
        }
        if (e.timestamp > at) continue;
        if (np == cap) { /* every key with a version at or before T */
            size_t nc = cap ? cap * 2 : 1024;
            pick *p2 = realloc(picks, nc * sizeof *p2);
            if (!p2) {
                code = cli_fail(c, KD_NOMEM, "export: out of memory");
                goto out;
            }
            picks = p2;
            cap = nc;
        }
        picks[np].ns = e.ns;
        picks[np].key = e.key;
        e.ns = e.key = NULL; /* kept */
        np++;
    }
    if (snapshot && np) {
        qsort(picks, np, sizeof *picks, pick_cmp);
        if (!(snap = calloc(np, sizeof *snap))) {
            code = cli_fail(c, KD_NOMEM, "export: out of memory");
            goto out;
        }
        for (size_t i = 0; i < np; i++) {
            if (i && pick_cmp(&picks[i], &picks[i - 1]) == 0) continue;
            rc = c->current ? kd_get(c->db, picks[i].ns, picks[i].key, &snap[ns_])
                            : kd_get_at(c->db, picks[i].ns, picks[i].key, at, &snap[ns_]);
            if (rc != KD_OK) kd_entry_clear(&snap[ns_]); /* a tombstone may have been filled in */
            if (rc == KD_NOTFOUND) continue;            /* deleted at T */
            if (rc != KD_OK) {
                code = cli_fail_kd(c, rc, "export");
                goto out;
            }
            if (snap[ns_].seq > st.seq || snap[ns_].deleted) { /* newer than the export: drop */
                kd_entry_clear(&snap[ns_]);
                continue;
            }
            ns_++;
        }
        qsort(snap, ns_, sizeof *snap, entry_seq_cmp);
        for (size_t i = 0; i < ns_; i++)
            if ((code = put_line(c, stdout, &snap[i])) != 0) goto out;
    }
    if (fflush(stdout) != 0) code = cli_fail(c, KD_IOERR, "export: cannot write to stdout: %s", strerror(errno));
out:
    if (tty && bar >= 0) fputs("\n", stderr);
    kd_entry_clear(&e);
    kd_feed_close(f);
    for (size_t i = 0; i < np; i++) {
        kd_free(picks[i].ns);
        kd_free(picks[i].key);
    }
    free(picks);
    for (size_t i = 0; i < ns_; i++) kd_entry_clear(&snap[i]);
    free(snap);
    return code;
}

/* ---- import ----------------------------------------------------------------------------- */

typedef struct group {
    kd_entry *e;
    size_t n, cap;
} group;

static void group_clear(group *g) {
    for (size_t i = 0; i < g->n; i++) kd_entry_clear(&g->e[i]);
    g->n = 0;
}

/* Is this version (by id) already in the database? */
static int present(cli *c, const kd_entry *e, int *yes) {
    char hex[65];
    kd_entry got;
    memset(&got, 0, sizeof got);
    kd_hex(e->version_id, hex);
    int rc = kd_resolve_version(c->db, e->ns, e->key, hex, &got);
    kd_entry_clear(&got);
    *yes = rc == KD_OK;
    if (rc == KD_NOTFOUND) rc = KD_OK;
    return rc;
}

/* Writes one exported commit (history mode). */
static int flush_commit(cli *c, group *g, uint64_t line, uint64_t *written, uint64_t *skipped) {
    kd_batch *b = NULL;
    uint8_t (*ids)[32] = NULL;
    int rc, yes = 0, code = 0;
    if (g->n == 0) return 0;
    if ((rc = present(c, &g->e[0], &yes)) != KD_OK) return cli_fail_kd(c, rc, "import");
    if (yes) { /* imported before: every version of the commit must be there */
        for (size_t i = 1; i < g->n; i++) {
            if ((rc = present(c, &g->e[i], &yes)) != KD_OK) return cli_fail_kd(c, rc, "import");
            if (!yes)
                return cli_fail(c, KD_CONFLICT, "import: line %llu: a commit is only partly in the database",
                                (unsigned long long)line);
        }
        *skipped += g->n;
        group_clear(g);
        return 0;
    }
    if (!(b = kd_batch_new()) || !(ids = malloc(g->n * sizeof *ids))) {
        code = cli_fail(c, KD_NOMEM, "import: out of memory");
        goto out;
    }
    for (size_t i = 0; i < g->n; i++) {
        kd_entry *e = &g->e[i];
        rc = e->deleted ? kd_batch_delete(b, e->ns, e->key) : kd_batch_put(b, e->ns, e->key, e->value, e->value_len);
        if (rc != KD_OK) {
            code = cli_fail_kd(c, rc, "import");
            goto out;
        }
        memcpy(ids[i], e->version_id, 32);
    }
    if ((rc = kd_batch_commit_at(c->db, b, g->e[0].timestamp, (const uint8_t(*)[32])ids, NULL, NULL)) != KD_OK) {
        char what[64];
        snprintf(what, sizeof what, "import: line %llu", (unsigned long long)line);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    *written += g->n;
    group_clear(g);
out:
    kd_batch_free(b);
    free(ids);
    return code;
}

/* Writes collected snapshot lines as new versions, now (one commit). */
static int flush_snapshot(cli *c, group *g, uint64_t *written, uint64_t *skipped) {
    kd_batch *b = kd_batch_new();
    size_t n = 0;
    int rc, code = 0;
    if (!b) return cli_fail(c, KD_NOMEM, "import: out of memory");
    for (size_t i = 0; i < g->n; i++) {
        kd_entry *e = &g->e[i], cur;
        memset(&cur, 0, sizeof cur);
        rc = kd_get(c->db, e->ns, e->key, &cur);
        int same = rc == KD_OK && memcmp(cur.value_hash, e->value_hash, 32) == 0;
        kd_entry_clear(&cur);
        if (rc != KD_OK && rc != KD_NOTFOUND) {
            code = cli_fail_kd(c, rc, "import");
            goto out;
        }
        if (same) {
            (*skipped)++;
            continue;
        }
        if ((rc = kd_batch_put(b, e->ns, e->key, e->value, e->value_len)) != KD_OK) {
            code = cli_fail_kd(c, rc, "import");
            goto out;
        }
        n++;
    }
    if (n && (rc = kd_batch_commit_at(c->db, b, 0, NULL, NULL, NULL)) != KD_OK) {
        code = cli_fail_kd(c, rc, "import");
        goto out;
    }
    *written += n;
    group_clear(g);
out:
    kd_batch_free(b);
    return code;
}

int cli_cmd_import(cli *c) {
    const char *path = c->pos[0];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    uint64_t lineno = 0, written = 0, skipped = 0, size = 0, done = 0;
    group g = {0};
    int code = 0, snapshot = 0, rc, bar = -1;
    struct stat sb;
    if (!in) return cli_fail(c, KD_IOERR, "cannot open %s: %s", path, strerror(errno));
    int tty = in != stdin && isatty(STDERR_FILENO) && fstat(fileno(in), &sb) == 0;
    if (tty) size = (uint64_t)sb.st_size;
    if ((code = cli_connect(c)) != 0) goto out;
    if ((code = local_only(c, "import")) != 0) goto out;
    while ((len = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        done += (uint64_t)len;
        if (tty) cli_progress_bar(&bar, done, size);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno == 1) {
            kd_json_val h = kd_json_doc(line, (size_t)len);
            int64_t fmt = 0;
            char *mode = NULL;
            if (kd_json_int(kd_json_get(h, "korudelta_export"), &fmt) != KD_OK ||
                kd_json_string(kd_json_get(h, "mode"), &mode, NULL) != KD_OK) {
                kd_free(mode);
                code = cli_fail(c, KD_INVALID, "import: %s is not a kdelta export (no header line)", path);
                goto out;
            }
            snapshot = strcmp(mode, "snapshot") == 0;
            int known = snapshot || strcmp(mode, "history") == 0;
            kd_free(mode);
            if (fmt != 1 || !known) {
                code = cli_fail(c, KD_FORMAT, "import: %s: export format %lld is not one this kdelta reads", path,
                                (long long)fmt);
                goto out;
            }
            continue;
        }
        if (len == 0) continue;
        if (g.n == g.cap) {
            size_t nc = g.cap ? g.cap * 2 : 64;
            kd_entry *e2 = realloc(g.e, nc * sizeof *e2);
            if (!e2) {
                code = cli_fail(c, KD_NOMEM, "import: out of memory");
                goto out;
            }
            g.e = e2;
            g.cap = nc;
        }
        kd_entry *e = &g.e[g.n];
        memset(e, 0, sizeof *e);
        if ((rc = kd_entry_from_json(line, (size_t)len, e)) != KD_OK) {
            char what[64];
            snprintf(what, sizeof what, "import: line %llu", (unsigned long long)lineno);
            code = cli_fail_kd(c, rc, what);
            goto out;
        }
        if (!e->deleted && !e->value) {
            kd_entry_clear(e);
            code = cli_fail(c, KD_INVALID, "import: line %llu: a version without its value", (unsigned long long)lineno);
            goto out;
        }
        if (snapshot) {
            if (e->deleted) {
                kd_entry_clear(e);
                continue;
            }
            g.n++;
            if (g.n >= IMPORT_CHUNK && (code = flush_snapshot(c, &g, &written, &skipped)) != 0) goto out;
            continue;
        }
        /* History: a new timestamp starts a new commit. */
        if (g.n && e->timestamp != g.e[0].timestamp) {
            kd_entry keep = *e; /* the line just read belongs to the next commit */
            memset(e, 0, sizeof *e);
            if ((code = flush_commit(c, &g, lineno - 1, &written, &skipped)) != 0) {
                kd_entry_clear(&keep);
                goto out;
            }
            g.e[0] = keep;
            g.n = 1;
        } else {
            g.n++;
        }
    }
    if (ferror(in)) {
        code = cli_fail(c, KD_IOERR, "import: reading %s: %s", path, strerror(errno));
        goto out;
    }
    if (lineno == 0) {
        code = cli_fail(c, KD_INVALID, "import: %s is empty", path);
        goto out;
    }
    code = snapshot ? flush_snapshot(c, &g, &written, &skipped) : flush_commit(c, &g, lineno, &written, &skipped);
    if (code) goto out;
    if (c->json)
        cli_buf_printf(&c->out, "{\"skipped\":%llu,\"written\":%llu}\n", (unsigned long long)skipped,
                       (unsigned long long)written);
    else
        cli_buf_printf(&c->out, "Imported %llu version%s (%llu already present)\n", (unsigned long long)written,
                       written == 1 ? "" : "s", (unsigned long long)skipped);
out:
    if (tty && bar >= 0) fputs("\n", stderr);
    group_clear(&g);
    free(g.e);
    free(line);
    if (in != stdin) fclose(in);
    return code;
}
