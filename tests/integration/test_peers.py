"""tests/servers/firestore_server.py next to Google's own Firestore emulator: the same requests
to both, and both must accept the same ones, refuse the same ones with the same HTTP status,
and answer the same (the documents read back, the found and the missing of a batchGet).

Without the emulator's jar this prints one line saying the peer was not run."""
import base64
import json
import os
import subprocess
import sys
import unittest
import urllib.parse

import emulator
import mapping_ref as ref
from fsserver import FirestoreServer

PROJECT = "demo-peers"


def s(v):
    return {"stringValue": v}


def nest(levels, leaf):
    v = leaf
    for _ in range(levels):
        v = {"mapValue": {"fields": {"a": v}}}
    return v


class Peer:
    """One of the two, seen through its REST API."""

    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None):
        return emulator.rest_call(self.url, method, path, body)


def cases(prefix):
    """(label, commit body) pairs: what Firestore takes and what it refuses."""
    def one(doc, fields):
        return {"writes": [{"update": {"name": prefix + doc, "fields": fields}}]}
    out = [
        ("plain", one("c/plain", {"a": s("x"), "n": {"integerValue": "7"},
                                   "d": {"doubleValue": 0.1}, "b": {"booleanValue": True},
                                   "z": {"nullValue": None}, "y": {"bytesValue": "3q2+7w=="}})),
        ("U+0000 in a value, a name and an id", one("c/a\0b", {"x\0": s("v\0w"), "\0": s("\0")})),
        ("name ____", one("c/names1", {"____": s("4")})),
        ("name _____", one("c/names2", {"_____": s("5")})),
        ("name __x__", one("c/names3", {"__x__": s("x")})),
        ("name __x__ nested", one("c/names4", {"m": {"mapValue": {"fields": {"__x__": s("x")}}}})),
        ("name _x__", one("c/names5", {"_x__": s("x"), "__x_": s("y"), "%5F_x__": s("z")})),
        ("empty name", one("c/names6", {"": s("x")})),
        ("name of 1,500 bytes", one("c/names7", {"n" * 1500: s("x")})),
        ("name of 1,501 bytes", one("c/names8", {"n" * 1501: s("x")})),
        ("id ____", one("c/____", {"a": s("x")})),
        ("id _____", one("c/_____", {"a": s("x")})),
        ("id .", one("c/.", {"a": s("x")})),
        ("id ..", one("c/..", {"a": s("x")})),
        ("id %2E", one("c/%2E", {"a": s("x")})),
        ("id of 1,500 bytes", one("c/" + "i" * 1500, {"a": s("x")})),
        ("id of 1,501 bytes", one("c/" + "i" * 1501, {"a": s("x")})),
        ("collection path c/d/e/f", one("c/d/e/f", {"a": s("x")})),
        ("no document id", one("c", {"a": s("x")})),
        ("20 nested maps hold a value", one("c/deep20", {"d": nest(19, nest(1, s("x")))})),
        ("21 nested maps hold a value", one("c/deep21", {"d": nest(21, s("x"))})),
        ("20 nested maps, the last empty", one("c/deep20e", {"d": nest(19, {"mapValue": {}})})),
        ("21 nested maps, the last empty", one("c/deep21e", {"d": nest(20, {"mapValue": {}})})),
        ("19 maps and an array hold a value", one("c/deepa1", {"d": nest(19, {"arrayValue": {
            "values": [s("x")]}})})),
        ("20 maps and an array hold a value", one("c/deepa2", {"d": nest(20, {"arrayValue": {
            "values": [s("x")]}})})),
        ("20 maps and an empty array", one("c/deepa3", {"d": nest(20, {"arrayValue": {}})})),
        ("19 maps, an array, a map", one("c/deepa4", {"d": nest(19, {"arrayValue": {
            "values": [{"mapValue": {"fields": {"k": s("x")}}}]}})})),
        ("bytes of 1,048,487 bytes", one("c/big3", {"a": {"bytesValue": base64.b64encode(
            b"x" * 1048487).decode()}})),
        ("bytes of 1,048,488 bytes", one("c/big4", {"a": {"bytesValue": base64.b64encode(
            b"x" * 1048488).decode()}})),
        ("an array in an array", one("c/arr1", {"a": {"arrayValue": {"values": [
            {"arrayValue": {"values": [s("x")]}}]}}})),
        ("an empty array", one("c/arr2", {"a": {"arrayValue": {}}, "b": {"arrayValue":
                                                                        {"values": []}}})),
        ("an empty map", one("c/map1", {"a": {"mapValue": {}}, "b": {"mapValue": {"fields": {}}}})),
        ("a value with no type", one("c/v1", {"a": {}})),
        ("a value with two types", one("c/v2", {"a": {"stringValue": "x", "integerValue": "1"}})),
        ("an unknown value type", one("c/v3", {"a": {"fooValue": 1}})),
        ("integerValue 9223372036854775807", one("c/i1", {"a": {"integerValue":
                                                                "9223372036854775807"}})),
        ("integerValue -9223372036854775808", one("c/i1b", {"a": {"integerValue":
                                                                  "-9223372036854775808"}})),
        ("integerValue 9223372036854775808", one("c/i2", {"a": {"integerValue":
                                                                "9223372036854775808"}})),
        ("integerValue as a number", one("c/i3", {"a": {"integerValue": 5}})),
        ("doubleValue as text", one("c/d1", {"a": {"doubleValue": "1.5"}})),
        ("doubleValue extremes", one("c/d2", {"a": {"doubleValue": 1e308}, "b": {"doubleValue":
                                                                                  5e-324},
                                             "c": {"doubleValue": -0.0}})),
        ("bytesValue not base64", one("c/b1", {"a": {"bytesValue": "***"}})),
        ("bytesValue unpadded", one("c/b2", {"a": {"bytesValue": "3q2+7w"}})),
        ("bytesValue base64url", one("c/b3", {"a": {"bytesValue": "3q2-7w=="}})),
        ("a string of 1,048,487 bytes", one("c/big1", {"a": s("x" * 1048487)})),
        ("a string of 1,048,488 bytes", one("c/big2", {"a": s("x" * 1048488)})),
        ("a string not UTF-8 (a lone surrogate)", one("c/u1", {"a": s("\ud800")})),
        ("an unknown field in a write", {"writes": [{"update": {"name": prefix + "c/w1",
                                                                "fields": {}}, "bogus": 1}]}),
        ("an unknown field in a document", {"writes": [{"update": {"name": prefix + "c/w2",
                                                                   "fields": {}, "x": 1}}]}),
        ("a delete of a missing document", {"writes": [{"delete": prefix + "c/missing"}]}),
        ("no writes", {"writes": []}),
        ("two writes to one document", {"writes": [
            {"update": {"name": prefix + "c/twice", "fields": {"a": s("1")}}},
            {"update": {"name": prefix + "c/twice", "fields": {"a": s("2")}}}]}),
        ("a write with no operation", {"writes": [{}]}),
        ("a name in another database", {"writes": [{"update": {
            "name": prefix.replace("(default)", "other"), "fields": {}}}]}),
    ]
    return out


def reading(prefix):
    """Names read back after the commits, one at a time and in one batchGet."""
    return [prefix + n for n in ("c/plain", "c/a\0b", "c/names1", "c/names5", "c/____", "c/%2E",
                                 "c/" + "i" * 1500, "c/d/e/f", "c/deep20", "c/deep20e",
                                 "c/arr2", "c/map1", "c/i1", "c/i1b", "c/d2", "c/b2", "c/b3",
                                 "c/twice", "c/missing", "c/names2", "c/deep21")]


# Where the server keeps refusing what the emulator takes: Firestore's strings are UTF-8, and
# the emulator, in Java, takes a lone UTF-16 surrogate; ddb2fs never sends one.
KNOWN = [("a string not UTF-8 (a lone surrogate)", {"emulator": 200, "server": 400})]


class Peers(unittest.TestCase):
    def test_same_requests_same_answers(self):
        if not emulator.available():
            emulator.not_run("peers")
            return
        em = emulator.FirestoreEmulator(PROJECT)
        fs = FirestoreServer()
        try:
            peers = {"emulator": Peer(em.url), "server": Peer(fs.url)}
            prefix = "projects/%s/databases/(default)/documents/" % PROJECT
            commit = "projects/%s/databases/(default)/documents:commit" % PROJECT
            differ = []
            for label, body in cases(prefix):
                got = {k: p.call("POST", commit, body)[0] for k, p in peers.items()}
                if got["emulator"] != got["server"]:
                    differ.append((label, got))
            self.assertEqual(differ, KNOWN, "accepted or refused differently")

            for name in reading(prefix):
                path = ("projects/%s/databases/(default)/documents/" % PROJECT
                        + urllib.parse.quote(name[len(prefix):], safe="/"))
                got = {k: p.call("GET", path) for k, p in peers.items()}
                e, s_ = got["emulator"], got["server"]
                self.assertEqual(e[0], s_[0], (name[len(prefix):][:40], e, s_))
                if e[0] == 200:
                    self.assertEqual(e[1]["name"], s_[1]["name"])
                    self.assertEqual(ref.plain_fields(e[1].get("fields", {})),
                                     ref.plain_fields(s_[1].get("fields", {})), name[:60])

            batch = "projects/%s/databases/(default)/documents:batchGet" % PROJECT
            got = {k: p.call("POST", batch, {"documents": reading(prefix)})
                   for k, p in peers.items()}
            self.assertEqual(got["emulator"][0], 200)
            self.assertEqual(got["server"][0], 200)

            def summary(answer):
                return sorted((r["found"]["name"], json.dumps(ref.plain_fields(
                    r["found"].get("fields", {})), default=repr, sort_keys=True))
                              if "found" in r else ("missing", r["missing"]) for r in answer)
            self.assertEqual(summary(got["emulator"][1]), summary(got["server"][1]))
        finally:
            fs.stop()
            em.stop()

    def test_an_absent_emulator_is_said_once(self):
        """Without the jar the peer is not run, and one line says so: never silent."""
        p = subprocess.run([sys.executable, "-m", "unittest", "test_peers.Peers."
                            "test_same_requests_same_answers"], capture_output=True, text=True,
                           env=dict(os.environ, FIRESTORE_EMULATOR_JAR="/nonexistent/emu.jar"),
                           cwd=os.path.dirname(os.path.abspath(__file__)))
        self.assertEqual(p.returncode, 0, p.stderr)
        said = [l for l in (p.stdout + p.stderr).splitlines() if "emulator was NOT run" in l]
        self.assertEqual(len(said), 1, p.stdout + p.stderr)
        self.assertIn("/nonexistent/emu.jar is absent", said[0])


if __name__ == "__main__":
    unittest.main()
