#!/bin/bash
# test_cli_admin.sh — list, status and check: namespaces with key counts (deleted keys and
# emptied namespaces left out), keys in byte order, the `Database Status` layout and its
# counts (versions include tombstones), `check` on a sound database, on one with a
# corrupted record in the middle of the log (exit 1 naming the offset, also when the
# database cannot be opened), and a torn tail that the next open cuts, keeping the rest.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
# flip FILE MARKER: changes the last byte of the last occurrence of MARKER in FILE
flip() { python3 - "$1" "$2" <<'PY'
import sys
p, m = sys.argv[1], sys.argv[2].encode()
d = bytearray(open(p, "rb").read())
i = d.rfind(m)
assert i >= 0, "marker not found"
d[i + len(m) - 2] ^= 0x01
open(p, "wb").write(d)
PY
}

t_case "an empty database"
K list
expect_rc 0
expect_out 'No namespaces.'
K --json list
expect_eq "$(field namespaces)" '[]'
K status
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" 'Database Status'
expect_out_has '^  Keys: +0$'

t_case "list namespaces and keys"
K set zoo/b 1; K set zoo/a 2; K set zoo/B 3; K set apps/x 4; K set gone/only 5
K delete gone/only
K set apps/y 6; K delete apps/y
K list
expect_rc 0
expect_out $'  apps  1 key\n  zoo   3 keys'
K list zoo
expect_out $'B\na\nb'
K list gone
expect_rc 0
expect_out ''
K --json list --all
expect_rc 0
expect_eq "$(field namespaces.0.name)" apps
K list 'bad ns'
expect_rc 1
expect_err_has 'invalid namespace'

t_case "status counts live keys and every version"
K status
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" 'Database Status'
expect_out_has "^  Path: +$(realpath "$KORU_DB")\$"
expect_out_has '^  Namespaces: +2$'
expect_out_has '^  Keys: +4$'
expect_out_has '^  Versions: +8$'
expect_out_has '^  Seq: +8$'
expect_out_has '^  Disk bytes: +[1-9][0-9]* '
K --json status
expect_eq "$(field keys)" 4
expect_eq "$(field versions)" 8

t_case "check on a sound database"
K check
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" 'Database Check: ok'
expect_out_has '^  Versions: +8$'
expect_out_has '^  Errors: +0$'
K check --deep
expect_rc 0

t_case "check finds a corrupted record in the middle of the log"
export KORU_DB="$T_DIR/mid"
for i in 1 2 3 4 5; do "$KDELTA" set c/k$i "{\"marker\":$i}" >/dev/null; done
seg=$(ls "$KORU_DB"/log/* | head -1)
flip "$seg" '{"marker":2}'
K check
expect_rc 1
expect_out_has '^Database Check: FAILED$'
expect_out_has '^  Error: +segment 1 offset [0-9]+: '
expect_err_has '^kdelta: error: database check failed: .*offset [0-9]+'
expect_eq "$(printf '%s\n' "$ERR" | grep -c 'kdelta: error')" 1
K --json check
expect_rc 1
expect_eq "$(field ok)" false
expect_out_has '"first_error":"[^"]*offset [0-9]+'
if [ "$(field errors)" -ge 1 ]; then ok; else bad "errors = $(field errors)"; fi
expect_eq "$(field error_list.0)" "$(field first_error)"

t_case "check --deep lists every damaged place"
(
export KORU_DB="$T_DIR/mid2"
for i in 1 2 3 4 5 6; do "$KDELTA" set c/k$i "{\"marker\":$i}" >/dev/null; done
)
seg=$(ls "$T_DIR/mid2"/log/* | head -1)
flip "$seg" '{"marker":2}'
flip "$seg" '{"marker":4}'
K --db "$T_DIR/mid2" check --deep
expect_rc 1
expect_eq "$(printf '%s\n' "$OUT" | grep -c '^  Error: ')" 2
offs=$(printf '%s\n' "$OUT" | sed -nE 's/^  Error: +segment 1 offset ([0-9]+): .*/\1/p' | tr '\n' ' ')
read -r o1 o2 <<<"$offs"
if [ -n "$o2" ] && [ "$o1" -lt "$o2" ]; then ok; else bad "offsets '$offs'"; fi
K --db "$T_DIR/mid2" --json check --deep
expect_eq "$(field errors)" 2
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["error_list"]))')" 2

t_case "check reports even when the database refuses to open"
rm -f "$KORU_DB"/checkpoint*
K get c/k1
expect_rc 1
expect_err_has 'corrupt.*offset [0-9]+'
K --json get c/k1
expect_eq "$(field error.code)" corrupt
K check
expect_rc 1
expect_out_has '^  Open: +refused'
expect_out_has '^  Error: +segment 1 offset [0-9]+: '
K --json check
expect_rc 1
expect_eq "$(field ok)" false

t_case "a torn tail is cut at the next open; earlier data is intact"
export KORU_DB="$T_DIR/tail"
for i in 1 2 3 4 5; do "$KDELTA" set c/k$i "{\"tail\":$i}" >/dev/null; done
rm -f "$KORU_DB"/checkpoint*   # as after a crash: no checkpoint covers the tail
seg=$(ls "$KORU_DB"/log/* | head -1)
flip "$seg" '{"tail":5}'
K get c/k5
expect_rc 3
for i in 1 2 3 4; do
    K get c/k$i
    expect_out "{
  \"tail\": $i
}"
done
K --json check
expect_rc 0
expect_eq "$(field ok)" true
K --json set c/k6 6
expect_eq "$(field seq)" 5

t_case "--max-db-bytes: writes past the quota fail 'database full', reads go on"
export KORU_DB="$T_DIR/quota"
big=$(python3 -c 'print("x" * 3000)')
val() { printf '"%s-%s"' "$1" "$big"; }   # distinct values: an equal one is stored once
n=0
while [ $n -lt 100 ]; do
    K --max-db-bytes 64KiB set q/k$n "$(val $n)"
    [ "$RC" -eq 0 ] || break
    n=$((n + 1))
done
expect_rc 1
expect_err_has '^kdelta: error: .*database full: .*max_db_bytes'
if [ $n -ge 15 ] && [ $n -lt 22 ]; then ok; else bad "$n writes of 3 KB fitted in 64 KiB"; fi
expect_error 1 disk_full 'database full' -- --max-db-bytes 64KiB set q/more "$(val more)"
K --max-db-bytes 64KiB get q/k0
expect_rc 0
expect_out "$(val 0)"
K --max-db-bytes 64KiB status
expect_out_has '^  Quota: +[0-9]+ of 65536 log bytes used \((9[0-9]|100)\.[0-9]%\)$'
K --json --max-db-bytes 64KiB status
expect_eq "$(field max_db_bytes)" 65536
K --max-db-bytes 64KiB check --deep
expect_rc 0
K --max-db-bytes 64KiB set q/small 1
expect_rc 0
K set q/more "$(val more)"                 # no quota at this open: it fits
expect_rc 0
for bad in 0 -1 12XB 1.5M '' 99999999999999999999G; do
    K --max-db-bytes "$bad" get q/k0
    expect_rc 2
    expect_err_has "invalid --max-db-bytes"
done
K --url http://127.0.0.1:1 --max-db-bytes 1M get q/k0
expect_rc 2
expect_err_has 'max-db-bytes does not apply with --url'

t_case "serve --max-db-bytes: the server's quota, for routed commands and HTTP"
used=$("$KDELTA" --json status | jget log_bytes)
start_server "$KORU_DB" 0 --max-db-bytes $((used + 5000))
K set q/s1 "$(val s1)"                          # routed through the server
expect_rc 0
K set q/s2 "$(val s2)"
expect_rc 1
expect_err_has '^kdelta: error: cannot set q/s2: database full'
code=$(curl -s -o "$T_DIR/q.json" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' --data "{\"value\":$(val s3)}" "$URL/api/v1/q/s3")
expect_eq "$code" 507
expect_eq "$(jget error.code <"$T_DIR/q.json")" disk_full
K --json status
expect_eq "$(field max_db_bytes)" $((used + 5000))
K get q/s1
expect_rc 0
stop_server
expect_eq "$SERVER_RC" 0

t_end
