/*
** timefmt.c — RFC 3339 formatting and parsing, and the time specifications users type
** ("@1767225600.25", "5m", "now"). The contract of each function is in timefmt.h.
**
** May call: base (kd__err) and the C library's string formatting. Nothing here reads the
** clock (the os layer owns it; callers pass `now`), and nothing uses timegm, mktime,
** strptime, tolower or strcasecmp, whose results depend on TZ or the locale: the
** calendar arithmetic is done here, on the proleptic Gregorian calendar in UTC, with
** the days-from-civil / civil-from-days algorithms published by Howard Hinnant.
**
** Invariants:
**   - A timestamp is int64 microseconds since 1970-01-01T00:00:00Z, POSIX style: no
**     leap seconds, every day has 86400 s.
**   - Every successful parse returns a value in [KD__TIME_MIN_US, KD__TIME_MAX_US]
**     (years 0000..9999), the range kd__time_format prints faithfully.
**   - Sub-microsecond input is rounded toward the past (floor). A version at integer
**     microsecond t satisfies "t <= T" exactly when "t <= floor(T)", so an as-of query
**     sees precisely what the user asked for, before and after 1970 alike.
**   - All arithmetic on user-supplied numbers is bounded before it is done: absurd
**     inputs give KD_INVALID, never signed overflow.
*/
#include "base/timefmt.h"

#include <stdio.h>

#include "base/base.h"

#define US_PER_SEC 1000000LL
#define SECS_PER_DAY 86400LL

#define HINT_RFC "expected RFC 3339 like 2026-01-01T12:00:00Z"
#define HINT_SPEC "expected RFC 3339 like 2026-01-01T12:00:00Z, @UNIX, or 5m/2h/3d"
#define RANGE_TEXT "outside the supported range 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z"

/* ---- calendar arithmetic ---------------------------------------------------------- */

/* Division rounding toward negative infinity (b > 0), so that pre-1970 times split
** into a day before the epoch plus a non-negative time of day. */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if (a % b < 0) q--;
    return q;
}

static int is_leap(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

static int days_in_month(int64_t y, int m) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of the date y-m-d. The year is shifted to start in March so
** that the leap day falls at the end of it; 400-year eras have exactly 146097 days. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                     /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                          /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;     /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                   /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                        /* [0, 11] */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ---- formatting ------------------------------------------------------------------- */

static char *put_digits(char *p, int64_t v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

void kd__time_format(int64_t us, char out[32]) {
    /* Clamping keeps the output valid RFC 3339 of fixed width: the ends of the range
    ** read as "the beginning / end of time", which is what INT64_MIN/MAX sentinels mean. */
    if (us < KD__TIME_MIN_US) us = KD__TIME_MIN_US;
    if (us > KD__TIME_MAX_US) us = KD__TIME_MAX_US;
    int64_t secs = floor_div(us, US_PER_SEC);
    int64_t frac = us - secs * US_PER_SEC;
    int64_t days = floor_div(secs, SECS_PER_DAY);
    int64_t sod = secs - days * SECS_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);

    char *p = out;
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, frac, 6);
    *p++ = 'Z';
    *p = 0;
}

void kd_format_time(int64_t ts, char out[32]) { kd__time_format(ts, out); }

/* ---- errors ----------------------------------------------------------------------- */

/* Copies the start of the user's input into out for an error message: at most 64
** bytes (not cutting a UTF-8 sequence), with quotes, backslashes and control bytes
** escaped so the message stays one readable line. */
static void quote_input(const char *s, char out[300]) {
    size_t n = strlen(s), max = 64;
    int cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    if (cut) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = 0;
}

/* Sets the message `invalid time "<input>": <why>` and returns KD_INVALID. */
__attribute__((format(printf, 2, 3)))
static int time_error(const char *input, const char *fmt, ...) {
    char why[256], shown[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    quote_input(input, shown);
    return kd__err(KD_INVALID, "invalid time \"%s\": %s", shown, why);
}

static int check_range(const char *input, int64_t t, int64_t *us) {
    if (t < KD__TIME_MIN_US || t > KD__TIME_MAX_US) return time_error(input, "%s", RANGE_TEXT);
    *us = t;
    return KD_OK;
}

/* ---- RFC 3339 --------------------------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads exactly n digits at p into *v. Returns 0, having read no further than the first
** non-digit (so never past the NUL), when any of them is not a digit. */
static int read_digits(const char *p, int n, int *v) {
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i])) return 0;
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return 1;
}

/* Reads the optional ".digits" at *pp: the first six digits as microseconds, the rest
** dropped (rounding toward the past, as fractions only ever add to the seconds).
** *more is set when a dropped digit was not zero. Returns 0 on a '.' without digits. */
static int read_fraction(const char **pp, int *frac, int *more) {
    const char *p = *pp;
    int f = 0, n = 0;
    *more = 0;
    if (*p != '.') {
        *frac = 0;
        return 1;
    }
    p++;
    if (!is_digit(*p)) return 0;
    for (; is_digit(*p); p++, n++) {
        if (n < 6) f = f * 10 + (*p - '0');
        else if (*p != '0') *more = 1;
    }
    for (; n < 6; n++) f *= 10;
    *frac = f;
    *pp = p;
    return 1;
}

/* The RFC 3339 parser proper; `hint` names the forms the caller accepts. */
static int parse_rfc3339(const char *s, const char *hint, int64_t *us) {
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, more, off = 0;
    const char *p = s;

    if (!read_digits(p, 4, &y) || p[4] != '-' || !read_digits(p + 5, 2, &mo) || p[7] != '-' ||
        !read_digits(p + 8, 2, &d))
        return time_error(s, "%s", hint);
    if (mo < 1 || mo > 12) return time_error(s, "month %02d is out of range (01-12)", mo);
    if (d < 1 || d > days_in_month(y, mo))
        return time_error(s, "day %02d is out of range for %04d-%02d (01-%02d)", d, y, mo,
                          days_in_month(y, mo));
    p += 10;

    if (*p) { /* a date alone is midnight UTC; otherwise a full time must follow */
        if (*p != 'T' && *p != 't' && *p != ' ')
            return time_error(s, "expected 'T' or a space between date and time; %s", hint);
        p++;
        if (!read_digits(p, 2, &h) || p[2] != ':' || !read_digits(p + 3, 2, &mi))
            return time_error(s, "expected the time as HH:MM:SS after the date; %s", hint);
        if (p[5] != ':' || !read_digits(p + 6, 2, &sec))
            return time_error(s, "seconds missing: the time must be HH:MM:SS; %s", hint);
        if (h > 23) return time_error(s, "hour %02d is out of range (00-23)", h);
        if (mi > 59) return time_error(s, "minute %02d is out of range (00-59)", mi);
        if (sec > 60) return time_error(s, "second %02d is out of range (00-60)", sec);
        p += 8;
        if (!read_fraction(&p, &frac, &more))
            return time_error(s, "expected digits after the decimal point; %s", hint);

        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (!read_digits(p + 1, 2, &oh) || p[3] != ':' || !read_digits(p + 4, 2, &om))
                return time_error(s, "the time zone offset must be +HH:MM or -HH:MM");
            if (oh > 23 || om > 59)
                return time_error(s, "time zone offset %.6s is out of range (up to +/-23:59)", p);
            off = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
            p += 6;
        } else if (*p == 0) {
            return time_error(s, "time zone missing: add Z for UTC or an offset like +01:00");
        } else {
            return time_error(s, "expected Z or an offset like +01:00 after the time; %s", hint);
        }
        if (*p) return time_error(s, "unexpected text after the time zone; %s", hint);
    }

    /* POSIX time has no slot for a leap second: :60 becomes the last microsecond of
    ** its minute, which keeps it after every :59.x and before the next minute. */
    if (sec == 60) {
        sec = 59;
        frac = 999999;
    }
    /* |days| < 4e6, so the sums below stay far inside int64. */
    int64_t secs = days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60 + sec - off;
    return check_range(s, secs * US_PER_SEC + frac, us);
}

int kd__time_parse_rfc3339(const char *s, int64_t *us) {
    if (!s) return kd__err(KD_INVALID, "invalid time: none given; %s", HINT_RFC);
    return parse_rfc3339(s, HINT_RFC, us);
}

/* ---- time specifications ------------------------------------------------------------ */

static int64_t unit_us(char c) {
    switch (c) {
    case 's': return US_PER_SEC;
    case 'm': return 60 * US_PER_SEC;
    case 'h': return 3600 * US_PER_SEC;
    case 'd': return SECS_PER_DAY * US_PER_SEC;
    case 'w': return 7 * SECS_PER_DAY * US_PER_SEC;
    default: return 0;
    }
}

/* "@SECONDS[.fraction]", optionally negative. */
static int parse_unix(const char *s, int64_t *us) {
    /* Beyond 1e12 s (~31700 years) nothing can be in range; stopping there keeps
    ** secs * 1e6 far from overflow. */
    const int64_t limit = 1000000000000LL;
    const char *p = s + 1;
    int neg = 0, big = 0, frac, more;
    int64_t secs = 0;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!is_digit(*p))
        return time_error(s, "expected Unix seconds after '@', like @1767225600 or @-5.5");
    for (; is_digit(*p); p++) {
        if (big) continue;
        secs = secs * 10 + (*p - '0');
        if (secs > limit) big = 1;
    }
    if (!read_fraction(&p, &frac, &more))
        return time_error(s, "expected digits after the decimal point, like @1767225600.25");
    if (*p)
        return time_error(s, "unexpected text after the Unix time, expected @SECONDS[.FRACTION]");
    if (big) return time_error(s, "%s", RANGE_TEXT);

    int64_t t = secs * US_PER_SEC + frac;
    /* Rounding toward the past: for a negative time, dropped non-zero digits push the
    ** value one microsecond further back. */
    if (neg) t = -t - more;
    return check_range(s, t, us);
}

/* "<N><unit>" meaning N units before now; n is the number of digits. */
static int parse_relative(const char *s, size_t n, int64_t now_us, int64_t *us) {
    int64_t per = unit_us(s[n]), v = 0;
    for (size_t i = 0; i < n; i++) {
        int dig = s[i] - '0';
        if (v > (INT64_MAX - dig) / 10) return time_error(s, "duration is too large");
        v = v * 10 + dig;
    }
    if (v > INT64_MAX / per) return time_error(s, "duration is too large");
    int64_t delta = v * per;
    if (now_us < INT64_MIN + delta) return time_error(s, "duration is too large");
    return check_range(s, now_us - delta, us);
}

static int is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int is_now(const char *s) {
    static const char word[] = "now";
    for (int i = 0; i < 3; i++)
        if (s[i] != word[i] && s[i] != word[i] - 'a' + 'A') return 0;
    return s[3] == 0;
}

int kd__time_parse_spec(const char *s, int64_t now_us, int64_t *us) {
    if (!s) return kd__err(KD_INVALID, "invalid time: none given; %s", HINT_SPEC);
    if (!*s) return time_error(s, "empty; %s", HINT_SPEC);
    if (is_now(s)) return check_range(s, now_us, us);
    if (s[0] == '@') return parse_unix(s, us);

    size_t n = 0;
    while (is_digit(s[n])) n++;
    if (n > 0 && unit_us(s[n]) && s[n + 1] == 0) return parse_relative(s, n, now_us, us);

    /* Near misses of the relative form get a message that says how to write it. */
    if (n > 0 && s[n] == '.' && is_digit(s[n + 1])) {
        size_t k = n + 1;
        while (is_digit(s[k])) k++;
        if (is_ascii_alpha(s[k]) && s[k + 1] == 0)
            return time_error(s, "durations take whole numbers: use a smaller unit "
                                 "(90m, not 1.5h)");
    }
    if (n > 0 && s[n] == 0)
        return time_error(s, "a number needs a unit (30s, 5m, 2h, 3d, 1w), or a leading @ "
                             "for Unix seconds");
    if (n > 0 && is_ascii_alpha(s[n]) && s[n + 1] == 0)
        return time_error(s, "unknown unit '%c': use s, m, h, d or w (lowercase)", s[n]);
    if ((s[0] == '-' || s[0] == '+') && is_digit(s[1])) {
        size_t k = 1;
        while (is_digit(s[k])) k++;
        if (unit_us(s[k]) && s[k + 1] == 0)
            return time_error(s, "relative times count back from now and take no sign: "
                                 "write 5m for five minutes ago");
    }
    return parse_rfc3339(s, HINT_SPEC, us);
}
