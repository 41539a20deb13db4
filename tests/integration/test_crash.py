"""SIGKILL during the ingest of a 10,000-record event, at 50 random moments: afterwards the
event is wholly in the outbox or wholly absent, and the database is intact."""
import json
import os
import random
import shutil
import signal
import subprocess
import time
import unittest

import events
from common import BIN, PARTITIONS, TempDir, clean_env, expected_partition, outbox_files, query

KILLS = int(os.environ.get("DDB2FS_CRASH_KILLS", "50"))


class Crash(unittest.TestCase):
    def run_killed(self, path, env, delay):
        """Starts an ingest and kills it after delay seconds; True if it was still running."""
        with open(path, "rb") as f:
            p = subprocess.Popen([BIN, "ingest", "-"], stdin=f, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env)
            time.sleep(delay)
            killed = p.poll() is None
            p.send_signal(signal.SIGKILL)
            p.wait()
        return killed

    def check(self, db, expected, shares=None):
        """The event wholly present or absent; in a partitioned outbox, each file's share."""
        n = 0
        for i, f in enumerate(outbox_files(db)):
            self.assertEqual(query(f, "PRAGMA integrity_check"), [("ok",)])
            # killed before the schema was made: the file exists, the event is absent
            made = query(f, "SELECT count(*) FROM sqlite_master WHERE name = 'records'")[0][0]
            k = query(f, "SELECT count(*) FROM records")[0][0] if made else 0
            self.assertIn(k, (0, shares[i] if shares else expected))
            n += k
        if not shares:
            self.assertIn(n, (0, expected))
        return n

    @staticmethod
    def shares(ev):
        """How many of the event's records each file holds, by the README's hash of their
        table and Keys."""
        counts = [0] * PARTITIONS
        for r in ev["Records"]:
            counts[expected_partition(events.TABLE, r["dynamodb"]["Keys"], PARTITIONS)] += 1
        return counts

    def test_all_or_nothing(self):
        tmp = TempDir()
        ev = events.event(10000, seed=11)
        text = events.dumps(ev)
        self.assertGreater(len(text), 5_000_000)
        path = tmp.file("event.json")
        with open(path, "w") as f:
            f.write(text)
        env = clean_env(DDB2FS_KEYS=events.KEYS_SETTING)

        # how long one full ingest takes here, to spread the kills over it
        db = tmp.file("timing.db")
        start = time.monotonic()
        with open(path, "rb") as f:
            subprocess.run([BIN, "ingest", "-"], stdin=f, env=dict(env, DDB2FS_OUTBOX=db),
                           capture_output=True, check=True)
        duration = time.monotonic() - start
        self.assertEqual(query(db, "SELECT count(*) FROM records")[0][0], 10000)
        shares = self.shares(ev) if PARTITIONS else None
        if PARTITIONS:
            self.assertEqual(len(outbox_files(db)), PARTITIONS)
            self.check(db, 10000, shares)  # the whole event: each file its share

        rng = random.Random(2024)
        outcomes = {"absent": 0, "whole": 0, "some files": 0}
        for i in range(KILLS):
            # half the kills with WAL (a local disk), half with the rollback journal (NFS)
            journal = "wal" if i % 2 == 0 else "delete"
            db = tmp.file("kill-%d.db" % i)
            kill_env = dict(env, DDB2FS_OUTBOX=db, DDB2FS_JOURNAL=journal)
            self.run_killed(path, kill_env, rng.uniform(0, duration * 1.1))
            if not os.path.exists(db) or not outbox_files(db):
                outcomes["absent"] += 1
                continue
            n = self.check(db, 10000, shares)
            outcomes["absent" if n == 0 else "whole" if n == 10000 else "some files"] += 1
            # the same event again completes it, exactly once
            with open(path, "rb") as f:
                p = subprocess.run([BIN, "ingest", "-"], stdin=f, env=kill_env,
                                   capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})
            self.check(db, 10000, shares)
            self.assertEqual(query(db, "SELECT count(*) FROM records")[0][0], 10000)
            self.assertEqual(query(db, "SELECT count(DISTINCT seq_key) FROM records")[0][0],
                             10000)
            if os.path.isdir(db):
                shutil.rmtree(db)
            else:
                os.remove(db)
        print("kills: %d, event absent after: %d, whole: %d, in some files: %d, ingest takes "
              "%.2f s" % (KILLS, outcomes["absent"], outcomes["whole"], outcomes["some files"],
                          duration))
        tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
