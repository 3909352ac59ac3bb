#!/bin/bash
# test_cli_export.sh — `kdelta export` / `kdelta import`: a full-history export imported
# into a new database exports again byte for byte (every version id, timestamp, seq and
# the order of history, tombstones, batches, embeddings, views); importing twice changes
# nothing; an import whose commits are older than the database is refused; point-in-time
# exports (--at, --current) hold each key's live version at T and import as new versions
# once; namespaces select (the models' dimensions in _emb always travel along); bad files
# are refused with their line. Through a running server (routed, --url and plain HTTP) export
# gives the same bytes as locally and import the same database, also when the file is sent
# in several pieces, with errors naming the same line.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
trap 'stop_server; [ -n "${KEEP_T_DIR:-}" ] || rm -rf "$T_DIR"' EXIT

S="$T_DIR/src"
k() { "$KDELTA" --db "$S" "$@" >/dev/null || { echo "setup failed: $*" >&2; exit 1; }; }
k set users/ann '{"age":30}'
k set users/ann '{"age":31}'
k set users/bob '{"age":40}'
printf '%s\n' '{"op":"put","namespace":"users","key":"cy","value":{"age":22}}' \
    '{"op":"delete","namespace":"users","key":"bob"}' \
    '{"op":"put","namespace":"orders","key":"o1","value":{"total":5}}' | "$KDELTA" --db "$S" batch - >/dev/null
k embed docs/a --vector '[1,0,0]' --meta '{"lang":"en"}'
k embed docs/b --vector '[0,1,0]'
k view create adults users --filter 'age > 25'
MID=$("$KDELTA" --db "$S" --json get users/cy | jget timestamp)   # the batch's time
sleep 0.01
k set users/ann '{"age":32}'
k delete orders/o1
k set users/dan '"x"'

t_case "a full export imports with the same ids, times and order"
K --db "$S" export
expect_rc 0
printf '%s\n' "$OUT" >"$T_DIR/all.ndjson"
expect_eq "$(head -1 "$T_DIR/all.ndjson" | python3 -c 'import sys,json; d=json.load(sys.stdin); print(d["korudelta_export"], d["mode"], d["at"], d["namespaces"])')" "1 history None None"
expect_eq "$(tail -n +2 "$T_DIR/all.ndjson" | wc -l | tr -d ' ')" "$("$KDELTA" --db "$S" --json status | jget seq)"
K --db "$T_DIR/dst" import "$T_DIR/all.ndjson"
expect_rc 0
expect_out_has '^Imported [0-9]+ versions \(0 already present\)$'
K --db "$T_DIR/dst" export
expect_eq "$OUT" "$(cat "$T_DIR/all.ndjson")"
for key in users/ann users/bob orders/o1; do
    expect_eq "$("$KDELTA" --db "$T_DIR/dst" --json log $key)" "$("$KDELTA" --db "$S" --json log $key)"
done
expect_eq "$("$KDELTA" --db "$T_DIR/dst" search docs --vector '[1,0.1,0]' --json)" "$("$KDELTA" --db "$S" search docs --vector '[1,0.1,0]' --json)"
K --db "$T_DIR/dst" check --deep
expect_rc 0

t_case "importing twice writes nothing"
K --db "$T_DIR/dst" --json import "$T_DIR/all.ndjson"
expect_rc 0
expect_eq "$(printf '%s' "$OUT" | jget written)" 0
K --db "$T_DIR/dst" export
expect_eq "$OUT" "$(cat "$T_DIR/all.ndjson")"

t_case "an import older than the database is refused"
"$KDELTA" --db "$T_DIR/newer" set x/y 1 >/dev/null
K --db "$T_DIR/newer" import "$T_DIR/all.ndjson"
expect_rc 4
expect_err_has 'cannot import a commit of .*the database already has one of'

t_case "namespaces select (with their embeddings)"
K --db "$S" export docs
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | tail -n +2 | python3 -c 'import sys,json; print(" ".join(sorted({json.loads(l)["namespace"] for l in sys.stdin})))')" "_emb _emb.docs"
K --db "$S" export users orders
expect_eq "$(printf '%s\n' "$OUT" | tail -n +2 | python3 -c 'import sys,json; print(" ".join(sorted({json.loads(l)["namespace"] for l in sys.stdin})))')" "_emb orders users"

t_case "--at T and --current"
K --db "$S" export users --at "$MID"
expect_rc 0
printf '%s\n' "$OUT" >"$T_DIR/mid.ndjson"
expect_eq "$(tail -n +2 "$T_DIR/mid.ndjson" | python3 -c 'import sys,json; print(" ".join(json.loads(l)["key"]+"="+json.dumps(json.loads(l)["value"],separators=(",",":")) for l in sys.stdin))')" 'ann={"age":31} cy={"age":22}'
K --db "$S" export users --current
expect_eq "$(printf '%s\n' "$OUT" | tail -n +2 | python3 -c 'import sys,json; print(" ".join(json.loads(l)["key"] for l in sys.stdin))')" 'cy default ann dan'
K --db "$T_DIR/snap" import "$T_DIR/mid.ndjson"
expect_rc 0
expect_out_has '^Imported 2 versions'
K --db "$T_DIR/snap" import "$T_DIR/mid.ndjson"
expect_out_has '^Imported 0 versions \(2 already present\)$'
K --db "$T_DIR/snap" --json get users/ann
expect_out_has '"value":\{"age":31\}'
K --db "$S" export --at 5m --current
expect_rc 2

t_case "bad files"
printf 'hello\n' >"$T_DIR/bad1"
K --db "$T_DIR/bad" import "$T_DIR/bad1"
expect_rc 1
expect_err_has 'line 1: not a kdelta export'
head -2 "$T_DIR/all.ndjson" >"$T_DIR/bad2"
printf '{"key":1}\n' >>"$T_DIR/bad2"
K --db "$T_DIR/bad" import "$T_DIR/bad2"
expect_rc 1
expect_err_has 'line 3'
: >"$T_DIR/empty"
K --db "$T_DIR/bad" import "$T_DIR/empty"
expect_rc 1
expect_err_has 'is empty'
K --db "$T_DIR/bad" import "$T_DIR/nope"
expect_rc 1
K --db "$T_DIR/dst2" import - <"$T_DIR/all.ndjson"
expect_rc 0
K --db "$S" export _views
expect_rc 1

t_case "through a server: export gives the bytes it gives locally"
K --db "$S" export --at "$MID"; expect_rc 0; printf '%s\n' "$OUT" >"$T_DIR/at.local"
K --db "$S" export --current; expect_rc 0; printf '%s\n' "$OUT" >"$T_DIR/cur.local"
K --db "$S" export users docs; expect_rc 0; printf '%s\n' "$OUT" >"$T_DIR/sel.local"
start_server "$S"
K --db "$S" export                                   # routed through the server
expect_rc 0
expect_eq "$OUT" "$(cat "$T_DIR/all.ndjson")"
K --url "$URL" export
expect_eq "$OUT" "$(cat "$T_DIR/all.ndjson")"
K --db "$S" export --at "$MID"
expect_eq "$OUT" "$(cat "$T_DIR/at.local")"
K --db "$S" export --current
expect_eq "$OUT" "$(cat "$T_DIR/cur.local")"
K --db "$S" export users docs
expect_eq "$OUT" "$(cat "$T_DIR/sel.local")"
K --db "$S" export --at 'not a time'
expect_rc 1
expect_err_has 'at: '
expect_eq "$(curl -s "$URL/api/v1/_export")" "$(cat "$T_DIR/all.ndjson")"
expect_eq "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$URL/api/v1/_export")" "200 application/x-ndjson"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/_export?bogus=1")" 400
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/_export?at=1h&current=1")" 400
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/_export?ns=_views")" 400
stop_server
expect_eq "$SERVER_RC" 0

t_case "through a server: import writes what it writes locally"
D="$T_DIR/sdst"
start_server "$D"
K --db "$D" import "$T_DIR/all.ndjson"
expect_rc 0
expect_out_has '^Imported [0-9]+ versions \(0 already present\)$'
K --db "$D" --json import "$T_DIR/all.ndjson"
expect_eq "$(printf '%s' "$OUT" | jget written)" 0
expect_eq "$(printf '%s' "$OUT" | jget skipped)" "$(( $(wc -l <"$T_DIR/all.ndjson") - 1 ))"
K --db "$D" export
expect_eq "$OUT" "$(cat "$T_DIR/all.ndjson")"
for f in bad1 bad2 empty; do
    "$KDELTA" --db "$T_DIR/bad" import "$T_DIR/$f" 2>"$T_DIR/err.local" >/dev/null
    rl=$?
    K --db "$D" import "$T_DIR/$f"
    expect_rc $rl
    expect_eq "$ERR" "$(cat "$T_DIR/err.local")"
done
code=$(curl -s -o "$T_DIR/r.json" -w '%{http_code}' -X POST -H 'Content-Type: application/x-ndjson' \
       --data-binary @"$T_DIR/all.ndjson" "$URL/api/v1/_import")
expect_eq "$code" 200
expect_eq "$(jget skipped <"$T_DIR/r.json")" "$(( $(wc -l <"$T_DIR/all.ndjson") - 1 ))"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/plain' --data x "$URL/api/v1/_import")" 415
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @"$T_DIR/all.ndjson" "$URL/api/v1/_import?line=0")" 400
stop_server
expect_eq "$SERVER_RC" 0

t_case "through a server: a large export goes in pieces, errors name the file's line"
B="$T_DIR/big"
for b in $(seq 1 24); do
    python3 -c 'import json,sys
b=int(sys.argv[1])
for i in range(100):
    print(json.dumps({"op":"put","namespace":"big","key":"k%d-%d"%(b,i),"value":{"n":i,"pad":"%d-%d-"%(b,i)+"x"*2500}}))' $b |
        "$KDELTA" --db "$B" batch - >/dev/null || { echo "setup failed" >&2; exit 1; }
done
"$KDELTA" --db "$B" export >"$T_DIR/big.ndjson"
size=$(stat -c %s "$T_DIR/big.ndjson")
if [ "$size" -gt $((5 * 1024 * 1024)) ]; then ok; else bad "the big export is only $size bytes"; fi
D2="$T_DIR/sbig"
start_server "$D2"
K --db "$D2" import "$T_DIR/big.ndjson"
expect_rc 0
expect_out 'Imported 2400 versions (0 already present)'
K --db "$D2" export
expect_eq "$OUT" "$(cat "$T_DIR/big.ndjson")"
stop_server
# a damaged line in the second piece: the same message locally and through a server
python3 - "$T_DIR/big.ndjson" "$T_DIR/bigbad.ndjson" <<'PY2'
import sys
lines = open(sys.argv[1]).read().split("\n")
lines[2300] = '{"namespace":"big","key":"broken"'
open(sys.argv[2], "w").write("\n".join(lines))
PY2
"$KDELTA" --db "$T_DIR/bigbad_local" import "$T_DIR/bigbad.ndjson" 2>"$T_DIR/err.local" >/dev/null
expect_eq "$?" 1
expect_eq "$(grep -c 'line 2301: ' "$T_DIR/err.local")" 1
start_server "$T_DIR/bigbad_srv"
K --db "$T_DIR/bigbad_srv" import "$T_DIR/bigbad.ndjson"
expect_rc 1
expect_eq "$ERR" "$(cat "$T_DIR/err.local")"
stop_server
# what landed before the damaged line is the same both ways
expect_eq "$("$KDELTA" --db "$T_DIR/bigbad_srv" export)" "$("$KDELTA" --db "$T_DIR/bigbad_local" export)"

t_case "through a server: pieces never pass a commit's size, blank lines split nothing"
# Commits of ~300 KB and one of ~1.5 MB, under a server taking bodies of at most 2 MiB:
# the piece that holds the big commit holds nothing else. Blank lines inside commits (and
# at piece boundaries) are skipped, as locally.
M="$T_DIR/mixed"
for b in $(seq 1 16); do
    n=100; [ "$b" -eq 11 ] && n=500
    python3 -c 'import json,sys
b, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    print(json.dumps({"op":"put","namespace":"m","key":"k%d-%d"%(b,i),"value":{"pad":"%d-%d-"%(b,i)+"z"*3000}}))' $b $n |
        "$KDELTA" --db "$M" batch - >/dev/null || { echo "setup failed" >&2; exit 1; }
done
"$KDELTA" --db "$M" export >"$T_DIR/mixed.ndjson"
awk '{print} NR > 1 && NR % 37 == 0 {print ""}' "$T_DIR/mixed.ndjson" >"$T_DIR/mixed_blank.ndjson"
K --db "$T_DIR/mixed_local" import "$T_DIR/mixed_blank.ndjson"
expect_rc 0
start_server "$T_DIR/mixed_srv" 0 --max-body 2MiB
K --db "$T_DIR/mixed_srv" import "$T_DIR/mixed_blank.ndjson"
expect_rc 0
expect_out 'Imported 2000 versions (0 already present)'
K --db "$T_DIR/mixed_srv" export
expect_eq "$OUT" "$(cat "$T_DIR/mixed.ndjson")"
stop_server
expect_eq "$("$KDELTA" --db "$T_DIR/mixed_local" export)" "$(cat "$T_DIR/mixed.ndjson")"

t_case "progress bars on a terminal (export, import, backup, check), nothing on stderr when piped"
# script(1) gives the command a terminal; the bar is redrawn with \r and ends at 100%.
bar_of() { script -qec "$1" /dev/null | tr '\r' '\n' | grep -c '^\[#*\] *100%'; }
expect_eq "$(bar_of "'$KDELTA' --db '$S' export >/dev/null")" 1
expect_eq "$(bar_of "'$KDELTA' --db '$T_DIR/bar1' import '$T_DIR/all.ndjson' >/dev/null")" 1
expect_eq "$(bar_of "'$KDELTA' --db '$S' backup '$T_DIR/bar_backup' >/dev/null")" 1
expect_eq "$(bar_of "'$KDELTA' --db '$S' check --deep >/dev/null")" 1
expect_eq "$("$KDELTA" --db "$S" check --deep 2>&1 >/dev/null | wc -c)" 0
expect_eq "$("$KDELTA" --db "$S" export 2>&1 >/dev/null | wc -c)" 0
expect_eq "$("$KDELTA" --db "$T_DIR/bar2" import "$T_DIR/all.ndjson" 2>&1 >/dev/null | wc -c)" 0
start_server "$S"
expect_eq "$(bar_of "'$KDELTA' --db '$S' export >/dev/null")" 1      # through the server
stop_server
start_server "$T_DIR/bar3"
expect_eq "$(bar_of "'$KDELTA' --db '$T_DIR/bar3' import '$T_DIR/all.ndjson' >/dev/null")" 1
expect_eq "$("$KDELTA" --db "$S" export 2>&1 >/dev/null | wc -c)" 0
stop_server

t_end
