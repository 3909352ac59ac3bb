/*
** korudelta.h — the public C API of KoruDelta, a time-aware embedded database.
**
** Every write is kept. A record is addressed as namespace/key and holds a JSON value;
** each committed write creates an immutable version with a database-wide sequence number
** (seq), a content-addressed version id, a hybrid-logical-clock timestamp and a link to
** the previous version. Readers can ask for the current value, the value as of any time,
** the history of a key and the diff between two versions.
**
** Conventions
**   - Every call returns an int status code (KD_OK on success). On failure,
**     kd_errmsg() returns a one-line explanation for the calling thread.
**   - Results come back through out-parameters. Strings and arrays the library
**     returns are owned by the caller and released with the free function named in
**     each comment (kd_free, kd_entry_clear, kd_entries_free, ...).
**   - JSON values go in as UTF-8 text and come out in canonical form: objects with
**     sorted keys, no insignificant whitespace, integral numbers within int64 written
**     as integers.
**   - A kd_db handle is thread-safe. Readers never wait for an fsync; concurrent
**     durable writers share fsyncs (group commit).
**   - Timestamps are microseconds since the Unix epoch (UTC).
**   - The library never aborts or exits, and keeps no global mutable state besides the
**     per-thread error message.
*/
#ifndef KORUDELTA_H
#define KORUDELTA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_VERSION_STRING "0.1.0"

/* Status codes. */
#define KD_OK        0   /* success */
#define KD_ERROR     1   /* generic failure */
#define KD_NOTFOUND  2   /* no such key, version, or value at that time */
#define KD_CONFLICT  3   /* a write condition failed (if-version / if-absent) */
#define KD_CORRUPT   4   /* bytes on disk failed a checksum or are malformed */
#define KD_IOERR     5   /* the operating system reported an I/O error */
#define KD_NOMEM     6   /* out of memory */
#define KD_INVALID   7   /* bad argument: name, JSON, time, option */
#define KD_BUSY      8   /* the database is locked by another process */
#define KD_TOOBIG    9   /* value larger than the configured maximum */
#define KD_FORMAT    10  /* database written by a newer, unsupported format version */
#define KD_READONLY  11  /* handle refuses writes (after a failed fsync, or opened read-only) */
#define KD_FULL      12  /* disk full (ENOSPC), or the database reached max_db_bytes */
#define KD_AMBIGUOUS 13  /* a version-id prefix matches more than one version */
#define KD_DONE      14  /* an iterator has no more items right now */

typedef struct kd_db kd_db;

/* Returns a static English name for a status code ("not found", ...). */
const char *kd_strerror(int rc);

/* The message for the most recent failing call made by this thread (the db argument
** may be NULL, e.g. after kd_open failed). Valid until the thread's next kd_* call. */
const char *kd_errmsg(const kd_db *db);

/* ------------------------------------------------------------------------------------ */
/* Opening and closing                                                                   */

typedef enum kd_sync_mode {
    KD_SYNC_FULL = 0,   /* acknowledge a write only once it is on disk (default) */
    KD_SYNC_NORMAL = 1, /* acknowledge at once; fsync at most every 100 ms */
    KD_SYNC_OFF = 2     /* never fsync explicitly; the OS writes back when it likes */
} kd_sync_mode;

typedef struct kd_options {
    kd_sync_mode sync;        /* default KD_SYNC_FULL */
    size_t cache_bytes;       /* budget of the cache of hot keys' current values (reads
                                 of other values go to the log); default 64 MiB; 0 = off */
    size_t max_value_bytes;   /* largest canonical value accepted; default 16 MiB */
    size_t segment_bytes;     /* log segment size before rotation; default 64 MiB */
    size_t checkpoint_bytes;  /* write a checkpoint in the background after this much new
                                 log; default 64 MiB; 0 = only at close and on request */
    int create_if_missing;    /* create the directory if absent; default 1 */
    int read_only;            /* open without the write lock; writes fail KD_READONLY */
    struct kd_vfs *vfs;       /* storage backend; NULL = the operating system */
    uint32_t hnsw_m;          /* vector indexes: links per node, 2..256; 0 = 16 */
    uint32_t hnsw_ef_construction; /* vector indexes: candidate list while building,
                                 1..100000; 0 = 200. A saved index built with other values
                                 is rebuilt with these (docs/vector.md) */
    uint64_t max_db_bytes;    /* quota on the log, which holds every version and value
                                 (kd_stats.log_bytes): a commit that would take it past
                                 this fails KD_FULL ("database full") and changes nothing;
                                 the database stays readable. Checkpoints and vector index
                                 files are derived and not counted. 0 = no limit (default) */
} kd_options;

/* Fills *opt with the defaults above. */
void kd_options_init(kd_options *opt);

/* Opens (and if allowed creates) the database directory at path. On success *out is a
** handle to release with kd_close. Errors: KD_BUSY (another process holds the write
** lock; the message names its pid), KD_CORRUPT (mid-log corruption, with its offset),
** KD_FORMAT (newer format), KD_IOERR, KD_NOMEM, KD_INVALID. A torn tail left by a crash
** is cut off silently (logged at warn level). */
int kd_open(const char *path, const kd_options *opt, kd_db **out);

/* Syncs, writes a checkpoint, releases the lock and frees the handle. Returns the first
** error met while doing so; the handle is freed in every case. NULL is a no-op. */
int kd_close(kd_db *db);

/* Writes a checkpoint of the index now, so that the next open replays less log. */
int kd_checkpoint(kd_db *db);

/* Flushes and fsyncs everything written so far (useful in KD_SYNC_NORMAL/OFF). */
int kd_sync(kd_db *db);

/* ------------------------------------------------------------------------------------ */
/* Versions                                                                              */

enum { KD_CHANGE_INSERT = 1, KD_CHANGE_UPDATE = 2, KD_CHANGE_DELETE = 3 };

/* One version of one key. Strings are NUL-terminated and owned by the entry: release
** them with kd_entry_clear (the struct itself may live on the stack). */
typedef struct kd_entry {
    char *ns;                     /* namespace */
    char *key;
    uint64_t seq;                 /* database-wide sequence number, from 1 */
    int64_t timestamp;            /* commit time, microseconds since the epoch */
    uint8_t version_id[32];
    uint8_t value_hash[32];       /* all zero for a tombstone */
    uint8_t previous_version[32]; /* valid when has_previous */
    int has_previous;
    int deleted;                  /* 1 for a tombstone */
    int change;                   /* KD_CHANGE_* */
    char *value;                  /* canonical JSON; NULL for tombstones or when not requested */
    size_t value_len;
} kd_entry;

void kd_entry_clear(kd_entry *e);
void kd_entries_free(kd_entry *entries, size_t n);
void kd_free(void *p);
/* Memory that kd_free, kd_entry_clear and the other kd_*_free functions release: a caller
** that fills a kd_entry (or a kd_result, ...) itself allocates its parts with this. NULL
** when out of memory. */
void *kd_malloc(size_t n);

/* ------------------------------------------------------------------------------------ */
/* Writes                                                                                */

/* Optional condition for kd_put. */
typedef struct kd_put_cond {
    int if_absent;          /* succeed only if the key has no live version */
    const char *if_version; /* succeed only if the current version's id starts with this
                               hex prefix (>= 8 digits); NULL = no condition */
} kd_put_cond;

/* Stores json (len bytes of UTF-8 JSON text; any JSON value, null included) under
** ns/key. cond may be NULL. On success *out (if not NULL) describes the new version,
** without its value. Errors: KD_INVALID (bad name or JSON; nothing written),
** KD_TOOBIG, KD_CONFLICT (condition failed; the message names the current version),
** KD_IOERR/KD_FULL/KD_READONLY. */
int kd_put(kd_db *db, const char *ns, const char *key, const char *json, size_t len,
           const kd_put_cond *cond, kd_entry *out);

/* Writes a tombstone for ns/key. KD_NOTFOUND (nothing written) if the key has no live
** version. *out, if not NULL, describes the tombstone. */
int kd_delete(kd_db *db, const char *ns, const char *key, kd_entry *out);

/* Atomic batches: many puts and deletes across namespaces, committed with one fsync and
** one timestamp. Each key may appear once. A batch with any failing item is refused
** whole and nothing is written. */
typedef struct kd_batch kd_batch;
kd_batch *kd_batch_new(void);                       /* NULL when out of memory */
int kd_batch_put(kd_batch *b, const char *ns, const char *key, const char *json, size_t len);
int kd_batch_delete(kd_batch *b, const char *ns, const char *key);
size_t kd_batch_count(const kd_batch *b);
/* Commits b. first_seq/last_seq (may be NULL) receive the seqs it was given. On failure
** the message names the failing item (by 1-based position). b stays owned by the caller. */
int kd_batch_commit(kd_db *db, kd_batch *b, uint64_t *first_seq, uint64_t *last_seq);
/* Commits b as an imported commit (kdelta import), system namespaces allowed: with
** timestamp ts, which must be later than every commit in the database (else KD_CONFLICT),
** or, with ts = 0, the time kd_batch_commit would give it. expected_ids (NULL = no check) holds each op's version id as exported: when the
** commit would give an op another id (its key's history before it differs), KD_CONFLICT
** and nothing is written. Replaying an export in order therefore reproduces every version
** id, timestamp and the order of history. */
int kd_batch_commit_at(kd_db *db, kd_batch *b, int64_t ts, const uint8_t (*expected_ids)[32],
                       uint64_t *first_seq, uint64_t *last_seq);
void kd_batch_free(kd_batch *b);

/* ------------------------------------------------------------------------------------ */
/* Reads                                                                                 */

/* The current value of ns/key into *out (value included). KD_NOTFOUND when the key never
** existed or is deleted; for a deleted key *out still describes the tombstone
** (out->deleted = 1), so callers can say when it was deleted. */
int kd_get(kd_db *db, const char *ns, const char *key, kd_entry *out);

/* The latest version of ns/key with timestamp <= ts (inclusive). KD_NOTFOUND when there is
** none or it is a tombstone (then *out describes the tombstone, as for kd_get). */
int kd_get_at(kd_db *db, const char *ns, const char *key, int64_t ts, kd_entry *out);

/* Turns a time specification into a timestamp: RFC 3339 with any offset and fraction
** (digits below a microsecond are truncated), "@UNIX[.frac]", "5m"/"2h"/"3d"/"30s"/"1w"
** (that long ago), "now", or a version id (a unique hex prefix of at least 8 digits,
** meaning its commit time). Errors: KD_INVALID, KD_NOTFOUND (unknown id),
** KD_AMBIGUOUS. db may be NULL when no version id is expected. */
int kd_parse_time(kd_db *db, const char *spec, int64_t *ts);

/* Finds a version of ns/key from a spec: a plain integer of fewer than 8 digits is an
** index (0 = oldest; negative counts from the newest, -1 = latest), a hex string of
** 8..64 digits is a version-id prefix (of this key), anything else a time spec (the
** version current at that time, tombstones included). Value included. */
int kd_resolve_version(kd_db *db, const char *ns, const char *key, const char *spec,
                       kd_entry *out);

/* Versions of ns/key, oldest first, skipping `offset` and returning at most `limit`
** (0 = no limit). *total receives the number of versions. Values are included when
** with_values. Release *out with kd_entries_free(*out, *n). KD_NOTFOUND if the key has
** never existed. */
int kd_history(kd_db *db, const char *ns, const char *key, size_t offset, size_t limit,
               int with_values, kd_entry **out, size_t *n, size_t *total);

/* Diff between two versions of ns/key. from/to are kd_resolve_version specs; NULL means
** the defaults: the second-newest and the newest version. When the key has a single
** version and from is NULL, the diff starts from nothing. *patch receives an RFC 6902
** JSON Patch (canonical JSON text, release with kd_free) naming only what changed, down
** to nested fields and array elements. from_out/to_out (may be NULL) describe the two
** versions (from_out->seq == 0 when diffing from nothing). */
int kd_diff(kd_db *db, const char *ns, const char *key, const char *from, const char *to,
            kd_entry *from_out, kd_entry *to_out, char **patch);

/* RFC 6902 patch turning JSON text a into b (either may be NULL = absent). */
int kd_json_diff(const char *a, size_t alen, const char *b, size_t blen, char **patch);

/* Line diff for people: every line of the NUL-terminated texts a and b prefixed by
** "  " (in both), "- " (only in a) or "+ " (only in b); with color, removed lines red
** and added lines green (ANSI). *out is released with kd_free. Bounded in time on
** large, very different inputs (it then falls back to whole blocks removed and added). */
int kd_text_diff(const char *a, const char *b, int color, char **out, size_t *out_len);

/* ------------------------------------------------------------------------------------ */
/* Listings, stats, integrity                                                            */

typedef struct kd_ns_info {
    char *name;
    uint64_t keys;      /* live keys */
    uint64_t versions;  /* all versions, tombstones included */
} kd_ns_info;

/* Namespaces with at least one live key, sorted by name. System namespaces (starting
** with '_') only when include_system. Release with kd_ns_list_free. */
int kd_list_namespaces(kd_db *db, int include_system, kd_ns_info **out, size_t *n);
void kd_ns_list_free(kd_ns_info *list, size_t n);

/* Live keys of ns in byte order, those greater than `after` (NULL = from the start),
** at most `limit` (0 = all). Release with kd_keys_free. */
int kd_list_keys(kd_db *db, const char *ns, const char *after, size_t limit, char ***keys,
                 size_t *n);
void kd_keys_free(char **keys, size_t n);

/* Upper bounds of the fsync latency buckets in kd_stats, microseconds. */
#define KD_FSYNC_BUCKETS 12
extern const uint64_t kd_fsync_bucket_us[KD_FSYNC_BUCKETS];

typedef struct kd_stats {
    uint64_t namespaces;   /* namespaces with live keys (system ones excluded) */
    uint64_t keys;         /* live keys (system namespaces excluded) */
    uint64_t versions;     /* all versions in the database, tombstones included */
    uint64_t seq;          /* last committed seq */
    uint64_t values;       /* distinct stored values */
    uint64_t disk_bytes;   /* size of the files: log segments (including the zero-filled
                              space ahead of the write position) and the checkpoint */
    uint64_t log_bytes;    /* bytes of log records written (headers included) */
    uint64_t segments;
    uint64_t index_bytes;  /* bytes allocated for the in-memory version index */
    uint64_t cache_bytes;  /* bytes held by the value cache */
    uint64_t cache_hits, cache_misses;
    uint64_t fsyncs;
    uint64_t fsync_us;     /* total time spent in those fsyncs, microseconds */
    uint64_t fsync_hist[KD_FSYNC_BUCKETS]; /* fsyncs taking at most kd_fsync_bucket_us[i]
                                              microseconds (the last bucket is unbounded);
                                              not cumulative */
    uint64_t writes;       /* versions committed through this handle since it was opened */
    uint64_t vector_indexes;       /* HNSW indexes in memory (one per model and metric) */
    uint64_t vector_index_vectors; /* live vectors in them */
    uint64_t vector_index_bytes;   /* memory they hold: graph, vectors and key maps */
    uint64_t vector_index_loads;   /* indexes this handle loaded from their saved files */
    uint64_t vector_index_builds;  /* indexes it built from the log (absent or unusable
                                      file), and rebuilds that dropped deleted nodes */
    uint64_t max_db_bytes;         /* the quota on log_bytes this handle enforces; 0 = none */
} kd_stats;
int kd_stats_get(kd_db *db, kd_stats *st);

typedef struct kd_check_report {
    int ok;                  /* 1 when nothing is wrong */
    uint64_t records;        /* log records verified */
    uint64_t versions;
    uint64_t values;
    uint64_t segments;
    uint64_t errors;
    char first_error[512];   /* where and what, e.g. "segment 1 offset 4096: checksum mismatch" */
    char error_list[8192];   /* every error found, first_error first, one per line ("where:
                                what\n"), up to KD_CHECK_LIST_MAX of them and as many as
                                fit; `errors` counts them all */
} kd_check_report;
#define KD_CHECK_LIST_MAX 32

/* Verifies every record checksum in the log and that the index agrees with it; with deep,
** also re-hashes every value and version header. KD_OK when the check ran (report->ok
** says whether the database is sound). */
int kd_check(kd_db *db, int deep, kd_check_report *report);

/* Checks a database directory without opening it for writing, including one that
** kd_open refuses as corrupt. */
int kd_check_path(const char *path, int deep, kd_check_report *report);

/* Progress of a long operation: done of total units (bytes for kd_backup and the checks,
** seqs for kd_export). */
typedef void (*kd_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* kd_check and kd_check_path, calling progress (may be NULL) as the log is read. */
int kd_check_progress(kd_db *db, int deep, kd_check_report *report, kd_progress_fn progress, void *ctx);
int kd_check_path_progress(const char *path, int deep, kd_check_report *report, kd_progress_fn progress,
                           void *ctx);

/* Writes a consistent copy of the database into directory dir (created if missing; it
** must be empty) while the database stays in use: every version committed when the call
** began, with the same ids and timestamps, and nothing later. Commits wait only while the
** call notes where the log ends; checkpoints wait for the copy. The copy opens as a
** database. progress (may be NULL) is called as bytes are copied. Errors: KD_INVALID (dir
** not empty), KD_READONLY (a read-only handle, or a log that failed an fsync), KD_IOERR,
** KD_FULL, KD_NOMEM. */
int kd_backup(kd_db *db, const char *dir, kd_progress_fn progress, void *ctx);

/* Export and import: the database as NDJSON (docs/cli.md, "export") and back; what
** `kdelta export` / `kdelta import` and the server's _export / _import routes run. */
#define KD_EXPORT_HISTORY 0 /* every version, in commit order, system namespaces included */
#define KD_EXPORT_AT      1 /* each key's live version at `at` */
#define KD_EXPORT_CURRENT 2 /* each key's live version now */
typedef struct kd_export_opts {
    int mode;                       /* KD_EXPORT_* */
    int64_t at;                     /* KD_EXPORT_AT: the time */
    const char *const *namespaces;  /* user namespaces (their embeddings come along);
                                       NULL / 0 = everything */
    size_t nnamespaces;
    kd_progress_fn progress;        /* may be NULL: called with seqs read of the total */
    void *progress_ctx;
} kd_export_opts;
typedef struct kd_export kd_export;
/* Starts an export of what is committed now (later commits are not in it). Close it before
** the database. Errors: KD_INVALID (bad mode or namespace), KD_NOMEM. */
int kd_export_open(kd_db *db, const kd_export_opts *o, kd_export **out);
/* The next line of the export, '\n' included: the header first, then one version per
** line. *line stays valid until the next call. KD_DONE after the last line. */
int kd_export_next(kd_export *ex, const char **line, size_t *len);
void kd_export_close(kd_export *ex); /* NULL is a no-op */

/* Import, line by line: a history export replays commit by commit with the exported ids
** and timestamps (a commit already present is skipped, so importing twice does not
** duplicate; a timestamp not later than the database's last commit is KD_CONFLICT); a
** snapshot is written as new versions. The first line must be an export's header; a piece
** of an export works too when it starts with the header and splits no commit. After an
** error from kd_import_line the import is over: report it, then call kd_import_end, which
** then writes nothing. Commits written before the error stay. */
typedef struct kd_import kd_import;
/* first_line: the number, in the whole export, of the first line after the header (for
** messages when importing a piece; 0 or 2 for a whole export). */
int kd_import_begin(kd_db *db, uint64_t first_line, kd_import **out);
/* One line (a trailing newline is ignored); messages name the line number. Errors:
** KD_INVALID (not an export, a malformed version), KD_FORMAT (a newer export format),
** KD_CONFLICT (ids or history differ from the database's), those of kd_batch_commit. */
int kd_import_line(kd_import *im, const char *line, size_t len);
/* Writes what is pending, frees im and reports the versions written and those skipped as
** already present (both may be NULL). KD_INVALID for an empty input. */
int kd_import_end(kd_import *im, uint64_t *written, uint64_t *skipped);

/* ------------------------------------------------------------------------------------ */
/* Change feed                                                                           */

typedef struct kd_feed kd_feed;

/* Iterates committed versions with seq > since, in seq order, including ones committed
** after the feed was opened. */
int kd_feed_open(kd_db *db, uint64_t since, kd_feed **out);
/* Next version into *out (value included, change type set). KD_DONE when caught up. */
int kd_feed_next(kd_feed *f, kd_entry *out);
void kd_feed_close(kd_feed *f);

/* ------------------------------------------------------------------------------------ */
/* Queries                                                                               */
/* docs/query.md is the reference for the filter language and for how null, missing
** fields and mixed types behave under each operator, sort and aggregation.            */

typedef struct kd_query kd_query;

/* A query that matches every live key of a namespace, in key order, with no limit. */
int kd_query_new(kd_query **out);
void kd_query_free(kd_query *q);

/* The filter, in the string form ('age > 30 and (status = "active" or vip = true)') or
** the JSON form ({"and":[{"field":"age","op":">","value":30},...]}). Replaces an earlier
** filter. KD_INVALID for a syntax error (the message gives the 1-based column and what
** was expected) or a bad regex; the query is then unchanged. */
int kd_query_set_filter(kd_query *q, const char *expr);
int kd_query_set_filter_json(kd_query *q, const char *json, size_t len);

/* Adds a sort field (a path: `items.0.price`, or any text in backticks), after those
** already added. Results are ordered by the sort fields in turn, missing values last,
** then by key, so the order is total and deterministic. */
int kd_query_add_sort(kd_query *q, const char *field, int descending);

/* Skip `offset` matches and return at most `limit` records. KD_QUERY_ALL (the default)
** returns every match; 0 returns none (only total and aggregations). */
#define KD_QUERY_ALL ((size_t)-1)
void kd_query_set_page(kd_query *q, size_t offset, size_t limit);

/* Projection: records keep only the selected fields (nested ones keep their nesting).
** Without any, records carry whole values. */
int kd_query_add_select(kd_query *q, const char *field);

/* Aggregations over the whole filtered set, never only the page: fn is "count" (field
** NULL), "sum", "avg", "min", "max" or "distinct" (field required). Each is reported
** under its name: "count", "sum(price)", ... */
int kd_query_add_aggregate(kd_query *q, const char *fn, const char *field);

/* Group the filtered set by the value of field; the aggregations (count at least) are
** then computed per group. */
int kd_query_set_group_by(kd_query *q, const char *field);

/* Query the namespace as it was at ts (microseconds; see kd_parse_time) instead of now. */
void kd_query_set_at(kd_query *q, int64_t ts);

/* A query from its JSON form, as the HTTP API takes it:
**   {"filter": "age > 30" | {JSON form}, "sort": ["age:desc", {"field":"name","order":"asc"}],
**    "offset": N, "limit": N, "select": ["name","address.city"],
**    "aggregate": ["count", "sum(price)", {"fn":"avg","field":"age"}], "group_by": "city",
**    "at": "2026-01-01T00:00:00Z" | "5m" | "<version id>" | microseconds}
** Every member is optional. db (may be NULL) resolves a version id given as "at".
** KD_INVALID names the member at fault. */
int kd_query_from_json(kd_db *db, const char *json, size_t len, kd_query **out);
/* The canonical JSON form of q (the filter in its JSON form), which kd_query_from_json
** reads back to the same query. Release *out with kd_free. */
int kd_query_to_json(const kd_query *q, char **out, size_t *len);
/* The filter in the string form ("" when there is none). Release *out with kd_free. */
int kd_query_filter_text(const kd_query *q, char **out);

/* One record of a result. The strings are owned by the result. */
typedef struct kd_record {
    char *key;
    char *value;          /* canonical JSON, projected when the query selects fields */
    size_t value_len;
    uint64_t seq;
    int64_t timestamp;
    uint8_t version_id[32];
} kd_record;

typedef struct kd_result {
    char *ns;             /* the queried namespace (a view's source for view results) */
    uint64_t total;       /* matches before offset and limit */
    kd_record *records;   /* the page, in order */
    size_t n;
    char *aggregation;    /* canonical JSON: {"count":..,"sum(F)":..,...}, or with group by
                             {"groups":[{"key":..,"count":..,...}]}; NULL when none asked */
    size_t aggregation_len;
} kd_result;

/* Runs q over the live keys of ns (as of q's time, if set). Deleted keys are excluded.
** A namespace with no keys gives an empty result. Release *out with kd_result_free.
** Errors: KD_INVALID (bad namespace), KD_NOMEM, KD_IOERR/KD_CORRUPT on reading values. */
int kd_query_run(kd_db *db, const char *ns, const kd_query *q, kd_result **out);
void kd_result_free(kd_result *r); /* NULL is a no-op */
/* The result as canonical JSON: {"aggregation","namespace","records":[{"key","seq",
** "timestamp","value","version_id"}],"total"} (aggregation null when none was asked).
** Release *out with kd_free. */
int kd_result_to_json(const kd_result *r, char **out, size_t *len);

/* ------------------------------------------------------------------------------------ */
/* Materialized views                                                                    */
/* A view is a named query over one namespace whose result the database keeps. Its
** definition is a versioned record in the system namespace `_views` (so it has history)
** and survives restarts. An auto-refresh view is current as soon as a write commits and
** is maintained incrementally: a write re-evaluates only its own key's row. Any other
** view shows the namespace as it was when the view was created or last refreshed. */

/* Creates a view. name: 1-128 bytes of [A-Za-z0-9_.-] starting with a letter or digit;
** source: a user namespace (not one starting with '_'); q: the view's query (its "at" is
** not allowed: a view follows the namespace); description may be NULL.
** Errors: KD_INVALID (bad name, source or query), KD_CONFLICT (a view of that name
** exists), and those of kd_put. */
int kd_view_create(kd_db *db, const char *name, const char *source, const kd_query *q,
                   const char *description, int auto_refresh);

typedef struct kd_view_info {
    char *name;
    char *source;
    char *description;    /* "" when none */
    char *query;          /* the query's canonical JSON form */
    char *filter;         /* the filter's string form ("" when none) */
    int auto_refresh;
    uint64_t records;     /* records the view's query matches (its total) */
    int64_t created;      /* timestamps, microseconds */
    int64_t refreshed;    /* the time of the snapshot the view shows: for a manual view, the
                             commit time of the last write its refresh saw; for an
                             auto-refresh view, of the latest write to its namespace it
                             applied (until one comes, the time recorded at creation or
                             refresh) */
} kd_view_info;

/* Every view, sorted by name. Release with kd_view_list_free. */
int kd_view_list(kd_db *db, kd_view_info **out, size_t *n);
void kd_view_list_free(kd_view_info *list, size_t n);
/* One view's definition. KD_NOTFOUND for an unknown view. Release with
** kd_view_list_free(info, 1). */
int kd_view_get(kd_db *db, const char *name, kd_view_info **info);

/* The view's result. extra (may be NULL) narrows it: its filter is combined with the
** view's (and), its sort fields and page, when set, replace the view's; its selection
** and aggregations, when set, replace the view's. The answer is the same as running the
** combined query on the source namespace at the view's time. KD_NOTFOUND for an unknown
** view. */
int kd_view_query(kd_db *db, const char *name, const kd_query *extra, kd_result **out);

/* Recomputes a view now (for auto-refresh views this changes nothing visible). */
int kd_view_refresh(kd_db *db, const char *name);

/* Deletes a view (a tombstone in `_views`; its history stays). KD_NOTFOUND if unknown. */
int kd_view_delete(kd_db *db, const char *name);

/* ------------------------------------------------------------------------------------ */
/* Subscriptions                                                                         */
/* A subscriber is called for every committed version that passes its filter, after the
** commit, in seq order, exactly once. Each subscription reads the log on its own thread:
** a slow subscriber never holds writers back and never misses a version — it catches up
** from the log. */

#define KD_SUB_INSERT (1 << KD_CHANGE_INSERT)
#define KD_SUB_UPDATE (1 << KD_CHANGE_UPDATE)
#define KD_SUB_DELETE (1 << KD_CHANGE_DELETE)
#define KD_SUB_NOW UINT64_MAX  /* `since`: only versions committed from now on */

typedef struct kd_sub_options {
    const char *ns;          /* only this namespace; NULL = every user namespace */
    const char *key;         /* only this key (requires ns); NULL = every key */
    int types;               /* KD_SUB_* bits; 0 = every change type */
    const kd_query *filter;  /* only puts whose value matches this query's filter (its
                                other parts are ignored); deletes, which have no value,
                                pass. NULL = no condition */
    uint64_t since;          /* versions with seq > since (0 = from the first);
                                KD_SUB_NOW = from the next commit */
} kd_sub_options;

/* Called on the subscription's own thread. The entry (value included, change type set)
** is valid only during the call. */
typedef void (*kd_sub_fn)(void *ctx, const kd_entry *e);

typedef struct kd_subscription kd_subscription;

/* Starts a subscription. opt may be NULL (everything, from now on). The filter is copied.
** *out is set before the first callback can run (the callback may already be running when
** kd_subscribe returns).
** Errors: KD_INVALID (bad namespace or key, key without namespace), KD_NOMEM, KD_ERROR
** (the thread could not start). */
int kd_subscribe(kd_db *db, const kd_sub_options *opt, kd_sub_fn fn, void *ctx,
                 kd_subscription **out);

/* Ends a subscription: when it returns, fn is not running and will not be called again.
** Must not be called from inside fn (KD_INVALID). kd_close ends the subscriptions still
** running (their handles are then invalid). NULL is a no-op. */
int kd_unsubscribe(kd_subscription *s);

/* The seq of the last version handed to (or skipped by the filter of) a subscription:
** where a new one resumes without a gap or a repeat. */
uint64_t kd_subscription_seq(const kd_subscription *s);

/* ------------------------------------------------------------------------------------ */
/* Vector search (embeddings)                                                            */
/* docs/vector.md is the reference. An embedding (float32 vector, model name, optional JSON
** metadata) belongs to ns/key and is a versioned record of its own, kept in the system
** namespace `_emb.<ns>` under the same key: history, time travel and deletes work as for
** values, and floats come back bit-for-bit. Embeddings are independent of the key's value
** (neither needs the other; deleting one leaves the other). The first embedding of a model
** fixes the model's dimension for the whole database (recorded in `_emb`, key = model).
** Searches of the current state go through an HNSW index per (model, metric), saved with
** checkpoints; as-of searches, value filters and small or selective candidate sets are
** answered exactly (every candidate scored). */

#define KD_EMBED_DIM_MAX 65536      /* largest dimension accepted */
#define KD_EMBED_NS_MAX  123        /* longest user namespace that can hold embeddings */
#define KD_AT_NOW INT64_MAX         /* `at` meaning "now" */

typedef struct kd_embedding {
    char *ns, *key;
    char *model;
    float *vector;        /* dim components */
    size_t dim;
    char *metadata;       /* canonical JSON, or NULL when none was given */
    uint64_t seq;         /* the embedding version */
    int64_t timestamp;
    uint8_t version_id[32];
} kd_embedding;

/* Stores an embedding for ns/key: v[0..dim), model (NULL = "default"; 1-1024 bytes of
** UTF-8, not starting with '_'), meta_json (NULL = none; any JSON value). Replaces the
** previous one (a new version). *out (may be NULL) describes the version written, as for
** kd_put. Errors: KD_INVALID (bad name, dim 0 or > KD_EMBED_DIM_MAX, a NaN or infinite
** component (its index named), bad metadata JSON, a namespace longer than
** KD_EMBED_NS_MAX, a dimension differing from the model's (both named)), and those of
** kd_put. */
int kd_embed(kd_db *db, const char *ns, const char *key, const float *v, size_t dim,
             const char *model, const char *meta_json, kd_entry *out);

/* The embedding of ns/key as of time at (KD_AT_NOW = current). Release with
** kd_embedding_free. KD_NOTFOUND when there is none at that time (never embedded, or
** deleted). */
int kd_embedding_get(kd_db *db, const char *ns, const char *key, int64_t at, kd_embedding **out);
void kd_embedding_free(kd_embedding *e); /* NULL is a no-op */

/* Deletes the embedding of ns/key (a tombstone; its history stays). KD_NOTFOUND (nothing
** written) when it has none. */
int kd_embed_delete(kd_db *db, const char *ns, const char *key, kd_entry *out);

typedef enum kd_metric {
    KD_METRIC_COSINE = 0, /* cosine similarity, -1..1, higher is nearer; 0 when a norm is 0 */
    KD_METRIC_DOT = 1,    /* dot product, higher is nearer */
    KD_METRIC_L2 = 2      /* Euclidean distance, lower is nearer */
} kd_metric;

typedef struct kd_search_opts {
    const char *ns;            /* only this user namespace; NULL = every user namespace */
    const float *vector;       /* the query, dim components */
    size_t dim;
    size_t top_k;              /* at most this many hits; 0 = 10 */
    kd_metric metric;
    int has_threshold;         /* keep only scores >= threshold (cosine, dot) or distances
                                  <= threshold (L2) */
    double threshold;
    const char *model;         /* only embeddings of this model; NULL = the candidates must
                                  all be of one model (else KD_INVALID naming two) */
    const kd_query *filter;    /* only keys whose VALUE (ns/key at the same time) matches
                                  this query's filter; a key without a value never matches.
                                  Other parts of the query are ignored. NULL = no condition */
    const kd_query *meta_filter; /* only embeddings whose metadata (null when none) matches */
    int64_t at;                /* search the embeddings as of this time; KD_AT_NOW = now
                                  (kd_search_opts_init sets it; 0 is the epoch) */
    int exact;                 /* force exact search; otherwise the search picks exact or
                                  the HNSW index (docs/vector.md, "Exact or HNSW") */
    uint32_t ef_search;        /* HNSW candidate list size (recall against speed);
                                  0 = max(top_k, 64); ignored by exact search */
} kd_search_opts;

/* Fills *o with the defaults: every namespace, top 10, cosine, now. */
void kd_search_opts_init(kd_search_opts *o);

typedef struct kd_search_hit {
    char *ns, *key;
    double score;              /* similarity (cosine, dot) or distance (L2) */
    uint64_t seq;              /* the embedding version that matched */
    int64_t timestamp;
    uint8_t version_id[32];
} kd_search_hit;

/* The nearest embeddings to o->vector, best first (ties by namespace, then key). The
** namespace, model, filters and threshold restrict the candidates before the top-k cut:
** when k candidates pass, k come back. Release with kd_search_free(*hits, *n).
** Errors: KD_INVALID (bad query vector, NaN/Inf, a dimension differing from the model's
** or the candidates' (both named), candidates of several models without o->model (two
** named), bad namespace), KD_NOMEM, KD_IOERR/KD_CORRUPT on reading. */
int kd_search(kd_db *db, const kd_search_opts *o, kd_search_hit **hits, size_t *n);
void kd_search_free(kd_search_hit *hits, size_t n);

/* ------------------------------------------------------------------------------------ */
/* Wire form                                                                             */
/* The JSON form of a version that the HTTP API speaks (docs/http.md), written and read in
** one place for the server and its clients. Written canonical (members sorted):
**   {["change",]"deleted","key","namespace","previous_version","seq","timestamp"[,"value"],
**    "value_hash","version_id"}
** value_hash and previous_version are null when absent; value is null for a tombstone;
** change is "insert", "update" or "delete". */
#define KD_WIRE_VALUE  1  /* write "value" */
#define KD_WIRE_CHANGE 2  /* write "change" */

/* Writes e in the wire form (*out released with kd_free). */
int kd_entry_to_json(const kd_entry *e, int flags, char **out, size_t *len);
/* Reads a version document (any JSON spelling; unknown members are ignored) into *out,
** value included when present. Errors: KD_INVALID with the reason. Release with
** kd_entry_clear. */
int kd_entry_from_json(const char *json, size_t len, kd_entry *out);
/* A view as the HTTP API writes it, canonical: {"auto_refresh","created","description",
** "filter","name","query","records","refreshed","source"} (query embedded as JSON, times
** in RFC 3339). */
int kd_view_info_to_json(const kd_view_info *v, char **out, size_t *len);

/* Reading JSON documents in place, without building a tree: what a client of the HTTP API
** (or of the wire form) needs to pick members out of an answer. The text must be
** canonical JSON, as the library and the server write it (kd_json_canonical makes any
** JSON canonical). A kd_json_val names one value inside that text; a missing value has
** p == NULL. Malformed text reads as missing, never past the end. */
typedef struct kd_json_val {
    const char *p;   /* the value's first byte; NULL when missing */
    size_t len;      /* length of its text (strings include their quotes) */
} kd_json_val;

enum { KD_JSON_MISSING = 0, KD_JSON_NULL, KD_JSON_BOOL, KD_JSON_NUMBER, KD_JSON_STRING,
       KD_JSON_ARRAY, KD_JSON_OBJECT };

/* The whole document text[0..len). */
kd_json_val kd_json_doc(const char *text, size_t len);
/* KD_JSON_* type of v. */
int kd_json_type(kd_json_val v);
/* Member name of object v (missing when v is not an object or has no such member). */
kd_json_val kd_json_get(kd_json_val v, const char *name);
/* Iterates an array's elements (or an object's member values, with *name set to the
** member's key when name is not NULL): start with *pos = 0; 1 while there is one more,
** then 0. */
int kd_json_next(kd_json_val v, size_t *pos, kd_json_val *name, kd_json_val *elem);
/* The decoded UTF-8 of a string value, NUL-terminated, into *out (kd_free); *len (may be
** NULL) gets its length. KD_INVALID when v is not a string, KD_NOMEM. */
int kd_json_string(kd_json_val v, char **out, size_t *len);
/* An integer value (within int64). KD_INVALID when v is not one. */
int kd_json_int(kd_json_val v, int64_t *out);
/* A number value as a double. KD_INVALID when v is not a number. */
int kd_json_double(kd_json_val v, double *out);
/* true/false. KD_INVALID when v is not a boolean. */
int kd_json_bool(kd_json_val v, int *out);

/* ------------------------------------------------------------------------------------ */
/* Helpers                                                                               */

/* 64 lowercase hex digits + NUL. */
void kd_hex(const uint8_t id[32], char out[65]);
/* RFC 3339 UTC with exactly six fraction digits and 'Z' + NUL (27 bytes + NUL). */
void kd_format_time(int64_t ts, char out[32]);
/* Validation of names, as kd_put applies it (system names refused unless allow_system). */
int kd_valid_namespace(const char *ns, int allow_system);
int kd_valid_key(const char *key);
/* Canonical form of JSON text (*out released with kd_free). KD_INVALID with a position
** in the message for bad JSON. */
int kd_json_canonical(const char *json, size_t len, char **out, size_t *out_len);
/* Pretty form (two-space indent, sorted keys) of JSON text. */
int kd_json_pretty(const char *json, size_t len, char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif /* KORUDELTA_H */
