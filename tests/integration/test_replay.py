"""'ddb2fs replay' through the real binary and the local Firestore server: a wiped database
rebuilt with one write per live document, a second project rebuilt while the live drain runs,
dead records retried once a refusal is lifted, filters and ranges that never move a document
back, dry runs that touch nothing, and retention that keeps a rebuild exact."""
import json
import os
import pty
import subprocess
import time
import unittest

import events
import mapping_ref as ref
from common import BIN, query, run
from fsserver import PROJECT, FirestoreServer, final_states
from test_drain import DrainBase

OTHER = "mirror-project"


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


class ReplayBase(DrainBase):
    def ingest(self, evs):
        return self.ingest_events(evs)

    def drain(self, env=None):
        p = super().drain(env)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def replay(self, *args, env=None, code=0):
        p = run(["replay"] + list(args), env=env or self.env)
        self.assertEqual(p.returncode, code, p.stderr)
        return p

    def summary(self, p):
        lines = [json.loads(l) for l in p.stderr.splitlines() if l.startswith("{")]
        return [l for l in lines if l["msg"] in ("replayed", "replay stopped")][-1]

    def writes_since(self, stats):
        return self.server.stats()["writes"] - stats["writes"]


class Rebuild(ReplayBase):
    def test_wiped_database_rebuilt_with_one_write_per_live_document(self):
        lines = self.ingest([events.event(3000, first=i * 3000, seed=50 + i, customers=200)
                             for i in range(3)])
        self.drain()
        expected = final_states(lines, self.server.prefix())
        self.assertEqual(self.server.documents(), expected)
        deleted = {json.loads(l)["delete"] for l in lines if "delete" in l} - set(expected)
        self.assertTrue(deleted)  # some documents end deleted: they must stay absent
        self.server.control("wipe")
        before = self.server.stats()
        p = self.replay("--rebuild")
        self.assertEqual(self.server.documents(), expected)
        self.assertEqual(self.writes_since(before), len(expected))
        s = self.summary(p)
        self.assertEqual((s["documents"], s["written"], s["failed"], s["target"]),
                         (len(expected), len(expected), 0, "live"))
        # the records' states are the drain's business: untouched
        self.assertEqual(query(self.db, "SELECT state, count(*) FROM records GROUP BY state"),
                         [("committed", 9000)])
        self.assertIn("replay: %d/%d documents (100%%)" % (len(expected), len(expected)),
                      p.stderr)

    def test_second_project_rebuilt_while_the_live_drain_runs(self):
        evs = [events.event(4000, first=i * 4000, seed=60 + i, customers=300) for i in range(5)]
        lines = self.ingest(evs)
        other_lines = []
        for ev in evs:
            other_lines += ref.convert_lines(events.dumps(ev),
                                             dict(self.env, GOOGLE_CLOUD_PROJECT=OTHER))
        # the live drain runs slowly, commit after commit, while the rebuild goes to OTHER
        self.server.faults(latency_ms=60)
        live = subprocess.Popen([BIN, "drain"], env=dict(self.env, DDB2FS_COMMIT_WRITES="100",
                                                         DDB2FS_CONCURRENCY="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        p = self.replay("--rebuild", "--project", OTHER)
        self.assertIsNone(live.poll(), "the live drain was meant to be still running")
        _, err = live.communicate(timeout=300)
        self.assertEqual(live.returncode, 0, err)
        docs = self.server.documents()
        mine = {n: f for n, f in docs.items() if n.startswith(self.server.prefix())}
        theirs = {n: f for n, f in docs.items() if n.startswith(self.server.prefix(OTHER))}
        self.assertEqual(mine, final_states(lines, self.server.prefix()))
        self.assertEqual(theirs, final_states(other_lines, self.server.prefix(OTHER)))
        self.assertEqual(self.summary(p)["target"], "other")
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state <> 'committed'"),
                         [(0,)])

    def files(self):
        """The directory's files but SQLite's WAL companions, which a reader may create."""
        return sorted(f for f in os.listdir(self.tmp.path) if not f.endswith(("-wal", "-shm")))

    def test_dry_run_prints_the_writes_and_touches_nothing(self):
        lines = self.ingest([events.event(800, seed=70)])
        self.drain()
        image = slurp(self.db)
        files = self.files()
        before = self.server.stats()
        p = self.replay("--rebuild", "--dry-run")
        self.assertEqual(slurp(self.db), image)
        self.assertEqual(self.files(), files)
        self.assertEqual(self.server.stats(), before)
        printed = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual({w["update"]["name"]: w["update"].get("fields", {}) for w in printed},
                         final_states(lines, self.server.prefix()))
        self.assertTrue(self.summary(p)["dry_run"])
        # resend prints the deletions too; dead prints nothing here
        p = self.replay("--resend", "--dry-run")
        self.assertTrue(any("delete" in json.loads(l) for l in p.stdout.splitlines()))
        self.assertEqual(self.replay("--dead", "--dry-run").stdout, "")
        self.assertEqual(slurp(self.db), image)
        self.assertEqual(self.server.stats(), before)


class Ranges(ReplayBase):
    def setUp(self):
        super().setUp()
        self.lines = self.ingest([events.event(2000, seed=80, customers=20)])
        self.drain()

    def test_until_never_moves_the_live_target_back(self):
        final = final_states(self.lines, self.server.prefix())
        # up to the first half of the stream: against the live target the newest state wins
        before = self.server.stats()
        self.replay("--resend", "--until", events.seq_number(999))
        self.assertEqual(self.server.documents(), final)
        self.assertGreater(self.writes_since(before), 0)
        # against another project, exactly the range: the state as of record 999
        other = []
        for l in self.lines[:1000]:
            other.append(l.replace("projects/%s/" % PROJECT, "projects/%s/" % OTHER))
        self.replay("--resend", "--until", events.seq_number(999), "--project", OTHER)
        docs = self.server.documents()
        theirs = {n: f for n, f in docs.items() if n.startswith(self.server.prefix(OTHER))}
        self.assertEqual(theirs, final_states(other, self.server.prefix(OTHER)))
        self.assertNotEqual(theirs, final_states(
            [l.replace(PROJECT, OTHER) for l in self.lines], self.server.prefix(OTHER)))

    def test_filters_choose_documents(self):
        final = final_states(self.lines, self.server.prefix())
        self.server.control("wipe")
        name = sorted(final)[3]
        doc = name[len(self.server.prefix()):]
        self.replay("--rebuild", "--doc", doc)
        self.assertEqual(self.server.documents(), {name: final[name]})
        self.replay("--rebuild", "--table", "Nope")
        self.assertEqual(len(self.server.documents()), 1)
        # a time range: changes made from 00:00:10 on (records 1000 and later)
        self.server.control("wipe")
        p = self.replay("--rebuild", "--since", "2025-01-01T00:00:10Z", "--project", OTHER)
        touched = {json.loads(l)["update"]["name"] for l in self.lines[1000:]
                   if "update" in json.loads(l)}
        theirs = set(self.server.documents())
        expected = {n.replace(PROJECT, OTHER) for n in touched if n in final}
        self.assertEqual(theirs, expected)
        self.assertEqual(self.summary(p)["documents"], len(expected))
        # the same range by sequence numbers
        self.server.control("wipe")
        self.replay("--rebuild", "--since", events.seq_number(1000), "--project", OTHER)
        self.assertEqual(set(self.server.documents()), expected)

    def test_another_database_or_emulator(self):
        final = final_states(self.lines, self.server.prefix())
        before = self.server.stats()["writes"]
        p = self.replay("--rebuild", "--database", "mirror-db")
        self.assertEqual(self.summary(p)["target"], "other")
        docs = self.server.documents()
        theirs = {n: f for n, f in docs.items()
                  if n.startswith(self.server.prefix(database="mirror-db"))}
        self.assertEqual(theirs, {n.replace("/(default)/", "/mirror-db/"): f
                                  for n, f in final.items()})
        second = FirestoreServer()
        try:
            p = self.replay("--rebuild", "--emulator", second.host)
            self.assertEqual(self.summary(p)["target"], "other")
            self.assertEqual(second.documents(), final)
        finally:
            second.stop()
        # neither touched the live database
        self.assertEqual(self.server.stats()["writes"] - before, len(final))

    def test_bad_options(self):
        for args, phrase in [([], "give one of"), (["--rebuild", "--dead"], "give one of"),
                             (["--rebuild", "--since", "yesterday"], "neither a sequence"),
                             (["--rebuild", "--until", "2025-13-01"], "neither a sequence"),
                             (["--dead", "--project", OTHER], "--dead retries against"),
                             (["--rebuild", "--bogus"], "unknown option"),
                             (["--rebuild", "--doc"], "no value for"),
                             (["--rebuild", "--seconds", "0"], "--seconds takes 1 to 604800"),
                             (["--rebuild", "--seconds", "ten"], "--seconds takes 1 to 604800")]:
            p = self.replay(*args, code=2)
            self.assertIn(phrase, p.stderr)
        p = self.replay("--rebuild", env=dict(self.env, DDB2FS_OUTBOX=self.tmp.file("none.db")),
                        code=1)
        self.assertIn("does not exist", p.stderr)

    def test_lease_held_by_a_drain_stops_a_live_replay(self):
        far = int(time.time() * 1000) + 600000
        subprocess.run(["sqlite3", self.db, "INSERT INTO lease VALUES ('drain', 'other:1', 0, %d)"
                        % far], check=True)
        before = self.server.stats()
        p = self.replay("--rebuild", code=1)
        self.assertIn("another drain holds the lease (other:1", p.stderr)
        self.assertEqual(self.server.stats(), before)
        # another target needs no lease
        self.replay("--rebuild", "--project", OTHER)

    def test_a_live_replay_holds_the_drain_back_for_minutes_not_hours(self):
        self.server.control("wipe")
        self.server.faults(latency_ms=300)
        p = subprocess.Popen([BIN, "replay", "--rebuild"],
                             env=dict(self.env, DDB2FS_COMMIT_WRITES="20", DDB2FS_CONCURRENCY="1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline and not query(self.db, "SELECT * FROM lease"):
            time.sleep(0.05)
        (owner, _, expires), = [r[1:] for r in query(self.db, "SELECT * FROM lease")]
        self.assertLessEqual(expires, (time.time() + 5 * 60 + 1) * 1000)
        d = run(["drain"], env=self.env)
        self.assertEqual(d.returncode, 1)
        self.assertIn("another drain holds the lease (%s" % owner, d.stderr)
        _, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(query(self.db, "SELECT * FROM lease"), [])
        self.assertEqual(self.server.documents(), final_states(self.lines, self.server.prefix()))

    def test_progress_bar_on_a_terminal(self):
        master, slave = pty.openpty()
        p = subprocess.Popen([BIN, "replay", "--rebuild", "--project", OTHER], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(timeout=60), 0)
        text = out.decode()
        self.assertIn("\rreplay [##############################] 100%", text)
        self.assertIn("ETA", text)


class Dead(ReplayBase):
    def test_refused_record_committed_once_the_refusal_is_lifted(self):
        ev = events.event(300, seed=90, customers=300)
        lines = self.ingest([ev])
        final = final_states(lines, self.server.prefix())
        victim = sorted(final)[7]
        self.server.faults(refuse={victim: "Value for field 'x' is poison."})
        self.drain()
        dead = query(self.db, "SELECT id, document, last_error FROM records WHERE state = 'dead'")
        self.assertEqual(len(dead), 1)
        self.assertIn("poison", dead[0][2])
        self.assertNotIn(victim, self.server.documents())
        # status says it in one screen, and what to do
        st = run(["status"], env=self.env).stdout
        self.assertIn("dead, most frequent reasons", st)
        self.assertIn("Value for field 'x' is poison.", st)
        self.assertIn("retry: ddb2fs replay --dead", st)
        self.assertIn("last minutes (UTC)", st)
        self.assertRegex(st, r"DDB2FS_COMMIT_WRITES +500")
        js = json.loads(run(["status", "--json"], env=self.env).stdout)
        self.assertEqual(js["dead_reasons"][0]["records"], 1)
        self.assertEqual(sum(m["committed"] for m in js["throughput"]), 299)
        # still refused: stays dead, with the new reason
        self.server.faults(refuse={victim: "Still poison."})
        p = self.replay("--dead", code=1)
        self.assertIn("writes were refused for good", p.stderr)
        self.assertEqual(query(self.db, "SELECT state, last_error FROM records WHERE id = ?",
                               dead[0][0])[0][0], "dead")
        self.assertIn("Still poison.", query(self.db, "SELECT last_error FROM records "
                                                      "WHERE id = ?", dead[0][0])[0][0])
        # lifted: committed, the document written
        self.server.faults()
        p = self.replay("--dead")
        self.assertEqual(query(self.db, "SELECT state FROM records WHERE id = ?", dead[0][0]),
                         [("committed",)])
        self.assertEqual(self.server.documents(), final)
        s = self.summary(p)
        self.assertEqual((s["written"], s["committed"], s["superseded"]), (1, 1, 0))

    def test_dead_record_behind_a_pending_one_waits_for_the_drain(self):
        ev = events.event(2, seed=92, customers=1)
        for i, r in enumerate(ev["Records"]):
            r["eventName"] = "MODIFY"
            r["dynamodb"]["Keys"] = {"customer": {"S": "c"}, "order": {"N": "1"}}
            r["dynamodb"]["NewImage"] = {"customer": {"S": "c"}, "order": {"N": "1"},
                                         "v": {"N": str(i)}}
        lines = self.ingest([ev])
        # the later record dead (as a refusal makes it), the earlier one still pending
        subprocess.run(["sqlite3", self.db, "UPDATE record_state SET state = 'dead', "
                        "last_error = 'refused' WHERE id = (SELECT max(id) FROM record_state)"],
                       check=True)
        before = self.server.stats()
        p = self.replay("--dead")
        s = self.summary(p)
        self.assertEqual((s["waiting"], s["written"]), (1, 0))
        self.assertEqual(self.server.stats(), before)
        self.assertEqual(query(self.db, "SELECT state FROM records ORDER BY id"),
                         [("pending",), ("dead",)])
        # once the drain sent the earlier one, the retry sends the later
        self.drain()
        p = self.replay("--dead")
        self.assertEqual(self.summary(p)["written"], 1)
        self.assertEqual(query(self.db, "SELECT state FROM records ORDER BY id"),
                         [("committed",), ("committed",)])
        self.assertEqual(self.server.documents(), final_states(lines, self.server.prefix()))

    def test_dead_record_with_a_newer_live_record_is_superseded(self):
        ev = events.event(10, seed=91, customers=1)
        for r in ev["Records"]:
            r["eventName"] = "MODIFY"
            r["dynamodb"]["Keys"] = {"customer": {"S": "c"}, "order": {"N": "1"}}
            r["dynamodb"]["NewImage"] = {"customer": {"S": "c"}, "order": {"N": "1"},
                                         "v": {"N": r["dynamodb"]["SequenceNumber"][-3:]}}
        ev["Records"][4]["dynamodb"]["NewImage"]["bad"] = {"S": "a", "N": "1"}  # dead at ingest
        lines = self.ingest([ev])
        self.drain()
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE state = 'dead'"),
                         [(1,)])
        before = self.server.stats()
        p = self.replay("--dead")
        # planned again, still not a record ddb2fs can write: it stays dead, nothing is sent
        self.assertEqual(self.writes_since(before), 0)
        self.assertEqual(self.summary(p)["still_dead"], 1)
        self.assertEqual(self.server.documents(), final_states(lines, self.server.prefix()))


class Retention(ReplayBase):
    def test_pruning_keeps_the_latest_state_and_a_rebuild_exact(self):
        lines = self.ingest([events.event(3000, first=i * 3000, seed=100 + i, customers=100)
                             for i in range(4)])
        self.drain()
        expected = final_states(lines, self.server.prefix())
        pages = query(self.db, "PRAGMA page_count")[0][0]
        size = os.path.getsize(self.db)
        latest = query(self.db, "SELECT id FROM documents ORDER BY id")
        # age every committed record by ten days, then a drain prunes (retention 7 days)
        subprocess.run(["sqlite3", self.db, "UPDATE record_state SET committed_at = "
                        "committed_at - 10 * 86400000"], check=True)
        p = self.drain()
        pruned = [json.loads(l) for l in p.stderr.splitlines() if '"pruned"' in l]
        self.assertEqual(len(pruned), 1, p.stderr)
        kept = query(self.db, "SELECT count(*) FROM records")[0][0]
        self.assertEqual(pruned[0]["pruned"], 12000 - kept)
        self.assertEqual(query(self.db, "SELECT id FROM documents ORDER BY id"), latest)
        self.assertEqual(kept, len(latest))
        self.assertLess(query(self.db, "PRAGMA page_count")[0][0], pages // 2)
        self.assertLess(os.path.getsize(self.db), size)
        self.assertEqual(query(self.db, "PRAGMA integrity_check"), [("ok",)])
        # a rebuild from what is left is exact
        self.server.control("wipe")
        self.replay("--rebuild")
        self.assertEqual(self.server.documents(), expected)
        # 0 keeps everything; a retention under a day is refused
        self.ingest([events.event(100, first=20000, seed=110)])
        self.drain(dict(self.env, DDB2FS_RETENTION="0"))
        p = run(["drain"], env=dict(self.env, DDB2FS_RETENTION="12h"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("DDB2FS_RETENTION", p.stderr)

    def test_pruning_lets_ingest_in_between(self):
        self.ingest([events.event(10, seed=130)])
        # 300,000 old committed changes of 1,000 documents, made directly in SQL
        rows = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                "WHERE i < 300000) ")
        subprocess.run(["sqlite3", self.db,
                        rows + "INSERT INTO record_info (id, stream_arn, seq, seq_key, event_name,"
                        " table_name, document, op, arrived_at) SELECT 1000 + i, 'arn:old', i, "
                        "printf('%040d', i), 'MODIFY', 'Orders', 'Orders/old-' || (i % 1000), "
                        "'update', 0 FROM n;" +
                        rows + "INSERT INTO record_state (id, state, committed_at) "
                        "SELECT 1000 + i, 'committed', 0 FROM n;" +
                        rows + "INSERT INTO record_raw (id, raw) SELECT 1000 + i, '{}' FROM n;"],
                       check=True)
        prune = subprocess.Popen([BIN, "drain"], env=self.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        # once rows start to go, ingest meanwhile
        total = query(self.db, "SELECT count(*) FROM record_info")[0][0]
        while prune.poll() is None and \
                query(self.db, "SELECT count(*) FROM record_info")[0][0] == total:
            time.sleep(0.005)
        start = time.time()
        p = run(["ingest", "-"], env=self.env,
                stdin=events.dumps(events.event(10, first=900000, seed=140)))
        took = time.time() - start
        # rows the pruning removes were still there when the ingest had its records in
        left = query(self.db, "SELECT count(*) FROM record_info "
                              "WHERE stream_arn = 'arn:old'")[0][0]
        self.assertEqual(p.returncode, 0, p.stderr)
        _, err = prune.communicate(timeout=600)
        self.assertEqual(prune.returncode, 0, err)
        pruned = [json.loads(l) for l in err.splitlines() if '"pruned"' in l][0]
        # the ingest waited for one small transaction at most, not for the whole pruning
        self.assertEqual(pruned["pruned"], 300000 - 1000)
        self.assertGreater(left, 1000, "the ingest waited for the whole pruning (%.3f s, pruning "
                           "%.3f s)" % (took, pruned["seconds"]))
        print("ingest during pruning: %.3f s; pruning %.3f s" % (took, pruned["seconds"]))
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE seq_key >= ?",
                               "%040d" % 100000000000000900000)[0][0], 10)
        self.assertEqual(query(self.db, "SELECT count(*) FROM documents "
                                        "WHERE document LIKE 'Orders/old-%'")[0][0], 1000)

    def test_pending_and_dead_records_are_never_pruned(self):
        ev = events.event(200, seed=120)
        ev["Records"][5]["eventName"] = "BOGUS"
        self.ingest([ev])
        self.server.faults(UNAVAILABLE=1.0)
        p = run(["drain"], env=dict(self.env, DDB2FS_DRAIN_SECONDS="2"))
        self.assertEqual(p.returncode, 1)
        subprocess.run(["sqlite3", self.db, "UPDATE record_info SET arrived_at = arrived_at - "
                        "30 * 86400000; UPDATE record_state SET committed_at = 1"], check=True)
        before = query(self.db, "SELECT state, count(*) FROM records GROUP BY state")
        run(["drain"], env=dict(self.env, DDB2FS_DRAIN_SECONDS="2"))
        self.assertEqual(query(self.db, "SELECT state, count(*) FROM records GROUP BY state"),
                         before)


if __name__ == "__main__":
    unittest.main()
