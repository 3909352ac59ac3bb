#!/bin/sh
# run.sh — `make bench`: runs $BUILD/bench (KoruDelta against SQLite) in a scratch
# directory that it removes afterwards, prints the table and leaves $BUILD/bench.json.
#
# Usage: BUILD=build bench/run.sh [bench options, e.g. --rounds 3 --seconds 1]
# The scratch directory is made under $BENCH_TMPDIR (default $TMPDIR, else /tmp); the
# figures depend on that filesystem, which the output names.
# Exit status: 0 when every measurement ran, whether or not it met its goal (benchmarks
# are not tests); non-zero when the bench failed or crashed.
set -u
BUILD=${BUILD:-build}
base=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}

if [ ! -x "$BUILD/bench" ]; then
    echo "bench/run.sh: $BUILD/bench is missing; run 'make bench'" >&2
    exit 1
fi
dir=$(mktemp -d "$base/kdelta-bench.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

"$BUILD/bench" --dir "$dir" --json "$BUILD/bench.json" --kdelta "$BUILD/kdelta" "$@"
rc=$?
if [ "$rc" -gt 128 ]; then
    echo "bench/run.sh: bench crashed (signal $((rc - 128)))" >&2
elif [ "$rc" -ne 0 ]; then
    echo "bench/run.sh: bench failed (exit $rc); see the errors above" >&2
fi
exit "$rc"
