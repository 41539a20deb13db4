"""'ddb2fs verify' after a real end-to-end run: AWS's DynamoDB Local runs a seeded workload, its
stream goes through 'ddb2fs lambda' into the Firestore test server (and Google's emulator when
its jar is installed). Then Firestore is tampered with behind ddb2fs's back, through Firestore's
own REST API, and verify must name exactly what was tampered, repair it through the outbox, and
find the copy exact again; also while a workload keeps changing the table. The expected
differences come from what the test changed, never from ddb2fs."""
import base64
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import unittest
import urllib.parse
import urllib.request

import mapping_ref
from common import BIN, TempDir, clean_env, expected_partition
from ddblocal import DynamoDBLocal, workload
from fsserver import PROJECT, FirestoreServer, RuntimeServer

TABLE = "Accounts"
EMULATOR_JAR = ("/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/"
                "cloud-firestore-emulator.jar")
NUL_ITEMS = [  # strings holding U+0000 at the start, the middle and the end
    {"pk": {"S": "nul\u0000key"}, "sk": {"N": "1"}, "note": {"S": "ab\u0000cd"},
     "count": {"N": "42"}, "tail": {"S": "end\u0000"}},
    {"pk": {"S": "nul-2"}, "sk": {"N": "2"}, "note": {"S": "\u0000start"},
     "list": {"L": [{"S": "x\u0000y"}, {"N": "1.5"}]}},
]


def dump(db):
    """Every row of every table of an outbox, as bytes (its texts hold U+0000 as C0 80); of a
    partitioned outbox, its files' rows, each table's rows as (file, row) pairs."""
    if os.path.isdir(db):
        out = {}
        for name in sorted(os.listdir(db)):
            if name.startswith("part-") and name.endswith(".db"):
                for t, rows in dump_file(os.path.join(db, name)).items():
                    out.setdefault(t, []).extend((name, r) for r in rows)
        return out
    return dump_file(db)


def dump_file(db):
    con = sqlite3.connect(db)
    con.text_factory = bytes
    try:
        tables = [r[0].decode() for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute("SELECT * FROM %s ORDER BY rowid" % t).fetchall() for t in tables}
    finally:
        con.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """A Firestore REST endpoint with no credentials (the test server as an emulator, or
    Google's emulator): the test's own reads and writes, behind ddb2fs's back."""

    def __init__(self, host, project):
        self.host, self.project = host, project
        self.base = "http://%s/v1/projects/%s/databases/(default)/documents" % (host, project)
        self.prefix = "projects/%s/databases/(default)/documents/" % project

    def env(self):
        return {"FIRESTORE_EMULATOR_HOST": self.host, "GOOGLE_CLOUD_PROJECT": self.project,
                "DDB2FS_RAMP": "off", "DDB2FS_ALLOW_EMULATOR": "1"}

    def call(self, method, url, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer owner"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    def commit(self, writes):
        self.call("POST", self.base + ":commit", {"writes": writes})

    def documents(self, collection=TABLE):
        """name -> fields, every document of the collection, by listing it."""
        out, token = {}, None
        while True:
            q = {"pageSize": "300"}
            if token:
                q["pageToken"] = token
            page = self.call("GET", "%s/%s?%s" % (self.base, urllib.parse.quote(collection),
                                                  urllib.parse.urlencode(q)))
            for d in page.get("documents", []):
                out[d["name"]] = d.get("fields", {})
            token = page.get("nextPageToken")
            if not token:
                return out


class Emulator:
    """Google's Firestore emulator, on a port of its own."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["java", "-cp", EMULATOR_JAR,
             "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
             "--host", "127.0.0.1", "--port", str(self.port), "--project_id", "demo-verify"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.target = Target("127.0.0.1:%d" % self.port, "demo-verify")
        for _ in range(300):
            try:
                self.target.documents()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Firestore emulator did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Relay:
    """'ddb2fs lambda' fed with the table's stream, batch after batch, as Lambda feeds it."""

    def __init__(self, tmp, ddb, target, stream, partitions=1):
        self.ddb, self.stream = ddb, stream
        self.rt = RuntimeServer()
        self.db = tmp.file("outbox.db")
        self.sent = set()
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_PARTITIONS=str(partitions),
                             **target.env(), **ddb.env())
        self.log = open(tmp.file("lambda.log"), "w")
        self.proc = subprocess.Popen([BIN, "lambda"], stdout=self.log, stderr=self.log,
                                     env=dict(self.env, AWS_LAMBDA_RUNTIME_API=self.rt.api))

    def pump(self):
        """Sends every stream record not sent yet; returns how many."""
        new = [r for r in self.ddb.stream_records(self.stream)
               if r["dynamodb"]["SequenceNumber"] not in self.sent]
        for i in range(0, len(new), 100):
            rid = self.rt.invoke({"Records": new[i:i + 100]})
            got = self.rt.wait(rid, timeout=120)
            assert got["kind"] == "response" and got["body"] == {"batchItemFailures": []}, got
        self.sent.update(r["dynamodb"]["SequenceNumber"] for r in new)
        return len(new)

    def invoke(self, event):
        return self.rt.wait(self.rt.invoke(event, timeout_ms=300000), timeout=300)

    def drain(self):
        """A scheduled invocation: the drain sends what is pending."""
        rid = self.rt.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
        self.rt.wait(rid, timeout=120)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.rt.stop()


def verify(env, *args, timeout=600):
    p = subprocess.run([BIN, "verify", "--table", TABLE, "--json"] + list(args), env=env,
                       capture_output=True, text=True, timeout=timeout)
    report = json.loads(p.stdout) if p.stdout.strip() else None
    return p, report


def reported(report):
    """What a report names: document -> (kind, sorted (path, item type, document type))."""
    return {d["document"]: (d["kind"], sorted((f["path"], f["item"], f["document"])
                                              for f in d.get("fields", [])))
            for d in report["differences"]}


class VerifyEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ddb = DynamoDBLocal()

    @classmethod
    def tearDownClass(cls):
        cls.ddb.stop()

    def run_scenario(self, target, table_seed, partitions=1):
        ddb = self.ddb
        tmp = TempDir()
        relay = None
        try:
            ddb.call("DynamoDB_20120810.DeleteTable", {"TableName": TABLE}) \
                if TABLE in ddb.call("DynamoDB_20120810.ListTables", {})["TableNames"] else None
            stream = ddb.create_table(TABLE, "pk", "sk")
            workload(ddb, TABLE, 800, seed=table_seed, keys=200)
            for it in NUL_ITEMS:
                ddb.call("DynamoDB_20120810.PutItem", {"TableName": TABLE, "Item": it})
            relay = Relay(tmp, ddb, target, stream, partitions)
            self.assertGreater(relay.pump(), 700)
            if partitions > 1:
                relay.drain()  # a batch's invocation drains one file; a scheduled one, all
            items = ddb.scan(TABLE)
            before = target.documents()
            self.assertEqual(len(before), len(items))
            env = relay.env

            # 1. the copy is exact
            p, rep = verify(env, "--recheck-after", "1")
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            self.assertEqual((rep["items"], rep["equal"], rep["missing"], rep["different"],
                              rep["extra"], rep["differences"]),
                             (len(items), len(items), 0, 0, 0, []))
            self.assertTrue(rep["exact"] and rep["complete"] and rep["extras_checked"])

            # 2. tampered behind ddb2fs's back
            names = sorted(n for n in before if "nul" not in n)
            P = target.prefix
            nul = [n for n in before if n.startswith(P + TABLE + "/nul") and
                   "note" in before[n] and before[n]["note"]["stringValue"] == "ab\u0000cd"]
            self.assertEqual(len(nul), 1)
            deleted = names[0:3]
            changed = names[3:6]
            to_double = names[6]
            writes = [{"delete": n} for n in deleted]
            expected = {n[len(P):]: ("missing", []) for n in deleted}

            def rewrite(name, fields):
                writes.append({"update": {"name": name, "fields": fields}})

            f = json.loads(json.dumps(before[changed[0]]))
            f["name"] = {"stringValue": f["name"]["stringValue"] + " (tampered)"}
            rewrite(changed[0], f)
            expected[changed[0][len(P):]] = ("different",
                                             [("name", "stringValue", "stringValue")])
            f = json.loads(json.dumps(before[changed[1]]))
            f["flag"] = {"booleanValue": not f["flag"]["booleanValue"]}
            rewrite(changed[1], f)
            expected[changed[1][len(P):]] = ("different",
                                             [("flag", "booleanValue", "booleanValue")])
            f = json.loads(json.dumps(before[changed[2]]))
            level = f["meta"]["mapValue"]["fields"]["deep"]["mapValue"]["fields"]["level"]
            level["integerValue"] = str(int(level["integerValue"]) + 1000)
            rewrite(changed[2], f)
            expected[changed[2][len(P):]] = ("different",
                                             [("meta.deep.level", "integerValue",
                                               "integerValue")])
            f = json.loads(json.dumps(before[to_double]))
            f["version"] = {"doubleValue": float(f["version"]["integerValue"])}
            rewrite(to_double, f)
            expected[to_double[len(P):]] = ("different",
                                            [("version", "integerValue", "doubleValue")])
            f = json.loads(json.dumps(before[nul[0]]))
            f["note"] = {"stringValue": "ab"}  # cut at its U+0000
            rewrite(nul[0], f)
            expected[nul[0][len(P):]] = ("different", [("note", "stringValue", "stringValue")])
            for ghost in ("ghost#7", "user-x#1"):
                rewrite(P + TABLE + "/" + ghost, {"name": {"stringValue": "nobody"}})
                expected[TABLE + "/" + ghost] = ("extra", [])
            target.commit(writes)
            self.assertEqual(len(expected), 10)

            outbox_before = dump(relay.db)
            p, rep = verify(env, "--recheck-after", "1")
            self.assertEqual(p.returncode, 1, p.stderr + p.stdout)
            self.assertEqual(reported(rep), expected)
            self.assertEqual((rep["missing"], rep["different"], rep["extra"]), (3, 5, 2))
            self.assertEqual(rep["items"], len(items))
            self.assertEqual(dump(relay.db), outbox_before, "a plain verify wrote to the outbox")
            # the values stay out of the report unless asked for
            self.assertNotIn("(tampered)", p.stdout)
            p, rep = verify(env, "--recheck-after", "0", "--show-values")
            values = {d["document"]: d for d in rep["differences"]}
            field = values[changed[0][len(P):]]["fields"][0]
            self.assertEqual(field["document_value"], before[changed[0]]["name"]["stringValue"]
                             + " (tampered)")
            # the text report names the same documents and paths
            t = subprocess.run([BIN, "verify", "--table", TABLE, "--recheck-after", "0"],
                               env=env, capture_output=True, text=True, timeout=600)
            self.assertEqual(t.returncode, 1)
            self.assertIn("missing 3, different 5, extra 2", t.stdout)
            self.assertIn('"meta.deep.level": item integerValue, document integerValue', t.stdout)

            # the function answers the same report, with its metric on its log
            got = relay.invoke({"ddb2fs": "verify", "table": TABLE, "sample": 100,
                                "recheck_after": 0})
            self.assertEqual(got["kind"], "response", got)
            self.assertEqual(reported(got["body"]), expected)
            with open(relay.log.name) as f:
                metrics = [json.loads(l) for l in f if "VerifyDifferences" in l]
            self.assertEqual(metrics[-1]["VerifyDifferences"], 10)
            self.assertEqual(metrics[-1]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
                             [{"Name": "VerifyDifferences", "Unit": "Count"}])
            self.assertEqual(metrics[-1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                             [["FunctionName"], ["Table"]])
            self.assertEqual(metrics[-1]["Table"], TABLE)
            self.assertIn("FunctionName", metrics[-1])
            # its default: a sample of 1% of the segments, no listing for extra documents
            got = relay.invoke({"ddb2fs": "verify", "table": TABLE, "recheck_after": 0})
            body = got["body"]
            self.assertEqual((body["segments"], body["segments_checked"], body["extras_checked"],
                              body["complete"], body["extra"]), (100, 1, False, False, 0))
            self.assertLess(body["items"], len(items) / 4)
            self.assertEqual(set(reported(body)) - set(expected), set())
            got = relay.invoke({"ddb2fs": "verify", "table": TABLE, "sample": 0})
            self.assertEqual(got["kind"], "error", got)
            self.assertIn("sample", json.dumps(got))

            # 3. repaired through the outbox, then exact again
            time.sleep(5.5)  # a record that arrived in the last 5 s may be newer than a read
            p, rep = verify(env, "--recheck-after", "0", "--repair")
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            self.assertEqual((rep["repaired"], rep["not_repaired"]), (10, 0))
            rows = [r for r in dump(relay.db)["record_info"] if r not in
                    outbox_before["record_info"]]
            self.assertEqual(len(rows), 10)
            if partitions > 1:
                # each repair in the file its item's keys choose (the README's hash), where the
                # stream's records of that document are; a ghost's in a file of its own choosing
                keys = {TABLE + "/" + mapping_ref.document_id(it, "pk", "sk"):
                        {"pk": it["pk"], "sk": it["sk"]} for it in items}
                files = {}
                for name, r in rows:
                    doc = r[8].replace(b"\xc0\x80", b"\x00").decode()
                    files[doc] = name
                    if doc in keys:
                        self.assertEqual(name, "part-%02d.db" % expected_partition(
                            TABLE, keys[doc], partitions), doc)
                self.assertEqual(set(files), set(expected))
            self.assertEqual(target.documents(), before)
            p, rep = verify(env, "--recheck-after", "0")
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            self.assertEqual(rep["differences"], [])

            # 4. a workload during the verify: no difference that a recheck would clear
            stop = threading.Event()
            failures = []

            rounds = []

            def keep_changing():
                n = 0
                try:
                    while not stop.is_set() and n < 400:
                        workload(ddb, TABLE, 25, seed=1000 + n, keys=200)
                        relay.pump()
                        n += 1
                        rounds.append(time.time())
                        time.sleep(0.1)
                except Exception as e:  # noqa: BLE001 - reported by the test
                    failures.append(e)

            th = threading.Thread(target=keep_changing)
            th.start()
            time.sleep(1.0)
            try:
                started = time.time()
                # paced at 1 read unit a second: the Scan itself takes seconds
                p, rep = verify(env, "--recheck-after", "10", "--rate", "1")
                ended = time.time()
            finally:
                stop.set()
                th.join()
            self.assertEqual(failures, [])
            # the table changed all along the verify, its first pass and its rechecks
            self.assertGreaterEqual(len([t for t in rounds if started < t < ended]), 2)
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            self.assertEqual((rep["missing"], rep["different"], rep["extra"]), (0, 0, 0),
                             rep["differences"])
            during = rep
            relay.pump()
            relay.drain()
            p, rep = verify(env, "--recheck-after", "1")
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            self.assertEqual(rep["items"], len(ddb.scan(TABLE)))
            print("verify during a workload: %d differences cleared by a recheck, %d still "
                  "changing at the end" % (during["cleared_by_recheck"], during["still_changing"]))
            return rep
        finally:
            if relay:
                relay.stop()
            tmp.cleanup()

    def test_firestore_server(self):
        fs = FirestoreServer()
        try:
            self.run_scenario(Target(fs.host, PROJECT), 11)
        finally:
            fs.stop()

    def test_partitioned_outbox(self):
        """The same on an outbox of 4 files: pending rows looked for in every file, each
        repair kept in its document's file and drained from there."""
        fs = FirestoreServer()
        try:
            self.run_scenario(Target(fs.host, PROJECT), 13, partitions=4)
        finally:
            fs.stop()

    def test_google_emulator(self):
        if not os.path.exists(EMULATOR_JAR):
            print("verify: Google's Firestore emulator is not installed (%s): that peer was "
                  "not run" % EMULATOR_JAR)
            return
        em = Emulator()
        try:
            self.run_scenario(em.target, 12)
        finally:
            em.stop()


class Refusing(http.server.BaseHTTPRequestHandler):
    """A DynamoDB that refuses every call: no permission."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException",
                           "message": "User is not authorized to perform: dynamodb:*"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class BadInput(unittest.TestCase):
    """Each refusal is a clear error, exit 2, and nothing is written anywhere."""

    @classmethod
    def setUpClass(cls):
        cls.ddb = DynamoDBLocal()
        cls.ddb.create_table(TABLE, "pk", "sk")
        cls.ddb.call("DynamoDB_20120810.PutItem", {"TableName": TABLE, "Item": {
            "pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "x"}}})
        cls.fs = FirestoreServer()

    @classmethod
    def tearDownClass(cls):
        cls.fs.stop()
        cls.ddb.stop()

    def check_refused(self, env, args, words):
        tmp = TempDir()
        try:
            db = tmp.file("outbox.db")
            subprocess.run([BIN, "ingest", "-"], input='{"Records":[]}', text=True,
                           env=dict(env, DDB2FS_OUTBOX=db), capture_output=True, check=True)
            had = os.path.exists(db)
            self.assertTrue(had)
            state = dump(db) if had else None
            writes = self.fs.stats()["writes"]
            p = subprocess.run([BIN, "verify"] + args, env=dict(env, DDB2FS_OUTBOX=db),
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stdout, "")
            for w in words:
                self.assertIn(w, p.stderr)
            self.assertEqual(os.path.exists(db), had)
            if had:
                self.assertEqual(dump(db), state)
            self.assertEqual(self.fs.stats()["writes"], writes)
        finally:
            tmp.cleanup()

    def env(self, **more):
        settings = dict(Target(self.fs.host, PROJECT).env(), **self.ddb.env())
        settings.update(more)
        return clean_env(**settings)

    def test_no_such_table(self):
        self.check_refused(self.env(), ["--table", "Nope", "--repair"],
                           ["DescribeTable 'Nope'", "ResourceNotFoundException"])
        self.check_refused(self.env(), ["--table", "Nope"], ["ResourceNotFoundException"])

    def test_no_permission(self):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            env = self.env(AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:%d" %
                           srv.server_address[1])
            self.check_refused(env, ["--table", TABLE], ["AccessDeniedException",
                                                         "not authorized"])
        finally:
            srv.shutdown()
            srv.server_close()

    def test_firestore_unreachable(self):
        env = self.env(FIRESTORE_EMULATOR_HOST="127.0.0.1:%d" % free_port())
        self.check_refused(env, ["--table", TABLE], ["no answer"])

    def test_usage(self):
        self.check_refused(self.env(), ["--table", TABLE, "--sample", "0"], ["--sample"])
        self.check_refused(self.env(), ["--table", TABLE, "--segments", "0"], ["--segments"])
        self.check_refused(self.env(), ["--table", TABLE, "--wat"], ["--wat"])
        self.check_refused(self.env(), [], ["--table is required"])

    def test_repair_needs_the_outbox(self):
        p = subprocess.run([BIN, "verify", "--table", TABLE, "--repair"],
                           env=self.env(DDB2FS_OUTBOX="/nonexistent/dir/outbox.db"),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 2)
        self.assertIn("DDB2FS_OUTBOX", p.stderr)
        self.assertFalse(os.path.exists("/nonexistent/dir/outbox.db"))


if __name__ == "__main__":
    unittest.main()
