/*
** fuzz.h — what the fuzz targets share: the libFuzzer entry point's prototype, a check
** that aborts (so libFuzzer and the replay driver both see a broken invariant as a
** crash), and scratch directories for the targets that need files.
**
** Every target is built two ways: with clang -fsanitize=fuzzer (`make fuzz`, libFuzzer
** supplies main) and with the normal compiler plus replay.c (`make test`, which feeds the
** seed corpus tests/fuzz/corpus/<target>/ through the same function).
*/
#ifndef KD_FUZZ_H
#define KD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant every input must keep: a violation is a finding, reported like a crash. */
#define FUZZ_ASSERT(cond)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* A NUL-terminated heap copy of the input (exactly size + 1 bytes, so ASan sees any read
** past the end). NULL only when out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (s) {
        if (size) memcpy(s, data, size);
        s[size] = 0;
    }
    return s;
}

/* A fresh scratch directory for this process, under TMPDIR (default /tmp):
** <tmp>/kd_fuzz_<tag>_<pid>. Removed at exit by fuzz_rm_rf from the target. */
static inline void fuzz_scratch_path(char *out, size_t n, const char *tag) {
    const char *t = getenv("TMPDIR");
    snprintf(out, n, "%s/kd_fuzz_%s_%ld", t && *t ? t : "/tmp", tag, (long)getpid());
}

/* rm -rf path (a scratch directory this process made; no symlinks are followed). */
int fuzz_rm_rf(const char *path);

#endif /* KD_FUZZ_H */
