/*
** db.c — the public kd_* API's lifecycle and write side: open (lock, checkpoint load,
** log replay with torn-tail repair), close, and the single commit path behind kd_put,
** kd_delete and kd_batch_commit.
**
** May call: os, base, json, crypto, log, store. Locking rules are in db_int.h.
**
** A commit: (1) outside any lock, validate names and canonicalize + hash values;
** (2) under wmu and the index write lock, resolve keys, check conditions, dedup values
** and reserve every index slot the commit will need; (3) encode and append the record
** (no index lock held); (4) apply to the index, which cannot fail after (2); (5) release
** wmu and, in sync=full, wait for the group fsync before making the commit visible.
*/
#include <stdio.h>
#include <stdlib.h>

#include "base/timefmt.h"
#include "crypto/hash.h"
#include "db/db_int.h"
#include "json/json.h"

/* ---- names ------------------------------------------------------------------------ */

static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0) return 0;
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + (size_t)len > n) return 0;
        for (int j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

int kd_valid_namespace(const char *ns, int allow_system) {
    if (!ns) return kd__err(KD_INVALID, "missing namespace");
    size_t n = strlen(ns);
    if (n == 0) return kd__err(KD_INVALID, "empty namespace");
    if (n > KD_NS_MAX) return kd__err(KD_INVALID, "namespace is %zu bytes long (limit %d)", n, KD_NS_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = ns[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok)
            return kd__err(KD_INVALID, "invalid namespace \"%.*s\": character %zu must be a letter, digit, '_', '.' or '-'",
                           (int)KD_MIN(n, 64), ns, i + 1);
    }
    if (ns[0] == '_' && !allow_system)
        return kd__err(KD_INVALID, "namespace \"%s\" is reserved: names starting with '_' belong to the system", ns);
    if (ns[0] == '.' || ns[0] == '-')
        return kd__err(KD_INVALID, "invalid namespace \"%s\": must start with a letter or digit", ns);
    return KD_OK;
}

int kd_valid_key(const char *key) {
    if (!key) return kd__err(KD_INVALID, "missing key");
    size_t n = strlen(key);
    if (n == 0) return kd__err(KD_INVALID, "empty key");
    if (n > KD_KEY_MAX) return kd__err(KD_INVALID, "key is %zu bytes long (limit %d)", n, KD_KEY_MAX);
    if (key[0] == '_') return kd__err(KD_INVALID, "key \"%.64s\" is reserved: keys starting with '_' belong to the system", key);
    if (!utf8_valid((const uint8_t *)key, n)) return kd__err(KD_INVALID, "key is not valid UTF-8");
    return KD_OK;
}

/* ---- options, open, close ---------------------------------------------------------- */

void kd_options_init(kd_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->sync = KD_SYNC_FULL;
    opt->cache_bytes = 64u << 20;
    opt->max_value_bytes = 16u << 20;
    opt->segment_bytes = 64u << 20;
    opt->checkpoint_bytes = 64u << 20;
    opt->create_if_missing = 1;
}

/* The maintenance thread: every 100 ms, fsync what sync=normal left unsynced, and
** write a checkpoint once enough log has been written since the last one (so that a
** process that crashes never leaves a long log to replay). */
static void *maint_main(void *arg) {
    kd_db *db = arg;
    pthread_mutex_lock(&db->fl_mu);
    while (!db->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&db->fl_cond, &db->fl_mu, &ts);
        if (db->stopping) break;
        pthread_mutex_unlock(&db->fl_mu);
        if (db->opt.sync == KD_SYNC_NORMAL && kd__wal_sync_all(&db->wal) != KD_OK)
            kd__log(KD_LOG_ERROR, "background fsync failed: %s", kd__errmsg_get());
        pthread_mutex_lock(&db->wal.mu);
        int failed = db->wal.failed;
        pthread_mutex_unlock(&db->wal.mu);
        pthread_rwlock_rdlock(&db->ix_lock);
        uint64_t grown = kd__wal_log_bytes(&db->wal) - atomic_load(&db->ckpt_log_bytes);
        pthread_rwlock_unlock(&db->ix_lock);
        if (!failed && grown >= db->auto_ckpt_bytes && kd__checkpoint_write(db) != KD_OK)
            kd__log(KD_LOG_WARN, "automatic checkpoint failed: %s", kd__errmsg_get());
        pthread_mutex_lock(&db->fl_mu);
    }
    pthread_mutex_unlock(&db->fl_mu);
    return NULL;
}

typedef struct replay_ctx {
    kd_db *db;
    int rc;
} replay_ctx;

static int replay_rec(void *arg, const kd_rec *r) {
    replay_ctx *ctx = arg;
    kd_commit c;
    int rc = kd__commit_decode(r->payload, r->len, &c);
    if (rc == KD_OK) {
        rc = kd__db_apply_commit(ctx->db, &c, KD_LOC(r->seg, r->off + KD_REC_HEADER), 0);
        kd__commit_free(&c);
    }
    if (rc != KD_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kd__errmsg_get());
        ctx->rc = kd__err(rc == KD_NOMEM ? rc : KD_CORRUPT, "log corrupt at segment %u offset %llu: %s", r->seg,
                          (unsigned long long)r->off, msg);
        return 1;
    }
    return 0;
}

/* Replays the log from pos (a KD_LOC) into the index; cuts a torn tail. */
static int replay(kd_db *db, uint64_t pos) {
    int rc = KD_OK;
    uint8_t *img = NULL;
    uint64_t len = 0;
    kd_wal *w = &db->wal;
    for (size_t i = 0; i < w->nsegs; i++) {
        uint32_t num = w->segs[i].num;
        if (num < KD_LOC_SEG(pos)) continue;
        if ((rc = kd__wal_read_segment(w, i, &img, &len)) != KD_OK) goto out;
        int last = i + 1 == w->nsegs;
        /* A crash while creating this segment: its header is cut short, or all zeros (the
        ** size reached the disk, the sector did not). Records are written and space is
        ** zero-filled only after the header's fsync, so nothing was ever written to it. A
        ** longer all-zero segment lost a synced header: damage, which the header check
        ** below reports (as it does when the checkpoint points into the segment). */
        int unborn = len < KD_SEG_HEADER || (len == KD_SEG_HEADER && kd__all_zero(img, len) &&
                                             (num > KD_LOC_SEG(pos) || KD_LOC_OFF(pos) <= KD_SEG_HEADER));
        if (unborn && last && !db->read_only) {
            kd__log(KD_LOG_WARN, "segment %u: created by a crash before its header reached the disk; rewriting it",
                    num);
            if ((rc = kd__wal_rewrite_header(w)) != KD_OK) goto out;
            kd__free(img);
            img = NULL;
            continue;
        }
        if ((rc = kd__wal_check_header(img, len, num)) != KD_OK) goto out;
        uint64_t from = num == KD_LOC_SEG(pos) ? KD_LOC_OFF(pos) : KD_SEG_HEADER;
        if (from < KD_SEG_HEADER) from = KD_SEG_HEADER;
        if (from > len) {
            rc = kd__err(KD_CORRUPT, "segment %u is shorter (%llu bytes) than the checkpoint says (%llu)", num,
                         (unsigned long long)len, (unsigned long long)from);
            goto out;
        }
        replay_ctx ctx = {db, KD_OK};
        kd_scan_end end;
        rc = kd__wal_scan(num, img, len, from, replay_rec, &ctx, &end);
        if (rc != KD_OK || ctx.rc != KD_OK) {
            rc = ctx.rc != KD_OK ? ctx.rc : rc;
            goto out;
        }
        if (end.corrupt || (end.torn && !last)) {
            rc = kd__err(KD_CORRUPT, "log corrupt at segment %u offset %llu: %s%s", num,
                         (unsigned long long)end.bad_off, end.why,
                         end.corrupt ? " (valid records follow, so this is not a torn write)" : "");
            goto out;
        }
        if (end.torn && !end.zero_tail) {
            kd__log(KD_LOG_WARN, "segment %u: cutting a torn tail of %llu bytes at offset %llu (%s%s)", num,
                    (unsigned long long)(len - end.good_end), (unsigned long long)end.good_end, end.why,
                    end.lost_pages ? "; later records follow a zeroed sector lost by a power cut: they were "
                                     "never acknowledged and are dropped too" : "");
            if (!db->read_only && (rc = kd__wal_truncate_active(w, end.good_end)) != KD_OK) goto out;
        }
        w->segs[i].size = end.good_end;
        kd__free(img);
        img = NULL;
    }
out:
    kd__free(img);
    return rc;
}

static int open_locked(kd_db *db) {
    int rc, loaded = 0;
    uint64_t pos = KD_LOC(1, KD_SEG_HEADER);
    if ((rc = kd__wal_open(&db->wal, db->vfs, db->path, db->opt.segment_bytes, db->read_only,
                           db->opt.create_if_missing)) != KD_OK)
        return rc;
    db->wal.max_bytes = db->opt.max_db_bytes;
    if ((rc = kd__index_init(&db->ix)) != KD_OK) return rc;
    kd__cache_init(&db->cache, db->opt.cache_bytes);
    rc = kd__checkpoint_load(db, &loaded, &pos);
    if (rc == KD_FORMAT || rc == KD_NOMEM) return rc;
    if (rc != KD_OK || !loaded || KD_LOC_SEG(pos) == 0 || KD_LOC_SEG(pos) > db->wal.nsegs ||
        KD_LOC_OFF(pos) > db->wal.segs[KD_LOC_SEG(pos) - 1].size) {
        if (rc != KD_OK || loaded)
            kd__log(KD_LOG_WARN, "ignoring checkpoint (%s); replaying the whole log",
                    rc != KD_OK ? kd__errmsg_get() : "it is ahead of the log");
        kd__index_free(&db->ix);
        kd__cache_free(&db->cache);
        if ((rc = kd__index_init(&db->ix)) != KD_OK) return rc;
        kd__cache_init(&db->cache, db->opt.cache_bytes);
        db->last_seq = 0;
        db->last_ts = 0;
        db->ckpt_seq = 0;
        pos = KD_LOC(1, KD_SEG_HEADER);
    }
    uint64_t covered = KD_LOC_OFF(pos);
    for (size_t i = 0; i + 1 < KD_LOC_SEG(pos) && i < db->wal.nsegs; i++) covered += db->wal.segs[i].size;
    uint64_t covered_seq = db->last_seq;
    if ((rc = replay(db, pos)) != KD_OK) return rc;
    kd__wal_recount(&db->wal);
    /* Records replayed from the newest segment may still be only in the OS page cache
    ** (a crash between write and fsync): make them durable before anyone reads them or
    ** a checkpoint covers them. Older segments were synced when the log rotated, and
    ** what the checkpoint covers was durable before it was written. */
    if (!db->read_only && db->last_seq > covered_seq &&
        (rc = db->vfs->sync(db->wal.segs[db->wal.nsegs - 1].file)) != KD_OK)
        return rc;
    atomic_store(&db->ckpt_log_bytes, db->ckpt_seq ? covered : 0);
    atomic_store(&db->visible_seq, db->last_seq);
    db->wal.written_seq = db->wal.durable_seq = db->last_seq;
    return KD_OK;
}

int kd_open(const char *path, const kd_options *opt, kd_db **out) {
    int rc;
    kd__err_clear();
    *out = NULL;
    if (!path || !*path) return kd__err(KD_INVALID, "empty database path");
    kd_db *db = kd__calloc(1, sizeof *db);
    if (!db) return kd__err(KD_NOMEM, "out of memory");
    if (opt) db->opt = *opt;
    else kd_options_init(&db->opt);
    if (db->opt.max_value_bytes == 0) db->opt.max_value_bytes = 16u << 20;
    if (db->opt.segment_bytes < 4096) db->opt.segment_bytes = 64u << 20;
    if (db->opt.segment_bytes > (1ull << 40)) db->opt.segment_bytes = 1ull << 40;
    if (db->opt.sync > KD_SYNC_OFF) {
        kd__free(db);
        return kd__err(KD_INVALID, "unknown sync mode %d", (int)db->opt.sync);
    }
    if ((db->opt.hnsw_m && (db->opt.hnsw_m < 2 || db->opt.hnsw_m > 256)) || db->opt.hnsw_ef_construction > 100000) {
        uint32_t m = db->opt.hnsw_m, efc = db->opt.hnsw_ef_construction;
        kd__free(db);
        return kd__err(KD_INVALID, "hnsw_m must be 2..256 and hnsw_ef_construction 1..100000 (0 = default), not %u and %u",
                       m, efc);
    }
    db->vfs = db->opt.vfs ? db->opt.vfs : kd__os_unix();
    {   /* BLAKE3 detects CPU features on first use through an unsynchronized global:
        ** do it here, before the caller's threads can hash concurrently. */
        uint8_t h[32];
        kd__blake3("", 0, h);
    }
    db->read_only = db->opt.read_only;
    pthread_rwlock_init(&db->ix_lock, NULL);
    pthread_mutex_init(&db->wmu, NULL);
    pthread_mutex_init(&db->list_mu, NULL);
    pthread_mutex_init(&db->fl_mu, NULL);
    pthread_cond_init(&db->fl_cond, NULL);
    pthread_mutex_init(&db->ckpt_mu, NULL);
    pthread_mutex_init(&db->ext_mu, NULL);
    db->auto_ckpt_bytes = db->opt.checkpoint_bytes ? db->opt.checkpoint_bytes : UINT64_MAX;
    if (!(db->path = kd__strdup(path))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto fail;
    }
    if (!db->vfs->exists(db->vfs, path)) {
        if (!db->opt.create_if_missing || db->read_only) {
            rc = kd__err(KD_NOTFOUND, "no database at %s", path);
            goto fail;
        }
        if ((rc = db->vfs->mkdirs(db->vfs, path)) != KD_OK) goto fail;
    }
    if (!db->read_only) {
        size_t n = strlen(path) + 8;
        char *lp = kd__malloc(n);
        long holder = 0;
        if (!lp) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto fail;
        }
        snprintf(lp, n, "%s/LOCK", path);
        rc = db->vfs->lock(db->vfs, lp, &db->lock, &holder);
        kd__free(lp);
        if (rc == KD_BUSY) {
            if (holder > 0) rc = kd__err(KD_BUSY, "database %s is in use by pid %ld", path, holder);
            else rc = kd__err(KD_BUSY, "database %s is in use by another process", path);
        }
        if (rc != KD_OK) goto fail;
    }
    if ((rc = open_locked(db)) != KD_OK) goto fail;
    if (!db->read_only) {
        if (pthread_create(&db->maint, NULL, maint_main, db) != 0) {
            rc = kd__err(KD_NOMEM, "cannot start the background maintenance thread");
            goto fail;
        }
        db->maint_running = 1;
    }
    *out = db;
    kd__err_clear();
    return KD_OK;
fail: {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", kd__errmsg_get());
    db->opt.read_only = 1; /* no checkpoint on the way out */
    db->read_only = 1;
    kd_close(db);
    return kd__err(rc, "%s", msg);
}
}

int kd_close(kd_db *db) {
    int rc = KD_OK, r;
    if (!db) return KD_OK;
    for (int i = 0; i < KD_HOOKS; i++) atomic_store(&db->hooks[i], NULL);
    if (db->subs_free) db->subs_free(db->subs); /* stops the subscribers' threads first */
    if (db->views_free) db->views_free(db->views);
    if (db->maint_running) {
        pthread_mutex_lock(&db->fl_mu);
        db->stopping = 1;
        pthread_cond_signal(&db->fl_cond);
        pthread_mutex_unlock(&db->fl_mu);
        pthread_join(db->maint, NULL);
    }
    /* The vector indexes are saved before the log's last sync: a saved index that names
    ** versions the log lost is recognised and ignored when loaded (vindex.c). */
    if (db->vec_save && !db->read_only && db->wal.dir && !db->wal.failed)
        (void)db->vec_save(db, db->vec, 1); /* failing only costs a rebuild; logged there */
    pthread_mutex_lock(&db->ext_mu);
    if (db->vec_free) db->vec_free(db->vec);
    db->vec = NULL;
    db->vec_free = NULL;
    db->vec_save = NULL;
    db->vec_stats = NULL;
    pthread_mutex_unlock(&db->ext_mu);
    if (db->wal.dir && !db->read_only) {
        if ((r = kd__wal_sync_all(&db->wal)) != KD_OK && rc == KD_OK) rc = r;
        if (rc == KD_OK && !db->wal.failed && db->last_seq != db->ckpt_seq &&
            (r = kd__checkpoint_write(db)) != KD_OK) {
            kd__log(KD_LOG_WARN, "checkpoint at close failed: %s", kd__errmsg_get());
            rc = r;
        }
    }
    if (db->wal.dir) kd__wal_close(&db->wal);
    kd__index_free(&db->ix);
    if (db->cache.tab || db->cache.budget) kd__cache_free(&db->cache);
    if (db->lock) db->vfs->unlock(db->lock);
    kd__buf_free(&db->rec);
    pthread_rwlock_destroy(&db->ix_lock);
    pthread_mutex_destroy(&db->wmu);
    pthread_mutex_destroy(&db->list_mu);
    pthread_mutex_destroy(&db->fl_mu);
    pthread_cond_destroy(&db->fl_cond);
    pthread_mutex_destroy(&db->ckpt_mu);
    pthread_mutex_destroy(&db->ext_mu);
    kd__free(db->path);
    kd__free(db);
    return rc;
}

int kd_sync(kd_db *db) {
    kd__err_clear();
    if (db->read_only) return KD_OK;
    int rc = kd__wal_sync_all(&db->wal);
    if (rc == KD_OK) {
        uint64_t d;
        pthread_mutex_lock(&db->wal.mu);
        d = db->wal.durable_seq;
        pthread_mutex_unlock(&db->wal.mu);
        uint64_t v = atomic_load(&db->visible_seq);
        while (v < d && !atomic_compare_exchange_weak(&db->visible_seq, &v, d)) {}
    }
    return rc;
}

int kd_checkpoint(kd_db *db) {
    kd__err_clear();
    if (db->read_only) return kd__err(KD_READONLY, "database opened read-only");
    return kd__checkpoint_write(db);
}

/* ---- applying commits (replay) ------------------------------------------------------ */

static uint32_t hash32(const uint8_t h[32]) { return kd__get_u32(h); }

/* Finds a stored value by full hash: the seq of the version that stored it, or 0.
** Caller holds the index. */
static int find_value(kd_db *db, const uint8_t hash[32], uint32_t *found) {
    uint32_t it = 0, v;
    *found = 0;
    while ((v = kd__index_val_next(&db->ix, hash32(hash), &it)) != 0) {
        const uint8_t *h = kd__wal_at(&db->wal, kd__ver_value_loc(&db->ix, kd__ver(&db->ix, v)) - 36);
        if (memcmp(h, hash, 32) == 0) {
            *found = v;
            return KD_OK;
        }
    }
    return KD_OK;
}

static int valid_stored_name(const char *ns, uint16_t nslen, const char *key, uint16_t keylen) {
    char nsb[KD_NS_MAX + 1];
    if (nslen > KD_NS_MAX || keylen > KD_KEY_MAX) return 0;
    memcpy(nsb, ns, nslen);
    nsb[nslen] = 0;
    if (kd_valid_namespace(nsb, 1) != KD_OK) return 0;
    if (memchr(key, 0, keylen) || !utf8_valid((const uint8_t *)key, keylen)) return 0;
    return 1;
}

int kd__db_apply_commit(kd_db *db, const kd_commit *c, uint64_t payload_loc, int verify_ids) {
    int rc;
    kd_index *ix = &db->ix;
    if (c->first_seq != db->last_seq + 1)
        return kd__err(KD_CORRUPT, "commit has seq %llu, expected %llu", (unsigned long long)c->first_seq,
                       (unsigned long long)db->last_seq + 1);
    if ((rc = kd__index_reserve(ix, c->nvers, c->nvals)) != KD_OK) return rc;
    /* For each value of the record: the seq of an older version that stored the same
    ** content (then this copy is a duplicate and unused), or 0 when it is new here. A
    ** per-record table finds a version's value among the record's values. */
    size_t tsize = 16;
    while (tsize < 2 * (size_t)c->nvals) tsize *= 2;
    uint32_t *older = kd__calloc(c->nvals + tsize + 1, sizeof *older);
    if (!older) return kd__err(KD_NOMEM, "out of memory");
    uint32_t *tab = older + c->nvals; /* value index + 1 */
    for (uint32_t i = 0; i < c->nvals; i++) {
        if ((rc = find_value(db, c->vals[i].hash, &older[i])) != KD_OK) goto out;
        uint32_t j = hash32(c->vals[i].hash) & (uint32_t)(tsize - 1);
        while (tab[j]) j = (j + 1) & (uint32_t)(tsize - 1);
        tab[j] = i + 1;
    }
    for (uint32_t i = 0; i < c->nvers; i++) {
        const kd_cver *v = &c->vers[i];
        uint32_t nsi, ki, val = 0;
        uint64_t seq = c->first_seq + i;
        char nsb[KD_NS_MAX + 1];
        if (!valid_stored_name(v->ns, v->nslen, v->key, v->keylen)) {
            rc = kd__err(KD_CORRUPT, "version %u has an invalid namespace or key", i);
            goto out;
        }
        memcpy(nsb, v->ns, v->nslen);
        nsb[v->nslen] = 0;
        if ((rc = kd__index_ns(ix, nsb, &nsi)) != KD_OK) goto out;
        if ((rc = kd__index_key(ix, nsi, v->key, v->keylen, &ki)) != KD_OK) goto out;
        if ((rc = kd__index_key_reserve(ix, ki, 1)) != KD_OK) goto out;
        if (v->value_hash) {
            uint32_t id_off = (uint32_t)(v->id - c->base);
            uint32_t j = hash32(v->value_hash) & (uint32_t)(tsize - 1);
            while (tab[j] && memcmp(c->vals[tab[j] - 1].hash, v->value_hash, 32) != 0) j = (j + 1) & (uint32_t)(tsize - 1);
            if (tab[j]) {
                uint32_t x = tab[j] - 1;
                if (older[x]) val = older[x];
                else if (c->vals[x].off < id_off) {
                    val = KD_VAL_REL | (id_off - c->vals[x].off);
                    older[x] = (uint32_t)seq; /* first use: this version is the value's storer */
                    kd__index_add_val(ix, hash32(v->value_hash), seq);
                }
            } else if ((rc = find_value(db, v->value_hash, &val)) != KD_OK)
                goto out;
            if (!val) {
                rc = kd__err(KD_CORRUPT, "version %u refers to a value that is not stored", i);
                goto out;
            }
        }
        if (verify_ids) {
            uint8_t id[32];
            kd__version_id(v->ns, v->nslen, v->key, v->keylen, v->value_hash == NULL, v->value_hash,
                           c->ts, v->prev, id);
            if (memcmp(id, v->id, 32) != 0) {
                rc = kd__err(KD_CORRUPT, "version %u: id does not match its header", i);
                goto out;
            }
        }
        kd__index_add_ver(ix, c->first_seq + i, payload_loc + (uint64_t)(v->id - c->base), c->ts, val, ki);
    }
    db->last_seq = c->first_seq + c->nvers - 1;
    if (c->ts > db->last_ts) db->last_ts = c->ts;
out:
    kd__free(older);
    return rc;
}

/* ---- the commit path ----------------------------------------------------------------- */

typedef struct kd_op {
    char *ns, *key;
    int del;
    char *json;          /* as given (puts) */
    size_t json_len;
    /* filled while committing */
    char *canon;
    size_t canon_len;
    uint8_t hash[32];
    uint32_t key_num;
    int has_prev;
    uint8_t prev[32];
    uint32_t val;        /* existing value number + 1, or 0 */
    int newval;          /* index into this commit's new values, or -1 */
    uint8_t id[32];
    uint32_t id_off;     /* where the id sits in the commit payload */
    uint64_t prev_loc;   /* log position of the previous version's id */
    int prev_live;       /* the previous version is not a tombstone (insert vs update) */
} kd_op;

struct kd_batch {
    kd_op *ops;
    size_t n, cap;
    int sys;             /* system namespaces allowed (kd__put_system, imports) */
    int64_t import_ts;   /* kd_batch_commit_at: the commit's timestamp; 0 = now */
    const uint8_t (*expect)[32]; /* kd_batch_commit_at: each op's version id, or NULL */
};

kd_batch *kd_batch_new(void) { return kd__calloc(1, sizeof(kd_batch)); }

static void op_clear(kd_op *o) {
    kd__free(o->ns);
    kd__free(o->key);
    kd__free(o->json);
    kd__free(o->canon);
    memset(o, 0, sizeof *o);
}

void kd_batch_free(kd_batch *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) op_clear(&b->ops[i]);
    kd__free(b->ops);
    kd__free(b);
}

size_t kd_batch_count(const kd_batch *b) { return b ? b->n : 0; }

static int batch_add(kd_batch *b, const char *ns, const char *key, const char *json, size_t len, int del) {
    if (!b) return kd__err(KD_INVALID, "NULL batch");
    if (!ns || !key) return kd__err(KD_INVALID, "missing namespace or key");
    if (!del && !json) return kd__err(KD_INVALID, "missing value");
    if (kd__grow(&b->ops, &b->cap, b->n, sizeof *b->ops, 8) != KD_OK) return KD_NOMEM;
    kd_op *o = &b->ops[b->n];
    memset(o, 0, sizeof *o);
    o->del = del;
    o->ns = kd__strdup(ns);
    o->key = kd__strdup(key);
    if (!del) {
        o->json = kd__strndup(json, len);
        o->json_len = len;
    }
    if (!o->ns || !o->key || (!del && !o->json)) {
        op_clear(o);
        return kd__err(KD_NOMEM, "out of memory");
    }
    b->n++;
    return KD_OK;
}

int kd_batch_put(kd_batch *b, const char *ns, const char *key, const char *json, size_t len) {
    return batch_add(b, ns, key, json, len, 0);
}
int kd_batch_delete(kd_batch *b, const char *ns, const char *key) {
    return batch_add(b, ns, key, NULL, 0, 1);
}

/* "item 3 (ns/key): " in batches of more than one item, "" otherwise. */
static const char *item_prefix(char *buf, size_t n, const kd_batch *b, size_t i) {
    if (b->n <= 1) return "";
    snprintf(buf, n, "item %zu (%.64s/%.64s): ", i + 1, b->ops[i].ns, b->ops[i].key);
    return buf;
}

static int prepare_op(kd_db *db, kd_batch *b, size_t i) {
    kd_op *o = &b->ops[i];
    char pre[160];
    int rc;
    if ((rc = kd_valid_namespace(o->ns, b->sys)) != KD_OK ||
        (rc = kd_valid_key(o->key)) != KD_OK) {
        char m[512];
        snprintf(m, sizeof m, "%s", kd__errmsg_get());
        return kd__err(rc, "%s%s", item_prefix(pre, sizeof pre, b, i), m);
    }
    if (o->del) return KD_OK;
    kd_buf out = KD_BUF_INIT;
    kd_json_err jerr;
    rc = kd__json_canonicalize(o->json, o->json_len, &out, &jerr);
    if (rc != KD_OK) {
        kd__buf_free(&out);
        if (rc == KD_NOMEM) return kd__err(KD_NOMEM, "out of memory");
        return kd__err(KD_INVALID, "%sinvalid JSON at byte %zu: %s", item_prefix(pre, sizeof pre, b, i),
                       jerr.pos, jerr.msg);
    }
    if (out.len > db->opt.max_value_bytes) {
        size_t l = out.len;
        kd__buf_free(&out);
        return kd__err(KD_TOOBIG, "%svalue is %zu bytes, over the limit of %zu bytes",
                       item_prefix(pre, sizeof pre, b, i), l, db->opt.max_value_bytes);
    }
    o->canon = kd__buf_take(&out, &o->canon_len);
    if (!o->canon) return kd__err(KD_NOMEM, "out of memory");
    kd__blake3(o->canon, o->canon_len, o->hash);
    return KD_OK;
}

static int cmp_op_keys(const void *a, const void *b, void *ctx) {
    const kd_op *ops = ctx;
    const kd_op *x = &ops[*(const size_t *)a], *y = &ops[*(const size_t *)b];
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->key, y->key);
}

static int check_duplicates(kd_batch *b) {
    if (b->n < 2) return KD_OK;
    size_t *ord = kd__malloc(b->n * sizeof *ord);
    if (!ord) return kd__err(KD_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++) ord[i] = i;
    qsort_r(ord, b->n, sizeof *ord, cmp_op_keys, b->ops);
    int rc = KD_OK;
    for (size_t i = 1; i < b->n; i++)
        if (cmp_op_keys(&ord[i - 1], &ord[i], b->ops) == 0) {
            size_t a = KD_MIN(ord[i - 1], ord[i]), c = KD_MAX(ord[i - 1], ord[i]);
            rc = kd__err(KD_INVALID, "items %zu and %zu both write %s/%s: a key may appear once in a batch", a + 1,
                         c + 1, b->ops[a].ns, b->ops[a].key);
            break;
        }
    kd__free(ord);
    return rc;
}

int kd__id_has_prefix(const uint8_t id[32], const char *hex, size_t n) {
    for (size_t i = 0; i < n && i < 64; i++) {
        int c = hex[i];
        int nib = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        int have = i % 2 == 0 ? id[i / 2] >> 4 : id[i / 2] & 15;
        if (nib != have) return 0;
    }
    return n <= 64;
}

int kd__hex_prefix_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 8 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* Under wmu + index write lock: keys, conditions, value dedup, reservations. */
static int resolve_ops(kd_db *db, kd_batch *b, const kd_put_cond *cond, uint32_t *nnew) {
    kd_index *ix = &db->ix;
    int rc;
    char pre[160];
    *nnew = 0;
    size_t seen_size = 16;
    while (seen_size < b->n * 2) seen_size *= 2;
    uint32_t seen_mask = (uint32_t)(seen_size - 1);
    size_t *seen = kd__calloc(seen_size, sizeof *seen);
    if (!seen) return kd__err(KD_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++) {
        kd_op *o = &b->ops[i];
        uint32_t nsi;
        if ((rc = kd__index_ns(ix, o->ns, &nsi)) != KD_OK) goto out;
        if ((rc = kd__index_key(ix, nsi, o->key, strlen(o->key), &o->key_num)) != KD_OK) goto out;
        if ((rc = kd__index_key_reserve(ix, o->key_num, 1)) != KD_OK) goto out;
        kd_key *k = kd__key(ix, o->key_num);
        const kd_ver *cur = k->nvers ? kd__ver(ix, kd__key_seq(k, k->nvers - 1)) : NULL;
        int live = cur && cur->val != 0;
        o->has_prev = cur != NULL;
        o->prev_live = live;
        if (cur) o->prev_loc = cur->loc; /* the id itself is read after the lock (read_prev_ids) */
        uint8_t cur_id[32];
        if (cur && cond && (rc = kd__wal_pread(&db->wal, cur->loc, cur_id, 32)) != KD_OK) goto out;
        if (o->del && !live) {
            if (cur)
                rc = kd__err(KD_NOTFOUND, "%s%s/%s not found (already deleted)", item_prefix(pre, sizeof pre, b, i),
                               o->ns, o->key);
            else
                rc = kd__err(KD_NOTFOUND, "%s%s/%s not found", item_prefix(pre, sizeof pre, b, i), o->ns, o->key);
            goto out;
        }
        if (cond && cond->if_absent && live) {
            char hx[65];
            kd_hex(cur_id, hx);
            rc = kd__err(KD_CONFLICT, "%s/%s already exists (current version %s)", o->ns, o->key, hx);
            goto out;
        }
        if (cond && cond->if_version) {
            if (!kd__hex_prefix_valid(cond->if_version)) {
                rc = kd__err(KD_INVALID, "invalid version id \"%s\": expected 8 to 64 hex digits", cond->if_version);
                goto out;
            }
            if (!live) {
                rc = kd__err(KD_CONFLICT, "%s/%s has no current version (expected %s)", o->ns, o->key,
                             cond->if_version);
                goto out;
            }
            if (!kd__id_has_prefix(cur_id, cond->if_version, strlen(cond->if_version))) {
                char hx[65];
                kd_hex(cur_id, hx);
                rc = kd__err(KD_CONFLICT, "%s/%s is at version %s, not %s", o->ns, o->key, hx, cond->if_version);
                goto out;
            }
        }
        o->val = 0;
        o->newval = -1;
        if (!o->del) {
            /* The same value earlier in this commit? (per-commit table of op indexes) */
            uint32_t j = kd__get_u32(o->hash) & seen_mask;
            size_t dup = 0;
            while (seen[j]) {
                kd_op *p = &b->ops[seen[j] - 1];
                if (memcmp(p->hash, o->hash, 32) == 0) {
                    dup = seen[j];
                    break;
                }
                j = (j + 1) & seen_mask;
            }
            if (dup) {
                o->val = b->ops[dup - 1].val;
                o->newval = b->ops[dup - 1].newval;
            } else {
                seen[j] = i + 1;
                if ((rc = find_value(db, o->hash, &o->val)) != KD_OK) goto out;
                if (!o->val) o->newval = (int)(*nnew)++;
            }
        }
    }
    rc = kd__index_reserve(ix, b->n, *nnew);
out:
    kd__free(seen);
    return rc;
}

/* Reads the previous versions' ids with pread rather than through the log's mapping, so
** writing does not pull the whole log into the process's resident memory. Called with
** wmu held (the keys' newest versions cannot change) and no index lock. */
static int read_prev_ids(kd_db *db, kd_batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        kd_op *o = &b->ops[i];
        int rc;
        if (o->has_prev && (rc = kd__wal_pread(&db->wal, o->prev_loc, o->prev, 32)) != KD_OK) return rc;
    }
    return KD_OK;
}

static void encode_commit(kd_db *db, kd_batch *b, uint64_t first_seq, int64_t ts, uint32_t nnew,
                          uint32_t *valoff) {
    kd_buf *r = &db->rec;
    kd__buf_reset(r);
    kd__buf_put_u64(r, first_seq);
    kd__buf_put_u64(r, (uint64_t)ts);
    kd__buf_put_u32(r, nnew);
    kd__buf_put_u32(r, (uint32_t)b->n);
    uint32_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        kd_op *o = &b->ops[i];
        if (o->del || o->newval != (int)k) continue;
        kd__buf_append(r, o->hash, 32);
        kd__buf_put_u32(r, (uint32_t)o->canon_len);
        valoff[k++] = (uint32_t)r->len;
        kd__buf_append(r, o->canon, o->canon_len);
    }
    for (size_t i = 0; i < b->n; i++) {
        kd_op *o = &b->ops[i];
        size_t nslen = strlen(o->ns), keylen = strlen(o->key);
        kd__version_id(o->ns, nslen, o->key, keylen, o->del, o->del ? NULL : o->hash, ts,
                       o->has_prev ? o->prev : NULL, o->id);
        kd__buf_put_u8(r, (uint8_t)((o->del ? KD_VF_DELETED : 0) | (o->has_prev ? KD_VF_PREV : 0)));
        kd__buf_put_u16(r, (uint16_t)nslen);
        kd__buf_put_u16(r, (uint16_t)keylen);
        kd__buf_append(r, o->ns, nslen);
        kd__buf_append(r, o->key, keylen);
        if (!o->del) kd__buf_append(r, o->hash, 32);
        if (o->has_prev) kd__buf_append(r, o->prev, 32);
        o->id_off = (uint32_t)r->len;
        kd__buf_append(r, o->id, 32);
    }
}

static void publish(kd_db *db, uint64_t seq) {
    uint64_t v = atomic_load(&db->visible_seq);
    while (v < seq && !atomic_compare_exchange_weak(&db->visible_seq, &v, seq)) {}
}

static int commit(kd_db *db, kd_batch *b, const kd_put_cond *cond, uint64_t *first, int64_t *ts_out) {
    int rc;
    uint32_t nnew = 0, *valoff = NULL;
    if (db->read_only) return kd__err(KD_READONLY, "database opened read-only");
    if (b->n == 0) return kd__err(KD_INVALID, "empty batch");
    for (size_t i = 0; i < b->n; i++)
        if ((rc = prepare_op(db, b, i)) != KD_OK) return rc;
    if ((rc = check_duplicates(b)) != KD_OK) return rc;

    pthread_mutex_lock(&db->wmu);
    if (db->wal.failed) {
        rc = kd__err(KD_READONLY, "an earlier write or fsync failed; reopen the database to continue writing");
        goto unlock;
    }
    pthread_rwlock_wrlock(&db->ix_lock);
    rc = resolve_ops(db, b, cond, &nnew);
    pthread_rwlock_unlock(&db->ix_lock);
    if (rc == KD_OK) rc = read_prev_ids(db, b);
    if (rc != KD_OK) goto unlock;
    if (!(valoff = kd__malloc((nnew + 1) * sizeof *valoff))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto unlock;
    }
    int64_t now = db->vfs->now_us(db->vfs);
    int64_t ts = now > db->last_ts ? now : db->last_ts + 1;
    if (b->import_ts) {
        if (b->import_ts <= db->last_ts) {
            char t1[40], t2[40];
            kd_format_time(b->import_ts, t1);
            kd_format_time(db->last_ts, t2);
            rc = kd__err(KD_CONFLICT, "cannot import a commit of %s: the database already has one of %s (imports go in time order, into a database that is older)",
                         t1, t2);
            goto unlock;
        }
        ts = b->import_ts;
    }
    uint64_t first_seq = db->last_seq + 1;
    encode_commit(db, b, first_seq, ts, nnew, valoff);
    for (size_t i = 0; b->expect && i < b->n; i++)
        if (memcmp(b->ops[i].id, b->expect[i], 32) != 0) {
            char pre[160];
            rc = kd__err(KD_CONFLICT, "%sthe version would not have the id it was exported with (its key's earlier history differs here)",
                         item_prefix(pre, sizeof pre, b, i));
            goto unlock;
        }
    if (db->rec.oom) {
        kd__buf_free(&db->rec);
        rc = kd__err(KD_NOMEM, "out of memory");
        goto unlock;
    }
    if (db->rec.len > UINT32_MAX) {
        rc = kd__err(KD_TOOBIG, "batch too large (%zu bytes)", db->rec.len);
        goto unlock;
    }
    uint64_t loc;
    if ((rc = kd__wal_append(&db->wal, KD_REC_COMMIT, db->rec.p, (uint32_t)db->rec.len, &loc)) != KD_OK)
        goto unlock;

    /* Apply: every slot was reserved in resolve_ops, so nothing here can fail. */
    pthread_rwlock_wrlock(&db->ix_lock);
    for (size_t i = 0, k = 0; i < b->n; i++) {
        kd_op *o = &b->ops[i];
        if (o->del || o->newval != (int)k) continue;
        kd__index_add_val(&db->ix, kd__get_u32(o->hash), first_seq + i); /* its storer */
        k++;
    }
    for (size_t i = 0; i < b->n; i++) {
        kd_op *o = &b->ops[i];
        if (db->cache.budget) kd__cache_invalidate(&db->cache, kd__cache_hash(o->ns, o->key), o->ns, o->key);
        /* A value stored by this record is found from the version's own position. */
        uint32_t val = o->del ? 0 : o->val ? o->val : KD_VAL_REL | (o->id_off - valoff[o->newval]);
        kd__index_add_ver(&db->ix, first_seq + i, loc + o->id_off, ts, val, o->key_num);
    }
    pthread_rwlock_unlock(&db->ix_lock);
    db->last_seq = first_seq + b->n - 1;
    db->writes += b->n;
    db->last_ts = ts;
    kd__wal_written(&db->wal, db->last_seq);
    uint64_t last = db->last_seq;
    if (db->opt.sync != KD_SYNC_FULL) publish(db, last);
    pthread_mutex_unlock(&db->wmu);
    kd__free(valoff);
    if (db->opt.sync == KD_SYNC_FULL) {
        if ((rc = kd__wal_wait_durable(&db->wal, last)) != KD_OK) return rc;
        publish(db, last);
    }
    *first = first_seq;
    *ts_out = ts;
    for (int i = 0; i < KD_HOOKS; i++) {
        void (*hook)(kd_db *) = atomic_load(&db->hooks[i]);
        if (hook) hook(db);
    }
    return KD_OK;
unlock:
    pthread_mutex_unlock(&db->wmu);
    kd__free(valoff);
    return rc;
}

/* The caller's copies of ns and key, made before the commit: once a write has landed,
** nothing may fail (a caller told "out of memory" would retry and write it twice). */
static int out_names(kd_entry *out, const char *ns, const char *key) {
    if (!out) return KD_OK;
    out->ns = kd__strdup(ns);
    out->key = kd__strdup(key);
    if (out->ns && out->key) return KD_OK;
    kd_entry_clear(out);
    return kd__err(KD_NOMEM, "out of memory");
}

/* Describes the committed op in e, whose ns and key out_names filled. */
static void fill_from_op(const kd_op *o, uint64_t seq, int64_t ts, kd_entry *e) {
    char *ns = e->ns, *key = e->key;
    memset(e, 0, sizeof *e);
    e->ns = ns;
    e->key = key;
    e->seq = seq;
    e->timestamp = ts;
    memcpy(e->version_id, o->id, 32);
    if (!o->del) memcpy(e->value_hash, o->hash, 32);
    e->has_previous = o->has_prev;
    if (o->has_prev) memcpy(e->previous_version, o->prev, 32);
    e->deleted = o->del;
}

static int put_common(kd_db *db, const char *ns, const char *key, const char *json, size_t len,
                      const kd_put_cond *cond, kd_entry *out, int sys) {
    kd__err_clear();
    if (out) memset(out, 0, sizeof *out);
    if (!json) return kd__err(KD_INVALID, "missing value");
    kd_batch b = {0};
    kd_op op;
    memset(&op, 0, sizeof op);
    op.ns = (char *)ns;
    op.key = (char *)key;
    op.json = (char *)json;
    op.json_len = len;
    b.ops = &op;
    b.n = b.cap = 1;
    b.sys = sys;
    if (!ns || !key) return kd__err(KD_INVALID, "missing namespace or key");
    uint64_t seq = 0;
    int64_t ts = 0;
    int rc = out_names(out, ns, key);
    if (rc == KD_OK) rc = commit(db, &b, cond, &seq, &ts);
    if (rc == KD_OK && out) {
        fill_from_op(&op, seq, ts, out);
        out->change = op.prev_live ? KD_CHANGE_UPDATE : KD_CHANGE_INSERT;
    } else if (out) {
        kd_entry_clear(out);
    }
    kd__free(op.canon);
    return rc;
}

int kd_put(kd_db *db, const char *ns, const char *key, const char *json, size_t len,
           const kd_put_cond *cond, kd_entry *out) {
    return put_common(db, ns, key, json, len, cond, out, 0);
}

int kd__put_system(kd_db *db, const char *ns, const char *key, const char *json, size_t len,
                   const kd_put_cond *cond, kd_entry *out) {
    return put_common(db, ns, key, json, len, cond, out, 1);
}

static int delete_common(kd_db *db, const char *ns, const char *key, kd_entry *out, int sys) {
    kd__err_clear();
    if (out) memset(out, 0, sizeof *out);
    if (!ns || !key) return kd__err(KD_INVALID, "missing namespace or key");
    kd_batch b = {0};
    kd_op op;
    memset(&op, 0, sizeof op);
    op.ns = (char *)ns;
    op.key = (char *)key;
    op.del = 1;
    b.ops = &op;
    b.n = b.cap = 1;
    b.sys = sys;
    uint64_t seq = 0;
    int64_t ts = 0;
    int rc = out_names(out, ns, key);
    if (rc == KD_OK) rc = commit(db, &b, NULL, &seq, &ts);
    if (rc == KD_OK && out) {
        fill_from_op(&op, seq, ts, out);
        out->change = KD_CHANGE_DELETE;
    } else if (out) {
        kd_entry_clear(out);
    }
    return rc;
}

int kd_delete(kd_db *db, const char *ns, const char *key, kd_entry *out) {
    return delete_common(db, ns, key, out, 0);
}

int kd__delete_system(kd_db *db, const char *ns, const char *key, kd_entry *out) {
    return delete_common(db, ns, key, out, 1);
}

int kd_batch_commit_at(kd_db *db, kd_batch *b, int64_t ts, const uint8_t (*expected_ids)[32],
                       uint64_t *first_seq, uint64_t *last_seq) {
    kd__err_clear();
    if (!b) return kd__err(KD_INVALID, "NULL batch");
    if (ts < 0) return kd__err(KD_INVALID, "an imported commit needs a timestamp after the epoch");
    b->sys = 1;
    b->import_ts = ts;
    b->expect = expected_ids;
    int rc = kd_batch_commit(db, b, first_seq, last_seq);
    b->sys = 0;
    b->import_ts = 0;
    b->expect = NULL;
    return rc;
}

int kd_batch_commit(kd_db *db, kd_batch *b, uint64_t *first_seq, uint64_t *last_seq) {
    kd__err_clear();
    if (!b) return kd__err(KD_INVALID, "NULL batch");
    uint64_t seq = 0;
    int64_t ts = 0;
    for (size_t i = 0; i < b->n; i++) {
        kd__free(b->ops[i].canon);
        b->ops[i].canon = NULL;
    }
    int rc = commit(db, b, NULL, &seq, &ts);
    if (rc == KD_OK) {
        if (first_seq) *first_seq = seq;
        if (last_seq) *last_seq = seq + b->n - 1;
    }
    return rc;
}

