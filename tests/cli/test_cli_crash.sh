#!/bin/bash
# test_cli_crash.sh — kill -9 of real `kdelta` processes while they write (issue 6), checked
# against what must be there afterwards:
#   - `kdelta import` of a history export (many commits, batches, deletes, large values) is
#     killed at random moments, again and again on the same database; after each kill the
#     database opens, `check --deep` passes, and its export is exactly the source export cut
#     at a commit boundary (no commit half there, every id and timestamp the source's); the
#     next import resumes, skipping what is there; the last one completes and the export is
#     byte for byte the source's;
#   - `kdelta batch` of a large atomic batch is killed: afterwards all of it or none of it;
#   - `kdelta set` of values acknowledged on stdout before the kill are all there.
# KD_CLI_CRASH_ROUNDS (default 8) kill rounds per scenario, KD_CLI_CRASH_SEED (default from
# the clock, printed) for the random delays.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
ROUNDS=${KD_CLI_CRASH_ROUNDS:-8}
SEED=${KD_CLI_CRASH_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
echo "seed $SEED, $ROUNDS rounds"
kills=0

# The source: 300 commits (single puts, batches of up to 40 items with values up to 9 KB,
# deletes), exported once.
SRC="$T_DIR/src"
mkdir -p "$T_DIR/batches"
python3 - "$SEED" "$T_DIR/batches" <<'PY'
import json, random, sys
r = random.Random(int(sys.argv[1]))
live = set()
for c in range(300):
    n = r.choice([1, 1, 2, 5, 20, 40])
    ops, used = [], set()
    for _ in range(n):
        k = "k%d" % r.randrange(400)
        if k in used:
            continue
        used.add(k)
        if k in live and r.random() < 0.2:
            ops.append({"op": "delete", "namespace": "c", "key": k})
            live.discard(k)
        else:
            pad = "x" * r.choice([10, 200, 2000, 9000])
            ops.append({"op": "put", "namespace": r.choice(["c", "d"]) if k not in live else "c",
                        "key": k, "value": {"c": c, "pad": pad}})
            if ops[-1]["namespace"] == "c":
                live.add(k)
    with open("%s/%03d" % (sys.argv[2], c), "w") as f:
        f.write("".join(json.dumps(o) + "\n" for o in ops))
PY
for f in "$T_DIR"/batches/*; do
    "$KDELTA" --db "$SRC" batch "$f" >/dev/null || { echo "setup failed" >&2; exit 1; }
done
"$KDELTA" --db "$SRC" export >"$T_DIR/src.ndjson"
nlines=$(($(wc -l <"$T_DIR/src.ndjson") - 1))
echo "source: $nlines versions, $(stat -c %s "$T_DIR/src.ndjson") bytes"

# is_commit_prefix FILE: FILE (an export) is src.ndjson's header-less lines 1..N for some N
# that ends a commit (line N+1, if any, has another timestamp). Prints N.
is_commit_prefix() {
    python3 - "$T_DIR/src.ndjson" "$1" <<'PY'
import json, sys
src = open(sys.argv[1]).read().split("\n")[1:]
got = open(sys.argv[2]).read().split("\n")[1:]
src = [l for l in src if l]
got = [l for l in got if l]
n = len(got)
assert got == src[:n], "not a prefix of the source export"
if 0 < n < len(src):
    assert json.loads(src[n])["timestamp"] != json.loads(src[n - 1])["timestamp"], \
        "cut inside a commit at line %d" % (n + 1)
print(n)
PY
}

t_case "kill -9 of kdelta import: commits whole, then resumed to the end"
for r in $(seq 1 "$ROUNDS"); do
    D="$T_DIR/imp$r"
    "$KDELTA" --db "$D" import "$T_DIR/src.ndjson" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 120)))"   # a whole import takes ~0.1 s here
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    K --db "$D" check --deep
    expect_rc 0
    "$KDELTA" --db "$D" export >"$T_DIR/got.ndjson"
    if n=$(is_commit_prefix "$T_DIR/got.ndjson" 2>"$T_DIR/perr"); then
        ok
        echo "   round $r: killed with $n of $nlines versions imported"
    else
        bad "round $r: $(tail -1 "$T_DIR/perr")"
        n=-1
    fi
    K --db "$D" import "$T_DIR/src.ndjson"           # resumes: what is there is skipped
    expect_rc 0
    expect_out_has "^Imported [0-9]+ versions? \\($n already present\\)\$"
    "$KDELTA" --db "$D" export >"$T_DIR/got.ndjson"
    if cmp -s "$T_DIR/got.ndjson" "$T_DIR/src.ndjson"; then ok; else bad "round $r: the resumed import differs"; fi
    rm -rf "$D"
done

t_case "kill -9 of kdelta batch: all or nothing"
B="$T_DIR/batch"
python3 -c 'import json
for i in range(3000): print(json.dumps({"op":"put","namespace":"b","key":"k%d"%i,"value":{"i":i,"pad":"y"*3000}}))' \
    >"$T_DIR/big.batch"
present_rounds=0
for r in $(seq 1 "$ROUNDS"); do
    before=$("$KDELTA" --db "$B" --json status | jget versions)
    "$KDELTA" --db "$B" batch "$T_DIR/big.batch" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 300)))"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    after=$("$KDELTA" --db "$B" --json status | jget versions)
    d=$((after - before))
    if [ "$d" -eq 0 ] || [ "$d" -eq 3000 ]; then ok; else bad "round $r: $d of 3000 batch items present"; fi
    [ "$d" -eq 3000 ] && present_rounds=$((present_rounds + 1))
    K --db "$B" check --deep
    expect_rc 0
done
echo "   batch present after $present_rounds of $ROUNDS kills"

t_case "kill -9 of kdelta set in a loop: every acknowledged write is there"
S="$T_DIR/sets"
for r in $(seq 1 "$ROUNDS"); do
    ( for i in $(seq 1 200); do "$KDELTA" --db "$S" --json set "s/r$r-$i" "{\"i\":$i}" || break; done ) \
        >"$T_DIR/acks" 2>/dev/null &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 500)))"
    pkill -9 -P $pid kdelta 2>/dev/null && kills=$((kills + 1))
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    # Each complete line on stdout is an acknowledged write: its version must be there.
    lost=$(python3 - "$T_DIR/acks" "$KDELTA" "$S" <<'PY'
import json, subprocess, sys
lost = 0
for line in open(sys.argv[1]).read().split("\n"):
    try:
        a = json.loads(line)
    except ValueError:
        continue  # the line being written at the kill
    out = subprocess.run([sys.argv[2], "--db", sys.argv[3], "--json", "get",
                          "%s/%s" % (a["namespace"], a["key"])], capture_output=True, text=True)
    if out.returncode != 0 or json.loads(out.stdout)["version_id"] != a["version_id"]:
        lost += 1
print(lost)
PY
)
    expect_eq "$lost" 0
    K --db "$S" check --deep
    expect_rc 0
done
echo "   $(grep -c . "$T_DIR/acks") acknowledged in the last round; $kills kills in all"
t_end
