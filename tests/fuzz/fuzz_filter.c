/*
** fuzz_filter.c — fuzz target for the filter language (src/query/filter.h): the string
** form through the public kd_query_set_filter and kd__filter_parse, the JSON form through
** kd_query_set_filter_json, and evaluation against a few fixed documents.
**
** Input: byte 0 chooses the form (even = string form, odd = JSON form); the rest is the
** filter text. For every filter that parses:
**   - the public API and the internal parser agree (both accept, or both refuse);
**   - write_text and write_json each parse back to a filter with the same JSON form;
**   - evaluation gives 0 or 1 on every document, and `not (f)` gives the opposite
**     (the semantics are two-valued: docs/query.md).
** Reproduce: build/tests/test_fuzz_filter FILE.
*/
#include "fuzz.h"
#include "json/json.h"
#include "korudelta.h"
#include "query/filter.h"

#define MAX_INPUT 4096

/* Written by hand, made canonical once (the evaluator reads canonical text only). */
static const char *const docs_src[] = {
    "{\"age\":31,\"name\":\"Ada\",\"status\":\"active\",\"tags\":[\"a\",\"b\",1,null],"
    "\"address\":{\"city\":\"Paris\",\"zip\":\"75001\"},\"vip\":true,\"score\":2.5,\"n\":null}",
    "{\"age\":-1,\"name\":\"\",\"items\":[{\"price\":9.99,\"qty\":3},{\"price\":1}],"
    "\"and\":{\"or\":1},\"a-b\":\"x\\u0000y\",\"`\":\"tick\"}",
    "[1,2,{\"a\":1}]",
    "\"just a string\"",
    "null",
    "{}",
    "{\"big\":9223372036854775807,\"small\":-9223372036854775808,\"d\":1e300,\"u\":\"\xc3\xa9t\xc3\xa9\"}",
};
#define NDOCS (sizeof docs_src / sizeof docs_src[0])
static char *docs[NDOCS];
static size_t docs_len[NDOCS];

static void init_docs(void) {
    static int done;
    if (done) return;
    for (size_t i = 0; i < NDOCS; i++)
        FUZZ_ASSERT(kd_json_canonical(docs_src[i], strlen(docs_src[i]), &docs[i], &docs_len[i]) == KD_OK);
    done = 1;
}

/* The canonical JSON form of f (kd__buf_take'n; NULL when out of memory). */
static char *json_form(const kd_filter *f, size_t *len) {
    kd_buf b = KD_BUF_INIT;
    kd__filter_write_json(f, &b);
    if (b.oom) {
        kd__buf_free(&b);
        return NULL;
    }
    return kd__buf_take(&b, len);
}

static void check_filter(const kd_filter *f) {
    kd_buf text = KD_BUF_INIT, neg = KD_BUF_INIT;
    kd_filter *g = NULL, *h = NULL, *n = NULL;
    char *j1 = NULL, *j2 = NULL, *j3 = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0;
    int rc;

    if (!(j1 = json_form(f, &l1))) goto out;
    kd__filter_write_text(f, &text);
    if (text.oom) goto out;
    rc = kd__filter_parse(text.p ? text.p : "", text.len, &g);
    if (rc == KD_NOMEM) goto out;
    if (rc != KD_OK) fprintf(stderr, "text form does not parse back: %s\n  %s\n", text.p, kd_errmsg(NULL));
    FUZZ_ASSERT(rc == KD_OK);
    if (!(j2 = json_form(g, &l2))) goto out;
    if (l1 != l2 || memcmp(j1, j2, l1) != 0)
        fprintf(stderr, "text round trip differs:\n  %s\n  %s\n  via %s\n", j1, j2, text.p);
    FUZZ_ASSERT(l1 == l2 && memcmp(j1, j2, l1) == 0);

    rc = kd__filter_parse_json(j1, l1, &h);
    if (rc == KD_NOMEM) goto out;
    FUZZ_ASSERT(rc == KD_OK);
    if (!(j3 = json_form(h, &l3))) goto out;
    FUZZ_ASSERT(l1 == l3 && memcmp(j1, j3, l1) == 0);

    kd__buf_puts(&neg, "not (");
    kd__buf_append(&neg, text.p ? text.p : "", text.len);
    kd__buf_puts(&neg, ")");
    if (neg.oom) goto out;
    rc = kd__filter_parse(neg.p, neg.len, &n);
    if (rc == KD_NOMEM) goto out;
    FUZZ_ASSERT(rc == KD_OK);

    for (size_t i = 0; i < NDOCS; i++) {
        kd_qv doc = kd__qv_doc(docs[i], docs_len[i]);
        int a = kd__filter_eval(f, &doc), b = kd__filter_eval(g, &doc), c = kd__filter_eval(n, &doc);
        if (a < 0 || b < 0 || c < 0) continue; /* out of memory */
        FUZZ_ASSERT(a == 0 || a == 1);
        FUZZ_ASSERT(a == b);
        FUZZ_ASSERT(c == !a);
    }
out:
    kd__buf_free(&text);
    kd__buf_free(&neg);
    kd__filter_free(g);
    kd__filter_free(h);
    kd__filter_free(n);
    kd__free(j1);
    kd__free(j2);
    kd__free(j3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kd_query *q = NULL;
    kd_filter *f = NULL;
    char *s;
    int json, rc_pub, rc;
    if (size < 1 || size > MAX_INPUT) return 0;
    init_docs();
    json = data[0] & 1;
    if (!(s = fuzz_cstr(data + 1, size - 1))) return 0;
    if (kd_query_new(&q) != KD_OK) goto out;
    if (json) {
        rc_pub = kd_query_set_filter_json(q, s, size - 1);
        rc = kd__filter_parse_json(s, size - 1, &f);
    } else {
        rc_pub = kd_query_set_filter(q, s);
        /* The public call takes a C string: the parser sees the text up to a NUL. */
        rc = kd__filter_parse(s, strlen(s), &f);
    }
    FUZZ_ASSERT(rc == KD_OK || rc == KD_INVALID || rc == KD_NOMEM);
    if (rc != KD_NOMEM && rc_pub != KD_NOMEM) FUZZ_ASSERT(rc == rc_pub);
    if (rc == KD_OK) {
        char *txt = NULL;
        FUZZ_ASSERT(f != NULL);
        if (kd_query_filter_text(q, &txt) == KD_OK) kd_free(txt);
        check_filter(f);
    }
out:
    kd__filter_free(f);
    kd_query_free(q);
    free(s);
    return 0;
}
