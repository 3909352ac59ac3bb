/*
** fuzz_dbfile.c — fuzz target for whole database directories: the input becomes a log
** segment (and optionally a checkpoint) in a fresh directory, which is then checked,
** opened, read in full, written to, closed and reopened. Errors are expected; crashes,
** hangs, leaks and broken promises are findings.
**
** Input layout:
**   byte 0     flags: bit 0 recompute each record's CRC32C in the log part (so mutations
**              reach the commit decoder and the index instead of the checksum);
**              bit 1 write a valid 64-byte segment header before the log part;
**              bit 2 recompute both CRCs of the checkpoint part (header and body);
**              bit 3 kd_check with deep = 1.
**   bytes 1-4  little-endian u32: the log part's length (taken modulo what is left + 1);
**   then       the log part, written as log/00000001.kdl, and the rest, written as
**              checkpoint when it is not empty.
** Invariants: kd_check_path and kd_open return a status code (never crash); when the open
** succeeds, every namespace, key, version, the change feed and kd_check can be read; a
** put then succeeds or fails cleanly; kd_close succeeds; and a database that was opened
** and closed cleanly opens again (what a crash-free round trip must keep).
** The directory is <TMPDIR>/kd_fuzz_dbfile_<pid>, written through the operating system
** (the unix VFS, as kd_open will read it) and removed after every input.
** Reproduce: build/tests/test_fuzz_dbfile FILE.
*/
#include <sys/stat.h>

#include "base/base.h"
#include "crypto/crc32c.h"
#include "fuzz.h"
#include "korudelta.h"
#include "log/wal.h"

#define MAX_INPUT (256u * 1024)
#define MAX_ITEMS 2000 /* reading stops after this many keys/versions: bounded time */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int write_file(const char *path, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    ok = (alen == 0 || fwrite(a, 1, alen, f) == alen) && (blen == 0 || fwrite(b, 1, blen, f) == blen);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void fix_record_crcs(uint8_t *img, size_t len, size_t off) {
    while (off + KD_REC_HEADER <= len) {
        uint32_t l = kd__get_u32(img + off);
        if (l > len - off - KD_REC_HEADER) break;
        uint32_t crc = kd__crc32c(0, img + off, 4);
        put_u32(img + off + 4, kd__crc32c(crc, img + off + 8, 1 + (size_t)l));
        off += KD_REC_HEADER + l;
    }
}

static void fix_checkpoint_crcs(uint8_t *c, size_t len) {
    if (len >= 64) put_u32(c + 60, kd__crc32c(0, c, 60));
    if (len >= 68) put_u32(c + len - 4, kd__crc32c(0, c + 64, len - 68));
}

/* Reads everything the handle offers; returns the number of versions seen. */
static size_t read_all(kd_db *db) {
    kd_ns_info *ns = NULL;
    size_t nns = 0, items = 0;
    kd_stats st;
    kd_feed *feed = NULL;
    (void)kd_stats_get(db, &st);
    if (kd_list_namespaces(db, 1, &ns, &nns) == KD_OK) {
        for (size_t i = 0; i < nns && items < MAX_ITEMS; i++) {
            char **keys = NULL;
            size_t nk = 0;
            if (kd_list_keys(db, ns[i].name, NULL, 0, &keys, &nk) != KD_OK) continue;
            for (size_t k = 0; k < nk && items < MAX_ITEMS; k++) {
                kd_entry e, *h = NULL;
                size_t nh = 0, total = 0;
                char *patch = NULL;
                memset(&e, 0, sizeof e);
                (void)kd_get(db, ns[i].name, keys[k], &e);
                kd_entry_clear(&e);
                if (kd_history(db, ns[i].name, keys[k], 0, 0, 1, &h, &nh, &total) == KD_OK) {
                    FUZZ_ASSERT(nh == total);
                    for (size_t v = 0; v < nh; v++) {
                        memset(&e, 0, sizeof e);
                        (void)kd_get_at(db, ns[i].name, keys[k], h[v].timestamp, &e);
                        kd_entry_clear(&e);
                    }
                    items += nh;
                    kd_entries_free(h, nh);
                }
                if (kd_diff(db, ns[i].name, keys[k], NULL, NULL, NULL, NULL, &patch) == KD_OK) kd_free(patch);
                items++;
            }
            kd_keys_free(keys, nk);
        }
        kd_ns_list_free(ns, nns);
    }
    if (kd_feed_open(db, 0, &feed) == KD_OK) {
        kd_entry e;
        for (size_t i = 0; i < MAX_ITEMS; i++) {
            memset(&e, 0, sizeof e);
            int rc = kd_feed_next(feed, &e);
            kd_entry_clear(&e);
            if (rc != KD_OK) break;
        }
        kd_feed_close(feed);
    }
    return items;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    char dir[256], logdir[300], path[320];
    uint8_t flags, hdr[KD_SEG_HEADER], *log = NULL, *ckpt = NULL;
    size_t loglen, ckptlen;
    kd_check_report rep;
    kd_options opt;
    kd_db *db = NULL;
    int rc, deep;
    if (size < 5 || size > MAX_INPUT) return 0;
    fuzz_scratch_path(dir, sizeof dir, "dbfile");
    if (!quiet) {
        setenv("KORU_LOG", "error", 0); /* torn tails are expected here: no warnings */
        quiet = 1;
    }
    flags = data[0];
    deep = (flags >> 3) & 1;
    loglen = kd__get_u32(data + 1) % (size - 5 + 1);
    ckptlen = size - 5 - loglen;
    if (!(log = malloc(loglen + 1)) || !(ckpt = malloc(ckptlen + 1))) goto out;
    memcpy(log, data + 5, loglen);
    memcpy(ckpt, data + 5 + loglen, ckptlen);

    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, "KDLOG\r\n\032", 8);
    put_u32(hdr + 8, KD_LOG_FORMAT);
    put_u64(hdr + 16, 1);
    put_u32(hdr + 60, kd__crc32c(0, hdr, 60));
    if (flags & 1) {
        /* Records start after the header: at 0 of the log part when the header is ours. */
        if (flags & 2) fix_record_crcs(log, loglen, 0);
        else fix_record_crcs(log, loglen, KD_SEG_HEADER);
    }
    if (flags & 4) fix_checkpoint_crcs(ckpt, ckptlen);

    fuzz_rm_rf(dir);
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    if (mkdir(dir, 0700) != 0 || mkdir(logdir, 0700) != 0) goto out;
    snprintf(path, sizeof path, "%s/00000001.kdl", logdir);
    if (write_file(path, (flags & 2) ? hdr : NULL, (flags & 2) ? sizeof hdr : 0, log, loglen) != 0) goto out;
    if (ckptlen) {
        snprintf(path, sizeof path, "%s/checkpoint", dir);
        if (write_file(path, ckpt, ckptlen, NULL, 0) != 0) goto out;
    }

    memset(&rep, 0, sizeof rep);
    rc = kd_check_path(dir, deep, &rep);
    FUZZ_ASSERT(rc >= KD_OK && rc <= KD_DONE);
    FUZZ_ASSERT(memchr(rep.first_error, 0, sizeof rep.first_error) != NULL);
    FUZZ_ASSERT(memchr(rep.error_list, 0, sizeof rep.error_list) != NULL);

    kd_options_init(&opt);
    opt.sync = KD_SYNC_OFF;
    opt.create_if_missing = 0;
    opt.checkpoint_bytes = 0;
    rc = kd_open(dir, &opt, &db);
    FUZZ_ASSERT(rc >= KD_OK && rc <= KD_DONE);
    if (rc != KD_OK) {
        FUZZ_ASSERT(db == NULL);
        goto out;
    }
    read_all(db);
    memset(&rep, 0, sizeof rep);
    rc = kd_check(db, deep, &rep);
    FUZZ_ASSERT(rc >= KD_OK && rc <= KD_DONE);
    {
        kd_entry e;
        memset(&e, 0, sizeof e);
        rc = kd_put(db, "fuzz", "k", "{\"x\":1}", 7, NULL, &e);
        FUZZ_ASSERT(rc >= KD_OK && rc <= KD_DONE);
        kd_entry_clear(&e);
    }
    rc = kd_close(db);
    db = NULL;
    if (rc == KD_OK) {
        /* Opened and closed cleanly: it must open again, and hold what the put wrote. */
        rc = kd_open(dir, &opt, &db);
        if (rc != KD_OK) fprintf(stderr, "reopen after a clean close failed: %s\n", kd_errmsg(NULL));
        FUZZ_ASSERT(rc == KD_OK);
        read_all(db);
        kd_close(db);
        db = NULL;
    }
out:
    if (db) kd_close(db);
    free(log);
    free(ckpt);
    fuzz_rm_rf(dir);
    return 0;
}
