"""The commands under valgrind: no invalid access, no leak."""
import json
import os
import shutil
import subprocess
import unittest

import events
from common import BIN, FIXTURES, TempDir, clean_env

VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible"]


class Valgrind(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # required, never skipped: tools/test installs it
        if shutil.which("valgrind") is None:
            raise AssertionError("valgrind is not installed (apt-get install valgrind; "
                                 "tools/test installs it)")

    def grind(self, args, env, stdin=None):
        p = subprocess.run(VALGRIND + [BIN] + args, input=stdin, env=env, capture_output=True,
                           text=True, timeout=600)
        self.assertNotEqual(p.returncode, 99, p.stderr)
        self.assertNotIn("==", "\n".join(l for l in p.stderr.splitlines()
                                         if not l.startswith("{")))
        return p

    def grind_lambda(self, env, runtime, invocations):
        """'ddb2fs lambda' under valgrind through these invocations, until the Runtime API goes
        away: the runtime ends, and valgrind reports."""
        proc = subprocess.Popen(VALGRIND + [BIN, "lambda"], text=True,
                                env=dict(env, AWS_LAMBDA_RUNTIME_API=runtime.api),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for event in invocations:
            runtime.wait(runtime.invoke(event, timeout_ms=60000), timeout=120)
        runtime.stop()
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 1, err)
        self.assertNotIn("==", err)

    def test_commands(self):
        tmp = TempDir()
        env = clean_env(DDB2FS_OUTBOX=tmp.file("o.db"), DDB2FS_KEYS=events.KEYS_SETTING)
        ev = events.event(400, seed=3)
        ev["Records"][7]["eventName"] = "BAD"
        ev["Records"][9]["dynamodb"]["NewImage"]["x"] = {"S": "a", "N": "1"}
        text = events.dumps(ev)
        self.assertEqual(self.grind(["ingest", "-"], env, text).returncode, 0)
        self.assertEqual(self.grind(["ingest", "-"], env, text).returncode, 0)
        self.assertEqual(self.grind(["ingest", "-"], env, text[:-100]).returncode, 1)
        self.assertEqual(self.grind(["status"], env).returncode, 0)
        self.assertEqual(self.grind(["status", "--json"], env).returncode, 0)
        for name in sorted(os.listdir(os.path.join(FIXTURES, "golden"))):
            if name.endswith(".json"):
                p = self.grind(["convert", os.path.join(FIXTURES, "golden", name)], env)
                self.assertEqual(p.returncode, 0)
        self.assertEqual(self.grind(["ingest", "-"], dict(env, DDB2FS_NUMBERS="x"), text)
                         .returncode, 2)
        tmp.cleanup()

    def test_lambda(self):
        from fsserver import FirestoreServer, RuntimeServer
        tmp = TempDir()
        server, runtime = FirestoreServer(), RuntimeServer()
        try:
            env = clean_env(DDB2FS_OUTBOX=tmp.file("o.db"), DDB2FS_KEYS=events.KEYS_SETTING,
                            **server.env())
            self.grind_lambda(env, runtime, (events.event(300, seed=8), "not json",
                                             {"source": "aws.events"}))
        finally:
            runtime.proc.poll() is None and runtime.stop()
            server.stop()
            tmp.cleanup()

    def test_drain(self):
        from fsserver import FirestoreServer, ServiceAccount
        tmp = TempDir()
        server = FirestoreServer()
        try:
            env = clean_env(DDB2FS_OUTBOX=tmp.file("o.db"), DDB2FS_KEYS=events.KEYS_SETTING,
                            **server.env())
            ev = events.event(600, seed=4)
            self.assertEqual(self.grind(["ingest", "-"], env, events.dumps(ev)).returncode, 0)
            server.faults(UNAVAILABLE=0.3, drop_after_apply=0.2, seed=5)
            self.assertEqual(self.grind(["drain"], dict(env, DDB2FS_COMMIT_WRITES="40"))
                             .returncode, 0)
            # replay: rebuild, a dry run, dead retries; then pruning
            server.faults()
            server.control("wipe")
            self.assertEqual(self.grind(["replay", "--rebuild"], env).returncode, 0)
            self.assertEqual(self.grind(["replay", "--resend", "--dry-run", "--until",
                                         "2025-01-01T00:00:03Z"], env).returncode, 0)
            self.assertEqual(self.grind(["replay", "--dead"], env).returncode, 0)
            self.assertEqual(self.grind(["replay", "--dead", "--project", "x"], env).returncode, 2)
            subprocess.run(["sqlite3", tmp.file("o.db"), "UPDATE record_state SET committed_at "
                            "= committed_at - 30 * 86400000"], check=True)
            self.assertEqual(self.grind(["drain"], env).returncode, 0)
            self.assertEqual(self.grind(["status"], env).returncode, 0)
            # through a service-account key and the token endpoint, then a refusal
            key = ServiceAccount(tmp.file("sa.json"), server.url + "/token")
            server.register(key)
            server.faults()
            auth = clean_env(DDB2FS_OUTBOX=tmp.file("o.db"), DDB2FS_RAMP="off",
                             DDB2FS_FIRESTORE_ENDPOINT=server.url,
                             GOOGLE_APPLICATION_CREDENTIALS=key.path)
            self.assertEqual(self.grind(["ingest", "-"], auth, events.dumps(
                events.event(50, first=10000, seed=6))).returncode, 0)
            self.assertEqual(self.grind(["drain"], auth).returncode, 0)
            server.faults(forbid=True)
            self.assertEqual(self.grind(["ingest", "-"], auth, events.dumps(
                events.event(5, first=20000, seed=7))).returncode, 0)
            self.assertEqual(self.grind(["drain"], auth).returncode, 1)
        finally:
            server.stop()
            tmp.cleanup()

    def test_partitioned_outbox(self):
        from fsserver import FirestoreServer, RuntimeServer
        tmp = TempDir()
        server, runtime = FirestoreServer(), RuntimeServer()
        try:
            env = clean_env(DDB2FS_OUTBOX=tmp.file("o.db"), DDB2FS_KEYS=events.KEYS_SETTING,
                            DDB2FS_PARTITIONS="4", **server.env())
            text = events.dumps(events.event(400, seed=12))
            self.assertEqual(self.grind(["ingest", "-"], env, text).returncode, 0)
            self.assertEqual(self.grind(["ingest", "-"], env, text).returncode, 0)
            self.assertEqual(self.grind(["status", "--json"], env).returncode, 0)
            self.assertEqual(self.grind(["repartition", "2"], env).returncode, 1)  # pending
            self.assertEqual(self.grind(["drain"], env).returncode, 0)
            self.assertEqual(self.grind(["status"], env).returncode, 0)
            self.assertEqual(self.grind(["repartition", "2"], env).returncode, 0)
            env["DDB2FS_PARTITIONS"] = "2"
            self.assertEqual(self.grind(["replay", "--rebuild"], env).returncode, 0)
            self.assertEqual(self.grind(["ingest", "-"], dict(env, DDB2FS_PARTITIONS="3"), text)
                             .returncode, 2)
            self.grind_lambda(env, runtime, (
                events.event(100, first=5000, seed=13), {"ddb2fs": "repartition", "partitions": 3},
                events.event(100, first=6000, seed=14), {"ddb2fs": "status"},
                {"source": "aws.events"}))
        finally:
            runtime.proc.poll() is None and runtime.stop()
            server.stop()
            tmp.cleanup()

    def test_sealed_key(self):
        import base64
        from fsserver import FirestoreServer, SecretsServer, ServiceAccount
        tmp = TempDir()
        server, sm = FirestoreServer(), SecretsServer()
        try:
            key = ServiceAccount(tmp.file("sa.json"), server.url + "/token")
            server.register(key)
            sealed = tmp.file("sa.sealed")
            p = self.grind(["seal-key", key.path, "--out", sealed], clean_env())
            self.assertEqual(p.returncode, 0)
            self.assertEqual(self.grind(["seal-key", key.path, "--out", sealed], clean_env())
                             .returncode, 2)
            sm.put("k", p.stdout.strip())
            env = clean_env(DDB2FS_OUTBOX=tmp.file("o.db"), DDB2FS_KEYS=events.KEYS_SETTING,
                            DDB2FS_RAMP="off", DDB2FS_FIRESTORE_ENDPOINT=server.url,
                            DDB2FS_KEY_SEALED=sealed, DDB2FS_KEY_SECRET="k", **sm.env())
            self.assertEqual(self.grind(["ingest", "-"], env, events.dumps(
                events.event(50, seed=9))).returncode, 0)
            self.assertEqual(self.grind(["drain"], env).returncode, 0)
            # the older setup, a refused signature, an altered file
            with open(key.path, "rb") as f:
                sm.put("old", base64.b64encode(f.read()).decode())
            old = dict(env, DDB2FS_KEY_SECRET="old")
            del old["DDB2FS_KEY_SEALED"]
            self.assertEqual(self.grind(["drain"], old).returncode, 0)
            self.assertEqual(self.grind(["drain"], dict(env, AWS_SECRET_ACCESS_KEY="x"))
                             .returncode, 2)
            with open(sealed, "r+b") as f:
                f.seek(60)
                f.write(b"\0\0")
            self.assertEqual(self.grind(["drain"], env).returncode, 2)
        finally:
            server.stop()
            sm.stop()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
