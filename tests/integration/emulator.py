"""Google's own Firestore emulator (the Cloud SDK's cloud-firestore-emulator.jar) as a peer of
tests/servers/firestore_server.py: start it on a loopback port, read every document back
through its REST API, empty it between runs."""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from ddblocal import free_port

JAR = os.environ.get("FIRESTORE_EMULATOR_JAR",
                     "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/"
                     "cloud-firestore-emulator.jar")
MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def rest_call(url, method, path, body=None):
    """(status, parsed answer) of a Firestore REST call to the server at url; path is under
    /v1/."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/v1/" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode("utf-8", "replace")


def available():
    return os.path.exists(JAR)


def not_run(test):
    """The one line that says this peer was not run, and why."""
    print("%s: Google's Firestore emulator was NOT run: %s is absent (Debian package "
          "google-cloud-cli-firestore-emulator); only tests/servers/firestore_server.py was"
          % (test, JAR), flush=True)


class FirestoreEmulator:
    def __init__(self, project="demo-e2e"):
        self.project = project
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        self.proc = subprocess.Popen(
            ["java", "-cp", JAR, MAIN, "--host", "127.0.0.1", "--port", str(self.port),
             "--project_id", project],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 60
        while time.time() < end:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    r.read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Google's Firestore emulator did not start on %s" % self.host)

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def prefix(self, database="(default)"):
        return "projects/%s/databases/%s/documents/" % (self.project, database)

    def env(self, **more):
        """Settings that point ddb2fs at the emulator."""
        e = {"FIRESTORE_EMULATOR_HOST": self.host, "GOOGLE_CLOUD_PROJECT": self.project,
             "DDB2FS_RAMP": "off", "DDB2FS_ALLOW_EMULATOR": "1"}
        e.update(more)
        return e

    def request(self, method, path, body=None):
        """(status, parsed answer) of a REST call; path is under /v1/."""
        return rest_call(self.url, method, path, body)

    def documents(self, database="(default)"):
        """Every document of the database, name -> fields, by a query over all collections."""
        status, rows = self.request(
            "POST", "projects/%s/databases/%s/documents:runQuery" % (self.project, database),
            {"structuredQuery": {"from": [{"allDescendants": True}]}})
        if status != 200:
            raise RuntimeError("runQuery: HTTP %d %s" % (status, rows))
        return {r["document"]["name"]: r["document"].get("fields", {})
                for r in rows if "document" in r}

    def reset(self):
        req = urllib.request.Request(
            "%s/emulator/v1/projects/%s/databases/(default)/documents" % (self.url, self.project),
            method="DELETE")
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
