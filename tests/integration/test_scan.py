"""The Scan module through 'ddb2fs backfill' against a strict DynamoDB stand-in
(tests/servers/dynamodb_server.py, SigV4 verified): segments, pages, LastEvaluatedKey,
ConsistentRead, throttling and 5xx retried, and the pace: the read units the stand-in reports
consumed per second stay within 10% of --rate."""
import unittest
import zlib

from common import BIN, TempDir, clean_env, query, run
from fsserver import PROJECT, ServerProcess

ITEMS, ITEM_BYTES, LIMIT = 1500, 2000, 20


class DynamoDBServer(ServerProcess):
    AKID, SECRET = "AKIDDDBTEST", "ddb/test+secret"

    def __init__(self, **config):
        super().__init__("dynamodb_server.py")
        self.control("config", config)

    def requests(self):
        return self.control("requests")

    def env(self, **more):
        e = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": self.AKID,
             "AWS_SECRET_ACCESS_KEY": self.SECRET, "AWS_ENDPOINT_URL_DYNAMODB": self.url}
        e.update(more)
        return e


class Scan(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.db = self.tmp.file("outbox.db")

    def tearDown(self):
        self.tmp.cleanup()

    def backfill(self, srv, *args):
        env = clean_env(DDB2FS_OUTBOX=self.db, GOOGLE_CLOUD_PROJECT=PROJECT, **srv.env())
        return run(["backfill", "--table", "Big", "--stream-is-mapped"] + list(args), env=env)

    def test_throttled_and_paced(self):
        srv = DynamoDBServer(items=ITEMS, item_bytes=ITEM_BYTES, throttle_every=4, error_every=7)
        try:
            rate = 50.0
            p = self.backfill(srv, "--rate", str(rate), "--segments", "4", "--limit", str(LIMIT))
            self.assertEqual(p.returncode, 0, p.stderr)
            reqs = [r for r in srv.requests() if r["target"].endswith(".Scan")]
        finally:
            srv.stop()
        ok = [r for r in reqs if r["status"] == 200]
        throttled = [r for r in reqs if r["status"] == 400]
        failed = [r for r in reqs if r["status"] == 500]
        self.assertGreater(len(throttled), 10)
        self.assertGreater(len(failed), 5)
        # every item once: segments cover the table, pages follow LastEvaluatedKey
        self.assertEqual(query(self.db, "SELECT count(*), count(DISTINCT document) FROM "
                                        "record_info WHERE kind = 'snapshot'"), [(ITEMS, ITEMS)])
        for r in ok:
            b = r["body"]
            self.assertEqual((b["TotalSegments"], b["Limit"], b["ConsistentRead"],
                              b["ReturnConsumedCapacity"]), (4, LIMIT, False, "TOTAL"))
        per_segment = {}
        for r in ok:
            per_segment.setdefault(r["body"]["Segment"], []).append(r)
        self.assertEqual(sorted(per_segment), [0, 1, 2, 3])
        for seg, rs in per_segment.items():
            mine = sum(1 for i in range(ITEMS)
                       if zlib.crc32(b"item-%06d" % i) % 4 == seg)
            self.assertEqual(len(rs), mine // LIMIT + 1, seg)  # the last page says "no more"
            self.assertNotIn("ExclusiveStartKey", rs[0]["body"])
        # the pace: units consumed over the time from the first request to the last answer
        units = sum(r["units"] for r in ok)
        span = max(r["time"] for r in reqs) - min(r["time"] for r in reqs)
        self.assertGreater(span, 3)
        measured = units / span
        # never faster than --rate (a machine under load can only make it slower, so the lower
        # side is printed, not asserted: on a quiet machine it is within 1%)
        self.assertLess(measured, rate * 1.10, (units, span, measured))
        print("consumed %.1f read units/s for --rate %.0f" % (measured, rate))
        kept = query(self.db, "SELECT sum(read_units), sum(pages), sum(done) FROM "
                              "backfill_segment")[0]
        self.assertEqual(kept, (units, len(ok), 4))
        print("scan: %d pages, %d throttled, %d 5xx, %.1f units in %.2f s = %.1f/s (rate %.0f)"
              % (len(ok), len(throttled), len(failed), units, span, measured, rate))

    def test_consistent_read_and_refusal(self):
        srv = DynamoDBServer(items=50, item_bytes=100)
        try:
            p = self.backfill(srv, "--rate", "1000", "--consistent", "--segments", "2")
            self.assertEqual(p.returncode, 0, p.stderr)
            scans = [r for r in srv.requests() if r["target"].endswith(".Scan")]
            self.assertTrue(scans and all(r["body"]["ConsistentRead"] is True for r in scans))
            # a refused signature is not retried: the backfill stops with DynamoDB's words
            bad = clean_env(DDB2FS_OUTBOX=self.tmp.file("other.db"), GOOGLE_CLOUD_PROJECT=PROJECT,
                            **srv.env(AWS_SECRET_ACCESS_KEY="wrong"))
            p = run(["backfill", "--table", "Big", "--rate", "10", "--stream-is-mapped"], env=bad)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("InvalidSignatureException", p.stderr)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
