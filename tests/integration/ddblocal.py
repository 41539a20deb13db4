"""AWS's DynamoDB Local for tests: start it, call its API (signed by curl --aws-sigv4 with
dummy credentials), run a seeded workload over every DynamoDB type, and read its stream into
events shaped exactly as Lambda delivers them."""
import base64
import json
import os
import random
import socket
import subprocess
import time

REGION = "us-east-1"
KEY_ID, SECRET = "AKIDLOCALTEST", "local-test-secret"
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build",
                           "dynamodb-local")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DynamoDBLocal:
    def __init__(self, directory=None):
        directory = directory or os.environ.get("DYNAMODB_LOCAL_DIR", DEFAULT_DIR)
        jar = os.path.join(directory, "DynamoDBLocal.jar")
        if not os.path.exists(jar):
            raise RuntimeError("DynamoDB Local is not at %s: tools/test fetches it (npm pack "
                               "amplify-dynamodb-simulator)" % jar)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(
            ["java", "-Djava.library.path=" + os.path.join(directory, "DynamoDBLocal_lib"),
             "-jar", jar, "-inMemory", "-port", str(self.port)],
            cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                self.call("DynamoDB_20120810.ListTables", {})
                return
            except (RuntimeError, json.JSONDecodeError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("DynamoDB Local did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def env(self):
        return {"AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": KEY_ID,
                "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL_DYNAMODB": self.url}

    def call(self, target, body):
        p = subprocess.run(
            ["curl", "-sS", "--aws-sigv4", "aws:amz:%s:dynamodb" % REGION, "-u",
             "%s:%s" % (KEY_ID, SECRET), "-H", "X-Amz-Target: " + target,
             "-H", "Content-Type: application/x-amz-json-1.0", "--data-binary", "@-",
             "-w", "\n%{http_code}", self.url + "/"],
            input=json.dumps(body), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(p.stderr)
        text, _, code = p.stdout.rpartition("\n")
        answer = json.loads(text)
        if code != "200":
            raise RuntimeError("%s: HTTP %s %s" % (target, code, answer))
        return answer

    def create_table(self, name, pk, sk):
        self.call("DynamoDB_20120810.CreateTable", {
            "TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"},
                          {"AttributeName": sk, "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": pk, "AttributeType": "S"},
                                     {"AttributeName": sk, "AttributeType": "N"}],
            "StreamSpecification": {"StreamEnabled": True,
                                    "StreamViewType": "NEW_AND_OLD_IMAGES"}})
        return self.call("DynamoDB_20120810.DescribeTable",
                         {"TableName": name})["Table"]["LatestStreamArn"]

    def scan(self, name):
        items, start = [], None
        while True:
            body = {"TableName": name}
            if start:
                body["ExclusiveStartKey"] = start
            page = self.call("DynamoDB_20120810.Scan", body)
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def stream_records(self, stream_arn):
        """Every record of the stream, shards parents first, each as Lambda delivers it."""
        shards = self.call("DynamoDBStreams_20120810.DescribeStream",
                           {"StreamArn": stream_arn})["StreamDescription"]["Shards"]
        by_id = {s["ShardId"]: s for s in shards}
        ordered, seen = [], set()

        def visit(shard):
            parent = shard.get("ParentShardId")
            if parent in by_id and parent not in seen:
                visit(by_id[parent])
            if shard["ShardId"] not in seen:
                seen.add(shard["ShardId"])
                ordered.append(shard)
        for s in shards:
            visit(s)
        out = []
        for shard in ordered:
            it = self.call("DynamoDBStreams_20120810.GetShardIterator",
                           {"StreamArn": stream_arn, "ShardId": shard["ShardId"],
                            "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
            empties = 0
            while it and empties < 2:
                page = self.call("DynamoDBStreams_20120810.GetRecords",
                                 {"ShardIterator": it, "Limit": 1000})
                recs = page.get("Records", [])
                empties = 0 if recs else empties + 1
                for r in recs:
                    r["eventSourceARN"] = stream_arn  # what Lambda adds
                    out.append(r)
                it = page.get("NextShardIterator")
        return out


def item(rng, pk, sk, version):
    """An item holding every DynamoDB type."""
    return {
        "pk": {"S": pk}, "sk": {"N": str(sk)},
        "version": {"N": str(version)},
        "name": {"S": rng.choice(["ärger", "plain", "emoji ✓", "", "a/b.c"])},
        "price": {"N": rng.choice(["1.5", "0.1", "-0", "12345678901234567890123456789",
                                   "1E+3", "9223372036854775807"])},
        "blob": {"B": base64.b64encode(rng.randbytes(rng.randrange(0, 16))).decode()},
        "flag": {"BOOL": rng.random() < 0.5},
        "nothing": {"NULL": True},
        "tags": {"SS": sorted(rng.sample(["x", "y", "z", "w", "v"], 2))},
        "sizes": {"NS": [str(v) for v in rng.sample(range(-5, 50), 3)]},
        "blobs": {"BS": [base64.b64encode(bytes([b])).decode() for b in rng.sample(range(256), 2)]},
        "meta": {"M": {"deep": {"M": {"level": {"N": str(version)}}},
                       "list": {"L": [{"S": "a"}, {"L": [{"N": "1"}, {"SS": ["q"]}]}]}}},
    }


def workload(db, table, operations, seed=1, keys=300):
    """Puts (new items and overwrites), deletes and updates; about `operations` in all."""
    rng = random.Random(seed)
    live, done, version = set(), 0, 0
    while done < operations:
        batch, used = [], set()
        while len(batch) < 25 and done + len(batch) < operations:
            k = ("user-%d" % rng.randrange(keys // 10), rng.randrange(10))
            if k in used:
                continue
            used.add(k)
            version += 1
            if k in live and rng.random() < 0.2:
                batch.append({"DeleteRequest": {"Key": {"pk": {"S": k[0]}, "sk": {"N": str(k[1])}}}})
                live.discard(k)
            else:
                batch.append({"PutRequest": {"Item": item(rng, k[0], k[1], version)}})
                live.add(k)
        db.call("DynamoDB_20120810.BatchWriteItem", {"RequestItems": {table: batch}})
        done += len(batch)
        # now and then an UpdateItem, as applications do
        if live and rng.random() < 0.3:
            k = rng.choice(sorted(live))
            version += 1
            db.call("DynamoDB_20120810.UpdateItem", {
                "TableName": table, "Key": {"pk": {"S": k[0]}, "sk": {"N": str(k[1])}},
                "UpdateExpression": "SET version = :v, extra = :e ADD sizes :n",
                "ExpressionAttributeValues": {":v": {"N": str(version)},
                                              ":e": {"L": [{"BOOL": True}]},
                                              ":n": {"NS": [str(100 + version)]}}})
            done += 1
    return done
