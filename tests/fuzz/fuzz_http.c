/*
** fuzz_http.c — fuzz target for HTTP request bodies: the server's real route handlers
** (src/server/routes.c and routes_vector.c), called the way server.c calls them once a
** request is read, with the input as the body, against a real database.
**
** What is covered: srv_route plus the handlers of
**   0 PUT  /api/v1/fz/k            {"value": ...}            (srv_body_object)
**   1 POST /api/v1/_batch          {"ops": [...]}           (batch_op, commit_error)
**   2 POST /api/v1/fz/_query       a query (kd_query_from_json: filter, sort, at, ...)
**   3 POST /api/v1/_views          a view definition
**   4 PUT  /api/v1/fz/k/_embedding {"vector": [...], ...}   (the raw body walk)
**   5 POST /api/v1/_search         a similarity search      (the raw walk, search_opts)
**   6 POST /api/v1/fz/_search      the same, one namespace
**   7 POST /api/v1/_import         an export (NDJSON: kd_import_*, commits with their
**                                  timestamps and expected ids)
** chosen by byte 0 of the input (0xf0 and up: 7; else modulo 7, so that the first seeds
** kept their meaning when import came); the rest is the body (NUL-terminated, as
** server.c hands it over). What is not covered: libmicrohttpd's own parsing of the
** request line, headers and chunked bodies, query-string decoding (server.c), and
** request headers (the requests have no connection, so If-Match and friends are absent).
** A handler must return a response (NULL only when out of memory) with a status in
** 200..599; the response is then destroyed, as the daemon would.
**
** The database lives in <TMPDIR>/kd_fuzz_http_<pid> (sync off) and is recreated every
** 2000 inputs so that it stays small; it is removed at exit.
** Reproduce: build/tests/test_fuzz_http FILE.
*/
#include <sys/stat.h>

#include "fuzz.h"
#include "korudelta.h"
#include "server/server_int.h"

#define MAX_INPUT (64u * 1024)
#define RECREATE_EVERY 2000

static srv S;
static char dir[256];
static unsigned runs;

static void close_db(void) {
    if (S.db) kd_close(S.db);
    S.db = NULL;
    if (dir[0]) fuzz_rm_rf(dir);
}

static int open_db(void) {
    kd_options opt;
    static const float v[3] = {1, 0, 0}, w[3] = {0, 1, 0};
    close_db();
    fuzz_scratch_path(dir, sizeof dir, "http");
    kd_options_init(&opt);
    opt.sync = KD_SYNC_OFF;
    opt.checkpoint_bytes = 0;
    if (kd_open(dir, &opt, &S.db) != KD_OK) {
        fprintf(stderr, "fuzz_http: cannot open %s: %s\n", dir, kd_errmsg(NULL));
        return -1;
    }
    /* Something for queries, searches and conditional writes to find. */
    static const char k[] = "{\"age\":30,\"name\":\"a\"}", j[] = "{\"age\":40,\"tags\":[1,2]}";
    if (kd_put(S.db, "fz", "k", k, strlen(k), NULL, NULL) != KD_OK ||
        kd_put(S.db, "fz", "j", j, strlen(j), NULL, NULL) != KD_OK ||
        kd_embed(S.db, "fz", "k", v, 3, NULL, NULL, NULL) != KD_OK ||
        kd_embed(S.db, "fz", "j", w, 3, NULL, "{\"t\":1}", NULL) != KD_OK) {
        fprintf(stderr, "fuzz_http: cannot seed: %s\n", kd_errmsg(NULL));
        return -1;
    }
    return 0;
}

static void at_exit(void) { close_db(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const struct {
        int method;
        const char *seg[5];
        size_t nseg;
    } reqs[] = {
        {SRV_PUT, {"api", "v1", "fz", "k"}, 4},
        {SRV_POST, {"api", "v1", "_batch"}, 3},
        {SRV_POST, {"api", "v1", "fz", "_query"}, 4},
        {SRV_POST, {"api", "v1", "_views"}, 3},
        {SRV_PUT, {"api", "v1", "fz", "k", "_embedding"}, 5},
        {SRV_POST, {"api", "v1", "_search"}, 3},
        {SRV_POST, {"api", "v1", "fz", "_search"}, 4},
        {SRV_POST, {"api", "v1", "_import"}, 3},
    };
    static int started;
    srv_req r;
    srv_handler h;
    struct MHD_Response *resp;
    unsigned status = 0;
    const char *allow = NULL;
    int body = 0;
    size_t which;
    char *b;
    if (size < 1 || size > MAX_INPUT) return 0;
    if (!started) {
        setenv("KORU_LOG", "error", 0);
        atexit(at_exit);
        started = 1;
    }
    if ((!S.db || ++runs % RECREATE_EVERY == 0) && open_db() != 0) abort();
    which = data[0] >= 0xf0 ? 7 : data[0] % 7;
    if (!(b = fuzz_cstr(data + 1, size - 1))) return 0;

    memset(&r, 0, sizeof r);
    r.method = reqs[which].method;
    for (size_t i = 0; i < reqs[which].nseg; i++) r.seg[i] = reqs[which].seg[i];
    r.nseg = reqs[which].nseg;
    r.body = b;
    r.body_len = size - 1;
    h = srv_route(&r, &status, &allow, &body);
    FUZZ_ASSERT(h != NULL && body == 1);
    resp = h(&S, &r, &status);
    if (resp) {
        FUZZ_ASSERT(status >= 200 && status <= 599);
        MHD_destroy_response(resp);
    }
    free(b);
    return 0;
}
