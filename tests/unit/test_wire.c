/*
** test_wire.c — the wire form of versions and views, and the public JSON reader: real
** versions survive to_json/from_json unchanged, documents in any spelling read back,
** malformed ones are refused with a reason, and the reader never reads past the text.
*/
#include <stdint.h>
#include <unistd.h>

#include "korudelta.h"
#include "t.h"

static char dir[256];

static kd_db *open_fresh(void) {
    t_fresh_dir(dir, sizeof dir, "wire");
    return t_open(dir, KD_SYNC_OFF);
}

static void check_same(const kd_entry *a, const kd_entry *b, int with_value) {
    CHECK_EQ_STR(a->ns, b->ns);
    CHECK_EQ_STR(a->key, b->key);
    CHECK_EQ_INT(a->seq, b->seq);
    CHECK_EQ_INT(a->timestamp, b->timestamp);
    CHECK(memcmp(a->version_id, b->version_id, 32) == 0);
    CHECK_EQ_INT(a->deleted, b->deleted);
    if (!a->deleted) CHECK(memcmp(a->value_hash, b->value_hash, 32) == 0);
    CHECK_EQ_INT(a->has_previous, b->has_previous);
    if (a->has_previous) CHECK(memcmp(a->previous_version, b->previous_version, 32) == 0);
    if (with_value && !a->deleted) {
        CHECK_EQ_INT(a->value_len, b->value_len);
        CHECK_EQ_STR(a->value, b->value);
    }
}

TEST(versions_round_trip) {
    kd_db *db = open_fresh();
    const char *key = "we\"ird/\xc3\xa5\\k y";
    const char *v1 = "{\"a\":[1,2.5,\"\\u0000x\"]}", *v2 = "{\"a\":null}";
    kd_entry w1, w2, del, got;
    CHECK_EQ_INT(kd_put(db, "n_s.x", key, v1, strlen(v1), NULL, &w1), KD_OK);
    CHECK_EQ_INT(kd_put(db, "n_s.x", key, v2, strlen(v2), NULL, &w2), KD_OK);
    CHECK_EQ_INT(kd_delete(db, "n_s.x", key, &del), KD_OK);

    kd_entry *hist = NULL;
    size_t n = 0, total = 0;
    CHECK_EQ_INT(kd_history(db, "n_s.x", key, 0, 0, 1, &hist, &n, &total), KD_OK);
    CHECK_EQ_INT(n, 3);
    if (n != 3) return;
    for (size_t i = 0; i < n; i++) {
        for (int flags = 0; flags <= (KD_WIRE_VALUE | KD_WIRE_CHANGE); flags++) {
            char *json = NULL;
            size_t len = 0;
            CHECK_EQ_INT(kd_entry_to_json(&hist[i], flags, &json, &len), KD_OK);
            CHECK_EQ_INT(len, strlen(json));
            CHECK_EQ_INT(kd_entry_from_json(json, len, &got), KD_OK);
            check_same(&hist[i], &got, flags & KD_WIRE_VALUE);
            if (!(flags & KD_WIRE_VALUE)) CHECK(got.value == NULL);
            if (flags & KD_WIRE_CHANGE) CHECK_EQ_INT(got.change, hist[i].change);
            kd_entry_clear(&got);
            kd_free(json);
        }
    }
    /* The change type follows from the document when "change" is absent. */
    CHECK_EQ_INT(hist[0].change, KD_CHANGE_INSERT);
    CHECK_EQ_INT(hist[2].deleted, 1);
    kd_entries_free(hist, n);
    kd_entry_clear(&w1);
    kd_entry_clear(&w2);
    kd_entry_clear(&del);
    kd_close(db);
}

TEST(reads_any_spelling) {
    const char *doc =
        "{ \"value\" : {\"b\":1, \"a\":[true]}, \"key\":\"k\",\"namespace\":\"ns\", \"seq\":7,"
        "\"version_id\":\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\","
        "\"value_hash\":\"0000000000000000000000000000000000000000000000000000000000000001\","
        "\"timestamp\":\"2026-01-01T13:00:00.5+01:00\",\"previous_version\":null,\"extra\":[1]}";
    kd_entry e;
    CHECK_EQ_INT(kd_entry_from_json(doc, strlen(doc), &e), KD_OK);
    CHECK_EQ_STR(e.ns, "ns");
    CHECK_EQ_STR(e.key, "k");
    CHECK_EQ_INT(e.seq, 7);
    CHECK_EQ_INT(e.version_id[5], 0x55);
    CHECK_EQ_INT(e.version_id[10], 0xaa);
    CHECK_EQ_INT(e.value_hash[31], 1);
    CHECK_EQ_INT(e.has_previous, 0);
    CHECK_EQ_INT(e.deleted, 0);
    CHECK_EQ_INT(e.change, KD_CHANGE_INSERT);
    CHECK_EQ_INT(e.timestamp, 1767268800500000LL);
    CHECK_EQ_STR(e.value, "{\"a\":[true],\"b\":1}");
    kd_entry_clear(&e);
}

TEST(refuses_bad_documents) {
    static const char *bad[] = {
        "", "[]", "{\"namespace\":\"n\"}", "{\"namespace\":\"n\",\"key\":\"k\",\"seq\":-1}",
        "{\"namespace\":\"n\",\"key\":\"k\",\"seq\":1,\"version_id\":\"12\",\"timestamp\":\"2026-01-01T00:00:00Z\"}",
        "{\"namespace\":\"n\",\"key\":\"k\",\"seq\":1,\"version_id\":"
        "\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"timestamp\":\"2026-01-01T00:00:00Z\"}",
        "{\"namespace\":\"n\",\"key\":\"k\",\"seq\":1,\"version_id\":"
        "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"timestamp\":\"yesterday\"}",
        "{\"namespace\":\"n\",\"key\":\"k\",\"seq\":1,\"version_id\":"
        "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"timestamp\":"
        "\"2026-01-01T00:00:00Z\",\"change\":\"rename\"}",
        "{\"namespace\":\"n\",\"key\":\"k\"", "{\"namespace\":1,\"key\":\"k\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kd_entry e;
        int rc = kd_entry_from_json(bad[i], strlen(bad[i]), &e);
        if (rc != KD_INVALID) fprintf(stderr, "  case %zu: rc %d\n", i, rc);
        CHECK_EQ_INT(rc, KD_INVALID);
        CHECK(e.ns == NULL && e.key == NULL && e.value == NULL);
        CHECK(strstr(kd_errmsg(NULL), "version document") != NULL);
    }
}

TEST(reader) {
    const char *t = "{\"a\":[1,-2,3.5,\"x\\\"y\\u00e5\",null,true,{\"k\":false}],\"b\\u0020c\":9223372036854775807,\"z\":{}}";
    char *canon = NULL;
    size_t clen = 0;
    CHECK_EQ_INT(kd_json_canonical(t, strlen(t), &canon, &clen), KD_OK);
    kd_json_val doc = kd_json_doc(canon, clen);
    CHECK_EQ_INT(kd_json_type(doc), KD_JSON_OBJECT);
    kd_json_val a = kd_json_get(doc, "a");
    CHECK_EQ_INT(kd_json_type(a), KD_JSON_ARRAY);
    int types[8], k = 0;
    size_t pos = 0;
    kd_json_val el, name;
    while (kd_json_next(a, &pos, &name, &el) && k < 8) {
        CHECK(name.p == NULL);
        types[k++] = kd_json_type(el);
    }
    CHECK_EQ_INT(k, 7);
    CHECK_EQ_INT(types[0], KD_JSON_NUMBER);
    CHECK_EQ_INT(types[3], KD_JSON_STRING);
    CHECK_EQ_INT(types[4], KD_JSON_NULL);
    CHECK_EQ_INT(types[5], KD_JSON_BOOL);
    CHECK_EQ_INT(types[6], KD_JSON_OBJECT);
    int64_t i64 = 0;
    CHECK_EQ_INT(kd_json_int(kd_json_get(doc, "b c"), &i64), KD_OK);
    CHECK(i64 == INT64_MAX);
    double d = 0;
    pos = 0;
    kd_json_next(a, &pos, NULL, &el);
    kd_json_next(a, &pos, NULL, &el);
    CHECK_EQ_INT(kd_json_int(el, &i64), KD_OK);
    CHECK_EQ_INT(i64, -2);
    kd_json_next(a, &pos, NULL, &el);
    CHECK_EQ_INT(kd_json_int(el, &i64), KD_INVALID);
    CHECK_EQ_INT(kd_json_double(el, &d), KD_OK);
    CHECK(d == 3.5);
    kd_json_next(a, &pos, NULL, &el);
    char *s = NULL;
    size_t slen = 0;
    CHECK_EQ_INT(kd_json_string(el, &s, &slen), KD_OK);
    CHECK_EQ_STR(s, "x\"y\xc3\xa5");
    CHECK_EQ_INT(slen, 5);
    kd_free(s);
    CHECK_EQ_INT(kd_json_string(a, &s, NULL), KD_INVALID);
    int bv = 0;
    kd_json_next(a, &pos, NULL, &el);
    CHECK_EQ_INT(kd_json_bool(el, &bv), KD_INVALID);
    kd_json_next(a, &pos, NULL, &el);
    CHECK_EQ_INT(kd_json_bool(el, &bv), KD_OK);
    CHECK_EQ_INT(bv, 1);
    /* Object iteration gives the member names. */
    pos = 0;
    k = 0;
    while (kd_json_next(doc, &pos, &name, &el)) {
        CHECK_EQ_INT(kd_json_type(name), KD_JSON_STRING);
        k++;
    }
    CHECK_EQ_INT(k, 3);
    /* Missing things read as missing, never crash. */
    CHECK(kd_json_get(doc, "nope").p == NULL);
    CHECK(kd_json_get(a, "a").p == NULL);
    CHECK_EQ_INT(kd_json_type(kd_json_get(kd_json_get(doc, "nope"), "x")), KD_JSON_MISSING);
    CHECK_EQ_INT(kd_json_type(kd_json_doc(NULL, 0)), KD_JSON_MISSING);
    /* Every truncation of the text reads as missing or as a smaller value, never past it. */
    for (size_t cut = 0; cut < clen; cut++) {
        char *p = malloc(cut ? cut : 1);
        memcpy(p, canon, cut);
        kd_json_val v = kd_json_doc(p, cut);
        kd_json_val x = kd_json_get(kd_json_get(v, "a"), "k");
        (void)x;
        free(p);
    }
    kd_free(canon);
}

TEST(view_json) {
    kd_db *db = open_fresh();
    kd_query *q = NULL;
    CHECK_EQ_INT(kd_query_new(&q), KD_OK);
    CHECK_EQ_INT(kd_query_set_filter(q, "age > 3"), KD_OK);
    CHECK_EQ_INT(kd_put(db, "users", "a", "{\"age\":5}", 9, NULL, NULL), KD_OK);
    CHECK_EQ_INT(kd_view_create(db, "v1", "users", q, "a \"note\"", 1), KD_OK);
    kd_view_info *v = NULL;
    CHECK_EQ_INT(kd_view_get(db, "v1", &v), KD_OK);
    char *json = NULL;
    size_t len = 0;
    CHECK_EQ_INT(kd_view_info_to_json(v, &json, &len), KD_OK);
    kd_json_val doc = kd_json_doc(json, len);
    CHECK_EQ_INT(kd_json_type(doc), KD_JSON_OBJECT);
    char *s = NULL;
    CHECK_EQ_INT(kd_json_string(kd_json_get(doc, "description"), &s, NULL), KD_OK);
    CHECK_EQ_STR(s, "a \"note\"");
    kd_free(s);
    CHECK_EQ_INT(kd_json_string(kd_json_get(doc, "filter"), &s, NULL), KD_OK);
    CHECK_EQ_STR(s, "age > 3");
    kd_free(s);
    int64_t recs = 0;
    CHECK_EQ_INT(kd_json_int(kd_json_get(doc, "records"), &recs), KD_OK);
    CHECK_EQ_INT(recs, 1);
    CHECK_EQ_INT(kd_json_type(kd_json_get(doc, "query")), KD_JSON_OBJECT);
    kd_free(json);
    kd_view_list_free(v, 1);
    kd_query_free(q);
    kd_close(db);
}

int main(void) {
    RUN(versions_round_trip);
    RUN(reads_any_spelling);
    RUN(refuses_bad_documents);
    RUN(reader);
    RUN(view_json);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return t_done();
}
