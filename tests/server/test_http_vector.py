# test_http_vector.py — black-box tests of the vector-search routes of `kdelta serve`
# (docs/http.md, "Vector search"): PUT/GET/DELETE /api/v1/{ns}/{key}/_embedding with
# bit-exact float32 round trips, metadata, time travel and errors; POST /api/v1/_search and
# /api/v1/{ns}/_search against a brute-force computation in Python (every metric, top_k,
# threshold, model, namespace restriction, value and metadata filters, at=T, exact, the
# HNSW path), the error answers, and the routes' /metrics labels.
#
# Usage: python3 tests/server/test_http_vector.py [path/to/kdelta]  (default $KDELTA, else
# build/kdelta). Drives the real binary over 127.0.0.1 with --port 0. Ends with
# "N passed, N failed"; exits non-zero when anything failed. The server it starts is stopped
# (try/finally; stragglers are killed at exit).
import json
import math
import os
import random
import shutil
import struct
import sys

if len(sys.argv) > 1:
    os.environ["KDELTA"] = sys.argv[1]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httplib import Server, Tests, metric, parse_metrics, q, tempdir, unix_form  # noqa: E402

T = Tests("test_http_vector")
API = "/api/v1"
EMB_MEMBERS = ["dim", "key", "model", "namespace", "seq", "timestamp", "version_id"]
GET_MEMBERS = ["dim", "key", "metadata", "model", "namespace", "seq", "timestamp", "vector",
               "version_id"]
DEL_MEMBERS = ["deleted", "key", "namespace", "seq", "timestamp", "version_id"]
HIT_MEMBERS = ["key", "namespace", "score", "seq", "timestamp", "version_id"]


def emb(ns, key):
    return "%s/%s/%s/_embedding" % (API, q(ns), q(key))


def search_path(ns=None):
    return "%s/%s/_search" % (API, q(ns)) if ns else API + "/_search"


def f32(x):
    """x rounded to float32, as the server stores it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits(x):
    return struct.pack("<f", x).hex()


def exact_json(raw):
    """Parses an answer keeping -0 (json.loads reads '-0' as the integer 0) and the member
    order as sent."""
    return json.loads(raw, parse_int=float, object_pairs_hook=lambda kv: kv)


def members(raw):
    """The member names of the top-level object of raw, in the order sent."""
    return [k for k, _ in exact_json(raw)]


def allow_set(r):
    return {m.strip().upper() for m in (r.header("Allow") or "").split(",") if m.strip()}


# ---- brute force ----------------------------------------------------------------------------

def score(metric_name, a, b):
    dot = sum(x * y for x, y in zip(a, b))
    if metric_name == "dot":
        return dot
    if metric_name == "l2":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 0.0 if na == 0 or nb == 0 else dot / (na * nb)


def brute(items, query, metric_name="cosine", k=10, threshold=None, keep=lambda it: True):
    """items: dicts {ns, key, vec}. -> [(ns, key, score)] best first, ties by ns then key."""
    qv = [f32(x) for x in query]
    scored = []
    for it in items:
        if not keep(it):
            continue
        s = score(metric_name, it["vec"], qv)
        if threshold is not None and (s > threshold if metric_name == "l2" else s < threshold):
            continue
        scored.append((it["ns"], it["key"], s))
    if metric_name == "l2":
        scored.sort(key=lambda t: (t[2], t[0], t[1]))
    else:
        scored.sort(key=lambda t: (-t[2], t[0], t[1]))
    return scored[:k]


def close(a, b):
    return abs(a - b) <= 1e-9 + 1e-6 * max(abs(a), abs(b))


def check_hits(r, want, what):
    """The answer r is 200 with exactly the hits want (order, names, scores ~1e-6)."""
    if not T.status(r, 200, what):
        return None
    d = r.json or {}
    T.eq(list(d), ["results"], "%s: members" % what)
    hits = d.get("results") or []
    T.eq([(h.get("namespace"), h.get("key")) for h in hits], [(w[0], w[1]) for w in want],
         "%s: hits in order" % what)
    bad = [(h, w[2]) for h, w in zip(hits, want) if not close(h.get("score", 1e300), w[2])]
    T.ok(not bad, "%s: scores match brute force to 1e-6" % what, bad[:3])
    if hits:
        T.eq(sorted(hits[0]), HIT_MEMBERS, "%s: hit members" % what)
        raw_hit = dict(exact_json(r.raw))["results"][0]
        T.eq([k for k, _ in raw_hit], HIT_MEMBERS, "%s: hit members in canonical order" % what)
    return hits


# ---- sections -------------------------------------------------------------------------------

def t_roundtrip(c):
    vec = [0.1, -0.0, 1e-45, 3.4028235e38, -3.4028235e38, 1.17549435e-38, 1, -2.5e-7,
           123456789.0, 16777217, -124.224815, 112.908646]  # the last two need 9 digits
    body = '{"vector":[0.1, -0.0, 1e-45, 3.4028235e38, -3.4028235e38, 1.17549435e-38, 1,' \
           ' -2.5e-7, 123456789.0, 16777217, -124.224815, 112.908646],"model":"bits"}'
    r = c.req("PUT", emb("rt", "a"), body=body)
    T.status(r, 200, "PUT embedding")
    d = r.json or {}
    T.eq(members(r.raw), EMB_MEMBERS, "PUT answer members, canonical order")
    T.eq((d.get("namespace"), d.get("key"), d.get("model"), d.get("dim")),
         ("rt", "a", "bits", len(vec)), "PUT answer names, model, dim")
    T.ok(isinstance(d.get("seq"), int) and d["seq"] > 0, "PUT seq", d.get("seq"))
    T.eq(r.header("ETag"), '"%s"' % d.get("version_id"), "PUT ETag")

    r = c.get(emb("rt", "a"))
    T.status(r, 200, "GET embedding")
    g = r.json or {}
    T.eq(members(r.raw), GET_MEMBERS, "GET answer members, canonical order")
    got = dict(exact_json(r.raw)).get("vector") or []
    T.eq([bits(x) for x in got], [bits(f32(x)) for x in vec], "vector bit-exact (float32)")
    T.ok(b'"vector":[0.100000001,-0,' in r.raw, "components printed with %.9g, -0 kept",
         r.raw[:200])
    T.eq(g.get("metadata"), None, "no metadata reads as null")
    for k in ("seq", "version_id", "timestamp", "model", "dim"):
        T.eq(g.get(k), d.get(k), "GET %s equals the PUT answer's" % k)
    T.eq(r.header("ETag"), '"%s"' % d.get("version_id"), "GET ETag")

    # What GET printed reads back to the same floats when PUT again.
    r2 = c.req("PUT", emb("rt", "b"), body=b'{"model":"bits","vector":' +
               r.raw[r.raw.index(b"[", r.raw.index(b'"vector"')):r.raw.index(b"]") + 1] + b"}")
    T.status(r2, 200, "PUT of the GET's vector")
    got2 = dict(exact_json(c.get(emb("rt", "b")).raw)).get("vector") or []
    T.eq([bits(x) for x in got2], [bits(x) for x in got], "GET output round-trips")

    meta = {"lang": "en", "tags": ["x", "y"], "n": 1.5, "nested": {"b": None, "a": True}}
    r = c.req("PUT", emb("rt", "m"), body={"vector": [1, 2, 3], "metadata": meta, "model": "m3"})
    T.status(r, 200, "PUT with metadata")
    r = c.get(emb("rt", "m"))
    T.eq((r.json or {}).get("metadata"), meta, "metadata round trip")
    T.ok(b'"metadata":{"lang":"en","n":1.5,"nested":{"a":true,"b":null},"tags":["x","y"]}'
         in r.raw, "metadata canonical", r.raw)
    r = c.req("PUT", emb("rt", "m"), body={"vector": [1, 2, 3], "metadata": None, "model": "m3"})
    T.eq((c.get(emb("rt", "m")).json or {}).get("metadata"), None, "metadata null: none")
    # Default model and odd key names (percent-decoded segment).
    r = c.req("PUT", emb("rt", "a/b c"), body={"vector": [1, 2]})
    T.status(r, 200, "PUT default model, key with / and space")
    T.eq((r.json or {}).get("model"), "default", "model defaults to \"default\"")
    T.eq((c.get(emb("rt", "a/b c")).json or {}).get("key"), "a/b c", "GET key decoded")


def t_time_travel(c):
    p = emb("tt", "k")
    v1 = c.req("PUT", p, body={"vector": [1, 0, 0], "model": "m3", "metadata": {"v": 1}}).json or {}
    v2 = c.req("PUT", p, body={"vector": [0, 1, 0], "model": "m3", "metadata": {"v": 2}}).json or {}
    T.ok(v2.get("seq", 0) > v1.get("seq", 0), "seq grows", (v1, v2))
    r = c.get(p)
    T.eq(((r.json or {}).get("vector"), (r.json or {}).get("metadata")), ([0, 1, 0], {"v": 2}),
         "GET after overwrite: the new one")
    r = c.get(p + "?at=" + q(v1.get("timestamp", "")))
    T.status(r, 200, "GET ?at=T1")
    T.eq(((r.json or {}).get("vector"), (r.json or {}).get("metadata"),
          (r.json or {}).get("version_id")), ([1, 0, 0], {"v": 1}, v1.get("version_id")),
         "GET ?at=T1 after overwrite: the old one")
    r = c.get(p + "?at=" + v1.get("version_id", "")[:12])
    T.eq((r.json or {}).get("version_id"), v1.get("version_id"), "?at=<version id prefix>")

    r = c.delete(p)
    T.status(r, 200, "DELETE embedding")
    t = r.json or {}
    T.eq(members(r.raw), DEL_MEMBERS, "DELETE answer members, canonical order")
    T.eq((t.get("deleted"), t.get("namespace"), t.get("key")), (True, "tt", "k"), "tombstone")
    T.ok(t.get("seq", 0) > v2.get("seq", 0), "tombstone seq", t)
    T.eq(r.header("ETag"), '"%s"' % t.get("version_id"), "DELETE ETag")
    T.error(c.get(p), 404, "not_found", "GET after delete", msg_re="deleted")
    r = c.get(p + "?at=" + q(v2.get("timestamp", "")))
    T.eq((r.json or {}).get("vector"), [0, 1, 0], "GET ?at=T2 after delete: the one before")
    T.error(c.delete(p), 404, "not_found", "DELETE again")
    T.error(c.get(emb("tt", "never")), 404, "not_found", "GET never embedded")
    T.error(c.delete(emb("tt", "never")), 404, "not_found", "DELETE never embedded")
    T.error(c.get(p + "?at=2000-01-01T00:00:00Z"), 404, "not_found", "GET ?at before the first")
    T.error(c.get(p + "?at=yesterday-ish"), 400, "invalid", "GET ?at=garbage")
    # The embedding and the value are independent.
    c.put("%s/tt/k" % API, {"x": 1})
    T.status(c.get("%s/tt/k" % API), 200, "the value is there")
    T.error(c.get(p), 404, "not_found", "the value does not revive the embedding")
    # Writing again after a delete.
    r = c.req("PUT", p, body={"vector": [0, 0, 1], "model": "m3"})
    T.status(r, 200, "PUT after delete")
    T.eq((c.get(p).json or {}).get("vector"), [0, 0, 1], "GET after re-embedding")


def t_put_errors(c):
    c.req("PUT", emb("er", "base"), body={"vector": [1, 2, 3, 4], "model": "four"})
    r = c.req("PUT", emb("er", "x"), body={"vector": [1, 2, 3], "model": "four"})
    T.error(r, 400, "invalid", "dimension mismatch", msg_re=r"3.*4")
    r = c.req("PUT", emb("er", "x"), body='{"vector":[1,"2",3,4],"model":"four"}')
    T.error(r, 400, "invalid", "string component", msg_re=r"component 1 ")
    r = c.req("PUT", emb("er", "x"), body='{"vector":[1,2,null,4],"model":"four"}')
    T.error(r, 400, "invalid", "null component", msg_re=r"component 2 ")
    r = c.req("PUT", emb("er", "x"), body='{"vector":[1,2,3,1e39],"model":"four"}')
    T.error(r, 400, "invalid", "1e39 overflows float32",
            msg_re=r"^vector component 3 is not a finite number$")
    r = c.req("PUT", emb("er", "x"), body='{"vector":[-3.5e38,2,3,4],"model":"four"}')
    T.error(r, 400, "invalid", "-3.5e38 overflows float32", msg_re=r"component 0 ")
    r = c.req("PUT", emb("er", "x"), body='{"vector":[[1],2,3,4],"model":"four"}')
    T.error(r, 400, "invalid", "nested array component", msg_re=r"component 0 ")
    r = c.req("PUT", emb("er", "x"), body='{"vector":[1,2,3,1e999],"model":"four"}')
    T.error(r, 400, "invalid", "1e999 (out of double range)")
    T.error(c.req("PUT", emb("er", "x"), body={"vector": []}), 400, "invalid", "empty vector",
            msg_re="empty")
    T.error(c.req("PUT", emb("er", "x"), body={"vector": "1,2"}), 400, "invalid",
            "vector not an array", msg_re="array")
    T.error(c.req("PUT", emb("er", "x"), body={"vector": {"a": 1}}), 400, "invalid",
            "vector an object")
    T.error(c.req("PUT", emb("er", "x"), body={"model": "four"}), 400, "invalid",
            "vector missing", msg_re="missing")
    T.error(c.req("PUT", emb("er", "x"), body={"vector": [1, 2, 3, 4], "model": "four",
                                               "meta": 1}),
            400, "invalid", "unknown member", msg_re='"meta"')
    T.error(c.req("PUT", emb("er", "x"), body={"vector": [1, 2, 3, 4], "model": 4}), 400,
            "invalid", "model not a string")
    T.error(c.req("PUT", emb("er", "x"), body={"vector": [1, 2, 3, 4], "model": "_sys"}), 400,
            "invalid", "model starting with _")
    T.error(c.req("PUT", emb("er", "x"), body='{"vector":[1,2,3,4]'), 400, "invalid",
            "bad JSON")
    T.error(c.req("PUT", emb("er", "x"), body=""), 400, "invalid", "no body")
    T.error(c.req("PUT", emb("er", "x"), body="[1,2,3,4]"), 400, "invalid", "array body")
    T.error(c.req("PUT", emb("n" * 124, "x"), body={"vector": [1, 2, 3, 4], "model": "four"}),
            400, "invalid", "namespace longer than 123 bytes")
    T.error(c.get(emb("_emb", "x")), 404, "not_found", "system namespace segment: no route")
    T.error(c.get("%s/er/_x/_embedding" % API), 404, "not_found", "system key segment: no route")
    T.error(c.get(emb("er", "x") + "/more"), 404, "not_found", "segment after _embedding")
    # Whitespace everywhere, and an escaped member name.
    r = c.req("PUT", emb("er", "ws"),
              body=' {\n "mod\\u0065l" : "four" ,\t"vector" : [ 1 , -0 ,\r\n 3e0 , 4 ] } ')
    T.status(r, 200, "PUT with whitespace and escapes")
    got = dict(exact_json(c.get(emb("er", "ws")).raw)).get("vector") or []
    T.eq([bits(x) for x in got], [bits(x) for x in (1.0, -0.0, 3.0, 4.0)],
         "whitespace body read right (-0 kept)")
    # The 405s.
    for method, path, want in (("POST", emb("er", "x"), {"GET", "PUT", "DELETE"}),
                               ("PATCH", emb("er", "x"), {"GET", "PUT", "DELETE"}),
                               ("GET", search_path(), {"POST"}),
                               ("PUT", search_path("er"), {"POST"}),
                               ("DELETE", search_path("er"), {"POST"})):
        r = c.req(method, path, body={} if method in ("POST", "PUT", "PATCH") else None)
        T.error(r, 405, "method_not_allowed", "%s %s" % (method, path))
        got = allow_set(r)
        T.ok(want <= got <= want | {"HEAD", "OPTIONS"}, "%s %s: Allow %s" % (method, path,
                                                                           sorted(want)),
             r.header("Allow"))


def load_search_data(c):
    """Two namespaces of 8-d embeddings (model m8), with values and metadata."""
    rnd = random.Random(7)
    items = []
    for ns in ("s1", "s2"):
        for i in range(30):
            key = "k%02d" % i
            vec = [rnd.uniform(-1, 1) for _ in range(8)]
            if ns == "s1":
                vec = [x + 1.5 for x in vec]  # s1 sits near (1.5, ...): better cosine hits
            it = {"ns": ns, "key": key, "vec": [f32(x) for x in vec], "group": "ab"[i % 2],
                  "n": i, "tag": "xyz"[i % 3], "has_value": i % 5 != 4}
            if it["has_value"]:
                c.put("%s/%s/%s" % (API, ns, key), {"group": it["group"], "n": i})
            r = c.req("PUT", emb(ns, key), body={"vector": vec, "model": "m8",
                                                 "metadata": {"tag": it["tag"]}})
            if r.status != 200:
                T.status(r, 200, "PUT %s/%s" % (ns, key))
            it["ts"] = (r.json or {}).get("timestamp")
            it["version_id"] = (r.json or {}).get("version_id", "")
            items.append(it)
    return items, rnd


def t_search(c, items, rnd):
    query = [rnd.uniform(-1, 1) + 1.4 for _ in range(8)]
    for m in ("cosine", "dot", "l2"):
        for k in (1, 5, 60, 100):
            r = c.post(search_path(), {"vector": query, "metric": m, "top_k": k, "model": "m8"})
            check_hits(r, brute(items, query, m, k), "%s top_k=%d" % (m, k))
    r = c.post(search_path(), {"vector": query, "model": "m8"})
    hits = check_hits(r, brute(items, query), "defaults: cosine, top 10")
    if hits:
        by = {(it["ns"], it["key"]): it for it in items}
        h = hits[0]
        rr = c.get(emb(h["namespace"], h["key"]))
        T.eq((h.get("seq"), h.get("version_id"), h.get("timestamp")),
             ((rr.json or {}).get("seq"), (rr.json or {}).get("version_id"),
              (rr.json or {}).get("timestamp")), "a hit names the embedding version")
        T.ok((h["namespace"], h["key"]) in by, "hit is a known key")
    # Without a model: all candidates of m8 in s1/s2 when the namespace is given.
    r = c.post(search_path("s1"), {"vector": query})
    check_hits(r, brute(items, query, keep=lambda it: it["ns"] == "s1"), "no model, ns s1")
    # Thresholds.
    for m, th in (("cosine", 0.9), ("dot", 10.0), ("l2", 2.0)):
        r = c.post(search_path(), {"vector": query, "metric": m, "threshold": th, "top_k": 1000,
                                   "model": "m8"})
        want = brute(items, query, m, 1000, threshold=th)
        T.ok(0 < len(want) < len(items), "threshold %s %g splits the set" % (m, th), len(want))
        check_hits(r, want, "%s threshold %g" % (m, th))
    # Namespace restriction before the top-k cut: s2 loses to s1 on cosine, yet k come back.
    q1 = items[0]["vec"]
    best = brute(items, q1, k=5)
    T.ok(all(ns == "s1" for ns, _, _ in best), "the best matches live in s1", best)
    r = c.post(search_path("s2"), {"vector": q1, "top_k": 5, "model": "m8"})
    hits = check_hits(r, brute(items, q1, k=5, keep=lambda it: it["ns"] == "s2"),
                      "ns path form s2")
    T.eq(len(hits or []), 5, "ns s2: k results although better ones live in s1")
    r = c.post(search_path("nothing"), {"vector": q1, "model": "m8"})
    check_hits(r, [], "namespace without embeddings: no hits")
    r = c.post(search_path(), {"vector": q1, "model": "never"})
    check_hits(r, [], "model never used: no hits")
    # Filters on values: string and JSON forms; keys without a value never match.
    r = c.post(search_path(), {"vector": query, "top_k": 100, "model": "m8",
                               "filter": 'group = "a"'})
    check_hits(r, brute(items, query, k=100,
                        keep=lambda it: it["has_value"] and it["group"] == "a"),
               "filter string form")
    r = c.post(search_path("s2"), {"vector": query, "top_k": 100, "model": "m8",
                                   "filter": {"field": "n", "op": ">=", "value": 20}})
    check_hits(r, brute(items, query, k=100,
                        keep=lambda it: it["ns"] == "s2" and it["has_value"] and it["n"] >= 20),
               "filter JSON form, ns s2")
    r = c.post(search_path(), {"vector": query, "top_k": 3, "model": "m8", "metric": "l2",
                               "filter": "n < 10 and group = \"b\""})
    check_hits(r, brute(items, query, "l2", 3,
                        keep=lambda it: it["has_value"] and it["n"] < 10 and it["group"] == "b"),
               "filter and l2 and top_k")
    # Filters on metadata.
    r = c.post(search_path(), {"vector": query, "top_k": 100, "model": "m8",
                               "meta_filter": 'tag = "x"'})
    check_hits(r, brute(items, query, k=100, keep=lambda it: it["tag"] == "x"),
               "meta_filter string form")
    r = c.post(search_path(), {"vector": query, "top_k": 100, "model": "m8",
                               "meta_filter": {"field": "tag", "op": "!=", "value": "x"},
                               "filter": 'group = "b"'})
    check_hits(r, brute(items, query, k=100,
                        keep=lambda it: it["tag"] != "x" and it["has_value"]
                        and it["group"] == "b"),
               "meta_filter JSON form with filter")
    # exact:true and ef_search give the same answer here.
    for extra in ({"exact": True}, {"exact": False}, {"ef_search": 1}, {"ef_search": 100000}):
        body = {"vector": query, "top_k": 7, "model": "m8", "metric": "dot"}
        body.update(extra)
        check_hits(c.post(search_path(), body), brute(items, query, "dot", 7), "%r" % extra)
    # null members read as absent.
    r = c.post(search_path(), {"vector": query, "model": "m8", "top_k": None, "metric": None,
                               "filter": None, "threshold": None, "at": None})
    check_hits(r, brute(items, query), "null members are absent")


def t_search_at(c, items, rnd):
    query = [rnd.uniform(-1, 1) + 1.4 for _ in range(8)]
    last = max(items, key=lambda it: it["ts"])
    t0 = last["ts"]
    old = [dict(it) for it in items]
    # Move s2/k03 onto the query, delete the current best, add a new key.
    best = brute(items, query, k=1)[0]
    mv = next(it for it in items if (it["ns"], it["key"]) == ("s2", "k03"))
    c.req("PUT", emb("s2", "k03"), body={"vector": query, "model": "m8",
                                         "metadata": {"tag": mv["tag"]}})
    mv["vec"] = [f32(x) for x in query]
    T.status(c.delete(emb(best[0], best[1])), 200, "delete the best")
    items = [it for it in items if (it["ns"], it["key"]) != best[:2]]
    c.req("PUT", emb("s1", "new"), body={"vector": [-x for x in query], "model": "m8",
                                         "metadata": {"tag": "x"}})
    items.append({"ns": "s1", "key": "new", "vec": [f32(-x) for x in query], "tag": "x",
                  "has_value": False, "group": None, "n": None})
    r = c.post(search_path(), {"vector": query, "top_k": 100, "model": "m8"})
    hits = check_hits(r, brute(items, query, k=100), "now: after overwrite, delete, insert")
    if hits:
        T.eq((hits[0]["namespace"], hits[0]["key"]), ("s2", "k03"), "moved key is first now")
        T.ok(close(hits[0]["score"], 1.0), "its cosine is 1", hits[0])
    for at in (t0, unix_form(t0), last["version_id"][:16]):
        r = c.post(search_path(), {"vector": query, "top_k": 100, "model": "m8", "at": at})
        check_hits(r, brute(old, query, k=100), "at=T0 (%s)" % at)
    r = c.post(search_path(), {"vector": query, "top_k": 5, "model": "m8", "at": t0,
                               "filter": 'group = "a"', "meta_filter": 'tag != "z"',
                               "metric": "l2"})
    check_hits(r, brute(old, query, "l2", 5,
                        keep=lambda it: it["has_value"] and it["group"] == "a"
                        and it["tag"] != "z"),
               "at=T0 with both filters, l2")
    r = c.post(search_path(), {"vector": query, "model": "m8", "at": "2000-01-01T00:00:00Z"})
    check_hits(r, [], "at before anything: no hits")
    r = c.post(search_path(), {"vector": query, "model": "m8", "at": 0})
    check_hits(r, [], "at 0 is the epoch (as in _query), not now: no hits")
    return items


def t_search_errors(c):
    v8 = [1] * 8
    cases = [
        ({"vector": v8, "model": "m8", "metric": "cos"}, r'"metric"', "bad metric"),
        ({"vector": v8, "model": "m8", "metric": 2}, r'"metric"', "metric not a string"),
        ({"vector": v8, "model": "m8", "top_k": 0}, r'"top_k"', "top_k 0"),
        ({"vector": v8, "model": "m8", "top_k": 1000001}, r'"top_k"', "top_k too large"),
        ({"vector": v8, "model": "m8", "top_k": -1}, r'"top_k"', "top_k negative"),
        ({"vector": v8, "model": "m8", "top_k": 1.5}, r'"top_k"', "top_k fraction"),
        ({"vector": v8, "model": "m8", "top_k": "5"}, r'"top_k"', "top_k a string"),
        ({"vector": v8, "model": "m8", "ef_search": 0}, r'"ef_search"', "ef_search 0"),
        ({"vector": v8, "model": "m8", "ef_search": 100001}, r'"ef_search"', "ef_search large"),
        ({"vector": v8, "model": "m8", "threshold": "0.5"}, r'"threshold"', "threshold string"),
        ({"vector": v8, "model": "m8", "exact": 1}, r'"exact"', "exact not a bool"),
        ({"vector": v8, "model": "m8", "k": 3}, r'"k"', "unknown member"),
        ({"vector": v8, "model": "m8", "namespace": "s1"}, r'"namespace"', "namespace member"),
        ({"model": "m8"}, "missing", "vector missing"),
        ({"vector": [], "model": "m8"}, "empty", "vector empty"),
        ({"vector": [1, 2, "x", 4, 5, 6, 7, 8], "model": "m8"}, "component 2 ", "string comp"),
        ({"vector": [1, 2, 3], "model": "m8"}, r"3.*8", "dimension mismatch"),
        ({"vector": v8, "model": "m8", "filter": "group = "}, r"^filter: ", "bad filter"),
        ({"vector": v8, "model": "m8", "filter": 5}, r"^filter", "filter a number"),
        ({"vector": v8, "model": "m8", "meta_filter": "tag =="}, r"^meta_filter: ",
         "bad meta_filter"),
        ({"vector": v8, "model": "m8", "at": "not a time"}, r"^at: ", "bad at"),
        ({"vector": v8, "model": "m8", "at": True}, r'"at"', "at a bool"),
        ({"vector": v8}, "model", "several models without a model"),
    ]
    for body, msg, what in cases:
        T.error(c.post(search_path(), body), 400, "invalid", what, msg_re=msg)
    T.error(c.post(search_path(), '{"vector":[1,2,3,1e39,5,6,7,8],"model":"m8"}'), 400,
            "invalid", "1e39 component", msg_re="component 3 ")
    # Member names holding U+0000 are other names, never "vector" or "model".
    T.error(c.post(search_path(), '{"vector\\u0000":[1,1,1,1,1,1,1,1],"model":"m8"}'), 400,
            "invalid", "vector\\u0000 member", msg_re="unknown member")
    T.error(c.post(search_path(), '{"vector":[1,1,1,1,1,1,1,1],"model\\u0000":"m8"}'), 400,
            "invalid", "model\\u0000 member", msg_re="unknown member")
    T.error(c.post(search_path(), "[1,2]"), 400, "invalid", "array body")
    T.error(c.post(search_path(), ""), 400, "invalid", "empty body")
    T.error(c.post(search_path(), "{"), 400, "invalid", "bad JSON")
    T.error(c.post(search_path(), {"vector": v8}, ctype="text/plain"), 415,
            "unsupported_media_type", "text/plain body")
    T.error(c.post(search_path("n" * 124), {"vector": v8, "model": "m8"}), 400, "invalid",
            "namespace too long")
    T.error(c.post("%s/_x/_search" % API, {"vector": v8}), 404, "not_found", "system ns: no route")
    T.error(c.post("%s/s1/_search/x" % API, {"vector": v8}), 404, "not_found",
            "segment after _search")


def t_hnsw(c):
    """2,100 embeddings of one model in one namespace: the current-state search goes through
    the HNSW index; exact:true must give the brute-force answer, and the index nearly so."""
    rnd = random.Random(11)
    items = []
    cl = [[rnd.uniform(-5, 5) for _ in range(6)] for _ in range(20)]
    for i in range(2100):
        center = cl[i % 20]
        vec = [f32(x + rnd.gauss(0, 0.3)) for x in center]
        items.append({"ns": "big", "key": "b%04d" % i, "vec": vec})
    for it in items:
        r = c.req("PUT", emb("big", it["key"]), body={"vector": it["vec"], "model": "h6"})
        if r.status != 200:
            T.status(r, 200, "PUT big/%s" % it["key"])
            return
    recall = []
    for _ in range(5):
        query = [x + rnd.gauss(0, 0.5) for x in rnd.choice(cl)]
        for m in ("cosine", "l2"):
            want = brute(items, query, m, 10)
            check_hits(c.post(search_path("big"), {"vector": query, "model": "h6", "metric": m,
                                                   "exact": True}),
                       want, "exact %s over 2,100" % m)
            r = c.post(search_path("big"), {"vector": query, "model": "h6", "metric": m,
                                            "ef_search": 200})
            if T.status(r, 200, "index search %s" % m):
                got = [(h["namespace"], h["key"]) for h in (r.json or {}).get("results", [])]
                recall.append(len(set(got) & {(w[0], w[1]) for w in want}) / 10.0)
                T.eq(len(got), 10, "index search: 10 hits")
    avg = sum(recall) / max(1, len(recall))
    T.ok(avg >= 0.9, "index recall@10 >= 0.9 against brute force", avg)
    print("   index recall@10: %.3f" % avg)


def t_metrics(c):
    r = c.get("/metrics")
    T.status(r, 200, "GET /metrics")
    samples, _ = parse_metrics(r.raw.decode())
    for route, method in (("/api/v1/{ns}/{key}/_embedding", "PUT"),
                          ("/api/v1/{ns}/{key}/_embedding", "GET"),
                          ("/api/v1/{ns}/{key}/_embedding", "DELETE"),
                          ("/api/v1/_search", "POST"), ("/api/v1/{ns}/_search", "POST")):
        v = metric(samples, "korudelta_http_requests_total", route=route, method=method,
                   status="200")
        T.ok(v is not None and v > 0, "requests counted under %s %s" % (method, route), v)
    v = metric(samples, "korudelta_http_requests_total", route="/api/v1/_search", status="400")
    T.ok(v is not None and v > 0, "400s counted under /api/v1/_search", v)


def main():
    tmp = tempdir("kd_httpvec_")
    srv = None
    try:
        try:
            srv = Server(os.path.join(tmp, "db"), args=["--sync", "off"],
                         env={"KORU_LOG": "warn"})
        except Exception as e:
            T.ok(False, "the server starts", e)
            return T.finish()
        items = rnd = None
        sections = [
            ("embedding round trip", lambda c: t_roundtrip(c)),
            ("embedding time travel and delete", lambda c: t_time_travel(c)),
            ("embedding errors and 405s", lambda c: t_put_errors(c)),
        ]
        for name, fn in sections:
            with T.section(name):
                fn(srv.client())
        with T.section("search"):
            c = srv.client()
            items, rnd = load_search_data(c)
            t_search(c, items, rnd)
        if items:
            with T.section("search at=T"):
                t_search_at(srv.client(), items, rnd)
        with T.section("search errors"):
            t_search_errors(srv.client())
        with T.section("search through the HNSW index"):
            t_hnsw(srv.client())
        with T.section("metrics"):
            t_metrics(srv.client())
        with T.section("stop"):
            T.ok(srv.alive(), "server still running", srv.log())
            T.eq(srv.stop(), 0, "server exits 0 on SIGTERM")
    except SystemExit:
        T.ok(False, "interrupted by a signal")
    finally:
        if srv is not None and srv.alive():
            srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
