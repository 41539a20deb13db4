"""The local Firestore server (tests/servers/firestore_server.py) seen from a test: start it,
steer its faults, read what it holds and received; and throwaway service-account keys."""
import json
import os
import stat
import subprocess
import sys
import urllib.request

SERVERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "servers")
PROJECT = "demo-project"


class FirestoreServer:
    """The server, in a process of its own (it must outlive the drains a test kills)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(SERVERS, "firestore_server.py")],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError("the Firestore server did not start")
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
             "DDB2FS_RAMP": "off"}
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
