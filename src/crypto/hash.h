/*
** hash.h — BLAKE3 content hashing (the official C implementation, taken from Debian's
** librust-blake3-dev at build time) behind one small interface.
*/
#ifndef KD_HASH_H
#define KD_HASH_H
#include <stddef.h>
#include <stdint.h>
#include "blake3.h"

static inline void kd__blake3(const void *data, size_t len, uint8_t out[32]) {
    blake3_hasher h;
    blake3_hasher_init(&h);
    blake3_hasher_update(&h, data, len);
    blake3_hasher_finalize(&h, out, 32);
}
#endif
