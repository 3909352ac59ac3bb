/*
** db_scan.c — what the layers above db (queries, views) read: the live documents of a
** namespace as of a seq or a time, and the versions of a range of seqs.
**
** Nothing is copied: a kd__doc points at the key's name in the index's arena and at the
** value and id in the log's mapping, all of which stay in place until kd_close. The index
** read lock is held only while the pointers are collected, so a long query never holds
** writers back while it evaluates its filter.
**
** May call: store, log, base.
*/
#include <string.h>

#include "db/db_int.h"

uint64_t kd__db_visible(kd_db *db) { return atomic_load(&db->visible_seq); }

int64_t kd__db_seq_time(kd_db *db, uint64_t seq) {
    if (seq == 0) return 0;
    pthread_rwlock_rdlock(&db->ix_lock);
    int64_t ts = seq <= db->ix.nvers ? kd__ver(&db->ix, seq)->ts : 0;
    pthread_rwlock_unlock(&db->ix_lock);
    return ts;
}

/* Fills d from version seq of key k (caller holds ix_lock). */
static int fill_doc(kd_db *db, const kd_key *k, uint64_t seq, kd__doc *d) {
    const kd_ver *v = kd__ver(&db->ix, seq);
    d->key = k->name;
    d->klen = k->len;
    d->seq = seq;
    d->ts = v->ts;
    d->id = kd__wal_at(&db->wal, v->loc);
    d->val = NULL;
    d->vlen = 0;
    if (v->val == 0) return KD_OK;
    const kd_ver *storer = (v->val & KD_VAL_REL) ? v : kd__ver(&db->ix, v->val);
    uint64_t loc = kd__ver_value_loc(&db->ix, v);
    const uint8_t *p = kd__wal_at(&db->wal, loc);
    uint32_t n = kd__get_u32(p - 4);
    if (loc + n > storer->loc)
        return kd__err(KD_CORRUPT, "segment %u offset %llu: stored value length %u runs past its record",
                       KD_LOC_SEG(loc), (unsigned long long)KD_LOC_OFF(loc), n);
    d->val = (const char *)p;
    d->vlen = n;
    return KD_OK;
}

int kd__db_doc_at(kd_db *db, uint64_t seq, kd__doc *d) {
    int rc;
    pthread_rwlock_rdlock(&db->ix_lock);
    if (seq == 0 || seq > db->ix.nvers) {
        rc = kd__err(KD_NOTFOUND, "no version %llu", (unsigned long long)seq);
    } else {
        const kd_ver *v = kd__ver(&db->ix, seq);
        rc = fill_doc(db, kd__key(&db->ix, v->key), seq, d);
    }
    pthread_rwlock_unlock(&db->ix_lock);
    return rc;
}

int kd__db_scan(kd_db *db, const char *ns, int at, int64_t t, uint64_t max_seq, kd__doc **out,
                size_t *n, uint64_t *upto) {
    int rc = KD_OK;
    kd__doc *docs = NULL;
    size_t nd = 0;
    *out = NULL;
    *n = 0;
    uint64_t vis = atomic_load(&db->visible_seq);
    if (max_seq == 0 || max_seq > vis) max_seq = vis;
    if (upto) *upto = max_seq;
    pthread_rwlock_rdlock(&db->ix_lock);
    kd_index *ix = &db->ix;
    int64_t nsi = kd__index_find_ns(ix, ns);
    if (nsi < 0) goto out;
    const kd_ns *s = &ix->ns[nsi];
    /* The namespace's live-key count is exact when nothing newer than max_seq is in the
    ** index (no commit in flight); otherwise the past may hold more live keys. */
    size_t cap = !at && ix->nvers == max_seq ? s->live_keys : s->nkeys;
    if (cap == 0) goto out;
    if (!(docs = kd__malloc(cap * sizeof *docs))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < s->nkeys; i++) {
        const kd_key *k = kd__key(ix, s->keys[i]);
        if (k->nvers == 0) continue;
        uint64_t seq;
        if (!at && k->last <= max_seq) {
            seq = k->last;
        } else {
            int64_t pos = at ? kd__index_at(ix, k, t, max_seq) : kd__index_latest(ix, k, max_seq);
            if (pos < 0) continue;
            seq = kd__key_seq(k, (uint32_t)pos);
        }
        if (kd__ver(ix, seq)->val == 0) continue; /* deleted at that point */
        if (nd == cap) { /* the counts disagree with the versions: never expected */
            rc = kd__err(KD_CORRUPT, "namespace %s: live-key count %zu is lower than its live keys", ns, cap);
            goto out;
        }
        if ((rc = fill_doc(db, k, seq, &docs[nd])) != KD_OK) goto out;
        nd++;
    }
out:
    pthread_rwlock_unlock(&db->ix_lock);
    if (rc != KD_OK || nd == 0) {
        kd__free(docs);
        docs = NULL;
        nd = 0;
    }
    *out = docs;
    *n = nd;
    return rc;
}

int kd__db_each_version(kd_db *db, uint64_t from, uint64_t to,
                        int (*cb)(void *ctx, const char *ns, const kd__doc *d), void *ctx) {
    int rc = KD_OK;
    uint64_t vis = atomic_load(&db->visible_seq);
    if (to > vis) to = vis;
    if (from == 0) from = 1;
    pthread_rwlock_rdlock(&db->ix_lock);
    for (uint64_t seq = from; seq <= to && rc == KD_OK; seq++) {
        const kd_ver *v = kd__ver(&db->ix, seq);
        const kd_key *k = kd__key(&db->ix, v->key);
        kd__doc d;
        if ((rc = fill_doc(db, k, seq, &d)) != KD_OK) break;
        rc = cb(ctx, db->ix.ns[k->ns].name, &d);
    }
    pthread_rwlock_unlock(&db->ix_lock);
    return rc;
}
