import hashlib

import pytest

from bridge.crypto import sm3

ABC = bytes.fromhex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
# GM/T 0004-2012 appendix A.2: "abcd" repeated 16 times (one full block plus padding block)
ABCD16 = bytes.fromhex("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")


@pytest.mark.parametrize("impl", [sm3.digest, sm3.digest_pure])
def test_standard_vectors(impl):
    assert impl(b"abc") == ABC
    assert impl(b"abcd" * 16) == ABCD16


def test_long_input_agrees_between_implementations():
    data = bytes(range(256)) * 4099  # ~1 MB, not block-aligned
    assert sm3.digest(data) == sm3.digest_pure(data)


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000])
def test_padding_boundaries_agree(length):
    data = bytes((i * 7 + 3) & 0xFF for i in range(length))
    assert sm3.digest(data) == sm3.digest_pure(data)


def test_hashlib_backend_used_when_available():
    try:
        hashlib.new("sm3")
    except ValueError:
        pytest.skip("this Python's OpenSSL has no sm3")
    assert sm3.BACKEND == "hashlib"
