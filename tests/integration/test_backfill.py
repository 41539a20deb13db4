"""The backfill on AWS's DynamoDB Local, through the real binary: refusals, the race against a
live stream delivered through 'ddb2fs lambda' as Lambda delivers it, and SIGKILL at many
moments. Firestore's expected state is derived here, from the table's final Scan, with a small
mapping of the types these tests write (S, whole N, BOOL, M), not by ddb2fs."""
import json
import os
import random
import signal
import subprocess
import threading
import time
import unittest

from common import BIN, TempDir, clean_env, dump, query
from ddblocal import DynamoDBLocal
from fsserver import FirestoreServer, RuntimeServer

FULL = os.environ.get("DDB2FS_BACKFILL_FULL") == "1"
ITEMS = 20000 if FULL else 2000
TABLE = "Accounts"
# DynamoDB Local rounds a stream record's creation time down to the minute: the margin covers it
SETTLE_S, MARGIN_S = 2, 61


def value(av):
    """A DynamoDB AttributeValue of the types written here, as Firestore's Value."""
    (t, v), = av.items()
    if t == "S":
        return {"stringValue": v}
    if t == "N":
        return {"integerValue": str(int(v))}
    if t == "BOOL":
        return {"booleanValue": v}
    if t == "M":
        return {"mapValue": {"fields": {k: value(x) for k, x in v.items()}}}
    raise ValueError(t)


def expected(items, prefix, table=TABLE):
    return {"%s%s/%s#%s" % (prefix, table, it["pk"]["S"], it["sk"]["N"]):
            {k: value(v) for k, v in it.items()} for it in items}


def make_item(pk, sk, version):
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}, "version": {"N": str(version)},
            "flag": {"BOOL": version % 2 == 0},
            "meta": {"M": {"v": {"N": str(version)}, "note": {"S": "item %s/%d" % (pk, sk)}}}}


def load(ddb, table, n, version=1):
    keys = [("user-%d" % (i // 10), i % 10) for i in range(n)]
    for i in range(0, n, 25):
        ddb.call("DynamoDB_20120810.BatchWriteItem", {"RequestItems": {table: [
            {"PutRequest": {"Item": make_item(pk, sk, version)}} for pk, sk in keys[i:i + 25]]}})
    return keys


def create(ddb, table, view="NEW_AND_OLD_IMAGES"):
    spec = {"StreamEnabled": True, "StreamViewType": view} if view else {"StreamEnabled": False}
    ddb.call("DynamoDB_20120810.CreateTable", {
        "TableName": table, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"}],
        "StreamSpecification": spec})
    return ddb.call("DynamoDB_20120810.DescribeTable",
                    {"TableName": table})["Table"].get("LatestStreamArn")


def versions_go_back(writelog):
    """Documents whose logged writes ever took a lower version than an earlier write."""
    bad = []
    for name, log in writelog.items():
        top = -1
        for kind, fields in log:
            if kind != "update":
                continue
            v = int(fields["version"]["integerValue"])
            if v < top:
                bad.append((name, v, top))
                break
            top = v
    return bad


class Stream:
    """Delivers the table's stream records from a starting count on, as Lambda does with a
    parallelization factor of 2: records split by item key into two lanes, each in order, in
    batches of 100, each lane through its own Runtime API server to its own 'ddb2fs lambda',
    both lanes' batches in flight at once. Held back while self.hold is set."""

    def __init__(self, ddb, runtimes, arn, skip):
        self.ddb, self.runtimes, self.arn, self.sent = ddb, runtimes, arn, skip
        self.hold = threading.Event()
        self.stop = threading.Event()
        self.failures = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def pending(self):
        return self.ddb.stream_records(self.arn)[self.sent:]

    def deliver(self, records):
        lanes = [[] for _ in self.runtimes]
        for r in records:
            k = r["dynamodb"]["Keys"]
            lanes[hash((k["pk"]["S"], k["sk"]["N"])) % len(lanes)].append(r)
        for i in range(0, max(len(l) for l in lanes) if records else 0, 100):
            ids = [(rt, rt.invoke({"Records": lane[i:i + 100]}, timeout_ms=30000))
                   for rt, lane in zip(self.runtimes, lanes) if lane[i:i + 100]]
            for rt, rid in ids:
                got = rt.wait(rid, timeout=60)
                if (got["kind"], got["body"]) != ("response", {"batchItemFailures": []}):
                    self.failures.append(got)
        self.sent += len(records)

    def run(self):
        while not self.stop.is_set():
            if not self.hold.is_set():
                self.deliver(self.pending())
            time.sleep(0.2)

    def finish(self):
        self.stop.set()
        self.thread.join()
        self.deliver(self.pending())


class Backfill(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.ddb = DynamoDBLocal()
        self.fs = FirestoreServer()
        self.rt = RuntimeServer()
        self.rt2 = None
        self.procs = []
        self.db = self.tmp.file("outbox.db")
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_BACKFILL_SETTLE=SETTLE_S,
                             DDB2FS_BACKFILL_MARGIN=MARGIN_S, AWS_LAMBDA_RUNTIME_API=self.rt.api,
                             **self.fs.env(), **self.ddb.env())

    def tearDown(self):
        if os.path.exists(self.tmp.file("lambda.log")) and os.environ.get("DDB2FS_TEST_KEEP"):
            with open(self.tmp.file("lambda.log")) as src, open(os.environ["DDB2FS_TEST_KEEP"],
                                                                 "w") as dst:
                dst.write(src.read())
        for p in self.procs:
            p.kill()
            p.wait()
        self.rt.stop()
        if self.rt2:
            self.rt2.stop()
        self.fs.stop()
        self.ddb.stop()
        self.tmp.cleanup()

    def run_bin(self, *args, timeout=600):
        return subprocess.run([BIN] + list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def lambdas(self, *runtimes):
        with open(self.tmp.file("lambda.log"), "a") as log:
            for rt in runtimes or [self.rt]:
                env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.api)
                self.procs.append(subprocess.Popen([BIN, "lambda"], env=env, stdout=log,
                                                   stderr=log))

    def drain_until_settled(self, timeout=120):
        """Drains until nothing is pending (snapshots wait for their settle time)."""
        end = time.time() + timeout
        while time.time() < end:
            p = self.run_bin("drain")
            self.assertEqual(p.returncode, 0, p.stderr)
            left = query(self.db, "SELECT count(*) FROM record_state WHERE state = 'pending'")
            if left == [(0,)]:
                return
            time.sleep(SETTLE_S / 2)
        self.fail("records still pending: %s" % query(
            self.db, "SELECT kind, count(*) FROM records WHERE state = 'pending' GROUP BY kind"))

    def outbox_has_records(self):
        try:
            return query(self.db, "SELECT count(*) FROM record_info")[0][0] > 0
        except Exception:  # not created yet
            return False

    def pages_kept(self):
        return query(self.db, "SELECT coalesce(sum(pages), 0) FROM backfill_segment")[0][0]

    def assert_exact(self):
        items = self.ddb.scan(TABLE)
        self.assertEqual(self.fs.documents(), expected(items, self.fs.prefix()))
        return items

    def test_refusals(self):
        create(self.ddb, "NoStream", view=None)
        create(self.ddb, "KeysOnly", view="KEYS_ONLY")
        create(self.ddb, TABLE)
        load(self.ddb, TABLE, 30)
        p = subprocess.run([BIN, "ingest", "-"], input='{"Records":[]}', env=self.env,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        before = dump(self.db)
        cases = [
            (["--table", "NoStream", "--rate", "10"], "table 'NoStream' has no stream"),
            (["--table", "KeysOnly", "--rate", "10", "--stream-is-mapped"],
             "the stream of table 'KeysOnly' is KEYS_ONLY: it must carry new images"),
            (["--table", TABLE, "--rate", "10"], "the outbox has received no record of stream"),
            (["--table", TABLE], "--rate is required"),
            (["--table", TABLE, "--rate", "0"], "--rate: '0' is not a number"),
            (["--table", "Missing", "--rate", "10"], "ResourceNotFoundException"),
        ]
        for args, message in cases:
            p = self.run_bin("backfill", *args)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(message, p.stderr, args)
            self.assertEqual(dump(self.db), before, args)
        # the function refuses the same way, with its own error type
        self.lambdas()
        rid = self.rt.invoke({"ddb2fs": "backfill", "table": "KeysOnly", "rate": 5,
                              "stream_is_mapped": True})
        got = self.rt.wait(rid)
        self.assertEqual(got["kind"], "error", got)
        self.assertEqual(got["body"]["errorType"], "ddb2fs.BackfillRefused", got)
        self.assertIn("KEYS_ONLY", got["body"]["errorMessage"])
        self.assertEqual(query(self.db, "SELECT count(*) FROM backfill_job"), [(0,)])

    def race(self, late):
        arn = create(self.ddb, TABLE)
        keys = load(self.ddb, TABLE, ITEMS)
        before_mapping = len(self.ddb.stream_records(arn))  # the stream is mapped from here on
        self.rt2 = RuntimeServer()
        self.lambdas(self.rt, self.rt2)
        stream = Stream(self.ddb, [self.rt, self.rt2], arn, before_mapping)
        rng, version, stop = random.Random(7), [10], threading.Event()
        deleted = set()

        def workload():
            while not stop.is_set():
                batch, used = [], set()
                while len(batch) < 25:
                    pk, sk = rng.choice(keys)
                    if (pk, sk) in used:
                        continue
                    used.add((pk, sk))
                    version[0] += 1
                    if rng.random() < 0.25:
                        batch.append({"DeleteRequest": {"Key": {"pk": {"S": pk},
                                                                "sk": {"N": str(sk)}}}})
                        deleted.add((pk, sk))
                    else:  # an update, or a deleted item created again
                        batch.append({"PutRequest": {"Item": make_item(pk, sk, version[0])}})
                self.ddb.call("DynamoDB_20120810.BatchWriteItem",
                              {"RequestItems": {TABLE: batch}})
                time.sleep(0.05)

        worker = threading.Thread(target=workload, daemon=True)
        worker.start()
        # the outbox has seen the stream before the backfill starts: no --stream-is-mapped
        end = time.time() + 60
        while time.time() < end and not self.outbox_has_records():
            time.sleep(0.1)
        if late:
            stream.hold.set()  # from now on, the stream's batches are held back
        p = self.run_bin("backfill", "--table", TABLE, "--rate", "5000", "--segments", "4",
                         "--limit", "100")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("every segment read", p.stdout)
        time.sleep(1)
        stop.set()
        worker.join()
        if late:
            # held back for longer than the settle time: snapshots go out first
            time.sleep(SETTLE_S * 2)
            self.run_bin("drain")
            stream.hold.clear()
        stream.finish()
        self.assertEqual(stream.failures, [])
        self.drain_until_settled()
        items = self.assert_exact()
        back = versions_go_back(self.fs.writelog())
        # a stream held back past the settle time lets snapshots out first; its late records
        # never take a document back either
        self.assertEqual(back, [])
        outcomes = dict(query(self.db, "SELECT coalesce(outcome, 'open'), count(*) FROM snapshot "
                                       "GROUP BY outcome"))
        kept = query(self.db, "SELECT sum(items) FROM backfill_segment")[0][0]
        self.assertEqual(sum(outcomes.values()), kept)
        self.assertGreater(kept, ITEMS // 2)
        self.assertNotIn("open", outcomes)
        self.assertGreater(outcomes.get("superseded", 0), 0)
        self.assertGreater(outcomes.get("sent", 0), 0)
        status = json.loads(self.run_bin("status", "--json").stdout)
        job = status["backfills"][0]
        self.assertEqual((job["state"], job["items"], job["segments_done"]), ("done", kept, 4))
        self.assertEqual(job["sent"] + job["superseded"], kept)
        print("race%s: %d items, %d left, %d deleted keys, snapshots %s, %d documents went back"
              % (" (late stream)" if late else "", ITEMS, len(items), len(deleted), outcomes,
                 len(back)))

    def test_a_late_record_of_a_change_before_the_read_never_takes_a_document_back(self):
        """The stream held back past the settle time lets the snapshot out first. Then the
        records of the two changes made before the read arrive one batch at a time, with a
        drain after each: the first is older than the snapshot and must not be written over it
        (its document waits until the stream has caught up, and the second supersedes it); the
        record of a change after the read, within the margin too, is sent once it has."""
        arn = create(self.ddb, TABLE)
        for version in (1, 2):
            self.ddb.call("DynamoDB_20120810.PutItem",
                          {"TableName": TABLE, "Item": make_item("late", 1, version)})
        before_read = self.ddb.stream_records(arn)
        self.assertEqual(len(before_read), 2)
        p = self.run_bin("backfill", "--table", TABLE, "--rate", "100", "--stream-is-mapped")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.ddb.call("DynamoDB_20120810.PutItem",
                      {"TableName": TABLE, "Item": make_item("late", 1, 3)})
        after_read = self.ddb.stream_records(arn)[2:]
        name = self.fs.prefix() + TABLE + "/late#1"

        def version_now():
            return int(self.fs.documents()[name]["version"]["integerValue"])

        def deliver(records):
            p = subprocess.run([BIN, "ingest", "-"], input=json.dumps({"Records": records}),
                               env=self.env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = self.run_bin("drain")
            self.assertEqual(p.returncode, 0, p.stderr)

        time.sleep(SETTLE_S + 0.5)
        self.assertEqual(self.run_bin("drain").returncode, 0)
        self.assertEqual(version_now(), 2)  # the snapshot, read after both changes
        deliver(before_read[:1])
        self.assertEqual(version_now(), 2, "a record older than the snapshot was sent over it")
        deliver(before_read[1:])
        self.assertEqual(version_now(), 2)
        deliver(after_read)
        self.drain_until_settled()
        self.assertEqual(version_now(), 3)  # held until the stream caught up, then sent
        self.assertEqual(versions_go_back(self.fs.writelog()), [])
        self.assert_exact()

    def test_race(self):
        self.race(late=False)

    def test_race_stream_late(self):
        self.race(late=True)

    def test_crash(self):
        create(self.ddb, TABLE)
        n = 600
        load(self.ddb, TABLE, n)
        # about 20 read units in all: a few seconds at this rate, over the 20 moments
        args = ["backfill", "--table", TABLE, "--rate", "3", "--segments", "3", "--limit", "15",
                "--stream-is-mapped"]
        rng = random.Random(3)
        kills = 0
        for moment in range(20):
            if moment == 10:
                by_cli = self.pages_kept()
            if moment < 10:  # the command line
                p = subprocess.Popen([BIN] + args, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
            else:  # the function: the request, then scheduled invocations advance it
                self.lambdas()
                p = self.procs.pop()
                event = ({"ddb2fs": "backfill", "table": TABLE, "rate": 3, "segments": 3,
                          "stream_is_mapped": True} if not query(
                              self.db, "SELECT count(*) FROM backfill_job")[0][0]
                         else {"source": "aws.events", "detail-type": "Scheduled Event"})
                self.rt.invoke(event, timeout_ms=20000)
            time.sleep(rng.uniform(0.05, 0.4))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait()
            if os.path.exists(self.db):
                self.check_pages()
        self.assertGreaterEqual(kills, 10)
        self.assertGreater(by_cli, 0)
        self.assertGreater(self.pages_kept(), by_cli)  # the function went on with the job
        if query(self.db, "SELECT state FROM backfill_job") == [("scanning",)]:
            p = self.run_bin(*args)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("goes on where it stopped", p.stderr)
        self.assertEqual(query(self.db, "SELECT id, state FROM backfill_job"), [(1, "done")])
        self.check_pages()
        self.assertEqual(query(self.db, "SELECT count(*), count(DISTINCT document) FROM "
                                        "record_info WHERE kind = 'snapshot'"), [(n, n)])
        time.sleep(SETTLE_S)
        self.drain_until_settled()
        self.assert_exact()

    def check_pages(self):
        """Every kept page is whole, and counted in its segment's position exactly once."""
        rows = query(self.db, "SELECT job_id, segment, pages, items FROM backfill_segment")
        for job, seg, pages, items in rows:
            got = query(self.db, "SELECT count(DISTINCT page), count(*) FROM snapshot "
                                 "WHERE job_id = ? AND segment = ?", job, seg)[0]
            self.assertEqual(got[1], items, (seg, got))
            # a segment's last page may hold no item
            self.assertIn(got[0], (pages, pages - 1), (seg, got))
        dup = query(self.db, "SELECT document, count(*) FROM record_info WHERE kind = 'snapshot' "
                             "GROUP BY document HAVING count(*) > 1")
        self.assertEqual(dup, [])


if __name__ == "__main__":
    unittest.main()
