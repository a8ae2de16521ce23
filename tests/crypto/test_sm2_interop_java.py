"""Private keys as Java's BigInteger writes them, produced by a real JVM (issue 10 #13).

Java SDKs of the mobile-pay centre keep the SM2 scalar in a BigInteger and write it with
toString(16) (no leading zero digits) or Base64 of toByteArray() (no leading zero bytes,
a 0x00 in front when the top bit is set). Run with the JDK's single-file launcher; skipped
where there is no `java`.
"""

import shutil
import subprocess

import pytest

from bridge.crypto import sm2

from .conftest import scalars

JAVA = shutil.which("java")
pytestmark = pytest.mark.skipif(JAVA is None, reason="no java command")

SOURCE = """
import java.math.BigInteger;
import java.util.Base64;
import java.util.Scanner;

public class KeyText {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        while (in.hasNext()) {
            BigInteger d = new BigInteger(in.next(), 16);
            System.out.println(d.toString(16) + " " + Base64.getEncoder().encodeToString(d.toByteArray()));
        }
    }
}
"""


def test_keys_written_by_java_load(tmp_path):
    keys = [(label, d) for label, d in scalars(40) if d.bit_length() > 224]
    src = tmp_path / "KeyText.java"
    src.write_text(SOURCE)
    proc = subprocess.run([JAVA, str(src)], input="\n".join(f"{d:064x}" for _, d in keys),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert len(lines) == 2 * len(keys)
    short = set()
    for (label, d), java_hex, java_b64 in zip(keys, lines[0::2], lines[1::2]):
        short.update({len(java_hex)} if len(java_hex) < 64 else set())
        for text in (java_hex, java_b64):
            assert sm2.load_private_key(text).to_bytes() == d.to_bytes(32, "big"), (label, text)
    assert {62, 63} <= short        # the forms that used to fail were in the run
