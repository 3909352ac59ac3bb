#!/bin/bash
# test_cli_query.sh — `kdelta query` and `kdelta view` end to end: filters (comparisons,
# and/or/not, contains, regex, exists, nested paths, missing fields), multi-key sorts with
# missing values last, limit/offset against the total, projection of nested fields, every
# aggregation (over the whole filtered set, not the page) and group by, --at across
# updates and deletes (by time and by version id), the JSON shapes, every bad input with
# its exit code and message and with nothing written, and views: auto-refresh and manual,
# list, show, query with extra filter/sort/limit, refresh, delete, duplicate names, and
# auto-refresh views following puts, deletes and batches across process restarts.
. "$(dirname "$0")/lib.sh"
t_begin
K() { run "$KDELTA" "$@"; }
stat_seq() { "$KDELTA" --json status | jget seq; }
# keys_of: the record keys of the JSON result in $OUT, space-separated
keys_of() { printf '%s' "$OUT" | python3 -c 'import sys,json
print(" ".join(r["key"] for r in json.load(sys.stdin)["records"]))'; }
# Q ARGS...: a JSON query of namespace shop; then $OUT holds the result document
Q() { run "$KDELTA" --json query shop "$@"; }
# expect_keys WANT ARGS...: the query's records come in exactly this key order
expect_keys() { local want=$1; shift; Q "$@"; expect_rc 0; expect_eq "$(keys_of)" "$want"; }
# pyexpect EXPR: a python expression over d (the JSON document in $OUT) that must hold
pyexpect() {
    if printf '%s' "$OUT" | python3 -c 'import sys,json
d = json.loads(sys.stdin.read())
assert eval(sys.argv[1]), d' "$1" 2>"$T_DIR/.py"; then ok; else bad "python check: $1 ($(tail -1 "$T_DIR/.py"))"; fi
}

cat > shop.ndjson <<'EOF'
{"op":"put","namespace":"shop","key":"a","value":{"name":"apple","price":1.5,"qty":10,"city":"Oslo","tags":["fruit","red"],"dim":{"w":1,"h":2}}}
{"op":"put","namespace":"shop","key":"b","value":{"name":"banana","price":0.5,"qty":30,"city":"Paris","tags":["fruit"],"dim":{"w":3,"h":1}}}
{"op":"put","namespace":"shop","key":"c","value":{"name":"cherry","price":4,"qty":5,"city":"Oslo","tags":["fruit","red"]}}
{"op":"put","namespace":"shop","key":"d","value":{"name":"dates","price":4,"city":"Rome","tags":[]}}
{"op":"put","namespace":"shop","key":"e","value":{"name":"eggplant","qty":7,"city":"Paris","tags":["veg"]}}
EOF
K batch shop.ndjson
expect_rc 0
K --json get shop/a; t1=$(field timestamp)

t_case "all records in key order, human and JSON"
K query shop
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | head -1)" 'a  {"city":"Oslo","dim":{"h":2,"w":1},"name":"apple","price":1.5,"qty":10,"tags":["fruit","red"]}'
expect_eq "$(printf '%s\n' "$OUT" | sed -n 5p)" 'e  {"city":"Paris","name":"eggplant","qty":7,"tags":["veg"]}'
expect_eq "$(printf '%s\n' "$OUT" | tail -1)" 'total: 5'
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 6
expect_keys "a b c d e"
pyexpect 'd["namespace"] == "shop" and d["total"] == 5 and d["aggregation"] is None'
pyexpect 'sorted(d) == ["aggregation","namespace","records","total"]'
pyexpect 'all({"key","timestamp","value","version_id"} <= set(r) for r in d["records"])'
pyexpect 'd["records"][0]["value"]["dim"] == {"h":2,"w":1} and d["records"][0]["timestamp"] == "'"$t1"'"'
pyexpect 'all(len(r["version_id"]) == 64 for r in d["records"])'
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 1

t_case "filters"
expect_keys "a c d" --filter 'price > 1'
expect_keys "a" --filter 'city = "Oslo" and qty >= 10'
expect_keys "a c" --filter 'tags contains "red"'
expect_keys "a b c" --filter 'name ~ "^[a-c]"'
expect_keys "e" --filter 'not exists(price)'
expect_keys "a b e" --filter 'price != 4'
expect_keys "b" --filter 'dim.w > 2'
expect_keys "e" --filter 'tags.0 = "veg"'
expect_keys "b d" --filter '(city = "Rome" or city = "Paris") and not qty < 10'
expect_keys "a b c e" --filter 'qty < 100 or price = 1.5'
expect_keys "a b" --filter 'exists(dim) AND NOT dim.h = 9'
expect_keys "" --filter 'price > "3"'
expect_keys "d" --filter '`city` = "Rome"'

t_case "sorts: missing values last, ties by key, several keys"
expect_keys "b a c d e" --sort price
expect_keys "b a c d e" --sort price:asc
expect_keys "c d a b e" --sort price:desc
expect_keys "c a b e d" --sort city --sort price:desc
expect_keys "a c b e d" --sort city --sort name
expect_keys "b a e c d" --sort qty:DESC
expect_keys "b a c e" --sort price --filter 'qty > 1'

t_case "limit, offset and total"
Q --sort price --limit 2 --offset 1
expect_eq "$(keys_of)" "a c"
pyexpect 'd["total"] == 5'
K query shop --sort price --limit 2 --offset 1
expect_eq "$(printf '%s\n' "$OUT" | tail -1)" 'total: 5 (2 shown)'
expect_eq "$(printf '%s\n' "$OUT" | head -1 | cut -c1-3)" 'a  '
Q --limit 0
pyexpect 'd["records"] == [] and d["total"] == 5'
Q -n 2
expect_eq "$(keys_of)" "a b"
Q --offset 4
expect_eq "$(keys_of)" "e"
Q --offset 9
pyexpect 'd["records"] == [] and d["total"] == 5'
Q --filter 'price > 1' --limit=1 --offset=1
expect_eq "$(keys_of)" "c"
pyexpect 'd["total"] == 3'
K query shop --limit 0
expect_out 'total: 5 (0 shown)'

t_case "select: nested fields keep their nesting, missing ones are left out"
Q --select name,dim.w --filter 'city = "Oslo"'
pyexpect '[r["value"] for r in d["records"]] == [{"dim":{"w":1},"name":"apple"},{"name":"cherry"}]'
Q --select name --select 'tags.1' --limit 1
pyexpect 'd["records"][0]["value"] == {"name":"apple","tags":["red"]}'
Q --select ' name , city '
pyexpect 'd["records"][4]["value"] == {"city":"Paris","name":"eggplant"}'
K query shop --select name --filter 'price = 0.5'
expect_out $'b  {"name":"banana"}\ntotal: 1'

t_case "aggregations over the whole filtered set"
Q --count --sum qty --avg price --min price --max qty --distinct city
pyexpect 'd["aggregation"] == {"count":5,"sum(qty)":52,"avg(price)":2.5,"min(price)":0.5,"max(qty)":30,"distinct(city)":["Oslo","Paris","Rome"]}'
pyexpect 'len(d["records"]) == 5'
Q --filter 'price >= 1' --limit 1 --sum price --count
pyexpect 'd["aggregation"] == {"count":3,"sum(price)":9.5} and len(d["records"]) == 1 and d["total"] == 3'
Q --limit 0 --max price --min name
pyexpect 'd["aggregation"] == {"max(price)":4,"min(name)":"apple"} and d["records"] == []'
K query shop --limit 0 --count --sum qty --distinct city
expect_out $'total: 5 (0 shown)\ncount: 5\ndistinct(city): ["Oslo","Paris","Rome"]\nsum(qty): 52'
Q --filter 'price > 100' --count --sum price
pyexpect 'd["total"] == 0 and d["aggregation"]["count"] == 0'

t_case "group by"
Q --group-by city --count --sum qty --limit 0
pyexpect 'd["aggregation"] == {"groups":[{"key":"Oslo","count":2,"sum(qty)":15},{"key":"Paris","count":2,"sum(qty)":37},{"key":"Rome","count":1,"sum(qty)":0}]}'
Q --group-by city --limit 0
pyexpect '[(g["key"], g["count"]) for g in d["aggregation"]["groups"]] == [("Oslo",2),("Paris",2),("Rome",1)]'
Q --group-by dim.w --count --limit 0 --filter 'exists(dim)'
pyexpect '[(g["key"], g["count"]) for g in d["aggregation"]["groups"]] == [(1,1),(3,1)]'
K query shop --group-by city --count --sum qty --limit 0
expect_out $'total: 5 (0 shown)\ngroups: 3\n  city     count  sum(qty)\n  "Oslo"   2      15\n  "Paris"  2      37\n  "Rome"   1      0'

t_case "--at across updates and deletes"
K --json set shop/a '{"name":"apple","price":2,"qty":10,"city":"Oslo"}'; t2=$(field timestamp)
K --json delete shop/b; t3=$(field timestamp); id3=$(field version_id)
K --json set shop/f '{"name":"fig","price":3,"city":"Rome"}'; t4=$(field timestamp)
expect_keys "a c d e f"
Q --at "$t1"
expect_eq "$(keys_of)" "a b c d e"
pyexpect 'd["records"][0]["value"]["price"] == 1.5 and d["records"][0]["timestamp"] == "'"$t1"'"'
Q --at "$t2"
expect_eq "$(keys_of)" "a b c d e"
pyexpect 'd["records"][0]["value"]["price"] == 2 and d["records"][0]["timestamp"] == "'"$t2"'"'
Q --at "$t3" --sum price --count
expect_eq "$(keys_of)" "a c d e"
pyexpect 'd["aggregation"] == {"count":4,"sum(price)":10}'
Q --at "${id3:0:12}"
expect_eq "$(keys_of)" "a c d e"
Q --at "$t4" --filter 'city = "Rome"'
expect_eq "$(keys_of)" "d f"
Q --at "$t1" --filter 'price > 1' --sort price:desc
expect_eq "$(keys_of)" "c d a"
Q --at 2000-01-01T00:00:00Z --count
pyexpect 'd["total"] == 0 and d["records"] == [] and d["aggregation"] == {"count":0}'
Q --at 1h
pyexpect 'd["total"] == 0'
Q --at now
expect_eq "$(keys_of)" "a c d e f"

t_case "empty and system namespaces"
K --json query nothing-here --count
pyexpect 'd == {"namespace":"nothing-here","total":0,"records":[],"aggregation":{"count":0}}'
K query nothing-here
expect_out 'total: 0'

t_case "bad input: exit codes, messages, and nothing written"
seq0=$(stat_seq)
expect_error 1 invalid "invalid --filter 'price >'.*column" -- query shop --filter 'price >'
expect_error 1 invalid "invalid --filter 'price  4'.*column 8" -- query shop --filter 'price  4'
expect_error 1 invalid "invalid --filter 'name ~ \"\\(\"'" -- query shop --filter 'name ~ "("'
expect_error 1 invalid "invalid --filter" -- query shop --filter '(a = 1'
expect_error 1 invalid "invalid --sort 'a\.\.b'" -- query shop --sort 'a..b'
expect_error 1 invalid "invalid --sum" -- query shop --sum 'x y'
expect_error 1 invalid "invalid --select" -- query shop --select 'a.'
expect_error 1 invalid "" -- query 'bad ns' --count
expect_error 1 invalid "--at 'soon'" -- query shop --at soon
expect_error 3 not_found "" -- query shop --at deadbeef00
expect_error 2 usage "invalid --sort 'price:up': unknown order 'up'" -- query shop --sort price:up
expect_error 2 usage "invalid --sort ':desc': no field" -- query shop --sort :desc
expect_error 2 usage "invalid --select 'a,,b': empty field" -- query shop --select a,,b
expect_error 2 usage "invalid --limit 'x' \(want a number, 0 = no records" -- query shop --limit x
expect_error 2 usage "invalid --limit '-1'" -- query shop --limit -1
expect_error 2 usage "invalid --limit '1.5'" -- query shop --limit 1.5
expect_error 2 usage "invalid --offset 'x'" -- query shop --offset x
expect_error 2 usage "invalid --limit 'x' \(want a number, 0 = all\)" -- log shop/a --limit x
expect_error 2 usage "missing argument for 'query'" -- query
expect_error 2 usage "unexpected argument 'x'" -- query shop x
expect_error 2 usage "--filter given twice" -- query shop --filter 'a = 1' --filter 'b = 2'
expect_error 2 usage "--group-by given twice" -- query shop --group-by a --group-by b
expect_error 2 usage "option '--auto-refresh' does not apply to 'query'" -- query shop --auto-refresh
expect_error 2 usage "option '--filter' does not apply to 'get'" -- get shop/a --filter 'a = 1'
expect_error 2 usage "option '--sum' needs a value" -- query shop --sum
expect_error 2 usage "option '--count' takes no value" -- query shop --count=x
expect_eq "$(stat_seq)" "$seq0"

t_case "help"
K query --help
expect_rc 0
expect_out_has '^Usage: kdelta query NS'
expect_out_has '--group-by F'
expect_out_has 'missing values'
K view --help
expect_rc 0
expect_out_has 'view create NAME NS'
expect_out_has '--auto-refresh'
K help view
expect_out_has 'view refresh NAME'
K --help
expect_out_has '^  query NS'
expect_out_has '^  view SUBCOMMAND'

t_case "views: create auto-refresh and manual"
K view create cheap shop --filter 'price < 3' --sort price --auto-refresh --description 'cheap stuff'
expect_rc 0
expect_out 'Created view cheap on shop (auto refresh): 1 record'
K --json view create oslo shop --filter 'city = "Oslo"'
expect_rc 0
pyexpect 'd == {"name":"oslo","source":"shop","auto_refresh":False,"records":2,"created":True}'
K --json view create stats shop --count --sum qty --group-by city --limit 0
expect_rc 0
K view create all-keys shop --select name --sort name:desc --limit 3
expect_rc 0

t_case "views: list and show"
K view list
expect_rc 0
expect_eq "$(printf '%s\n' "$OUT" | head -1)" '  NAME      SOURCE  REFRESH  RECORDS  DESCRIPTION'
expect_out_has '^  cheap     shop    auto     1        cheap stuff$'
expect_out_has '^  oslo      shop    manual   2$'
expect_out_has '^  all-keys  shop    manual   5$'
expect_eq "$(printf '%s\n' "$OUT" | wc -l)" 5
K --json view list
expect_rc 0
pyexpect '[v["name"] for v in d["views"]] == ["all-keys","cheap","oslo","stats"]'
pyexpect 'all({"name","source","auto_refresh","records","description"} <= set(v) for v in d["views"])'
pyexpect 'd["views"][1]["auto_refresh"] is True and d["views"][1]["description"] == "cheap stuff" and d["views"][1]["records"] == 1'
pyexpect 'd["views"][2]["auto_refresh"] is False and d["views"][2]["description"] == "" and d["views"][2]["filter"] == "city = \"Oslo\""'
K --json view show cheap
pyexpect 'd["name"] == "cheap" and d["source"] == "shop" and d["filter"] == "price < 3" and isinstance(d["query"], dict)'
K view show cheap
expect_out_has '^refresh: +auto'
expect_out_has '^filter: +price < 3$'
expect_out_has '^description: cheap stuff$'
expect_out_has '^as of: +[0-9-]+T[0-9:.]+Z$'

t_case "views: query, narrowed, resorted, paged"
K --json view query cheap
expect_eq "$(keys_of)" "a"
pyexpect 'd["namespace"] == "shop" and d["total"] == 1'
K --json view query oslo --sort name:desc
expect_eq "$(keys_of)" "c a"
K --json view query oslo --filter 'price > 3'
expect_eq "$(keys_of)" "c"
K --json view query all-keys
expect_eq "$(keys_of)" "f e d"
pyexpect 'd["total"] == 5 and d["records"][0]["value"] == {"name":"fig"}'
K --json view query all-keys --limit 1 --offset 1
expect_eq "$(keys_of)" "e"
K --json view query stats
pyexpect 'd["records"] == [] and [(g["key"], g["count"], g["sum(qty)"]) for g in d["aggregation"]["groups"]] == [("Oslo",2,15),("Paris",1,7),("Rome",2,0)]'
K view query stats
expect_out $'total: 5 (0 shown)\ngroups: 3\n  city     count  sum(qty)\n  "Oslo"   2      15\n  "Paris"  1      7\n  "Rome"   2      0'
K view query oslo --limit 1
expect_out $'a  {"city":"Oslo","name":"apple","price":2,"qty":10}\ntotal: 2 (1 shown)'

t_case "views: auto-refresh follows puts, deletes and batches; manual ones wait for refresh"
K set shop/g '{"name":"grape","price":1,"city":"Oslo"}'
K --json view query cheap
expect_eq "$(keys_of)" "g a"
K --json view query oslo
expect_eq "$(keys_of)" "a c"
K --json view query stats
pyexpect 'd["aggregation"]["groups"][0] == {"key":"Oslo","count":2,"sum(qty)":15}'
K delete shop/a
K --json view query cheap
expect_eq "$(keys_of)" "g"
printf '%s\n' '{"op":"put","namespace":"shop","key":"h","value":{"name":"hazel","price":0.25}}' \
    '{"op":"delete","namespace":"shop","key":"g"}' \
    '{"op":"put","namespace":"shop","key":"c","value":{"name":"cherry","price":2.5,"city":"Oslo"}}' > b2.ndjson
K batch b2.ndjson
expect_rc 0
K --json view query cheap
expect_eq "$(keys_of)" "h c"
K --json view list
pyexpect '[v["records"] for v in d["views"]] == [5, 2, 2, 5]'
K view refresh oslo
expect_rc 0
expect_out_has '^Refreshed view oslo: 1 record as of '
K --json view query oslo
expect_eq "$(keys_of)" "c"
pyexpect 'd["records"][0]["value"]["price"] == 2.5'
K --json view refresh stats
pyexpect 'sorted(d) == ["as_of","name","records","refreshed"] and d["name"] == "stats" and d["refreshed"] is True and d["records"] == 5'
as_of=$(field as_of)
K --json view show stats
pyexpect 'd["refreshed"] == "'"$as_of"'"'
K --json view query stats
pyexpect '[(g["key"], g["count"]) for g in d["aggregation"]["groups"]] == [(None,1),("Oslo",1),("Paris",1),("Rome",2)]'
K --json view refresh cheap
expect_rc 0
K --json view query cheap
expect_eq "$(keys_of)" "h c"

t_case "views: bad input and nothing written"
seq0=$(stat_seq)
expect_error 4 conflict "view 'cheap' already exists" -- view create cheap shop --filter 'price > 0'
expect_error 1 invalid "reserved" -- view create sys _x
expect_error 1 invalid "invalid view name '_v'" -- view create _v shop
expect_error 1 invalid "invalid view name 'a b'" -- view create 'a b' shop
expect_error 1 invalid "invalid --filter 'price >'.*column" -- view create v2 shop --filter 'price >'
expect_error 1 invalid "invalid --filter" -- view create v2 shop --filter 'name ~ "[z"'
expect_error 2 usage "missing argument for 'view create'" -- view create v2
expect_error 2 usage "missing argument for 'view'" -- view
expect_error 2 usage "unknown view subcommand 'frob'" -- view frob
expect_error 2 usage "unexpected argument 'x' for 'view list'" -- view list x
expect_error 2 usage "option '--filter' does not apply to 'view list'" -- view list --filter 'a = 1'
expect_error 2 usage "option '--auto-refresh' does not apply to 'view query'" -- view query cheap --auto-refresh
expect_error 2 usage "option '--at' does not apply to 'view'" -- view create v2 shop --at 5m
expect_error 2 usage "invalid --limit 'z'" -- view create v2 shop --limit z
expect_error 3 not_found "view 'nope' not found" -- view query nope
expect_error 3 not_found "view 'nope' not found" -- view show nope
expect_error 3 not_found "view 'nope' not found" -- view refresh nope
expect_error 3 not_found "view 'nope' not found" -- view delete nope
expect_error 1 invalid "invalid --filter" -- view query cheap --filter 'x ='
expect_eq "$(stat_seq)" "$seq0"
K --json view list
pyexpect '[v["name"] for v in d["views"]] == ["all-keys","cheap","oslo","stats"]'

t_case "views: delete; the name can be reused; the definition keeps its history"
K view delete oslo
expect_rc 0
expect_out 'Deleted view oslo'
K --json view delete all-keys
pyexpect 'd == {"name":"all-keys","deleted":True}'
K --json view list
pyexpect '[v["name"] for v in d["views"]] == ["cheap","stats"]'
K view query oslo
expect_rc 3
K view create oslo shop --filter 'city = "Rome"' --auto-refresh
expect_rc 0
K --json view query oslo
expect_eq "$(keys_of)" "d f"
K --json log _views/oslo
pyexpect '[v["deleted"] for v in d["versions"]][:2] == [False, True] and d["versions"][0]["value"]["source"] == "shop"'
K view delete cheap; K view delete stats; K view delete oslo
K view list
expect_out 'No views.'
K --json view list
pyexpect 'd == {"views":[]}'

t_end
