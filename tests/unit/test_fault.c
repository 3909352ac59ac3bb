/*
** test_fault.c — I/O-error sweeps and power-loss iterations through the in-memory,
** fault-injecting storage backend (src/os/os_mem.c). See docs/testing.md, "Fault
** injection".
**
**   I/O error sweeps: for each write path (put, batch, delete, checkpoint, view refresh,
**   embed) and for open/recovery, for each kind of call (open, read, write, fsync,
**   directory fsync, rename) and each error (EIO, ENOSPC), fail the 1st, 2nd, 3rd, ...
**   such call until the operation runs without reaching the fault. After each failure:
**   the error is reported with a message, a failed fsync makes the handle refuse writes,
**   the database reopens (half the time after a power cut too), kd_check passes and every
**   acknowledged version is there with the same id, seq, timestamp and value.
**
**   Power loss: random acknowledged puts, deletes, batches and checkpoints with
**   sync=full; a crash at a random call (the backend freezes there: between a write and
**   its fsync, inside a checkpoint's rename, ...), then a power cut that drops and tears
**   unsynced data; reopen; every acknowledged version is there, no batch is half there,
**   kd_check passes.
**
**   Reordering power loss: the same rounds with the harsher cut of
**   kd__os_mem_power_loss_reorder (unsynced sectors land in any order, pages torn at
**   sector boundaries, the size of any moment), once with sync=full and once with
**   sync=off, where many records are unsynced at a cut and kd_sync is the promise: the
**   unsynced versions that survive must be a prefix, batches whole or absent.
**   lost_sector_rule checks the shape recovery cuts (a lost sector) against the shapes it
**   must report as corruption (rot followed by valid records).
**
** Deterministic: seeds are fixed and printed. KD_FAULT_LONG=1 runs many more iterations;
** KD_FAULT_SEED=N changes the base seed.
*/
#include "korudelta.h"
#include "crypto/crc32c.h"
#include "log/wal.h"
#include "os/os.h"
#include "t.h"

#include <inttypes.h>

#define DB "/mem/db"

static uint64_t g_faults, g_iters, g_verified, g_lost, g_opens;
static uint64_t g_seed = 20260101;
static int g_long;
static kd_sync_mode g_sync_mode = KD_SYNC_FULL; /* of every open_mem */

static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- the model of acknowledged versions --------------------------------------------- */

typedef struct ack {
    char ns[40], key[40];
    uint64_t seq;
    int64_t ts;
    uint8_t id[32];
    int deleted;
    int group;           /* >0: one atomic batch; its versions are all there or none */
    char value[64];
} ack;

typedef struct model {
    ack *v;
    size_t n, cap;
    /* batches that were not acknowledged: their keys must be all there or none */
    struct pend { char keys[8][40]; int n; } pend[64];
    int npend;
} model;

static ack *model_push(model *m) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        if (!m->v) abort();
    }
    ack *a = &m->v[m->n++];
    memset(a, 0, sizeof *a);
    return a;
}

static void model_add_entry(model *m, const kd_entry *e, const char *value) {
    ack *a = model_push(m);
    snprintf(a->ns, sizeof a->ns, "%s", e->ns);
    snprintf(a->key, sizeof a->key, "%s", e->key);
    a->seq = e->seq;
    a->ts = e->timestamp;
    memcpy(a->id, e->version_id, 32);
    a->deleted = e->deleted;
    snprintf(a->value, sizeof a->value, "%s", value ? value : "");
}

/* Adds the newest version of ns/key (just acknowledged) to the model. */
static int model_add_latest(model *m, kd_db *db, const char *ns, const char *key, const char *value) {
    kd_entry *es = NULL;
    size_t n = 0, total = 0;
    int rc = kd_history(db, ns, key, 0, 0, 0, &es, &n, &total);
    if (rc != KD_OK || n == 0) {
        fprintf(stderr, "  history %s/%s after an acknowledged write: %s\n", ns, key, kd_errmsg(db));
        return 0;
    }
    model_add_entry(m, &es[n - 1], value);
    kd_entries_free(es, n);
    return 1;
}

static void model_free(model *m) {
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* Every acknowledged version is there, unchanged; pending batches are all-or-nothing. */
static int model_verify(model *m, kd_db *db, const char *where) {
    int ok = 1;
    for (size_t i = 0; i < m->n; i++) {
        ack *a = &m->v[i];
        char hex[65];
        kd_entry e;
        memset(&e, 0, sizeof e);
        kd_hex(a->id, hex);
        int rc = kd_resolve_version(db, a->ns, a->key, hex, &e);
        if (rc != KD_OK || e.seq != a->seq || e.timestamp != a->ts || e.deleted != a->deleted ||
            (!a->deleted && a->value[0] && (!e.value || strcmp(e.value, a->value) != 0))) {
            fprintf(stderr, "  %s: LOST acknowledged version %s/%s seq %" PRIu64 " (rc %d: %s; got seq %" PRIu64 ")\n",
                    where, a->ns, a->key, a->seq, rc, rc ? kd_errmsg(db) : "differs", e.seq);
            g_lost++;
            ok = 0;
        } else
            g_verified++;
        kd_entry_clear(&e);
    }
    for (int b = 0; b < m->npend; b++) {
        int present = 0;
        for (int k = 0; k < m->pend[b].n; k++) {
            kd_entry e;
            memset(&e, 0, sizeof e);
            if (kd_get(db, "bt", m->pend[b].keys[k], &e) == KD_OK) present++;
            kd_entry_clear(&e);
        }
        if (present != 0 && present != m->pend[b].n) {
            fprintf(stderr, "  %s: batch half applied: %d of %d keys\n", where, present, m->pend[b].n);
            ok = 0;
        }
    }
    m->npend = 0; /* decided now: later writes never touch these fresh keys */
    return ok;
}

static int check_db(kd_db *db, const char *where) {
    kd_check_report r;
    memset(&r, 0, sizeof r);
    int rc = kd_check(db, 1, &r);
    if (rc != KD_OK || !r.ok) {
        fprintf(stderr, "  %s: kd_check: rc %d ok %d: %s %s\n", where, rc, r.ok, r.first_error, rc ? kd_errmsg(db) : "");
        return 0;
    }
    return 1;
}

static kd_db *open_mem(kd_vfs *vfs, int *rc_out) {
    kd_options o;
    kd_options_init(&o);
    o.vfs = vfs;
    o.sync = g_sync_mode;
    o.segment_bytes = 8192; /* rotations happen within a few dozen writes */
    o.checkpoint_bytes = 0;
    o.cache_bytes = 1 << 16;
    kd_db *db = NULL;
    int rc = kd_open(DB, &o, &db);
    g_opens++;
    if (rc_out) *rc_out = rc;
    return rc == KD_OK ? db : NULL;
}

/* ---- write paths ---------------------------------------------------------------------- */

static int n_put;

static int op_put(kd_db *db, model *m, uint64_t *rs) {
    char key[16], val[64];
    snprintf(key, sizeof key, "k%d", (int)(rnd(rs) % 12));
    snprintf(val, sizeof val, "{\"n\":%d,\"s\":\"v%" PRIu64 "\"}", n_put++, rnd(rs) % 1000);
    kd_entry e;
    memset(&e, 0, sizeof e);
    int rc = kd_put(db, "t", key, val, strlen(val), NULL, &e);
    if (rc == KD_OK) model_add_entry(m, &e, val);
    kd_entry_clear(&e);
    return rc;
}

static int op_delete(kd_db *db, model *m, uint64_t *rs) {
    /* make sure there is something to delete, then delete it */
    for (int i = 0; i < 12; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", (int)((rnd(rs) + (uint64_t)i) % 12));
        kd_entry e;
        memset(&e, 0, sizeof e);
        int rc = kd_delete(db, "t", key, &e);
        if (rc == KD_OK) model_add_entry(m, &e, NULL);
        kd_entry_clear(&e);
        if (rc != KD_NOTFOUND) return rc;
    }
    return op_put(db, m, rs);
}

/* A value of ~7 KB: with 8 KB segments every such put rotates the log (fsync of the old
** segment, a new segment file, its header, directory fsync, preallocation). */
static int op_put_big(kd_db *db, model *m, uint64_t *rs) {
    char val[7300];
    int n = snprintf(val, sizeof val, "{\"n\":%d,\"pad\":\"", n_put++);
    while (n < 7000) val[n++] = (char)('a' + rnd(rs) % 26);
    memcpy(val + n, "\"}", 3);
    kd_entry e;
    memset(&e, 0, sizeof e);
    int rc = kd_put(db, "t", "big", val, strlen(val), NULL, &e);
    if (rc == KD_OK) model_add_entry(m, &e, "");
    kd_entry_clear(&e);
    return rc;
}

static int n_batch;

static int op_batch(kd_db *db, model *m, uint64_t *rs) {
    kd_batch *b = kd_batch_new();
    int items = 1 + (int)(rnd(rs) % 5), bid = n_batch++;
    struct pend p;
    memset(&p, 0, sizeof p);
    char vals[8][64];
    for (int i = 0; i < items; i++) {
        snprintf(p.keys[i], sizeof p.keys[i], "b%d_%d", bid, i);
        snprintf(vals[i], sizeof vals[i], "{\"b\":%d,\"i\":%d}", bid, i);
        if (kd_batch_put(b, "bt", p.keys[i], vals[i], strlen(vals[i])) != KD_OK) abort();
    }
    p.n = items;
    uint64_t first = 0, last = 0;
    int rc = kd_batch_commit(db, b, &first, &last);
    kd_batch_free(b);
    size_t before = m->n;
    if (rc == KD_OK) {
        for (int i = 0; i < items; i++)
            if (!model_add_latest(m, db, "bt", p.keys[i], vals[i])) {
                /* could not read it back now (the backend froze): check all-or-nothing
                ** later, and that the batch's seqs are there through the other keys */
                if (m->npend < 64) m->pend[m->npend++] = p;
                break;
            }
    } else if (m->npend < 64)
        m->pend[m->npend++] = p;
    for (size_t i = before; i < m->n; i++) m->v[i].group = bid + 1;
    return rc;
}

static int op_checkpoint(kd_db *db, model *m, uint64_t *rs) {
    (void)m;
    (void)rs;
    return kd_checkpoint(db);
}

static int op_view_refresh(kd_db *db, model *m, uint64_t *rs) {
    (void)rs;
    int rc = kd_view_refresh(db, "v1");
    if (rc == KD_OK) model_add_latest(m, db, "_views", "v1", NULL);
    if (rc == KD_OK) m->v[m->n - 1].value[0] = 0, m->v[m->n - 1].deleted = 0;
    return rc;
}

static int op_embed(kd_db *db, model *m, uint64_t *rs) {
    float v[4];
    for (int i = 0; i < 4; i++) v[i] = (float)(rnd(rs) % 100) / 10.0f + 0.5f;
    char key[16];
    snprintf(key, sizeof key, "e%d", (int)(rnd(rs) % 4));
    kd_entry e;
    memset(&e, 0, sizeof e);
    int rc = kd_embed(db, "docs", key, v, 4, "m", NULL, &e);
    if (rc == KD_OK) model_add_entry(m, &e, NULL);
    kd_entry_clear(&e);
    return rc;
}

/* A view's or an embedding's stored value is not compared (only id, seq, time). */
static int model_value_known(const ack *a) { return a->value[0] != 0; }

typedef int (*op_fn)(kd_db *, model *, uint64_t *);
static const struct { const char *name; op_fn fn; } ops[] = {
    {"put", op_put},         {"put_big", op_put_big},     {"batch", op_batch},         {"delete", op_delete},
    {"checkpoint", op_checkpoint}, {"view_refresh", op_view_refresh}, {"embed", op_embed},
};

/* A small database every sweep starts from: values, a view, an embedding. */
static kd_db *setup(kd_vfs *vfs, model *m, uint64_t *rs) {
    int rc;
    kd_db *db = open_mem(vfs, &rc);
    if (!db) {
        fprintf(stderr, "  setup open: %s\n", kd_errmsg(NULL));
        abort();
    }
    for (int i = 0; i < 6; i++)
        if (op_put(db, m, rs) != KD_OK) abort();
    if (op_batch(db, m, rs) != KD_OK || op_embed(db, m, rs) != KD_OK) abort();
    kd_query *q = NULL;
    if (kd_query_new(&q) != KD_OK || kd_query_set_filter(q, "n >= 0") != KD_OK) abort();
    if (kd_view_create(db, "v1", "t", q, NULL, 0) != KD_OK) {
        fprintf(stderr, "  view create: %s\n", kd_errmsg(db));
        abort();
    }
    kd_query_free(q);
    model_add_latest(m, db, "_views", "v1", NULL);
    return db;
}

static const struct { const char *name; unsigned mask; } kinds[] = {
    {"write", KD_MEM_WRITE}, {"fsync", KD_MEM_SYNC}, {"dirsync", KD_MEM_SYNC_DIR},
    {"rename", KD_MEM_RENAME}, {"open", KD_MEM_OPEN}, {"read", KD_MEM_READ},
    {"any", KD_MEM_IO | KD_MEM_TRUNCATE},
};

/* After a fault: close, maybe cut the power, reopen clean, check everything. */
static int reopen_and_verify(kd_vfs *vfs, kd_db *db, model *m, int power_cut, uint64_t pseed, const char *where) {
    kd_close(db); /* may fail: the handle is freed in every case */
    if (power_cut && kd__os_mem_power_loss(vfs, pseed) != KD_OK) abort();
    int rc;
    kd_db *d2 = open_mem(vfs, &rc);
    if (!d2) {
        fprintf(stderr, "  %s: reopen failed: %d %s\n", where, rc, kd_errmsg(NULL));
        return 0;
    }
    int ok = model_verify(m, d2, where) & check_db(d2, where);
    kd_close(d2);
    return ok;
}

/* Fixes model entries whose value is not compared (views, embeddings). */
static void model_unvalue(model *m) {
    for (size_t i = 0; i < m->n; i++)
        if (!model_value_known(&m->v[i])) m->v[i].value[0] = 0;
}

static int sweep_op(int opi, int kindi, int err, int *steps) {
    int ok = 1;
    for (uint64_t n = 1;; n++) {
        uint64_t rs = g_seed + (uint64_t)opi * 1000003 + (uint64_t)kindi * 10007 + n * 31 + (uint64_t)err;
        kd_vfs *vfs = kd__os_mem_new(rs);
        model m;
        memset(&m, 0, sizeof m);
        kd_db *db = setup(vfs, &m, &rs);
        kd__os_mem_fail(vfs, kinds[kindi].mask, n, err);
        int rc = ops[opi].fn(db, &m, &rs);
        int fired = kd__os_mem_fired(vfs);
        kd__os_mem_fail(vfs, 0, 0, 0);
        char where[128];
        snprintf(where, sizeof where, "%s, %s #%" PRIu64 " %s (seed %" PRIu64 ")", ops[opi].name, kinds[kindi].name, n,
                 err == KD_FULL ? "ENOSPC" : "EIO", rs);
        if (!fired) {
            if (rc != KD_OK) {
                fprintf(stderr, "  %s: failed without a fault: %s\n", where, kd_errmsg(db));
                ok = 0;
            }
            kd_close(db);
            model_free(&m);
            kd__os_mem_free(vfs);
            *steps += (int)n - 1;
            if (getenv("KD_FAULT_VERBOSE"))
                printf("     %-12s %-8s %-6s: %d faults\n", ops[opi].name, kinds[kindi].name,
                       err == KD_FULL ? "ENOSPC" : "EIO", (int)n - 1);
            return ok;
        }
        g_faults++;
        g_iters++;
        if (rc != KD_OK) {
            const char *msg = kd_errmsg(db);
            if (!msg || !*msg) {
                fprintf(stderr, "  %s: error %d without a message\n", where, rc);
                ok = 0;
            }
            if (kinds[kindi].mask == KD_MEM_SYNC && ops[opi].fn != op_checkpoint && ops[opi].fn != op_view_refresh) {
                /* no silent retry after a failed fsync of the log */
                const char *v = "{\"after\":1}";
                int r2 = kd_put(db, "t", "after", v, strlen(v), NULL, NULL);
                if (r2 == KD_OK) {
                    fprintf(stderr, "  %s: a write succeeded after a failed fsync\n", where);
                    ok = 0;
                    model_add_latest(&m, db, "t", "after", v);
                }
            }
        }
        model_unvalue(&m);
        if (!reopen_and_verify(vfs, db, &m, (int)(n & 1), rs, where)) ok = 0;
        model_free(&m);
        kd__os_mem_free(vfs);
        if (!ok || n > 400) {
            if (n > 400) fprintf(stderr, "  %s: sweep did not end\n", where), ok = 0;
            return ok;
        }
    }
}

TEST(io_error_sweeps) {
    int steps = 0;
    for (int opi = 0; opi < (int)(sizeof ops / sizeof ops[0]); opi++)
        for (int k = 0; k < (int)(sizeof kinds / sizeof kinds[0]); k++)
            for (int e = 0; e < 2; e++) {
                int before = steps;
                if (!sweep_op(opi, k, e ? KD_FULL : KD_IOERR, &steps)) {
                    fprintf(stderr, "  sweep %s/%s/%s failed\n", ops[opi].name, kinds[k].name, e ? "ENOSPC" : "EIO");
                    t_cur_failed = 1;
                }
                (void)before;
            }
    printf("     write paths: %d faults injected and recovered from\n", steps);
}

/* Open and recovery: a database left by a crash (unsynced tail, no checkpoint) is
** opened with the nth call of each kind failing. */
TEST(io_error_open_sweep) {
    int injected = 0;
    for (int k = 0; k < (int)(sizeof kinds / sizeof kinds[0]); k++)
        for (int e = 0; e < 2; e++) {
            int err = e ? KD_FULL : KD_IOERR;
            for (uint64_t n = 1; n < 400; n++) {
                uint64_t rs = g_seed * 7 + (uint64_t)k * 101 + n * 13 + (uint64_t)e;
                kd_vfs *vfs = kd__os_mem_new(rs);
                model m;
                memset(&m, 0, sizeof m);
                kd_db *db = setup(vfs, &m, &rs);
                for (int i = 0; i < 30; i++) op_put(db, &m, &rs); /* several segments */
                if (e) kd_checkpoint(db);
                for (int i = 0; i < 3; i++) op_put(db, &m, &rs); /* after the checkpoint */
                kd__os_mem_crash_at(vfs, KD_MEM_WRITE, 1);   /* and a torn last write */
                op_put_big(db, &m, &rs);
                model_unvalue(&m);
                kd__os_mem_power_loss(vfs, rs); /* leave it as a crash would */
                kd_close(db);
                kd__os_mem_fail(vfs, kinds[k].mask, n, err);
                int rc;
                kd_db *d2 = open_mem(vfs, &rc);
                int fired = kd__os_mem_fired(vfs);
                kd__os_mem_fail(vfs, 0, 0, 0);
                char where[128];
                snprintf(where, sizeof where, "open, %s #%" PRIu64 " %s (seed %" PRIu64 ")", kinds[k].name, n,
                         err == KD_FULL ? "ENOSPC" : "EIO", rs);
                int done = !fired;
                if (fired) {
                    g_faults++;
                    g_iters++;
                    injected++;
                    if (!d2 && !*kd_errmsg(NULL)) {
                        fprintf(stderr, "  %s: error %d without a message\n", where, rc);
                        t_cur_failed = 1;
                    }
                }
                if (d2) {
                    if (!model_verify(&m, d2, where) || !check_db(d2, where)) t_cur_failed = 1;
                    kd_close(d2);
                } else if (!fired) {
                    fprintf(stderr, "  %s: open failed without a fault: %s\n", where, kd_errmsg(NULL));
                    t_cur_failed = 1;
                }
                if (fired && !reopen_and_verify(vfs, open_mem(vfs, &rc), &m, 0, rs, where)) t_cur_failed = 1;
                model_free(&m);
                kd__os_mem_free(vfs);
                if (done || t_cur_failed) {
                    if (getenv("KD_FAULT_VERBOSE"))
                        printf("     open %-8s %-6s: %d faults\n", kinds[k].name, e ? "ENOSPC" : "EIO", (int)n - 1);
                    break;
                }
            }
        }
    printf("     open/recovery: %d faults injected\n", injected);
}

/* ---- power loss ------------------------------------------------------------------- */

/* A power cut: the simple model (unsynced writes replayed in order up to a torn one) or
** the reordering one (each sector of a file from its own moment since the last sync). */
typedef int (*cut_fn)(kd_vfs *vfs, uint64_t seed);

typedef struct pl_stats {
    uint64_t crashes, acked, synced_later, kept, dropped, holes;
} pl_stats;

/* sync=off: the versions written since the last kd_sync (in u) were never promised.
** After a cut the log is cut at its first damage, so those that survive are a prefix of
** them (no version present after one that is gone), a batch is whole or absent, and the
** survivors are durable from then on (open syncs them): they move into m. */
static int verify_unsynced(model *m, model *u, kd_db *db, const char *where, pl_stats *st) {
    int ok = 1;
    size_t first_gone = u->n;
    for (size_t i = 0; i < u->n; i++) {
        ack *a = &u->v[i];
        char hex[65];
        kd_entry e;
        memset(&e, 0, sizeof e);
        kd_hex(a->id, hex);
        int rc = kd_resolve_version(db, a->ns, a->key, hex, &e);
        int present = rc == KD_OK;
        if (present && (e.seq != a->seq || e.timestamp != a->ts || e.deleted != a->deleted)) {
            fprintf(stderr, "  %s: unsynced version %s/%s seq %" PRIu64 " came back changed (seq %" PRIu64 ")\n",
                    where, a->ns, a->key, a->seq, e.seq);
            ok = 0;
        }
        kd_entry_clear(&e);
        if (!present && first_gone == u->n) first_gone = i;
        if (present && first_gone < i) {
            fprintf(stderr, "  %s: unsynced seq %" PRIu64 " survived but seq %" PRIu64 " before it is gone\n", where,
                    a->seq, u->v[first_gone].seq);
            ok = 0;
        }
        for (size_t j = 0; j < i; j++) /* a batch: same group, consecutive entries */
            if (a->group && u->v[j].group == a->group && (j < first_gone) != present) {
                fprintf(stderr, "  %s: batch %d half there after a power cut\n", where, a->group);
                ok = 0;
                break;
            }
        if (present) {
            *model_push(m) = *a;
            st->kept++;
        } else
            st->dropped++;
    }
    u->n = 0;
    u->npend = 0;
    return ok;
}

/* Rounds of: open, verify, random writes with a crash armed at a random call, power cut.
** sync_off: writes are acknowledged before they are durable; kd_sync is the promise. */
static void power_loss_rounds(const char *name, int iters, cut_fn cut, int sync_off, uint64_t seed_base) {
    int per_life = 40;
    uint64_t lost_before = g_lost;
    pl_stats st;
    memset(&st, 0, sizeof st);
    kd_vfs *vfs = NULL;
    model m, u;
    memset(&m, 0, sizeof m);
    memset(&u, 0, sizeof u);
    g_sync_mode = sync_off ? KD_SYNC_OFF : KD_SYNC_FULL;
    int it;
    for (it = 0; it < iters; it++) {
        uint64_t rs = seed_base + (uint64_t)it;
        if (it % per_life == 0) {
            if (vfs) {
                st.holes += kd__os_mem_holes(vfs);
                kd__os_mem_free(vfs);
            }
            model_free(&m);
            model_free(&u);
            vfs = kd__os_mem_new(rs);
        }
        char where[128];
        snprintf(where, sizeof where, "%s iteration %d (seed %" PRIu64 ")", name, it, rs);
        int rc;
        kd_db *db = open_mem(vfs, &rc);
        if (!db) {
            fprintf(stderr, "  %s: open after power loss failed: %d %s\n", where, rc, kd_errmsg(NULL));
            t_cur_failed = 1;
            break;
        }
        if (!model_verify(&m, db, where) || !verify_unsynced(&m, &u, db, where, &st) || !check_db(db, where)) {
            t_cur_failed = 1;
            kd_close(db);
            break;
        }
        /* arm a crash at a random call of this round */
        static const unsigned masks[] = {KD_MEM_WRITE, KD_MEM_SYNC, KD_MEM_WRITE | KD_MEM_SYNC, KD_MEM_ALL,
                                         KD_MEM_RENAME | KD_MEM_SYNC_DIR};
        int nops = 1 + (int)(rnd(&rs) % (sync_off ? 14 : 6));
        unsigned mask = masks[rnd(&rs) % (sizeof masks / sizeof masks[0])];
        kd__os_mem_crash_at(vfs, mask, 1 + rnd(&rs) % (uint64_t)(3 * nops + 2));
        for (int i = 0; i < nops && !kd__os_mem_frozen(vfs); i++) {
            uint64_t r = rnd(&rs) % 10;
            model *into = sync_off ? &u : &m;
            size_t before = into->n;
            if (r < 5) rc = op_put(db, into, &rs);
            else if (r < 7) rc = op_batch(db, into, &rs);
            else if (r < 9) rc = op_delete(db, into, &rs);
            else if (!sync_off || rnd(&rs) % 3 == 0) rc = op_checkpoint(db, into, &rs);
            else if (kd_sync(db) == KD_OK) { /* the promise: everything so far is durable */
                for (size_t j = 0; j < u.n; j++) *model_push(&m) = u.v[j];
                st.synced_later += u.n;
                u.n = 0;
            }
            if (sync_off) into->npend = 0; /* unsynced batches are checked through their group */
            st.acked += into->n - before;
        }
        if (kd__os_mem_fired(vfs)) st.crashes++;
        if (cut(vfs, rnd(&rs)) != KD_OK) abort();
        kd_close(db); /* a dead handle: every call fails, memory is freed */
        g_iters++;
    }
    if (vfs && !t_cur_failed) { /* the last round's crash is verified too */
        int rc;
        kd_db *db = open_mem(vfs, &rc);
        if (!db || !model_verify(&m, db, "final") || !verify_unsynced(&m, &u, db, "final", &st) ||
            !check_db(db, "final"))
            t_cur_failed = 1;
        kd_close(db);
    }
    if (vfs) st.holes += kd__os_mem_holes(vfs);
    model_free(&m);
    model_free(&u);
    kd__os_mem_free(vfs);
    g_sync_mode = KD_SYNC_FULL;
    printf("     %s: %d cuts (seeds %" PRIu64 "..), %" PRIu64 " crashes inside a write path, %" PRIu64
           " versions acknowledged, %" PRIu64 " lost",
           name, it, seed_base, st.crashes, st.acked, g_lost - lost_before);
    if (sync_off)
        printf(";\n       unsynced at a cut: %" PRIu64 " survived, %" PRIu64 " dropped (always a prefix); %" PRIu64
               " made durable by kd_sync", st.kept, st.dropped, st.synced_later);
    if (cut == kd__os_mem_power_loss_reorder) printf("; %" PRIu64 " files left with a hole", st.holes);
    printf("\n");
}

TEST(power_loss) {
    power_loss_rounds("power loss", g_long ? 50000 : 2000, kd__os_mem_power_loss, 0, g_seed * 1000);
}

/* The harsher model: unsynced sectors land in any order, pages torn at sector boundaries. */
TEST(power_loss_reorder) {
    power_loss_rounds("reordering power loss, sync=full", g_long ? 50000 : 3000, kd__os_mem_power_loss_reorder, 0,
                      g_seed * 1000 + 7000000);
}

/* sync=off keeps many records unsynced at once, so a cut can lose an earlier one and keep
** a later one: the shape recovery must tell apart from corruption. */
TEST(power_loss_reorder_unsynced) {
    power_loss_rounds("reordering power loss, sync=off", g_long ? 50000 : 3000, kd__os_mem_power_loss_reorder, 1,
                      g_seed * 1000 + 9000000);
}

/* ---- the lost-sector rule of recovery (src/log/wal.c, kd__wal_scan) --------------- */

typedef struct rec_offs { uint64_t off[16]; int n; } rec_offs;

static int note_rec(void *ctx, const kd_rec *r) {
    rec_offs *o = ctx;
    if (o->n < 16) o->off[o->n++] = r->off;
    return 0;
}

/* Writes four synced ~1,450-byte records, damages the third as `shape` says, reopens.
** Returns the open's code; *kept counts the four keys still there, *bad_off is the third
** record's offset. Shapes: 0 zeros from the record's start to the end of its sector (its
** sector was lost), 1 one flipped byte inside it (rot), 2 only its first 8 bytes zeroed
** (not a sector), 3 a whole sector inside it zeroed, its first sector intact. */
static int damaged_log_open(int shape, int *kept, uint64_t *bad_off, char *msg, size_t msgn) {
    kd_vfs *vfs = kd__os_mem_new(42 + (uint64_t)shape);
    int rc;
    kd_db *db = open_mem(vfs, &rc);
    char val[1500];
    int n = snprintf(val, sizeof val, "{\"pad\":\"");
    while (n < 1400) val[n++] = 'x';
    memcpy(val + n, "\"}", 3);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", i);
        val[9] = (char)('a' + i); /* equal values would be stored once */
        if (kd_put(db, "t", key, val, strlen(val), NULL, NULL) != KD_OK) {
            fprintf(stderr, "  put: %s\n", kd_errmsg(db));
            abort();
        }
    }
    kd__os_mem_power_loss(vfs, 1); /* everything was synced: a cut keeps it all */
    kd_close(db);                  /* so no checkpoint: recovery scans the whole log */
    kd_file *f = NULL;
    static uint8_t img[8192];
    size_t got = 0;
    if (vfs->open(vfs, DB "/log/00000001.kdl", KD_OPEN_WRITE, &f) != KD_OK ||
        vfs->read(f, img, sizeof img, 0, &got) != KD_OK) {
        fprintf(stderr, "  reading the log: %s\n", kd_errmsg(NULL));
        abort();
    }
    rec_offs o = {{0}, 0};
    kd_scan_end end;
    kd__wal_scan(1, img, got, KD_SEG_HEADER, note_rec, &o, &end);
    if (o.n < 4) {
        fprintf(stderr, "  scan found %d records in %zu bytes (%s at %llu)\n", o.n, got, end.why, (unsigned long long)end.bad_off);
        abort();
    }
    uint64_t off = o.off[2], head = (off / 512 + 1) * 512;
    uint8_t zeros[512] = {0}, x = 0;
    *bad_off = off;
    if (head + 512 > o.off[3] || off % 512 == 0) { /* the record must span a whole sector */
        fprintf(stderr, "  records at %" PRIu64 " and %" PRIu64 ": the layout changed\n", off, o.off[3]);
        abort();
    }
    if (shape == 0) rc = vfs->write(f, zeros, (size_t)(head - off), off);
    else if (shape == 1) rc = vfs->write(f, (x = img[off + 300] ^ 0x10, &x), 1, off + 300);
    else if (shape == 2) rc = vfs->write(f, zeros, 8, off);
    else rc = vfs->write(f, zeros, 512, head);
    if (rc != KD_OK || vfs->sync(f) != KD_OK) abort();
    vfs->close(f);
    db = open_mem(vfs, &rc);
    snprintf(msg, msgn, "%s", rc ? kd_errmsg(NULL) : "");
    *kept = 0;
    for (int i = 0; db && i < 4; i++) {
        char key[16];
        kd_entry e;
        memset(&e, 0, sizeof e);
        snprintf(key, sizeof key, "r%d", i);
        if (kd_get(db, "t", key, &e) == KD_OK) ++*kept;
        kd_entry_clear(&e);
    }
    if (db && !check_db(db, "lost sector rule")) t_cur_failed = 1;
    kd_close(db);
    kd__os_mem_free(vfs);
    return rc;
}

/* A lost sector (the record's first sector back to zeros, or a whole sector inside it)
** ends the log there even though valid records follow; other damage followed by valid
** records is corruption, reported with its offset and never cut. */
TEST(lost_sector_rule) {
    static const struct { const char *what; int corrupt; } shapes[] = {
        {"zeros from the record's start to its sector's end", 0},
        {"one flipped byte", 1},
        {"8 zero bytes, not up to a sector boundary", 1},
        {"a whole zero sector inside the record", 0},
    };
    for (int s = 0; s < 4; s++) {
        int kept = -1;
        uint64_t off = 0;
        char msg[512], want[64];
        int rc = damaged_log_open(s, &kept, &off, msg, sizeof msg);
        snprintf(want, sizeof want, "offset %" PRIu64 ":", off);
        if (shapes[s].corrupt) {
            if (rc != KD_CORRUPT || !strstr(msg, want)) {
                fprintf(stderr, "  %s: want KD_CORRUPT naming %s, got %d: %s\n", shapes[s].what, want, rc, msg);
                t_cur_failed = 1;
            }
        } else if (rc != KD_OK || kept != 2) {
            fprintf(stderr, "  %s: want the log cut before the damaged record (2 keys kept), got %d, %d keys: %s\n",
                    shapes[s].what, rc, kept, msg);
            t_cur_failed = 1;
        }
    }
}

/* Writes a valid record of payload length L at off (payload bytes `fill`). */
static void put_record(uint8_t *img, uint64_t off, uint32_t L, uint8_t fill) {
    kd__set_u32(img + off, L);
    img[off + 8] = KD_REC_COMMIT;
    memset(img + off + KD_REC_HEADER, fill, L);
    uint32_t crc = kd__crc32c(0, img + off, 4);
    crc = kd__crc32c(crc, img + off + 8, 1 + (size_t)L);
    kd__set_u32(img + off + 4, crc);
}

/* The zeros at a bad record's start, up to its sector's end, count as a lost sector when
** they hold its whole length field, or when the record is otherwise whole. A record that
** starts 1-3 bytes before a boundary with a length whose low bytes are zero (1024 here)
** and rot further on is corruption, not a cut. Returns 1 corrupt, 0 cut, -1 neither. */
static int scan_shape(int zero_head, int intact) {
    static uint8_t img[2048];
    memset(img, 0xab, sizeof img);
    uint64_t bad = 512 - (uint64_t)zero_head, good = 1545;
    if (intact) put_record(img, bad, (uint32_t)(good - bad - KD_REC_HEADER), 7);
    else if (zero_head < 4) kd__set_u32(img + bad, 1024); /* rot in its payload: 0xab */
    memset(img + bad, 0, (size_t)zero_head); /* its first bytes, up to the sector's end, lost */
    put_record(img, good, 64, 1);            /* a valid record after it */
    kd_scan_end end;
    rec_offs o = {{0}, 0};
    kd__wal_scan(1, img, good + KD_REC_HEADER + 64, bad, note_rec, &o, &end);
    return end.corrupt ? 1 : end.lost_pages ? 0 : -1;
}

TEST(lost_sector_rule_length_field) {
    for (int z = 1; z <= 3; z++) {
        CHECK_EQ_INT(scan_shape(z, 0), 1); /* 1-3 zero bytes, then rot: corrupt */
        CHECK_EQ_INT(scan_shape(z, 1), 0); /* 1-3 zero bytes of a record otherwise whole: cut */
    }
    CHECK_EQ_INT(scan_shape(4, 0), 0); /* the whole length field zero to the boundary: cut */
    CHECK_EQ_INT(scan_shape(40, 0), 0);
}

/* The backend itself: what a power cut keeps and drops. */
TEST(mem_backend_model) {
    kd_vfs *v = kd__os_mem_new(1);
    kd_file *f = NULL;
    CHECK_EQ_INT(v->mkdirs(v, "/a/b"), KD_OK);
    CHECK_EQ_INT(v->sync_dir(v, "/a"), KD_OK);
    CHECK_EQ_INT(v->open(v, "/a/b/f", KD_OPEN_WRITE | KD_OPEN_CREATE, &f), KD_OK);
    CHECK_EQ_INT(v->write(f, "hello", 5, 0), KD_OK);
    CHECK_EQ_INT(v->sync(f), KD_OK);
    CHECK_EQ_INT(v->sync_dir(v, "/a/b"), KD_OK);
    const uint8_t *map = NULL;
    CHECK_EQ_INT(v->map(f, 1 << 16, &map), KD_OK);
    CHECK_EQ_INT(v->write(f, " world", 6, 5), KD_OK); /* unsynced, visible through the map */
    CHECK(memcmp(map, "hello world", 11) == 0);
    kd_file *g = NULL;
    CHECK_EQ_INT(v->open(v, "/a/b/g", KD_OPEN_WRITE | KD_OPEN_CREATE, &g), KD_OK);
    long holder;
    kd_file *l1 = NULL, *l2 = NULL;
    CHECK_EQ_INT(v->lock(v, "/a/LOCK", &l1, &holder), KD_OK);
    CHECK_EQ_INT(v->lock(v, "/a/LOCK", &l2, &holder), KD_BUSY);
    kd__os_mem_fail(v, KD_MEM_SYNC, 1, KD_FULL);
    CHECK_EQ_INT(v->sync(f), KD_FULL);
    CHECK_EQ_INT(kd__os_mem_power_loss(v, 7), KD_OK);
    CHECK(v->write(f, "x", 1, 0) != KD_OK);            /* dead handle */
    CHECK(v->open(v, "/a/b/f", KD_OPEN_READ, &g) != KD_OK); /* old handles still open */
    v->unmap(map, 1 << 16);
    v->close(f);
    v->close(g);
    v->unlock(l1);
    CHECK_EQ_INT(v->open(v, "/a/b/f", KD_OPEN_READ, &f), KD_OK);
    uint64_t size = 0;
    char buf[16] = {0};
    size_t got = 0;
    v->size(f, &size);
    CHECK(size >= 5 && size <= 11); /* " world" kept, dropped or torn */
    CHECK_EQ_INT(v->read(f, buf, sizeof buf, 0, &got), KD_OK);
    CHECK(memcmp(buf, "hello", 5) == 0);
    v->close(f);
    /* "g" was created after the last sync of /a/b: it may be gone, never half there */
    CHECK_EQ_INT(v->lock(v, "/a/LOCK", &l1, &holder), KD_OK);
    v->unlock(l1);
    kd__os_mem_free(v);
}

int main(void) {
    setenv("KORU_LOG", "error", 0); /* torn tails and failed checkpoints are expected here */
    const char *s = getenv("KD_FAULT_SEED");
    if (s) g_seed = strtoull(s, NULL, 10);
    g_long = getenv("KD_FAULT_LONG") && atoi(getenv("KD_FAULT_LONG")) > 0;
    printf("seed %" PRIu64 "%s\n", g_seed, g_long ? " (long run)" : "");
    RUN(mem_backend_model);
    RUN(lost_sector_rule);
    RUN(lost_sector_rule_length_field);
    RUN(io_error_sweeps);
    RUN(io_error_open_sweep);
    RUN(power_loss);
    RUN(power_loss_reorder);
    RUN(power_loss_reorder_unsynced);
    printf("faults injected %" PRIu64 ", fault/crash iterations %" PRIu64 ", opens %" PRIu64
           ", versions verified %" PRIu64 ", versions lost %" PRIu64 "\n",
           g_faults, g_iters, g_opens, g_verified, g_lost);
    return t_done();
}
