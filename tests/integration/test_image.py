"""The Dockerfile, read (no Docker engine here): multi-stage, CMake build, provided.al2023, entry
point 'ddb2fs lambda', and the libraries it says the binary links are the ones the binary CI
builds links (ldd)."""
import os
import re
import subprocess
import unittest

from common import BIN

ROOT = os.environ.get("SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SYSTEM = {"libc", "libm", "libdl", "libpthread", "librt", "libgcc_s", "linux-vdso",
          "ld-linux-x86-64", "ld-linux-aarch64"}


def stem(path):
    return re.match(r"(lib[^.]*|ld-linux[^.]*|linux-vdso)", os.path.basename(path)).group(1)


class Image(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            self.text = f.read()

    def test_stages_and_entry_point(self):
        froms = re.findall(r"^FROM\s+(\S+)", self.text, re.M)
        self.assertEqual(len(froms), 2)
        self.assertIn("amazonlinux:2023", froms[0])
        self.assertTrue(froms[1].startswith("public.ecr.aws/lambda/provided:al2023@"), froms[1])
        self.assertIn('ENTRYPOINT ["/var/runtime/ddb2fs", "lambda"]', self.text)
        self.assertIn("-DDDB2FS_TESTS=OFF", self.text)
        self.assertIn("cmake --install /build --prefix /opt/ddb2fs", self.text)
        self.assertIn("COPY --from=build /opt/ddb2fs/bin/ddb2fs /var/runtime/ddb2fs", self.text)
        # it builds the same sources CI builds
        for part in ("CMakeLists.txt", "cmake/", "sql/", "src/"):
            self.assertRegex(self.text, r"COPY %s " % re.escape(part))

    def test_direct_libraries_are_what_the_binary_links(self):
        declared = set(re.search(r'ARG DIRECT_LIBS="([^"]*)"', self.text).group(1).split())
        needed = subprocess.run(["objdump", "-p", BIN], capture_output=True, text=True,
                                check=True).stdout
        linked = {stem(n) for n in re.findall(r"NEEDED\s+(\S+)", needed)} - SYSTEM
        self.assertEqual(linked, declared)
        # and ldd finds every one of them
        ldd = subprocess.run(["ldd", BIN], capture_output=True, text=True, check=True).stdout
        self.assertNotIn("not found", ldd)
        found = {stem(l.split()[0]) for l in ldd.splitlines() if "=>" in l}
        self.assertTrue(declared <= found)


if __name__ == "__main__":
    unittest.main()
