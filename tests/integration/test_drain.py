"""The drain through the real binary to the local Firestore server: final states, exactly once
in effect under faults and crashes, poison isolation, authentication, coalescing."""
import json
import math
import os
import random
import signal
import subprocess
import time
import unittest

import events
import mapping_ref as ref
from common import BIN, FIXTURES, TempDir, clean_env, query, run
from fsserver import (PROJECT, FirestoreServer, ServiceAccount, final_states, histories,
                      regressions)

GOLDEN = os.path.join(FIXTURES, "golden")


class DrainBase(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.server = FirestoreServer()
        self.db = self.tmp.file("ddb2fs.db")
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING,
                             **self.server.env())

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def ingest_text(self, text, env=None):
        p = run(["ingest", "-"], env=env or self.env, stdin=text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})

    def ingest_events(self, evs):
        """Ingests events (one per call, as Lambda would) and returns the lines convert must
        print for all of them, as mapping_ref.py derives them."""
        lines = []
        for ev in evs:
            text = events.dumps(ev)
            self.ingest_text(text)
            # convert names documents with the project the drain uses (a key's project_id)
            lines += ref.convert_lines(text, dict(self.env, GOOGLE_CLOUD_PROJECT=PROJECT))
        return lines

    def drain(self, env=None, timeout=600):
        return run(["drain"], env=env or self.env, timeout=timeout)

    def states(self):
        return query(self.db, "SELECT state, count(*) FROM records GROUP BY state")

    def assert_exact(self, lines):
        prefix = self.server.prefix()
        self.assertEqual(self.server.documents(), final_states(lines, prefix))
        self.assertEqual(regressions(self.server.writelog(), histories(lines)), [])


class Golden(DrainBase):
    def test_fixtures_drain_to_their_final_states(self):
        settings = {"DDB2FS_KEYS": "Catalog=sku,rev"}
        env = dict(self.env, **settings)
        lines = []
        for name in ["aws-lambda-example", "types", "aws-ttl-expiry", "keys"]:
            path = os.path.join(GOLDEN, name + ".json")
            extra = dict(env)
            if name == "keys":
                extra["DDB2FS_COLLECTIONS"] = "Users=tenants/acme/users;Counters=counters"
            self.assertEqual(run(["ingest", path], env=extra).returncode, 0)
            with open(path, encoding="utf-8") as f:
                lines += ref.convert_lines(f.read(), extra)
        p = self.drain(env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.states(), [("committed", 24)])
        docs = self.server.documents()
        self.maxDiff = None
        self.assertEqual(docs, final_states(lines, self.server.prefix()))
        # deletes included: the example item and the TTL'd sessions are gone
        self.assertNotIn(self.server.prefix() + "ExampleTableWithStream/101", docs)
        self.assertNotIn(self.server.prefix() + "Sessions/s-7f3a", docs)
        self.assertIn(self.server.prefix() + "Catalog/numbers#1", docs)
        summary = json.loads(p.stderr.splitlines()[-1])
        self.assertEqual((summary["msg"], summary["pending"], summary["committed"]),
                         ("drained", 0, 24))

    def test_nothing_to_drain(self):
        self.ingest_text(events.dumps({"Records": []}))
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.server.stats()["commits"], 0)


class Coalescing(DrainBase):
    def test_ten_changes_one_write(self):
        rng = random.Random(1)
        recs = [events.record(rng, i, "hot", 1, "INSERT" if i == 0 else "MODIFY")
                for i in range(10)]
        lines = self.ingest_events([{"Records": recs}])
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.server.stats()["writes"], 1)
        self.assertEqual(self.states(), [("committed", 10)])
        self.assert_exact(lines)

    def test_commit_bounds(self):
        lines = self.ingest_events([events.event(3000, seed=2, customers=400)])
        env = dict(self.env, DDB2FS_COMMIT_WRITES="100", DDB2FS_COMMIT_BYTES="65536")
        p = self.drain(env)
        self.assertEqual(p.returncode, 0, p.stderr)
        commits = [json.loads(r["body"]) for r in self.server.requests()
                   if r["path"].endswith(":commit")]
        self.assertTrue(all(len(c["writes"]) <= 100 for c in commits))
        self.assertTrue(all(len(json.dumps(c, separators=(",", ":"))) <= 65536
                            for c in commits))
        writes = sum(len(c["writes"]) for c in commits)
        self.assertEqual(writes, len(self.server.writelog()))
        self.assertGreaterEqual(len(commits), math.ceil(writes / 100))
        self.assert_exact(lines)


class Faults(DrainBase):
    def test_applied_then_dropped_is_exactly_once(self):
        lines = self.ingest_events([events.event(2000, seed=3, customers=30)])
        self.server.faults(drop_after_apply=0.5, seed=3)
        p = self.drain(dict(self.env, DDB2FS_COMMIT_WRITES="20"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.states(), [("committed", 2000)])
        self.assert_exact(lines)
        summary = json.loads(p.stderr.splitlines()[-1])
        # a commit applied, then its answer lost: sent again, or (libcurl sending it again on
        # a fresh connection by itself) refused on its precondition and its documents read
        self.assertGreater(summary["retries"] + summary["refreshes"], 0)

    def test_fault_campaign(self):
        evs = [events.event(500, first=i * 500, seed=100 + i, customers=200) for i in range(40)]
        for ev in evs:  # 20,000 records over 2,000 documents
            for r in ev["Records"]:
                r["dynamodb"]["Keys"]["order"]["N"] = str(int(r["dynamodb"]["Keys"]["order"]["N"]))
        lines = self.ingest_events(evs)
        self.assertEqual(query(self.db, "SELECT count(*), count(DISTINCT document) FROM records"),
                         [(20000, 2000)])
        self.server.faults(UNAVAILABLE=0.10, RESOURCE_EXHAUSTED=0.05, ABORTED=0.02,
                           drop_after_apply=0.01, latency_ms=[0, 30], seed=7)
        p = self.drain(dict(self.env, DDB2FS_COMMIT_WRITES="50"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.states(), [("committed", 20000)])
        self.assert_exact(lines)
        summary = json.loads(p.stderr.splitlines()[-1])
        self.assertGreater(summary["retries"], 5)
        print("fault campaign: %s" % summary)

    def test_forbidden_stops_with_rows_pending(self):
        self.ingest_events([events.event(50, seed=4)])
        self.server.faults(forbid=True)
        p = self.drain()
        self.assertEqual(p.returncode, 1)
        self.assertIn("PERMISSION_DENIED", p.stderr)
        self.assertEqual(self.states(), [("pending", 50)])
        self.assertEqual(self.server.documents(), {})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE last_error LIKE "
                               "'%PERMISSION_DENIED%'")[0][0], 50)

    def test_time_budget_leaves_rows_pending(self):
        self.ingest_events([events.event(200, seed=5)])
        self.server.faults(UNAVAILABLE=1.0)
        p = self.drain(dict(self.env, DDB2FS_DRAIN_SECONDS="3"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("time budget", p.stderr)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'pending'")
                         [0][0], 200)


class Poison(DrainBase):
    def test_one_refused_document_is_dead_rest_lands(self):
        ev = events.event(500, seed=6, customers=500)
        for i, r in enumerate(ev["Records"]):
            r["eventName"] = "INSERT"
            r["dynamodb"]["Keys"]["customer"]["S"] = "c%03d" % i
            r["dynamodb"]["NewImage"] = {"customer": {"S": "c%03d" % i}, "order": {"N": "1"}}
            r["dynamodb"]["Keys"]["order"]["N"] = "1"
        lines = self.ingest_events([ev])
        victim = self.server.prefix() + "Orders/c321#1"
        self.server.faults(refuse={victim: "Value for field 'x' is poison."})
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        dead = query(self.db, "SELECT document, last_error FROM records WHERE state = 'dead'")
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0][0], "Orders/c321#1")
        self.assertIn("Value for field 'x' is poison.", dead[0][1])
        self.assertIn("INVALID_ARGUMENT", dead[0][1])
        docs = self.server.documents()
        self.assertEqual(len(docs), 499)
        expected = final_states(lines, self.server.prefix())
        del expected[victim]
        self.assertEqual(docs, expected)
        # found within about 2·log2(batch) extra commits
        requests = len([r for r in self.server.requests() if r["path"].endswith(":commit")])
        self.assertLessEqual(requests - 1, 2 * math.ceil(math.log2(500)))


class Crashes(DrainBase):
    def test_sigkill_during_drain(self):
        lines = self.ingest_events([events.event(500, first=i * 500, seed=200 + i, customers=100)
                                    for i in range(6)])
        self.server.faults(latency_ms=[5, 40], seed=9)
        env = dict(self.env, DDB2FS_COMMIT_WRITES="25")
        rng = random.Random(11)
        start = time.monotonic()
        p = subprocess.run([BIN, "drain"], env=env, capture_output=True, text=True)
        full = time.monotonic() - start
        self.assertEqual(p.returncode, 0, p.stderr)
        kills = int(os.environ.get("DDB2FS_DRAIN_KILLS", "50"))
        for i in range(kills):
            # make everything pending again, then kill a drain at a random moment
            self.server.control("wipe")
            con_sql = "UPDATE record_state SET state = 'pending', committed_at = NULL"
            subprocess.run(["sqlite3", self.db, con_sql], check=True)
            proc = subprocess.Popen([BIN, "drain"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, full))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.assertEqual(query(self.db, "PRAGMA integrity_check"), [("ok",)])
            # the killed drain's lease names a process that is gone: the next drain takes it
            p = subprocess.run([BIN, "drain"], env=env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(self.states(), [("committed", 3000)])
            self.assertEqual(self.server.documents(),
                             final_states(lines, self.server.prefix()))
        self.assertEqual(regressions(self.server.writelog(), histories(lines)), [])


class Arrivals(DrainBase):
    def test_records_ingested_during_the_drain_are_drained(self):
        lines = self.ingest_events([events.event(600, seed=21, customers=60)])
        self.server.faults(latency_ms=150)
        env = dict(self.env, DDB2FS_COMMIT_WRITES="20", DDB2FS_CONCURRENCY="1")
        proc = subprocess.Popen([BIN, "drain"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        lines += self.ingest_events([events.event(50, first=100000, seed=22, customers=60)])
        _, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(self.states(), [("committed", 650)])
        self.assert_exact(lines)

    def test_records_waiting_for_their_key_schema(self):
        env = dict(self.env)
        del env["DDB2FS_KEYS"]
        text = events.dumps(events.event(5, seed=23))
        self.ingest_text(text, env=env)
        lines = ref.convert_lines(text, dict(self.env, GOOGLE_CLOUD_PROJECT=PROJECT))
        p = self.drain(env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("5 records wait for their table's key schema", p.stderr)
        self.assertEqual(self.server.documents(), {})
        # once the schema is known, the drain gives them their documents and sends them
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE document IS NULL")
                         [0][0], 0)
        self.assertEqual(self.states(), [("committed", 5)])
        self.assert_exact(lines)  # each document as the independent mapping has it


class Lease(DrainBase):
    def test_second_drain_refused_while_lease_held(self):
        self.ingest_events([events.event(10, seed=12)])
        far = int(time.time() * 1000) + 600000
        subprocess.run(["sqlite3", self.db, "INSERT INTO lease VALUES ('drain', 'other:1', 0, %d)"
                        % far], check=True)
        p = self.drain()
        self.assertEqual(p.returncode, 1)
        self.assertIn("another drain holds the lease (other:1", p.stderr)
        self.assertEqual(self.server.stats()["commits"], 0)
        s = json.loads(run(["status", "--json"], env=self.env).stdout)
        self.assertEqual(s["lease"][0]["owner"], "other:1")


class Auth(DrainBase):
    def setUp(self):
        super().setUp()
        self.key = ServiceAccount(self.tmp.file("sa.json"), self.server.url + "/token")
        self.server.register(self.key)
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING,
                             DDB2FS_FIRESTORE_ENDPOINT=self.server.url, DDB2FS_RAMP="off",
                             GOOGLE_APPLICATION_CREDENTIALS=self.key.path)

    def no_secrets_in(self, *texts):
        tokens = [r["headers"].get("authorization", "")[7:] for r in self.server.requests()
                  if "authorization" in r["headers"]]
        for text in texts:
            for s in self.key.secrets() + [t for t in tokens if t]:
                self.assertNotIn(s, text)

    def test_oauth_token_then_commits(self):
        lines = self.ingest_events([events.event(300, seed=13)])
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_exact(lines)
        reqs = self.server.requests()
        token_calls = [r for r in reqs if r["path"] == "/token"]
        self.assertEqual(len(token_calls), 1)
        commits = [r for r in reqs if r["path"].endswith(":commit")]
        self.assertTrue(all(r["headers"]["authorization"].startswith("Bearer ya29.test-")
                            for r in commits))
        self.no_secrets_in(p.stdout, p.stderr, open(self.db, "rb").read().decode("latin-1"))

    def test_token_expiring_mid_drain_is_renewed(self):
        lines = self.ingest_events([events.event(2000, seed=14, customers=200)])
        self.server.control("token_lifetime", {"seconds": 2})
        self.server.faults(latency_ms=150)
        p = self.drain(dict(self.env, DDB2FS_COMMIT_WRITES="50", DDB2FS_CONCURRENCY="2"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_exact(lines)
        token_calls = [r for r in self.server.requests() if r["path"] == "/token"]
        self.assertGreaterEqual(len(token_calls), 2)

    def test_unauthenticated_renews_the_token_once(self):
        lines = self.ingest_events([events.event(300, seed=19)])
        self.server.faults(unauthenticated=1)
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_exact(lines)
        self.assertEqual(len([r for r in self.server.requests() if r["path"] == "/token"]), 2)
        # refused again after the renewal: a clear error, rows pending
        self.ingest_events([events.event(10, first=5000, seed=20)])
        self.server.faults(unauthenticated=100)
        p = self.drain()
        self.assertEqual(p.returncode, 1)
        self.assertIn("UNAUTHENTICATED", p.stderr)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'pending'")
                         [0][0], 10)
        self.no_secrets_in(p.stdout, p.stderr)

    def test_self_signed_jwt(self):
        lines = self.ingest_events([events.event(100, seed=15)])
        p = self.drain(dict(self.env, DDB2FS_TOKEN="self-signed"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_exact(lines)
        reqs = self.server.requests()
        self.assertEqual([r for r in reqs if r["path"] == "/token"], [])
        self.assertTrue(all(r["headers"]["authorization"].count(".") == 2
                            for r in reqs if r["path"].endswith(":commit")))

    def test_wrong_key_is_a_clear_error(self):
        self.ingest_events([events.event(20, seed=16)])
        other = ServiceAccount(self.tmp.file("other.json"), self.server.url + "/token",
                               name="relay")  # same email, another key
        p = self.drain(dict(self.env, GOOGLE_APPLICATION_CREDENTIALS=other.path))
        self.assertEqual(p.returncode, 1)
        self.assertIn("refused the service-account key", p.stderr)
        self.assertIn("Invalid JWT Signature", p.stderr)
        self.assertEqual(self.states(), [("pending", 20)])
        self.no_secrets_in(p.stdout, p.stderr)

    def test_refused_assertion_is_a_clear_error(self):
        self.ingest_events([events.event(20, seed=17)])
        self.server.faults(token_refuse="Account disabled.")
        p = self.drain()
        self.assertEqual(p.returncode, 1)
        self.assertIn("invalid_grant: Account disabled.", p.stderr)
        self.assertEqual(self.states(), [("pending", 20)])

    def test_missing_credentials(self):
        env = dict(self.env)
        del env["GOOGLE_APPLICATION_CREDENTIALS"]
        self.ingest_events([events.event(5, seed=18)])
        p = self.drain(env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("GOOGLE_APPLICATION_CREDENTIALS", p.stderr)


if __name__ == "__main__":
    unittest.main()
