import os

import pytest

from bridge.crypto import sm4

KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def test_standard_block_vector():
    # GM/T 0002-2012 appendix A.1: key = plaintext
    assert sm4.encrypt_block_raw(KEY, KEY).hex() == "681edf34d206965e86b3e94f536e4246"


def test_ecb_first_block_is_the_raw_block():
    assert sm4.encrypt_ecb(KEY, KEY)[:16].hex() == "681edf34d206965e86b3e94f536e4246"
    assert len(sm4.encrypt_ecb(KEY, KEY)) == 32  # full padding block after an aligned input


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 33, 48, 100, 2048])
def test_ecb_round_trip(length):
    data = os.urandom(length)
    ct = sm4.encrypt_ecb(KEY, data)
    assert len(ct) == (length // 16 + 1) * 16
    assert sm4.decrypt_ecb(KEY, ct) == data


@pytest.mark.parametrize("length", [0, 15, 16, 17, 1000])
def test_cbc_round_trip(length):
    iv = os.urandom(16)
    data = os.urandom(length)
    ct = sm4.encrypt_cbc(KEY, iv, data)
    assert sm4.decrypt_cbc(KEY, iv, ct) == data
    if length >= 16:
        assert ct[:16] != sm4.encrypt_ecb(KEY, data)[:16]  # the IV is really applied


def test_wrong_key_is_bad_padding_or_garbage():
    ct = sm4.encrypt_ecb(KEY, b"patient 42 pays 12.50")
    other = bytes(16)
    try:
        assert sm4.decrypt_ecb(other, ct) != b"patient 42 pays 12.50"
    except sm4.SM4Error:
        pass


def test_bad_padding_raises():
    block = sm4.encrypt_block_raw(KEY, bytes(15) + b"\x11")  # pad byte 0x11 > 16
    with pytest.raises(sm4.SM4Error):
        sm4.decrypt_ecb(KEY, block)
    block = sm4.encrypt_block_raw(KEY, bytes(14) + b"\x01\x02")  # inconsistent pad bytes
    with pytest.raises(sm4.SM4Error):
        sm4.decrypt_ecb(KEY, block)
    block = sm4.encrypt_block_raw(KEY, bytes(16))  # pad byte 0
    with pytest.raises(sm4.SM4Error):
        sm4.decrypt_cbc(KEY, bytes(16), block)


@pytest.mark.parametrize("bad", [b"", b"x" * 15, b"x" * 17])
def test_bad_length_raises(bad):
    with pytest.raises(sm4.SM4Error):
        sm4.decrypt_ecb(KEY, bad)
    with pytest.raises(sm4.SM4Error):
        sm4.decrypt_cbc(KEY, bytes(16), bad)


def test_bad_key_and_iv_raise():
    with pytest.raises(sm4.SM4Error):
        sm4.encrypt_ecb(b"short", b"data")
    with pytest.raises(sm4.SM4Error):
        sm4.encrypt_cbc(KEY, b"short iv", b"data")


@pytest.mark.parametrize("length", [0, 15, 16, 17, 2048])
def test_ecb_matches_gmssl_reference(length):
    gm_sm4 = pytest.importorskip("gmssl.sm4")
    key, data = os.urandom(16), os.urandom(length)
    cipher = gm_sm4.CryptSM4()
    cipher.set_key(key, gm_sm4.SM4_ENCRYPT)  # gmssl pads with PKCS#7 by default
    assert bytes(cipher.crypt_ecb(data)) == sm4.encrypt_ecb(key, data)
