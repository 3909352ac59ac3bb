#!/bin/bash
# run_fuzz.sh — what `make fuzz` runs after building: each libFuzzer target for
# FUZZ_SECONDS (default 60), starting from its seed corpus, and a summary of executions.
#   tests/fuzz/run_fuzz.sh BUILD_DIR TARGET...
# The growing corpus goes to BUILD_DIR/corpus/<target> (the seeds in tests/fuzz/corpus
# are read, never written); crashing inputs to BUILD_DIR/crashes/<target>-crash-<sha1>,
# each replayable with BUILD_DIR/fuzz/fuzz_<target> FILE or build/tests/test_fuzz_<target>
# FILE. FUZZ_JOBS=N runs N processes per target (libFuzzer -fork). Exits non-zero when a
# target found a crash, leak or timeout.
set -u
B=$1; shift
SECS=${FUZZ_SECONDS:-60}
# Scratch databases (dbfile, http) go to tmpfs when there is one: fsyncs cost nothing.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then TMPDIR=/dev/shm; fi
export KORU_LOG=error TMPDIR=${TMPDIR:-/tmp}
declare -A execs result
bad=0
for t in "$@"; do
    mkdir -p "$B/corpus/$t" "$B/crashes" "$B/logs"
    log="$B/logs/$t.log"
    echo "== fuzz_$t for ${SECS}s (log: $log)"
    extra=()
    [ -n "${FUZZ_JOBS:-}" ] && extra+=(-fork="$FUZZ_JOBS")
    "$B/fuzz/fuzz_$t" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" "${extra[@]}" \
        "$B/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    n=$(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
    [ -z "$n" ] && n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    execs[$t]=${n:-0}
    if [ $rc -eq 0 ]; then
        result[$t]=ok
    else
        result[$t]="FAILED (exit $rc; see $log)"
        bad=1
        grep -E 'ERROR: |SUMMARY: |fuzz invariant failed|Test unit written to' "$log" | head -5 | sed 's/^/   /'
    fi
done
echo "== fuzz summary (${SECS}s per target)"
for t in "$@"; do
    printf '   %-8s %12s executions  %s\n' "$t" "${execs[$t]}" "${result[$t]}"
done
exit $bad
