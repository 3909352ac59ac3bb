/*
** fuzz_util.c — helpers shared by the fuzz targets (see fuzz.h): removing a scratch
** directory tree. Linked into every fuzzer and every replay program.
*/
#include <ftw.h>
#include <stdio.h>

#include "fuzz.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: keep walking whatever fails */
    return 0;
}

int fuzz_rm_rf(const char *path) {
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
