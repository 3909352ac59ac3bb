/*
** test_crc32c.c — CRC-32C: published check values, chaining, and the hardware path
** against the table path and a bit-at-a-time reference written here from the definition.
*/
#include <pthread.h>
#include <stdint.h>

#include "crypto/crc32c.h"
#include "t.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void fill(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

/* The definition, one bit at a time: independent of both library paths. */
static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

/* First-use initialisation raced by several threads must give every one of them the
** right answer. Runs first, before anything else has initialised the tables. */
static void *thread_main(void *arg) {
    (void)arg;
    uint32_t ok = 1;
    for (int i = 0; i < 1000; i++) {
        ok &= kd__crc32c(0, "123456789", 9) == 0xE3069283u;
        ok &= kd__crc32c_sw(0, "123456789", 9) == 0xE3069283u;
    }
    return (void *)(uintptr_t)ok;
}
TEST(first_use_from_many_threads) {
    pthread_t th[8];
    for (int i = 0; i < 8; i++) CHECK(pthread_create(&th[i], NULL, thread_main, NULL) == 0);
    for (int i = 0; i < 8; i++) {
        void *r = NULL;
        CHECK(pthread_join(th[i], &r) == 0);
        CHECK(r == (void *)(uintptr_t)1);
    }
}

TEST(check_value) {
    CHECK_EQ_INT(kd__crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(kd__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(crc_ref(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
}

/* The iSCSI test vectors of RFC 3720, appendix B.4. */
TEST(rfc3720_vectors) {
    uint8_t buf[32];
    uint32_t (*fn[2])(uint32_t, const void *, size_t) = {kd__crc32c, kd__crc32c_sw};
    for (int f = 0; f < 2; f++) {
        memset(buf, 0, 32);
        CHECK_EQ_INT(fn[f](0, buf, 32), 0x8A9136AAu);
        memset(buf, 0xFF, 32);
        CHECK_EQ_INT(fn[f](0, buf, 32), 0x62A8AB43u);
        for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
        CHECK_EQ_INT(fn[f](0, buf, 32), 0x46DD794Eu);
        for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
        CHECK_EQ_INT(fn[f](0, buf, 32), 0x113FDB5Cu);
    }
}

TEST(empty_input) {
    CHECK_EQ_INT(kd__crc32c(0, NULL, 0), 0);
    CHECK_EQ_INT(kd__crc32c_sw(0, NULL, 0), 0);
    CHECK_EQ_INT(kd__crc32c(0xDEADBEEFu, NULL, 0), 0xDEADBEEFu);
    CHECK_EQ_INT(kd__crc32c_sw(0xDEADBEEFu, "x", 0), 0xDEADBEEFu);
    CHECK_EQ_INT(kd__crc32c(0, "a", 1), 0xC1D04330u);
}

TEST(chaining_at_every_split) {
    static uint8_t buf[600];
    fill(buf, sizeof buf);
    for (size_t n = 0; n <= sizeof buf; n += 37) {
        uint32_t whole = kd__crc32c(0, buf, n), whole_sw = kd__crc32c_sw(0, buf, n);
        CHECK_EQ_INT(whole, whole_sw);
        for (size_t i = 0; i <= n; i++) {
            uint32_t hw = kd__crc32c(kd__crc32c(0, buf, i), buf + i, n - i);
            uint32_t sw = kd__crc32c_sw(kd__crc32c_sw(0, buf, i), buf + i, n - i);
            if (hw != whole || sw != whole) {
                fprintf(stderr, "  n %zu split %zu\n", n, i);
                CHECK_EQ_INT(hw, whole);
                CHECK_EQ_INT(sw, whole);
                return;
            }
        }
    }
    /* "123" then "456789" */
    CHECK_EQ_INT(kd__crc32c(kd__crc32c(0, "123", 3), "456789", 6), 0xE3069283u);
}

/* Every length 0..300 at every offset 0..15 (so every alignment of start and end), with
** random contents and random starting values: hardware == tables == definition. */
TEST(hw_equals_sw_every_length_and_offset) {
    static uint8_t buf[16 + 300 + 16];
    long mismatches = 0, cases = 0;
    printf("     (hardware crc32 instruction %s)\n",
           kd__crc32c_hw_available() ? "in use" : "not available; comparing tables only");
    for (int round = 0; round < 4; round++) {
        fill(buf, sizeof buf);
        for (size_t off = 0; off < 16; off++) {
            for (size_t len = 0; len <= 300; len++) {
                uint32_t seed = round == 0 ? 0 : (uint32_t)rnd();
                uint32_t hw = kd__crc32c(seed, buf + off, len);
                uint32_t sw = kd__crc32c_sw(seed, buf + off, len);
                uint32_t ref = crc_ref(seed, buf + off, len);
                if (hw != sw || sw != ref) {
                    if (mismatches++ < 5)
                        fprintf(stderr, "  off %zu len %zu seed %08x: hw %08x sw %08x ref %08x\n",
                                off, len, seed, hw, sw, ref);
                }
                cases++;
            }
        }
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK_EQ_INT(cases, 4 * 16 * 301);
}

TEST(large_buffer) {
    static uint8_t buf[1 << 20];
    fill(buf, sizeof buf);
    uint32_t ref = crc_ref(0, buf, sizeof buf);
    CHECK_EQ_INT(kd__crc32c(0, buf, sizeof buf), ref);
    CHECK_EQ_INT(kd__crc32c_sw(0, buf, sizeof buf), ref);
    CHECK_EQ_INT(kd__crc32c(0, buf + 3, sizeof buf - 3), crc_ref(0, buf + 3, sizeof buf - 3));
}

/* A checksum must notice any single flipped bit. */
TEST(detects_single_bit_flips) {
    uint8_t buf[64];
    fill(buf, sizeof buf);
    uint32_t good = kd__crc32c(0, buf, sizeof buf);
    int missed = 0;
    for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        missed += kd__crc32c(0, buf, sizeof buf) == good;
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK_EQ_INT(missed, 0);
    CHECK_EQ_INT(kd__crc32c(0, buf, sizeof buf), good);
}

int main(void) {
    RUN(first_use_from_many_threads);
    RUN(check_value);
    RUN(rfc3720_vectors);
    RUN(empty_input);
    RUN(chaining_at_every_split);
    RUN(hw_equals_sw_every_length_and_offset);
    RUN(large_buffer);
    RUN(detects_single_bit_flips);
    return t_done();
}
