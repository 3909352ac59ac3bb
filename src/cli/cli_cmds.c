/*
** cli_cmds.c — the single-key and database-wide commands of `kdelta`: set, get, delete,
** log, list, status and check. Each handler validates its arguments before touching the
** database when it can (so bad input writes nothing), reaches the database through
** cli_ops.h (locally or through a server: the same structures either way), and writes
** either human output or exactly one JSON document into c->out.
**
** May call: the public API (korudelta.h), cli.h and cli_ops.h, the C library.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"

/* ---- shared pieces ----------------------------------------------------------------------- */

/* The JSON members describing a version: namespace, key, seq, version_id, value_hash,
** timestamp, previous_version (no braces). */
static void json_version(cli_buf *b, const kd_entry *e, const char *ns, const char *key) {
    cli_json_key(b, "namespace");
    cli_json_cstr(b, e->ns ? e->ns : ns);
    cli_buf_puts(b, ",");
    cli_json_key(b, "key");
    cli_json_cstr(b, e->key ? e->key : key);
    cli_buf_printf(b, ",\"seq\":%llu,", (unsigned long long)e->seq);
    cli_json_key(b, "version_id");
    cli_json_hex(b, e->version_id);
    cli_buf_puts(b, ",");
    cli_json_key(b, "value_hash");
    cli_json_hex(b, e->value_hash);
    cli_buf_puts(b, ",");
    cli_json_key(b, "timestamp");
    cli_json_time(b, e->timestamp);
    cli_buf_puts(b, ",");
    cli_json_key(b, "previous_version");
    if (e->has_previous) cli_json_hex(b, e->previous_version);
    else cli_buf_puts(b, "null");
}

/* Whether the tombstone's id starts with spec (a version-id time the server resolved). */
static int id_has_prefix(const uint8_t id[32], const char *spec) {
    char hex[65];
    size_t n = strlen(spec);
    kd_hex(id, hex);
    if (n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = spec[i] >= 'A' && spec[i] <= 'F' ? (char)(spec[i] - 'A' + 'a') : spec[i];
        if (ch != hex[i]) return 0;
    }
    return 1;
}

/* The error for a key that has no live value (now, or at time `at_ts` when at_spec is
** set): says when it was deleted if the library handed us the tombstone. */
static int fail_not_found(cli *c, const char *ns, const char *key, const kd_entry *e,
                          const char *at_spec, int64_t at_ts) {
    char when[32], asof[300], id[9];
    if (at_ts != CLI_TS_SERVER)
        kd_format_time(at_ts, asof);
    else if (e->seq != 0 && id_has_prefix(e->version_id, at_spec))
        kd_format_time(e->timestamp, asof); /* the spec names the tombstone itself */
    else
        snprintf(asof, sizeof asof, "%.200s", at_spec); /* the server resolved it; we cannot */
    if (e->seq != 0 && e->deleted) {
        kd_format_time(e->timestamp, when);
        cli_short_id(e->version_id, id);
        if (at_spec)
            return cli_fail(c, KD_NOTFOUND, "%s/%s not found at %s: deleted at %s (version %s)", ns,
                            key, asof, when, id);
        return cli_fail(c, KD_NOTFOUND, "%s/%s not found: deleted at %s (version %s)", ns, key, when,
                        id);
    }
    if (at_spec)
        return cli_fail(c, KD_NOTFOUND, "%s/%s not found: no version at or before %s", ns, key, asof);
    return cli_fail(c, KD_NOTFOUND, "%s/%s not found", ns, key);
}

/* Parses a time spec given as --at (version ids need the open database). */
static int parse_time_opt(cli *c, const char *opt, const char *spec, int64_t *ts) {
    int rc = cli_op_parse_time(c, spec, ts);
    if (rc != KD_OK) {
        char what[256];
        snprintf(what, sizeof what, "%s '%.200s'", opt, spec);
        return cli_fail_kd(c, rc, what);
    }
    return 0;
}

/* ---- set ------------------------------------------------------------------------------------ */

/* 8 to 64 hex digits: what --if-version accepts (the library's rule). */
static int is_version_prefix(const char *s) {
    size_t n = strlen(s);
    if (n < 8 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

int cli_cmd_set(cli *c) {
    char *ns = NULL, *key = NULL, *input = NULL, *canon = NULL;
    const char *json;
    size_t len, clen;
    kd_entry e;
    kd_put_cond cond;
    int rc, code;
    memset(&e, 0, sizeof e);
    memset(&cond, 0, sizeof cond);

    if ((code = cli_split_name(c, c->pos[0], 0, &ns, &key)) != 0) goto out;
    if (strcmp(c->pos[1], "-") == 0) {
        if ((code = cli_read_file(c, "-", &input, &len)) != 0) goto out;
        json = input;
    } else {
        json = c->pos[1];
        len = strlen(json);
    }
    /* Validate before opening so that a bad condition or bad JSON writes nothing and gets
    ** the same message locally and through a server. */
    if (c->if_version && !is_version_prefix(c->if_version)) {
        code = cli_fail(c, KD_INVALID, "cannot set %s/%s: invalid version id \"%s\": expected 8 to "
                        "64 hex digits", ns, key, c->if_version);
        goto out;
    }
    rc = kd_json_canonical(json, len, &canon, &clen);
    if (rc != KD_OK) {
        code = cli_fail_kd(c, rc, "invalid JSON value");
        goto out;
    }
    if ((code = cli_connect(c)) != 0) goto out;
    cond.if_absent = c->if_absent;
    cond.if_version = c->if_version;
    rc = cli_op_put(c, ns, key, canon, clen, (c->if_absent || c->if_version) ? &cond : NULL, &e);
    if (rc != KD_OK) {
        char what[64 + 2 * 1200];
        snprintf(what, sizeof what, "cannot set %s/%s", ns, key);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        json_version(&c->out, &e, ns, key);
        cli_buf_puts(&c->out, "}\n");
    } else {
        char id[9], ts[32];
        cli_short_id(e.version_id, id);
        kd_format_time(e.timestamp, ts);
        cli_buf_printf(&c->out, "Stored %s/%s: version %s, seq %llu, %s\n", ns, key, id,
                       (unsigned long long)e.seq, ts);
    }
    code = 0;
out:
    kd_entry_clear(&e);
    kd_free(canon);
    free(input);
    free(ns);
    free(key);
    return code;
}

/* ---- get ------------------------------------------------------------------------------------ */

static void human_meta(cli_buf *b, const kd_entry *e) {
    char hex[65], ts[32];
    kd_hex(e->version_id, hex);
    cli_buf_printf(b, "version:    %s\n", hex);
    cli_buf_printf(b, "seq:        %llu\n", (unsigned long long)e->seq);
    kd_format_time(e->timestamp, ts);
    cli_buf_printf(b, "timestamp:  %s\n", ts);
    kd_hex(e->value_hash, hex);
    cli_buf_printf(b, "value hash: %s\n", hex);
    if (e->has_previous) {
        kd_hex(e->previous_version, hex);
        cli_buf_printf(b, "previous:   %s\n", hex);
    } else {
        cli_buf_puts(b, "previous:   (none)\n");
    }
}

int cli_cmd_get(cli *c) {
    char *ns = NULL, *key = NULL;
    kd_entry e;
    int64_t ts = 0;
    int rc, code;
    memset(&e, 0, sizeof e);

    if ((code = cli_split_name(c, c->pos[0], 1, &ns, &key)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    if (c->at) {
        if ((code = parse_time_opt(c, "--at", c->at, &ts)) != 0) goto out;
        rc = cli_op_get_at(c, ns, key, c->at, ts, &e);
    } else {
        rc = cli_op_get(c, ns, key, &e);
    }
    if (rc == KD_NOTFOUND) {
        code = fail_not_found(c, ns, key, &e, c->at, ts);
        goto out;
    }
    if (rc != KD_OK) {
        code = cli_fail_kd(c, rc, NULL);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        json_version(&c->out, &e, ns, key);
        cli_buf_puts(&c->out, ",\"value\":");
        if (e.value) cli_buf_add(&c->out, e.value, e.value_len);
        else cli_buf_puts(&c->out, "null");
        cli_buf_puts(&c->out, "}\n");
    } else {
        if (c->verbose) {
            human_meta(&c->out, &e);
            cli_buf_puts(&c->out, "\n");
        }
        if (!e.value) cli_buf_puts(&c->out, "null\n");
        else if ((code = cli_put_pretty(c, &c->out, e.value, e.value_len)) != 0) goto out;
    }
    code = 0;
out:
    kd_entry_clear(&e);
    free(ns);
    free(key);
    return code;
}

/* ---- delete --------------------------------------------------------------------------------- */

int cli_cmd_delete(cli *c) {
    char *ns = NULL, *key = NULL;
    kd_entry e;
    int rc, code;
    memset(&e, 0, sizeof e);

    if ((code = cli_split_name(c, c->pos[0], 0, &ns, &key)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    rc = cli_op_delete(c, ns, key, &e);
    if (rc == KD_NOTFOUND) {
        /* Say whether it never existed or is already deleted. */
        kd_entry cur;
        if (cli_op_get(c, ns, key, &cur) == KD_NOTFOUND && cur.seq != 0 && cur.deleted) {
            char when[32];
            kd_format_time(cur.timestamp, when);
            code = cli_fail(c, KD_NOTFOUND, "%s/%s not found: already deleted at %s", ns, key, when);
        } else {
            code = cli_fail(c, KD_NOTFOUND, "%s/%s not found", ns, key);
        }
        kd_entry_clear(&cur);
        goto out;
    }
    if (rc != KD_OK) {
        char what[64 + 2 * 1200];
        snprintf(what, sizeof what, "cannot delete %s/%s", ns, key);
        code = cli_fail_kd(c, rc, what);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "namespace");
        cli_json_cstr(&c->out, ns);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "key");
        cli_json_cstr(&c->out, key);
        cli_buf_printf(&c->out, ",\"seq\":%llu,", (unsigned long long)e.seq);
        cli_json_key(&c->out, "version_id");
        cli_json_hex(&c->out, e.version_id);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "timestamp");
        cli_json_time(&c->out, e.timestamp);
        cli_buf_puts(&c->out, ",\"deleted\":true}\n");
    } else {
        char id[9], ts[32];
        cli_short_id(e.version_id, id);
        kd_format_time(e.timestamp, ts);
        cli_buf_printf(&c->out, "Deleted %s/%s: version %s, seq %llu, %s\n", ns, key, id,
                       (unsigned long long)e.seq, ts);
    }
    code = 0;
out:
    kd_entry_clear(&e);
    free(ns);
    free(key);
    return code;
}

/* ---- log ------------------------------------------------------------------------------------ */

int cli_cmd_log(cli *c) {
    char *ns = NULL, *key = NULL;
    kd_entry *v = NULL;
    size_t n = 0, total = 0;
    int rc, code;

    if ((code = cli_split_name(c, c->pos[0], 1, &ns, &key)) != 0) goto out;
    if ((code = cli_connect(c)) != 0) goto out;
    rc = cli_op_history_newest(c, ns, key, c->limit > SIZE_MAX ? SIZE_MAX : (size_t)c->limit, &v,
                               &n, &total);
    if (rc == KD_NOTFOUND) {
        code = cli_fail(c, KD_NOTFOUND, "%s/%s not found (no history)", ns, key);
        goto out;
    }
    if (rc != KD_OK) {
        code = cli_fail_kd(c, rc, NULL);
        goto out;
    }
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "namespace");
        cli_json_cstr(&c->out, ns);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "key");
        cli_json_cstr(&c->out, key);
        cli_buf_puts(&c->out, ",\"versions\":[");
        for (size_t i = n; i-- > 0;) {
            const kd_entry *e = &v[i];
            cli_buf_printf(&c->out, "%s{\"seq\":%llu,", i + 1 == n ? "" : ",",
                           (unsigned long long)e->seq);
            cli_json_key(&c->out, "version_id");
            cli_json_hex(&c->out, e->version_id);
            cli_buf_puts(&c->out, ",");
            cli_json_key(&c->out, "timestamp");
            cli_json_time(&c->out, e->timestamp);
            cli_buf_puts(&c->out, ",\"value\":");
            if (e->deleted || !e->value) cli_buf_puts(&c->out, "null");
            else cli_buf_add(&c->out, e->value, e->value_len);
            cli_buf_printf(&c->out, ",\"deleted\":%s}", e->deleted ? "true" : "false");
        }
        cli_buf_puts(&c->out, "]}\n");
    } else {
        for (size_t i = n; i-- > 0;) {
            const kd_entry *e = &v[i];
            char id[9], ts[32];
            cli_short_id(e->version_id, id);
            kd_format_time(e->timestamp, ts);
            cli_buf_printf(&c->out, "  * %s %s seq %llu  ", id, ts, (unsigned long long)e->seq);
            if (e->deleted) cli_buf_puts(&c->out, "(deleted)");
            else if (e->value) cli_add_short_value(&c->out, e->value, e->value_len);
            cli_buf_puts(&c->out, "\n");
        }
        if (n < total)
            cli_buf_printf(&c->out, "  (%zu older version%s not shown)\n", total - n,
                           total - n == 1 ? "" : "s");
    }
    code = 0;
out:
    if (v) kd_entries_free(v, n);
    free(ns);
    free(key);
    return code;
}

/* ---- list ----------------------------------------------------------------------------------- */

static int list_namespaces(cli *c) {
    kd_ns_info *l = NULL;
    size_t n = 0;
    int rc = cli_op_namespaces(c, c->all, &l, &n);
    if (rc != KD_OK) return cli_fail_kd(c, rc, NULL);
    if (c->json) {
        cli_buf_puts(&c->out, "{\"namespaces\":[");
        for (size_t i = 0; i < n; i++) {
            cli_buf_puts(&c->out, i ? ",{" : "{");
            cli_json_key(&c->out, "name");
            cli_json_cstr(&c->out, l[i].name);
            cli_buf_printf(&c->out, ",\"keys\":%llu}", (unsigned long long)l[i].keys);
        }
        cli_buf_puts(&c->out, "]}\n");
    } else if (n == 0) {
        cli_buf_puts(&c->out, "No namespaces.\n");
    } else {
        int w = 0;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(l[i].name) > w) w = (int)strlen(l[i].name);
        for (size_t i = 0; i < n; i++)
            cli_buf_printf(&c->out, "  %-*s  %llu key%s\n", w, l[i].name,
                           (unsigned long long)l[i].keys, l[i].keys == 1 ? "" : "s");
    }
    kd_ns_list_free(l, n);
    return 0;
}

static int list_keys(cli *c, const char *ns) {
    char **keys = NULL;
    size_t n = 0;
    int rc = cli_op_keys(c, ns, &keys, &n);
    if (rc != KD_OK) return cli_fail_kd(c, rc, NULL);
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "namespace");
        cli_json_cstr(&c->out, ns);
        cli_buf_puts(&c->out, ",\"keys\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) cli_buf_puts(&c->out, ",");
            cli_json_cstr(&c->out, keys[i]);
        }
        cli_buf_puts(&c->out, "]}\n");
    } else {
        for (size_t i = 0; i < n; i++) {
            cli_buf_puts(&c->out, keys[i]);
            cli_buf_puts(&c->out, "\n");
        }
    }
    kd_keys_free(keys, n);
    return 0;
}

int cli_cmd_list(cli *c) {
    int rc;
    if (c->npos && (rc = kd_valid_namespace(c->pos[0], 1)) != KD_OK) return cli_fail_kd(c, rc, NULL);
    if ((rc = cli_connect(c)) != 0) return rc;
    return c->npos ? list_keys(c, c->pos[0]) : list_namespaces(c);
}

/* ---- status --------------------------------------------------------------------------------- */

int cli_cmd_status(cli *c) {
    kd_stats st;
    char *path = NULL;
    int rc;
    if ((rc = cli_connect(c)) != 0) return rc;
    rc = cli_op_status(c, &st, &path);
    if (rc != KD_OK) return cli_fail_kd(c, rc, NULL);
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "path");
        cli_json_cstr(&c->out, path);
        cli_buf_printf(&c->out,
                       ",\"namespaces\":%llu,\"keys\":%llu,\"versions\":%llu,\"seq\":%llu,"
                       "\"disk_bytes\":%llu,\"log_bytes\":%llu,\"max_db_bytes\":%llu}\n",
                       (unsigned long long)st.namespaces, (unsigned long long)st.keys,
                       (unsigned long long)st.versions, (unsigned long long)st.seq,
                       (unsigned long long)st.disk_bytes, (unsigned long long)st.log_bytes,
                       (unsigned long long)st.max_db_bytes);
    } else {
        cli_buf_puts(&c->out, "Database Status\n");
        cli_buf_printf(&c->out, "  Path:        %s\n", path);
        cli_buf_printf(&c->out, "  Namespaces:  %llu\n", (unsigned long long)st.namespaces);
        cli_buf_printf(&c->out, "  Keys:        %llu\n", (unsigned long long)st.keys);
        cli_buf_printf(&c->out, "  Versions:    %llu\n", (unsigned long long)st.versions);
        cli_buf_printf(&c->out, "  Values:      %llu distinct\n", (unsigned long long)st.values);
        cli_buf_printf(&c->out, "  Seq:         %llu\n", (unsigned long long)st.seq);
        cli_buf_printf(&c->out, "  Disk bytes:  %llu in %llu segment%s (%llu of log records)\n",
                       (unsigned long long)st.disk_bytes, (unsigned long long)st.segments,
                       st.segments == 1 ? "" : "s", (unsigned long long)st.log_bytes);
        if (st.max_db_bytes)
            cli_buf_printf(&c->out, "  Quota:       %llu of %llu log bytes used (%.1f%%)\n",
                           (unsigned long long)st.log_bytes, (unsigned long long)st.max_db_bytes,
                           100.0 * (double)st.log_bytes / (double)st.max_db_bytes);
    }
    free(path);
    return 0;
}

/* ---- check ---------------------------------------------------------------------------------- */

/* Opens the database for check: locally (a corrupt one is examined from its files, with
** the reason the open refused it in open_err), through --url, or through the server
** that holds it. Returns 0 or an exit code. */
static int check_connect(cli *c, char *open_err, size_t errlen) {
    kd_options o;
    int rc;
    if (cli_explicit_url(c)) return cli_connect(c);
    cli_db_options(c, &o);
    rc = kd_open(c->db_path, &o, &c->db);
    if (rc == KD_OK) return 0;
    c->db = NULL;
    if (rc == KD_CORRUPT) {
        /* kd_open refuses a database with mid-log corruption; check the files directly. */
        snprintf(open_err, errlen, "%s", kd_errmsg(NULL));
        return 0;
    }
    if (rc == KD_BUSY) {
        int code = cli_fail_kd(c, rc, NULL);
        return cli_route_busy(c) ? 0 : code;
    }
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "cannot open database %s", c->db_path);
    return cli_fail_kd(c, rc, what);
}

int cli_cmd_check(cli *c) {
    kd_check_report r;
    char open_err[600] = "";
    char abs[PATH_MAX];
    char *path = NULL;
    int rc, code, bar = -1;
    int tty = isatty(STDERR_FILENO); /* a bar while the log is read (locally) */
    memset(&r, 0, sizeof r);
    if ((code = check_connect(c, open_err, sizeof open_err)) != 0) return code;
    if (open_err[0])
        rc = kd_check_path_progress(c->db_path, c->deep, &r, tty ? cli_progress_bar : NULL, &bar);
    else
        rc = cli_op_check(c, c->deep, &r, c->json ? NULL : &path, tty ? cli_progress_bar : NULL, &bar);
    if (tty && bar >= 0) fputs("\n", stderr);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "checking database");
    r.first_error[sizeof r.first_error - 1] = '\0';
    r.error_list[sizeof r.error_list - 1] = '\0';
    uint64_t listed = 0;
    for (const char *p = r.error_list; (p = strchr(p, '\n')) != NULL; p++) listed++;
    if (c->json) {
        cli_buf_printf(&c->out,
                       "{\"ok\":%s,\"records\":%llu,\"versions\":%llu,\"values\":%llu,"
                       "\"segments\":%llu,\"errors\":%llu,\"first_error\":",
                       r.ok ? "true" : "false", (unsigned long long)r.records,
                       (unsigned long long)r.versions, (unsigned long long)r.values,
                       (unsigned long long)r.segments, (unsigned long long)r.errors);
        cli_json_cstr(&c->out, r.ok || !r.first_error[0] ? NULL : r.first_error);
        cli_buf_puts(&c->out, ",\"error_list\":[");
        for (const char *p = r.error_list, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
            if (p != r.error_list) cli_buf_puts(&c->out, ",");
            cli_json_str(&c->out, p, (size_t)(nl - p));
        }
        cli_buf_puts(&c->out, "]}\n");
    } else {
        cli_buf_printf(&c->out, "Database Check: %s\n", r.ok ? "ok" : "FAILED");
        cli_buf_printf(&c->out, "  Path:      %s\n",
                       path ? path : realpath(c->db_path, abs) ? abs : c->db_path);
        if (open_err[0]) cli_buf_printf(&c->out, "  Open:      refused (%s)\n", open_err);
        cli_buf_printf(&c->out, "  Records:   %llu\n", (unsigned long long)r.records);
        cli_buf_printf(&c->out, "  Versions:  %llu\n", (unsigned long long)r.versions);
        cli_buf_printf(&c->out, "  Values:    %llu\n", (unsigned long long)r.values);
        cli_buf_printf(&c->out, "  Segments:  %llu\n", (unsigned long long)r.segments);
        cli_buf_printf(&c->out, "  Errors:    %llu\n", (unsigned long long)r.errors);
        for (const char *p = r.error_list, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
            cli_buf_printf(&c->out, "  Error:     %.*s\n", (int)(nl - p), p);
        if (r.errors > listed)
            cli_buf_printf(&c->out, "  ... and %llu more\n", (unsigned long long)(r.errors - listed));
    }
    free(path);
    if (!r.ok) {
        /* The report is the document on stdout; the error line goes to stderr. */
        c->err_no_json = 1;
        return cli_fail(c, KD_CORRUPT, "database check failed: %s",
                        r.first_error[0] ? r.first_error : "errors found");
    }
    return 0;
}

/* ---- backup -------------------------------------------------------------------------------- */

/* A progress bar on stderr, redrawn at most every percent; callers draw it only on a
** terminal. ctx: an int, -1 at first. */
void cli_progress_bar(void *ctx, uint64_t done, uint64_t total) {
    int *last = ctx;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == *last) return;
    *last = pct;
    char line[80];
    int fill = pct * 40 / 100;
    int n = snprintf(line, sizeof line, "\r[%.*s%*s] %3d%%", fill, "########################################",
                     40 - fill, "", pct);
    if (n > 0) fwrite(line, 1, (size_t)n, stderr);
}

int cli_cmd_backup(cli *c) {
    char abs[PATH_MAX];
    const char *dir = c->pos[0];
    char *path = NULL;
    uint64_t bytes = 0;
    int bar = -1;
    int rc, code;
    if (!dir[0]) return cli_fail(c, CLI_RC_USAGE, "backup: the directory is empty");
    /* The server (when there is one) works from its own directory: name the target
    ** absolutely, from here. */
    if (dir[0] != '/') {
        if (!getcwd(abs, sizeof abs) || strlen(abs) + strlen(dir) + 2 > sizeof abs)
            return cli_fail(c, KD_IOERR, "backup: cannot name %s absolutely", dir);
        strcat(abs, "/");
        strcat(abs, dir);
        dir = abs;
    }
    if ((code = cli_connect(c)) != 0) return code;
    int tty = !c->json && isatty(STDERR_FILENO) && !c->remote;
    rc = cli_op_backup(c, dir, tty ? cli_progress_bar : NULL, &bar, &bytes);
    if (tty && bar >= 0) fputs("\n", stderr);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "backup");
    if ((rc = cli_op_status(c, &(kd_stats){0}, &path)) != KD_OK) return cli_fail_kd(c, rc, NULL);
    if (c->json) {
        cli_buf_puts(&c->out, "{");
        cli_json_key(&c->out, "bytes");
        cli_buf_printf(&c->out, "%llu,", (unsigned long long)bytes);
        cli_json_key(&c->out, "dir");
        cli_json_cstr(&c->out, dir);
        cli_buf_puts(&c->out, ",");
        cli_json_key(&c->out, "source");
        cli_json_cstr(&c->out, path);
        cli_buf_puts(&c->out, "}\n");
    } else {
        cli_buf_printf(&c->out, "Backed up %s to %s (%llu bytes)\n", path, dir, (unsigned long long)bytes);
    }
    free(path);
    return 0;
}
