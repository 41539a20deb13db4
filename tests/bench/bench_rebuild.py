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
import subprocess
import sys
import tempfile

from benchlib import (INTEGRATION, NODE_PEER, commit_bodies, curl_floor, event_files,
                      ingest_files, isolate, measure, node_peer, relay_env)
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
    runs, floors = [], []
    try:
        env.update(server.env())  # the emulator: no tokens to fetch
        for _ in range(args.runs):
            server.control("reset")
            server.faults(latency_ms=args.latency_ms, record_bodies=True)
            wall, cpu, rss, err = measure([args.ddb2fs, "replay", "--rebuild"], env)
            summary = json.loads(err.strip().splitlines()[-1])
            bodies = commit_bodies(server)
            runs.append((wall, cpu, rss, summary, len(server.documents()),
                         server.stats()["writes"]))
            floor, floor_docs = curl_floor(server, bodies, work, args.latency_ms)
            floors.append((floor, len(bodies), floor_docs))
        peer = node_peer(server, event_files(work), env, args.latency_ms, args.documents,
                         args.node_peer)
    finally:
        server.stop()
        shutil.rmtree(work)

    runs.sort(key=lambda x: x[0])
    wall, cpu, rss, summary, docs, writes = runs[len(runs) // 2]
    floors.sort()
    floor, ncommits, floor_docs = floors[len(floors) // 2]
    if "records_per_s" in peer:
        peer["documents_per_s"] = peer.pop("records_per_s")
    out = {"benchmark": "rebuild", "smoke": args.smoke, "documents": args.documents,
           "latency_ms": args.latency_ms, "ramp_up": "off",
           "ddb2fs": {"seconds": round(wall, 3), "documents_per_s": round(docs / wall),
                      "writes": writes, "commits": summary["commits"],
                      "retries": summary["retries"], "cpu_seconds": round(cpu, 3),
                      "peak_rss_mb": round(rss, 1), "documents_after": docs},
           "runs": args.runs, "all_seconds": [round(x[0], 3) for x in runs],
           "all_peak_rss_mb": [round(x[2], 1) for x in runs],
           "node_peer_google_client": peer,
           "floor_curl_sequential": {"seconds": round(floor, 3), "commits": ncommits,
                                     "documents_after": floor_docs,
                                     "all_seconds": [round(x[0], 3) for x in floors]},
           "targets": {"one_write_per_document": True, "faster_than_floor": True},
           "met": writes == args.documents == docs and wall < floor}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
