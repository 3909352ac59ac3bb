#!/bin/bash
# test_cli_errors.sh — bad input and exit codes: usage errors (2), invalid values (1),
# not found (3), conflicts (4); one line on stderr; with --json exactly one
# {"error":{"code","message"}} document on stdout; nothing written on any bad input (seq
# unchanged); a database locked by another process names that process's pid.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
stat_field() { "$KDELTA" --json status | jget "$1"; }

K set base/k '{"v":1}'
seq0=$(stat_field seq)

t_case "usage errors exit 2"
expect_error 2 usage "unknown command 'frobnicate'" -- frobnicate
expect_error 2 usage "unknown option '--bogus'" -- get base/k --bogus
expect_error 2 usage "unknown option '-x'" -- -x get base/k
expect_error 2 usage "option '--at' does not apply to 'set'" -- set base/k 1 --at 5m
expect_error 2 usage "missing argument for 'set'" -- set base/k
expect_error 2 usage "missing argument for 'get'" -- get
expect_error 2 usage "missing command" --
expect_error 2 usage "unexpected argument 'extra'" -- get base/k extra
expect_error 2 usage "unexpected argument 'x'" -- status x
expect_error 2 usage "option '--at' needs a value" -- get base/k --at
expect_error 2 usage "option '--json' takes no value" -- --json=yes status
expect_error 2 usage "invalid --sync mode 'sometimes'" -- --sync sometimes status
expect_error 2 usage "invalid --limit 'x'" -- log base/k --limit x
expect_error 2 usage "cannot be used together" -- set base/k 2 --if-absent --if-version abcdef12
K frobnicate
expect_rc 2
expect_out ''

t_case "invalid values exit 1 and write nothing"
expect_error 1 invalid "invalid JSON value" -- set base/k '{"a":'
expect_error 1 invalid "invalid JSON value" -- set base/k 'hello'
expect_error 1 invalid "invalid JSON value" -- set base/k '{"a":1,"a":2}'
expect_error 1 invalid "invalid JSON value" -- set base/k ''
expect_error 1 invalid "reserved" -- set _sys/k 1
expect_error 1 invalid "reserved" -- set base/_k 1
expect_error 1 invalid "empty key" -- set base/ 1
expect_error 1 invalid "empty namespace" -- set /k 1
expect_error 1 invalid "expected NS/KEY" -- set nokey 1
expect_error 1 invalid "invalid namespace" -- set 'a b/k' 1
expect_error 1 invalid "namespace is 129 bytes" -- set "$(printf 'n%.0s' $(seq 129))/k" 1
expect_error 1 invalid "key is 1025 bytes" -- set "ns/$(printf 'k%.0s' $(seq 1025))" 1
expect_error 1 invalid "not valid UTF-8" -- set "ns/$(printf 'a\xffb')" 1
expect_error 1 invalid "invalid version id" -- set base/k 2 --if-version xyz
expect_error 1 invalid "--at 'soon'" -- get base/k --at soon
expect_error 1 invalid "reserved" -- delete _sys/k
python3 -c 'import json; print(json.dumps("x" * (17 * 1024 * 1024)))' > big.json
run "$KDELTA" --json set base/big - < big.json
expect_rc 1
expect_eq "$(field error.code)" too_big
expect_err_has 'over the limit'
expect_eq "$(stat_field seq)" "$seq0"
K get base/k
expect_out $'{\n  "v": 1\n}'

t_case "not found exits 3"
expect_error 3 not_found "base/none not found" -- get base/none
expect_error 3 not_found "base/none not found" -- delete base/none
expect_error 3 not_found "base/none not found" -- log base/none
expect_error 3 not_found "" -- diff base/none
expect_error 3 not_found "" -- get base/k --at deadbeef

t_case "conflicts exit 4 and name the current version"
K --json get base/k; cur=$(field version_id)
expect_error 4 conflict "base/k already exists \(current version ${cur:0:8}" -- set base/k 2 --if-absent
expect_error 4 conflict "is at version ${cur:0:8}.*not 0123abcd" -- set base/k 2 --if-version 0123abcd
expect_error 4 conflict "has no current version" -- set base/new 2 --if-version 0123abcd
expect_eq "$(stat_field seq)" "$seq0"
K set base/k 2 --if-version "${cur:0:8}"
expect_rc 0
K set base/new 3 --if-absent
expect_rc 0
K get base/k
expect_out '2'

t_case "human errors: one line on stderr, nothing on stdout"
K get base/none
expect_rc 3
expect_out ''
expect_eq "$(printf '%s\n' "$ERR" | wc -l)" 1
expect_err_has '^kdelta: error: base/none not found$'

t_case "a database in use by another process names its pid"
python3 - "$KORU_DB/LOCK" > holder.out 2>&1 <<'PY' &
import fcntl, os, sys, time
f = open(sys.argv[1], "r+")
fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write(str(os.getpid())); f.flush()
print("locked", flush=True)
time.sleep(20)
PY
holder=$!
for _ in $(seq 100); do grep -q locked holder.out 2>/dev/null && break; sleep 0.05; done
expect_error 1 busy "in use by pid $holder" -- set base/k 9
expect_error 1 busy "in use by pid $holder" -- get base/k
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
K get base/k
expect_rc 0
expect_out '2'

t_end
