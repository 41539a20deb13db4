#!/usr/bin/env python3
"""Benchmark: 'ddb2fs lambda' against the local Runtime API and Firestore servers.

  cold start   from spawning the process to its connecting for the first invocation/next,
               configuration and outbox open included (an outbox that exists, as on EFS after the first run, and a new
               one); target under 10 ms
  first commit from spawning the process to the answer of its first invocation (one record),
               by credential: the sealed key (Secrets Manager + the OAuth exchange: two round
               trips) and Workload Identity Federation (STS + IAM Credentials' impersonation:
               two round trips, keyless, and the subject token signed locally), each against
               local servers with 20 ms added to every round trip
  invocations  one batch of 500 and one of 10,000 records (~6 MB), ingested and drained to
               the local server: time to the answer, and the process's peak RSS; target: 128 MB
               of Lambda memory is enough for a 6 MB event

usage: bench_lambda.py --ddb2fs BIN [--runs N] [--smoke]      prints one JSON object
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import events  # noqa: E402
from fsserver import (PROJECT, FirestoreServer, RuntimeServer, SecretsServer,  # noqa: E402
                      ServiceAccount)

from benchlib import NODE_PEER, isolate, node_peer, wait_peak  # noqa: E402


def cold_start(binary, env):
    """Milliseconds from spawning the process to its connecting for invocation/next, as seen by
    a bare socket (no HTTP server in the way)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        env = dict(env, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % listener.getsockname()[1])
        start = time.perf_counter()
        proc = subprocess.Popen([binary, "lambda"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        conn, _ = listener.accept()
        took = time.perf_counter() - start
        conn.close()
        proc.kill()
        proc.wait()
        return took * 1000


ROUND_TRIP_MS = 20


def first_commit(binary, env):
    """Milliseconds from spawning 'ddb2fs lambda' to the answer of a one-record invocation."""
    rt = RuntimeServer()
    try:
        env = dict(env, AWS_LAMBDA_RUNTIME_API=rt.api)
        ev = events.event(1, first=int(time.time() * 1000) * 100000, seed=3)
        start = time.perf_counter()
        proc = subprocess.Popen([binary, "lambda"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        rid = rt.invoke(ev, timeout_ms=60000)
        answer = rt.wait(rid, timeout=60)
        took = time.perf_counter() - start
        assert answer["body"] == {"batchItemFailures": []}, answer
        proc.kill()
        proc.wait()
        return took * 1000
    finally:
        rt.stop()


def first_commits(binary, base, work, runs):
    """first_commit's median with the sealed key and with WIF (impersonation), 20 ms a trip."""
    fs, sm = FirestoreServer(), SecretsServer()
    try:
        fs.faults(latency_ms=ROUND_TRIP_MS, auth_latency_ms=ROUND_TRIP_MS)
        sm.control("config", {"region": sm.region, "latency_ms": ROUND_TRIP_MS})
        key = ServiceAccount(os.path.join(work, "sa.json"), fs.url + "/token")
        fs.register(key)
        sealed = os.path.join(work, "sa.sealed")
        p = subprocess.run([binary, "seal-key", key.path, "--out", sealed, "--force"],
                           capture_output=True, text=True, check=True, env=base)
        sm.put("bench/data-key", string=p.stdout.strip())
        email = "relay@%s.iam.gserviceaccount.com" % PROJECT
        audience = ("//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/"
                    "p/providers/aws")
        fs.control("wif", {"audience": audience, "region": sm.region, "akid": sm.AKID,
                           "secret": sm.SECRET, "token": sm.TOKEN, "service_account": email,
                           "federated_ok": False})
        conf = os.path.join(work, "wif.json")
        with open(conf, "w") as f:
            json.dump({"type": "external_account", "audience": audience,
                       "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
                       "token_url": fs.url + "/v1/token",
                       "service_account_impersonation_url": fs.url + "/v1/projects/-/"
                       "serviceAccounts/%s:generateAccessToken" % email,
                       "credential_source": {
                           "environment_id": "aws1",
                           "regional_cred_verification_url": "https://sts.{region}.amazonaws"
                           ".com?Action=GetCallerIdentity&Version=2011-06-15"}}, f)
        common = dict(base, DDB2FS_KEYS=events.KEYS_SETTING, DDB2FS_FIRESTORE_ENDPOINT=fs.url,
                      GOOGLE_CLOUD_PROJECT=PROJECT, DDB2FS_RAMP="off", **sm.env())
        ways = {"sealed_key": dict(common, DDB2FS_KEY_SEALED=sealed,
                                   DDB2FS_KEY_SECRET="bench/data-key"),
                "wif_impersonation": dict(common, GOOGLE_APPLICATION_CREDENTIALS=conf)}
        out = {}
        for name, env in ways.items():
            times = [first_commit(binary, dict(env, DDB2FS_OUTBOX=os.path.join(
                work, "first-%s-%d.db" % (name, i)))) for i in range(runs)]
            out[name] = {"median_ms": round(statistics.median(times), 1),
                         "all_ms": [round(t, 1) for t in sorted(times)]}
        out["round_trip_ms_added"] = ROUND_TRIP_MS
        return out
    finally:
        fs.stop()
        sm.stop()


def invocation(binary, env, records):
    rt = RuntimeServer()
    try:
        env = dict(env, AWS_LAMBDA_RUNTIME_API=rt.api)
        log = open(os.path.join(os.path.dirname(env["DDB2FS_OUTBOX"]), "lambda.log"), "w")
        proc = subprocess.Popen([binary, "lambda"], env=env, stdout=log, stderr=log)
        ev = events.event(records, first=int(time.time() * 1000) * 100000, seed=records)
        start = time.time()
        rid = rt.invoke(ev, timeout_ms=60000)
        answer = rt.wait(rid, timeout=120)
        took = time.time() - start
        assert answer["body"] == {"batchItemFailures": []}, answer
        rt.stop()  # the Runtime API goes away: the runtime ends
        _, _, peak = wait_peak(proc.pid)
        return took * 1000, peak, len(events.dumps(ev))
    finally:
        if rt.proc.poll() is None:
            rt.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddb2fs", required=True)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--node-peer", default=NODE_PEER)
    args = ap.parse_args()
    isolate(__file__)
    if args.smoke:
        args.runs = 2
    work = tempfile.mkdtemp(prefix="d2f-bench-lambda-", dir=os.environ.get("BENCH_DIR",
                                                                            "/var/tmp"))
    fs = FirestoreServer()
    try:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DDB2FS_", "GOOGLE_", "FIRESTORE_", "AWS_"))}
        env.update(fs.env(), DDB2FS_KEYS=events.KEYS_SETTING,
                   DDB2FS_OUTBOX=os.path.join(work, "outbox.db"))
        existing = [cold_start(args.ddb2fs, env) for _ in range(args.runs)]
        fresh = []
        for i in range(args.runs):
            fresh.append(cold_start(args.ddb2fs, dict(
                env, DDB2FS_OUTBOX=os.path.join(work, "fresh-%d.db" % i))))
        inv = {}
        for n in ([500, 2000] if args.smoke else [500, 10000]):
            ms, rss, size = invocation(args.ddb2fs, env, n)
            inv[str(n)] = {"ms": round(ms, 1), "peak_rss_mb": round(rss, 1),
                           "event_bytes": size}
        # the peer: a fresh Node.js process handling the largest event (its cold start, the
        # client's set-up, and the batch written straight to Firestore)
        n = 2000 if args.smoke else 10000
        path = os.path.join(work, "event.json")
        with open(path, "w") as f:
            f.write(events.dumps(events.event(n, seed=n)))
        peer = node_peer(fs, [path], env, 0, n, args.node_peer)
        peer["records"] = n
        firsts = first_commits(args.ddb2fs, {k: v for k, v in env.items()
                                             if not k.startswith(("DDB2FS_", "FIRESTORE_"))},
                               work, min(args.runs, 5))
    finally:
        fs.stop()
    cold = statistics.median(existing)
    big = inv.get("10000", {})
    out = {"benchmark": "lambda", "smoke": args.smoke, "runs": args.runs,
           "cold_start_ms": {"existing_outbox": round(cold, 2),
                             "new_outbox": round(statistics.median(fresh), 2),
                             "all_existing": [round(x, 2) for x in sorted(existing)]},
           "first_commit_by_credentials": firsts,
           "invocations": inv,
           "node_peer_google_client_cold_process": peer,
           "targets": {"cold_start_ms_max": 10, "peak_rss_mb_max_for_6mb_event": 128},
           "met": cold < 10 and (not big or big["peak_rss_mb"] < 128)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
