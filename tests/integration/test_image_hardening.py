"""The binary as the image ships it (a build without sanitizers, whose shadow memory would make
a dump of terabytes): built hardened (BIND_NOW and RELRO, a stack protector, fortified libc
calls), and a dump of a running relay holds no key material and no JWT."""
import mmap
import os
import re
import subprocess
import unittest

import events
from common import BIN, clean_env, query
from fsserver import FirestoreServer, RuntimeServer, ServiceAccount
from test_harden import Base

NOBODY = 65534


class CoreDump(Base):
    """#1: the key's numbers and signed JWTs are not in a running relay's memory."""

    def start_lambda(self, env, preexec_fn=None):
        self.log = open(self.tmp.file("lambda.log"), "w+")
        proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=self.log,
                                stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        self.addCleanup(self.log.close)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        return proc

    def test_core_of_a_drained_relay_holds_no_prime_and_no_jwt(self):
        from cryptography.hazmat.primitives import serialization
        fs = self.serve(FirestoreServer())
        rt = self.serve(RuntimeServer())
        key = ServiceAccount(self.tmp.file("sa.json"), fs.url + "/token")
        fs.register(key)
        env = clean_env(AWS_LAMBDA_RUNTIME_API=rt.api, DDB2FS_OUTBOX=self.db,
                        DDB2FS_KEYS=events.KEYS_SETTING, DDB2FS_FIRESTORE_ENDPOINT=fs.url,
                        DDB2FS_RAMP="off", GOOGLE_APPLICATION_CREDENTIALS=key.path,
                        DDB2FS_TEST_CORE_DUMPS="allow")
        proc = self.start_lambda(env)
        for i in range(2):
            rid = rt.invoke(events.event(50, first=50 * i, seed=90 + i))
            got = rt.wait(rid)
            self.assertEqual(got["body"], {"batchItemFailures": []}, got)
        self.assertEqual(query(self.db, "SELECT count(*) FROM record_state WHERE state = "
                               "'committed'")[0][0], 100)
        # the key was used: the token endpoint was asked for a token with a signed JWT
        self.assertTrue(any(r["path"] == "/token" for r in fs.requests()))
        core = self.tmp.file("core")
        g = subprocess.run(["gcore", "-o", core, str(proc.pid)], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(g.returncode, 0, g.stderr)
        f = open("%s.%d" % (core, proc.pid), "rb")
        self.addCleanup(f.close)
        mem = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.addCleanup(mem.close)
        self.assertGreater(len(mem), 1 << 20)
        # the dump is of this process: its outbox path is in it
        self.assertNotEqual(mem.find(self.db.encode()), -1)
        numbers = serialization.load_pem_private_key(key.private_pem.encode(),
                                                     None).private_numbers()
        for name in ("p", "q", "d", "dmp1", "dmq1", "iqmp"):
            n = getattr(numbers, name)
            be = n.to_bytes((n.bit_length() + 7) // 8, "big")
            le = be[::-1]
            for piece in (be[:24], be[-24:], le[:24], le[-24:]):
                self.assertEqual(mem.find(piece), -1, "the key's %s is in the dump" % name)
        for piece in key.secrets():
            self.assertEqual(mem.find(piece.encode()), -1, "the key's PEM text is in the dump")
        jwt = re.search(rb"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}", mem)
        self.assertIsNone(jwt, jwt and jwt.group(0)[:60])

    def as_nobody(self):
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    def test_relay_is_not_dumpable_and_has_no_core_limit(self):
        fs = self.serve(FirestoreServer())
        os.chmod(self.tmp.path, 0o777)
        for allow in (False, True):
            rt = self.serve(RuntimeServer())  # one per process: a killed one's poll stays
            db = self.tmp.file("outbox-%d.db" % allow)
            env = clean_env(AWS_LAMBDA_RUNTIME_API=rt.api, DDB2FS_OUTBOX=db,
                            DDB2FS_KEYS=events.KEYS_SETTING, **fs.env())
            if allow:
                env["DDB2FS_TEST_CORE_DUMPS"] = "allow"
            proc = self.start_lambda(env, preexec_fn=self.as_nobody)
            rid = rt.invoke(events.event(5, seed=97))
            self.assertEqual(rt.wait(rid)["body"], {"batchItemFailures": []})
            # a process that is not dumpable has its /proc entries owned by root, so that no
            # process of its own user can ptrace it or read its memory
            owner = os.stat("/proc/%d/mem" % proc.pid).st_uid
            with open("/proc/%d/limits" % proc.pid) as f:
                core = [l for l in f if l.startswith("Max core file size")][0].split()
            proc.kill()
            proc.wait()
            if allow:
                self.assertEqual(owner, NOBODY)  # the switch works: the check can tell
            else:
                self.assertEqual(owner, 0)
                self.assertEqual(core[4:6], ["0", "0"], core)



class Binary(unittest.TestCase):
    """#10: the binary is built hardened (a build without sanitizers)."""

    def test_hardening_flags(self):
        dyn = subprocess.run(["readelf", "-dW", BIN], capture_output=True, text=True,
                             check=True).stdout
        self.assertRegex(dyn, r"\(FLAGS\)\s+.*BIND_NOW|\(FLAGS_1\)\s+.*NOW")
        seg = subprocess.run(["readelf", "-lW", BIN], capture_output=True, text=True,
                             check=True).stdout
        self.assertIn("GNU_RELRO", seg)
        syms = subprocess.run(["readelf", "-sW", "--dyn-syms", BIN], capture_output=True,
                              text=True, check=True).stdout
        self.assertIn("__stack_chk_fail", syms)
        chk = set(re.findall(r"__\w+_chk\b", syms)) - {"__stack_chk"}
        self.assertGreaterEqual(len(chk), 3, chk)
        self.assertIn("__snprintf_chk", chk)


if __name__ == "__main__":
    unittest.main()
