/*
** cli_ops.h — the one way the commands of `kdelta` reach a database: locally through the
** public API, or remotely through a `kdelta serve` over HTTP (docs/http.md). Every
** operation returns the library's own structures either way (kd_entry, kd_result,
** kd_view_info, ...), allocated so that the library's free functions release them, so the
** commands format their output with the same code in both modes and print the same bytes.
**
** May call: the public API (korudelta.h), cli.h helpers, cli_http.c (libcurl), the C
** library and POSIX.
**
** Files: cli_ops.c (connecting, the operations, reading the server's answers),
** cli_http.c (the libcurl handle, requests, percent-encoding, the server's errors).
**
** Error convention: a cli_op_* call returns a KD_* code. On failure the message is
** available to cli_fail_kd, exactly as after a failing kd_* call: locally it is
** kd_errmsg, remotely the server's error message (c->op_msg). A server that cannot be
** reached is recorded at once as the command's final error (c->err_final), so the
** command's own cli_fail* calls keep it: "cannot reach the server at URL: ..." (--url),
** or, when the server was found through serve.addr, the original "database is in use"
** error.
*/
#ifndef KD_CLI_OPS_H
#define KD_CLI_OPS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* ---- connecting ----------------------------------------------------------------------- */

/* Makes the database reachable for the command: through --url / $KORU_URL when given
** (then --sync is a usage error: the server's setting rules), else by opening it locally;
** when the local open fails because another process holds the database (KD_BUSY) and
** <db>/serve.addr names a server, through that server (--sync is then ignored). Returns 0
** or an exit code after cli_fail. */
int cli_connect(cli *c);

/* The routing step alone, for commands that open the database themselves (check): after
** a local open failed with KD_BUSY and the error was recorded, tries <db>/serve.addr.
** Returns 1 when the command now runs remotely (the error is cleared), 0 when not. */
int cli_route_busy(cli *c);

/* The URL from --url or $KORU_URL (an empty variable counts as unset), or NULL. */
const char *cli_explicit_url(const cli *c);

/* Releases the remote state (the libcurl handle, the URL). main() calls it at exit. */
void cli_disconnect(cli *c);

/* ---- times ---------------------------------------------------------------------------- */

/* A time the server resolves: the spec names a version id, which only the database can
** turn into a time. */
#define CLI_TS_SERVER INT64_MIN

/* Parses a time spec (kd_parse_time). Remotely a version id (8..64 hex digits) cannot be
** resolved here: *ts is then CLI_TS_SERVER and the spec goes to the server as it is;
** every other form is parsed here, so that "5m" means the same instant in both modes. */
int cli_op_parse_time(cli *c, const char *spec, int64_t *ts);

/* ---- records -------------------------------------------------------------------------- */

/* As kd_get / kd_get_at (KD_NOTFOUND with the tombstone in *e for a deleted key). For
** get_at, ts comes from cli_op_parse_time and spec is its text. Release *e with
** kd_entry_clear. */
int cli_op_get(cli *c, const char *ns, const char *key, kd_entry *e);
int cli_op_get_at(cli *c, const char *ns, const char *key, const char *spec, int64_t ts,
                  kd_entry *e);
/* As kd_put (json is canonical) and kd_delete. */
int cli_op_put(cli *c, const char *ns, const char *key, const char *json, size_t len,
               const kd_put_cond *cond, kd_entry *e);
int cli_op_delete(cli *c, const char *ns, const char *key, kd_entry *e);

/* The `limit` newest versions of ns/key (0 = every version), with values, oldest first,
** and the total number of versions. Release with kd_entries_free(*v, *n). */
int cli_op_history_newest(cli *c, const char *ns, const char *key, size_t limit, kd_entry **v,
                          size_t *n, size_t *total);

/* As kd_diff. Remotely both sides carry their values. */
int cli_op_diff(cli *c, const char *ns, const char *key, const char *from, const char *to,
                kd_entry *from_e, kd_entry *to_e, char **patch);
/* As kd_resolve_version (value included). */
int cli_op_version(cli *c, const char *ns, const char *key, const char *spec, kd_entry *e);

/* One item of an atomic batch. */
typedef struct cli_batch_op {
    const char *ns, *key;
    const char *value;      /* canonical JSON; NULL for a delete */
    size_t value_len;
    int is_delete;
} cli_batch_op;

/* Commits ops[0..n) as one batch (n > 0). When the library refuses an item before the
** commit, *bad is its index; otherwise *bad is (size_t)-1. */
int cli_op_batch(cli *c, const cli_batch_op *ops, size_t n, uint64_t *first, uint64_t *last,
                 size_t *bad);

/* ---- listings, stats, integrity ------------------------------------------------------- */

/* As kd_list_namespaces (release with kd_ns_list_free) and every live key of ns, in byte
** order (release with kd_keys_free). */
int cli_op_namespaces(cli *c, int include_system, kd_ns_info **l, size_t *n);
int cli_op_keys(cli *c, const char *ns, char ***keys, size_t *n);

/* Statistics and the database's absolute path (*path released with free()). */
int cli_op_status(cli *c, kd_stats *st, char **path);
/* As kd_check on the open (or served) database; *path (free()) as for status, NULL when
** not wanted. progress is only called locally. */
int cli_op_check(cli *c, int deep, kd_check_report *r, char **path, kd_progress_fn progress, void *ctx);

/* As kd_backup into dir (an absolute path: remotely it names a directory on the server's
** machine); *bytes receives the bytes copied. progress is only called locally. */
int cli_op_backup(cli *c, const char *dir, kd_progress_fn progress, void *ctx, uint64_t *bytes);

/* An export (kd_export_*; remotely GET /api/v1/_export, with the time spec at_spec sent for
** the server to resolve): its bytes go to out as they come. o->progress is only called
** locally. A transfer broken off before its end is an error: no short export passes. */
typedef int (*cli_export_sink)(void *ctx, const char *p, size_t n);
int cli_op_export(cli *c, const kd_export_opts *o, const char *at_spec, cli_export_sink out, void *ctx);

/* Remote only: imports a piece of an export (its header line, then whole commits) with
** POST /api/v1/_import; first_line numbers the piece's first line after the header. */
int cli_op_import_piece(cli *c, const char *body, size_t len, uint64_t first_line, uint64_t *written,
                        uint64_t *skipped);

/* ---- queries and views ---------------------------------------------------------------- */

/* As kd_query_run. at_spec, when not NULL, is a version-id time the server resolves (see
** cli_op_parse_time); other times are set on q. Release *r with kd_result_free. */
int cli_op_query(cli *c, const char *ns, const kd_query *q, const char *at_spec, kd_result **r);

/* As kd_view_create followed by kd_view_get (release *info with kd_view_list_free(*info, 1)). */
int cli_op_view_create(cli *c, const char *name, const char *source, const kd_query *q,
                       const char *description, int auto_refresh, kd_view_info **info);
int cli_op_view_list(cli *c, kd_view_info **v, size_t *n);
int cli_op_view_get(cli *c, const char *name, kd_view_info **info);
/* As kd_view_query. zero_offset says that extra sets a page with offset 0 (--limit
** without --offset, or --offset 0), which replaces the view's page as a whole. */
int cli_op_view_query(cli *c, const char *name, const kd_query *extra, int zero_offset,
                      kd_result **r);
/* As kd_view_refresh followed by kd_view_get. */
int cli_op_view_refresh(cli *c, const char *name, kd_view_info **info);
int cli_op_view_delete(cli *c, const char *name);

/* ---- embeddings and vector search -------------------------------------------------- */

/* As kd_embed: *e describes the version written (e->ns is the system namespace
** "_emb.<ns>", as the library sets it). Release *e with kd_entry_clear. */
int cli_op_embed(cli *c, const char *ns, const char *key, const float *v, size_t dim,
                 const char *model, const char *meta_json, kd_entry *e);
/* As kd_embedding_get, now (spec NULL) or at ts from cli_op_parse_time (spec its text).
** Release *out with kd_embedding_free. */
int cli_op_embedding_get(cli *c, const char *ns, const char *key, const char *spec, int64_t ts,
                         kd_embedding **out);
/* As kd_embed_delete (the tombstone in *e; release with kd_entry_clear). */
int cli_op_embed_delete(cli *c, const char *ns, const char *key, kd_entry *e);

/* The filters and the time of a search in the forms the server takes: the filter
** expressions as typed (o->filter and o->meta_filter are the same ones parsed, used
** locally), and at_spec when o->at is a version-id time only the server can resolve
** (CLI_TS_SERVER from cli_op_parse_time). Any may be NULL. */
typedef struct cli_search_text {
    const char *filter;
    const char *meta_filter;
    const char *at_spec;
} cli_search_text;

/* As kd_search. Release *hits with kd_search_free(*hits, *n). */
int cli_op_search(cli *c, const kd_search_opts *o, const cli_search_text *t, kd_search_hit **hits,
                  size_t *n);


/* ---- HTTP (cli_http.c) ---------------------------------------------------------------- */

/* An answer from the server. doc is the body made canonical (NULL when the body is not
** JSON), so that the library's JSON reader (kd_json_doc, ...) can walk it. */
typedef struct cli_http_res {
    long status;
    int event_stream;   /* the answer's Content-Type is text/event-stream */
    cli_buf body;
    char *doc;          /* kd_free */
    size_t doc_len;
} cli_http_res;

/* Sends METHOD base_url+path (path starts with '/', already percent-encoded) with an
** optional JSON body and optional extra header lines (NULL-terminated list; may be NULL).
** Returns KD_OK when an answer came, whatever its status. When the server cannot be
** reached, records the final error (see above) and returns KD_ERROR. */
int cli_http_call(cli *c, const char *method, const char *path, const char *body, size_t len,
                  const char *const *headers, cli_http_res *res);
void cli_http_res_free(cli_http_res *res);

/* The KD_* code of an error answer ({"error":{"code","message"}}), with its message kept
** for cli_fail_kd (c->op_msg). An answer that is not such a document maps by status. */
int cli_http_error(cli *c, const cli_http_res *res);

/* Receives the bytes of a stream answered 200 as they arrive; returns 0 to go on, non-zero
** to stop. */
typedef int (*cli_http_sink)(void *ctx, const char *p, size_t n);

/* GET base_url+path as a stream: the body of a 200 answer goes to sink as it arrives;
** any other answer is collected in res->body (and made canonical in res->doc). There is
** no total timeout; a connection silent for idle_s seconds counts as dropped. *stop, when
** it becomes non-zero (a signal handler), ends the transfer within about a second.
** Returns KD_OK when the transfer ended normally (the server closed the stream, or sink
** or *stop ended it), KD_ERROR on a connection failure, with a one-line description in
** err (not recorded as the command's error: the caller decides whether to retry). */
int cli_http_stream(cli *c, const char *path, const char *const *headers, long idle_s,
                    cli_http_sink sink, void *ctx, volatile sig_atomic_t *stop, cli_http_res *res,
                    char *err, size_t errlen);

/* Appends s percent-encoded for a path segment or a query value: every byte but
** A-Z a-z 0-9 - . _ ~ becomes %XX. */
void cli_url_add(cli_buf *b, const char *s);

/* Releases the libcurl handle (NULL-safe). */
void cli_http_close(cli *c);

#endif /* KD_CLI_OPS_H */
