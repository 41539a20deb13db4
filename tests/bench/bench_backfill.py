#!/usr/bin/env python3
"""Benchmark: 'ddb2fs backfill' of 100,000 items from DynamoDB Local into the outbox, then
'ddb2fs drain' on to the local Firestore server with 20 ms added latency per request, next to
the floor measured in the same run (one sequential Scan of the same table, paged by curl) and
the peer users write today (tests/bench/node-peer/backfill.js: the AWS SDK for JavaScript's
parallel Scan with as many segments, and @google-cloud/firestore's BulkWriter, into the emptied
server at the same latency). Prints one JSON object: items/s, read units, CPU seconds and peak
RSS (the program's own VmHWM) of each step and of the peer.

usage: bench_backfill.py --ddb2fs BIN [--items N] [--segments N] [--latency-ms N] [--smoke]

Targets: a backfill faster than the floor, scan and drain together faster than the peer, and at
most 64 MB of memory whatever the table's size. The exit status is 0 whether or not they are
met; "met" says. It is 1 when a copy is short (the peer's too), and, outside --smoke, when the
peer cannot run (node-peer not installed: tools/test installs it; no network namespace).
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time

from benchlib import HERE, INTEGRATION, NODE_PEER, isolate, measure, node_peer_missing

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


def backfill_peer(fs, ddb, segments, latency_ms, expected):
    """backfill.js on the same table into the emptied server at the same latency; its figures,
    or why it was not run. It must leave the documents ddb2fs left (expected: name -> fields),
    every one, under the same names with the same values: a peer that wrote fewer, or other
    documents, is not a comparison."""
    items = len(expected)
    missing = node_peer_missing()
    if not missing and not os.path.isdir(os.path.join(NODE_PEER, "node_modules", "@aws-sdk",
                                                      "client-dynamodb")):
        missing = "an older install at %s, without the AWS SDK (tools/test installs it)" % (
            os.path.normpath(NODE_PEER))
    if missing:
        return {"skipped": missing}
    fs.control("reset")
    fs.faults(latency_ms=latency_ms, record_bodies=False)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DDB2FS_", "GOOGLE_", "FIRESTORE_", "AWS_"))}
    env.update(ddb.env(), NODE_PATH=os.path.join(NODE_PEER, "node_modules"))
    wall, cpu, rss, err = measure(
        ["node", os.path.join(HERE, "node-peer", "backfill.js"), ddb.url, TABLE, str(segments),
         str(fs.port)], env)
    summary = json.loads(err.strip().splitlines()[-1])
    stats = fs.stats()
    docs = stats["documents"]
    if summary["items"] != items or docs != items:
        raise SystemExit("the peer scanned %d items of %d and Firestore holds %d documents"
                         % (summary["items"], items, docs))
    written = fs.documents()
    differ = [n for n in expected if written.get(n) != expected[n]]
    if differ:
        raise SystemExit("the peer's documents differ from ddb2fs's: %d of %d, e.g. '%s'"
                         % (len(differ), items, differ[0]))
    return {"seconds": round(wall, 3), "items_per_s": round(items / wall),
            "seconds_in_script": round(summary["seconds"], 3),
            "read_units": summary["read_units"], "cpu_s": round(cpu, 3),
            "peak_rss_mb": round(rss, 1), "batch_writes": stats["batch_writes"],
            "documents_after": docs, "documents_as_ddb2fs": True}


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
        written = fs.documents()
        docs = len(written)
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
        }
        peer = out["node_peer_aws_sdk_bulkwriter"] = backfill_peer(fs, ddb, a.segments,
                                                                   a.latency_ms, written)
        out["met"] = {"faster_than_floor": scan_s < floor_s,
                      "faster_than_peer": (scan_s + drain_s < peer["seconds"]
                                           if "seconds" in peer else None),
                      "memory_64mb": max(scan_peak, drain_peak) <= 64}
        print(json.dumps(out, indent=1))
        if "skipped" in peer and not a.smoke:
            raise SystemExit("the peer was not measured: " + peer["skipped"])
    finally:
        fs.stop()
        ddb.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
