/*
** db_backup.c — kd_backup: a consistent copy of an open database, made while it stays in
** use.
**
** The log is append-only and every record is self-checking, so a prefix of it is a
** database: the copy is the log up to the end of the last commit at the start of the call,
** plus the checkpoint and the saved vector indexes as they are then. Under wmu (commits
** wait a moment) the call notes the last seq, the log's end and every segment's size.
** Writers then go on appending past that end while the bytes before it are copied: older
** segments are final, and only the noted prefix of the active one is read. ckpt_mu is
** held for the whole copy, so no checkpoint (and no index save, which follows
** checkpoints) replaces a file being copied. Each copied file is fsynced, then the
** directories.
**
** The copy's active segment ends at the noted position rather than at the zero-filled
** space the source keeps ahead of its writes; opening it finds a clean end there and
** appends from it. The checkpoint covers at most the noted seq, and the index files are
** checked against the copy's log when they are loaded, so neither can name versions the
** copy lacks.
**
** May call: os (through db->vfs), log, base.
*/
#include <stdio.h>
#include <string.h>

#include "db/db_int.h"

#define COPY_CHUNK (1u << 20)

typedef struct copy_job {
    kd_db *db;
    uint8_t *buf;
    uint64_t done, total;
    kd_progress_fn progress;
    void *ctx;
} copy_job;

/* Copies the first len bytes of from (all of it when len is UINT64_MAX) to a new file to,
** and fsyncs it. KD_NOTFOUND when from does not exist. */
static int copy_file(copy_job *j, const char *from, const char *to, uint64_t len) {
    kd_vfs *v = j->db->vfs;
    kd_file *in = NULL, *out = NULL;
    uint64_t size = 0, off = 0;
    int rc;
    if ((rc = v->open(v, from, KD_OPEN_READ, &in)) != KD_OK) return rc;
    if ((rc = v->size(in, &size)) != KD_OK) goto out;
    if (len == UINT64_MAX) len = size;
    if (len > size) {
        rc = kd__err(KD_CORRUPT, "%s holds %llu bytes, %llu expected", from, (unsigned long long)size,
                     (unsigned long long)len);
        goto out;
    }
    if ((rc = v->open(v, to, KD_OPEN_WRITE | KD_OPEN_CREATE, &out)) != KD_OK || (rc = v->truncate(out, 0)) != KD_OK)
        goto out;
    while (off < len) {
        size_t want = (size_t)KD_MIN((uint64_t)COPY_CHUNK, len - off), got = 0;
        if ((rc = v->read(in, j->buf, want, off, &got)) != KD_OK) goto out;
        if (got != want) {
            rc = kd__err(KD_IOERR, "%s: short read at offset %llu", from, (unsigned long long)off);
            goto out;
        }
        if ((rc = v->write(out, j->buf, want, off)) != KD_OK) goto out;
        off += want;
        j->done += want;
        if (j->progress) j->progress(j->ctx, j->done, j->total);
    }
    rc = v->sync(out);
out:
    if (in) v->close(in);
    if (out) {
        int r = v->close(out);
        if (rc == KD_OK) rc = r;
    }
    return rc;
}

/* Adds the size of file path to *total (nothing when it does not exist). Out of memory is
** an error: it used to count as an absent file, and the backup said OK with a progress
** total short by that file (found by the out-of-memory sweep, tests/unit/test_oom.c). */
static int add_file_size(kd_vfs *v, const char *path, uint64_t *total) {
    kd_file *f = NULL;
    uint64_t n = 0;
    int rc = v->open(v, path, KD_OPEN_READ, &f);
    if (rc == KD_NOMEM) return rc;
    if (rc == KD_OK) {
        if (v->size(f, &n) != KD_OK) n = 0;
        v->close(f);
        *total += n;
    }
    kd__err_clear();
    return KD_OK;
}

static int is_index_file(const char *name) {
    size_t n = strlen(name);
    return strncmp(name, "vec-", 4) == 0 && n > 8 && strcmp(name + n - 4, ".idx") == 0;
}

int kd_backup(kd_db *db, const char *dir, kd_progress_fn progress, void *ctx) {
    kd_vfs *v = db->vfs;
    copy_job j = {db, NULL, 0, 0, progress, ctx};
    char *logdir = NULL, **names = NULL, *from = NULL, *to = NULL;
    size_t nnames = 0;
    uint32_t *nums = NULL;
    uint64_t *sizes = NULL;
    size_t nseg = 0;
    int rc = KD_OK;
    kd__err_clear();
    if (!dir || !*dir) return kd__err(KD_INVALID, "missing backup directory");
    if (db->read_only) return kd__err(KD_READONLY, "database opened read-only: back up the directory as it is");
    if (v->exists(v, dir)) {
        char **e = NULL;
        size_t ne = 0;
        if ((rc = v->list(v, dir, &e, &ne)) != KD_OK) return rc;
        kd__os_names_free(e, ne);
        if (ne) return kd__err(KD_INVALID, "directory %s is not empty", dir);
    }
    if (!(logdir = kd__path_join(dir, "log")) || !(j.buf = kd__malloc(COPY_CHUNK))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = v->mkdirs(v, logdir)) != KD_OK) goto out;

    pthread_mutex_lock(&db->ckpt_mu);
    /* The snapshot: the last commit, and the segments' sizes at that moment. */
    pthread_mutex_lock(&db->wmu);
    uint64_t seq = db->last_seq;
    pthread_rwlock_rdlock(&db->wal.segs_lock);
    nseg = db->wal.nsegs;
    if (nseg && (!(nums = kd__malloc(nseg * sizeof *nums)) || !(sizes = kd__malloc(nseg * sizeof *sizes)))) {
        rc = kd__err(KD_NOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < nseg; i++) {
            nums[i] = db->wal.segs[i].num;
            sizes[i] = db->wal.segs[i].size;
        }
    }
    pthread_rwlock_unlock(&db->wal.segs_lock);
    pthread_mutex_unlock(&db->wmu);
    if (rc != KD_OK) goto out_locked;
    if (db->wal.failed) {
        rc = kd__err(KD_READONLY, "the database's log failed an fsync: reopen it before a backup");
        goto out_locked;
    }
    /* The copy holds what was acknowledged (durable) when the call began. */
    if ((rc = kd__wal_wait_durable(&db->wal, seq)) != KD_OK) goto out_locked;

    char *ckpt = kd__path_join(db->path, "checkpoint");
    if (!ckpt) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out_locked;
    }
    rc = add_file_size(v, ckpt, &j.total);
    kd__free(ckpt);
    if (rc != KD_OK) goto out_locked;
    for (size_t i = 0; i < nseg; i++) j.total += sizes[i];
    if ((rc = v->list(v, db->path, &names, &nnames)) != KD_OK) goto out_locked;
    for (size_t i = 0; i < nnames; i++) {
        if (!is_index_file(names[i])) continue;
        char *p = kd__path_join(db->path, names[i]);
        if (!p) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out_locked;
        }
        rc = add_file_size(v, p, &j.total);
        kd__free(p);
        if (rc != KD_OK) goto out_locked;
    }

    for (size_t i = 0; i < nseg; i++) {
        char name[32];
        snprintf(name, sizeof name, "%08u.kdl", nums[i]);
        kd__free(from);
        kd__free(to);
        from = kd__path_join(db->wal.dir, name);
        to = kd__path_join(logdir, name);
        if (!from || !to) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out_locked;
        }
        if ((rc = copy_file(&j, from, to, sizes[i])) != KD_OK) goto out_locked;
    }
    for (size_t i = 0; i < nnames; i++) {
        if (strcmp(names[i], "checkpoint") != 0 && !is_index_file(names[i])) continue;
        kd__free(from);
        kd__free(to);
        from = kd__path_join(db->path, names[i]);
        to = kd__path_join(dir, names[i]);
        if (!from || !to) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out_locked;
        }
        rc = copy_file(&j, from, to, UINT64_MAX);
        if (rc == KD_NOTFOUND) rc = KD_OK; /* gone meanwhile: it is optional */
        if (rc != KD_OK) goto out_locked;
    }
    if ((rc = v->sync_dir(v, logdir)) == KD_OK) rc = v->sync_dir(v, dir);
out_locked:
    pthread_mutex_unlock(&db->ckpt_mu);
out:
    if (rc != KD_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", kd__errmsg_get());
        kd__err(rc, "copying to %s: %s", dir, msg);
    }
    kd__os_names_free(names, nnames);
    kd__free(from);
    kd__free(to);
    kd__free(nums);
    kd__free(sizes);
    kd__free(logdir);
    kd__free(j.buf);
    return rc;
}
