"""'ddb2fs lambda' against the local Runtime API and Firestore servers: batches answered in
the ReportBatchItemFailures format, errors with a clear errorType, a Firestore that hangs,
scheduled drains, init errors, and an outbox that cannot be written."""
import json
import resource
import signal
import sqlite3
import subprocess
import time
import unittest
import urllib.request

import events
import mapping_ref as ref
from common import BIN, TempDir, clean_env, query
from fsserver import PROJECT, FirestoreServer, RuntimeServer, final_states


class Lambda(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.fs = FirestoreServer()
        self.rt = RuntimeServer()
        self.db = self.tmp.file("outbox.db")
        self.env = clean_env(AWS_LAMBDA_RUNTIME_API=self.rt.api, DDB2FS_OUTBOX=self.db,
                             DDB2FS_KEYS=events.KEYS_SETTING, **self.fs.env())
        self.proc = None
        self.log = None

    def tearDown(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()
        self.rt.stop()
        self.fs.stop()
        self.tmp.cleanup()

    def start(self, env=None, preexec_fn=None):
        self.log = open(self.tmp.file("stdout.log"), "w+")
        self.proc = subprocess.Popen([BIN, "lambda"], env=env or self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=preexec_fn)

    def lines(self):
        self.log.flush()
        with open(self.tmp.file("stdout.log")) as f:
            return [json.loads(l) for l in f if l.strip()]

    def convert(self, ev):
        """The writes the event must make, as mapping_ref.py derives them."""
        return ref.convert_lines(events.dumps(ev), dict(self.env, GOOGLE_CLOUD_PROJECT=PROJECT))

    def test_batches_durable_drained_and_answered(self):
        self.start()
        evs = [events.event(300, first=i * 300, seed=30 + i) for i in range(3)]
        lines = []
        for ev in evs:
            rid = self.rt.invoke(ev)
            got = self.rt.wait(rid)
            self.assertEqual((got["kind"], got["body"]), ("response", {"batchItemFailures": []}))
            lines += self.convert(ev)
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))
        self.assertEqual(query(self.db, "SELECT state, count(*) FROM records GROUP BY state"),
                         [("committed", 900)])
        logged = self.lines()
        emf = [l for l in logged if "_aws" in l]
        logs = [l for l in logged if "_aws" not in l]
        self.assertTrue(all("level" in l and "msg" in l for l in logs))
        self.assertEqual(len({l["request_id"] for l in logs if "request_id" in l}), 3)
        # one Embedded Metric Format line per invocation
        self.assertEqual(len(emf), 3)
        names = [m["Name"] for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        self.assertEqual(names, ["RecordsIngested", "Duplicates", "Committed", "Dead", "Pending",
                                 "OldestPendingAge", "DrainTime", "Commits", "Retries"])
        self.assertEqual(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "ddb2fs")
        self.assertEqual([e["RecordsIngested"] for e in emf], [300, 300, 300])
        self.assertEqual([e["Committed"] for e in emf], [300, 300, 300])
        self.assertEqual([e["Pending"] for e in emf], [0, 0, 0])
        # a retried batch changes nothing and is answered the same
        rid = self.rt.invoke(evs[0])
        self.assertEqual(self.rt.wait(rid)["body"], {"batchItemFailures": []})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 900)

    def test_bad_events_have_clear_error_types(self):
        self.start()
        rid = self.rt.invoke("not json at all")
        got = self.rt.wait(rid)
        self.assertEqual((got["kind"], got["error_type"]), ("error", "ddb2fs.MalformedEvent"))
        self.assertEqual(got["body"]["errorType"], "ddb2fs.MalformedEvent")
        self.assertIn("not a JSON object", got["body"]["errorMessage"])
        rid = self.rt.invoke({"hello": "world"})
        got = self.rt.wait(rid)
        self.assertEqual(got["error_type"], "ddb2fs.UnknownEvent")
        # malformed records are kept as dead and acknowledged
        ev = events.event(5, seed=40)
        ev["Records"][2]["eventName"] = "BOGUS"
        rid = self.rt.invoke(ev)
        self.assertEqual(self.rt.wait(rid)["body"], {"batchItemFailures": []})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'dead'")[0][0],
                         1)

    def test_hanging_firestore_then_scheduled_drain(self):
        self.start()
        self.fs.faults(hang_rate=1.0, hang_seconds=20)
        ev = events.event(200, seed=41)
        start = time.time()
        rid = self.rt.invoke(ev, timeout_ms=5000)
        got = self.rt.wait(rid)
        self.assertLess(time.time() - start, 5.0)  # answered before the deadline
        self.assertEqual(got["body"], {"batchItemFailures": []})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'pending'")
                         [0][0], 200)
        self.fs.faults()
        rid = self.rt.invoke({"version": "0", "source": "aws.events",
                              "detail-type": "Scheduled Event", "detail": {}})
        got = self.rt.wait(rid)
        self.assertEqual(got["body"], {"drained": 200, "pending": 0})
        self.assertEqual(self.fs.documents(), final_states(self.convert(ev), self.fs.prefix()))

    def test_firestore_down_for_several_invocations(self):
        self.start()
        self.fs.faults(UNAVAILABLE=1.0)
        evs = [events.event(100, first=i * 100, seed=50 + i) for i in range(3)]
        lines = []
        for ev in evs:
            rid = self.rt.invoke(ev, timeout_ms=4000)
            self.assertEqual(self.rt.wait(rid)["body"], {"batchItemFailures": []})
            lines += self.convert(ev)
        self.assertEqual(self.fs.documents(), {})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'pending'")
                         [0][0], 300)
        emf = [l for l in self.lines() if "_aws" in l]
        self.assertEqual(emf[-1]["Pending"], 300)
        self.assertGreater(emf[-1]["Retries"], 0)
        # an operator asks how things stand, through the function itself
        got = self.rt.wait(self.rt.invoke({"ddb2fs": "status"}))
        self.assertEqual(got["kind"], "response")
        self.assertEqual((got["body"]["pending"], got["body"]["committed"]), (300, 0))
        self.assertEqual(got["body"]["dead"], 0)
        self.assertEqual(got["body"]["tables"][0]["table_name"], "Orders")
        self.assertIn({"name": "DDB2FS_NUMBERS", "value": "auto"},
                      [{k: v for k, v in x.items() if k != "since"}
                       for x in got["body"]["settings"]])
        self.fs.faults()
        rid = self.rt.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
        self.assertEqual(self.rt.wait(rid)["body"], {"drained": 300, "pending": 0})
        self.assertEqual(self.fs.documents(), final_states(lines, self.fs.prefix()))

    def test_answer_post_retried_after_a_transient_failure(self):
        self.start()
        req = urllib.request.Request("http://%s/_test/fail_posts" % self.rt.api,
                                     data=json.dumps({"count": 2}).encode())
        urllib.request.urlopen(req, timeout=10).read()
        rid = self.rt.invoke(events.event(10, seed=60))
        self.assertEqual(self.rt.wait(rid)["body"], {"batchItemFailures": []})
        posts = [p for p in self.rt.results()["posts"] if p[0] == rid]
        self.assertEqual([p[2] for p in posts], [503, 503, 202])

    def cold_start(self, env=None):
        """Starts the runtime, waits for its first invocation/next, and stops it."""
        nexts = self.rt.results()["nexts"]
        self.start(env)
        deadline = time.time() + 30
        while self.rt.results()["nexts"] == nexts and time.time() < deadline:
            time.sleep(0.01)
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = self.log = None

    def test_settings_recorded_at_start_only_when_they_change(self):
        import sqlite3
        self.cold_start()
        con = sqlite3.connect(self.db)
        try:
            version = lambda: con.execute("PRAGMA data_version").fetchone()[0]
            before = version()
            self.cold_start()  # the same settings: start-up writes nothing
            self.assertEqual(version(), before)
            self.cold_start(dict(self.env, DDB2FS_NUMBERS="string"))
            self.assertNotEqual(version(), before)
            self.assertEqual(con.execute("SELECT value FROM settings WHERE name = "
                                         "'DDB2FS_NUMBERS'").fetchall(), [("string",)])
        finally:
            con.close()

    def test_bad_configuration_is_an_init_error(self):
        self.start(dict(self.env, DDB2FS_NUMBERS="decimal"))
        self.assertEqual(self.proc.wait(timeout=30), 1)
        errors = self.rt.results()["init_errors"]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["error_type"], "ddb2fs.ConfigError")
        self.assertIn("DDB2FS_NUMBERS", errors[0]["body"]["errorMessage"])

    def test_outbox_that_cannot_be_opened(self):
        self.start(dict(self.env, DDB2FS_OUTBOX="/proc/ddb2fs/outbox.db"))
        self.assertEqual(self.proc.wait(timeout=30), 1)
        errors = self.rt.results()["init_errors"]
        self.assertEqual(errors[0]["error_type"], "ddb2fs.OutboxError")

    def test_full_disk_reports_every_record(self):
        def small_files():
            resource.setrlimit(resource.RLIMIT_FSIZE, (400 * 1024, 400 * 1024))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self.start(preexec_fn=small_files)
        ev = events.event(2000, seed=42)
        rid = self.rt.invoke(ev)
        got = self.rt.wait(rid)
        self.assertEqual(got["kind"], "response")
        self.assertEqual(got["body"]["batchItemFailures"],
                         [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                          for r in ev["Records"]])
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 0)
        self.assertEqual(self.fs.documents(), {})

    def test_a_lock_held_past_the_deadline_reports_the_batch(self):
        """An ingest gives up waiting for another's lock before its deadline (less the 1.5 s
        margin) instead of the 60 s busy timeout: every record is reported, nothing kept, and
        the retry after the lock is gone is durable."""
        self.start(dict(self.env, DDB2FS_JOURNAL="delete"))
        first = events.event(5, seed=50)
        rid = self.rt.invoke(first)
        self.assertEqual(self.rt.wait(rid)["body"], {"batchItemFailures": []})
        con = sqlite3.connect(self.db, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        try:
            ev = events.event(20, first=100, seed=51)
            start = time.time()
            rid = self.rt.invoke(ev, timeout_ms=4000)
            got = self.rt.wait(rid, timeout=30)
            took = time.time() - start
        finally:
            con.execute("ROLLBACK")
            con.close()
        self.assertEqual(got["kind"], "response")
        self.assertEqual(got["body"]["batchItemFailures"],
                         [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                          for r in ev["Records"]])
        self.assertLess(took, 4.0)  # answered before the invocation's deadline
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 5)
        rid = self.rt.invoke(ev)
        self.assertEqual(self.rt.wait(rid)["body"], {"batchItemFailures": []})
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 25)


if __name__ == "__main__":
    unittest.main()
