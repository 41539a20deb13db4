"""The fault walk, through a ddb2fs built with -DDDB2FS_FAULTS=ON (tests/faults/faults.c): its
Nth allocation fails, or its Nth SQLite step, for N from 1 until a run goes through without
reaching N, over ingest, drain and replay. Every run must end in success or a clean error (an
exit status the command documents and a one-line message; no signal, no sanitizer report, no
leak), and leave the outbox intact: integrity_check ok, each event wholly present or absent,
no record twice, none lost, none dead for want of memory. After a failed drain or replay a
clean run reaches exactly the Firestore state mapping_ref.py derives.

In CI the allocation walk takes every STRIDE-th point of each command (a prime, so that the
points fall at different places of each loop); DDB2FS_FAULTS_FULL=1 walks every point. The
step walk always takes every point: there are few. DDB2FS_FAULTS_FROM=N starts the walks at N
(to see again a point a walk stopped at)."""
import json
import os
import shutil
import sqlite3
import unittest
import urllib.request

import events
import mapping_ref as ref
from common import TempDir, clean_env, query, run
from fsserver import PROJECT, FirestoreServer, final_states, histories, regressions

FULL = os.environ.get("DDB2FS_FAULTS_FULL") == "1"
FROM = int(os.environ.get("DDB2FS_FAULTS_FROM", "1"))
STRIDES = {"ingest": 7, "refused": 19, "drain": 23, "replay": 29}
SANITIZERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior")
# What no run may say here: the events are well-formed, the server answers in JSON and refuses
# no write for being wrong; a run that says so took a lack of memory for it
FALSE_CLAIMS = ("not JSON", "not valid JSON", "not a JSON", "malformed", "INVALID_ARGUMENT",
                "refused for good", "the answer is not", "the answer has no",
                "the answer does not")


def rm_outbox(db):
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)


def copy_outbox(src, dst):
    """The outbox file, with its WAL if it has one (the template is closed: it has none)."""
    rm_outbox(dst)
    shutil.copyfile(src, dst)


class Walk(unittest.TestCase):
    """One walk: the points a clean run reaches, then a run for each point chosen. A walk
    names its command (NAME), the status of its run without a fault (CLEAN), and how a run is
    set up (prepare), made (command) and judged (check)."""

    NAME = None
    CLEAN = 0

    def setUp(self):
        self.tmp = TempDir()
        self.addCleanup(self.tmp.cleanup)
        self.report = self.tmp.file("report")

    def reached(self):
        """What the last run's fault injector counted: {"allocs": K, "steps": M, ...}."""
        with open(self.report, encoding="ascii") as f:
            return {k: int(v) for k, v in (w.split("=") for w in f.read().split())}

    def assert_clean_end(self, p, what):
        """Success, or an error the command documents, said in one line."""
        self.assertGreaterEqual(p.returncode, 0, "%s: killed by signal %d\n%s"
                                % (what, -p.returncode, p.stderr[-4000:]))
        for s in SANITIZERS:
            self.assertNotIn(s, p.stderr, "%s:\n%s" % (what, p.stderr[-6000:]))
        for s in FALSE_CLAIMS:
            self.assertNotIn(s, p.stderr, "%s: a false reason:\n%s" % (what, p.stderr[-4000:]))
        self.assertIn(p.returncode, (0, 1, 2), "%s:\n%s" % (what, p.stderr[-4000:]))
        if p.returncode:
            last = p.stderr.rstrip("\n").split("\n")[-1]
            self.assertRegex(last, r"^ddb2fs( [a-z]+)?: \S", "%s: no clear error:\n%s"
                             % (what, p.stderr[-4000:]))

    def one(self, extra, what):
        """A run with the settings extra, judged; one that failed where a run without a fault
        succeeds is made again without one, as Lambda or an operator would, and judged too."""
        self.prepare()
        p = self.command(extra)
        self.assert_clean_end(p, what)
        self.check(p, what)
        if p.returncode and not self.CLEAN:
            again = self.command({})
            self.assertEqual(again.returncode, 0, "%s, run again: %s" % (what, again.stderr))
            self.check(again, what + ", run again")
        return p

    def walk(self, kind):
        """Runs one() with the fault at N = 1, 1 + stride, … until a run does not reach N (it
        must then have ended as a run without a fault does); prints the points walked."""
        name = self.NAME
        var = "DDB2FS_FAULT_ALLOC" if kind == "allocs" else "DDB2FS_FAULT_STEP"
        stride = 1 if FULL or kind == "steps" else STRIDES[name]
        p = self.one({"DDB2FS_FAULT_REPORT": self.report}, "%s without a fault" % name)
        self.assertEqual(p.returncode, self.CLEAN, p.stderr)
        total = self.reached()[kind]
        self.assertGreater(total, 0)
        walked, n = 0, FROM
        while True:
            what = "%s, %s %d of %d" % (name, kind, n, total)
            os.remove(self.report)  # each run's own counts, or none
            p = self.one({var: str(n), "DDB2FS_FAULT_REPORT": self.report}, what)
            if self.reached()[kind] < n:
                # the fault was not reached: a run like the clean one
                self.assertEqual(p.returncode, self.CLEAN, "%s: %s" % (what, p.stderr[-4000:]))
                break
            walked += 1
            n += stride
        print("fault walk: %s: %s: %d points walked (every %d) of %d" % (name, kind, walked,
                                                                          stride, total))


class Points:
    """The two walks of a command: allocations, and SQLite steps."""

    def test_allocations(self):
        self.walk("allocs")

    def test_steps(self):
        self.walk("steps")


class Ingest(Points, Walk):
    """An event of six records into an outbox that holds the first already (a duplicate);
    one record has no NewImage and must be dead for that reason, and for no other."""

    NAME = "ingest"

    def setUp(self):
        super().setUp()
        ev = events.event(6, seed=21, customers=2)
        rec = ev["Records"][3]
        rec["eventName"] = "MODIFY"
        del rec["dynamodb"]["NewImage"]
        self.dead = rec["dynamodb"]["SequenceNumber"]
        self.text = events.dumps(ev)
        self.event = self.tmp.file("event.json")
        with open(self.event, "w", encoding="utf-8") as f:
            f.write(self.text)
        self.raw = {r["dynamodb"]["SequenceNumber"]: json.dumps(r, separators=(",", ":"))
                    for r in ev["Records"]}
        self.seqs = [r["dynamodb"]["SequenceNumber"] for r in ev["Records"]]
        self.first = self.seqs[0]
        self.template = self.tmp.file("template.db")
        self.db = self.tmp.file("ddb2fs.db")
        self.env = clean_env(DDB2FS_OUTBOX=self.template, DDB2FS_KEYS=events.KEYS_SETTING)
        p = run(["ingest", "-"], env=self.env, stdin=events.dumps({"Records": ev["Records"][:1]}))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.env["DDB2FS_OUTBOX"] = self.db

    def prepare(self):
        copy_outbox(self.template, self.db)

    def command(self, extra):
        return run(["ingest", self.event], env=dict(self.env, **extra))

    def check(self, p, what):
        """The outbox after a run: intact, the event whole or absent, each record once and
        exactly as received, dead only for its own reason."""
        self.assertEqual(query(self.db, "PRAGMA integrity_check"), [("ok",)], what)
        rows = query(self.db, "SELECT i.seq, s.state, s.last_error, x.raw FROM record_info i "
                     "JOIN record_state s USING (id) JOIN record_raw x USING (id) ORDER BY i.id")
        seqs = [r[0] for r in rows]
        self.assertEqual(len(seqs), len(set(seqs)), "%s: a record twice" % what)
        self.assertIn(seqs, ([self.first], self.seqs), "%s: the event in part" % what)
        for seq, state, error, raw in rows:
            self.assertEqual(raw, self.raw[seq], what)
            if seq == self.dead:
                self.assertEqual(state, "dead", what)
                self.assertIn("'dynamodb.NewImage' is missing", error, what)
            else:
                self.assertEqual((state, error), ("pending", None), what)
        answer = json.loads(p.stdout) if p.stdout.strip() else None
        if self.CLEAN:
            self.assertNotEqual(p.returncode, 0, what)
            self.assertEqual(seqs, [self.first], "%s: kept in a moved outbox" % what)
        if p.returncode == 0:
            self.assertEqual(answer, {"batchItemFailures": []}, what)
            self.assertEqual(seqs, self.seqs, "%s: said durable, and is not" % what)
        elif answer is not None:
            # not durable: Lambda must be told to retry every record
            self.assertEqual([f["itemIdentifier"] for f in answer["batchItemFailures"]],
                             self.seqs, what)



class IngestRefused(Ingest):
    """The same event into an outbox that 'ddb2fs repartition' moved: refused whole, and the
    answer must name every record, whatever allocation fails while it is built."""

    NAME = "refused"
    CLEAN = 1

    def setUp(self):
        super().setUp()
        con = sqlite3.connect(self.template)
        with con:
            con.execute("INSERT INTO meta (key, value) VALUES ('moved_at', '1')")
        con.close()


class Firestore(Walk):
    """Two events over a handful of documents: the first drained, then a document changed
    behind ddb2fs's back (its fence is stale: a commit is refused on its precondition and the
    document read again), then the second pending: updates of known documents, creates in a
    transaction, deletions."""

    def setUp(self):
        super().setUp()
        self.server = FirestoreServer()
        self.addCleanup(self.server.stop)
        self.template = self.tmp.file("template.db")
        self.db = self.tmp.file("ddb2fs.db")
        self.env = clean_env(DDB2FS_OUTBOX=self.template, DDB2FS_KEYS=events.KEYS_SETTING,
                             **self.server.env())
        names = dict(self.env, GOOGLE_CLOUD_PROJECT=PROJECT)
        first = events.event(8, seed=39, customers=1)
        second = events.event(8, first=8, seed=40, customers=1)
        lines_first = ref.convert_lines(events.dumps(first), names)
        lines_second = ref.convert_lines(events.dumps(second), names)
        prefix = self.server.prefix()
        self.ingest(first)
        self.assertEqual(run(["drain"], env=self.env).returncode, 0)
        self.assertEqual(self.server.documents(), final_states(lines_first, prefix))
        # a document the second event writes, changed by someone else meanwhile
        written = [json.loads(l)["update"]["name"] for l in lines_second if "update" in l]
        changed = sorted(set(written) & set(self.server.documents()))[0]
        foreign = {"update": {"name": changed, "fields": {"by": {"stringValue": "someone"}}}}
        self.commit_directly(foreign)
        self.ingest(second)
        self.history = histories(lines_first + [json.dumps(foreign)] + lines_second)
        self.expected = final_states(lines_first + lines_second, prefix)
        deleted = [json.loads(l)["delete"] for l in lines_second if "delete" in l]
        self.assertTrue(set(deleted) & set(self.server.documents()), "no deletion")
        self.assertTrue(set(written) - set(self.server.documents()), "no create")
        self.server.control("save")
        self.env["DDB2FS_OUTBOX"] = self.db

    def ingest(self, ev):
        p = run(["ingest", "-"], env=self.env, stdin=events.dumps(ev))
        self.assertEqual(p.returncode, 0, p.stderr)

    def commit_directly(self, write):
        body = json.dumps({"writes": [write]}).encode()
        url = "%s/v1/projects/%s/databases/(default)/documents:commit" % (self.server.url,
                                                                          PROJECT)
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.status, 200)

    def states(self):
        return query(self.db, "SELECT id, state, last_error FROM record_state ORDER BY id")

    def assert_exact(self, what):
        self.assertEqual(self.server.documents(), self.expected, what)
        self.assertEqual(regressions(self.server.writelog(), self.history), [],
                         "%s: a document went back" % what)


class Drain(Points, Firestore):
    NAME = "drain"

    def setUp(self):
        super().setUp()
        self.before = query(self.template, "SELECT id, state FROM record_state ORDER BY id")

    def check(self, p, what):
        """The outbox after a drain: intact, every row there, none dead, the first event's
        rows still committed; all committed and Firestore exact if the drain said so."""
        self.assertEqual(query(self.db, "PRAGMA integrity_check"), [("ok",)], what)
        after = self.states()
        self.assertEqual([r[0] for r in after], [r[0] for r in self.before], what)
        for (_, was), (_, state, error) in zip(self.before, after):
            self.assertIn(state, ("pending", "committed"), "%s: %s" % (what, error))
            if was == "committed":
                self.assertEqual(state, "committed", what)
        if p.returncode == 0:
            self.assertEqual({r[1] for r in after}, {"committed"}, what)
            self.assert_exact(what)
        self.assertEqual(regressions(self.server.writelog(), self.history), [],
                         "%s: a document went back" % what)

    def prepare(self):
        copy_outbox(self.template, self.db)
        self.server.control("restore")

    def command(self, extra):
        return run(["drain"], env=dict(self.env, **extra))


class DrainLeased(Firestore):
    """A drain while another drainer, on another host, holds the lease: whatever step fails, it
    sends nothing and leaves the lease to its holder."""

    NAME = "leased"
    CLEAN = 1
    HOLDER = "elsewhere 4242 0123456789abcdef0123456789abcdef -"

    def setUp(self):
        super().setUp()
        con = sqlite3.connect(self.template)
        with con:
            con.execute("INSERT INTO lease (name, owner, acquired_at, expires_at) VALUES "
                        "('drain', ?, 0, 32503680000000) ON CONFLICT (name) DO UPDATE SET "
                        "owner = excluded.owner, expires_at = excluded.expires_at",
                        (self.HOLDER,))
        con.close()

    prepare = Drain.prepare
    command = Drain.command

    def check(self, p, what):
        self.assertNotEqual(p.returncode, 0, what)
        self.assertEqual(query(self.db, "PRAGMA integrity_check"), [("ok",)], what)
        self.assertEqual(query(self.db, "SELECT owner FROM lease"), [(self.HOLDER,)], what)
        self.assertEqual(self.server.stats()["requests"], 0, "%s: sent under another's lease"
                         % what)

    def test_steps(self):
        self.walk("steps")


class Replay(Points, Firestore):
    """replay --rebuild of the drained outbox into an emptied database: every fence is stale,
    every commit refused on its preconditions once and its documents read again; commits of at
    most four writes, so that one holds a single write (a refusal of it misread is the write's
    burial)."""

    NAME = "replay"

    def setUp(self):
        super().setUp()
        self.env["DDB2FS_OUTBOX"] = self.template
        self.assertEqual(run(["drain"], env=self.env).returncode, 0)
        self.env["DDB2FS_OUTBOX"] = self.db
        self.env["DDB2FS_COMMIT_WRITES"] = "4"
        self.records = query(self.template, "SELECT * FROM record_state ORDER BY id")
        self.assertEqual({r[1] for r in self.records}, {"committed"})

    def check(self, p, what):
        self.assertEqual(query(self.db, "PRAGMA integrity_check"), [("ok",)], what)
        # the records' states are the drain's: a replay leaves them as they were
        self.assertEqual(query(self.db, "SELECT * FROM record_state ORDER BY id"), self.records,
                         what)
        if p.returncode == 0:
            self.assert_exact(what)

    def prepare(self):
        copy_outbox(self.template, self.db)
        self.server.control("reset")

    def command(self, extra):
        return run(["replay", "--rebuild"], env=dict(self.env, **extra))


if __name__ == "__main__":
    unittest.main()
