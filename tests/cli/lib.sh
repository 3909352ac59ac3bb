# lib.sh — helpers for black-box tests of the kdelta binary. Source it, call `t_begin`,
# write checks, end with `t_end`. Each test script runs in its own temp directory, which
# is removed at exit.
#   run CMD...          runs CMD, captures $OUT (stdout), $ERR (stderr), $RC
#   expect_rc N         the last command exited N
#   expect_out TEXT     $OUT equals TEXT exactly
#   expect_out_has RE   $OUT matches the extended regex RE
#   expect_err_has RE   $ERR matches RE
#   ok NAME / bad NAME MSG   record a result by hand
set -u
KDELTA=${KDELTA:-$PWD/build/kdelta}
T_PASS=0; T_FAIL=0; T_NAME=""
T_DIR=$(mktemp -d)
trap 'rm -rf "$T_DIR"' EXIT
export NO_COLOR=1
export KORU_DB="$T_DIR/db"
unset KORU_URL
t_begin() { cd "$T_DIR" || exit 1; }
t_case() { T_NAME=$1; }
run() { OUT=$("$@" 2>"$T_DIR/.err"); RC=$?; ERR=$(cat "$T_DIR/.err"); }
ok() { T_PASS=$((T_PASS + 1)); }
bad() { T_FAIL=$((T_FAIL + 1)); echo "FAIL [$T_NAME] $1" >&2; echo "   stdout: $OUT" >&2; echo "   stderr: $ERR" >&2; }
expect_rc() { if [ "$RC" -eq "$1" ]; then ok; else bad "exit code $RC, want $1"; fi; }
expect_out() { if [ "$OUT" == "$1" ]; then ok; else bad "stdout mismatch, want: $1"; fi; }
expect_out_has() { if echo "$OUT" | grep -Eq -- "$1"; then ok; else bad "stdout lacks /$1/"; fi; }
expect_out_lacks() { if echo "$OUT" | grep -Eq -- "$1"; then bad "stdout has /$1/"; else ok; fi; }
expect_err_has() { if echo "$ERR" | grep -Eq -- "$1"; then ok; else bad "stderr lacks /$1/"; fi; }
# jq-free JSON field extraction through python3: jget FIELD.PATH < json
jget() { python3 -c 'import sys,json
d=json.load(sys.stdin)
for p in sys.argv[1].split("."):
    d = d[int(p)] if isinstance(d, list) else d[p]
print(json.dumps(d) if not isinstance(d, str) else d)' "$1"; }
# field PATH: a member of the JSON document in $OUT (dotted path, as jget).
field() { printf '%s' "$OUT" | jget "$1"; }
expect_eq() { if [ "$1" == "$2" ]; then ok; else bad "got '$1', want '$2'"; fi; }
t_end() { echo "$T_PASS passed, $T_FAIL failed"; [ "$T_FAIL" -eq 0 ]; }
# expect_error RC CODE REGEX -- CMD...: runs CMD with --json and checks everything about
# the failure: exit code, one stderr line, and the one JSON error document on stdout.
expect_error() {
    local rc=$1 code=$2 re=$3; shift 4
    run "$KDELTA" --json "$@"
    expect_rc "$rc"
    expect_err_has "^kdelta: error: .*$re"
    expect_eq "$(printf '%s\n' "$ERR" | wc -l)" 1
    if printf '%s' "$OUT" | python3 -c 'import sys,json
d=json.loads(sys.stdin.read())
assert list(d) == ["error"] and sorted(d["error"]) == ["code","message"], d
assert d["error"]["code"] == sys.argv[1], d
assert d["error"]["message"] and "\n" not in d["error"]["message"]' "$code"; then ok; else bad "error JSON for: $*"; fi
}

# ---- a `kdelta serve` in the background, for the tests of remote mode ----------------
SERVER_PID=""
# start_server DIR [PORT [SERVE_OPTIONS...]]: serves DIR (on a free port by default, 0),
# waits for its address file and sets URL; the server's log goes to $T_DIR/serve.log.
start_server() {
    local dir=$1 port=${2:-0}
    shift $(($# < 2 ? $# : 2))
    rm -f "$dir/serve.addr"
    "$KDELTA" --db "$dir" serve --port "$port" "$@" 2>>"$T_DIR/serve.log" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$dir/serve.addr" ] && break
        sleep 0.1
    done
    URL=$(cat "$dir/serve.addr" 2>/dev/null)
    [ -n "$URL" ] || { echo "server did not start:" >&2; cat "$T_DIR/serve.log" >&2; exit 1; }
}
# stop_server: SIGTERM, then waits; SERVER_RC gets its exit code.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID"
    SERVER_RC=$?
    SERVER_PID=""
}

# future_clock: builds $T_DIR/future.so, an LD_PRELOAD shim whose wall clock reads
# 2100-01-01T00:00:00Z (other clocks are left alone), so that a seed database's first
# commit has a known timestamp and later ones "previous + 1 us" in every run alike.
future_clock() {
    cat >"$T_DIR/future.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (id == CLOCK_REALTIME) {
        ts->tv_sec = 4102444800;
        ts->tv_nsec = 0;
        return 0;
    }
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return real(id, ts);
}
EOF
    cc -shared -fPIC -o "$T_DIR/future.so" "$T_DIR/future.c" -ldl || { echo "cannot build the clock shim"; exit 1; }
}

# step ARGS...: one step of a three-way script: runs "$KDELTA" "${PRE[@]}" ARGS with
# stdin from $STEP_STDIN (default /dev/null) and keeps its command line, stdout, stderr
# and exit code as $WAY_DIR/N.{cmd,out,err,rc}.
step() {
    N=$((N + 1))
    printf '%s\n' "$*" >"$WAY_DIR/$N.cmd"
    "$KDELTA" "${PRE[@]}" "$@" >"$WAY_DIR/$N.out" 2>"$WAY_DIR/$N.err" <"${STEP_STDIN:-/dev/null}"
    echo $? >"$WAY_DIR/$N.rc"
}

# compare_ways A B: each step's stdout, stderr and exit code of way B must equal way A's
# (after the caller's way_mask FILE filter, when it defines one).
compare_ways() {
    local a=$1 b=$2 i part
    for i in $(seq 1 "$N"); do
        T_NAME="$b: $(cat "$T_DIR/way-$a/$i.cmd")"
        for part in out err rc; do
            if diff <(way_filter "$T_DIR/way-$a/$i.$part") <(way_filter "$T_DIR/way-$b/$i.$part") >"$T_DIR/diff" 2>&1; then
                ok
            else
                OUT=$(cat "$T_DIR/diff"); ERR=""
                bad "$part differs from $a"
            fi
        done
    done
}
way_filter() { if declare -F way_mask >/dev/null; then way_mask "$1"; else cat "$1"; fi; }

# way CMD PART: PART (out, err, rc) of the local run's first step whose command is CMD.
way() {
    local f
    f=$(grep -lxF -- "$1" "$T_DIR"/way-local/*.cmd | head -1)
    cat "${f%.cmd}.$2"
}

# three_ways: runs the caller's `script` function three times, each on a fresh copy of
# the database $SEED at $W: locally (--db), through --url, and routed through a server
# holding the copy. script's commands run "$KDELTA" "${PRE[@]}" ... and keep their output
# under $WAY_DIR ($T_DIR/way-local, way-url, way-routed) for the caller to compare. Both
# servers must stop with exit code 0.
three_ways() {
    W="$T_DIR/w"
    local name
    for name in local url routed; do
        rm -rf "$W" && cp -a "$SEED" "$W"
        WAY_DIR="$T_DIR/way-$name"
        mkdir -p "$WAY_DIR"
        case $name in
        local) PRE=(--db "$W"); script ;;
        url) start_server "$W"; PRE=(--db "$T_DIR/not-a-db" --url "$URL"); script ;;
        routed) start_server "$W"; PRE=(--db "$W"); script ;;
        esac
        if [ "$name" != local ]; then
            stop_server
            expect_eq "$SERVER_RC" 0
        fi
    done
}
