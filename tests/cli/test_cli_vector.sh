#!/bin/bash
# test_cli_vector.sh — `kdelta embed`, `kdelta embedding` and `kdelta search`, black box:
# embeddings round-trip bit for bit, every search option on a small set whose answers are
# known by hand (scores included), the JSON shapes, the errors and their exit codes; then
# the same commands locally, through --url and through automatic routing must print the
# same bytes (as test_cli_remote.sh does for the other commands).
. "$(dirname "$0")/lib.sh"
t_begin
OUT=""; ERR=""; RC=0
trap 'stop_server; [ -n "${KEEP_T_DIR:-}" ] || rm -rf "$T_DIR"' EXIT

K() { run "$KDELTA" "$@"; }
# hits: the "score NS/KEY" pairs of human search output, one per line.
hits() { printf '%s\n' "$OUT" | awk 'NF { print $1, $2 }'; }
# vid JSON-OUTPUT: the version id of an embed --json answer.
vid() { printf '%s' "$OUT" | jget version_id; }

# ---- embed and embedding ------------------------------------------------------------------

t_case "embed / embedding round trip, bit-exact floats"
K embed docs/bits --vector '[0.1, -0, 1e-45, 3.40282347e+38, -2.5, 16777217, 1e-50]'
expect_rc 0
expect_out_has '^Stored the embedding of docs/bits \(model default, 7 dims\): version [0-9a-f]{8}, seq [0-9]+, '
K --json embedding docs/bits
expect_rc 0
expect_out_has '"vector":\[0.100000001,-0,1.40129846e-45,3.40282347e\+38,-2.5,16777216,0\]'
# What embedding prints reads back to the same floats: store it again, compare the bytes.
VEC=$(printf '%s' "$OUT" | sed -E 's/.*"vector":(\[[^]]*\]).*/\1/')
K embed docs/bits2 --vector "$VEC"
K --json embedding docs/bits2
expect_eq "$(printf '%s' "$OUT" | sed -E 's/.*"vector":(\[[^]]*\]).*/\1/')" "$VEC"
expect_out_has '"vector":\[0.100000001,-0,1.40129846e-45,'
# The float32 of each component, checked independently of kdelta's printing.
python3 -c 'import struct,sys,json
v=json.loads(sys.argv[1], parse_int=float)
want=[0.1,-0.0,1e-45,3.40282347e+38,-2.5,16777217.0,1e-50]
got=[struct.pack("<f",x) for x in v]
exp=[struct.pack("<f",x) for x in want]
sys.exit(0 if got==exp else 1)' "$VEC" && ok || bad "floats are not the float32 of the input"

t_case "embedding --json shape"
K --json embedding docs/bits
printf '%s' "$OUT" | python3 -c 'import sys,json
t=sys.stdin.read(); d=json.loads(t)
assert list(d)==["dim","key","metadata","model","namespace","seq","timestamp","vector","version_id"], list(d)
assert d["dim"]==7 and d["key"]=="bits" and d["namespace"]=="docs" and d["model"]=="default"
assert d["metadata"] is None and len(d["version_id"])==64 and "\n" not in t' && ok || bad "shape"

t_case "embed --json shape"
K --json embed docs/shape --vector '[1,2,3]' --model m3 --meta '{"b":1,"a":[true]}'
expect_rc 0
printf '%s' "$OUT" | python3 -c 'import sys,json
d=json.loads(sys.stdin.read())
assert list(d)==["dim","key","model","namespace","seq","timestamp","version_id"], list(d)
assert d["dim"]==3 and d["key"]=="shape" and d["model"]=="m3" and d["namespace"]=="docs"' && ok || bad "shape"
K embedding docs/shape
expect_out "$(printf 'model:      m3\ndim:        3\nvector:     [1,2,3]\nmetadata:   {"a":[true],"b":1}\nversion:    %s\nseq:        %s\ntimestamp:  %s' \
    "$("$KDELTA" --json embedding docs/shape | jget version_id)" "$("$KDELTA" --json embedding docs/shape | jget seq)" \
    "$("$KDELTA" --json embedding docs/shape | jget timestamp)")"

t_case "--vector-file, file and standard input"
printf '[ 0.5,\n  -1.25 ,\t2 ]\n' >"$T_DIR/v.json"
K embed docs/file --vector-file "$T_DIR/v.json" --model m3b
expect_rc 0
K --json embedding docs/file
expect_eq "$(field vector)" "[0.5, -1.25, 2]"
expect_eq "$(field model)" m3b
OUT=$(printf '[7,8,9]' | "$KDELTA" embed docs/stdin --vector-file - --model m3b 2>&1); RC=$?
expect_rc 0
K --json embedding docs/stdin
expect_eq "$(field vector)" "[7, 8, 9]"
OUT=$(printf '[7,8,9]' | "$KDELTA" search --vector-file - --model m3b --metric l2 --top-k 1 2>&1); RC=$?
expect_rc 0
expect_out_has '^0\.000000  docs/stdin  [0-9a-f]{12}$'

t_case "--meta and --model"
K embed docs/meta --vector '[1,0]' --model two --meta '{"lang":"en","n":[1,2]}'
expect_rc 0
K --json embedding docs/meta
expect_eq "$(field metadata)" '{"lang": "en", "n": [1, 2]}'
expect_eq "$(field model)" two
expect_eq "$(field dim)" 2
expect_error 1 invalid "invalid --meta JSON" -- embed docs/meta --vector '[1,0]' --model two --meta '{bad'

t_case "embedding --at after overwrite and delete"
K --json embed hist/k --vector '[1,1]' --model h
V1=$(vid); T1=$(field timestamp)
K --json embed hist/k --vector '[2,2]' --model h --meta '"second"'
V2=$(vid); T2=$(field timestamp)
K --json embed hist/k --delete
expect_rc 0
printf '%s' "$OUT" | python3 -c 'import sys,json
d=json.loads(sys.stdin.read())
assert list(d)==["deleted","key","namespace","seq","timestamp","version_id"] and d["deleted"] is True, d' && ok || bad "delete shape"
TD=$(field timestamp)
K embedding hist/k
expect_rc 3
expect_err_has "^kdelta: error: no embedding for hist/k: deleted at $TD$"
K --json embedding hist/k --at "$T1"
expect_eq "$(field vector),$(field version_id)" "[1, 1],$V1"
K --json embedding hist/k --at "$T2"
expect_eq "$(field vector),$(field metadata),$(field version_id)" "[2, 2],second,$V2"
K --json embedding hist/k --at "${V1:0:12}"
expect_eq "$(field version_id)" "$V1"
K embedding hist/k --at 2000-01-01T00:00:00Z
expect_rc 3
K embed hist/k --delete
expect_rc 3
expect_err_has "no embedding for hist/k"
K embed hist/k --vector '[3,3]' --model h
expect_rc 0
K --json embedding hist/k
expect_eq "$(field vector)" "[3, 3]"
K embed hist/k --delete
expect_out_has '^Deleted the embedding of hist/k: version [0-9a-f]{8}, seq [0-9]+, '
K embedding nothing/here
expect_rc 3
expect_err_has "no embedding for nothing/here"

t_case "embedding and value are independent"
K set indep/k '{"v":1}'
K embed indep/k --vector '[1]' --model one
K embed indep/k --delete
K get indep/k
expect_out '{
  "v": 1
}'

# ---- search ------------------------------------------------------------------------------
# Model s3 (3 dims). Query [1,0,0]:
#   key  vector   value          metadata        cosine     dot  l2
#   x    [1,0,0]  {"kind":"a"}   {"lang":"en"}   1          1    0
#   z    [1,1,0]  {"kind":"b"}   {"lang":"en"}   0.7071..   1    1
#   y    [0,1,0]  {"kind":"a"}   {"lang":"fr"}   0          0    1.4142..
#   w    [-1,0,0] (none)         (none)          -1         -1   2
#   news/n [2,0,0] (none)        (none)          1          2    1      (other namespace)
t_case "search set-up"
for kv in 'x [1,0,0] {"kind":"a"} {"lang":"en"}' 'z [1,1,0] {"kind":"b"} {"lang":"en"}' \
          'y [0,1,0] {"kind":"a"} {"lang":"fr"}'; do
    set -- $kv
    K set "s/$1" "$3"; expect_rc 0
    K embed "s/$1" --vector "$2" --model s3 --meta "$4"; expect_rc 0
done
K embed s/w --vector '[-1,0,0]' --model s3; expect_rc 0
K --json embed news/n --vector '[2,0,0]' --model s3; expect_rc 0
TS_BEFORE=$(field timestamp)
S=(search s --vector '[1,0,0]' --model s3)

t_case "search cosine"
K "${S[@]}"
expect_rc 0
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.707107 s/z\n0.000000 s/y\n-1.000000 s/w')"
expect_out_has '^1\.000000  s/x  [0-9a-f]{12}$'
K --json "${S[@]}" --metric cosine
expect_eq "$OUT" "$(printf '{"results":[{"key":"x","namespace":"s","score":1,"version_id":"%s"},{"key":"z","namespace":"s","score":0.70710678118654746,"version_id":"%s"},{"key":"y","namespace":"s","score":0,"version_id":"%s"},{"key":"w","namespace":"s","score":-1,"version_id":"%s"}]}' \
    "$("$KDELTA" --json embedding s/x | jget version_id)" "$("$KDELTA" --json embedding s/z | jget version_id)" \
    "$("$KDELTA" --json embedding s/y | jget version_id)" "$("$KDELTA" --json embedding s/w | jget version_id)")"
# The human line shows the first 12 digits of the same id.
K "${S[@]}" --top-k 1
expect_eq "$(printf '%s' "$OUT" | awk '{print $3}')" "$("$KDELTA" --json embedding s/x | jget version_id | cut -c1-12)"

t_case "search dot (ties by namespace, then key)"
K "${S[@]}" --metric dot
expect_eq "$(hits)" "$(printf '1.000000 s/x\n1.000000 s/z\n0.000000 s/y\n-1.000000 s/w')"

t_case "search l2"
K "${S[@]}" --metric l2
expect_eq "$(hits)" "$(printf '0.000000 s/x\n1.000000 s/z\n1.414214 s/y\n2.000000 s/w')"
K --json "${S[@]}" --metric l2 --top-k 3
expect_eq "$(field results.2.score)" 1.4142135623730951

t_case "search --top-k"
K "${S[@]}" --top-k 2
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.707107 s/z')"
K "${S[@]}" -k 1
expect_eq "$(hits)" "1.000000 s/x"
K "${S[@]}" --top-k 1000000
expect_eq "$(hits | wc -l)" 4

t_case "search --threshold"
K "${S[@]}" --threshold 0.5
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.707107 s/z')"
K "${S[@]}" --metric l2 --threshold 1
expect_eq "$(hits)" "$(printf '0.000000 s/x\n1.000000 s/z')"
K "${S[@]}" --metric dot --threshold -0.5
expect_eq "$(hits)" "$(printf '1.000000 s/x\n1.000000 s/z\n0.000000 s/y')"

t_case "search namespace restriction"
K search --vector '[1,0,0]' --model s3
expect_eq "$(hits)" "$(printf '1.000000 news/n\n1.000000 s/x\n0.707107 s/z\n0.000000 s/y\n-1.000000 s/w')"
K search news --vector '[1,0,0]' --model s3
expect_eq "$(hits)" "1.000000 news/n"
K search --vector '[1,0,0]' --model s3 --metric dot --top-k 2
expect_eq "$(hits)" "$(printf '2.000000 news/n\n1.000000 s/x')"

t_case "search --filter (values) and --meta-filter (metadata)"
K "${S[@]}" --filter 'kind = "a"'
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.000000 s/y')"
K "${S[@]}" --meta-filter 'lang = "en"'
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.707107 s/z')"
K "${S[@]}" --meta-filter 'lang = "fr"' --filter 'kind = "a"'
expect_eq "$(hits)" "0.000000 s/y"
K "${S[@]}" --meta-filter 'not exists(lang)'
expect_eq "$(hits)" "-1.000000 s/w"
# Restrictions come before the top-k cut.
K "${S[@]}" --filter 'kind = "b"' --top-k 1
expect_eq "$(hits)" "0.707107 s/z"

t_case "search --exact gives the same answer"
K "${S[@]}"
A=$OUT
K "${S[@]}" --exact
expect_eq "$OUT" "$A"
K "${S[@]}" --ef 1
expect_eq "$OUT" "$A"

t_case "search --at (overwrite and delete leave no stale hits)"
K embed s/y --vector '[1,0,0]' --model s3 --meta '{"lang":"fr"}'
K embed s/x --delete
K "${S[@]}"
expect_eq "$(hits)" "$(printf '1.000000 s/y\n0.707107 s/z\n-1.000000 s/w')"
K "${S[@]}" --at "$TS_BEFORE"
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.707107 s/z\n0.000000 s/y\n-1.000000 s/w')"
K "${S[@]}" --at "$TS_BEFORE" --filter 'kind = "a"'
expect_eq "$(hits)" "$(printf '1.000000 s/x\n0.000000 s/y')"
K "${S[@]}" --at 2000-01-01T00:00:00Z
expect_rc 0
expect_out ""

t_case "search with no results"
K "${S[@]}" --threshold 2
expect_rc 0
expect_out ""
expect_eq "$ERR" ""
K --json "${S[@]}" --threshold 2
expect_rc 0
expect_out '{"results":[]}'
K search --vector '[1,0,0]' --model never-used
expect_rc 0
expect_out ""
K search emptyns --vector '[1,0,0]' --model s3
expect_rc 0
expect_out ""

t_case "search --json shape"
K --json "${S[@]}"
printf '%s' "$OUT" | python3 -c 'import sys,json
t=sys.stdin.read(); d=json.loads(t)
assert list(d)==["results"] and len(d["results"])==3
for h in d["results"]:
    assert list(h)==["key","namespace","score","version_id"], list(h)
    assert isinstance(h["score"], (int,float)) and len(h["version_id"])==64
assert "\n" not in t' && ok || bad "shape"

# ---- errors ------------------------------------------------------------------------------

t_case "errors: vectors"
expect_error 1 invalid 'cannot embed s/q: dimension mismatch: the vector has 2 components, model "s3" has 3' -- embed s/q --vector '[1,2]' --model s3
expect_error 1 invalid 'search: dimension mismatch: the query has 4 components, model "s3" has 3' -- search --vector '[1,2,3,4]' --model s3
expect_error 1 invalid 'vector component 1 is not a finite number \(NaN\)' -- embed s/q --vector '[1,NaN,2]' --model s3
expect_error 1 invalid 'vector component 2 is not a finite number \(-Infinity\)' -- search --vector '[1,2,-Infinity]'
expect_error 1 invalid 'vector component 0 is not a finite number \(1e999\)' -- embed s/q --vector '[1e999,0,0]' --model s3
expect_error 1 invalid 'vector component 1 \(3.5e38\) overflows a float32' -- embed s/q --vector '[0,3.5e38,0]' --model s3
expect_error 1 invalid 'vector component 2 is not a number \("x"\)' -- embed s/q --vector '[0,1,"x"]' --model s3
expect_error 1 invalid 'vector component 0 is not a number \(true\)' -- search --vector '[true]'
expect_error 1 invalid 'vector component 1 is not a number \(\.5\)' -- search --vector '[1,.5]'
expect_error 1 invalid 'the vector is empty' -- embed s/q --vector '[ ]'
expect_error 1 invalid 'must be a JSON array of numbers' -- embed s/q --vector '{"a":1}'
expect_error 1 invalid 'must be a JSON array of numbers' -- search --vector '1'
expect_error 1 invalid "expected ',' or '\]' after vector component 0" -- search --vector '[1 2]'
expect_error 1 invalid "missing '\]'" -- search --vector '[1,2'
expect_error 1 invalid "after the vector's closing" -- search --vector '[1,2] x'
printf '[1,nan]' >"$T_DIR/bad.json"
expect_error 1 invalid "$T_DIR/bad.json: vector component 1 is not a finite number" -- search --vector-file "$T_DIR/bad.json"
expect_error 1 io_error "cannot open $T_DIR/none.json" -- search --vector-file "$T_DIR/none.json"
K embed s/q --vector '[1,NaN,2]' --model s3
K embedding s/q
expect_rc 3

t_case "errors: usage"
expect_error 2 usage "invalid --metric 'cos' \(use cosine, dot or l2\)" -- search --vector '[1,0,0]' --metric cos
expect_error 2 usage '--vector and --vector-file cannot be used together' -- search --vector '[1]' --vector-file "$T_DIR/v.json"
expect_error 2 usage '--vector and --vector-file cannot be used together' -- embed s/q --vector '[1]' --vector-file -
expect_error 2 usage "'search' needs a vector: --vector JSON or --vector-file F" -- search s
expect_error 2 usage "'embed' needs a vector" -- embed s/q --model s3
for k in 0 -1 abc 1000001 1.5 ''; do
    expect_error 2 usage "invalid --top-k '$k'" -- search --vector '[1,0,0]' --top-k "$k"
done
expect_error 2 usage "invalid --ef '0'" -- search --vector '[1,0,0]' --ef 0
expect_error 2 usage "invalid --threshold 'x'" -- search --vector '[1,0,0]' --threshold x
expect_error 2 usage "invalid --threshold 'nan'" -- search --vector '[1,0,0]' --threshold nan
expect_error 2 usage '--filter given twice' -- search --vector '[1,0,0]' --filter 'a=1' --filter 'b=1'
expect_error 2 usage '--meta-filter given twice' -- search --vector '[1,0,0]' --meta-filter 'a=1' --meta-filter 'b=1'
expect_error 2 usage '--delete takes no --vector' -- embed s/q --delete --vector '[1]'
expect_error 2 usage "option '--top-k' does not apply to 'embed'" -- embed s/q --vector '[1]' --top-k 3
expect_error 2 usage "option '--vector' does not apply to 'embedding'" -- embedding s/q --vector '[1]'
expect_error 2 usage "option '--meta' does not apply to 'search'" -- search --vector '[1]' --meta '{}'
expect_error 2 usage "unexpected argument 'b'" -- search a b --vector '[1]'
expect_error 2 usage "missing argument for 'embed'" -- embed --vector '[1]'

t_case "errors: names, filters, times"
expect_error 1 invalid 'invalid --filter .kind =.: filter syntax error' -- search --vector '[1,0,0]' --filter 'kind ='
expect_error 1 invalid 'invalid --meta-filter .lang ~ 1.' -- search --vector '[1,0,0]' --meta-filter 'lang ~ 1'
expect_error 1 invalid "reserved" -- search _emb --vector '[1,0,0]'
expect_error 1 invalid "reserved" -- embed _x/k --vector '[1,0,0]'
expect_error 1 invalid "expected NS/KEY" -- embedding nokey
expect_error 1 invalid "dimension mismatch: the query has 3 components, docs/bits \(model .default.\) has 7" -- search --vector '[1,0,0]'
K --db "$T_DIR/mm" embed a/k1 --vector '[1,0]' --model m1
K --db "$T_DIR/mm" embed a/k2 --vector '[0,1]' --model m2
expect_error 1 invalid 'search: model mismatch: a/k1 has model "m1", a/k2 has model "m2"; choose one' -- --db "$T_DIR/mm" search --vector '[1,0]'
expect_error 1 invalid "invalid time" -- embedding s/z --at 'not a time'
expect_error 1 invalid "invalid time" -- search --vector '[1,0,0]' --model s3 --at 'not a time'
# Nothing was written by the failures above.
K --json embedding s/q
expect_rc 3

# ---- the same bytes locally, through --url and routed -------------------------------------
# Deterministic timestamps: the seed's first commit is made with the wall clock at
# 2100-01-01 (an LD_PRELOAD shim); later commits get "previous + 1 µs" in every run alike.
# (The first embedding of a model also records the model's dimension: one more commit.)

future_clock

SEED="$T_DIR/seed"
seed() { "$KDELTA" --db "$SEED" "$@" >/dev/null || { echo "seed failed: $*" >&2; exit 1; }; }
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD="$T_DIR/future.so" \
    seed set s/x '{"kind":"a"}'
seed set s/y '{"kind":"a"}'
seed set s/z '{"kind":"b"}'
seed embed s/x --vector '[1,0,0]' --meta '{"lang":"en"}'                  # .000004
seed embed s/y --vector '[0,1,0]' --meta '{"lang":"fr"}'
seed embed s/z --vector '[1,1,0]' --meta '{"lang":"en"}'
seed embed s/w --vector '[-1,0,0]'
seed embed 'odd/a b%/c' --vector '[0.1,-0,1e-45]'                         # .000008
seed embed s/y --vector '[0.5,0.5,0]' --meta '{"lang":"fr","v":2}'        # .000009
seed embed s/w --delete                                                   # .000010
seed embed t/two --vector '[1,2]' --model two --meta '[1,"x",null]'
OUT=$("$KDELTA" --db "$SEED" --json embedding s/x)
SX=$(field version_id | cut -c1-10)
printf '[0.25, 0.5,\n 0.75]\n' >"$T_DIR/q.json"

script() {
    N=0
    step embedding s/x
    step --json embedding s/y
    step --json embedding 'odd/a b%/c'
    step embedding 'odd/a b%/c'
    step --json embedding t/two
    step embedding s/y --at 2100-01-01T00:00:00.000007Z
    step --json embedding s/w --at 2100-01-01T00:00:00.000008Z
    step embedding s/w
    step --json embedding s/w
    step embedding s/x --at "$SX"
    step embedding s/x --at 2099-01-01T00:00:00Z
    step embedding nobody/home
    step embedding s/x --at nonsense
    step search s --vector '[1,0,0]' --model default
    step --json search s --vector '[1,0,0]' --model default
    step search --vector '[1,0,0]' --model default --metric dot
    step search s --vector '[1,0,0]' --model default --metric l2 --top-k 2
    step --json search s --vector '[1,0,0]' --model default --metric l2 --threshold 1
    step search s --vector '[1,0,0]' --model default --threshold 0.5 --exact
    step search s --vector '[1,0,0]' --model default --filter 'kind = "a"'
    step search s --vector '[1,0,0]' --model default --meta-filter 'lang = "en"' --ef 5
    step search s --vector '[1,0,0]' --model default --at 2100-01-01T00:00:00.000007Z
    step search s --vector '[1,0,0]' --model default --at "$SX"
    step --json search s --vector '[1,0,0]' --model default --at 2099-01-01T00:00:00Z
    step search s --vector-file - --model default
    step search s --vector-file "$T_DIR/q.json" --model default --metric dot
    step search --vector '[1,2]' --model two --json
    step search --vector '[1,2]' --model nothing
    step search --vector '[1,0,0]'
    step --json search --vector '[1,0]' --model default
    step search s --vector '[1,0,0]' --model default --filter 'kind ='
    step search s --vector '[1,NaN,0]'
    step search s --vector '[1,0,0]' --top-k 0
    step search s --vector '[1,0,0]' --metric cos
    step search _emb --vector '[1,0,0]'
    step search s --vector '[1,0,0]' --model _bad
    # writes
    step embed s/v --vector '[0,0,1]' --meta '{"lang":"de"}'
    step --json embed s/u --vector '[0,0,-1]'
    step embed s/v --vector '[0,1]'
    step --json embed s/v --vector '[0,1]'
    step embed s/v --vector '[0,1]' --model two
    step embed s/v --vector '[1,2,3]' --model '_bad'
    step embed s/v --vector '[1,2,3]' --meta '{bad'
    step embed t/x --vector-file - --meta '"from stdin"'
    step embed s/u --delete
    step --json embed s/v --delete
    step embed s/u --delete
    step --json embed nobody/home --delete
    # after the writes
    step search --vector '[0,0,1]' --model default
    step --json embedding t/x
    step embedding s/u
}

STEP_STDIN="$T_DIR/q.json" three_ways

compare_ways local url
compare_ways local routed
T_NAME="script"
expect_eq "$N" 51

# The script must test something: spot-check what the local run printed.
expect_eq "$(way 'embedding s/x' out | head -3)" "$(printf 'model:      default\ndim:        3\nvector:     [1,0,0]')"
OUT=$(way '--json embedding odd/a b%/c' out)
expect_eq "$(field key)" "a b%/c"
expect_out_has '"vector":\[0.100000001,-0,1.40129846e-45\]'
expect_eq "$(way 'embedding s/y --at 2100-01-01T00:00:00.000007Z' out | sed -n 3p)" 'vector:     [0,1,0]'
expect_eq "$(way 'embedding s/w' rc)" 3
expect_eq "$(way 'embedding s/w' err)" 'kdelta: error: no embedding for s/w: deleted at 2100-01-01T00:00:00.000010Z'
expect_eq "$(way 'search s --vector [1,0,0] --model default' out | awk '{print $1, $2}')" \
    "$(printf '1.000000 s/x\n0.707107 s/y\n0.707107 s/z')"
expect_eq "$(way 'search s --vector [1,0,0] --model default --at 2100-01-01T00:00:00.000007Z' out | awk '{print $1, $2}')" \
    "$(printf '1.000000 s/x\n0.707107 s/z\n0.000000 s/y\n-1.000000 s/w')"
expect_eq "$(way "search s --vector [1,0,0] --model default --at $SX" out | awk '{print $2}')" "s/x"
expect_eq "$(way 'search s --vector-file - --model default' out | awk '{print $2}' | head -1)" "s/y"
expect_eq "$(way 'search --vector [1,2] --model nothing' out)" ""
expect_eq "$(way 'search --vector [1,0,0]' rc)" 1
expect_eq "$(way '--json search --vector [1,0] --model default' err)" 'kdelta: error: search: dimension mismatch: the query has 2 components, model "default" has 3'
expect_eq "$(way 'embed s/v --vector [0,1]' err)" 'kdelta: error: cannot embed s/v: dimension mismatch: the vector has 2 components, model "default" has 3'
expect_eq "$(way 'search --vector [0,0,1] --model default' out | awk '{print $1, $2}' | head -1)" "0.801784 t/x"
expect_eq "$(way 'embed s/u --delete' rc)" 0
expect_eq "$(way '--json embed nobody/home --delete' rc)" 3
OUT=$(way '--json embedding t/x' out)
expect_eq "$(field metadata),$(field vector)" 'from stdin,[0.25, 0.5, 0.75]'

# ---- the HNSW index, across processes ------------------------------------------------------
# 2,500 embeddings (enough for searches to go through the index) stored through a server
# with --sync off, one search there so the server builds the index, then SIGTERM: the
# index is saved at close. A local `kdelta search` must load it (not rebuild it) and agree
# with --exact; a write made locally afterwards is caught up, never stale.
t_case "the index is saved by the server and loaded by the CLI"
H="$T_DIR/hnsw"
rm -f "$H/serve.addr"
"$KDELTA" --db "$H" --sync off serve --port 0 2>>"$T_DIR/serve.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$H/serve.addr" ] && break; sleep 0.1; done
HURL=$(cat "$H/serve.addr" 2>/dev/null)
python3 - "$HURL" <<'PY' && ok || bad "could not fill the server"
import http.client, json, random, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
rnd = random.Random(7)
cent = [[rnd.uniform(-1, 1) for _ in range(8)] for _ in range(25)]
for i in range(2500):
    ctr = cent[i % 25]
    v = [x + rnd.uniform(-0.1, 0.1) for x in ctr]
    c.request("PUT", "/api/v1/big/k%d/_embedding" % i, json.dumps({"vector": v}),
              {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
c.request("POST", "/api/v1/big/_search", json.dumps({"vector": cent[3]}), {"Content-Type": "application/json"})
r = c.getresponse(); d = json.loads(r.read())
assert r.status == 200 and len(d["results"]) == 10, d
PY
stop_server
expect_eq "$SERVER_RC" 0
expect_eq "$(ls "$H"/vec-cosine-*.idx 2>/dev/null | wc -l | tr -d ' ')" 1
Q='[0.5,0.1,-0.3,0.2,0.9,-0.7,0.4,0.0]'
OUT=$(KORU_LOG=info "$KDELTA" --db "$H" search big --vector "$Q" 2>"$T_DIR/hnsw.err")
expect_eq "$(grep -c 'loaded from its file and caught up, 2500 vectors' "$T_DIR/hnsw.err")" 1
expect_eq "$(grep -c 'built from the log' "$T_DIR/hnsw.err")" 0
EXACT=$("$KDELTA" --db "$H" search big --vector "$Q" --exact)
expect_eq "$(printf '%s\n' "$OUT" | awk '{print $2}' | sort)" "$(printf '%s\n' "$EXACT" | awk '{print $2}' | sort)"
expect_eq "$(printf '%s\n' "$OUT" | wc -l | tr -d ' ')" 10
# A new nearest neighbour written locally is found (the loaded index is caught up), and
# deleting it takes it out again.
K --db "$H" embed big/new --vector "$Q"
OUT=$(KORU_LOG=info "$KDELTA" --db "$H" search big --vector "$Q" -k 1 2>"$T_DIR/hnsw.err")
expect_eq "$(printf '%s' "$OUT" | awk '{print $1, $2}')" "1.000000 big/new"
expect_eq "$(grep -c 'loaded from its file' "$T_DIR/hnsw.err")" 1
K --db "$H" embed big/new --delete
OUT=$("$KDELTA" --db "$H" search big --vector "$Q" -k 1)
expect_eq "$(printf '%s' "$OUT" | awk '{print $2}')" "$(printf '%s\n' "$EXACT" | awk 'NR==1 {print $2}')"

t_end
