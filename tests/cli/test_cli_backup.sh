#!/bin/bash
# test_cli_backup.sh — `kdelta backup DIR`: a copy that opens with the same history (ids
# and timestamps), made locally, through a server holding the database and through --url;
# a relative DIR named from the current directory; a non-empty DIR refused; the JSON shape;
# quiet when piped; a copy taken while a writer runs passes `check`.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
trap 'stop_server; [ -n "${KEEP_T_DIR:-}" ] || rm -rf "$T_DIR"' EXIT

for i in 1 2 3 4 5; do "$KDELTA" set users/u$i "{\"n\":$i}" >/dev/null; done
"$KDELTA" set users/u1 '{"n":10}' >/dev/null
"$KDELTA" delete users/u2 >/dev/null
"$KDELTA" embed docs/a --vector '[1,0,0]' >/dev/null

t_case "a local backup opens with the same history"
K backup "$T_DIR/b1"
expect_rc 0
expect_out_has "^Backed up $T_DIR/db to $T_DIR/b1 \([0-9]+ bytes\)$"
expect_eq "$ERR" ""
expect_eq "$("$KDELTA" --json log users/u1)" "$("$KDELTA" --db "$T_DIR/b1" --json log users/u1)"
expect_eq "$("$KDELTA" --json log users/u2)" "$("$KDELTA" --db "$T_DIR/b1" --json log users/u2)"
expect_eq "$("$KDELTA" --json embedding docs/a)" "$("$KDELTA" --db "$T_DIR/b1" --json embedding docs/a)"
K --db "$T_DIR/b1" check
expect_rc 0
K --db "$T_DIR/b1" set users/new '1'
expect_rc 0

t_case "a non-empty directory is refused"
K backup "$T_DIR/b1"
expect_rc 1
expect_err_has "^kdelta: error: backup: directory $T_DIR/b1 is not empty$"
mkdir -p "$T_DIR/empty"
K backup "$T_DIR/empty"
expect_rc 0

t_case "a relative directory, and --json"
K --json backup rel/copy
expect_rc 0
printf '%s' "$OUT" | python3 -c 'import sys,json
d=json.loads(sys.stdin.read()); assert list(d)==["bytes","dir","source"], d
assert d["dir"]==sys.argv[1]+"/rel/copy" and d["bytes"]>0, d' "$T_DIR" && ok || bad "json shape"
[ -d "$T_DIR/rel/copy/log" ] && ok || bad "no copy under rel/copy"

t_case "usage"
K backup
expect_rc 2
K backup a b
expect_rc 2

t_case "through a server: routed and --url, while a writer runs"
start_server "$KORU_DB"
( for i in $(seq 1 300); do "$KDELTA" set live/k$((i % 20)) "$i" >/dev/null || exit 1; done ) &
WRITER=$!
# live/k0 is the 20th write: once it exists, every key checked below has versions.
for _ in $(seq 1 200); do "$KDELTA" get live/k0 >/dev/null 2>&1 && break; sleep 0.05; done
K backup "$T_DIR/b2"
expect_rc 0
expect_out_has "^Backed up $T_DIR/db to $T_DIR/b2 \([0-9]+ bytes\)$"
K --url "$URL" --db "$T_DIR/nothing" --json backup "$T_DIR/b3"
expect_rc 0
expect_eq "$(printf '%s' "$OUT" | jget dir)" "$T_DIR/b3"
K --url "$URL" backup relative-on-url
expect_rc 0
K --url "$URL" backup "$T_DIR/b2"
expect_rc 1
expect_err_has "is not empty"
wait "$WRITER"
expect_eq "$?" 0
stop_server
expect_eq "$SERVER_RC" 0
for b in b2 b3; do
    K --db "$T_DIR/$b" check
    expect_rc 0
    K --db "$T_DIR/$b" --json get users/u1
    expect_out_has '"value":\{"n":10\}'
done
# The copy made while writing holds a prefix of live/*: each key's versions in the copy
# are the first ones of the source, with the same ids.
for k in 0 5 13; do
    src=$("$KDELTA" --json log live/k$k | python3 -c 'import sys,json; print("\n".join(v["version_id"] for v in json.load(sys.stdin)["versions"]))' 2>/dev/null)
    cpy=$("$KDELTA" --db "$T_DIR/b2" --json log live/k$k 2>/dev/null | python3 -c 'import sys,json; print("\n".join(v["version_id"] for v in json.load(sys.stdin)["versions"]))' 2>/dev/null)
    case "$src" in
    "") bad "live/k$k: no versions in the source" ;;
    *"$cpy"*) [ -n "$cpy" ] && ok || bad "live/k$k: no versions in the copy" ;;
    *) bad "live/k$k: the copy's versions are not the source's" ;;
    esac
done

t_end
