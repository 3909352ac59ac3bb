/*
** db_read.c — the read side of the public API: get, get as of a time, time and
** version resolution, history, diff, listings, stats and the change feed.
**
** May call: os, base, json, crypto, log, store. Readers hold ix_lock shared and see
** only versions with seq <= visible_seq (see db_int.h); they never wait for an fsync.
*/
#include <stdio.h>
#include <stdlib.h>

#include "base/timefmt.h"
#include "crypto/hash.h"
#include "db/db_int.h"
#include "json/json.h"

void kd_entry_clear(kd_entry *e) {
    if (!e) return;
    kd__free(e->ns);
    kd__free(e->key);
    kd__free(e->value);
    memset(e, 0, sizeof *e);
}

void kd_entries_free(kd_entry *entries, size_t n) {
    if (!entries) return;
    for (size_t i = 0; i < n; i++) kd_entry_clear(&entries[i]);
    kd__free(entries);
}

void kd_hex(const uint8_t id[32], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[id[i] >> 4];
        out[2 * i + 1] = hx[id[i] & 15];
    }
    out[64] = 0;
}

static uint64_t visible(kd_db *db) { return atomic_load(&db->visible_seq); }

int kd__db_value(kd_db *db, const kd_ver *v, char **out, uint32_t *len, uint8_t hash[32]) {
    uint64_t loc = kd__ver_value_loc(&db->ix, v);
    /* Straight from the log's mapping: hash, length, bytes. The bytes precede the id of
    ** the version that stored them, in the same record: a length that says otherwise
    ** comes from a damaged file. */
    const kd_ver *storer = (v->val & KD_VAL_REL) ? v : kd__ver(&db->ix, v->val);
    const uint8_t *p = kd__wal_at(&db->wal, loc);
    uint32_t n = kd__get_u32(p - 4);
    if (loc + n > storer->loc)
        return kd__err(KD_CORRUPT, "segment %u offset %llu: stored value length %u runs past its record",
                       KD_LOC_SEG(loc), (unsigned long long)KD_LOC_OFF(loc), n);
    char *buf = kd__malloc((size_t)n + 1);
    if (!buf) return kd__err(KD_NOMEM, "out of memory");
    memcpy(buf, p, n);
    buf[n] = 0;
    memcpy(hash, p - 36, 32);
    *out = buf;
    *len = n;
    return KD_OK;
}

int kd__db_fill(kd_db *db, const kd_key *k, uint32_t pos, int flags, kd_entry *e) {
    kd_index *ix = &db->ix;
    uint64_t seq = kd__key_seq(k, pos);
    const kd_ver *v = kd__ver(ix, seq);
    int rc = KD_OK;
    memset(e, 0, sizeof *e);
    e->seq = seq;
    e->timestamp = v->ts;
    e->deleted = v->val == 0;
    e->has_previous = pos > 0;
    /* In the log, a version's value hash and previous id sit just before its id
    ** (commit.h): one place in memory for all three. */
    const uint8_t *id = kd__wal_at(&db->wal, v->loc);
    memcpy(e->version_id, id, 32);
    if (e->has_previous) memcpy(e->previous_version, id - 32, 32);
    if (!e->deleted) memcpy(e->value_hash, id - (e->has_previous ? 64 : 32), 32);
    if (flags & KD_FILL_CHANGE) {
        int prev_live = pos > 0 && kd__ver(ix, kd__key_seq(k, pos - 1))->val != 0;
        e->change = e->deleted ? KD_CHANGE_DELETE : prev_live ? KD_CHANGE_UPDATE : KD_CHANGE_INSERT;
    }
    e->ns = kd__strdup(ix->ns[k->ns].name);
    e->key = kd__strndup(k->name, k->len);
    if (!e->ns || !e->key) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    if (!e->deleted && (flags & KD_FILL_VALUE)) {
        uint8_t hash[32];
        uint32_t len;
        if ((rc = kd__db_value(db, v, &e->value, &len, hash)) != KD_OK) goto out;
        e->value_len = len;
    }
out:
    if (rc != KD_OK) kd_entry_clear(e);
    return rc;
}

/* Finds ns/key among visible data: key number or -1 (sets a not-found message). */
static int64_t lookup(kd_db *db, const char *ns, const char *key) {
    int64_t n = kd__index_find_ns(&db->ix, ns);
    if (n < 0) return -1;
    return kd__index_find_key(&db->ix, (uint32_t)n, key, strlen(key));
}

static int check_names(const char *ns, const char *key) {
    int rc = kd_valid_namespace(ns, 1);
    if (rc == KD_OK) rc = kd_valid_key(key);
    return rc;
}

static int get_common(kd_db *db, const char *ns, const char *key, int at, int64_t t, kd_entry *out) {
    int rc;
    kd__err_clear();
    memset(out, 0, sizeof *out);
    if ((rc = check_names(ns, key)) != KD_OK) return rc;
    uint64_t h = 0;
    if (!at && db->cache.budget) {
        /* No index lock needed: an entry is the newest visible version for as long as it
        ** is in the cache (commits remove it before their versions become visible). */
        h = kd__cache_hash(ns, key);
        int hit = kd__cache_lookup(&db->cache, h, ns, key, out);
        if (hit) return hit > 0 ? KD_OK : kd__err(KD_NOMEM, "out of memory");
    }
    pthread_rwlock_rdlock(&db->ix_lock);
    int64_t k = lookup(db, ns, key);
    int64_t pos = -1;
    const kd_key *kk = NULL;
    if (k >= 0) {
        kk = kd__key(&db->ix, (uint32_t)k);
        pos = at ? kd__index_at(&db->ix, kk, t, visible(db)) : kd__index_latest(&db->ix, kk, visible(db));
    }
    if (pos < 0) {
        int existed_later = at && kk && kd__index_latest(&db->ix, kk, visible(db)) >= 0;
        pthread_rwlock_unlock(&db->ix_lock);
        if (existed_later) {
            char ts[32];
            kd__time_format(t, ts);
            return kd__err(KD_NOTFOUND, "%s/%s did not exist yet at %s", ns, key, ts);
        }
        return kd__err(KD_NOTFOUND, "%s/%s not found", ns, key);
    }
    rc = kd__db_fill(db, kk, (uint32_t)pos, KD_FILL_VALUE, out);
    /* Only the key's newest version may be cached (see cache.h). */
    if (rc == KD_OK && !at && db->cache.budget && !out->deleted && (uint32_t)pos + 1 == kk->nvers)
        kd__cache_insert(&db->cache, h, out);
    pthread_rwlock_unlock(&db->ix_lock);
    int deleted = rc == KD_OK && out->deleted;
    if (rc != KD_OK) return rc;
    if (deleted) {
        char ts[32];
        kd__time_format(out->timestamp, ts);
        return kd__err(KD_NOTFOUND, "%s/%s not found: deleted at %s", ns, key, ts);
    }
    return KD_OK;
}

int kd_get(kd_db *db, const char *ns, const char *key, kd_entry *out) {
    return get_common(db, ns, key, 0, 0, out);
}

int kd_get_at(kd_db *db, const char *ns, const char *key, int64_t ts, kd_entry *out) {
    return get_common(db, ns, key, 1, ts, out);
}

/* Finds the visible version whose id starts with hex: its seq. Caller holds ix_lock. If
** key >= 0 only that key's versions are considered. */
static int find_version(kd_db *db, const char *hex, int64_t key, uint64_t *seq) {
    size_t n = strlen(hex);
    uint64_t found = 0, vis = visible(db);
    if (key >= 0) {
        const kd_key *k = kd__key(&db->ix, (uint32_t)key);
        for (uint32_t i = 0; i < k->nvers; i++) {
            uint64_t s = kd__key_seq(k, i);
            if (s > vis || !kd__id_has_prefix(kd__wal_at(&db->wal, kd__ver(&db->ix, s)->loc), hex, n)) continue;
            if (found) return kd__err(KD_AMBIGUOUS, "version id prefix %s is ambiguous; give more digits", hex);
            found = s;
        }
    } else {
        for (uint64_t s = 1; s <= vis; s++) {
            if (!kd__id_has_prefix(kd__wal_at(&db->wal, kd__ver(&db->ix, s)->loc), hex, n)) continue;
            if (found) return kd__err(KD_AMBIGUOUS, "version id prefix %s is ambiguous; give more digits", hex);
            found = s;
        }
    }
    if (!found) return kd__err(KD_NOTFOUND, "no version with id %s", hex);
    *seq = found;
    return KD_OK;
}

int kd_parse_time(kd_db *db, const char *spec, int64_t *ts) {
    kd__err_clear();
    if (!spec || !*spec) return kd__err(KD_INVALID, "empty time");
    if (db && kd__hex_prefix_valid(spec)) {
        uint64_t seq;
        pthread_rwlock_rdlock(&db->ix_lock);
        int rc = find_version(db, spec, -1, &seq);
        if (rc == KD_OK) *ts = kd__ver(&db->ix, seq)->ts;
        pthread_rwlock_unlock(&db->ix_lock);
        return rc;
    }
    kd_vfs *vfs = db ? db->vfs : kd__os_unix();
    return kd__time_parse_spec(spec, vfs->now_us(vfs), ts);
}

static int is_index_spec(const char *s, long *idx) {
    const char *p = s;
    if (*p == '-') p++;
    size_t n = strlen(p);
    if (n == 0 || n >= 8) return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    *idx = strtol(s, NULL, 10);
    return 1;
}

int kd_resolve_version(kd_db *db, const char *ns, const char *key, const char *spec, kd_entry *out) {
    int rc;
    kd__err_clear();
    memset(out, 0, sizeof *out);
    if ((rc = check_names(ns, key)) != KD_OK) return rc;
    if (!spec || !*spec) return kd__err(KD_INVALID, "empty version");
    long idx;
    int64_t t = 0;
    int by_index = is_index_spec(spec, &idx), by_id = !by_index && kd__hex_prefix_valid(spec);
    if (!by_index && !by_id) {
        kd_vfs *vfs = db->vfs;
        if ((rc = kd__time_parse_spec(spec, vfs->now_us(vfs), &t)) != KD_OK) {
            return kd__err(KD_INVALID, "invalid version \"%s\": expected an index (0 = oldest, -1 = newest), a version id of 8+ hex digits, or a time", spec);
        }
    }
    pthread_rwlock_rdlock(&db->ix_lock);
    int64_t k = lookup(db, ns, key);
    int64_t last = -1;
    const kd_key *kk = NULL;
    uint64_t seq = 0;
    if (k >= 0) {
        kk = kd__key(&db->ix, (uint32_t)k);
        last = kd__index_latest(&db->ix, kk, visible(db));
    }
    if (last < 0) {
        rc = kd__err(KD_NOTFOUND, "%s/%s not found", ns, key);
        goto out;
    }
    if (by_index) {
        long n = (long)last + 1, i = idx < 0 ? n + idx : idx;
        if (i < 0 || i >= n) {
            rc = kd__err(KD_NOTFOUND, "%s/%s has %ld version%s; index %ld is out of range", ns, key, n, n == 1 ? "" : "s", idx);
            goto out;
        }
        seq = kd__key_seq(kk, (uint32_t)i);
    } else if (by_id) {
        if ((rc = find_version(db, spec, k, &seq)) != KD_OK) goto out;
    } else {
        int64_t pos = kd__index_at(&db->ix, kk, t, visible(db));
        if (pos < 0) {
            char b[32];
            kd__time_format(t, b);
            rc = kd__err(KD_NOTFOUND, "%s/%s did not exist yet at %s", ns, key, b);
            goto out;
        }
        seq = kd__key_seq(kk, (uint32_t)pos);
    }
    rc = kd__db_fill(db, kk, (uint32_t)kd__index_pos(kk, seq), KD_FILL_VALUE | KD_FILL_CHANGE, out);
out:
    pthread_rwlock_unlock(&db->ix_lock);
    return rc;
}

int kd_history(kd_db *db, const char *ns, const char *key, size_t offset, size_t limit, int with_values,
               kd_entry **out, size_t *n, size_t *total) {
    int rc;
    kd__err_clear();
    *out = NULL;
    *n = 0;
    if (total) *total = 0;
    if ((rc = check_names(ns, key)) != KD_OK) return rc;
    pthread_rwlock_rdlock(&db->ix_lock);
    int64_t k = lookup(db, ns, key);
    int64_t last = k >= 0 ? kd__index_latest(&db->ix, kd__key(&db->ix, (uint32_t)k), visible(db)) : -1;
    kd_entry *v = NULL;
    size_t cnt = 0;
    if (last < 0) {
        rc = kd__err(KD_NOTFOUND, "%s/%s not found", ns, key);
        goto out;
    }
    const kd_key *kk = kd__key(&db->ix, (uint32_t)k);
    size_t all = (size_t)last + 1;
    if (total) *total = all;
    size_t start = offset < all ? offset : all;
    size_t want = all - start;
    if (limit && want > limit) want = limit;
    if (!(v = kd__calloc(want ? want : 1, sizeof *v))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (; cnt < want; cnt++)
        if ((rc = kd__db_fill(db, kk, (uint32_t)(start + cnt), (with_values ? KD_FILL_VALUE : 0) | KD_FILL_CHANGE,
                              &v[cnt])) != KD_OK)
            goto out;
out:
    pthread_rwlock_unlock(&db->ix_lock);
    if (rc != KD_OK) {
        kd_entries_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return KD_OK;
}

int kd_diff(kd_db *db, const char *ns, const char *key, const char *from, const char *to, kd_entry *from_out,
            kd_entry *to_out, char **patch) {
    kd_entry a, b;
    int rc;
    kd__err_clear();
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    *patch = NULL;
    if (from_out) memset(from_out, 0, sizeof *from_out);
    if (to_out) memset(to_out, 0, sizeof *to_out);
    if ((rc = kd_resolve_version(db, ns, key, to ? to : "-1", &b)) != KD_OK) goto out;
    if (from) {
        if ((rc = kd_resolve_version(db, ns, key, from, &a)) != KD_OK) goto out;
    } else if (b.has_previous) {
        /* Default: the version just before `to` (so, with no --to, the last two). */
        char hx[65];
        kd_hex(b.previous_version, hx);
        if ((rc = kd_resolve_version(db, ns, key, hx, &a)) != KD_OK) goto out;
    } /* else: a single version, diff from nothing */
    kd__err_clear();
    rc = kd_json_diff(a.value, a.value ? a.value_len : 0, b.value, b.value ? b.value_len : 0, patch);
out:
    if (rc == KD_OK && from_out) *from_out = a;
    else kd_entry_clear(&a);
    if (rc == KD_OK && to_out) *to_out = b;
    else kd_entry_clear(&b);
    return rc;
}

/* ---- listings and stats ------------------------------------------------------------ */

static int cmp_ns_info(const void *x, const void *y) {
    return strcmp(((const kd_ns_info *)x)->name, ((const kd_ns_info *)y)->name);
}

/* Live keys in a namespace as readers see them (excludes in-flight commits). */
static uint64_t visible_live_keys(kd_db *db, uint32_t ns) {
    const kd_ns *s = &db->ix.ns[ns];
    uint64_t vis = visible(db);
    if (db->ix.nvers == vis) return s->live_keys; /* fast path: nothing in flight (ix.nvers is under ix_lock, which the caller holds) */
    uint64_t live = 0;
    for (uint32_t i = 0; i < s->nkeys; i++) {
        const kd_key *k = kd__key(&db->ix, s->keys[i]);
        int64_t p = kd__index_latest(&db->ix, k, vis);
        if (p >= 0 && kd__ver(&db->ix, kd__key_seq(k, (uint32_t)p))->val) live++;
    }
    return live;
}

int kd_list_namespaces(kd_db *db, int include_system, kd_ns_info **out, size_t *n) {
    int rc = KD_OK;
    kd__err_clear();
    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&db->ix_lock);
    kd_ns_info *v = kd__calloc(db->ix.nns ? db->ix.nns : 1, sizeof *v);
    size_t cnt = 0;
    if (!v) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < db->ix.nns; i++) {
        const kd_ns *s = &db->ix.ns[i];
        if (s->name[0] == '_' && !include_system) continue;
        uint64_t live = visible_live_keys(db, i);
        if (!live) continue;
        if (!(v[cnt].name = kd__strdup(s->name))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        v[cnt].keys = live;
        v[cnt].versions = s->versions;
        cnt++;
    }
out:
    pthread_rwlock_unlock(&db->ix_lock);
    if (rc != KD_OK) {
        kd_ns_list_free(v, cnt);
        return rc;
    }
    qsort(v, cnt, sizeof *v, cmp_ns_info);
    *out = v;
    *n = cnt;
    return KD_OK;
}

void kd_ns_list_free(kd_ns_info *list, size_t n) {
    if (!list) return;
    for (size_t i = 0; i < n; i++) kd__free(list[i].name);
    kd__free(list);
}

void kd_keys_free(char **keys, size_t n) {
    if (!keys) return;
    for (size_t i = 0; i < n; i++) kd__free(keys[i]);
    kd__free(keys);
}

static int key_cmp_str(const kd_key *k, const char *s, size_t n) {
    size_t m = k->len < n ? k->len : n;
    int c = memcmp(k->name, s, m);
    if (c) return c;
    return k->len < n ? -1 : k->len > n;
}

int kd_list_keys(kd_db *db, const char *ns, const char *after, size_t limit, char ***keys, size_t *n) {
    int rc;
    kd__err_clear();
    *keys = NULL;
    *n = 0;
    if ((rc = kd_valid_namespace(ns, 1)) != KD_OK) return rc;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    pthread_rwlock_rdlock(&db->ix_lock);
    int64_t nsi = kd__index_find_ns(&db->ix, ns);
    if (nsi < 0) goto out; /* an empty namespace has no keys */
    const uint32_t *sorted;
    uint32_t ns_keys;
    pthread_mutex_lock(&db->list_mu);
    rc = kd__index_sorted_keys(&db->ix, (uint32_t)nsi, &sorted, &ns_keys);
    pthread_mutex_unlock(&db->list_mu);
    if (rc != KD_OK) goto out;
    uint32_t lo = 0;
    if (after) { /* first key greater than `after` */
        size_t an = strlen(after);
        uint32_t hi = ns_keys;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (key_cmp_str(kd__key(&db->ix, sorted[mid]), after, an) <= 0) lo = mid + 1;
            else hi = mid;
        }
    }
    uint64_t vis = visible(db);
    for (uint32_t i = lo; i < ns_keys && (!limit || cnt < limit); i++) {
        const kd_key *k = kd__key(&db->ix, sorted[i]);
        int64_t p = kd__index_latest(&db->ix, k, vis);
        if (p < 0 || kd__ver(&db->ix, kd__key_seq(k, (uint32_t)p))->val == 0) continue;
        if ((rc = kd__grow(&v, &cap, cnt, sizeof *v, 64)) != KD_OK) goto out;
        if (!(v[cnt] = kd__strndup(k->name, k->len))) {
            rc = kd__err(KD_NOMEM, "out of memory");
            goto out;
        }
        cnt++;
    }
out:
    pthread_rwlock_unlock(&db->ix_lock);
    if (rc != KD_OK) {
        kd_keys_free(v, cnt);
        return rc;
    }
    *keys = v;
    *n = cnt;
    return KD_OK;
}

int kd_stats_get(kd_db *db, kd_stats *st) {
    kd__err_clear();
    memset(st, 0, sizeof *st);
    pthread_rwlock_rdlock(&db->ix_lock);
    for (uint32_t i = 0; i < db->ix.nns; i++) {
        if (db->ix.ns[i].name[0] == '_') continue;
        uint64_t live = visible_live_keys(db, i);
        if (live) {
            st->namespaces++;
            st->keys += live;
        }
    }
    st->seq = visible(db);
    st->versions = st->seq;
    st->values = db->ix.nvals;
    st->index_bytes = kd__index_bytes(&db->ix);
    pthread_rwlock_rdlock(&db->wal.segs_lock); /* a commit may be starting a segment */
    st->segments = db->wal.nsegs;
    pthread_rwlock_unlock(&db->wal.segs_lock);
    st->disk_bytes = kd__wal_disk_bytes(&db->wal);
    st->log_bytes = kd__wal_log_bytes(&db->wal);
    st->max_db_bytes = db->opt.max_db_bytes;
    pthread_mutex_lock(&db->cache.mu);
    st->cache_bytes = db->cache.used;
    st->cache_hits = db->cache.hits;
    st->cache_misses = db->cache.misses;
    pthread_mutex_unlock(&db->cache.mu);
    pthread_rwlock_unlock(&db->ix_lock);
    pthread_mutex_lock(&db->wal.mu);
    st->fsyncs = db->wal.fsyncs;
    st->fsync_us = db->wal.fsync_us;
    memcpy(st->fsync_hist, db->wal.fsync_hist, sizeof st->fsync_hist);
    pthread_mutex_unlock(&db->wal.mu);
    pthread_mutex_lock(&db->wmu);
    st->writes = db->writes;
    pthread_mutex_unlock(&db->wmu);
    char *cp = kd__path_join(db->path, "checkpoint");
    if (!cp) return kd__err(KD_NOMEM, "out of memory"); /* not a smaller disk_bytes */
    kd_file *f = NULL;
    uint64_t sz = 0;
    int rc = db->vfs->open(db->vfs, cp, KD_OPEN_READ, &f);
    kd__free(cp);
    if (rc == KD_NOMEM) return rc;
    if (rc == KD_OK) { /* otherwise there is no checkpoint yet */
        if (db->vfs->size(f, &sz) == KD_OK) st->disk_bytes += sz;
        db->vfs->close(f);
    }
    pthread_mutex_lock(&db->ext_mu);
    if (db->vec_stats) db->vec_stats(db->vec, st);
    pthread_mutex_unlock(&db->ext_mu);
    kd__err_clear();
    return KD_OK;
}

/* ---- change feed ----------------------------------------------------------------------- */

struct kd_feed {
    kd_db *db;
    uint64_t next;
};

int kd_feed_open(kd_db *db, uint64_t since, kd_feed **out) {
    kd__err_clear();
    kd_feed *f = kd__malloc(sizeof *f);
    if (!f) return kd__err(KD_NOMEM, "out of memory");
    f->db = db;
    f->next = since == UINT64_MAX ? UINT64_MAX : since + 1; /* UINT64_MAX: nothing will follow */
    *out = f;
    return KD_OK;
}

int kd_feed_next(kd_feed *f, kd_entry *out) {
    kd__err_clear();
    memset(out, 0, sizeof *out);
    kd_db *db = f->db;
    if (f->next > visible(db)) return KD_DONE;
    pthread_rwlock_rdlock(&db->ix_lock);
    const kd_key *k = kd__key(&db->ix, kd__ver(&db->ix, f->next)->key);
    int rc = kd__db_fill(db, k, (uint32_t)kd__index_pos(k, f->next), KD_FILL_VALUE | KD_FILL_CHANGE, out);
    pthread_rwlock_unlock(&db->ix_lock);
    if (rc == KD_OK) f->next++;
    return rc;
}

void kd_feed_close(kd_feed *f) { kd__free(f); }
