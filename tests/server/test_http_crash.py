# test_http_crash.py — kill -9 of a real `kdelta serve` under concurrent HTTP writers
# (issue 6, "Real crashes"). The black-box twin of tests/unit/test_crash.c: what that test
# checks for the library in-process, this one checks for the server over loopback.
#
# Every round, on the same database directory (so recovery after recovery is exercised):
#   1. start `kdelta serve` (sync full, the default) on a free port;
#   2. K writer threads, each with its own keep-alive connection, write flat out: PUTs of
#      new keys, overwrites and DELETEs of live keys, and atomic batches of 2..20 items
#      (POST /api/v1/_batch). A thread writes only its own keys (t<thread>-<n>), so the
#      model is exact. Before sending it notes the operation as in flight; when a whole
#      2xx answer has arrived it records what the server acknowledged (seq, version_id,
#      timestamp for single writes; first_seq..last_seq for a batch);
#   3. after a seeded random delay (some rounds within 50 ms, most 100..1500 ms) the test
#      sends SIGKILL to the kdelta process itself. Client errors after that are expected;
#      an answer not fully received leaves its operation in flight;
#   4. a new server on the same directory must hold exactly the model:
#      - every acknowledged version, at its seq, with the same version_id, timestamp,
#        value and deleted flag (a missing one is a "LOST" failure naming key and seq);
#      - every version verified in an earlier round, unchanged;
#      - each thread's one in-flight operation whole or not at all (a batch all-or-nothing,
#        items at consecutive seqs in op order with one timestamp); if present it joins
#        the model;
#      - nothing else: the feed holds seqs 1..S without holes, S == _status seq ==
#        _status versions, and every version is explained by an ack or an in-flight op;
#      - previous_version chains, change types, non-decreasing timestamps;
#      - each key's current value (GET) and each namespace's live key list (_keys);
#   5. the verifying server is stopped (SIGTERM, must exit 0; in some rounds SIGKILL
#      again, idle) and `kdelta check --deep` on the stopped database must exit 0.
#
# Environment:
#   KD_HTTP_CRASH_ROUNDS   rounds (default 8; `make test-crash` runs 100)
#   KD_HTTP_CRASH_SEED     seed (default from the clock; printed first so a run can be
#                          repeated). Thread timing is not reproducible, but every choice
#                          (op mix, keys, values, round kinds, kill delays) follows the seed.
#   KD_HTTP_CRASH_THREADS  writer threads (default 6)
#   KD_HTTP_CRASH_FULL_LIMIT  while the database holds fewer versions than this (default
#                          60000), every round re-reads the whole feed and re-checks every
#                          earlier version; beyond it only every 5th round and the last do,
#                          the others read the new seqs only (keeps 100 rounds linear).
#   KD_HTTP_CRASH_SABOTAGE self-test of the checker: "vid" corrupts one acknowledged
#                          version_id in the model, "value" one acknowledged value, "drop"
#                          forgets one acknowledgement (the version then looks unexplained).
#                          Each must make the run fail.
#
# Python 3 standard library only; ends with "N passed, N failed".
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httplib import KDELTA, Client, Server, Tests, q, tempdir  # noqa: E402

T = Tests("test_http_crash")
API = "/api/v1"
NSS = ("hc", "hc2")
ROUNDS = int(os.environ.get("KD_HTTP_CRASH_ROUNDS", "8"))
SEED = int(os.environ.get("KD_HTTP_CRASH_SEED", str(int(time.time() * 1000) % 1000000007)))
NTHREADS = int(os.environ.get("KD_HTTP_CRASH_THREADS", "6"))
SABOTAGE = os.environ.get("KD_HTTP_CRASH_SABOTAGE", "")
FULL_LIMIT = int(os.environ.get("KD_HTTP_CRASH_FULL_LIMIT", "60000"))
FULL_EVERY = 5
MAXSHOW = 8          # problems shown per failed check


FEED_ERRORS = []


def rec(ns, key):
    return "%s/%s/%s" % (API, q(ns), q(key))


class CrashServer(Server):
    """A Server that learns its port only from its own stderr line. httplib's fallback
    reads <db>/serve.addr, which after a kill -9 still names the dead server's port."""

    def _port_from_addr_file(self):
        pass


# ---- the model ----------------------------------------------------------------------------
#
# A version is a dict: ns, key, seq, vid, ts, value, deleted (vid/ts None until known: a
# batch answer carries only seqs). `verified` maps seq -> version for everything checked in
# a finished round; `keys` maps (ns, key) -> list of its verified versions, oldest first.

class Model:
    def __init__(self):
        self.verified = {}
        self.keys = {}

    def add(self, v):
        self.verified[v["seq"]] = v
        self.keys.setdefault((v["ns"], v["key"]), []).append(v)

    def live(self, nk):
        h = self.keys.get(nk)
        return bool(h) and not h[-1]["deleted"]


class Op:
    """One request: kind 'put' | 'delete' | 'batch'; items a list of (ns, key, value,
    deleted) in op order."""
    __slots__ = ("kind", "items", "ack")

    def __init__(self, kind, items):
        self.kind = kind
        self.items = items
        self.ack = None     # list of version dicts once acknowledged


class Writer:
    """Per-thread state that lasts across rounds: the keys it owns and which are live."""

    def __init__(self, t):
        self.t = t
        self.next_n = 0
        self.live = []          # (ns, key) of live keys, in a stable order
        self.live_set = set()

    def new_key(self):
        n = self.next_n
        self.next_n += 1
        return (NSS[n % 2], "t%d-%d" % (self.t, n))

    def set_live(self, nk, live):
        if live and nk not in self.live_set:
            self.live_set.add(nk)
            self.live.append(nk)
        elif not live and nk in self.live_set:
            self.live_set.discard(nk)
            self.live.remove(nk)


def make_value(rng, t, n, big):
    r = rng.random()
    if big and r < 0.05:
        return {"t": t, "n": n, "big": "B%d-" % n + "x" * rng.randint(66000, 90000)}
    if r < 0.08:
        return rng.randint(-10**12, 10**12)
    if r < 0.14:
        return "s%d é✓ %s" % (n, "y" * rng.randint(0, 40))
    if r < 0.18:
        return [n, t, "a", [True, False, None]]
    return {"t": t, "n": n, "pad": "p" * rng.randint(0, 300), "ok": rng.random() < 0.5}


def choose_op(rng, w, big, counter):
    """The thread's next operation (its keys only; batch keys distinct)."""
    r = rng.random()
    counter[0] += 1
    c = counter[0]
    if r < 0.20 and len(w.live) >= 1:
        nk = w.live[rng.randrange(len(w.live))]
        return Op("delete", [(nk[0], nk[1], None, True)])
    if r < 0.40 and w.live:
        nk = w.live[rng.randrange(len(w.live))]
        return Op("put", [(nk[0], nk[1], make_value(rng, w.t, c, big), False)])
    if r < 0.62:
        size = rng.randint(2, 20)
        used = set()
        items = []
        for _ in range(size):
            k = rng.random()
            if k < 0.3 and w.live:
                nk = w.live[rng.randrange(len(w.live))]
                if nk in used:
                    continue
                used.add(nk)
                if rng.random() < 0.3:
                    items.append((nk[0], nk[1], None, True))
                else:
                    items.append((nk[0], nk[1], make_value(rng, w.t, c, big), False))
            else:
                nk = w.new_key()
                used.add(nk)
                items.append((nk[0], nk[1], make_value(rng, w.t, c, big), False))
        if len(items) < 2:
            nk = w.new_key()
            items.append((nk[0], nk[1], make_value(rng, w.t, c, big), False))
        return Op("batch", items)
    nk = w.new_key()
    return Op("put", [(nk[0], nk[1], make_value(rng, w.t, c, big), False)])


# ---- one writer thread in one round -------------------------------------------------------

class RoundThread(threading.Thread):
    def __init__(self, w, port, rng, big, killed, start_evt):
        super().__init__(daemon=True)
        self.w = w
        self.port = port
        self.rng = rng
        self.big = big
        self.killed = killed
        self.start_evt = start_evt
        self.acked = []             # acknowledged Ops, in order
        self.inflight = None        # the Op whose answer never (fully) arrived
        self.problems = []          # unexpected answers / errors before the kill
        self.counter = [0]

    def run(self):
        c = Client(self.port, timeout=60)
        self.start_evt.wait()
        try:
            while True:
                op = choose_op(self.rng, self.w, self.big, self.counter)
                self.inflight = op
                try:
                    r = self.send(c, op)
                except Exception as e:  # connection reset, EOF mid-answer, refused ...
                    if not self.killed.is_set():
                        self.problems.append("%s before the kill: %r" % (op.kind, e))
                    return
                if not self.take_answer(op, r):
                    return
                self.inflight = None
                self.acked.append(op)
                for ns, key, _, deleted in op.items:
                    self.w.set_live((ns, key), not deleted)
        finally:
            c.close()

    def send(self, c, op):
        ns, key, value, deleted = op.items[0]
        if op.kind == "put":
            return c.put(rec(ns, key), value)
        if op.kind == "delete":
            return c.delete(rec(ns, key))
        ops = []
        for ns, key, value, deleted in op.items:
            if deleted:
                ops.append({"op": "delete", "namespace": ns, "key": key})
            else:
                ops.append({"op": "put", "namespace": ns, "key": key, "value": value})
        return c.post(API + "/_batch", {"ops": ops})

    def take_answer(self, op, r):
        """Turns a whole answer into acknowledged versions; False (op stays in flight, a
        problem is noted) when the answer is not the 200 the model expects."""
        d = r.json if isinstance(r.json, dict) else {}
        if r.status != 200:
            self.problems.append("%s %s/%s: %r" % (op.kind, op.items[0][0], op.items[0][1], r))
            return False
        if op.kind == "batch":
            n = len(op.items)
            fs, ls = d.get("first_seq"), d.get("last_seq")
            if d.get("committed") != n or not isinstance(fs, int) or ls != fs + n - 1:
                self.problems.append("batch of %d: bad answer %r" % (n, r))
                return False
            op.ack = [{"ns": ns, "key": key, "seq": fs + i, "vid": None, "ts": None,
                       "value": value, "deleted": deleted}
                      for i, (ns, key, value, deleted) in enumerate(op.items)]
        else:
            ns, key, value, deleted = op.items[0]
            if not (isinstance(d.get("seq"), int) and isinstance(d.get("version_id"), str)
                    and isinstance(d.get("timestamp"), str) and d.get("deleted") is deleted
                    and d.get("namespace") == ns and d.get("key") == key):
                self.problems.append("%s %s/%s: bad answer %r" % (op.kind, ns, key, r))
                return False
            op.ack = [{"ns": ns, "key": key, "seq": d["seq"], "vid": d["version_id"],
                       "ts": d["timestamp"], "value": value, "deleted": deleted}]
        return True


# ---- reading the database back ------------------------------------------------------------

def read_feed(c, upto, since=0, pages=None):
    """Every version with seq since+1..upto (the feed, oldest first). pages, when given,
    collects (since, entries, first seq, last seq, last_seq, bytes) of each answer."""
    out = []
    while since < upto:
        r = c.get(API + "/_changes?feed=longpoll&since=%d&limit=10000&timeout=0" % since)
        if r.status != 200 or not isinstance(r.json, dict):
            raise RuntimeError("feed since %d: %r" % (since, r))
        ch = r.json["changes"]
        nxt = r.json["last_seq"]
        # A page ends at its last_seq: a change past it would come again on the next page
        # (a bug once: after refusing a large change for the byte cap the server still
        # took later, smaller ones).
        past = [e for e in ch if isinstance(e.get("seq"), int) and e["seq"] > nxt]
        if past:
            FEED_ERRORS.append("long-poll page since=%d has %d changes past its last_seq %d"
                               % (since, len(past), nxt))
            ch = [e for e in ch if not (isinstance(e.get("seq"), int) and e["seq"] > nxt)]
        out.extend(ch)
        if pages is not None:
            pages.append((since, len(ch), ch[0].get("seq") if ch else None,
                          ch[-1].get("seq") if ch else None, nxt, len(r.raw)))
        if nxt <= since:
            break
        since = nxt
    return out


def live_keys(c, ns):
    keys = []
    after = None
    while True:
        path = API + "/%s/_keys?limit=100000" % q(ns)
        if after is not None:
            path += "&after=" + q(after)
        r = c.get(path)
        if r.status != 200:
            raise RuntimeError("_keys %s: %r" % (ns, r))
        keys.extend(r.json["keys"])
        if not r.json["more"] or not r.json["keys"]:
            return keys
        after = r.json["keys"][-1]


def same_version(v, e):
    """What differs between model version v and feed entry e ('' when nothing)."""
    if (e.get("namespace"), e.get("key")) != (v["ns"], v["key"]):
        return "key %s/%s" % (e.get("namespace"), e.get("key"))
    if e.get("deleted") is not v["deleted"]:
        return "deleted %r" % e.get("deleted")
    if v["vid"] is not None and e.get("version_id") != v["vid"]:
        return "version_id %s, acknowledged %s" % (e.get("version_id"), v["vid"])
    if v["ts"] is not None and e.get("timestamp") != v["ts"]:
        return "timestamp %s, acknowledged %s" % (e.get("timestamp"), v["ts"])
    if not v["deleted"] and e.get("value") != v["value"]:
        return "value %.80r, acknowledged %.80r" % (e.get("value"), v["value"])
    if v["deleted"] and e.get("value") is not None:
        return "a tombstone with a value"
    return ""


def vname(v):
    return "%s/%s seq %d" % (v["ns"], v["key"], v["seq"])


# ---- one round ----------------------------------------------------------------------------

class Totals:
    def __init__(self):
        self.rounds = 0
        self.requests = 0           # acknowledged requests
        self.acked_versions = 0     # versions in acknowledged requests
        self.verified = 0           # version checks done (all rounds, re-checks included)
        self.lost = 0
        self.inflight_present = 0
        self.inflight_absent = 0
        self.kill_ms = []


def round_plan(rng, r):
    """(kill delay in seconds, big values?, kill the verifier too?)"""
    kind = rng.random()
    if r == 1 or kind < 0.2:
        delay = rng.uniform(0.0, 0.05)
    else:
        delay = rng.uniform(0.1, 1.5)
    return delay, rng.random() < 0.25, rng.random() < 0.3


def check(problems, what):
    detail = "\n".join(problems[:MAXSHOW])
    if len(problems) > MAXSHOW:
        detail += "\n... %d more" % (len(problems) - MAXSHOW)
    return T.ok(not problems, what, detail)


def run_round(r, dbdir, rng, model, writers, tot):
    delay, big, kill_verifier = round_plan(rng, r)
    env = {"KORU_LOG": "warn"}
    srv = CrashServer(dbdir, env=env)
    threads = []
    killed = threading.Event()
    go = threading.Event()
    try:
        T.ok(srv.port is not None and srv.alive(), "round %d: server up" % r, srv.log())
        for w in writers:
            trng = random.Random((SEED * 1000003 + r * 101 + w.t) & 0xFFFFFFFFFFFF)
            threads.append(RoundThread(w, srv.port, trng, big, killed, go))
        for th in threads:
            th.start()
        go.set()
        time.sleep(delay)
        killed.set()
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)
        for th in threads:
            th.join(60)
    finally:
        killed.set()
        srv.kill()
    T.ok(srv.proc.returncode == -signal.SIGKILL,
         "round %d: the server died of SIGKILL (exit %s)" % (r, srv.proc.returncode), srv.log())
    stuck = [th.w.t for th in threads if th.is_alive()]
    T.ok(not stuck, "round %d: every writer stopped after the kill" % r, stuck)
    check([p for th in threads for p in th.problems],
          "round %d: no unexpected answer or error before the kill" % r)

    acked_ops = [op for th in threads for op in th.acked]
    acked = [v for op in acked_ops for v in op.ack]
    tot.requests += len(acked_ops)
    tot.acked_versions += len(acked)
    tot.kill_ms.append(delay * 1000)
    if SABOTAGE and r == 1 and acked:
        sab = acked[len(acked) // 2]
        if SABOTAGE == "vid":
            sab["vid"] = "f" * 64 if sab["vid"] != "f" * 64 else "e" * 64
        elif SABOTAGE == "value":
            sab["value"] = {"sabotaged": True}
            sab["deleted"] = False
        elif SABOTAGE == "drop":
            acked.remove(sab)
        print("   SABOTAGE %s at %s" % (SABOTAGE, vname(sab)), flush=True)

    full = verify(r, dbdir, model, writers, threads, acked, kill_verifier, tot)
    print("   round %d: kill after %.0f ms%s: %d requests acknowledged (%d versions); "
          "in flight at the kill: %d present, %d absent; database holds %d versions (%s)"
          % (r, delay * 1000, ", big values" if big else "", len(acked_ops), len(acked),
             sum(1 for th in threads if th.inflight is not None and th.inflight.ack),
             sum(1 for th in threads if th.inflight is not None and not th.inflight.ack),
             len(model.verified), "all re-checked" if full else "new seqs checked"),
          flush=True)


def verify(r, dbdir, model, writers, threads, acked, kill_verifier, tot):
    srv = CrashServer(dbdir, env={"KORU_LOG": "warn"})
    try:
        c = srv.client(timeout=120)
        addr = ""
        for _ in range(40):
            try:
                with open(os.path.join(dbdir, "serve.addr")) as f:
                    addr = f.read().strip()
            except OSError:
                addr = ""
            if addr.endswith(":%d" % srv.port):
                break
            time.sleep(0.05)
        T.eq(addr, "http://127.0.0.1:%d" % srv.port,
             "round %d: serve.addr names the new server, not the killed one" % r)
        st = c.get(API + "/_status").json or {}
        S = st.get("seq")
        S = S if isinstance(S, int) else 0
        # A full round reads the whole feed and re-checks every earlier version; a light one
        # reads only the seqs after the last verified one (earlier versions are re-checked
        # every FULL_EVERY rounds, in the last round, and by `check --deep` every round).
        top = max(model.verified, default=0)
        full = len(model.verified) < FULL_LIMIT or r % FULL_EVERY == 0 or r == ROUNDS
        base = 0 if full else top
        pages = []
        feed = read_feed(c, S, since=base, pages=pages)
        by_seq = {}
        dup = []
        for e in feed:
            if e.get("seq") in by_seq:
                dup.append("seq %s twice in the feed" % e.get("seq"))
            by_seq[e.get("seq")] = e

        # Nothing else: seqs 1..S without holes, and the status agrees.
        shape = list(dup)
        if dup:
            shape.insert(0, "feed pages (since, entries, first seq, last seq, last_seq, "
                         "bytes): %s" % pages)
        if S < top:
            shape.append("LOST: _status seq %d is below the last verified seq %d" % (S, top))
            tot.lost += top - S
        if sorted(by_seq) != list(range(base + 1, S + 1)):
            missing = sorted(set(range(base + 1, S + 1)) - set(by_seq))[:10]
            shape.append("feed seqs are not %d..%s: %d entries, missing %s"
                         % (base + 1, S, len(by_seq), missing))
        if st.get("versions") != S:
            shape.append("_status versions %s != seq %s" % (st.get("versions"), S))

        # Earlier rounds: unchanged.
        old = []
        for seq, v in (model.verified.items() if full else ()):
            e = by_seq.get(seq)
            if e is None:
                old.append("LOST (verified earlier): %s" % vname(v))
                tot.lost += 1
                continue
            d = same_version(v, e)
            if d:
                old.append("CHANGED (verified earlier): %s: %s" % (vname(v), d))
        if full:
            tot.verified += len(model.verified)
            check(old, "round %d: %d versions verified in earlier rounds unchanged"
                  % (r, len(model.verified)))

        # This round's acknowledgements: present, same seq / id / timestamp / value.
        lost = []
        explained = set(model.verified)
        for v in acked:
            e = by_seq.get(v["seq"])
            explained.add(v["seq"])
            if e is None:
                lost.append("LOST: acknowledged %s is not in the database" % vname(v))
                tot.lost += 1
                continue
            d = same_version(v, e)
            if d:
                lost.append("LOST: acknowledged %s differs: %s" % (vname(v), d))
                tot.lost += 1
        tot.verified += len(acked)
        check(lost, "round %d: %d acknowledged versions present with their seq, version_id,"
              " timestamp and value" % (r, len(acked)))

        # Batch answers carry seqs only: items share one timestamp.
        bts = []
        for th in threads:
            for op in th.acked:
                if op.kind != "batch":
                    continue
                tss = {by_seq[v["seq"]].get("timestamp") for v in op.ack if v["seq"] in by_seq}
                if len(tss) > 1:
                    bts.append("batch at seq %d: %d timestamps" % (op.ack[0]["seq"], len(tss)))

        # In flight: whole or not at all.
        unexplained = {s: e for s, e in by_seq.items() if s not in explained}
        infl = []
        for th in threads:
            op = th.inflight
            if op is None:
                continue
            last = max([v["seq"] for o in th.acked for v in o.ack] or [0])
            found = []
            for i, (ns, key, value, deleted) in enumerate(op.items):
                hits = [e for s, e in unexplained.items()
                        if e.get("namespace") == ns and e.get("key") == key]
                if len(hits) > 1:
                    infl.append("thread %d: %s/%s has %d unexplained versions"
                                % (th.w.t, ns, key, len(hits)))
                found.append(hits[0] if hits else None)
            present = [f for f in found if f is not None]
            if not present:
                tot.inflight_absent += 1
                continue
            if len(present) != len(op.items):
                infl.append("thread %d: in-flight %s of %d items half applied: %d present"
                            % (th.w.t, op.kind, len(op.items), len(present)))
                continue
            s0 = present[0]["seq"]
            vers = []
            for i, ((ns, key, value, deleted), e) in enumerate(zip(op.items, present)):
                v = {"ns": ns, "key": key, "seq": s0 + i, "vid": None, "ts": None,
                     "value": value, "deleted": deleted}
                d = same_version(v, e) if e["seq"] == s0 + i else "seq %d" % e["seq"]
                if d:
                    infl.append("thread %d: in-flight %s item %d (%s): %s"
                                % (th.w.t, op.kind, i + 1, vname(v), d))
                vers.append(v)
            if s0 <= last:
                infl.append("thread %d: in-flight op at seq %d precedes its last ack %d"
                            % (th.w.t, s0, last))
            if len({e.get("timestamp") for e in present}) != 1:
                infl.append("thread %d: in-flight batch with several timestamps" % th.w.t)
            op.ack = vers
            for v in vers:
                explained.add(v["seq"])
            tot.inflight_present += 1
        check(infl + bts, "round %d: in-flight operations whole or absent, batches with one "
              "timestamp" % r)

        for s in sorted(set(by_seq) - explained)[:MAXSHOW * 2]:
            e = by_seq[s]
            shape.append("unexplained version: %s/%s seq %d" % (e.get("namespace"),
                                                                e.get("key"), s))
        check(shape, "round %d: nothing else: seqs %d..%s without holes, all explained, "
              "_status agrees" % (r, base + 1, S))

        # Fill in what the batch answers did not say, then extend the model.
        new = []
        for th in threads:
            ops = th.acked + ([th.inflight] if th.inflight is not None and th.inflight.ack
                              else [])
            for op in ops:
                for v in op.ack:
                    e = by_seq.get(v["seq"])
                    if e is not None and v["vid"] is None:   # batch items only
                        v["vid"] = e.get("version_id")
                        v["ts"] = e.get("timestamp")
                    new.append(v)
        for v in sorted(new, key=lambda v: v["seq"]):
            if v["seq"] in by_seq and v["seq"] not in model.verified:
                model.add(v)

        # Chains, change types, timestamps over the feed read (a light round starts from
        # each key's last version verified before it).
        chain = []
        prev_vid = {}
        last_ts = ""
        if not full:
            for nk, h in model.keys.items():
                older = [v for v in h if v["seq"] <= base]
                if older:
                    prev_vid[nk] = (older[-1]["vid"], older[-1]["deleted"])
            if base:
                last_ts = model.verified[base]["ts"] or ""
        for s in sorted(by_seq):
            e = by_seq[s]
            nk = (e.get("namespace"), e.get("key"))
            pv = prev_vid.get(nk)
            if e.get("previous_version") != (pv[0] if pv else None):
                chain.append("seq %d (%s/%s): previous_version %s, want %s"
                             % (s, nk[0], nk[1], e.get("previous_version"),
                                pv[0] if pv else None))
            want = ("delete" if e.get("deleted") else
                    "insert" if pv is None or pv[1] else "update")
            if e.get("change") != want:
                chain.append("seq %d: change %s, want %s" % (s, e.get("change"), want))
            ts = e.get("timestamp") or ""
            if ts < last_ts:
                chain.append("seq %d: timestamp %s before %s" % (s, ts, last_ts))
            last_ts = max(last_ts, ts)
            prev_vid[nk] = (e.get("version_id"), e.get("deleted"))
        check(chain, "round %d: previous_version chains, change types, timestamps in order" % r)

        # Current values: every key this round touched, and the live key lists.
        cur = []
        touched = {(v["ns"], v["key"]) for v in new}
        for nk in sorted(touched):
            h = model.keys.get(nk)
            if not h:
                continue
            g = c.get(rec(*nk))
            top = h[-1]
            if top["deleted"]:
                if g.status != 404:
                    cur.append("%s/%s: deleted in the model, GET says %r" % (nk[0], nk[1], g))
            elif g.status != 200 or not isinstance(g.json, dict) \
                    or g.json.get("value") != top["value"] \
                    or g.json.get("version_id") != top["vid"]:
                cur.append("%s/%s: GET %.200r, want %s %.80r" % (nk[0], nk[1], g, top["vid"],
                                                                 top["value"]))
        for ns in NSS:
            got = live_keys(c, ns)
            want = sorted(k for (n, k) in model.keys if n == ns and model.live((n, k)))
            if got != want:
                cur.append("%s: _keys lists %d keys, the model %d (extra %s, missing %s)"
                           % (ns, len(got), len(want), sorted(set(got) - set(want))[:5],
                              sorted(set(want) - set(got))[:5]))
        check(cur, "round %d: current value of %d touched keys and live key lists"
              % (r, len(touched)))
        c.close()
    finally:
        if kill_verifier:
            srv.kill()
            rc = srv.proc.returncode
            want_rc = -signal.SIGKILL
        else:
            rc = srv.stop(signal.SIGTERM, timeout=60)
            want_rc = 0
    T.eq(rc, want_rc, "round %d: verifying server %s" % (r, "killed idle" if kill_verifier
                                                          else "stopped cleanly"))
    # Writers' live sets follow the model (an in-flight op found present counts).
    for w in writers:
        for nk in list(w.live):
            w.set_live(nk, model.live(nk))
    for th in threads:
        if th.inflight is not None and th.inflight.ack:
            for v in th.inflight.ack:
                th.w.set_live((v["ns"], v["key"]), model.live((v["ns"], v["key"])))

    p = subprocess.run([KDELTA, "--db", dbdir, "--json", "check", "--deep"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    rep = {}
    try:
        rep = json.loads(p.stdout)
    except ValueError:
        pass
    T.ok(p.returncode == 0 and rep.get("ok") is True and rep.get("versions") == len(model.verified),
         "round %d: kdelta check --deep passes on the stopped database with %d versions"
         % (r, len(model.verified)),
         "exit %d\n%s\n%s" % (p.returncode, p.stdout.decode()[-600:], p.stderr.decode()[-600:]))
    return full


def main():
    print("test_http_crash: seed %d (KD_HTTP_CRASH_SEED=%d), %d rounds, %d writer threads"
          % (SEED, SEED, ROUNDS, NTHREADS), flush=True)
    rng = random.Random(SEED)
    tmp = tempdir("kd-http-crash-")
    dbdir = os.path.join(tmp, "db")
    model = Model()
    writers = [Writer(t) for t in range(NTHREADS)]
    tot = Totals()
    try:
        with T.section("kill -9 of kdelta serve under %d HTTP writers" % NTHREADS):
            for r in range(1, ROUNDS + 1):
                run_round(r, dbdir, rng, model, writers, tot)
                tot.rounds += 1
            T.ok(tot.requests > 0 and tot.acked_versions > 0,
                 "some writes were acknowledged at all", tot.requests)
            T.eq(tot.lost, 0, "versions lost")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("summary: seed %d, %d rounds, %d acknowledged requests (%d versions), "
          "%d version checks (%d versions in the final database), %d versions lost, "
          "in-flight operations at the kill: %d present, %d absent"
          % (SEED, tot.rounds, tot.requests, tot.acked_versions, tot.verified,
             len(model.verified), tot.lost, tot.inflight_present, tot.inflight_absent),
          flush=True)
    T.ok(not FEED_ERRORS, "long-poll pages end at their last_seq",
         "%d bad pages, first: %s" % (len(FEED_ERRORS), FEED_ERRORS[0]) if FEED_ERRORS else "")
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
