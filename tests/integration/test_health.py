"""An outbox that cannot be opened, written or trusted: a read-only directory or mount (WAL
included), a truncated file, corrupted pages and index rows. 'ingest' then keeps nothing and
its exit 1 answer lists every record; a corrupted outbox is found at the Lambda's cold start
(errorType ddb2fs.OutboxCorrupt, a log line saying what to do, a metric) and by a scheduled
invocation; an ingest never says "durable" when PRAGMA integrity_check fails afterwards."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
import unittest

import events
from common import BIN, TempDir, clean_env, query
from fsserver import FirestoreServer, RuntimeServer


def every_record(ev):
    """The answer that reports the whole batch, from the event itself."""
    return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                                  for r in ev["Records"]]}


def integrity(db):
    try:
        return query(db, "PRAGMA integrity_check")
    except sqlite3.DatabaseError as e:
        return [(str(e),)]


class Health(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.env = clean_env(DDB2FS_KEYS=events.KEYS_SETTING)

    def tearDown(self):
        for d in getattr(self, "mounts", []):
            subprocess.run(["umount", d], capture_output=True)
        self.tmp.cleanup()

    def ingest(self, ev, db, prefix=(), journal="delete"):
        return subprocess.run(list(prefix) + [BIN, "ingest", "-"], input=events.dumps(ev),
                              capture_output=True, text=True, timeout=120,
                              env=dict(self.env, DDB2FS_OUTBOX=db, DDB2FS_JOURNAL=journal))

    def assert_all_reported(self, p, ev):
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(json.loads(p.stdout), every_record(ev))
        self.assertTrue(p.stderr.strip())

    def filled(self, name, journal="delete", n=300, seed=1):
        db = self.tmp.file(name)
        p = self.ingest(events.event(n, seed=seed, customers=40), db, journal=journal)
        self.assertEqual(p.returncode, 0, p.stderr)
        return db

    def read_only(self, d):
        """d (a directory) mounted read-only in a mount namespace of the command's own."""
        return ["unshare", "--mount", "sh", "-c", 'mount -o bind,ro "$0" "$0" && exec "$@"', d]

    def test_new_outbox_in_a_read_only_directory(self):
        d = self.tmp.file("ro")
        os.mkdir(d)
        ev = events.event(20, seed=2)
        p = self.ingest(ev, os.path.join(d, "outbox.db"), prefix=self.read_only(d))
        self.assert_all_reported(p, ev)
        self.assertEqual(os.listdir(d), [])

    def test_read_only_mount_in_wal_mode(self):
        d = self.tmp.file("walro")
        os.mkdir(d)
        db = os.path.join(d, "outbox.db")
        p = self.ingest(events.event(50, seed=3), db, journal="wal")
        self.assertEqual(p.returncode, 0, p.stderr)
        before = query(db, "SELECT count(*) FROM records")
        ev = events.event(20, first=1000, seed=4)
        for journal in ("wal", "delete"):
            p = self.ingest(ev, db, prefix=self.read_only(d), journal=journal)
            self.assert_all_reported(p, ev)
        self.assertEqual(query(db, "SELECT count(*) FROM records"), before)

    def test_truncated_outbox(self):
        db = self.filled("trunc.db")
        size = os.path.getsize(db)
        with open(db, "r+b") as f:
            f.truncate(size // 2)
        ev = events.event(20, first=5000, seed=5)
        self.assert_all_reported(self.ingest(ev, db), ev)

    def test_not_a_database(self):
        db = self.tmp.file("garbage.db")
        with open(db, "wb") as f:
            f.write(os.urandom(8192))
        ev = events.event(10, first=6000, seed=6)
        self.assert_all_reported(self.ingest(ev, db), ev)

    def corrupt_index_row(self, db, rng):
        """Overwrites bytes inside a cell of one of the outbox's index leaf pages."""
        con = sqlite3.connect(db)
        pages = con.execute("SELECT pageno, pgsize FROM dbstat WHERE pagetype = 'leaf' AND name "
                            "IN ('records_document', 'records_dedupe', 'records_pending')"
                            ).fetchall()
        con.close()
        pageno, size = rng.choice(pages)
        with open(db, "r+b") as f:
            at = (pageno - 1) * size + rng.randrange(size // 2, size - 8)
            f.seek(at)
            f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6))))

    def corrupt_random(self, db, rng):
        size = os.path.getsize(db)
        with open(db, "r+b") as f:
            for _ in range(rng.randrange(1, 4)):
                f.seek(rng.randrange(100, size))
                f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16))))

    def test_forty_corruptions_never_durable_when_damaged(self):
        """40 outboxes corrupted at random offsets (half in index rows): whenever ingest says
        durable, PRAGMA integrity_check passes afterwards; otherwise every record is listed."""
        template = self.filled("template.db", n=2000, seed=7)
        rng = random.Random(40)
        outcomes = {"durable": 0, "refused": 0}
        for i in range(40):
            db = self.tmp.file("c%02d.db" % i)
            shutil.copy(template, db)
            (self.corrupt_index_row if i % 2 == 0 else self.corrupt_random)(db, rng)
            ev = events.event(30, first=100000 + i * 100, seed=100 + i)
            p = self.ingest(ev, db)
            if p.returncode == 0:
                self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})
                self.assertEqual(integrity(db), [("ok",)], "case %d said durable" % i)
                outcomes["durable"] += 1
            else:
                self.assert_all_reported(p, ev)
                outcomes["refused"] += 1
        # the corruptions were real: most outboxes were refused
        self.assertGreater(outcomes["refused"], 20, outcomes)

    def test_corrupt_outbox_is_an_init_error(self):
        fs, rt = FirestoreServer(), RuntimeServer()
        db = self.filled("cold.db", n=2000, seed=8)
        self.corrupt_index_row(db, random.Random(3))
        self.assertNotEqual(integrity(db), [("ok",)])
        env = dict(self.env, DDB2FS_OUTBOX=db, DDB2FS_JOURNAL="delete",
                   AWS_LAMBDA_RUNTIME_API=rt.api, **fs.env())
        try:
            p = subprocess.run([BIN, "lambda"], env=env, capture_output=True, text=True,
                               timeout=60)
            self.assertNotEqual(p.returncode, 0)
            errs = rt.results()["init_errors"]
            self.assertEqual(len(errs), 1)
            self.assertEqual(errs[0]["error_type"], "ddb2fs.OutboxCorrupt")
            lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
            said = [l for l in lines if l.get("level") == "error"]
            self.assertTrue(any("restore" in l["msg"] and "ddb2fs replay" in l["msg"]
                                for l in said), said)
            self.assertTrue(any(l.get("OutboxCorrupt") == 1 and "_aws" in l for l in lines))
            self.assertEqual(fs.stats()["commits"], 0)
        finally:
            rt.stop()
            fs.stop()

    def test_scheduled_invocation_finds_corruption(self):
        fs, rt = FirestoreServer(), RuntimeServer()
        db = self.filled("sched.db", n=2000, seed=9)
        env = dict(self.env, DDB2FS_OUTBOX=db, DDB2FS_JOURNAL="delete",
                   AWS_LAMBDA_RUNTIME_API=rt.api, **fs.env())
        log = open(self.tmp.file("lambda.log"), "w")
        proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ok = rt.wait(rt.invoke({"source": "aws.events"}, timeout_ms=20000))
            self.assertEqual(ok["kind"], "response", ok)
            self.assertEqual(ok["body"]["pending"], 0)
            self.corrupt_index_row(db, random.Random(5))
            # as a write by another process would: the file change counter moves on, so that
            # the running process reads the pages again
            with open(db, "r+b") as f:
                f.seek(24)
                counter = int.from_bytes(f.read(4), "big")
                f.seek(24)
                f.write(((counter + 1) % 2**32).to_bytes(4, "big"))
            self.assertNotEqual(integrity(db), [("ok",)])
            bad = rt.wait(rt.invoke({"source": "aws.events"}, timeout_ms=20000))
            self.assertEqual((bad["kind"], bad["error_type"]), ("error", "ddb2fs.OutboxCorrupt"))
        finally:
            proc.kill()
            proc.wait()
            log.close()
            rt.stop()
            fs.stop()



class BadValues(unittest.TestCase):
    """A number with anything after it (U+0000 included) is not a number; a creation time that
    is not a finite epoch time makes the record dead with the reason."""

    def test_dead_with_the_reason(self):
        tmp = TempDir()
        self.addCleanup(tmp.cleanup)
        db = tmp.file("values.db")
        ev = events.event(3, seed=12, customers=3)
        ev["Records"][0]["dynamodb"]["NewImage"]["total"] = {"N": "1\u0000"}
        ev["Records"][1]["dynamodb"]["ApproximateCreationDateTime"] = 1234567890
        # JSON that Python will not write: a number out of a double's range
        raw = events.dumps(ev).replace('"ApproximateCreationDateTime":1234567890',
                                       '"ApproximateCreationDateTime":1e999999')
        self.assertIn("1e999999", raw)
        p = subprocess.run([BIN, "ingest", "-"], input=raw, capture_output=True, text=True,
                           env=clean_env(DDB2FS_OUTBOX=db, DDB2FS_KEYS=events.KEYS_SETTING))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})
        rows = query(db, "SELECT seq, state, last_error FROM records ORDER BY id")
        seqs = [r["dynamodb"]["SequenceNumber"] for r in ev["Records"]]
        self.assertEqual([r[0] for r in rows], seqs)
        self.assertEqual(rows[0][1], "dead")
        self.assertIn("'total'", rows[0][2])
        self.assertIn("not a number", rows[0][2])
        self.assertEqual(rows[1][1], "dead")
        self.assertIn("'dynamodb.ApproximateCreationDateTime' is not a finite epoch time",
                      rows[1][2])
        self.assertEqual(rows[2][1], "pending")


if __name__ == "__main__":
    unittest.main()
