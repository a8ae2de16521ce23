"""RSA and AES-GCM primitives the simulated channels use (channels.md §1.2-§1.5, §6.2-§6.4).

Written on `cryptography` (OpenSSL), the well-kept library for these primitives; the
channels' own framing (what exactly is signed) lives in wechatpay_wire.py and alipay_wire.py.

* SHA256withRSA = RSASSA-PKCS1-v1_5 over SHA-256, Base64 (WeChat `WECHATPAY2-SHA256-RSA2048`
  and Alipay `RSA2`).
* RSA-OAEP with SHA-1 and MGF1-SHA1, no label (WeChat sensitive fields, §1.5).
* AEAD_AES_256_GCM with the 32-byte APIv3 key, 12-character nonce, ciphertext‖tag Base64 (§1.4).

Keys are test material. Generating four RSA-2048 pairs costs about a quarter of a second, and
the test suites start many simulators, so fresh pairs are made once per process and shared by
the configurations generated in it (`process_key`); a configuration may carry its own instead.
"""
from __future__ import annotations

import base64
import functools
import secrets
import string
import threading
from typing import Optional

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_POOL: dict[str, str] = {}
_POOL_LOCK = threading.Lock()


class CryptoError(ValueError):
    pass


def new_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def process_key(role: str) -> str:
    """A private key PEM for `role`, made once per process (see the module note)."""
    with _POOL_LOCK:
        if role not in _POOL:
            _POOL[role] = new_private_pem()
        return _POOL[role]


@functools.lru_cache(maxsize=32)
def load_private(pem: str) -> rsa.RSAPrivateKey:
    """Cached: loading checks the key, which costs tens of milliseconds per call."""
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError("not an RSA private key")
    return key


@functools.lru_cache(maxsize=32)
def load_public(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError("not an RSA public key")
    return key


def public_pem(private_pem: str) -> str:
    return load_private(private_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def rsa_sign(private_pem: str, message: bytes) -> str:
    sig = load_private(private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def rsa_verify(public_key_pem: str, message: bytes, signature_b64: str) -> bool:
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        load_public(public_key_pem).verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def oaep_decrypt(private_pem: str, ciphertext_b64: str) -> str:
    """§1.5: RSA/ECB/OAEPWithSHA-1AndMGF1Padding, UTF-8 plaintext."""
    try:
        plain = load_private(private_pem).decrypt(
            base64.b64decode(ciphertext_b64, validate=True),
            padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        return plain.decode("utf-8")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CryptoError("cannot decrypt the field") from exc


def oaep_encrypt(public_key_pem: str, text: str) -> str:
    ct = load_public(public_key_pem).encrypt(
        text.encode("utf-8"),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    return base64.b64encode(ct).decode("ascii")


def gcm_encrypt(key: str, plaintext: bytes, associated_data: str,
                nonce: Optional[str] = None) -> dict:
    """§1.4 resource: returns {algorithm, ciphertext, nonce, associated_data}."""
    nonce = nonce or random_text(12)
    ct = AESGCM(key.encode("utf-8")).encrypt(nonce.encode("utf-8"), plaintext,
                                             associated_data.encode("utf-8"))
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ct).decode("ascii"),
            "nonce": nonce, "associated_data": associated_data}


def gcm_decrypt(key: str, resource: dict) -> bytes:
    try:
        return AESGCM(key.encode("utf-8")).decrypt(
            str(resource["nonce"]).encode("utf-8"), base64.b64decode(resource["ciphertext"]),
            str(resource.get("associated_data") or "").encode("utf-8"))
    except (InvalidTag, KeyError, ValueError) as exc:
        raise CryptoError("AEAD_AES_256_GCM tag check failed") from exc


def random_text(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def random_digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))
