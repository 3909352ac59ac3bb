/*
** cli_main.c — the entry point of `kdelta`: the command table and help texts, parsing of
** the command line (global options before or after the command, per-command options,
** `--`), finding and opening the database, and writing the result or the error.
**
** May call: the public API (korudelta.h), the other cli files, the C library and POSIX.
**
** Command line rules (docs/cli.md is the user-facing version):
**   - global options (--db/-d/--db-path, --json, --sync, --no-color, --help, --version)
**     may come before or after the command;
**   - `--opt VALUE` and `--opt=VALUE` are both accepted; an option that takes a value
**     takes the next argument whatever it looks like (so `--from -1` works);
**   - `--` ends the options; a lone `-` and anything starting with `-` followed by a digit
**     (a negative number) are arguments, since no option starts with a digit;
**   - --help wins over every other problem on the line, so `kdelta set --help` works
**     without arguments.
*/
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_ops.h"

/* ---- commands --------------------------------------------------------------------------- */

static const cli_cmd commands[] = {
    {"set", "NS/KEY JSON", "store a value as a new version",
     "Stores JSON under NS/KEY as a new version; every earlier version is kept.\n"
     "NS/KEY is split at the first '/', so keys may contain slashes. JSON '-' reads the\n"
     "value from standard input. A value starting with '-' other than a number needs '--'\n"
     "before it (kdelta set ns/k -- -1 also works).\n"
     "\n"
     "Options:\n"
     "  --if-version ID   write only if the current version id starts with ID (8+ hex digits)\n"
     "  --if-absent       write only if the key has no live version\n"
     "A failed condition exits 4 and names the current version.\n"
     "\n"
     "Examples:\n"
     "  kdelta set config/app '{\"debug\":true,\"level\":3}'\n"
     "  echo '[1,2,3]' | kdelta set data/list -\n"
     "  kdelta set config/app '{\"debug\":false}' --if-version 3f2a9c1e\n",
     CLI_OPT_IF_VERSION | CLI_OPT_IF_ABSENT, 2, 2, cli_cmd_set},
    {"get", "NS/KEY", "print the current value, or the value at a time",
     "Prints the value of NS/KEY as pretty JSON: the current one, or with --at the one\n"
     "that was current at time T (the latest version with timestamp <= T).\n"
     "A deleted key is not found (exit 3); the message says when it was deleted.\n"
     "\n"
     "Options:\n"
     "  --at T          the value as of T (see 'kdelta --help' for time formats)\n"
     "  -v, --verbose   also print version id, seq, timestamp, value hash, previous version\n"
     "\n"
     "Examples:\n"
     "  kdelta get config/app\n"
     "  kdelta get config/app --at 2026-01-01T12:00:00Z\n"
     "  kdelta get config/app --at 5m\n"
     "  kdelta get config/app --at 3f2a9c1e\n",
     CLI_OPT_AT | CLI_OPT_VERBOSE, 1, 1, cli_cmd_get},
    {"delete", "NS/KEY", "delete a key (its history is kept)",
     "Writes a tombstone version for NS/KEY. The history stays: 'log' shows the delete and\n"
     "'get --at' a time before it still returns the old value. A later 'set' brings the\n"
     "key back. Deleting a key that does not exist (or is already deleted) exits 3.\n"
     "\n"
     "Example:\n"
     "  kdelta delete config/app\n",
     0, 1, 1, cli_cmd_delete},
    {"log", "NS/KEY", "list the versions of a key, newest first",
     "Lists the versions of NS/KEY newest first, one per line, like git log:\n"
     "  * <version> <timestamp> seq <seq>  <value, shortened>   or (deleted)\n"
     "With --json the versions come in the same order, values in full.\n"
     "\n"
     "Options:\n"
     "  -n, --limit N   show only the N newest versions (0 = all, the default)\n"
     "\n"
     "Example:\n"
     "  kdelta log config/app --limit 10\n",
     CLI_OPT_LIMIT, 1, 1, cli_cmd_log},
    {"diff", "NS/KEY", "compare two versions of a key (default: the last two)",
     "Compares two versions of NS/KEY: a line diff of the pretty values for people\n"
     "(coloured on a terminal), an RFC 6902 JSON Patch with --json.\n"
     "V may be an index (0 = oldest, -1 = newest; a plain integer under 8 digits), a version\n"
     "id or unique prefix (8+ hex digits), or a time T (the version current then).\n"
     "Without --from/--to: the second-newest and the newest version; a key with a single\n"
     "version is diffed from nothing.\n"
     "\n"
     "Options:\n"
     "  --from V   the older side\n"
     "  --to V     the newer side (default: the newest version)\n"
     "\n"
     "Examples:\n"
     "  kdelta diff config/app\n"
     "  kdelta diff config/app --from 0 --to 2\n"
     "  kdelta diff config/app --from 1h\n",
     CLI_OPT_FROM | CLI_OPT_TO, 1, 1, cli_cmd_diff},
    {"batch", "FILE|-", "apply NDJSON puts and deletes atomically",
     "Reads NDJSON (one JSON object per line; '-' = standard input) and commits every\n"
     "line as one atomic batch with one timestamp: all of it or nothing.\n"
     "  {\"op\":\"put\",\"namespace\":\"users\",\"key\":\"alice\",\"value\":{\"age\":30}}\n"
     "  {\"op\":\"delete\",\"namespace\":\"users\",\"key\":\"bob\"}\n"
     "Blank lines are ignored; a 'value' on a delete is ignored. A bad line (invalid JSON,\n"
     "unknown op, missing field, bad name, a key given twice, deleting a missing key)\n"
     "refuses the whole batch with an error naming the line, and nothing is written.\n"
     "\n"
     "Example:\n"
     "  kdelta batch changes.ndjson\n",
     0, 1, 1, cli_cmd_batch},
    {"query", "NS", "query the values of a namespace: filter, sort, page, aggregate",
     "Runs a query over the current values of NS (deleted keys excluded), or with --at over\n"
     "the values as they were at time T. Prints the matching records, one per line (key,\n"
     "then the value), then 'total: N' (matches before --offset/--limit) and the\n"
     "aggregations. Aggregations cover every match, not only the records shown.\n"
     "\n"
     "Options:\n"
     "  --filter EXPR       keep the values matching EXPR (see below)\n"
     "  --sort FIELD[:desc] order by FIELD (:asc, the default, or :desc); repeat for more\n"
     "                      keys; missing values come last, ties are ordered by key\n"
     "  -n, --limit N       show at most N records (0 = none: only total and aggregations;\n"
     "                      default all)\n"
     "  --offset N          skip the first N matches\n"
     "  --select F,F...     keep only these fields of each value (nested ones keep their\n"
     "                      nesting); may repeat\n"
     "  --count             count the matches\n"
     "  --sum F, --avg F, --min F, --max F, --distinct F   aggregate field F; may repeat\n"
     "  --group-by F        compute the aggregations per value of F (count at least)\n"
     "  --at T              query the namespace as it was at T (see 'kdelta --help')\n"
     "\n"
     "Filter: comparisons FIELD OP VALUE with = != > >= < <=, 'FIELD contains VALUE',\n"
     "'FIELD ~ \"regex\"' (POSIX extended), exists(FIELD), joined by and, or, not and\n"
     "parentheses (not > and > or). Values are JSON: \"text\", 30, true, null. FIELD is a\n"
     "dotted path with array indexes (address.city, items.0.price) or any text in\n"
     "backticks. A missing field makes every comparison false except !=.\n"
     "\n"
     "Examples:\n"
     "  kdelta query users --filter 'age > 30 and status = \"active\"' --sort age:desc\n"
     "  kdelta query users --sort city --sort name --limit 10 --offset 20\n"
     "  kdelta query users --select name,address.city\n"
     "  kdelta query orders --count --sum total --group-by customer\n"
     "  kdelta query users --filter 'exists(email)' --at 2026-01-01T00:00:00Z\n",
     CLI_OPT_FILTER | CLI_OPT_SORT | CLI_OPT_LIMIT | CLI_OPT_OFFSET | CLI_OPT_SELECT |
         CLI_OPT_AGG | CLI_OPT_AT,
     1, 1, cli_cmd_query},
    {"view", "SUBCOMMAND ...", "materialized views: create, list, show, query, refresh, delete",
     "A view is a named, saved query over one namespace whose result the database keeps.\n"
     "Its definition is stored in the system namespace _views, so it has history and\n"
     "survives restarts. An --auto-refresh view is kept current at every commit; any other\n"
     "view shows the namespace as it was when created or last refreshed.\n"
     "\n"
     "Subcommands:\n"
     "  view create NAME NS [QUERY OPTIONS] [--auto-refresh] [--description TEXT]\n"
     "      save a query over namespace NS as view NAME (1-128 bytes of A-Z a-z 0-9 _ . -,\n"
     "      starting with a letter or digit; a name in use exits 4)\n"
     "  view list                  every view: name, source, refresh mode, records, description\n"
     "  view show NAME             one view's definition (filter, query, times)\n"
     "  view query NAME [QUERY OPTIONS]\n"
     "      the view's records; --filter narrows the view's filter (both must match);\n"
     "      --sort, --select and the aggregations replace the view's; --limit and --offset\n"
     "      replace the view's page as a whole (the one not given is all / 0)\n"
     "  view refresh NAME          recompute a view now\n"
     "  view delete NAME           delete a view (its history stays in _views)\n"
     "An unknown view exits 3.\n"
     "\n"
     "Query options (as for 'kdelta query'; see 'kdelta query --help' for the filter):\n"
     "  --filter EXPR, --sort FIELD[:desc] (repeatable), -n/--limit N, --offset N,\n"
     "  --select F,F..., --count, --sum F, --avg F, --min F, --max F, --distinct F,\n"
     "  --group-by F\n"
     "\n"
     "Options of view create:\n"
     "  --auto-refresh      keep the view current at every commit\n"
     "  --description TEXT  a note shown by view list\n"
     "\n"
     "Examples:\n"
     "  kdelta view create adults users --filter 'age >= 18' --sort name --auto-refresh\n"
     "  kdelta view list\n"
     "  kdelta view query adults --filter 'city = \"Oslo\"' --limit 10\n"
     "  kdelta view create daily orders --count --sum total --group-by day\n"
     "  kdelta view refresh daily\n"
     "  kdelta view delete adults\n",
     CLI_OPT_FILTER | CLI_OPT_SORT | CLI_OPT_LIMIT | CLI_OPT_OFFSET | CLI_OPT_SELECT |
         CLI_OPT_AGG | CLI_OPT_AUTO_REFRESH | CLI_OPT_DESCRIPTION,
     1, 3, cli_cmd_view},
    {"embed", "NS/KEY", "store (or delete) the embedding of a key",
     "Stores a vector (an embedding) for NS/KEY as a new version of its embedding. The\n"
     "embedding is independent of the key's value: neither needs the other. The first\n"
     "embedding of a model fixes the model's dimension for the whole database.\n"
     "The vector is a JSON array of numbers, each stored as a float32 (a number that is not\n"
     "finite or too large for a float32 is refused, naming its index from 0).\n"
     "\n"
     "Options:\n"
     "  --vector JSON       the vector, e.g. '[0.1,0.2,0.3]'\n"
     "  --vector-file F     read the vector from file F ('-' = standard input)\n"
     "  --model M           the model name (default \"default\")\n"
     "  --meta JSON         metadata kept with the embedding (any JSON; see search\n"
     "                      --meta-filter)\n"
     "  --delete            delete the embedding instead (its history stays); exits 3 when\n"
     "                      the key has none\n"
     "\n"
     "Examples:\n"
     "  kdelta embed docs/intro --vector '[0.12,-0.5,0.33]' --meta '{\"lang\":\"en\"}'\n"
     "  embedder docs/intro.txt | kdelta embed docs/intro --vector-file - --model minilm\n"
     "  kdelta embed docs/intro --delete\n",
     CLI_OPT_VECTOR | CLI_OPT_EMBED, 1, 1, cli_cmd_embed},
    {"embedding", "NS/KEY", "print the embedding of a key, now or at a time",
     "Prints the embedding of NS/KEY: model, dimension, vector, metadata and its version;\n"
     "with --at T the one current at time T. None at that time (never embedded, or\n"
     "deleted) exits 3.\n"
     "\n"
     "Options:\n"
     "  --at T   the embedding as of T (see 'kdelta --help' for time formats)\n"
     "\n"
     "Examples:\n"
     "  kdelta embedding docs/intro\n"
     "  kdelta embedding docs/intro --at 1h --json\n",
     CLI_OPT_AT, 1, 1, cli_cmd_embedding},
    {"search", "[NS]", "find the keys whose embeddings are nearest to a vector",
     "Finds the embeddings nearest to a query vector, in namespace NS or in every\n"
     "namespace, and prints one line per hit, best first: the score, NS/KEY and the first\n"
     "12 hex digits of the embedding's version id. Nothing found prints nothing (exit 0).\n"
     "The restrictions (NS, --model, --filter, --meta-filter, --threshold) choose the\n"
     "candidates before the --top-k cut.\n"
     "\n"
     "Options:\n"
     "  --vector JSON        the query vector, e.g. '[0.1,0.2,0.3]'\n"
     "  --vector-file F      read it from file F ('-' = standard input)\n"
     "  -k, --top-k N        at most N hits, 1-1000000 (default 10)\n"
     "  --metric M           cosine (default; higher is nearer), dot (higher is nearer) or\n"
     "                       l2 (Euclidean distance; lower is nearer)\n"
     "  --threshold X        keep scores >= X (cosine, dot) or distances <= X (l2)\n"
     "  --model M            only embeddings of model M (without it the candidates must all\n"
     "                       be of one model)\n"
     "  --filter EXPR        only keys whose VALUE matches EXPR (see kdelta query --help)\n"
     "  --meta-filter EXPR   only embeddings whose metadata matches EXPR\n"
     "  --at T               search the embeddings (and values) as they were at T\n"
     "  --exact              score every candidate instead of using the HNSW index\n"
     "  --ef N               HNSW candidate list size, 1-100000 (recall against speed;\n"
     "                       default max(top-k, 64))\n"
     "\n"
     "Examples:\n"
     "  kdelta search docs --vector '[0.1,-0.4,0.3]' --top-k 5\n"
     "  kdelta search --vector-file q.json --metric l2 --threshold 1.5\n"
     "  kdelta search docs --vector '[1,0,0]' --meta-filter 'lang = \"en\"' --json\n",
     CLI_OPT_VECTOR | CLI_OPT_SEARCH | CLI_OPT_FILTER | CLI_OPT_AT, 0, 1, cli_cmd_search},
    {"list", "[NS]", "list namespaces, or the keys of NS",
     "Without NS: the namespaces that have live keys, with their key counts. With NS: its\n"
     "live keys in byte order, one per line.\n"
     "\n"
     "Options:\n"
     "  -a, --all   include system namespaces (names starting with '_')\n",
     CLI_OPT_ALL, 0, 1, cli_cmd_list},
    {"status", "", "show database statistics",
     "Prints the database path, namespace, key and version counts, the last seq and the\n"
     "bytes on disk. Keys count live keys; versions count every version, tombstones too.\n",
     0, 0, 0, cli_cmd_status},
    {"check", "", "verify the database's integrity",
     "Verifies every record checksum in the log and that the index agrees with it; exits 1\n"
     "and prints the first error (with its offset) when the database is not sound. Works on\n"
     "a database that cannot be opened because it is corrupt.\n"
     "\n"
     "Options:\n"
     "  --deep   also re-hash every value and version header\n",
     CLI_OPT_DEEP, 0, 0, cli_cmd_check},
    {"backup", "DIR", "copy the database, consistently, while it is in use",
     "Writes a consistent copy of the database into directory DIR (created if missing; it\n"
     "must be empty): every version committed when the command started, with the same ids\n"
     "and timestamps. Writers go on meanwhile. The copy opens as a database. Through a\n"
     "server (--url, or a database held by kdelta serve), the server writes the copy: DIR\n"
     "is a path on the server's machine. A progress bar is drawn on a terminal.\n"
     "\n"
     "Example:\n"
     "  kdelta backup /var/backups/korudelta-2026-11-24\n",
     0, 1, 1, cli_cmd_backup},
    {"export", "[NS...]", "write the database's history (or one point in time) as NDJSON",
     "Writes to stdout one line of header, then one JSON document per version: every version\n"
     "of every namespace (system ones included, so embeddings and view definitions travel\n"
     "too), in commit order, with its version id, timestamp and value. With namespaces, only\n"
     "those (and their embeddings). `kdelta import` restores it with the same ids and times.\n"
     "\n"
     "Options:\n"
     "  --at T      one point in time: the live version of each key at T, no history\n"
     "  --current   the same, now\n"
     "\n"
     "Examples:\n"
     "  kdelta export > all.ndjson\n"
     "  kdelta export users orders --at 2026-01-01T00:00:00Z > jan1.ndjson\n",
     CLI_OPT_AT | CLI_OPT_EXPORT, 0, CLI_MAX_POS, cli_cmd_export},
    {"import", "FILE|-", "restore what kdelta export wrote",
     "Reads an export and writes it into the database. A full-history export is replayed\n"
     "commit by commit with the original timestamps, so every version id and the order of\n"
     "history are kept; versions already present are skipped, so importing twice does not\n"
     "duplicate. Its commits must be newer than everything in the database (import into a new\n"
     "or older database). A point-in-time export (--at, --current) is written as new versions\n"
     "(now), skipping keys whose current value is already the same.\n",
     0, 1, 1, cli_cmd_import},
    {"serve", "", "serve the database over HTTP",
     "Opens the database and serves the HTTP API (docs/http.md) until SIGINT, SIGTERM or\n"
     "SIGHUP, then finishes the requests in flight, syncs and exits 0 (a second signal stops\n"
     "at once, still syncing). While it runs, other kdelta commands on the same database go\n"
     "through the server automatically.\n"
     "\n"
     "Options:\n"
     "  --port N              TCP port (default 8080; 0 = any free port)\n"
     "  --bind ADDR           address to listen on (default 127.0.0.1)\n"
     "  --max-body SIZE       largest request body, e.g. 16MiB (default 16MiB)\n"
     "  --max-connections N   connections served at once (default 1024)\n"
     "Logs go to stderr: KORU_LOG=error|warn|info|debug|trace (default info),\n"
     "KORU_LOG_FORMAT=json for JSON lines; one access-log line per request at info.\n"
     "\n"
     "Examples:\n"
     "  kdelta serve\n"
     "  kdelta serve --port 9000 --bind 0.0.0.0\n"
     "  curl -X PUT localhost:8080/api/v1/users/alice -d '{\"value\":{\"age\":30}}'\n",
     CLI_OPT_PORT | CLI_OPT_BIND | CLI_OPT_MAX_BODY | CLI_OPT_MAX_CONN, 0, 0, cli_cmd_serve},
    {"watch", "[NS[/KEY]]", "print changes as they are committed",
     "Prints every committed change (put or delete) as it happens, in seq order, until\n"
     "interrupted: one line per change (seq, change type, NS/KEY, version, value), or with\n"
     "--json one JSON document per line (NDJSON). NS limits it to a namespace, NS/KEY to one\n"
     "key. Works on a local database and through a server (--url, or automatically while\n"
     "'kdelta serve' holds the database). Locally, watch holds the database while it runs,\n"
     "so nobody else can write to it: to watch a database others write, serve it.\n"
     "\n"
     "Options:\n"
     "  --since SEQ       also print the changes after SEQ that are already committed\n"
     "                    (0 = from the beginning; default: only new ones)\n"
     "  --types LIST      only these change types: insert,update,delete\n"
     "  --filter EXPR     only puts whose value matches EXPR (see kdelta query --help);\n"
     "                    deletes always pass\n"
     "\n"
     "Examples:\n"
     "  kdelta watch users\n"
     "  kdelta watch users/alice --since 0 --json\n"
     "  kdelta watch orders --types insert --filter 'total > 100'\n",
     CLI_OPT_SINCE | CLI_OPT_TYPES | CLI_OPT_FILTER, 0, 1, cli_cmd_watch},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cli_cmd *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* ---- options ---------------------------------------------------------------------------- */

enum {
    O_DB = 1, O_JSON, O_SYNC, O_MAX_DB, O_NOCOLOR, O_HELP, O_VERSION, /* global */
    O_AT, O_VERBOSE, O_IF_VERSION, O_IF_ABSENT, O_LIMIT, O_FROM, O_TO, O_ALL, O_DEEP,
    O_OFFSET, O_AUTO_REFRESH, O_DESCRIPTION, O_URL, O_PORT, O_BIND, O_MAX_BODY, O_MAX_CONN,
    O_SINCE, O_TYPES, O_VECTOR, O_VECTOR_FILE, O_MODEL, O_META, O_DELETE, O_TOP_K,
    O_THRESHOLD, O_METRIC, O_META_FILTER, O_EXACT, O_EF, O_CURRENT,
    O_QUERY /* the query-building options below; cli_opt.qkind says which */
};

typedef struct cli_opt {
    const char *name;    /* long name without "--" */
    char short_name;     /* 0 = none */
    int id;
    int has_arg;
    unsigned mask;       /* 0 = global, else the CLI_OPT_* bit a command must allow */
    int qkind;           /* CLI_Q_* for O_QUERY options (kept in order in c->qopts) */
} cli_opt;

static const cli_opt options[] = {
    {"db", 'd', O_DB, 1, 0, 0},
    {"db-path", 0, O_DB, 1, 0, 0},
    {"json", 0, O_JSON, 0, 0, 0},
    {"sync", 0, O_SYNC, 1, 0, 0},
    {"max-db-bytes", 0, O_MAX_DB, 1, 0, 0},
    {"no-color", 0, O_NOCOLOR, 0, 0, 0},
    {"no-colour", 0, O_NOCOLOR, 0, 0, 0},
    {"help", 'h', O_HELP, 0, 0, 0},
    {"version", 0, O_VERSION, 0, 0, 0},
    {"url", 0, O_URL, 1, 0, 0},
    {"port", 0, O_PORT, 1, CLI_OPT_PORT, 0},
    {"bind", 0, O_BIND, 1, CLI_OPT_BIND, 0},
    {"max-body", 0, O_MAX_BODY, 1, CLI_OPT_MAX_BODY, 0},
    {"max-connections", 0, O_MAX_CONN, 1, CLI_OPT_MAX_CONN, 0},
    {"since", 0, O_SINCE, 1, CLI_OPT_SINCE, 0},
    {"types", 0, O_TYPES, 1, CLI_OPT_TYPES, 0},
    {"at", 0, O_AT, 1, CLI_OPT_AT, 0},
    {"verbose", 'v', O_VERBOSE, 0, CLI_OPT_VERBOSE, 0},
    {"if-version", 0, O_IF_VERSION, 1, CLI_OPT_IF_VERSION, 0},
    {"if-absent", 0, O_IF_ABSENT, 0, CLI_OPT_IF_ABSENT, 0},
    {"limit", 'n', O_LIMIT, 1, CLI_OPT_LIMIT, 0},
    {"from", 0, O_FROM, 1, CLI_OPT_FROM, 0},
    {"to", 0, O_TO, 1, CLI_OPT_TO, 0},
    {"all", 'a', O_ALL, 0, CLI_OPT_ALL, 0},
    {"deep", 0, O_DEEP, 0, CLI_OPT_DEEP, 0},
    {"current", 0, O_CURRENT, 0, CLI_OPT_EXPORT, 0},
    {"offset", 0, O_OFFSET, 1, CLI_OPT_OFFSET, 0},
    {"auto-refresh", 0, O_AUTO_REFRESH, 0, CLI_OPT_AUTO_REFRESH, 0},
    {"description", 0, O_DESCRIPTION, 1, CLI_OPT_DESCRIPTION, 0},
    {"filter", 0, O_QUERY, 1, CLI_OPT_FILTER, CLI_Q_FILTER},
    {"sort", 0, O_QUERY, 1, CLI_OPT_SORT, CLI_Q_SORT},
    {"select", 0, O_QUERY, 1, CLI_OPT_SELECT, CLI_Q_SELECT},
    {"count", 0, O_QUERY, 0, CLI_OPT_AGG, CLI_Q_COUNT},
    {"sum", 0, O_QUERY, 1, CLI_OPT_AGG, CLI_Q_SUM},
    {"avg", 0, O_QUERY, 1, CLI_OPT_AGG, CLI_Q_AVG},
    {"min", 0, O_QUERY, 1, CLI_OPT_AGG, CLI_Q_MIN},
    {"max", 0, O_QUERY, 1, CLI_OPT_AGG, CLI_Q_MAX},
    {"distinct", 0, O_QUERY, 1, CLI_OPT_AGG, CLI_Q_DISTINCT},
    {"group-by", 0, O_QUERY, 1, CLI_OPT_AGG, CLI_Q_GROUP_BY},
    {"vector", 0, O_VECTOR, 1, CLI_OPT_VECTOR, 0},
    {"vector-file", 0, O_VECTOR_FILE, 1, CLI_OPT_VECTOR, 0},
    {"model", 0, O_MODEL, 1, CLI_OPT_VECTOR, 0},
    {"meta", 0, O_META, 1, CLI_OPT_EMBED, 0},
    {"delete", 0, O_DELETE, 0, CLI_OPT_EMBED, 0},
    {"top-k", 'k', O_TOP_K, 1, CLI_OPT_SEARCH, 0},
    {"threshold", 0, O_THRESHOLD, 1, CLI_OPT_SEARCH, 0},
    {"metric", 0, O_METRIC, 1, CLI_OPT_SEARCH, 0},
    {"meta-filter", 0, O_META_FILTER, 1, CLI_OPT_SEARCH, 0},
    {"exact", 0, O_EXACT, 0, CLI_OPT_SEARCH, 0},
    {"ef", 0, O_EF, 1, CLI_OPT_SEARCH, 0},
};
#define NOPTIONS (sizeof options / sizeof options[0])

/* Finds the option spelled by arg ("--name", "--name=value" or "-x"). *inline_val gets
** the text after '=' if any. */
static const cli_opt *find_option(const char *arg, const char **inline_val) {
    *inline_val = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (size_t i = 0; i < NOPTIONS; i++) {
            if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0) {
                if (eq) *inline_val = eq + 1;
                return &options[i];
            }
        }
        return NULL;
    }
    if (arg[1] && !arg[2]) {
        for (size_t i = 0; i < NOPTIONS; i++)
            if (options[i].short_name == arg[1]) return &options[i];
    }
    return NULL;
}

/* ---- help ------------------------------------------------------------------------------- */

static void print_global_help(FILE *f) {
    fprintf(f,
            "kdelta %s - KoruDelta, a time-aware JSON database that keeps every version\n"
            "\n"
            "Usage: kdelta [OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n",
            KD_VERSION_STRING);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-22s %s\n", head, commands[i].summary);
    }
    fprintf(f,
            "\n"
            "Options (before or after the command):\n"
            "  -d, --db, --db-path PATH  database directory (default: $KORU_DB, else\n"
            "                            ~/.korudelta/db, created on first use)\n"
            "  --json                    print exactly one JSON document on stdout\n"
            "  --sync full|normal|off    durability of writes (default: full)\n"
            "  --max-db-bytes SIZE       quota on the log (e.g. 512MiB): writes past it fail\n"
            "                            'database full'; reads go on (default: none)\n"
            "  --url URL                 run the command against a kdelta server (default:\n"
            "                            $KORU_URL; without either, a database held by a\n"
            "                            running 'kdelta serve' is reached through it)\n"
            "  --no-color                no colour in human output (NO_COLOR is respected)\n"
            "  -h, --help                this help; 'kdelta COMMAND --help' for a command\n"
            "  --version                 print the version\n"
            "  --                        end of options (kdelta set ns/k -- -1)\n"
            "\n"
            "Times (T): RFC 3339 with any offset and fraction (2026-01-01T12:00:00Z,\n"
            "  2026-01-01T13:00:00.5+01:00), @UNIX[.frac] (@1767225600.25), an age\n"
            "  (30s, 5m, 2h, 3d, 1w ago), now, or a version id prefix (8+ hex digits).\n"
            "\n"
            "Exit codes: 0 ok, 1 error (bad JSON, name, time, filter, I/O, corrupt, busy),\n"
            "  2 usage, 3 not found, 4 conflict (a failed --if-version/--if-absent, a view\n"
            "  name in use).\n");
}

static void print_command_help(FILE *f, const cli_cmd *cmd) {
    fprintf(f, "Usage: kdelta %s%s%s [OPTIONS]\n\n%s", cmd->name, *cmd->args ? " " : "",
            cmd->args, cmd->help);
    fprintf(f, "\nGlobal options: --db PATH, --json, --sync MODE, --url URL, --no-color (see kdelta "
               "--help)\n");
}

/* ---- parsing ---------------------------------------------------------------------------- */

/* Records the first usage error; parsing goes on so that a later --help still wins. */
static void usage_error(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void usage_error(cli *c, const char *fmt, ...) {
    va_list ap;
    if (c->err_rc) return;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    c->err_rc = CLI_RC_USAGE;
}

static int parse_count(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (!*s) return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

static void apply_option(cli *c, const cli_opt *o, const char *val) {
    switch (o->id) {
    case O_DB: c->db_path = val; break;
    case O_JSON: c->json = 1; break;
    case O_SYNC:
        if (strcmp(val, "full") == 0) c->sync = KD_SYNC_FULL;
        else if (strcmp(val, "normal") == 0) c->sync = KD_SYNC_NORMAL;
        else if (strcmp(val, "off") == 0) c->sync = KD_SYNC_OFF;
        else usage_error(c, "invalid --sync mode '%s' (use full, normal or off)", val);
        break;
    case O_MAX_DB:
        if (!cli_parse_size(val, &c->max_db_bytes))
            usage_error(c, "invalid --max-db-bytes '%s' (a positive number of bytes, optionally with KiB, MiB or GiB)",
                        val);
        break;
    case O_NOCOLOR: c->no_color = 1; break;
    case O_AT: c->at = val; break;
    case O_VERBOSE: c->verbose = 1; break;
    case O_IF_VERSION: c->if_version = val; break;
    case O_IF_ABSENT: c->if_absent = 1; break;
    case O_LIMIT:
        if (parse_count(val, &c->limit) != 0 && !c->bad_limit) c->bad_limit = val;
        c->has_limit = 1;
        break;
    case O_OFFSET:
        if (parse_count(val, &c->offset) != 0)
            usage_error(c, "invalid --offset '%s' (want a number of records to skip)", val);
        c->has_offset = 1;
        break;
    case O_AUTO_REFRESH: c->auto_refresh = 1; break;
    case O_DESCRIPTION: c->description = val; break;
    case O_URL: c->url = val; break;
    case O_PORT: c->port = val; break;
    case O_BIND: c->bind = val; break;
    case O_MAX_BODY: c->max_body = val; break;
    case O_MAX_CONN: c->max_connections = val; break;
    case O_SINCE: c->since = val; break;
    case O_TYPES: c->types = val; break;
    case O_VECTOR: c->vector = val; break;
    case O_VECTOR_FILE: c->vector_file = val; break;
    case O_MODEL: c->model = val; break;
    case O_META: c->meta = val; break;
    case O_DELETE: c->embed_delete = 1; break;
    case O_TOP_K: c->top_k = val; break;
    case O_THRESHOLD: c->threshold = val; break;
    case O_METRIC: c->metric = val; break;
    case O_META_FILTER:
        c->meta_filter = val;
        c->nmeta_filters++;
        break;
    case O_EXACT: c->exact = 1; break;
    case O_EF: c->ef = val; break;
    case O_QUERY:
        /* c->qopts has room for one entry per argument (allocated in parse_args). */
        if (c->qopts) c->qopts[c->nqopts++] = (cli_qopt){o->qkind, o->name, val};
        break;
    case O_FROM: c->from = val; break;
    case O_TO: c->to = val; break;
    case O_ALL: c->all = 1; break;
    case O_DEEP: c->deep = 1; break;
    case O_CURRENT: c->current = 1; break;
    default: break;
    }
}

static int is_option_like(const char *a) {
    return a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9');
}

enum { WANT_RUN, WANT_HELP, WANT_VERSION };

/* Fills c from argv. Returns WANT_RUN (check c->err_rc), WANT_HELP or WANT_VERSION. */
static int parse_args(cli *c, int argc, char **argv) {
    int help = 0, version = 0, ended = 0;
    c->qopts = calloc((size_t)argc, sizeof *c->qopts);
    if (!c->qopts) {
        cli_fail(c, KD_NOMEM, "out of memory");
        return WANT_RUN;
    }
    /* The first argument that is not an option is the command; the rest are its
    ** arguments. Options may come anywhere before `--`. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!ended && strcmp(a, "--") == 0) {
            ended = 1;
            continue;
        }
        if (!ended && is_option_like(a)) {
            const char *val = NULL;
            const cli_opt *o = find_option(a, &val);
            if (!o) {
                usage_error(c, "unknown option '%s'", a);
                continue;
            }
            if (o->has_arg && !val) {
                if (i + 1 >= argc) {
                    usage_error(c, "option '%s' needs a value", a);
                    continue;
                }
                val = argv[++i];
            } else if (!o->has_arg && val) {
                usage_error(c, "option '--%s' takes no value", o->name);
                continue;
            }
            if (o->id == O_HELP) help = 1;
            else if (o->id == O_VERSION) version = 1;
            else if (o->mask) {
                /* A command option: only valid for a command that takes it. Checked once
                ** the command is known (it may come after the option). */
                apply_option(c, o, val);
                c->opt_seen |= o->mask;
                if (!c->opt_first[__builtin_ctz(o->mask)]) c->opt_first[__builtin_ctz(o->mask)] = a;
            } else {
                apply_option(c, o, val);
            }
            continue;
        }
        if (!c->cmd && !c->cmd_name) {
            c->cmd_name = a;
            c->cmd = find_command(a);
            if (!c->cmd && strcmp(a, "help") != 0)
                usage_error(c, "unknown command '%s' (see kdelta --help)", a);
            continue;
        }
        if (c->cmd_name && strcmp(c->cmd_name, "help") == 0 && !c->cmd) {
            /* `kdelta help CMD` */
            c->cmd = find_command(a);
            if (!c->cmd) usage_error(c, "unknown command '%s' (see kdelta --help)", a);
            continue;
        }
        if (c->npos < CLI_MAX_POS) c->pos[c->npos] = a;
        c->npos++;
    }
    if (c->cmd_name && strcmp(c->cmd_name, "help") == 0 && (c->cmd || !c->err_rc)) help = 1;
    if (help) return WANT_HELP;
    if (version) return WANT_VERSION;
    if (c->err_rc) return WANT_RUN;
    if (!c->cmd) {
        cli_fail(c, CLI_RC_USAGE, "missing command (see kdelta --help)");
        return WANT_RUN;
    }
    unsigned bad = c->opt_seen & ~c->cmd->opts;
    if (bad) {
        cli_fail(c, CLI_RC_USAGE, "option '%s' does not apply to '%s' (see kdelta %s --help)",
                 c->opt_first[__builtin_ctz(bad)], c->cmd->name, c->cmd->name);
        return WANT_RUN;
    }
    if (c->bad_limit) {
        /* For log 0 shows every version; for a query it returns no records. */
        cli_fail(c, CLI_RC_USAGE, "invalid --limit '%s' (want a number, 0 = %s)", c->bad_limit,
                 c->cmd->opts & CLI_OPT_FILTER ? "no records, only total and aggregations" : "all");
        return WANT_RUN;
    }
    if (c->npos < c->cmd->min_pos) {
        cli_fail(c, CLI_RC_USAGE, "missing argument for '%s' (usage: kdelta %s %s)", c->cmd->name,
                 c->cmd->name, c->cmd->args);
        return WANT_RUN;
    }
    if (c->npos > c->cmd->max_pos) {
        cli_fail(c, CLI_RC_USAGE, "unexpected argument '%s' for '%s' (usage: kdelta %s%s%s)",
                 c->pos[c->cmd->max_pos], c->cmd->name,
                 c->cmd->name, *c->cmd->args ? " " : "", c->cmd->args);
        return WANT_RUN;
    }
    if (c->if_version && c->if_absent) {
        cli_fail(c, CLI_RC_USAGE, "--if-version and --if-absent cannot be used together");
        return WANT_RUN;
    }
    return WANT_RUN;
}

/* ---- the database ----------------------------------------------------------------------- */

/* Creates every missing directory above path (not path itself: kd_open creates that). */
static int make_parents(cli *c, const char *path, mode_t mode) {
    char *p = strdup(path);
    int rc = 0;
    if (!p) return cli_fail(c, KD_NOMEM, "out of memory");
    char *last = strrchr(p, '/');
    if (!last || last == p) goto out;
    *last = '\0';
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char save = *s;
            *s = '\0';
            if (mkdir(p, mode) != 0 && errno != EEXIST) {
                rc = cli_fail(c, KD_IOERR, "cannot create directory %s: %s", p, strerror(errno));
                goto out;
            }
            *s = save;
            if (save == '\0') break;
        }
    }
out:
    free(p);
    return rc;
}

/* Finds the database path; creates its missing parents when the command may open it
** (not when it runs against a server given by --url or KORU_URL). */
static int resolve_db_path(cli *c, int create_parents) {
    mode_t mode = 0777;
    if (!c->db_path) {
        const char *env = getenv("KORU_DB");
        if (env && *env) c->db_path = env;
    }
    if (!c->db_path) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home || !*home)
            return cli_fail(c, KD_INVALID, "no home directory: give the database with --db PATH");
        size_t n = strlen(home) + sizeof "/.korudelta/db";
        c->db_path_owned = malloc(n);
        if (!c->db_path_owned) return cli_fail(c, KD_NOMEM, "out of memory");
        snprintf(c->db_path_owned, n, "%s/.korudelta/db", home);
        c->db_path = c->db_path_owned;
        mode = 0700; /* ~/.korudelta is private */
    }
    if (!*c->db_path) return cli_fail(c, KD_INVALID, "empty database path");
    return create_parents ? make_parents(c, c->db_path, mode) : 0;
}

void cli_db_options(const cli *c, kd_options *o) {
    kd_options_init(o);
    if (c->sync >= 0) o->sync = (kd_sync_mode)c->sync;
    o->max_db_bytes = c->max_db_bytes;
}

int cli_parse_size(const char *s, uint64_t *out) {
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0},    {"b", 0},    {"k", 10}, {"kb", 10}, {"kib", 10}, {"m", 20},
                 {"mb", 20}, {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}};
    char *end;
    if (!s || *s < '0' || *s > '9') return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0) return 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) != 0) continue;
        if (v > (UINT64_MAX >> 1) >> units[i].shift) return 0;
        *out = (uint64_t)v << units[i].shift;
        return 1;
    }
    return 0;
}

int cli_open_db(cli *c) {
    kd_options o;
    int rc;
    cli_db_options(c, &o);
    rc = kd_open(c->db_path, &o, &c->db);
    if (rc != KD_OK) {
        c->db = NULL;
        if (rc == KD_BUSY) return cli_fail_kd(c, rc, NULL);
        char what[PATH_MAX + 64];
        snprintf(what, sizeof what, "cannot open database %s", c->db_path);
        return cli_fail_kd(c, rc, what);
    }
    return 0;
}

/* ---- output ----------------------------------------------------------------------------- */

/* Writes the error: one line on stderr and, with --json, the error object on stdout. */
static int report_error(cli *c) {
    for (char *p = c->err_msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "kdelta: error: %s\n", c->err_msg);
    if (c->json && !c->err_no_json) {
        cli_buf b = {0};
        cli_buf_puts(&b, "{\"error\":{\"code\":");
        cli_json_cstr(&b, cli_error_code(c->err_rc));
        cli_buf_puts(&b, ",\"message\":");
        cli_json_cstr(&b, c->err_msg);
        cli_buf_puts(&b, "}}\n");
        if (!b.oom) fwrite(b.p, 1, b.len, stdout);
        cli_buf_free(&b);
    } else if (c->err_no_json && c->out.len) {
        fwrite(c->out.p, 1, c->out.len, stdout);
    }
    fflush(stdout);
    return cli_exit_code(c->err_rc);
}

static int write_output(cli *c) {
    if (c->out.oom) {
        cli_fail(c, KD_NOMEM, "out of memory");
        return report_error(c);
    }
    if (c->out.len) fwrite(c->out.p, 1, c->out.len, stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "kdelta: error: writing output: %s\n", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

static int want_color(const cli *c) {
    const char *nc = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    if (c->json || c->no_color) return 0;
    if (nc && *nc) return 0; /* https://no-color.org: set and not empty */
    if (term && strcmp(term, "dumb") == 0) return 0;
    return isatty(STDOUT_FILENO);
}

int main(int argc, char **argv) {
    cli c;
    int code;
    memset(&c, 0, sizeof c);
    c.sync = -1;

    switch (parse_args(&c, argc, argv)) {
    case WANT_HELP:
        if (c.cmd) print_command_help(stdout, c.cmd);
        else print_global_help(stdout);
        code = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
        goto out;
    case WANT_VERSION:
        if (c.json) printf("{\"version\":\"%s\"}\n", KD_VERSION_STRING);
        else printf("kdelta %s\n", KD_VERSION_STRING);
        code = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
        goto out;
    default: break;
    }
    if (c.err_rc) {
        code = report_error(&c);
        goto out;
    }
    c.color = want_color(&c);
    /* `serve` opens the database whatever KORU_URL says; every other command goes to the
    ** server when one is named. */
    if (resolve_db_path(&c, c.cmd->run == cli_cmd_serve || !cli_explicit_url(&c)) != 0) {
        code = report_error(&c);
        goto out;
    }
    code = c.cmd->run(&c);
    if (c.db) {
        int rc = kd_close(c.db);
        c.db = NULL;
        if (rc != KD_OK && !c.err_rc) code = cli_fail_kd(&c, rc, "closing database");
    }
    code = c.err_rc ? report_error(&c) : (code ? code : write_output(&c));
out:
    cli_disconnect(&c);
    cli_buf_free(&c.out);
    free(c.db_path_owned);
    free(c.qopts);
    return code;
}
