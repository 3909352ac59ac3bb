#!/bin/sh
# demo.sh — a short guided tour of kdelta (what `make run` shows): history, time travel,
# diff and delete on the default database (~/.korudelta/db, or $KORU_DB if set).
# Usage: scripts/demo.sh path/to/kdelta
# Each step prints the command, then runs it. The key gets a timestamp suffix so reruns
# never collide with earlier ones. Exits 0 when every step behaved as expected.
set -u
KDELTA=${1:-build/kdelta}
if [ ! -x "$KDELTA" ]; then
    echo "demo: $KDELTA is not an executable (build it with 'make')" >&2
    exit 1
fi
KEY="demo/config-$(date -u +%Y%m%dT%H%M%SZ)-$$"
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then B=$(printf '\033[1m'); N=$(printf '\033[0m'); else B=; N=; fi

say() { printf '\n%s# %s%s\n' "$B" "$*" "$N"; }
show() {
    printf '%s$ kdelta' "$B"
    for a in "$@"; do
        case $a in
            *[!A-Za-z0-9_./:@=+-]*) printf " '%s'" "$a" ;;
            *) printf ' %s' "$a" ;;
        esac
    done
    printf '%s\n' "$N"
}
check_rc() {  # got, want
    if [ "$1" -ne "$2" ]; then
        echo "demo: that command exited $1, expected $2" >&2
        exit 1
    fi
    if [ "$2" -ne 0 ]; then echo "(exit code $1)"; fi
}
# step EXPECTED_RC ARGS...: shows and runs `kdelta ARGS` on the terminal (colours and all)
step() {
    want=$1; shift
    show "$@"
    "$KDELTA" "$@" 2>&1
    check_rc $? "$want"
}
# capture ARGS...: the same for a step whose output the demo needs later, kept in $LAST
capture() {
    show "$@"
    LAST=$("$KDELTA" "$@" 2>&1)
    rc=$?
    printf '%s\n' "$LAST"
    check_rc "$rc" 0
}

echo "KoruDelta demo: every write is kept as a version."
echo "Database: ${KORU_DB:-$HOME/.korudelta/db}   key: $KEY"

say "Write a config value three times"
capture set "$KEY" '{"theme":"light","retries":3}'
TS1=$(printf '%s\n' "$LAST" | sed -n 's/.*, \([0-9T:.-]*Z\)$/\1/p')
step 0 set "$KEY" '{"theme":"dark","retries":3}'
capture set "$KEY" '{"theme":"dark","retries":5,"beta":true}'
ID3=$(printf '%s\n' "$LAST" | sed -n 's/.*version \([0-9a-f]*\),.*/\1/p')

say "Read the current value"
step 0 get "$KEY"

say "The whole history, newest first"
step 0 log "$KEY"

say "Time travel: the value as of the first version's timestamp"
step 0 get "$KEY" --at "$TS1"

say "What changed between the last two versions (and as a JSON Patch)"
step 0 diff "$KEY"
step 0 diff "$KEY" --from 0 --json

say "Delete the key: reads now say not found, and when it was deleted"
step 0 delete "$KEY"
step 3 get "$KEY"

say "...but the past is still there: the value as of version $ID3, before the delete"
step 0 get "$KEY" --at "$ID3" --verbose
step 0 log "$KEY"

USERS="people-$(date -u +%H%M%S)-$$"
say "Queries over a whole namespace ($USERS)"
step 0 batch - <<EOF2
{"op":"put","namespace":"$USERS","key":"ann","value":{"age":41,"status":"active","city":"Lima"}}
{"op":"put","namespace":"$USERS","key":"bob","value":{"age":29,"status":"active","city":"Oslo"}}
{"op":"put","namespace":"$USERS","key":"cy","value":{"age":35,"status":"idle","city":"Lima"}}
{"op":"put","namespace":"$USERS","key":"dee","value":{"age":52,"status":"active","city":"Oslo"}}
EOF2
step 0 query "$USERS" --filter 'age > 30 and status = "active"' --sort age:desc
step 0 query "$USERS" --group-by city --count --avg age --limit 0

say "A materialized view, kept current at every write"
step 0 view create "over30-$$" "$USERS" --filter 'age > 30' --sort age:desc --auto-refresh
step 0 set "$USERS/eve" '{"age":61,"status":"active","city":"Lima"}'
step 0 view query "over30-$$"

say "Done. Try 'kdelta --help', 'kdelta status' or 'kdelta list demo'."
exit 0
