/*
** json_api.c — the public JSON helpers of include/korudelta.h: kd_json_canonical,
** kd_json_pretty and kd_json_diff. Thin wrappers over the json layer.
**
** May call: the json layer (json.h), base and the C library.
**
** Invariants: on success the caller owns *out / *patch (NUL-terminated, kd_free); on
** failure they are set to NULL and kd_errmsg() explains (bad JSON carries its byte
** position). Nothing is leaked on any path.
*/
#include "json/json.h"

static int take(kd_buf *b, char **out, size_t *out_len, int rc) {
    if (rc == KD_OK && b->oom) rc = kd__err(KD_NOMEM, "out of memory while writing JSON");
    if (rc == KD_OK) {
        size_t n = 0;
        *out = kd__buf_take(b, &n);
        if (!*out) rc = kd__err(KD_NOMEM, "out of memory while writing JSON");
        else if (out_len) *out_len = n;
    }
    kd__buf_free(b);
    return rc;
}

static int check_args(const char *json, char **out) {
    if (!out) return kd__err(KD_INVALID, "no output pointer");
    *out = NULL;
    if (!json) return kd__err(KD_INVALID, "no JSON text");
    return KD_OK;
}

int kd_json_canonical(const char *json, size_t len, char **out, size_t *out_len) {
    kd_buf b = KD_BUF_INIT;
    int rc = check_args(json, out);
    if (rc == KD_OK) rc = kd__json_canonicalize(json, len, &b, NULL);
    return take(&b, out, out_len, rc);
}

int kd_json_pretty(const char *json, size_t len, char **out, size_t *out_len) {
    kd_buf b = KD_BUF_INIT;
    kd_json *v = NULL;
    int rc = check_args(json, out);
    if (rc == KD_OK) rc = kd__json_parse(json, len, &v, NULL);
    if (rc == KD_OK) kd__json_write_pretty(v, &b, 2);
    kd__json_free(v);
    return take(&b, out, out_len, rc);
}

int kd_json_diff(const char *a, size_t alen, const char *b, size_t blen, char **patch) {
    kd_buf out = KD_BUF_INIT;
    kd_json *va = NULL, *vb = NULL;
    int rc = KD_OK;
    if (!patch) return kd__err(KD_INVALID, "no output pointer");
    *patch = NULL;
    kd_json_err err;
    if (a && (rc = kd__json_parse(a, alen, &va, &err)) == KD_INVALID)
        kd__err(rc, "invalid JSON in the first document at byte %zu: %s", err.pos, err.msg);
    if (rc == KD_OK && b && (rc = kd__json_parse(b, blen, &vb, &err)) == KD_INVALID)
        kd__err(rc, "invalid JSON in the second document at byte %zu: %s", err.pos, err.msg);
    if (rc == KD_OK) rc = kd__json_diff(va, vb, &out);
    kd__json_free(va);
    kd__json_free(vb);
    return take(&out, patch, NULL, rc);
}
