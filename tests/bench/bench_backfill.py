#!/usr/bin/env python3
"""Benchmark: 'ddb2fs backfill' of 100,000 items from DynamoDB Local into the outbox, then
'ddb2fs drain' on to the local Firestore server with 20 ms added latency per request, next to
the floor measured in the same run: one sequential Scan of the same table, paged by curl.
Prints one JSON object: items/s, read units, CPU seconds and peak RSS (the program's own VmHWM)
of each step.

usage: bench_backfill.py --ddb2fs BIN [--items N] [--segments N] [--latency-ms N] [--smoke]

Targets: faster than the floor, and at most 64 MB of memory whatever the table's size. The exit
status is 0 whether or not they are met; "met" says.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time

from benchlib import INTEGRATION, isolate, measure

sys.path.insert(0, INTEGRATION)
from ddblocal import DynamoDBLocal  # noqa: E402
from fsserver import PROJECT, FirestoreServer  # noqa: E402

TABLE = "Items"


def load(ddb, n):
    """n items of about 400 bytes, 25 to a BatchWriteItem, four writers at once."""
    def batch(start):
        ddb.call("DynamoDB_20120810.BatchWriteItem", {"RequestItems": {TABLE: [
            {"PutRequest": {"Item": {
                "pk": {"S": "item-%07d" % i}, "n": {"N": str(i)},
                "name": {"S": "name of item %d" % i}, "flag": {"BOOL": i % 2 == 0},
                "blob": {"S": "x" * 300},
                "meta": {"M": {"a": {"N": "1.5"}, "b": {"L": [{"S": "q"}, {"N": "2"}]}}}}}}
            for i in range(start, min(start + 25, n))]}})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(batch, range(0, n, 25)))


def main():
    isolate(__file__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.items = 2000
    work = tempfile.mkdtemp(prefix="d2f-bench-")
    ddb = DynamoDBLocal()
    fs = FirestoreServer()
    try:
        ddb.call("DynamoDB_20120810.CreateTable", {
            "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}})
        load(ddb, a.items)

        # the floor: one sequential Scan, paged by curl
        start, seen = time.perf_counter(), 0
        body = {"TableName": TABLE, "ReturnConsumedCapacity": "TOTAL"}
        floor_units = 0.0
        while True:
            page = ddb.call("DynamoDB_20120810.Scan", body)
            seen += len(page["Items"])
            floor_units += page.get("ConsumedCapacity", {}).get("CapacityUnits", 0)
            if not page.get("LastEvaluatedKey"):
                break
            body["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        floor_s = time.perf_counter() - start
        if seen != a.items:
            raise SystemExit("the floor's Scan saw %d items of %d" % (seen, a.items))

        db = os.path.join(work, "outbox.db")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DDB2FS_", "GOOGLE_", "FIRESTORE_", "AWS_"))}
        env.update(DDB2FS_OUTBOX=db, DDB2FS_BACKFILL_SETTLE="0", DDB2FS_BACKFILL_MARGIN="0",
                   **fs.env(), **ddb.env())
        scan_s, scan_cpu, scan_peak, _ = measure(
            [a.ddb2fs, "backfill", "--table", TABLE, "--rate", "1000000", "--segments",
             str(a.segments), "--stream-is-mapped"], env)
        fs.faults(latency_ms=a.latency_ms)
        drain_s, drain_cpu, drain_peak, _ = measure([a.ddb2fs, "drain"], env)
        docs = len(fs.documents())
        if docs != a.items:
            raise SystemExit("Firestore holds %d documents of %d" % (docs, a.items))
        import sqlite3
        con = sqlite3.connect(db)
        units = con.execute("SELECT sum(read_units) FROM backfill_segment").fetchone()[0]
        con.close()
        out = {
            "items": a.items, "segments": a.segments, "latency_ms": a.latency_ms,
            "backfill": {"seconds": round(scan_s, 3), "items_per_s": round(a.items / scan_s),
                         "read_units": units, "cpu_s": round(scan_cpu, 3),
                         "peak_rss_mb": round(scan_peak, 1)},
            "drain": {"seconds": round(drain_s, 3), "items_per_s": round(a.items / drain_s),
                      "cpu_s": round(drain_cpu, 3), "peak_rss_mb": round(drain_peak, 1)},
            "end_to_end_items_per_s": round(a.items / (scan_s + drain_s)),
            "floor_curl_scan": {"seconds": round(floor_s, 3),
                                "items_per_s": round(a.items / floor_s),
                                "read_units": floor_units},
            "peer_node": None,  # not measured yet: see the README
        }
        out["met"] = {"faster_than_floor": scan_s < floor_s,
                      "memory_64mb": max(scan_peak, drain_peak) <= 64}
        print(json.dumps(out, indent=1))
    finally:
        fs.stop()
        ddb.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
