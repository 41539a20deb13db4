"""The local servers (tests/servers/) seen from a test: start them, steer their faults, read what
they hold and received; and throwaway service-account keys."""
import json
import os
import stat
import subprocess
import sys
import time
import urllib.request

SERVERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "servers")
PROJECT = "demo-project"


class ServerProcess:
    """A local server script of tests/servers, in a process of its own (it must outlive the
    ddb2fs processes a test kills), steered through its /_test/ controls."""

    def __init__(self, script):
        self.proc = subprocess.Popen([sys.executable, os.path.join(SERVERS, script)],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError("%s did not start" % script)
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d" % self.port
        self.host = "127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def control(self, what, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(self.url + "/_test/" + what, data=data, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")


class SecretsServer(ServerProcess):
    """tests/servers/secrets_server.py: Secrets Manager, verifying SigV4."""

    AKID, SECRET, TOKEN = "AKIDLOCALTEST", "local/secret+key", "session-token-for-tests"

    def __init__(self, region="eu-west-1"):
        super().__init__("secrets_server.py")
        self.region = region
        self.control("config", {"region": region})
        self.control("credentials", {"akid": self.AKID, "secret": self.SECRET,
                                     "token": self.TOKEN})

    def put(self, sid, string=None, binary=None):
        self.control("secret", {"id": sid, "string": string} if string is not None
                     else {"id": sid, "binary": binary})

    def env(self, **more):
        """The AWS settings that point ddb2fs at this server."""
        e = {"AWS_REGION": self.region, "AWS_ACCESS_KEY_ID": self.AKID,
             "AWS_SECRET_ACCESS_KEY": self.SECRET, "AWS_SESSION_TOKEN": self.TOKEN,
             "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.url}
        e.update(more)
        return e


class RuntimeServer(ServerProcess):
    """tests/servers/runtime_server.py: the Lambda Runtime API."""

    def __init__(self):
        super().__init__("runtime_server.py")
        self.api = self.host

    def invoke(self, event, timeout_ms=30000):
        return self.control("invoke", {"event": event, "timeout_ms": timeout_ms})["id"]

    def results(self):
        with urllib.request.urlopen(self.url + "/_test/results", timeout=10) as r:
            return json.loads(r.read())

    def wait(self, rid, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            got = self.results()["results"].get(rid)
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError("no answer to %s" % rid)


class FirestoreServer(ServerProcess):
    """tests/servers/firestore_server.py: Firestore REST and the OAuth token endpoint."""

    def __init__(self):
        super().__init__("firestore_server.py")

    def faults(self, **faults):
        self.control("faults", faults)

    def documents(self):
        return self.control("documents")

    def writelog(self):
        return self.control("writelog")

    def requests(self):
        return self.control("requests")

    def stats(self):
        return self.control("stats")

    def prefix(self, project=PROJECT, database="(default)"):
        return "projects/%s/databases/%s/documents/" % (project, database)

    def env(self, **more):
        """Settings that point ddb2fs at this server as an emulator."""
        e = {"FIRESTORE_EMULATOR_HOST": self.host, "GOOGLE_CLOUD_PROJECT": PROJECT,
             "DDB2FS_RAMP": "off", "DDB2FS_ALLOW_EMULATOR": "1"}
        e.update(more)
        return e

    def register(self, key):
        """Makes the server accept tokens for key (a ServiceAccount): leaves emulator mode."""
        self.control("account", {"client_email": key.email, "public_key": key.public_pem,
                                 "private_key_id": key.key_id})


class ServiceAccount:
    """A throwaway service-account key file, made at test time (mode 0600)."""

    def __init__(self, path, token_uri, project=PROJECT, name="relay"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.email = "%s@%s.iam.gserviceaccount.com" % (name, project)
        self.key_id = os.urandom(20).hex()
        self.path = path
        doc = {"type": "service_account", "project_id": project, "private_key_id": self.key_id,
               "private_key": self.private_pem, "client_email": self.email,
               "client_id": "1234567890", "token_uri": token_uri,
               "auth_uri": "https://accounts.google.com/o/oauth2/auth"}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)

    def secrets(self):
        """Byte strings that must never appear in logs or files other than the key file."""
        body = "".join(l for l in self.private_pem.splitlines() if not l.startswith("-----"))
        return [body[i:i + 40] for i in range(0, len(body) - 40, 200)]


def final_states(exp_lines, prefix):
    """The documents a sequence of convert lines leaves: name -> fields (deleted ones absent)."""
    docs = {}
    for line in exp_lines:
        w = json.loads(line)
        if "update" in w:
            docs[w["update"]["name"]] = w["update"].get("fields", {})
        elif "delete" in w:
            docs.pop(w["delete"], None)
    return {n: f for n, f in docs.items() if n.startswith(prefix)}


def histories(exp_lines):
    """Per document, the states it goes through: fields, or None for deleted."""
    out = {}
    for line in exp_lines:
        w = json.loads(line)
        if "update" in w:
            out.setdefault(w["update"]["name"], []).append(w["update"].get("fields", {}))
        elif "delete" in w:
            out.setdefault(w["delete"], []).append(None)
    return out


def regressions(writelog, history):
    """Documents whose logged writes went back to an older state than one already written.
    Each logged state must match the history at a position no earlier than the last one."""
    bad = []
    for name, log in writelog.items():
        states = history.get(name, [])
        at = 0
        for kind, fields in log:
            state = None if kind == "delete" else fields
            try:
                at = states.index(state, at)
            except ValueError:
                bad.append(name)
                break
    return bad
