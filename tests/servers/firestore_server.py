#!/usr/bin/env python3
"""A local Firestore REST v1 server and OAuth2 token endpoint, strict and recording, for tests.

One HTTP/1.1 server on 127.0.0.1 (keep-alive, a thread per connection) serves:

  POST /v1/projects/P/databases/D/documents:commit    atomic commit of update/delete writes
  POST /v1/projects/P/databases/D/documents:batchGet  found/missing per name
  POST /v1/projects/P/databases/D/documents:batchWrite  writes applied one by one, not atomically
  POST …/documents:beginTransaction, …/documents:rollback   read-write transactions
  GET  /v1/projects/P/databases/D/documents/C/ID      one document
  GET  /v1/projects/P/databases/D/documents/C         list (pageSize, pageToken)
  POST /token                                          JWT-bearer grant -> access token
  POST /v1/token, …/serviceAccounts/E:generateAccessToken   Google's STS and IAM Credentials
                                                       (google_sts.py: keyless, federated)
  /_test/...                                           control: faults, state, logs, and the
                                                       documents saved and restored

It refuses what Firestore refuses: unknown JSON fields, values with no or two types, an array
directly in an array, nesting deeper than 20, bad field names and document ids, documents over
1 MiB and requests over 10 MiB, with a google.rpc.Status body ({"error":{"code","message",
"status"}}). Authentication: with accounts registered, a request needs a bearer token this
server issued and that has not expired, or a self-signed JWT (Google's AIP-4111) signed by a
registered key with aud https://firestore.googleapis.com/; with none registered (emulator mode)
anything goes. Faults are injected on commits and batchWrites: error rates per status, latency,
hangs, "apply the commit, then drop the connection", and tokens refused as revoked. Preconditions
(currentDocument.exists / updateTime) and transactions answer as Google's emulator does:
ALREADY_EXISTS for exists=false on a document that exists, FAILED_PRECONDITION for an updateTime
that is not the stored one, a deletion's writeResult without updateTime, INVALID_ARGUMENT
"Transaction is invalid or closed." for a commit in a transaction rolled back, committed or
expired (transaction_seconds, default 270), rollback 200 for a known transaction. A hung commit
(hang_rate, or hang_commits: the ordinals of commit requests to hang) is dropped unanswered after
hang_seconds; with hang_apply it is applied then, preconditions and transaction checked at that
moment ("delayed application"). /_test/applied lists every applied write in order.

Run alone: firestore_server.py [--port N]; it prints "port N" and serves until killed.
"""
import base64
import binascii
import copy
import json
import random
import re
import secrets
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import google_sts
from serving import LocalServer, serve

MAX_REQUEST = 10 * 1024 * 1024
MAX_DOCUMENT = 1024 * 1024
MAX_DEPTH = 20
MAX_NAME = 1500
MAX_VALUE = 1048487  # bytes of one string or bytes value
DOUBLE_TEXT = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
FIRESTORE_AUDIENCE = "https://firestore.googleapis.com/"
SCOPES = {"https://www.googleapis.com/auth/datastore",
          "https://www.googleapis.com/auth/cloud-platform"}
HTTP_CODE = {"INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
             "NOT_FOUND": 404, "ABORTED": 409, "ALREADY_EXISTS": 409,
             "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNAVAILABLE": 503,
             "DEADLINE_EXCEEDED": 504, "FAILED_PRECONDITION": 400}
GRPC_CODE = {"INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
             "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
             "FAILED_PRECONDITION": 9, "ABORTED": 10, "INTERNAL": 13, "UNAVAILABLE": 14,
             "UNAUTHENTICATED": 16}
VALUE_TYPES = {"nullValue", "booleanValue", "integerValue", "doubleValue", "timestampValue",
               "stringValue", "bytesValue", "referenceValue", "geoPointValue", "arrayValue",
               "mapValue"}


class Refusal(Exception):
    """A google.rpc.Status answer."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def unknown(name, where):
    return Refusal("INVALID_ARGUMENT", 'Invalid JSON payload received. Unknown name "%s" at '
                   "'%s': Cannot find field." % (name, where))


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def now_rfc3339():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int(t % 1 * 1e6)


def stamp_text(us):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%06dZ" % (
        us % 1000000)


def string_size(s):
    return len(s.encode("utf-8")) + 1


def segment_problem(seg):
    try:
        raw = seg.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not seg:
        return "is empty"
    if len(raw) > MAX_NAME:
        return "is longer than 1,500 bytes"
    if "/" in seg:
        return "contains '/'"
    if seg in (".", ".."):
        return "is '.' or '..'"
    if re.fullmatch(r"__.+__", seg, re.S):  # the emulator takes "____", refuses "_____"
        return "matches __.+__"
    return None


def stored(v):
    """A value as the emulator keeps it: a doubleValue is a double (given as text, or as an
    integral JSON number), and -0.0 is 0.0."""
    if isinstance(v, dict):
        out = {k: stored(x) for k, x in v.items()}
        d = out.get("doubleValue")
        if (isinstance(d, str) and DOUBLE_TEXT.fullmatch(d)) or (isinstance(d, int) and
                                                                 not isinstance(d, bool)):
            out["doubleValue"] = float(d)  # 9223372036854776000 is the double 2**63
        if isinstance(out.get("doubleValue"), float) and out["doubleValue"] == 0:
            out["doubleValue"] = 0.0
        return out
    if isinstance(v, list):
        return [stored(x) for x in v]
    return v


class Store:
    """Documents, the write log, the request log, faults and tokens; one lock for all."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        self.accounts = {}      # client_email -> {"key": public key, "kid": private_key_id}
        self.tokens = {}        # access token -> expiry (epoch seconds)
        self.token_lifetime = 3599
        self.wif = {}           # the workload identity pool (google_sts.py), when set
        self.federated = {}     # federated token -> expiry

    def reset(self):
        self.docs = {}          # name -> {"fields", "createTime", "updateTime"}
        self.writelog = {}      # name -> [("update", fields) | ("delete", None)]
        self.requests = []      # what arrived, in order
        self.faults = {}
        self.rng = random.Random(1)
        self.commits = 0
        self.batch_writes = 0   # batchWrite requests answered
        self.writes = 0
        self.commit_requests = 0
        self.late = {"applied": 0, "refused": 0}  # hung commits applied when the hang ended
        self.last_us = 0        # update times are distinct and grow, as Firestore's do
        self.txns = {}          # transaction id -> {"began": epoch s, "open": bool}
        self.applied = []       # every applied write: [name, "update"|"delete", fields]
        self.wif_counts = {"sts": 0, "impersonations": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    server_version = "ddb2fs-test-firestore"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing -------------------------------------------------------------------------

    @property
    def store(self):
        return self.server.store

    def reply(self, code, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, r):
        self.reply(HTTP_CODE.get(r.status, 500),
                   {"error": {"code": HTTP_CODE.get(r.status, 500), "message": r.message,
                              "status": r.status}})

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_REQUEST:
            self.rfile.read(n)
            raise Refusal("INVALID_ARGUMENT",
                          "Request payload size exceeds the limit: %d bytes." % MAX_REQUEST)
        return self.rfile.read(n)

    def record(self, body):
        with self.store.lock:
            entry = {"method": self.command, "path": self.path,
                     "headers": {k.lower(): v for k, v in self.headers.items()},
                     "bytes": len(body)}
            if self.store.faults.get("record_bodies", True):
                entry["body"] = body.decode("utf-8", "replace")
            self.store.requests.append(entry)

    def drop(self):
        """Closes the connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        self.route(b"")

    def do_POST(self):
        try:
            body = self.read_body()
        except Refusal as r:
            self.record(b"")
            self.refuse(r)
            return
        self.route(body)

    def route(self, body):
        path = urllib.parse.urlsplit(self.path)
        try:
            if path.path.startswith("/_test/"):
                return self.control(path, body)
            self.record(body)
            if path.path in ("/token", "/v1/token") or path.path.endswith(":generateAccessToken"):
                time.sleep(self.store.faults.get("auth_latency_ms", 0) / 1000)
            if path.path == "/token" and self.command == "POST":
                return self.token(body)
            if path.path == "/v1/token" and self.command == "POST":
                return self.reply(*google_sts.sts_token(self, body))
            m = re.fullmatch(r"/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken",
                             path.path)
            if m and self.command == "POST":
                return self.reply(*google_sts.generate_access_token(
                    self, urllib.parse.unquote(m.group(1)), body))
            m = re.fullmatch(r"/v1/projects/([^/]+)/databases/([^/]+)/documents(:commit|"
                             r":batchGet|:batchWrite|:beginTransaction|:rollback|/.*)?", path.path)
            if not m:
                raise Refusal("NOT_FOUND", "no such method: %s %s" % (self.command, path.path))
            project, database, rest = m.group(1), m.group(2), m.group(3) or ""
            prefix = "projects/%s/databases/%s/documents" % (project, database)
            self.authenticate()
            if rest == ":commit" and self.command == "POST":
                return self.commit(prefix, body)
            if rest == ":batchGet" and self.command == "POST":
                return self.batch_get(prefix, body)
            if rest == ":batchWrite" and self.command == "POST":
                return self.batch_write(prefix, body)
            if rest == ":beginTransaction" and self.command == "POST":
                return self.begin_transaction(body)
            if rest == ":rollback" and self.command == "POST":
                return self.rollback(body)
            if rest.startswith("/") and self.command == "GET":
                return self.get(prefix, urllib.parse.unquote(rest[1:]),
                                urllib.parse.parse_qs(path.query))
            raise Refusal("NOT_FOUND", "no such method: %s %s" % (self.command, path.path))
        except Refusal as r:
            self.refuse(r)

    # ---- authentication -------------------------------------------------------------------

    def authenticate(self):
        st = self.store
        if not st.accounts and not st.wif:
            return  # emulator mode
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise Refusal("UNAUTHENTICATED", "Request is missing required authentication "
                          "credential. Expected OAuth 2 access token.")
        token = auth[7:]
        with st.lock:
            expiry = st.tokens.get(token)
        if expiry is not None:
            if expiry < time.time():
                raise Refusal("UNAUTHENTICATED", "Request had invalid authentication "
                              "credentials. The access token has expired.")
            return
        if token.count(".") == 2:
            # the audience is the Firestore endpoint: Google's, or this server standing in
            self.verify_jwt(token, (FIRESTORE_AUDIENCE, self.server.url + "/"), self_signed=True)
            return
        raise Refusal("UNAUTHENTICATED", "Request had invalid authentication credentials. "
                      "Expected OAuth 2 access token.")

    def verify_jwt(self, jwt, audience, self_signed):
        """Checks an RS256 JWT's header, claims and signature; returns the claims."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        status = "UNAUTHENTICATED" if self_signed else "invalid_grant"
        try:
            h64, c64, s64 = jwt.split(".")
            header = json.loads(b64url_decode(h64))
            claims = json.loads(b64url_decode(c64))
            sig = b64url_decode(s64)
        except (ValueError, binascii.Error):
            raise Refusal(status, "Invalid JWT: not three base64url JSON parts.")
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            raise Refusal(status, "Invalid JWT: alg must be RS256.")
        with self.store.lock:
            account = self.store.accounts.get(claims.get("iss"))
        if account is None:
            raise Refusal(status, "Invalid JWT: unknown issuer.")
        if self_signed and (header.get("kid") != account["kid"] or
                            claims.get("sub") != claims.get("iss")):
            raise Refusal(status, "Invalid JWT: kid must be the key's id and sub its email.")
        try:
            account["key"].verify(sig, (h64 + "." + c64).encode(), padding.PKCS1v15(),
                                  hashes.SHA256())
        except InvalidSignature:
            raise Refusal(status, "Invalid JWT Signature.")
        t = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or iat > t + 60 or \
                exp <= t or exp - iat > 3600:
            raise Refusal(status, "Invalid JWT: Token must be a short-lived token (60 minutes) "
                          "and in a reasonable timeframe. Check your iat and exp values.")
        audiences = audience if isinstance(audience, tuple) else (audience,)
        if claims.get("aud") not in audiences:
            raise Refusal(status, "Invalid JWT: aud must be %s." % " or ".join(audiences))
        if not self_signed:
            scopes = set(str(claims.get("scope", "")).split())
            if not scopes & SCOPES:
                raise Refusal("invalid_scope", "Invalid OAuth scope or ID token audience "
                              "provided.")
        return claims

    def token(self, body):
        st = self.store
        if st.faults.get("token_refuse"):
            self.reply(400, {"error": "invalid_grant",
                             "error_description": st.faults["token_refuse"]})
            return
        if not self.headers.get("Content-Type", "").startswith(
                "application/x-www-form-urlencoded"):
            self.reply(400, {"error": "invalid_request",
                             "error_description": "Content-Type must be form-urlencoded."})
            return
        form = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            self.reply(400, {"error": "unsupported_grant_type",
                             "error_description": "Invalid grant_type."})
            return
        try:
            self.verify_jwt(form.get("assertion", [""])[0],
                            "http://%s:%d/token" % self.server.server_address, False)
        except Refusal as r:
            self.reply(400, {"error": r.status, "error_description": r.message})
            return
        token = "ya29.test-" + secrets.token_urlsafe(24)
        with st.lock:
            st.tokens[token] = time.time() + st.token_lifetime
        self.reply(200, {"access_token": token, "expires_in": st.token_lifetime,
                         "token_type": "Bearer"})

    # ---- validation -----------------------------------------------------------------------

    def check_name(self, prefix, name, where):
        if not isinstance(name, str) or not name.startswith(prefix + "/"):
            raise Refusal("INVALID_ARGUMENT", "%s: document name %r is not in %s" %
                          (where, name, prefix))
        segments = name[len(prefix) + 1:].split("/")
        if len(segments) % 2:
            raise Refusal("INVALID_ARGUMENT", "%s: document name %r has an odd number of "
                          "segments" % (where, name))
        for seg in segments:
            why = segment_problem(seg)
            if why:
                raise Refusal("INVALID_ARGUMENT", "%s: a document path segment %s" % (where, why))
        return sum(string_size(s) for s in segments) + 16

    def check_fields(self, fields, where, depth):
        if not isinstance(fields, dict):
            raise Refusal("INVALID_ARGUMENT", "%s: fields must be an object" % where)
        size = 0
        for name, value in fields.items():
            why = "is empty" if name == "" else segment_problem(name)
            if why and why != "contains '/'" and why != "is '.' or '..'":
                raise Refusal("INVALID_ARGUMENT", "%s: field name %r %s" % (where, name[:64], why))
            size += string_size(name) + self.check_value(value, "%s.fields[%s]" % (where, name),
                                                         depth, False)
        return size

    def check_value(self, v, where, depth, in_array):
        """depth: the levels around v. As the emulator counts them, each map and each
        non-empty array is a level, and there may be MAX_DEPTH at most."""
        if not isinstance(v, dict):
            raise Refusal("INVALID_ARGUMENT", "%s: a Value must be an object" % where)
        for k in v:
            if k not in VALUE_TYPES:
                raise unknown(k, where)
        if len(v) != 1:
            raise Refusal("INVALID_ARGUMENT", "%s: a Value needs exactly one type, has %d" %
                          (where, len(v)))
        kind, x = next(iter(v.items()))
        if kind == "nullValue":
            if x is not None and x != "NULL_VALUE":
                raise Refusal("INVALID_ARGUMENT", "%s: invalid nullValue" % where)
            return 1
        if kind == "booleanValue":
            if not isinstance(x, bool):
                raise Refusal("INVALID_ARGUMENT", "%s: invalid booleanValue" % where)
            return 1
        if kind == "integerValue":
            if isinstance(x, bool) or not (isinstance(x, int) or (
                    isinstance(x, str) and re.fullmatch(r"-?[0-9]+", x))) or \
                    not -2**63 <= int(x) < 2**63:
                raise Refusal("INVALID_ARGUMENT", "%s: invalid integerValue %r" % (where, x))
            return 8
        if kind == "doubleValue":  # proto3 JSON: a number, or its text in a string
            if isinstance(x, bool) or not (isinstance(x, (int, float)) or
                                           x in ("NaN", "Infinity", "-Infinity") or
                                           (isinstance(x, str) and DOUBLE_TEXT.fullmatch(x))):
                raise Refusal("INVALID_ARGUMENT", "%s: invalid doubleValue" % where)
            return 8
        if kind == "stringValue":
            if not isinstance(x, str):
                raise Refusal("INVALID_ARGUMENT", "%s: invalid stringValue" % where)
            try:
                size = string_size(x)
            except UnicodeEncodeError:
                raise Refusal("INVALID_ARGUMENT", "%s: stringValue is not valid UTF-8" % where)
            if size - 1 > MAX_VALUE:
                raise Refusal("INVALID_ARGUMENT", "%s: The value of property is longer than %d "
                              "bytes." % (where, MAX_VALUE))
            return size
        if kind == "bytesValue":
            try:  # proto3 JSON: base64, padded or not, standard or URL-safe
                if not isinstance(x, str) or not re.fullmatch(r"[A-Za-z0-9+/_-]*={0,2}", x) \
                        or len(x.rstrip("=")) % 4 == 1 or ("=" in x and len(x) % 4):
                    raise ValueError
                t = x.rstrip("=").replace("-", "+").replace("_", "/")
                size = len(base64.b64decode(t + "=" * (-len(t) % 4), validate=True))
            except (ValueError, binascii.Error):
                raise Refusal("INVALID_ARGUMENT", "%s: invalid bytesValue (base64)" % where)
            if size > MAX_VALUE:
                raise Refusal("INVALID_ARGUMENT", "%s: The value of property is longer than %d "
                              "bytes." % (where, MAX_VALUE))
            return size
        if kind in ("timestampValue", "referenceValue"):
            if not isinstance(x, str):
                raise Refusal("INVALID_ARGUMENT", "%s: invalid %s" % (where, kind))
            return 8 if kind == "timestampValue" else string_size(x)
        if kind == "geoPointValue":
            if not isinstance(x, dict) or set(x) - {"latitude", "longitude"}:
                raise Refusal("INVALID_ARGUMENT", "%s: invalid geoPointValue" % where)
            return 16
        if kind == "arrayValue":
            if not isinstance(x, dict):
                raise Refusal("INVALID_ARGUMENT", "%s: invalid arrayValue" % where)
            for k in x:
                if k != "values":
                    raise unknown(k, where + ".arrayValue")
            if in_array:
                raise Refusal("INVALID_ARGUMENT", "%s: Cannot convert an array value in an "
                              "array value." % where)
            values = x.get("values", [])
            if not isinstance(values, list):
                raise Refusal("INVALID_ARGUMENT", "%s: values must be a list" % where)
            if values and depth + 1 > MAX_DEPTH:
                raise Refusal("INVALID_ARGUMENT", "%s: nested deeper than %d levels" %
                              (where, MAX_DEPTH))
            return sum(self.check_value(e, "%s[%d]" % (where, i), depth + 1, True)
                       for i, e in enumerate(values))
        # mapValue
        if not isinstance(x, dict):
            raise Refusal("INVALID_ARGUMENT", "%s: invalid mapValue" % where)
        for k in x:
            if k != "fields":
                raise unknown(k, where + ".mapValue")
        if depth + 1 > MAX_DEPTH:
            raise Refusal("INVALID_ARGUMENT", "%s: nested deeper than %d levels" %
                          (where, MAX_DEPTH))
        return self.check_fields(x.get("fields", {}), where, depth + 1)

    def check_write(self, prefix, w, i):
        where = "writes[%d]" % i
        if not isinstance(w, dict):
            raise Refusal("INVALID_ARGUMENT", "%s: a Write must be an object" % where)
        for k in w:
            if k not in ("update", "delete", "updateMask", "currentDocument", "updateTransforms",
                         "transform"):
                raise unknown(k, where)
        ops = [k for k in ("update", "delete", "transform") if k in w]
        if len(ops) != 1:
            raise Refusal("INVALID_ARGUMENT", "%s: a Write needs exactly one operation" % where)
        pre = w.get("currentDocument")
        if pre is not None:
            if (not isinstance(pre, dict) or len(pre) != 1
                    or not isinstance(pre.get("exists", pre.get("updateTime")),
                                      bool if "exists" in pre else str)):
                raise Refusal("INVALID_ARGUMENT", "%s.currentDocument: one of exists (a boolean) "
                              "or updateTime (a timestamp)" % where)
        if "delete" in w:
            self.check_name(prefix, w["delete"], where + ".delete")
            return w["delete"]
        if "update" not in w:
            raise Refusal("INVALID_ARGUMENT", "%s: transforms are not served here" % where)
        doc = w["update"]
        if not isinstance(doc, dict):
            raise Refusal("INVALID_ARGUMENT", "%s.update must be a Document" % where)
        for k in doc:
            if k in ("createTime", "updateTime"):
                raise Refusal("INVALID_ARGUMENT", "%s.update.%s is output only" % (where, k))
            if k not in ("name", "fields"):
                raise unknown(k, where + ".update")
        size = self.check_name(prefix, doc.get("name"), where + ".update.name")
        size += self.check_fields(doc.get("fields", {}), where + ".update", 0) + 32
        if size > MAX_DOCUMENT:
            raise Refusal("INVALID_ARGUMENT", "%s: Document '%s' cannot be written because its "
                          "size (%d bytes) exceeds the maximum allowed size of %d bytes."
                          % (where, doc["name"], size, MAX_DOCUMENT))
        return doc["name"]

    # ---- methods --------------------------------------------------------------------------

    def inject(self):
        """Before a commit: latency, hangs and error rates. Returns True when it answered."""
        st = self.store
        with st.lock:
            f = dict(st.faults)
            roll = st.rng.random()
            revoked = f.get("unauthenticated", 0) > 0
            if revoked:
                st.faults["unauthenticated"] -= 1
            st.commit_requests += 1
            hang = (st.rng.random() < f.get("hang_rate", 0)
                    or st.commit_requests in f.get("hang_commits", ()))
            lat = f.get("latency_ms")
            delay = (st.rng.uniform(*lat) if isinstance(lat, list) else (lat or 0)) / 1000.0
        if delay:
            time.sleep(delay)
        if hang:
            time.sleep(f.get("hang_seconds", 30))
            if f.get("hang_apply"):
                return "apply"
            self.drop()
            return True
        if revoked:
            raise Refusal("UNAUTHENTICATED", "Request had invalid authentication credentials. "
                          "The access token has been revoked.")
        if f.get("forbid"):
            raise Refusal("PERMISSION_DENIED", "Missing or insufficient permissions.")
        edge = 0.0
        for status in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL",
                       "DEADLINE_EXCEEDED"):
            edge += f.get(status, 0)
            if roll < edge:
                raise Refusal(status, "injected %s" % status)
        return False

    def writes_of(self, prefix, body, fields):
        """A commit's or batchWrite's request: (the request, its writes, their documents'
        names), each write checked; fields, the request's other fields allowed."""
        try:
            req = json.loads(body)
        except ValueError:
            raise Refusal("INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(req, dict):
            raise Refusal("INVALID_ARGUMENT", "Invalid JSON payload received.")
        for k in req:
            if k != "writes" and k not in fields:
                raise unknown(k, "")
        writes = req.get("writes", [])
        if not isinstance(writes, list):
            raise Refusal("INVALID_ARGUMENT", "writes must be a list")
        return req, writes, [self.check_write(prefix, w, i) for i, w in enumerate(writes)]

    def commit(self, prefix, body):
        st = self.store
        req, writes, names = self.writes_of(prefix, body, ("transaction",))
        refused = st.faults.get("refuse", {})
        for name in names:
            if name in refused:
                raise Refusal("INVALID_ARGUMENT", refused[name])
        txn = req.get("transaction")
        if txn is not None and not isinstance(txn, str):
            raise Refusal("INVALID_ARGUMENT", "transaction must be a string")
        late = self.inject()
        if late is True:
            return
        if late == "apply":
            try:
                self.apply(writes, names, txn, late)
            except Refusal:
                with st.lock:
                    st.late["refused"] += 1
                raise
            with st.lock:
                st.late["applied"] += 1
            return
        self.apply(writes, names, txn, late)

    def apply(self, writes, names, txn, late):
        st = self.store
        with st.lock:
            drop = late == "apply" or st.rng.random() < st.faults.get("drop_after_apply", 0)
            if txn is not None:
                t = st.txns.get(txn)
                if (not t or not t["open"] or time.time() - t["began"]
                        > st.faults.get("transaction_seconds", 270)):
                    raise Refusal("INVALID_ARGUMENT", "Transaction is invalid or closed.")
                t["open"] = False
            for w, name in zip(writes, names):
                self.check_precondition(w.get("currentDocument"), name)
            st.last_us = max(st.last_us + 1, int(time.time() * 1e6))
            stamp = stamp_text(st.last_us)
            results = [self.put(w, name, stamp) for w, name in zip(writes, names)]
            st.commits += 1
            st.writes += len(writes)
        if drop:
            self.drop()
            return
        self.reply(200, {"writeResults": results, "commitTime": stamp})

    def put(self, w, name, stamp):
        """Under the lock: applies one checked write at stamp; its writeResult."""
        st = self.store
        log = st.writelog.setdefault(name, [])
        if "delete" in w:
            st.docs.pop(name, None)
            log.append(("delete", None))
            st.applied.append([name, "delete", None])
            return {}
        old = st.docs.get(name)
        fields = stored(w["update"].get("fields", {}))
        st.docs[name] = {"fields": fields, "createTime": old["createTime"] if old else stamp,
                         "updateTime": stamp}
        log.append(("update", fields))
        st.applied.append([name, "update", fields])
        return {"updateTime": stamp}

    def batch_write(self, prefix, body):
        """Each write applied or refused alone, as Firestore's batchWrite does: a refused write
        has its google.rpc.Status in status[i] and an empty writeResult; an applied one has an
        empty status (code 0, omitted in proto3 JSON). Two writes to one document are refused
        whole. Faults are those of a commit, for the whole request."""
        st = self.store
        _, writes, names = self.writes_of(prefix, body, ("labels",))
        if len(set(names)) != len(names):
            raise Refusal("INVALID_ARGUMENT", "Cannot modify the same entity more than once "
                          "in a batchWrite request.")
        late = self.inject()
        if late is True:
            return
        refused = st.faults.get("refuse", {})
        results, statuses = [], []
        with st.lock:
            st.last_us = max(st.last_us + 1, int(time.time() * 1e6))
            stamp = stamp_text(st.last_us)
            for w, name in zip(writes, names):
                try:
                    if name in refused:
                        raise Refusal("INVALID_ARGUMENT", refused[name])
                    self.check_precondition(w.get("currentDocument"), name)
                except Refusal as r:
                    results.append({})
                    statuses.append({"code": GRPC_CODE[r.status], "message": r.message})
                    continue
                results.append(self.put(w, name, stamp))
                statuses.append({})
                st.writes += 1
            st.batch_writes += 1
        if late == "apply":  # a hung request applied when the hang ended, then dropped
            with st.lock:
                st.late["applied"] += 1
            self.drop()
            return
        self.reply(200, {"writeResults": results, "status": statuses})

    def check_precondition(self, pre, name):
        """Under the lock: a write's currentDocument against the stored document."""
        if pre is None:
            return
        doc = self.store.docs.get(name)
        if "exists" in pre:
            if pre["exists"] and doc is None:
                raise Refusal("NOT_FOUND", "no entity to update: %s" % name)
            if not pre["exists"] and doc is not None:
                raise Refusal("ALREADY_EXISTS", "entity already exists: %s" % name)
        elif doc is None or doc["updateTime"] != pre["updateTime"]:
            raise Refusal("FAILED_PRECONDITION", "the stored version (%s) does not match the "
                          "required base version (%s)"
                          % (doc["updateTime"] if doc else "0", pre["updateTime"]))

    def begin_transaction(self, body):
        lat = self.store.faults.get("latency_ms")
        if lat:  # a round trip like any other
            time.sleep((random.uniform(*lat) if isinstance(lat, list) else lat) / 1000.0)
        req = json.loads(body or b"{}")
        for k in req:
            if k != "options":
                raise unknown(k, "")
        with self.store.lock:
            txn = base64.b64encode(secrets.token_bytes(9)).decode()
            self.store.txns[txn] = {"began": time.time(), "open": True}
        self.reply(200, {"transaction": txn})

    def rollback(self, body):
        req = json.loads(body or b"{}")
        for k in req:
            if k != "transaction":
                raise unknown(k, "")
        if self.store.faults.get("rollback_unavailable"):
            raise Refusal("UNAVAILABLE", "injected UNAVAILABLE")
        with self.store.lock:
            t = self.store.txns.get(req.get("transaction"))
            if not t:
                raise Refusal("INVALID_ARGUMENT", "Invalid transaction.")
            t["open"] = False
        self.reply(200, {})

    def document(self, name):
        d = self.store.docs[name]
        return {"name": name, "fields": d["fields"], "createTime": d["createTime"],
                "updateTime": d["updateTime"]}

    def batch_get(self, prefix, body):
        req = json.loads(body or b"{}")
        for k in req:
            if k not in ("documents", "mask", "transaction", "newTransaction", "readTime"):
                raise unknown(k, "")
        names = req.get("documents", [])
        for i, n in enumerate(names):
            self.check_name(prefix, n, "documents[%d]" % i)
        stamp = now_rfc3339()
        mask = req.get("mask")
        with self.store.lock:
            out = [{"found": self.document(n), "readTime": stamp} if n in self.store.docs
                   else {"missing": n, "readTime": stamp} for n in names]
        if mask is not None:  # only the fields named: none for an empty mask
            keep = set(mask.get("fieldPaths", []))
            for o in out:
                if "found" in o:
                    o["found"]["fields"] = {k: v for k, v in o["found"]["fields"].items()
                                            if k in keep}
                    if not o["found"]["fields"]:
                        del o["found"]["fields"]
        self.reply(200, out)

    def get(self, prefix, rest, query):
        name = prefix + "/" + rest
        segments = rest.split("/")
        with self.store.lock:
            if len(segments) % 2 == 0:
                if name not in self.store.docs:
                    raise Refusal("NOT_FOUND", 'Document "%s" not found.' % name)
                self.reply(200, self.document(name))
                return
            names = sorted(n for n in self.store.docs
                           if n.startswith(name + "/") and "/" not in n[len(name) + 1:])
            size = int(query.get("pageSize", ["100"])[0])
            start = int(query.get("pageToken", ["0"])[0])
            page = [self.document(n) for n in names[start:start + size]]
        out = {"documents": page}
        if start + size < len(names):
            out["nextPageToken"] = str(start + size)
        self.reply(200, out)

    # ---- control --------------------------------------------------------------------------

    def control(self, path, body):
        st = self.store
        what = path.path[len("/_test/"):]
        req = json.loads(body) if body else {}
        with st.lock:
            if what == "reset":
                st.reset()
                out = {}
            elif what == "reset_but_documents":
                # a run against documents that exist: logs, counts and faults start anew
                docs, last = st.docs, st.last_us
                st.reset()
                st.docs, st.last_us = docs, last
                out = {}
            elif what == "faults":
                st.faults = req
                st.rng = random.Random(req.get("seed", 1))
                out = {}
            elif what == "account":
                from cryptography.hazmat.primitives import serialization
                key = serialization.load_pem_public_key(req["public_key"].encode())
                st.accounts[req["client_email"]] = {"key": key, "kid": req["private_key_id"]}
                out = {}
            elif what == "wif":
                st.wif = req
                out = {}
            elif what == "wif_counts":
                out = dict(st.wif_counts)
            elif what == "token_lifetime":
                st.token_lifetime = req["seconds"]
                out = {}
            elif what == "documents":
                out = {n: d["fields"] for n, d in st.docs.items()}
            elif what == "wipe":
                st.docs = {}
                out = {}
            elif what == "save":
                # the documents as they are now, for "restore" to bring back
                st.saved = (copy.deepcopy(st.docs), st.last_us)
                out = {}
            elif what == "restore":
                # the saved documents again, and all else anew: one run of a walk after another
                docs, last = st.saved
                st.reset()
                st.docs, st.last_us = copy.deepcopy(docs), last
                out = {}
            elif what == "writelog":
                out = st.writelog
            elif what == "applied":
                out = st.applied
            elif what == "requests":
                out = st.requests
            elif what == "stats":
                out = {"commits": st.commits, "batch_writes": st.batch_writes,
                       "writes": st.writes, "late": dict(st.late),
                       "requests": len(st.requests), "documents": len(st.docs)}
            else:
                raise Refusal("NOT_FOUND", "no control " + what)
        self.reply(200, out)


class Server(LocalServer):
    def __init__(self, port=0):
        super().__init__(Handler, port)
        self.store = Store()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


if __name__ == "__main__":
    serve(Server)
