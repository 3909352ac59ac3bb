/*
** db_check.c — integrity checks: every record's checksum and structure in every
** segment, seq continuity, agreement between the log and the in-memory index, and
** (deep) every value's content hash and every version id recomputed from its header.
**
** May call: os, base, crypto, log, store. kd_check holds the writer mutex so the log
** does not grow under it; kd_check_path works on a directory no process has open, or
** one kd_open refuses as corrupt.
*/
#include <stdio.h>
#include <string.h>

#include "crypto/hash.h"
#include "db/db_int.h"

typedef struct check_ctx {
    kd_db *db; /* NULL for kd_check_path: no index to compare with */
    int deep;
    kd_check_report *rep;
    uint64_t next_seq;
    int resync;       /* resuming past a damaged record: its seqs are unknown */
    kd_progress_fn progress;
    void *pctx;
    uint64_t base, total, shown; /* bytes of the segments before this one, of all, reported */
} check_ctx;

#define PROGRESS_STEP (1u << 20) /* report at most every MiB checked */

static void note_progress(check_ctx *c, uint64_t done) {
    if (!c->progress || (done < c->shown + PROGRESS_STEP && done < c->total)) return;
    c->shown = done;
    c->progress(c->pctx, done, c->total);
}

static void report_error(kd_check_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_error(kd_check_report *rep, const char *fmt, ...) {
    char msg[sizeof rep->first_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!rep->first_error[0]) memcpy(rep->first_error, msg, sizeof msg);
    if (rep->errors < KD_CHECK_LIST_MAX) { /* the first errors, while whole lines fit */
        size_t used = strlen(rep->error_list), n = strlen(msg), listed = 0;
        for (size_t i = 0; i < used; i++) listed += rep->error_list[i] == '\n';
        if (listed == rep->errors && used + n + 2 <= sizeof rep->error_list) {
            memcpy(rep->error_list + used, msg, n);
            memcpy(rep->error_list + used + n, "\n", 2);
        }
    }
    rep->errors++;
    rep->ok = 0;
}

static int check_rec(void *arg, const kd_rec *r) {
    check_ctx *c = arg;
    kd_commit cm;
    c->rep->records++;
    note_progress(c, c->base + r->off);
    int rc = kd__commit_decode(r->payload, r->len, &cm);
    if (rc == KD_NOMEM) return rc; /* not the database's fault: the check stops and says so */
    if (rc != KD_OK) {
        report_error(c->rep, "segment %u offset %llu: %s", r->seg, (unsigned long long)r->off, kd__errmsg_get());
        return 0;
    }
    if (cm.first_seq != c->next_seq && !c->resync) /* (a gap after damage is that damage) */
        report_error(c->rep, "segment %u offset %llu: commit has seq %llu, expected %llu", r->seg,
                     (unsigned long long)r->off, (unsigned long long)cm.first_seq, (unsigned long long)c->next_seq);
    c->resync = 0;
    c->next_seq = cm.first_seq + cm.nvers;
    c->rep->values += cm.nvals;
    c->rep->versions += cm.nvers;
    for (uint32_t i = 0; c->deep && i < cm.nvals; i++) {
        uint8_t h[32];
        kd__blake3(cm.vals[i].bytes, cm.vals[i].len, h);
        if (memcmp(h, cm.vals[i].hash, 32) != 0)
            report_error(c->rep, "segment %u offset %llu: value %u does not match its hash", r->seg,
                         (unsigned long long)(r->off + KD_REC_HEADER + cm.vals[i].off), i);
    }
    for (uint32_t i = 0; i < cm.nvers; i++) {
        const kd_cver *v = &cm.vers[i];
        uint64_t seq = cm.first_seq + i;
        if (c->deep) {
            uint8_t id[32];
            kd__version_id(v->ns, v->nslen, v->key, v->keylen, v->value_hash == NULL, v->value_hash, cm.ts, v->prev, id);
            if (memcmp(id, v->id, 32) != 0)
                report_error(c->rep, "segment %u offset %llu: version seq %llu: id does not match its header", r->seg,
                             (unsigned long long)r->off, (unsigned long long)seq);
        }
        if (c->db) {
            kd_index *ix = &c->db->ix;
            if (seq > ix->nvers) {
                report_error(c->rep, "segment %u offset %llu: version seq %llu is in the log but not in the index",
                             r->seg, (unsigned long long)r->off, (unsigned long long)seq);
                continue;
            }
            const kd_ver *xv = kd__ver(ix, seq);
            const kd_key *k = kd__key(ix, xv->key);
            uint64_t id_loc = KD_LOC(r->seg, r->off + KD_REC_HEADER + (uint64_t)(v->id - cm.base));
            if (xv->loc != id_loc || xv->ts != cm.ts || (xv->val == 0) != (v->value_hash == NULL) ||
                k->len != v->keylen || memcmp(k->name, v->key, v->keylen) != 0)
                report_error(c->rep, "segment %u offset %llu: version seq %llu differs between the log and the index",
                             r->seg, (unsigned long long)r->off, (unsigned long long)seq);
        }
    }
    kd__commit_free(&cm);
    return 0;
}

static int check_wal(kd_wal *w, kd_db *db, int deep, kd_check_report *rep, kd_progress_fn progress, void *pctx) {
    check_ctx c = {db, deep, rep, 1, 0, progress, pctx, 0, 0, 0};
    for (size_t i = 0; i < w->nsegs; i++) c.total += w->segs[i].size;
    for (size_t i = 0; i < w->nsegs; c.base += w->segs[i].size, i++) {
        uint8_t *img = NULL;
        uint64_t len = 0;
        int rc = kd__wal_read_segment(w, i, &img, &len);
        if (rc != KD_OK) return rc;
        rep->segments++;
        uint32_t num = w->segs[i].num;
        if (kd__wal_check_header(img, len, num) != KD_OK) {
            if (i + 1 == w->nsegs && len == KD_SEG_HEADER && kd__all_zero(img, len))
                report_error(rep, "segment %u: created by a crash before its header reached the disk (rewritten "
                             "at the next open)", num);
            else
                report_error(rep, "%s", kd__errmsg_get());
            kd__free(img);
            c.resync = 1; /* its records' seqs are unknown */
            continue;
        }
        kd_scan_end end;
        uint64_t from = KD_SEG_HEADER;
        for (;;) { /* past a corrupt record, go on from the next valid one and keep counting */
            if ((rc = kd__wal_scan(num, img, len, from, check_rec, &c, &end)) == KD_NOMEM) {
                kd__free(img);
                return kd__err(KD_NOMEM, "out of memory while checking");
            }
            if (!end.corrupt && !end.torn) break;
            int last = i + 1 == w->nsegs;
            report_error(rep, "segment %u offset %llu: %s%s", num, (unsigned long long)end.bad_off, end.why,
                         end.corrupt ? " (valid records follow)" : last ? " (torn tail: cut off at the next open)" : "");
            c.resync = 1; /* past damage (or a torn end), the seqs that follow are not a gap */
            if (!end.corrupt) break;
            from = end.resume_off;
        }
        kd__free(img);
    }
    c.shown = 0;
    note_progress(&c, c.total); /* done */
    if (db && c.next_seq - 1 != db->last_seq)
        report_error(rep, "the log holds %llu versions but the index %llu", (unsigned long long)(c.next_seq - 1),
                     (unsigned long long)db->last_seq);
    return KD_OK;
}

int kd_check(kd_db *db, int deep, kd_check_report *report) {
    return kd_check_progress(db, deep, report, NULL, NULL);
}

int kd_check_path(const char *path, int deep, kd_check_report *report) {
    return kd_check_path_progress(path, deep, report, NULL, NULL);
}

int kd_check_progress(kd_db *db, int deep, kd_check_report *report, kd_progress_fn progress, void *ctx) {
    kd__err_clear();
    memset(report, 0, sizeof *report);
    report->ok = 1;
    pthread_mutex_lock(&db->wmu);
    pthread_rwlock_rdlock(&db->ix_lock);
    int rc = check_wal(&db->wal, db, deep, report, progress, ctx);
    pthread_rwlock_unlock(&db->ix_lock);
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

int kd_check_path_progress(const char *path, int deep, kd_check_report *report, kd_progress_fn progress,
                           void *ctx) {
    kd_wal w;
    kd__err_clear();
    memset(report, 0, sizeof *report);
    report->ok = 1;
    int rc = kd__wal_open(&w, kd__os_unix(), path, 64u << 20, 1, 0);
    if (rc == KD_OK) rc = check_wal(&w, NULL, deep, report, progress, ctx);
    else if (rc == KD_CORRUPT) {
        report_error(report, "%s", kd__errmsg_get());
        rc = KD_OK;
    }
    if (w.dir) kd__wal_close(&w);
    return rc;
}
