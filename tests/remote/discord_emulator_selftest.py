#!/usr/bin/env python3
"""Self-test of tests/remote/discord_emulator.py (standard library only).

Starts the emulator as a subprocess and exercises every endpoint over real HTTP:
multipart uploads (binary, chunked, unicode names), nonce dedupe, size limits and
413s, message listing/editing/deleting, pins, rate-limit headers, 429s and the
exhausted-bucket counter, the global limit, signed CDN URLs (expiry, refresh,
tampering, Range), fault injection and its reproducibility, control endpoints,
keep-alive, concurrency and clean shutdown.  Exits non-zero on the first failure.
"""

import http.client
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "discord_emulator.py")
TOKEN = "selftest-token"
OTHER_TOKEN = "second-token"
C1, C2, C3, C4 = ("200000000000000001", "200000000000000002", "200000000000000003",
                  "200000000000000004")
UA = "DiscordBot (https://example.invalid/hashfs, 0.1)"
EPOCH_MS = 1420070400000
RL_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
              "X-RateLimit-Reset-After", "X-RateLimit-Bucket")
EXPIRED = b"This content is no longer available."


class Failure(Exception):
    pass


def check(cond, msg, *ctx):
    if not cond:
        raise Failure(msg + ("" if not ctx else " | " + " | ".join(repr(c)[:600] for c in ctx)))


# --------------------------------------------------------------------------------------
# process + HTTP helpers


class Emu:
    def __init__(self, *args):
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, EMULATOR] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.errf)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        check(ready, "emulator did not print its port within 15 s")
        line = self.proc.stdout.readline().decode()
        check(re.fullmatch(r"PORT [0-9]+\n", line), "first stdout line must be 'PORT <n>'", line)
        self.port = int(line.split()[1])

    def stderr_tail(self, n=4000):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")[-n:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("emulator did not exit within 10 s of SIGTERM")
        rest = self.proc.stdout.read()
        check(rc == 0, "emulator exit status after SIGTERM", rc)
        check(rest == b"", "emulator must print nothing to stdout but the PORT line", rest)


class Resp:
    def __init__(self, status, headers, body, version):
        self.status = status
        self.headers = headers
        self.body = body
        self.version = version

    def json(self):
        return json.loads(self.body)

    def h(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "<%d %s %r>" % (self.status, dict(self.headers), self.body[:300])


class Client:
    """Keep-alive HTTP/1.1 client.  Every authenticated API response to a known route
    (that is not an injected fault) must carry the rate-limit headers."""

    def __init__(self, port, token=TOKEN):
        self.port = port
        self.token = token
        self.conn = None
        self.connects = 0

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def raw(self, method, path, body=None, headers=None, chunked=False):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.connects += 1
        try:
            if chunked:
                self.conn.request(method, path, body=iter([body[i:i + 7000] for i in
                                                           range(0, len(body), 7000)]),
                                  headers=headers or {}, encode_chunked=True)
            else:
                self.conn.request(method, path, body=body, headers=headers or {})
            r = self.conn.getresponse()
            data = r.read()
        except (http.client.HTTPException, OSError):
            self.close()
            raise
        if r.will_close:
            self.close()
        return Resp(r.status, r.headers, data, r.version)

    def api(self, method, path, body=None, headers=None, ctype=None, expect_rl=True, chunked=False,
            auth=True):
        hdrs = {"User-Agent": UA}
        if auth:
            hdrs["Authorization"] = "Bot " + self.token
        if ctype:
            hdrs["Content-Type"] = ctype
        hdrs.update(headers or {})
        r = self.raw(method, "/api/v10" + path, body, hdrs, chunked=chunked)
        t_recv = time.time()
        if expect_rl and r.status != 401:
            for h in RL_HEADERS:
                check(r.h(h) is not None, "API response lacks " + h, method, path, r)
        if r.h("X-RateLimit-Reset-After") is not None:
            # The server rounds Reset-After up, so waiting it out from the moment the
            # response arrived can never land before the announced reset.
            check(t_recv + float(r.h("X-RateLimit-Reset-After")) >= float(r.h("X-RateLimit-Reset")) - 1e-6,
                  "Reset-After must not undershoot Reset", t_recv, r)
            check(0 <= int(r.h("X-RateLimit-Remaining")) <= int(r.h("X-RateLimit-Limit")),
                  "0 <= Remaining <= Limit", r)
        return r

    def json(self, method, path, obj, **kw):
        return self.api(method, path, json.dumps(obj).encode(), ctype="application/json", **kw)


def rl_key(method, path):
    p = path.split("?")[0]
    p = re.sub(r"/messages/[0-9]+", "/messages/{m}", p)
    p = re.sub(r"/pins/[0-9]+", "/pins/{m}", p)
    return method + " " + p


class Polite(Client):
    """A client that obeys the rate-limit headers: it never sends into a bucket the
    server said was exhausted, and waits out 429s."""

    def __init__(self, port, token=TOKEN):
        super().__init__(port, token)
        self.state = {}
        self.waited = 0.0

    def api(self, method, path, body=None, headers=None, ctype=None, expect_rl=True, chunked=False,
            auth=True):
        key = rl_key(method, path)
        while True:
            st = self.state.get(key)
            if st and st[0] == 0 and time.time() < st[1]:
                d = st[1] - time.time()
                self.waited += d
                time.sleep(d)
            r = Client.api(self, method, path, body, headers, ctype, expect_rl, chunked, auth)
            if r.h("X-RateLimit-Remaining") is not None:
                self.state[key] = (int(r.h("X-RateLimit-Remaining")),
                                   time.time() + float(r.h("X-RateLimit-Reset-After")))
            if r.status == 429:
                d = r.json()["retry_after"]
                self.waited += d
                time.sleep(d)
                continue
            return r


def multipart(payload=None, files=(), fields=None, boundary=None):
    boundary = boundary or "selftest%016x" % random.getrandbits(64)
    out = []
    if payload is not None:
        out.append(b"--" + boundary.encode() + b"\r\n"
                   b'Content-Disposition: form-data; name="payload_json"\r\n'
                   b"Content-Type: application/json\r\n\r\n" + json.dumps(payload).encode() + b"\r\n")
    for k, v in (fields or {}).items():
        out.append(b"--" + boundary.encode() + b"\r\n"
                   + ('Content-Disposition: form-data; name="%s"\r\n\r\n' % k).encode()
                   + v.encode() + b"\r\n")
    for name, filename, data, ctype in files:
        fn = filename.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")
        out.append(b"--" + boundary.encode() + b"\r\n"
                   + b'Content-Disposition: form-data; name="' + name.encode() + b'"; filename="'
                   + fn + b'"\r\n'
                   + (b"Content-Type: " + ctype.encode() + b"\r\n" if ctype else b"")
                   + b"\r\n" + data + b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def create(cl, channel, content=None, files=(), nonce=None, enforce=None, attachments=None, **kw):
    payload = {}
    if content is not None:
        payload["content"] = content
    if nonce is not None:
        payload["nonce"] = nonce
    if enforce is not None:
        payload["enforce_nonce"] = enforce
    if attachments is not None:
        payload["attachments"] = attachments
    parts = [("files[%d]" % i, fn, data, "application/octet-stream") for i, (fn, data) in
             enumerate(files)]
    body, ctype = multipart(payload, parts)
    return cl.api("POST", "/channels/%s/messages" % channel, body, ctype=ctype, **kw)


def control(port, method, path, obj=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = None if obj is None else json.dumps(obj).encode()
    c.request(method, "/_emulator/" + path, body=body,
              headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


def stats(port):
    st, s = control(port, "GET", "stats")
    check(st == 200, "stats endpoint", st, s)
    return s


def dump(port, channel):
    st, d = control(port, "GET", "channels/%s/messages" % channel)
    check(st == 200, "dump endpoint", st, d)
    return d


def cdn_get(url, headers=None, method="GET"):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(method, u.path + ("?" + u.query if u.query else ""), headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return Resp(r.status, r.headers, data, r.version)


def snowflake_ms(sid):
    return (int(sid) >> 22) + EPOCH_MS


def err_code(r):
    try:
        return r.json().get("code")
    except ValueError:
        return None


# --------------------------------------------------------------------------------------
# tests


class T:
    emu = None
    port = None
    cl = None
    polite = None
    c4_ids = []


def t_auth_and_errors():
    cl = T.cl
    r = cl.api("GET", "/channels/%s/messages" % C1, auth=False)
    check(r.status == 401 and r.json() == {"message": "401: Unauthorized", "code": 0}, "no auth", r)
    r = cl.api("GET", "/channels/%s/messages" % C1, auth=False,
               headers={"Authorization": "Bot wrong-token"})
    check(r.status == 401, "wrong token", r)
    r = cl.api("GET", "/channels/%s/messages" % C1, auth=False,
               headers={"Authorization": "Bearer " + TOKEN})
    check(r.status == 401, "Bearer scheme must be refused", r)
    other = Client(T.port, OTHER_TOKEN)
    r = other.api("GET", "/channels/%s/messages" % C1)
    check(r.status == 200 and r.json() == [], "second --token accepted", r)
    r = T.polite.api("GET", "/channels/999/messages")
    check(r.status == 404 and err_code(r) == 10003, "unknown channel -> 10003", r)
    r = T.polite.api("GET", "/channels/%s/messages/12345" % C1)
    check(r.status == 404 and err_code(r) == 10008, "unknown message -> 10008", r)
    r = cl.api("GET", "/nothing/here", expect_rl=False)
    check(r.status == 404 and err_code(r) == 0, "unknown route", r)
    r = cl.api("PUT", "/channels/%s/messages" % C1, b"", expect_rl=False)
    check(r.status == 405, "wrong method", r)
    r = cl.raw("GET", "/elsewhere")
    check(r.status == 404, "outside the API", r)


def t_create_and_cdn():
    cl = T.polite
    body_a = bytes(range(256)) * 40
    # Content that looks like a delimiter of this very request, minus one character.
    boundary = "selftestBOUNDARY0123456789"
    body_b = b"\r\n--" + boundary[:-1].encode() + b"\r\n\r\n--\x00" + os.urandom(5000)
    payload = {"content": "hello", "nonce": "n-create-1",
               "attachments": [{"id": 0, "filename": "renamed.bin"},
                               {"id": 1, "filename": "b.dat", "description": "second"}]}
    body, ctype = multipart(payload, [("files[0]", "orig.bin", body_a, "application/octet-stream"),
                                      ("files[1]", "x.dat", body_b, None)], boundary=boundary)
    t0 = time.time()
    r = cl.api("POST", "/channels/%s/messages" % C1, body, ctype=ctype)
    check(r.status == 200, "create with two files", r)
    m = r.json()
    check(re.fullmatch(r"[0-9]+", m["id"]) and m["channel_id"] == C1, "id/channel", m)
    check(m["content"] == "hello" and m["nonce"] == "n-create-1" and m["pinned"] is False,
          "content/nonce/pinned", m)
    check(abs(snowflake_ms(m["id"]) / 1000.0 - t0) < 2.0, "snowflake encodes the creation time", m["id"])
    ts = datetime.fromisoformat(m["timestamp"]).timestamp()
    check(abs(ts * 1000 - snowflake_ms(m["id"])) < 2, "timestamp matches snowflake", m["timestamp"])
    a0, a1 = m["attachments"]
    check(a0["filename"] == "renamed.bin" and a0["size"] == len(body_a), "attachment 0", a0)
    check(a1["filename"] == "b.dat" and a1["size"] == len(body_b) and a1.get("description") == "second",
          "attachment 1", a1)
    check(a0["content_type"] == "application/octet-stream", "content_type", a0)
    pat = (r"http://127\.0\.0\.1:%d/attachments/%s/%s/renamed\.bin\?ex=([0-9a-f]+)&is=([0-9a-f]+)"
           r"&hm=[0-9a-f]{64}&" % (T.port, C1, a0["id"]))
    mm = re.fullmatch(pat, a0["url"])
    check(mm, "signed URL format", a0["url"])
    check(3590 <= int(mm.group(1), 16) - int(mm.group(2), 16) <= 3602, "ex - is == url-ttl", a0["url"])
    check(a0["proxy_url"], "proxy_url present", a0)
    d = cdn_get(a0["url"])
    check(d.status == 200 and d.body == body_a, "CDN download of attachment 0", d)
    check(d.h("Content-Length") == str(len(body_a)) and d.h("Accept-Ranges") == "bytes", "CDN headers", d)
    check(d.h("X-RateLimit-Limit") is None, "CDN is not rate-limited", d)
    d = cdn_get(a1["proxy_url"])
    check(d.status == 200 and d.body == body_b, "CDN download via proxy_url (delimiter-like bytes)", d)
    d = cdn_get(a1["url"], method="HEAD")
    check(d.status == 200 and d.body == b"" and d.h("Content-Length") == str(len(body_b)), "CDN HEAD", d)
    g = cl.api("GET", "/channels/%s/messages/%s" % (C1, m["id"])).json()
    check([a["id"] for a in g["attachments"]] == [a0["id"], a1["id"]], "GET returns attachments", g)
    check("nonce" not in g, "GET omits nonce (as Discord does)", g)
    check(cdn_get(g["attachments"][0]["url"]).body == body_a, "URL from GET downloads")
    # filename taken from the part when payload has no attachments array; unicode name
    r = create(cl, C1, files=[("ünï cødé.bin", b"unicode")])
    check(r.status == 200, "unicode filename", r)
    a = r.json()["attachments"][0]
    check(a["filename"] == "ünï cødé.bin" and "%C3%BC" in a["url"], "unicode filename kept, URL-encoded", a)
    check(cdn_get(a["url"]).body == b"unicode", "unicode-named download")
    # JSON body, form field without payload_json, chunked transfer encoding
    r = cl.json("POST", "/channels/%s/messages" % C1, {"content": "json body"})
    check(r.status == 200 and r.json()["content"] == "json body" and r.json()["attachments"] == [],
          "application/json create", r)
    body, ctype = multipart(None, [("files[0]", "f.txt", b"field-form", "text/plain")],
                            fields={"content": "plain field"})
    r = cl.api("POST", "/channels/%s/messages" % C1, body, ctype=ctype)
    check(r.status == 200 and r.json()["content"] == "plain field", "content form field", r)
    check(r.json()["attachments"][0]["content_type"] == "text/plain", "part Content-Type kept", r)
    big = os.urandom(50000)
    body, ctype = multipart({"content": "chunked"}, [("files[0]", "c.bin", big, None)])
    r = cl.api("POST", "/channels/%s/messages" % C1, body, ctype=ctype, chunked=True)
    check(r.status == 200, "chunked upload", r)
    check(cdn_get(r.json()["attachments"][0]["url"]).body == big, "chunked upload bytes intact")


def t_snowflakes():
    ids = []
    for i in range(6):
        r = T.polite.json("POST", "/channels/%s/messages" % C2, {"content": "s%d" % i})
        check(r.status == 200, "create for snowflakes", r)
        ids.append(int(r.json()["id"]))
    check(all(a < b for a, b in zip(ids, ids[1:])), "snowflakes strictly increasing", ids)


def t_nonce():
    cl = T.polite
    before = stats(T.port)
    r1 = create(cl, C1, "dedupe", [("d.bin", b"x" * 100)], nonce="dup-1", enforce=True)
    r2 = create(cl, C1, "dedupe", [("d.bin", b"x" * 100)], nonce="dup-1", enforce=True)
    check(r1.status == 200 and r2.status == 200, "nonce creates", r1, r2)
    check(r1.json()["id"] == r2.json()["id"], "enforce_nonce returns the existing message", r1, r2)
    check(r2.json()["attachments"][0]["id"] == r1.json()["attachments"][0]["id"], "same attachment")
    after = stats(T.port)
    check(after["duplicate_nonce_hits"] == before["duplicate_nonce_hits"] + 1, "duplicate_nonce_hits", after)
    check(after["creates"] == before["creates"] + 1, "only one create", after)
    check(sum(1 for m in dump(T.port, C1) if m["nonce"] == "dup-1") == 1, "one message with the nonce")
    r3 = create(cl, C1, "dedupe", nonce="dup-1")
    check(r3.status == 200 and r3.json()["id"] != r1.json()["id"], "no enforce_nonce -> new message", r3)
    r4 = create(cl, C2, "dedupe", nonce="dup-1", enforce=True)
    check(r4.status == 200 and r4.json()["id"] != r1.json()["id"], "nonces are per channel", r4)
    r5 = create(cl, C1, "x", nonce="n" * 26, enforce=True)
    check(r5.status == 400 and err_code(r5) == 50035, "nonce longer than 25 -> 50035", r5)
    r6 = create(cl, C1, "int nonce", nonce=12345, enforce=True)
    r7 = create(cl, C1, "int nonce", nonce=12345, enforce=True)
    check(r6.status == 200 and r6.json()["id"] == r7.json()["id"], "integer nonce dedupes", r6, r7)
    d = cl.api("DELETE", "/channels/%s/messages/%s" % (C1, r1.json()["id"]))
    check(d.status == 204, "delete deduped message", d)
    r8 = create(cl, C1, "dedupe", nonce="dup-1", enforce=True)
    check(r8.status == 200 and r8.json()["id"] != r1.json()["id"], "deleted message's nonce is free", r8)


def t_limits():
    cl = T.polite
    n_before = len(dump(T.port, C1))
    r = create(cl, C1, "many", [("f%d" % i, b"a") for i in range(11)])
    check(r.status == 400 and err_code(r) == 30015, "11 attachments -> 30015", r)
    r = create(cl, C1, "big", [("big.bin", b"z" * 65537)])
    check(r.status == 413 and r.json() == {"message": "Request entity too large", "code": 40005},
          "file over --file-limit -> 413/40005", r)
    r = create(cl, C1, "exact", [("exact.bin", b"z" * 65536)])
    check(r.status == 200, "file exactly at --file-limit", r)
    connects = cl.connects
    r = create(cl, C1, "total", [("t%d" % i, b"q" * 60000) for i in range(5)], expect_rl=False)
    check(r.status == 413 and err_code(r) == 40005, "request over --request-limit -> 413/40005", r)
    r = cl.api("GET", "/channels/%s/messages?limit=1" % C1)
    check(r.status == 200 and cl.connects == connects, "connection survives a 413", cl.connects)
    check(len(dump(T.port, C1)) == n_before + 1, "no message created by refused uploads")
    r = cl.json("POST", "/channels/%s/messages" % C1, {})
    check(r.status == 400 and err_code(r) == 50006, "empty message -> 50006", r)
    r = cl.json("POST", "/channels/%s/messages" % C1, {"content": "x" * 2001})
    check(r.status == 400 and err_code(r) == 50035 and "content" in r.json()["errors"],
          "content over 2000 -> 50035", r)
    body, ctype = multipart(None, [("files[0]", "a", b"a", None)], fields={"payload_json": "{nope"})
    r = cl.api("POST", "/channels/%s/messages" % C1, body, ctype=ctype)
    check(r.status == 400 and err_code(r) == 50109, "bad payload_json -> 50109", r)
    r = create(cl, C1, "x", [("a", b"a")], attachments=[{"id": 3}])
    check(r.status == 400 and err_code(r) == 50035, "attachment id without file -> 50035", r)
    r = cl.api("POST", "/channels/%s/messages" % C1, b"--zz\r\nbroken", ctype="multipart/form-data; boundary=zz")
    check(r.status == 400 and err_code(r) == 50035, "malformed multipart -> 50035", r)
    # Expect: 100-continue with an oversize body is refused before the body is sent.
    s = socket.create_connection(("127.0.0.1", T.port), timeout=5)
    s.sendall(("POST /api/v10/channels/%s/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bot %s\r\n"
               "Content-Type: multipart/form-data; boundary=abc\r\nContent-Length: %d\r\n"
               "Expect: 100-continue\r\n\r\n" % (C1, TOKEN, 10 << 20)).encode())
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    s.close()
    check(data.startswith(b"HTTP/1.1 413") and b"40005" in data, "Expect: 100-continue -> 413", data)


def t_list():
    cl = T.polite
    ids = []
    for i in range(12):
        r = cl.json("POST", "/channels/%s/messages" % C4, {"content": "m%d" % i})
        check(r.status == 200, "create for listing", r)
        ids.append(r.json()["id"])
    T.c4_ids = ids
    check(cl.waited > 0.2, "polite client had to wait for the create bucket", cl.waited)

    def lst(q):
        r = cl.api("GET", "/channels/%s/messages%s" % (C4, q))
        check(r.status == 200, "list " + q, r)
        return [m["id"] for m in r.json()]

    rev = list(reversed(ids))
    check(lst("") == rev, "default list: newest first")
    check(lst("?limit=5") == rev[:5], "limit=5")
    check(lst("?before=%s&limit=3" % ids[6]) == [ids[5], ids[4], ids[3]], "before")
    check(lst("?after=%s&limit=3" % ids[2]) == [ids[5], ids[4], ids[3]], "after: oldest after, newest first")
    check(lst("?after=%s" % ids[9]) == [ids[11], ids[10]], "after near the end")
    check(lst("?around=%s&limit=4" % ids[6]) == [ids[7], ids[6], ids[5], ids[4]], "around")
    check(lst("?before=%s" % ids[0]) == [], "before the first")
    for q, what in (("?limit=0", "limit 0"), ("?limit=101", "limit 101"), ("?limit=x", "limit x"),
                    ("?before=%s&after=%s" % (ids[1], ids[0]), "before+after"), ("?before=abc", "bad id")):
        r = cl.api("GET", "/channels/%s/messages%s" % (C4, q))
        check(r.status == 400 and err_code(r) == 50035, what + " -> 400/50035", r)


def t_edit():
    cl = T.polite
    r = create(cl, C2, "to edit", [("e.bin", b"edit-me")])
    m = r.json()
    old_url = m["attachments"][0]["url"]
    r = cl.json("PATCH", "/channels/%s/messages/%s" % (C2, m["id"]), {"content": "edited"})
    check(r.status == 200 and r.json()["content"] == "edited" and r.json()["edited_timestamp"],
          "PATCH content", r)
    check(len(r.json()["attachments"]) == 1, "PATCH without attachments keeps files", r)
    g = cl.api("GET", "/channels/%s/messages/%s" % (C2, m["id"])).json()
    check(g["content"] == "edited", "GET after PATCH", g)
    body, ctype = multipart({"attachments": [{"id": m["attachments"][0]["id"]}, {"id": 0}]},
                            [("files[0]", "added.bin", b"added", None)])
    r = cl.api("PATCH", "/channels/%s/messages/%s" % (C2, m["id"]), body, ctype=ctype)
    check(r.status == 200 and [a["filename"] for a in r.json()["attachments"]] == ["e.bin", "added.bin"],
          "PATCH appends a file", r)
    n_att = stats(T.port)["attachments"]
    r = cl.json("PATCH", "/channels/%s/messages/%s" % (C2, m["id"]), {"attachments": []})
    check(r.status == 200 and r.json()["attachments"] == [], "PATCH attachments [] removes files", r)
    check(stats(T.port)["attachments"] == n_att - 2, "attachment count after removal")
    d = cdn_get(old_url)
    check(d.status == 404 and d.body == EXPIRED, "removed attachment no longer served", d)
    r = cl.json("PATCH", "/channels/%s/messages/1234" % C2, {"content": "x"})
    check(r.status == 404 and err_code(r) == 10008, "PATCH unknown message", r)


def t_pins():
    cl = T.polite
    ids = T.c4_ids
    r = cl.api("PUT", "/channels/%s/pins/%s" % (C4, ids[0]))
    check(r.status == 204 and r.body == b"" and r.h("Content-Length") == "0", "pin (legacy route)", r)
    check(cl.api("GET", "/channels/%s/messages/%s" % (C4, ids[0])).json()["pinned"] is True, "pinned flag")
    r = cl.api("PUT", "/channels/%s/messages/pins/%s" % (C4, ids[1]))
    check(r.status == 204, "pin (new route)", r)
    r = cl.api("GET", "/channels/%s/pins" % C4)
    check([m["id"] for m in r.json()] == [ids[1], ids[0]], "legacy pins list: newest pinned first", r)
    r = cl.api("GET", "/channels/%s/messages/pins" % C4)
    j = r.json()
    check([it["message"]["id"] for it in j["items"]] == [ids[1], ids[0]] and j["has_more"] is False
          and all(it["pinned_at"] for it in j["items"]), "new pins list", j)
    j = cl.api("GET", "/channels/%s/messages/pins?limit=1" % C4).json()
    check(len(j["items"]) == 1 and j["has_more"] is True, "new pins list limit/has_more", j)
    j2 = cl.api("GET", "/channels/%s/messages/pins?before=%s" % (
        C4, urllib.parse.quote(j["items"][0]["pinned_at"]))).json()
    check([it["message"]["id"] for it in j2["items"]] == [ids[0]], "new pins list before", j2)
    check(cl.api("PUT", "/channels/%s/pins/%s" % (C4, ids[2])).status == 204, "third pin")
    r = cl.api("PUT", "/channels/%s/pins/%s" % (C4, ids[3]))
    check(r.status == 400 and err_code(r) == 30003, "pin limit -> 30003", r)
    check(cl.api("PUT", "/channels/%s/pins/%s" % (C4, ids[0])).status == 204, "re-pin is a no-op")
    check(cl.api("DELETE", "/channels/%s/pins/%s" % (C4, ids[1])).status == 204, "unpin")
    r = cl.api("GET", "/channels/%s/pins" % C4)
    check([m["id"] for m in r.json()] == [ids[2], ids[0]], "pins after unpin", r)
    check(cl.api("DELETE", "/channels/%s/messages/pins/%s" % (C4, ids[2])).status == 204, "unpin (new)")
    r = cl.api("PUT", "/channels/%s/pins/98765" % C4)
    check(r.status == 404 and err_code(r) == 10008, "pin unknown message", r)


def t_delete():
    cl = T.polite
    ids = T.c4_ids
    n = stats(T.port)["messages"]
    check(cl.api("DELETE", "/channels/%s/messages/%s" % (C4, ids[11])).status == 204, "delete")
    r = cl.api("GET", "/channels/%s/messages/%s" % (C4, ids[11]))
    check(r.status == 404 and err_code(r) == 10008, "deleted message is gone", r)
    r = cl.api("DELETE", "/channels/%s/messages/%s" % (C4, ids[11]))
    check(r.status == 404 and err_code(r) == 10008, "delete twice", r)
    check(stats(T.port)["messages"] == n - 1, "live message count")
    bd = "/channels/%s/messages/bulk-delete" % C4
    r = cl.json("POST", bd, {"messages": [ids[10]]})
    check(r.status == 400 and err_code(r) == 50016, "bulk delete of 1", r)
    r = cl.json("POST", bd, {"messages": [ids[10], ids[10]]})
    check(r.status == 400 and err_code(r) == 50035, "bulk delete duplicates", r)
    old = str(((int(time.time() * 1000) - 20 * 86400 * 1000 - EPOCH_MS) << 22))
    r = cl.json("POST", bd, {"messages": [ids[10], old]})
    check(r.status == 400 and err_code(r) == 50034, "bulk delete older than 14 days", r)
    unknown = str(((int(time.time() * 1000) - EPOCH_MS) << 22) | 4095)
    r = cl.json("POST", bd, {"messages": [ids[10], ids[9], unknown]})
    check(r.status == 204, "bulk delete", r)
    left = [m["id"] for m in dump(T.port, C4)]
    check(ids[10] not in left and ids[9] not in left and ids[8] in left, "bulk deleted", left)
    r = create(cl, C2, "with file", [("gone.bin", b"gone")])
    url = r.json()["attachments"][0]["url"]
    check(cdn_get(url).status == 200, "served before delete")
    cl.api("DELETE", "/channels/%s/messages/%s" % (C2, r.json()["id"]))
    d = cdn_get(url)
    check(d.status == 404 and d.body == EXPIRED, "deleted message's attachment -> 404", d)


def t_headers():
    cl = T.cl
    r1 = cl.json("POST", "/channels/%s/messages" % C3, {"content": "h1"})
    t = time.time()
    check(r1.status == 200, "create in C3", r1)
    check(r1.h("X-RateLimit-Limit") == "5" and r1.h("X-RateLimit-Remaining") == "4", "limit/remaining", r1)
    ra = float(r1.h("X-RateLimit-Reset-After"))
    check(0.9 <= ra <= 1.001, "reset-after within --create-window", ra)
    check(abs(float(r1.h("X-RateLimit-Reset")) - (t + ra)) < 0.2, "reset epoch", r1.h("X-RateLimit-Reset"))
    check(re.fullmatch(r"[0-9a-f]{32}", r1.h("X-RateLimit-Bucket")), "bucket hash", r1)
    r2 = cl.json("POST", "/channels/%s/messages" % C3, {"content": "h2"})
    check(r2.h("X-RateLimit-Remaining") == "3" and r2.h("X-RateLimit-Bucket") == r1.h("X-RateLimit-Bucket"),
          "same bucket, one fewer remaining", r2)
    r3 = T.polite.json("POST", "/channels/%s/messages" % C2, {"content": "other channel"})
    check(r3.h("X-RateLimit-Bucket") != r1.h("X-RateLimit-Bucket"), "buckets differ per channel", r3)
    r4 = cl.api("GET", "/channels/%s/messages?limit=1" % C3)
    check(r4.h("X-RateLimit-Limit") == "30" and r4.h("X-RateLimit-Bucket") != r1.h("X-RateLimit-Bucket"),
          "other routes: --route-limit and their own bucket", r4)
    T.c3_last = r2


def t_polite_counter_zero():
    s = stats(T.port)
    check(s["requests_into_exhausted_bucket"] == 0, "a client obeying the headers never hits an "
          "exhausted bucket", s["requests_into_exhausted_bucket"])
    check(s["rate_limited"]["user"] == 0, "no user 429s so far", s["rate_limited"])


def t_rude():
    cl = T.cl
    time.sleep(float(T.c3_last.h("X-RateLimit-Reset-After")))
    control(T.port, "POST", "reset-stats")
    n_before = len(dump(T.port, C3))
    results = []
    for i in range(8):
        results.append(cl.json("POST", "/channels/%s/messages" % C3, {"content": "rude%d" % i}))
    statuses = [r.status for r in results]
    check(statuses[:5] == [200] * 5, "first --create-limit creates succeed", statuses)
    check(results[4].h("X-RateLimit-Remaining") == "0", "5th create announces remaining 0", results[4])
    n429 = statuses.count(429)
    check(n429 >= 1 and statuses[5] == 429, "creates into the exhausted bucket get 429", statuses)
    r = results[5]
    check(r.h("X-RateLimit-Scope") == "user" and r.h("X-RateLimit-Global") is None, "429 scope", r)
    check(re.fullmatch(r"[1-9][0-9]*", r.h("Retry-After")), "Retry-After integer seconds", r)
    j = r.json()
    check(j["message"] == "You are being rate limited." and j["global"] is False
          and 0 < j["retry_after"] <= 1.0 and isinstance(j["retry_after"], float), "429 body", j)
    check(r.h("X-RateLimit-Remaining") == "0", "429 carries bucket headers", r)
    s = stats(T.port)
    check(s["requests_into_exhausted_bucket"] == n429, "exhausted-bucket counter == 429s sent", s, statuses)
    check(s["rate_limited"]["user"] == n429 and s["status_counts"].get("429") == n429, "429 counters", s)
    check(len(dump(T.port, C3)) == n_before + statuses.count(200), "429s created nothing")
    time.sleep(results[-1].json()["retry_after"] if results[-1].status == 429 else 0)
    time.sleep(float(results[-1].h("X-RateLimit-Reset-After")) if results[-1].status == 200 else 0)
    r = cl.json("POST", "/channels/%s/messages" % C3, {"content": "after wait"})
    check(r.status == 200, "create after waiting Retry-After", r)
    check(stats(T.port)["requests_into_exhausted_bucket"] == n429, "waiting does not count")


def t_global():
    control(T.port, "POST", "config", {"global_limit": 3})
    control(T.port, "POST", "reset-stats")
    cl = T.cl
    paths = ["/channels/%s/messages/1" % c for c in (C1, C2, C3, C4)] + ["/channels/%s/pins" % C1,
                                                                         "/channels/%s/pins" % C2]
    rs = [cl.api("GET", p) for p in paths]
    g = [r for r in rs if r.status == 429]
    check(len(g) >= 1 and rs[0].status == 404, "global limit reached", [r.status for r in rs])
    r = g[0]
    check(r.h("X-RateLimit-Global") == "true" and r.h("X-RateLimit-Scope") == "global", "global headers", r)
    check(r.json()["global"] is True and re.fullmatch(r"[1-9][0-9]*", r.h("Retry-After")), "global body", r)
    s = stats(T.port)
    check(s["rate_limited"]["global"] == len(g), "global 429 counter", s)
    check(s["requests_during_global_retry_after"] >= len(g) - 1, "requests during global retry", s)
    check(s["requests_into_exhausted_bucket"] == 0, "global 429s are not route exhaustion", s)
    st, cfg = control(T.port, "POST", "config", {"global_limit": 500})
    check(st == 200 and cfg["global_limit"] == 500, "config restored", cfg)
    st, e = control(T.port, "POST", "config", {"bogus": 1})
    check(st == 400, "unknown config key refused", e)
    st, e = control(T.port, "POST", "config", {"create_limit": 0})
    check(st == 400, "invalid config value refused", e)


def t_urls():
    cl = T.polite
    data = os.urandom(3000)
    m = create(cl, C1, "urls", [("u.bin", data)]).json()
    url = m["attachments"][0]["url"]
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    bad_hm = q["hm"][:-1] + ("0" if q["hm"][-1] != "0" else "1")
    d = cdn_get("%s://%s%s?ex=%s&is=%s&hm=%s&" % (u.scheme, u.netloc, u.path, q["ex"], q["is"], bad_hm))
    check(d.status == 403, "tampered signature -> 403", d)
    later = "%x" % (int(q["ex"], 16) + 1000)
    d = cdn_get("%s://%s%s?ex=%s&is=%s&hm=%s&" % (u.scheme, u.netloc, u.path, later, q["is"], q["hm"]))
    check(d.status == 403, "extended expiry -> 403", d)
    d = cdn_get("%s://%s%s" % (u.scheme, u.netloc, u.path))
    check(d.status == 404 and d.body == EXPIRED, "unsigned URL -> 404", d)
    d = cdn_get(url.replace("/u.bin?", "/v.bin?"))
    check(d.status == 403, "other filename -> 403", d)
    r = cl.json("POST", "/attachments/refresh-urls", {"attachment_urls": [url, "https://example.com/x.png"]})
    j = r.json()
    check(r.status == 200 and [e["original"] for e in j["refreshed_urls"]] == [url, "https://example.com/x.png"],
          "refresh-urls", r)
    check(j["refreshed_urls"][1]["refreshed"] == "https://example.com/x.png", "foreign URL unchanged", j)
    st, _ = control(T.port, "POST", "expire-urls")
    check(st == 200, "expire-urls")
    for old in (url, j["refreshed_urls"][0]["refreshed"]):
        d = cdn_get(old)
        check(d.status == 404 and d.body == EXPIRED, "expired URL -> 404 text", d)
    g = cl.api("GET", "/channels/%s/messages/%s" % (C1, m["id"])).json()
    check(cdn_get(g["attachments"][0]["url"]).body == data, "fresh URL from GET after expiry")
    r = cl.json("POST", "/attachments/refresh-urls", {"attachment_urls": [url]})
    new = r.json()["refreshed_urls"][0]["refreshed"]
    check(new != url and cdn_get(new).body == data, "refreshing an expired URL works", r)
    for n in (0, 51):
        r = cl.json("POST", "/attachments/refresh-urls", {"attachment_urls": [url] * n})
        check(r.status == 400 and err_code(r) == 50035, "refresh-urls with %d URLs -> 400" % n, r)
    control(T.port, "POST", "config", {"url_ttl": 1})
    g = cl.api("GET", "/channels/%s/messages/%s" % (C1, m["id"])).json()
    short = g["attachments"][0]["url"]
    check(cdn_get(short).status == 200, "short-lived URL works at first")
    ex = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(short).query))["ex"], 16)
    time.sleep(max(0.0, ex - time.time()) + 0.05)
    d = cdn_get(short)
    check(d.status == 404 and d.body == EXPIRED, "URL past --url-ttl -> 404", d)
    control(T.port, "POST", "config", {"url_ttl": 3600})
    cl.api("DELETE", "/channels/%s/messages/%s" % (C1, m["id"]))
    r = cl.json("POST", "/attachments/refresh-urls", {"attachment_urls": [url]})
    check(r.json()["refreshed_urls"][0]["refreshed"] == url, "deleted attachment's URL returned unchanged", r)


def t_range():
    data = os.urandom(1000)
    url = create(T.polite, C1, "range", [("r.bin", data)]).json()["attachments"][0]["url"]
    for rng, status, cr, body in (
            ("bytes=0-9", 206, "bytes 0-9/1000", data[:10]),
            ("bytes=990-", 206, "bytes 990-999/1000", data[990:]),
            ("bytes=-10", 206, "bytes 990-999/1000", data[990:]),
            ("bytes=995-2000", 206, "bytes 995-999/1000", data[995:]),
            ("bytes=1000-", 416, "bytes */1000", b""),
            ("bytes=-0", 416, "bytes */1000", b""),
            ("bytes=5-2", 200, None, data),
            ("bytes=0-1,5-6", 200, None, data)):
        d = cdn_get(url, {"Range": rng})
        check(d.status == status and d.h("Content-Range") == cr and d.body == body, "Range " + rng, d)


def t_keepalive():
    c = Client(T.port)
    r1 = c.api("GET", "/channels/%s/messages?limit=1" % C2)
    sock = c.conn.sock
    c.api("GET", "/channels/%s/messages?limit=1" % C1)
    c.raw("GET", "/_emulator/stats")
    r3 = c.api("DELETE", "/channels/%s/pins/%s" % (C4, T.c4_ids[0]))
    r4 = c.api("GET", "/channels/%s/pins" % C4)
    check(r1.version == 11 and r3.status == 204 and r4.status == 200, "HTTP/1.1 responses", r1, r3, r4)
    check(c.connects == 1 and c.conn is not None and c.conn.sock is sock, "keep-alive connection reused")
    c.close()


def t_faults():
    port = T.port
    cl = Client(port)
    m = create(T.polite, C1, "fault target", [("f.bin", os.urandom(4096))]).json()
    url = m["attachments"][0]["url"]
    mpath = "/channels/%s/messages/%s" % (C1, m["id"])
    control(port, "POST", "reset-stats")

    def set_faults(obj):
        st, j = control(port, "POST", "faults", obj)
        check(st == 200, "set faults", obj, j)

    set_faults({"5xx": 1.0})
    r = cl.api("GET", mpath, expect_rl=False)
    check(r.status in (500, 502, 503) and r.h("X-RateLimit-Limit") is None, "5xx fault", r)
    d = cdn_get(url)
    check(d.status in (500, 502, 503), "5xx fault on CDN", d)
    check(stats(port)["faults_injected"]["5xx"] == 2, "control endpoints are never faulted")
    set_faults({"overloaded": 1.0})
    r = cl.api("GET", mpath, expect_rl=False)
    check(r.status == 503 and err_code(r) == 130000, "overloaded fault -> 130000", r)
    check(cdn_get(url).status == 200, "overloaded is API-only")
    set_faults({"drop": 1.0})
    for fn in (lambda: cl.api("GET", mpath, expect_rl=False), lambda: cdn_get(url)):
        try:
            fn()
            raise Failure("drop fault: expected the connection to close without a response")
        except (http.client.HTTPException, ConnectionError):
            pass
    set_faults({"lost_create": 1.0})
    r = cl.api("GET", mpath)
    check(r.status == 200, "lost_create applies to creates only", r)
    try:
        create(cl, C1, "lost", [("lost.bin", b"lost")], nonce="lost-1", enforce=True)
        raise Failure("lost_create: expected no response")
    except (http.client.HTTPException, ConnectionError):
        pass
    lost = [x for x in dump(port, C1) if x["nonce"] == "lost-1"]
    check(len(lost) == 1, "lost_create still created the message", lost)
    set_faults({})
    r = create(T.polite, C1, "lost", [("lost.bin", b"lost")], nonce="lost-1", enforce=True)
    check(r.status == 200 and r.json()["id"] == lost[0]["id"], "retry with the nonce finds it", r)
    set_faults({"flip": 1.0})
    ok = cdn_get(url)
    set_faults({})
    clean = cdn_get(url)
    diff = [i for i in range(len(clean.body)) if ok.body[i] != clean.body[i]]
    check(ok.status == 200 and len(ok.body) == len(clean.body) and len(diff) == 1
          and bin(ok.body[diff[0]] ^ clean.body[diff[0]]).count("1") == 1, "flip: exactly one bit", diff)
    check(cl.api("GET", mpath).status == 200, "flip does not touch the API")
    set_faults({"truncate": 1.0})
    try:
        cdn_get(url)
        raise Failure("truncate: expected a short body")
    except http.client.IncompleteRead:
        pass
    set_faults({})
    f = stats(port)["faults_injected"]
    check(all(f[k] >= 1 for k in ("5xx", "drop", "lost_create", "flip", "overloaded", "truncate")),
          "faults_injected counts every kind", f)
    for bad in ({"bogus": 0.1}, {"5xx": 2}, {"drop": "x"}):
        st, _ = control(port, "POST", "faults", bad)
        check(st == 400, "invalid faults refused", bad)


def fault_sequence(port, n=40):
    cl = Client(port)
    out = []
    for i in range(n):
        try:
            r = cl.api("GET", "/channels/%s/messages/1" % C1, expect_rl=False)
            out.append(str(r.status) + ("/%s" % err_code(r) if r.status == 503 else ""))
        except (http.client.HTTPException, ConnectionError):
            out.append("drop")
    cl.close()
    return out


def t_reproducible():
    args = ["--seed", "7", "--faults", "5xx=0.3,drop=0.2,overloaded=0.1", "--token", TOKEN,
            "--channel", C1, "--channel", C2, "--route-limit", "1000", "--global-limit", "0"]
    e2 = Emu(*args)
    e3 = Emu(*(args + ["--discord-bucket-hash"]))
    try:
        s1 = fault_sequence(e2.port)
        check("drop" in s1 and "404" in s1 and any(x.startswith("5") for x in s1), "fault mix", s1)
        f = stats(e2.port)["faults_injected"]
        check(f["drop"] == s1.count("drop") and f["overloaded"] == s1.count("503/130000"),
              "fault counters match what the client saw", f, s1)
        control(e2.port, "POST", "faults", {"seed": 7, "5xx": 0.3, "drop": 0.2, "overloaded": 0.1})
        s2 = fault_sequence(e2.port)
        check(s1 == s2, "re-seeding at runtime replays the same faults", s1, s2)
        s3 = fault_sequence(e3.port)
        check(s1 == s3, "same --seed and --faults -> same faults in a new process", s1, s3)
        control(e3.port, "POST", "faults", {})
        c = Client(e3.port)
        b1 = c.api("GET", "/channels/%s/messages/1" % C1).h("X-RateLimit-Bucket")
        b2 = c.api("GET", "/channels/%s/messages/1" % C2).h("X-RateLimit-Bucket")
        check(b1 == b2, "--discord-bucket-hash: bucket hash excludes the channel", b1, b2)
    finally:
        e2.stop()
        e3.stop()


def t_concurrency():
    before = stats(T.port)
    got = []
    errors = []
    lock = threading.Lock()

    def worker(n):
        cl = Polite(T.port)
        try:
            for i in range(4):
                ch = (C1, C2)[(n + i) % 2]
                r = create(cl, ch, "conc-%d-%d" % (n, i), [("c%d.bin" % i, os.urandom(2000))])
                check(r.status == 200, "concurrent create", r)
                with lock:
                    got.append(r.json()["id"])
                r = cl.api("GET", "/channels/%s/messages?limit=3" % ch)
                check(r.status == 200, "concurrent list", r)
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check(not errors, "concurrent workers", errors)
    check(len(got) == 16 and len(set(got)) == 16, "16 distinct messages", got)
    s = stats(T.port)
    check(s["creates"] - before["creates"] == 16 and s["internal_errors"] == 0, "concurrent stats", s)


def t_stats():
    s = stats(T.port)
    for k in ("requests", "status_counts", "rate_limited", "requests_into_exhausted_bucket", "messages",
              "attachments", "attachment_bytes", "bytes_uploaded", "bytes_downloaded", "creates",
              "duplicate_nonce_hits", "faults_injected"):
        check(k in s, "stats has " + k, s)
    check(set(s["rate_limited"]) >= {"user", "global"}, "rate_limited scopes", s)
    msgs = [m for c in (C1, C2, C3, C4) for m in dump(T.port, c)]
    atts = [a for m in msgs for a in m["attachments"]]
    check(s["messages"] == len(msgs), "stats.messages == live messages", s["messages"], len(msgs))
    check(s["attachments"] == len(atts) and s["attachment_bytes"] == sum(a["size"] for a in atts),
          "attachment stats", s)
    check(s["bytes_uploaded"] > 16 * 2000 and s["bytes_downloaded"] > 0 and
          s["requests"].get("POST /channels/{channel.id}/messages", 0) >= 16, "traffic stats", s)
    check(s["internal_errors"] == 0 and s["requests_without_discordbot_user_agent"] == 0, "clean run", s)
    st, _ = control(T.port, "POST", "reset-stats")
    s = stats(T.port)
    check(st == 200 and s["requests"] == {} and s["creates"] == 0 and s["bytes_uploaded"] == 0
          and s["messages"] == len(msgs), "reset-stats zeroes counters, keeps state", s)
    st, j = control(T.port, "GET", "channels/999/messages")
    check(st == 404, "dump of unknown channel", j)


TESTS = [t_auth_and_errors, t_create_and_cdn, t_snowflakes, t_nonce, t_limits, t_list, t_edit, t_pins,
         t_delete, t_headers, t_polite_counter_zero, t_rude, t_global, t_urls, t_range, t_keepalive,
         t_faults, t_reproducible, t_concurrency, t_stats]


def main():
    random.seed(12345)
    start = time.time()
    T.emu = Emu("--port", "0", "--seed", "1234", "--token", TOKEN, "--token", OTHER_TOKEN,
                "--channel", C1, "--channel", C2, "--channel", C3, "--channel", C4,
                "--file-limit", "65536", "--request-limit", "262144", "--create-limit", "5",
                "--create-window", "1", "--route-limit", "30", "--route-window", "1",
                "--global-limit", "500", "--url-ttl", "3600", "--pin-limit", "3")
    T.port = T.emu.port
    T.cl = Client(T.port)
    T.polite = Polite(T.port)
    failed = None
    for t in TESTS:
        t0 = time.time()
        try:
            t()
            print("ok   %-28s %.2fs" % (t.__name__, time.time() - t0), flush=True)
        except Exception as e:
            failed = t.__name__
            print("FAIL %-28s %s: %s" % (t.__name__, type(e).__name__, e), flush=True)
            import traceback
            traceback.print_exc()
            break
    try:
        T.emu.stop()
    except Failure as e:
        print("FAIL shutdown: %s" % e)
        failed = failed or "shutdown"
    if failed:
        print("---- emulator stderr (tail) ----\n" + T.emu.stderr_tail())
        print("discord_emulator_selftest: FAILED (%s) after %.1fs" % (failed, time.time() - start))
        return 1
    print("ok   shutdown on SIGTERM")
    print("discord_emulator_selftest: all %d tests passed in %.1fs" % (len(TESTS), time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
