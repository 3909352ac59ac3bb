/*
** test_time.c — RFC 3339 formatting/parsing and time specifications (src/base/timefmt.c).
** Exact values throughout; glibc's gmtime_r (UTC only, no TZ involved) serves as an
** independent oracle for the calendar arithmetic.
*/
#include <stdint.h>
#include <time.h>

#include "base/base.h"
#include "base/timefmt.h"
#include "t.h"

#define S(x) ((int64_t)(x) * 1000000LL) /* seconds -> microseconds */
#define NOW S(1767225600)                /* 2026-01-01T00:00:00Z, the fixed "now" */

static uint64_t rng_state = 42;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *fmt(int64_t us) {
    static char out[32];
    memset(out, 'X', sizeof out);
    kd__time_format(us, out);
    return out;
}

/* Parses s as a spec with the fixed now; returns the value, or INT64_MIN + 7 on error. */
#define FAILED (INT64_MIN + 7)
static int64_t spec(const char *s) {
    int64_t us = FAILED;
    if (kd__time_parse_spec(s, NOW, &us) != KD_OK) return FAILED;
    return us;
}
static int64_t rfc(const char *s) {
    int64_t us = FAILED;
    if (kd__time_parse_rfc3339(s, &us) != KD_OK) return FAILED;
    return us;
}

/* s must be refused by the given parser with KD_INVALID, leave *us alone, and produce
** a message that quotes the input and contains `why`. */
static int rejected(int as_spec, const char *s, const char *why) {
    int64_t us = 12345;
    kd__err_clear();
    int rc = as_spec ? kd__time_parse_spec(s, NOW, &us) : kd__time_parse_rfc3339(s, &us);
    const char *msg = kd__errmsg_get();
    char quoted[128];
    snprintf(quoted, sizeof quoted, "invalid time \"%s\"", s ? s : "");
    int ok = rc == KD_INVALID && us == 12345 && strstr(msg, why) != NULL &&
             (!s || strlen(s) > 60 || strchr(s, '"') || strpbrk(s, "\t\n") ||
              strstr(msg, quoted) == msg);
    if (!ok) fprintf(stderr, "  input \"%s\": rc %d, message: %s\n", s ? s : "(null)", rc, msg);
    return ok;
}
#define REJECT(s, why) CHECK(rejected(0, s, why) && rejected(1, s, why))
#define REJECT_SPEC(s, why) CHECK(rejected(1, s, why))

/* ---- formatting ------------------------------------------------------------------- */

TEST(format_known_values) {
    CHECK_EQ_STR(fmt(0), "1970-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(1), "1970-01-01T00:00:00.000001Z");
    CHECK_EQ_STR(fmt(S(1767225600)), "2026-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(S(1767225600) + 123456), "2026-01-01T00:00:00.123456Z");
    CHECK_EQ_STR(fmt(S(1709164800)), "2024-02-29T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(S(951782400)), "2000-02-29T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(S(1483228799) + 999999), "2016-12-31T23:59:59.999999Z");
    CHECK_EQ_STR(fmt(S(4107542400)), "2100-03-01T00:00:00.000000Z"); /* 2100 has no Feb 29 */
    CHECK_EQ_STR(fmt(S(4107542400) - 1), "2100-02-28T23:59:59.999999Z");
    CHECK(strlen(fmt(0)) == 27);
}

TEST(format_negative) {
    CHECK_EQ_STR(fmt(-1), "1969-12-31T23:59:59.999999Z");
    CHECK_EQ_STR(fmt(-S(1)), "1969-12-31T23:59:59.000000Z");
    CHECK_EQ_STR(fmt(-S(1) - 1), "1969-12-31T23:59:58.999999Z");
    CHECK_EQ_STR(fmt(-500000), "1969-12-31T23:59:59.500000Z");
    CHECK_EQ_STR(fmt(-S(86400)), "1969-12-31T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(-S(2208988800)), "1900-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(-S(62135596800)), "0001-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(-S(62135596800) - 1), "0000-12-31T23:59:59.999999Z");
    CHECK_EQ_STR(fmt(-S(62162121600)), "0000-02-29T00:00:00.000000Z"); /* year 0 is leap */
}

TEST(format_range_ends_and_clamping) {
    CHECK_EQ_STR(fmt(KD__TIME_MIN_US), "0000-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(KD__TIME_MAX_US), "9999-12-31T23:59:59.999999Z");
    CHECK_EQ_STR(fmt(KD__TIME_MIN_US - 1), "0000-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(KD__TIME_MAX_US + 1), "9999-12-31T23:59:59.999999Z");
    CHECK_EQ_STR(fmt(INT64_MIN), "0000-01-01T00:00:00.000000Z");
    CHECK_EQ_STR(fmt(INT64_MAX), "9999-12-31T23:59:59.999999Z");
    CHECK_EQ_INT(KD__TIME_MAX_US, S(253402300800) - 1);
    CHECK_EQ_INT(KD__TIME_MIN_US, -S(62167219200));
}

TEST(public_kd_format_time) {
    char a[32], b[32];
    for (int i = 0; i < 1000; i++) {
        int64_t us = (int64_t)rnd();
        kd_format_time(us, a);
        kd__time_format(us, b);
        CHECK_EQ_STR(a, b);
    }
    kd_format_time(S(1767225600), a);
    CHECK_EQ_STR(a, "2026-01-01T00:00:00.000000Z");
}

/* Against glibc's gmtime_r over 0001..9999 (and before 1970): same fields. */
TEST(format_matches_gmtime) {
    const int64_t lo = -S(62135596800), hi = KD__TIME_MAX_US;
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t us = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        int64_t secs = us / 1000000 - (us % 1000000 < 0);
        time_t t = (time_t)secs;
        struct tm tm;
        if (!gmtime_r(&t, &tm)) { bad++; continue; }
        char want[128];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long long)(us - secs * 1000000));
        if (strcmp(fmt(us), want) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "  %lld: got %s want %s\n", (long long)us, fmt(us), want);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- RFC 3339 parsing --------------------------------------------------------------- */

TEST(parse_known_values) {
    CHECK_EQ_INT(rfc("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00Z"), S(1767225600));
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.000000Z"), S(1767225600));
    CHECK_EQ_INT(rfc("2026-01-01t00:00:00z"), S(1767225600));
    CHECK_EQ_INT(rfc("2026-01-01 00:00:00Z"), S(1767225600));
    CHECK_EQ_INT(rfc("2026-01-01T12:34:56Z"), S(1767225600 + 12 * 3600 + 34 * 60 + 56));
    CHECK_EQ_INT(rfc("2026-01-01"), S(1767225600));
    CHECK_EQ_INT(rfc("1970-01-01"), 0);
    CHECK_EQ_INT(rfc("2024-02-29T00:00:00Z"), S(1709164800));
    CHECK_EQ_INT(rfc("2024-02-29"), S(1709164800));
    CHECK_EQ_INT(rfc("2000-02-29T00:00:00Z"), S(951782400));
    CHECK_EQ_INT(rfc("1969-12-31T23:59:59Z"), -S(1));
    CHECK_EQ_INT(rfc("1900-01-01T00:00:00Z"), -S(2208988800));
    CHECK_EQ_INT(rfc("0000-01-01T00:00:00Z"), KD__TIME_MIN_US);
    CHECK_EQ_INT(rfc("0000-02-29"), -S(62162121600));
    CHECK_EQ_INT(rfc("9999-12-31T23:59:59.999999Z"), KD__TIME_MAX_US);
    CHECK_EQ_INT(rfc("9999-12-31T23:59:59.999999999Z"), KD__TIME_MAX_US);
}

TEST(parse_offsets) {
    int64_t z = S(1767225600);
    CHECK_EQ_INT(rfc("2026-01-01T05:30:00+05:30"), z);
    CHECK_EQ_INT(rfc("2025-12-31T16:00:00-08:00"), z);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00+00:00"), z);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00-00:00"), z);
    CHECK_EQ_INT(rfc("2026-01-01T23:59:00+23:59"), z);
    CHECK_EQ_INT(rfc("2025-12-31T00:01:00-23:59"), z);
    CHECK_EQ_INT(rfc("2026-01-01T05:30:00.250+05:30"), z + 250000);
    /* offsets move across day, month, year and leap-day boundaries */
    CHECK_EQ_INT(rfc("2024-03-01T01:00:00+02:00"), rfc("2024-02-29T23:00:00Z"));
    CHECK_EQ_INT(rfc("1970-01-01T00:00:00+00:01"), -S(60));
}

TEST(parse_fraction_truncates_toward_past) {
    int64_t z = S(1767225600);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.1Z"), z + 100000);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.12Z"), z + 120000);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.000001Z"), z + 1);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.123456789Z"), z + 123456);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.999999999Z"), z + 999999);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.0000009Z"), z);
    CHECK_EQ_INT(rfc("2026-01-01T00:00:00.12345678901234567890123456789Z"), z + 123456);
    /* before 1970 dropping digits still rounds toward the past */
    CHECK_EQ_INT(rfc("1969-12-31T23:59:59.9999999Z"), -1);
    CHECK_EQ_INT(rfc("1969-12-31T23:59:59.999999Z"), -1);
    CHECK_EQ_INT(rfc("1969-12-31T23:59:59.5Z"), -500000);
    CHECK_EQ_INT(rfc("1969-12-31T23:59:59.0000001Z"), -S(1));
    /* the fraction is truncated before the offset is applied */
    CHECK_EQ_INT(rfc("1970-01-01T05:29:59.9999999+05:30"), -1);
}

/* :60 is the last microsecond of its minute (see timefmt.h). */
TEST(parse_leap_second) {
    int64_t last = S(1483228799) + 999999; /* 2016-12-31T23:59:59.999999Z */
    CHECK_EQ_INT(rfc("2016-12-31T23:59:60Z"), last);
    CHECK_EQ_INT(rfc("2016-12-31T23:59:60.5Z"), last);
    CHECK_EQ_INT(rfc("2017-01-01T05:29:60+05:30"), last);
    CHECK(rfc("2016-12-31T23:59:59.999998Z") < rfc("2016-12-31T23:59:60Z"));
    CHECK(rfc("2016-12-31T23:59:60Z") < rfc("2017-01-01T00:00:00Z"));
    CHECK_EQ_STR(fmt(rfc("2016-12-31T23:59:60Z")), "2016-12-31T23:59:59.999999Z");
}

TEST(parse_rejections) {
    const char *generic = "expected RFC 3339 like 2026-01-01T12:00:00Z";
    REJECT("", generic);
    CHECK(rejected(0, "2026", generic));
    REJECT_SPEC("2026", "needs a unit");
    REJECT("2026-1-01", generic);
    REJECT("26-01-01", generic);
    REJECT("2026/01/01", generic);
    REJECT("20260101T000000Z", generic);
    REJECT(" 2026-01-01", generic);
    REJECT("yesterday", generic);
    /* fullwidth digits */
    REJECT("\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96-01-01", generic);
    /* calendar */
    REJECT("2026-00-10", "month 00 is out of range");
    REJECT("2026-13-01", "month 13 is out of range");
    REJECT("2026-01-00", "day 00 is out of range for 2026-01");
    REJECT("2026-01-32", "day 32 is out of range for 2026-01 (01-31)");
    REJECT("2026-04-31", "day 31 is out of range for 2026-04 (01-30)");
    REJECT("2023-02-29", "day 29 is out of range for 2023-02 (01-28)");
    REJECT("2100-02-29", "day 29 is out of range for 2100-02");
    REJECT("1900-02-29T00:00:00Z", "day 29 is out of range for 1900-02");
    REJECT("2026-02-30T00:00:00Z", "day 30 is out of range");
    /* separator and clock */
    REJECT("2026-01-01x12:00:00Z", "expected 'T' or a space between date and time");
    REJECT("2026-01-01 ", "expected the time as HH:MM:SS");
    REJECT("2026-01-01  12:00:00Z", "expected the time as HH:MM:SS");
    REJECT("2026-01-01T", "expected the time as HH:MM:SS");
    REJECT("2026-01-01T1:00:00Z", "expected the time as HH:MM:SS");
    REJECT("2026-01-01T12:00Z", "seconds missing");
    REJECT("2026-01-01T12:00", "seconds missing");
    REJECT("2026-01-01T12:00:0Z", "seconds missing");
    REJECT("2026-01-01T24:00:00Z", "hour 24 is out of range");
    REJECT("2026-01-01T12:60:00Z", "minute 60 is out of range");
    REJECT("2026-01-01T12:00:61Z", "second 61 is out of range");
    REJECT("2026-01-01T12:00:00.Z", "expected digits after the decimal point");
    REJECT("2026-01-01T12:00:00,5Z", "expected Z or an offset");
    /* time zone */
    REJECT("2026-01-01T12:00:00", "time zone missing");
    REJECT("2026-01-01T12:00:00.5", "time zone missing");
    REJECT("2026-01-01T12:00:00 Z", "expected Z or an offset");
    REJECT("2026-01-01T12:00:00UTC", "expected Z or an offset");
    REJECT("2026-01-01T12:00:00+0530", "offset must be +HH:MM or -HH:MM");
    REJECT("2026-01-01T12:00:00+05", "offset must be +HH:MM or -HH:MM");
    REJECT("2026-01-01T12:00:00+5:30", "offset must be +HH:MM or -HH:MM");
    REJECT("2026-01-01T12:00:00+24:00", "offset +24:00 is out of range");
    REJECT("2026-01-01T12:00:00-05:60", "offset -05:60 is out of range");
    REJECT("2026-01-01T12:00:00Zjunk", "unexpected text after the time zone");
    REJECT("2026-01-01T12:00:00+01:00 ", "unexpected text after the time zone");
    REJECT("2026-01-01T12:00:00ZZ", "unexpected text after the time zone");
    /* range */
    REJECT("0000-01-01T00:00:00+00:01", "outside the supported range");
    REJECT("0000-01-01T00:00:00.999999+00:01", "outside the supported range");
    REJECT("9999-12-31T23:59:59-00:01", "outside the supported range");
}

/* A leap second at the very end of 9999 is still in range: its last microsecond. */
TEST(parse_leap_second_at_range_end) {
    CHECK_EQ_INT(rfc("9999-12-31T23:59:60Z"), KD__TIME_MAX_US);
}

TEST(error_message_format) {
    int64_t us;
    CHECK_EQ_INT(kd__time_parse_spec("bogus", NOW, &us), KD_INVALID);
    CHECK_EQ_STR(kd_errmsg(NULL), "invalid time \"bogus\": expected RFC 3339 like "
                                  "2026-01-01T12:00:00Z, @UNIX, or 5m/2h/3d");
    CHECK_EQ_INT(kd__time_parse_rfc3339("bogus", &us), KD_INVALID);
    CHECK_EQ_STR(kd_errmsg(NULL), "invalid time \"bogus\": expected RFC 3339 like "
                                  "2026-01-01T12:00:00Z");
    CHECK_EQ_INT(kd__time_parse_rfc3339("2026-02-30", &us), KD_INVALID);
    CHECK_EQ_STR(kd_errmsg(NULL), "invalid time \"2026-02-30\": day 30 is out of range for "
                                  "2026-02 (01-28)");
    /* control bytes and quotes are escaped, long input is cut */
    CHECK_EQ_INT(kd__time_parse_spec("a\"b\\c\n", NOW, &us), KD_INVALID);
    CHECK(strstr(kd_errmsg(NULL), "invalid time \"a\\\"b\\\\c\\x0a\":") == kd_errmsg(NULL));
    char big[4096];
    memset(big, '7', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_EQ_INT(kd__time_parse_spec(big, NOW, &us), KD_INVALID);
    CHECK(strlen(kd_errmsg(NULL)) < 300);
    CHECK(strstr(kd_errmsg(NULL), "7777...\"") != NULL);
    /* a cut never splits a UTF-8 sequence: 63 ASCII bytes then a 2-byte character */
    memset(big, 'x', 63);
    memcpy(big + 63, "\xc3\xa9tail", 7);
    CHECK_EQ_INT(kd__time_parse_spec(big, NOW, &us), KD_INVALID);
    CHECK(strstr(kd_errmsg(NULL), "xxx...\"") != NULL);
    /* NULL input */
    CHECK_EQ_INT(kd__time_parse_spec(NULL, NOW, &us), KD_INVALID);
    CHECK(strstr(kd_errmsg(NULL), "none given") != NULL);
    CHECK_EQ_INT(kd__time_parse_rfc3339(NULL, &us), KD_INVALID);
}

/* ---- round trips ------------------------------------------------------------------- */

TEST(round_trip_random) {
    const int64_t lo = -S(62135596800), hi = KD__TIME_MAX_US; /* 0001-01-01 .. 9999 */
    int bad = 0;
    char text[32];
    for (int i = 0; i < 100000; i++) {
        int64_t us = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        kd__time_format(us, text);
        int64_t back = FAILED;
        int rc = kd__time_parse_rfc3339(text, &back);
        int64_t back2 = spec(text);
        if (rc != KD_OK || back != us || back2 != us) {
            if (bad++ < 5)
                fprintf(stderr, "  %lld -> %s -> %lld\n", (long long)us, text, (long long)back);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(round_trip_near_epoch_and_negative) {
    int bad = 0;
    char text[32];
    for (int64_t us = -3000000; us <= 3000000; us += 997) {
        kd__time_format(us, text);
        if (rfc(text) != us) bad++;
    }
    for (int i = 0; i < 20000; i++) { /* pre-1970, with offsets: same instant back */
        int64_t us = -(int64_t)(rnd() % (uint64_t)S(62135596800));
        kd__time_format(us, text);
        if (rfc(text) != us) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_STR(fmt(rfc("1969-07-20T20:17:40Z")), "1969-07-20T20:17:40.000000Z");
    CHECK_EQ_INT(rfc("1969-07-20T20:17:40Z"), -S(14182940));
}

/* Every day of four whole centuries (one 400-year cycle) parses to consecutive days. */
TEST(every_day_of_a_cycle) {
    int bad = 0;
    int64_t expect = rfc("1600-01-01");
    char text[32];
    for (int d = 0; d < 146097; d++, expect += S(86400)) {
        kd__time_format(expect, text);
        text[10] = 0; /* date alone */
        if (rfc(text) != expect) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(expect, rfc("2000-01-01"));
}

/* ---- specs ------------------------------------------------------------------------- */

TEST(spec_now_and_rfc) {
    CHECK_EQ_INT(spec("now"), NOW);
    CHECK_EQ_INT(spec("NOW"), NOW);
    CHECK_EQ_INT(spec("Now"), NOW);
    CHECK_EQ_INT(spec("2026-01-01T05:30:00+05:30"), S(1767225600));
    CHECK_EQ_INT(spec("2024-02-29"), S(1709164800));
    int64_t us;
    CHECK_EQ_INT(kd__time_parse_spec("now", -S(1), &us), KD_OK);
    CHECK_EQ_INT(us, -S(1));
    REJECT_SPEC("nowadays", "expected RFC 3339");
    REJECT_SPEC("no", "expected RFC 3339");
    REJECT_SPEC("now ", "expected RFC 3339");
}

TEST(spec_relative) {
    CHECK_EQ_INT(spec("0s"), NOW);
    CHECK_EQ_INT(spec("30s"), NOW - S(30));
    CHECK_EQ_INT(spec("5m"), NOW - S(300));
    CHECK_EQ_INT(spec("2h"), NOW - S(7200));
    CHECK_EQ_INT(spec("3d"), NOW - S(3 * 86400));
    CHECK_EQ_INT(spec("1w"), NOW - S(7 * 86400));
    CHECK_EQ_INT(spec("90m"), NOW - S(5400));
    CHECK_EQ_INT(spec("007m"), NOW - S(420));
    CHECK_EQ_INT(spec("2026w"), NOW - S(2026LL * 7 * 86400));
    CHECK_EQ_INT(spec("2026d"), NOW - S(2026LL * 86400));
    /* the whole range back to year 0 is reachable, one microsecond more is not */
    CHECK_EQ_INT(spec("63934444800s"), KD__TIME_MIN_US); /* 1767225600 + 62167219200 */
    REJECT_SPEC("63934444801s", "outside the supported range");
    REJECT_SPEC("1000000w", "outside the supported range");
    /* overflow never happens, it is refused */
    REJECT_SPEC("9223372036854775807s", "too large");
    REJECT_SPEC("9223372036854775807w", "too large");
    REJECT_SPEC("9223372036854775808s", "too large");
    REJECT_SPEC("99999999999999999999999999999999999999d", "too large");
    REJECT_SPEC("9223372036854w", "too large");
    int64_t us = 5;
    CHECK_EQ_INT(kd__time_parse_spec("1s", INT64_MIN + 5, &us), KD_INVALID);
    CHECK_EQ_INT(kd__time_parse_spec("15250w", INT64_MIN / 2, &us), KD_INVALID);
    CHECK_EQ_INT(kd__time_parse_spec("0s", INT64_MAX, &us), KD_INVALID);
    CHECK_EQ_INT(us, 5);
    /* near misses say how to write it */
    REJECT_SPEC("1.5h", "whole numbers");
    REJECT_SPEC("0.5d", "whole numbers");
    REJECT_SPEC("5", "needs a unit");
    REJECT_SPEC("300", "needs a unit");
    REJECT_SPEC("5y", "unknown unit 'y'");
    REJECT_SPEC("5M", "unknown unit 'M'");
    REJECT_SPEC("5H", "unknown unit 'H'");
    REJECT_SPEC("-5m", "take no sign");
    REJECT_SPEC("+5m", "take no sign");
    REJECT_SPEC("5 m", "expected RFC 3339");
    REJECT_SPEC("5min", "expected RFC 3339");
    REJECT_SPEC("1h30m", "expected RFC 3339");
    REJECT_SPEC(" 5m", "expected RFC 3339");
    REJECT_SPEC("5m ", "expected RFC 3339");
    REJECT_SPEC("m", "expected RFC 3339");
}

TEST(spec_unix) {
    CHECK_EQ_INT(spec("@0"), 0);
    CHECK_EQ_INT(spec("@-0"), 0);
    CHECK_EQ_INT(spec("@1767225600"), S(1767225600));
    CHECK_EQ_INT(spec("@1767225600.25"), S(1767225600) + 250000);
    CHECK_EQ_INT(spec("@1767225600.123456"), S(1767225600) + 123456);
    CHECK_EQ_INT(spec("@1767225600.1234567"), S(1767225600) + 123456);
    CHECK_EQ_INT(spec("@1767225600.000000999"), S(1767225600));
    CHECK_EQ_INT(spec("@0001767225600"), S(1767225600));
    CHECK_EQ_INT(spec("@-5"), -S(5));
    CHECK_EQ_INT(spec("@-5.5"), -5500000);
    CHECK_EQ_INT(spec("@-5.000001"), -5000001);
    /* negative fractions round toward the past too */
    CHECK_EQ_INT(spec("@-0.0000001"), -1);
    CHECK_EQ_INT(spec("@-5.0000001"), -5000001);
    CHECK_EQ_INT(spec("@-5.0000000"), -S(5));
    CHECK_EQ_INT(spec("@1.0000009"), S(1));
    /* agrees with the RFC 3339 form */
    CHECK_EQ_INT(spec("@-14182940"), rfc("1969-07-20T20:17:40Z"));
    /* range ends */
    CHECK_EQ_INT(spec("@253402300799.999999"), KD__TIME_MAX_US);
    CHECK_EQ_INT(spec("@253402300799.9999999"), KD__TIME_MAX_US);
    CHECK_EQ_INT(spec("@-62167219200"), KD__TIME_MIN_US);
    REJECT_SPEC("@253402300800", "outside the supported range");
    REJECT_SPEC("@-62167219200.000001", "outside the supported range");
    REJECT_SPEC("@-62167219200.0000001", "outside the supported range");
    REJECT_SPEC("@9223372036854775807", "outside the supported range");
    REJECT_SPEC("@99999999999999999999999999999999999999.5", "outside the supported range");
    REJECT_SPEC("@-99999999999999999999999999999999999999", "outside the supported range");
    /* malformed */
    REJECT_SPEC("@", "expected Unix seconds after '@'");
    REJECT_SPEC("@-", "expected Unix seconds after '@'");
    REJECT_SPEC("@x", "expected Unix seconds after '@'");
    REJECT_SPEC("@+5", "expected Unix seconds after '@'");
    REJECT_SPEC("@ 5", "expected Unix seconds after '@'");
    REJECT_SPEC("@.5", "expected Unix seconds after '@'");
    REJECT_SPEC("@--5", "expected Unix seconds after '@'");
    REJECT_SPEC("@5.", "expected digits after the decimal point");
    REJECT_SPEC("@5.x", "expected digits after the decimal point");
    REJECT_SPEC("@1e9", "unexpected text after the Unix time");
    REJECT_SPEC("@5.5.5", "unexpected text after the Unix time");
    REJECT_SPEC("@5 ", "unexpected text after the Unix time");
    REJECT_SPEC("@5s", "unexpected text after the Unix time");
}

int main(void) {
    RUN(format_known_values);
    RUN(format_negative);
    RUN(format_range_ends_and_clamping);
    RUN(public_kd_format_time);
    RUN(format_matches_gmtime);
    RUN(parse_known_values);
    RUN(parse_offsets);
    RUN(parse_fraction_truncates_toward_past);
    RUN(parse_leap_second);
    RUN(parse_rejections);
    RUN(parse_leap_second_at_range_end);
    RUN(error_message_format);
    RUN(round_trip_random);
    RUN(round_trip_near_epoch_and_negative);
    RUN(every_day_of_a_cycle);
    RUN(spec_now_and_rfc);
    RUN(spec_relative);
    RUN(spec_unix);
    return t_done();
}
