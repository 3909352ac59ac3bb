/*
** t.h — a minimal unit-test harness. Each test file is its own program:
**
**     TEST(name) { CHECK(x == 1); CHECK_EQ_STR(a, "b"); }
**     int main(void) { RUN(name); return t_done(); }
**
** A failed check prints file:line and the expression and marks the test failed; the
** program prints "N passed, N failed" and exits non-zero when anything failed.
*/
#ifndef KD_T_H
#define KD_T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail, t_cur_failed;

#define TEST(name) static void name(void)
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            t_cur_failed = 1;                                                         \
        }                                                                             \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long long t_a = (long long)(a), t_b = (long long)(b);                          \
        if (t_a != t_b) {                                                              \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,       \
                    __LINE__, #a, #b, t_a, t_b);                                       \
            t_cur_failed = 1;                                                          \
        }                                                                              \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                             \
    do {                                                                               \
        const char *t_a = (a), *t_b = (b);                                             \
        if (!t_a || !t_b || strcmp(t_a, t_b) != 0) {                                   \
            fprintf(stderr, "  %s:%d: %s == %s failed:\n    got:  %s\n    want: %s\n",  \
                    __FILE__, __LINE__, #a, #b, t_a ? t_a : "(null)",                  \
                    t_b ? t_b : "(null)");                                             \
            t_cur_failed = 1;                                                          \
        }                                                                              \
    } while (0)
#define RUN(name)                                                                      \
    do {                                                                               \
        t_cur_failed = 0;                                                              \
        name();                                                                        \
        if (t_cur_failed) {                                                            \
            t_fail++;                                                                  \
            fprintf(stderr, "FAIL %s\n", #name);                                       \
        } else {                                                                       \
            t_pass++;                                                                  \
            printf("ok   %s\n", #name);                                                \
        }                                                                              \
    } while (0)

static inline int t_done(void) {
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#ifdef KORUDELTA_H
#include <unistd.h>
/* A database directory of this test program's own, /tmp/kd_<tag>_<pid>, emptied. */
static inline void t_fresh_dir(char *dir, size_t n, const char *tag) {
    char cmd[300];
    snprintf(dir, n, "/tmp/kd_%s_%d", tag, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) abort();
}
/* Opens dir with the given sync mode; aborts (with the library's message) on failure. */
static inline kd_db *t_open(const char *dir, kd_sync_mode sync) {
    kd_options o;
    kd_options_init(&o);
    o.sync = sync;
    kd_db *db = NULL;
    if (kd_open(dir, &o, &db) != KD_OK) {
        fprintf(stderr, "open %s: %s\n", dir, kd_errmsg(NULL));
        abort();
    }
    return db;
}
#endif
#endif
