/*
** commit.c — decoding of COMMIT payloads and version-id hashing (layout in commit.h).
** Encoding is done inline by db.c's commit path, which owns the record buffer.
**
** May call: base, crypto. Every length read from disk is checked before use.
*/
#include "store/commit.h"

#include "crypto/hash.h"

void kd__commit_free(kd_commit *c) {
    kd__free(c->vals);
    kd__free(c->vers);
    memset(c, 0, sizeof *c);
}

int kd__commit_decode(const uint8_t *p, uint32_t len, kd_commit *c) {
    memset(c, 0, sizeof *c);
    uint64_t o = 24;
    if (len < 24) return kd__err(KD_CORRUPT, "commit payload of %u bytes is too short", len);
    c->base = p;
    c->first_seq = kd__get_u64(p);
    c->ts = (int64_t)kd__get_u64(p + 8);
    c->nvals = kd__get_u32(p + 16);
    c->nvers = kd__get_u32(p + 20);
    if (c->nvers == 0 || c->nvers > len / 37 || c->nvals > len / 36 || c->first_seq == 0)
        return kd__err(KD_CORRUPT, "commit payload: bad counts (%u values, %u versions)", c->nvals, c->nvers);
    c->vals = kd__calloc(c->nvals ? c->nvals : 1, sizeof *c->vals);
    c->vers = kd__calloc(c->nvers, sizeof *c->vers);
    if (!c->vals || !c->vers) {
        kd__commit_free(c);
        return kd__err(KD_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < c->nvals; i++) {
        if (o + 36 > len) goto short_;
        c->vals[i].hash = p + o;
        c->vals[i].len = kd__get_u32(p + o + 32);
        o += 36;
        if (o + c->vals[i].len > len) goto short_;
        c->vals[i].bytes = p + o;
        c->vals[i].off = (uint32_t)o;
        o += c->vals[i].len;
    }
    for (uint32_t i = 0; i < c->nvers; i++) {
        kd_cver *v = &c->vers[i];
        if (o + 5 > len) goto short_;
        v->flags = p[o];
        v->nslen = kd__get_u16(p + o + 1);
        v->keylen = kd__get_u16(p + o + 3);
        o += 5;
        if (v->flags & ~(KD_VF_DELETED | KD_VF_PREV) || v->nslen == 0 || v->keylen == 0) {
            kd__commit_free(c);
            return kd__err(KD_CORRUPT, "commit payload offset %llu: bad version header", (unsigned long long)o - 5);
        }
        uint64_t need = (uint64_t)v->nslen + v->keylen + 32 + (v->flags & KD_VF_DELETED ? 0 : 32) +
                        (v->flags & KD_VF_PREV ? 32 : 0);
        if (o + need > len) goto short_;
        v->ns = (const char *)p + o;
        o += v->nslen;
        v->key = (const char *)p + o;
        o += v->keylen;
        if (!(v->flags & KD_VF_DELETED)) {
            v->value_hash = p + o;
            o += 32;
        }
        if (v->flags & KD_VF_PREV) {
            v->prev = p + o;
            o += 32;
        }
        v->id = p + o;
        o += 32;
    }
    if (o != len) {
        kd__commit_free(c);
        return kd__err(KD_CORRUPT, "commit payload: %llu trailing bytes", (unsigned long long)(len - o));
    }
    return KD_OK;
short_:
    kd__commit_free(c);
    return kd__err(KD_CORRUPT, "commit payload offset %llu: truncated", (unsigned long long)o);
}

void kd__version_id(const char *ns, size_t nslen, const char *key, size_t keylen, int deleted,
                    const uint8_t value_hash[32], int64_t ts, const uint8_t *prev,
                    uint8_t out[32]) {
    static const uint8_t zero[32];
    uint8_t b[8];
    blake3_hasher h;
    blake3_hasher_init(&h);
    blake3_hasher_update(&h, "kdv1", 4);
    b[0] = (uint8_t)nslen; b[1] = (uint8_t)(nslen >> 8);
    blake3_hasher_update(&h, b, 2);
    blake3_hasher_update(&h, ns, nslen);
    b[0] = (uint8_t)keylen; b[1] = (uint8_t)(keylen >> 8);
    blake3_hasher_update(&h, b, 2);
    blake3_hasher_update(&h, key, keylen);
    b[0] = deleted ? 1 : 0;
    blake3_hasher_update(&h, b, 1);
    blake3_hasher_update(&h, deleted || !value_hash ? zero : value_hash, 32);
    kd__set_u64(b, (uint64_t)ts);
    blake3_hasher_update(&h, b, 8);
    b[0] = prev ? 1 : 0;
    blake3_hasher_update(&h, b, 1);
    blake3_hasher_update(&h, prev ? prev : zero, 32);
    b[0] = 0; b[1] = 0; /* author length: no identities yet */
    blake3_hasher_update(&h, b, 2);
    blake3_hasher_finalize(&h, out, 32);
}
