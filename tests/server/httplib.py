# httplib.py — shared helpers for the black-box tests of `kdelta serve` (docs/http.md):
# starting and stopping a real server on 127.0.0.1 with a free port, an HTTP/1.1 client
# with keep-alive, raw-socket requests, a Server-Sent Events reader that decodes chunked
# bodies itself, a Prometheus text parser, and a small pass/fail counter that ends every
# script with the line "N passed, N failed".
#
# Python 3 standard library only. Every server started here is stopped by its owner
# (try/finally) and, as a last resort, killed by pid when the script exits.
import atexit
import calendar
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.parse

KDELTA = os.path.abspath(os.environ.get("KDELTA", "build/kdelta"))
HOST = "127.0.0.1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
VERSION_MEMBERS = {"namespace", "key", "seq", "version_id", "value_hash", "timestamp",
                   "previous_version", "deleted"}

_live = []          # Popen objects of servers still running; killed at exit
_live_lock = threading.Lock()


def _kill_stragglers():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_stragglers)


def _on_signal(signum, frame):
    # Turn SIGTERM (the runner's timeout) into an exception so finally blocks stop servers.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def q(s):
    """Percent-encodes one path segment or parameter value completely (':' and '+' too)."""
    return urllib.parse.quote(s, safe="")


def ts_micros(ts):
    """'2026-01-01T12:00:00.123456Z' -> microseconds since the epoch."""
    base, frac = ts[:-1].split(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000000 + int(frac)


def micros_ts(us):
    """Microseconds since the epoch -> RFC 3339 UTC with six fraction digits."""
    secs, frac = divmod(us, 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac


def unix_form(ts):
    """The '@UNIX.frac' spelling of a timestamp."""
    secs, frac = divmod(ts_micros(ts), 1000000)
    return "@%d.%06d" % (secs, frac)


# ---- the server process -------------------------------------------------------------------

class Server:
    """A `kdelta --db DB serve --port 0 ARGS` process. stderr is drained by a thread into
    self.lines so the server never blocks on a full pipe."""

    def __init__(self, db, args=(), env=None, start_timeout=15):
        self.db = os.path.abspath(db)
        self.args = list(args)
        self.lines = []
        self.port = None
        self.first_line = None
        e = dict(os.environ)
        e.pop("KORU_URL", None)
        e.setdefault("KORU_LOG", "info")
        if env:
            e.update(env)
        cmd = [KDELTA, "--db", self.db, "serve", "--port", "0"] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=e)
        with _live_lock:
            _live.append(self.proc)
        self._got = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.time() + start_timeout
        while time.time() < deadline and self.port is None:
            if self._got.wait(0.05):
                break
            if self.proc.poll() is not None:
                time.sleep(0.2)
                break
            self._port_from_addr_file()
        if self.port is None:
            self._port_from_addr_file()
        if self.port is None:
            self.kill()
            raise RuntimeError("server did not start (exit %s); stderr:\n%s"
                               % (self.proc.returncode, "\n".join(self.lines[-20:])))
        self._wait_listening()

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.first_line is None:
                self.first_line = line
            if self.port is None:
                m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    self._got.set()

    def _port_from_addr_file(self):
        try:
            with open(os.path.join(self.db, "serve.addr")) as f:
                m = re.match(r"^http://127\.0\.0\.1:(\d+)\s*$", f.read())
            if m and self.port is None:
                self.port = int(m.group(1))
        except OSError:
            pass

    def _wait_listening(self):
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)

    def alive(self):
        return self.proc.poll() is None

    def client(self, timeout=30):
        return Client(self.port, timeout)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and waits; returns the exit code, or None when it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            self.proc.send_signal(sig)
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._reader.join(5)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def log(self, last=30):
        return "\n".join(self.lines[-last:])


# ---- HTTP client --------------------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.json = None
        if raw:
            try:
                self.json = json.loads(raw)
            except ValueError:
                pass

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        body = self.raw[:600].decode("utf-8", "replace") if self.raw else ""
        return "HTTP %s %s" % (self.status, body)


class Client:
    """One keep-alive connection. body: a dict/list (sent as JSON), str or bytes."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def req(self, method, path, body=None, headers=None, ctype="application/json"):
        h = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
            if ctype is not None and not any(k.lower() == "content-type" for k in h):
                h["Content-Type"] = ctype
        try:
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            raw = r.read()
        except Exception:
            self.conn.close()
            raise
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return Resp(r.status, r.headers, raw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def put(self, path, value, **kw):
        return self.req("PUT", path, body={"value": value}, **kw)

    def post(self, path, body, **kw):
        return self.req("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def close(self):
        self.conn.close()


def raw_request(port, data, timeout=5, close_write=False):
    """Sends raw bytes and reads until the server closes, one whole response has arrived,
    or timeout; returns the bytes read."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if _response_complete(out):
                break
    finally:
        s.close()
    return out


def _response_complete(out):
    i = out.find(b"\r\n\r\n")
    if i < 0:
        return False
    head = out[:i].decode("latin-1").lower()
    body = out[i + 4:]
    m = re.search(r"\r\ncontent-length:\s*(\d+)", head)
    if m:
        return len(body) >= int(m.group(1))
    if "transfer-encoding: chunked" in head:
        return body.endswith(b"0\r\n\r\n")
    return re.match(r"http/1\.[01] (1\d\d|204|304)", head) is not None


def raw_status(data):
    """The status code of the first response in raw bytes, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


# ---- Server-Sent Events -------------------------------------------------------------------

class Event:
    __slots__ = ("id", "event", "data")

    def __init__(self, id, event, data):
        self.id = id
        self.event = event
        self.data = data

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return "Event(id=%r, event=%r, data=%r)" % (self.id, self.event, self.data[:200])


class SSE:
    """A GET on a raw socket that reads a text/event-stream. Decodes chunked transfer
    encoding; parses complete lines in bulk. self.events collects dispatched events,
    self.comments the comment lines (": heartbeat")."""

    def __init__(self, port, path, headers=None, timeout=10, on_event=None):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (HOST, port),
                 "Accept: text/event-stream"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = bytearray()      # bytes from the socket not yet decoded
        self.body = bytearray()     # decoded body bytes not yet parsed into lines
        self.chunk_left = 0
        self.need_crlf = False
        self.eof = False            # the socket closed
        self.done = False           # the chunked body ended (last chunk)
        self.events = []
        self.comments = []
        self._cur_id = None
        self._cur_event = None
        self._cur_data = []
        self.on_event = on_event    # when set, called with each Event instead of keeping it
        self.status = None
        self.headers = {}
        self.head_body = b""        # a non-streaming answer's body (errors)
        self._read_head(timeout)

    def _read_head(self, timeout):
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in self.raw:
            if time.time() > deadline:
                raise TimeoutError("no response head")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response head: %r" % bytes(self.raw))
            self.raw += chunk
        i = self.raw.index(b"\r\n\r\n")
        head = bytes(self.raw[:i]).decode("latin-1").split("\r\n")
        del self.raw[:i + 4]
        self.status = int(head[0].split()[1])
        for h in head[1:]:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.length = None
        if not self.chunked and "content-length" in self.headers:
            self.length = int(self.headers["content-length"])
        if self.status != 200 or not self.headers.get("content-type", "").startswith(
                "text/event-stream"):
            # A plain answer (an error): read it whole.
            self.sock.settimeout(5)
            if self.chunked:
                self._decode()
            while True:
                if self.length is not None and len(self.raw) >= self.length and not self.chunked:
                    break
                if self.chunked and self.done:
                    break
                try:
                    chunk = self.sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.raw += chunk
                if self.chunked:
                    self._decode()
            if self.chunked:
                self._decode()
                self.head_body = bytes(self.body)
            else:
                self.head_body = bytes(self.raw)
        else:
            self._decode()
            self._parse()

    def fileno(self):
        return self.sock.fileno()

    def error_json(self):
        try:
            return json.loads(self.head_body)
        except ValueError:
            return None

    def _decode(self):
        if not self.chunked:
            self.body += self.raw
            del self.raw[:]
            return
        raw = self.raw
        pos = 0
        n = len(raw)
        while not self.done:
            if self.chunk_left:
                take = min(self.chunk_left, n - pos)
                if take <= 0:
                    break
                self.body += raw[pos:pos + take]
                pos += take
                self.chunk_left -= take
                if self.chunk_left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if n - pos < 2:
                    break
                if raw[pos:pos + 2] != b"\r\n":
                    raise ValueError("bad chunk framing at %r" % bytes(raw[pos:pos + 20]))
                pos += 2
                self.need_crlf = False
            i = raw.find(b"\r\n", pos)
            if i < 0:
                break
            size = int(bytes(raw[pos:i]).split(b";")[0], 16)
            pos = i + 2
            if size == 0:
                self.done = True
                break
            self.chunk_left = size
        del raw[:pos]

    def _parse(self):
        end = self.body.rfind(b"\n")
        if end < 0:
            return
        block = bytes(self.body[:end])
        del self.body[:end + 1]
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        for line in block.split(b"\n"):
            if not line:
                if self._cur_data or self._cur_id is not None:
                    eid = self._cur_id
                    if eid is not None and eid.isdigit():
                        eid = int(eid)
                    ev = Event(eid, self._cur_event or "message", b"\n".join(self._cur_data))
                    if self.on_event is not None:
                        self.on_event(ev)
                    else:
                        self.events.append(ev)
                self._cur_id = None
                self._cur_event = None
                self._cur_data = []
            elif line[0] == 58:  # ':'
                self.comments.append(line)
            else:
                name, _, val = line.partition(b":")
                if val[:1] == b" ":
                    val = val[1:]
                if name == b"data":
                    self._cur_data.append(val)
                elif name == b"id":
                    self._cur_id = val.decode()
                elif name == b"event":
                    self._cur_event = val.decode()

    def feed(self):
        """One recv; returns False at end of stream."""
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            return True
        except OSError:
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            self._decode()
            self._parse()
            return False
        self.raw += chunk
        self._decode()
        self._parse()
        return not self.done

    def read_until(self, pred, timeout):
        """Reads until pred(self) is true, the stream ends or timeout passes."""
        deadline = time.time() + timeout
        while not pred(self):
            left = deadline - time.time()
            if left <= 0 or self.eof or self.done:
                break
            r, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if r and not self.feed():
                break
        return pred(self)

    def wait_events(self, n, timeout=10):
        self.read_until(lambda s: len(s.events) >= n, timeout)
        return self.events

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- Prometheus text ----------------------------------------------------------------------

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """-> (samples, types): samples a list of (name, {label: value}, float); types a dict
    name -> type from the # TYPE lines."""
    samples = []
    types = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$", line)
        if not m:
            samples.append(("__unparsed__", {"line": line}, 0.0))
            continue
        labels = {}
        if m.group(3):
            for k, v in _LABEL.findall(m.group(3)):
                labels[k] = v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        v = m.group(4)
        val = float("inf") if v == "+Inf" else float("-inf") if v == "-Inf" else float(v)
        samples.append((m.group(1), labels, val))
    return samples, types


def metric(samples, name, **labels):
    """The sum of the samples named name whose labels include labels."""
    total = 0.0
    found = False
    for n, l, v in samples:
        if n == name and all(l.get(k) == want for k, want in labels.items()):
            total += v
            found = True
    return total if found else None


# ---- pass/fail bookkeeping ----------------------------------------------------------------

class Tests:
    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = 0
        self.where = ""
        self.t0 = time.time()

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            msg = "FAIL [%s] %s" % (self.where, what)
            if detail:
                msg += "\n     " + str(detail).replace("\n", "\n     ")
            print(msg, flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got  %r\n want %r" % (got, want))

    def status(self, r, want, what):
        return self.ok(r.status == want, "%s: status %s, want %s" % (what, r.status, want),
                       repr(r))

    def error(self, r, status, code, what, msg_re=None, extra=()):
        """The answer is status with {"error":{"code":code,"message":…}} (plus the members
        named in extra, and no others)."""
        good = self.status(r, status, what)
        d = r.json
        shape = (isinstance(d, dict) and list(d) == ["error"] and isinstance(d["error"], dict)
                 and isinstance(d["error"].get("code"), str)
                 and isinstance(d["error"].get("message"), str)
                 and d["error"]["message"] != "" and "\n" not in d["error"]["message"]
                 and set(d["error"]) <= {"code", "message"} | set(extra))
        if not self.ok(shape, "%s: error shape {\"error\":{\"code\",\"message\"}}" % what,
                       repr(r)):
            return False
        good &= self.eq(d["error"]["code"], code, "%s: error.code" % what)
        ct = r.header("Content-Type", "")
        good &= self.ok(ct.startswith("application/json"),
                        "%s: error Content-Type is application/json" % what, ct)
        if msg_re:
            good &= self.ok(re.search(msg_re, d["error"]["message"]),
                            "%s: message matches /%s/" % (what, msg_re), d["error"]["message"])
        return good

    def version_doc(self, d, what, ns=None, key=None, value=False, deleted=False,
                    change=False):
        """d is a version document: exact members, types and formats."""
        if not self.ok(isinstance(d, dict), "%s: a JSON object" % what, repr(d)):
            return False
        want = set(VERSION_MEMBERS)
        if value:
            want.add("value")
        if change:
            want.add("change")
        good = self.eq(sorted(d), sorted(want), "%s: members" % what)
        if ns is not None:
            good &= self.eq(d.get("namespace"), ns, "%s: namespace" % what)
        if key is not None:
            good &= self.eq(d.get("key"), key, "%s: key" % what)
        good &= self.ok(isinstance(d.get("seq"), int) and d.get("seq") > 0,
                        "%s: seq is a positive integer" % what, d.get("seq"))
        good &= self.ok(isinstance(d.get("version_id"), str) and HEX64.match(d["version_id"]),
                        "%s: version_id is 64 hex" % what, d.get("version_id"))
        good &= self.ok(isinstance(d.get("timestamp"), str) and TS_RE.match(d["timestamp"]),
                        "%s: timestamp RFC 3339 with 6 digits" % what, d.get("timestamp"))
        pv = d.get("previous_version")
        good &= self.ok(pv is None or (isinstance(pv, str) and HEX64.match(pv)),
                        "%s: previous_version null or 64 hex" % what, pv)
        good &= self.eq(d.get("deleted"), deleted, "%s: deleted" % what)
        vh = d.get("value_hash")
        if deleted:
            good &= self.eq(vh, None, "%s: value_hash of a tombstone" % what)
            if value:
                good &= self.eq(d.get("value"), None, "%s: value of a tombstone" % what)
        else:
            good &= self.ok(isinstance(vh, str) and HEX64.match(vh),
                            "%s: value_hash is 64 hex" % what, vh)
        return good

    def section(self, name):
        return _Section(self, name)

    def finish(self):
        print("(%s: %.1f s)" % (self.title, time.time() - self.t0))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


class _Section:
    def __init__(self, t, name):
        self.t = t
        self.name = name

    def __enter__(self):
        self.t.where = self.name
        self.start = time.time()
        self.fails = self.t.failed
        print("== %s" % self.name, flush=True)
        return self.t

    def __exit__(self, et, ev, tb):
        if et is not None and issubclass(et, (SystemExit, KeyboardInterrupt)):
            print("   %s: interrupted" % self.name, flush=True)
            return False
        if et is not None:
            self.t.ok(False, "exception", "".join(traceback.format_exception(et, ev, tb)))
            print("   %s: aborted after an exception (%.1f s)" % (self.name,
                                                                  time.time() - self.start))
            return True
        print("   %s: %s (%.1f s)" % (self.name,
                                      "ok" if self.t.failed == self.fails else
                                      "%d failed" % (self.t.failed - self.fails),
                                      time.time() - self.start), flush=True)
        return False


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
