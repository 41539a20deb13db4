"""Golden files: every row of the mapping table, AWS's documented examples and every
Firestore limit, through 'ddb2fs convert' and the same records through 'ddb2fs ingest'."""
import glob
import json
import os
import unittest

import mapping_ref as ref
from common import FIXTURES, TempDir, clean_env, query, read_env_file, run

GOLDEN = os.path.join(FIXTURES, "golden")


def cases():
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*.json"))):
        name = os.path.basename(path)[:-5]
        yield name, path, read_env_file(os.path.join(GOLDEN, name + ".env"))


class Golden(unittest.TestCase):
    def test_every_golden_event_has_its_expectation(self):
        """Each event of the directory is a case, with its .exp beside it, and no .exp or .env
        stands alone: a file added or lost is noticed."""
        files = os.listdir(GOLDEN)
        events = {f[:-5] for f in files if f.endswith(".json")}
        self.assertEqual({name for name, _, _ in cases()}, events)
        self.assertEqual({f[:-4] for f in files if f.endswith(".exp")}, events)
        self.assertLessEqual({f[:-4] for f in files if f.endswith(".env")}, events)

    def test_convert_matches_golden(self):
        for name, path, settings in cases():
            with self.subTest(name):
                p = run(["convert", path], env=clean_env(**settings))
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(os.path.join(GOLDEN, name + ".exp"), encoding="utf-8") as f:
                    expected = f.read()
                self.assertEqual(p.stdout, expected)

    def test_golden_is_the_readme_mapping(self):
        """Every .exp line (made once by ddb2fs convert) is what mapping_ref.py, the README's
        mapping written again in Python, says for its record: the same name and fields, each
        double's text included; an error where the reference finds the record dead."""
        def number(text):
            return ("number", text)

        def texts(x):
            if isinstance(x, ref.DoubleText):
                return ("number", x.text)
            if isinstance(x, dict):
                return {k: texts(v) for k, v in x.items()}
            if isinstance(x, list):
                return [texts(v) for v in x]
            return x
        for name, path, settings in cases():
            with self.subTest(name):
                with open(path, encoding="utf-8") as f:
                    records = json.load(f)["Records"]
                with open(os.path.join(GOLDEN, name + ".exp"), encoding="utf-8") as f:
                    lines = [json.loads(l, parse_float=number, parse_int=number) for l in f]
                self.assertEqual(len(lines), len(records))
                s = ref.parse_settings(settings)
                for i, (rec, line) in enumerate(zip(records, lines)):
                    want = texts(ref.convert_record(rec, s))
                    if "error" in want:
                        self.assertIn("error", line, (i, want))
                        if want["error"] == "reserved name":
                            self.assertIn("which Firestore reserves", line["error"])
                        continue
                    if "skip" in line:
                        line = {"skip": line["skip"]}
                    self.assertEqual(line, want, i)

    def test_convert_reads_stdin(self):
        name, path, settings = next(cases())
        with open(path, encoding="utf-8") as f:
            p = run(["convert", "-"], env=clean_env(**settings), stdin=f.read())
        with open(os.path.join(GOLDEN, name + ".exp"), encoding="utf-8") as f:
            self.assertEqual(p.stdout, f.read())

    def test_ingest_agrees_with_convert(self):
        """What convert calls an error is a dead row with the same reason; every other record
        is kept pending (or committed when skipped) under the document convert names."""
        for name, path, settings in cases():
            with self.subTest(name):
                tmp = TempDir()
                db = tmp.file("outbox.db")
                env = clean_env(DDB2FS_OUTBOX=db, **settings)
                p = run(["ingest", path], env=env)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout), {"batchItemFailures": []})
                with open(os.path.join(GOLDEN, name + ".exp"), encoding="utf-8") as f:
                    lines = [json.loads(l) for l in f]
                with open(path, encoding="utf-8") as f:
                    records = json.load(f)["Records"]
                rows = query(db, "SELECT r.state, r.last_error, r.document, x.raw FROM records r "
                             "JOIN record_raw x USING (id) ORDER BY id")
                self.assertEqual(len(rows), len(records))
                for line, (state, error, document, raw), rec in zip(lines, rows, records):
                    self.assertEqual(json.loads(raw), rec)
                    if "error" in line:
                        self.assertEqual(state, "dead")
                        self.assertEqual(error, line["error"])
                    elif "skip" in line:
                        self.assertEqual((state, document), ("committed", line["skip"]))
                    else:
                        name_ = line["update"]["name"] if "update" in line else line["delete"]
                        self.assertEqual(state, "pending")
                        self.assertTrue(name_.endswith("/documents/" + document), name_)
                tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
