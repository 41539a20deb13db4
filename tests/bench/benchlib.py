"""What the Firestore benchmarks share: a loopback-only network namespace, measuring a process,
the curl floor (the same commits sent one after another over one kept-alive connection), and the
Node.js peer with Google's official client (tests/bench/node-peer, installed by tools/test)."""
import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(HERE, "..", "integration")
sys.path.insert(0, INTEGRATION)
from fsserver import PROJECT  # noqa: E402

NODE_PEER = os.path.join(HERE, "..", "..", "build", "node-peer")
KEYS_SETTING = "Orders=customer,order"  # the key schema of tests/integration/events.py


def isolate(script):
    """Runs script again in a network namespace with only loopback, when it can (root)."""
    if os.environ.get("DDB2FS_BENCH_NETNS") or os.geteuid() != 0 or not shutil.which("unshare"):
        return
    env = dict(os.environ, DDB2FS_BENCH_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                           sys.executable, os.path.abspath(script)] + sys.argv[1:], env)


def wait_peak(pid):
    """Waits for a child; returns its wait status, resource usage and peak RSS in MiB.

    The peak is the program's own (VmHWM of its address space, read until it exits): the
    ru_maxrss that wait4 reports starts from the RSS of the process that forked it, here a
    Python interpreter that may hold far more than the program measured."""
    peak_kb = 0
    while True:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            pass
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, peak_kb / 1024.0
        time.sleep(0.005)


def measure(argv, env):
    """Wall seconds, CPU seconds and peak RSS (MiB) of one run; its stderr."""
    start = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = []
    reader = threading.Thread(target=lambda: errors.append(p.stderr.read()))
    reader.start()
    status, usage, peak = wait_peak(p.pid)
    wall = time.perf_counter() - start
    reader.join()
    p.stderr.close()
    err = errors[0].decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed: %s" % (argv[0], err))
    return wall, usage.ru_utime + usage.ru_stime, peak, err


def commit_bodies(server):
    """The commits a run sent, for curl to send again on an emptied server: each without its
    transaction (those were used), and without the preconditions on update times that only
    the run's server could meet (exists=false ones are met again)."""
    out = []
    for r in server.requests():
        if r["path"].endswith(":commit"):
            body = json.loads(r["body"])
            body.pop("transaction", None)
            for w in body.get("writes", []):
                if "updateTime" in w.get("currentDocument", {}):
                    del w["currentDocument"]
            out.append(json.dumps(body, separators=(",", ":")))
    return out


def curl_floor(server, bodies, work, latency_ms):
    """Seconds the server needs to take bodies as commits sent one after another by curl;
    with the documents it then holds."""
    server.control("reset")
    server.faults(latency_ms=latency_ms, record_bodies=False)
    url = server.url + "/v1/projects/%s/databases/(default)/documents:commit" % PROJECT
    curl_args = ["curl", "-sS", "--fail"]
    for i, body in enumerate(bodies):
        path = os.path.join(work, "commit-%d.json" % i)
        with open(path, "w") as f:
            f.write(body)
        if i:
            curl_args.append("--next")
        curl_args += ["-o", "/dev/null", "-H", "Content-Type: application/json",
                      "-H", "Authorization: Bearer owner", "--data-binary", "@" + path, url]
    start = time.perf_counter()
    subprocess.run(curl_args, check=True)
    return time.perf_counter() - start, len(server.documents())


def runs_with_floor(server, argv, env, runs, latency_ms, work, before=None, existing=False):
    """Runs argv against the server runs times, then the curl floor on the commits each run
    sent; returns the median run and the median floor as dicts. before() prepares a run. Each
    run starts with an emptied server, or, with existing, with the documents the one before
    left (a first run, not measured, writes them)."""
    measured, sent, floors = [], [], []
    for i in range(runs + (1 if existing else 0)):
        server.control("reset_but_documents" if existing and i else "reset")
        server.faults(latency_ms=latency_ms, record_bodies=True)
        if before:
            before()
        wall, cpu, rss, err = measure(argv, env)
        if existing and not i:
            continue
        sent.append(commit_bodies(server))
        measured.append({"seconds": wall, "cpu": cpu, "rss": rss,
                         "summary": json.loads(err.strip().splitlines()[-1]),
                         "documents": len(server.documents()),
                         "writes": server.stats()["writes"]})
    for bodies in sent:
        floor, floor_docs = curl_floor(server, bodies, work, latency_ms)
        floors.append({"seconds": floor, "commits": len(bodies), "documents_after": floor_docs})
    measured.sort(key=lambda x: x["seconds"])
    floors.sort(key=lambda x: x["seconds"])
    run, floor = dict(measured[runs // 2]), dict(floors[runs // 2])
    run["all_seconds"] = [round(x["seconds"], 3) for x in measured]
    run["all_peak_rss_mb"] = [round(x["rss"], 1) for x in measured]
    floor["all_seconds"] = [round(x["seconds"], 3) for x in floors]
    floor["seconds"] = round(floor["seconds"], 3)
    return run, floor


def node_peer_missing(node_peer_dir=NODE_PEER):
    """Why the Node.js peers cannot run here, or None when they can."""
    if not os.environ.get("DDB2FS_BENCH_NETNS"):
        return "no network namespace to run it in (needs root and unshare)"
    if not os.path.isdir(os.path.join(node_peer_dir, "node_modules")) or not shutil.which("node"):
        return "not installed at %s (tools/test installs it)" % os.path.normpath(node_peer_dir)
    return None


def node_peer(server, files, env, latency_ms, records, node_peer_dir=NODE_PEER):
    """The Node.js handler on the same event files, one batch per event; its figures."""
    missing = node_peer_missing(node_peer_dir)
    if missing:
        return {"skipped": missing}
    server.control("reset")
    server.faults(latency_ms=latency_ms, record_bodies=False)
    wall, cpu, rss, _ = measure(
        ["node", os.path.join(node_peer_dir, "handler.js"), str(server.port)] + files,
        dict(env, NODE_PATH=os.path.join(node_peer_dir, "node_modules")))
    stats = server.stats()
    return {"seconds": round(wall, 3), "records_per_s": round(records / wall),
            "writes": stats["writes"], "commits": stats["commits"], "cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(rss, 1), "documents_after": len(server.documents())}


def event_files(work):
    return sorted(glob.glob(os.path.join(work, "e*.json")))


def ingest_files(ddb2fs, work, env):
    for name in event_files(work):
        with open(name, "rb") as f:
            subprocess.run([ddb2fs, "ingest", "-"], stdin=f, env=env, check=True,
                           capture_output=True)


def forget_fences(con):
    """Forgets what the outbox knows of the target's documents (a run into an emptied server
    is a run into a new database): no fence, no open transaction."""
    for t in ("fence", "fence_transaction"):
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone():
            con.execute("DELETE FROM %s" % t)


def relay_env(db):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DDB2FS_", "GOOGLE_", "FIRESTORE_"))}
    env.update(DDB2FS_OUTBOX=db, DDB2FS_KEYS=KEYS_SETTING)
    return env
