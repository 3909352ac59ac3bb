/*
** linediff.h — a line diff of two texts for people (the coloured `kdelta diff` view).
**
** May call: base and the C library only.
*/
#ifndef KD_LINEDIFF_H
#define KD_LINEDIFF_H

#include "base/base.h"

/* Appends to out every line of a and b in order, each prefixed by "  " (in both), "- "
** (only in a) or "+ " (only in b) and ended by '\n' (a missing newline at the end of a text
** is not reported). Within a changed stretch removed lines come before added ones. The
** diff is a shortest edit script (Myers' O(ND) algorithm in linear space) as long as that
** is cheap; on very large, very different inputs the work is capped and the remaining
** differing stretches are shown as whole blocks removed and added, so time and memory stay
** bounded (memory O(lines of a + lines of b)). With color, removed lines are wrapped in
** "\x1b[31m" ... "\x1b[0m" (red) and added ones in "\x1b[32m" ... "\x1b[0m" (green), the
** newline after the reset. a or b may be NULL (= empty). Returns KD_OK or KD_NOMEM (then
** out->oom is set and out holds an unspecified prefix of the output). */
int kd__line_diff(const char *a, const char *b, kd_buf *out, int color);

#endif /* KD_LINEDIFF_H */
