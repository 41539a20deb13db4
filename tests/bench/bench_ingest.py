#!/usr/bin/env python3
"""Benchmark: 'ddb2fs ingest' of a 10,000-record (~6 MB) event into an outbox on local disk,
next to a baseline measured in the same run (tests/bench/baseline_ingest.c: parse with cJSON,
insert raw JSON and dedupe key in one transaction). Prints one JSON object.

usage: bench_ingest.py --ddb2fs BIN --baseline BIN [--runs N] [--records N] [--smoke]

Targets: ddb2fs within 1.5x of the baseline's time, peak RSS under 64 MB. The exit status is 0
whether or not they are met (this is a measurement, not a test); "met" says.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import wait_peak

EVENTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration")
KEYS_SETTING = "Orders=customer,order"  # the key schema of tests/integration/events.py


def measure(argv, env, stdin_path=None):
    """Wall time (s) and peak RSS (MiB) of one run of argv."""
    start = time.perf_counter()
    with open(stdin_path or os.devnull, "rb") as stdin:
        p = subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        status, _, peak = wait_peak(p.pid)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed: %s" % (argv[0], p.stderr.read().decode()))
    p.stderr.close()
    return elapsed, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--smoke", action="store_true", help="one short run, for CI")
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.records = 1, 1000

    work = tempfile.mkdtemp(prefix="d2f-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    path = os.path.join(work, "event.json")
    # made in a child process: a child's peak RSS counts the parent's memory it was forked
    # with, so this process stays small
    subprocess.run([sys.executable, "-c", "import sys, events; open(sys.argv[1], 'w').write("
                    "events.dumps(events.event(int(sys.argv[2]), seed=42)))", path,
                    str(args.records)], check=True, cwd=EVENTS_DIR)
    size = os.path.getsize(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDB2FS_")}
    env["DDB2FS_KEYS"] = KEYS_SETTING

    results = {"ddb2fs": [], "baseline": []}
    for i in range(args.runs):
        # alternate which goes first, so that neither always meets a warm cache
        for who in (["ddb2fs", "baseline"] if i % 2 == 0 else ["baseline", "ddb2fs"]):
            db = os.path.join(work, "%s-%d.db" % (who, i))
            if who == "ddb2fs":
                run_env = dict(env, DDB2FS_OUTBOX=db)
                results[who].append(measure([args.ddb2fs, "ingest", "-"], run_env, path))
            else:
                results[who].append(measure([args.baseline, path, db], env))
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.remove(db + suffix)
    os.remove(path)
    os.rmdir(work)

    def summary(runs):
        t = statistics.median(r[0] for r in runs)
        return {"seconds": round(t, 4), "records_per_s": round(args.records / t),
                "peak_rss_mb": round(max(r[1] for r in runs), 1),
                "all_seconds": [round(r[0], 4) for r in runs]}

    d, b = summary(results["ddb2fs"]), summary(results["baseline"])
    ratio = d["seconds"] / b["seconds"]
    out = {"benchmark": "ingest", "smoke": args.smoke, "records": args.records,
           "event_bytes": size, "runs": args.runs, "ddb2fs": d, "baseline": b,
           "time_ratio": round(ratio, 3),
           "targets": {"time_ratio_max": 1.5, "peak_rss_mb_max": 64},
           "met": ratio <= 1.5 and d["peak_rss_mb"] < 64}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
