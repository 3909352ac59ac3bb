/*
** fuzz_time.c — fuzz target for time specifications: kd_parse_time (public, no database,
** so version ids are not resolved) and kd__time_parse_spec / kd__time_parse_rfc3339
** (src/base/timefmt.h) on arbitrary text.
**
** Invariants: a parse succeeds only inside [KD__TIME_MIN_US, KD__TIME_MAX_US]; RFC 3339
** and "@seconds" parse the same with any "now"; kd_format_time of a parsed time is 27
** characters and parses back (RFC 3339 and "@" forms) to the same microsecond;
** "<N><unit>" and "now" are now minus a non-negative span.
** Reproduce: build/tests/test_fuzz_time FILE.
*/
#include "base/timefmt.h"
#include "fuzz.h"
#include "korudelta.h"

#define NOW_A 1767225600000000LL   /* 2026-01-01T00:00:00Z */
#define NOW_B (-1000000LL)         /* just before the epoch */

static void round_trip(int64_t ts) {
    char out[32], at[64];
    int64_t back = 0;
    kd_format_time(ts, out);
    FUZZ_ASSERT(strlen(out) == 27);
    FUZZ_ASSERT(kd__time_parse_rfc3339(out, &back) == KD_OK);
    FUZZ_ASSERT(back == ts);
    back = 0;
    FUZZ_ASSERT(kd_parse_time(NULL, out, &back) == KD_OK && back == ts);
    /* The same instant as "@seconds.micros" (floor division keeps the fraction >= 0). */
    int64_t sec = ts / 1000000, us = ts % 1000000;
    if (us < 0) sec -= 1, us += 1000000;
    snprintf(at, sizeof at, "@%lld.%06lld", (long long)sec, (long long)us);
    if (sec < 0 && us) {
        /* "@-5.25" means -5.25 s: write negatives as -(|ts|) instead. */
        int64_t a = -ts;
        snprintf(at, sizeof at, "@-%lld.%06lld", (long long)(a / 1000000), (long long)(a % 1000000));
    }
    back = 0;
    FUZZ_ASSERT(kd__time_parse_spec(at, NOW_A, &back) == KD_OK && back == ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s;
    int64_t a = 0, b = 0, r = 0, p = 0;
    int ra, rb, rr, rp;
    if (size > 4096 || !(s = fuzz_cstr(data, size))) return 0;

    rp = kd_parse_time(NULL, s, &p);
    ra = kd__time_parse_spec(s, NOW_A, &a);
    rb = kd__time_parse_spec(s, NOW_B, &b);
    rr = kd__time_parse_rfc3339(s, &r);
    FUZZ_ASSERT(ra == KD_OK || ra == KD_INVALID);
    FUZZ_ASSERT(rb == KD_OK || rb == KD_INVALID);
    FUZZ_ASSERT(rr == KD_OK || rr == KD_INVALID);
    /* Without a database kd_parse_time cannot resolve ids: it may only fail more. */
    FUZZ_ASSERT(rp == KD_OK || rp == KD_INVALID || rp == KD_NOTFOUND || rp == KD_AMBIGUOUS);
    if (rr == KD_OK) {
        FUZZ_ASSERT(r >= KD__TIME_MIN_US && r <= KD__TIME_MAX_US);
        /* RFC 3339 does not depend on now, nor on the entry point. */
        FUZZ_ASSERT(ra == KD_OK && rb == KD_OK && a == r && b == r);
        FUZZ_ASSERT(rp == KD_OK && p == r);
        round_trip(r);
    }
    if (s[0] == '@') FUZZ_ASSERT(ra == rb && (ra != KD_OK || a == b)); /* nor does Unix time */
    if (ra == KD_OK) {
        FUZZ_ASSERT(a >= KD__TIME_MIN_US && a <= KD__TIME_MAX_US);
        if (s[0] != '@' && rr != KD_OK) FUZZ_ASSERT(a <= NOW_A); /* "5m", "now": now - span */
        round_trip(a);
    }
    if (rb == KD_OK) {
        FUZZ_ASSERT(b >= KD__TIME_MIN_US && b <= KD__TIME_MAX_US);
        if (s[0] != '@' && rr != KD_OK) FUZZ_ASSERT(b <= NOW_B);
        round_trip(b);
    }
    /* The same span before either now. */
    if (ra == KD_OK && rb == KD_OK && s[0] != '@' && rr != KD_OK) FUZZ_ASSERT(NOW_A - a == NOW_B - b);
    free(s);
    return 0;
}
