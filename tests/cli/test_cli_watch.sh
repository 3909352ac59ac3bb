#!/bin/bash
# test_cli_watch.sh — `kdelta watch`: locally (a subscription; the database's lock is held,
# so only already-committed changes can be replayed with --since), through a server with
# --url and through automatic routing (live changes, the SSE stream), with NS/KEY, --types
# and --filter, human and --json output; the same replay printed byte-identically by every
# way; resuming after the server restarts; ending on SIGINT/SIGTERM and on a closed stdout
# (exit 0); and the usage errors.
. "$(dirname "$0")/lib.sh"
t_begin
OUT=""; ERR=""; RC=0

WATCH_PID=""
stop_watch() {  # SIG: stops the watch in the background, sets WATCH_RC
    [ -n "$WATCH_PID" ] || return 0
    kill "-${1:-TERM}" "$WATCH_PID" 2>/dev/null
    wait "$WATCH_PID"
    WATCH_RC=$?
    WATCH_PID=""
}
trap 'stop_watch KILL; stop_server; rm -rf "$T_DIR"' EXIT

# start_watch FILE ARGS...: a watch in the background writing to FILE.
start_watch() {
    local f=$1
    shift
    "$KDELTA" "$@" >"$f" 2>"$f.err" &
    WATCH_PID=$!
}
# wait_lines FILE N: until FILE has N lines (10 s at most).
wait_lines() {
    for _ in $(seq 1 100); do
        [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# replay FILE ARGS...: a watch that prints what is committed, then is stopped once FILE
# has N lines (N = $EXPECT). Sets OUT and WATCH_RC.
replay() {
    local f=$1
    shift
    start_watch "$f" "$@"
    wait_lines "$f" "$EXPECT"
    sleep 0.3 # anything beyond the expected lines would show up now
    stop_watch TERM
    OUT=$(cat "$f")
    ERR=$(cat "$f.err")
}

DB="$T_DIR/db"
k() { "$KDELTA" --db "$DB" "$@" >/dev/null || { echo "setup failed: $*" >&2; exit 1; }; }
k set users/alice '{"age":30}'
k set users/bob '{"age":17}'
k set users/alice '{"age":31}'
k set 'files/a/b c' '"x"'
k delete users/bob
k set users/carol '{"age":45,"long":"'"$(printf 'y%.0s' $(seq 1 100))"'"}'
k view create adults users --filter 'age >= 18'

# ---- local replay ----------------------------------------------------------------------

t_case "local --since 0 --json"
EXPECT=6 replay "$T_DIR/l1" --db "$DB" watch --since 0 --json
expect_eq "$WATCH_RC" 0
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 6
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p | jget change),$(printf '%s\n' "$OUT" | sed -n 3p | jget change),$(printf '%s\n' "$OUT" | sed -n 5p | jget change)" "insert,update,delete"
expect_eq "$(printf '%s\n' "$OUT" | sed -n 3p | jget value.age)" 31
expect_eq "$(printf '%s\n' "$OUT" | sed -n 4p | jget key)" "a/b c"
expect_eq "$(printf '%s\n' "$OUT" | sed -n 5p | jget value)" null
# Each line is the version's wire form: what `get --json` says about it, plus change.
"$KDELTA" --db "$DB" --json get users/carol >"$T_DIR/carol.json"
if python3 - "$T_DIR/carol.json" "$T_DIR/l1" <<'EOF'; then ok; else bad "line 6 is not carol's version"; fi
import json, sys
get = json.load(open(sys.argv[1]))
line = json.loads(open(sys.argv[2]).read().splitlines()[5])
assert line.pop("change") == "insert", line
assert line.pop("deleted") is False, line
assert line == get, (line, get)
EOF
# the _views namespace is not in the feed unless named
expect_out_lacks '"namespace":"_views"'

t_case "local human lines"
EXPECT=6 replay "$T_DIR/l2" --db "$DB" watch --since 0
expect_eq "$WATCH_RC" 0
expect_out_has '^seq 1 insert users/alice [0-9a-f]{8} [0-9T:.-]{26}Z \{"age":30\}$'
expect_out_has '^seq 5 delete users/bob [0-9a-f]{8} [0-9T:.-]{26}Z \(deleted\)$'
expect_out_has '^seq 4 insert files/a/b c [0-9a-f]{8} .*Z "x"$'
expect_out_has '^seq 6 insert users/carol .*"long":"y+\.\.\.$'
expect_eq "$(printf '%s\n' "$OUT" | sed -n 6p | sed 's/.*Z //' | wc -c)" 73

t_case "local filters"
EXPECT=2 replay "$T_DIR/l3" --db "$DB" watch users/alice --since 0
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 2
EXPECT=2 replay "$T_DIR/l4" --db "$DB" watch users --since 2 --types update,delete
expect_eq "$(printf '%s\n' "$OUT" | cut -d' ' -f1-4 | tr '\n' '|')" "seq 3 update users/alice|seq 5 delete users/bob|"
EXPECT=3 replay "$T_DIR/l5" --db "$DB" watch --since 0 --filter 'age > 20'
expect_eq "$(printf '%s\n' "$OUT" | cut -d' ' -f1-4 | tr '\n' '|')" "seq 1 insert users/alice|seq 3 update users/alice|seq 5 delete users/bob|seq 6 insert users/carol|"
EXPECT=1 replay "$T_DIR/l6" --db "$DB" watch _views --since 0 --json
expect_eq "$(printf '%s\n' "$OUT" | jget key)" adults

t_case "local SIGINT"
start_watch "$T_DIR/l8" --db "$DB" watch
sleep 0.5
stop_watch INT
expect_eq "$WATCH_RC" 0
expect_eq "$(cat "$T_DIR/l8")" ""

t_case "local: a closed stdout ends the watch quietly"
seq 1 400 | sed 's/.*/{"op":"put","namespace":"many","key":"k&","value":&}/' >"$T_DIR/many.ndjson"
DB2="$T_DIR/db2"
"$KDELTA" --db "$DB2" batch "$T_DIR/many.ndjson" >/dev/null
OUT=$(timeout 10 "$KDELTA" --db "$DB2" watch --since 0 2>"$T_DIR/pipe.err" | head -1)
expect_eq "${PIPESTATUS[0]}" 0
expect_eq "$(cat "$T_DIR/pipe.err")" ""
expect_out_has '^seq 1 insert many/k1 '

t_case "usage errors"
expect_error 2 usage "invalid --types 'insert,upsert': unknown change type 'upsert'" -- --db "$DB" watch --types insert,upsert
expect_error 2 usage "invalid --types 'insert,': unknown change type ''" -- --db "$DB" watch --types insert,
expect_error 2 usage "invalid --since '-1'" -- --db "$DB" watch --since -1
expect_error 2 usage "invalid --since 'soon'" -- --db "$DB" watch --since soon
expect_error 1 invalid "invalid --filter 'age >': filter syntax error at column 6" -- --db "$DB" watch --filter 'age >'
expect_error 2 usage "--filter given twice" -- --db "$DB" watch --filter 'a = 1' --filter 'b = 2'
expect_error 1 invalid 'reserved|invalid' -- --db "$DB" watch 'users/_x'
expect_error 2 usage "does not apply to 'watch'" -- --db "$DB" watch --sort age

# ---- through a server ------------------------------------------------------------------

start_server "$DB"

t_case "remote replay is the local replay, byte for byte"
EXPECT=6 replay "$T_DIR/r1" --url "$URL" watch --since 0 --json
expect_eq "$WATCH_RC" 0
expect_eq "$OUT" "$(cat "$T_DIR/l1")"
EXPECT=6 replay "$T_DIR/r2" --db "$DB" watch --since 0
expect_eq "$WATCH_RC" 0
expect_eq "$OUT" "$(cat "$T_DIR/l2")"
EXPECT=2 replay "$T_DIR/r4" --url "$URL" watch users --since 2 --types update,delete
expect_eq "$OUT" "$(cat "$T_DIR/l4")"
EXPECT=3 replay "$T_DIR/r5" --db "$DB" watch --since 0 --filter 'age > 20'
expect_eq "$OUT" "$(cat "$T_DIR/l5")"
EXPECT=1 replay "$T_DIR/r6" --url "$URL" watch _views --since 0 --json
expect_eq "$OUT" "$(cat "$T_DIR/l6")"
EXPECT=2 replay "$T_DIR/r3" --url "$URL" watch users/alice --since 0
expect_eq "$OUT" "$(cat "$T_DIR/l3")"

t_case "remote live changes, in seq order"
start_watch "$T_DIR/live" --url "$URL" watch users --since 7 --json
"$KDELTA" --db "$DB" set users/dan '{"age":20}' >/dev/null          # routed
"$KDELTA" --url "$URL" set users/alice '{"age":32}' >/dev/null       # explicit
"$KDELTA" --url "$URL" set other/x 1 >/dev/null                      # another namespace
"$KDELTA" --url "$URL" delete users/dan >/dev/null
printf '%s\n' '{"op":"put","namespace":"users","key":"eve","value":{"age":3}}' \
    '{"op":"put","namespace":"users","key":"fay","value":{"age":4}}' | "$KDELTA" --url "$URL" batch - >/dev/null
wait_lines "$T_DIR/live" 5
sleep 0.3
stop_watch TERM
expect_eq "$WATCH_RC" 0
OUT=$(cat "$T_DIR/live")
expect_eq "$(printf '%s\n' "$OUT" | python3 -c 'import sys,json
print("|".join("%d %s %s" % (d["seq"], d["change"], d["key"]) for d in map(json.loads, sys.stdin)))')" \
    "8 insert dan|9 update alice|11 delete dan|12 insert eve|13 insert fay"
expect_eq "$(cat "$T_DIR/live.err")" ""

t_case "remote default: from now"
start_watch "$T_DIR/now" --url "$URL" watch nowns
# The watch takes "now" when it starts; write until it shows a change (at most 10 s).
for i in $(seq 1 50); do
    "$KDELTA" --url "$URL" set "nowns/k$i" "$i" >/dev/null
    [ -s "$T_DIR/now" ] && break
    sleep 0.2
done
stop_watch INT
expect_eq "$WATCH_RC" 0
OUT=$(cat "$T_DIR/now")
expect_out_has '^seq [0-9]+ insert nowns/k[0-9]+ '
expect_out_lacks 'users/'

t_case "remote filter and types go to the server"
start_watch "$T_DIR/filt" --url "$URL" watch --since 13 --types insert --filter 'age >= 18' --json
"$KDELTA" --url "$URL" set users/gus '{"age":5}' >/dev/null
"$KDELTA" --url "$URL" set users/hal '{"age":50}' >/dev/null
"$KDELTA" --url "$URL" set users/hal '{"age":51}' >/dev/null
wait_lines "$T_DIR/filt" 1
sleep 0.3
stop_watch TERM
OUT=$(cat "$T_DIR/filt")
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 1
expect_eq "$(field key):$(field value.age)" "hal:50"

t_case "remote: a closed stdout ends the watch quietly"
"$KDELTA" --url "$URL" batch "$T_DIR/many.ndjson" >/dev/null
OUT=$(timeout 10 "$KDELTA" --url "$URL" watch many --since 0 2>"$T_DIR/pipe2.err" | head -1)
expect_eq "${PIPESTATUS[0]}" 0
expect_eq "$(cat "$T_DIR/pipe2.err")" ""
expect_out_has '^seq [0-9]+ insert many/k1 '

t_case "remote: a bad request is an error at once"
run timeout 10 "$KDELTA" --url "$URL/nope" watch --since 0
expect_rc 3
expect_err_has '^kdelta: error: watch: '

t_case "remote: resumes after the server restarts, without a gap"
PORT=${URL##*:}
start_watch "$T_DIR/resume" --url "$URL" watch resume --since 0 --json
"$KDELTA" --url "$URL" set resume/a 1 >/dev/null
wait_lines "$T_DIR/resume" 1
stop_server
expect_eq "$SERVER_RC" 0
"$KDELTA" --db "$DB" set resume/b 2 >/dev/null   # while the server is down: local
start_server "$DB" "$PORT"
"$KDELTA" --url "$URL" set resume/c 3 >/dev/null
wait_lines "$T_DIR/resume" 3
sleep 0.3
stop_watch TERM
expect_eq "$WATCH_RC" 0
OUT=$(cat "$T_DIR/resume")
expect_eq "$(printf '%s\n' "$OUT" | python3 -c 'import sys,json
print(",".join(json.loads(l)["key"] for l in sys.stdin))')" "a,b,c"

t_case "remote: gives up once the server is gone"
start_watch "$T_DIR/gone" --url "$URL" watch
sleep 0.5
stop_server
for _ in $(seq 1 200); do
    kill -0 "$WATCH_PID" 2>/dev/null || break
    sleep 0.1
done
stop_watch KILL
expect_eq "$WATCH_RC" 1
ERR=$(cat "$T_DIR/gone.err")
expect_eq "$(printf '%s\n' "$ERR" | wc -l)" 1
expect_err_has "^kdelta: error: cannot reach the server at $URL: "

t_case "unreachable at the start"
run timeout 10 "$KDELTA" --url http://127.0.0.1:1 watch
expect_rc 1
expect_err_has '^kdelta: error: cannot reach the server at http://127.0.0.1:1: '

t_end
