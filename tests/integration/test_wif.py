"""No key at all: Workload Identity Federation from the AWS role's credentials, through the
local STS and IAM Credentials stand-ins (tests/servers/google_sts.py), which verify the
subject token's SigV4 signature as AWS would and issue the tokens the Firestore server takes.
Expected documents are written out from the items themselves."""
import hashlib
import hmac
import json
import os
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from common import BIN, TempDir, clean_env, query, run
from fsserver import PROJECT, FirestoreServer, RuntimeServer

AUDIENCE = ("//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/"
            "relay-pool/providers/aws")
EMAIL = "relay@%s.iam.gserviceaccount.com" % PROJECT
REGION = "eu-west-1"
AKID = "AKIAWIFTESTEXAMPLE01"
SECRET = "wif/secret/key+EXAMPLE0123456789abcdefgh"
SESSION = "IQoJb3JpZ2luX2VjEXAMPLE//session+token=="
ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/Wif/stream/2025-01-01T00:00:00.000"
VERIFY_URL = "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"


def records(n, first=0, documents=50):
    out = []
    for i in range(first, first + n):
        k = "k%04d" % (i % documents)
        out.append({"eventID": str(i), "eventName": "INSERT", "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb", "awsRegion": REGION, "eventSourceARN": ARN,
                    "dynamodb": {"Keys": {"pk": {"S": k}},
                                 "NewImage": {"pk": {"S": k}, "v": {"N": str(i)}},
                                 "SequenceNumber": "%021d" % (10 ** 20 + i),
                                 "StreamViewType": "NEW_IMAGE"}})
    return out


def expected(recs, prefix):
    docs = {}
    for r in recs:
        img = r["dynamodb"]["NewImage"]
        docs[prefix + "Wif/" + img["pk"]["S"]] = {"pk": {"stringValue": img["pk"]["S"]},
                                                  "v": {"integerValue": img["v"]["N"]}}
    return docs


class Wif(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.fs = FirestoreServer()
        self.db = self.tmp.file("ddb2fs.db")

    def tearDown(self):
        self.fs.stop()
        self.tmp.cleanup()

    def pool(self, impersonation, **more):
        cfg = {"audience": AUDIENCE, "region": REGION, "akid": AKID, "secret": SECRET,
               "token": SESSION, "service_account": EMAIL, "federated_ok": not impersonation}
        cfg.update(more)
        self.fs.control("wif", cfg)

    def config_file(self, impersonation, audience=AUDIENCE, lifetime=None):
        c = {"type": "external_account", "audience": audience,
             "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
             "token_url": self.fs.url + "/v1/token",
             "credential_source": {"environment_id": "aws1",
                                   "region_url": "http://169.254.169.254/latest/meta-data/"
                                                 "placement/availability-zone",
                                   "url": "http://169.254.169.254/latest/meta-data/iam/"
                                          "security-credentials",
                                   "regional_cred_verification_url": VERIFY_URL}}
        if impersonation:
            c["service_account_impersonation_url"] = (
                self.fs.url + "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % EMAIL)
            if lifetime:
                c["service_account_impersonation"] = {"token_lifetime_seconds": lifetime}
        path = self.tmp.file("wif.json")
        with open(path, "w") as f:
            json.dump(c, f)
        return path

    def env(self, config, secret=SECRET, **more):
        e = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS="Wif=pk",
                      GOOGLE_APPLICATION_CREDENTIALS=config, GOOGLE_CLOUD_PROJECT=PROJECT,
                      DDB2FS_FIRESTORE_ENDPOINT=self.fs.url, DDB2FS_RAMP="off",
                      AWS_REGION=REGION, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=secret,
                      AWS_SESSION_TOKEN=SESSION)
        e.update(more)
        return e

    def ingest(self, env, recs):
        p = run(["ingest", "-"], env=env, stdin=json.dumps({"Records": recs}))
        self.assertEqual(p.returncode, 0, p.stderr)

    def no_secrets_in(self, *texts):
        issued = [r["headers"].get("authorization", "")[7:] for r in self.fs.requests()
                  if r["headers"].get("authorization", "").startswith("Bearer ")]
        for t in texts:
            for s in [SECRET, SESSION, "Signature=", "x-amz-security-token"] + issued:
                self.assertNotIn(s, t)

    def test_drain_with_and_without_impersonation(self):
        for impersonation in (False, True):
            with self.subTest(impersonation=impersonation):
                self.fs.control("reset")
                if os.path.exists(self.db):
                    os.remove(self.db)
                self.pool(impersonation)
                env = self.env(self.config_file(impersonation))
                recs = records(200)
                self.ingest(env, recs)
                p = run(["drain"], env=env)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(self.fs.documents(), expected(recs, self.fs.prefix()))
                counts = self.fs.control("wif_counts")
                self.assertEqual(counts["sts"], 1)
                self.assertEqual(counts["impersonations"], 1 if impersonation else 0)
                reqs = self.fs.requests()
                sts = [r for r in reqs if r["path"] == "/v1/token"]
                form = urllib.parse.parse_qs(sts[0]["body"])
                self.assertEqual(form["audience"], [AUDIENCE])
                self.assertEqual(form["grant_type"],
                                 ["urn:ietf:params:oauth:grant-type:token-exchange"])
                subject = json.loads(urllib.parse.unquote(form["subject_token"][0]))
                self.assertEqual(subject["url"], VERIFY_URL.format(region=REGION))
                names = sorted(h["key"].lower() for h in subject["headers"])
                self.assertEqual(names, ["authorization", "host", "x-amz-date",
                                         "x-amz-security-token",
                                         "x-goog-cloud-target-resource"])
                auth = [h["value"] for h in subject["headers"] if h["key"] == "Authorization"][0]
                self.assertIn("SignedHeaders=host;x-amz-date;x-amz-security-token;"
                              "x-goog-cloud-target-resource", auth)
                self.assertIn("Credential=%s/" % AKID, auth)
                # the AWS secret itself never travels
                self.assertFalse(any(SECRET in json.dumps(r) for r in reqs))
                commits = [r for r in reqs if r["path"].endswith(":commit")]
                want = "Bearer ya29.impersonated-" if impersonation else "Bearer ya29.federated-"
                self.assertTrue(commits)
                self.assertTrue(all(r["headers"]["authorization"].startswith(want)
                                    for r in commits))
                with open(self.db, "rb") as f:
                    self.no_secrets_in(p.stdout, p.stderr, f.read().decode("latin-1"))

    def test_token_renewed_mid_drain(self):
        self.pool(True, lifetime=2)
        env = self.env(self.config_file(True), DDB2FS_COMMIT_WRITES="5", DDB2FS_CONCURRENCY="1")
        recs = records(400, documents=200)  # 40 commits of 150 ms: 6 s, three lifetimes
        self.ingest(env, recs)
        self.fs.faults(latency_ms=150)
        p = run(["drain"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.fs.documents(), expected(recs, self.fs.prefix()))
        counts = self.fs.control("wif_counts")
        self.assertGreaterEqual(counts["sts"], 2)
        self.assertEqual(counts["sts"], counts["impersonations"])

    def refused(self, env, *words):
        self.ingest(env, records(20))
        p = run(["drain"], env=env)
        self.assertEqual(p.returncode, 1, p.stderr)
        for w in words:
            self.assertIn(w, p.stderr)
        self.assertEqual(self.fs.documents(), {})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'pending'")
                         [0][0], 20)
        self.no_secrets_in(p.stdout, p.stderr)
        return p

    def test_wrong_secret_is_refused(self):
        self.pool(True)
        self.refused(self.env(self.config_file(True), secret="not/the/secret/key+EXAMPLE00000"),
                     "Google's STS", "refused the subject token", "invalid_grant",
                     "InvalidSignatureException")

    def test_wrong_audience_is_refused(self):
        self.pool(True)
        self.refused(self.env(self.config_file(True, audience=AUDIENCE.replace("aws", "other"))),
                     "Google's STS", "invalid_target")

    def test_impersonation_denied(self):
        self.pool(True, service_account="someone-else@example.iam.gserviceaccount.com")
        self.refused(self.env(self.config_file(True)), "IAM Credentials",
                     "refused to impersonate", "PERMISSION_DENIED")

    def test_federated_token_alone_is_not_enough_where_impersonation_is_needed(self):
        self.pool(True)  # Firestore takes only impersonated tokens
        self.refused(self.env(self.config_file(False)), "UNAUTHENTICATED")

    def test_a_target_resource_that_is_not_the_audience_is_refused(self):
        """The stand-in itself: a subject token signed correctly but for another target."""
        self.pool(True)
        now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

        def exchange(target):
            """POSTs to the STS stand-in a subject token signed right, for target."""
            hdrs = [("host", "sts.%s.amazonaws.com" % REGION), ("x-amz-date", now),
                    ("x-amz-security-token", SESSION), ("x-goog-cloud-target-resource", target)]
            token = {"url": VERIFY_URL.format(region=REGION), "method": "POST",
                     "headers": [{"key": "Authorization", "value": sign(hdrs, now)}] +
                                [{"key": k, "value": v} for k, v in hdrs]}
            form = urllib.parse.urlencode({
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "audience": AUDIENCE, "scope": "https://www.googleapis.com/auth/cloud-platform",
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
                "subject_token": urllib.parse.quote(json.dumps(token))}).encode()
            req = urllib.request.Request(self.fs.url + "/v1/token", data=form, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            return urllib.request.urlopen(req, timeout=10)

        with self.assertRaises(urllib.error.HTTPError) as e:
            exchange(AUDIENCE + "-other")
        answer = json.loads(e.exception.read())
        self.assertEqual(answer["error"], "invalid_grant")
        self.assertIn("x-goog-cloud-target-resource", answer["error_description"])
        # the same token for the right target goes through: the refusal was the target's
        with exchange(AUDIENCE) as r:
            self.assertIn("access_token", json.loads(r.read()))

    def test_lambda_invocation(self):
        self.pool(False)
        rt = RuntimeServer()
        log = open(self.tmp.file("lambda.log"), "w")
        proc = subprocess.Popen([BIN, "lambda"], stdout=log, stderr=log,
                                env=self.env(self.config_file(False), AWS_LAMBDA_RUNTIME_API=rt.api))
        try:
            recs = records(100)
            rid = rt.invoke({"Records": recs})
            got = rt.wait(rid, timeout=60)
            self.assertEqual((got["kind"], got["body"]), ("response", {"batchItemFailures": []}))
            self.assertEqual(self.fs.documents(), expected(recs, self.fs.prefix()))
        finally:
            proc.kill()
            proc.wait()
            log.close()
            rt.stop()
        with open(self.tmp.file("lambda.log")) as f:
            self.no_secrets_in(f.read())

    def test_configuration_errors_name_the_field(self):
        cases = [({"subject_token_type": "urn:ietf:params:oauth:token-type:jwt"},
                  "subject_token_type"),
                 ({"token_url": "http://sts.googleapis.com/v1/token"}, "'token_url' is not an "
                                                                        "https:// URL"),
                 ({"token_url": "https://sts.evil.example/v1/token"}, "not a Google API"),
                 ({"audience": "projects/1"}, "'audience'"),
                 ({"credential_source": {"environment_id": "azure1"}}, "environment_id")]
        for change, words in cases:
            with self.subTest(change=change):
                with open(self.config_file(False)) as f:
                    c = json.load(f)
                c.update(change)
                with open(self.tmp.file("bad.json"), "w") as f:
                    json.dump(c, f)
                env = self.env(self.tmp.file("bad.json"))
                self.ingest(env, records(1))
                p = run(["drain"], env=env)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("GOOGLE_APPLICATION_CREDENTIALS", p.stderr)
                self.assertIn(words, p.stderr)
        env = self.env(self.config_file(False))
        del env["AWS_ACCESS_KEY_ID"]
        p = run(["drain"], env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("AWS_ACCESS_KEY_ID", p.stderr)


def sign(headers, amz_date):
    """SigV4 of a GetCallerIdentity POST with these headers, written out for the test."""
    signed = sorted(k for k, _ in headers)
    creq = "\n".join(["POST", "/", "Action=GetCallerIdentity&Version=2011-06-15",
                      "".join("%s:%s\n" % (k, dict(headers)[k]) for k in signed),
                      ";".join(signed), hashlib.sha256(b"").hexdigest()])
    scope = "%s/%s/sts/aws4_request" % (amz_date[:8], REGION)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + SECRET).encode()
    for part in (amz_date[:8], REGION, "sts", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
            % (AKID, scope, ";".join(signed), sig))


if __name__ == "__main__":
    unittest.main()
