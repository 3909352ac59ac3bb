/*
** cli_out.c — output and error plumbing of `kdelta`: the output buffer, JSON string
** writing (the CLI builds its JSON documents by hand around canonical values the library
** returns), the mapping of status codes to exit codes and error codes, and small helpers
** the commands share (NS/KEY splitting, reading a file or stdin, pretty values).
**
** May call: the public API (korudelta.h) and the C library.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- buffer ---------------------------------------------------------------------------- */

static int buf_grow(cli_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (extra > SIZE_MAX / 2 - b->len) goto oom;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) goto oom;
    b->p = p;
    b->cap = cap;
    return 0;
oom:
    b->oom = 1;
    return -1;
}

void cli_buf_add(cli_buf *b, const char *s, size_t n) {
    if (buf_grow(b, n) != 0) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void cli_buf_puts(cli_buf *b, const char *s) { cli_buf_add(b, s, strlen(s)); }

void cli_buf_printf(cli_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        cli_buf_add(b, small, (size_t)n);
        return;
    }
    if (buf_grow(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cli_buf_free(cli_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

/* ---- JSON ------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one.
** Overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void cli_json_str(cli_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    cli_buf_add(b, "\"", 1);
    while (i < n) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            cli_buf_add(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\b': cli_buf_add(b, "\\b", 2); break;
            case '\f': cli_buf_add(b, "\\f", 2); break;
            case '\n': cli_buf_add(b, "\\n", 2); break;
            case '\r': cli_buf_add(b, "\\r", 2); break;
            case '\t': cli_buf_add(b, "\\t", 2); break;
            default: cli_buf_printf(b, "\\u%04x", c); break;
            }
            i++;
        } else {
            size_t len = utf8_seq_len(u + i, n - i);
            if (len == 0) {
                cli_buf_add(b, "\\ufffd", 6);
                i++;
            } else {
                cli_buf_add(b, s + i, len);
                i += len;
            }
        }
    }
    cli_buf_add(b, "\"", 1);
}

void cli_json_cstr(cli_buf *b, const char *s) {
    if (s) cli_json_str(b, s, strlen(s));
    else cli_buf_add(b, "null", 4);
}

void cli_json_key(cli_buf *b, const char *name) { cli_buf_printf(b, "\"%s\":", name); }

void cli_json_hex(cli_buf *b, const uint8_t id[32]) {
    char hex[65];
    kd_hex(id, hex);
    cli_buf_printf(b, "\"%s\"", hex);
}

void cli_json_time(cli_buf *b, int64_t ts) {
    char t[32];
    kd_format_time(ts, t);
    cli_buf_printf(b, "\"%s\"", t);
}

/* ---- errors ------------------------------------------------------------------------------ */

int cli_exit_code(int rc) {
    switch (rc) {
    case KD_OK: return CLI_EXIT_OK;
    case CLI_RC_USAGE: return CLI_EXIT_USAGE;
    case KD_NOTFOUND: return CLI_EXIT_NOTFOUND;
    case KD_CONFLICT: return CLI_EXIT_CONFLICT;
    default: return CLI_EXIT_ERROR;
    }
}

const char *cli_error_code(int rc) {
    switch (rc) {
    case CLI_RC_USAGE: return "usage";
    case KD_NOTFOUND: return "not_found";
    case KD_CONFLICT: return "conflict";
    case KD_INVALID: return "invalid";
    case KD_TOOBIG: return "too_big";
    case KD_AMBIGUOUS: return "ambiguous";
    case KD_BUSY: return "busy";
    case KD_CORRUPT: return "corrupt";
    case KD_FORMAT: return "unsupported_format";
    case KD_IOERR: return "io_error";
    case KD_FULL: return "disk_full";
    case KD_NOMEM: return "out_of_memory";
    case KD_READONLY: return "read_only";
    default: return "error";
    }
}

int cli_fail(cli *c, int rc, const char *fmt, ...) {
    va_list ap;
    if (c->err_final) return cli_exit_code(c->err_rc); /* e.g. "cannot reach the server" */
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    c->err_rc = rc ? rc : KD_ERROR;
    return cli_exit_code(c->err_rc);
}

int cli_fail_kd(cli *c, int rc, const char *what) {
    /* After a failed remote operation the message is the server's, which is the
    ** library's message on the server's side. */
    const char *m = c->op_msg_set ? c->op_msg : kd_errmsg(c->db);
    c->op_msg_set = 0;
    if (!m || !*m) m = kd_strerror(rc);
    if (what) return cli_fail(c, rc, "%s: %s", what, m);
    return cli_fail(c, rc, "%s", m);
}

/* ---- shared helpers ---------------------------------------------------------------------- */

int cli_split_name(cli *c, const char *arg, int allow_system, char **ns, char **key) {
    const char *slash = strchr(arg, '/');
    int rc;
    *ns = *key = NULL;
    if (!slash)
        return cli_fail(c, KD_INVALID, "expected NS/KEY, got '%s' (no '/' between namespace and key)", arg);
    *ns = strndup(arg, (size_t)(slash - arg));
    *key = strdup(slash + 1);
    if (!*ns || !*key) {
        rc = cli_fail(c, KD_NOMEM, "out of memory");
        goto fail;
    }
    if (**ns == '\0') {
        rc = cli_fail(c, KD_INVALID, "empty namespace in '%s'", arg);
        goto fail;
    }
    if (**key == '\0') {
        rc = cli_fail(c, KD_INVALID, "empty key in '%s'", arg);
        goto fail;
    }
    if ((rc = kd_valid_namespace(*ns, allow_system)) != KD_OK) {
        rc = cli_fail_kd(c, rc, NULL);
        goto fail;
    }
    if ((rc = kd_valid_key(*key)) != KD_OK) {
        rc = cli_fail_kd(c, rc, NULL);
        goto fail;
    }
    return 0;
fail:
    free(*ns);
    free(*key);
    *ns = *key = NULL;
    return rc;
}

int cli_read_file(cli *c, const char *path, char **out, size_t *len) {
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    cli_buf b = {0};
    char chunk[65536];
    size_t n;
    int rc = 0;
    *out = NULL;
    *len = 0;
    if (!f) return cli_fail(c, KD_IOERR, "cannot open %s: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) cli_buf_add(&b, chunk, n);
    if (ferror(f)) {
        rc = cli_fail(c, KD_IOERR, "cannot read %s: %s", is_stdin ? "standard input" : path,
                      strerror(errno));
        goto out;
    }
    cli_buf_add(&b, "", 0); /* make sure there is a buffer, NUL-terminated */
    if (b.oom) {
        rc = cli_fail(c, KD_NOMEM, "out of memory reading %s", is_stdin ? "standard input" : path);
        goto out;
    }
    *out = b.p;
    *len = b.len;
    b.p = NULL;
out:
    if (!is_stdin) fclose(f);
    cli_buf_free(&b);
    return rc;
}

void cli_short_id(const uint8_t id[32], char out[9]) {
    char hex[65];
    kd_hex(id, hex);
    memcpy(out, hex, 8);
    out[8] = '\0';
}

int cli_put_pretty(cli *c, cli_buf *b, const char *json, size_t len) {
    char *pretty = NULL;
    size_t plen = 0;
    int rc = kd_json_pretty(json, len, &pretty, &plen);
    if (rc != KD_OK) return cli_fail_kd(c, rc, "formatting value");
    cli_buf_add(b, pretty, plen);
    cli_buf_add(b, "\n", 1);
    kd_free(pretty);
    return 0;
}

void cli_add_short_value(cli_buf *b, const char *v, size_t len) {
    if (len <= CLI_SHORT_VALUE_MAX) {
        cli_buf_add(b, v, len);
        return;
    }
    size_t n = CLI_SHORT_VALUE_MAX - 3;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80) n--;
    cli_buf_add(b, v, n);
    cli_buf_puts(b, "...");
}

/* ---- reading canonical JSON ----------------------------------------------------------- */

size_t cli_json_skip_string(const char *s, size_t i, size_t n) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return n;
}

size_t cli_json_skip_value(const char *s, size_t i, size_t n) {
    if (i >= n) return n;
    if (s[i] == '"') return cli_json_skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < n) {
            char ch = s[i];
            if (ch == '"') {
                i = cli_json_skip_string(s, i, n);
                continue;
            }
            if (ch == '{' || ch == '[') depth++;
            else if ((ch == '}' || ch == ']') && --depth == 0) return i + 1;
            i++;
        }
        return n;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']') i++;
    return i;
}
