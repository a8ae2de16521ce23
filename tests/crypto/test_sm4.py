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


def _reference_ecb(key: bytes, data: bytes) -> bytes:
    """A fresh cryptography context per message, with its own PKCS#7: the plain way."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def test_reused_contexts_agree_with_fresh_ones_across_messages_and_threads():
    import threading
    key = os.urandom(16)
    failures = []

    def worker(seed: int) -> None:
        for i in range(150):
            data = os.urandom((seed * 37 + i * 11) % 300)
            ct = sm4.encrypt_ecb(key, data)
            if ct != _reference_ecb(key, data) or sm4.decrypt_ecb(key, ct) != data:
                failures.append((seed, i))
            if i % 10 == 0:       # a refused ciphertext must not disturb the next message
                with pytest.raises(sm4.SM4Error):
                    sm4.decrypt_ecb(key, sm4.encrypt_block_raw(key, bytes(16)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_one_cipher_context_per_key_and_thread(monkeypatch):
    """Issue 11 §2: the cipher objects are not rebuilt for every message."""
    built = []
    real = sm4.Cipher

    class Counting(real):
        def __init__(self, *a, **kw):
            built.append("cipher")
            super().__init__(*a, **kw)

        def encryptor(self):
            built.append("encryptor")
            return super().encryptor()

        def decryptor(self):
            built.append("decryptor")
            return super().decryptor()

    monkeypatch.setattr(sm4, "Cipher", Counting)
    key = os.urandom(16)
    for i in range(50):
        assert sm4.decrypt_ecb(key, sm4.encrypt_ecb(key, b"message %d" % i)) == b"message %d" % i
    assert len(built) <= 3, built
