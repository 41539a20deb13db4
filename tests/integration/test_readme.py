"""The README's two commands come first, and its sqlite3 recipes run as written against a real
outbox and print exactly what the README shows."""
import os
import re
import subprocess
import sys
import unittest

import events
from common import FIXTURES, TempDir, clean_env, run
from fsserver import FirestoreServer

README = os.path.join(os.environ.get("SOURCE_DIR", os.path.join(os.path.dirname(__file__),
                                                                "..", "..")), "README.md")


def recipes(text):
    """(command, expected output lines) of the console blocks of 'Inspecting the outbox'."""
    section = text[text.index("### Inspecting the outbox"):]
    section = section[:section.index("\n## ")]
    found = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            lines = part.rstrip("\n").split("\n")
            found.append((lines[0], lines[1:]))
    return found


def change(rng, n, name, customer, order, **fields):
    rec = events.record(rng, n, customer, order, "INSERT" if name == "BROKEN" else name)
    rec["eventName"] = name
    if "NewImage" in rec["dynamodb"]:
        rec["dynamodb"]["NewImage"] = {"customer": {"S": customer}, "order": {"N": str(order)},
                                       **fields}
    return rec


def build_outbox(path):
    """The outbox the README's outputs come from (see the README)."""
    import random
    rng = random.Random(7)
    server = FirestoreServer()
    try:
        env = clean_env(DDB2FS_OUTBOX=path, DDB2FS_KEYS=events.KEYS_SETTING, **server.env())
        run(["ingest", os.path.join(FIXTURES, "golden", "aws-lambda-example.json")], env=env,
            check=True)
        ev = {"Records": [
            change(rng, 1000, "INSERT", "alice", 42, status={"S": "new"}),
            change(rng, 1001, "MODIFY", "alice", 42, status={"S": "paid"}),
            change(rng, 1002, "BROKEN", "alice", 42, status={"S": "lost"}),
            change(rng, 1003, "INSERT", "bob", 7, status={"S": "new"}),
            change(rng, 1004, "REMOVE", "bob", 7),
        ]}
        run(["ingest", "-"], env=env, stdin=events.dumps(ev), check=True)
        run(["drain"], env=env, check=True)
        ev = {"Records": [change(rng, 1005, "MODIFY", "alice", 42, status={"S": "shipped"})]}
        run(["ingest", "-"], env=env, stdin=events.dumps(ev), check=True)
    finally:
        server.stop()


class Readme(unittest.TestCase):
    def test_two_commands_first(self):
        text = open(README, encoding="utf-8").read()
        first = re.search(r"```sh\n(.*?)```", text, re.S).group(1).splitlines()
        self.assertTrue(first[0].startswith("tools/demo"))
        self.assertTrue(first[1].startswith("tools/test"))

    def test_sqlite3_recipes_print_what_the_readme_shows(self):
        tmp = TempDir()
        build_outbox(tmp.file("ddb2fs.db"))
        found = recipes(open(README, encoding="utf-8").read())
        self.assertGreaterEqual(len(found), 9)
        for cmd, expected in found:
            with self.subTest(cmd):
                self.assertTrue(cmd.startswith("sqlite3 "), cmd)
                p = subprocess.run(cmd, shell=True, cwd=tmp.path, capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, "")
                self.assertEqual(p.stdout.rstrip("\n").split("\n"), expected)
        tmp.cleanup()


if __name__ == "__main__" and sys.argv[1:] == ["--print"]:
    # prints each recipe with its output, to paste into the README when a recipe changes
    tmp = TempDir()
    build_outbox(tmp.file("ddb2fs.db"))
    for cmd, _ in recipes(open(README, encoding="utf-8").read()):
        out = subprocess.run(cmd, shell=True, cwd=tmp.path, capture_output=True, text=True)
        print("$ " + cmd + "\n" + out.stdout + out.stderr, end="")
    tmp.cleanup()
elif __name__ == "__main__":
    unittest.main()
