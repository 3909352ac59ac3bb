#!/bin/bash
# test_cli_batch.sh — `kdelta batch FILE|-`: NDJSON puts and deletes committed atomically
# with one timestamp; every kind of bad line refuses the whole batch with its line number
# and writes nothing (seq unchanged); blank lines; stdin; a value on a delete is ignored;
# the same 10 KB value under 1,000 keys is stored once (disk grows far less than 1000x).
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
stat_field() { "$KDELTA" --json status | jget "$1"; }

K set users/bob '{"age":40}'
K set users/carol '{"age":50}'

t_case "a batch of puts and deletes across namespaces"
cat > b1.ndjson <<'X'
{"op":"put","namespace":"users","key":"alice","value":{"age":30,"tags":["a","b"]}}

{"op":"put","namespace":"config","key":"app/theme","value":"dark"}
   
{"op":"delete","namespace":"users","key":"bob","value":"ignored"}
{"key":"dave","value":null,"namespace":"users","op":"put"}
X
K --json batch b1.ndjson
expect_rc 0
expect_eq "$(field committed)" 4
expect_eq "$(field first_seq)" 3
expect_eq "$(field last_seq)" 6
K --json get users/alice
expect_eq "$(field value)" '{"age": 30, "tags": ["a", "b"]}'
ts_alice=$(field timestamp)
K get config/app/theme
expect_out '"dark"'
K get users/dave
expect_out 'null'
K get users/bob
expect_rc 3
expect_err_has 'deleted'

t_case "the items of a batch share one timestamp"
K --json get users/dave
expect_eq "$(field timestamp)" "$ts_alice"
K --json log users/bob
expect_eq "$(field versions.0.timestamp)" "$ts_alice"
expect_eq "$(field versions.0.deleted)" true

t_case "human output and stdin"
K batch - <<'X'
{"op":"put","namespace":"users","key":"erin","value":1}
X
expect_rc 0
expect_out 'Committed 1 item atomically (seq 7..7)'
K get users/erin
expect_out '1'

t_case "an empty batch commits nothing"
K --json batch - < /dev/null
expect_rc 0
expect_eq "$(field committed)" 0
expect_eq "$(field first_seq)" null

# Every bad batch below has good lines before and after the bad one.
seq_before=$(stat_field seq)
bad_batch() {  # name, expected rc, stderr regex, bad line (put on line 2)
    t_case "bad batch: $1"
    {
        echo '{"op":"put","namespace":"users","key":"zed","value":1}'
        printf '%s\n' "$4"
        echo '{"op":"put","namespace":"users","key":"yan","value":2}'
    } > bad.ndjson
    K --json batch bad.ndjson
    expect_rc "$2"
    expect_err_has "$3"
    expect_eq "$(printf '%s' "$OUT" | jget error.message | grep -c 'line 2')" 1
    expect_eq "$(stat_field seq)" "$seq_before"
    K get users/zed
    expect_rc 3
}
bad_batch "invalid JSON" 1 'line 2: invalid JSON' '{"op":"put","namespace":"users","key":"x","value":}'
bad_batch "not an object" 1 'line 2: expected a JSON object' '[1,2]'
bad_batch "unknown op" 1 'line 2: unknown op "upsert"' '{"op":"upsert","namespace":"users","key":"x","value":1}'
bad_batch "missing op" 1 'line 2: missing "op"' '{"namespace":"users","key":"x","value":1}'
bad_batch "missing namespace" 1 'line 2: missing "namespace"' '{"op":"put","key":"x","value":1}'
bad_batch "missing key" 1 'line 2: missing "key"' '{"op":"put","namespace":"users","value":1}'
bad_batch "missing value" 1 'line 2: missing "value"' '{"op":"put","namespace":"users","key":"x"}'
bad_batch "key not a string" 1 'line 2: "key" must be a string' '{"op":"put","namespace":"users","key":5,"value":1}'
bad_batch "reserved namespace" 1 'line 2: .*reserved' '{"op":"put","namespace":"_sys","key":"x","value":1}'
bad_batch "empty key" 1 'line 2: empty key' '{"op":"put","namespace":"users","key":"","value":1}'
bad_batch "bad namespace" 1 'line 2: invalid namespace' '{"op":"put","namespace":"a b","key":"x","value":1}'
bad_batch "NUL in key" 1 'line 2: key contains NUL' '{"op":"put","namespace":"users","key":"a\u0000b","value":1}'
bad_batch "delete of a missing key" 3 'line 2: cannot delete users/ghost: not found' '{"op":"delete","namespace":"users","key":"ghost"}'
bad_batch "delete of a deleted key" 3 'line 2: cannot delete users/bob' '{"op":"delete","namespace":"users","key":"bob"}'
bad_batch "same key twice" 1 'line 3: users/yan already appears on line 2' '{"op":"put","namespace":"users","key":"yan","value":0}'

t_case "batch file errors"
K batch /nonexistent/file.ndjson
expect_rc 1
expect_err_has 'cannot open /nonexistent/file.ndjson'
K batch
expect_rc 2

t_case "escaped names are unescaped"
K batch - <<'X'
{"op":"put","namespace":"esc","key":"tab\there\u00e9\ud83d\ude00","value":"ok"}
X
expect_rc 0
K get "esc/tab	hereé😀"
expect_out '"ok"'

t_case "the same 10 KB value under 1000 keys is stored once"
python3 - <<'PY'
import json
v = {"blob": "x" * 10240}
with open("dedup.ndjson", "w") as f:
    for i in range(1000):
        f.write(json.dumps({"op": "put", "namespace": "dedup", "key": "k%04d" % i, "value": v}) + "\n")
PY
disk_before=$(stat_field disk_bytes)
K --json batch dedup.ndjson
expect_rc 0
expect_eq "$(field committed)" 1000
disk_after=$(stat_field disk_bytes)
grew=$((disk_after - disk_before))
# 1000 copies would be > 10 MB. Stored once plus 1000 small version records stays far
# below that, even counting the log's zero-filled preallocation (whole MiBs).
if [ "$grew" -lt 2500000 ]; then ok; else bad "disk grew by $grew bytes for one 10 KB value under 1000 keys"; fi
K --json list
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print([n["keys"] for n in json.load(sys.stdin)["namespaces"] if n["name"]=="dedup"][0])')" 1000
# the measurement can tell: 300 different 10 KB values do grow the disk by > 3 MB
python3 - <<'PY'
import json
with open("distinct.ndjson", "w") as f:
    for i in range(300):
        f.write(json.dumps({"op": "put", "namespace": "distinct", "key": "k%d" % i, "value": {"blob": ("%05d" % i) * 2048}}) + "\n")
PY
disk_before=$(stat_field disk_bytes)
K batch distinct.ndjson
expect_rc 0
grew=$(( $(stat_field disk_bytes) - disk_before ))
if [ "$grew" -gt 3000000 ]; then ok; else bad "300 distinct 10 KB values grew the disk by only $grew bytes"; fi
K --json get dedup/k0999
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["value"]["blob"]))')" 10240

t_end
