"""End to end on real stream records: AWS's DynamoDB Local runs a seeded workload over every
DynamoDB type on a table with a composite key; its stream, read with GetShardIterator and
GetRecords, becomes Lambda events that go through the Runtime API server to 'ddb2fs lambda',
which learns the key schema from DescribeTable. The Firestore server's documents must equal
the table's final Scan, mapped."""
import json
import os
import subprocess
import unittest

from common import BIN, TempDir, clean_env, query
from ddblocal import DynamoDBLocal, workload
from fsserver import PROJECT, FirestoreServer, RuntimeServer, final_states

OPERATIONS = int(os.environ.get("DDB2FS_E2E_OPERATIONS", "5000"))
TABLE = "Accounts"


class EndToEnd(unittest.TestCase):
    def test_dynamodb_local_stream_to_firestore(self):
        tmp = TempDir()
        ddb = DynamoDBLocal()
        fs = FirestoreServer()
        rt = RuntimeServer()
        proc = log = None
        try:
            stream = ddb.create_table(TABLE, "pk", "sk")
            done = workload(ddb, TABLE, OPERATIONS, seed=5)
            self.assertGreaterEqual(done, OPERATIONS)
            records = ddb.stream_records(stream)
            self.assertGreaterEqual(len(records), OPERATIONS * 0.9)
            names = {r["eventName"] for r in records}
            self.assertEqual(names, {"INSERT", "MODIFY", "REMOVE"})

            db = tmp.file("outbox.db")
            env = clean_env(AWS_LAMBDA_RUNTIME_API=rt.api, DDB2FS_OUTBOX=db, **fs.env(),
                            **ddb.env())  # no DDB2FS_KEYS: DescribeTable tells
            log = open(tmp.file("lambda.log"), "w")
            proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=log, stderr=log)
            for i in range(0, len(records), 100):  # Lambda's default batch size
                rid = rt.invoke({"Records": records[i:i + 100]})
                got = rt.wait(rid, timeout=120)
                self.assertEqual((got["kind"], got["body"]), ("response",
                                                              {"batchItemFailures": []}), got)
            self.assertEqual(query(db, "SELECT partition_key, sort_key, source FROM key_schema"),
                             [("pk", "sk", "DescribeTable")])
            self.assertEqual(query(db, "SELECT state, count(*) FROM records GROUP BY state"),
                             [("committed", len(records))])

            # the table's final Scan, mapped as INSERTs, is what Firestore must hold
            items = ddb.scan(TABLE)
            synthetic = {"Records": [
                {"eventID": str(n), "eventName": "INSERT", "eventVersion": "1.1",
                 "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                 "eventSourceARN": stream,
                 "dynamodb": {"Keys": {"pk": it["pk"], "sk": it["sk"]}, "NewImage": it,
                              "SequenceNumber": str(n + 1), "StreamViewType": "NEW_IMAGE"}}
                for n, it in enumerate(items)]}
            p = subprocess.run([BIN, "convert", "-"], input=json.dumps(synthetic),
                               capture_output=True, text=True,
                               env=clean_env(DDB2FS_KEYS="%s=pk,sk" % TABLE,
                                             GOOGLE_CLOUD_PROJECT=PROJECT))
            self.assertEqual(p.returncode, 0, p.stderr)
            expected = final_states(p.stdout.splitlines(), fs.prefix())
            self.assertEqual(len(expected), len(items))
            self.assertEqual(fs.documents(), expected)
            print("e2e: %d operations, %d stream records, %d items, %d invocations"
                  % (done, len(records), len(items), (len(records) + 99) // 100))
        finally:
            if proc:
                proc.kill()
                proc.wait()
            if log:
                log.close()
            rt.stop()
            fs.stop()
            ddb.stop()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
