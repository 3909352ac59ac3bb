/*
** test_linediff.c — the human line diff (src/base/linediff.c): exact output on examples,
** colours, minimality against an LCS dynamic program on random texts, validity (the kept
** and removed lines rebuild a, the kept and added lines rebuild b), bounded work on big
** inputs, and out-of-memory at every allocation.
*/
#include <stdint.h>
#include <time.h>

#include "base/linediff.h"
#include "t.h"

/* kd__buf_take of a never-written buffer returns an unterminated allocation (base.c: the
** reserve does not write the NUL), so tests terminate explicitly first. */
static char *take_str(kd_buf *b) {
    kd__buf_append(b, "", 0);
    return kd__buf_take(b, NULL);
}

static char *diff_of(const char *a, const char *b, int color) {
    kd_buf out = KD_BUF_INIT;
    int rc = kd__line_diff(a, b, &out, color);
    if (rc != KD_OK) {
        kd__buf_free(&out);
        return NULL;
    }
    return take_str(&out);
}

#define CHECK_DIFF(a, b, want)                 \
    do {                                       \
        char *got_ = diff_of((a), (b), 0);     \
        CHECK_EQ_STR(got_, (want));            \
        kd__free(got_);                        \
    } while (0)

TEST(examples) {
    CHECK_DIFF("", "", "");
    CHECK_DIFF(NULL, NULL, "");
    CHECK_DIFF("a\nb\nc\n", "a\nb\nc\n", "  a\n  b\n  c\n");
    CHECK_DIFF("a\nb\nc\n", "a\nx\nc\n", "  a\n- b\n+ x\n  c\n");
    CHECK_DIFF("a\nb\nc\n", "a\nc\n", "  a\n- b\n  c\n");
    CHECK_DIFF("a\nc\n", "a\nb\nc\n", "  a\n+ b\n  c\n");
    CHECK_DIFF(NULL, "x\ny", "+ x\n+ y\n");
    CHECK_DIFF("x\ny\n", "", "- x\n- y\n");
    CHECK_DIFF("a", "a\n", "  a\n");          /* a missing final newline is not a change */
    CHECK_DIFF("\n\n", "\n", "  \n- \n");       /* two empty lines become one */
    CHECK_DIFF("a\r\nb\n", "a\nb\n", "- a\r\n+ a\n  b\n");
    /* a typical pretty-printed JSON change */
    CHECK_DIFF("{\n  \"age\": 30,\n  \"name\": \"Alice\"\n}",
               "{\n  \"age\": 31,\n  \"city\": \"Paris\",\n  \"name\": \"Alice\"\n}",
               "  {\n-   \"age\": 30,\n+   \"age\": 31,\n+   \"city\": \"Paris\",\n    \"name\": \"Alice\"\n  }\n");
    /* removed lines come before added ones inside a changed stretch */
    CHECK_DIFF("1\n2\n3\n4\n", "1\nx\ny\n4\n", "  1\n- 2\n- 3\n+ x\n+ y\n  4\n");
}

TEST(colors) {
    char *got = diff_of("a\nb\n", "a\nc\n", 1);
    CHECK_EQ_STR(got, "  a\n\x1b[31m- b\x1b[0m\n\x1b[32m+ c\x1b[0m\n");
    kd__free(got);
}

/* ---- random texts against an LCS dynamic program --------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}

/* Random text of n lines drawn from an alphabet of k distinct lines. */
static char *random_text(size_t n, unsigned k, size_t *nlines) {
    kd_buf b = KD_BUF_INIT;
    for (size_t i = 0; i < n; i++) kd__buf_printf(&b, "line%u\n", (unsigned)(rnd() % k));
    *nlines = n;
    char *s = take_str(&b);
    return s;
}

/* Splits text into an array of line pointers (copies). */
static size_t split(const char *s, char ***out) {
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof *v);
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[n] = malloc(len + 1);
        memcpy(v[n], s, len);
        v[n][len] = 0;
        n++;
        s += len + (nl ? 1 : 0);
    }
    *out = v;
    return n;
}

static void free_lines(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static size_t lcs(char **a, size_t na, char **b, size_t nb) {
    size_t *prev = calloc(nb + 1, sizeof *prev), *cur = calloc(nb + 1, sizeof *cur);
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            if (strcmp(a[i - 1], b[j - 1]) == 0) cur[j] = prev[j - 1] + 1;
            else cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
        }
        size_t *t = prev; prev = cur; cur = t;
    }
    size_t r = prev[nb];
    free(prev);
    free(cur);
    return r;
}

/* Checks that the diff output rebuilds a and b; returns the number of edit lines or -1. */
static long check_rebuild(const char *out, const char *a, const char *b) {
    kd_buf ra = KD_BUF_INIT, rb = KD_BUF_INIT;
    long edits = 0;
    int ok = 1;
    const char *p = out;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl || nl - p < 2) { ok = 0; break; }
        if (p[0] == ' ' && p[1] == ' ') {
            kd__buf_append(&ra, p + 2, (size_t)(nl - p - 1));
            kd__buf_append(&rb, p + 2, (size_t)(nl - p - 1));
        } else if (p[0] == '-' && p[1] == ' ') {
            kd__buf_append(&ra, p + 2, (size_t)(nl - p - 1));
            edits++;
        } else if (p[0] == '+' && p[1] == ' ') {
            kd__buf_append(&rb, p + 2, (size_t)(nl - p - 1));
            edits++;
        } else {
            ok = 0;
            break;
        }
        p = nl + 1;
    }
    if (ok) ok = strcmp(ra.p ? ra.p : "", a) == 0 && strcmp(rb.p ? rb.p : "", b) == 0;
    kd__buf_free(&ra);
    kd__buf_free(&rb);
    return ok ? edits : -1;
}

TEST(random_minimal_and_valid) {
    int bad = 0, notmin = 0;
    for (int round = 0; round < 3000; round++) {
        size_t na, nb;
        unsigned k = 1 + (unsigned)(rnd() % 6);
        size_t maxn = round % 5 == 0 ? 80 : 25;
        char *a = random_text(rnd() % maxn, k, &na);
        char *b;
        if (round % 3 == 0) {
            b = random_text(rnd() % (round % 7 == 0 ? 4 : maxn), k, &nb);
        } else {
            /* b = a with a few edits, as real versions are */
            char **la;
            size_t n = split(a, &la);
            kd_buf bb = KD_BUF_INIT;
            for (size_t i = 0; i < n; i++) {
                uint64_t r = rnd() % 10;
                if (r == 0) continue;
                if (r == 1) kd__buf_printf(&bb, "new%u\n", (unsigned)(rnd() % 3));
                kd__buf_printf(&bb, "%s\n", la[i]);
            }
            if (rnd() % 2) kd__buf_puts(&bb, "tail\n");
            free_lines(la, n);
            b = take_str(&bb);
        }
        char *out = diff_of(a, b, 0);
        long edits = out ? check_rebuild(out, a, b) : -1;
        if (edits < 0) bad++;
        else {
            char **la, **lb;
            size_t xa = split(a, &la), xb = split(b, &lb);
            size_t l = lcs(la, xa, lb, xb);
            if ((size_t)edits != xa + xb - 2 * l) notmin++;
            free_lines(la, xa);
            free_lines(lb, xb);
        }
        kd__free(out);
        kd__free(a);
        kd__free(b);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(notmin, 0);
}

/* A big file with a few changes: the diff stays minimal and fast. */
TEST(big_similar) {
    kd_buf a = KD_BUF_INIT, b = KD_BUF_INIT;
    for (int i = 0; i < 200000; i++) {
        kd__buf_printf(&a, "row %d\n", i);
        if (i % 20000 == 7) kd__buf_printf(&b, "changed %d\n", i);
        else kd__buf_printf(&b, "row %d\n", i);
        if (i % 50000 == 3) kd__buf_printf(&b, "inserted %d\n", i);
    }
    clock_t t0 = clock();
    char *out = diff_of(a.p, b.p, 0);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(out != NULL);
    long edits = out ? check_rebuild(out, a.p, b.p) : -1;
    CHECK_EQ_INT(edits, 10 * 2 + 4);
    CHECK(secs < 30.0);
    kd__free(out);
    kd__buf_free(&a);
    kd__buf_free(&b);
}

/* Two big, entirely different texts: the work cap keeps this bounded and the output is
** still a valid (block) diff. */
TEST(big_different_bounded) {
    kd_buf a = KD_BUF_INIT, b = KD_BUF_INIT;
    for (int i = 0; i < 100000; i++) {
        kd__buf_printf(&a, "a%llu\n", (unsigned long long)(rnd() % 50));
        kd__buf_printf(&b, "a%llu\n", (unsigned long long)(rnd() % 50));
    }
    clock_t t0 = clock();
    char *out = diff_of(a.p, b.p, 0);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(out != NULL);
    CHECK(out && check_rebuild(out, a.p, b.p) >= 0);
    CHECK(secs < 30.0);
    kd__free(out);
    kd__buf_free(&a);
    kd__buf_free(&b);
}

TEST(out_of_memory) {
    const char *a = "one\ntwo\nthree\nfour\nfive\n", *b = "one\n2\nthree\nfive\nsix\n";
    char *want = diff_of(a, b, 1);
    int succeeded = 0;
    for (uint64_t n = 1; n < 100 && !succeeded; n++) {
        kd_buf out = KD_BUF_INIT;
        kd__alloc_fail_at(n);
        int rc = kd__line_diff(a, b, &out, 1);
        kd__alloc_fail_at(0);
        if (rc == KD_OK) {
            succeeded = 1;
            CHECK_EQ_STR(out.p, want);
        } else {
            CHECK_EQ_INT(rc, KD_NOMEM);
            CHECK(out.oom);
        }
        kd__buf_free(&out);
    }
    CHECK(succeeded);
    kd__free(want);
}

int main(void) {
    RUN(examples);
    RUN(colors);
    RUN(random_minimal_and_valid);
    RUN(big_similar);
    RUN(big_different_bounded);
    RUN(out_of_memory);
    return t_done();
}
