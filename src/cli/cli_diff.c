/*
** cli_diff.c — `kdelta diff`: compares two versions of a key. For programs (--json) it
** prints the RFC 6902 patch kd_diff computes, with the two versions it compared; for
** people, a header naming both versions and then a line diff of the pretty-printed values
** (coloured on a terminal). The line diff is computed here from the two values, whether
** they come from the local database or from a server's _diff answer, so both modes print
** the same text.
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"

/* `{"version_id":..,"timestamp":..}`, or null for "nothing" (seq 0). */
static void json_side(cli_buf *b, const kd_entry *e) {
    if (e->seq == 0) {
        cli_buf_puts(b, "null");
        return;
    }
    cli_buf_puts(b, "{");
    cli_json_key(b, "version_id");
    cli_json_hex(b, e->version_id);
    cli_buf_puts(b, ",");
    cli_json_key(b, "timestamp");
    cli_json_time(b, e->timestamp);
    cli_buf_puts(b, "}");
}

static void human_side(cli_buf *b, const char *mark, const kd_entry *e) {
    char id[9], ts[32];
    if (e->seq == 0) {
        cli_buf_printf(b, "%s (nothing)\n", mark);
        return;
    }
    cli_short_id(e->version_id, id);
    kd_format_time(e->timestamp, ts);
    cli_buf_printf(b, "%s %s %s seq %llu%s\n", mark, id, ts, (unsigned long long)e->seq,
                   e->deleted ? " (deleted)" : "");
}

/* The pretty text of one side into *out (NULL for nothing or a tombstone). If kd_diff did
** not hand us the value, it is fetched by the full version id. */
static int side_text(cli *c, const char *ns, const char *key, kd_entry *e, char **out) {
    size_t len;
    int rc;
    *out = NULL;
    if (e->seq == 0 || e->deleted) return 0;
    if (!e->value) {
        char hex[65];
        kd_entry full;
        kd_hex(e->version_id, hex);
        rc = cli_op_version(c, ns, key, hex, &full);
        if (rc != KD_OK) {
            kd_entry_clear(&full);
            return cli_fail_kd(c, rc, "reading version");
        }
        e->value = full.value;
        e->value_len = full.value_len;
        full.value = NULL;
        kd_entry_clear(&full);
        if (!e->value) return 0;
    }
    rc = kd_json_pretty(e->value, e->value_len, out, &len);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "formatting value");
    return 0;
}

int cli_cmd_diff(cli *c) {
    char *ns = NULL, *key = NULL, *patch = NULL, *a = NULL, *b = NULL;
    kd_entry from, to;
    char *lines = NULL;
    size_t lines_len = 0;
    int rc, code;
    memset(&from, 0, sizeof from);
    memset(&to, 0, sizeof to);

    if ((code = cli_split_name(c, c->pos[0], 1, &ns, &key)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    rc = cli_op_diff(c, ns, key, c->from, c->to, &from, &to, &patch);
    if (rc != KD_OK) {
        char what[64 + 2 * 1200];
        snprintf(what, sizeof what, "diff %s/%s", ns, key);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{\"from\":");
        json_side(&c->out, &from);
        cli_buf_puts(&c->out, ",\"to\":");
        json_side(&c->out, &to);
        cli_buf_puts(&c->out, ",\"patch\":");
        cli_buf_puts(&c->out, patch ? patch : "[]");
        cli_buf_puts(&c->out, "}\n");
        code = 0;
        goto out;
    }
    if ((code = side_text(c, ns, key, &from, &a)) != 0) goto out;
    if ((code = side_text(c, ns, key, &to, &b)) != 0) goto out;
    cli_buf_printf(&c->out, "diff %s/%s\n", ns, key);
    human_side(&c->out, "---", &from);
    human_side(&c->out, "+++", &to);
    rc = kd_text_diff(a, b, c->color, &lines, &lines_len);
    if (rc != KD_OK) {
        code = cli_fail_kd(c, rc, "computing the diff");
        goto out;
    }
    if (lines_len) cli_buf_add(&c->out, lines, lines_len);
    code = 0;
out:
    kd_free(lines);
    kd_free(a);
    kd_free(b);
    kd_free(patch);
    kd_entry_clear(&from);
    kd_entry_clear(&to);
    free(ns);
    free(key);
    return code;
}
