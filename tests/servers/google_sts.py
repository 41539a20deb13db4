"""Google's STS token exchange and IAM Credentials' generateAccessToken, strict, for tests of
Workload Identity Federation. Served by firestore_server.py, so that the tokens it issues are
the ones its Firestore accepts.

  POST /v1/token   form: grant_type urn:ietf:params:oauth:grant-type:token-exchange, audience,
                   requested_token_type …:access_token, scope, subject_token_type
                   urn:ietf:params:aws:token-type:aws4_request, subject_token
                   -> {"access_token", "issued_token_type", "token_type", "expires_in"}
  POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken   (Bearer: a federated token)
                   {"scope": […], "lifetime": "Ns"} -> {"accessToken", "expireTime"}

The subject token is checked as Google's STS has AWS check it: URL-decoded JSON {"url",
"method", "headers": [{"key", "value"}…]}; the URL is the GetCallerIdentity URL of the
configured region; the x-goog-cloud-target-resource header is present, signed and equal to the
audience; the SigV4 signature is verified (secrets_server.verify, service "sts") against the
AWS credentials configured. Refusals are OAuth errors ({"error", "error_description"}, HTTP
400) from STS and google.rpc.Status bodies from IAM Credentials, worded as Google words them.

Configured with POST /_test/wif {"audience", "region", "akid", "secret", "token"?,
"service_account", "federated_ok", "lifetime"?}: federated_ok lets Firestore accept federated
tokens (a pool granted roles directly); lifetime overrides the issued tokens' lifetime (s).
"""
import datetime
import json
import secrets
import time
import urllib.parse

from secrets_server import Refusal as AwsRefusal
from secrets_server import verify

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
AWS_TOKEN = "urn:ietf:params:aws:token-type:aws4_request"
VERIFICATION_URL = "https://sts.%s.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
SCOPES = {"https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/datastore"}


class OAuthError(Exception):
    def __init__(self, error, description):
        super().__init__(description)
        self.error = error
        self.description = description


def check_subject_token(cfg, form, now):
    """Raises OAuthError unless the form's subject token is an AWS GetCallerIdentity request
    signed for the configured credentials and audience."""
    try:
        token = json.loads(urllib.parse.unquote(form["subject_token"]))
        url, method, pairs = token["url"], token["method"], token["headers"]
        headers = [(h["key"], h["value"]) for h in pairs]
    except (KeyError, TypeError, ValueError):
        raise OAuthError("invalid_request", "Invalid subject token: it is not a serialized, "
                         "signed AWS GetCallerIdentity request.")
    if url != VERIFICATION_URL % cfg["region"] or method != "POST":
        raise OAuthError("invalid_grant", "Invalid subject token: the request is not a POST to "
                         "the regional GetCallerIdentity endpoint.")
    target = [v for k, v in headers if k.lower() == "x-goog-cloud-target-resource"]
    auth = [v for k, v in headers if k.lower() == "authorization"]
    signed = auth[0].split("SignedHeaders=")[1].split(",")[0].split(";") if auth and \
        "SignedHeaders=" in auth[0] else []
    if target != [form["audience"]] or "x-goog-cloud-target-resource" not in signed:
        raise OAuthError("invalid_grant", "The target resource header "
                         "x-goog-cloud-target-resource is missing, unsigned or does not match "
                         "the audience.")
    parts = urllib.parse.urlsplit(url)
    keys = {cfg["akid"]: (cfg["secret"], cfg.get("token"))}
    try:
        verify("POST", parts.path, parts.query, headers, b"", keys, cfg["region"], now,
               service="sts")
    except AwsRefusal as r:
        raise OAuthError("invalid_grant", "Received invalid AWS response of type %s with error "
                         "message: %s" % (r.type, r.message))


def sts_token(handler, body):
    """POST /v1/token: the reply (status, JSON)."""
    st = handler.store
    cfg = st.wif
    if not cfg:
        return 404, {"error": "not_found", "error_description": "no workload identity pool"}
    if not handler.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"):
        return 400, {"error": "invalid_request", "error_description": "Invalid Content-Type."}
    form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), strict_parsing=True).items()}
    try:
        if form.get("grant_type") != TOKEN_EXCHANGE:
            raise OAuthError("unsupported_grant_type", "Invalid value for \"grant_type\".")
        if form.get("requested_token_type") != ACCESS_TOKEN:
            raise OAuthError("invalid_request", "Invalid value for \"requested_token_type\".")
        if form.get("subject_token_type") != AWS_TOKEN:
            raise OAuthError("invalid_request", "Invalid value for \"subject_token_type\".")
        if form.get("audience") != cfg["audience"]:
            raise OAuthError("invalid_target", "The target service indicated by the "
                             "\"audience\" parameters is invalid. This might either be because "
                             "the pool or provider is disabled or deleted or because it doesn't "
                             "exist.")
        if not set(form.get("scope", "").split()) & SCOPES:
            raise OAuthError("invalid_scope", "Invalid value for \"scope\".")
        check_subject_token(cfg, form, datetime.datetime.now(datetime.timezone.utc))
    except OAuthError as e:
        return 400, {"error": e.error, "error_description": e.description}
    lifetime = cfg.get("lifetime", 3600)
    token = "ya29.federated-" + secrets.token_urlsafe(24)
    with st.lock:
        st.federated[token] = time.time() + lifetime
        if cfg.get("federated_ok"):
            st.tokens[token] = time.time() + lifetime
        st.wif_counts["sts"] += 1
    return 200, {"access_token": token, "issued_token_type": ACCESS_TOKEN,
                 "token_type": "Bearer", "expires_in": lifetime}


def rpc_error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


def generate_access_token(handler, email, body):
    """POST …/serviceAccounts/EMAIL:generateAccessToken: the reply (status, JSON)."""
    st = handler.store
    cfg = st.wif
    auth = handler.headers.get("Authorization", "")
    with st.lock:
        expiry = st.federated.get(auth[7:]) if auth.startswith("Bearer ") else None
    if expiry is None or expiry < time.time():
        return rpc_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                         "credentials. Expected OAuth 2 access token, login cookie or other "
                         "valid authentication credential.")
    if not cfg or email != cfg.get("service_account"):
        return rpc_error(403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts."
                         "getAccessToken' denied on resource (or it may not exist).")
    try:
        req = json.loads(body)
        scope, lifetime = req["scope"], req.get("lifetime", "3600s")
        seconds = int(lifetime[:-1]) if lifetime.endswith("s") else -1
        if set(req) - {"scope", "lifetime", "delegates"} or not isinstance(scope, list):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        return rpc_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if not set(scope) & SCOPES or not 1 <= seconds <= 43200:
        return rpc_error(400, "INVALID_ARGUMENT", "The scope or the lifetime is invalid.")
    seconds = cfg.get("lifetime", seconds)
    token = "ya29.impersonated-" + secrets.token_urlsafe(24)
    until = time.time() + seconds
    with st.lock:
        st.tokens[token] = until
        st.wif_counts["impersonations"] += 1
    stamp = datetime.datetime.fromtimestamp(int(until), datetime.timezone.utc)
    return 200, {"accessToken": token, "expireTime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
