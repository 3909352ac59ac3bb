/*
** export.c — the database as NDJSON and back (kd_export_*, kd_import_*): what `kdelta
** export` / `kdelta import` and the server's /_export and /_import routes run.
**
** Format (docs/cli.md, "export"): a header line
**     {"korudelta_export":1,"mode":"history"|"snapshot","at":T|"now"|null,
**      "namespaces":[...]|null,"seq":N}
** then one version per line in the wire form of the HTTP API (kd_entry_to_json with the
** value), in commit order. A history export holds every version of the namespaces up to
** seq N, system namespaces included (embeddings live in `_emb.<ns>`, the models'
** dimensions in `_emb`, view definitions in `_views`). A snapshot (KD_EXPORT_AT,
** KD_EXPORT_CURRENT) holds each key's live version at T, oldest first.
**
** Import of a history replays it commit by commit: the lines of one commit share its
** timestamp (a commit's versions have consecutive seqs and one time; distinct commits
** never share one), and kd_batch_commit_at writes them with that timestamp and checks that
** each version gets the id it was exported with. A commit whose versions are already
** present is skipped, so importing twice does not duplicate. A snapshot is written as new
** versions, IMPORT_CHUNK keys per commit, skipping keys whose current value already has
** the same hash. Importing a history in pieces (the CLI does, through a server) gives the
** same result as in one go, as long as each piece starts with the header line and no
** commit is split.
**
** May call: the public API (korudelta.h), base, json.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "json/json.h"
#include "korudelta.h"

#define IMPORT_CHUNK 10000 /* snapshot lines per commit */

/* ---- export ----------------------------------------------------------------------------- */

/* Snapshot: a key's latest version at T among seqs 1..last. */
typedef struct pick {
    char *ns, *key;
    uint64_t seq;
    uint8_t id[32];
    int deleted;
} pick;

enum { EX_HEADER, EX_HISTORY, EX_COLLECT, EX_SNAPSHOT, EX_DONE };

struct kd_export {
    kd_db *db;
    int state, mode;
    int64_t at;
    char **ns;         /* the namespaces asked for (copies); nns == 0: all */
    size_t nns;
    uint64_t last;     /* the export holds seqs 1..last */
    kd_feed *feed;
    kd_entry e;
    pick *picks;       /* snapshot: one per key, then sorted by seq (the order written) */
    size_t npicks, cap, next;
    uint32_t *slots;   /* hash of ns/key -> 1 + index in picks (0 = empty) */
    size_t nslots;
    kd_progress_fn progress;
    void *pctx;
    kd_buf line;
};

/* Is ns one of the namespaces asked for (or their embeddings, or the models' record)? */
static int wanted(const kd_export *ex, const char *ns) {
    if (ex->nns == 0) return 1;
    if (strcmp(ns, "_emb") == 0) return 1;
    const char *user = strncmp(ns, "_emb.", 5) == 0 ? ns + 5 : ns;
    for (size_t i = 0; i < ex->nns; i++)
        if (strcmp(ex->ns[i], user) == 0) return 1;
    return 0;
}

static int pick_seq_cmp(const void *a, const void *b) {
    const pick *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static uint64_t key_hash(const char *ns, const char *key) {
    return kd__hash64(ns, strlen(ns)) * 31 + kd__hash64(key, strlen(key));
}

/* The pick of ns/key: its slot, empty (0) when the key has none yet. */
static uint32_t *slot_of(kd_export *ex, const char *ns, const char *key) {
    size_t mask = ex->nslots - 1, i = (size_t)key_hash(ns, key) & mask;
    while (ex->slots[i]) {
        const pick *p = &ex->picks[ex->slots[i] - 1];
        if (strcmp(p->key, key) == 0 && strcmp(p->ns, ns) == 0) break;
        i = (i + 1) & mask;
    }
    return &ex->slots[i];
}

/* Room for one more key: the table stays at most half full. */
static int reserve_pick(kd_export *ex) {
    if (kd__grow(&ex->picks, &ex->cap, ex->npicks, sizeof *ex->picks, 1024) != KD_OK) return KD_NOMEM;
    if ((ex->npicks + 1) * 2 <= ex->nslots) return KD_OK;
    if (ex->npicks >= UINT32_MAX - 1) return kd__err(KD_TOOBIG, "too many keys to export");
    size_t n = ex->nslots ? ex->nslots * 2 : 2048;
    uint32_t *s2 = kd__calloc(n, sizeof *s2);
    if (!s2) return kd__err(KD_NOMEM, "out of memory");
    kd__free(ex->slots);
    ex->slots = s2;
    ex->nslots = n;
    for (size_t i = 0; i < ex->npicks; i++)
        *slot_of(ex, ex->picks[i].ns, ex->picks[i].key) = (uint32_t)(i + 1);
    return KD_OK;
}

/* Reads the next version of the feed up to ex->last into ex->e; KD_DONE past it. */
static int feed_next(kd_export *ex) {
    kd_entry_clear(&ex->e);
    int rc = kd_feed_next(ex->feed, &ex->e);
    if (rc == KD_OK && ex->e.seq > ex->last) rc = KD_DONE;
    if (rc == KD_OK && ex->progress) ex->progress(ex->pctx, ex->e.seq, ex->last);
    return rc;
}

static int put_entry(kd_export *ex, const kd_entry *e) {
    char *j = NULL;
    size_t n = 0;
    int rc = kd_entry_to_json(e, KD_WIRE_VALUE, &j, &n);
    if (rc != KD_OK) return rc;
    kd__buf_reset(&ex->line);
    kd__buf_append(&ex->line, j, n);
    kd__buf_putc(&ex->line, '\n');
    kd_free(j);
    return ex->line.oom ? kd__err(KD_NOMEM, "out of memory") : KD_OK;
}

/* Snapshot: reads the feed up to seq `last` and keeps, for each key, its latest version
** at or before T (commits' times grow with their seqs). The export is then the keys whose
** kept version is not a tombstone, oldest first; their values are read one at a time as
** they are written. Later commits do not change it: it is the database as of `last`. */
static int collect(kd_export *ex) {
    int rc;
    while ((rc = feed_next(ex)) == KD_OK) {
        if (!wanted(ex, ex->e.ns) || ex->e.timestamp > ex->at) continue;
        if ((rc = reserve_pick(ex)) != KD_OK) return rc;
        uint32_t *slot = slot_of(ex, ex->e.ns, ex->e.key);
        pick *p = *slot ? &ex->picks[*slot - 1] : &ex->picks[ex->npicks];
        if (!*slot) {
            p->ns = ex->e.ns;
            p->key = ex->e.key;
            ex->e.ns = ex->e.key = NULL; /* kept */
            *slot = (uint32_t)++ex->npicks;
        }
        p->seq = ex->e.seq;
        memcpy(p->id, ex->e.version_id, 32);
        p->deleted = ex->e.deleted;
    }
    if (rc != KD_DONE) return rc;
    kd__free(ex->slots); /* not needed any more */
    ex->slots = NULL;
    ex->nslots = 0;
    qsort(ex->picks, ex->npicks, sizeof *ex->picks, pick_seq_cmp);
    return KD_OK;
}

/* The next live pick's version, value included, into ex->e. KD_DONE after the last. */
static int next_pick(kd_export *ex) {
    char hex[65];
    while (ex->next < ex->npicks && ex->picks[ex->next].deleted) ex->next++;
    if (ex->next == ex->npicks) return KD_DONE;
    pick *p = &ex->picks[ex->next++];
    kd_hex(p->id, hex);
    kd_entry_clear(&ex->e);
    int rc = kd_resolve_version(ex->db, p->ns, p->key, hex, &ex->e);
    if (rc == KD_OK && ex->e.seq != p->seq) rc = kd__err(KD_CORRUPT, "version %s of %s/%s moved", hex, p->ns, p->key);
    return rc;
}

static int header(kd_export *ex) {
    kd_buf *b = &ex->line;
    char ts[32];
    kd__buf_printf(b, "{\"korudelta_export\":1,\"mode\":\"%s\",\"at\":",
                   ex->mode == KD_EXPORT_HISTORY ? "history" : "snapshot");
    if (ex->mode == KD_EXPORT_AT) {
        kd_format_time(ex->at, ts);
        kd__json_write_string(b, ts, strlen(ts));
    } else {
        kd__buf_puts(b, ex->mode == KD_EXPORT_CURRENT ? "\"now\"" : "null");
    }
    kd__buf_puts(b, ",\"namespaces\":");
    if (ex->nns == 0) kd__buf_puts(b, "null");
    for (size_t i = 0; i < ex->nns; i++) {
        kd__buf_putc(b, i ? ',' : '[');
        kd__json_write_string(b, ex->ns[i], strlen(ex->ns[i]));
        if (i + 1 == ex->nns) kd__buf_putc(b, ']');
    }
    kd__buf_printf(b, ",\"seq\":%llu}\n", (unsigned long long)ex->last);
    return b->oom ? kd__err(KD_NOMEM, "out of memory") : KD_OK;
}

void kd_export_close(kd_export *ex) {
    if (!ex) return;
    kd_feed_close(ex->feed);
    kd_entry_clear(&ex->e);
    for (size_t i = 0; i < ex->npicks; i++) {
        kd_free(ex->picks[i].ns);
        kd_free(ex->picks[i].key);
    }
    kd__free(ex->picks);
    kd__free(ex->slots);
    for (size_t i = 0; i < ex->nns; i++) kd__free(ex->ns[i]);
    kd__free(ex->ns);
    kd__buf_free(&ex->line);
    kd__free(ex);
}

int kd_export_open(kd_db *db, const kd_export_opts *o, kd_export **out) {
    kd_stats st;
    int rc;
    kd__err_clear();
    *out = NULL;
    if (o->mode != KD_EXPORT_HISTORY && o->mode != KD_EXPORT_AT && o->mode != KD_EXPORT_CURRENT)
        return kd__err(KD_INVALID, "unknown export mode %d", o->mode);
    for (size_t i = 0; i < o->nnamespaces; i++)
        if ((rc = kd_valid_namespace(o->namespaces[i], 0)) != KD_OK) return rc;
    kd_export *ex = kd__calloc(1, sizeof *ex);
    if (!ex) return kd__err(KD_NOMEM, "out of memory");
    ex->db = db;
    ex->mode = o->mode;
    ex->at = o->mode == KD_EXPORT_AT ? o->at : INT64_MAX;
    ex->progress = o->progress;
    ex->pctx = o->progress_ctx;
    if (o->nnamespaces && !(ex->ns = kd__calloc(o->nnamespaces, sizeof *ex->ns))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto fail;
    }
    for (; ex->nns < o->nnamespaces; ex->nns++)
        if (!(ex->ns[ex->nns] = kd__strdup(o->namespaces[ex->nns]))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto fail;
        }
    if ((rc = kd_stats_get(db, &st)) != KD_OK || (rc = kd_feed_open(db, 0, &ex->feed)) != KD_OK) goto fail;
    ex->last = st.seq;
    *out = ex;
    return KD_OK;
fail:
    kd_export_close(ex);
    return rc;
}

int kd_export_next(kd_export *ex, const char **line, size_t *len) {
    int rc;
    kd__err_clear();
    *line = NULL;
    *len = 0;
    switch (ex->state) {
    case EX_HEADER:
        if ((rc = header(ex)) != KD_OK) return rc;
        ex->state = ex->mode == KD_EXPORT_HISTORY ? EX_HISTORY : EX_COLLECT;
        break;
    case EX_HISTORY:
        while ((rc = feed_next(ex)) == KD_OK && !wanted(ex, ex->e.ns)) {}
        if (rc == KD_DONE) ex->state = EX_DONE;
        if (rc != KD_OK) return rc;
        if ((rc = put_entry(ex, &ex->e)) != KD_OK) return rc;
        break;
    case EX_COLLECT:
        if ((rc = collect(ex)) != KD_OK) return rc;
        ex->state = EX_SNAPSHOT;
        /* fall through */
    case EX_SNAPSHOT:
        if ((rc = next_pick(ex)) == KD_DONE) ex->state = EX_DONE;
        if (rc != KD_OK) return rc;
        if ((rc = put_entry(ex, &ex->e)) != KD_OK) return rc;
        break;
    default:
        return KD_DONE;
    }
    *line = ex->line.p;
    *len = ex->line.len;
    return KD_OK;
}

/* ---- import ----------------------------------------------------------------------------- */

struct kd_import {
    kd_db *db;
    uint64_t lineno;   /* the number of the line being read; 0 before the header */
    uint64_t first;    /* the number of the first line after the header */
    uint64_t last_data; /* the number of the last non-blank line read */
    uint64_t written, skipped;
    int snapshot, failed;
    kd_entry *g; /* the commit (history) or chunk (snapshot) being collected */
    size_t n, cap;
};

static void group_clear(kd_import *im) {
    for (size_t i = 0; i < im->n; i++) kd_entry_clear(&im->g[i]);
    im->n = 0;
}

/* The error just reported, prefixed with the line it concerns. */
static int with_line(int rc, uint64_t line) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kd_errmsg(NULL));
    return kd__err(rc, "line %llu: %s", (unsigned long long)line, msg);
}

/* Is this version (by id) already in the database? */
static int present(kd_import *im, const kd_entry *e, int *yes) {
    char hex[65];
    kd_entry got;
    memset(&got, 0, sizeof got);
    kd_hex(e->version_id, hex);
    int rc = kd_resolve_version(im->db, e->ns, e->key, hex, &got);
    kd_entry_clear(&got);
    *yes = rc == KD_OK;
    if (rc == KD_NOTFOUND) {
        kd__err_clear();
        rc = KD_OK;
    }
    return rc;
}

/* Writes one exported commit (history mode); line is the number of its last line. */
static int flush_commit(kd_import *im, uint64_t line) {
    kd_batch *b = NULL;
    uint8_t(*ids)[32] = NULL;
    int rc, yes = 0;
    if (im->n == 0) return KD_OK;
    if ((rc = present(im, &im->g[0], &yes)) != KD_OK) return rc;
    if (yes) { /* imported before: every version of the commit must be there */
        for (size_t i = 1; i < im->n; i++) {
            if ((rc = present(im, &im->g[i], &yes)) != KD_OK) return rc;
            if (!yes)
                return kd__err(KD_CONFLICT, "line %llu: a commit is only partly in the database",
                               (unsigned long long)line);
        }
        im->skipped += im->n;
        group_clear(im);
        return KD_OK;
    }
    if (!(b = kd_batch_new()) || !(ids = kd__malloc(im->n * sizeof *ids))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < im->n; i++) {
        kd_entry *e = &im->g[i];
        rc = e->deleted ? kd_batch_delete(b, e->ns, e->key) : kd_batch_put(b, e->ns, e->key, e->value, e->value_len);
        if (rc != KD_OK) goto out;
        memcpy(ids[i], e->version_id, 32);
    }
    if ((rc = kd_batch_commit_at(im->db, b, im->g[0].timestamp, (const uint8_t(*)[32])ids, NULL, NULL)) != KD_OK) {
        rc = with_line(rc, line);
        goto out;
    }
    im->written += im->n;
    group_clear(im);
out:
    kd_batch_free(b);
    kd__free(ids);
    return rc;
}

/* Writes collected snapshot lines as new versions, now (one commit). */
static int flush_snapshot(kd_import *im) {
    kd_batch *b = kd_batch_new();
    size_t n = 0, same_n = 0;
    int rc = KD_OK;
    if (!b) return kd__err(KD_NOMEM, "out of memory");
    for (size_t i = 0; i < im->n; i++) {
        kd_entry *e = &im->g[i], cur;
        memset(&cur, 0, sizeof cur);
        rc = kd_get(im->db, e->ns, e->key, &cur);
        int same = rc == KD_OK && memcmp(cur.value_hash, e->value_hash, 32) == 0;
        kd_entry_clear(&cur);
        if (rc != KD_OK && rc != KD_NOTFOUND) goto out;
        rc = KD_OK;
        if (same) {
            same_n++;
            continue;
        }
        if ((rc = kd_batch_put(b, e->ns, e->key, e->value, e->value_len)) != KD_OK) goto out;
        n++;
    }
    if (n && (rc = kd_batch_commit_at(im->db, b, 0, NULL, NULL, NULL)) != KD_OK) goto out;
    im->written += n;
    im->skipped += same_n;
    group_clear(im);
out:
    kd_batch_free(b);
    return rc;
}

int kd_import_begin(kd_db *db, uint64_t first_line, kd_import **out) {
    kd__err_clear();
    *out = kd__calloc(1, sizeof **out);
    if (!*out) return kd__err(KD_NOMEM, "out of memory");
    (*out)->db = db;
    (*out)->first = first_line > 2 ? first_line : 2;
    return KD_OK;
}

static int header_line(kd_import *im, const char *line, size_t len) {
    kd_json_val h = kd_json_doc(line, len);
    int64_t fmt = 0;
    char *mode = NULL;
    if (kd_json_int(kd_json_get(h, "korudelta_export"), &fmt) != KD_OK ||
        kd_json_string(kd_json_get(h, "mode"), &mode, NULL) != KD_OK) {
        kd_free(mode);
        return kd__err(KD_INVALID, "line 1: not a kdelta export (no header line)");
    }
    im->snapshot = strcmp(mode, "snapshot") == 0;
    int known = im->snapshot || strcmp(mode, "history") == 0;
    kd_free(mode);
    if (fmt != 1 || !known)
        return kd__err(KD_FORMAT, "line 1: export format %lld (%s) is not one this version reads", (long long)fmt,
                       known ? "known mode" : "unknown mode");
    return KD_OK;
}

static int take_line(kd_import *im, const char *line, size_t len) {
    int rc;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (im->lineno == 0) {
        im->lineno = 1;
        return header_line(im, line, len);
    }
    im->lineno = im->lineno == 1 ? im->first : im->lineno + 1;
    if (len == 0) return KD_OK;
    if (kd__grow(&im->g, &im->cap, im->n, sizeof *im->g, 64) != KD_OK) return KD_NOMEM;
    kd_entry *e = &im->g[im->n];
    memset(e, 0, sizeof *e);
    if ((rc = kd_entry_from_json(line, len, e)) != KD_OK) return with_line(rc, im->lineno);
    if (!e->deleted && !e->value) {
        kd_entry_clear(e);
        return kd__err(KD_INVALID, "line %llu: a version without its value", (unsigned long long)im->lineno);
    }
    if (im->snapshot) {
        if (e->deleted) {
            kd_entry_clear(e);
            return KD_OK;
        }
        im->n++;
        return im->n >= IMPORT_CHUNK ? flush_snapshot(im) : KD_OK;
    }
    /* History: a new timestamp starts a new commit. */
    if (im->n && e->timestamp != im->g[0].timestamp) {
        kd_entry keep = *e; /* the line just read belongs to the next commit */
        memset(e, 0, sizeof *e);
        if ((rc = flush_commit(im, im->last_data)) != KD_OK) {
            kd_entry_clear(&keep);
            return rc;
        }
        im->g[0] = keep;
        im->n = 1;
    } else {
        im->n++;
    }
    im->last_data = im->lineno;
    return KD_OK;
}

int kd_import_line(kd_import *im, const char *line, size_t len) {
    kd__err_clear();
    if (im->failed) return kd__err(KD_INVALID, "the import already failed");
    int rc = take_line(im, line, len);
    if (rc != KD_OK) im->failed = 1;
    return rc;
}

int kd_import_end(kd_import *im, uint64_t *written, uint64_t *skipped) {
    int rc = KD_OK;
    kd__err_clear();
    if (im->failed) rc = kd__err(KD_INVALID, "the import failed");
    else if (im->lineno == 0) rc = kd__err(KD_INVALID, "the input is empty (no header line)");
    else rc = im->snapshot ? flush_snapshot(im) : flush_commit(im, im->last_data);
    if (written) *written = im->written;
    if (skipped) *skipped = im->skipped;
    group_clear(im);
    kd__free(im->g);
    kd__free(im);
    return rc;
}
