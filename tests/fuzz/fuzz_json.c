/*
** fuzz_json.c — fuzz target for the JSON layer: the strict parser and canonical writer
** (kd_json_canonical, kd__json_parse, kd_json_pretty, kd_json_diff) and the in-place
** reader of the public API (kd_json_doc/get/next/string/int/double/bool) on arbitrary bytes.
**
** Invariants checked on every input (a violation aborts, which libFuzzer reports):
**   - kd_json_canonical and kd__json_parse agree on whether the text is valid;
**   - canonical(canonical(x)) == canonical(x), byte for byte;
**   - the tree of x equals the tree of canonical(x) (kd__json_equal);
**   - canonical(pretty(x)) == canonical(x);
**   - kd_json_diff(x, canonical(x)) is "[]";
**   - the in-place reader never reads outside the text it is given, malformed or not
**     (it is run on an exact-size copy of the raw bytes and on the canonical text), and
**     on canonical text the members it finds by iteration are found again by kd_json_get.
** Reproduce one input: build/tests/test_fuzz_json FILE (or build-fuzz/fuzz_json FILE).
*/
#include "fuzz.h"
#include "json/json.h"
#include "korudelta.h"

#define MAX_INPUT 65536

/* Reads every value reachable from v; depth bounds the recursion on malformed text. */
static void walk(kd_json_val v, int depth, int canonical) {
    int t = kd_json_type(v);
    size_t pos = 0;
    kd_json_val name, elem;
    char *s = NULL;
    size_t sl = 0;
    int64_t i;
    double d;
    int b;
    if (depth > KD_JSON_MAX_DEPTH + 8) return;
    switch (t) {
    case KD_JSON_STRING:
        if (kd_json_string(v, &s, &sl) == KD_OK) {
            FUZZ_ASSERT(s[sl] == 0);
            kd_free(s);
        }
        break;
    case KD_JSON_NUMBER:
        (void)kd_json_int(v, &i);
        (void)kd_json_double(v, &d);
        break;
    case KD_JSON_BOOL:
        (void)kd_json_bool(v, &b);
        break;
    case KD_JSON_ARRAY:
    case KD_JSON_OBJECT:
        while (kd_json_next(v, &pos, t == KD_JSON_OBJECT ? &name : NULL, &elem)) {
            if (t == KD_JSON_OBJECT && canonical) {
                char *k = NULL;
                size_t kl = 0;
                /* A key with an embedded NUL cannot be asked for by a C string. */
                if (kd_json_string(name, &k, &kl) == KD_OK) {
                    if (strlen(k) == kl) {
                        kd_json_val again = kd_json_get(v, k);
                        FUZZ_ASSERT(again.p == elem.p && again.len == elem.len);
                    }
                    kd_free(k);
                }
            }
            FUZZ_ASSERT(elem.p == NULL || (elem.p >= v.p && elem.p + elem.len <= v.p + v.len));
            walk(elem, depth + 1, canonical);
        }
        (void)kd_json_get(v, "a");
        (void)kd_json_get(v, "");
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    char *c1 = NULL, *c2 = NULL, *pretty = NULL, *c3 = NULL, *patch = NULL;
    size_t l1 = 0, l2 = 0, lp = 0, l3 = 0;
    kd_json *t1 = NULL, *t2 = NULL;
    kd_json_err err;
    int rc, prc;
    if (size > MAX_INPUT) return 0;

    /* The reader promises never to read past the end, even of malformed text. */
    walk(kd_json_doc(text, size), 0, 0);

    rc = kd_json_canonical(text, size, &c1, &l1);
    prc = kd__json_parse(text, size, &t1, &err);
    FUZZ_ASSERT(rc == KD_OK || rc == KD_INVALID || rc == KD_NOMEM);
    FUZZ_ASSERT((rc == KD_OK) == (prc == KD_OK));
    if (prc != KD_OK) FUZZ_ASSERT(err.pos <= size);
    if (rc != KD_OK) goto out;

    FUZZ_ASSERT(c1[l1] == 0);
    FUZZ_ASSERT(kd_json_canonical(c1, l1, &c2, &l2) == KD_OK);
    FUZZ_ASSERT(l1 == l2 && memcmp(c1, c2, l1) == 0);
    FUZZ_ASSERT(kd__json_parse(c1, l1, &t2, NULL) == KD_OK);
    FUZZ_ASSERT(kd__json_equal(t1, t2));

    FUZZ_ASSERT(kd_json_pretty(text, size, &pretty, &lp) == KD_OK);
    FUZZ_ASSERT(kd_json_canonical(pretty, lp, &c3, &l3) == KD_OK);
    FUZZ_ASSERT(l1 == l3 && memcmp(c1, c3, l1) == 0);

    FUZZ_ASSERT(kd_json_diff(text, size, c1, l1, &patch) == KD_OK);
    FUZZ_ASSERT(strcmp(patch, "[]") == 0);

    walk(kd_json_doc(c1, l1), 0, 1);
out:
    kd__json_free(t1);
    kd__json_free(t2);
    kd_free(c1);
    kd_free(c2);
    kd_free(pretty);
    kd_free(c3);
    kd_free(patch);
    return 0;
}
