"""The test-only latency VFS (tests/vfs/latency_vfs.c, in builds with -DDDB2FS_LATENCY_VFS=ON):
DDB2FS_TEST_LATENCY slows the outbox's file operations by what it says, and only then; the
relay's answers stay the same."""
import json
import time
import unittest

import events
from common import TempDir, clean_env, query, run


class Latency(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()

    def tearDown(self):
        self.tmp.cleanup()

    def ingest(self, name, **settings):
        env = clean_env(DDB2FS_OUTBOX=self.tmp.file(name), DDB2FS_KEYS=events.KEYS_SETTING,
                        DDB2FS_JOURNAL="delete", **settings)
        run(["status"], env=env)  # the outbox made first, without the delay under test
        start = time.time()
        p = run(["ingest", "-"], env=env, stdin=events.dumps(events.event(20, seed=2)))
        return p, time.time() - start

    def test_sync_delay_applies_to_each_sync(self):
        fast, t_fast = self.ingest("fast.db")
        slow, t_slow = self.ingest("slow.db", DDB2FS_TEST_LATENCY="sync=150000")
        self.assertEqual((fast.returncode, slow.returncode), (0, 0), slow.stderr)
        self.assertEqual(json.loads(slow.stdout), {"batchItemFailures": []})
        # a rollback-journal commit syncs the journal, the database (and the directory): at
        # least two syncs of 150 ms in the ingest's one transaction
        self.assertGreater(t_slow, t_fast + 0.3)
        self.assertEqual(query(self.tmp.file("slow.db"), "SELECT count(*) FROM records"),
                         query(self.tmp.file("fast.db"), "SELECT count(*) FROM records"))

    def test_lock_delay(self):
        _, t_fast = self.ingest("a.db")
        p, t_slow = self.ingest("b.db", DDB2FS_TEST_LATENCY="lock=100000,sync=0,open=0,"
                                                           "delete=0,access=0,unlock=0,check=0")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreater(t_slow, t_fast + 0.2)  # SHARED, RESERVED, EXCLUSIVE at least

    def test_a_malformed_setting_is_refused(self):
        for spec in ["nfs", "sync=", "sync=-1", "fsync=10", "sync=10;lock=1"]:
            p = run(["status"], env=clean_env(DDB2FS_OUTBOX=self.tmp.file("x.db"),
                                              DDB2FS_TEST_LATENCY=spec))
            self.assertEqual(p.returncode, 2, spec)
            self.assertIn("DDB2FS_TEST_LATENCY", p.stderr)


if __name__ == "__main__":
    unittest.main()
