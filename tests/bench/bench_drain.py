#!/usr/bin/env python3
"""Benchmark: 'ddb2fs drain' of 100,000 records over 10,000 documents to the local Firestore
server with 20 ms added latency per request, next to the floor measured in the same run: the
time the same server needs to accept the same commits sent one after another by curl (one
connection, kept alive). Prints one JSON object.

usage: bench_drain.py --ddb2fs BIN [--runs N] [--records N] [--documents N] [--latency-ms N]
                      [--existing] [--smoke]

Each run drains the same outbox, made pending again, into an emptied server (every document
new: with fencing, every commit creates and travels in a transaction); with --existing, into
the documents the run before wrote, which the outbox knows (the steady state: every write an
update fenced on a known update time). The medians are reported.

Targets: at least 50,000 records/s, at most 1 CPU second per 100,000 records, and faster than
the floor. The exit status is 0 whether or not they are met; "met" says.

The peer, measured in the same run on the same records: a Node.js handler that writes each
batch straight to Firestore with Google's official client (tests/bench/node-peer/, installed
by tools/test into build/node-peer). The benchmark runs in a network namespace of its own
(unshare -n, as root) so that nothing the client library might try leaves 127.0.0.1.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

from benchlib import (INTEGRATION, NODE_PEER, event_files, forget_fences, ingest_files, isolate,
                      node_peer, relay_env, runs_with_floor)
from fsserver import FirestoreServer

MAKE_EVENTS = """
import sys, events
n, docs, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
per = 500
for i in range((n + per - 1) // per):
    ev = events.event(min(per, n - i * per), first=i * per, seed=1000 + i, customers=docs // 10)
    open("%s/e%05d.json" % (out, i), "w").write(events.dumps(ev))
"""


def pending_again(db, existing):
    """Every row pending again, no lease, and (into an emptied server) no document known."""
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE record_state SET state = 'pending', committed_at = NULL")
        con.execute("DELETE FROM lease")
        if not existing:
            forget_fences(con)
    con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--documents", type=int, default=10000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="a short run, for CI")
    ap.add_argument("--existing", action="store_true",
                    help="the documents exist and the outbox knows them: every write an "
                         "update of a known document (the steady state); default: every "
                         "document new, in an emptied server")
    ap.add_argument("--node-peer", default=NODE_PEER,
                    help="where tests/bench/node-peer is installed (npm install)")
    args = ap.parse_args()
    isolate(__file__)
    if args.smoke:
        args.records, args.documents, args.runs = 5000, 1000, 1

    work = tempfile.mkdtemp(prefix="d2f-bench-drain-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    db = os.path.join(work, "outbox.db")
    env = relay_env(db)
    subprocess.run([sys.executable, "-c", MAKE_EVENTS, str(args.records), str(args.documents),
                    work], check=True, cwd=INTEGRATION)
    ingest_files(args.ddb2fs, work, env)

    server = FirestoreServer()
    try:
        env.update(server.env())  # the emulator: no tokens to fetch
        run, floor = runs_with_floor(
            server, [args.ddb2fs, "drain"], env, args.runs, args.latency_ms, work,
            before=lambda: pending_again(db, args.existing), existing=args.existing)
        peer = node_peer(server, event_files(work), env, args.latency_ms, args.records,
                         args.node_peer)
    finally:
        server.stop()
        shutil.rmtree(work)

    wall, cpu, summary = run["seconds"], run["cpu"], run["summary"]
    rate = args.records / wall
    cpu_per_100k = cpu * 100000 / args.records
    out = {"benchmark": "drain", "smoke": args.smoke, "records": args.records,
           "documents": args.documents, "latency_ms": args.latency_ms, "ramp_up": "off",
           "documents_exist": args.existing,
           "ddb2fs": {"seconds": round(wall, 3), "records_per_s": round(rate),
                      "writes": summary["writes"], "commits": summary["commits"],
                      "retries": summary["retries"], "cpu_seconds": round(cpu, 3),
                      "cpu_seconds_per_100k_records": round(cpu_per_100k, 3),
                      "peak_rss_mb": round(run["rss"], 1), "documents_after": run["documents"]},
           "runs": args.runs,
           "all_seconds": run["all_seconds"],
           "node_peer_google_client": peer,
           "floor_curl_sequential": floor,
           "targets": {"records_per_s_min": 50000, "cpu_seconds_per_100k_max": 1.0,
                       "faster_than_floor": True},
           "met": rate >= 50000 and cpu_per_100k <= 1.0 and wall < floor["seconds"]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
