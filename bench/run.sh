#!/bin/sh
# run.sh — `make bench`: runs $BUILD/bench (KoruDelta against SQLite, and against hnswlib
# for vector search), then $BUILD/bench_http (kdelta serve against nginx and SQLite, over
# loopback) in a scratch directory that it removes afterwards, prints their tables and
# leaves $BUILD/bench.json (bench writes it; bench_http appends its figures).
#
# Usage: BUILD=build bench/run.sh [bench options, e.g. --rounds 3 --seconds 1]
#                                 [--http-rounds N] [--http-seconds N] [--http-sse-writes N]
# --only LIST selects groups of both programs: bench's (big,fsync,put1,put8,batch,query,
# viewput,binary,vector) and bench_http's (httpget,httpput,sse, or http for those three); a
# program none of whose groups is listed does not run. The --http-* options go to
# bench_http as --rounds, --seconds and --sse-writes; every other option goes to bench.
# The scratch directory is made under $BENCH_TMPDIR (default $TMPDIR, else /tmp); the
# figures depend on that filesystem, which the output names.
# Exit status: 0 when every measurement ran, whether or not it met its goal (benchmarks
# are not tests); non-zero when the bench failed or crashed.
set -u
BUILD=${BUILD:-build}
base=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
here=$(dirname "$0")

# quote ARG: ARG as one single-quoted shell word, for eval.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

bench_args= http_args= only=
while [ $# -gt 0 ]; do
    case $1 in
    --http-rounds|--http-seconds|--http-sse-writes)
        if [ $# -lt 2 ]; then echo "bench/run.sh: $1 needs a value" >&2; exit 2; fi
        http_args="$http_args --${1#--http-} $(quote "$2")"; shift 2 ;;
    --only)
        if [ $# -lt 2 ]; then echo "bench/run.sh: --only needs a value" >&2; exit 2; fi
        only=$2; bench_args="$bench_args --only $(quote "$2")"
        http_args="$http_args --only $(quote "$2")"; shift 2 ;;
    *)
        bench_args="$bench_args $(quote "$1")"; shift ;;
    esac
done
run_bench=1 run_http=1
if [ -n "$only" ]; then
    run_bench=0 run_http=0
    for g in $(printf '%s' "$only" | tr ',' ' '); do
        case $g in
        http|httpget|httpput|sse) run_http=1 ;;
        big|fsync|put1|put8|batch|query|viewput|binary|vector) run_bench=1 ;;
        *) echo "bench/run.sh: unknown group '$g' in --only" >&2; exit 2 ;;
        esac
    done
fi

for prog in bench bench_http; do
    if [ ! -x "$BUILD/$prog" ]; then
        echo "bench/run.sh: $BUILD/$prog is missing; run 'make bench'" >&2
        exit 1
    fi
done
dir=$(mktemp -d "$base/kdelta-bench.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# report NAME RC: says how a program ended when it did not end well.
report() {
    if [ "$2" -gt 128 ]; then
        echo "bench/run.sh: $1 crashed (signal $(($2 - 128)))" >&2
    elif [ "$2" -ne 0 ]; then
        echo "bench/run.sh: $1 failed (exit $2); see the errors above" >&2
    fi
}

rc=0 append=
if [ "$run_bench" -eq 1 ]; then
    eval "\"\$BUILD/bench\" --dir \"\$dir\" --json \"\$BUILD/bench.json\" --kdelta \"\$BUILD/kdelta\" $bench_args"
    rc=$?
    report bench "$rc"
    append=--append
fi
if [ "$run_http" -eq 1 ]; then
    mkdir "$dir/http" || exit 1
    eval "\"\$BUILD/bench_http\" --dir \"\$dir/http\" --json \"\$BUILD/bench.json\" $append --kdelta \"\$BUILD/kdelta\" --http-dir \"\$here/http\" $http_args"
    hrc=$?
    report bench_http "$hrc"
    [ "$rc" -eq 0 ] && rc=$hrc
fi
exit "$rc"
