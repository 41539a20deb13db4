#!/usr/bin/env python3
"""Benchmark: 'ddb2fs verify' of 100,000 items against their 100,000 documents, both served
locally with 20 ms added latency per request (tests/bench/verify_servers.py), next to the floor
measured in the same run: a sequential Scan of the same table paged by curl (one request after
another, each page's LastEvaluatedKey the next one's ExclusiveStartKey). Prints one JSON object.

usage: bench_verify.py --ddb2fs BIN [--items N] [--segments N] [--latency-ms N] [--runs N]
                       [--smoke]

The documents are written by the benchmark as the README's mapping table says the items map
(strings, integers, doubles, booleans, a map, a list), not by ddb2fs; verify must find the copy
exact (exit 0), or the benchmark fails.

Targets: at least 5,000 items/s with 8 segments and at most 64 MB of peak memory. The exit
status is 0 whether or not they are met; "met" says.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import isolate, relay_env, wait_peak
from fsserver import PROJECT, ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = "Bench"


def item(i):
    return {"pk": {"S": "k%07d" % i}, "n": {"N": str(i * 7)}, "price": {"N": "%d.25" % (i % 1000)},
            "name": {"S": "customer number %d" % i}, "active": {"BOOL": i % 3 == 0},
            "address": {"M": {"city": {"S": "Zürich"}, "zip": {"N": str(8000 + i % 100)}}},
            "tags": {"L": [{"S": "a"}, {"S": "b%d" % (i % 5)}]}}


def fields(i):
    """The document of item(i), by the README's mapping table."""
    return {"pk": {"stringValue": "k%07d" % i}, "n": {"integerValue": str(i * 7)},
            "price": {"doubleValue": (i % 1000) + 0.25},
            "name": {"stringValue": "customer number %d" % i},
            "active": {"booleanValue": i % 3 == 0},
            "address": {"mapValue": {"fields": {"city": {"stringValue": "Zürich"},
                                                "zip": {"integerValue": str(8000 + i % 100)}}}},
            "tags": {"arrayValue": {"values": [{"stringValue": "a"},
                                               {"stringValue": "b%d" % (i % 5)}]}}}


class Servers:
    def __init__(self, kind, path, latency_ms):
        self.srv = ServerProcess.__new__(ServerProcess)
        self.srv.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "verify_servers.py"), kind, path,
             str(latency_ms)], stdout=subprocess.PIPE, text=True)
        line = self.srv.proc.stdout.readline()
        if not line.startswith("port "):
            raise SystemExit("verify_servers.py %s did not start" % kind)
        self.port = int(line.split()[1])

    def stop(self):
        self.srv.stop()


def curl_floor(port, items):
    """Seconds a sequential Scan of the whole table takes, paged by curl."""
    start, key, got = time.perf_counter(), None, 0
    while True:
        body = {"TableName": TABLE}
        if key:
            body["ExclusiveStartKey"] = key
        p = subprocess.run(
            ["curl", "-sS", "--fail", "-H", "X-Amz-Target: DynamoDB_20120810.Scan",
             "-H", "Content-Type: application/x-amz-json-1.0", "--data-binary", "@-",
             "http://127.0.0.1:%d/" % port], input=json.dumps(body), capture_output=True,
            text=True, check=True)
        page = json.loads(p.stdout)
        got += len(page["Items"])
        key = page.get("LastEvaluatedKey")
        if not key:
            break
    if got != items:
        raise SystemExit("the floor's Scan read %d items of %d" % (got, items))
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="a short run, for CI")
    args = ap.parse_args()
    isolate(__file__)
    if args.smoke:
        args.items, args.runs = 5000, 1

    work = tempfile.mkdtemp(prefix="d2f-bench-verify-",
                            dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    prefix = "projects/%s/databases/(default)/documents/%s/" % (PROJECT, TABLE)
    with open(os.path.join(work, "items.jsonl"), "w") as f:
        for i in range(args.items):
            f.write(json.dumps(item(i), ensure_ascii=False) + "\n")
    with open(os.path.join(work, "docs.jsonl"), "w") as f:
        for i in range(args.items):
            f.write(json.dumps({"name": prefix + "k%07d" % i, "fields": fields(i)}) + "\n")
    ddb = Servers("dynamodb", os.path.join(work, "items.jsonl"), args.latency_ms)
    fs = Servers("firestore", os.path.join(work, "docs.jsonl"), args.latency_ms)
    try:
        env = relay_env(os.path.join(work, "no-outbox.db"))
        env.update(FIRESTORE_EMULATOR_HOST="127.0.0.1:%d" % fs.port,
                   GOOGLE_CLOUD_PROJECT=PROJECT, DDB2FS_ALLOW_EMULATOR="1",
                   AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="AKIDBENCH",
                   AWS_SECRET_ACCESS_KEY="bench-secret",
                   AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:%d" % ddb.port)
        argv = [args.ddb2fs, "verify", "--table", TABLE, "--segments", str(args.segments),
                "--recheck-after", "0", "--json"]
        runs = []
        for _ in range(args.runs):
            out = os.path.join(work, "report.json")
            with open(out, "w") as f:
                wall, cpu, rss, _ = measure_to(argv, env, f)
            with open(out) as f:
                report = json.load(f)
            if (report["items"], report["equal"], report["exact"]) != (args.items, args.items,
                                                                       True):
                raise SystemExit("verify did not find the copy exact: %s" % json.dumps(report)[:500])
            runs.append({"seconds": wall, "cpu": cpu, "rss": rss})
        runs.sort(key=lambda r: r["seconds"])
        run = runs[len(runs) // 2]
        floor = sorted(curl_floor(ddb.port, args.items) for _ in range(args.runs))[args.runs // 2]
    finally:
        ddb.stop()
        fs.stop()
        shutil.rmtree(work)

    rate = args.items / run["seconds"]
    out = {"benchmark": "verify", "smoke": args.smoke, "items": args.items,
           "documents": args.items, "segments": args.segments, "latency_ms": args.latency_ms,
           "ddb2fs": {"seconds": round(run["seconds"], 3), "items_per_s": round(rate),
                      "cpu_seconds": round(run["cpu"], 3),
                      "peak_rss_mb": round(run["rss"], 1),
                      "all_seconds": [round(r["seconds"], 3) for r in runs]},
           "floor_curl_sequential_scan": {"seconds": round(floor, 3),
                                          "items_per_s": round(args.items / floor)},
           "runs": args.runs,
           "targets": {"items_per_s_min": 5000, "peak_rss_mb_max": 64},
           "met": rate >= 5000 and run["rss"] <= 64}
    print(json.dumps(out, indent=2))


def measure_to(argv, env, out):
    """measure(), with the command's stdout kept in out."""
    start = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.PIPE)
    err = p.stderr
    status, usage, peak = wait_peak(p.pid)
    wall = time.perf_counter() - start
    text = err.read().decode()
    err.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("verify failed (%d): %s" % (os.waitstatus_to_exitcode(status), text))
    return wall, usage.ru_utime + usage.ru_stime, peak, text


if __name__ == "__main__":
    main()
