"""Helpers for the tests that drive the real ddb2fs binary."""
import base64
import decimal
import hashlib
import json
import os
import sqlite3
import subprocess
import tempfile

BIN = os.environ.get("DDB2FS_BIN", os.path.join(os.path.dirname(__file__), "../../build/ddb2fs"))
FIXTURES = os.environ.get("FIXTURES", os.path.join(os.path.dirname(__file__), "../fixtures"))


# DDB2FS_TEST_PARTITIONS=N runs a suite against partitioned outboxes (DDB2FS_PARTITIONS=N),
# DDB2FS_TEST_LATENCY through the latency VFS: tests/CMakeLists.txt runs some suites so too.
PARTITIONS = int(os.environ.get("DDB2FS_TEST_PARTITIONS", "0") or 0)
LATENCY = os.environ.get("DDB2FS_TEST_LATENCY")


def clean_env(**settings):
    """An environment with no DDB2FS_* or cloud settings but those given (and the suite's
    partitions and latency, when it runs with them)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DDB2FS_", "GOOGLE_", "AWS_", "FIRESTORE_"))}
    if PARTITIONS:
        env["DDB2FS_PARTITIONS"] = str(PARTITIONS)
    if LATENCY:
        env["DDB2FS_TEST_LATENCY"] = LATENCY
    env.update({k: str(v) for k, v in settings.items()})
    return env


def run(args, env=None, stdin=None, check=False, timeout=300):
    """Runs ddb2fs with args; returns the CompletedProcess (text mode)."""
    p = subprocess.run([BIN] + list(args), input=stdin, capture_output=True, text=True,
                       env=env if env is not None else clean_env(), timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("ddb2fs %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                             p.stderr))
    return p


def read_env_file(path):
    """KEY=VALUE lines of a fixture's .env file."""
    settings = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                settings[k] = v
    return settings


def outbox_files(db):
    """The SQLite files of an outbox: itself, or a partitioned outbox's part-NN.db in order."""
    if not os.path.isdir(db):
        return [db]
    return sorted(os.path.join(db, f) for f in os.listdir(db)
                  if f.startswith("part-") and f.endswith(".db"))


def query(db, sql, *args):
    """All rows of a query against an outbox, as tuples. For a partitioned outbox, a PRAGMA runs
    on each file (one answer when all agree); other queries see each table as the union of the
    files' (UNION ALL, file after file, in temporary views of the same names)."""
    files = outbox_files(db)
    if len(files) == 1 and files[0] == db:
        con = sqlite3.connect(db)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    if sql.lstrip().upper().startswith("PRAGMA"):
        answers = [query(f, sql, *args) for f in files]
        return answers[0] if all(a == answers[0] for a in answers) else answers
    con = sqlite3.connect(":memory:")
    try:
        for i, f in enumerate(files):
            con.execute("ATTACH DATABASE ? AS p%d" % i, (f,))
        names = [r[0] for r in con.execute(
            "SELECT name FROM p0.sqlite_master WHERE type IN ('table', 'view')")]
        for name in names:
            con.execute('CREATE TEMP VIEW "%s" AS %s' % (name, " UNION ALL ".join(
                'SELECT * FROM p%d."%s"' % (i, name) for i in range(len(files)))))
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def dump(db):
    """Every row of every table of an outbox, as comparable text (for 'nothing changed')."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute("SELECT * FROM %s ORDER BY rowid" % t).fetchall() for t in tables}
    finally:
        con.close()


class TempDir:
    """A temporary directory removed at the end of a test."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="d2f-test-")
        self.path = self._dir.name

    def file(self, name):
        return os.path.join(self.path, name)

    def write_json(self, name, obj):
        path = self.file(name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, separators=(",", ":"))
        return path

    def cleanup(self):
        self._dir.cleanup()


def canonical_number(text):
    """A DynamoDB number's plain decimal form: no exponent, no needless zeros."""
    d = decimal.Decimal(text)
    if d == 0:
        return "0"
    s = format(d.normalize(), "f")
    return s


def expected_partition(table, keys, n):
    """The README's hash: SHA-256 over the table, then each Keys attribute in byte order of its
    name, as name, type letter, value, each a 4-byte big-endian length and its bytes."""
    h = hashlib.sha256()

    def field(b):
        h.update(len(b).to_bytes(4, "big") + b)

    field(table.encode())
    for name in sorted(keys, key=lambda k: k.encode()):
        (t, v), = keys[name].items()
        field(name.encode())
        field(t.encode())
        if t == "S":
            field(v.encode())
        elif t == "N":
            field(canonical_number(v).encode())
        else:
            field(base64.b64decode(v))
    return int.from_bytes(h.digest()[:8], "big") % n
