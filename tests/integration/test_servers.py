"""The local servers refuse what the real services refuse: the Firestore server's validation,
get, batchGet and list, and the Secrets Manager server's SigV4 check against AWS's published
test vectors: a server that accepted anything would make the tests that use it prove
nothing."""
import json
import unittest
import urllib.error
import urllib.request

from fsserver import PROJECT, FirestoreServer, ServiceAccount
from common import TempDir

DB = "projects/%s/databases/(default)" % PROJECT
DOCS = DB + "/documents"


class Strict(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = FirestoreServer()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def call(self, path, body=None, method=None, headers=None):
        data = body if isinstance(body, bytes) else (json.dumps(body).encode()
                                                     if body is not None else None)
        req = urllib.request.Request(self.server.url + "/v1/" + path, data=data,
                                     method=method or ("POST" if data is not None else "GET"),
                                     headers=dict({"Content-Type": "application/json"},
                                                  **(headers or {})))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def commit(self, *writes):
        return self.call(DOCS + ":commit", {"writes": list(writes)})

    def update(self, doc_id, fields):
        return {"update": {"name": DOCS + "/Orders/" + doc_id, "fields": fields}}

    def refused(self, status, code, *writes):
        got, body = self.commit(*writes)
        self.assertEqual(got, code, body)
        self.assertEqual(body["error"]["status"], status)
        self.assertEqual(body["error"]["code"], code)
        return body["error"]["message"]

    def test_values(self):
        s = {"stringValue": "x"}
        self.assertEqual(self.commit(self.update("ok", {"a": s}))[0], 200)
        self.assertIn("exactly one type", self.refused(
            "INVALID_ARGUMENT", 400, self.update("v", {"a": {"stringValue": "x",
                                                              "integerValue": "1"}})))
        self.assertIn("Unknown name", self.refused(
            "INVALID_ARGUMENT", 400, self.update("v", {"a": {"textValue": "x"}})))
        self.assertIn("invalid integerValue", self.refused(
            "INVALID_ARGUMENT", 400, self.update("v", {"a": {"integerValue": "9223372036854775808"}})))
        self.assertIn("bytesValue", self.refused(
            "INVALID_ARGUMENT", 400, self.update("v", {"a": {"bytesValue": "***"}})))
        self.assertIn("array value in an array value", self.refused(
            "INVALID_ARGUMENT", 400, self.update("v", {"a": {"arrayValue": {"values": [
                {"arrayValue": {"values": []}}]}}})))

    def test_depth(self):
        def nest(levels):
            v = {"stringValue": "leaf"}
            for _ in range(levels):
                v = {"mapValue": {"fields": {"a": v}}}
            return v
        # as the emulator counts: 20 nested maps may hold a value, 21 may not
        self.assertEqual(self.commit(self.update("deep", {"d": nest(20)}))[0], 200)
        self.assertIn("nested deeper", self.refused("INVALID_ARGUMENT", 400,
                                                    self.update("deep", {"d": nest(21)})))

    def test_names_and_ids(self):
        self.assertIn("__.+__", self.refused("INVALID_ARGUMENT", 400,
                                             self.update("n", {"__x__": {"nullValue": None}})))
        self.assertIn("is empty", self.refused("INVALID_ARGUMENT", 400,
                                               self.update("n", {"": {"nullValue": None}})))
        self.assertIn("'.' or '..'", self.refused("INVALID_ARGUMENT", 400, self.update("..", {})))
        self.assertIn("odd number", self.refused(
            "INVALID_ARGUMENT", 400, {"delete": DOCS + "/Orders"}))
        self.assertIn("not in", self.refused(
            "INVALID_ARGUMENT", 400, {"delete": "projects/other/databases/(default)/documents/a/b"}))
        self.assertIn("Unknown name", self.refused(
            "INVALID_ARGUMENT", 400, {"update": {"name": DOCS + "/a/b", "fieldz": {}}}))
        self.assertIn("output only", self.refused(
            "INVALID_ARGUMENT", 400, {"update": {"name": DOCS + "/a/b", "updateTime": "x"}}))
        self.assertIn("exactly one operation", self.refused(
            "INVALID_ARGUMENT", 400, {"delete": DOCS + "/a/b", "update": {"name": DOCS + "/a/c"}}))

    def test_sizes(self):
        big = {"s": {"stringValue": "z" * (600 * 1024)}, "t": {"stringValue": "z" * (600 * 1024)}}
        self.assertIn("longer than 1048487 bytes", self.refused(
            "INVALID_ARGUMENT", 400, self.update("big", {"s": {"stringValue": "z" * 1048488}})))
        self.assertIn("exceeds the maximum allowed size", self.refused(
            "INVALID_ARGUMENT", 400, self.update("big", big)))
        huge = b'{"writes":[' + b" " * (10 * 1024 * 1024) + b"]}"
        code, body = self.call(DOCS + ":commit", huge)
        self.assertEqual((code, body["error"]["status"]), (400, "INVALID_ARGUMENT"))
        self.assertIn("Request payload size exceeds the limit", body["error"]["message"])

    def test_commit_is_atomic(self):
        self.assertEqual(self.commit(self.update("atom1", {}),
                                     self.update("atom2", {"__bad__": {"nullValue": None}}))[0],
                         400)
        self.assertEqual(self.call(DOCS + "/Orders/atom1")[0], 404)

    def test_batch_write_is_per_write(self):
        self.assertEqual(self.commit(self.update("bw0", {}))[0], 200)
        code, body = self.call(DOCS + ":batchWrite", {"writes": [
            self.update("bw1", {"n": {"integerValue": "1"}}),
            dict(self.update("bw0", {}), currentDocument={"exists": False}),
            self.update("bw2", {})]})
        self.assertEqual(code, 200, body)
        self.assertEqual([s.get("code", 0) for s in body["status"]], [0, 6, 0])
        self.assertIn("updateTime", body["writeResults"][0])
        self.assertEqual(body["writeResults"][1], {})
        self.assertEqual(self.call(DOCS + "/Orders/bw1")[1]["fields"], {"n": {"integerValue": "1"}})
        self.assertEqual(self.call(DOCS + "/Orders/bw2")[0], 200)
        code, body = self.call(DOCS + ":batchWrite", {"writes": [self.update("bw3", {}),
                                                                 self.update("bw3", {})]})
        self.assertEqual((code, body["error"]["status"]), (400, "INVALID_ARGUMENT"))
        self.assertEqual(self.call(DOCS + "/Orders/bw3")[0], 404)

    def test_get_batch_get_list(self):
        self.assertEqual(self.commit(self.update("g1", {"n": {"integerValue": "1"}}),
                                     self.update("g2", {"n": {"integerValue": "2"}}))[0], 200)
        code, doc = self.call(DOCS + "/Orders/g1")
        self.assertEqual((code, doc["fields"]), (200, {"n": {"integerValue": "1"}}))
        self.assertIn("updateTime", doc)
        code, body = self.call(DOCS + "/Orders/none")
        self.assertEqual((code, body["error"]["status"]), (404, "NOT_FOUND"))
        code, answers = self.call(DOCS + ":batchGet", {"documents": [DOCS + "/Orders/g2",
                                                                    DOCS + "/Orders/none"]})
        self.assertEqual(code, 200)
        self.assertEqual(answers[0]["found"]["fields"], {"n": {"integerValue": "2"}})
        self.assertEqual(answers[1]["missing"], DOCS + "/Orders/none")
        code, page = self.call(DOCS + "/Orders?pageSize=1")
        self.assertEqual((code, len(page["documents"])), (200, 1))
        self.assertIn("nextPageToken", page)

    def test_status_bodies_for_faults(self):
        self.server.faults(UNAVAILABLE=1.0)
        try:
            self.assertEqual(self.refused("UNAVAILABLE", 503, self.update("f", {})),
                             "injected UNAVAILABLE")
            self.server.faults(ABORTED=1.0)
            self.refused("ABORTED", 409, self.update("f", {}))
            self.server.faults(forbid=True)
            self.refused("PERMISSION_DENIED", 403, self.update("f", {}))
        finally:
            self.server.faults()


class Tokens(unittest.TestCase):
    def test_token_endpoint_checks_the_assertion(self):
        server = FirestoreServer()
        tmp = TempDir()
        try:
            key = ServiceAccount(tmp.file("sa.json"), server.url + "/token")
            server.register(key)
            # no token, a made-up token: UNAUTHENTICATED
            req = urllib.request.Request(server.url + "/v1/" + DOCS + "/a/b")
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(e.exception.code, 401)
            req = urllib.request.Request(server.url + "/v1/" + DOCS + "/a/b",
                                         headers={"Authorization": "Bearer ya29.made-up"})
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(e.exception.code, 401)
            # a grant that is not the JWT-bearer one
            req = urllib.request.Request(server.url + "/token", data=b"grant_type=password",
                                         headers={"Content-Type":
                                                  "application/x-www-form-urlencoded"})
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(json.loads(e.exception.read())["error"], "unsupported_grant_type")
            # a forged assertion
            req = urllib.request.Request(
                server.url + "/token",
                data=b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                     b"&assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(json.loads(e.exception.read())["error"], "invalid_grant")
        finally:
            server.stop()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()


class SigV4(unittest.TestCase):
    """tests/servers/secrets_server.py's signature check, on AWS's SigV4 test suite (the
    get-vanilla and post-vanilla requests, key AKIDEXAMPLE, 20150830T123600Z) and on requests
    that differ from a signed one in one respect each."""

    SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    DATE = "20150830T123600Z"

    @classmethod
    def setUpClass(cls):
        import datetime
        import os
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "servers"))
        import secrets_server
        cls.s = secrets_server
        cls.now = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.timezone.utc)

    def test_aws_published_vectors(self):
        headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", self.DATE)]
        for method, expected in (("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8a"
                                          "ae1d763fbf31"),
                                 ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37ddd"
                                          "b68e92efbe5d6b")):
            creq = self.s.canonical_request(method, "/", "", headers, ["host", "x-amz-date"], b"")
            self.assertEqual(self.s.signature(self.SECRET, self.DATE, "us-east-1", "service",
                                              creq), expected)
        # get-vanilla-query-order-key-case: the query is sorted before signing
        creq = self.s.canonical_request("GET", "/", "Param2=value2&Param1=value1", headers,
                                        ["host", "x-amz-date"], b"")
        self.assertEqual(self.s.signature(self.SECRET, self.DATE, "us-east-1", "service", creq),
                         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")

    def signed(self, body=b'{"SecretId":"k"}', token="tok", region="us-east-1"):
        headers = [("Host", "sm.local"), ("X-Amz-Date", self.DATE),
                   ("X-Amz-Target", "secretsmanager.GetSecretValue")]
        signed = ["host", "x-amz-date", "x-amz-target"]
        if token:
            headers.append(("X-Amz-Security-Token", token))
            signed.append("x-amz-security-token")
        signed.sort()
        creq = self.s.canonical_request("POST", "/", "", headers, signed, body)
        sig = self.s.signature(self.SECRET, self.DATE, region, "secretsmanager", creq)
        headers.append(("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/%s/%s/"
                        "secretsmanager/aws4_request, SignedHeaders=%s, Signature=%s"
                        % (self.DATE[:8], region, ";".join(signed), sig)))
        return headers, body

    def verdict(self, headers, body, keys=None, now=None):
        try:
            self.s.verify("POST", "/", "", headers, body,
                          keys or {"AKIDEXAMPLE": (self.SECRET, "tok")}, "us-east-1",
                          now or self.now)
            return None
        except self.s.Refusal as r:
            return r.type, r.message

    def test_refusals(self):
        import datetime
        headers, body = self.signed()
        self.assertIsNone(self.verdict(headers, body))
        self.assertEqual(self.verdict(headers, body + b" ")[0], "InvalidSignatureException")
        self.assertEqual(self.verdict(headers, body, {"AKIDEXAMPLE": ("other", "tok")})[0],
                         "InvalidSignatureException")
        self.assertEqual(self.verdict(headers, body, {"AKIDOTHER": (self.SECRET, None)})[0],
                         "UnrecognizedClientException")
        changed = [(k, "secretsmanager.ListSecrets" if k == "X-Amz-Target" else v)
                   for k, v in headers]
        self.assertEqual(self.verdict(changed, body)[0], "InvalidSignatureException")
        later = self.now + datetime.timedelta(minutes=6)
        self.assertIn("Signature expired", self.verdict(headers, body, now=later)[1])
        earlier = self.now - datetime.timedelta(minutes=6)
        self.assertIn("not yet current", self.verdict(headers, body, now=earlier)[1])
        headers, body = self.signed(token=None)
        self.assertEqual(self.verdict(headers, body)[0], "UnrecognizedClientException")
        headers, body = self.signed(region="eu-west-1")
        self.assertIn("valid region", self.verdict(headers, body)[1])
        unsigned = [(k, v) for k, v in headers if k != "Authorization"]
        self.assertEqual(self.verdict(unsigned, body)[0], "MissingAuthenticationTokenException")
