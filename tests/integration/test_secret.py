"""The sealed service-account key through the real binary: 'seal-key', the data key from the
local Secrets Manager (SigV4 verified), drains and the Lambda runtime authenticated through it,
every way the sealed file or the secret can be wrong, no key material in any output or file,
and a sealed file made by another libsodium binding (npm libsodium-wrappers)."""
import base64
import json
import os
import socket
import stat
import subprocess
import time
import unittest

import events
import mapping_ref as ref
from common import BIN, TempDir, clean_env, query, run
from fsserver import (PROJECT, FirestoreServer, RuntimeServer, SecretsServer, ServiceAccount,
                      final_states)

SECRET_ID = "prod/ddb2fs/data-key"
NODE_INTEROP = os.environ.get("NODE_INTEROP_DIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "node-interop"))


def slurp(path, text=False):
    with open(path, "r" if text else "rb") as f:
        return f.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class SealedKey(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.fs = FirestoreServer()
        self.sm = SecretsServer()
        self.key = ServiceAccount(self.tmp.file("sa.json"), self.fs.url + "/token")
        self.key_text = slurp(self.key.path)
        self.fs.register(self.key)
        self.db = self.tmp.file("outbox.db")
        self.sealed = self.tmp.file("sa.sealed")
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING,
                             DDB2FS_FIRESTORE_ENDPOINT=self.fs.url, DDB2FS_RAMP="off",
                             DDB2FS_KEY_SEALED=self.sealed, DDB2FS_KEY_SECRET=SECRET_ID,
                             **self.sm.env())

    def tearDown(self):
        self.fs.stop()
        self.sm.stop()
        self.tmp.cleanup()

    def seal(self, *extra):
        """Seals the key file into self.sealed; returns the data key printed (or '')."""
        p = run(["seal-key", self.key.path, "--out", self.sealed] + list(extra))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def ingest(self, n=100, seed=1, first=0):
        ev = events.event(n, seed=seed, first=first)
        p = run(["ingest", "-"], env=self.env, stdin=events.dumps(ev))
        self.assertEqual(p.returncode, 0, p.stderr)
        return ref.convert_lines(events.dumps(ev), dict(self.env, GOOGLE_CLOUD_PROJECT=PROJECT))

    def drain(self, env=None):
        return run(["drain"], env=env or self.env)

    def pending(self):
        return query(self.db, "SELECT count(*) FROM records WHERE state = 'pending'")[0][0]

    def secret_bytes(self, data_key):
        """Every byte sequence that must appear nowhere but in the key and data key files."""
        from cryptography.hazmat.primitives import serialization
        der = serialization.load_pem_private_key(self.key.private_pem.encode(), None).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        body = "".join(l for l in self.key.private_pem.splitlines() if not l.startswith("-----"))
        seqs = [body[i:i + 24].encode() for i in range(0, len(body) - 24, 24)]
        seqs += [der[i:i + 16] for i in range(0, len(der) - 16, 16)]
        raw = base64.b64decode(data_key)
        seqs += [raw, data_key.encode(), raw[:16], raw[16:]]
        seqs += [self.sm.SECRET.encode(), self.sm.TOKEN.encode()]
        for r in self.fs.requests():
            auth = r["headers"].get("authorization", "")
            if auth.startswith("Bearer "):
                seqs.append(auth[7:].encode())
        return seqs

    def assert_clean(self, blobs, data_key):
        seqs = self.secret_bytes(data_key)
        self.assertGreater(len(seqs), 100)
        for name, blob in blobs.items():
            for s in seqs:
                self.assertNotIn(s, blob, "key material in %s" % name)

    # -- seal-key and the round trip ---------------------------------------------------------

    def test_round_trip_drain_through_secrets_manager(self):
        data_key = self.seal()
        self.assertEqual(len(base64.b64decode(data_key, validate=True)), 32)
        self.assertEqual(mode(self.sealed), 0o600)
        self.assertNotIn(self.key_text[40:80], slurp(self.sealed))
        os.remove(self.key.path)  # the relay needs only the sealed file and the secret
        self.sm.put(SECRET_ID, data_key)
        lines = self.ingest(300, seed=3)
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))
        reqs = self.sm.control("requests")
        self.assertEqual([(r["target"], r["refused"]) for r in reqs],
                         [("secretsmanager.GetSecretValue", None)])
        auth = reqs[0]["authorization"]
        self.assertRegex(auth, r"^AWS4-HMAC-SHA256 Credential=%s/\d{8}/eu-west-1/secretsmanager/"
                               r"aws4_request, SignedHeaders=[a-z;-]*x-amz-security-token"
                               % self.sm.AKID)
        self.assertEqual(len([r for r in self.fs.requests() if r["path"] == "/token"]), 1)

    def test_secret_binary_holds_the_raw_data_key(self):
        data_key = self.seal()
        self.sm.put(SECRET_ID, binary=data_key)  # SecretBinary: base64 of the 32 bytes
        lines = self.ingest(50, seed=4)
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))

    def test_seal_key_files_and_refusals(self):
        out = self.tmp.file("data.key")
        old = os.umask(0)
        try:
            self.assertEqual(self.seal("--data-key-out", out), "")
        finally:
            os.umask(old)
        self.assertEqual((mode(self.sealed), mode(out)), (0o600, 0o600))
        first = slurp(out, text=True)
        self.assertRegex(first, r"^[A-Za-z0-9+/]{43}=\n$")
        sealed = slurp(self.sealed)
        # no overwrite without --force, either file
        p = run(["seal-key", self.key.path, "--out", self.sealed, "--data-key-out", out])
        self.assertEqual(p.returncode, 2)
        self.assertIn("exists; not replaced (use --force", p.stderr)
        p = run(["seal-key", self.key.path, "--out", self.tmp.file("new.sealed"),
                 "--data-key-out", out])
        self.assertEqual(p.returncode, 2)
        self.assertFalse(os.path.exists(self.tmp.file("new.sealed")))
        self.assertEqual((slurp(out, text=True), slurp(self.sealed)), (first, sealed))
        # --force replaces both, still 0600
        self.seal("--data-key-out", out, "--force")
        self.assertNotEqual(slurp(out, text=True), first)
        self.assertNotEqual(slurp(self.sealed), sealed)
        self.assertEqual((mode(self.sealed), mode(out)), (0o600, 0o600))
        # the default name, next to the key file
        p = run(["seal-key", self.key.path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(mode(self.key.path + ".sealed"), 0o600)
        # not a key file: a clear error, nothing written
        doc = json.loads(self.key_text)
        for field in ("client_email", "private_key", "token_uri", "project_id"):
            bad = self.tmp.write_json("bad.json", {k: v for k, v in doc.items() if k != field})
            p = run(["seal-key", bad, "--out", self.tmp.file("bad.sealed")])
            self.assertEqual(p.returncode, 1)
            self.assertIn("is not a service-account key file", p.stderr)
            self.assertIn(field, p.stderr)
            self.assertFalse(os.path.exists(self.tmp.file("bad.sealed")))
        bad = self.tmp.write_json("bad.json", dict(doc, type="authorized_user"))
        p = run(["seal-key", bad, "--out", self.tmp.file("bad.sealed")])
        self.assertIn("'type' is not 'service_account'", p.stderr)
        p = run(["seal-key", self.tmp.file("missing.json")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open", p.stderr)
        self.assertEqual(run(["seal-key"]).returncode, 2)
        p = run(["seal-key", self.key.path, "--out", self.tmp.file("same"), "--data-key-out",
                 self.tmp.file("same")])
        self.assertEqual(p.returncode, 2)
        self.assertIn("the sealed file and the data key file are one", p.stderr)
        self.assertEqual(run(["seal-key", self.key.path, "--bogus"]).returncode, 2)
        self.assertEqual(sorted(os.listdir(self.tmp.path)),
                         sorted(["sa.json", "sa.json.sealed", "sa.sealed", "data.key", "bad.json"]))

    # -- everything that can be wrong: init errors, nothing written ---------------------------

    def assert_refused(self, env, *phrases, code=2):
        p = self.drain(env)
        self.assertEqual(p.returncode, code, p.stderr)
        for phrase in phrases:
            self.assertIn(phrase, p.stderr)
        self.assertEqual(self.fs.stats()["commits"], 0)
        self.assertEqual(self.pending(), 20)
        return p

    def test_altered_truncated_or_wrongly_keyed_files_are_refused(self):
        data_key = self.seal()
        self.sm.put(SECRET_ID, data_key)
        self.ingest(20, seed=5)
        good = slurp(self.sealed)
        n = len(good)
        cases = [(i, "is not a sealed key file") for i in (0, 3, 5)]
        cases += [(6, "reads version 1"), (7, "XChaCha20-Poly1305")]
        cases += [(i, "does not open with the data key")
                  for i in (8, 19, 31, 32, 33, n // 2, n - 17, n - 16, n - 1)]
        outputs = []
        for pos, phrase in cases:
            bad = bytearray(good)
            bad[pos] ^= 0x01
            with open(self.sealed, "wb") as f:
                f.write(bad)
            outputs.append(self.assert_refused(self.env, "DDB2FS_KEY_SEALED", phrase).stderr)
        for size in (0, 7, 31, 47):
            with open(self.sealed, "wb") as f:
                f.write(good[:size])
            outputs.append(self.assert_refused(self.env, "DDB2FS_KEY_SEALED").stderr)
        with open(self.sealed, "wb") as f:
            f.write(good[:n - 1])
        outputs.append(self.assert_refused(self.env, "does not open with the data key").stderr)
        # the right file, another data key
        with open(self.sealed, "wb") as f:
            f.write(good)
        self.sm.put(SECRET_ID, base64.b64encode(os.urandom(32)).decode())
        outputs.append(self.assert_refused(self.env, "does not open with the data key").stderr)
        self.assert_clean({"stderr": "".join(outputs).encode()}, data_key)
        # and nothing was asked of the token endpoint
        self.assertEqual([r for r in self.fs.requests() if r["path"] == "/token"], [])

    def test_secret_missing_empty_or_not_a_key(self):
        self.seal()
        self.ingest(20, seed=6)
        self.assert_refused(self.env, "DDB2FS_KEY_SECRET: GetSecretValue 'prod/ddb2fs/data-key' "
                            "refused: HTTP 400 ResourceNotFoundException: Secrets Manager can't "
                            "find the specified secret.")
        self.sm.put(SECRET_ID, "not base64 at all!")
        self.assert_refused(self.env, "holds neither a data key")
        self.sm.put(SECRET_ID, base64.b64encode(os.urandom(16)).decode())
        self.assert_refused(self.env, "holds neither a data key")
        env = dict(self.env)
        del env["DDB2FS_KEY_SEALED"]
        self.sm.put(SECRET_ID, base64.b64encode(os.urandom(32)).decode())
        self.assert_refused(env, "DDB2FS_KEY_SEALED: not set; secret 'prod/ddb2fs/data-key' "
                                 "holds a data key")
        env = dict(self.env)
        del env["DDB2FS_KEY_SECRET"]
        self.assert_refused(env, "DDB2FS_KEY_SECRET: not set")
        self.assert_refused(dict(self.env, GOOGLE_APPLICATION_CREDENTIALS=self.key.path),
                            "not both")
        env = dict(self.env)
        del env["AWS_ACCESS_KEY_ID"]
        self.assert_refused(env, "AWS_ACCESS_KEY_ID")

    def test_signatures_secrets_manager_refuses(self):
        data_key = self.seal()
        self.sm.put(SECRET_ID, data_key)
        self.ingest(20, seed=7)
        p = self.assert_refused(dict(self.env, AWS_SECRET_ACCESS_KEY="wrong/secret+key"),
                                "GetSecretValue 'prod/ddb2fs/data-key' refused: HTTP 400 "
                                "InvalidSignatureException: The request signature we calculated "
                                "does not match")
        self.assertNotIn("wrong/secret+key", p.stderr)
        env = dict(self.env)
        del env["AWS_SESSION_TOKEN"]
        self.assert_refused(env, "UnrecognizedClientException: The security token included in "
                                 "the request is invalid.")
        self.assert_refused(dict(self.env, AWS_ACCESS_KEY_ID="AKIDUNKNOWN"),
                            "UnrecognizedClientException")
        self.assert_refused(dict(self.env, AWS_REGION="us-west-2"),
                            "Credential should be scoped to a valid region")
        self.sm.control("config", {"clock_offset": 600})
        self.assert_refused(self.env, "InvalidSignatureException: Signature expired")
        self.sm.control("config", {"clock_offset": -600})
        self.assert_refused(self.env, "Signature not yet current")
        refused = [r["refused"] for r in self.sm.control("requests")]
        self.assertEqual(refused, ["InvalidSignatureException", "UnrecognizedClientException",
                                   "UnrecognizedClientException", "InvalidSignatureException",
                                   "InvalidSignatureException", "InvalidSignatureException"])
        # the right signature, once the clocks agree again
        self.sm.control("config", {"clock_offset": 0})
        self.assertEqual(self.drain().returncode, 0)

    def test_older_setup_secret_holds_the_key_file(self):
        self.sm.put(SECRET_ID, base64.b64encode(self.key_text).decode())
        env = dict(self.env)
        del env["DDB2FS_KEY_SEALED"]
        lines = self.ingest(100, seed=8)
        p = self.drain(env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))
        warn = [json.loads(l) for l in p.stderr.splitlines() if "seal-key" in l]
        self.assertEqual(len(warn), 1, p.stderr)
        self.assertEqual((warn[0]["level"], warn[0]["secret"]), ("warn", SECRET_ID))
        self.assertNotIn(self.key.secrets()[0], p.stderr)
        # the key file's JSON itself, not base64, works the same
        self.sm.put(SECRET_ID, self.key_text.decode())
        self.fs.control("wipe")
        p = run(["replay", "--rebuild"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))

    # -- the Lambda runtime --------------------------------------------------------------------

    def lambda_run(self, env, cwd):
        rt = RuntimeServer()
        log = open(os.path.join(cwd, "lambda.log"), "w+b")
        proc = subprocess.Popen([BIN, "lambda"], env=dict(env, AWS_LAMBDA_RUNTIME_API=rt.api),
                                stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        return rt, proc, log

    def assert_init_error(self, env, error_type, message):
        """'ddb2fs lambda' stops at init with one error of error_type, writing nothing."""
        rt, proc, log = self.lambda_run(env, self.tmp.path)
        try:
            self.assertEqual(proc.wait(timeout=120), 1)
            errors = rt.results()["init_errors"]
            self.assertEqual(len(errors), 1)
            self.assertEqual(errors[0]["error_type"], error_type)
            self.assertIn(message, errors[0]["body"]["errorMessage"])
            self.assertEqual(self.fs.documents(), {})
        finally:
            rt.stop()
            log.close()

    def test_lambda_init_error_for_an_altered_file(self):
        self.sm.put(SECRET_ID, self.seal())
        bad = bytearray(slurp(self.sealed))
        bad[100] ^= 0x80
        with open(self.sealed, "wb") as f:
            f.write(bad)
        self.assert_init_error(self.env, "ddb2fs.ConfigError", "does not open with the data key")

    def test_lambda_init_error_when_secrets_manager_does_not_answer(self):
        """No answer is not a file's failure: the init error names it as such."""
        self.sm.put(SECRET_ID, self.seal())
        with socket.socket() as s:  # a loopback port nobody listens on
            s.bind(("127.0.0.1", 0))
            silent = "http://127.0.0.1:%d" % s.getsockname()[1]
        self.assert_init_error(dict(self.env, AWS_ENDPOINT_URL_SECRETS_MANAGER=silent),
                               "ddb2fs.Unreachable", "no answer")

    def test_no_key_material_in_any_output_or_file(self):
        keys = os.path.join(self.tmp.path, "keys")
        work = os.path.join(self.tmp.path, "work")
        os.mkdir(keys)
        os.mkdir(work)
        sealed, data_file = os.path.join(keys, "sa.sealed"), os.path.join(keys, "data.key")
        p = run(["seal-key", self.key.path, "--out", sealed, "--data-key-out", data_file])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((p.stdout, mode(sealed), mode(data_file)), ("", 0o600, 0o600))
        data_key = slurp(data_file, text=True).strip()
        self.sm.put(SECRET_ID, data_key)
        env = dict(self.env, DDB2FS_OUTBOX=os.path.join(work, "outbox.db"),
                   DDB2FS_KEY_SEALED=sealed, TMPDIR=work, HOME=work)
        rt, proc, log = self.lambda_run(env, work)
        try:
            evs = [events.event(200, first=i * 200, seed=40 + i) for i in range(3)]
            for ev in evs:
                got = rt.wait(rt.invoke(ev))
                self.assertEqual(got["body"], {"batchItemFailures": []})
            got = rt.wait(rt.invoke({"source": "aws.events", "detail-type": "Scheduled Event"}))
            self.assertEqual(got["kind"], "response")
        finally:
            proc.kill()
            proc.wait()
            rt.stop()
            log.close()
        lines = []
        for ev in evs:
            lines += ref.convert_lines(events.dumps(ev),
                                       dict(self.env, GOOGLE_CLOUD_PROJECT=PROJECT))
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))
        blobs = {"seal-key stderr": p.stderr.encode()}
        for root, _, files in os.walk(work):
            for f in files:
                blobs[os.path.join(root, f)] = slurp(os.path.join(root, f))
        blobs[sealed] = slurp(sealed)
        self.assertIn(os.path.join(work, "lambda.log"), blobs)
        self.assertTrue(any(k.endswith("outbox.db") for k in blobs))
        self.assert_clean(blobs, data_key)

    # -- another libsodium binding ---------------------------------------------------------------

    def node(self, *args):
        script = os.path.join(NODE_INTEROP, "sealed_key.js")
        self.assertTrue(os.path.exists(script), "tools/test installs %s" % NODE_INTEROP)
        return subprocess.run(["node", script] + list(args), capture_output=True,
                              cwd=NODE_INTEROP, timeout=60)

    def test_libsodium_wrappers_sealed_file_opens_in_ddb2fs(self):
        p = self.node("seal", self.key.path, self.sealed)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.sm.put(SECRET_ID, p.stdout.decode().strip())
        lines = self.ingest(100, seed=9)
        d = self.drain()
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))

    def test_ddb2fs_sealed_file_opens_in_libsodium_wrappers(self):
        data_key = self.seal()
        p = self.node("open", self.sealed, data_key)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.key_text)
        p = self.node("open", self.sealed, base64.b64encode(os.urandom(32)).decode())
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
