#!/bin/bash
# test_cli_remote.sh — `kdelta` against a server gives the same output as locally. One
# script of commands (reads and writes, successes and failures, human and --json) runs
# three times on the same database directory, each time starting from the same copy:
#   local   — no server, plain commands;
#   url     — a `kdelta serve` on the database, commands with --url (and a --db that does
#             not exist, to show it is not used);
#   routed  — the same server, plain commands: the database is locked, serve.addr routes.
# Every command's stdout, stderr and exit code must be byte-identical across the three.
# The only masked figure is status's disk bytes (a local command checkpoints at every
# close; the server does so when it stops).
#
# Timestamps are deterministic: the first commit of the seed database is made with the
# wall clock set to 2100-01-01 (an LD_PRELOAD shim), so every later commit gets the hybrid
# logical clock's "previous + 1 µs" whatever the real time — in every run alike, so
# version ids match too.
#
# Then the cases that only exist remotely: an unreachable server, a stale serve.addr,
# --sync with --url, KORU_URL, percent-encoding of odd keys, `serve` never routing.
. "$(dirname "$0")/lib.sh"
t_begin
OUT=""; ERR=""; RC=0

trap 'stop_server; [ -n "${KEEP_T_DIR:-}" ] || rm -rf "$T_DIR"' EXIT

# ---- the seed database -----------------------------------------------------------------

future_clock

SEED="$T_DIR/seed"
seed() { "$KDELTA" --db "$SEED" "$@" >/dev/null || { echo "seed failed: $*" >&2; exit 1; }; }
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD="$T_DIR/future.so" \
    seed set users/alice '{"age":30,"city":"Oslo"}'
seed set users/bob '{"age":40,"city":"Rome"}'
seed set users/carol '{"age":25,"city":"Oslo","tags":["x"]}'
seed set users/alice '{"age":31,"city":"Oslo"}'
seed set users/dave '{"age":50}'
seed delete users/dave
seed set 'files/a/b.txt' '"slash key"'
seed set 'files/café au lait' '{"lang":"fr"}'
seed set 'files/日本/語 x%?#' '[1,2,3]'
seed set shop/a '{"city":"Oslo","name":"apple","price":1.5,"qty":10,"tags":["fruit","red"]}'
seed set shop/b '{"city":"Paris","name":"banana","price":0.5,"qty":30,"tags":["fruit"]}'
seed set shop/c '{"city":"Oslo","name":"cherry","price":4,"qty":5,"tags":["fruit","red"]}'
seed set shop/d '{"city":"Paris","name":"date","price":6,"qty":7}'
seed set shop/e '{"city":"Rome","name":"elderberry","price":2,"qty":0}'
seed view create cheap shop --filter 'price < 3' --sort price --auto-refresh --description 'cheap stuff'
seed view create oslo shop --filter 'city = "Oslo"'
seed view create bycity shop --group-by city --count --sum qty --limit 0
seed set shop/f '{"city":"Oslo","name":"fig","price":2.5,"qty":12}'

OUT=$("$KDELTA" --db "$SEED" --json log users/alice)
ALICE_V1=$(field versions.1.version_id | cut -c1-8)
ALICE_CUR=$(field versions.0.version_id | cut -c1-12)
OUT=$("$KDELTA" --db "$SEED" --json log users/dave)
DAVE_TOMB=$(field versions.0.version_id | cut -c1-10)
OUT=$("$KDELTA" --db "$SEED" --json log shop/c)
SHOP_C=$(field versions.0.version_id | cut -c1-9)

printf '%s\n' \
    '{"op":"put","namespace":"users","key":"frank","value":{"age":60,"city":"Rome"}}' \
    '' \
    '{"op":"put","namespace":"files","key":"x/y z","value":null}' \
    '{"op":"delete","namespace":"users","key":"bob"}' >"$T_DIR/batch_ok.ndjson"
printf '%s\n' \
    '{"op":"put","namespace":"users","key":"gina","value":1}' \
    '{"op":"delete","namespace":"users","key":"nobody"}' >"$T_DIR/batch_missing.ndjson"
printf '%s\n' \
    '{"op":"put","namespace":"users","key":"gina","value":1}' \
    '{"op":"upsert","namespace":"users","key":"hank","value":2}' >"$T_DIR/batch_badop.ndjson"
: >"$T_DIR/batch_empty.ndjson"

# ---- the script ---------------------------------------------------------------------------

# step ARGS...: one command of the script, run with the way's leading arguments.
script() {
    N=0
    # reads
    step get users/alice
    step --json get users/alice
    step get users/alice --verbose
    step get users/alice --at 2100-01-01T00:00:00Z
    step get users/alice --at 2100-01-01T00:00:00.000002Z --json
    step get users/alice --at 2099-06-01
    step get users/alice --at "$ALICE_V1"
    step --json get users/alice --at "$ALICE_V1"
    step get users/dave
    step --json get users/dave
    step get users/dave --at "$DAVE_TOMB"
    step get users/dave --at 2100-01-01T00:00:00.000004Z
    step get users/nobody
    step --json get users/nobody
    step get users/alice --at 'not a time'
    step get 'files/a/b.txt'
    step get 'files/café au lait' --json
    step get 'files/日本/語 x%?#'
    step log users/alice
    step log users/alice --limit 1
    step --json log users/alice
    step --json log users/dave --limit 1
    step log users/nobody
    step diff users/alice
    step diff users/alice --from 0 --to 1
    step --json diff users/alice --from 0 --to -1
    step diff users/dave
    step --json diff 'files/a/b.txt'
    step diff users/alice --from 7
    step diff users/alice --from "$ALICE_V1" --to 2100-01-01T00:00:00.000003Z
    step list
    step list --all
    step --json list
    step list files
    step --json list files
    step list nothing-here
    step status
    step --json status
    step check
    step --json check
    step check --deep
    step query shop --filter 'price > 1 and tags contains "red"' --sort price:desc
    step query shop --sort price --limit 1 --offset 1 --select name,price
    step query shop --limit 0 --count --sum qty --distinct city
    step query shop --group-by city --count --sum qty --limit 0
    step --json query shop --filter 'city = "Oslo"' --sort qty:desc --count --avg price
    step --json query shop --group-by city --max price
    step query shop --filter 'price >'
    step query shop --at 2100-01-01T00:00:00.000011Z
    step query shop --at "$SHOP_C" --count
    step query users --filter 'age >= 30' --json
    step query empty-ns
    step view list
    step --json view list
    step view show oslo
    step --json view show cheap
    step view show nope
    step view query cheap
    step view query cheap --filter 'qty > 20'
    step view query oslo --offset 0
    step view query bycity
    step --json view query bycity --count
    step view query nope
    # writes
    step set users/erin '{"age":22,"city":"Rome"}'
    step --json set users/ivan '[1,{"b":2.0,"a":1}]'
    step set users/erin '{"age":23}' --if-absent
    step --json set users/alice '{"age":32}' --if-version "$ALICE_V1"
    step set users/alice '{"age":32,"city":"Oslo"}' --if-version "$ALICE_CUR"
    step set users/dave '{"age":51}' --if-absent
    step set users/alice 1 --if-version zzzzzzzz
    step set users/alice '{bad json'
    step set _sys/x 1
    step delete users/erin
    step delete users/erin
    step --json delete users/nobody
    step --json delete users/ivan
    step batch "$T_DIR/batch_ok.ndjson"
    step batch "$T_DIR/batch_missing.ndjson"
    step --json batch "$T_DIR/batch_badop.ndjson"
    step --json batch "$T_DIR/batch_empty.ndjson"
    step view create pricey shop --filter 'price > 2' --sort price:desc
    step --json view create bigqty shop --filter 'qty > 9' --auto-refresh
    step view create oslo shop
    step view create bad _views
    step view refresh oslo
    step --json view refresh oslo
    step view query bigqty
    step view delete pricey
    step --json view delete pricey
    # after the writes
    step get users/alice -v
    step log users/alice
    step get users/erin
    step list users
    step list files
    step --json status
    step check
    step --json query users --sort age
}

three_ways
expect_eq "$([ -e "$W/serve.addr" ] && echo left || echo removed)" removed

way_mask() { sed -E 's/(Disk bytes: +)[0-9]+/\1N/; s/("disk_bytes":)[0-9]+/\1N/' "$1"; }
compare_ways local url
compare_ways local routed
T_NAME="script"
expect_eq "$N" 97

# The script must test something: spot-check what the local run printed.
expect_eq "$(way 'get users/alice' out | tr -d ' \n')" '{"age":31,"city":"Oslo"}'
expect_eq "$(way 'get users/dave' rc)" 3
expect_eq "$(way 'get users/dave' err)" "kdelta: error: users/dave not found: deleted at 2100-01-01T00:00:00.000005Z (version ${DAVE_TOMB:0:8})"
expect_eq "$(way "get users/dave --at $DAVE_TOMB" err)" "kdelta: error: users/dave not found at 2100-01-01T00:00:00.000005Z: deleted at 2100-01-01T00:00:00.000005Z (version ${DAVE_TOMB:0:8})"
expect_eq "$(way "get users/alice --at $ALICE_V1" out | tr -d ' \n')" '{"age":30,"city":"Oslo"}'
expect_eq "$(way 'get files/日本/語 x%?#' out | tr -d ' \n')" '[1,2,3]'
expect_eq "$(way "set users/erin {\"age\":23} --if-absent" rc)" 4
expect_eq "$(way "--json set users/alice {\"age\":32} --if-version $ALICE_V1" rc)" 4
expect_eq "$(way "set users/alice {\"age\":32,\"city\":\"Oslo\"} --if-version $ALICE_CUR" rc)" 0
expect_eq "$(way "batch $T_DIR/batch_ok.ndjson" out)" "Committed 3 items atomically (seq 25..27)"
expect_eq "$(way "batch $T_DIR/batch_missing.ndjson" rc)" 3
expect_eq "$(way "--json batch $T_DIR/batch_badop.ndjson" err)" 'kdelta: error: line 2: unknown op "upsert" (want "put" or "delete")'
expect_eq "$(way 'view create oslo shop' err)" "kdelta: error: view 'oslo' already exists (delete it first)"
expect_eq "$(way 'view refresh oslo' out)" "Refreshed view oslo: 3 records as of 2100-01-01T00:00:00.000026Z"
OUT=$(way '--json list files' out)
expect_eq "$(field keys.0),$(field keys.1),$(field keys.2)" "a/b.txt,café au lait,日本/語 x%?#"

# ---- only remotely ------------------------------------------------------------------------

t_case "unreachable server"
run "$KDELTA" --url http://127.0.0.1:1 get users/alice
expect_rc 1
expect_err_has '^kdelta: error: cannot reach the server at http://127.0.0.1:1: '
expect_error 1 error 'cannot reach the server at http://127.0.0.1:1' -- --url http://127.0.0.1:1/ list

t_case "bad --url"
run "$KDELTA" --url localhost:8080 get users/alice
expect_rc 2
expect_err_has "invalid --url 'localhost:8080'"

t_case "--sync with --url"
expect_error 2 usage '--sync does not apply with --url' -- --url http://127.0.0.1:1 --sync off set a/b 1

rm -rf "$W" && cp -a "$SEED" "$W"
start_server "$W"

t_case "KORU_URL"
run env KORU_URL="$URL" "$KDELTA" --db "$T_DIR/nowhere" get users/alice --json
expect_rc 0
expect_eq "$(field value.age)" 31
expect_eq "$([ -e "$T_DIR/nowhere" ] && echo created || echo absent)" absent
run env KORU_URL="$URL" "$KDELTA" --sync normal get users/alice
expect_rc 2
expect_err_has 'does not apply with KORU_URL'

t_case "routed ignores --sync"
run "$KDELTA" --db "$W" --sync off set users/sync '"s"'
expect_rc 0
expect_out_has '^Stored users/sync: version [0-9a-f]{8}, seq '

t_case "percent-encoding"
for k in 'a/b' 'sp ace' 'pct%41' 'q?x=1&y' 'hash#frag' 'plus+sign' 'ü/日本' 'dot.' '~tilde' 'semi;colon'; do
    run "$KDELTA" --url "$URL" set "enc/$k" "\"$k\""
    expect_rc 0
    run "$KDELTA" --url "$URL" --json get "enc/$k"
    expect_eq "$(field key)" "$k"
    expect_eq "$(field value)" "$k"
done
run "$KDELTA" --url "$URL" list enc
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 10
run "$KDELTA" --url "$URL" --json query enc --filter 'exists(x)' --count
expect_eq "$(field aggregation.count)" 0

t_case "system namespaces are not readable remotely"
run "$KDELTA" --url "$URL" get _views/oslo
expect_rc 1
expect_err_has "system namespace '_views' cannot be read through the server"

t_case "serve never routes"
run "$KDELTA" --db "$W" serve --port 0
expect_rc 1
expect_err_has 'in use by pid'

t_case "list pages through many keys"
# More keys than one page of _keys (10000): the pages must join without a gap or a repeat.
seq 1 10050 | sed 's/.*/{"op":"put","namespace":"many","key":"k&","value":&}/' >"$T_DIR/many.ndjson"
run "$KDELTA" --url "$URL" batch "$T_DIR/many.ndjson"
expect_rc 0
run "$KDELTA" --url "$URL" list many
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 10050
expect_eq "$(printf '%s\n' "$OUT" | sort -u | wc -l)" 10050
expect_eq "$OUT" "$(seq 1 10050 | sed 's/^/k/' | LC_ALL=C sort)"
stop_server

t_case "stale serve.addr: the busy error stands"
# A local watch holds the database; serve.addr names a server that is gone.
# Once it prints the first change it holds the lock (probing with another command could
# take the lock first and make the watch itself fail as busy).
"$KDELTA" --db "$W" watch --since 0 >"$T_DIR/watch.out" 2>&1 &
WATCH_PID=$!
for _ in $(seq 1 100); do
    [ -s "$T_DIR/watch.out" ] && break
    sleep 0.1
done
echo "http://127.0.0.1:1" >"$W/serve.addr"
run "$KDELTA" --db "$W" get users/alice
expect_rc 1
expect_err_has "^kdelta: error: database .* is in use by pid $WATCH_PID"
expect_error 1 busy 'is in use by pid' -- --db "$W" check
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"
expect_eq "$?" 0
rm -f "$W/serve.addr"

t_end
