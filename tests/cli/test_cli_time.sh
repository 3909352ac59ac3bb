#!/bin/bash
# test_cli_time.sh — time travel through kdelta: `get --at T` at exact version boundaries
# (<= T is inclusive), one microsecond before, before the first version, after a delete,
# by version id (prefix and full), in every time format (RFC 3339 with offsets and extra
# fraction digits, @unix, relative ages, now), and bad or unknown times.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
# tsadd RFC3339Z MICROS -> the same instant shifted, RFC 3339 UTC with 6 digits
tsadd() { python3 - "$1" "$2" <<'PY'
import sys, datetime
t = datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ")
print((t + datetime.timedelta(microseconds=int(sys.argv[2]))).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
PY
}
# tsfmt RFC3339Z KIND -> the same instant as "@unix.frac" (unix) or in +05:30 (offset)
tsfmt() { python3 - "$1" "$2" <<'PY'
import sys, datetime, calendar
t = datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ")
if sys.argv[2] == "unix":
    print("@%d.%06d" % (calendar.timegm(t.timetuple()), t.microsecond))
else:
    o = t + datetime.timedelta(hours=5, minutes=30)
    print(o.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+05:30")
PY
}

t_case "three versions"
K --json set tt/k '{"v":1}'; ts1=$(field timestamp); id1=$(field version_id)
K --json set tt/k '{"v":2}'; ts2=$(field timestamp); id2=$(field version_id)
K --json set tt/k '{"v":3}'; ts3=$(field timestamp); id3=$(field version_id)
expect_rc 0
if [[ "$ts1" < "$ts2" && "$ts2" < "$ts3" ]]; then ok; else bad "timestamps not increasing: $ts1 $ts2 $ts3"; fi

t_case "get --at the exact timestamp of v2 returns v2 (inclusive)"
K --json get tt/k --at "$ts2"
expect_rc 0
expect_eq "$(field value)" '{"v": 2}'
expect_eq "$(field version_id)" "$id2"

t_case "one microsecond before v2 returns v1"
K --json get tt/k --at "$(tsadd "$ts2" -1)"
expect_rc 0
expect_eq "$(field value)" '{"v": 1}'
K get tt/k --at "$ts1"
expect_out $'{\n  "v": 1\n}'

t_case "before the first version: not found"
K get tt/k --at "$(tsadd "$ts1" -1)"
expect_rc 3
expect_err_has 'not found: no version at or before'
K get tt/k --at 1h
expect_rc 3

t_case "later times give the newest version"
K get tt/k --at "$ts3"
expect_out $'{\n  "v": 3\n}'
K get tt/k --at now
expect_out $'{\n  "v": 3\n}'
K get tt/k --at 9999-12-31T23:59:59Z
expect_out $'{\n  "v": 3\n}'

t_case "other time formats name the same instant"
K get tt/k --at "$(tsfmt "$ts2" unix)"
expect_out $'{\n  "v": 2\n}'
K get tt/k --at "$(tsfmt "$(tsadd "$ts2" -1)" unix)"
expect_out $'{\n  "v": 1\n}'
K get tt/k --at "$(tsfmt "$ts2" offset)"
expect_out $'{\n  "v": 2\n}'
# digits below a microsecond are truncated
K get tt/k --at "${ts2%Z}999Z"
expect_out $'{\n  "v": 2\n}'
K get tt/k --at=$ts2
expect_out $'{\n  "v": 2\n}'

t_case "version id (8-digit prefix and full) as --at"
K get tt/k --at "${id2:0:8}"
expect_rc 0
expect_out $'{\n  "v": 2\n}'
K --json get tt/k --at "$id1"
expect_eq "$(field version_id)" "$id1"
K get tt/k --at 0000000000000000
expect_rc 3

t_case "get --verbose names the version"
K get tt/k --verbose
expect_out_has "^version: +$id3\$"
expect_out_has "^previous: +$id2\$"
expect_out_has "^timestamp: +$ts3\$"
expect_out_has '^seq: +3$'
expect_out_has '^value hash: +[0-9a-f]{64}$'
K get tt/k --at "$ts1" -v
expect_out_has '^previous: +\(none\)$'

t_case "after a delete: not found, saying when; earlier times still work"
K --json delete tt/k; tsd=$(field timestamp)
expect_rc 0
K get tt/k
expect_rc 3
expect_err_has "deleted at $tsd"
K get tt/k --at "$tsd"
expect_rc 3
expect_err_has "deleted at $tsd"
K get tt/k --at "$(tsadd "$tsd" -1)"
expect_rc 0
expect_out $'{\n  "v": 3\n}'
K get tt/k --at "$ts2"
expect_out $'{\n  "v": 2\n}'

t_case "re-create after delete"
K --json set tt/k '{"v":4}'; ts4=$(field timestamp)
expect_eq "$(field previous_version)" "$(printf '%s' "$("$KDELTA" --json log tt/k --limit 2)" | jget versions.1.version_id)"
K get tt/k
expect_out $'{\n  "v": 4\n}'
K get tt/k --at "$(tsadd "$ts4" -1)"
expect_rc 3
expect_err_has 'deleted'
K --json log tt/k
expect_eq "$(field versions.0.value)" '{"v": 4}'
expect_eq "$(field versions.1.deleted)" 'true'
expect_eq "$(field versions.4.version_id)" "$id1"

t_case "bad times"
K get tt/k --at yesterday
expect_rc 1
expect_err_has "--at 'yesterday'"
K --json get tt/k --at 2026-13-01T00:00:00Z
expect_rc 1
expect_eq "$(field error.code)" invalid
K get tt/k --at
expect_rc 2

t_end
