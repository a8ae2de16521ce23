"""SM2 interoperability with the `openssl` command line (OpenSSL 3), both directions.

Signing: `openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:<uid>`; pkeyutl reads
and writes DER signatures, so our raw r||s is DER-encoded before the CLI verifies it.
"""

import base64
import os
import shutil
import subprocess

import pytest

from bridge.crypto import _der, sm2

from .conftest import scalars

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="no openssl command line")

RANDOM_KEYS = 20
UIDS = [sm2.DEFAULT_UID, b"ALICE123@YAHOO.COM"]


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, timeout=30)


def _cli_sign(key_pem, msg_path, uid: bytes, out) -> bytes:
    proc = _run("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", f"distid:{uid.decode()}",
                "-inkey", str(key_pem), "-in", str(msg_path), "-out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def _cli_verify(pub_pem, msg_path, uid: bytes, der_sig: bytes, sig_path) -> bool:
    sig_path.write_bytes(der_sig)
    proc = _run("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", f"distid:{uid.decode()}",
                "-pubin", "-inkey", str(pub_pem), "-in", str(msg_path), "-sigfile", str(sig_path))
    return proc.returncode == 0 and b"Verified Successfully" in proc.stdout


def _raw_to_der(raw: bytes) -> bytes:
    return _der.encode_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def test_interop_both_ways(backend, tmp_path):
    failures = []
    for i, (label, d) in enumerate(scalars(RANDOM_KEYS)):
        key = sm2.PrivateKey(d, backend)
        key_pem, pub_pem, msg_path = tmp_path / "key.pem", tmp_path / "pub.pem", tmp_path / "msg"
        key_pem.write_text(key.to_pem())
        pub_pem.write_text(key.public_key().to_pem())
        msg = os.urandom(1 + 37 * i % 300)
        msg_path.write_bytes(msg)
        uid = UIDS[i % 2]

        ours = key.sign(msg, uid=uid)
        if not _cli_verify(pub_pem, msg_path, uid, _raw_to_der(ours), tmp_path / "sig"):
            failures.append(f"{label}: openssl rejects our signature (uid {uid!r})")

        theirs = _cli_sign(key_pem, msg_path, uid, tmp_path / "theirs")
        r, s = _der.parse_signature(theirs)
        if not key.public_key().verify(msg, theirs, uid=uid):
            failures.append(f"{label}: we reject openssl's DER signature")
        if not key.public_key().verify(msg, r.to_bytes(32, "big") + s.to_bytes(32, "big"), uid=uid):
            failures.append(f"{label}: we reject openssl's signature as raw r||s")
        if key.public_key().verify(msg, theirs, uid=uid + b"x"):
            failures.append(f"{label}: we accept openssl's signature under another uid")
    assert failures == []


def test_cli_rejects_tampered_signature(tmp_path):
    key = sm2.generate_private_key()
    (tmp_path / "pub.pem").write_text(key.public_key().to_pem())
    (tmp_path / "msg").write_bytes(b"m")
    sig = bytearray(key.sign(b"m"))
    sig[5] ^= 1
    assert not _cli_verify(tmp_path / "pub.pem", tmp_path / "msg", sm2.DEFAULT_UID,
                           _raw_to_der(bytes(sig)), tmp_path / "sig")


def test_keys_generated_by_openssl_load(tmp_path, backend):
    pkcs8 = _run("genpkey", "-algorithm", "SM2")
    assert pkcs8.returncode == 0, pkcs8.stderr
    sec1 = _run("ec", stdin=pkcs8.stdout)  # OpenSSL 3 writes "SM2 PRIVATE KEY"
    assert sec1.returncode == 0, sec1.stderr
    pub = _run("pkey", "-pubout", stdin=pkcs8.stdout)
    assert pub.returncode == 0, pub.stderr
    text = _run("pkey", "-noout", "-text", stdin=pkcs8.stdout).stdout.decode()

    key = sm2.load_private_key(pkcs8.stdout, backend=backend)
    assert sm2.load_private_key(sec1.stdout, backend=backend).to_bytes() == key.to_bytes()
    assert sm2.load_public_key(pub.stdout, backend=backend) == key.public_key()
    priv_hex = text.split("priv:")[1].split("pub:")[0]
    assert int("".join(priv_hex.split()).replace(":", ""), 16) == int(key.to_hex(), 16)


def test_compressed_public_keys_from_openssl(tmp_path, backend):
    """`openssl ec -conv_form compressed` writes 02/03||X; it loads, as PEM and as raw
    hex/Base64, and verifies what openssl signed with the private key (issue 10 #13)."""
    for i, (label, d) in enumerate(scalars(4)):
        key = sm2.PrivateKey(d, backend)
        key_pem, msg_path = tmp_path / "key.pem", tmp_path / "msg"
        key_pem.write_text(key.to_pem())
        proc = _run("ec", "-in", str(key_pem), "-pubout", "-conv_form", "compressed")
        assert proc.returncode == 0, proc.stderr
        pem = proc.stdout.decode()
        point = _der.parse_bit_string(_der.read_all(_der.read_single(
            base64.b64decode("".join(pem.splitlines()[1:-1])), _der.SEQUENCE))[1][1])
        assert len(point) == 33 and point[0] in (2, 3), label
        msg = os.urandom(10 + i)
        msg_path.write_bytes(msg)
        theirs = _cli_sign(key_pem, msg_path, sm2.DEFAULT_UID, tmp_path / "theirs")
        for text in (pem, point.hex(), base64.b64encode(point).decode()):
            pub = sm2.load_public_key(text, backend=backend)
            assert pub == key.public_key(), (label, text)
            assert pub.verify(msg, theirs), (label, text)
