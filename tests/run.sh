#!/bin/bash
# run.sh — runs every test program and script, each in its own process with a timeout,
# and sums their "N passed, N failed" lines into one closing line. Exits non-zero when
# anything failed, crashed or timed out.
#   BUILD=build        build tree holding tests/ and kdelta
#   KD_VALGRIND=1      run the unit tests under valgrind (leaks are failures)
#   KD_TEST_FILTER=re  only run tests whose name matches
set -u
BUILD=${BUILD:-build}
export BUILD
export KDELTA="$PWD/$BUILD/kdelta"
pass=0; fail=0
crashed=()
run_one() {  # name, timeout, command...
    local name=$1 t=$2; shift 2
    if [ -n "${KD_TEST_FILTER:-}" ] && ! [[ $name =~ $KD_TEST_FILTER ]]; then return; fi
    echo "== $name"
    local out rc
    out=$(timeout "$t" "$@" 2>&1); rc=$?
    echo "$out" | sed 's/^/   /'
    local line
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
    if [ -n "$line" ]; then
        local p f
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
        pass=$((pass + p)); fail=$((fail + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); crashed+=("$name (exit $rc)"); fi
    else
        fail=$((fail + 1)); crashed+=("$name (exit $rc, no result line)")
    fi
}
UNIT_DIR="$BUILD/tests"
[ -n "${KD_UNIT_ONLY:-}" ] && UNIT_DIR="$BUILD"
for t in "$UNIT_DIR"/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    if [ -n "${KD_VALGRIND:-}" ]; then
        # The HNSW test's 10,000 vectors take minutes under valgrind; 2,000 cover the code.
        KD_HNSW_N=${KD_HNSW_N:-2000} KD_VEC_N=${KD_VEC_N:-2500} run_one "$name" 900 valgrind -q --child-silent-after-fork=yes --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$t"
    else
        run_one "$name" 600 "$t"
    fi
done
if [ -z "${KD_VALGRIND:-}" ] && [ -z "${KD_UNIT_ONLY:-}" ]; then
    for s in tests/cli/test_*.sh; do
        [ -f "$s" ] || continue
        run_one "$(basename "$s")" 600 bash "$s"
    done
    # Black-box tests of `kdelta serve` (Python standard library only).
    for s in tests/server/test_*.py; do
        [ -f "$s" ] || continue
        run_one "$(basename "$s")" 600 python3 "$s"
    done
    for e in "$BUILD"/examples/*; do
        [ -x "$e" ] || continue
        d=$(mktemp -d)
        run_one "example $(basename "$e")" 60 bash -c "cd $d && '$PWD/$e' >/dev/null && echo '1 passed, 0 failed'"
        rm -rf "$d"
    done
fi
for c in "${crashed[@]+"${crashed[@]}"}"; do echo "CRASHED/FAILED: $c"; done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
