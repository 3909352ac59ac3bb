#!/bin/bash
# test_cli_diff.sh — `kdelta diff`: the default (last two versions), versions chosen by
# index (from 0 = oldest, negative from the newest), by version id or prefix and by time,
# the diff from nothing for a single version, a diff to a tombstone, exact JSON patches,
# the human view (header naming both versions, then a line diff) and its colours.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
# expect_json_eq FIELD JSON: field of $OUT equals JSON (compared as parsed values)
expect_json_eq() {
    if printf '%s' "$OUT" | python3 -c 'import sys,json
d=json.load(sys.stdin)
for p in sys.argv[1].split("."):
    d = d[int(p)] if isinstance(d, list) else d[p]
sys.exit(0 if d == json.loads(sys.argv[2]) else 1)' "$1" "$2"; then ok; else bad "$1 is not $2"; fi
}

K --json set d/k '{"a":1,"b":[1,2],"n":{"x":1,"y":2}}'; id1=$(field version_id); ts1=$(field timestamp)
K --json set d/k '{"a":2,"b":[1,2,3],"c":"x","n":{"x":1,"y":3}}'; id2=$(field version_id); ts2=$(field timestamp)
K --json set d/k '{"a":2}'; id3=$(field version_id); ts3=$(field timestamp)

t_case "default: the last two versions"
K --json diff d/k
expect_rc 0
expect_json_eq patch '[{"op":"remove","path":"/b"},{"op":"remove","path":"/c"},{"op":"remove","path":"/n"}]'
expect_eq "$(field from.version_id)" "$id2"
expect_eq "$(field from.timestamp)" "$ts2"
expect_eq "$(field to.version_id)" "$id3"
expect_eq "$(field to.timestamp)" "$ts3"

t_case "by index: only what changed, down to nested fields and array elements"
K --json diff d/k --from 0 --to 1
expect_rc 0
expect_json_eq patch '[{"op":"replace","path":"/a","value":2},{"op":"add","path":"/b/2","value":3},{"op":"add","path":"/c","value":"x"},{"op":"replace","path":"/n/y","value":3}]'
expect_eq "$(field from.version_id)" "$id1"
expect_eq "$(field to.version_id)" "$id2"
K --json diff d/k --from 0
expect_json_eq patch '[{"op":"replace","path":"/a","value":2},{"op":"remove","path":"/b"},{"op":"remove","path":"/n"}]'
expect_eq "$(field to.version_id)" "$id3"
K --json diff d/k --from -1
expect_json_eq patch '[]'
K --json diff d/k --from 2 --to 0
expect_json_eq patch '[{"op":"replace","path":"/a","value":1},{"op":"add","path":"/b","value":[1,2]},{"op":"add","path":"/n","value":{"x":1,"y":2}}]'

t_case "by version id, prefix and time"
K --json diff d/k --from "${id1:0:8}" --to "$id2"
expect_json_eq patch '[{"op":"replace","path":"/a","value":2},{"op":"add","path":"/b/2","value":3},{"op":"add","path":"/c","value":"x"},{"op":"replace","path":"/n/y","value":3}]'
K --json diff d/k --from "$ts1" --to "$ts2"
expect_eq "$(field from.version_id)" "$id1"
expect_eq "$(field to.version_id)" "$id2"
K --json diff d/k --from "$ts2" --to "${id3:0:10}"
expect_eq "$(field from.version_id)" "$id2"
expect_eq "$(field to.version_id)" "$id3"

t_case "bad version specs"
K diff d/k --from 7
expect_rc 3
expect_err_has 'out of range'
K diff d/k --from deadbeefdeadbeef
expect_rc 3
K --json diff d/k --from 'not a time'
expect_rc 1
expect_eq "$(field error.code)" invalid
K diff d/nope
expect_rc 3

t_case "human diff: header naming both versions, then a line diff"
K diff d/k --from 0 --to 1
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" "diff d/k"
expect_eq "$(printf '%s\n' "$OUT" | sed -n 2p)" "--- ${id1:0:8} $ts1 seq 1"
expect_eq "$(printf '%s\n' "$OUT" | sed -n 3p)" "+++ ${id2:0:8} $ts2 seq 2"
expect_eq "$(printf '%s\n' "$OUT" | sed -n '4,$p')" '  {
-   "a": 1,
+   "a": 2,
    "b": [
      1,
-     2
+     2,
+     3
    ],
+   "c": "x",
    "n": {
      "x": 1,
-     "y": 2
+     "y": 3
    }
  }'
expect_out_lacks $'\x1b'

t_case "a single version diffs from nothing"
K --json set d/one '[1]'; ido=$(field version_id)
K --json diff d/one
expect_rc 0
expect_eq "$(field from)" 'null'
expect_eq "$(field to.version_id)" "$ido"
expect_json_eq patch '[{"op":"add","path":"","value":[1]}]'
K diff d/one
expect_out "diff d/one
--- (nothing)
+++ ${ido:0:8} $(printf '%s' "$("$KDELTA" --json get d/one)" | jget timestamp) seq 4
+ [
+   1
+ ]"

t_case "a diff to a tombstone removes the document"
K --json delete d/k; idd=$(field version_id)
K --json diff d/k
expect_json_eq patch '[{"op":"remove","path":""}]'
expect_eq "$(field to.version_id)" "$idd"
K diff d/k
expect_out_has '^\+\+\+ [0-9a-f]{8} .* \(deleted\)$'
expect_out_has '^- \{$'

t_case "colour only on a terminal, and not with NO_COLOR or --no-color"
if script -qec true /dev/null >/dev/null 2>&1; then
    OUT=$(NO_COLOR= script -qec "$KDELTA diff d/k --from 0 --to 1" /dev/null 2>&1)
    expect_out_has $'\x1b\\[31m-     "y": 2'
    expect_out_has $'\x1b\\[32m\\+     "y": 3'
    OUT=$(NO_COLOR=1 script -qec "$KDELTA diff d/k --from 0 --to 1" /dev/null 2>&1)
    expect_out_lacks $'\x1b'
    OUT=$(NO_COLOR= script -qec "$KDELTA diff d/k --from 0 --to 1 --no-color" /dev/null 2>&1)
    expect_out_lacks $'\x1b'
else
    echo "(script(1) cannot open a terminal here: colour checks skipped)"
fi
OUT=$(NO_COLOR= "$KDELTA" diff d/k --from 0 --to 1)
expect_out_lacks $'\x1b'

t_end
