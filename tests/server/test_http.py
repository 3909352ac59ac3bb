# test_http.py — black-box tests of every route of `kdelta serve` against docs/http.md:
# success and error cases with exact status codes and the error shape
# {"error":{"code","message"}}, records and time travel, conditional writes, history,
# diff, batch, query, keys, namespaces, status, check, views, the change feed (SSE and
# long-poll), /healthz, /metrics, the access log and an orderly stop.
#
# Drives the real binary ($KDELTA, default build/kdelta) over 127.0.0.1 with --port 0.
# Ends with "N passed, N failed"; exits non-zero when anything failed. Every server it
# starts is stopped (try/finally; stragglers are killed at exit).
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httplib import (KDELTA, SSE, Client, Resp, Server, Tests, metric,  # noqa: E402
                     micros_ts, parse_metrics, q, raw_request, raw_status, tempdir, ts_micros,
                     unix_form)
from httplib import _response_complete  # noqa: E402

T = Tests("test_http")
API = "/api/v1"


def rec(ns, key):
    return "%s/%s/%s" % (API, q(ns), q(key))


def allow_set(r):
    return {m.strip().upper() for m in (r.header("Allow") or "").split(",") if m.strip()}


# ---- sections -----------------------------------------------------------------------------

def t_startup(srv):
    want = "kdelta: serving %s at http://127.0.0.1:%d" % (srv.db, srv.port)
    T.eq(srv.first_line, want, "first stderr line")
    try:
        with open(os.path.join(srv.db, "serve.addr")) as f:
            addr = f.read()
    except OSError as e:
        addr = repr(e)
    T.eq(addr.rstrip("\n"), "http://127.0.0.1:%d" % srv.port, "serve.addr holds the URL")
    T.ok(addr.count("\n") <= 1, "serve.addr is one line", repr(addr))


def t_records(c):
    r = c.put(rec("rec", "alice"), {"age": 30})
    T.status(r, 200, "PUT new key")
    v1 = r.json or {}
    T.version_doc(v1, "PUT answer", ns="rec", key="alice", value=False)
    T.eq(v1.get("previous_version"), None, "first version has previous_version null")
    T.eq(r.header("ETag"), '"%s"' % v1.get("version_id"), "PUT ETag")
    T.ok(r.header("Content-Type", "").startswith("application/json"), "PUT Content-Type",
         r.header("Content-Type"))

    r = c.get(rec("rec", "alice"))
    T.status(r, 200, "GET")
    g = r.json or {}
    T.version_doc(g, "GET answer", ns="rec", key="alice", value=True)
    T.eq(g.get("value"), {"age": 30}, "GET value")
    for k in ("seq", "version_id", "value_hash", "timestamp", "previous_version"):
        T.eq(g.get(k), v1.get(k), "GET %s equals the PUT answer's" % k)
    T.eq(r.header("ETag"), '"%s"' % v1.get("version_id"), "GET ETag")

    r = c.put(rec("rec", "alice"), {"age": 31})
    T.status(r, 200, "PUT second version")
    v2 = r.json or {}
    T.eq(v2.get("previous_version"), v1.get("version_id"), "previous_version links v1")
    T.ok(v2.get("seq", 0) > v1.get("seq", 0), "seq grows", (v1.get("seq"), v2.get("seq")))
    T.ok(v2.get("timestamp", "") > v1.get("timestamp", ""), "timestamp grows")

    # Canonical values: same content, same hash.
    r1 = c.put(rec("rec", "canon1"), {"b": 1, "a": 2.0})
    r2 = c.put(rec("rec", "canon2"), {"a": 2, "b": 1})
    T.eq((r1.json or {}).get("value_hash"), (r2.json or {}).get("value_hash"),
         "equal content gives equal value_hash")
    r = c.get(rec("rec", "canon1"))
    T.ok(b'"value":{"a":2,"b":1}' in r.raw, "value is canonical JSON in the answer", r.raw)
    for val in (None, 0, -5, "text", [1, [2]], True, {"nested": {"x": [None]}}):
        r = c.put(rec("rec", "any"), val)
        T.status(r, 200, "PUT value %r" % (val,))
        r = c.get(rec("rec", "any"))
        T.eq((r.json or {}).get("value", "MISSING"), val, "GET value %r" % (val,))

    r = c.get(rec("rec", "nobody"))
    T.error(r, 404, "not_found", "GET missing key", extra=("version",))
    T.ok(r.json is None or r.json["error"].get("version") is None,
         "a key that never existed carries no tombstone", r)
    return v1, v2


def t_conditional_get(c, v2):
    tag = '"%s"' % v2["version_id"]
    r = c.get(rec("rec", "alice"), headers={"If-None-Match": tag})
    T.status(r, 304, "If-None-Match current version")
    T.eq(r.raw, b"", "304 has no body")
    r = c.get(rec("rec", "alice"), headers={"If-None-Match": '"%s"' % ("0" * 64)})
    T.status(r, 200, "If-None-Match other version")


def t_time_travel(c, v1, v2):
    base = rec("rec", "alice")
    cases = [
        ("RFC 3339 %3A-encoded", q(v1["timestamp"]), 30),
        ("RFC 3339 of v2", q(v2["timestamp"]), 31),
        ("RFC 3339 +01:00 %2B-encoded",
         q(micros_ts(ts_micros(v1["timestamp"]) + 3600 * 1000000)[:-1] + "+01:00"), 30),
        ("@unix", q(unix_form(v1["timestamp"])), 30),
        ("version-id prefix", v1["version_id"][:8], 30),
        ("full version id", v1["version_id"], 30),
        ("now", "now", 31),
    ]
    for name, t, age in cases:
        r = c.get(base + "?at=" + t)
        if T.status(r, 200, "?at= %s" % name):
            T.eq((r.json or {}).get("value"), {"age": age}, "?at= %s value" % name)
            T.version_doc(r.json, "?at= %s document" % name, ns="rec", key="alice", value=True)
        r = c.get(base + "/_at/" + t)
        if T.status(r, 200, "/_at/ %s" % name):
            T.eq((r.json or {}).get("value"), {"age": age}, "/_at/ %s value" % name)
    before = q(micros_ts(ts_micros(v1["timestamp"]) - 1))
    T.error(c.get(base + "?at=" + before), 404, "not_found", "?at= 1 us before v1",
            extra=("version",))
    T.error(c.get(base + "/_at/" + before), 404, "not_found", "/_at/ 1 us before v1",
            extra=("version",))
    T.error(c.get(base + "?at=2h"), 404, "not_found", "?at=2h (age before the key)",
            extra=("version",))
    T.error(c.get(base + "?at=not-a-time"), 400, "invalid", "?at=garbage")
    T.error(c.get(base + "/_at/not-a-time"), 400, "invalid", "/_at/garbage")
    T.error(c.get(base + "?at=deadbeef99"), 404, "not_found", "?at=unknown version id")
    r = c.get(base + "?at=" + q(unix_form(v2["timestamp"])))
    T.eq((r.json or {}).get("version_id"), v2["version_id"], "?at=@unix of v2 gives v2")
    r = c.req("PUT", base + "/_at/now", body={"value": 1})
    T.error(r, 405, "method_not_allowed", "PUT on /_at/T")
    T.ok(allow_set(r) & {"GET"} and not allow_set(r) & {"PUT", "DELETE", "POST"},
         "Allow of /_at/T is GET", r.header("Allow"))


def t_conditional_put(c):
    k = rec("cond", "k")
    v = (c.put(k, 1).json or {})["version_id"]
    # full id, quoted
    r = c.put(k, 2, headers={"If-Match": '"%s"' % v})
    T.status(r, 200, "If-Match full quoted")
    T.eq((r.json or {}).get("previous_version"), v, "If-Match full quoted wrote after v")
    v = (r.json or {}).get("version_id", v)
    # full id, unquoted
    r = c.put(k, 3, headers={"If-Match": v})
    T.status(r, 200, "If-Match full unquoted")
    v = (r.json or {}).get("version_id", v)
    # 8-digit prefix, quoted and unquoted
    r = c.put(k, 4, headers={"If-Match": '"%s"' % v[:8]})
    T.status(r, 200, "If-Match 8-digit prefix quoted")
    v = (r.json or {}).get("version_id", v)
    r = c.put(k, 5, headers={"If-Match": v[:8]})
    T.status(r, 200, "If-Match 8-digit prefix unquoted")
    stale = v
    v = (r.json or {}).get("version_id", v)
    r = c.put(k, 6, headers={"If-Match": '"%s"' % stale})
    T.error(r, 412, "conflict", "If-Match stale version", extra=("current",))
    cur = (r.json or {}).get("error", {}).get("current")
    T.ok(isinstance(cur, dict) and cur.get("version_id") == v,
         "412 error.current is the current version", cur)
    if isinstance(cur, dict):
        T.ok(VERSION_OK(cur), "error.current is a version document", cur)
    r = c.get(k)
    T.eq(((r.json or {}).get("value"), (r.json or {}).get("version_id")), (5, v),
         "a failed If-Match wrote nothing")
    r = c.put(k, 7, headers={"If-None-Match": "*"})
    T.error(r, 412, "conflict", "If-None-Match: * on a live key", extra=("current",))
    cur = (r.json or {}).get("error", {}).get("current")
    T.ok(isinstance(cur, dict) and cur.get("version_id") == v,
         "If-None-Match 412 error.current is the current version", cur)
    r = c.put(rec("cond", "new"), 1, headers={"If-None-Match": "*"})
    T.status(r, 200, "If-None-Match: * on a new key")
    r = c.put(rec("cond", "absent"), 1, headers={"If-Match": '"%s"' % v})
    T.error(r, 412, "conflict", "If-Match on a key with no version", extra=("current",))
    T.ok(r.json is not None and "current" in r.json["error"]
         and r.json["error"]["current"] is None, "error.current is null without a version", r)
    T.status(c.delete(k), 200, "DELETE before the deleted-key conditions")
    r = c.put(k, 8, headers={"If-Match": '"%s"' % v})
    T.error(r, 412, "conflict", "If-Match on a deleted key", extra=("current",))
    T.ok(r.json is not None and r.json["error"].get("current", "x") is None,
         "deleted key: error.current is null", r)
    r = c.put(k, 9, headers={"If-None-Match": "*"})
    T.status(r, 200, "If-None-Match: * on a deleted key (absent)")
    r = c.put(k, 10, headers={"If-Match": '"zz"'})
    T.ok(r.status in (400, 412), "If-Match with a non-hex id is refused (400 or 412)", r)


def VERSION_OK(d):
    return (isinstance(d, dict) and {"namespace", "key", "seq", "version_id", "timestamp",
                                     "deleted"} <= set(d))


def t_deletes(c):
    k = rec("del", "k")
    a = c.put(k, {"n": 1}).json or {}
    r = c.delete(k)
    T.status(r, 200, "DELETE live key")
    tomb = r.json or {}
    T.version_doc(tomb, "DELETE answer", ns="del", key="k", deleted=True)
    T.eq(tomb.get("previous_version"), a.get("version_id"), "tombstone links the last value")
    r = c.get(k)
    T.error(r, 404, "not_found", "GET deleted key", extra=("version",))
    ver = (r.json or {}).get("error", {}).get("version")
    T.ok(isinstance(ver, dict) and ver.get("version_id") == tomb.get("version_id")
         and ver.get("deleted") is True, "404 error.version is the tombstone", ver)
    if isinstance(ver, dict):
        T.eq(ver.get("value_hash", "MISSING"), None, "error.version value_hash null")
    r = c.get(k + "?at=" + q(a.get("timestamp", "")))
    T.eq((r.json or {}).get("value"), {"n": 1}, "GET ?at= before the delete still answers")
    r = c.get(k + "?at=" + q(tomb.get("timestamp", "")))
    T.error(r, 404, "not_found", "GET ?at= the tombstone's time", extra=("version",))
    T.error(c.delete(k), 404, "not_found", "DELETE a deleted key", extra=("version",))
    T.error(c.delete(rec("del", "never")), 404, "not_found", "DELETE a missing key",
            extra=("version",))
    r = c.put(k, {"n": 2})
    T.status(r, 200, "PUT after delete")
    T.eq((r.json or {}).get("previous_version"), tomb.get("version_id"),
         "new version links the tombstone")


def t_names(c):
    r = c.put(API + "/users/history", {"h": 1})
    T.status(r, 200, "PUT users/history (looks like a route)")
    T.eq((r.json or {}).get("key"), "history", "key history")
    r = c.get(API + "/users/history")
    T.eq((r.json or {}).get("value"), {"h": 1}, "GET users/history is the record")
    r = c.put(API + "/views/x", 1)
    T.status(r, 200, "PUT views/x (namespace named views)")
    T.eq((r.json or {}).get("namespace"), "views", "namespace views")
    T.eq((c.get(API + "/views/x").json or {}).get("value"), 1, "GET views/x")
    r = c.get(API + "/views/_keys")
    T.eq((r.json or {}).get("keys"), ["x"], "views/_keys lists the record")
    r = c.put(API + "/status/changes", 2)
    T.status(r, 200, "PUT status/changes")

    r = c.put(API + "/files/a%2Fb", "slash")
    T.status(r, 200, "PUT files/a%2Fb")
    T.eq((r.json or {}).get("key"), "a/b", "a%2Fb is the key a/b")
    r = c.get(API + "/files/a%2Fb")
    T.eq(((r.json or {}).get("key"), (r.json or {}).get("value")), ("a/b", "slash"),
         "GET files/a%2Fb")
    T.eq((c.get(API + "/files/_keys").json or {}).get("keys"), ["a/b"], "files/_keys")
    T.status(c.get(API + "/files/a%2Fb/_history"), 200, "history of a/b")
    T.error(c.get(API + "/files/a/b"), 404, "not_found", "GET files/a/b (three segments)")

    keys = ["café", "cafe\u0301", "😀 smile", "a b%c", "日本"]
    for k in keys:
        r = c.put(rec("uni", k), {"k": k})
        T.status(r, 200, "PUT unicode key %r" % k)
        T.eq((r.json or {}).get("key"), k, "PUT answer key %r" % k)
        r = c.get(rec("uni", k))
        T.eq(((r.json or {}).get("key"), (r.json or {}).get("value")), (k, {"k": k}),
             "GET unicode key %r" % k)
    r = c.get(API + "/uni/_keys")
    T.eq((r.json or {}).get("keys"), sorted(keys, key=lambda s: s.encode()),
         "unicode keys in byte order (NFC and NFD are two keys)")

    # Names starting with '_' are the system's: never a record write.
    for path in (API + "/users/_secret", API + "/_sys/k", API + "/_views2/k"):
        r = c.put(path, 1)
        T.ok(r.status in (400, 404), "PUT %s refused with 400 or 404" % path, r)
        T.error(r, r.status, "invalid" if r.status == 400 else "not_found", "PUT %s" % path)
    T.error(c.get(API + "/users/_secret"), 404, "not_found", "GET users/_secret (no route)")
    # Bad names.
    T.error(c.put(API + "/bad%20ns/k", 1), 400, "invalid", "PUT namespace with a space")
    T.error(c.put(API + "/" + q("é") + "/k", 1), 400, "invalid", "PUT namespace é")
    T.error(c.put(API + "/" + "n" * 129 + "/k", 1), 400, "invalid", "PUT namespace of 129")
    T.status(c.put(API + "/" + "n" * 128 + "/k", 1), 200, "PUT namespace of 128")
    T.error(c.put(API + "/long/" + "k" * 1025, 1), 400, "invalid", "PUT key of 1025 bytes")
    T.status(c.put(API + "/long/" + "k" * 1024, 1), 200, "PUT key of 1024 bytes")
    T.error(c.put(API + "/bad/a%00b", 1), 400, "invalid", "PUT key with NUL")
    T.error(c.put(API + "/bad/a%FFb", 1), 400, "invalid", "PUT key with invalid UTF-8")
    T.error(c.get(API + "/bad%20ns/k"), 400, "invalid", "GET namespace with a space")


def t_bodies(c):
    k = rec("body", "k")
    r = c.req("PUT", k, body='{"value": [1, 2')
    T.error(r, 400, "invalid", "PUT truncated JSON", msg_re=r"byte \d+")
    r = c.req("PUT", k, body='{"value": 1} x')
    T.error(r, 400, "invalid", "PUT JSON with trailing garbage", msg_re=r"byte \d+")
    r = c.req("PUT", k, body='{"value": tru}')
    T.error(r, 400, "invalid", "PUT bad literal", msg_re=r"byte \d+")
    T.error(c.req("PUT", k, body="{}"), 400, "invalid", "PUT body without value")
    T.error(c.req("PUT", k, body='{"val": 1}'), 400, "invalid", "PUT body with a typo")
    T.error(c.req("PUT", k, body="[1]"), 400, "invalid", "PUT body not an object")
    T.error(c.req("PUT", k, body=""), 400, "invalid", "PUT empty body")
    T.error(c.req("PUT", k), 400, "invalid", "PUT no body")
    T.error(c.req("PUT", k, body='{"value":{"a":1,"a":2}}'), 400, "invalid",
            "PUT duplicate member")
    T.error(c.req("PUT", k, body=b'{"value":"\xff\xfe"}'), 400, "invalid",
            "PUT invalid UTF-8 in the value")
    T.error(c.req("PUT", k, body='{"value":1}', ctype="text/plain"), 415,
            "unsupported_media_type", "PUT text/plain")
    T.error(c.req("PUT", k, body='{"value":1}', ctype="application/x-www-form-urlencoded"),
            415, "unsupported_media_type", "PUT form-urlencoded")
    T.error(c.req("POST", API + "/_batch", body='{"ops":[]}', ctype="text/plain"), 415,
            "unsupported_media_type", "POST _batch text/plain")
    T.error(c.req("POST", API + "/body/_query", body="{}", ctype="text/plain"), 415,
            "unsupported_media_type", "POST _query text/plain")
    T.status(c.req("PUT", k, body='{"value":1}', ctype=None), 200, "PUT without Content-Type")
    T.status(c.req("PUT", k, body='{"value":2}', ctype="application/json; charset=utf-8"),
             200, "PUT application/json; charset=utf-8")
    T.eq((c.get(k).json or {}).get("value"), 2, "nothing written by the refused bodies")
    r = c.get(k + "/_history")
    T.eq((r.json or {}).get("total"), 2, "two versions only")
    # A chunked request body works like a sized one.
    r = raw_request(c.port, ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                             "5\r\n{\"val\r\n6\r\nue\":3}\r\n0\r\n\r\n" % k).encode())
    T.eq(raw_status(r), 200, "PUT with a chunked body")
    T.eq((c.get(k).json or {}).get("value"), 3, "chunked body stored")


def t_routes(c):
    for path in ("/nope", "/", "/api/v1", "/api/v1/", "/api/v2/users/alice",
                 API + "/users/alice/_nope", API + "/_nope", API + "/users/alice/x/y",
                 API + "/_views/x/y/z", "/healthz/x"):
        T.error(c.get(path), 404, "not_found", "GET %s" % path)
    cases = [
        ("POST", API + "/users/alice", {"GET", "PUT", "DELETE"}),
        ("PATCH", API + "/users/alice", {"GET", "PUT", "DELETE"}),
        ("DELETE", API + "/_namespaces", {"GET"}),
        ("GET", API + "/_batch", {"POST"}),
        ("PUT", "/healthz", {"GET"}),
        ("POST", "/metrics", {"GET"}),
        ("PUT", API + "/users/alice/_history", {"GET"}),
        ("POST", API + "/users/alice/_diff", {"GET"}),
        ("GET", API + "/users/_query", {"POST"}),
        ("POST", API + "/users/_keys", {"GET"}),
        ("DELETE", API + "/_views", {"GET", "POST"}),
        ("PUT", API + "/_views/v", {"GET", "DELETE"}),
        ("GET", API + "/_views/v/_refresh", {"POST"}),
        ("GET", API + "/_views/v/_query", {"POST"}),
        ("POST", API + "/_changes", {"GET"}),
        ("POST", API + "/_status", {"GET"}),
        ("DELETE", API + "/_check", {"GET"}),
    ]
    for method, path, want in cases:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        r = c.req(method, path, body=body)
        T.error(r, 405, "method_not_allowed", "%s %s" % (method, path))
        got = allow_set(r)
        T.ok(want <= got and got <= want | {"HEAD", "OPTIONS"},
             "%s %s: Allow lists %s" % (method, path, sorted(want)), r.header("Allow"))


def t_history(c):
    k = rec("hist", "k")
    vs = [c.put(k, {"n": i}).json for i in range(3)]
    tomb = c.delete(k).json
    ids = [v["version_id"] for v in vs] + [tomb["version_id"]]
    r = c.get(k + "/_history")
    T.status(r, 200, "GET _history")
    d = r.json or {}
    T.eq(sorted(d), ["key", "namespace", "total", "versions"], "_history members")
    T.eq((d.get("namespace"), d.get("key"), d.get("total")), ("hist", "k", 4), "ns, key, total")
    got = d.get("versions") or []
    T.eq([v.get("version_id") for v in got], ids, "oldest first")
    T.eq([v.get("value", "MISSING") for v in got], [{"n": 0}, {"n": 1}, {"n": 2}, None],
         "each version with its value (tombstone null)")
    for i, v in enumerate(got):
        T.version_doc(v, "_history[%d]" % i, ns="hist", key="k", value=True,
                      deleted=(i == 3))
    r = c.get(k + "/_history?order=desc")
    T.eq([v.get("version_id") for v in (r.json or {}).get("versions", [])], ids[::-1],
         "order=desc newest first")
    r = c.get(k + "/_history?offset=1&limit=2")
    T.eq([v.get("version_id") for v in (r.json or {}).get("versions", [])], ids[1:3],
         "offset=1&limit=2")
    T.eq((r.json or {}).get("total"), 4, "total counts every version with a page")
    r = c.get(k + "/_history?order=desc&limit=1")
    T.eq([v.get("version_id") for v in (r.json or {}).get("versions", [])], ids[3:],
         "order=desc&limit=1")
    r = c.get(k + "/_history?order=desc&offset=3&limit=5")
    T.eq([v.get("version_id") for v in (r.json or {}).get("versions", [])], ids[:1],
         "order=desc page at the end")
    r = c.get(k + "/_history?offset=10")
    T.eq(((r.json or {}).get("versions"), (r.json or {}).get("total")), ([], 4),
         "offset past the end: empty page")
    T.error(c.get(rec("hist", "never") + "/_history"), 404, "not_found", "_history of a "
            "missing key")
    T.error(c.get(k + "/_history?limit=abc"), 400, "invalid", "_history limit=abc")
    T.error(c.get(k + "/_history?offset=-1"), 400, "invalid", "_history offset=-1")
    T.error(c.get(k + "/_history?order=sideways"), 400, "invalid", "_history order=sideways")


def t_diff(c):
    k = rec("diff", "k")
    v1 = c.put(k, {"a": 1, "b": {"c": [1, 2]}}).json
    v2 = c.put(k, {"a": 2, "b": {"c": [1, 3]}, "d": True}).json
    v3 = c.put(k, [1, 2]).json
    p12 = [{"op": "replace", "path": "/a", "value": 2},
           {"op": "replace", "path": "/b/c/1", "value": 3},
           {"op": "add", "path": "/d", "value": True}]
    r = c.get(k + "/_diff")
    T.status(r, 200, "_diff defaults")
    d = r.json or {}
    T.eq(sorted(d), ["from", "patch", "to"], "_diff members")
    T.eq(((d.get("from") or {}).get("version_id"), (d.get("to") or {}).get("version_id")),
         (v2["version_id"], v3["version_id"]), "defaults: second-newest to newest")
    T.version_doc(d.get("from"), "_diff from", ns="diff", key="k", value=True)
    T.version_doc(d.get("to"), "_diff to", ns="diff", key="k", value=True)
    T.eq((d.get("to") or {}).get("value"), [1, 2], "_diff to.value")
    T.eq(d.get("patch"), [{"op": "replace", "path": "", "value": [1, 2]}], "default patch")
    for name, qs in (("indexes", "from=0&to=1"), ("negative index", "from=-3&to=-2"),
                     ("prefix and full id", "from=%s&to=%s" % (v1["version_id"][:8],
                                                               v2["version_id"])),
                     ("times", "from=%s&to=%s" % (q(v1["timestamp"]), q(v2["timestamp"])))):
        r = c.get(k + "/_diff?" + qs)
        T.status(r, 200, "_diff %s" % name)
        T.eq((r.json or {}).get("patch"), p12, "_diff %s patch" % name)
        T.eq(((r.json or {}).get("from") or {}).get("value"), {"a": 1, "b": {"c": [1, 2]}},
             "_diff %s from.value" % name)
    r = c.get(k + "/_diff?from=0")
    T.eq(((r.json or {}).get("to") or {}).get("version_id"), v3["version_id"],
         "to defaults to the newest")
    r = c.get(k + "/_diff?from=1&to=1")
    T.eq((r.json or {}).get("patch"), [], "same version: empty patch")
    one = rec("diff", "one")
    c.put(one, {"x": 1})
    r = c.get(one + "/_diff")
    T.status(r, 200, "_diff single version")
    T.eq((r.json or {}).get("from", "MISSING"), None, "single version: from is null")
    T.eq((r.json or {}).get("patch"), [{"op": "add", "path": "", "value": {"x": 1}}],
         "single version: patch adds the whole value")
    tomb = c.delete(k).json
    r = c.get(k + "/_diff")
    T.eq(((r.json or {}).get("to") or {}).get("version_id"), tomb["version_id"],
         "deleted key: to is the tombstone")
    T.eq(((r.json or {}).get("to") or {}).get("deleted"), True, "to.deleted")
    T.eq((r.json or {}).get("patch"), [{"op": "remove", "path": ""}], "patch to a tombstone")
    T.error(c.get(rec("diff", "never") + "/_diff"), 404, "not_found", "_diff missing key")
    T.error(c.get(k + "/_diff?from=99"), 404, "not_found", "_diff index out of range")
    T.error(c.get(k + "/_diff?from=deadbeef99"), 404, "not_found", "_diff unknown id")
    T.error(c.get(k + "/_diff?from=xyz"), 400, "invalid", "_diff from=xyz")


def t_batch(c, srv):
    c.put(rec("bat", "old"), 1)
    ops = [{"op": "put", "namespace": "bat", "key": "a", "value": {"n": 1}},
           {"op": "put", "namespace": "bat", "key": "b/c", "value": [1]},
           {"op": "delete", "namespace": "bat", "key": "old"}]
    r = c.post(API + "/_batch", {"ops": ops})
    T.status(r, 200, "_batch of 3")
    d = r.json or {}
    T.eq(sorted(d), ["committed", "first_seq", "last_seq"], "_batch members")
    T.eq(d.get("committed"), 3, "committed")
    T.ok(isinstance(d.get("first_seq"), int) and d.get("last_seq") == d["first_seq"] + 2,
         "last_seq = first_seq + 2", d)
    a = c.get(rec("bat", "a")).json or {}
    b = c.get(rec("bat", "b/c")).json or {}
    T.eq((a.get("value"), b.get("value")), ({"n": 1}, [1]), "batch puts readable")
    T.eq(a.get("timestamp"), b.get("timestamp"), "one timestamp for the batch")
    T.eq(a.get("seq"), d.get("first_seq"), "first put has first_seq")
    T.error(c.get(rec("bat", "old")), 404, "not_found", "batch delete applied",
            extra=("version",))
    seq0 = (c.get(API + "/_status").json or {}).get("seq")
    bad = [
        ("delete of a missing key", [{"op": "put", "namespace": "bat", "key": "x", "value": 1},
                                     {"op": "delete", "namespace": "bat", "key": "nope"}],
         404, "not_found", 2),
        ("unknown op", [{"op": "put", "namespace": "bat", "key": "x", "value": 1},
                        {"op": "put", "namespace": "bat", "key": "y", "value": 1},
                        {"op": "upsert", "namespace": "bat", "key": "z", "value": 1}],
         400, "invalid", 3),
        ("missing value", [{"op": "put", "namespace": "bat", "key": "x"}], 400, "invalid", 1),
        ("bad name", [{"op": "put", "namespace": "bat", "key": "x", "value": 1},
                      {"op": "put", "namespace": "_sys", "key": "x", "value": 1}],
         400, "invalid", 2),
        ("key given twice", [{"op": "put", "namespace": "bat", "key": "x", "value": 1},
                             {"op": "put", "namespace": "bat", "key": "x", "value": 2}],
         400, "invalid", 2),
        ("op not an object", [{"op": "put", "namespace": "bat", "key": "x", "value": 1}, 7],
         400, "invalid", 2),
    ]
    bad += [
        # One op: the library numbers no item then; the server still names op 1.
        ("single bad name", [{"op": "put", "namespace": "_sys", "key": "x", "value": 1}],
         400, "invalid", 1),
        ("single missing delete", [{"op": "delete", "namespace": "bat", "key": "nope"}],
         404, "not_found", 1),
        ("bad key", [{"op": "put", "namespace": "bat", "key": "x", "value": 1},
                     {"op": "put", "namespace": "bat", "key": "y", "value": 1},
                     {"op": "delete", "namespace": "bat", "key": "_k"}], 400, "invalid", 3),
        ("empty namespace", [{"op": "put", "namespace": "", "key": "x", "value": 1}],
         400, "invalid", 1),
    ]
    for name, ops, status, code, pos in bad:
        r = c.post(API + "/_batch", {"ops": ops})
        # "op N: ...", "op N (ns/key): ..." or, for a key given twice, "ops M and N ...".
        T.error(r, status, code, "_batch %s" % name, msg_re=r"^ops? (\d+ and )?%d\b" % pos)
        T.error(c.get(rec("bat", "x")), 404, "not_found", "_batch %s wrote nothing" % name)
    T.eq((c.get(API + "/_status").json or {}).get("seq"), seq0, "failed batches kept seq")
    r = c.post(API + "/_batch", {"ops": []})
    T.status(r, 200, "empty batch")
    T.eq(r.json, {"committed": 0, "first_seq": None, "last_seq": None}, "empty batch answer")
    T.error(c.post(API + "/_batch", {}), 400, "invalid", "_batch without ops")
    T.error(c.post(API + "/_batch", {"ops": {}}), 400, "invalid", "_batch ops not an array")
    T.error(c.req("POST", API + "/_batch", body='{"ops":['), 400, "invalid",
            "_batch bad JSON", msg_re=r"byte \d+")


SHOP = {
    "a": {"name": "apple", "price": 1.5, "qty": 10, "city": "Oslo", "tags": ["fruit", "red"]},
    "b": {"name": "banana", "price": 0.5, "qty": 30, "city": "Paris", "tags": ["fruit"]},
    "c": {"name": "cherry", "price": 4, "qty": 5, "city": "Oslo", "tags": ["fruit", "red"]},
    "d": {"name": "dates", "price": 6, "qty": 7, "city": "Paris"},
    "e": {"name": "eggplant", "price": 2, "city": "Rome"},
}


def t_query(c):
    for k, v in SHOP.items():
        c.put(rec("shop", k), v)
    c.put(rec("shop", "c"), dict(SHOP["c"], price=40))
    c.put(rec("shop", "z"), {"name": "zucchini", "price": 3, "city": "Rome"})
    c.delete(rec("shop", "z"))
    qp = API + "/shop/_query"

    r = c.post(qp, {})
    T.status(r, 200, "_query {}")
    d = r.json or {}
    T.eq(sorted(d), ["aggregation", "namespace", "records", "total"], "_query members")
    T.eq((d.get("namespace"), d.get("total"), d.get("aggregation", "MISSING")),
         ("shop", 5, None), "_query {} namespace, total, aggregation")
    recs = d.get("records") or []
    T.eq([x.get("key") for x in recs], list("abcde"), "key order without sort")
    if recs:
        T.eq(sorted(recs[0]), ["key", "seq", "timestamp", "value", "version_id"],
             "record members")
        T.eq(recs[0].get("value"), SHOP["a"], "record value")

    def keys(body):
        r = c.post(qp, body)
        return [x.get("key") for x in (r.json or {}).get("records", [])], r

    got, r = keys({"filter": "price > 1.5"})
    T.eq(got, ["c", "d", "e"], "string filter")
    got, r = keys({"filter": {"field": "price", "op": ">", "value": 1.5}})
    T.eq(got, ["c", "d", "e"], "JSON filter")
    got, r = keys({"filter": {"and": [{"field": "tags", "op": "contains", "value": "red"},
                                      {"not": {"exists": "nothing"}}]}})
    T.eq(got, ["a", "c"], "JSON filter with and/not/exists")
    got, r = keys({"sort": ["price:desc"]})
    T.eq(got, ["c", "d", "e", "a", "b"], "sort price:desc")
    got, r = keys({"sort": [{"field": "qty", "order": "asc"}]})
    T.eq(got, ["c", "d", "a", "b", "e"], "sort qty asc, missing last")
    got, r = keys({"sort": ["price"], "limit": 2, "offset": 1})
    T.eq(got, ["a", "e"], "limit/offset")
    T.eq((r.json or {}).get("total"), 5, "total counts every match")
    r = c.post(qp, {"filter": "city = \"Oslo\"", "select": ["name", "missing"]})
    T.eq([x.get("value") for x in (r.json or {}).get("records", [])],
         [{"name": "apple"}, {"name": "cherry"}], "select")
    r = c.post(qp, {"aggregate": ["count", "sum(qty)", {"fn": "max", "field": "price"}],
                    "limit": 0})
    T.eq((r.json or {}).get("records"), [], "limit 0: no records")
    T.eq((r.json or {}).get("aggregation"), {"count": 5, "sum(qty)": 52, "max(price)": 40},
         "aggregate")
    r = c.post(qp, {"group_by": "city", "aggregate": [{"fn": "sum", "field": "qty"}],
                    "limit": 0})
    T.eq((r.json or {}).get("aggregation"),
         {"groups": [{"key": "Oslo", "count": 2, "sum(qty)": 15},
                     {"key": "Paris", "count": 2, "sum(qty)": 37},
                     {"key": "Rome", "count": 1, "sum(qty)": 0}]}, "group_by")
    cver = (c.get(rec("shop", "c") + "/_history").json or {}).get("versions", [{}])
    old_ts = cver[0].get("timestamp", "")
    r = c.post(qp, {"at": old_ts, "filter": "price > 3"})
    T.status(r, 200, "_query at=T")
    T.eq([(x.get("key"), x.get("value", {}).get("price"))
          for x in (r.json or {}).get("records", [])], [("c", 4)],
         "at=T sees the old price of c and not d (written later)")
    r = c.post(qp, {"at": ts_micros(old_ts), "filter": "price > 3"})
    T.eq([x.get("key") for x in (r.json or {}).get("records", [])], ["c"],
         "at as microseconds")
    r = c.post(qp, {"filter": "price >"})
    T.error(r, 400, "invalid", "bad filter", msg_re="column 8")
    T.error(c.post(qp, {"filter": {"field": "a", "op": "=>", "value": 1}}), 400, "invalid",
            "bad JSON filter op")
    T.error(c.post(qp, {"bogus": 1}), 400, "invalid", "unknown query member")
    T.error(c.post(qp, {"sort": ["price:sideways"]}), 400, "invalid", "bad sort order")
    T.error(c.post(qp, {"limit": -1}), 400, "invalid", "negative limit")
    T.error(c.post(qp, {"at": "not-a-time"}), 400, "invalid", "bad at")
    T.error(c.req("POST", qp, body="{"), 400, "invalid", "bad JSON", msg_re=r"byte \d+")
    r = c.post(API + "/emptyns/_query", {})
    T.status(r, 200, "_query of an empty namespace")
    T.eq(((r.json or {}).get("records"), (r.json or {}).get("total")), ([], 0),
         "empty namespace: no records")
    T.error(c.post(API + "/bad%20ns/_query", {}), 400, "invalid", "_query bad namespace")


def t_keys(c):
    for i in range(25):
        c.put(rec("keys", "k%02d" % i), i)
    c.delete(rec("keys", "k05"))
    live = ["k%02d" % i for i in range(25) if i != 5]
    r = c.get(API + "/keys/_keys")
    T.status(r, 200, "_keys")
    T.eq(sorted(r.json or {}), ["keys", "more", "namespace"], "_keys members")
    T.eq(((r.json or {}).get("namespace"), (r.json or {}).get("keys"), (r.json or {}).get("more")),
         ("keys", live, False), "all live keys, deleted left out")
    r = c.get(API + "/keys/_keys?limit=10")
    T.eq(((r.json or {}).get("keys"), (r.json or {}).get("more")), (live[:10], True), "limit=10")
    r = c.get(API + "/keys/_keys?limit=10&after=k10")
    T.eq(((r.json or {}).get("keys"), (r.json or {}).get("more")), (live[10:20], True),
         "after=k10")
    r = c.get(API + "/keys/_keys?limit=10&after=k20")
    T.eq(((r.json or {}).get("keys"), (r.json or {}).get("more")), (live[20:], False),
         "last page: more false")
    r = c.get(API + "/keys/_keys?limit=4&after=k20")
    T.eq(((r.json or {}).get("keys"), (r.json or {}).get("more")), (live[20:], False),
         "exact last page: more false")
    r = c.get(API + "/keys/_keys?after=k045")
    T.eq((r.json or {}).get("keys", [None])[:1], ["k06"], "after a key that does not exist")
    r = c.get(API + "/nothing/_keys")
    T.status(r, 200, "_keys of an unknown namespace")
    T.eq(((r.json or {}).get("keys"), (r.json or {}).get("more")), ([], False),
         "unknown namespace: empty")
    T.status(c.get(API + "/keys/_keys?limit=100000"), 200, "limit=100000")
    T.error(c.get(API + "/keys/_keys?limit=100001"), 400, "invalid", "limit=100001")
    # An empty page saying "more":true would keep a pager asking forever.
    T.error(c.get(API + "/keys/_keys?limit=0"), 400, "invalid", "limit=0", msg_re="from 1 to")
    T.error(c.get(API + "/keys/_keys?limit=abc"), 400, "invalid", "limit=abc")
    T.error(c.get(API + "/keys/_keys?limit=-1"), 400, "invalid", "limit=-1")
    T.error(c.get(API + "/bad%20ns/_keys"), 400, "invalid", "_keys bad namespace")


def t_namespaces(c):
    c.put(rec("nsA", "k1"), 1)
    c.put(rec("nsA", "k1"), 2)
    c.put(rec("nsA", "k2"), 3)
    c.put(rec("nsGone", "k"), 1)
    c.delete(rec("nsGone", "k"))
    r = c.get(API + "/_namespaces")
    T.status(r, 200, "_namespaces")
    d = r.json or {}
    T.eq(list(d), ["namespaces"], "_namespaces members")
    nss = {n.get("name"): n for n in d.get("namespaces", [])}
    T.eq(nss.get("nsA"), {"name": "nsA", "keys": 2, "versions": 3}, "nsA counts")
    T.ok("nsGone" not in nss, "namespace with only deleted keys left out", sorted(nss))
    T.ok(not any(n.startswith("_") for n in nss), "no system namespace without all=1")
    names = [n.get("name") for n in d.get("namespaces", [])]
    T.eq(names, sorted(names, key=lambda s: s.encode()), "namespaces sorted")
    c.post(API + "/_views", {"name": "nsview", "source": "nsA"})
    r = c.get(API + "/_namespaces?all=1")
    names = [n.get("name") for n in (r.json or {}).get("namespaces", [])]
    T.ok("_views" in names and "nsA" in names, "all=1 adds _views", names)
    c.req("DELETE", API + "/_views/nsview")


def t_status_check(c, srv):
    r = c.get(API + "/_status")
    T.status(r, 200, "_status")
    d = r.json or {}
    T.eq(sorted(d), sorted(["path", "namespaces", "keys", "versions", "seq", "values",
                            "disk_bytes", "log_bytes", "segments", "index_bytes",
                            "cache_bytes", "cache_hits", "cache_misses", "fsyncs", "version",
                            "uptime_seconds", "max_db_bytes"]), "_status members")
    T.eq(d.get("max_db_bytes"), 0, "_status max_db_bytes: no quota by default")
    T.eq(d.get("path"), os.path.realpath(srv.db), "_status path")
    T.eq(d.get("version"), "0.1.0", "_status version")
    w = c.put(rec("stat", "k"), 1).json or {}
    d2 = c.get(API + "/_status").json or {}
    T.eq(d2.get("seq"), w.get("seq"), "_status seq is the last commit")
    T.eq(d2.get("versions"), d.get("versions", 0) + 1, "_status versions grows by one")
    T.ok(all(isinstance(d.get(k), int) and d.get(k) >= 0
             for k in ("namespaces", "keys", "versions", "values", "disk_bytes", "log_bytes",
                       "segments", "fsyncs")), "_status counts are integers", d)
    T.ok(isinstance(d.get("uptime_seconds"), (int, float)), "uptime_seconds a number", d)
    for qs in ("", "?deep=1"):
        r = c.get(API + "/_check" + qs)
        T.status(r, 200, "_check" + qs)
        d = r.json or {}
        T.eq(sorted(d), sorted(["ok", "records", "versions", "values", "segments", "errors",
                                "first_error", "error_list"]), "_check%s members" % qs)
        T.eq((d.get("ok"), d.get("errors"), d.get("first_error", "MISSING"), d.get("error_list")),
             (True, 0, None, []), "_check%s ok" % qs)
        T.eq(d.get("versions"), d2.get("versions"), "_check%s versions" % qs)


VIEW_MEMBERS = ["auto_refresh", "created", "description", "filter", "name", "query",
                "records", "refreshed", "source"]


def t_views(c):
    for k, v in SHOP.items():
        c.put(rec("vshop", k), v)
    r = c.post(API + "/_views", {"name": "cheap", "source": "vshop",
                                 "query": {"filter": "price < 3", "sort": ["price"]},
                                 "description": "cheap stuff", "auto_refresh": True})
    T.status(r, 201, "create auto view")
    d = r.json or {}
    T.eq(sorted(d), VIEW_MEMBERS, "view members")
    T.eq((d.get("name"), d.get("source"), d.get("auto_refresh"), d.get("records"),
          d.get("description"), d.get("filter")),
         ("cheap", "vshop", True, 3, "cheap stuff", "price < 3"), "view fields")
    T.ok(isinstance(d.get("query"), dict), "view query is a JSON object", d.get("query"))
    r = c.post(API + "/_views", {"name": "oslo", "source": "vshop",
                                 "query": {"filter": {"field": "city", "op": "=",
                                                      "value": "Oslo"}}})
    T.status(r, 201, "create manual view (only name, source, query)")
    T.eq(((r.json or {}).get("auto_refresh"), (r.json or {}).get("records"),
          (r.json or {}).get("description")), (False, 2, ""), "manual view defaults")
    T.error(c.post(API + "/_views", {"name": "cheap", "source": "vshop"}), 409, "conflict",
            "duplicate view name")
    T.error(c.post(API + "/_views", {"name": "bad name", "source": "vshop"}), 400, "invalid",
            "bad view name")
    T.error(c.post(API + "/_views", {"name": "sys", "source": "_views"}), 400, "invalid",
            "view on a system namespace")
    T.error(c.post(API + "/_views", {"name": "bf", "source": "vshop",
                                     "query": {"filter": "price >"}}), 400, "invalid",
            "view with a bad filter", msg_re="column")
    T.error(c.post(API + "/_views", {"source": "vshop"}), 400, "invalid", "view without name")
    T.error(c.req("POST", API + "/_views", body="{", ctype="application/json"), 400,
            "invalid", "view bad JSON")

    r = c.get(API + "/_views")
    T.status(r, 200, "list views")
    names = [v.get("name") for v in (r.json or {}).get("views", [])]
    T.eq(names, ["cheap", "oslo"], "views sorted by name")
    r = c.get(API + "/_views/cheap")
    T.status(r, 200, "get view")
    T.eq((r.json or {}).get("filter"), "price < 3", "get view filter")

    r = c.post(API + "/_views/cheap/_query", {})
    T.status(r, 200, "query view")
    d = r.json or {}
    T.eq(sorted(d), ["aggregation", "namespace", "records", "total"], "view query shape")
    T.eq(([x.get("key") for x in d.get("records", [])], d.get("total"), d.get("namespace")),
         (["b", "a", "e"], 3, "vshop"), "view result in the view's sort")
    r = c.post(API + "/_views/cheap/_query", {"filter": "qty > 20"})
    T.eq([x.get("key") for x in (r.json or {}).get("records", [])], ["b"],
         "narrowing filter combines with the view's")
    r = c.post(API + "/_views/cheap/_query", {"offset": 1})
    T.eq([x.get("key") for x in (r.json or {}).get("records", [])], ["a", "e"],
         "narrowing offset")

    c.put(rec("vshop", "f"), {"name": "fig", "price": 1, "city": "Oslo"})
    r = c.post(API + "/_views/cheap/_query", {})
    T.eq([x.get("key") for x in (r.json or {}).get("records", [])], ["b", "f", "a", "e"],
         "auto-refresh view sees the write")
    r = c.post(API + "/_views/oslo/_query", {})
    T.eq([x.get("key") for x in (r.json or {}).get("records", [])], ["a", "c"],
         "manual view does not see the write")
    r = c.post(API + "/_views/oslo/_refresh", {})
    T.status(r, 200, "refresh view")
    T.eq(sorted(r.json or {}), VIEW_MEMBERS, "refresh answers the view")
    T.eq((r.json or {}).get("records"), 3, "refreshed view counts the write")
    r = c.post(API + "/_views/oslo/_query", {})
    T.eq([x.get("key") for x in (r.json or {}).get("records", [])], ["a", "c", "f"],
         "manual view after refresh")
    r = c.req("POST", API + "/_views/oslo/_refresh")
    T.status(r, 200, "refresh without a body")

    r = c.req("DELETE", API + "/_views/oslo")
    T.status(r, 200, "delete view")
    T.eq(r.json, {"name": "oslo", "deleted": True}, "delete view answer")
    T.error(c.get(API + "/_views/oslo"), 404, "not_found", "get deleted view")
    T.error(c.req("DELETE", API + "/_views/oslo"), 404, "not_found", "delete deleted view")
    T.error(c.post(API + "/_views/nope/_query", {}), 404, "not_found", "query unknown view")
    T.error(c.post(API + "/_views/nope/_refresh", {}), 404, "not_found", "refresh unknown view")
    T.error(c.get(API + "/_views/nope"), 404, "not_found", "get unknown view")
    r = c.post(API + "/_views", {"name": "oslo", "source": "vshop"})
    T.status(r, 201, "a deleted view's name can be used again")
    names = [v.get("name") for v in (c.get(API + "/_views").json or {}).get("views", [])]
    T.eq(names, ["cheap", "oslo"], "list after re-create")
    c.req("DELETE", API + "/_views/oslo")
    c.req("DELETE", API + "/_views/cheap")


def t_ops(c, srv):
    r = c.get("/healthz")
    T.status(r, 200, "/healthz")
    T.eq(r.json, {"status": "ok"}, "/healthz body")

    def scrape():
        r = c.get("/metrics")
        return r, parse_metrics(r.raw.decode("utf-8", "replace"))

    r, (s0, types) = scrape()
    T.status(r, 200, "/metrics")
    ct = r.header("Content-Type", "")
    T.ok(ct.startswith("text/plain") and "version=0.0.4" in ct, "metrics Content-Type", ct)
    T.ok(not any(n == "__unparsed__" for n, _, _ in s0), "every metrics line parses",
         [l for n, l, _ in s0 if n == "__unparsed__"][:5])
    want_types = {
        "korudelta_http_requests_total": "counter",
        "korudelta_http_request_duration_seconds": "histogram",
        "korudelta_http_connections": "gauge",
        "korudelta_writes_total": "counter",
        "korudelta_fsyncs_total": "counter",
        "korudelta_fsync_duration_seconds": "histogram",
        "korudelta_log_bytes": "gauge",
        "korudelta_disk_bytes": "gauge",
        "korudelta_cache_hits_total": "counter",
        "korudelta_cache_misses_total": "counter",
        "korudelta_keys": "gauge",
        "korudelta_versions": "gauge",
        "korudelta_seq": "gauge",
        "korudelta_open_feeds": "gauge",
    }
    for name, typ in want_types.items():
        T.eq(types.get(name), typ, "# TYPE %s" % name)
    route = "/api/v1/{ns}/{key}"
    k = rec("met", "k")
    c.put(k, 1)
    before = metric(s0, "korudelta_http_requests_total", route=route, method="GET",
                    status="200") or 0
    w0 = metric(s0, "korudelta_writes_total")
    _, (s1, _) = scrape()
    for _ in range(3):
        c.get(k)
    c.get(rec("met", "missing"))
    _, (s2, _) = scrape()
    b1 = metric(s1, "korudelta_http_requests_total", route=route, method="GET",
                status="200") or 0
    b2 = metric(s2, "korudelta_http_requests_total", route=route, method="GET", status="200")
    T.eq(b2, b1 + 3, "requests_total{route=%s,method=GET,status=200} grew by 3" % route)
    T.eq(metric(s2, "korudelta_http_requests_total", route=route, method="GET", status="404"),
         (metric(s1, "korudelta_http_requests_total", route=route, method="GET",
                 status="404") or 0) + 1, "404 counted under the route pattern")
    T.ok(b1 >= before, "counter never decreases")
    raw_routes = {l.get("route") for n, l, _ in s2 if n == "korudelta_http_requests_total"}
    T.ok(not any(r_ and "/api/v1/met" in r_ for r_ in raw_routes),
         "no raw paths as route labels", sorted(x for x in raw_routes if x))
    T.eq(metric(s1, "korudelta_writes_total"), (w0 or 0) + 1, "writes_total counts a PUT")
    T.eq(metric(s2, "korudelta_seq"), (c.get(API + "/_status").json or {}).get("seq"),
         "korudelta_seq equals _status seq")

    def histogram(samples, name, **labels):
        buckets = [(l.get("le"), v) for n, l, v in samples
                   if n == name + "_bucket" and all(l.get(a) == b for a, b in labels.items())]
        return buckets, metric(samples, name + "_count", **labels), \
            metric(samples, name + "_sum", **labels)

    for name, labels in (("korudelta_fsync_duration_seconds", {}),
                         ("korudelta_http_request_duration_seconds", {"route": route})):
        buckets, count, total = histogram(s2, name, **labels)
        T.ok(len(buckets) >= 2, "%s has buckets" % name, buckets)
        if buckets:
            T.eq(buckets[-1][0], "+Inf", "%s last bucket le=+Inf" % name)
            les = [float("inf") if le == "+Inf" else float(le) for le, _ in buckets]
            T.ok(les == sorted(les), "%s buckets in le order" % name, les)
            vals = [v for _, v in buckets]
            T.ok(vals == sorted(vals), "%s buckets cumulative" % name, vals)
            T.eq(vals[-1], count, "%s +Inf bucket equals _count" % name)
            T.ok(count and count >= 1 and total is not None and total >= 0,
                 "%s count >= 1 and a sum" % name, (count, total))
    T.ok((metric(s2, "korudelta_fsyncs_total") or 0) >= 1, "fsyncs_total >= 1")
    T.ok((metric(s2, "korudelta_http_connections") or 0) >= 1, "connections gauge >= 1")

    def feeds():
        return metric(scrape()[1][0], "korudelta_open_feeds")

    f0 = feeds()
    T.eq(f0, 0, "no open feed at rest")
    sse = SSE(srv.port, API + "/_changes?since=now&heartbeat=200")
    try:
        deadline = time.time() + 3
        while feeds() != 1 and time.time() < deadline:
            time.sleep(0.05)
        T.eq(feeds(), 1, "open_feeds counts an SSE stream")
    finally:
        sse.close()
    deadline = time.time() + 5
    while feeds() != 0 and time.time() < deadline:
        time.sleep(0.1)
    T.eq(feeds(), 0, "open_feeds drops when the client goes away")
    seq = (c.get(API + "/_status").json or {}).get("seq")
    lp = threading.Thread(daemon=True, target=lambda: Client(srv.port).get(
        API + "/_changes?feed=longpoll&ns=nowrites&timeout=1500&since=%d" % seq))
    lp.start()
    deadline = time.time() + 1.2
    while feeds() != 1 and time.time() < deadline:
        time.sleep(0.05)
    T.eq(feeds(), 1, "open_feeds counts a waiting long-poll")
    lp.join(10)
    deadline = time.time() + 3
    while feeds() != 0 and time.time() < deadline:
        time.sleep(0.05)
    T.eq(feeds(), 0, "open_feeds after the long-poll answered")


def t_changes_sse(c, srv):
    s = (c.get(API + "/_status").json or {}).get("seq")
    w = [c.put(rec("feed", "k1"), {"n": 1}).json, c.put(rec("feed", "k1"), {"n": 2}).json,
         c.delete(rec("feed", "k1")).json, c.put(rec("feed", "k2"), {"price": 5}).json,
         c.put(rec("feedx", "k"), {"n": 0}).json]
    seqs = [x["seq"] for x in w]
    T.eq(seqs, list(range(s + 1, s + 6)), "five commits with consecutive seqs")
    types = ["insert", "update", "delete", "insert", "insert"]

    def stream(qs, n, headers=None, timeout=5):
        sse = SSE(srv.port, API + "/_changes?" + qs, headers=headers)
        try:
            T.ok(sse.status == 200, "SSE %s: status 200" % qs, (sse.status, sse.head_body))
            ev = sse.wait_events(n, timeout)
            time.sleep(0.2)
            sse.read_until(lambda x: False, 0.2)
            return sse, list(sse.events)
        except Exception:
            sse.close()
            raise

    sse, ev = stream("since=%d&ns=feed" % s, 4)
    try:
        T.ok(sse.headers.get("content-type", "").startswith("text/event-stream"),
             "SSE Content-Type", sse.headers.get("content-type"))
        T.eq([e.id for e in ev], seqs[:4], "ns=feed: ids are the seqs in order")
        T.eq([e.event for e in ev], ["change"] * 4, "event: change")
        docs = [e.json() for e in ev]
        T.eq([d.get("change") for d in docs], types[:4], "change types")
        T.eq([d.get("seq") for d in docs], seqs[:4], "data seq equals id")
        for i, d in enumerate(docs):
            T.version_doc(d, "event %d" % i, ns="feed", value=True, change=True,
                          deleted=(i == 2))
        T.eq([d.get("value") for d in docs], [{"n": 1}, {"n": 2}, None, {"price": 5}],
             "event values")
        T.eq([d.get("version_id") for d in docs], [x["version_id"] for x in w[:4]],
             "event version ids")
        # Live: a write after connecting arrives.
        live = c.put(rec("feed", "k3"), {"n": 3}).json
        sse.wait_events(5, 5)
        T.eq([e.id for e in sse.events[4:]], [live["seq"]], "live write arrives")
    finally:
        sse.close()
    seqs.append(live["seq"])

    sse, ev = stream("since=%d" % s, 6)
    sse.close()
    T.eq([e.id for e in ev], seqs, "no filter: every namespace")
    sse, ev = stream("ns=feed&key=k1&since=%d" % s, 3)
    sse.close()
    T.eq([e.id for e in ev], seqs[:3], "key=k1")
    sse, ev = stream("ns=feed&types=delete&since=%d" % s, 1)
    sse.close()
    T.eq([e.id for e in ev], [seqs[2]], "types=delete")
    sse, ev = stream("ns=feed&types=insert,update&since=%d" % s, 4)
    sse.close()
    T.eq([e.id for e in ev], [seqs[0], seqs[1], seqs[3], seqs[5]], "types=insert,update")
    sse, ev = stream("ns=feed&since=%d&filter=%s" % (s, q("n > 1")), 3)
    sse.close()
    T.eq([e.id for e in ev], [seqs[1], seqs[2], seqs[5]],
         "filter: matching puts and every delete")
    sse, ev = stream("ns=feed&since=%d" % s, 2, headers={"Last-Event-ID": str(seqs[2])})
    sse.close()
    T.eq([e.id for e in ev], [seqs[3], seqs[5]], "Last-Event-ID resumes after it")
    sse, ev = stream("ns=feed&since=%d" % seqs[3], 1, headers={"Last-Event-ID": str(s)})
    sse.close()
    T.eq([e.id for e in ev][:1], [seqs[0]], "Last-Event-ID wins over since")

    sse = SSE(srv.port, API + "/_changes?since=now&ns=feed")
    try:
        time.sleep(0.3)
        nw = c.put(rec("feed", "k4"), 4).json
        sse.wait_events(1, 5)
        time.sleep(0.2)
        sse.read_until(lambda x: False, 0.2)
        T.eq([e.id for e in sse.events], [nw["seq"]], "since=now: only later commits")
    finally:
        sse.close()

    sse = SSE(srv.port, API + "/_changes?since=now&heartbeat=200")
    try:
        beats = lambda x: [cm for cm in x.comments if cm.strip() == b": heartbeat"]  # noqa
        t0 = time.time()
        sse.read_until(lambda x: len(beats(x)) >= 3, 3)
        T.ok(len(beats(sse)) >= 3, "heartbeat=200: ': heartbeat' lines while idle",
             sse.comments)
        T.ok(time.time() - t0 < 1.5, "three heartbeats within 1.5 s", time.time() - t0)
        T.eq(sse.events, [], "no events while idle")
    finally:
        sse.close()

    c.post(API + "/_views", {"name": "feedview", "source": "feed"})
    c.req("DELETE", API + "/_views/feedview")
    end = (c.get(API + "/_status").json or {}).get("seq")
    sse, ev = stream("since=%d" % (end - 2), 0, timeout=0.5)
    sse.close()
    T.eq(ev, [], "_views changes are not in the feed")
    sse, ev = stream("ns=_views&since=%d" % (end - 2), 2)
    sse.close()
    T.eq([(e.json().get("namespace"), e.json().get("change")) for e in ev],
         [("_views", "insert"), ("_views", "delete")], "ns=_views names the system namespace")

    for qs in ("key=k1", "types=bogus", "since=abc", "since=-1", "heartbeat=50",
               "heartbeat=abc", "feed=bogus", "filter=%s" % q("n >"), "ns=bad%20ns",
               "feed=longpoll&limit=abc", "feed=longpoll&timeout=abc",
               "feed=longpoll&timeout=-5"):
        r = c.get(API + "/_changes?" + qs)
        T.error(r, 400, "invalid", "_changes?%s" % qs)
    r = c.get(API + "/_changes?filter=%s" % q("n >"))
    T.ok(r.json and "column" in r.json["error"]["message"], "bad filter names its column", r)
    return s, seqs


def t_changes_longpoll(c, srv, s, seqs):
    lp = API + "/_changes?feed=longpoll"
    t0 = time.time()
    r = c.get(lp + "&ns=feed&since=%d" % s)
    T.status(r, 200, "longpoll with changes waiting")
    T.ok(time.time() - t0 < 2, "answers at once", time.time() - t0)
    d = r.json or {}
    T.eq(sorted(d), ["changes", "last_seq"], "longpoll members")
    ch = d.get("changes") or []
    got = [x.get("seq") for x in ch]
    feed_seqs = seqs[:4] + seqs[5:]     # seqs[4] went to namespace feedx
    T.eq(got[:5], feed_seqs, "longpoll changes in seq order")
    T.ok(all(x.get("change") in ("insert", "update", "delete") and "value" in x for x in ch),
         "longpoll changes carry change and value", ch[:2])
    T.ok(isinstance(d.get("last_seq"), int) and d["last_seq"] >= (got[-1] if got else 0),
         "last_seq >= last change's seq", d.get("last_seq"))
    r = c.get(lp + "&ns=feed&since=%d&limit=2" % s)
    d = r.json or {}
    T.eq([x.get("seq") for x in d.get("changes", [])], seqs[:2], "limit=2")
    T.eq(d.get("last_seq"), seqs[1], "limit=2: last_seq is the second change's seq")
    r = c.get(lp + "&ns=feed&since=%d" % d.get("last_seq", 0))
    T.eq([x.get("seq") for x in (r.json or {}).get("changes", [])][:3], feed_seqs[2:],
         "resume at last_seq")

    cur = (c.get(API + "/_status").json or {}).get("seq")
    t0 = time.time()
    r = c.get(lp + "&since=%d&timeout=300" % cur)
    el = time.time() - t0
    T.status(r, 200, "longpoll timeout")
    T.eq(r.json, {"changes": [], "last_seq": cur}, "longpoll timeout answer")
    T.ok(0.25 <= el < 3, "longpoll waited about 300 ms", el)

    def later():
        time.sleep(0.7)
        Client(srv.port).put(rec("feed", "wake"), 1)

    th = threading.Thread(daemon=True, target=later)
    t0 = time.time()
    th.start()
    r = c.get(lp + "&since=%d&timeout=10000" % cur)
    el = time.time() - t0
    th.join()
    T.status(r, 200, "longpoll woken")
    T.eq([(x.get("key"), x.get("seq")) for x in (r.json or {}).get("changes", [])],
         [("wake", cur + 1)], "longpoll woken by the write")
    T.ok(0.5 <= el < 5, "longpoll waited for the write", el)
    # A filter that skips versions may move last_seq past the last change.
    cur = (c.get(API + "/_status").json or {}).get("seq")
    c.put(rec("lpf", "a"), {"n": 5})
    c.put(rec("lpf", "b"), {"n": 0})
    r = c.get(lp + "&ns=lpf&filter=%s&since=%d&timeout=300" % (q("n > 1"), cur))
    d = r.json or {}
    T.eq([x.get("key") for x in d.get("changes", [])], ["a"], "longpoll filter")
    T.ok(d.get("last_seq") in (cur + 1, cur + 2), "longpoll filter last_seq", d)
    r = c.get(lp + "&ns=lpf&filter=%s&since=%d&timeout=300" % (q("n > 1"), d.get("last_seq", 0)))
    T.eq((r.json or {}).get("changes"), [], "nothing after last_seq")
    T.eq((r.json or {}).get("last_seq"), cur + 2, "last_seq covers the skipped version")

    # A client that leaves a waiting long-poll frees its subscription (the open_feeds
    # gauge) within about a second, not at the end of its 60 s timeout.
    def open_feeds():
        return metric(parse_metrics(Client(srv.port).get("/metrics").raw.decode())[0],
                      "korudelta_open_feeds")

    base = open_feeds()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(("GET %s&since=now&timeout=60000 HTTP/1.1\r\nHost: x\r\n\r\n" % lp).encode())
    deadline = time.time() + 5
    while open_feeds() != base + 1 and time.time() < deadline:
        time.sleep(0.05)
    T.eq(open_feeds(), base + 1, "a waiting long-poll is an open feed")
    s.close()
    t0 = time.time()
    while open_feeds() != base and time.time() - t0 < 5:
        time.sleep(0.05)
    el = time.time() - t0
    T.eq(open_feeds(), base, "the feed closes when the client leaves")
    T.ok(el < 2.5, "the feed closed %.2f s after the client left (< 2.5 s)" % el)


def t_access_log_default(srv):
    pat = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z INFO 127\.0\.0\.1 '
                     r'"GET /healthz" 200 \d+B \d+(\.\d+)?ms$')
    T.ok(any(pat.match(l) for l in srv.lines), "default access-log line for GET /healthz",
         "\n".join(l for l in srv.lines if "healthz" in l)[:600] or srv.log(5))


def t_access_log_json(tmp):
    srv = Server(os.path.join(tmp, "logdb"), env={"KORU_LOG_FORMAT": "json"})
    try:
        c = srv.client()
        reqs = [("GET", "/healthz", None, 200), ("PUT", API + "/al/k", {"value": 1}, 200),
                ("GET", API + "/al/k", None, 200), ("GET", API + "/al/missing", None, 404),
                ("DELETE", API + "/_status", None, 405)]
        for m, p, b, st in reqs:
            T.status(c.req(m, p, body=b), st, "%s %s" % (m, p))
        c.close()
        time.sleep(0.3)
    finally:
        rc = srv.stop()
    T.eq(rc, 0, "json-log server exits 0 on SIGTERM")
    entries, bad = [], []
    for line in srv.lines:
        if line.startswith("kdelta: serving"):
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            bad.append(line)
    T.eq(bad, [], "every log line is JSON with KORU_LOG_FORMAT=json")
    reqlog = [e for e in entries if isinstance(e, dict) and e.get("msg") == "request"]
    for m, p, _, st in reqs:
        hits = [e for e in reqlog if e.get("method") == m and e.get("path") == p]
        T.eq(len(hits), 1, "one access-log line for %s %s" % (m, p))
        if hits:
            e = hits[0]
            T.eq((e.get("status"), e.get("level"), e.get("remote")), (st, "info", "127.0.0.1"),
                 "access-log status, level, remote for %s %s" % (m, p))
            T.ok(isinstance(e.get("bytes"), int) and isinstance(e.get("ms"), (int, float))
                 and isinstance(e.get("ts"), str), "bytes, ms, ts members", e)
    T.eq(len(reqlog), len(reqs), "one access-log line per request")


def t_max_body(tmp):
    srv = Server(os.path.join(tmp, "smalldb"), args=["--max-body", "1KiB"])
    try:
        c = srv.client()
        r = c.put(rec("mb", "small"), "x" * 900)
        T.status(r, 200, "body under 1KiB")
        r = c.put(rec("mb", "big"), "x" * 2000)
        T.error(r, 413, "too_big", "PUT body over --max-body")
        c = srv.client()
        r = c.post(API + "/_batch", {"ops": [{"op": "put", "namespace": "mb", "key": "b",
                                              "value": "y" * 2000}]})
        T.error(r, 413, "too_big", "_batch body over --max-body")
        c = srv.client()
        body = json.dumps({"value": "z" * 3000})
        chunks = "".join("%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                         for i in range(0, len(body), 500))
        raw = raw_request(srv.port, ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                     "application/json\r\nTransfer-Encoding: chunked\r\n\r\n%s"
                                     "0\r\n\r\n" % (rec("mb", "chunk"), chunks)).encode(), 3)
        T.eq(raw_status(raw), 413, "chunked body over --max-body")
        c = srv.client()
        T.error(c.get(rec("mb", "big")), 404, "not_found", "refused body wrote nothing")
        T.error(c.get(rec("mb", "chunk")), 404, "not_found", "refused chunked body wrote "
                "nothing")
        T.status(c.get("/healthz"), 200, "healthy after 413s")
    finally:
        rc = srv.stop()
    T.eq(rc, 0, "--max-body server exits 0")


def t_stop(srv):
    addr = os.path.join(srv.db, "serve.addr")
    rc = srv.stop()
    T.eq(rc, 0, "SIGTERM: exit 0")
    T.ok(not os.path.exists(addr), "serve.addr removed at exit")
    p = subprocess.run([KDELTA, "--db", srv.db, "--json", "get", "rec/alice"],
                       capture_output=True, timeout=30, env=dict(os.environ, KORU_LOG="error"))
    T.eq(p.returncode, 0, "the database is released and readable after the stop")
    try:
        T.eq(json.loads(p.stdout).get("value"), {"age": 31}, "data durable after the stop")
    except ValueError:
        T.ok(False, "kdelta get output is JSON", p.stdout)


def read_response(sock, timeout=5):
    """One response from a keep-alive socket (no body for none), as a Resp."""
    sock.settimeout(timeout)
    out = b""
    while not _response_complete(out):
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().title()] = v.strip()
    return Resp(int(m.group(1)) if m else None, headers, body)


def t_stop_requests(tmp):
    """While the server stops: /healthz says shutting_down, other requests get the
    shutting_down error, both with Connection: close; a request whose body has not arrived
    is cut after the 1 s grace, so the stop does not wait 30 s for it."""
    srv = Server(os.path.join(tmp, "hz"))
    socks = []
    try:
        def conn():
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            socks.append(s)
            return s
        hz, other, slow = conn(), conn(), conn()
        hz.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        T.eq(read_response(hz).json, {"status": "ok"}, "healthz before the stop")
        other.sendall(b"GET /api/v1/_status HTTP/1.1\r\nHost: x\r\n\r\n")
        T.status(read_response(other), 200, "_status before the stop")
        slow.sendall(b"PUT /api/v1/hz/slow HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 20\r\n\r\n{\"valu")
        time.sleep(0.2)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        hz.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(hz)
        T.status(r, 503, "healthz while stopping")
        T.eq(r.json, {"status": "shutting_down"}, "healthz while stopping: body")
        T.eq(r.header("Connection", "").lower(), "close", "healthz while stopping: Connection")
        T.ok(r.header("Content-Type", "").startswith("application/json"),
             "healthz while stopping: Content-Type", r.headers)
        other.sendall(b"GET /api/v1/_status HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(other)
        T.error(r, 503, "shutting_down", "another request while stopping")
        T.eq(r.header("Connection", "").lower(), "close", "shutting_down: Connection")
        try:
            rc = srv.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.time() - t0
        T.eq(rc, 0, "exit 0")
        T.ok(took < 5, "an unfinished body held the stop %.1f s (grace 1 s)" % took)
        slow.settimeout(5)
        try:
            rest = slow.recv(4096)
        except OSError:
            rest = b""
        T.eq(rest, b"", "the unfinished request gets no answer: its connection is closed")
    finally:
        for s in socks:
            s.close()
        srv.kill()
    T.ok(not os.path.exists(os.path.join(srv.db, "serve.addr")), "serve.addr removed")


def main():
    tmp = tempdir("kd_http_")
    srv = None
    try:
        try:
            srv = Server(os.path.join(tmp, "db"))
        except Exception as e:
            T.ok(False, "the server starts", e)
            return T.finish()
        c = srv.client()
        with T.section("startup"):
            t_startup(srv)
        v1 = v2 = None
        with T.section("records"):
            v1, v2 = t_records(c)
        with T.section("If-None-Match on GET"):
            t_conditional_get(c, v2)
        with T.section("time travel (?at and /_at)"):
            t_time_travel(c, v1, v2)
        sections = [
            ("conditional PUT", lambda: t_conditional_put(c)),
            ("delete", lambda: t_deletes(c)),
            ("names", lambda: t_names(c)),
            ("bodies", lambda: t_bodies(c)),
            ("routes 404/405", lambda: t_routes(c)),
            ("_history", lambda: t_history(c)),
            ("_diff", lambda: t_diff(c)),
            ("_batch", lambda: t_batch(c, srv)),
            ("_query", lambda: t_query(c)),
            ("_keys", lambda: t_keys(c)),
            ("_namespaces", lambda: t_namespaces(c)),
            ("_status and _check", lambda: t_status_check(c, srv)),
            ("views", lambda: t_views(c)),
            ("healthz and metrics", lambda: t_ops(c, srv)),
        ]
        for name, fn in sections:
            if not srv.alive():
                T.ok(False, "server died before section %s" % name, srv.log())
                break
            with T.section(name):
                c = srv.client()
                fn()
        feed = None
        if srv.alive():
            with T.section("_changes SSE"):
                c = srv.client()
                feed = t_changes_sse(c, srv)
        if srv.alive() and feed:
            with T.section("_changes long-poll"):
                t_changes_longpoll(srv.client(), srv, *feed)
        with T.section("access log (default format)"):
            t_access_log_default(srv)
        with T.section("stop"):
            T.ok(srv.alive(), "server still running before the stop", srv.log())
            t_stop(srv)
        with T.section("access log (KORU_LOG_FORMAT=json)"):
            t_access_log_json(tmp)
        with T.section("--max-body 1KiB"):
            t_max_body(tmp)
        with T.section("requests while stopping"):
            t_stop_requests(tmp)
    except SystemExit:
        T.ok(False, "interrupted by a signal")
    finally:
        if srv is not None and srv.alive():
            srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
