"""The commands as users run them: ingest, convert, status, their errors and exit codes."""
import json
import os
import sqlite3
import unittest

import events
from common import FIXTURES, TempDir, clean_env, dump, query, run

EXAMPLE = os.path.join(FIXTURES, "golden", "aws-lambda-example.json")


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.db = self.tmp.file("ddb2fs.db")
        self.env = clean_env(DDB2FS_OUTBOX=self.db, DDB2FS_KEYS=events.KEYS_SETTING)

    def tearDown(self):
        self.tmp.cleanup()

    def ingest(self, obj=None, path=None, env=None, text=None):
        if text is None and path is None:
            text = events.dumps(obj)
        args = ["ingest"] + ([path] if path else ["-"])
        return run(args, env=env or self.env, stdin=text)

    def dead(self):
        return dict(query(self.db, "SELECT seq, last_error FROM records WHERE state = 'dead'"))


class Ingest(Base):
    def test_twice_is_once(self):
        ev = events.event(300, seed=7)
        first = self.ingest(ev)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual(json.loads(first.stdout), {"batchItemFailures": []})
        after_once = dump(self.db)
        second = self.ingest(ev)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(json.loads(second.stdout), {"batchItemFailures": []})
        self.assertEqual(dump(self.db), after_once)
        self.assertEqual(len(after_once["record_info"]), 300)
        self.assertEqual(len(after_once["record_state"]), 300)
        self.assertEqual(len(after_once["record_raw"]), 300)
        self.assertIn('"duplicates":300', second.stderr)

    def test_overlapping_batch_adds_only_the_new(self):
        ev = events.event(200, seed=3)
        self.assertEqual(self.ingest({"Records": ev["Records"][:120]}).returncode, 0)
        self.assertEqual(self.ingest({"Records": ev["Records"][80:]}).returncode, 0)
        rows = query(self.db, "SELECT seq FROM records ORDER BY id")
        self.assertEqual([r[0] for r in rows], [r["dynamodb"]["SequenceNumber"]
                                                for r in ev["Records"]])

    def test_sequence_numbers_compared_as_numbers(self):
        ev = events.event(2, seed=1)
        a, b = ev["Records"]
        a["dynamodb"]["SequenceNumber"] = "99999999999999999999"
        b["dynamodb"]["SequenceNumber"] = "0099999999999999999999"  # the same number
        self.assertEqual(self.ingest({"Records": [a]}).returncode, 0)
        self.assertEqual(self.ingest({"Records": [b]}).returncode, 0)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 1)
        order = query(self.db, "SELECT seq FROM records WHERE seq_key > "
                      "'0000000000000000000100000000000000000000'")
        self.assertEqual(order, [])

    def test_new_stream_arn_is_not_a_duplicate(self):
        ev = events.event(1, seed=1)
        self.assertEqual(self.ingest(ev).returncode, 0)
        ev["Records"][0]["eventSourceARN"] = events.arn(label="2025-06-01T00:00:00.000")
        self.assertEqual(self.ingest(ev).returncode, 0)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 2)

    def test_raw_kept_byte_for_byte(self):
        with open(EXAMPLE, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(self.ingest(path=EXAMPLE).returncode, 0)
        raws = [r[0] for r in query(self.db, "SELECT raw FROM raw_records ORDER BY id")]
        for raw in raws:
            self.assertIn(raw, text)  # the exact bytes, whitespace included
        self.assertEqual([json.loads(r) for r in raws], json.loads(text)["Records"])

    def test_bad_records_named_and_good_ones_kept(self):
        ev = events.event(6, seed=5)
        recs = ev["Records"]
        del recs[1]["dynamodb"]["SequenceNumber"]                       # missing field
        recs[2]["eventName"] = "UPSERT"                                 # unknown eventName
        recs[3]["dynamodb"]["NewImage"]["status"] = {"S": "a", "N": "1"}  # two type tags
        recs[4]["dynamodb"]["Keys"] = "customer"                        # wrong JSON type
        p = self.ingest(ev)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})
        rows = query(self.db, "SELECT state, last_error FROM records ORDER BY id")
        self.assertEqual(len(rows), 6)
        self.assertEqual([r[0] for r in rows],
                         ["pending", "dead", "dead", "dead", "dead", "pending"])
        self.assertEqual(rows[1][1], "Records[1]: 'dynamodb.SequenceNumber' is missing")
        self.assertEqual(rows[2][1],
                         "Records[2]: 'eventName' is 'UPSERT'; expected INSERT, MODIFY or REMOVE")
        self.assertEqual(rows[3][1], "Records[3]: 'dynamodb.NewImage' attribute 'status' has "
                         "two type tags ('S' and 'N'); an AttributeValue holds exactly one")
        self.assertEqual(rows[4][1], "Records[4]: 'dynamodb.Keys' is a string, not an object")
        # each dead record is logged, naming it, without its contents
        logged = [json.loads(l) for l in p.stderr.splitlines()]
        self.assertEqual(sum(1 for l in logged if l["msg"].startswith("Records[")), 4)
        # the rounding of 'total' to a double is logged once for the table and field
        self.assertEqual([l["field"] for l in logged if "nearest" in l["msg"]], ["total"])
        self.assertNotIn("cust-", p.stderr)

    def test_malformed_events_rejected_whole(self):
        good = events.dumps(events.event(3, seed=2))
        cases = {
            "truncated": (good[:-40], "the event is not valid JSON"),
            "not json": ("hello", "the event is not a JSON object"),
            "no records": ('{"records": []}', "the event has no 'Records' array"),
            "records not array": ('{"Records": "x"}', "'Records' is not an array"),
            "empty": ("", "the event is empty"),
        }
        for name, (text, msg) in cases.items():
            with self.subTest(name):
                p = self.ingest(text=text)
                self.assertEqual(p.returncode, 1)
                self.assertIn(msg, p.stderr)
                self.assertEqual(p.stdout, "")
                self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 0)

    def test_seven_megabytes_refused(self):
        ev = events.event(12000 // 20, seed=9, pad=12000)
        text = events.dumps(ev)
        self.assertGreater(len(text), 7_000_000)
        p = self.ingest(text=text)
        self.assertEqual(p.returncode, 1)
        self.assertIn("over Lambda's limit of 6291456 bytes (6 MB)", p.stderr)
        self.assertFalse(os.path.exists(self.db) and
                         query(self.db, "SELECT count(*) FROM records")[0][0])

    def test_over_firestore_limits_dead_with_limit_named(self):
        ev = events.event(3, seed=4)
        big, many = ev["Records"][0], ev["Records"][1]
        # two values, each under Firestore's 1,048,487-byte limit for one, over 1 MiB together
        big["dynamodb"]["NewImage"]["comment"] = {"S": "z" * (600 * 1024)}
        big["dynamodb"]["NewImage"]["comment2"] = {"S": "z" * (600 * 1024)}
        many["dynamodb"]["NewImage"] = dict(many["dynamodb"]["NewImage"])
        for i in range(20001):
            many["dynamodb"]["NewImage"]["f%d" % i] = {"NULL": True}
        self.assertEqual(self.ingest(ev).returncode, 0)
        dead = self.dead()
        self.assertEqual(len(dead), 2)
        self.assertIn("over Firestore's limit of 1 MiB", dead[big["dynamodb"]["SequenceNumber"]])
        self.assertIn("20,000 fields", dead[many["dynamodb"]["SequenceNumber"]])

    def test_failure_to_keep_reports_every_record(self):
        ev = events.event(5, seed=6)
        self.assertEqual(self.ingest({"Records": []}).returncode, 0)  # creates the outbox
        con = sqlite3.connect(self.db)
        con.execute("CREATE TRIGGER disk_trouble BEFORE INSERT ON record_info "
                    "WHEN NEW.seq = '%s' BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
                    % ev["Records"][3]["dynamodb"]["SequenceNumber"])
        con.commit()
        con.close()
        p = self.ingest(ev)
        self.assertEqual(p.returncode, 1)
        self.assertIn("disk trouble", p.stderr)
        self.assertEqual(json.loads(p.stdout)["batchItemFailures"],
                         [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
                          for r in ev["Records"]])
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 0)

    def test_key_schema_recorded_and_contradiction_refused(self):
        self.assertEqual(self.ingest(events.event(2)).returncode, 0)
        self.assertEqual(query(self.db, "SELECT partition_key, sort_key, source FROM key_schema"),
                         [("customer", "order", "DDB2FS_KEYS")])
        env = dict(self.env, DDB2FS_KEYS="Orders=order,customer")
        p = self.ingest(events.event(2, first=10), env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("DDB2FS_KEYS: table 'Orders' is set to (order, customer) but outbox", p.stderr)
        self.assertIn("recorded its key schema as (customer, order)", p.stderr)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records")[0][0], 2)
        # without the setting, the recorded schema is used
        env = dict(self.env)
        del env["DDB2FS_KEYS"]
        self.assertEqual(self.ingest(events.event(2, first=20), env=env).returncode, 0)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE document IS NULL")[0][0],
                         0)

    def test_bad_setting_names_variable(self):
        for name, value in [("DDB2FS_NUMBERS", "float"), ("DDB2FS_KEYS", "Orders"),
                            ("DDB2FS_KEY_SEPARATOR", "/")]:
            with self.subTest(name):
                p = self.ingest(events.event(1), env=dict(self.env, **{name: value}))
                self.assertEqual(p.returncode, 2)
                self.assertTrue(p.stderr.startswith("ddb2fs: %s:" % name), p.stderr)
                self.assertFalse(os.path.exists(self.db))

    def test_missing_file(self):
        p = run(["ingest", self.tmp.file("nope.json")], env=self.env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open '%s'" % self.tmp.file("nope.json"), p.stderr)


class DescribeTable(Base):
    def test_a_refusing_dynamodb_is_asked_once_and_named(self):
        import http.server
        import threading

        asked = []

        class Refuse(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                asked.append((self.headers.get("X-Amz-Target"),
                              self.headers.get("Authorization", "").split(",")[0]))
                body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#"
                                   "ResourceNotFoundException",
                                   "message": "Requested resource not found"}).encode()
                self.send_response(400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            env = clean_env(DDB2FS_OUTBOX=self.db, AWS_REGION="eu-west-1",
                            AWS_ACCESS_KEY_ID="AKIDTEST", AWS_SECRET_ACCESS_KEY="not-logged",
                            AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:%d" % srv.server_port)
            p = self.ingest(events.event(20, seed=70), env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            srv.shutdown()
            srv.server_close()
        # asked once for the table, signed with SigV4, not once per record
        self.assertEqual(len(asked), 1)
        self.assertEqual(asked[0][0], "DynamoDB_20120810.DescribeTable")
        self.assertTrue(asked[0][1].startswith(
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/"), asked[0][1])
        self.assertIn("/eu-west-1/dynamodb/aws4_request", asked[0][1])
        self.assertIn("DescribeTable 'Orders' refused: HTTP 400", p.stderr)
        self.assertIn("Requested resource not found", p.stderr)
        self.assertNotIn("not-logged", p.stderr)
        self.assertEqual(query(self.db, "SELECT count(*) FROM records WHERE document IS NULL")
                         [0][0], 20)


class Status(Base):
    def test_status_counts(self):
        ev = events.event(10, seed=8)
        ev["Records"][4]["eventName"] = "BOGUS"
        self.assertEqual(self.ingest(ev).returncode, 0)
        p = run(["status", "--json"], env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        s = json.loads(p.stdout)
        self.assertEqual((s["pending"], s["dead"], s["committed"]), (9, 1, 0))
        self.assertEqual(s["journal"], "wal")
        sql = os.path.join(os.environ.get("SOURCE_DIR", "../.."), "sql")
        # the number of the last migration (numbers may skip one another change brings)
        self.assertEqual(s["schema_version"], max(int(f[:4]) for f in os.listdir(sql)
                                                  if f.endswith(".sql")))
        self.assertEqual(s["lease"], [])
        self.assertEqual(len(s["tables"]), 1)
        t = s["tables"][0]
        self.assertEqual((t["table_name"], t["partition_key"], t["sort_key"], t["pending"],
                          t["dead"]), ("Orders", "customer", "order", 9, 1))
        text = run(["status"], env=self.env)
        self.assertEqual(text.returncode, 0)
        self.assertIn("9 pending, 1 dead, 0 committed", text.stdout)
        self.assertIn("Orders", text.stdout)
        self.assertIn("key (customer, order) from DDB2FS_KEYS", text.stdout)
        self.assertIn("select * from dead", text.stdout)

    def test_status_without_outbox(self):
        p = run(["status"], env=self.env)
        self.assertEqual(p.returncode, 1)
        self.assertIn("outbox '%s' does not exist" % self.db, p.stderr)
        self.assertFalse(os.path.exists(self.db))

    def test_views_for_people(self):
        self.assertEqual(self.ingest(path=EXAMPLE, env=clean_env(DDB2FS_OUTBOX=self.db))
                         .returncode, 0)
        summary = query(self.db, "SELECT table_name, pending, dead, committed FROM "
                        "pending_summary")
        self.assertEqual(summary, [("ExampleTableWithStream", 3, 0, 0)])
        history = query(self.db, "SELECT seq, event_name, op, state FROM doc_history WHERE "
                        "document = 'ExampleTableWithStream/101'")
        self.assertEqual(history, [("111", "INSERT", "update", "pending"),
                                   ("222", "MODIFY", "update", "pending"),
                                   ("333", "REMOVE", "delete", "pending")])
        lag = query(self.db, "SELECT table_name, pending, oldest_change FROM lag")
        self.assertEqual(lag, [("ExampleTableWithStream", 3, None)])
        self.assertEqual(query(self.db, "SELECT count(*) FROM dead")[0][0], 0)


class Usage(Base):
    def test_help(self):
        for cmd in ["ingest", "convert", "status"]:
            with self.subTest(cmd):
                p = run([cmd, "--help"])
                self.assertEqual(p.returncode, 0)
                self.assertTrue(p.stdout.startswith("usage: ddb2fs %s" % cmd))
        p = run(["--help"])
        self.assertEqual(p.returncode, 0)
        for cmd in ["ingest", "convert", "status"]:
            self.assertIn("  " + cmd, p.stdout)

    def test_wrong_usage(self):
        self.assertEqual(run([]).returncode, 2)
        p = run(["frobnicate"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("'frobnicate' is not a command", p.stderr)
        self.assertEqual(run(["status", "--yaml"]).returncode, 2)
        self.assertEqual(run(["ingest", "a", "b"]).returncode, 2)

    def test_convert_touches_nothing(self):
        before = sorted(os.listdir(self.tmp.path))
        p = run(["convert", EXAMPLE], env=self.env)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(len(p.stdout.splitlines()), 3)
        self.assertEqual(sorted(os.listdir(self.tmp.path)), before)

    def test_convert_unknown_key_schema(self):
        ev = events.event(1)
        path = self.tmp.write_json("e.json", ev)
        p = run(["convert", path], env=clean_env())
        self.assertEqual(p.returncode, 0)
        self.assertEqual(json.loads(p.stdout)["error"],
                         "Records[0]: the key schema of table 'Orders' is unknown: set "
                         "DDB2FS_KEYS=Orders=partitionKey,sortKey")


if __name__ == "__main__":
    unittest.main()
