#!/bin/bash
# test_cli_basic.sh — kdelta basics: set/get/delete/re-create, values from stdin, `--` and
# negative numbers, keys with slashes, where the database lives (--db, -d, --db-path,
# --db=, KORU_DB, ~/.korudelta/db), global options after the command, help and version.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }

t_case "set then get"
K set cfg/app '{"debug":true,"level":3}'
expect_rc 0
expect_out_has '^Stored cfg/app: version [0-9a-f]{8}, seq 1, [0-9T:.-]+Z$'
K get cfg/app
expect_rc 0
expect_out $'{\n  "debug": true,\n  "level": 3\n}'

t_case "values are stored canonical"
K set cfg/canon '{"b":1, "a":2.0, "c":1e2}'
expect_rc 0
K --json get cfg/canon
expect_eq "$(field value)" '{"a": 2, "b": 1, "c": 100}'

t_case "a second set makes a new current version"
K set cfg/app '{"debug":false}'
K get cfg/app
expect_out $'{\n  "debug": false\n}'
K --json get cfg/app
expect_eq "$(field seq)" 3

t_case "scalars and null"
K set cfg/n null
expect_rc 0
K get cfg/n
expect_out 'null'
K set cfg/s '"hello"'
K get cfg/s
expect_out '"hello"'

t_case "value from stdin"
K set cfg/stdin - <<< '{"from":"stdin","list":[1,2]}'
expect_rc 0
K --json get cfg/stdin
expect_eq "$(field value)" '{"from": "stdin", "list": [1, 2]}'

t_case "-- ends options; negative numbers are values"
K set num/a -- -1
expect_rc 0
K get num/a
expect_out '-1'
K set num/b -2.5
expect_rc 0
K get num/b
expect_out '-2.5'
K set num/c --json -- -7
expect_rc 0
expect_eq "$(field key)" c
K get num/c
expect_out '-7'
K set num/d -- '-x'
expect_rc 1
expect_err_has 'invalid JSON'

t_case "keys may contain slashes (split at the first one)"
K set files/a/b/c.txt '{"size":3}'
expect_rc 0
K get files/a/b/c.txt
expect_out $'{\n  "size": 3\n}'
K --json list files
expect_eq "$(field keys.0)" 'a/b/c.txt'

t_case "delete, get after delete, re-create"
K delete cfg/app
expect_rc 0
expect_out_has '^Deleted cfg/app: version [0-9a-f]{8}, seq [0-9]+, '
K get cfg/app
expect_rc 3
expect_err_has '^kdelta: error: cfg/app not found: deleted at [0-9T:.-]+Z'
expect_out ''
K delete cfg/app
expect_rc 3
expect_err_has 'already deleted'
K delete cfg/never
expect_rc 3
expect_err_has 'cfg/never not found'
K set cfg/app '{"back":1}'
expect_rc 0
K get cfg/app
expect_out $'{\n  "back": 1\n}'
K log cfg/app
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | grep -c '^  \* ')" 4
expect_eq "$(printf '%s\n' "$OUT" | sed -n 2p | grep -c '(deleted)$')" 1

t_case "global options after the command"
K get cfg/app --json
expect_rc 0
expect_eq "$(field value)" '{"back": 1}'
mkdir -p other
K get cfg/app --db "$T_DIR/other/db"
expect_rc 3
K set x/y 1 --db "$T_DIR/other/db"
expect_rc 0

t_case "--db spellings and KORU_DB"
for spell in "--db $T_DIR/other/db" "-d $T_DIR/other/db" "--db-path $T_DIR/other/db" "--db=$T_DIR/other/db"; do
    # shellcheck disable=SC2086
    K $spell get x/y
    expect_out '1'
done
KORU_DB="$T_DIR/other/db" run "$KDELTA" get x/y
expect_out '1'
# --db wins over KORU_DB
KORU_DB="$T_DIR/other/db" run "$KDELTA" --db "$KORU_DB" get x/y
expect_rc 3

t_case "default database ~/.korudelta/db is created with its parents"
mkdir -p home
(unset KORU_DB; HOME="$T_DIR/home" "$KDELTA" set h/k '"home"' >/dev/null 2>&1)
if [ -d "$T_DIR/home/.korudelta/db" ]; then ok; else bad "no ~/.korudelta/db"; fi
OUT=$(unset KORU_DB; HOME="$T_DIR/home" "$KDELTA" get h/k 2>&1)
expect_out '"home"'
K --db "$T_DIR/deep/er/path/db" set a/b 2
expect_rc 0
if [ -d "$T_DIR/deep/er/path/db" ]; then ok; else bad "parents of --db not created"; fi

t_case "sync modes"
for m in full normal off; do
    K --sync "$m" set sync/$m "\"$m\""
    expect_rc 0
    K get sync/$m
    expect_out "\"$m\""
done

t_case "help and version"
K --help
expect_rc 0
expect_out_has '^Usage: kdelta \[OPTIONS\] COMMAND'
for cmd in set get delete log diff batch list status check; do
    K "$cmd" --help
    expect_rc 0
    expect_out_has "^Usage: kdelta $cmd"
    K help "$cmd"
    expect_rc 0
    expect_out_has "^Usage: kdelta $cmd"
done
K -h
expect_rc 0
K --version
expect_rc 0
expect_out 'kdelta 0.1.0'
K --json --version
expect_eq "$(field version)" '0.1.0'
K set --help --bogus-flag
expect_rc 0

t_end
