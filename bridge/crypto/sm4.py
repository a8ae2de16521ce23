"""SM4 block cipher (GM/T 0002-2012) in ECB and CBC mode with PKCS#7 padding.

ECB has no state between blocks, so one OpenSSL cipher context per key and thread
serves every message: `SM4ECB` keeps them (building a context costs about four times
the encryption of a 300-byte message).  PKCS#7 is applied here, on whole blocks, so a
context never holds a partial block back and is never finalised.
"""

from __future__ import annotations

import functools
import threading

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 16


class SM4Error(ValueError):
    """Bad key, IV, ciphertext length or padding."""


def _cipher(key: bytes, mode) -> Cipher:
    if len(key) != 16:
        raise SM4Error(f"SM4 key must be 16 bytes, got {len(key)}")
    return Cipher(algorithms.SM4(bytes(key)), mode)


def _pad(data: bytes) -> bytes:
    n = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return bytes(data) + bytes((n,)) * n


def _unpad(data: bytes) -> bytes:
    n = data[-1] if data else 0
    if not 1 <= n <= BLOCK_SIZE or data[-n:] != bytes((n,)) * n:
        raise SM4Error("bad PKCS#7 padding (wrong key or corrupted ciphertext)")
    return data[:-n]


def _check_ciphertext(data: bytes) -> None:
    if not data or len(data) % BLOCK_SIZE:
        raise SM4Error(f"ciphertext length {len(data)} is not a positive multiple of 16")


class SM4ECB:
    """SM4-ECB-PKCS7 under one key, with cipher contexts reused per thread."""

    __slots__ = ("_cipher", "_local")

    def __init__(self, key: bytes):
        self._cipher = _cipher(key, modes.ECB())
        self._local = threading.local()     # a context is not safe to share between threads

    def _contexts(self):
        local = self._local
        try:
            return local.enc, local.dec
        except AttributeError:
            local.enc, local.dec = self._cipher.encryptor(), self._cipher.decryptor()
            return local.enc, local.dec

    def encrypt(self, data: bytes) -> bytes:
        return self._contexts()[0].update(_pad(data))

    def decrypt(self, data: bytes) -> bytes:
        _check_ciphertext(data)
        return _unpad(self._contexts()[1].update(bytes(data)))


@functools.lru_cache(maxsize=32)
def ecb(key: bytes) -> SM4ECB:
    """The shared SM4ECB of key (a few keys live in a process: one per institution)."""
    return SM4ECB(key)


def encrypt_block_raw(key: bytes, block: bytes) -> bytes:
    """Encrypt exactly one 16-byte block, no padding (for the standard test vector)."""
    if len(block) != BLOCK_SIZE:
        raise SM4Error("a raw SM4 block is 16 bytes")
    enc = _cipher(key, modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    return ecb(bytes(key)).encrypt(data)


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    _check_ciphertext(data)
    return ecb(bytes(key)).decrypt(data)


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
