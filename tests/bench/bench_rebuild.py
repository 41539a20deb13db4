#!/usr/bin/env python3
"""Benchmark: 'ddb2fs replay --rebuild' of 100,000 documents from the outbox into an emptied
local Firestore server with 20 ms added latency per request, next to the floor measured in the
same run (the same commits sent one after another by curl over one kept-alive connection) and
the Node.js peer (Google's official client) writing the same 100,000 documents from the same
events. Prints one JSON object.

usage: bench_rebuild.py --ddb2fs BIN [--runs N] [--documents N] [--latency-ms N] [--smoke]

Each run rebuilds from the same outbox (every record committed, as after a drain) into a wiped
server; the medians are reported. Targets: one write per document, and faster than the floor.
The exit status is 0 whether or not they are met; "met" says.
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

# every record its own document, as a table's items are
MAKE_EVENTS = """
import random, sys, events
n, out = int(sys.argv[1]), sys.argv[2]
per = 500
for i in range((n + per - 1) // per):
    rng = random.Random(2000 + i)
    recs = [events.record(rng, k, "cust-%d" % (k // 10), k % 10)
            for k in range(i * per, min(n, (i + 1) * per))]
    open("%s/e%05d.json" % (out, i), "w").write(events.dumps({"Records": recs}))
"""


def no_fences(db):
    """Each run rebuilds an emptied server: a new database, of which the outbox knows nothing."""
    con = sqlite3.connect(db)
    with con:
        forget_fences(con)
    con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--documents", type=int, default=100000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="a short run, for CI")
    ap.add_argument("--node-peer", default=NODE_PEER)
    args = ap.parse_args()
    isolate(__file__)
    if args.smoke:
        args.documents, args.runs = 3000, 1

    work = tempfile.mkdtemp(prefix="d2f-bench-rebuild-",
                            dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    db = os.path.join(work, "outbox.db")
    env = relay_env(db)
    subprocess.run([sys.executable, "-c", MAKE_EVENTS, str(args.documents), work], check=True,
                   cwd=INTEGRATION)
    ingest_files(args.ddb2fs, work, env)
    subprocess.run(["sqlite3", db, "UPDATE record_state SET state = 'committed', "
                    "committed_at = arrived_at FROM record_info WHERE record_info.id = "
                    "record_state.id"], check=True)

    server = FirestoreServer()
    try:
        env.update(server.env())  # the emulator: no tokens to fetch
        run, floor = runs_with_floor(server, [args.ddb2fs, "replay", "--rebuild"], env,
                                     args.runs, args.latency_ms, work,
                                     before=lambda: no_fences(db))
        peer = node_peer(server, event_files(work), env, args.latency_ms, args.documents,
                         args.node_peer)
    finally:
        server.stop()
        shutil.rmtree(work)

    wall, docs, writes = run["seconds"], run["documents"], run["writes"]
    if "records_per_s" in peer:
        peer["documents_per_s"] = peer.pop("records_per_s")
    out = {"benchmark": "rebuild", "smoke": args.smoke, "documents": args.documents,
           "latency_ms": args.latency_ms, "ramp_up": "off",
           "ddb2fs": {"seconds": round(wall, 3), "documents_per_s": round(docs / wall),
                      "writes": writes, "commits": run["summary"]["commits"],
                      "retries": run["summary"]["retries"], "cpu_seconds": round(run["cpu"], 3),
                      "peak_rss_mb": round(run["rss"], 1), "documents_after": docs},
           "runs": args.runs, "all_seconds": run["all_seconds"],
           "all_peak_rss_mb": run["all_peak_rss_mb"],
           "node_peer_google_client": peer,
           "floor_curl_sequential": floor,
           "targets": {"one_write_per_document": True, "faster_than_floor": True},
           "met": writes == args.documents == docs and wall < floor["seconds"]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
