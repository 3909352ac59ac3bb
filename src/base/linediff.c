/*
** linediff.c — line diff of two texts for humans (see linediff.h).
**
** May call: base (allocator, kd_buf) and the C library.
**
** How: both texts are split into lines, each distinct line gets a small integer id through
** a hash table (so comparing lines is comparing ints), then Myers' O(ND) algorithm in its
** linear-space form (find the "middle snake" of an optimal path, recurse on both halves)
** marks which lines of a were removed and which lines of b were added; a final walk prints
** both sequences in order.
**
** Invariants: the marks always describe a valid edit script (unmarked lines of a and b,
** in order, are equal); memory is O(N + M) lines. Work is bounded twice: a middle-snake
** search that passes D = max_cost (about 2 sqrt(N + M)) settles for the point pushed
** furthest so far (GNU diff's heuristic; near-minimal), and a global step budget, once
** spent, marks every remaining stretch as removed-then-added as a whole. Both still give a
** valid script. Only the smaller half of a split recurses, so the depth is O(log(N + M)).
*/
#include "base/linediff.h"

/* Snake and diagonal steps allowed for one diff before the remaining stretches fall back
** to blocks: about half a second on a 2020s CPU, whatever the input. */
#define LINEDIFF_BUDGET 500000000ull

typedef struct line {
    const char *p;
    size_t len;
} line;

typedef struct differ {
    const uint32_t *a, *b; /* line ids */
    char *del;             /* del[i]: line i of a was removed */
    char *add;             /* add[j]: line j of b was added */
    ptrdiff_t *vf, *vb;    /* furthest x per diagonal, forward and backward (n + m + 4) */
    ptrdiff_t max_cost;    /* D beyond which a middle snake settles for best_split */
    uint64_t budget;
} differ;

static size_t count_lines(const char *s, size_t len) {
    size_t n = 0;
    for (const char *p = s, *e = s + len; p < e; n++) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        p = nl ? nl + 1 : e;
    }
    return n;
}

static void split_lines(const char *s, size_t len, line *out) {
    size_t n = 0;
    for (const char *p = s, *e = s + len; p < e; n++) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        const char *end = nl ? nl : e;
        out[n].p = p;
        out[n].len = (size_t)(end - p);
        p = nl ? nl + 1 : e;
    }
}

static uint64_t hash_line(const line *l) { return kd__hash64(l->p, l->len); }

/* Gives every line of all[0..n) an id: the index of the first line equal to it. table has
** cap (a power of two > n) slots set to UINT32_MAX. */
static void intern(const line *all, size_t n, uint32_t *table, size_t cap, uint32_t *ids) {
    for (size_t i = 0; i < n; i++) {
        size_t slot = (size_t)hash_line(&all[i]) & (cap - 1);
        for (;;) {
            uint32_t t = table[slot];
            if (t == UINT32_MAX) {
                table[slot] = (uint32_t)i;
                ids[i] = (uint32_t)i;
                break;
            }
            if (all[t].len == all[i].len && memcmp(all[t].p, all[i].p, all[i].len) == 0) {
                ids[i] = t;
                break;
            }
            slot = (slot + 1) & (cap - 1);
        }
    }
}

static void mark_block(differ *d, size_t x0, size_t x1, size_t y0, size_t y1) {
    if (x1 > x0) memset(d->del + x0, 1, x1 - x0);
    if (y1 > y0) memset(d->add + y0, 1, y1 - y0);
}

/* Finds a point (*xm, *ym) on a shortest edit path from (x0, y0) to (x1, y1) that splits it
** into two strictly cheaper halves. Both ranges are non-empty and their first and last
** lines differ (so the distance is at least 2). Returns 0 when the budget runs out.
**
** Diagonal k = x - y (relative to (x0, y0)) runs from -m to n. The forward search covers
** diagonals [fmin, fmax] around 0, the backward one [bmin, bmax] around delta = n - m; both
** grow by one on each side per step while inside the grid and otherwise shrink by one to
** keep the parity of D, with sentinels just outside the range (-1 forward, a value beyond
** n backward) so the "which neighbour is further" test needs no special cases. */
/* The split used when an optimal one is too expensive to find (the idea of GNU diff's
** heuristic): the point that the forward or the backward search pushed furthest from its
** corner. Any point gives a valid edit script; this one keeps the diff near-minimal. */
static int best_split(const ptrdiff_t *vf, const ptrdiff_t *vb, ptrdiff_t fmin, ptrdiff_t fmax,
                      ptrdiff_t bmin, ptrdiff_t bmax, ptrdiff_t n, ptrdiff_t m, size_t x0,
                      size_t y0, size_t *xm, size_t *ym) {
    ptrdiff_t fbest = -1, fx = 0, bbest = -1, bx = 0, fk = 0, bk = 0;
    for (ptrdiff_t k = fmin; k <= fmax; k++) {
        ptrdiff_t x = KD_MIN(vf[k], n), y = x - k;
        if (y < 0 || y > m || vf[k] < 0) continue;
        if (x + y > fbest) { fbest = x + y; fx = x; fk = k; }
    }
    for (ptrdiff_t k = bmin; k <= bmax; k++) {
        ptrdiff_t x = KD_MAX(vb[k], 0), y = x - k;
        if (y < 0 || y > m || vb[k] > n) continue;
        if (n + m - (x + y) > bbest) { bbest = n + m - (x + y); bx = x; bk = k; }
    }
    if (fbest < 0 && bbest < 0) return 0;
    if (fbest >= bbest) {
        *xm = x0 + (size_t)fx;
        *ym = y0 + (size_t)(fx - fk);
    } else {
        *xm = x0 + (size_t)bx;
        *ym = y0 + (size_t)(bx - bk);
    }
    return 1;
}

static int middle_snake(differ *d, size_t x0, size_t x1, size_t y0, size_t y1, size_t *xm, size_t *ym) {
    const uint32_t *a = d->a + x0, *b = d->b + y0;
    ptrdiff_t n = (ptrdiff_t)(x1 - x0), m = (ptrdiff_t)(y1 - y0), delta = n - m;
    ptrdiff_t *vf = d->vf + m + 1, *vb = d->vb + m + 1; /* valid for k in [-m - 1, n + 1] */
    ptrdiff_t fmin = 0, fmax = 0, bmin = delta, bmax = delta;
    const ptrdiff_t far = n + 1; /* backward sentinel */
    int odd = (delta & 1) != 0;
    vf[0] = 0;
    vb[delta] = n;
    /* D = 0: slide along the diagonals from both corners */
    {
        ptrdiff_t x = 0;
        while (x < n && x < m && a[x] == b[x]) x++;
        vf[0] = x;
        x = n;
        while (x > 0 && x - delta > 0 && a[x - 1] == b[x - delta - 1]) x--;
        vb[delta] = x;
    }
    for (ptrdiff_t D = 1; D <= n + m; D++) {
        if (D > d->max_cost) return best_split(vf, vb, fmin, fmax, bmin, bmax, n, m, x0, y0, xm, ym);
        if (d->budget < (uint64_t)(2 * D + 2)) return 0;
        d->budget -= (uint64_t)(2 * D + 2);
        if (fmin > -m) vf[--fmin - 1] = -1;
        else fmin++;
        if (fmax < n) vf[++fmax + 1] = -1;
        else fmax--;
        for (ptrdiff_t k = fmax; k >= fmin; k -= 2) {
            ptrdiff_t lo = vf[k - 1], hi = vf[k + 1];
            ptrdiff_t x = lo >= hi ? lo + 1 : hi, y = x - k, x_start = x;
            while (x < n && y < m && a[x] == b[y]) x++, y++;
            if (d->budget < (uint64_t)(x - x_start)) return 0;
            d->budget -= (uint64_t)(x - x_start);
            vf[k] = x;
            if (odd && k >= bmin && k <= bmax && vb[k] <= x) {
                *xm = x0 + (size_t)x;
                *ym = y0 + (size_t)y;
                return 1;
            }
        }
        if (bmin > -m) vb[--bmin - 1] = far;
        else bmin++;
        if (bmax < n) vb[++bmax + 1] = far;
        else bmax--;
        for (ptrdiff_t k = bmax; k >= bmin; k -= 2) {
            ptrdiff_t lo = vb[k - 1], hi = vb[k + 1];
            ptrdiff_t x = lo < hi ? lo : hi - 1, y = x - k, x_start = x;
            while (x > 0 && y > 0 && a[x - 1] == b[y - 1]) x--, y--;
            if (d->budget < (uint64_t)(x_start - x)) return 0;
            d->budget -= (uint64_t)(x_start - x);
            vb[k] = x;
            if (!odd && k >= fmin && k <= fmax && x <= vf[k]) {
                *xm = x0 + (size_t)x;
                *ym = y0 + (size_t)y;
                return 1;
            }
        }
    }
    return 0; /* not reached: the searches meet by D = ceil((n + m) / 2) */
}

/* Marks the edits between a[x0..x1) and b[y0..y1). Recurses on the smaller half of each
** split and loops on the larger, so the stack depth is O(log(N + M)). */
static void compare(differ *d, size_t x0, size_t x1, size_t y0, size_t y1) {
    for (;;) {
        while (x0 < x1 && y0 < y1 && d->a[x0] == d->b[y0]) x0++, y0++;
        while (x0 < x1 && y0 < y1 && d->a[x1 - 1] == d->b[y1 - 1]) x1--, y1--;
        if (x0 == x1 || y0 == y1) {
            mark_block(d, x0, x1, y0, y1);
            return;
        }
        size_t xm, ym;
        /* a split must be a proper inner point, or the recursion would not shrink */
        if (!middle_snake(d, x0, x1, y0, y1, &xm, &ym) || xm < x0 || xm > x1 || ym < y0 ||
            ym > y1 || (xm == x0 && ym == y0) || (xm == x1 && ym == y1)) {
            mark_block(d, x0, x1, y0, y1);
            return;
        }
        if ((xm - x0) + (ym - y0) <= (x1 - xm) + (y1 - ym)) {
            compare(d, x0, xm, y0, ym);
            x0 = xm;
            y0 = ym;
        } else {
            compare(d, xm, x1, ym, y1);
            x1 = xm;
            y1 = ym;
        }
    }
}

static void put_line(kd_buf *out, const line *l, char tag, int color) {
    static const char *on[3] = {"", "\x1b[31m", "\x1b[32m"};
    int c = color ? (tag == '-' ? 1 : tag == '+' ? 2 : 0) : 0;
    if (c) kd__buf_puts(out, on[c]);
    char prefix[2] = {tag, ' '};
    kd__buf_append(out, prefix, 2);
    kd__buf_append(out, l->p, l->len);
    if (c) kd__buf_puts(out, "\x1b[0m");
    kd__buf_putc(out, '\n');
}

int kd__line_diff(const char *a, const char *b, kd_buf *out, int color) {
    int rc = KD_OK;
    if (!a) a = "";
    if (!b) b = "";
    size_t alen = strlen(a), blen = strlen(b);
    size_t na = count_lines(a, alen), nb = count_lines(b, blen), n = na + nb;
    size_t cap = 16;
    while (cap <= 2 * n) cap *= 2;
    line *all = NULL;
    uint32_t *ids = NULL, *table = NULL;
    differ d;
    memset(&d, 0, sizeof d);
    kd__buf_append(out, "", 0); /* out->p is a string even when the diff is empty */
    if (n >= UINT32_MAX / 4) {
        rc = kd__err(KD_NOMEM, "texts too large to diff");
        goto out;
    }
    all = kd__malloc(n * sizeof *all);
    ids = kd__malloc(n * sizeof *ids);
    table = kd__malloc(cap * sizeof *table);
    d.del = kd__calloc(na + 1, 1);
    d.add = kd__calloc(nb + 1, 1);
    d.vf = kd__malloc((n + 4) * sizeof *d.vf);
    d.vb = kd__malloc((n + 4) * sizeof *d.vb);
    if (!all || !ids || !table || !d.del || !d.add || !d.vf || !d.vb) {
        rc = kd__err(KD_NOMEM, "out of memory");
        goto out;
    }
    split_lines(a, alen, all);
    split_lines(b, blen, all + na);
    memset(table, 0xff, cap * sizeof *table);
    intern(all, n, table, cap, ids);
    d.a = ids;
    d.b = ids + na;
    d.budget = LINEDIFF_BUDGET;
    d.max_cost = 256;
    while (d.max_cost * d.max_cost < (ptrdiff_t)n * 4) d.max_cost *= 2; /* ~2 sqrt(N) */
    compare(&d, 0, na, 0, nb);

    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        if (i < na && d.del[i]) put_line(out, &all[i++], '-', color);
        else if (j < nb && d.add[j]) put_line(out, &all[na + j++], '+', color);
        else {
            put_line(out, &all[i++], ' ', color);
            j++;
        }
    }
    if (out->oom) rc = kd__err(KD_NOMEM, "out of memory");
out:
    if (rc == KD_NOMEM) out->oom = 1;
    kd__free(all);
    kd__free(ids);
    kd__free(table);
    kd__free(d.del);
    kd__free(d.add);
    kd__free(d.vf);
    kd__free(d.vb);
    return rc;
}

int kd_text_diff(const char *a, const char *b, int color, char **out, size_t *out_len) {
    kd_buf buf = KD_BUF_INIT;
    kd__err_clear();
    *out = NULL;
    int rc = kd__line_diff(a ? a : "", b ? b : "", &buf, color);
    if (rc == KD_OK && !buf.oom) *out = kd__buf_take(&buf, out_len);
    kd__buf_free(&buf);
    if (rc != KD_OK) return rc;
    return *out ? KD_OK : kd__err(KD_NOMEM, "out of memory");
}
