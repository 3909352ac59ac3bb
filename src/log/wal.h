/*
** wal.h — the segmented append-only log. The log IS the database: every commit is one
** framed, checksummed record; the index is rebuilt from it (or from a checkpoint plus
** the log after it).
**
** On-disk layout (all integers little-endian), directory <db>/log/:
**
**   NNNNNNNN.kdl   segment files, numbered from 1, 8 decimal digits.
**
**   segment header, 64 bytes:
**     0   8  magic "KDLOG\r\n\032"
**     8   4  format version (KD_LOG_FORMAT)
**     12  4  reserved, 0
**     16  8  segment number
**     24  36 reserved, 0
**     60  4  CRC32C of bytes 0..59
**
**   record (repeated until end of file):
**     0   4  payload length L
**     4   4  CRC32C of bytes 0..3 and 8..9+L (the length, the type, the payload)
**     8   1  type (KD_REC_COMMIT)
**     9   L  payload
**
** Space after the last record may hold zero bytes: the log is zero-filled ahead of
** the write position in 1 MiB steps, and an all-zero tail is a clean end.
** A torn tail (a record cut short or failing its checksum at the end of the newest
** segment, with nothing valid after it) is cut off at open. A bad record followed by
** valid ones, or in an older segment, is corruption: reported with its offset.
**
** May call: os, base, crypto.
*/
#ifndef KD_WAL_H
#define KD_WAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "os/os.h"

#define KD_LOG_FORMAT 1u
#define KD_SEG_HEADER 64u
#define KD_REC_HEADER 9u
#define KD_REC_COMMIT 1
#define KD_REC_MAX (1u << 30) /* largest record accepted (1 GiB) */

/* Position of a byte in the log: segment number in the high 24 bits, offset in the low
** 40 (segments up to 1 TiB). */
#define KD_LOC(seg, off) (((uint64_t)(seg) << 40) | (uint64_t)(off))
#define KD_LOC_SEG(loc) ((uint32_t)((loc) >> 40))
#define KD_LOC_OFF(loc) ((loc) & ((1ull << 40) - 1))

typedef struct kd_segment {
    uint32_t num;
    kd_file *file;
    const uint8_t *map;  /* read-only shared mapping of the whole segment (maplen bytes) */
    uint64_t maplen;
    uint64_t size;  /* bytes of valid data (header + whole records) */
    uint64_t alloc; /* bytes in the file: the log is zero-filled ahead of `size` so
                       that a durable append overwrites existing blocks and fdatasync
                       has no file-size change to journal */
} kd_segment;

#define KD_MAP_L1 4096u /* segment maps: a two-level table that never moves, so readers */
#define KD_MAP_L2 4096u /* can look a mapping up without a lock */

typedef struct kd_wal {
    kd_vfs *vfs;
    const uint8_t **maps[KD_MAP_L1]; /* maps[num / L2][num % L2]: segment num's mapping */
    struct kd_oldmap { const uint8_t *p; uint64_t len; } *old_maps; /* replaced mappings,
                                        kept until close because readers may hold them */
    size_t nold_maps;
    char *dir;               /* <db>/log */
    kd_segment *segs;        /* sorted by number; the last is the active one */
    pthread_rwlock_t segs_lock; /* guards the segs array against growth during reads */
    size_t nsegs, capsegs;
    uint64_t segment_bytes;  /* rotate when a record would cross this size */
    uint64_t max_bytes;      /* quota on log_total (kd_options.max_db_bytes); 0 = none */
    _Atomic uint64_t log_total;   /* sum of the segments' sizes, readable without locks */
    _Atomic uint64_t disk_total;  /* sum of the segments' file sizes */
    int read_only;

    /* Group commit state, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t written_seq;    /* last seq whose record is written to the active file */
    uint64_t durable_seq;    /* last seq known to be on disk */
    int syncing;             /* a thread is in fsync right now */
    kd_file *active;         /* the active segment's file (what the syncer fsyncs) */
    int failed;              /* an fsync failed: no more writes until reopen */
    uint64_t fsyncs;
    uint64_t fsync_us;       /* time spent in them */
    uint64_t fsync_hist[KD_FSYNC_BUCKETS]; /* by kd_fsync_bucket_us */
} kd_wal;

/* One record as found by the scanner. */
typedef struct kd_rec {
    uint32_t seg;
    uint64_t off;            /* offset of the record header in its segment */
    uint8_t type;
    const uint8_t *payload;  /* points into the scanner's buffer */
    uint32_t len;
} kd_rec;

/* What scanning one segment found at its end. */
typedef struct kd_scan_end {
    uint64_t good_end;       /* offset just past the last valid record */
    int torn;                /* bytes after good_end that are not a valid record */
    int zero_tail;           /* only zero bytes (pre-allocated space) after good_end */
    int lost_pages;          /* torn: valid records follow, but after a zeroed sector
                                (pages a power cut lost; they were never acknowledged) */
    int corrupt;             /* a bad record followed by valid ones */
    uint64_t resume_off;     /* with corrupt: where the next valid record starts */
    uint64_t bad_off;        /* where the first bad record starts */
    char why[128];
} kd_scan_end;

int kd__wal_open(kd_wal *w, kd_vfs *vfs, const char *dbdir, uint64_t segment_bytes,
                 int read_only, int create);
void kd__wal_close(kd_wal *w);

/* Reads segment i (index into w->segs) whole into *buf (kd__free it). */
int kd__wal_read_segment(kd_wal *w, size_t i, uint8_t **buf, uint64_t *len);

/* Scans a segment image from offset `from`, calling fn for each valid record, and
** describes how the image ends. fn returning non-zero stops the scan with that code. */
typedef int (*kd_rec_fn)(void *ctx, const kd_rec *rec);
int kd__wal_scan(uint32_t segnum, const uint8_t *img, uint64_t len, uint64_t from,
                 kd_rec_fn fn, void *ctx, kd_scan_end *end);
/* Validates the 64-byte header of a segment image. */
int kd__wal_check_header(const uint8_t *img, uint64_t len, uint32_t segnum);

/* Cuts the active segment back to `size` bytes (torn-tail repair at open). */
int kd__wal_truncate_active(kd_wal *w, uint64_t size);
/* Rewrites the header of the active segment when a crash cut it short (open). */
int kd__wal_rewrite_header(kd_wal *w);

/* Appends one record (the caller serializes appends). If the record would cross the
** segment size, the active segment is synced and a new one started first. *loc receives
** the position of the payload's first byte. */
int kd__wal_append(kd_wal *w, uint8_t type, const void *payload, uint32_t len, uint64_t *loc);
/* After an append: the records up to seq are in the file. */
void kd__wal_written(kd_wal *w, uint64_t seq);
/* Blocks until seq is durable, sharing fsyncs with concurrent callers (group commit). */
int kd__wal_wait_durable(kd_wal *w, uint64_t seq);
/* Syncs whatever is written (sync=normal flusher, close). */
int kd__wal_sync_all(kd_wal *w);

/* Address of the byte at a log position, through the segment's mapping. The bytes must
** have been written (loc + n <= the segment's size). */
static inline const uint8_t *kd__wal_at(const kd_wal *w, uint64_t loc) {
    uint32_t seg = KD_LOC_SEG(loc);
    const uint8_t *base = __atomic_load_n(&w->maps[seg / KD_MAP_L2][seg % KD_MAP_L2], __ATOMIC_ACQUIRE);
    return base + KD_LOC_OFF(loc);
}

/* Reads n bytes at a log position (value bytes, hashes). */
int kd__wal_pread(kd_wal *w, uint64_t loc, void *buf, size_t n);
/* Current end of the log (for checkpoints). */
uint64_t kd__wal_end(kd_wal *w);
uint64_t kd__wal_disk_bytes(kd_wal *w);  /* file sizes */
uint64_t kd__wal_log_bytes(kd_wal *w);   /* bytes of segment headers and records */
/* Recomputes the totals after recovery changed segment sizes (single-threaded). */
void kd__wal_recount(kd_wal *w);

#endif
