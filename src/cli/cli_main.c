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
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

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
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cli_cmd *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* ---- options ---------------------------------------------------------------------------- */

enum {
    O_DB = 1, O_JSON, O_SYNC, O_NOCOLOR, O_HELP, O_VERSION, /* global */
    O_AT, O_VERBOSE, O_IF_VERSION, O_IF_ABSENT, O_LIMIT, O_FROM, O_TO, O_ALL, O_DEEP
};

typedef struct cli_opt {
    const char *name;    /* long name without "--" */
    char short_name;     /* 0 = none */
    int id;
    int has_arg;
    unsigned mask;       /* 0 = global, else the CLI_OPT_* bit a command must allow */
} cli_opt;

static const cli_opt options[] = {
    {"db", 'd', O_DB, 1, 0},
    {"db-path", 0, O_DB, 1, 0},
    {"json", 0, O_JSON, 0, 0},
    {"sync", 0, O_SYNC, 1, 0},
    {"no-color", 0, O_NOCOLOR, 0, 0},
    {"no-colour", 0, O_NOCOLOR, 0, 0},
    {"help", 'h', O_HELP, 0, 0},
    {"version", 0, O_VERSION, 0, 0},
    {"at", 0, O_AT, 1, CLI_OPT_AT},
    {"verbose", 'v', O_VERBOSE, 0, CLI_OPT_VERBOSE},
    {"if-version", 0, O_IF_VERSION, 1, CLI_OPT_IF_VERSION},
    {"if-absent", 0, O_IF_ABSENT, 0, CLI_OPT_IF_ABSENT},
    {"limit", 'n', O_LIMIT, 1, CLI_OPT_LIMIT},
    {"from", 0, O_FROM, 1, CLI_OPT_FROM},
    {"to", 0, O_TO, 1, CLI_OPT_TO},
    {"all", 'a', O_ALL, 0, CLI_OPT_ALL},
    {"deep", 0, O_DEEP, 0, CLI_OPT_DEEP},
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
            "  --no-color                no colour in human output (NO_COLOR is respected)\n"
            "  -h, --help                this help; 'kdelta COMMAND --help' for a command\n"
            "  --version                 print the version\n"
            "  --                        end of options (kdelta set ns/k -- -1)\n"
            "\n"
            "Times (T): RFC 3339 with any offset and fraction (2026-01-01T12:00:00Z,\n"
            "  2026-01-01T13:00:00.5+01:00), @UNIX[.frac] (@1767225600.25), an age\n"
            "  (30s, 5m, 2h, 3d, 1w ago), now, or a version id prefix (8+ hex digits).\n"
            "\n"
            "Exit codes: 0 ok, 1 error (bad JSON, name, time, I/O, corrupt, busy),\n"
            "  2 usage, 3 not found, 4 conflict (a failed --if-version/--if-absent).\n");
}

static void print_command_help(FILE *f, const cli_cmd *cmd) {
    fprintf(f, "Usage: kdelta %s%s%s [OPTIONS]\n\n%s", cmd->name, *cmd->args ? " " : "",
            cmd->args, cmd->help);
    fprintf(f, "\nGlobal options: --db PATH, --json, --sync MODE, --no-color (see kdelta --help)\n");
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

static int parse_limit(const char *s, uint64_t *out) {
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
    case O_NOCOLOR: c->no_color = 1; break;
    case O_AT: c->at = val; break;
    case O_VERBOSE: c->verbose = 1; break;
    case O_IF_VERSION: c->if_version = val; break;
    case O_IF_ABSENT: c->if_absent = 1; break;
    case O_LIMIT:
        if (parse_limit(val, &c->limit) != 0)
            usage_error(c, "invalid --limit '%s' (want a number, 0 = all)", val);
        c->has_limit = 1;
        break;
    case O_FROM: c->from = val; break;
    case O_TO: c->to = val; break;
    case O_ALL: c->all = 1; break;
    case O_DEEP: c->deep = 1; break;
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

static int resolve_db_path(cli *c) {
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
    return make_parents(c, c->db_path, mode);
}

int cli_open_db(cli *c) {
    kd_options o;
    int rc;
    kd_options_init(&o);
    if (c->sync >= 0) o.sync = (kd_sync_mode)c->sync;
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
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    case WANT_VERSION:
        if (c.json) printf("{\"version\":\"%s\"}\n", KD_VERSION_STRING);
        else printf("kdelta %s\n", KD_VERSION_STRING);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    default: break;
    }
    if (c.err_rc) {
        code = report_error(&c);
        goto out;
    }
    c.color = want_color(&c);
    if (resolve_db_path(&c) != 0) {
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
    cli_buf_free(&c.out);
    free(c.db_path_owned);
    return code;
}
