#!/bin/bash
# test_cli_json.sh — the --json document of every command: exactly one JSON document on
# stdout, exactly the documented members, 64-hex ids, RFC 3339 UTC microsecond
# timestamps, null where documented, log newest first in both modes, and equal content
# hashing alike however it was written.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
# shape MEMBERS [PATH]: $OUT is one JSON document whose object at PATH (dotted; "" = root)
# has exactly the comma-separated MEMBERS; hex ids and timestamps are checked too.
shape() {
    if printf '%s' "$OUT" | python3 -c 'import sys, json, re
text = sys.stdin.read()
d = json.loads(text)
for p in [x for x in sys.argv[2].split(".") if x]:
    d = d[int(p)] if isinstance(d, list) else d[p]
assert isinstance(d, dict), d
want = sorted(sys.argv[1].split(","))
assert sorted(d) == want, (sorted(d), want)
for k in ("version_id", "value_hash", "previous_version"):
    if k in d and d[k] is not None:
        assert re.fullmatch("[0-9a-f]{64}", d[k]), (k, d[k])
if "timestamp" in d:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["timestamp"]), d["timestamp"]
for k in ("seq", "keys", "namespaces", "versions", "disk_bytes", "records", "values", "segments", "errors", "committed"):
    if k in d and not isinstance(d[k], list):
        assert isinstance(d[k], int) and not isinstance(d[k], bool), (k, d[k])
' "$1" "${2:-}"; then ok; else bad "shape of ${2:-document}: want {$1}"; fi
}
one_line_doc() { if [ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ]; then ok; else bad "not a single line"; fi; }

t_case "set"
K --json set j/k '{"b":1,"a":2.0}'
expect_rc 0
shape namespace,key,seq,version_id,value_hash,timestamp,previous_version
one_line_doc
expect_eq "$(field namespace)" j
expect_eq "$(field key)" k
expect_eq "$(field seq)" 1
expect_eq "$(field previous_version)" null
id1=$(field version_id); h1=$(field value_hash)
K --json set j/k '{"a":2,"b":1.0}'
expect_eq "$(field previous_version)" "$id1"
expect_eq "$(field value_hash)" "$h1"
if [ "$(field version_id)" != "$id1" ]; then ok; else bad "same version id for two writes"; fi
id2=$(field version_id)
K --json set j/k '{"a":3}'
if [ "$(field value_hash)" != "$h1" ]; then ok; else bad "different content, same hash"; fi

t_case "get"
K --json get j/k
shape namespace,key,seq,version_id,value_hash,timestamp,previous_version,value
expect_eq "$(field value)" '{"a": 3}'
expect_eq "$(field previous_version)" "$id2"
expect_eq "$(field seq)" 3
K --json get j/k --verbose
shape namespace,key,seq,version_id,value_hash,timestamp,previous_version,value
K --json set j/null null
K --json get j/null
expect_eq "$(field value)" null

t_case "delete"
K --json set j/gone '[1]'
K --json delete j/gone
shape namespace,key,seq,version_id,timestamp,deleted
expect_eq "$(field deleted)" true
expect_eq "$(field seq)" 6
idd=$(field version_id)

t_case "log: newest first, tombstones with null value"
K --json log j/gone
shape namespace,key,versions
shape seq,version_id,timestamp,value,deleted versions.0
shape seq,version_id,timestamp,value,deleted versions.1
expect_eq "$(field versions.0.version_id)" "$idd"
expect_eq "$(field versions.0.value)" null
expect_eq "$(field versions.0.deleted)" true
expect_eq "$(field versions.1.value)" '[1]'
expect_eq "$(field versions.1.deleted)" false
K --json log j/k
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print([v["seq"] for v in json.load(sys.stdin)["versions"]])')" '[3, 2, 1]'
K --json log j/k --limit 2
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print([v["seq"] for v in json.load(sys.stdin)["versions"]])')" '[3, 2]'
K --json log j/k -n 0
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["versions"]))')" 3
K log j/k --limit 1
expect_out_has "^  \* [0-9a-f]{8} [0-9T:.-]+Z seq 3  \{\"a\":3\}$"
expect_out_has '^  \(2 older versions not shown\)$'
K log j/k
expect_eq "$(printf '%s\n' "$OUT" | sed -n 3p)" "  * ${id1:0:8} $(printf '%s' "$("$KDELTA" --json log j/k)" | jget versions.2.timestamp) seq 1  {\"a\":2,\"b\":1}"

t_case "diff"
K --json diff j/k
shape from,to,patch
shape version_id,timestamp from
shape version_id,timestamp to
expect_eq "$(field patch)" '[{"op": "replace", "path": "/a", "value": 3}, {"op": "remove", "path": "/b"}]'

t_case "batch"
K --json batch - <<'X'
{"op":"put","namespace":"j2","key":"a","value":1}
{"op":"put","namespace":"j2","key":"b","value":2}
X
shape committed,first_seq,last_seq
expect_eq "$(field committed)" 2
expect_eq "$(field first_seq)" 7
expect_eq "$(field last_seq)" 8

t_case "list"
K --json list
shape namespaces
shape name,keys namespaces.0
expect_eq "$(field namespaces)" '[{"name": "j", "keys": 2}, {"name": "j2", "keys": 2}]'
K --json list j2
shape namespace,keys
expect_eq "$(field keys)" '["a", "b"]'
K --json list empty
expect_eq "$(field keys)" '[]'

t_case "status"
K --json status
shape path,namespaces,keys,versions,seq,disk_bytes,log_bytes,max_db_bytes
expect_eq "$(field max_db_bytes)" 0
expect_eq "$(field path)" "$(realpath "$KORU_DB")"
expect_eq "$(field namespaces)" 2
expect_eq "$(field keys)" 4
expect_eq "$(field versions)" 8
expect_eq "$(field seq)" 8

t_case "check"
K --json check
shape ok,records,versions,values,segments,errors,first_error,error_list
expect_eq "$(field ok)" true
expect_eq "$(field errors)" 0
expect_eq "$(field first_error)" null
expect_eq "$(field error_list)" '[]'
expect_eq "$(field versions)" 8

t_case "errors"
K --json get j/missing
shape error
shape code,message error
one_line_doc

t_end
