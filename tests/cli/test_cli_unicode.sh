#!/bin/bash
# test_cli_unicode.sh — non-ASCII and awkward keys and values round trip through every
# command: set/get/log/diff/list/delete and batch, in human and --json output (JSON output
# must escape quotes, backslashes and control characters in keys). Keys are bytes: the
# NFC and NFD spellings of the same word are two keys.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }

t_case "unicode key with slashes"
K --json set 'users/日本/ключ' '{"名前":"太郎","emoji":"😀"}'
expect_rc 0
expect_eq "$(field key)" '日本/ключ'
expect_eq "$(field namespace)" users
K get 'users/日本/ключ'
expect_out $'{\n  "emoji": "😀",\n  "名前": "太郎"\n}'
K --json get 'users/日本/ключ'
expect_eq "$(field value)" '{"emoji": "\ud83d\ude00", "\u540d\u524d": "\u592a\u90ce"}'
expect_out_has '"key":"日本/ключ"'

t_case "log, diff, list with unicode keys"
K set 'users/日本/ключ' '{"名前":"花子","emoji":"😀"}'
K log 'users/日本/ключ'
expect_out_has '^  \* [0-9a-f]{8} .* seq 2  \{"emoji":"😀","名前":"花子"\}$'
K --json diff 'users/日本/ключ'
expect_eq "$(field patch)" '[{"op": "replace", "path": "/\u540d\u524d", "value": "\u82b1\u5b50"}]'
K diff 'users/日本/ключ'
expect_out_has '^-   "名前": "太郎"$'
expect_out_has '^\+   "名前": "花子"$'
K set 'users/emoji🎉' 1
K set 'users/ascii' 2
K list users
expect_out $'ascii\nemoji🎉\n日本/ключ'
K --json list users
expect_eq "$(field keys.2)" '日本/ключ'

t_case "NFC and NFD are different keys"
K set "words/$(printf 'caf\xc3\xa9')" '"nfc"'
K set "words/$(printf 'cafe\xcc\x81')" '"nfd"'
K get "words/$(printf 'caf\xc3\xa9')"
expect_out '"nfc"'
K get "words/$(printf 'cafe\xcc\x81')"
expect_out '"nfd"'
K --json list words
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["keys"]))')" 2

t_case "keys with quotes, backslashes, spaces and control characters are escaped in JSON"
key=$'say "hi"\\ now\ttab'
K --json set "odd/$key" '"v"'
expect_rc 0
expect_eq "$(field key)" "$key"
expect_out_has '"key":"say \\"hi\\"\\\\ now\\ttab"'
K get "odd/$key"
expect_out '"v"'
K --json list odd
expect_eq "$(field keys.0)" "$key"
K --json delete "odd/$key"
expect_eq "$(field key)" "$key"
K --json get "odd/$key"
expect_rc 3
expect_eq "$(field error.code)" not_found
expect_eq "$(printf '%s' "$OUT" | python3 -c 'import sys,json; print(json.load(sys.stdin)["error"]["message"])')" "odd/$key not found: deleted at $(printf '%s' "$("$KDELTA" --json log "odd/$key")" | jget versions.0.timestamp) ($(printf '%s' "$("$KDELTA" --json log "odd/$key")" | jget versions.0.version_id | cut -c1-8 | sed 's/^/version /'))"

t_case "batch with unicode names and values"
K --json batch - <<'X'
{"op":"put","namespace":"i18n","key":"греция/αθήνα","value":{"city":"Αθήνα"}}
{"op":"put","namespace":"i18n","key":"עברית","value":"שלום"}
X
expect_rc 0
expect_eq "$(field committed)" 2
K get 'i18n/греция/αθήνα'
expect_out $'{\n  "city": "Αθήνα"\n}'
K get 'i18n/עברית'
expect_out '"שלום"'

t_case "invalid UTF-8 in a key is refused and messages stay valid JSON"
K --json set "i18n/$(printf 'bad\xc3(')" 1
expect_rc 1
expect_eq "$(field error.code)" invalid
K --json frob"$(printf '\xff')"
expect_rc 2
expect_eq "$(field error.code)" usage
expect_out_has '\\ufffd'

t_end
