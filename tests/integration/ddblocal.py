"""AWS's DynamoDB Local for tests: start it, call its API (signed by curl --aws-sigv4 with
dummy credentials), run a seeded workload over every DynamoDB type, and read its stream into
events shaped exactly as Lambda delivers them."""
import base64
import collections
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

    def fast_call(self, target, body):
        """call() over one kept-alive connection, for workloads of thousands of calls.
        DynamoDB Local checks that a request is signed, not the signature, so the header
        has SigV4's form with a dummy signature (call() signs for real)."""
        import http.client
        if getattr(self, "_conn", None) is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0",
                   "X-Amz-Date": date,
                   "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s/%s/dynamodb/aws4_request, "
                                    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=%s"
                                    % (KEY_ID, date[:8], REGION, "0" * 64)}
        self._conn.request("POST", "/", json.dumps(body).encode(), headers)
        r = self._conn.getresponse()
        answer = json.loads(r.read())
        if r.status != 200:
            raise RuntimeError("%s: HTTP %s %s" % (target, r.status, answer))
        return answer

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

    def create_table(self, name, pk, sk, sk_type="N"):
        self.call("DynamoDB_20120810.CreateTable", {
            "TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"},
                          {"AttributeName": sk, "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": pk, "AttributeType": "S"},
                                     {"AttributeName": sk, "AttributeType": sk_type}],
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


# The exactness workload: what ddb2fs must carry bit for bit.
NUL_STRINGS = ["\0start", "mid\0dle", "end\0", "\0", "\0\0two", "ärger\0✓"]
STRINGS = ["", "plain", "ärger", "emoji ✓ \U0001F600", "a/b.c", "%25", "#", ".", "..",
           "__x__", "quote \" back \\ nl\n"] + NUL_STRINGS
NAMES = ["\0lead", "mid\0name", "trail\0", "%pct", "____", "a.b", "`tick`", "emoji✓", "#", "/",
         "."]
RESERVED_NAMES = ["__r__", "_____", "__\0__"]
NON_CANONICAL = ["007", "+3", ".5", "5.", "1e3", "1.500", "-0", "+0.0", "0E+5", "1.0E-2",
                 "-.25", "00.100", "1E+3", "-5.", "+.5e-1"]
FIXED_NUMBERS = ["84.784156556355984562591651843016712255", "0.1", "0.3", "1E-130", "-1E-130",
                 "9.9999999999999999999999999999999999999E+125", "9223372036854775807",
                 "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
                 "12345678901234567890123456789012345678", "1e21", "1e-7", "100000000000000000000",
                 "2.5", "-0", "0", "4.35", "1.7976931348623157E+125", "9007199254740993",
                 "123456789012345678901234567890.12345678"]


def boundary_number(rng):
    """A decimal of 38 significant digits next to a double boundary: the exact midpoint of two
    neighbouring doubles, cut to 38 digits, or one unit of the 38th digit off it."""
    import decimal
    import math
    x = rng.uniform(1, 10) * 10.0 ** rng.randint(-120, 120)
    mid = (decimal.Decimal(x) + decimal.Decimal(math.nextafter(x, math.inf))) / 2
    with decimal.localcontext() as c:
        c.prec = 38
        d = +mid
        d = d.next_plus() if rng.random() < 0.3 else d.next_minus() if rng.random() < 0.4 else d
    sign = "-" if rng.random() < 0.3 else ""
    return sign + str(d)


def number_text(rng):
    r = rng.random()
    if r < 0.35:
        return boundary_number(rng)
    if r < 0.65:
        return rng.choice(FIXED_NUMBERS)
    if r < 0.8:
        return str(rng.randint(-(1 << 64), 1 << 64))
    return "%d.%d" % (rng.randint(-10 ** 6, 10 ** 6), rng.randint(0, 10 ** 9))


def b64(data):
    return base64.b64encode(data).decode()


def exact_value(rng, depth=0):
    """A random attribute value of any type; maps and lists nest a few levels."""
    kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (["M", "L"] if depth < 3 else [])
    k = rng.choice(kinds)
    if k == "S":
        return {"S": rng.choice(STRINGS)}
    if k == "N":
        return {"N": number_text(rng)}
    if k == "B":
        return {"B": b64(rng.randbytes(rng.randrange(0, 12)))}
    if k == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if k == "NULL":
        return {"NULL": True}
    if k == "SS":
        return {"SS": rng.sample([s for s in STRINGS if s], rng.randint(1, 4))}
    if k == "NS":
        members, seen = [], set()
        import decimal
        while len(members) < rng.randint(1, 4):
            t = number_text(rng)
            if decimal.Decimal(t) not in seen:
                seen.add(decimal.Decimal(t))
                members.append(t)
        return {"NS": members}
    if k == "BS":
        return {"BS": [b64(bytes([b]) + rng.randbytes(rng.randrange(0, 4)))
                       for b in rng.sample(range(256), rng.randint(1, 3))]}
    if k == "M":
        return {"M": {rng.choice(NAMES + ["k%d" % i for i in range(5)]): exact_value(rng, depth + 1)
                      for _ in range(rng.randint(0, 3))}}
    return {"L": [exact_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}


# (table, sort key type): sort keys of type S, N and B; partition keys of type S
EXACT_TABLES = [("ExactS", "S"), ("ExactN", "N"), ("ExactB", "B")]


def exact_keys(rng, sk_type, count):
    """`count` distinct (pk, sk) AttributeValue pairs for a table: U+0000 at the start, middle
    and end, the id separator and escapes, reserved-looking and hashed (long) ids."""
    pks = ["user-%d" % i for i in range(12)] + ["\0x", "a\0b", "a\0c", "z\0", "a#b", "a/b",
                                                "%41", ".", "..", "__k", "p" * 1400]
    out, seen = [], set()
    n_forms = {}
    while len(out) < count:
        pk = rng.choice(pks)
        if sk_type == "S":
            sk = rng.choice(["1", "x__", "\0", "s\0", "\0s", "#", "b/c", "%", ".", "__s__",
                             "q" * 300]) if rng.random() < 0.5 else "s%d" % rng.randrange(40)
        elif sk_type == "N":
            v = rng.choice([0, 1, -1, 7, 1000, 2.5, -0.125, 10 ** 30, 10 ** -20, 123456789,
                            rng.randrange(10 ** 6)])
            # one text per value, so that no two items share a canonical id
            sk = n_forms.setdefault(v, {0: "0", 1000: "1E+3", 10 ** 30: "1E+30",
                                        10 ** -20: "1E-20", 2.5: "2.50"}.get(v, str(v)))
        else:
            sk = b64(bytes([rng.randrange(256)]) + rng.randbytes(rng.randrange(0, 6)))
        if (pk, sk) in seen:
            continue
        seen.add((pk, sk))
        out.append({"pk": {"S": pk}, "sk": {sk_type: sk}})
    return out


def exact_item(rng, key, version, reserved=False):
    it = dict(key)
    it["version"] = {"N": str(version)}
    for _ in range(rng.randint(2, 7)):
        it[rng.choice(NAMES + ["f%d" % i for i in range(8)])] = exact_value(rng)
    it["nul"] = {"S": rng.choice(NUL_STRINGS)}
    it["num"] = {"N": number_text(rng)}
    if reserved:
        name = rng.choice(RESERVED_NAMES)
        if rng.random() < 0.5:
            it[name] = exact_value(rng)
        else:
            it["deep"] = {"M": {"in": {"M": {name: {"S": "hidden"}}}}}
    return it


def exact_workload(db, operations, seed, keys_per_table=60):
    """Puts, overwrites, UpdateItems (with number forms DynamoDB Local keeps as written),
    deletes and re-creations over EXACT_TABLES; `operations` in all. Each one changes its item
    (every write sets a new version; a delete is of a live item), so each makes exactly one
    stream record. Returns the stream records expected, by eventName and table."""
    rng = random.Random(seed)
    keys = {t: exact_keys(rng, st, keys_per_table) for t, st in EXACT_TABLES}
    live = {t: set() for t, _ in EXACT_TABLES}
    expected = collections.Counter()
    done = version = 0
    while done < operations:
        table = rng.choice([t for t, _ in EXACT_TABLES])
        i = rng.randrange(keys_per_table)
        key = keys[table][i]
        version += 1
        r = rng.random()
        if i in live[table] and r < 0.15:
            db.fast_call("DynamoDB_20120810.DeleteItem", {"TableName": table, "Key": key})
            live[table].discard(i)
            expected[(table, "REMOVE")] += 1
        elif i in live[table] and r < 0.55:
            expected[(table, "MODIFY")] += 1
            v = rng.choice(NON_CANONICAL)
            db.fast_call("DynamoDB_20120810.UpdateItem", {
                "TableName": table, "Key": key,
                "UpdateExpression": "SET version = :v, nc = :n, #nul = :s, ncl = :l, ncm = :m",
                "ExpressionAttributeNames": {"#nul": rng.choice(NAMES)},
                "ExpressionAttributeValues": {
                    ":v": {"N": str(version)}, ":n": {"N": v},
                    ":s": {"S": rng.choice(NUL_STRINGS)},
                    ":l": {"L": [{"N": rng.choice(NON_CANONICAL)}, {"L": [{"N": v}]}]},
                    ":m": {"M": {"x": {"N": rng.choice(NON_CANONICAL)}}}}})
        else:
            # a put: a new item, an overwrite, or a re-creation after a delete
            expected[(table, "MODIFY" if i in live[table] else "INSERT")] += 1
            db.fast_call("DynamoDB_20120810.PutItem", {
                "TableName": table,
                "Item": exact_item(rng, key, version, reserved=rng.random() < 0.06)})
            live[table].add(i)
        done += 1
    return expected
