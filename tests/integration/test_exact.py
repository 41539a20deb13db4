"""Every value exact, through the real binary, judged by implementations nobody here wrote.

- Doubles: the value is checked against Python's correctly rounded Fraction -> float, and the
  text against JavaScript's own Number::toString (node), which prints the shortest text that
  reads back as the same double.
- Numbers: every form DynamoDB accepts, read with Python's decimal module.
- U+0000 in strings, set members, list members, field names and key attributes: Python's json
  module reads what ddb2fs prints; ids and their hashing follow the README.
- Reserved field names: dead, or escaped with DDB2FS_RESERVED_NAMES=escape.
"""
import base64
import decimal
import hashlib
import json
import math
import random
import re
import subprocess
import unittest
from fractions import Fraction

from common import BIN, TempDir, clean_env, query

TABLE = "Exact"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Exact/stream/2025-01-01T00:00:00.000"
PREFIX = "projects/p/databases/(default)/documents/"
INT64 = (-(1 << 63), (1 << 63) - 1)
decimal.getcontext().prec = 200


def rec(n, keys, image=None, name="INSERT", raw=None):
    d = {"Keys": keys, "SequenceNumber": "%021d" % (10 ** 20 + n), "StreamViewType": "NEW_IMAGE"}
    if image is not None:
        d["NewImage"] = image
    return {"eventID": str(n), "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": ARN,
            "dynamodb": d}


def convert(records, keys="Exact=pk", text=None, **settings):
    """The lines ddb2fs convert prints, parsed, and their raw text."""
    body = text if text is not None else json.dumps({"Records": records}).encode()
    p = subprocess.run([BIN, "convert", "-"], input=body, capture_output=True,
                       env=clean_env(DDB2FS_KEYS=keys, GOOGLE_CLOUD_PROJECT="p", **settings))
    if p.returncode != 0:
        raise AssertionError(p.stderr.decode())
    out = p.stdout.decode("utf-8")  # strict: what ddb2fs prints is UTF-8
    return [json.loads(line) for line in out.splitlines()], out.splitlines()


def exact_double(text):
    """The nearest double to a decimal text, by exact rational arithmetic."""
    return float(Fraction(decimal.Decimal(text)))


def js_texts(values):
    """JavaScript's String(Number(t)) for each decimal text."""
    p = subprocess.run(["node", "-e", "const a=JSON.parse(require('fs').readFileSync(0,'utf8'));"
                        "process.stdout.write(JSON.stringify(a.map(t=>String(Number(t)))))"],
                       input=json.dumps(values), capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def digits38(v, sign):
    """The positive rational v as a decimal text of at most 38 significant digits (cut)."""
    d = decimal.Decimal(v.numerator) / decimal.Decimal(v.denominator)
    mant, ex = format(d, "e").split("e")
    digs = mant.replace(".", "")[:38].rstrip("0") or "0"
    return "%s%se%d" % (sign, digs, int(ex) - (len(digs) - 1))


def number_texts(rng):
    """Decimal texts over DynamoDB's range: random, 38 digits, next to double boundaries."""
    out = ["84.784156556355984562591651843016712255", "0.1", "0.3", "1e-130", "9.9e125",
           "9223372036854775808", "-9223372036854775809", "1.7976931348623157e125",
           "123456789012345678901234567890.12345678", "2.5", "1e21", "1e-7", "100000000000000000000"]
    for _ in range(1500):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 38))).lstrip("0")
        if not digits:
            continue
        exp = rng.randint(-120, 110)
        out.append("%s%se%d" % (rng.choice(["", "-"]), digits, exp))
    for _ in range(500):
        # halfway between two neighbouring doubles, and 38 digits either side of it
        x = abs(rng.uniform(1, 1e6) * 10.0 ** rng.randint(-100, 100))
        mid = (Fraction(x) + Fraction(math.nextafter(x, math.inf))) / 2
        for delta in (Fraction(0), mid / 10 ** 30, -mid / 10 ** 30):
            out.append(digits38(mid + delta, rng.choice(["", "-"])))
    for k in (-400, -300, -200, -100, -52, -1, 0, 1, 52, 53, 63, 64, 100, 300, 400):
        p2 = Fraction(2) ** k
        if Fraction(1, 10 ** 130) <= p2 < Fraction(10) ** 125:
            d = decimal.Decimal(p2.numerator) / decimal.Decimal(p2.denominator)
            out.append(format(d, "e").replace("e+", "e"))
    return [t for t in out if Fraction(1, 10 ** 130) <= abs(Fraction(decimal.Decimal(t))) <
            Fraction(10) ** 126 and len(decimal.Decimal(t).normalize().as_tuple().digits) <= 38]


class Numbers(unittest.TestCase):
    def test_every_double_is_the_nearest_and_printed_shortest(self):
        rng = random.Random(11)
        texts = number_texts(rng)
        records = [rec(i, {"pk": {"S": "n%d" % i}}, {"pk": {"S": "n%d" % i}, "v": {"N": t}})
                   for i, t in enumerate(texts)]
        lines, raw = convert(records)
        js = js_texts(texts)
        doubles = 0
        for t, line, text, want_text in zip(texts, lines, raw, js):
            v = line["update"]["fields"]["v"]
            d = decimal.Decimal(t)
            if d == d.to_integral_value() and INT64[0] <= d <= INT64[1]:
                self.assertEqual(v, {"integerValue": str(int(d))}, t)
                continue
            doubles += 1
            self.assertEqual(set(v), {"doubleValue"}, t)
            self.assertEqual(float(v["doubleValue"]), exact_double(t), t)
            got = re.search(r'"doubleValue":([^}]*)\}', text).group(1)
            self.assertEqual(got, want_text, t)
        self.assertGreater(doubles, 2000)

    def test_every_number_form_dynamodb_accepts(self):
        forms = ["007", "+3", ".5", "5.", "1e3", "1E3", "1e+3", "1.500", "-0", "+0", "-0.0e-5",
                 "0.000", "+.5e1", "-5.e-1", "00.0100", "1E-130", "+9.99e125", "1e0"]
        records = [rec(i, {"pk": {"N": t}}, {"pk": {"N": t}, "v": {"N": t}, "s": {"NS": [t, "2"]}})
                   for i, t in enumerate(forms)]
        lines, _ = convert(records)
        for t, line in zip(forms, lines):
            self.assertIn("update", line, (t, line))
            d = decimal.Decimal(t)
            canon = d.normalize()
            doc_id = format(canon, "f") if canon != 0 else "0"
            self.assertEqual(line["update"]["name"], PREFIX + "Exact/" + doc_id, t)
            v = line["update"]["fields"]["v"]
            if d == d.to_integral_value() and INT64[0] <= d <= INT64[1]:
                self.assertEqual(v, {"integerValue": str(int(d))}, t)
            else:
                self.assertEqual(set(v), {"doubleValue"}, t)
                self.assertEqual(float(v["doubleValue"]), exact_double(t), t)
        # string mode keeps DynamoDB's own text, the set sorted numerically
        lines, _ = convert(records, DDB2FS_NUMBERS="string")
        for t, line in zip(forms, lines):
            f = line["update"]["fields"]
            self.assertEqual(f["v"], {"stringValue": t})
            want = sorted([t, "2"], key=decimal.Decimal)
            self.assertEqual([m["stringValue"] for m in f["s"]["arrayValue"]["values"]], want, t)

    def test_what_is_not_a_number(self):
        bad = ["1\u0000", "\u00001", "1 ", " 1", "", "+", "-", ".", "e5", "++1", "+-1", "1e",
               "1e+", "0x10", "Infinity", "NaN", "1.2.3", "1e5.5", "1,5", "\u00bd"]
        records = [rec(i, {"pk": {"S": "k%d" % i}}, {"pk": {"S": "k%d" % i}, "v": {"N": t}})
                   for i, t in enumerate(bad)]
        lines, _ = convert(records)
        for t, line in zip(bad, lines):
            self.assertIn("error", line, repr(t))
            self.assertIn("attribute 'v' is a number that", line["error"], repr(t))


def doc_id(pk, sk=None, sep="#"):
    """The README's id of a string key (escaping of '%', '/', the separator's characters)."""
    def esc(s, seps):
        return "".join("".join("%%%02X" % b for b in c.encode()) if c in "%/" or c in seps else c
                       for c in s)
    s = esc(pk, sep if sk is not None else "") + ("" if sk is None else sep + esc(sk, sep))
    if s in (".", ".."):
        s = s.replace(".", "%2E")
    elif len(s) >= 4 and s.startswith("__") and s.endswith("__"):
        s = "%5F" + s[1:]
    if len(s.encode()) > 1500:
        s = "%sha256%" + hashlib.sha256(s.encode()).hexdigest()
    return s


class Nul(unittest.TestCase):
    """U+0000 wherever a string can be."""

    def test_nul_round_trips_everywhere(self):
        z = "\u0000"
        image = {"pk": {"S": z + "k" + z}, "sk": {"S": "a" + z + "b"},
                 "s": {"S": z + "start"}, "m": {"S": "mid" + z + "dle"}, "e": {"S": "end" + z},
                 "only": {"S": z}, "two": {"S": z + z},
                 "ss": {"SS": ["b", z, "a" + z, "a", z + "b"]},
                 "l": {"L": [{"S": z}, {"M": {z + "k": {"S": "v" + z}}}]},
                 z + "name": {"N": "1"}, "na" + z + "me": {"BOOL": True}, "name" + z: {"NULL": True},
                 "map": {"M": {z: {"S": z}, "x" + z + "y": {"SS": [z + z, z]}}}}
        lines, raw = convert([rec(1, {"pk": image["pk"], "sk": image["sk"]}, image)],
                             keys="Exact=pk,sk")
        (line,), (text,) = lines, raw
        self.assertNotIn("error", line, line)
        self.assertIn("\\u0000", text)
        self.assertEqual(line["update"]["name"], PREFIX + "Exact/" + doc_id(z + "k" + z, "a" + z + "b"))
        want = {"pk": {"stringValue": z + "k" + z}, "sk": {"stringValue": "a" + z + "b"},
                "s": {"stringValue": z + "start"}, "m": {"stringValue": "mid" + z + "dle"},
                "e": {"stringValue": "end" + z}, "only": {"stringValue": z},
                "two": {"stringValue": z + z},
                "ss": {"arrayValue": {"values": [{"stringValue": v} for v in
                                                 sorted(["b", z, "a" + z, "a", z + "b"],
                                                        key=lambda s: s.encode())]}},
                "l": {"arrayValue": {"values": [
                    {"stringValue": z},
                    {"mapValue": {"fields": {z + "k": {"stringValue": "v" + z}}}}]}},
                z + "name": {"integerValue": "1"}, "na" + z + "me": {"booleanValue": True},
                "name" + z: {"nullValue": None},
                "map": {"mapValue": {"fields": {
                    z: {"stringValue": z},
                    "x" + z + "y": {"arrayValue": {"values": [{"stringValue": z},
                                                              {"stringValue": z + z}]}}}}}}
        self.assertEqual(line["update"]["fields"], want)

    def test_keys_that_differ_after_a_nul_are_two_documents(self):
        z = "\u0000"
        keys = [z + "x", z + "y", "a" + z, "a", z, "a" + z + "b", "a" + z + "c"]
        records = [rec(i, {"pk": {"S": k}}, {"pk": {"S": k}}) for i, k in enumerate(keys)]
        lines, _ = convert(records)
        names = [line["update"]["name"] for line in lines]
        self.assertEqual(names, [PREFIX + "Exact/" + doc_id(k) for k in keys])
        self.assertEqual(len(set(names)), len(keys))

    def test_long_ids_hash_the_utf8_bytes_with_the_nul(self):
        z = "\u0000"
        k = z * 800 + "/" + "é" * 400  # 800 + 3 + 800 bytes escaped: over 1,500
        lines, _ = convert([rec(1, {"pk": {"S": k}}, {"pk": {"S": k}})])
        self.assertEqual(lines[0]["update"]["name"], PREFIX + "Exact/" + doc_id(k))
        self.assertTrue(doc_id(k).startswith("%sha256%"))
        short = z * 1499  # 1,499 bytes: kept as it is
        lines, _ = convert([rec(1, {"pk": {"S": short}}, {"pk": {"S": short}})])
        self.assertEqual(lines[0]["update"]["name"], PREFIX + "Exact/" + short)

    def test_a_multibyte_separator_escapes_whole_characters(self):
        # "₂" is E2 82 82 and the separator "€" E2 82 AC: they share bytes, not a character
        lines, _ = convert([rec(1, {"pk": {"S": "a€₂"}, "sk": {"S": "₂"}},
                                {"pk": {"S": "a€₂"}, "sk": {"S": "₂"}})],
                           keys="Exact=pk,sk", DDB2FS_KEY_SEPARATOR="€")
        self.assertEqual(lines[0]["update"]["name"], PREFIX + "Exact/" + doc_id("a€₂", "₂", "€"))
        self.assertEqual(lines[0]["update"]["name"], PREFIX + "Exact/a%E2%82%AC₂€₂")

    def test_raw_bytes_that_utf8_never_holds_stay_refused(self):
        # a raw C0 80 (an overlong NUL) in the input is not U+0000: the string is not UTF-8
        body = (b'{"Records":[' + json.dumps(rec(1, {"pk": {"S": "k"}}, {
            "pk": {"S": "k"}, "v": {"S": "XX"}})).encode().replace(b"XX", b"a\xc0\x80b") + b"]}")
        lines, _ = convert(None, text=body)
        self.assertEqual(len(lines), 1)
        self.assertIn("error", lines[0])
        self.assertIn("attribute 'v' is a string that is not valid UTF-8", lines[0]["error"])

    def test_escaped_backslash_before_u0000_is_text(self):
        s = "\\u0000"  # a backslash, then the letters u0000
        lines, _ = convert([rec(1, {"pk": {"S": "k"}}, {"pk": {"S": "k"}, "v": {"S": s}})])
        self.assertEqual(lines[0]["update"]["fields"]["v"], {"stringValue": s})

    def test_ingest_keeps_the_nul_in_documents_and_raw_records(self):
        tmp = TempDir()
        try:
            z = "\u0000"
            records = [rec(1, {"pk": {"S": z + "x"}}, {"pk": {"S": z + "x"}}),
                       rec(2, {"pk": {"S": z + "y"}}, {"pk": {"S": z + "y"}})]
            db = tmp.file("o.db")
            p = subprocess.run([BIN, "ingest", "-"], input=json.dumps({"Records": records}),
                               capture_output=True, text=True,
                               env=clean_env(DDB2FS_OUTBOX=db, DDB2FS_KEYS="Exact=pk"))
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = query(db, "SELECT state, count(DISTINCT document) FROM records GROUP BY state")
            self.assertEqual(rows, [("pending", 2)])
        finally:
            tmp.cleanup()


class Reserved(unittest.TestCase):
    IMAGE = {"pk": {"S": "r"}, "__x__": {"S": "a"}, "%p": {"N": "1"}, "_ok_": {"S": "b"},
             "m": {"M": {"__in__": {"BOOL": True}, "%%": {"NULL": True}, "plain": {"S": "c"}}}}

    def test_dead_by_default(self):
        for settings in ({}, {"DDB2FS_RESERVED_NAMES": "dead"}):
            lines, _ = convert([rec(1, {"pk": {"S": "r"}}, self.IMAGE)], **settings)
            self.assertIn("error", lines[0])
            self.assertIn("'__x__' has a name matching __.+__", lines[0]["error"])
        lines, _ = convert([rec(1, {"pk": {"S": "r"}}, {"pk": {"S": "r"},
                                                          "m": self.IMAGE["m"]})])
        self.assertIn("'m.__in__' has a name matching __.+__", lines[0]["error"])

    def test_a_reason_naming_a_nul_is_valid_utf8(self):
        image = {"pk": {"S": "r"}, "__\u0000x__": {"S": "a"}}
        _, raw = convert([rec(1, {"pk": {"S": "r"}}, image)])
        # the line itself decodes as strict UTF-8 (convert() checks it); the name reads \u0000
        self.assertIn("attribute '__\\\\u0000x__'", raw[0])

    def test_escape_encodes_the_first_character(self):
        lines, _ = convert([rec(1, {"pk": {"S": "r"}}, self.IMAGE)],
                           DDB2FS_RESERVED_NAMES="escape")
        f = lines[0]["update"]["fields"]
        self.assertEqual(set(f), {"pk", "%5F_x__", "%25p", "_ok_", "m"})
        self.assertEqual(set(f["m"]["mapValue"]["fields"]), {"%5F_in__", "%25%", "plain"})
        self.assertEqual(f["%5F_x__"], {"stringValue": "a"})

    def test_bad_setting_is_refused(self):
        p = subprocess.run([BIN, "convert", "-"], input="{}", capture_output=True, text=True,
                           env=clean_env(DDB2FS_RESERVED_NAMES="keep"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("DDB2FS_RESERVED_NAMES", p.stderr)
        self.assertIn("dead or escape", p.stderr)


if __name__ == "__main__":
    unittest.main()
