/*
** quickstart.c — the C API in one page: open a database, write a key three times, read
** it now and as of an earlier time, list its history and diff the last two versions.
**
** Build against an installed KoruDelta:
**     cc quickstart.c $(pkg-config --cflags --libs korudelta) -o quickstart
** (the test suite builds and runs this file as it is).
*/
#include <stdio.h>
#include <string.h>

#include <korudelta.h>

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, kd_errmsg(NULL), kd_strerror(rc));
    return 1;
}

int main(void) {
    kd_db *db;
    kd_options opt;
    kd_options_init(&opt);          /* sync=full: a put returns once it is on disk */
    int rc = kd_open("quickstart.db", &opt, &db);
    if (rc != KD_OK) return fail("open", rc);

    const char *versions[] = {"{\"theme\":\"light\",\"size\":12}", "{\"theme\":\"dark\",\"size\":12}",
                              "{\"theme\":\"dark\",\"size\":14}"};
    kd_entry first;
    for (int i = 0; i < 3; i++) {
        kd_entry e;
        rc = kd_put(db, "config", "ui", versions[i], strlen(versions[i]), NULL, &e);
        if (rc != KD_OK) return fail("put", rc);
        if (i == 0) first = e;      /* keep the first version to travel back to it */
        else kd_entry_clear(&e);
    }

    kd_entry now, then;
    if ((rc = kd_get(db, "config", "ui", &now)) != KD_OK) return fail("get", rc);
    if ((rc = kd_get_at(db, "config", "ui", first.timestamp, &then)) != KD_OK) return fail("get_at", rc);
    printf("now:  %s\nthen: %s\n", now.value, then.value);

    kd_entry *hist;
    size_t n, total;
    if ((rc = kd_history(db, "config", "ui", 0, 0, 1, &hist, &n, &total)) != KD_OK) return fail("history", rc);
    for (size_t i = 0; i < n; i++) {
        char id[65], ts[32];
        kd_hex(hist[i].version_id, id);
        kd_format_time(hist[i].timestamp, ts);
        printf("  * %.8s %s %s\n", id, ts, hist[i].value);
    }

    char *patch;
    if ((rc = kd_diff(db, "config", "ui", NULL, NULL, NULL, NULL, &patch)) != KD_OK) return fail("diff", rc);
    printf("diff: %s\n", patch);
    int ok = strcmp(patch, "[{\"op\":\"replace\",\"path\":\"/size\",\"value\":14}]") == 0 &&
             strcmp(then.value, "{\"size\":12,\"theme\":\"light\"}") == 0 && n == 3;

    kd_free(patch);
    kd_entries_free(hist, n);
    kd_entry_clear(&now);
    kd_entry_clear(&then);
    kd_entry_clear(&first);
    if ((rc = kd_close(db)) != KD_OK) return fail("close", rc);
    return ok ? 0 : 1;
}
