/*
** wal.c — segmented append-only log: segment files, record framing and checksums,
** group commit, scanning for recovery and checks. The byte layout is documented in
** wal.h.
**
** May call: os (through the kd_vfs), base, crypto.
**
** Concurrency: appends are serialized by the caller (the db's writer mutex). The
** group-commit state (written_seq, durable_seq, syncing, failed, active segment for
** syncing) is guarded by w->mu. Segment files stay open until close, so readers may
** pread from any segment without holding w->mu; the segment array itself only changes
** under the caller's index write lock (see db.c).
*/
#include "log/wal.h"

#include <stdio.h>
#include <time.h>

#include "crypto/crc32c.h"

static const uint8_t seg_magic[8] = {'K', 'D', 'L', 'O', 'G', '\r', '\n', 032};

static char *seg_path(const kd_wal *w, uint32_t num) {
    size_t n = strlen(w->dir) + 32;
    char *p = kd__malloc(n);
    if (p) snprintf(p, n, "%s/%08u.kdl", w->dir, num);
    return p;
}

static void seg_header(uint8_t h[KD_SEG_HEADER], uint32_t num) {
    memset(h, 0, KD_SEG_HEADER);
    memcpy(h, seg_magic, 8);
    kd__set_u32(h + 8, KD_LOG_FORMAT);
    kd__set_u64(h + 16, num);
    kd__set_u32(h + 60, kd__crc32c(0, h, 60));
}

int kd__wal_check_header(const uint8_t *img, uint64_t len, uint32_t segnum) {
    if (len < KD_SEG_HEADER) return kd__err(KD_CORRUPT, "segment %u: header cut short (%llu bytes)", segnum, (unsigned long long)len);
    if (memcmp(img, seg_magic, 8) != 0) return kd__err(KD_CORRUPT, "segment %u offset 0: not a KoruDelta log segment", segnum);
    if (kd__get_u32(img + 60) != kd__crc32c(0, img, 60))
        return kd__err(KD_CORRUPT, "segment %u offset 0: header checksum mismatch", segnum);
    uint32_t fmt = kd__get_u32(img + 8);
    if (fmt > KD_LOG_FORMAT)
        return kd__err(KD_FORMAT, "segment %u was written by a newer KoruDelta (log format %u; this build reads up to %u)", segnum, fmt, KD_LOG_FORMAT);
    if (fmt == 0) return kd__err(KD_CORRUPT, "segment %u offset 8: bad format version 0", segnum);
    if (kd__get_u64(img + 16) != segnum)
        return kd__err(KD_CORRUPT, "segment %u offset 16: header names segment %llu", segnum, (unsigned long long)kd__get_u64(img + 16));
    return KD_OK;
}

/* Maps a segment with room for its largest possible size, so it never needs remapping
** as it grows (address space is cheap; untouched pages cost nothing). */
static int map_segment(kd_wal *w, uint32_t num, kd_file *f, uint64_t size, const uint8_t **map, uint64_t *len) {
    uint64_t l = KD_MAX(w->segment_bytes, size) + (1u << 20);
    if (num / KD_MAP_L2 >= KD_MAP_L1) return kd__err(KD_FULL, "too many log segments");
    const uint8_t ***slot = &w->maps[num / KD_MAP_L2];
    if (!*slot && !(*slot = kd__calloc(KD_MAP_L2, sizeof **slot))) return kd__err(KD_NOMEM, "out of memory");
    int rc = w->vfs->map(f, l, map);
    if (rc != KD_OK) return rc;
    __atomic_store_n(&(*slot)[num % KD_MAP_L2], *map, __ATOMIC_RELEASE);
    *len = l;
    return KD_OK;
}

/* A record larger than the segment's mapping (only possible for a record bigger than
** segment_bytes): map the segment again, larger. The old mapping stays until close. */
static int grow_map(kd_wal *w, kd_segment *s, uint64_t need) {
    struct kd_oldmap *o = kd__realloc(w->old_maps, (w->nold_maps + 1) * sizeof *o);
    if (!o) return kd__err(KD_NOMEM, "out of memory");
    w->old_maps = o;
    const uint8_t *map;
    uint64_t len;
    int rc = map_segment(w, s->num, s->file, need, &map, &len);
    if (rc != KD_OK) return rc;
    o[w->nold_maps].p = s->map;
    o[w->nold_maps].len = s->maplen;
    w->nold_maps++;
    s->map = map;
    s->maplen = len;
    return KD_OK;
}

static int segs_push(kd_wal *w, uint32_t num, kd_file *f, uint64_t size) {
    const uint8_t *map = NULL;
    uint64_t maplen = 0;
    int rc = map_segment(w, num, f, size, &map, &maplen);
    if (rc != KD_OK) return rc;
    if (w->nsegs == w->capsegs) {
        size_t nc = w->capsegs ? w->capsegs * 2 : 8;
        pthread_rwlock_wrlock(&w->segs_lock);
        kd_segment *ns = kd__realloc(w->segs, nc * sizeof *ns);
        if (ns) {
            w->segs = ns;
            w->capsegs = nc;
        }
        pthread_rwlock_unlock(&w->segs_lock);
        if (!ns) {
            w->vfs->unmap(map, maplen);
            w->maps[num / KD_MAP_L2][num % KD_MAP_L2] = NULL;
            return kd__err(KD_NOMEM, "out of memory");
        }
    }
    atomic_fetch_add(&w->log_total, size);
    atomic_fetch_add(&w->disk_total, size);
    pthread_rwlock_wrlock(&w->segs_lock);
    w->segs[w->nsegs].map = map;
    w->segs[w->nsegs].maplen = maplen;
    w->segs[w->nsegs].num = num;
    w->segs[w->nsegs].file = f;
    w->segs[w->nsegs].size = size;
    w->segs[w->nsegs].alloc = size;
    w->nsegs++;
    pthread_rwlock_unlock(&w->segs_lock);
    return KD_OK;
}

static int create_segment(kd_wal *w, uint32_t num) {
    kd_file *f = NULL;
    char *path = seg_path(w, num);
    int rc;
    if (!path) return kd__err(KD_NOMEM, "out of memory");
    uint8_t h[KD_SEG_HEADER];
    seg_header(h, num);
    if ((rc = w->vfs->open(w->vfs, path, KD_OPEN_WRITE | KD_OPEN_CREATE, &f)) != KD_OK) goto out;
    if ((rc = w->vfs->truncate(f, 0)) != KD_OK) goto out;
    if ((rc = w->vfs->write(f, h, sizeof h, 0)) != KD_OK) goto out;
    if ((rc = w->vfs->sync(f)) != KD_OK) goto out;
    if ((rc = w->vfs->sync_dir(w->vfs, w->dir)) != KD_OK) goto out;
    if ((rc = segs_push(w, num, f, KD_SEG_HEADER)) != KD_OK) goto out;
    pthread_mutex_lock(&w->mu);
    w->active = f;
    pthread_mutex_unlock(&w->mu);
    f = NULL;
out:
    if (f) w->vfs->close(f);
    kd__free(path);
    return rc;
}

static int parse_seg_name(const char *name, uint32_t *num) {
    if (strlen(name) != 12 || strcmp(name + 8, ".kdl") != 0) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        v = v * 10 + (uint32_t)(name[i] - '0');
    }
    *num = v;
    return v > 0;
}

int kd__wal_open(kd_wal *w, kd_vfs *vfs, const char *dbdir, uint64_t segment_bytes,
                 int read_only, int create) {
    char **names = NULL;
    size_t nnames = 0;
    int rc = KD_OK;
    memset(w, 0, sizeof *w);
    w->vfs = vfs;
    w->segment_bytes = segment_bytes;
    w->read_only = read_only;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_rwlock_init(&w->segs_lock, NULL);
    size_t n = strlen(dbdir) + 8;
    if (!(w->dir = kd__malloc(n))) return kd__err(KD_NOMEM, "out of memory");
    snprintf(w->dir, n, "%s/log", dbdir);
    if (!vfs->exists(vfs, w->dir)) {
        if (!create || read_only) return kd__err(KD_NOTFOUND, "%s: no database here", dbdir);
        if ((rc = vfs->mkdirs(vfs, w->dir)) != KD_OK) return rc;
        if ((rc = vfs->sync_dir(vfs, dbdir)) != KD_OK) return rc;
    }
    if ((rc = vfs->list(vfs, w->dir, &names, &nnames)) != KD_OK) return rc;
    uint32_t expect = 1;
    for (size_t i = 0; i < nnames; i++) {
        uint32_t num;
        if (!parse_seg_name(names[i], &num)) continue;
        if (num != expect) {
            rc = kd__err(KD_CORRUPT, "log segment %08u is missing (found %08u)", expect, num);
            goto out;
        }
        expect++;
        char *path = seg_path(w, num);
        kd_file *f = NULL;
        uint64_t size = 0;
        if (!path) { rc = kd__err(KD_NOMEM, "out of memory"); goto out; }
        rc = vfs->open(vfs, path, read_only ? KD_OPEN_READ : KD_OPEN_WRITE, &f);
        kd__free(path);
        if (rc != KD_OK) goto out;
        if ((rc = vfs->size(f, &size)) != KD_OK || (rc = segs_push(w, num, f, size)) != KD_OK) {
            vfs->close(f);
            goto out;
        }
    }
    if (w->nsegs == 0) {
        if (read_only) { rc = kd__err(KD_NOTFOUND, "%s: no database here", dbdir); goto out; }
        rc = create_segment(w, 1);
    }
    if (rc == KD_OK) w->active = w->segs[w->nsegs - 1].file;
out:
    kd__os_names_free(names, nnames);
    return rc;
}

void kd__wal_close(kd_wal *w) {
    for (size_t i = 0; i < w->nsegs; i++) {
        w->vfs->unmap(w->segs[i].map, w->segs[i].maplen);
        w->vfs->close(w->segs[i].file);
    }
    for (size_t i = 0; i < KD_MAP_L1; i++) kd__free(w->maps[i]);
    for (size_t i = 0; i < w->nold_maps; i++) w->vfs->unmap(w->old_maps[i].p, w->old_maps[i].len);
    kd__free(w->old_maps);
    kd__free(w->segs);
    kd__free(w->dir);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    pthread_rwlock_destroy(&w->segs_lock);
    memset(w, 0, sizeof *w);
}

int kd__wal_read_segment(kd_wal *w, size_t i, uint8_t **buf, uint64_t *len) {
    kd_segment *s = &w->segs[i];
    uint64_t size = 0;
    size_t got = 0;
    int rc = w->vfs->size(s->file, &size);
    if (rc != KD_OK) return rc;
    if (size > SIZE_MAX - 1) return kd__err(KD_NOMEM, "segment %u too large", s->num);
    uint8_t *b = kd__malloc((size_t)size + 1);
    if (!b) return kd__err(KD_NOMEM, "out of memory reading segment %u (%llu bytes)", s->num, (unsigned long long)size);
    if ((rc = w->vfs->read(s->file, b, (size_t)size, 0, &got)) != KD_OK) {
        kd__free(b);
        return rc;
    }
    *buf = b;
    *len = got;
    return KD_OK;
}

/* Is there a valid record at off? Used to tell a torn tail from mid-log corruption.
** *budget bounds the bytes checksummed over a whole search (a crafted file full of
** plausible frames must not make it quadratic); when it runs out, -1. */
static int valid_record_at(const uint8_t *img, uint64_t len, uint64_t off, uint64_t *budget) {
    if (off + KD_REC_HEADER > len) return 0;
    uint32_t L = kd__get_u32(img + off);
    if (L > KD_REC_MAX || off + KD_REC_HEADER + L > len) return 0;
    if (img[off + 8] != KD_REC_COMMIT || L < 24 || kd__get_u64(img + off + KD_REC_HEADER) == 0) return 0;
    if (*budget < (uint64_t)L + 5) return -1;
    *budget -= (uint64_t)L + 5;
    uint32_t crc = kd__crc32c(0, img + off, 4);
    crc = kd__crc32c(crc, img + off + 8, 1 + (size_t)L);
    return crc == kd__get_u32(img + off + 4);
}

/* Does the damage in [off, to) (a bad record at off, the next valid one at to) show a
** sector the disk never got? Such a sector holds what it held before the record was
** written: zeros (the log is zero-filled ahead, or read past the old end of file), and the
** records before off when it is off's own sector. So either the bytes from off to the end
** of off's sector are all zero, or a whole sector inside the span is.
** Zeros from off to the sector's end that cover the record's whole length field are such
** a sector: a valid record's length is at least 24, never four zero bytes. One to three
** zero bytes (a record starting just before a boundary) prove nothing by themselves: they
** may be the low bytes of a length such as 512 in a synced record that rotted further on.
** Then the record counts as cut short by a lost sector only if it is otherwise whole: with
** the length its extent implies (it ends where the next valid record starts), its other
** length bytes and its checksum agree. */
static int has_zero_sector(const uint8_t *img, uint64_t off, uint64_t to) {
    uint64_t head = (off / 512 + 1) * 512; /* the end of off's sector */
    if (head <= to && kd__all_zero(img + off, head - off)) {
        size_t lost = (size_t)(head - off);
        if (lost >= 4) return 1;
        uint64_t L = to - off - KD_REC_HEADER; /* 1-3 bytes: is the record otherwise whole? */
        if (to >= off + KD_REC_HEADER + 24 && L <= KD_REC_MAX) {
            uint8_t len[4];
            kd__set_u32(len, (uint32_t)L);
            uint32_t crc = kd__crc32c(0, len, 4);
            crc = kd__crc32c(crc, img + off + 8, 1 + (size_t)L);
            if (memcmp(len + lost, img + head, 4 - lost) == 0 && crc == kd__get_u32(img + off + 4)) return 1;
        }
    }
    for (uint64_t s = (off + 511) / 512 * 512; s + 512 <= to; s += 512)
        if (kd__all_zero(img + s, 512)) return 1;
    return 0;
}

/* Reads the records of one segment image from `from` and says how it ends. At the first
** bad record: zeros to the end are a clean end; nothing valid after it, a torn write;
** valid records after it, either a power cut or corruption. Unsynced pages reach the disk
** in any order, so a cut can keep a later record and lose an earlier one; synced data is
** never lost, so a bad record followed by valid ones can be cut only if it was never
** synced. Recovery cannot know where the last fsync was, but a lost sector has a shape
** bit rot does not: it holds what it held before the write, zeros (the log is zero-filled
** ahead of the records, or read past the old end of file) from the bad record's start
** to its sector's end, or a whole zero sector inside the damage. That shape is cut
** (torn + lost_pages); any other damage followed by valid records is corrupt. */
int kd__wal_scan(uint32_t segnum, const uint8_t *img, uint64_t len, uint64_t from,
                 kd_rec_fn fn, void *ctx, kd_scan_end *end) {
    memset(end, 0, sizeof *end);
    uint64_t off = from;
    while (off < len) {
        const char *why = NULL;
        uint32_t L = 0;
        if (off + KD_REC_HEADER > len) why = "record header cut short";
        else {
            L = kd__get_u32(img + off);
            if (L > KD_REC_MAX) why = "record length out of range";
            else if (off + KD_REC_HEADER + L > len) why = "record cut short";
            else {
                uint32_t crc = kd__crc32c(0, img + off, 4);
                crc = kd__crc32c(crc, img + off + 8, 1 + (size_t)L);
                if (crc != kd__get_u32(img + off + 4)) why = "checksum mismatch";
                else if (img[off + 8] != KD_REC_COMMIT) why = "unknown record type";
            }
        }
        if (why) {
            end->bad_off = off;
            snprintf(end->why, sizeof end->why, "%s", why);
            uint64_t z = off;
            while (z < len && img[z] == 0) z++;
            if (z == len) { /* pre-allocated zeros: a clean end */
                end->zero_tail = 1;
                break;
            }
            /* Valid records after the damage mean it is not simply a torn last write.
            ** Look past the bad record's own extent when its length is plausible (its
            ** value may contain bytes that look like a record). */
            uint64_t p = off + 1, budget = 1ull << 30;
            if (L <= KD_REC_MAX && off + KD_REC_HEADER + L <= len && L >= 24) p = off + KD_REC_HEADER + L;
            int later = 0;
            for (; p + KD_REC_HEADER <= len; p++)
                if ((later = valid_record_at(img, len, p, &budget)) != 0) break;
            if (later > 0 && has_zero_sector(img, off, p)) {
                /* A sector lost in a power cut (see has_zero_sector): the disk wrote
                ** back later dirty pages and not this one. No fsync covered it, so
                ** nothing after it was acknowledged either: this is the end of the
                ** durable log. */
                end->torn = 1;
                end->lost_pages = 1;
                end->resume_off = p;
            } else if (later != 0) {
                end->corrupt = 1;
                end->resume_off = later > 0 ? p : len;
                if (later < 0) snprintf(end->why, sizeof end->why, "%s (search for later records gave up)", why);
            } else
                end->torn = 1;
            break;
        }
        kd_rec r = {segnum, off, img[off + 8], img + off + KD_REC_HEADER, L};
        int rc = fn ? fn(ctx, &r) : 0;
        if (rc) {
            end->good_end = off;
            return rc;
        }
        off += KD_REC_HEADER + L;
    }
    end->good_end = end->torn || end->corrupt || end->zero_tail ? end->bad_off : off;
    return KD_OK;
}

int kd__wal_truncate_active(kd_wal *w, uint64_t size) {
    kd_segment *s = &w->segs[w->nsegs - 1];
    int rc = w->vfs->truncate(s->file, size);
    if (rc == KD_OK) rc = w->vfs->sync(s->file);
    if (rc == KD_OK) s->size = s->alloc = size;
    kd__wal_recount(w);
    return rc;
}

int kd__wal_rewrite_header(kd_wal *w) {
    kd_segment *s = &w->segs[w->nsegs - 1];
    uint8_t h[KD_SEG_HEADER];
    seg_header(h, s->num);
    int rc = w->vfs->truncate(s->file, 0);
    if (rc == KD_OK) rc = w->vfs->write(s->file, h, sizeof h, 0);
    if (rc == KD_OK) rc = w->vfs->sync(s->file);
    if (rc == KD_OK) s->size = s->alloc = KD_SEG_HEADER;
    kd__wal_recount(w);
    return rc;
}

#define PREALLOC_STEP (1u << 20)

/* Zero-fills the active segment up to at least `need` bytes. */
static int preallocate(kd_wal *w, kd_segment *s, uint64_t need) {
    static const uint8_t zeros[65536];
    uint64_t target = (need + PREALLOC_STEP - 1) / PREALLOC_STEP * PREALLOC_STEP;
    if (target > w->segment_bytes && need <= w->segment_bytes) target = w->segment_bytes;
    if (w->max_bytes) { /* under a quota, no zero-fill past what the log may still grow to */
        uint64_t total = atomic_load(&w->log_total);
        uint64_t most = s->size + (w->max_bytes > total ? w->max_bytes - total : 0);
        if (target > most) target = KD_MAX(need, most);
    }
    while (s->alloc < target) {
        size_t n = (size_t)KD_MIN((uint64_t)sizeof zeros, target - s->alloc);
        int rc = w->vfs->write(s->file, zeros, n, s->alloc);
        if (rc != KD_OK) return rc;
        if (s->alloc + n > s->size) atomic_fetch_add(&w->disk_total, s->alloc + n - KD_MAX(s->alloc, s->size));
        s->alloc += n;
    }
    return KD_OK;
}

const uint64_t kd_fsync_bucket_us[KD_FSYNC_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000, UINT64_MAX};

static uint64_t mono_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Counts one fsync that took us microseconds. Called with w->mu held. */
static void note_fsync(kd_wal *w, uint64_t us) {
    int i = 0;
    while (i < KD_FSYNC_BUCKETS - 1 && us > kd_fsync_bucket_us[i]) i++;
    w->fsyncs++;
    w->fsync_us += us;
    w->fsync_hist[i]++;
}

int kd__wal_append(kd_wal *w, uint8_t type, const void *payload, uint32_t len, uint64_t *loc) {
    int rc;
    if (w->read_only) return kd__err(KD_READONLY, "database opened read-only");
    if (len > KD_REC_MAX) return kd__err(KD_TOOBIG, "commit of %u bytes exceeds the 1 GiB record limit", len);
    kd_segment *s = &w->segs[w->nsegs - 1];
    int rotate = s->size > KD_SEG_HEADER && s->size + KD_REC_HEADER + len > w->segment_bytes;
    if (w->max_bytes) { /* the quota: refuse before anything is written; the handle stays usable */
        uint64_t total = atomic_load(&w->log_total), need = KD_REC_HEADER + len + (rotate ? KD_SEG_HEADER : 0);
        if (total + need > w->max_bytes)
            return kd__err(KD_FULL,
                           "database full: this commit needs %llu bytes of log and %llu of the %llu allowed "
                           "(max_db_bytes) are left; the database stays readable",
                           (unsigned long long)need,
                           (unsigned long long)(w->max_bytes > total ? w->max_bytes - total : 0),
                           (unsigned long long)w->max_bytes);
    }
    if (rotate) {
        /* Rotate: make the old segment durable first, so older segments are always
        ** complete and only the newest can have a torn tail. Its zero-filled space goes:
        ** a closed segment's file is exactly its records, as log_bytes counts it after a
        ** reopen (and as the quota does). */
        uint64_t t0 = mono_us();
        if (s->alloc > s->size) {
            if ((rc = w->vfs->truncate(s->file, s->size)) != KD_OK) goto fail;
            atomic_fetch_sub(&w->disk_total, s->alloc - s->size);
            s->alloc = s->size;
        }
        if ((rc = w->vfs->sync(s->file)) != KD_OK) goto fail;
        uint64_t took = mono_us() - t0;
        pthread_mutex_lock(&w->mu);
        note_fsync(w, took);
        if (w->written_seq > w->durable_seq) w->durable_seq = w->written_seq;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        if ((rc = create_segment(w, s->num + 1)) != KD_OK) goto fail;
        s = &w->segs[w->nsegs - 1];
    }
    /* Neither step below writes record bytes, so a failure (e.g. a full disk) leaves the
    ** log as it was and the handle usable. */
    if (s->size + KD_REC_HEADER + len > s->alloc &&
        (rc = preallocate(w, s, s->size + KD_REC_HEADER + len)) != KD_OK)
        return rc;
    if (s->size + KD_REC_HEADER + len > s->maplen && (rc = grow_map(w, s, s->size + KD_REC_HEADER + len)) != KD_OK)
        return rc;
    uint8_t h[KD_REC_HEADER];
    kd__set_u32(h, len);
    h[8] = type;
    uint32_t crc = kd__crc32c(0, h, 4);
    crc = kd__crc32c(crc, &h[8], 1);
    crc = kd__crc32c(crc, payload, len);
    kd__set_u32(h + 4, crc);
    /* One write for header and payload when small, to keep the torn window small. */
    if (len <= 65536) {
        uint8_t tmp[KD_REC_HEADER + 65536];
        memcpy(tmp, h, KD_REC_HEADER);
        memcpy(tmp + KD_REC_HEADER, payload, len);
        rc = w->vfs->write(s->file, tmp, KD_REC_HEADER + len, s->size);
    } else {
        rc = w->vfs->write(s->file, h, KD_REC_HEADER, s->size);
        if (rc == KD_OK) rc = w->vfs->write(s->file, payload, len, s->size + KD_REC_HEADER);
    }
    if (rc != KD_OK) goto fail;
    *loc = KD_LOC(s->num, s->size + KD_REC_HEADER);
    if (s->size + KD_REC_HEADER + len > s->alloc)
        atomic_fetch_add(&w->disk_total, s->size + KD_REC_HEADER + len - KD_MAX(s->alloc, s->size));
    s->size += KD_REC_HEADER + len;
    atomic_fetch_add(&w->log_total, KD_REC_HEADER + len);
    return KD_OK;
fail:
    /* What reached the file is unknown: refuse further writes until reopen, where
    ** recovery cuts whatever partial record is there. */
    pthread_mutex_lock(&w->mu);
    w->failed = 1;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void kd__wal_written(kd_wal *w, uint64_t seq) {
    pthread_mutex_lock(&w->mu);
    w->written_seq = seq;
    pthread_mutex_unlock(&w->mu);
}

int kd__wal_wait_durable(kd_wal *w, uint64_t seq) {
    int rc = KD_OK;
    pthread_mutex_lock(&w->mu);
    while (w->durable_seq < seq) {
        if (w->failed) {
            rc = kd__err(KD_IOERR, "an earlier fsync failed; the database must be reopened");
            break;
        }
        if (w->syncing) {
            pthread_cond_wait(&w->cond, &w->mu);
            continue;
        }
        /* Become the syncer for everything written so far. */
        w->syncing = 1;
        uint64_t target = w->written_seq;
        kd_file *f = w->active;
        pthread_mutex_unlock(&w->mu);
        uint64_t t0 = mono_us();
        int src = w->vfs->sync(f);
        uint64_t took = mono_us() - t0;
        pthread_mutex_lock(&w->mu);
        w->syncing = 0;
        note_fsync(w, took);
        if (src != KD_OK) {
            w->failed = 1;
            rc = src;
            pthread_cond_broadcast(&w->cond);
            break;
        }
        if (target > w->durable_seq) w->durable_seq = target;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int kd__wal_sync_all(kd_wal *w) {
    uint64_t target;
    pthread_mutex_lock(&w->mu);
    target = w->written_seq;
    pthread_mutex_unlock(&w->mu);
    if (w->read_only) return KD_OK;
    return kd__wal_wait_durable(w, target);
}

static kd_segment *find_seg(kd_wal *w, uint32_t num) {
    /* Segments are numbered 1..n contiguously. */
    if (num == 0 || num > w->nsegs) return NULL;
    return &w->segs[num - 1];
}

int kd__wal_pread(kd_wal *w, uint64_t loc, void *buf, size_t n) {
    size_t got = 0;
    pthread_rwlock_rdlock(&w->segs_lock);
    kd_segment *s = find_seg(w, KD_LOC_SEG(loc));
    kd_file *f = s ? s->file : NULL;
    pthread_rwlock_unlock(&w->segs_lock);
    if (!f) return kd__err(KD_CORRUPT, "log position in missing segment %u", KD_LOC_SEG(loc));
    int rc = w->vfs->read(f, buf, n, KD_LOC_OFF(loc), &got);
    if (rc != KD_OK) return rc;
    if (got != n)
        return kd__err(KD_CORRUPT, "segment %u offset %llu: short read (%zu of %zu bytes)",
                       KD_LOC_SEG(loc), (unsigned long long)KD_LOC_OFF(loc), got, n);
    return KD_OK;
}

uint64_t kd__wal_end(kd_wal *w) {
    kd_segment *s = &w->segs[w->nsegs - 1];
    return KD_LOC(s->num, s->size);
}

void kd__wal_recount(kd_wal *w) {
    uint64_t log = 0, disk = 0;
    for (size_t i = 0; i < w->nsegs; i++) {
        log += w->segs[i].size;
        disk += KD_MAX(w->segs[i].alloc, w->segs[i].size);
    }
    atomic_store(&w->log_total, log);
    atomic_store(&w->disk_total, disk);
}

uint64_t kd__wal_disk_bytes(kd_wal *w) { return atomic_load(&w->disk_total); }
uint64_t kd__wal_log_bytes(kd_wal *w) { return atomic_load(&w->log_total); }
