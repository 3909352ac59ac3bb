/*
** checkpoint.c — snapshots of the version index, so that opening a large database
** reads one compact file and replays only the log written after it.
**
** File <db>/checkpoint (written as checkpoint.tmp, fsynced, renamed over, directory
** fsynced — so a crash leaves either the old or the new checkpoint, never a mix):
**
**   header, 64 bytes (little-endian):
**     0   8  magic "KDCKPT\r\n"
**     8   4  format version (1)
**     12  4  reserved, 0
**     16  8  last seq covered
**     24  8  log position just past the last covered record (segment << 40 | offset)
**     32  8  last commit timestamp
**     40  4  namespaces   44  4  keys   48  4  values
**     52  8  reserved, 0
**     60  4  CRC32C of bytes 0..59
**   body:
**     namespaces: u16 length, bytes
**     keys:       u32 namespace number, u16 length, bytes
**     values:     u32 seq of the version that stored it, u32 first 32 bits of the hash
**     versions:   i64 timestamp, u64 log position of the id, u32 value reference
**                 (kd_ver.val: 0 = tombstone, see index.h), u32 key
**   trailer: u32 CRC32C of the body
** A checkpoint that fails any check is ignored (the log is replayed in full); one that
** names a newer format is refused.
**
** May call: os, base, crypto, log, store.
*/
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "crypto/crc32c.h"
#include "db/db_int.h"

static const uint8_t ckpt_magic[8] = {'K', 'D', 'C', 'K', 'P', 'T', '\r', '\n'};
#define CKPT_FORMAT 1u

int kd__db_write_file(kd_db *db, const char *name, const void *p, size_t n) {
    char *final = kd__path_join(db->path, name), *tmp = NULL;
    kd_file *f = NULL;
    int rc;
    size_t tl = final ? strlen(final) + 5 : 0;
    if (!final || !(tmp = kd__malloc(tl))) {
        kd__free(final);
        return kd__err(KD_NOMEM, "out of memory");
    }
    snprintf(tmp, tl, "%s.tmp", final);
    if ((rc = db->vfs->open(db->vfs, tmp, KD_OPEN_WRITE | KD_OPEN_CREATE, &f)) != KD_OK ||
        (rc = db->vfs->truncate(f, 0)) != KD_OK || (rc = db->vfs->write(f, p, n, 0)) != KD_OK ||
        (rc = db->vfs->sync(f)) != KD_OK)
        goto out;
    rc = db->vfs->close(f);
    f = NULL;
    if (rc == KD_OK && (rc = db->vfs->rename(db->vfs, tmp, final)) == KD_OK) rc = db->vfs->sync_dir(db->vfs, db->path);
out:
    if (f) db->vfs->close(f);
    kd__free(tmp);
    kd__free(final);
    return rc;
}

int kd__checkpoint_write(kd_db *db) {
    kd_index *ix = &db->ix;
    kd_buf b = KD_BUF_INIT;
    int rc = KD_OK;
    uint64_t log_bytes = 0;
    pthread_mutex_lock(&db->ckpt_mu);
    /* wmu keeps commits out while the snapshot is taken, so the index and the log end
    ** agree: every record before the position is in the snapshot, none after it. */
    pthread_mutex_lock(&db->wmu);
    pthread_rwlock_rdlock(&db->ix_lock);
    uint64_t nvers = ix->nvers;
    if (nvers != db->last_seq) {
        rc = kd__err(KD_ERROR, "index and log disagree (%llu versions, seq %llu)", (unsigned long long)nvers,
                     (unsigned long long)db->last_seq);
        goto out;
    }
    if (kd__buf_reserve(&b, 64 + (size_t)nvers * 24 + (size_t)ix->nvals * 8 + (size_t)ix->nkeys * 8 +
                                ix->name_bytes + 4096) != KD_OK) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    uint8_t h[64];
    memset(h, 0, sizeof h);
    memcpy(h, ckpt_magic, 8);
    kd__set_u32(h + 8, CKPT_FORMAT);
    kd__set_u64(h + 16, nvers);
    kd__set_u64(h + 24, kd__wal_end(&db->wal));
    kd__set_u64(h + 32, (uint64_t)db->last_ts);
    kd__set_u32(h + 40, ix->nns);
    kd__set_u32(h + 44, ix->nkeys);
    kd__set_u32(h + 48, ix->nvals);
    kd__set_u32(h + 60, kd__crc32c(0, h, 60));
    kd__buf_append(&b, h, 64);
    for (uint32_t i = 0; i < ix->nns; i++) {
        size_t n = strlen(ix->ns[i].name);
        kd__buf_put_u16(&b, (uint16_t)n);
        kd__buf_append(&b, ix->ns[i].name, n);
    }
    for (uint32_t i = 0; i < ix->nkeys; i++) {
        const kd_key *k = kd__key(ix, i);
        kd__buf_put_u32(&b, k->ns);
        kd__buf_put_u16(&b, (uint16_t)k->len);
        kd__buf_append(&b, k->name, k->len);
    }
    for (uint64_t i = 0; i < ix->xtab_size; i++) {
        uint64_t e = ix->xtab[i];
        if (!e) continue;
        kd__buf_put_u32(&b, (uint32_t)e);         /* seq of the storer */
        kd__buf_put_u32(&b, (uint32_t)(e >> 32)); /* hash32 */
    }
    for (uint64_t s = 1; s <= nvers; s++) {
        const kd_ver *v = kd__ver(ix, s);
        kd__buf_put_u64(&b, (uint64_t)v->ts);
        kd__buf_put_u64(&b, v->loc);
        kd__buf_put_u32(&b, v->val);
        kd__buf_put_u32(&b, v->key);
    }
    log_bytes = kd__wal_log_bytes(&db->wal);
    pthread_rwlock_unlock(&db->ix_lock);
    pthread_mutex_unlock(&db->wmu);
    if (b.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out_unlocked;
    }
    /* Never let the checkpoint get ahead of what the log has made durable. */
    if ((rc = kd__wal_wait_durable(&db->wal, nvers)) != KD_OK) goto out_unlocked;
    kd__buf_put_u32(&b, kd__crc32c(0, b.p + 64, b.len - 64));
    if (b.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out_unlocked;
    }
    if ((rc = kd__db_write_file(db, "checkpoint", b.p, b.len)) != KD_OK) goto out_unlocked;
    db->ckpt_seq = nvers;
    atomic_store(&db->ckpt_log_bytes, log_bytes);
    kd__buf_free(&b);
    {   /* the vector indexes follow the checkpoint (a failure only costs a rebuild) */
        int (*save)(kd_db *, void *, int);
        void *vec;
        pthread_mutex_lock(&db->ext_mu);
        save = db->vec_save;
        vec = db->vec;
        pthread_mutex_unlock(&db->ext_mu);
        if (save) (void)save(db, vec, 0);
    }
#ifdef __GLIBC__
    malloc_trim(0); /* hand the snapshot's memory and older garbage back to the OS */
#endif
    goto out_unlocked;
out:
    pthread_rwlock_unlock(&db->ix_lock);
    pthread_mutex_unlock(&db->wmu);
out_unlocked:
    pthread_mutex_unlock(&db->ckpt_mu);
    kd__buf_free(&b);
    return rc;
}

/* Every position the loaded index names must lie inside the log the checkpoint covers,
** and every value reference must reach a version that stored the value itself, so that
** reads through the log's mapping stay in bounds whatever the file says. (Value lengths
** are checked where values are read, in db_read.c.) */
static int positions_valid(kd_db *db, uint64_t pos) {
    const kd_index *ix = &db->ix;
    const kd_wal *w = &db->wal;
    if (KD_LOC_SEG(pos) == 0 || KD_LOC_SEG(pos) > w->nsegs) return 0;
    for (uint64_t s = 1; s <= ix->nvers; s++) {
        const kd_ver *v = kd__ver(ix, s);
        uint32_t seg = KD_LOC_SEG(v->loc);
        uint64_t off = KD_LOC_OFF(v->loc);
        if (seg == 0 || seg > w->nsegs || off < KD_SEG_HEADER + KD_REC_HEADER || off + 32 > w->segs[seg - 1].size ||
            v->loc + 32 > pos)
            return 0;
        if (v->val & KD_VAL_REL) {
            uint64_t rel = v->val & ~KD_VAL_REL;
            if (rel == 0 || rel > off - KD_SEG_HEADER - KD_REC_HEADER - 36) return 0;
        } else if (v->val) {
            if (v->val > ix->nvers || !(kd__ver(ix, v->val)->val & KD_VAL_REL)) return 0;
        }
    }
    for (uint32_t i = 0; i < ix->xtab_size; i++) {
        uint32_t seq = (uint32_t)ix->xtab[i];
        if (ix->xtab[i] && (seq == 0 || seq > ix->nvers || !(kd__ver(ix, seq)->val & KD_VAL_REL))) return 0;
    }
    return 1;
}

int kd__checkpoint_load(kd_db *db, int *loaded, uint64_t *log_pos) {
    kd_index *ix = &db->ix;
    char *path = kd__path_join(db->path, "checkpoint");
    kd_file *f = NULL;
    uint8_t *img = NULL;
    uint32_t *counts = NULL;
    uint64_t size = 0;
    size_t got = 0;
    int rc = KD_OK;
    *loaded = 0;
    if (!path) return kd__err(KD_NOMEM, "out of memory");
    rc = db->vfs->open(db->vfs, path, KD_OPEN_READ, &f);
    if (rc == KD_NOTFOUND) {
        rc = KD_OK;
        goto out;
    }
    if (rc != KD_OK) goto out;
    if ((rc = db->vfs->size(f, &size)) != KD_OK) goto out;
    if (size < 68 || size > SIZE_MAX / 2) {
        rc = kd__err(KD_CORRUPT, "checkpoint: %llu bytes is not a valid size", (unsigned long long)size);
        goto out;
    }
    if (!(img = kd__malloc((size_t)size))) {
        rc = kd__err(KD_NOMEM, "out of memory reading the checkpoint");
        goto out;
    }
    if ((rc = db->vfs->read(f, img, (size_t)size, 0, &got)) != KD_OK) goto out;
    if (got != size || memcmp(img, ckpt_magic, 8) != 0 || kd__get_u32(img + 60) != kd__crc32c(0, img, 60)) {
        rc = kd__err(KD_CORRUPT, "checkpoint: bad header");
        goto out;
    }
    if (kd__get_u32(img + 8) > CKPT_FORMAT) {
        rc = kd__err(KD_FORMAT, "checkpoint was written by a newer KoruDelta (format %u; this build reads up to %u)",
                     kd__get_u32(img + 8), CKPT_FORMAT);
        goto out;
    }
    if (kd__get_u32(img + size - 4) != kd__crc32c(0, img + 64, (size_t)size - 68)) {
        rc = kd__err(KD_CORRUPT, "checkpoint: body checksum mismatch");
        goto out;
    }
    uint64_t nvers = kd__get_u64(img + 16), pos = kd__get_u64(img + 24);
    int64_t last_ts = (int64_t)kd__get_u64(img + 32);
    uint32_t nns = kd__get_u32(img + 40), nkeys = kd__get_u32(img + 44), nvals = kd__get_u32(img + 48);
    kd_rd r = {img, (size_t)size - 4, 64, 0};
    for (uint32_t i = 0; i < nns && !r.bad; i++) {
        uint16_t n = kd__take16(&r);
        const uint8_t *s = kd__take(&r, n);
        char name[KD_NS_MAX + 1];
        uint32_t got_ns;
        if (!s || n == 0 || n > KD_NS_MAX) { r.bad = 1; break; }
        memcpy(name, s, n);
        name[n] = 0;
        if (kd_valid_namespace(name, 1) != KD_OK || kd__index_find_ns(ix, name) >= 0) { r.bad = 1; break; }
        if ((rc = kd__index_ns(ix, name, &got_ns)) != KD_OK) goto out;
    }
    for (uint32_t i = 0; i < nkeys && !r.bad; i++) {
        uint32_t ns = kd__take32(&r);
        uint16_t n = kd__take16(&r);
        const uint8_t *s = kd__take(&r, n);
        uint32_t k;
        if (!s || ns >= nns || n == 0 || n > KD_KEY_MAX) { r.bad = 1; break; }
        if ((rc = kd__index_key(ix, ns, (const char *)s, n, &k)) != KD_OK) goto out;
        if (k != i) { r.bad = 1; break; } /* a duplicate key */
    }
    /* The counts size the tables: they must fit in what is left (8 bytes a value, 24 a
    ** version) before anything is reserved for them (found by fuzz_dbfile: a count of
    ** 2^31 values asked for 17 GB). */
    if (!r.bad && ((uint64_t)nvals * 8 > r.len - r.off || nvers > (r.len - r.off) / 24)) r.bad = 1;
    if (!r.bad && (rc = kd__index_reserve(ix, nvers, nvals)) != KD_OK) goto out;
    for (uint32_t i = 0; i < nvals && !r.bad; i++) {
        uint32_t seq = kd__take32(&r), h = kd__take32(&r);
        if (seq == 0 || seq > nvers) r.bad = 1;
        else if (!r.bad) kd__index_add_val(ix, h, seq);
    }
    /* Count versions per key first so each key's list is allocated once. */
    size_t vstart = r.off;
    if (!r.bad && (size_t)nvers * 24 != r.len - r.off) r.bad = 1;
    if (!r.bad && !(counts = kd__calloc(nkeys ? nkeys : 1, sizeof *counts))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (uint64_t s = 0; s < nvers && !r.bad; s++) {
        const uint8_t *v = img + vstart + s * 24;
        uint32_t val = kd__get_u32(v + 16), key = kd__get_u32(v + 20);
        int val_ok = (val & KD_VAL_REL) ? (val & ~KD_VAL_REL) > 0 && (val & ~KD_VAL_REL) <= kd__get_u64(v + 8) % (1ull << 40)
                                        : val <= nvers && (val == 0 || (kd__get_u32(img + vstart + (val - 1) * 24 + 16) & KD_VAL_REL));
        if (key >= nkeys || !val_ok) r.bad = 1;
        else counts[key]++;
    }
    for (uint32_t k = 0; k < nkeys && !r.bad; k++)
        if (counts[k] > 1 && (rc = kd__index_key_reserve(ix, k, counts[k])) != KD_OK) goto out;
    for (uint64_t s = 0; s < nvers && !r.bad; s++) {
        const uint8_t *v = img + vstart + s * 24;
        kd__index_add_ver(ix, s + 1, kd__get_u64(v + 8), (int64_t)kd__get_u64(v), kd__get_u32(v + 16), kd__get_u32(v + 20));
    }
    if (!r.bad && !positions_valid(db, pos)) r.bad = 1;
    if (r.bad) {
        rc = kd__err(KD_CORRUPT, "checkpoint: malformed body");
        goto out;
    }
    db->last_seq = nvers;
    db->last_ts = last_ts;
    db->ckpt_seq = nvers;
    *log_pos = pos;
    *loaded = 1;
out:
    if (f) db->vfs->close(f);
    kd__free(path);
    kd__free(img);
    kd__free(counts);
    return rc;
}
