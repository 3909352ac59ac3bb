/*
** replay.c — runs a fuzz target without libFuzzer: feeds every file of the corpus
** directories given on the command line (default: tests/fuzz/corpus/<target>, the target
** being compiled in as FUZZ_TARGET) to LLVMFuzzerTestOneInput, each in a forked child
** with a 20-second alarm, so one crashing or hanging input is reported by name and the
** others still run. One pass per file the target processed without crashing; prints
** "N passed, N failed" last, as every test program does (tests/run.sh sums them).
**
**   build/tests/test_fuzz_json [DIR|FILE ...]
**   KD_FUZZ_NOFORK=1   run in-process (for a debugger)
**
** Built with the normal compiler by `make test` (and `make asan`, `make valgrind`), so the
** seed corpus and every saved crash input are regression tests in every build.
*/
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"name\""
#endif

static int passed, failed;

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    long n;
    if (!f) return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    /* Exactly n bytes (malloc(0) may be NULL: ask for 1), so ASan flags any over-read. */
    *buf = malloc(n ? (size_t)n : 1);
    if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        free(*buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

static int run_input(const char *path) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_file(path, &buf, &len) != 0) {
        fprintf(stderr, "FAIL %s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static void one(const char *path) {
    int status = 0;
    pid_t pid;
    if (getenv("KD_FUZZ_NOFORK")) {
        if (run_input(path) == 0) passed++, printf("ok   %s\n", path);
        else failed++;
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "FAIL %s: fork: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    if (pid == 0) {
        alarm(20);
        exit(run_input(path) == 0 ? 0 : 3); /* exit, not _exit: LeakSanitizer runs at exit */
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
        printf("ok   %s\n", path);
    } else {
        failed++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "FAIL %s: killed by signal %d%s\n", path, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        else
            fprintf(stderr, "FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
    }
}

static int skip_name(const struct dirent *d) { return d->d_name[0] != '.'; }

static void walk(const char *path) {
    struct stat st;
    struct dirent **names = NULL;
    int n;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "FAIL %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        one(path);
        return;
    }
    if ((n = scandir(path, &names, skip_name, alphasort)) < 0) {
        fprintf(stderr, "FAIL %s: %s\n", path, strerror(errno));
        failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
        walk(sub);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    printf("fuzz target %s: corpus replay\n", FUZZ_TARGET);
    if (argc > 1)
        for (int i = 1; i < argc; i++) walk(argv[i]);
    else
        walk("tests/fuzz/corpus/" FUZZ_TARGET);
    if (passed + failed == 0) {
        fprintf(stderr, "FAIL: no corpus files found\n");
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
