/*
** crc32c.c — CRC-32C (Castagnoli; reflected polynomial 0x82F63B78) for log records and
** checkpoints. Two implementations of the same function:
**   - hardware: the SSE4.2 crc32 instruction, 8 bytes per step, on x86-64 CPUs that
**     have it (detected at run time, so one binary runs everywhere);
**   - software: slicing-by-8 — eight 256-entry tables let one step fold 8 input bytes
**     with 8 independent lookups instead of 8 dependent ones.
**
** May call: base (byte helpers), pthread_once, compiler CPU-detection builtins.
**
** Invariants:
**   - Both paths compute the same function (tests/unit/test_crc32c.c checks them against
**     each other and against a bit-at-a-time reference).
**   - The conventional inversion of the register is applied on entry and on exit, so a
**     returned value can be passed back in as `crc` to continue a checksum.
**   - The tables and the hardware choice are written exactly once, inside pthread_once,
**     and only read afterwards: process-wide constants computed lazily, not mutable
**     state. They are computed rather than committed, so no table data is copied in.
**   - Input is read bytewise or through memcpy: no alignment requirement, no aliasing.
*/
#include "crypto/crc32c.h"

#include <pthread.h>

#include "base/base.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC_HW_X86 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u /* 0x1EDC6F41 bit-reversed */

static uint32_t table[8][256];
static int use_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* table[0][b] is the CRC register after feeding byte b into a zero register;
** table[k][b] the same followed by k zero bytes. */
static void init_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xFF];
}

static void init(void) {
    init_tables();
#ifdef CRC_HW_X86
    __builtin_cpu_init();
    use_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

/* ---- software: slicing-by-8 --------------------------------------------------------- */

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len) {
    uint32_t c = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo = c ^ kd__get_u32(p), hi = kd__get_u32(p + 4);
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^
            table[4][lo >> 24] ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
            table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
    }
    for (; len > 0; p++, len--) c = table[0][(c ^ *p) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* ---- hardware: SSE4.2 --------------------------------------------------------------- */

#ifdef CRC_HW_X86
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len) {
    uint32_t c = ~crc;
    /* Bytes up to an 8-byte boundary first, so the main loop's loads never split a
    ** cache line. */
    for (; len > 0 && ((uintptr_t)p & 7) != 0; p++, len--) c = _mm_crc32_u8(c, *p);
    uint64_t c64 = c;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* x86 is little-endian, as the reflected CRC expects */
        c64 = _mm_crc32_u64(c64, w);
    }
    c = (uint32_t)c64;
    for (; len > 0; p++, len--) c = _mm_crc32_u8(c, *p);
    return ~c;
}
#endif

/* ---- entry points ------------------------------------------------------------------- */

uint32_t kd__crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&init_once, init);
    if (len == 0) return crc;
#ifdef CRC_HW_X86
    if (use_hw) return crc_hw(crc, data, len);
#endif
    return crc_sw(crc, data, len);
}

uint32_t kd__crc32c_sw(uint32_t crc, const void *data, size_t len) {
    pthread_once(&init_once, init);
    if (len == 0) return crc;
    return crc_sw(crc, data, len);
}

int kd__crc32c_hw_available(void) {
    pthread_once(&init_once, init);
    return use_hw;
}
