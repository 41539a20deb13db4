"""4 processes ingesting 20 events of 500 records each into one outbox at once: every record
exactly once, arrival order per document preserved, no lock error surfaced. Run with WAL (a
local disk) and with the rollback journal used on NFS."""
import json
import os
import subprocess
import unittest

import events
from common import BIN, TempDir, clean_env, query

PROCESSES = 4
EVENTS = int(os.environ.get("DDB2FS_CONCURRENCY_EVENTS", "20"))
RECORDS = 500


class Concurrency(unittest.TestCase):
    def run_mode(self, journal):
        tmp = TempDir()
        db = tmp.file("shared.db")
        env = clean_env(DDB2FS_OUTBOX=db, DDB2FS_KEYS=events.KEYS_SETTING, DDB2FS_JOURNAL=journal)
        # each process owns a disjoint stream range of sequence numbers, as a shard does; its
        # events arrive in order, as Lambda sends a shard's batches
        paths = []
        for proc in range(PROCESSES):
            whole = events.event(EVENTS * RECORDS, first=proc * 1_000_000, seed=100 + proc,
                                 customers=20)
            for r in whole["Records"]:
                r["dynamodb"]["Keys"]["customer"]["S"] += "-p%d" % proc
                if "NewImage" in r["dynamodb"]:
                    r["dynamodb"]["NewImage"]["customer"]["S"] += "-p%d" % proc
            files = []
            for e in range(EVENTS):
                chunk = {"Records": whole["Records"][e * RECORDS:(e + 1) * RECORDS]}
                files.append(tmp.write_json("p%d-e%d.json" % (proc, e), chunk))
            paths.append((files, whole["Records"]))
        script = 'for f in "$@"; do "%s" ingest "$f" || exit 1; done' % BIN
        procs = [subprocess.Popen(["sh", "-c", script, "sh"] + files, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for files, _ in paths]
        results = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, results):
            self.assertEqual(p.returncode, 0, err)
            self.assertNotIn("locked", err)
            self.assertNotIn("busy", err)
            answers = [json.loads(l) for l in out.splitlines()]
            self.assertEqual(answers, [{"batchItemFailures": []}] * EVENTS)

        total = PROCESSES * EVENTS * RECORDS
        self.assertEqual(query(db, "SELECT count(*) FROM records")[0][0], total)
        self.assertEqual(query(db, "SELECT count(DISTINCT seq_key) FROM records")[0][0], total)
        self.assertEqual(query(db, "PRAGMA integrity_check"), [("ok",)])
        # arrival order per document is the stream's order
        rows = query(db, "SELECT document, seq_key FROM records ORDER BY id")
        last = {}
        for doc, key in rows:
            self.assertGreater(key, last.get(doc, ""), doc)
            last[doc] = key
        # and every record is the one sent
        sent = {r["dynamodb"]["SequenceNumber"].zfill(40) for _, recs in paths for r in recs}
        self.assertEqual({k for _, k in rows}, sent)
        tmp.cleanup()

    def test_wal(self):
        self.run_mode("wal")

    def test_rollback_journal(self):
        self.run_mode("delete")


if __name__ == "__main__":
    unittest.main()
