#!/usr/bin/env python3
"""The verify benchmark's servers, each in a process of its own, each answering after a fixed
latency:

  verify_servers.py dynamodb ITEMS.jsonl LATENCY_MS
      DescribeTable, Scan (Segment/TotalSegments, ExclusiveStartKey, 1 MB pages, Limit,
      ConsumedCapacity) and GetItem over the items of the file (one JSON item a line; the
      partition key is "pk", a string).
  verify_servers.py firestore DOCS.jsonl LATENCY_MS
      tests/servers/firestore_server.py with the documents of the file ({"name","fields"} a
      line) loaded, its reads (batchGet, get, list) answered after the latency too.

Each prints "port N" once it listens on 127.0.0.1."""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "servers"))
import firestore_server  # noqa: E402
from serving import LocalServer  # noqa: E402

PAGE_BYTES = 1024 * 1024


class Table:
    def __init__(self, path):
        self.texts, self.keys = [], []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    self.texts.append(line)
                    self.keys.append(json.loads(line)["pk"]["S"])
        self.where = {k: i for i, k in enumerate(self.keys)}


class DynamoDB(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        time.sleep(self.server.latency)
        target = self.headers.get("X-Amz-Target", "").split(".")[-1]
        t = self.server.table
        if target == "DescribeTable":
            self.answer(200, json.dumps({"Table": {
                "TableName": req["TableName"], "ItemCount": len(t.texts),
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}}))
        elif target == "GetItem":
            i = t.where.get(req["Key"]["pk"]["S"])
            self.answer(200, '{"Item":%s}' % t.texts[i] if i is not None else "{}")
        elif target == "Scan":
            seg, total = req.get("Segment", 0), req.get("TotalSegments", 1)
            limit = req.get("Limit", 1 << 30)
            start = req.get("ExclusiveStartKey")
            i = t.where[start["pk"]["S"]] + total if start else seg
            out, size = [], 0
            while i < len(t.texts) and size < PAGE_BYTES and len(out) < limit:
                out.append(t.texts[i])
                size += len(t.texts[i])
                i += total
            body = '{"Items":[%s],"Count":%d,"ScannedCount":%d,' % (",".join(out), len(out),
                                                                  len(out))
            body += '"ConsumedCapacity":{"TableName":"%s","CapacityUnits":%.1f}' % (
                req["TableName"], size / 8192.0)
            if i < len(t.texts) and out:
                last = t.keys[i - total]
                body += ',"LastEvaluatedKey":{"pk":{"S":%s}}' % json.dumps(last)
            self.answer(200, body + "}")
        else:
            self.answer(400, json.dumps({"__type": "UnknownOperationException",
                                         "message": target}))


class SlowFirestore(firestore_server.Handler):
    def batch_get(self, prefix, body):
        time.sleep(self.server.latency)
        super().batch_get(prefix, body)

    def get(self, prefix, rest, query):
        time.sleep(self.server.latency)
        super().get(prefix, rest, query)

    def record(self, body):
        pass  # a benchmark keeps no request log


class FastList(SlowFirestore):
    """Lists a collection from names sorted once, not at every page (the test server sorts
    every name per page: with 100,000 documents that, not ddb2fs, would be measured)."""

    def get(self, prefix, rest, query):
        if len(rest.split("/")) % 2 == 0:
            return super().get(prefix, rest, query)
        time.sleep(self.server.latency)
        name = prefix + "/" + rest
        st = self.store
        with st.lock:
            names = self.server.sorted.get(name)
            if names is None:
                names = sorted(n for n in st.docs if n.startswith(name + "/")
                               and "/" not in n[len(name) + 1:])
                self.server.sorted[name] = names
            size = int(query.get("pageSize", ["100"])[0])
            start = int(query.get("pageToken", ["0"])[0])
            page = [self.document(n) for n in names[start:start + size] if n in st.docs]
            if query.get("mask.fieldPaths") == ["__name__"]:  # names only, as Firestore does
                page = [{k: v for k, v in d.items() if k != "fields"} for d in page]
        out = {"documents": page}
        if start + size < len(names):
            out["nextPageToken"] = str(start + size)
        self.reply(200, out)


def main():
    kind, path, latency = sys.argv[1], sys.argv[2], int(sys.argv[3]) / 1000.0
    if kind == "dynamodb":
        srv = LocalServer(DynamoDB)
        srv.table = Table(path)
    else:
        srv = LocalServer(FastList)
        srv.store = firestore_server.Store()
        srv.sorted = {}  # the documents do not change during the benchmark
        stamp = firestore_server.now_rfc3339()
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                srv.store.docs[d["name"]] = {"fields": d["fields"], "createTime": stamp,
                                             "updateTime": stamp}
    srv.latency = latency
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
