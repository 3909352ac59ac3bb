/*
** wire.c — the JSON the HTTP API speaks, written and read in one place: the wire form of a
** version (kd_entry_to_json / kd_entry_from_json), of a view (kd_view_info_to_json), and
** the public in-place reader of canonical JSON (kd_json_*) that clients of the API use to
** pick members out of answers.
**
** The reader is a thin public face over the query layer's cursor (query/jv.h): same
** bounds checks, same "malformed reads as missing" rule.
**
** May call: base, json, query/jv.
*/
#include <string.h>

#include "base/base.h"
#include "base/timefmt.h"
#include "json/json.h"
#include "korudelta.h"
#include "query/jv.h"

/* ---- the reader ------------------------------------------------------------------- */

static kd_qv to_qv(kd_json_val v) {
    if (!v.p) return (kd_qv){KD_QV_MISSING, NULL, 0};
    return kd__qv_doc(v.p, v.len);
}

static kd_json_val from_qv(kd_qv q) {
    if (q.t == KD_QV_MISSING) return (kd_json_val){NULL, 0};
    return (kd_json_val){q.p, q.n};
}

kd_json_val kd_json_doc(const char *text, size_t len) {
    if (!text) return (kd_json_val){NULL, 0};
    return from_qv(kd__qv_doc(text, len));
}

int kd_json_type(kd_json_val v) {
    switch (to_qv(v).t) {
    case KD_QV_NULL: return KD_JSON_NULL;
    case KD_QV_FALSE:
    case KD_QV_TRUE: return KD_JSON_BOOL;
    case KD_QV_NUM: return KD_JSON_NUMBER;
    case KD_QV_STR: return KD_JSON_STRING;
    case KD_QV_ARR: return KD_JSON_ARRAY;
    case KD_QV_OBJ: return KD_JSON_OBJECT;
    default: return KD_JSON_MISSING;
    }
}

kd_json_val kd_json_get(kd_json_val v, const char *name) {
    kd_qv q = to_qv(v);
    return from_qv(kd__qv_member(&q, name, strlen(name)));
}

int kd_json_next(kd_json_val v, size_t *pos, kd_json_val *name, kd_json_val *elem) {
    kd_qv q = to_qv(v), k, e;
    if (!kd__qv_next(&q, pos, &k, &e)) return 0;
    if (name) *name = q.t == KD_QV_OBJ ? from_qv(k) : (kd_json_val){NULL, 0};
    if (elem) *elem = from_qv(e);
    return 1;
}

int kd_json_string(kd_json_val v, char **out, size_t *len) {
    kd_qv q = to_qv(v);
    if (q.t != KD_QV_STR) return kd__err(KD_INVALID, "expected a JSON string");
    kd_buf tmp = KD_BUF_INIT;
    const char *s;
    size_t n;
    int rc = kd__qv_str(&q, &tmp, &s, &n);
    if (rc == KD_OK) {
        *out = kd__strndup(s, n);
        if (!*out) rc = kd__err(KD_NOMEM, "out of memory");
        else if (len) *len = n;
    }
    kd__buf_free(&tmp);
    return rc;
}

int kd_json_int(kd_json_val v, int64_t *out) {
    kd_qv q = to_qv(v);
    if (q.t != KD_QV_NUM) return kd__err(KD_INVALID, "expected a JSON number");
    kd_qnum n = kd__qv_num(&q);
    if (!n.is_int) return kd__err(KD_INVALID, "expected an integer within int64");
    *out = n.i;
    return KD_OK;
}

int kd_json_double(kd_json_val v, double *out) {
    kd_qv q = to_qv(v);
    if (q.t != KD_QV_NUM) return kd__err(KD_INVALID, "expected a JSON number");
    kd_qnum n = kd__qv_num(&q);
    *out = n.is_int ? (double)n.i : n.d;
    return KD_OK;
}

int kd_json_bool(kd_json_val v, int *out) {
    kd_qv q = to_qv(v);
    if (q.t != KD_QV_TRUE && q.t != KD_QV_FALSE) return kd__err(KD_INVALID, "expected true or false");
    *out = q.t == KD_QV_TRUE;
    return KD_OK;
}

/* ---- versions ----------------------------------------------------------------------- */

static const char *change_name(int change) {
    switch (change) {
    case KD_CHANGE_INSERT: return "insert";
    case KD_CHANGE_UPDATE: return "update";
    case KD_CHANGE_DELETE: return "delete";
    default: return NULL;
    }
}

/* `,"name":` */
static void put_name(kd_buf *b, const char *name) {
    kd__buf_append(b, ",\"", 2);
    kd__buf_puts(b, name);
    kd__buf_append(b, "\":", 2);
}

static void put_hex(kd_buf *b, const char *name, const uint8_t id[32]) {
    char hex[67];
    kd_hex(id, hex + 1);
    hex[0] = hex[65] = '"';
    put_name(b, name);
    kd__buf_append(b, hex, 66);
}

static void put_time(kd_buf *b, const char *name, int64_t ts) {
    char t[34];
    kd_format_time(ts, t + 1);
    size_t n = strlen(t + 1);
    t[0] = t[n + 1] = '"';
    put_name(b, name);
    kd__buf_append(b, t, n + 2);
}

static void put_u64(kd_buf *b, const char *name, uint64_t v) {
    char d[24], *p = d + sizeof d;
    do *--p = (char)('0' + v % 10); while ((v /= 10) != 0);
    put_name(b, name);
    kd__buf_append(b, p, (size_t)(d + sizeof d - p));
}

static int hand_over(kd_buf *b, char **out, size_t *len) {
    if (b->oom) {
        kd__buf_free(b);
        return kd__err(KD_NOMEM, "out of memory");
    }
    *out = kd__buf_take(b, len);
    return *out ? KD_OK : kd__err(KD_NOMEM, "out of memory");
}

/* Members are written in canonical (sorted) order, so that the documents can be read with
** kd_json_get as they are. */
int kd_entry_to_json(const kd_entry *e, int flags, char **out, size_t *len) {
    kd_buf b = KD_BUF_INIT;
    *out = NULL;
    if (!e || !e->ns || !e->key) return kd__err(KD_INVALID, "entry without namespace or key");
    /* One allocation in the common case: the fixed members take about 330 bytes. */
    size_t nk = strlen(e->key), nn = strlen(e->ns);
    if (kd__buf_reserve(&b, 384 + 2 * (nk + nn) + (e->value ? e->value_len : 0)) != KD_OK)
        return kd__err(KD_NOMEM, "out of memory");
    kd__buf_putc(&b, '{');
    if ((flags & KD_WIRE_CHANGE) && change_name(e->change))
        kd__buf_printf(&b, "\"change\":\"%s\",", change_name(e->change));
    kd__buf_puts(&b, e->deleted ? "\"deleted\":true,\"key\":" : "\"deleted\":false,\"key\":");
    kd__json_write_string(&b, e->key, nk);
    kd__buf_puts(&b, ",\"namespace\":");
    kd__json_write_string(&b, e->ns, nn);
    if (e->has_previous) put_hex(&b, "previous_version", e->previous_version);
    else kd__buf_puts(&b, ",\"previous_version\":null");
    put_u64(&b, "seq", e->seq);
    put_time(&b, "timestamp", e->timestamp);
    if (flags & KD_WIRE_VALUE) {
        kd__buf_puts(&b, ",\"value\":");
        if (e->deleted || !e->value) kd__buf_puts(&b, "null");
        else kd__buf_append(&b, e->value, e->value_len);
    }
    if (e->deleted) kd__buf_puts(&b, ",\"value_hash\":null");
    else put_hex(&b, "value_hash", e->value_hash);
    put_hex(&b, "version_id", e->version_id);
    kd__buf_putc(&b, '}');
    return hand_over(&b, out, len);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A member holding 64 hex digits into id. *present = 0 for null. */
static int read_id(kd_json_val doc, const char *name, uint8_t id[32], int *present, int required) {
    kd_json_val v = kd_json_get(doc, name);
    if (present) *present = 0;
    if (kd_json_type(v) == KD_JSON_NULL && !required) return KD_OK;
    if (kd_json_type(v) != KD_JSON_STRING || v.len != 66)
        return kd__err(KD_INVALID, "version document: \"%s\" must be 64 hex digits%s", name,
                       required ? "" : " or null");
    for (int i = 0; i < 32; i++) {
        int hi = hex_digit(v.p[1 + 2 * i]), lo = hex_digit(v.p[2 + 2 * i]);
        if (hi < 0 || lo < 0) return kd__err(KD_INVALID, "version document: \"%s\" is not hex", name);
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    if (present) *present = 1;
    return KD_OK;
}

static int read_entry(kd_json_val doc, kd_entry *e) {
    int rc;
    int64_t seq;
    char *ts = NULL;
    if (kd_json_type(doc) != KD_JSON_OBJECT) return kd__err(KD_INVALID, "version document: not an object");
    if ((rc = kd_json_string(kd_json_get(doc, "namespace"), &e->ns, NULL)) != KD_OK ||
        (rc = kd_json_string(kd_json_get(doc, "key"), &e->key, NULL)) != KD_OK)
        return rc == KD_NOMEM ? rc : kd__err(KD_INVALID, "version document: \"namespace\" and \"key\" must be strings");
    if (kd_json_int(kd_json_get(doc, "seq"), &seq) != KD_OK || seq < 0)
        return kd__err(KD_INVALID, "version document: \"seq\" must be a non-negative integer");
    e->seq = (uint64_t)seq;
    if ((rc = read_id(doc, "version_id", e->version_id, NULL, 1)) != KD_OK) return rc;
    if ((rc = read_id(doc, "previous_version", e->previous_version, &e->has_previous, 0)) != KD_OK) return rc;
    int has_hash;
    if ((rc = read_id(doc, "value_hash", e->value_hash, &has_hash, 0)) != KD_OK) return rc;
    kd_json_val del = kd_json_get(doc, "deleted");
    if (del.p) {
        if (kd_json_bool(del, &e->deleted) != KD_OK)
            return kd__err(KD_INVALID, "version document: \"deleted\" must be true or false");
    } else {
        e->deleted = !has_hash;
    }
    if ((rc = kd_json_string(kd_json_get(doc, "timestamp"), &ts, NULL)) != KD_OK)
        return rc == KD_NOMEM ? rc : kd__err(KD_INVALID, "version document: \"timestamp\" must be a string");
    rc = kd__time_parse_rfc3339(ts, &e->timestamp);
    kd__free(ts);
    if (rc != KD_OK) return kd__err(KD_INVALID, "version document: \"timestamp\" is not RFC 3339");
    kd_json_val change = kd_json_get(doc, "change");
    if (change.p) {
        static const char *names[] = {"\"insert\"", "\"update\"", "\"delete\""};
        e->change = 0;
        for (int i = 0; i < 3; i++)
            if (change.len == strlen(names[i]) && memcmp(change.p, names[i], change.len) == 0)
                e->change = i + 1;
        if (!e->change) return kd__err(KD_INVALID, "version document: unknown \"change\"");
    } else {
        e->change = e->deleted ? KD_CHANGE_DELETE : e->has_previous ? KD_CHANGE_UPDATE : KD_CHANGE_INSERT;
    }
    kd_json_val value = kd_json_get(doc, "value");
    if (value.p && !e->deleted) {
        e->value = kd__strndup(value.p, value.len);
        if (!e->value) return kd__err(KD_NOMEM, "out of memory");
        e->value_len = value.len;
    }
    return KD_OK;
}

int kd_entry_from_json(const char *json, size_t len, kd_entry *out) {
    kd_buf canon = KD_BUF_INIT;
    kd_json_err jerr;
    memset(out, 0, sizeof *out);
    int rc = kd__json_canonicalize(json, len, &canon, &jerr);
    if (rc != KD_OK) {
        kd__buf_free(&canon);
        return rc == KD_NOMEM ? kd__err(KD_NOMEM, "out of memory")
                              : kd__err(KD_INVALID, "version document: %s at byte %zu", jerr.msg, jerr.pos);
    }
    rc = read_entry(kd_json_doc(canon.p, canon.len), out);
    if (rc != KD_OK) kd_entry_clear(out);
    kd__buf_free(&canon);
    return rc;
}

/* ---- views ---------------------------------------------------------------------------- */

int kd_view_info_to_json(const kd_view_info *v, char **out, size_t *len) {
    kd_buf b = KD_BUF_INIT;
    *out = NULL;
    kd__buf_printf(&b, "{\"auto_refresh\":%s", v->auto_refresh ? "true" : "false");
    put_time(&b, "created", v->created);
    kd__buf_puts(&b, ",\"description\":");
    const char *d = v->description ? v->description : "";
    kd__json_write_string(&b, d, strlen(d));
    kd__buf_puts(&b, ",\"filter\":");
    const char *f = v->filter ? v->filter : "";
    kd__json_write_string(&b, f, strlen(f));
    kd__buf_puts(&b, ",\"name\":");
    kd__json_write_string(&b, v->name, strlen(v->name));
    kd__buf_puts(&b, ",\"query\":");
    if (v->query && *v->query) kd__buf_puts(&b, v->query); /* canonical JSON already */
    else kd__buf_puts(&b, "null");
    put_u64(&b, "records", v->records);
    put_time(&b, "refreshed", v->refreshed);
    kd__buf_puts(&b, ",\"source\":");
    kd__json_write_string(&b, v->source, strlen(v->source));
    kd__buf_putc(&b, '}');
    return hand_over(&b, out, len);
}
