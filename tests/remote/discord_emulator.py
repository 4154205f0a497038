#!/usr/bin/env python3
"""Discord REST API + attachment CDN emulator, for hashfs tests only.

Standard library only (Python 3.11).  Emulates the part of Discord's HTTP API that
the hashfs remote uses: message create (multipart uploads), read, list, edit,
delete, bulk delete, pins, attachment URL refresh, a signed-URL attachment CDN,
per-route and global rate limits with Discord's headers, and seeded fault
injection.  Control endpoints under /_emulator/ let tests inspect and steer it.

    python3 discord_emulator.py [--port 0] [--seed N] [--token T]... [--channel ID]...
        [--file-limit 10485760] [--request-limit 26214400] [--create-limit 5]
        [--create-window 5.0] [--global-limit 50] [--url-ttl 86400] [--faults SPEC]
        (see --help for the additional options)

Once listening on 127.0.0.1 it prints exactly one line, "PORT <n>", to stdout;
everything else goes to stderr.  SIGTERM / SIGINT make it exit with status 0.
See tests/remote/README.md for the full interface.
"""

from __future__ import annotations

import argparse
import bisect
import email.message
import hashlib
import hmac
import http.server
import json
import math
import mimetypes
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from datetime import datetime, timezone

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"
BOT_USER = {
    "id": "100000000000000099",
    "username": "hashfs-emulator",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
}
DEFAULT_TOKEN = "test-token"
DEFAULT_CHANNELS = ("100000000000000001", "100000000000000002")
FAULT_KINDS = ("5xx", "drop", "lost_create", "flip", "overloaded", "truncate")
EXPIRED_TEXT = b"This content is no longer available."
MAX_CONTROL_BODY = 16 << 20
FOURTEEN_DAYS_MS = 14 * 24 * 3600 * 1000
SNOWFLAKE_RE = re.compile(r"^[0-9]{1,20}$")
FILES_FIELD_RE = re.compile(r"^files\[([0-9]{1,6})\]$")

_log_lock = threading.Lock()
_verbose = False


def log(msg: str) -> None:
    line = "%s discord-emulator: %s\n" % (time.strftime("%H:%M:%S"), msg)
    with _log_lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except Exception:
            pass


def iso_ms(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).isoformat(timespec="microseconds")


def jdump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def is_snowflake(v) -> bool:
    return isinstance(v, str) and bool(SNOWFLAKE_RE.match(v)) and int(v) < (1 << 64)


def fmt_seconds(ms: float) -> str:
    """Seconds with millisecond precision, rounded *up* so a client that waits this
    long can never arrive early."""
    return "%.3f" % (math.ceil(ms - 1e-9) / 1000.0)


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict:
        out = {"message": self.message, "code": self.code}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def form_error(field: str, err_code: str, message: str) -> ApiError:
    errors: dict = {}
    node = errors
    parts = field.split(".")
    for p in parts[:-1]:
        node[p] = {}
        node = node[p]
    node[parts[-1]] = {"_errors": [{"code": err_code, "message": message}]}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def too_large() -> ApiError:
    return ApiError(413, 40005, "Request entity too large")


# --------------------------------------------------------------------------------------
# multipart/form-data


def parse_header_params(value: str):
    """Split 'form-data; name="a"; filename="b"' into ('form-data', {...}).
    Handles quoted strings with backslash escapes and RFC 2231/5987 `param*`."""
    items = []
    cur = []
    in_q = False
    esc = False
    for ch in value:
        if in_q:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_q = False
        elif ch == '"':
            in_q = True
            cur.append(ch)
        elif ch == ";":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    main = items[0].strip().lower()
    params = {}
    for item in items[1:]:
        if "=" not in item:
            continue
        k, v = item.split("=", 1)
        k = k.strip().lower()
        v = v.strip()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[k] = v
    for k in list(params):
        if k.endswith("*"):
            raw = params.pop(k)
            base = k[:-1]
            try:
                charset, _lang, enc = raw.split("'", 2)
                params[base] = urllib.parse.unquote(enc, encoding=charset or "utf-8", errors="strict")
            except (ValueError, LookupError, UnicodeDecodeError):
                params.setdefault(base, raw)
    return main, params


class FilePart:
    __slots__ = ("index", "filename", "content_type", "data", "md5", "sha256")

    def __init__(self, index, filename, content_type, data):
        self.index = index
        self.filename = filename
        self.content_type = content_type
        self.data = data
        self.md5 = hashlib.md5(data).hexdigest()
        self.sha256 = hashlib.sha256(data).hexdigest()


def parse_multipart(body: bytes, boundary: str):
    """Return a list of (headers: dict, content: bytes).  Robust to binary content;
    raises ApiError(400, 50035) on malformed input."""
    bad = ApiError(400, 50035, "Invalid Form Body")
    if not boundary or len(boundary) > 200:
        raise bad
    try:
        delim = b"--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        raise bad
    if body.startswith(delim):
        pos = len(delim)
    else:
        i = body.find(b"\r\n" + delim)
        if i < 0:
            raise bad
        pos = i + 2 + len(delim)
    parts = []
    n = len(body)
    while True:
        if body[pos:pos + 2] == b"--":
            return parts
        while pos < n and body[pos] in (0x20, 0x09):
            pos += 1
        if body[pos:pos + 2] != b"\r\n":
            raise bad
        pos += 2
        if body[pos:pos + 2] == b"\r\n":
            raw_headers = b""
            start = pos + 2
        else:
            end = body.find(b"\r\n\r\n", pos)
            if end < 0:
                raise bad
            raw_headers = body[pos:end]
            start = end + 4
        nxt = body.find(b"\r\n" + delim, start)
        if nxt < 0:
            raise bad
        headers: dict = {}
        last = None
        for line in raw_headers.split(b"\r\n"):
            if not line:
                continue
            text = line.decode("utf-8", errors="replace")
            if text[0] in " \t" and last is not None:
                headers[last] += " " + text.strip()
                continue
            if ":" not in text:
                raise bad
            k, v = text.split(":", 1)
            last = k.strip().lower()
            headers[last] = v.strip()
        parts.append((headers, body[start:nxt]))
        pos = nxt + 2 + len(delim)


def parse_message_body(content_type: str, body: bytes):
    """Parse a create/edit request body into (payload dict, {index: FilePart})."""
    ctype, params = parse_header_params(content_type or "")
    files: dict = {}
    if ctype == "multipart/form-data":
        fields: dict = {}
        for headers, content in parse_multipart(body, params.get("boundary", "")):
            disp, dparams = parse_header_params(headers.get("content-disposition", ""))
            name = dparams.get("name")
            if disp != "form-data" or name is None:
                raise ApiError(400, 50035, "Invalid Form Body")
            if name in fields:
                raise form_error(name, "DUPLICATE_FIELD", "Field is specified more than once.")
            m = FILES_FIELD_RE.match(name)
            if m:
                filename = dparams.get("filename")
                if not filename:
                    raise form_error(name, "BASE_TYPE_REQUIRED", "A filename is required.")
                ptype = headers.get("content-type", "").split(";")[0].strip().lower()
                files[int(m.group(1))] = FilePart(int(m.group(1)), filename, ptype, content)
                fields[name] = None
            else:
                fields[name] = content
        if "payload_json" in fields:
            try:
                payload = json.loads(fields["payload_json"].decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise ApiError(400, 50109, "The request body contains invalid JSON.")
            if not isinstance(payload, dict):
                raise ApiError(400, 50035, "Invalid Form Body")
        else:
            payload = {}
            for key in ("content", "nonce"):
                if fields.get(key) is not None:
                    payload[key] = fields[key].decode("utf-8", errors="replace")
            if fields.get("enforce_nonce") is not None:
                payload["enforce_nonce"] = fields["enforce_nonce"].strip().lower() in (b"true", b"1")
        return payload, files
    if ctype == "application/json":
        try:
            payload = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, 50109, "The request body contains invalid JSON.")
        if not isinstance(payload, dict):
            raise ApiError(400, 50035, "Invalid Form Body")
        return payload, files
    if not body:
        return {}, files
    raise ApiError(400, 50035, "Invalid Form Body (invalid Content-Type)")


def parse_json_body(content_type: str, body: bytes):
    ctype, _ = parse_header_params(content_type or "")
    if ctype != "application/json":
        raise ApiError(400, 50035, "Invalid Form Body (invalid Content-Type)")
    try:
        obj = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, 50109, "The request body contains invalid JSON.")
    if not isinstance(obj, dict):
        raise ApiError(400, 50035, "Invalid Form Body")
    return obj


# --------------------------------------------------------------------------------------
# state


class Attachment:
    __slots__ = ("id", "channel_id", "message_id", "filename", "content_type", "data", "size",
                 "md5", "sha256", "description")


class Message:
    __slots__ = ("id", "channel_id", "content", "nonce", "edited_ms", "attachments")

    @property
    def timestamp_ms(self) -> int:
        return (self.id >> 22) + DISCORD_EPOCH_MS


class Channel:
    def __init__(self, cid: int):
        self.id = cid
        self.messages: dict = {}
        self.ids: list = []          # sorted message ids
        self.pins: dict = {}         # message id -> (seq, pinned_at_ms)
        self.nonces: dict = {}       # nonce str -> (message id, created ms)


class Bucket:
    __slots__ = ("hash", "limit", "window", "remaining", "reset_at_ms", "announced_until_ms")

    def __init__(self, bhash, limit, window):
        self.hash = bhash
        self.limit = limit
        self.window = window
        self.remaining = limit
        self.reset_at_ms = 0
        self.announced_until_ms = 0.0


CONFIG_SPEC = {
    # name: (type, minimum)
    "file_limit": (int, 0),
    "request_limit": (int, 1),
    "create_limit": (int, 1),
    "create_window": (float, 0.001),
    "route_limit": (int, 1),
    "route_window": (float, 0.001),
    "global_limit": (int, 0),
    "global_window": (float, 0.001),
    "url_ttl": (int, 1),
    "pin_limit": (int, 0),
    "nonce_ttl": (float, 0.0),
    "max_attachments": (int, 1),
}
BUCKET_KEYS = {"create_limit", "create_window", "route_limit", "route_window"}
GLOBAL_KEYS = {"global_limit", "global_window"}


def parse_faults(spec) -> dict:
    rates = {k: 0.0 for k in FAULT_KINDS}
    if isinstance(spec, str):
        items = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError("bad fault item %r (want kind=probability)" % part)
            k, v = part.split("=", 1)
            items[k.strip()] = v.strip()
    else:
        items = dict(spec)
    for k, v in items.items():
        if k not in rates:
            raise ValueError("unknown fault kind %r (known: %s)" % (k, ", ".join(FAULT_KINDS)))
        try:
            p = float(v)
        except (TypeError, ValueError):
            raise ValueError("bad probability for %s: %r" % (k, v))
        if not (0.0 <= p <= 1.0) or p != p:
            raise ValueError("probability for %s must be in [0, 1]" % k)
        rates[k] = p
    return rates


class Route:
    def __init__(self, method, pattern, template, handler, parse=None, kind="route"):
        self.method = method
        self.regex = re.compile("^" + pattern + "$")
        self.template = template
        self.handler = handler
        self.parse = parse          # None | "message" | "json"
        self.kind = kind            # "create" | "route"
        self.key = "%s %s" % (method, template)


class Ctx:
    def __init__(self):
        self.token = None
        self.groups = {}
        self.query = {}
        self.payload = None
        self.files = None
        self.now_ms = 0.0
        self.created = False


class Emulator:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.tokens = list(args.token or [DEFAULT_TOKEN])
        self.channels = {}
        for c in (args.channel or DEFAULT_CHANNELS):
            if not is_snowflake(c):
                raise ValueError("channel id must be a snowflake: %r" % c)
            self.channels[int(c)] = Channel(int(c))
        self.config = {
            "file_limit": args.file_limit,
            "request_limit": args.request_limit,
            "create_limit": args.create_limit,
            "create_window": args.create_window,
            "route_limit": args.route_limit,
            "route_window": args.route_window,
            "global_limit": args.global_limit,
            "global_window": args.global_window,
            "url_ttl": args.url_ttl,
            "pin_limit": args.pin_limit,
            "nonce_ttl": args.nonce_ttl,
            "max_attachments": args.max_attachments,
        }
        self.set_config(self.config)
        self.discord_bucket_hash = args.discord_bucket_hash
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.faults = parse_faults(args.faults or "")
        self.secret = os.urandom(32)
        self.port = 0
        self.attachments = {}       # attachment id -> Attachment
        self.buckets = {}           # (token, route key, major) -> Bucket
        self.global_windows = {}    # token -> [count, reset_at_ms, announced_until_ms]
        self.url_min_issued = 0
        self._last_ms = 0
        self._seq = 0
        self._pin_seq = 0
        self.started = time.time()
        self.reset_stats()

    # ---- config / stats ----------------------------------------------------------

    def set_config(self, changes: dict) -> None:
        new = dict(self.config)
        for k, v in changes.items():
            key = k.replace("-", "_")
            if key not in CONFIG_SPEC:
                raise ValueError("unknown config key %r" % k)
            typ, minimum = CONFIG_SPEC[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError("config %s must be a number" % key)
            if typ is int and float(v) != int(v):
                raise ValueError("config %s must be an integer" % key)
            v = typ(v)
            if v < minimum or v != v:
                raise ValueError("config %s must be >= %s" % (key, minimum))
            new[key] = v
        touched = {k.replace("-", "_") for k in changes}
        self.config = new
        if touched & BUCKET_KEYS and hasattr(self, "buckets"):
            self.buckets.clear()
        if touched & GLOBAL_KEYS and hasattr(self, "global_windows"):
            self.global_windows.clear()

    def reset_stats(self) -> None:
        self.stats = {
            "requests": {},
            "status_counts": {},
            "rate_limited": {"user": 0, "global": 0},
            "requests_into_exhausted_bucket": 0,
            "requests_during_global_retry_after": 0,
            "bytes_uploaded": 0,
            "bytes_downloaded": 0,
            "creates": 0,
            "attachment_bytes_created": 0,
            "duplicate_nonce_hits": 0,
            "faults_injected": {k: 0 for k in FAULT_KINDS},
            "unauthorized": 0,
            "requests_without_discordbot_user_agent": 0,
            "internal_errors": 0,
        }

    def stats_snapshot(self) -> dict:
        s = json.loads(json.dumps(self.stats))
        s["messages"] = sum(len(c.messages) for c in self.channels.values())
        s["attachments"] = len(self.attachments)
        s["attachment_bytes"] = sum(a.size for a in self.attachments.values())
        s["pins"] = sum(len(c.pins) for c in self.channels.values())
        s["uptime"] = round(time.time() - self.started, 3)
        return s

    def count_request(self, key: str, nbytes: int = 0) -> None:
        with self.lock:
            r = self.stats["requests"]
            r[key] = r.get(key, 0) + 1
            self.stats["bytes_uploaded"] += nbytes

    def count_status(self, status: int) -> None:
        with self.lock:
            sc = self.stats["status_counts"]
            sc[str(status)] = sc.get(str(status), 0) + 1

    # ---- ids / urls --------------------------------------------------------------

    def next_id(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        if ms > self._last_ms:
            self._last_ms = ms
            self._seq = 0
        else:
            self._seq += 1
            if self._seq >= (1 << 22):
                self._last_ms += 1
                self._seq = 0
        return (self._last_ms << 22) | self._seq

    def _sign(self, cid: int, aid: int, filename: str, ex: str, iss: str) -> str:
        msg = ("%d/%d/%s|%s|%s" % (cid, aid, filename, ex, iss)).encode("utf-8")
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, att: Attachment) -> str:
        now = time.time()
        iss = max(int(now), self.url_min_issued)
        ex = max(int(math.ceil(now + self.config["url_ttl"])), iss + 1)
        ex_h, is_h = "%x" % ex, "%x" % iss
        hm = self._sign(att.channel_id, att.id, att.filename, ex_h, is_h)
        return "http://127.0.0.1:%d/attachments/%d/%d/%s?ex=%s&is=%s&hm=%s&" % (
            self.port, att.channel_id, att.id, urllib.parse.quote(att.filename, safe=""),
            ex_h, is_h, hm)

    # ---- JSON views --------------------------------------------------------------

    def attachment_json(self, a: Attachment) -> dict:
        url = self.signed_url(a)
        out = {"id": str(a.id), "filename": a.filename, "size": a.size, "url": url,
               "proxy_url": url, "content_type": a.content_type}
        if a.description is not None:
            out["description"] = a.description
        return out

    def message_json(self, ch: Channel, m: Message, with_nonce: bool = False) -> dict:
        out = {
            "id": str(m.id),
            "type": 0,
            "channel_id": str(m.channel_id),
            "author": dict(BOT_USER),
            "content": m.content,
            "timestamp": iso_ms(m.timestamp_ms),
            "edited_timestamp": iso_ms(m.edited_ms) if m.edited_ms else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [self.attachment_json(a) for a in m.attachments],
            "embeds": [],
            "pinned": m.id in ch.pins,
            "flags": 0,
            "components": [],
        }
        if with_nonce and m.nonce is not None:
            out["nonce"] = m.nonce
        return out

    def dump_json(self, ch: Channel, m: Message) -> dict:
        return {
            "id": str(m.id),
            "channel_id": str(m.channel_id),
            "content": m.content,
            "nonce": m.nonce,
            "timestamp": iso_ms(m.timestamp_ms),
            "edited_timestamp": iso_ms(m.edited_ms) if m.edited_ms else None,
            "pinned": m.id in ch.pins,
            "attachments": [{"id": str(a.id), "filename": a.filename, "size": a.size,
                             "content_type": a.content_type, "sha256": a.sha256}
                            for a in m.attachments],
        }

    # ---- rate limits -------------------------------------------------------------

    def bucket_for(self, token, route: Route, major: str):
        key = (token, route.key, major)
        b = self.buckets.get(key)
        if route.kind == "create":
            limit, window = self.config["create_limit"], self.config["create_window"]
        else:
            limit, window = self.config["route_limit"], self.config["route_window"]
        if b is None:
            hsrc = route.key if self.discord_bucket_hash else "%s|%s" % (route.key, major)
            b = Bucket(hashlib.sha256(hsrc.encode()).hexdigest()[:32], limit, window)
            self.buckets[key] = b
        return b

    def refresh_window(self, b: Bucket, now_ms: float) -> None:
        if now_ms >= b.reset_at_ms:
            b.remaining = b.limit
            b.reset_at_ms = int(math.ceil(now_ms + b.window * 1000.0))

    def bucket_headers(self, b: Bucket, now_ms: float, fresh: bool = False) -> dict:
        if fresh:
            remaining, reset_at = b.limit, int(math.ceil(now_ms + b.window * 1000.0))
        else:
            remaining, reset_at = b.remaining, b.reset_at_ms
        return {
            "X-RateLimit-Limit": str(b.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": "%.3f" % (reset_at / 1000.0),
            "X-RateLimit-Reset-After": fmt_seconds(reset_at - now_ms),
            "X-RateLimit-Bucket": b.hash,
        }

    def announce(self, b: Bucket) -> None:
        """Called when a response carrying this bucket's headers is sent."""
        if b.remaining <= 0:
            b.announced_until_ms = max(b.announced_until_ms, b.reset_at_ms)

    def draw_fault(self, kinds) -> str | None:
        u = self.rng.random()
        acc = 0.0
        for k in kinds:
            acc += self.faults.get(k, 0.0)
            if u < acc:
                return k
        return None

    # ---- API handlers (called with self.lock held) -------------------------------

    def channel(self, ctx) -> Channel:
        ch = self.channels.get(int(ctx.groups["channel"]))
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return ch

    def message(self, ch: Channel, mid: str) -> Message:
        m = ch.messages.get(int(mid))
        if m is None:
            raise ApiError(404, 10008, "Unknown Message")
        return m

    def _validate_common(self, payload: dict, creating: bool):
        content = payload.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise form_error("content", "STRING_TYPE_CONVERT", "Could not interpret value as string.")
            if len(content) > 2000:
                raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        atts = payload.get("attachments")
        if atts is not None:
            if not isinstance(atts, list):
                raise form_error("attachments", "LIST_TYPE_CONVERT", "Could not interpret value as list.")
            for i, a in enumerate(atts):
                if not isinstance(a, dict) or "id" not in a:
                    raise form_error("attachments.%d.id" % i, "BASE_TYPE_REQUIRED", "This field is required")
                if not isinstance(a["id"], (int, str)) or isinstance(a["id"], bool) \
                        or not str(a["id"]).isdigit():
                    raise form_error("attachments.%d.id" % i, "NUMBER_TYPE_COERCE",
                                     "Value is not a valid snowflake or index.")
                if "filename" in a and (not isinstance(a["filename"], str) or not a["filename"]):
                    raise form_error("attachments.%d.filename" % i, "STRING_TYPE_CONVERT",
                                     "Could not interpret value as string.")
        return content, atts

    def _new_attachment(self, ch: Channel, mid: int, fp: FilePart, meta: dict | None) -> Attachment:
        a = Attachment()
        a.id = self.next_id()
        a.channel_id = ch.id
        a.message_id = mid
        a.filename = (meta or {}).get("filename") or fp.filename
        a.content_type = fp.content_type or mimetypes.guess_type(a.filename)[0] \
            or "application/octet-stream"
        a.data = fp.data
        a.size = len(fp.data)
        a.md5 = fp.md5
        a.sha256 = fp.sha256
        d = (meta or {}).get("description")
        a.description = d if isinstance(d, str) else None
        return a

    def _check_files(self, files: dict, total_after: int):
        if total_after > self.config["max_attachments"]:
            raise ApiError(400, 30015, "Maximum number of attachments in a message reached (%d)"
                           % self.config["max_attachments"])
        for fp in files.values():
            if len(fp.data) > self.config["file_limit"]:
                raise too_large()

    def h_create(self, ctx):
        ch = self.channel(ctx)
        payload, files = ctx.payload, ctx.files
        content, atts = self._validate_common(payload, True)
        nonce = payload.get("nonce")
        if nonce is not None:
            if isinstance(nonce, bool) or not isinstance(nonce, (str, int)):
                raise form_error("nonce", "STRING_TYPE_CONVERT", "Could not interpret value as string.")
            if len(str(nonce)) > 25:
                raise form_error("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        enforce = payload.get("enforce_nonce", False)
        if not isinstance(enforce, bool):
            raise form_error("enforce_nonce", "BOOLEAN_TYPE_CONVERT", "Value must be one of {True, False}.")
        self._check_files(files, len(files))
        meta_by_index = {}
        for i, a in enumerate(atts or []):
            idx = int(a["id"])
            if idx not in files:
                raise form_error("attachments.%d.id" % i, "ATTACHMENT_NOT_FOUND",
                                 "No file was uploaded for attachment id %s." % a["id"])
            meta_by_index[idx] = a
        if not content and not files:
            raise ApiError(400, 50006, "Cannot send an empty message")
        if nonce is not None and enforce:
            hit = ch.nonces.get(str(nonce))
            if hit is not None:
                mid, created = hit
                if ctx.now_ms - created < self.config["nonce_ttl"] * 1000.0 and mid in ch.messages:
                    self.stats["duplicate_nonce_hits"] += 1
                    return 200, self.message_json(ch, ch.messages[mid], with_nonce=True)
        m = Message()
        m.id = self.next_id()
        m.channel_id = ch.id
        m.content = content or ""
        m.nonce = nonce
        m.edited_ms = None
        m.attachments = []
        for idx in sorted(files):
            a = self._new_attachment(ch, m.id, files[idx], meta_by_index.get(idx))
            m.attachments.append(a)
            self.attachments[a.id] = a
            self.stats["attachment_bytes_created"] += a.size
        ch.messages[m.id] = m
        bisect.insort(ch.ids, m.id)
        if nonce is not None:
            ch.nonces[str(nonce)] = (m.id, ctx.now_ms)
            if len(ch.nonces) > 4096:
                limit = ctx.now_ms - self.config["nonce_ttl"] * 1000.0
                ch.nonces = {k: v for k, v in ch.nonces.items() if v[1] >= limit}
        self.stats["creates"] += 1
        ctx.created = True
        return 200, self.message_json(ch, m, with_nonce=True)

    def h_get(self, ctx):
        ch = self.channel(ctx)
        return 200, self.message_json(ch, self.message(ch, ctx.groups["message"]))

    def h_list(self, ctx):
        ch = self.channel(ctx)
        q = ctx.query
        limit = 50
        if "limit" in q:
            try:
                limit = int(q["limit"])
            except ValueError:
                raise form_error("limit", "NUMBER_TYPE_COERCE", "Value \"%s\" is not int." % q["limit"])
            if limit < 1 or limit > 100:
                raise form_error("limit", "NUMBER_TYPE_MAX" if limit > 100 else "NUMBER_TYPE_MIN",
                                 "int value should be between 1 and 100.")
        anchors = [k for k in ("around", "before", "after") if k in q]
        if len(anchors) > 1:
            raise form_error(anchors[1], "MUTUALLY_EXCLUSIVE",
                             "before, after and around are mutually exclusive.")
        ids = ch.ids
        if anchors:
            k = anchors[0]
            if not is_snowflake(q[k]):
                raise form_error(k, "NUMBER_TYPE_COERCE", "Value \"%s\" is not snowflake." % q[k])
            x = int(q[k])
            if k == "before":
                i = bisect.bisect_left(ids, x)
                sel = ids[max(0, i - limit):i]
            elif k == "after":
                i = bisect.bisect_right(ids, x)
                sel = ids[i:i + limit]
            else:
                i = bisect.bisect_left(ids, x)
                half = limit // 2
                older = ids[max(0, i - half):i] if half else []
                newer = ids[i:i + (limit - half)]
                sel = older + newer
        else:
            sel = ids[-limit:]
        return 200, [self.message_json(ch, ch.messages[i]) for i in reversed(sel)]

    def _drop_attachment(self, a: Attachment) -> None:
        self.attachments.pop(a.id, None)

    def _delete_message(self, ch: Channel, m: Message) -> None:
        for a in m.attachments:
            self._drop_attachment(a)
        del ch.messages[m.id]
        i = bisect.bisect_left(ch.ids, m.id)
        if i < len(ch.ids) and ch.ids[i] == m.id:
            del ch.ids[i]
        ch.pins.pop(m.id, None)
        if m.nonce is not None and ch.nonces.get(str(m.nonce), (None,))[0] == m.id:
            del ch.nonces[str(m.nonce)]

    def h_edit(self, ctx):
        ch = self.channel(ctx)
        m = self.message(ch, ctx.groups["message"])
        payload, files = ctx.payload, ctx.files
        content, atts = self._validate_common(payload, False)
        keep = list(m.attachments)
        meta_by_index = {}
        if atts is not None:
            existing = {str(a.id): a for a in m.attachments}
            keep = []
            for i, a in enumerate(atts):
                sid = str(a["id"])
                if sid in existing:
                    keep.append(existing[sid])
                elif int(sid) in files:
                    meta_by_index[int(sid)] = a
                else:
                    raise form_error("attachments.%d.id" % i, "ATTACHMENT_NOT_FOUND",
                                     "Unknown attachment %s." % sid)
        self._check_files(files, len(keep) + len(files))
        new_content = m.content
        if "content" in payload:
            new_content = content or ""
        if not new_content and not keep and not files:
            raise ApiError(400, 50006, "Cannot send an empty message")
        for a in m.attachments:
            if a not in keep:
                self._drop_attachment(a)
        m.attachments = keep
        for idx in sorted(files):
            a = self._new_attachment(ch, m.id, files[idx], meta_by_index.get(idx))
            m.attachments.append(a)
            self.attachments[a.id] = a
            self.stats["attachment_bytes_created"] += a.size
        m.content = new_content
        m.edited_ms = ctx.now_ms
        return 200, self.message_json(ch, m)

    def h_delete(self, ctx):
        ch = self.channel(ctx)
        self._delete_message(ch, self.message(ch, ctx.groups["message"]))
        return 204, None

    def h_bulk_delete(self, ctx):
        ch = self.channel(ctx)
        ids = ctx.payload.get("messages")
        if not isinstance(ids, list):
            raise form_error("messages", "BASE_TYPE_REQUIRED", "This field is required")
        if len(ids) < 2 or len(ids) > 100:
            raise ApiError(400, 50016, "You must provide at least 2 and at most 100 messages to delete.")
        for i, v in enumerate(ids):
            if isinstance(v, int) and not isinstance(v, bool):
                v = str(v)
            if not is_snowflake(v):
                raise form_error("messages.%d" % i, "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        ints = [int(v) for v in ids]
        if len(set(ints)) != len(ints):
            raise form_error("messages", "DUPLICATE_MESSAGE_IDS", "Duplicate message IDs.")
        for v in ints:
            if (v >> 22) + DISCORD_EPOCH_MS < ctx.now_ms - FOURTEEN_DAYS_MS:
                raise ApiError(400, 50034, "You can only bulk delete messages that are under 14 days old.")
        for v in ints:
            m = ch.messages.get(v)
            if m is not None:
                self._delete_message(ch, m)
        return 204, None

    def h_pin(self, ctx):
        ch = self.channel(ctx)
        m = self.message(ch, ctx.groups["message"])
        if m.id not in ch.pins:
            if len(ch.pins) >= self.config["pin_limit"]:
                raise ApiError(400, 30003, "Maximum number of pins reached (%d)" % self.config["pin_limit"])
            self._pin_seq += 1
            ch.pins[m.id] = (self._pin_seq, ctx.now_ms)
        return 204, None

    def h_unpin(self, ctx):
        ch = self.channel(ctx)
        m = self.message(ch, ctx.groups["message"])
        ch.pins.pop(m.id, None)
        return 204, None

    def _pins_sorted(self, ch: Channel):
        return sorted(ch.pins.items(), key=lambda kv: kv[1][0], reverse=True)

    def h_pins_legacy(self, ctx):
        ch = self.channel(ctx)
        return 200, [self.message_json(ch, ch.messages[mid]) for mid, _ in self._pins_sorted(ch)]

    def h_pins_new(self, ctx):
        ch = self.channel(ctx)
        q = ctx.query
        limit = 50
        if "limit" in q:
            try:
                limit = int(q["limit"])
            except ValueError:
                raise form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.")
            if limit < 1 or limit > 50:
                raise form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 50.")
        items = self._pins_sorted(ch)
        if "before" in q:
            try:
                dt = datetime.fromisoformat(q["before"].replace("Z", "+00:00"))
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
            except ValueError:
                raise form_error("before", "DATE_TYPE_CONVERT", "Could not parse timestamp.")
            before_ms = dt.timestamp() * 1000.0
            items = [kv for kv in items if kv[1][1] < before_ms - 1e-3]
        out = [{"pinned_at": iso_ms(pinned_ms), "message": self.message_json(ch, ch.messages[mid])}
               for mid, (_, pinned_ms) in items[:limit]]
        return 200, {"items": out, "has_more": len(items) > limit}

    def h_refresh(self, ctx):
        urls = ctx.payload.get("attachment_urls")
        if not isinstance(urls, list) or not urls:
            raise form_error("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required")
        if len(urls) > 50:
            raise form_error("attachment_urls", "BASE_TYPE_MAX_LENGTH", "Must be 50 or fewer in length.")
        out = []
        for i, u in enumerate(urls):
            if not isinstance(u, str):
                raise form_error("attachment_urls.%d" % i, "STRING_TYPE_CONVERT",
                                 "Could not interpret value as string.")
            refreshed = u
            try:
                path = urllib.parse.urlsplit(u).path
            except ValueError:
                path = ""
            m = re.match(r"^/attachments/([0-9]+)/([0-9]+)/([^/]+)$", path)
            if m:
                a = self.attachments.get(int(m.group(2)))
                if a is not None and a.channel_id == int(m.group(1)) \
                        and a.filename == urllib.parse.unquote(m.group(3)):
                    refreshed = self.signed_url(a)
            out.append({"original": u, "refreshed": refreshed})
        return 200, {"refreshed_urls": out}


ROUTES = [
    Route("POST", r"/channels/(?P<channel>[0-9]+)/messages", "/channels/{channel.id}/messages",
          Emulator.h_create, parse="message", kind="create"),
    Route("GET", r"/channels/(?P<channel>[0-9]+)/messages", "/channels/{channel.id}/messages",
          Emulator.h_list),
    Route("GET", r"/channels/(?P<channel>[0-9]+)/messages/pins",
          "/channels/{channel.id}/messages/pins", Emulator.h_pins_new),
    Route("PUT", r"/channels/(?P<channel>[0-9]+)/messages/pins/(?P<message>[0-9]+)",
          "/channels/{channel.id}/messages/pins/{message.id}", Emulator.h_pin),
    Route("DELETE", r"/channels/(?P<channel>[0-9]+)/messages/pins/(?P<message>[0-9]+)",
          "/channels/{channel.id}/messages/pins/{message.id}", Emulator.h_unpin),
    Route("POST", r"/channels/(?P<channel>[0-9]+)/messages/bulk-delete",
          "/channels/{channel.id}/messages/bulk-delete", Emulator.h_bulk_delete, parse="json"),
    Route("GET", r"/channels/(?P<channel>[0-9]+)/messages/(?P<message>[0-9]+)",
          "/channels/{channel.id}/messages/{message.id}", Emulator.h_get),
    Route("PATCH", r"/channels/(?P<channel>[0-9]+)/messages/(?P<message>[0-9]+)",
          "/channels/{channel.id}/messages/{message.id}", Emulator.h_edit, parse="message"),
    Route("DELETE", r"/channels/(?P<channel>[0-9]+)/messages/(?P<message>[0-9]+)",
          "/channels/{channel.id}/messages/{message.id}", Emulator.h_delete),
    Route("GET", r"/channels/(?P<channel>[0-9]+)/pins", "/channels/{channel.id}/pins",
          Emulator.h_pins_legacy),
    Route("PUT", r"/channels/(?P<channel>[0-9]+)/pins/(?P<message>[0-9]+)",
          "/channels/{channel.id}/pins/{message.id}", Emulator.h_pin),
    Route("DELETE", r"/channels/(?P<channel>[0-9]+)/pins/(?P<message>[0-9]+)",
          "/channels/{channel.id}/pins/{message.id}", Emulator.h_unpin),
    Route("POST", r"/attachments/refresh-urls", "/attachments/refresh-urls", Emulator.h_refresh,
          parse="json"),
]
CDN_RE = re.compile(r"^/attachments/([0-9]+)/([0-9]+)/([^/]+)$")
CDN_KEY = "GET /attachments/{channel.id}/{attachment.id}/{filename}"


def match_route(method: str, path: str):
    other_method = False
    for r in ROUTES:
        m = r.regex.match(path)
        if m:
            if r.method == method:
                return r, m.groupdict(), False
            other_method = True
    return None, None, other_method


# --------------------------------------------------------------------------------------
# HTTP


class Plan:
    """What to write back, decided under the lock, written outside it."""
    __slots__ = ("status", "body", "ctype", "headers", "drop", "truncate_to")

    def __init__(self, status=200, body=b"", ctype="application/json", headers=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or {}
        self.drop = False
        self.truncate_to = None


def json_plan(status, obj, headers=None) -> Plan:
    return Plan(status, b"" if obj is None else jdump(obj), "application/json", headers)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hashfs-discord-emulator/1.0"
    sys_version = ""
    timeout = 300

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    @property
    def emu(self) -> Emulator:
        return self.server.emu

    # quiet by default
    def log_message(self, fmt, *args):
        if _verbose:
            log("%s %s" % (self.address_string(), fmt % args))

    def log_request(self, code="-", size="-"):
        if _verbose:
            log('"%s" %s' % (self.requestline, code))

    def handle_expect_100(self):
        cl = self.headers.get("Content-Length")
        try:
            n = int(cl) if cl is not None else 0
        except ValueError:
            n = 0
        limit = self.emu.config["request_limit"]
        if self.path.startswith("/_emulator/"):
            limit = MAX_CONTROL_BODY
        if n > limit:
            # Refuse before the client sends the body (it then must not send it).
            if self.path.startswith(API_PREFIX + "/"):
                route, _, _ = match_route(self.command, self.path.split("?", 1)[0][len(API_PREFIX):])
                self.emu.count_request(route.key if route else "unknown")
            self._write(Plan(413, jdump(too_large().body())), close=True, count=True)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # ---- body --------------------------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionResetError("client closed connection mid-body")
        return data

    def _discard(self, n: int) -> None:
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 20))
            if not chunk:
                raise ConnectionResetError("client closed connection mid-body")
            n -= len(chunk)

    def _read_body(self, limit: int):
        """Return (body or None if larger than limit, byte count)."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            total = 0
            buf = []
            over = False
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("client closed connection mid-body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadFraming()
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(65537)
                        if not trailer:
                            raise ConnectionResetError("eof in chunked trailer")
                        if trailer in (b"\r\n", b"\n"):
                            break
                    break
                total += size
                if total > limit:
                    over = True
                if over:
                    if total > 4 * limit + (64 << 20):
                        raise _OversizeClose(total)
                    self._discard(size)
                    buf = []
                else:
                    buf.append(self._read_exact(size))
                self._read_exact(2)
            return (None if over else b"".join(buf)), total
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b"", 0
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            raise _BadFraming()
        if n > limit:
            if n > 4 * limit + (64 << 20):
                raise _OversizeClose(n)
            self._discard(n)
            return None, n
        return self._read_exact(n), n

    # ---- output ------------------------------------------------------------------

    def _write(self, plan: Plan, close: bool = False, count: bool = True, head: bool = False):
        """Write a response.  Always sends Content-Length (also 0 on 204) so keep-alive
        framing never depends on the status code."""
        if count:
            self.emu.count_status(plan.status)
        head = head or self.command == "HEAD"
        try:
            self.send_response(plan.status)
            if plan.ctype and (plan.body or plan.status not in (204, 304)):
                self.send_header("Content-Type", plan.ctype)
            self.send_header("Content-Length", str(len(plan.body)))
            for k, v in plan.headers.items():
                self.send_header(k, v)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            body = b"" if head else plan.body
            if plan.truncate_to is not None:
                body = body[:plan.truncate_to]
            if len(body) <= 65536:
                # one write for headers and a small body
                self._headers_buffer.append(b"\r\n" + body)
                self.flush_headers()
            else:
                self.end_headers()
                self.wfile.write(body)
            self.wfile.flush()
            return len(body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
            return 0

    def _drop(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- dispatch ----------------------------------------------------------------

    def _dispatch(self):
        path, _, query = self.path.partition("?")
        try:
            if path.startswith("/_emulator/"):
                self._control(path, query)
            elif path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._api(path[len(API_PREFIX):], query)
            elif path.startswith("/attachments/") and self.command in ("GET", "HEAD"):
                self._cdn(path, query)
            else:
                body, _ = self._read_body(MAX_CONTROL_BODY)
                self._write(json_plan(404, {"message": "404: Not Found", "code": 0}))
        except _BadFraming:
            self._write(json_plan(400, {"message": "400: Bad Request", "code": 0}), close=True)
        except _OversizeClose:
            self._write(Plan(413, jdump(too_large().body())), close=True)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception:
            with self.emu.lock:
                self.emu.stats["internal_errors"] += 1
            log("INTERNAL ERROR handling %s %s:\n%s" % (self.command, self.path, traceback.format_exc()))
            self._write(json_plan(500, {"message": "emulator internal error", "code": 0}), close=True)

    def _auth(self):
        h = self.headers.get("Authorization", "")
        if h.startswith("Bot "):
            tok = h[4:]
            for t in self.emu.tokens:
                if hmac.compare_digest(t.encode(), tok.encode()):
                    return t
        return None

    def _api(self, path: str, query: str):
        E = self.emu
        body, nbytes = self._read_body(E.config["request_limit"])
        route, groups, other = match_route(self.command, path)
        if route is None:
            E.count_request("unknown", nbytes)
            if other:
                self._write(json_plan(405, {"message": "405: Method Not Allowed", "code": 0}))
            else:
                self._write(json_plan(404, {"message": "404: Not Found", "code": 0}))
            return
        E.count_request(route.key, nbytes)
        if not self.headers.get("User-Agent", "").startswith("DiscordBot"):
            with E.lock:
                E.stats["requests_without_discordbot_user_agent"] += 1
        if body is None:
            # Refused at the edge: no rate-limit accounting.
            self._write(Plan(413, jdump(too_large().body())))
            return
        token = self._auth()
        if token is None:
            with E.lock:
                E.stats["unauthorized"] += 1
            self._write(json_plan(401, {"message": "401: Unauthorized", "code": 0}))
            return
        ctx = Ctx()
        ctx.token = token
        ctx.groups = groups
        ctx.query = {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        parse_err = None
        try:
            if route.parse == "message":
                ctx.payload, ctx.files = parse_message_body(self.headers.get("Content-Type", ""), body)
            elif route.parse == "json":
                ctx.payload = parse_json_body(self.headers.get("Content-Type", ""), body)
        except ApiError as e:
            parse_err = e
        major = groups.get("channel", "")
        kinds = ("drop", "5xx", "overloaded") + (("lost_create",) if route.kind == "create" else ())
        with E.lock:
            now_ms = time.time() * 1000.0
            ctx.now_ms = now_ms
            b = E.bucket_for(token, route, major)
            if now_ms < b.announced_until_ms:
                E.stats["requests_into_exhausted_bucket"] += 1
                log("client sent %s into exhausted bucket %s (%.3f s before its reset)"
                    % (route.key, b.hash, (b.announced_until_ms - now_ms) / 1000.0))
            gw = E.global_windows.get(token)
            if gw is not None and now_ms < gw[2]:
                E.stats["requests_during_global_retry_after"] += 1
            fault = E.draw_fault(kinds)
            plan = None
            if fault in ("drop", "5xx", "overloaded"):
                E.stats["faults_injected"][fault] += 1
                plan = self._fault_plan(fault)
            if plan is None and E.config["global_limit"] > 0:
                if gw is None or now_ms >= gw[1]:
                    gw = [0, int(math.ceil(now_ms + E.config["global_window"] * 1000.0)), gw[2] if gw else 0]
                    E.global_windows[token] = gw
                if gw[0] >= E.config["global_limit"]:
                    retry_ms = gw[1] - now_ms
                    gw[2] = max(gw[2], gw[1])
                    E.stats["rate_limited"]["global"] += 1
                    active = now_ms < b.reset_at_ms
                    headers = E.bucket_headers(b, now_ms, fresh=not active)
                    if active:
                        E.announce(b)
                    headers.update({
                        "Retry-After": str(max(1, int(math.ceil(retry_ms / 1000.0)))),
                        "X-RateLimit-Global": "true",
                        "X-RateLimit-Scope": "global",
                    })
                    plan = json_plan(429, {"message": "You are being rate limited.",
                                           "retry_after": float(fmt_seconds(retry_ms)),
                                           "global": True}, headers)
                else:
                    gw[0] += 1
            if plan is None:
                E.refresh_window(b, now_ms)
                if b.remaining <= 0:
                    retry_ms = b.reset_at_ms - now_ms
                    E.stats["rate_limited"]["user"] += 1
                    headers = E.bucket_headers(b, now_ms)
                    headers.update({
                        "Retry-After": str(max(1, int(math.ceil(retry_ms / 1000.0)))),
                        "X-RateLimit-Scope": "user",
                    })
                    E.announce(b)
                    plan = json_plan(429, {"message": "You are being rate limited.",
                                           "retry_after": float(fmt_seconds(retry_ms)),
                                           "global": False}, headers)
                else:
                    b.remaining -= 1
                    try:
                        if parse_err is not None:
                            raise parse_err
                        status, obj = route.handler(E, ctx)
                    except ApiError as e:
                        status, obj = e.status, e.body()
                    if fault == "lost_create" and ctx.created:
                        E.stats["faults_injected"]["lost_create"] += 1
                        plan = Plan()
                        plan.drop = True
                    else:
                        plan = json_plan(status, obj, E.bucket_headers(b, now_ms))
                        E.announce(b)
        if plan.drop:
            self._drop()
            return
        self._write(plan)

    def _fault_plan(self, fault: str) -> Plan:
        """Called with the lock held (uses the seeded RNG)."""
        E = self.emu
        if fault == "drop":
            p = Plan()
            p.drop = True
            return p
        if fault == "overloaded":
            return json_plan(503, {"message": "API resource is currently overloaded. "
                                              "Try again a little later", "code": 130000})
        status = E.rng.choice((500, 502, 503))
        if status == 500:
            return json_plan(500, {"message": "500: Internal Server Error", "code": 0})
        if status == 502:
            return Plan(502, b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare"
                             b"</center>\r\n</body>\r\n</html>\r\n", "text/html")
        return Plan(503, b"upstream connect error or disconnect/reset before headers. "
                         b"reset reason: overflow", "text/plain")

    # ---- CDN ---------------------------------------------------------------------

    def _cdn(self, path: str, query: str):
        E = self.emu
        self._read_body(MAX_CONTROL_BODY)
        head = self.command == "HEAD"
        E.count_request(("HEAD" if head else "GET") + CDN_KEY[3:])

        def text(status, msg):
            return Plan(status, msg, "text/plain; charset=utf-8")

        m = CDN_RE.match(path)
        with E.lock:
            fault = None if head else E.draw_fault(("drop", "5xx", "flip", "truncate"))
            plan = None
            if fault in ("drop", "5xx"):
                E.stats["faults_injected"][fault] += 1
                plan = self._fault_plan(fault)
            elif m is None:
                plan = text(404, b"404: Not Found")
            else:
                q = {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
                cid, aid = int(m.group(1)), int(m.group(2))
                filename = urllib.parse.unquote(m.group(3))
                ex, iss, hm = q.get("ex"), q.get("is"), q.get("hm")
                now = time.time()
                if not ex or not iss or not hm:
                    plan = text(404, EXPIRED_TEXT)
                elif not re.fullmatch(r"[0-9a-f]{1,16}", ex) or not re.fullmatch(r"[0-9a-f]{1,16}", iss) \
                        or not re.fullmatch(r"[0-9a-f]{64}", hm) \
                        or not hmac.compare_digest(hm, E._sign(cid, aid, filename, ex, iss)):
                    plan = text(403, b"403: Forbidden")
                elif now >= int(ex, 16) or int(iss, 16) < E.url_min_issued:
                    plan = text(404, EXPIRED_TEXT)
                else:
                    a = E.attachments.get(aid)
                    if a is None or a.channel_id != cid or a.filename != filename:
                        plan = text(404, EXPIRED_TEXT)
                    else:
                        plan = self._range_plan(a)
                        if plan.status in (200, 206) and plan.body and fault in ("flip", "truncate"):
                            E.stats["faults_injected"][fault] += 1
                            if fault == "flip":
                                pos = E.rng.randrange(len(plan.body))
                                b = bytearray(plan.body)
                                b[pos] ^= 1 << E.rng.randrange(8)
                                plan.body = bytes(b)
                            else:
                                plan.truncate_to = E.rng.randrange(len(plan.body))
        if plan.drop:
            self._drop()
            return
        if plan.truncate_to is not None:
            sent = self._write(plan, close=True)
        else:
            sent = self._write(plan, head=head)
        if sent:
            with E.lock:
                E.stats["bytes_downloaded"] += sent

    def _range_plan(self, a: Attachment) -> Plan:
        size = a.size
        headers = {"Accept-Ranges": "bytes", "ETag": '"%s"' % a.md5,
                   "Cache-Control": "public, max-age=31536000"}
        rng = self.headers.get("Range")
        spec = None
        if rng:
            mm = re.fullmatch(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", rng)
            if mm and (mm.group(1) or mm.group(2)):
                first, last = mm.group(1), mm.group(2)
                if first:
                    start = int(first)
                    end = int(last) if last else size - 1
                    if last and end < start:
                        spec = None                 # syntactically invalid: ignore
                    elif start >= size:
                        spec = "unsatisfiable"
                    else:
                        spec = (start, min(end, size - 1))
                else:
                    n = int(last)
                    if n == 0 or size == 0:
                        spec = "unsatisfiable"
                    else:
                        spec = (max(0, size - n), size - 1)
            # multiple ranges / other units: ignored, whole body sent (allowed by RFC 9110)
        if spec == "unsatisfiable":
            headers["Content-Range"] = "bytes */%d" % size
            return Plan(416, b"", a.content_type, headers)
        if spec is None:
            return Plan(200, a.data, a.content_type, headers)
        s, e = spec
        headers["Content-Range"] = "bytes %d-%d/%d" % (s, e, size)
        return Plan(206, a.data[s:e + 1], a.content_type, headers)

    # ---- control -----------------------------------------------------------------

    def _control(self, path: str, query: str):
        E = self.emu
        body, _ = self._read_body(MAX_CONTROL_BODY)
        if body is None:
            self._write(Plan(413, jdump(too_large().body())), count=False)
            return
        method = self.command

        def reply(status, obj):
            self._write(json_plan(status, obj), count=False)

        def read_obj():
            try:
                obj = json.loads(body.decode("utf-8")) if body else {}
            except (UnicodeDecodeError, ValueError):
                raise ValueError("body is not valid JSON")
            if not isinstance(obj, dict):
                raise ValueError("body must be a JSON object")
            return obj

        try:
            status, obj = self._control_op(path, method, read_obj)
        except ValueError as e:
            status, obj = 400, {"message": str(e), "code": 0}
        reply(status, obj)

    def _control_op(self, path: str, method: str, read_obj):
        E = self.emu
        if path == "/_emulator/stats" and method == "GET":
            with E.lock:
                return 200, E.stats_snapshot()
        if path == "/_emulator/reset-stats" and method == "POST":
            with E.lock:
                E.reset_stats()
            return 200, {"ok": True}
        if path == "/_emulator/faults" and method == "GET":
            with E.lock:
                return 200, dict(E.faults, seed=E.seed)
        if path == "/_emulator/faults" and method == "POST":
            obj = read_obj()
            seed = obj.pop("seed", None)
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise ValueError("seed must be an integer")
            rates = parse_faults(obj)
            with E.lock:
                E.faults = rates
                if seed is not None:
                    E.seed = seed
                    E.rng = random.Random(seed)
                out = dict(E.faults, seed=E.seed)
            log("faults now %s" % json.dumps(out))
            return 200, out
        if path == "/_emulator/expire-urls" and method == "POST":
            with E.lock:
                E.url_min_issued = int(time.time()) + 1
                return 200, {"ok": True, "valid_from_issued": E.url_min_issued}
        if path == "/_emulator/config" and method == "GET":
            with E.lock:
                return 200, dict(E.config)
        if path == "/_emulator/config" and method == "POST":
            obj = read_obj()
            with E.lock:
                E.set_config(obj)
                out = dict(E.config)
            log("config now %s" % json.dumps(out))
            return 200, out
        if method == "GET" and re.fullmatch(r"/_emulator/channels/[0-9]+/messages", path):
            cid = int(path.split("/")[3])
            with E.lock:
                ch = E.channels.get(cid)
                if ch is None:
                    return 404, {"message": "Unknown Channel", "code": 10003}
                return 200, [E.dump_json(ch, ch.messages[i]) for i in ch.ids]
        return 404, {"message": "unknown control endpoint %s %s" % (method, path), "code": 0}


class _BadFraming(Exception):
    pass


class _OversizeClose(Exception):
    pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, handler, emu):
        self.emu = emu
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        log("connection error from %s:\n%s" % (client_address, traceback.format_exc()))


def main(argv=None) -> int:
    global _verbose
    ap = argparse.ArgumentParser(description="Discord API emulator for hashfs tests")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = ephemeral)")
    ap.add_argument("--seed", type=int, default=1, help="seed for fault injection (default 1)")
    ap.add_argument("--token", action="append", help="accepted bot token (repeatable; default test-token)")
    ap.add_argument("--channel", action="append", help="existing channel id (repeatable)")
    ap.add_argument("--file-limit", type=int, default=10485760, help="max bytes per attachment")
    ap.add_argument("--request-limit", type=int, default=26214400, help="max request body bytes")
    ap.add_argument("--create-limit", type=int, default=5, help="message creates per window per channel")
    ap.add_argument("--create-window", type=float, default=5.0, help="create window, seconds")
    ap.add_argument("--route-limit", type=int, default=50, help="requests per window, other routes")
    ap.add_argument("--route-window", type=float, default=1.0, help="window of other routes, seconds")
    ap.add_argument("--global-limit", type=int, default=50, help="API requests per global window (0 = off)")
    ap.add_argument("--global-window", type=float, default=1.0, help="global window, seconds")
    ap.add_argument("--url-ttl", type=int, default=86400, help="attachment URL lifetime, seconds")
    ap.add_argument("--pin-limit", type=int, default=50, help="max pinned messages per channel")
    ap.add_argument("--nonce-ttl", type=float, default=300.0, help="enforce_nonce memory, seconds")
    ap.add_argument("--max-attachments", type=int, default=10, help="max attachments per message")
    ap.add_argument("--faults", default="", help='e.g. "5xx=0.05,drop=0.02,lost_create=0.05"')
    ap.add_argument("--discord-bucket-hash", action="store_true",
                    help="X-RateLimit-Bucket excludes the channel id, as real Discord does")
    ap.add_argument("--die-with-parent", action="store_true", help="exit when the parent process dies")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    _verbose = args.verbose
    try:
        emu = Emulator(args)
    except ValueError as e:
        ap.error(str(e))
    try:
        srv = Server(("127.0.0.1", args.port), Handler, emu)
    except OSError as e:
        log("cannot listen on 127.0.0.1:%d: %s" % (args.port, e))
        return 1
    emu.port = srv.server_address[1]

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.die_with_parent:
        parent = os.getppid()

        def watch():
            while not stop.is_set():
                if os.getppid() != parent:
                    log("parent process gone; exiting")
                    stop.set()
                time.sleep(0.5)
        threading.Thread(target=watch, daemon=True).start()

    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    sys.stdout.write("PORT %d\n" % emu.port)
    sys.stdout.flush()
    log("listening on 127.0.0.1:%d (seed %d, tokens %d, channels %s, faults %s)" % (
        emu.port, emu.seed, len(emu.tokens), ",".join(str(c) for c in emu.channels),
        json.dumps({k: v for k, v in emu.faults.items() if v}) or "{}"))
    while not stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
