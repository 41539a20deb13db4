#!/usr/bin/env python3
"""A local AWS Secrets Manager for tests: GetSecretValue over the JSON 1.1 protocol, with every
request's SigV4 signature verified as AWS does.

  POST /   X-Amz-Target: secretsmanager.GetSecretValue, Content-Type application/x-amz-json-1.1,
           {"SecretId": …}  ->  {"ARN", "Name", "VersionId", "SecretString" | "SecretBinary",
           "VersionStages", "CreatedDate"}

The signature check: Authorization "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/
aws4_request, SignedHeaders=…, Signature=…"; a known access key; the scope's date equal to
X-Amz-Date's, the server's region and "secretsmanager"; host and x-amz-date signed; X-Amz-Date
within 5 minutes of the server's clock; the session token present, signed and equal when the
key has one (absent when it has none); the signature recomputed over the canonical request
(method, path, sorted query, the signed headers' trimmed values, the body's SHA-256).
Refusals are HTTP 400 with {"__type", "message"} and x-amzn-ErrorType, as AWS answers them.

  POST /_test/credentials {"akid", "secret", "token"?}    accepts a key (and its session token)
  POST /_test/secret {"id", "string" | "binary" (base64)}  stores a secret
  POST /_test/config {"region"?, "clock_offset"?, "latency_ms"?}
                                                          clock_offset: seconds added to "now";
                                                          latency_ms: before each answer
  POST /_test/table {"name", "keys": [partition, sort?]}  a table DescribeTable (SigV4 for
                                                          "dynamodb") describes
  POST /_test/requests                                    every request: target, verdict

Like AWS's strict front ends, it refuses a SignedHeaders entry the request does not carry.

Run alone: secrets_server.py [--port N]; it prints "port N".
"""
import datetime
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler

from serving import LocalServer, serve

SERVICE = "secretsmanager"
SKEW = datetime.timedelta(minutes=5)
BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                 "provided. Check your AWS Secret Access Key and signing method. Consult the "
                 "service documentation for details.")
BAD_TOKEN = "The security token included in the request is invalid."


class Refusal(Exception):
    def __init__(self, type_, message):
        super().__init__(message)
        self.type = type_
        self.message = message


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _encode(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_request(method, path, query, headers, signed, body):
    """headers: list of (name, value) as received; signed: the lowercase names signed."""
    segments = [_encode(urllib.parse.unquote(p)) for p in path.split("/")]
    pairs = sorted((_encode(urllib.parse.unquote_plus(k)), _encode(urllib.parse.unquote_plus(v)))
                   for k, _, v in (p.partition("=") for p in query.split("&") if p))
    lines = []
    for name in signed:
        values = [" ".join(v.split()) for k, v in headers if k.lower() == name]
        lines.append("%s:%s\n" % (name, ",".join(values)))
    return "\n".join([method, "/".join(segments) or "/",
                      "&".join("%s=%s" % kv for kv in pairs), "".join(lines), ";".join(signed),
                      hashlib.sha256(body).hexdigest()])


def signature(secret, amz_date, region, service, creq):
    scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(signing_key(secret, amz_date[:8], region, service), to_sign.encode(),
                    hashlib.sha256).hexdigest()


def verify(method, path, query, headers, body, keys, region, now, service=SERVICE):
    """Raises Refusal unless the request is signed as AWS requires. keys: akid -> (secret,
    token or None). Returns the access key id."""
    auth = [v for k, v in headers if k.lower() == "authorization"]
    if not auth:
        raise Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    algo, _, rest = auth[0].partition(" ")
    parts = dict(p.strip().partition("=")[::2] for p in rest.split(","))
    if algo != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders", "Signature"} <= set(parts):
        raise Refusal("IncompleteSignatureException",
                      "Authorization header requires 'Credential', 'SignedHeaders' and "
                      "'Signature' parameters (AWS4-HMAC-SHA256). Authorization=%s" % algo)
    cred = parts["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise Refusal("IncompleteSignatureException",
                      "Credential should be scoped to a valid region, service and terminal "
                      "'aws4_request'.")
    akid, date, req_region, req_service, _ = cred
    if akid not in keys:
        raise Refusal("UnrecognizedClientException", BAD_TOKEN)
    secret, token = keys[akid]
    signed = parts["SignedHeaders"].split(";")
    if signed != sorted(signed) or any(s != s.lower() for s in signed):
        raise Refusal("InvalidSignatureException", BAD_SIGNATURE)
    present = {k.lower() for k, _ in headers}
    for name in signed:
        if name not in present:
            raise Refusal("IncompleteSignatureException",
                          "'%s' is named as a SignedHeader, but it does not exist in the HTTP "
                          "request" % name)
    for required in ("host", "x-amz-date"):
        if required not in signed:
            raise Refusal("InvalidSignatureException",
                          "'%s' must be a signed header." % required.title())
    amz_date = [v for k, v in headers if k.lower() == "x-amz-date"][0]
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise Refusal("IncompleteSignatureException",
                      "Date must be in ISO-8601 'basic format'. Got '%s'." % amz_date)
    if date != amz_date[:8]:
        raise Refusal("InvalidSignatureException",
                      "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                      "date from HTTP: '%s' != '%s', from '%s'." % (date, amz_date[:8], amz_date))
    if req_region != region:
        raise Refusal("InvalidSignatureException",
                      "Credential should be scoped to a valid region. ")
    if req_service != service:
        raise Refusal("InvalidSignatureException",
                      "Credential should be scoped to correct service: '%s'. " % service)
    stamp = lambda t: t.strftime("%Y%m%dT%H%M%SZ")
    if when < now - SKEW:
        raise Refusal("InvalidSignatureException",
                      "Signature expired: %s is now earlier than %s (%s - 5 min.)"
                      % (amz_date, stamp(now - SKEW), stamp(now)))
    if when > now + SKEW:
        raise Refusal("InvalidSignatureException",
                      "Signature not yet current: %s is still later than %s (%s + 5 min.)"
                      % (amz_date, stamp(now + SKEW), stamp(now)))
    given = [v for k, v in headers if k.lower() == "x-amz-security-token"]
    if token is not None or given:
        if given != [token] or "x-amz-security-token" not in signed:
            raise Refusal("UnrecognizedClientException", BAD_TOKEN)
    creq = canonical_request(method, path, query, headers, signed, body)
    if not hmac.compare_digest(signature(secret, amz_date, region, service, creq),
                               parts["Signature"]):
        raise Refusal("InvalidSignatureException", BAD_SIGNATURE)
    return akid


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}
        self.secrets = {}
        self.region = "us-east-1"
        self.clock_offset = 0.0
        self.latency_ms = 0
        self.requests = []
        self.tables = {}


class AwsJsonHandler(BaseHTTPRequestHandler):
    """An AWS JSON protocol endpoint's answers: the body, the request id and the error type."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    content_type = "application/x-amz-json-1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj, error_type=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", self.content_type)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Handler(AwsJsonHandler):
    def refuse(self, r):
        self.reply(400, {"__type": r.type, "message": r.message}, r.type)

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        if path.startswith("/_test/"):
            return self.control(path[len("/_test/"):], json.loads(body or b"null"))
        target = self.headers.get("X-Amz-Target", "")
        with st.lock:
            keys, region, latency = dict(st.keys), st.region, st.latency_ms
        time.sleep(latency / 1000)
        with st.lock:
            now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=st.clock_offset)
        entry = {"target": target, "authorization": self.headers.get("Authorization", "")}
        try:
            if target == "DynamoDB_20120810.DescribeTable":
                verify("POST", path, query, list(self.headers.items()), body, keys, region, now,
                       service="dynamodb")
                return self.describe_table(entry, json.loads(body))
            verify("POST", path, query, list(self.headers.items()), body, keys, region, now)
            if target != "secretsmanager.GetSecretValue":
                raise Refusal("UnknownOperationException", "")
            if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                raise Refusal("SerializationException", "")
            req = json.loads(body)
            sid = req.get("SecretId") if isinstance(req, dict) else None
            if not isinstance(sid, str) or not sid:
                raise Refusal("InvalidParameterException",
                              "You must provide a value for the SecretId parameter.")
            with st.lock:
                secret = st.secrets.get(sid)
            if secret is None:
                raise Refusal("ResourceNotFoundException",
                              "Secrets Manager can't find the specified secret.")
        except Refusal as r:
            entry["refused"] = r.type
            with st.lock:
                st.requests.append(entry)
            return self.refuse(r)
        except ValueError:
            entry["refused"] = "SerializationException"
            with st.lock:
                st.requests.append(entry)
            return self.refuse(Refusal("SerializationException", "Start of structure or map "
                                       "found where not expected."))
        entry["refused"] = None
        with st.lock:
            st.requests.append(entry)
        answer = {"ARN": "arn:aws:secretsmanager:%s:123456789012:secret:%s-AbCdEf" % (region, sid),
                  "Name": sid, "VersionId": str(uuid.uuid4()), "VersionStages": ["AWSCURRENT"],
                  "CreatedDate": 1.7e9}
        answer.update(secret)
        self.reply(200, answer)

    def describe_table(self, entry, req):
        st = self.server.state
        with st.lock:
            entry["refused"] = None
            st.requests.append(entry)
            schema = st.tables.get(req.get("TableName") if isinstance(req, dict) else None)
        if schema is None:
            return self.refuse(Refusal("ResourceNotFoundException",
                                       "Requested resource not found"))
        keys = [{"AttributeName": n, "KeyType": t} for n, t in zip(schema, ("HASH", "RANGE"))]
        self.reply(200, {"Table": {"TableName": req["TableName"], "KeySchema": keys,
                                   "TableStatus": "ACTIVE"}})

    def control(self, what, req):
        st = self.server.state
        with st.lock:
            if what == "credentials":
                st.keys[req["akid"]] = (req["secret"], req.get("token"))
                return self.reply(200, {})
            if what == "secret":
                st.secrets[req["id"]] = ({"SecretString": req["string"]} if "string" in req
                                         else {"SecretBinary": req["binary"]})
                return self.reply(200, {})
            if what == "table":
                st.tables[req["name"]] = req["keys"]
                return self.reply(200, {})
            if what == "config":
                st.region = req.get("region", st.region)
                st.clock_offset = float(req.get("clock_offset", st.clock_offset))
                st.latency_ms = int(req.get("latency_ms", st.latency_ms))
                return self.reply(200, {})
            if what == "requests":
                return self.reply(200, st.requests)
        self.reply(404, {"error": "no such control"})


def make(port=0):
    srv = LocalServer(Handler, port)
    srv.state = State()
    return srv


if __name__ == "__main__":
    serve(make)
