"""Throughput of the national-crypto primitives: our OpenSSL fast path, our pure-Python
fallback, and gmssl 3.2.2 (pure Python, test/bench-only) as the reference.

    python3 bench/crypto.py [--seconds 1.0]

SM2 sign/s and verify/s use the default user id on a 32-byte message; SM4 is ECB with
PKCS#7 on 2 KB. A last line shows SM4 on a 300-byte message (a mobile-pay request's
size) with our per-key, per-thread cipher context against a context built per message. Our SM4 has a single implementation (`cryptography`), so the fallback
column repeats it. Each result is checked before it is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.crypto import sm2, sm4  # noqa: E402


def rate(func, seconds: float) -> float:
    """Calls per second of func over about `seconds` of wall time."""
    func()  # warm-up (builds lazy tables, loads contexts)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        func()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def ours(backend: str, seconds: float, msg: bytes, sm4_key: bytes, block: bytes) -> dict[str, float]:
    key = sm2.generate_private_key(backend)
    pub = key.public_key()
    sig = key.sign(msg)
    assert pub.verify(msg, sig) and not pub.verify(msg + b"x", sig)
    assert sm4.decrypt_ecb(sm4_key, sm4.encrypt_ecb(sm4_key, block)) == block
    return {
        "sign": rate(lambda: key.sign(msg), seconds),
        "verify": rate(lambda: pub.verify(msg, sig), seconds),
        "sm4": rate(lambda: sm4.encrypt_ecb(sm4_key, block), seconds),
    }


def reference(seconds: float, msg: bytes, sm4_key: bytes, block: bytes) -> dict[str, float] | None:
    try:
        from gmssl import sm2 as gm_sm2, sm4 as gm_sm4
    except ImportError:
        return None
    key = sm2.generate_private_key()
    xy = key.public_key().to_hex(uncompressed_prefix=False)
    crypt = gm_sm2.CryptSM2(private_key=key.to_hex(), public_key=xy)
    crypt.public_key = xy  # bypass gmssl's lstrip("04") mangling (see tests/crypto)
    sig_hex = crypt.sign_with_sm3(msg)
    assert key.public_key().verify(msg, bytes.fromhex(sig_hex))
    assert crypt.verify_with_sm3(key.sign(msg).hex(), msg)
    cipher = gm_sm4.CryptSM4()
    cipher.set_key(sm4_key, gm_sm4.SM4_ENCRYPT)
    assert bytes(cipher.crypt_ecb(block)) == sm4.encrypt_ecb(sm4_key, block)
    return {
        "sign": rate(lambda: crypt.sign_with_sm3(msg), seconds),
        "verify": rate(lambda: crypt.verify_with_sm3(sig_hex, msg), seconds),
        "sm4": rate(lambda: cipher.crypt_ecb(block), seconds),
    }


def sm4_small(seconds: float) -> tuple[float, float]:
    """(our SM4-ECB/s, a fresh cryptography context per message/s) on 300 bytes."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key, data = os.urandom(16), os.urandom(300)

    def fresh() -> bytes:
        padder = padding.PKCS7(128).padder()
        enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
        return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    assert fresh() == sm4.encrypt_ecb(key, data)
    return rate(lambda: sm4.encrypt_ecb(key, data), seconds), rate(fresh, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()

    msg, sm4_key, block = os.urandom(32), os.urandom(16), os.urandom(2048)
    available = sm2.backends()
    rows = {}
    for name in ("openssl-evp", "pure-python"):
        rows[name] = ours(name, args.seconds, msg, sm4_key, block) if name in available else None
    rows["gmssl-3.2.2"] = reference(args.seconds, msg, sm4_key, block)

    print(f"default SM2 backend: {sm2.backend_name()}")
    print(f"{'implementation':<16}{'SM2 sign/s':>14}{'SM2 verify/s':>14}{'SM4 2KB ECB/s':>16}")
    for name, row in rows.items():
        if row is None:
            print(f"{name:<16}{'unavailable':>14}")
        else:
            print(f"{name:<16}{row['sign']:>14,.0f}{row['verify']:>14,.0f}{row['sm4']:>16,.0f}")

    fast, fallback, ref = rows["openssl-evp"], rows["pure-python"], rows["gmssl-3.2.2"]
    summary = []
    for label, other in (("fast/fallback", fallback), ("fast/reference", ref)):
        if fast is None or other is None:
            continue
        ratios = {op: fast[op] / other[op] for op in ("sign", "verify", "sm4")}
        print(f"{label:<16}{ratios['sign']:>13.1f}x{ratios['verify']:>13.1f}x{ratios['sm4']:>15.1f}x")
        summary.append(f"{label} sign {ratios['sign']:.1f}x verify {ratios['verify']:.1f}x "
                       f"sm4 {ratios['sm4']:.1f}x")
    reused, per_message = sm4_small(args.seconds)
    print(f"SM4 300 B ECB: reused context {reused:,.0f}/s, new context per message {per_message:,.0f}/s "
          f"({reused / per_message:.1f}x)")
    summary.append(f"sm4-300B reused context {reused / per_message:.1f}x")
    if fast is not None:
        summary.insert(0, f"fast path sign {fast['sign']:,.0f}/s verify {fast['verify']:,.0f}/s "
                          f"sm4-2KB {fast['sm4']:,.0f}/s")
    print("SUMMARY: " + ("; ".join(summary) if summary else "fast path unavailable, nothing to compare"))


if __name__ == "__main__":
    main()
