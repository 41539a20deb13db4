"""The README's sqlite3 recipes run as written against a real outbox and print what they say."""
import os
import re
import subprocess
import unittest

import events
from common import FIXTURES, TempDir, clean_env, run

README = os.path.join(os.environ.get("SOURCE_DIR", os.path.join(os.path.dirname(__file__),
                                                                "..", "..")), "README.md")


def recipes():
    text = open(README, encoding="utf-8").read()
    section = text[text.index("### Inspecting the outbox"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    # each line is a command, then perhaps "  # what it shows"
    return [line.split("  #")[0].strip() for line in block.splitlines()
            if line.startswith("sqlite3 ")]


class Readme(unittest.TestCase):
    def test_two_commands_first(self):
        text = open(README, encoding="utf-8").read()
        first = re.search(r"```sh\n(.*?)```", text, re.S).group(1).splitlines()
        self.assertTrue(first[0].startswith("tools/demo"))
        self.assertTrue(first[1].startswith("tools/test"))

    def test_sqlite3_recipes(self):
        tmp = TempDir()
        env = clean_env(DDB2FS_OUTBOX=tmp.file("ddb2fs.db"), DDB2FS_KEYS=events.KEYS_SETTING)
        run(["ingest", os.path.join(FIXTURES, "golden", "aws-lambda-example.json")], env=env,
            check=True)
        ev = events.event(3, first=1000)
        for r in ev["Records"]:
            r["eventName"] = "INSERT"
            r["dynamodb"]["Keys"]["customer"]["S"] = "alice"
            r["dynamodb"]["Keys"]["order"]["N"] = "42"
            r["dynamodb"]["NewImage"] = r["dynamodb"].get("NewImage") or {
                "customer": {"S": "alice"}, "order": {"N": "42"}}
        ev["Records"][2]["eventName"] = "BROKEN"
        run(["ingest", "-"], env=env, stdin=events.dumps(ev), check=True)
        found = recipes()
        self.assertGreaterEqual(len(found), 6)
        for cmd in found:
            with self.subTest(cmd):
                p = subprocess.run(cmd, shell=True, cwd=tmp.path, capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, "")
                self.assertNotEqual(p.stdout.strip(), "", cmd)
        tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
