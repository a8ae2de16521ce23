"""SM4 block cipher (GM/T 0002-2012) in ECB and CBC mode with PKCS#7 padding."""

from __future__ import annotations

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 16


class SM4Error(ValueError):
    """Bad key, IV, ciphertext length or padding."""


def _cipher(key: bytes, mode) -> Cipher:
    if len(key) != 16:
        raise SM4Error(f"SM4 key must be 16 bytes, got {len(key)}")
    return Cipher(algorithms.SM4(bytes(key)), mode)


def _pad(data: bytes) -> bytes:
    padder = padding.PKCS7(BLOCK_SIZE * 8).padder()
    return padder.update(data) + padder.finalize()


def _unpad(data: bytes) -> bytes:
    unpadder = padding.PKCS7(BLOCK_SIZE * 8).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise SM4Error("bad PKCS#7 padding (wrong key or corrupted ciphertext)") from None


def _check_ciphertext(data: bytes) -> None:
    if not data or len(data) % BLOCK_SIZE:
        raise SM4Error(f"ciphertext length {len(data)} is not a positive multiple of 16")


def encrypt_block_raw(key: bytes, block: bytes) -> bytes:
    """Encrypt exactly one 16-byte block, no padding (for the standard test vector)."""
    if len(block) != BLOCK_SIZE:
        raise SM4Error("a raw SM4 block is 16 bytes")
    enc = _cipher(key, modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    enc = _cipher(key, modes.ECB()).encryptor()
    return enc.update(_pad(data)) + enc.finalize()


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    _check_ciphertext(data)
    dec = _cipher(key, modes.ECB()).decryptor()
    return _unpad(dec.update(data) + dec.finalize())


def _cbc(iv: bytes) -> modes.CBC:
    if len(iv) != BLOCK_SIZE:
        raise SM4Error(f"SM4 CBC IV must be 16 bytes, got {len(iv)}")
    return modes.CBC(bytes(iv))


def encrypt_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = _cipher(key, _cbc(iv)).encryptor()
    return enc.update(_pad(data)) + enc.finalize()


def decrypt_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check_ciphertext(data)
    dec = _cipher(key, _cbc(iv)).decryptor()
    return _unpad(dec.update(data) + dec.finalize())
