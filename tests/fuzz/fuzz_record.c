/*
** fuzz_record.c — fuzz target for log records: the record framing scanner (kd__wal_scan,
** src/log/wal.h) over a segment image, and the COMMIT payload decoder (kd__commit_decode,
** src/store/commit.h) on every record it finds and on the raw input itself.
**
** Input: byte 0 holds flags, the rest R is the bytes.
**   bit 0: recompute the CRC32C of each record in R that fits, so mutations of the
**          payload get past the checksum and reach the decoder (without it the fuzzer
**          mostly tests the CRC);
**   bit 1: scan from a valid 64-byte segment header followed by R (else R alone is the
**          image, header included, and must pass kd__wal_check_header first).
** Invariants: the scanner's positions stay within the image; every pointer the decoder
** returns lies inside the payload it was given (ASan catches reads outside it: the image
** is an exact-size heap copy).
** Reproduce: build/tests/test_fuzz_record FILE.
*/
#include "base/base.h"
#include "crypto/crc32c.h"
#include "fuzz.h"
#include "log/wal.h"
#include "store/commit.h"

#define MAX_INPUT (1u << 20)

static int inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len) {
    return p >= base && (size_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

static void decode(const uint8_t *p, uint32_t len) {
    kd_commit c;
    memset(&c, 0, sizeof c);
    int rc = kd__commit_decode(p, len, &c);
    FUZZ_ASSERT(rc == KD_OK || rc == KD_CORRUPT || rc == KD_NOMEM);
    if (rc != KD_OK) return;
    for (uint32_t i = 0; i < c.nvals; i++) {
        const kd_cval *v = &c.vals[i];
        FUZZ_ASSERT(inside(v->hash, 32, p, len));
        FUZZ_ASSERT(inside(v->bytes, v->len, p, len));
        FUZZ_ASSERT(v->bytes == p + v->off);
    }
    for (uint32_t i = 0; i < c.nvers; i++) {
        const kd_cver *v = &c.vers[i];
        FUZZ_ASSERT(inside((const uint8_t *)v->ns, v->nslen, p, len));
        FUZZ_ASSERT(inside((const uint8_t *)v->key, v->keylen, p, len));
        FUZZ_ASSERT(inside(v->id, 32, p, len));
        FUZZ_ASSERT((v->flags & KD_VF_DELETED) ? v->value_hash == NULL
                                               : inside(v->value_hash, 32, p, len));
        FUZZ_ASSERT((v->flags & KD_VF_PREV) ? inside(v->prev, 32, p, len) : v->prev == NULL);
    }
    kd__commit_free(&c);
}

static int on_record(void *ctx, const kd_rec *rec) {
    const uint8_t *img = ((const uint8_t **)ctx)[0];
    size_t len = (size_t)(uintptr_t)((const uint8_t **)ctx)[1];
    FUZZ_ASSERT(rec->seg == 1);
    FUZZ_ASSERT(rec->off >= KD_SEG_HEADER && rec->off + KD_REC_HEADER + rec->len <= len);
    FUZZ_ASSERT(inside(rec->payload, rec->len, img, len));
    if (rec->type == KD_REC_COMMIT) decode(rec->payload, rec->len);
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crcs(uint8_t *img, size_t len, size_t off) {
    while (off + KD_REC_HEADER <= len) {
        uint32_t l = kd__get_u32(img + off);
        if (l > len - off - KD_REC_HEADER) break;
        uint32_t crc = kd__crc32c(0, img + off, 4);
        crc = kd__crc32c(crc, img + off + 8, 1 + (size_t)l);
        put_u32(img + off + 4, crc);
        off += KD_REC_HEADER + l;
    }
}

static void put_header(uint8_t *h) {
    memset(h, 0, KD_SEG_HEADER);
    memcpy(h, "KDLOG\r\n\032", 8);
    put_u32(h + 8, KD_LOG_FORMAT);
    put_u64(h + 16, 1);
    put_u32(h + 60, kd__crc32c(0, h, 60));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t flags, *img;
    size_t len, hdr;
    kd_scan_end end;
    if (size < 1 || size > MAX_INPUT) return 0;
    flags = data[0];
    data++, size--;

    /* The bytes alone as a payload (exact-size copy). */
    if ((img = malloc(size ? size : 1))) {
        if (size) memcpy(img, data, size);
        decode(img, (uint32_t)size);
        free(img);
    }

    hdr = (flags & 2) ? KD_SEG_HEADER : 0;
    len = hdr + size;
    if (!(img = malloc(len ? len : 1))) return 0;
    if (hdr) put_header(img);
    if (size) memcpy(img + hdr, data, size);
    if (flags & 1) fix_crcs(img, len, KD_SEG_HEADER);
    if (kd__wal_check_header(img, len, 1) == KD_OK) {
        const uint8_t *ctx[2] = {img, (const uint8_t *)(uintptr_t)len};
        memset(&end, 0, sizeof end);
        int rc = kd__wal_scan(1, img, len, KD_SEG_HEADER, on_record, ctx, &end);
        (void)rc;
        FUZZ_ASSERT(end.good_end >= KD_SEG_HEADER && end.good_end <= len);
        if (end.corrupt) FUZZ_ASSERT(end.bad_off < len && end.resume_off <= len);
    }
    free(img);
    return 0;
}
