#!/usr/bin/env python3
"""A strict DynamoDB stand-in for tests: DescribeTable and Scan over the JSON 1.0 protocol, every
request's SigV4 signature verified with secrets_server's verifier (service "dynamodb").

  DescribeTable {"TableName"}  -> Table: KeySchema (pk HASH), StreamSpecification NEW_IMAGE,
                                  LatestStreamArn, ItemCount
  Scan {"TableName", "Segment"?, "TotalSegments"?, "Limit"?, "ExclusiveStartKey"?,
        "ConsistentRead"?, "ReturnConsumedCapacity"?}
       Segment and TotalSegments come together (0 <= Segment < TotalSegments <= 1000000); an
       item is in segment crc32(pk) % TotalSegments; a page ends at Limit items or 1 MB, with
       LastEvaluatedKey when more remain; ConsumedCapacity.CapacityUnits is the page's item
       bytes rounded up to 4 KB, one unit per 4 KB consistent, half eventually consistent.
  Faults: every throttle_every-th Scan is refused with HTTP 400
       ProvisionedThroughputExceededException, every error_every-th with HTTP 500.

  POST /_test/config {"items", "item_bytes", "throttle_every", "error_every", "table"}
  POST /_test/requests   every request: time, target, body, status, units

Run alone: dynamodb_server.py [--port N]; it prints "port N".
"""
import datetime
import json
import math
import threading
import time
import zlib

from secrets_server import AwsJsonHandler, Refusal, verify
from serving import LocalServer, serve

REGION = "us-east-1"
AKID, SECRET = "AKIDDDBTEST", "ddb/test+secret"
PAGE_BYTES = 1024 * 1024


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.table = "Big"
        self.items = []
        self.throttle_every = 0
        self.error_every = 0
        self.scans = 0
        self.requests = []

    def configure(self, cfg):
        self.table = cfg.get("table", self.table)
        self.throttle_every = cfg.get("throttle_every", 0)
        self.error_every = cfg.get("error_every", 0)
        n, size = cfg.get("items", 0), cfg.get("item_bytes", 100)
        self.items = [{"pk": {"S": "item-%06d" % i}, "n": {"N": str(i)},
                       "data": {"S": ("%06d" % i) * (size // 6)}} for i in range(n)]


def item_bytes(it):
    return sum(len(k) + len(json.dumps(v)) for k, v in it.items())


class Handler(AwsJsonHandler):
    content_type = "application/x-amz-json-1.0"

    def do_POST(self):
        st = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        if path == "/_test/config":
            with st.lock:
                st.configure(json.loads(body))
            return self.reply(200, {})
        if path == "/_test/requests":
            with st.lock:
                return self.reply(200, st.requests)
        target = self.headers.get("X-Amz-Target", "")
        entry = {"time": time.time(), "target": target}
        try:
            verify("POST", path, query, list(self.headers.items()), body,
                   {AKID: (SECRET, None)}, REGION, datetime.datetime.now(datetime.timezone.utc),
                   service="dynamodb")
            if self.headers.get("Content-Type") != "application/x-amz-json-1.0":
                raise Refusal("SerializationException", "expected application/x-amz-json-1.0")
            req = json.loads(body)
            entry["body"] = req
            code, answer, etype = self.answer(st, target, req, entry)
        except Refusal as r:
            code, answer, etype = 400, {"__type": r.type, "message": r.message}, r.type
        entry["status"] = code
        with st.lock:
            st.requests.append(entry)
        self.reply(code, answer, etype)

    def answer(self, st, target, req, entry):
        with st.lock:
            table, items = st.table, st.items
        if req.get("TableName") != table:
            return 400, {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                         "message": "Requested resource not found"}, "ResourceNotFoundException"
        if target == "DynamoDB_20120810.DescribeTable":
            return 200, {"Table": {
                "TableName": table, "ItemCount": len(items),
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
                "LatestStreamArn": "arn:aws:dynamodb:%s:123456789012:table/%s/stream/"
                                   "2026-01-01T00:00:00.000" % (REGION, table)}}, None
        if target != "DynamoDB_20120810.Scan":
            raise Refusal("UnknownOperationException", "unknown operation")
        with st.lock:
            st.scans += 1
            n = st.scans
            throttle = st.throttle_every and n % st.throttle_every == 0
            error = st.error_every and n % st.error_every == 0
        if throttle:
            return 400, {"__type": "com.amazonaws.dynamodb.v20120810#"
                                   "ProvisionedThroughputExceededException",
                         "message": "The level of configured provisioned throughput for the "
                                    "table was exceeded."}, \
                "ProvisionedThroughputExceededException"
        if error:
            return 500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                         "message": "Internal server error"}, "InternalServerError"
        seg, total = req.get("Segment"), req.get("TotalSegments")
        if (seg is None) != (total is None) or (total is not None and not 0 <= seg < total):
            raise Refusal("ValidationException", "bad Segment / TotalSegments")
        mine = [it for it in items
                if total is None or zlib.crc32(it["pk"]["S"].encode()) % total == seg]
        start = req.get("ExclusiveStartKey")
        if start is not None:
            keys = [it["pk"]["S"] for it in mine]
            if set(start) != {"pk"} or start["pk"]["S"] not in keys:
                raise Refusal("ValidationException", "The provided starting key is invalid")
            mine = mine[keys.index(start["pk"]["S"]) + 1:]
        limit = req.get("Limit") or len(mine)
        page, size = [], 0
        for it in mine:
            if len(page) >= limit or size >= PAGE_BYTES:
                break
            page.append(it)
            size += item_bytes(it)
        units = math.ceil(size / 4096) * (1.0 if req.get("ConsistentRead") else 0.5)
        entry["units"] = units
        out = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
        if len(page) < len(mine):
            out["LastEvaluatedKey"] = {"pk": page[-1]["pk"]}
        if req.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
            out["ConsumedCapacity"] = {"TableName": table, "CapacityUnits": units}
        return 200, out, None


def make(port):
    srv = LocalServer(Handler, port)
    srv.state = State()
    return srv


if __name__ == "__main__":
    serve(make)
