/*
** cli.h — what the files of the `kdelta` command-line tool share: the parsed command line
** (struct cli), the output buffer, JSON writing helpers and error reporting.
**
** May call: the public API in include/korudelta.h only. Nothing from src/ outside cli/.
**
** How a run goes: cli_main.c parses argv into a struct cli and calls the command's
** handler (cli_cmds.c, cli_diff.c, cli_batch.c, cli_query.c, cli_watch.c, cli_vector.c).
** A handler validates its arguments first, then connects (cli_connect in cli_ops.h: the
** local database, or a server through --url / KORU_URL / <db>/serve.addr), so that bad
** input writes nothing; it reaches the database only through the cli_op_* calls, writes its
** whole output into c->out and returns an exit code, or records the error with
** cli_fail*(). (`watch` prints as it goes; `serve`, in cli_serve.c, opens the database
** with cli_open_db and never goes to a server.)
** main() then closes the database and only afterwards writes either the output or the
** error, so that with --json stdout always holds exactly one JSON document, even when
** closing the database fails.
*/
#ifndef KD_CLI_H
#define KD_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "korudelta.h"

/* Exit codes (documented in docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,    /* anything else, including invalid values */
    CLI_EXIT_USAGE = 2,    /* unknown command or option, missing or extra argument */
    CLI_EXIT_NOTFOUND = 3,
    CLI_EXIT_CONFLICT = 4
};

/* A status code of our own for usage errors, outside the range of KD_* codes. */
#define CLI_RC_USAGE 1000

/* ---- growable output buffer ----------------------------------------------------------- */
/* Always NUL-terminated once anything was appended. After a failed allocation `oom` is set
** and further appends are ignored, so callers check once at the end. */
typedef struct cli_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} cli_buf;

void cli_buf_add(cli_buf *b, const char *s, size_t n);
void cli_buf_puts(cli_buf *b, const char *s);
void cli_buf_printf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_buf_free(cli_buf *b);

/* ---- JSON writing ------------------------------------------------------------------- */
/* A JSON string literal for n bytes of s. Valid UTF-8 is copied as is; control characters
** are escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is always
** valid JSON whatever the input (error messages may quote raw command-line bytes). */
void cli_json_str(cli_buf *b, const char *s, size_t n);
void cli_json_cstr(cli_buf *b, const char *s);       /* NULL writes null */
/* `"name":` — name is a literal we control, so it is not escaped. */
void cli_json_key(cli_buf *b, const char *name);
void cli_json_hex(cli_buf *b, const uint8_t id[32]);  /* "64 hex digits" */
void cli_json_time(cli_buf *b, int64_t ts);           /* "RFC 3339" */

/* Reading canonical JSON the library returned: the index just past the string literal
** starting at s[i] == '"', or past the value starting at s[i] (n when it runs off). */
size_t cli_json_skip_string(const char *s, size_t i, size_t n);
size_t cli_json_skip_value(const char *s, size_t i, size_t n);

/* ---- the parsed command line ---------------------------------------------------------- */
struct cli_cmd;

/* The options that build a query (query, view create, view query) may repeat and their
** order matters (sort keys apply in turn), so they are kept as a list, in the order given.
** The list is allocated by the parser and freed by main(). */
enum {
    CLI_Q_FILTER = 1, CLI_Q_SORT, CLI_Q_SELECT, CLI_Q_COUNT, CLI_Q_SUM, CLI_Q_AVG, CLI_Q_MIN,
    CLI_Q_MAX, CLI_Q_DISTINCT, CLI_Q_GROUP_BY
};
typedef struct cli_qopt {
    int kind;                   /* CLI_Q_* */
    const char *name;           /* the option's long name ("sum"), for messages */
    const char *val;            /* its value; NULL for --count */
} cli_qopt;

#define CLI_MAX_POS 16

typedef struct cli {
    const struct cli_cmd *cmd;
    const char *db_path;        /* resolved: --db, KORU_DB or ~/.korudelta/db */
    char *db_path_owned;        /* when db_path had to be built */
    int json;                   /* --json */
    int color;                  /* human output may use ANSI colour */
    int no_color;               /* --no-color */
    int sync;                   /* KD_SYNC_*, or -1 for the default */
    uint64_t max_db_bytes;      /* --max-db-bytes (kd_options.max_db_bytes); 0 = none */

    /* command options */
    const char *at;             /* get --at */
    const char *from, *to;      /* diff --from/--to */
    const char *if_version;     /* set --if-version */
    int if_absent;              /* set --if-absent */
    int verbose;                /* get --verbose */
    int all;                    /* list --all */
    int deep;                   /* check --deep */
    int current;                /* export --current */
    int has_limit;
    uint64_t limit;             /* log --limit (0 = all); query/view --limit (0 = none) */
    const char *bad_limit;      /* an unparseable --limit, reported once the command is known
                                   (what 0 means depends on the command) */
    int has_offset;
    uint64_t offset;            /* query/view --offset */
    cli_qopt *qopts;            /* query/view options in command-line order */
    int nqopts;
    int auto_refresh;           /* view create --auto-refresh */
    const char *description;    /* view create --description */
    const char *port;           /* serve --port (validated by the command) */
    const char *bind;           /* serve --bind */
    const char *max_body;       /* serve --max-body */
    const char *max_connections;/* serve --max-connections */
    const char *since;          /* watch --since */
    const char *types;          /* watch --types */
    const char *url;            /* --url or KORU_URL: run the command against a server */
    /* embed, embedding, search (cli_vector.c validates the texts) */
    const char *vector;         /* --vector JSON array */
    const char *vector_file;    /* --vector-file F ("-" = stdin) */
    const char *model;          /* --model M */
    const char *meta;           /* embed --meta JSON */
    int embed_delete;           /* embed --delete */
    const char *top_k;          /* search --top-k N */
    const char *threshold;      /* search --threshold X */
    const char *metric;         /* search --metric cosine|dot|l2 */
    const char *meta_filter;    /* search --meta-filter EXPR */
    int nmeta_filters;          /* how many times --meta-filter was given */
    int exact;                  /* search --exact */
    const char *ef;             /* search --ef N */

    const char *pos[CLI_MAX_POS];
    int npos;

    /* parsing state */
    const char *cmd_name;       /* as typed */
    unsigned opt_seen;          /* CLI_OPT_* bits given on the line */
    const char *opt_first[32];  /* how each was spelled, by bit number (for messages) */

    kd_db *db;                  /* open while a command runs (local mode) */

    /* remote mode (cli_ops.c, cli_http.c): the command runs against a server */
    int remote;                 /* set by cli_connect: every cli_op_* goes over HTTP */
    int routed;                 /* the server was found through <db>/serve.addr */
    char *remote_url;           /* its base URL, no trailing '/' (owned) */
    struct cli_http *http;      /* the libcurl handle, one per process (keep-alive) */
    char busy_msg[1024];        /* when routed: the local open's busy error, reported
                                   instead if the server cannot be reached */
    int op_msg_set;             /* a remote operation failed: op_msg is its message, */
    char op_msg[1024];          /* used (once) by cli_fail_kd instead of kd_errmsg */
    int err_final;              /* the recorded error stands (connection failure): later
                                   cli_fail calls keep it */
    cli_buf out;                /* what goes to stdout on success */

    /* the error to report, if any */
    int err_rc;                 /* KD_* code or CLI_RC_USAGE; 0 = none */
    char err_msg[1024];
    int err_no_json;            /* stdout already holds the JSON document (check) */
} cli;

/* A command: name, usage line, help text, option mask and handler. */
typedef struct cli_cmd {
    const char *name;
    const char *args;           /* e.g. "NS/KEY JSON" */
    const char *summary;
    const char *help;           /* options and examples, shown by `kdelta CMD --help` */
    unsigned opts;              /* CLI_OPT_* allowed */
    int min_pos, max_pos;
    int (*run)(cli *c);         /* returns an exit code; on failure calls cli_fail* */
} cli_cmd;

enum {
    CLI_OPT_AT = 1u << 0,
    CLI_OPT_VERBOSE = 1u << 1,
    CLI_OPT_IF_VERSION = 1u << 2,
    CLI_OPT_IF_ABSENT = 1u << 3,
    CLI_OPT_LIMIT = 1u << 4,
    CLI_OPT_FROM = 1u << 5,
    CLI_OPT_TO = 1u << 6,
    CLI_OPT_ALL = 1u << 7,
    CLI_OPT_DEEP = 1u << 8,
    CLI_OPT_FILTER = 1u << 9,
    CLI_OPT_SORT = 1u << 10,
    CLI_OPT_OFFSET = 1u << 11,
    CLI_OPT_SELECT = 1u << 12,
    CLI_OPT_AGG = 1u << 13,         /* --count --sum --avg --min --max --distinct --group-by */
    CLI_OPT_AUTO_REFRESH = 1u << 14,
    CLI_OPT_DESCRIPTION = 1u << 15,
    CLI_OPT_PORT = 1u << 16,
    CLI_OPT_BIND = 1u << 17,
    CLI_OPT_MAX_BODY = 1u << 18,
    CLI_OPT_MAX_CONN = 1u << 19,
    CLI_OPT_SINCE = 1u << 20,
    CLI_OPT_TYPES = 1u << 21,
    CLI_OPT_VECTOR = 1u << 22,      /* --vector --vector-file --model (embed, search) */
    CLI_OPT_EMBED = 1u << 23,       /* --meta --delete (embed) */
    CLI_OPT_SEARCH = 1u << 24,      /* --top-k --threshold --metric --meta-filter --exact --ef */
    CLI_OPT_EXPORT = 1u << 25       /* --current */
};

/* ---- errors --------------------------------------------------------------------------- */
/* Records an error with a message of our own and returns its exit code. */
int cli_fail(cli *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records the library's message for rc (kd_errmsg, else kd_strerror), prefixed with
** `what: ` when what is not NULL. Call it right after the failing kd_* call: the message
** is only valid until the thread's next kd_* call. */
int cli_fail_kd(cli *c, int rc, const char *what);
int cli_exit_code(int rc);
const char *cli_error_code(int rc);

/* ---- helpers shared by the commands ------------------------------------------------------- */
/* Splits "NS/KEY" at the first '/' into freshly allocated *ns and *key and validates both
** (system namespaces refused unless allow_system). Returns 0, or an exit code after
** cli_fail. */
int cli_split_name(cli *c, const char *arg, int allow_system, char **ns, char **key);
/* Reads a whole file ("-" = stdin) into *out (NUL-terminated, free with free()). */
int cli_read_file(cli *c, const char *path, char **out, size_t *len);
/* Opens c->db_path with the options from the command line. Returns 0 or an exit code.
** A plain local open: commands reach the database through cli_connect (cli_ops.h), which
** may go to a server instead; only `serve` calls this directly. */
int cli_open_db(cli *c);
/* The kd_options the global options ask for (--sync, --max-db-bytes). */
void cli_db_options(const cli *c, kd_options *o);
/* A size: digits with an optional KiB/MiB/GiB (or k/m/g, K/M/G, KB/MB/GB) suffix, binary
** multiples; at least one byte. 1 when s is one. */
int cli_parse_size(const char *s, uint64_t *out);
/* The first 8 hex digits of an id. */
void cli_short_id(const uint8_t id[32], char out[9]);
/* How much of a value a one-line listing (log, watch) shows. */
#define CLI_SHORT_VALUE_MAX 72
/* Appends at most CLI_SHORT_VALUE_MAX bytes of v, cut at a UTF-8 character boundary and
** ending in "..." when shortened. */
void cli_add_short_value(cli_buf *b, const char *v, size_t len);
/* Pretty JSON (two-space indent) of a canonical value, appended to b with a newline. */
int cli_put_pretty(cli *c, cli_buf *b, const char *json, size_t len);

/* Vectors (cli_vector.c). A JSON array of numbers (text[0..len), whitespace allowed)
** into float32 components (*v from malloc, *dim of them). Each number is read as a double
** and then converted; one that is not a JSON number, not finite, or whose conversion
** overflows to infinity is refused naming its index (from 0), as are an empty array and
** anything but an array. Returns KD_OK, or KD_INVALID/KD_NOMEM with the reason in msg. */
int cli_parse_vector(const char *text, size_t len, float **v, size_t *dim, char *msg,
                     size_t msglen);
/* Appends v as a JSON array, each component "%.9g" (enough to read back the same float;
** -0 prints as -0). */
void cli_json_vector(cli_buf *b, const float *v, size_t dim);

/* ---- command handlers ----------------------------------------------------------------- */
int cli_cmd_set(cli *c);
int cli_cmd_get(cli *c);
int cli_cmd_delete(cli *c);
int cli_cmd_log(cli *c);
int cli_cmd_diff(cli *c);
int cli_cmd_batch(cli *c);
int cli_cmd_list(cli *c);
int cli_cmd_status(cli *c);
int cli_cmd_check(cli *c);
int cli_cmd_backup(cli *c);
int cli_cmd_export(cli *c);
int cli_cmd_import(cli *c);
void cli_progress_bar(void *ctx, uint64_t done, uint64_t total);
int cli_cmd_query(cli *c);
int cli_cmd_view(cli *c);
int cli_cmd_serve(cli *c);   /* cli_serve.c */
int cli_cmd_watch(cli *c);   /* cli_watch.c */
int cli_cmd_embed(cli *c);     /* cli_vector.c */
int cli_cmd_embedding(cli *c); /* cli_vector.c */
int cli_cmd_search(cli *c);    /* cli_vector.c */

#endif /* KD_CLI_H */
