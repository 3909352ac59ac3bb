#!/bin/bash
# test_cli_admin.sh — list, status and check: namespaces with key counts (deleted keys and
# emptied namespaces left out), keys in byte order, the `Database Status` layout and its
# counts (versions include tombstones), `check` on a sound database, on one with a
# corrupted record in the middle of the log (exit 1 naming the offset, also when the
# database cannot be opened), and a torn tail that the next open cuts, keeping the rest.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
# flip FILE MARKER: changes the last byte of the last occurrence of MARKER in FILE
flip() { python3 - "$1" "$2" <<'PY'
import sys
p, m = sys.argv[1], sys.argv[2].encode()
d = bytearray(open(p, "rb").read())
i = d.rfind(m)
assert i >= 0, "marker not found"
d[i + len(m) - 2] ^= 0x01
open(p, "wb").write(d)
PY
}

t_case "an empty database"
K list
expect_rc 0
expect_out 'No namespaces.'
K --json list
expect_eq "$(field namespaces)" '[]'
K status
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" 'Database Status'
expect_out_has '^  Keys: +0$'

t_case "list namespaces and keys"
K set zoo/b 1; K set zoo/a 2; K set zoo/B 3; K set apps/x 4; K set gone/only 5
K delete gone/only
K set apps/y 6; K delete apps/y
K list
expect_rc 0
expect_out $'  apps  1 key\n  zoo   3 keys'
K list zoo
expect_out $'B\na\nb'
K list gone
expect_rc 0
expect_out ''
K --json list --all
expect_rc 0
expect_eq "$(field namespaces.0.name)" apps
K list 'bad ns'
expect_rc 1
expect_err_has 'invalid namespace'

t_case "status counts live keys and every version"
K status
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" 'Database Status'
expect_out_has "^  Path: +$(realpath "$KORU_DB")\$"
expect_out_has '^  Namespaces: +2$'
expect_out_has '^  Keys: +4$'
expect_out_has '^  Versions: +8$'
expect_out_has '^  Seq: +8$'
expect_out_has '^  Disk bytes: +[1-9][0-9]* '
K --json status
expect_eq "$(field keys)" 4
expect_eq "$(field versions)" 8

t_case "check on a sound database"
K check
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" 'Database Check: ok'
expect_out_has '^  Versions: +8$'
expect_out_has '^  Errors: +0$'
K check --deep
expect_rc 0

t_case "check finds a corrupted record in the middle of the log"
export KORU_DB="$T_DIR/mid"
for i in 1 2 3 4 5; do "$KDELTA" set c/k$i "{\"marker\":$i}" >/dev/null; done
seg=$(ls "$KORU_DB"/log/* | head -1)
flip "$seg" '{"marker":2}'
K check
expect_rc 1
expect_out_has '^Database Check: FAILED$'
expect_out_has '^  First error: .*offset [0-9]+'
expect_err_has '^kdelta: error: database check failed: .*offset [0-9]+'
expect_eq "$(printf '%s\n' "$ERR" | grep -c 'kdelta: error')" 1
K --json check
expect_rc 1
expect_eq "$(field ok)" false
expect_out_has '"first_error":"[^"]*offset [0-9]+'
if [ "$(field errors)" -ge 1 ]; then ok; else bad "errors = $(field errors)"; fi

t_case "check reports even when the database refuses to open"
rm -f "$KORU_DB"/checkpoint*
K get c/k1
expect_rc 1
expect_err_has 'corrupt.*offset [0-9]+'
K --json get c/k1
expect_eq "$(field error.code)" corrupt
K check
expect_rc 1
expect_out_has '^  Open: +refused'
expect_out_has '^  First error: .*offset [0-9]+'
K --json check
expect_rc 1
expect_eq "$(field ok)" false

t_case "a torn tail is cut at the next open; earlier data is intact"
export KORU_DB="$T_DIR/tail"
for i in 1 2 3 4 5; do "$KDELTA" set c/k$i "{\"tail\":$i}" >/dev/null; done
rm -f "$KORU_DB"/checkpoint*   # as after a crash: no checkpoint covers the tail
seg=$(ls "$KORU_DB"/log/* | head -1)
flip "$seg" '{"tail":5}'
K get c/k5
expect_rc 3
for i in 1 2 3 4; do
    K get c/k$i
    expect_out "{
  \"tail\": $i
}"
done
K --json check
expect_rc 0
expect_eq "$(field ok)" true
K --json set c/k6 6
expect_eq "$(field seq)" 5

t_end
