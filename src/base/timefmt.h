/*
** timefmt.h — timestamps as text: RFC 3339 formatting and parsing, and the time
** specifications users type ("2026-01-01T12:00:00+05:30", "@1767225600.25", "5m", "now").
**
** Timestamps are int64 microseconds since 1970-01-01T00:00:00Z, POSIX style (no leap
** seconds: every day has 86400 s), proleptic Gregorian calendar, always UTC.
**
** These are pure functions: they never read the clock (the os layer owns it), never
** depend on locale or TZ, and never allocate. Callers that need "now" pass it in.
*/
#ifndef KD_TIMEFMT_H
#define KD_TIMEFMT_H

#include <stdint.h>

/* The representable range: 0000-01-01T00:00:00.000000Z .. 9999-12-31T23:59:59.999999Z.
** Every successful parse lands inside it, so formatting a parsed time and parsing the
** text again gives back the same value. */
#define KD__TIME_MIN_US (-62167219200000000LL)
#define KD__TIME_MAX_US (253402300799999999LL)

/* Writes `us` as RFC 3339 UTC with exactly six fraction digits and 'Z', e.g.
** "2026-01-01T00:00:00.000000Z": always 27 characters + NUL. Negative (pre-1970) times
** work; a value outside [KD__TIME_MIN_US, KD__TIME_MAX_US] is clamped to the nearest end
** (INT64_MIN prints as 0000-01-01T00:00:00.000000Z, INT64_MAX as
** 9999-12-31T23:59:59.999999Z), so the output is always valid, parseable RFC 3339. */
void kd__time_format(int64_t us, char out[32]);

/* Parses RFC 3339: YYYY-MM-DD('T'|'t'|' ')HH:MM:SS[.fraction]('Z'|'z'|+HH:MM|-HH:MM),
** or a date alone (YYYY-MM-DD = midnight UTC).
**   - any number of fraction digits; digits below a microsecond are dropped, which
**     rounds toward the past (1969-12-31T23:59:59.9999999Z is -1 us);
**   - seconds may be 60 (a leap second): it means the last microsecond of that minute,
**     HH:MM:59.999999, whatever fraction follows — POSIX time has no slot for it, and
**     this keeps the order "…:59.x <= …:60 < next minute";
**   - offsets up to ±23:59; "-00:00" is UTC;
**   - the resulting instant must lie in the representable range above.
** Returns KD_OK with *us set, or KD_INVALID with a kd__err message that quotes the
** input and says what is wrong (*us untouched). */
int kd__time_parse_rfc3339(const char *s, int64_t *us);

/* Parses a time specification, relative to now_us where that matters:
**   - RFC 3339 as accepted by kd__time_parse_rfc3339;
**   - "@SECONDS[.fraction]": Unix time, optionally negative ("@-5"); the fraction may
**     have any number of digits and is rounded toward the past to a microsecond
**     ("@-0.0000001" is -1 us), so "version time <= T" selects exactly what was asked;
**   - "<N><unit>": that long before now_us; N is a non-negative decimal integer (no sign,
**     no fraction: write "90m", not "1.5h"), unit is one of s m h d w (lowercase:
**     seconds, minutes, hours, days of 86400 s, weeks of 7 days);
**   - "now" (any case): now_us.
** No surrounding whitespace is accepted. Version ids are not handled here (the db layer
** recognises them first). Numbers too large for the range give KD_INVALID, never
** overflow. Returns KD_OK with *us set, or KD_INVALID with a kd__err message. */
int kd__time_parse_spec(const char *s, int64_t now_us, int64_t *us);

#endif /* KD_TIMEFMT_H */
