"""SM2 interoperability with gmssl 3.2.2, an independent pure-Python implementation (test-only).

gmssl supports only the default user id 1234567812345678 and takes keys as hex strings.
Its constructor does `public_key.lstrip("04")` when the text starts with "04", which strips
every leading '0' and '4' character, not the prefix. So the 130-hex form 04||X||Y breaks
whenever X's hex starts with '0' or '4', and even the 128-hex X||Y form breaks whenever X
starts with the byte 0x04. We give gmssl the 128-hex X||Y form and, for the keys where
that form itself starts with "04", set the attribute after construction (bypassing only
the constructor's normalisation); test_gmssl_constructor_mangles_such_keys shows why.
"""

import os

import pytest

from bridge.crypto import sm2

from .conftest import edge_scalars, scalars

gmssl_sm2 = pytest.importorskip("gmssl.sm2")

RANDOM_KEYS = 200


def _gmssl(key: sm2.PrivateKey):
    xy = key.public_key().to_hex(uncompressed_prefix=False)
    crypt = gmssl_sm2.CryptSM2(private_key=key.to_hex(), public_key=xy)
    crypt.public_key = xy
    return crypt


def test_gmssl_constructor_mangles_such_keys():
    label, d = next((label, d) for label, d in edge_scalars() if label == "X leading 0x04")
    xy = sm2.PrivateKey(d).public_key().to_hex(uncompressed_prefix=False)
    assert xy.startswith("04")
    assert gmssl_sm2.CryptSM2(private_key="01", public_key=xy).public_key != xy


def test_interop_both_ways(backend):
    failures = []
    for label, d in scalars(RANDOM_KEYS):
        key = sm2.PrivateKey(d, backend)
        gm = _gmssl(key)
        msg = os.urandom(1 + d % 200)

        ours = key.sign(msg)
        if not gm.verify_with_sm3(ours.hex(), msg):
            failures.append(f"{label}: gmssl rejects our signature")

        theirs = bytes.fromhex(gm.sign_with_sm3(msg))
        if not key.public_key().verify(msg, theirs):
            failures.append(f"{label}: we reject gmssl's signature")
        if key.public_key().verify(msg + b"x", theirs):
            failures.append(f"{label}: we accept gmssl's signature on another message")
    assert failures == []
