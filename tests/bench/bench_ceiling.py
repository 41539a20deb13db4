#!/usr/bin/env python3
"""Benchmark: the ceiling of one outbox file on EFS-like latency.

W concurrent 'ddb2fs lambda' processes (as W Lambda instances, each with a Runtime API of its
own) take batches of B records for a while, into one outbox on the test-only latency VFS
(DDB2FS_TEST_LATENCY=efs: tests/vfs/latency_vfs.c, its numbers printed with the results) and
the rollback journal, as on EFS. Each invocation ingests its batch, then drains while time
remains, as in production, against the local Firestore server with 20 ms a commit: so a drain
runs all along, and writers compete with it for the lock.

For each W x B: records/s made durable, p50/p99/max time per batch (invoke to answer), lock
waits per batch (the ingest's own count, from its log line), batches whose records came back
as failures, and whether any batch came near a 30 s Lambda deadline. The knee, per B: the
first W where adding writers gains under 10% records/s.

Needs a ddb2fs built with -DDDB2FS_LATENCY_VFS=ON (tools/test builds one).

Then the same writers (16, batches of 100) into a partitioned outbox (DDB2FS_PARTITIONS=8):
records/s next to one file's, and the speed-up.

usage: bench_ceiling.py --ddb2fs BIN [--seconds S] [--smoke] [--writers 1,4,16,64]
                        [--batches 10,100,1000] [--partitions 8] [--partition-writers 16]
                        [--partition-batch 100]                          prints one JSON object
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import events  # noqa: E402
from fsserver import FirestoreServer, RuntimeServer  # noqa: E402

from benchlib import isolate  # noqa: E402

DEADLINE_MS = 30000
LATENCY = "efs"
LATENCY_NUMBERS_US = {"sync": 2700, "lock": 1000, "unlock": 1000, "check": 1000, "open": 1000,
                      "delete": 1000, "access": 1000, "write": 0, "read": 0}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def results(rt):
    with urllib.request.urlopen(rt.url + "/_test/results", timeout=10) as r:
        return json.loads(r.read())["results"]


def writer(rt, w, batch, until, out):
    """Invokes batches of `batch` records one after the other until `until`."""
    n = 0
    while time.time() < until:
        first = (w + 1) * 10 ** 12 + n * batch
        ev = events.event(batch, first=first, seed=w * 1000 + n, customers=max(1, batch // 2))
        start = time.time()
        rid = rt.invoke(ev, timeout_ms=DEADLINE_MS)
        while True:
            got = results(rt).get(rid)
            if got:
                break
            time.sleep(0.005)
        out.append({"ms": got["at"] - start * 1000, "records": batch,
                    "failed": len(got["body"].get("batchItemFailures", []))
                    if isinstance(got.get("body"), dict) else batch})
        n += 1


def run(binary, work, fs, writers, batch, seconds, partitions=1):
    db = os.path.join(work, "outbox-%d-%d-%d.db" % (writers, batch, partitions))
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DDB2FS_", "GOOGLE_", "FIRESTORE_", "AWS_"))}
    base.update(fs.env(), DDB2FS_KEYS=events.KEYS_SETTING, DDB2FS_OUTBOX=db,
                DDB2FS_JOURNAL="delete", DDB2FS_TEST_LATENCY=LATENCY,
                DDB2FS_PARTITIONS=str(partitions))
    # the outbox exists before the instances start, as on EFS after the first invocation
    subprocess.run([binary, "status"], env=base, capture_output=True)
    rts, procs, logs = [], [], []
    try:
        for i in range(writers):
            rt = RuntimeServer()
            log = open(os.path.join(work, "lambda-%d-%d-%d.log" % (writers, batch, i)), "w+")
            procs.append(subprocess.Popen([binary, "lambda"], env=dict(
                base, AWS_LAMBDA_RUNTIME_API=rt.api), stdout=log, stderr=log))
            rts.append(rt)
            logs.append(log)
        out, threads = [], []
        start = time.time()
        until = start + seconds
        for i, rt in enumerate(rts):
            t = threading.Thread(target=writer, args=(rt, i, batch, until, out))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        wall = time.time() - start
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for rt in rts:
            rt.stop()
    waits = []
    for log in logs:
        log.seek(0)
        for line in log:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("msg") == "batch durable" and "lock_wait_ms" in j:
                waits.append(j["lock_wait_ms"])
        log.close()
    durable = sum(b["records"] for b in out if b["failed"] == 0)
    ms = [b["ms"] for b in out]
    return {"writers": writers, "batch": batch, "partitions": partitions, "batches": len(out),
            "records_per_s": round(durable / wall, 1),
            "batch_ms": {"p50": round(pct(ms, 50), 1), "p99": round(pct(ms, 99), 1),
                         "max": round(max(ms), 1)} if ms else None,
            "lock_wait_ms": {"p50": pct(waits, 50), "p99": pct(waits, 99),
                             "max": max(waits) if waits else None},
            "failed_batches": sum(1 for b in out if b["failed"]),
            "near_deadline": any(m > DEADLINE_MS - 1500 for m in ms)}


def knee(rows, batch):
    line = sorted((r for r in rows if r["batch"] == batch and r["partitions"] == 1),
                  key=lambda r: r["writers"])
    for prev, cur in zip(line, line[1:]):
        if cur["records_per_s"] < prev["records_per_s"] * 1.1 or cur["near_deadline"]:
            return {"batch": batch, "writers": prev["writers"],
                    "records_per_s": prev["records_per_s"]}
    return {"batch": batch, "writers": None, "note": "no knee within the writers measured"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--writers", default="1,4,16,64")
    ap.add_argument("--batches", default="10,100,1000")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--partitions", default="8",
                    help="partition counts compared with one file at --partition-writers "
                         "writers and --partition-batch records a batch")
    ap.add_argument("--partition-writers", type=int, default=16)
    ap.add_argument("--partition-batch", type=int, default=100)
    args = ap.parse_args()
    isolate(__file__)
    if args.smoke:
        args.seconds, args.writers, args.batches = 2, "1,4", "10,100"
        args.partitions, args.partition_writers = "4", 4
    writers = [int(x) for x in args.writers.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    work = tempfile.mkdtemp(prefix="d2f-bench-ceiling-", dir=os.environ.get("BENCH_DIR",
                                                                             "/var/tmp"))
    fs = FirestoreServer()
    rows, split = [], []
    counts = [int(x) for x in args.partitions.split(",") if x]
    try:
        fs.faults(latency_ms=20)
        for b in batches:
            for w in writers:
                rows.append(run(args.ddb2fs, work, fs, w, b, args.seconds))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        # the same writers into one file and into N files
        w, b = args.partition_writers, args.partition_batch
        one = next((r for r in rows if (r["writers"], r["batch"]) == (w, b)), None)
        if counts and one is None:
            one = run(args.ddb2fs, work, fs, w, b, args.seconds)
            print(json.dumps(one), file=sys.stderr, flush=True)
        for n in counts:
            r = run(args.ddb2fs, work, fs, w, b, args.seconds, partitions=n)
            print(json.dumps(r), file=sys.stderr, flush=True)
            split.append({"writers": w, "batch": b, "partitions": n,
                          "records_per_s": r["records_per_s"],
                          "one_file_records_per_s": one["records_per_s"],
                          "speedup": round(r["records_per_s"] / one["records_per_s"], 2)
                          if one["records_per_s"] else None,
                          "batch_ms": r["batch_ms"], "failed_batches": r["failed_batches"],
                          "near_deadline": r["near_deadline"]})
    finally:
        fs.stop()
    print(json.dumps({"benchmark": "ceiling", "smoke": args.smoke, "seconds": args.seconds,
                      "latency_vfs_us": LATENCY_NUMBERS_US, "journal": "delete",
                      "deadline_ms": DEADLINE_MS, "runs": rows,
                      "knees": [knee(rows, b) for b in batches],
                      "partitioned": split,
                      "met": not any(r["near_deadline"] or r["failed_batches"]
                                     for r in rows + split)},
                     indent=2))


if __name__ == "__main__":
    main()
