/*
** vindex.c — the HNSW indexes of an open database: one per (model, metric), built from the
** embeddings in the log, kept current by seq, saved next to the log and loaded back.
**
** Ids. An index maps dense ids to (namespace, key) pairs that ever had an embedding of its
** model. The graph holds the id of every key whose current embedding is of the model; an
** overwrite re-adds the id (the old node is marked deleted), a delete or a change of model
** removes it. Each id's slot points at the version it holds, so a hit is reported with its
** version without reading the log.
**
** Keeping current. Every acquire catches the index up to the seq the search reads, by
** applying the versions committed since (kd__db_each_version), so a search through the
** index sees exactly the snapshot exact search would: no stale hits. The log is read in
** slices of CATCHUP_SLICE seqs, each under its own short hold of the index read lock, so
** a long first build never keeps writers waiting. When deleted nodes outnumber live ones
** (and there are at least COMPACT_MIN), the graph is rebuilt from the live slots.
**
** Files. After every checkpoint and at close, each index that changed is written to
** <db>/vec-<metric>-<16 hex digits: kd__hash64 of the model>.idx (via a .tmp file, fsynced,
** renamed, directory fsynced), little-endian:
**     magic "KDVECIX\n", u32 format (1), u32 metric, u32 dim, u32 M, u32 ef_construction,
**     u64 applied seq, u32 length + the model as a JSON string,
**     u32 namespaces, each u16 length + name,
**     u32 ids, each: u32 namespace, u16 key length, key, u8 live,
**                    and when live: u64 seq, 8 bytes of the version id,
**     u64 length + the graph (kd__hnsw_save's format, with its own CRC),
**     u32 CRC-32C of everything before it.
** Loading checks the file against the log before trusting it: the applied seq must be
** visible, and the current embeddings of the model as of that seq must be exactly the
** live ids, with the same seqs and version ids (so an index saved ahead of a log that
** lost its unsynced tail, or one from another database, is recognised). Anything wrong —
** checksum, format, parameters other than the handle's options, a mismatch with the log —
** and the file is ignored (logged) and the index is rebuilt. A loaded index is then caught
** up from the log like any other.
**
** Locking. One mutex per handle (vstate.mu) serialises acquire/release and saving;
** kd_stats_get reads figures published at each release, without it.
** Order: ext_mu (only to find the state, or by kd_stats_get) before vstate.mu before the
** index lock (inside kd__db_*); checkpoints call the save with no db lock held.
**
** May call: vector/hnsw, db (db_int.h), crypto/crc32c, json, base, os (through db->vfs).
*/
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto/crc32c.h"
#include "json/json.h"
#include "vector/vector_int.h"

#define CATCHUP_SLICE 4096
#define COMPACT_MIN 1024
#define VIDX_FORMAT 1u
static const uint8_t vidx_magic[8] = {'K', 'D', 'V', 'E', 'C', 'I', 'X', '\n'};

typedef struct vstate {
    pthread_mutex_t mu;
    vidx *list;
    /* What kd_stats_get reports, published under mu at every release so that reading it
    ** never waits for a build. */
    _Atomic uint64_t n_indexes, n_vectors, n_bytes, loads, builds;
} vstate;

static uint64_t slot_hash(uint32_t ns, const char *k, uint32_t n) {
    return kd__hash64(k, n) ^ ((uint64_t)ns * 0x9E3779B97F4A7C15ull);
}

static void vidx_free(vidx *x) {
    if (!x) return;
    kd__hnsw_free(x->h);
    kd__buf_free(&x->model_json);
    for (uint32_t i = 0; i < x->nns; i++) kd__free(x->ns[i]);
    kd__free(x->ns);
    kd__free(x->ns_live);
    kd__free(x->slot);
    kd__free(x->map);
    kd__free(x->keys);
    kd__free(x->buf);
    kd__free(x);
}

static void vstate_free(void *p) {
    vstate *st = p;
    if (!st) return;
    while (st->list) {
        vidx *x = st->list;
        st->list = x->next;
        vidx_free(x);
    }
    pthread_mutex_destroy(&st->mu);
    kd__free(st);
}

static int vidx_ns(vidx *x, const char *ns, uint32_t *out) {
    for (uint32_t i = 0; i < x->nns; i++)
        if (strcmp(x->ns[i], ns) == 0) return *out = i, KD_OK;
    char **n2 = kd__realloc(x->ns, (x->nns + 1) * sizeof *n2);
    if (!n2) return kd__err(KD_NOMEM, "out of memory");
    x->ns = n2;
    uint32_t *l2 = kd__realloc(x->ns_live, (x->nns + 1) * sizeof *l2);
    if (!l2) return kd__err(KD_NOMEM, "out of memory");
    x->ns_live = l2;
    if (!(x->ns[x->nns] = kd__strdup(ns))) return kd__err(KD_NOMEM, "out of memory");
    x->ns_live[x->nns] = 0;
    *out = x->nns++;
    return KD_OK;
}

/* The id of (ns, key), created when absent and create is set (UINT32_MAX when absent). */
static int vidx_id(vidx *x, uint32_t ns, const char *key, uint32_t klen, int create, uint32_t *id) {
    *id = UINT32_MAX;
    if (x->mcap) {
        for (uint64_t i = slot_hash(ns, key, klen) & (x->mcap - 1);; i = (i + 1) & (x->mcap - 1)) {
            uint32_t m = x->map[i];
            if (!m) break;
            vslot *s = &x->slot[m - 1];
            if (s->ns == ns && s->klen == klen && memcmp(s->key, key, klen) == 0) return *id = m - 1, KD_OK;
        }
    }
    if (!create) return KD_OK;
    if (x->nslot == x->cap) {
        uint32_t c = x->cap ? x->cap * 2 : 1024;
        vslot *s2 = kd__realloc(x->slot, c * sizeof *s2);
        if (!s2) return kd__err(KD_NOMEM, "out of memory");
        x->slot = s2;
        x->cap = c;
    }
    if ((x->nslot + 1) * 2 > x->mcap) { /* rehash at half full */
        uint32_t mc = x->mcap ? x->mcap * 2 : 2048;
        uint32_t *m2 = kd__calloc(mc, sizeof *m2);
        if (!m2) return kd__err(KD_NOMEM, "out of memory");
        for (uint32_t j = 0; j < x->nslot; j++) {
            uint64_t i = slot_hash(x->slot[j].ns, x->slot[j].key, x->slot[j].klen) & (mc - 1);
            while (m2[i]) i = (i + 1) & (mc - 1);
            m2[i] = j + 1;
        }
        kd__free(x->map);
        x->map = m2;
        x->mcap = mc;
    }
    uint32_t n = x->nslot++;
    vslot *s = &x->slot[n];
    memset(s, 0, sizeof *s);
    s->ns = ns;
    s->key = key;
    s->klen = klen;
    uint64_t i = slot_hash(ns, key, klen) & (x->mcap - 1);
    while (x->map[i]) i = (i + 1) & (x->mcap - 1);
    x->map[i] = n + 1;
    *id = n;
    return KD_OK;
}

/* Is the stored record r of this index's model and dimension? */
static int rec_mine(const vidx *x, const emb_rec *r) {
    return r->model.len == x->model_json.len && memcmp(r->model.p, x->model_json.p, r->model.len) == 0 &&
           r->dim == x->dim;
}

/* The versions of one slice of the log that belong to embedding namespaces, collected
** under the index lock (pointers only) so the graph work happens after it is released. */
typedef struct pending {
    kd__doc d;
    uint32_t nsi;
} pending;
typedef struct slice {
    vidx *x;
    pending *p;
    size_t n, cap;
} slice;

static int collect(void *ctx, const char *sysns, const kd__doc *d) {
    slice *sl = ctx;
    if (strncmp(sysns, EMB_PREFIX, EMB_PREFIX_LEN) != 0) return KD_OK;
    uint32_t nsi;
    int rc = vidx_ns(sl->x, sysns + EMB_PREFIX_LEN, &nsi); /* copies the name: the index's
                                                             namespace table may move */
    if (rc != KD_OK) return rc;
    if (sl->n == sl->cap) {
        size_t c = sl->cap ? sl->cap * 2 : 256;
        pending *p2 = kd__realloc(sl->p, c * sizeof *p2);
        if (!p2) return kd__err(KD_NOMEM, "out of memory");
        sl->p = p2;
        sl->cap = c;
    }
    sl->p[sl->n].d = *d;
    sl->p[sl->n].nsi = nsi;
    sl->n++;
    return KD_OK;
}

/* Applies one version of an embedding namespace to the index. */
static int vidx_apply(vidx *x, uint32_t nsi, const kd__doc *d) {
    emb_rec r;
    int mine = 0, rc;
    if (d->val) {
        if ((rc = kd__emb_rec_read(d->val, d->vlen, &r)) != KD_OK) return rc;
        mine = rec_mine(x, &r);
    }
    uint32_t id;
    if ((rc = vidx_id(x, nsi, d->key, d->klen, mine, &id)) != KD_OK) return rc;
    if (id == UINT32_MAX) return KD_OK;
    vslot *s = &x->slot[id];
    if (!mine) {
        if (s->seq) {
            if ((rc = kd__hnsw_remove(x->h, id)) != KD_OK) return rc;
            s->seq = 0;
            x->ns_live[nsi]--;
        }
        return KD_OK;
    }
    if (!kd__emb_floats(r.b64, r.b64len, x->buf, r.dim))
        return kd__err(KD_CORRUPT, "embedding of %s/%.*s: vector does not hold %zu float32", x->ns[nsi],
                       (int)KD_MIN(d->klen, 200), d->key, r.dim);
    if ((rc = kd__hnsw_add(x->h, id, x->buf)) != KD_OK) return rc;
    if (!s->seq) x->ns_live[nsi]++;
    s->seq = d->seq;
    s->vid = d->id;
    s->ts = d->ts;
    return KD_OK;
}

/* Decodes the vector of the version a live slot holds into x->buf. */
static int slot_vector(kd_db *db, vidx *x, const vslot *s) {
    kd__doc d;
    const char *b64;
    size_t n;
    int rc = kd__db_doc_at(db, s->seq, &d);
    if (rc != KD_OK) return rc;
    if (!d.val || kd__emb_vector_text(d.val, d.vlen, &b64, &n) != KD_OK || !kd__emb_floats(b64, n, x->buf, x->dim))
        return kd__err(KD_CORRUPT, "malformed embedding record at seq %llu", (unsigned long long)s->seq);
    return KD_OK;
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const int hnsw_metric[] = {[KD_METRIC_COSINE] = KD__HNSW_COSINE, [KD_METRIC_DOT] = KD__HNSW_DOT,
                                  [KD_METRIC_L2] = KD__HNSW_L2};
static const char *const metric_name[] = {[KD_METRIC_COSINE] = "cosine", [KD_METRIC_DOT] = "dot",
                                          [KD_METRIC_L2] = "l2"};

static uint32_t opt_m(const kd_db *db) { return db->opt.hnsw_m ? db->opt.hnsw_m : KD__HNSW_DEFAULT_M; }
static uint32_t opt_efc(const kd_db *db) {
    uint32_t e = db->opt.hnsw_ef_construction ? db->opt.hnsw_ef_construction : KD__HNSW_DEFAULT_EF_CONSTRUCTION;
    return e < opt_m(db) ? opt_m(db) : e; /* as kd__hnsw_create raises it */
}

/* Rebuilds the graph from the live slots (drops the deleted nodes). */
static int vidx_compact(kd_db *db, vidx *x) {
    uint32_t live = 0, dead = 0;
    kd__hnsw *h = NULL;
    int rc;
    kd__hnsw_count(x->h, &live, &dead);
    kd__log(KD_LOG_INFO, "vector index %s/%.*s: rebuilding (%u live vectors, %u deleted nodes)", metric_name[x->metric],
            (int)KD_MIN(x->model_json.len, 200), x->model_json.p, live, dead);
    if ((rc = kd__hnsw_create((uint32_t)x->dim, hnsw_metric[x->metric], opt_m(db), opt_efc(db), 0x5EED, &h)) != KD_OK ||
        (rc = kd__hnsw_reserve(h, live ? live : 1)) != KD_OK)
        goto fail;
    for (uint32_t id = 0; id < x->nslot; id++) {
        if (!x->slot[id].seq) continue;
        if ((rc = slot_vector(db, x, &x->slot[id])) != KD_OK || (rc = kd__hnsw_add(h, id, x->buf)) != KD_OK) goto fail;
    }
    kd__hnsw_free(x->h);
    x->h = h;
    return KD_OK;
fail:
    kd__hnsw_free(h);
    return rc;
}

/* ---- files -------------------------------------------------------------------------- */

/* The file name of x's index: vec-<metric>-<kd__hash64 of the model, 16 hex digits>.idx. */
static void vidx_name(const vidx *x, char out[64]) {
    snprintf(out, 64, "vec-%s-%016llx.idx", metric_name[x->metric],
             (unsigned long long)kd__hash64(x->model_json.p, x->model_json.len));
}

static int vidx_save(kd_db *db, vidx *x) {
    kd_buf b = KD_BUF_INIT;
    char name[64];
    int rc = KD_OK;
    vidx_name(x, name);
    kd__buf_append(&b, vidx_magic, 8);
    kd__buf_put_u32(&b, VIDX_FORMAT);
    kd__buf_put_u32(&b, (uint32_t)x->metric);
    kd__buf_put_u32(&b, (uint32_t)x->dim);
    kd__buf_put_u32(&b, kd__hnsw_m(x->h));
    kd__buf_put_u32(&b, kd__hnsw_ef_construction(x->h));
    kd__buf_put_u64(&b, x->applied);
    kd__buf_put_u32(&b, (uint32_t)x->model_json.len);
    kd__buf_append(&b, x->model_json.p, x->model_json.len);
    kd__buf_put_u32(&b, x->nns);
    for (uint32_t i = 0; i < x->nns; i++) {
        size_t n = strlen(x->ns[i]);
        kd__buf_put_u16(&b, (uint16_t)n);
        kd__buf_append(&b, x->ns[i], n);
    }
    kd__buf_put_u32(&b, x->nslot);
    for (uint32_t i = 0; i < x->nslot; i++) {
        const vslot *s = &x->slot[i];
        kd__buf_put_u32(&b, s->ns);
        kd__buf_put_u16(&b, (uint16_t)s->klen);
        kd__buf_append(&b, s->key, s->klen);
        kd__buf_put_u8(&b, s->seq != 0);
        if (s->seq) {
            kd__buf_put_u64(&b, s->seq);
            kd__buf_append(&b, s->vid, 8);
        }
    }
    size_t at = b.len;
    kd__buf_put_u64(&b, 0);
    if ((rc = kd__hnsw_save(x->h, &b)) != KD_OK || b.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    kd__set_u64((uint8_t *)b.p + at, b.len - at - 8);
    kd__buf_put_u32(&b, kd__crc32c(0, b.p, b.len));
    if (b.oom) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = kd__db_write_file(db, name, b.p, b.len)) == KD_OK) x->saved = x->applied;
out:
    if (rc != KD_OK)
        kd__log(KD_LOG_WARN, "could not save the vector index %s/%s (%s); it will be rebuilt after a reopen",
                db->path, name, kd__errmsg_get());
    kd__buf_free(&b);
    return rc;
}

/* Saves every index that changed since it was last saved or loaded. Without wait (after
** an automatic checkpoint, on the maintenance thread) it gives up when a search or a build
** holds the indexes: the next checkpoint or the close saves them. */
static int vstate_save(kd_db *db, void *p, int wait) {
    vstate *st = p;
    int rc = KD_OK, r;
    if (!st) return KD_OK;
    if (wait) pthread_mutex_lock(&st->mu);
    else if (pthread_mutex_trylock(&st->mu) != 0) return KD_OK;
    for (vidx *x = st->list; x; x = x->next)
        if (x->applied != x->saved && (r = vidx_save(db, x)) != KD_OK && rc == KD_OK) rc = r;
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Publishes the figures of kd_stats_get (caller holds st->mu). */
static void vstate_publish(vstate *st) {
    uint64_t n = 0, vec = 0, bytes = 0;
    for (vidx *x = st->list; x; x = x->next) {
        uint32_t live = 0;
        kd__hnsw_count(x->h, &live, NULL);
        n++;
        vec += live;
        bytes += kd__hnsw_bytes(x->h) + (uint64_t)x->cap * sizeof *x->slot + (uint64_t)x->mcap * sizeof *x->map +
                 sizeof *x;
    }
    atomic_store(&st->n_indexes, n);
    atomic_store(&st->n_vectors, vec);
    atomic_store(&st->n_bytes, bytes);
}

static void vstate_stats(void *p, kd_stats *out) {
    vstate *st = p;
    if (!st) return;
    out->vector_indexes = atomic_load(&st->n_indexes);
    out->vector_index_vectors = atomic_load(&st->n_vectors);
    out->vector_index_bytes = atomic_load(&st->n_bytes);
    out->vector_index_loads = atomic_load(&st->loads);
    out->vector_index_builds = atomic_load(&st->builds);
}

/* Checks the loaded ids against the log as of x->applied (vids: the first 8 bytes of each
** live id's version id, by id) and points their keys at the index's arena:
** KD_CORRUPT (with the reason) when the file does not describe this database. */
static int vidx_verify(kd_db *db, vidx *x, const uint8_t *vids) {
    char **names = NULL;
    size_t nn = 0;
    kd__doc *docs = NULL;
    size_t nd = 0;
    uint64_t matched = 0, live = 0;
    int rc = kd__emb_namespaces(db, &names, &nn);
    for (size_t i = 0; i < nn && rc == KD_OK; i++) {
        char sys[KD_NS_MAX + 1];
        uint32_t nsi = UINT32_MAX;
        snprintf(sys, sizeof sys, "%s%s", EMB_PREFIX, names[i]);
        for (uint32_t j = 0; j < x->nns; j++)
            if (strcmp(x->ns[j], names[i]) == 0) nsi = j;
        if ((rc = kd__db_scan(db, sys, 0, 0, x->applied, &docs, &nd, NULL)) != KD_OK) break;
        for (size_t k = 0; k < nd && rc == KD_OK; k++) {
            const kd__doc *d = &docs[k];
            emb_rec r;
            uint32_t id = UINT32_MAX;
            if ((rc = kd__emb_rec_read(d->val, d->vlen, &r)) != KD_OK) break;
            if (!rec_mine(x, &r)) continue;
            if (nsi != UINT32_MAX && (rc = vidx_id(x, nsi, d->key, d->klen, 0, &id)) != KD_OK) break;
            vslot *s = id == UINT32_MAX ? NULL : &x->slot[id];
            if (!s || !s->seq || s->seq != d->seq || memcmp(vids + 8 * (size_t)id, d->id, 8) != 0) {
                rc = kd__err(KD_CORRUPT, "%s/%.*s (seq %llu) is not in it as the log has it", names[i],
                             (int)KD_MIN(d->klen, 200), d->key, (unsigned long long)d->seq);
                break;
            }
            s->key = d->key;
            s->vid = d->id;
            s->ts = d->ts;
            matched++;
        }
        kd__free(docs);
        docs = NULL;
    }
    for (size_t i = 0; i < nn; i++) kd__free(names[i]);
    kd__free(names);
    if (rc != KD_OK) return rc;
    uint32_t hlive = 0;
    kd__hnsw_count(x->h, &hlive, NULL);
    for (uint32_t id = 0; id < x->nslot; id++) {
        if (!x->slot[id].seq) continue;
        live++;
        if (!kd__hnsw_contains(x->h, id)) return kd__err(KD_CORRUPT, "id %u is missing from the graph", id);
    }
    if (live != matched || hlive != live)
        return kd__err(KD_CORRUPT, "it holds %llu live ids (%u in the graph), the log %llu", (unsigned long long)live,
                       hlive, (unsigned long long)matched);
    return KD_OK;
}

/* Fills the empty index x from its file when one is there and describes this database as
** of a visible seq. *loaded = 0 (x untouched) when there is no usable file; errors only
** for KD_NOMEM. */
static int vidx_load(kd_db *db, vidx *x, int *loaded) {
    char name[64], *path;
    vidx_name(x, name);
    path = kd__path_join(db->path, name);
    kd_file *f = NULL;
    uint8_t *img = NULL, *vids = NULL;
    uint64_t size = 0;
    size_t got = 0;
    const char *why = NULL;
    int rc;
    *loaded = 0;
    if (!path) return kd__err(KD_NOMEM, "out of memory");
    rc = db->vfs->open(db->vfs, path, KD_OPEN_READ, &f);
    if (rc == KD_NOTFOUND) {
        kd__free(path);
        kd__err_clear();
        return KD_OK;
    }
    if (rc == KD_OK) rc = db->vfs->size(f, &size);
    if (rc == KD_OK && (size < 64 || size > SIZE_MAX / 2)) rc = kd__err(KD_CORRUPT, "%llu bytes is not a valid size", (unsigned long long)size);
    if (rc == KD_OK && !(img = kd__malloc((size_t)size))) rc = kd__err(KD_NOMEM, "out of memory");
    if (rc == KD_OK) rc = db->vfs->read(f, img, (size_t)size, 0, &got);
    if (rc == KD_OK && got != size) rc = kd__err(KD_IOERR, "short read");
    if (rc != KD_OK) goto out;
    kd_rd r = {img, (size_t)size - 4, 0, 0};
    const uint8_t *magic = kd__take(&r, 8);
    uint32_t format = kd__take32(&r), metric = kd__take32(&r), dim = kd__take32(&r), m = kd__take32(&r), efc = kd__take32(&r);
    uint64_t applied = kd__take64(&r);
    uint32_t mlen = kd__take32(&r);
    const uint8_t *model = kd__take(&r, mlen);
    if (r.bad || memcmp(magic, vidx_magic, 8) != 0 || kd__get_u32(img + size - 4) != kd__crc32c(0, img, (size_t)size - 4)) {
        why = "bad checksum or header";
        goto out;
    }
    if (format > VIDX_FORMAT) { why = "written by a newer KoruDelta"; goto out; }
    if (metric != (uint32_t)x->metric || dim != x->dim || mlen != x->model_json.len ||
        memcmp(model, x->model_json.p, mlen) != 0) {
        why = "it belongs to another model or metric";
        goto out;
    }
    if (m != opt_m(db) || efc != opt_efc(db)) {
        why = "it was built with other M / ef_construction than this handle's options";
        goto out;
    }
    if (applied == 0 || applied > kd__db_visible(db)) {
        why = "it is ahead of the log";
        goto out;
    }
    uint32_t nns = kd__take32(&r);
    for (uint32_t i = 0; i < nns && !r.bad; i++) {
        uint32_t n = kd__take16(&r), got_ns;
        const uint8_t *s = kd__take(&r, n);
        char name[KD_NS_MAX + 1];
        if (!s || n == 0 || n > KD_EMBED_NS_MAX) { r.bad = 1; break; }
        memcpy(name, s, n);
        name[n] = 0;
        if ((rc = vidx_ns(x, name, &got_ns)) != KD_OK) goto out;
        if (got_ns != i) r.bad = 1; /* a repeated name */
    }
    uint32_t nslot = kd__take32(&r);
    if (!r.bad && nslot > (r.len - r.off) / 7) r.bad = 1; /* each id takes at least 7 bytes */
    if (!r.bad && !(vids = kd__malloc(8 * (size_t)(nslot ? nslot : 1)))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < nslot && !r.bad; i++) {
        uint32_t ns = kd__take32(&r), klen = kd__take16(&r), id;
        const uint8_t *key = kd__take(&r, klen);
        uint32_t live = kd__take8(&r);
        uint64_t seq = live ? kd__take64(&r) : 0;
        const uint8_t *vid = live ? kd__take(&r, 8) : NULL;
        if (r.bad || ns >= nns || klen == 0 || klen > KD_KEY_MAX || live > 1 || (live && (seq == 0 || seq > applied))) {
            r.bad = 1;
            break;
        }
        if ((rc = vidx_id(x, ns, (const char *)key, klen, 1, &id)) != KD_OK) goto out;
        if (id != i) { r.bad = 1; break; } /* a repeated key */
        x->slot[id].seq = seq;
        if (live) {
            memcpy(vids + 8 * (size_t)id, vid, 8);
            x->ns_live[ns]++;
        }
    }
    uint64_t glen = kd__take64(&r);
    const uint8_t *graph = glen <= r.len - r.off ? kd__take(&r, (size_t)glen) : NULL;
    if (r.bad || !graph || r.off != r.len) { why = "malformed"; goto out; }
    if ((rc = kd__hnsw_load(graph, (size_t)glen, &x->h)) != KD_OK) {
        if (rc == KD_NOMEM) goto out;
        why = "malformed graph";
        goto out;
    }
    if (kd__hnsw_dim(x->h) != x->dim || kd__hnsw_metric(x->h) != hnsw_metric[x->metric] ||
        kd__hnsw_m(x->h) != m || kd__hnsw_ef_construction(x->h) != efc) {
        why = "its graph disagrees with its header";
        goto out;
    }
    x->applied = applied;
    if ((rc = vidx_verify(db, x, vids)) != KD_OK) {
        if (rc == KD_NOMEM) goto out;
        why = kd__errmsg_get();
        goto out;
    }
    /* The ids that are not live still point into the image: give them their own copy. */
    size_t kbytes = 0;
    for (uint32_t i = 0; i < x->nslot; i++)
        if (!x->slot[i].seq) kbytes += x->slot[i].klen;
    if (kbytes && !(x->keys = kd__malloc(kbytes))) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0, o = 0; i < x->nslot; i++) {
        vslot *s = &x->slot[i];
        if (s->seq) continue;
        memcpy(x->keys + o, s->key, s->klen);
        s->key = x->keys + o;
        o += s->klen;
    }
    x->saved = applied;
    *loaded = 1;
out:
    if (f) db->vfs->close(f);
    if (why || (rc != KD_OK && rc != KD_NOMEM)) {
        kd__log(KD_LOG_WARN, "ignoring the vector index %s (%s); rebuilding it from the log", path,
                why ? why : kd__errmsg_get());
        rc = KD_OK;
    }
    if (!*loaded) { /* back to empty */
        kd__hnsw_free(x->h);
        x->h = NULL;
        for (uint32_t i = 0; i < x->nns; i++) kd__free(x->ns[i]);
        kd__free(x->ns);
        kd__free(x->ns_live);
        kd__free(x->map);
        x->ns = NULL;
        x->ns_live = NULL;
        x->map = NULL;
        x->nns = x->nslot = x->mcap = 0;
        x->applied = 0;
    }
    kd__free(img);
    kd__free(vids);
    kd__free(path);
    return rc;
}

/* ---- acquire / release -------------------------------------------------------------- */

static vstate *vstate_get(kd_db *db) {
    pthread_mutex_lock(&db->ext_mu);
    if (!db->vec) {
        vstate *st = kd__calloc(1, sizeof *st);
        if (st) {
            pthread_mutex_init(&st->mu, NULL);
            db->vec = st;
            db->vec_free = vstate_free;
            db->vec_save = vstate_save;
            db->vec_stats = vstate_stats;
        }
    }
    vstate *st = db->vec;
    pthread_mutex_unlock(&db->ext_mu);
    return st;
}

static void vidx_unlink(vstate *st, vidx *x) {
    vidx **pp = &st->list;
    while (*pp != x) pp = &(*pp)->next;
    *pp = x->next;
    vidx_free(x);
}

int kd__vidx_acquire(kd_db *db, const char *model, size_t dim, int metric, uint64_t upto, vidx **out) {
    vstate *st = vstate_get(db);
    vidx *x;
    int rc;
    kd_buf mj = KD_BUF_INIT;
    if (!st) return kd__err(KD_NOMEM, "out of memory");
    kd__json_write_string(&mj, model, strlen(model));
    if (mj.oom) return kd__err(KD_NOMEM, "out of memory");
    pthread_mutex_lock(&st->mu);
    for (x = st->list; x; x = x->next)
        if (x->metric == metric && x->model_json.len == mj.len && memcmp(x->model_json.p, mj.p, mj.len) == 0) break;
    if (x) kd__buf_free(&mj);
    int created = !x, loaded = 0;
    double t0 = created ? mono_s() : 0;
    if (!x) {
        if (!(x = kd__calloc(1, sizeof *x)) || !(x->buf = kd__malloc(dim * sizeof(float)))) {
            kd__free(x);
            kd__buf_free(&mj);
            rc = kd__err(KD_NOMEM, "out of memory");
            goto fail;
        }
        x->model_json = mj;
        x->metric = metric;
        x->dim = dim;
        x->next = st->list;
        st->list = x;
        if ((rc = vidx_load(db, x, &loaded)) != KD_OK ||
            (!loaded && (rc = kd__hnsw_create((uint32_t)dim, hnsw_metric[metric], opt_m(db), opt_efc(db), 0x5EED, &x->h)) !=
                            KD_OK)) {
            vidx_unlink(st, x);
            goto fail;
        }
        if (loaded) atomic_fetch_add(&st->loads, 1);
        else atomic_fetch_add(&st->builds, 1);
    }
    slice sl = {x, NULL, 0, 0};
    while (x->applied < upto) { /* in slices: the index lock is held only to collect one */
        uint64_t to = upto - x->applied > CATCHUP_SLICE ? x->applied + CATCHUP_SLICE : upto;
        sl.n = 0;
        rc = kd__db_each_version(db, x->applied + 1, to, collect, &sl);
        for (size_t i = 0; i < sl.n && rc == KD_OK; i++) rc = vidx_apply(x, sl.p[i].nsi, &sl.p[i].d);
        if (rc != KD_OK) {
            kd__free(sl.p);
            vidx_unlink(st, x); /* cannot follow incrementally: the next search rebuilds it */
            goto fail;
        }
        x->applied = to;
    }
    kd__free(sl.p);
    if (created && !loaded && x->nslot && x->cap > x->nslot) { /* a bulk build: give back the slack */
        kd__hnsw_shrink(x->h);
        vslot *s2 = kd__realloc(x->slot, x->nslot * sizeof *s2);
        if (s2) {
            x->slot = s2;
            x->cap = x->nslot;
        }
    }
    uint32_t live = 0, dead = 0;
    kd__hnsw_count(x->h, &live, &dead);
    if (created)
        kd__log(KD_LOG_INFO, "vector index %s/%.*s: %s, %u vectors, in %.3f s", metric_name[metric],
                (int)KD_MIN(x->model_json.len, 200), x->model_json.p,
                loaded ? "loaded from its file and caught up" : "built from the log", live, mono_s() - t0);
    if (dead >= COMPACT_MIN && dead > live) {
        if ((rc = vidx_compact(db, x)) != KD_OK) {
            vidx_unlink(st, x);
            goto fail;
        }
        atomic_fetch_add(&st->builds, 1);
    }
    *out = x;
    return KD_OK;
fail:
    vstate_publish(st);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void kd__vidx_release(kd_db *db) {
    /* db->vec was read under ext_mu by the acquire and never changes until kd_close; taking
    ** ext_mu here, with st->mu held, would invert the order kd_stats_get uses. */
    vstate *st = db->vec;
    vstate_publish(st);
    pthread_mutex_unlock(&st->mu);
}
