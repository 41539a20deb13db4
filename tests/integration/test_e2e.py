"""End to end on real stream records, judged independently: AWS's DynamoDB Local runs a seeded
workload (three tables with sort keys of type S, N and B; puts, overwrites, UpdateItems with the
number forms DynamoDB Local keeps as written, deletes and re-creations; every type, U+0000 at the
start, middle and end of strings, key attributes and field names; 38-digit numbers next to
double boundaries; reserved field names). Its streams, read with GetShardIterator and
GetRecords, become Lambda events that go through the Runtime API server to 'ddb2fs lambda'
(which learns each key schema from DescribeTable), into tests/servers/firestore_server.py and
into Google's own Firestore emulator. Then every item of each table's final Scan is compared
with its document by mapping_ref.py, the README's mapping written again in Python: the right
id, exactly the right value, types strict, no extra documents; in both DDB2FS_NUMBERS modes and
both DDB2FS_RESERVED_NAMES modes.

DDB2FS_E2E_OPERATIONS sets the workload's size (3,000 by default, about a minute in all)."""
import collections
import json
import subprocess
import os
import unittest

import emulator
import mapping_ref as ref
from common import BIN, TempDir, clean_env, query
from ddblocal import EXACT_TABLES, DynamoDBLocal, exact_workload
from fsserver import PROJECT, FirestoreServer, RuntimeServer

OPERATIONS = int(os.environ.get("DDB2FS_E2E_OPERATIONS", "3000"))
SEED = int(os.environ.get("DDB2FS_E2E_SEED", "11"))
MODES = [("auto", "dead"), ("string", "escape"), ("auto", "escape"), ("string", "dead")]


class Text(str):
    """A JSON number's own text, as it was in a request."""


def doubles(expected, got, path=""):
    """(path, expected text, sent text) of every doubleValue whose text differs."""
    out = []
    if isinstance(expected, dict):
        for k, v in expected.items():
            if k == "doubleValue":
                if str(got.get(k)) != v.text:
                    out.append((path, v.text, got.get(k)))
            elif isinstance(got, dict) and k in got:
                out += doubles(v, got[k], path + "/" + k)
    elif isinstance(expected, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(expected, got)):
            out += doubles(a, b, "%s/%d" % (path, i))
    return out


def sent_texts(requests):
    """Per document, the fields of the last write sent, numbers kept as their text."""
    last = {}
    for r in requests:
        if r["path"].endswith(":commit") and r.get("body"):
            body = json.loads(r["body"], parse_float=Text, parse_int=Text)
            for w in body.get("writes", []):
                if "update" in w:
                    last[w["update"]["name"]] = w["update"].get("fields", {})
                elif "delete" in w:
                    last.pop(w["delete"], None)
    return last


class Judge(unittest.TestCase):
    """mapping_ref itself, on cases the README writes out."""

    def test_numbers(self):
        for text, want in [("0.1", "0.1"), ("84.784156556355984562591651843016712255",
                                             "84.78415655635598"),
                           ("9223372036854775808", "9223372036854776000"), ("9.9e125", "9.9e+125"),
                           ("1e-7", "1e-7"), ("1e21", "1e+21"), ("100.5", "100.5"),
                           ("123e-20", "1.23e-18"), ("0.000001", "0.000001")]:
            self.assertEqual(ref.number_value(text, "auto")["doubleValue"].text, want)
        self.assertEqual(ref.number_value("1E+3", "auto"), {"integerValue": "1000"})
        self.assertEqual(ref.number_value("-0", "auto"), {"integerValue": "0"})
        self.assertEqual(ref.number_value("+3", "string"), {"stringValue": "+3"})
        for bad in ["1" * 39, "1e126", "1e-131", "0x10", "1\0", "", "e5", "."]:
            self.assertRaises(ref.Dead, ref.parse_number, bad)

    def test_types_are_strict(self):
        self.assertNotEqual(ref.plain({"integerValue": "1"}), ref.plain({"doubleValue": 1.0}))
        self.assertNotEqual(ref.plain({"stringValue": "a"}), ref.plain({"stringValue": "a\0"}))
        self.assertEqual(ref.plain({"arrayValue": {}}), ref.plain({"arrayValue": {"values": []}}))

    def test_ids(self):
        self.assertEqual(ref.document_id({"p": {"S": "a#b"}, "s": {"N": "1E+3"}}, "p", "s"),
                         "a%23b#1000")
        self.assertEqual(ref.document_id({"p": {"S": "__admin__"}}, "p"), "%5F_admin__")
        self.assertEqual(ref.document_id({"p": {"S": ".."}}, "p"), "%2E%2E")
        self.assertEqual(ref.document_id({"p": {"S": "\0x"}}, "p"), "\0x")
        self.assertEqual(ref.document_id({"p": {"S": "a/%"}}, "p"), "a%2F%25")
        self.assertTrue(ref.document_id({"p": {"S": "x" * 1501}}, "p").startswith("%sha256%"))
        self.assertEqual(ref.field_name("__x__", "escape"), "%5F_x__")
        self.assertEqual(ref.field_name("%p", "escape"), "%25p")
        self.assertEqual(ref.field_name("____", "dead"), "____")
        self.assertRaises(ref.Dead, ref.field_name, "_____", "dead")


class Workload:
    """The DynamoDB Local side, made once for every run: the streams and the final Scans."""

    def __init__(self):
        self.ddb = DynamoDBLocal()
        self.streams = {t: self.ddb.create_table(t, "pk", "sk", st) for t, st in EXACT_TABLES}
        self.done = exact_workload(self.ddb, OPERATIONS, SEED)
        self.records = {t: self.ddb.stream_records(a) for t, a in self.streams.items()}
        self.scans = {t: self.ddb.scan(t) for t in self.streams}


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workload()

    @classmethod
    def tearDownClass(cls):
        cls.w.ddb.stop()

    def test_workload_is_what_it_claims(self):
        w = self.w
        self.assertEqual(sum(w.done.values()), OPERATIONS)
        records = [r for rs in w.records.values() for r in rs]
        # every operation changed its item: one stream record each, none missing
        got = collections.Counter((r["eventSourceARN"].split("/")[1], r["eventName"])
                                  for r in records)
        self.assertEqual(got, w.done)
        self.assertEqual({r["eventName"] for r in records}, {"INSERT", "MODIFY", "REMOVE"})
        text = json.dumps(records)
        for needle in ('"\\u0000', '\\u0000"', '"N": "+3"', '"N": ".5"', '"N": "5."',
                       '"N": "007"', '"N": "1e3"', '"N": "1.500"', '"__r__"'):
            self.assertIn(needle, text)
        for t, items in w.scans.items():
            self.assertGreater(len(items), 20, t)
        # keys with U+0000 at the start, the middle and the end
        pks = {it["pk"]["S"] for items in w.scans.values() for it in items}
        self.assertTrue({"\0x", "a\0b", "z\0"} <= pks, pks)

    def test_against_the_local_server(self):
        for numbers, reserved in MODES:
            with self.subTest(numbers=numbers, reserved=reserved):
                fs = FirestoreServer()
                try:
                    self.run_lambda(fs.env(), numbers, reserved)
                    docs = fs.documents()
                    self.check(docs, PROJECT, numbers, reserved,
                               sent=sent_texts(fs.requests()))
                finally:
                    fs.stop()

    def test_against_googles_emulator(self):
        if not emulator.available():
            emulator.not_run("e2e")
            return
        em = emulator.FirestoreEmulator()
        try:
            for numbers, reserved in MODES:
                with self.subTest(numbers=numbers, reserved=reserved):
                    em.reset()
                    self.run_lambda(em.env(), numbers, reserved)
                    self.check(em.documents(), em.project, numbers, reserved)
        finally:
            em.stop()

    def run_lambda(self, target_env, numbers, reserved):
        """Every stream record through 'ddb2fs lambda', in batches of 100 per stream."""
        tmp = TempDir()
        rt = RuntimeServer()
        proc = log = None
        try:
            db = tmp.file("outbox.db")
            env = clean_env(AWS_LAMBDA_RUNTIME_API=rt.api, DDB2FS_OUTBOX=db,
                            DDB2FS_NUMBERS=numbers, DDB2FS_RESERVED_NAMES=reserved,
                            **target_env, **self.w.ddb.env())  # no DDB2FS_KEYS: DescribeTable
            log = open(tmp.file("lambda.log"), "w")
            proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=log, stderr=log)
            for records in self.w.records.values():
                for i in range(0, len(records), 100):  # Lambda's default batch size
                    rid = rt.invoke({"Records": records[i:i + 100]})
                    got = rt.wait(rid, timeout=120)
                    self.assertEqual((got["kind"], got["body"]),
                                     ("response", {"batchItemFailures": []}), got)
            self.assertEqual(sorted(query(db, "SELECT partition_key, sort_key, source "
                                              "FROM key_schema")),
                             [("pk", "sk", "DescribeTable")] * len(EXACT_TABLES))
            self.rows = query(db, "SELECT r.state, r.last_error, x.raw FROM records r "
                                  "JOIN record_raw x USING (id) ORDER BY id")
        finally:
            if proc:
                proc.kill()
                proc.wait()
            if log:
                log.close()
            rt.stop()
            tmp.cleanup()

    def check(self, docs, project, numbers, reserved, sent=None):
        """Every item of every final Scan is its document, exactly; nothing else is there."""
        self.check_states(numbers, reserved)
        expected, stale = {}, 0
        for table, items in self.w.scans.items():
            collection = ref.collection_of(table)
            history = self.fold(table, project, numbers, reserved)
            for it in items:
                name = ref.document_name(project, "(default)", collection,
                                         ref.document_id(it, "pk", "sk"))
                self.assertNotIn(name, expected, "two items, one document")
                try:
                    expected[name] = ref.map_item(it, numbers, reserved)
                except ref.Dead as e:
                    # dead: its document stays as the last change that could be written left it
                    self.assertEqual((reserved, e.args[0]), ("dead", "reserved name"), it)
                    stale += 1
                    if history.get(name) is not None:
                        expected[name] = history[name]
                    continue
                if numbers == "string":
                    # DynamoDB Local streams a number key as written (1E+3) but scans it
                    # canonical (1000): the document holds what the stream said, the same number
                    for k in ("pk", "sk"):
                        if "N" in it[k]:
                            streamed = history[name][k]["stringValue"]
                            self.assertEqual(ref.parse_number(streamed),
                                             ref.parse_number(it[k]["N"]), name)
                            expected[name][k] = {"stringValue": streamed}
        if reserved == "dead":
            self.assertGreater(stale, 0, "the workload made no item with a reserved name")
        self.assertEqual(sorted(set(docs) - set(expected)), [], "extra documents")
        self.assertEqual(sorted(set(expected) - set(docs)), [], "missing documents")
        wrong = [n for n in expected if ref.plain_fields(docs[n]) != ref.plain_fields(expected[n])]
        for n in wrong[:1]:
            self.fail("%d documents differ; the first: %r\nexpected %r\ngot      %r" % (
                len(wrong), n, ref.plain_fields(expected[n]), ref.plain_fields(docs[n])))
        if sent is not None:
            bad = [(n, d) for n in expected for d in doubles(expected[n], sent.get(n, {}))]
            self.assertEqual(bad[:5], [], "doubles not printed as the shortest text")
        print("e2e %s/%s: %d operations, %d stream records, %d documents, %d items dead"
              % (numbers, reserved, sum(self.w.done.values()),
                 sum(len(r) for r in self.w.records.values()), len(docs), stale), flush=True)

    def fold(self, table, project, numbers, reserved):
        """Per document, the state its stream leaves when dead records change nothing."""
        state = {}
        collection = ref.collection_of(table)
        for r in self.w.records[table]:
            d = r["dynamodb"]
            name = ref.document_name(project, "(default)", collection,
                                     ref.document_id(d["Keys"], "pk", "sk"))
            if r["eventName"] == "REMOVE":
                state[name] = None
            else:
                try:
                    state[name] = ref.map_item(d["NewImage"], numbers, reserved)
                except ref.Dead:
                    pass
        return state

    def check_states(self, numbers, reserved):
        """Every record committed, but those with a reserved name under 'dead': dead, for it."""
        dead = committed = 0
        for state, error, raw in self.rows:
            rec = json.loads(raw)
            try:
                if rec["eventName"] != "REMOVE":
                    ref.map_item(rec["dynamodb"]["NewImage"], numbers, reserved)
                want = "committed"
            except ref.Dead as e:
                self.assertEqual(e.args[0], "reserved name")
                want = "dead"
            self.assertEqual(state, want, (error, rec["dynamodb"]["Keys"]))
            if state == "dead":
                self.assertIn("which Firestore reserves", error)
                dead += 1
            else:
                committed += 1
        self.assertEqual(dead + committed, sum(len(r) for r in self.w.records.values()))
        if reserved == "escape":
            self.assertEqual(dead, 0)


if __name__ == "__main__":
    unittest.main()
