"""Fenced writes: no document ever goes back to an older state, whatever a hung commit, a dead
drainer or a second drainer does. Firestore (the test server) hangs chosen commits past the
client's deadline and applies them when the hang ends ("delayed application"); its log of
applied writes must show every document's version only growing, no deleted document back, and
the final state exactly what the records say. Expectations come from the records the test made,
never from ddb2fs.

DDB2FS_CAMPAIGN=full runs the campaign at the issue's size (20,000 records over 2,000
documents); by default a smaller one keeps the suite fast."""
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

from common import BIN, TempDir, clean_env, query
from fsserver import FirestoreServer, RuntimeServer

TABLE = "Fence"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/%s/stream/2025-01-01T00:00:00.000" % TABLE
FULL = os.environ.get("DDB2FS_CAMPAIGN") == "full"


def record(seq, doc, version, remove=False):
    """A stream record of document doc carrying version (a REMOVE carries it in its Keys' seq)."""
    keys = {"pk": {"S": doc}}
    ddb = {"ApproximateCreationDateTime": 1735689600 + seq // 100, "Keys": keys,
           "SequenceNumber": "%021d" % (100000000000000000000 + seq), "SizeBytes": 64,
           "StreamViewType": "NEW_IMAGE"}
    if not remove:
        ddb["NewImage"] = {"pk": {"S": doc}, "v": {"N": str(version)}}
    return {"eventID": "%032x" % seq, "eventName": "REMOVE" if remove else
            ("INSERT" if version == 1 else "MODIFY"), "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": ARN,
            "dynamodb": ddb}


class History:
    """The records a test made, in order, and what they say Firestore must end as."""

    def __init__(self, prefix):
        self.prefix = prefix + TABLE + "/"
        self.seq = 0
        self.versions = {}   # doc -> last version given
        self.steps = {}      # doc -> [(version, "update"|"delete")]

    def next(self, doc, remove=False):
        self.seq += 1
        v = self.versions.get(doc, 0) + 1
        self.versions[doc] = v
        self.steps.setdefault(doc, []).append((v, "delete" if remove else "update"))
        return record(self.seq, doc, v, remove)

    def expected(self):
        """name -> version of every document that must exist at the end."""
        return {self.prefix + d: s[-1][0] for d, s in self.steps.items() if s[-1][1] == "update"}

    def regressions(self, applied):
        """Applied writes that took a document back: an update older than one applied before,
        or older than a deletion applied before it (a deleted document come back)."""
        bad = []
        floor = {}  # name -> the lowest version the document may take now
        for name, kind, fields in applied:
            doc = name[len(self.prefix):]
            steps = self.steps.get(doc, [])
            low = floor.get(name, 0)
            if kind == "update":
                v = int(fields["v"]["integerValue"])
                if v < low:
                    bad.append((name, v, low))
                floor[name] = max(low, v)
            else:
                # the deletion is the first REMOVE after the versions applied so far
                removes = [v for v, k in steps if k == "delete" and v >= low]
                floor[name] = removes[0] if removes else low
        return bad


class Fence(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.fs = FirestoreServer()
        self.db = self.tmp.file("outbox.db")
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=TABLE + "=pk",
                             DDB2FS_TRANSACTION_SECONDS="20", **self.fs.env())
        self.fs.faults(transaction_seconds=20)
        self.hist = History(self.fs.prefix())

    def tearDown(self):
        self.fs.stop()
        self.tmp.cleanup()

    def ingest(self, records):
        p = subprocess.run([BIN, "ingest", "-"], input=json.dumps({"Records": records}),
                           capture_output=True, text=True, env=self.env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})

    def drain(self, seconds=60, **more):
        return subprocess.run([BIN, "drain"], capture_output=True, text=True,
                              env=dict(self.env, DDB2FS_DRAIN_SECONDS=str(seconds), **more),
                              timeout=seconds + 60)

    def commits_seen(self):
        return sum(1 for r in self.fs.requests() if r["path"].endswith(":commit"))

    def wait_commits(self, n, timeout=30):
        end = time.time() + timeout
        while self.commits_seen() < n:
            self.assertLess(time.time(), end, "the commit never arrived")
            time.sleep(0.02)

    def check(self, settle=0):
        """Waits for hung commits to end, then: the documents are exactly what the records say,
        no applied write took a document back, every record is committed."""
        time.sleep(settle)
        docs = self.fs.documents()
        got = {n: int(f["v"]["integerValue"]) for n, f in docs.items()}
        self.assertEqual(got, self.hist.expected())
        self.assertEqual(self.hist.regressions(self.fs.control("applied")), [])
        self.assertEqual(query(self.db, "SELECT state, count(*) FROM records GROUP BY state"),
                         [("committed", self.hist.seq)])

    def test_helpers_see_a_regression(self):
        """The judge of this file can fail: an older version or a deleted document back."""
        self.hist.next("a")
        self.hist.next("a")
        self.hist.next("a", remove=True)
        p = self.hist.prefix + "a"
        up = lambda v: [p, "update", {"v": {"integerValue": str(v)}}]
        self.assertEqual(self.hist.regressions([up(1), up(2)]), [])
        self.assertEqual(self.hist.regressions([up(2), up(1)]), [(p, 1, 2)])
        self.assertEqual(self.hist.regressions([up(1), [p, "delete", None], up(1)]), [(p, 1, 3)])

    def test_cli_deadline_then_late_commit(self):
        """A commit abandoned at DDB2FS_DRAIN_SECONDS lands after the next drain wrote the
        newer state: its precondition fails, the newer state stays (update, then a create)."""
        self.ingest([self.hist.next("u")])
        self.assertEqual(self.drain().returncode, 0)
        self.ingest([self.hist.next("u")])
        # the next commit hangs 5 s, past the drain's 2 s budget, then is applied
        self.fs.faults(hang_commits=[2], hang_seconds=5, hang_apply=True, transaction_seconds=20)
        p = self.drain(seconds=2)
        self.assertNotEqual(p.returncode, 0)
        self.ingest([self.hist.next("u"), self.hist.next("c")])
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check(settle=5)
        # the late commit did arrive at the server and was refused there
        self.assertGreaterEqual(self.commits_seen(), 3)

    def test_late_create_after_delete(self):
        """A create whose commit hangs, then the document's deletion: the create's transaction
        is rolled back before the deletion, so the late create cannot bring it back."""
        self.ingest([self.hist.next("z")])
        self.fs.faults(hang_commits=[1], hang_seconds=5, hang_apply=True, transaction_seconds=20)
        self.assertNotEqual(self.drain(seconds=2).returncode, 0)
        self.ingest([self.hist.next("z", remove=True)])
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check(settle=5)
        self.assertEqual(self.fs.documents(), {})
        rollbacks = [r for r in self.fs.requests() if r["path"].endswith(":rollback")]
        self.assertTrue(rollbacks)

    def test_delete_waits_while_a_create_may_land(self):
        """When the create's transaction cannot be rolled back, the deletion waits until the
        transaction has expired, then goes."""
        self.ingest([self.hist.next("w")])
        # rollbacks refused as unavailable, all along: the deletion must wait
        self.fs.faults(hang_commits=[1], hang_seconds=3, hang_apply=True, transaction_seconds=4,
                       rollback_unavailable=True)
        env = {"DDB2FS_TRANSACTION_SECONDS": "4"}
        self.assertNotEqual(self.drain(seconds=1, **env).returncode, 0)
        self.assertEqual(len(query(self.db, "SELECT * FROM fence_transaction")), 1)
        self.ingest([self.hist.next("w", remove=True)])
        p = self.drain(**env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("deletions wait", p.stderr)
        self.assertEqual(query(self.db, "SELECT state FROM records ORDER BY id"),
                         [("pending",), ("pending",)])
        time.sleep(4)
        p = self.drain(**env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check()

    def test_sigkill_during_hung_commit(self):
        """SIGKILL while a commit hangs; the next drain takes the lease at once (the holder's
        pid is gone in this PID namespace) and writes the newer state; the late commit fails."""
        self.ingest([self.hist.next("k")])
        self.assertEqual(self.drain().returncode, 0)
        self.ingest([self.hist.next("k"), self.hist.next("n")])
        self.fs.faults(hang_commits=[2], hang_seconds=6, hang_apply=True, transaction_seconds=20)
        p = subprocess.Popen([BIN, "drain"], env=dict(self.env, DDB2FS_DRAIN_SECONDS="60"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_commits(2)
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.ingest([self.hist.next("k"), self.hist.next("n")])
        start = time.time()
        q = self.drain()
        self.assertEqual(q.returncode, 0, q.stderr)
        self.assertLess(time.time() - start, 5)  # no wait for the dead holder's lease
        self.check(settle=6)

    def test_lambda_deadline_then_late_commit(self):
        """'ddb2fs lambda' with a 3 s deadline: the first invocation's commit hangs and is
        abandoned, the next invocation writes the newer state, the late commit fails."""
        rt = RuntimeServer()
        log = open(self.tmp.file("lambda.log"), "w")
        proc = subprocess.Popen([BIN, "lambda"], env=dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.api),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            first = rt.wait(rt.invoke({"Records": [self.hist.next("l")]}, timeout_ms=10000))
            self.assertEqual(first["body"], {"batchItemFailures": []})
            self.fs.faults(hang_commits=[2], hang_seconds=6, hang_apply=True,
                           transaction_seconds=20)
            a = rt.wait(rt.invoke({"Records": [self.hist.next("l")]}, timeout_ms=3000))
            self.assertEqual(a["body"], {"batchItemFailures": []})
            b = rt.wait(rt.invoke({"Records": [self.hist.next("l")]}, timeout_ms=10000))
            self.assertEqual(b["body"], {"batchItemFailures": []})
            self.check(settle=6)
        finally:
            proc.kill()
            proc.wait()
            log.close()
            rt.stop()

    def test_two_drains_at_once_regress_nothing_and_the_lease_keeps_one_out(self):
        """Two drains in separate PID namespaces with one host name: the lease keeps the second
        out; with the lease taken from under it (expired), both drain at once, and fencing
        keeps every document from going back."""
        self.ingest([self.hist.next("a")])
        ns = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts", "sh", "-c",
              "hostname one && exec \"$0\" drain", BIN]
        env = dict(self.env, DDB2FS_DRAIN_SECONDS="30")
        self.fs.faults(latency_ms=3000, transaction_seconds=20)
        first = subprocess.Popen(ns, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        self.wait_commits(1)
        second = subprocess.run(ns, env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn("another drain holds the lease", second.stderr)
        first.communicate(timeout=60)
        self.assertEqual(first.returncode, 0)
        # now both at once: a lease of 1 s that neither renews in time, commits that take 1.5 s
        records = []
        for i in range(6):
            for d in ("a", "b", "c"):
                records.append(self.hist.next(d, remove=(i == 3 and d == "b")))
        self.ingest(records)
        self.fs.faults(latency_ms=[0, 1500], transaction_seconds=20)
        env = dict(env, DDB2FS_LEASE_SECONDS="1", DDB2FS_COMMIT_WRITES="1",
                   DDB2FS_CONCURRENCY="1")
        procs = [subprocess.Popen(ns, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(2)]
        for p in procs:
            p.wait(timeout=90)
        self.fs.faults(transaction_seconds=20)
        p = self.drain()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check()

    def test_campaign(self):
        """Half the commits hang past the deadline and land late, drains are killed at random,
        two drains run in separate PID namespaces: the final state is exact, no document ever
        took a lower version, no deleted document came back."""
        docs, n = (2000, 20000) if FULL else (150, 1200)
        rng = random.Random(12)
        names = ["d%04d" % i for i in range(docs)]
        exists = set()
        batches = []
        for b in range(8):
            recs = []
            for _ in range(n // 8):
                d = rng.choice(names)
                remove = d in exists and rng.random() < 0.15
                recs.append(self.hist.next(d, remove=remove))
                (exists.discard if remove else exists.add)(d)
            batches.append(recs)
        ns = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts", "sh", "-c",
              "hostname one && exec \"$0\" drain", BIN]
        self.fs.faults(hang_rate=0.5, hang_seconds=3, hang_apply=True, transaction_seconds=20,
                       record_bodies=False, seed=5)
        # a lease of 1 s: a drain whose commits hang renews nothing, and the drain of the
        # other namespace takes over while the first still runs
        env = dict(self.env, DDB2FS_DRAIN_SECONDS="2", DDB2FS_LEASE_SECONDS="1",
                   DDB2FS_COMMIT_WRITES="50", DDB2FS_CONCURRENCY="4")
        for recs in batches:
            self.ingest(recs)
            for _ in range(3 if FULL else 2):
                first = subprocess.Popen(ns, env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.3, 1.4))
                second = subprocess.Popen(ns, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.1, 1.0))
                if rng.random() < 0.6:
                    rng.choice([first, second]).send_signal(signal.SIGKILL)
                for p in (first, second):
                    p.wait(timeout=60)
        # the end: no more faults, drains until nothing is pending
        time.sleep(3.5)
        self.fs.faults(transaction_seconds=20, record_bodies=False)
        for _ in range(5):
            p = self.drain()
            if p.returncode == 0:
                break
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check(settle=3.5)
        # the faults happened: late commits were refused by their preconditions
        stats = self.fs.stats()
        late = stats["late"]
        self.assertGreater(late["refused"], 0, late)
        sys.stderr.write("campaign: %d records over %d documents, %d commit requests, %d "
                         "commits applied, hung and applied late %d, refused late %d\n"
                         % (n, docs, self.commits_seen(), stats["commits"], late["applied"],
                            late["refused"]))


if __name__ == "__main__":
    unittest.main()
