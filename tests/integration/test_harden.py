"""Security hardening, each weakness tried as it was found: a dump of a running relay holds no
key and no JWT; credentials go over https only; the emulator does not win over a key; a key
file's token_uri and its names cannot steer the relay; table names from data are checked and
what reaches a terminal is escaped; DDB2FS_TABLES; a TLS failure stops the drain; the outbox is
the owner's alone; SigV4 requests sign only the headers they carry."""
import datetime
import http.server
import ipaddress
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import threading
import time
import unittest

import events
from common import BIN, TempDir, clean_env, query, run
from fsserver import PROJECT, FirestoreServer, RuntimeServer, SecretsServer, ServiceAccount

NOBODY = 65534


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server (or proxy: it answers whatever it is asked) that records every
    request line it receives and answers 200 {}."""

    def __init__(self):
        self.seen = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self):
                rec.seen.append(self.requestline)
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_CONNECT = handle_one

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server_port
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


def self_signed_context(tmp):
    """A server TLS context with a self-signed certificate for 127.0.0.1, made with
    cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp.file("tls.crt"), tmp.file("tls.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


class TlsServer:
    """Accepts TCP connections on 127.0.0.1 and offers a self-signed certificate; counts the
    handshakes tried."""

    def __init__(self, ctx):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self.handshakes = 0
        self.running = True
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handshakes += 1
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def stop(self):
        self.running = False
        self.sock.close()


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.db = self.tmp.file("outbox.db")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.tmp.cleanup()

    def serve(self, server):
        self.servers.append(server)
        return server

    def key(self, token_uri, **fields):
        """A key file as ServiceAccount writes it, with some fields replaced."""
        k = ServiceAccount(self.tmp.file("sa.json"), token_uri)
        with open(k.path) as f:
            doc = json.load(f)
        doc.update(fields)
        with open(k.path, "w") as f:
            json.dump(doc, f)
        return k


class Endpoints(Base):
    """#2, #3, #4: where credentials may go."""

    def test_plain_http_endpoints_refused_unless_loopback(self):
        proxy = self.serve(Recorder())
        key = self.key("https://oauth2.googleapis.com/token")
        base = dict(DDB2FS_OUTBOX=self.db, GOOGLE_APPLICATION_CREDENTIALS=key.path,
                    http_proxy=proxy.url, HTTP_PROXY=proxy.url, https_proxy=proxy.url,
                    AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="s")
        cases = {"DDB2FS_FIRESTORE_ENDPOINT": "http://firestore.example.com",
                 "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://secrets.example.com",
                 "AWS_ENDPOINT_URL": "http://aws.example.com",
                 "AWS_ENDPOINT_URL_DYNAMODB": "http://10.0.0.1:8000"}
        for var, url in cases.items():
            p = run(["drain"], env=clean_env(**dict(base, **{var: url})))
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("is not an https:// URL", p.stderr)
            self.assertIn(var if var != "AWS_ENDPOINT_URL" else "AWS_ENDPOINT_URL_", p.stderr)
        self.assertEqual(proxy.seen, [])
        # loopback over http stays allowed (tests), and so does https anywhere
        p = run(["drain"], env=clean_env(**dict(base, DDB2FS_FIRESTORE_ENDPOINT=proxy.url)))
        self.assertNotIn("https:// URL", p.stderr)

    def test_emulator_refused_with_a_key_or_in_lambda(self):
        key = self.key("https://oauth2.googleapis.com/token")
        emu = dict(DDB2FS_OUTBOX=self.db, FIRESTORE_EMULATOR_HOST="127.0.0.1:9",
                   GOOGLE_CLOUD_PROJECT=PROJECT)
        for extra, says in (({"GOOGLE_APPLICATION_CREDENTIALS": key.path},
                             "GOOGLE_APPLICATION_CREDENTIALS"),
                            ({"DDB2FS_KEY_SEALED": self.tmp.file("x.sealed"),
                              "DDB2FS_KEY_SECRET": "s"}, "DDB2FS_KEY_SEALED"),
                            ({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"}, "AWS_LAMBDA_RUNTIME_API")):
            p = run(["drain"], env=clean_env(**dict(emu, **extra)))
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("FIRESTORE_EMULATOR_HOST", p.stderr)
            self.assertIn(says, p.stderr)
            self.assertIn("DDB2FS_ALLOW_EMULATOR=1", p.stderr)
        p = run(["drain"], env=clean_env(**dict(emu, DDB2FS_ALLOW_EMULATOR="yes")))
        self.assertIn("DDB2FS_ALLOW_EMULATOR: 'yes' is not accepted", p.stderr)

    def test_emulator_use_is_logged(self):
        fs = self.serve(FirestoreServer())
        ev = events.event(10, seed=98)
        env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING, **fs.env())
        run(["ingest", "-"], env=env, stdin=events.dumps(ev), check=True)
        p = run(["drain"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        warned = [json.loads(l) for l in p.stderr.splitlines() if "emulator" in l]
        self.assertEqual(len(warned), 1, p.stderr)
        self.assertEqual((warned[0]["level"], warned[0]["emulator"]), ("warn", fs.host))
        self.assertEqual(len(fs.documents()), len({json.dumps(r["dynamodb"]["Keys"])
                                                   for r in ev["Records"]}))

    def test_token_uri_must_be_googles(self):
        rec = self.serve(Recorder())
        port = rec.server_port
        for uri in ("http://oauth2.example.com/token", "https://evil.example.com/token",
                    "dict://127.0.0.1:%d/" % port, "file:///etc/passwd",
                    "https://oauth2.googleapis.com.evil.example/token"):
            key = self.key(uri)
            p = run(["seal-key", key.path, "--out", self.tmp.file("k.sealed")])
            self.assertNotEqual(p.returncode, 0, uri)
            self.assertIn("'token_uri'", p.stderr)
            self.assertIn("not Google's token endpoint", p.stderr)
            self.assertFalse(os.path.exists(self.tmp.file("k.sealed")))
            p = run(["drain"], env=clean_env(DDB2FS_OUTBOX=self.db,
                                             GOOGLE_APPLICATION_CREDENTIALS=key.path))
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("not Google's token endpoint", p.stderr)
        self.assertEqual(rec.seen, [])
        # a message that quotes the file's text escapes what a terminal would act on
        key = self.key("https://evil.example/\x1b]0;owned\x07\x1b[2J")
        p = run(["seal-key", key.path, "--out", self.tmp.file("k.sealed")])
        self.assertIn("https://evil.example/\\x1b]0;owned\\x07\\x1b[2J", p.stderr)
        self.assertNotIn("\x1b", p.stderr)
        key = self.key("https://oauth2.googleapis.com/token")
        p = run(["seal-key", key.path, "--out", self.tmp.file("k.sealed")])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_names_in_a_key_cannot_inject_json(self):
        for field, value in (("private_key_id", 'k1","alg":"none'),
                             ("client_email", 'a@b.iam.gserviceaccount.com","aud":"x'),
                             ("client_email", "no-at-sign"),
                             ("private_key_id", "k\n1")):
            key = self.key("https://oauth2.googleapis.com/token", **{field: value})
            p = run(["seal-key", key.path, "--out", self.tmp.file("k.sealed")])
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("'%s'" % field, p.stderr)

    def test_jwt_header_and_claims_are_exact(self):
        fs = self.serve(FirestoreServer())
        key = ServiceAccount(self.tmp.file("sa.json"), fs.url + "/token")
        fs.register(key)
        env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING,
                        DDB2FS_FIRESTORE_ENDPOINT=fs.url, DDB2FS_RAMP="off",
                        GOOGLE_APPLICATION_CREDENTIALS=key.path, DDB2FS_TOKEN="self-signed")
        run(["ingest", "-"], env=env, stdin=events.dumps(events.event(3, seed=99)), check=True)
        p = run(["drain"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        import base64
        auths = [r["headers"]["authorization"] for r in fs.requests()
                 if r["headers"].get("authorization", "").startswith("Bearer ")]
        self.assertTrue(auths)
        h64, c64, _ = auths[0][len("Bearer "):].split(".")
        pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        self.assertEqual(json.loads(pad(h64)), {"alg": "RS256", "typ": "JWT", "kid": key.key_id})
        claims = json.loads(pad(c64))
        self.assertEqual(sorted(claims), ["aud", "exp", "iat", "iss", "sub"])
        self.assertEqual((claims["iss"], claims["sub"]), (key.email, key.email))
        self.assertEqual(claims["exp"] - claims["iat"], 3600)


class Tables(Base):
    """#6, #7: table names from data; which tables are served; escaping for terminals."""

    def ingest(self, ev, **more):
        env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING, **more)
        p = run(["ingest", "-"], env=env, stdin=events.dumps(ev))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def states(self):
        return query(self.db, "SELECT i.table_name, s.state, s.last_error FROM record_info i "
                              "JOIN record_state s USING (id) ORDER BY id")

    def test_table_name_with_control_characters_is_dead(self):
        ev = events.event(3, seed=100)
        bad = "Ord\x1b]0;owned\x07ers"
        ev["Records"][1]["eventSourceARN"] = events.arn(bad)
        ev["Records"][2]["eventSourceARN"] = events.arn("ab")
        self.ingest(ev)
        rows = self.states()
        self.assertEqual(rows[0][:2], ("Orders", "pending"))
        for r in rows[1:]:
            self.assertEqual(r[0], None)
            self.assertEqual(r[1], "dead")
            self.assertIn("is not a DynamoDB table name", r[2])

    def test_tables_not_served_are_dead(self):
        ev = events.event(4, seed=101)
        ev["Records"][1]["eventSourceARN"] = events.arn("admins")
        ev["Records"][3]["eventSourceARN"] = events.arn("Orders", label="2099-01-01T00:00:00.000")
        for setting, want in (("Orders", ["pending", "dead", "pending", "pending"]),
                              (events.arn("Orders"), ["pending", "dead", "pending", "dead"]),
                              ("arn:aws:dynamodb:us-east-1:123456789012:table/Orders, Other",
                               ["pending", "dead", "pending", "pending"])):
            if os.path.exists(self.db):
                os.remove(self.db)
            self.ingest(ev, DDB2FS_TABLES=setting)
            rows = self.states()
            self.assertEqual([r[1] for r in rows], want, setting)
            for r in rows:
                if r[1] == "dead":
                    self.assertIn("is not served: DDB2FS_TABLES", r[2])
            # the table it does not serve is not described, its keys not recorded
            self.assertEqual(query(self.db, "SELECT table_name FROM key_schema"), [("Orders",)])
        os.remove(self.db)
        self.ingest(ev)  # unset: every table, as before
        self.assertEqual([r[1] for r in self.states()], ["pending"] * 4)
        p = run(["drain"], env=clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_TABLES="Orders;b=c"))
        self.assertIn("DDB2FS_TABLES: entry 2: 'b=c'", p.stderr)

    def test_status_escapes_what_data_put_there(self):
        self.ingest(events.event(2, seed=102))
        con = __import__("sqlite3").connect(self.db)
        con.execute("UPDATE record_info SET table_name = ? WHERE id = 2",
                    ("T\x1b[31mred\x1b]0;title\x07",))
        con.execute("UPDATE record_state SET state = 'dead', last_error = ? WHERE id = 2",
                    ("line one\nfake line \x9b\u0085 \\ end",))
        con.commit()
        con.close()
        p = run(["status"], env=clean_env(DDB2FS_OUTBOX=self.db))
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        self.assertIsNone(re.search("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", out), repr(out))
        self.assertIn("T\\x1b[31mred\\x1b]0;title\\x07", out)
        self.assertIn("line one\\x0afake line \\u009b\\u0085 \\\\ end", out)
        # one line per dead reason: the newline did not split it
        self.assertEqual(len([l for l in out.splitlines() if "fake line" in l]), 1)
        self.assertEqual(len([l for l in out.splitlines() if "line one" in l]), 1)


class Transport(Base):
    """#8, #9."""

    def test_tls_failure_stops_the_drain_at_once(self):
        tls = TlsServer(self_signed_context(self.tmp))
        self.servers.append(tls)
        key = ServiceAccount(self.tmp.file("sa.json"), "https://oauth2.googleapis.com/token")
        env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING,
                        GOOGLE_APPLICATION_CREDENTIALS=key.path, DDB2FS_TOKEN="self-signed",
                        DDB2FS_FIRESTORE_ENDPOINT="https://127.0.0.1:%d" % tls.port,
                        DDB2FS_RAMP="off", DDB2FS_DRAIN_SECONDS="30")
        run(["ingest", "-"], env=env, stdin=events.dumps(events.event(20, seed=103)), check=True)
        start = time.time()
        p = run(["drain"], env=env)
        took = time.time() - start
        self.assertNotEqual(p.returncode, 0)
        self.assertLess(took, 10, p.stderr)
        self.assertIn("TLS failed", p.stderr)
        self.assertIn("certificate", p.stderr.lower())
        self.assertLessEqual(tls.handshakes, 2)
        self.assertEqual(query(self.db, "SELECT count(*) FROM record_state WHERE state = "
                                        "'pending'")[0][0], 20)

    def test_outbox_files_are_0600_with_umask_0(self):
        fs = self.serve(FirestoreServer())
        rt = self.serve(RuntimeServer())
        env = clean_env(AWS_LAMBDA_RUNTIME_API=rt.api, DDB2FS_OUTBOX=self.db,
                        DDB2FS_KEYS=events.KEYS_SETTING, DDB2FS_JOURNAL="wal", **fs.env())
        log = open(self.tmp.file("log"), "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=log, stderr=log,
                                preexec_fn=lambda: os.umask(0))
        try:
            rid = rt.invoke(events.event(5, seed=104))
            self.assertEqual(rt.wait(rid)["body"], {"batchItemFailures": []})
            for suffix in ("", "-wal", "-shm"):
                self.assertTrue(os.path.exists(self.db + suffix), suffix)
                self.assertEqual(oct(mode(self.db + suffix)), "0o600", suffix)
        finally:
            proc.kill()
            proc.wait()
        # rollback journal mode, from a process with umask 0 as well
        db = self.tmp.file("delete.db")
        p = subprocess.run([BIN, "ingest", "-"], input=events.dumps(events.event(3, seed=105)),
                           capture_output=True, text=True, preexec_fn=lambda: os.umask(0),
                           env=clean_env(DDB2FS_OUTBOX=db, DDB2FS_KEYS=events.KEYS_SETTING,
                                         DDB2FS_JOURNAL="delete"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(oct(mode(db)), "0o600")
        # an outbox an older version left 0644 is tightened
        os.chmod(db, 0o644)
        run(["ingest", "-"], env=clean_env(DDB2FS_OUTBOX=db, DDB2FS_KEYS=events.KEYS_SETTING),
            stdin=events.dumps(events.event(3, seed=106)), check=True)
        self.assertEqual(oct(mode(db)), "0o600")


class SignedHeaders(Base):
    """#11 point 4: a SigV4 request signs only what it sends, checked by a strict server."""

    def test_get_secret_value_and_describe_table_through_a_strict_server(self):
        sm = self.serve(SecretsServer())
        sm.control("table", {"name": "Orders", "keys": ["customer", "order"]})
        env = clean_env(DDB2FS_OUTBOX=self.db, AWS_ENDPOINT_URL_DYNAMODB=sm.url,
                        **sm.env())
        ev = events.event(5, seed=107)
        p = run(["ingest", "-"], env=env, stdin=events.dumps(ev))
        self.assertEqual(p.returncode, 0, p.stderr)
        reqs = sm.control("requests")
        self.assertEqual([(r["target"], r["refused"]) for r in reqs],
                         [("DynamoDB_20120810.DescribeTable", None)])
        self.assertEqual(query(self.db, "SELECT table_name, partition_key, sort_key FROM "
                                        "key_schema"), [("Orders", "customer", "order")])
        # GetSecretValue: seal a key, then a drain unseals it with the data key from the server
        fs = self.serve(FirestoreServer())
        key = ServiceAccount(self.tmp.file("sa.json"), fs.url + "/token")
        fs.register(key)
        sealed = self.tmp.file("sa.sealed")
        dk = self.tmp.file("data.key")
        p = run(["seal-key", key.path, "--out", sealed, "--data-key-out", dk])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dk) as f:
            sm.put("ddb2fs/key", string=f.read().strip())
        p = run(["drain"], env=dict(env, DDB2FS_KEY_SEALED=sealed, DDB2FS_KEY_SECRET="ddb2fs/key",
                                    DDB2FS_FIRESTORE_ENDPOINT=fs.url, DDB2FS_RAMP="off"))
        self.assertEqual(p.returncode, 0, p.stderr)
        reqs = sm.control("requests")
        self.assertEqual([(r["target"], r["refused"]) for r in reqs][1:],
                         [("secretsmanager.GetSecretValue", None)])
        for r in reqs:
            signed = re.search(r"SignedHeaders=([^,]+)", r["authorization"]).group(1)
            self.assertNotIn("expect", signed.split(";"))

    def test_server_refuses_a_signed_header_the_request_lacks(self):
        sm = self.serve(SecretsServer())
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "servers"))
        import secrets_server
        headers = [("Host", "x"), ("X-Amz-Date", "20250101T000000Z"),
                   ("Authorization", "AWS4-HMAC-SHA256 Credential=%s/20250101/eu-west-1/"
                    "secretsmanager/aws4_request, SignedHeaders=expect;host;x-amz-date, "
                    "Signature=00" % sm.AKID)]
        with self.assertRaises(secrets_server.Refusal) as c:
            secrets_server.verify("POST", "/", "", headers, b"", {sm.AKID: (sm.SECRET, None)},
                                  "eu-west-1", datetime.datetime(2025, 1, 1,
                                                                 tzinfo=datetime.timezone.utc))
        self.assertEqual(c.exception.type, "IncompleteSignatureException")
        self.assertEqual(c.exception.message, "'expect' is named as a SignedHeader, but it does "
                                              "not exist in the HTTP request")


class Dockerfile(unittest.TestCase):
    """#11: the image's inputs are pinned and it runs as a user that is not root."""

    def test_pinned_and_not_root(self):
        path = os.path.join(os.environ.get("SOURCE_DIR", ".."), "Dockerfile")
        with open(path) as f:
            text = f.read()
        froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
        self.assertEqual(len(froms), 2)
        for image in froms:
            # a digest, or a digest build argument the build cannot do without
            m = re.search(r"@(sha256:[0-9a-f]{64}|\$\{(\w+_DIGEST)\})$", image)
            self.assertTrue(m, image)
            if m.group(2):
                self.assertRegex(text, r"(?m)^ARG %s$" % m.group(2))
        adds = re.findall(r"^ADD\s+.*$", text, re.M)
        self.assertEqual(len(adds), 2)
        cjson = [a for a in adds if "cjson" in a]
        self.assertRegex(cjson[0], r"--checksum=sha256:[0-9a-f]{64}\s")
        # libsodium's: its checksum is a build argument, required and checked before use
        self.assertRegex(text, r'test -n "\$\{SODIUM_SHA256\}" && echo "\$\{SODIUM_SHA256\}  '
                               r'sodium.tar.gz" \| sha256sum -c -')
        self.assertLess(text.index("sha256sum -c"), text.index("tar xzf sodium.tar.gz"))
        self.assertRegex(text, r"(?m)^USER\s+(?!root\b)(?!0\b)\S+")
        self.assertIn("cmake --install", text)
        self.assertNotIn("ldd ", text)


if __name__ == "__main__":
    unittest.main()
