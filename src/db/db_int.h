/*
** db_int.h — the kd_db handle and what the db layer's files share.
**
** Locking, outermost first:
**   wmu       serializes commits (validation, seq and timestamp assignment, the log
**             append, applying to the index). Never held while waiting for fsync.
**   ix_lock   rwlock over the index and the cache links: readers share it; a commit
**             holds it exclusively only while applying (no I/O under it).
**   list_mu   serializes the lazy rebuild of sorted key lists (taken under ix_lock).
**   wal.mu    group-commit state (inside the wal).
** Visibility: readers only see versions with seq <= visible_seq: in sync=full that is
** the durable seq, so nobody reads a write that a crash could still take back.
*/
#ifndef KD_DB_INT_H
#define KD_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "log/wal.h"
#include "os/os.h"
#include "store/cache.h"
#include "store/commit.h"
#include "store/index.h"

enum { KD_HOOK_VIEWS, KD_HOOK_SUBS, KD_HOOKS };

struct kd_db {
    kd_vfs *vfs;
    char *path;
    kd_file *lock;
    kd_options opt;
    kd_wal wal;
    kd_index ix;
    kd_cache cache;
    pthread_rwlock_t ix_lock;
    pthread_mutex_t wmu;
    pthread_mutex_t list_mu;
    _Atomic uint64_t visible_seq;
    uint64_t last_seq;      /* under wmu */
    uint64_t writes;        /* versions committed since open, under wmu */
    int64_t last_ts;        /* under wmu */
    kd_buf rec;             /* commit record being built, under wmu */
    int read_only;
    /* Checkpoints: one at a time (ckpt_mu); ckpt_seq and ckpt_log_bytes describe the
    ** one on disk. */
    pthread_mutex_t ckpt_mu;
    uint64_t ckpt_seq;
    _Atomic uint64_t ckpt_log_bytes;
    uint64_t auto_ckpt_bytes; /* write a checkpoint after this much new log */
    /* The maintenance thread: the sync=normal flusher and automatic checkpoints. */
    pthread_t maint;
    int maint_running;
    pthread_mutex_t fl_mu;
    pthread_cond_t fl_cond;
    int stopping;
    /* Layers above db (views; later subscriptions) attach to a handle here: ext_mu guards
    ** attaching; once set, the pointers stay until kd_close, which calls ext_free first. */
    pthread_mutex_t ext_mu;
    void *views;
    void (*views_free)(void *views);
    void *subs;
    void (*subs_free)(void *subs);
    void *vec;                /* vector search's HNSW indexes (src/vector/vindex.c) */
    void (*vec_free)(void *vec);
    int (*vec_save)(kd_db *db, void *vec, int wait); /* after each checkpoint (wait 0: skip
                                                        when busy), and at close (wait 1) */
    void (*vec_stats)(void *vec, kd_stats *st);
    /* Called after every successful commit, once its versions are visible (outside every
    ** db lock), by the committing thread: one slot per layer that listens. */
    void (*_Atomic hooks[KD_HOOKS])(kd_db *db);
};

/* Fills e from the version at position pos of key k: ns, key, seq, timestamp, ids,
** value hash, previous version; the value with KD_FILL_VALUE, the change type with
** KD_FILL_CHANGE. Caller holds ix_lock. */
#define KD_FILL_VALUE 1
#define KD_FILL_CHANGE 2
int kd__db_fill(kd_db *db, const kd_key *k, uint32_t pos, int flags, kd_entry *e);
/* Reads a value's canonical bytes (cache, else log) and its hash. Caller holds ix_lock. */
int kd__db_value(kd_db *db, const kd_ver *v, char **out, uint32_t *len, uint8_t hash[32]);
/* Applies one decoded commit (recovery, checkpoint-less replay) to the index. */
int kd__db_apply_commit(kd_db *db, const kd_commit *c, uint64_t payload_loc, int verify_ids);

/* checkpoint.c — snapshots the index under wmu, waits until the log is durable up to
** the snapshot, then writes the file. The caller must not hold wmu. */
int kd__checkpoint_write(kd_db *db);
/* Writes p[0..n) to <db>/name so that a crash leaves the old file or the new one: through
** name.tmp, fsynced, renamed over name, directory fsynced. */
int kd__db_write_file(kd_db *db, const char *name, const void *p, size_t n);
int kd__checkpoint_load(kd_db *db, int *loaded, uint64_t *log_pos);

/* db.c */
int kd__hex_prefix_valid(const char *s);
/* Does the id start with the first n hex digits of hex (either case)? */
int kd__id_has_prefix(const uint8_t id[32], const char *hex, size_t n);

/* ---- db_scan.c: what the query and views layers read ------------------------------- */
/* A live version as the upper layers see it. Every pointer points into the index's key
** arena or the log's mapping and stays valid until kd_close. */
typedef struct kd__doc {
    const char *key;
    uint32_t klen;
    const char *val;      /* canonical JSON (not NUL-terminated); NULL for a tombstone */
    uint32_t vlen;
    const uint8_t *id;    /* the version id, 32 bytes */
    uint64_t seq;
    int64_t ts;
} kd__doc;

/* The live keys of namespace ns (any namespace, system ones included) as of max_seq
** (0 = everything visible now) and, when at, as of timestamp t: for each key its newest
** such version, skipped when it is a tombstone. In key creation order. *out is an array
** to release with kd__free (NULL when empty); *upto receives the seq the scan saw. The
** index lock is held only while collecting. */
int kd__db_scan(kd_db *db, const char *ns, int at, int64_t t, uint64_t max_seq, kd__doc **out,
                size_t *n, uint64_t *upto);

/* The version seq (any namespace) as a document: its key, value (NULL for a tombstone),
** id, timestamp. The pointers stay valid until kd_close. KD_NOTFOUND past the index. */
int kd__db_doc_at(kd_db *db, uint64_t seq, kd__doc *d);

/* Calls cb for every version with from <= seq <= to (to <= the visible seq), in seq order,
** under the index read lock: ns is the namespace name, d->val NULL for a tombstone. A
** non-zero return from cb stops and is returned. */
int kd__db_each_version(kd_db *db, uint64_t from, uint64_t to,
                        int (*cb)(void *ctx, const char *ns, const kd__doc *d), void *ctx);

/* The seq every reader sees now. */
uint64_t kd__db_visible(kd_db *db);
/* The timestamp of version seq (0 for seq 0). */
int64_t kd__db_seq_time(kd_db *db, uint64_t seq);

/* Writes that system layers make into system namespaces (`_views`, ...): as kd_put and
** kd_delete, which refuse names starting with '_'. */
int kd__put_system(kd_db *db, const char *ns, const char *key, const char *json, size_t len,
                   const kd_put_cond *cond, kd_entry *out);
int kd__delete_system(kd_db *db, const char *ns, const char *key, kd_entry *out);

#define KD_NS_MAX 128
#define KD_KEY_MAX 1024
#endif
