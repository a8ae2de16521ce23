"""WeChat Pay encryption: callback resources (AES-256-GCM) and sensitive fields (RSA-OAEP).

Spec digest channels.md §1.4 (AEAD_AES_256_GCM with the APIv3 key) and §1.5
(RSA/ECB/OAEPWithSHA-1AndMGF1Padding, the ``id_digest`` rule).  Same primitives as
wechatpayv3's ``aes_decrypt`` / ``rsa_encrypt`` (W2), except that a failed tag raises
instead of returning None, so no caller can mistake a forged resource for an empty one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AEAD_ALGORITHM = "AEAD_AES_256_GCM"


class DecryptionError(Exception):
    """The resource does not decrypt under our APIv3 key (wrong key, altered, truncated)."""


def check_apiv3_key(key: str) -> bytes:
    raw = (key or "").encode("utf-8")
    if len(raw) != 32:
        raise ValueError(f"the APIv3 key must be exactly 32 bytes, got {len(raw)}")
    return raw


def decrypt_resource(apiv3_key: bytes, *, nonce: str, ciphertext: str, associated_data: str = "") -> bytes:
    """§1.4: key = APIv3 key bytes, IV = nonce (UTF-8), AAD = associated_data (UTF-8,
    may be empty), data = Base64(ciphertext ‖ 16-byte tag)."""
    try:
        data = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("ciphertext is not Base64") from None
    if len(data) < 16:
        raise DecryptionError("ciphertext shorter than the GCM tag")
    if not nonce:
        raise DecryptionError("resource has no nonce")
    try:
        return AESGCM(apiv3_key).decrypt(nonce.encode("utf-8"), data, (associated_data or "").encode("utf-8"))
    except InvalidTag:
        raise DecryptionError("GCM tag does not verify (wrong APIv3 key or altered resource)") from None


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, *, nonce: str, associated_data: str = "") -> str:
    """The inverse of decrypt_resource (for tests and stand-ins)."""
    return base64.b64encode(AESGCM(apiv3_key).encrypt(nonce.encode("utf-8"), plaintext,
                                                      associated_data.encode("utf-8"))).decode("ascii")


_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def encrypt_sensitive(public_key: rsa.RSAPublicKey, plaintext: str) -> str:
    """§1.5: RSA-OAEP (SHA-1, MGF1-SHA1, no label) of the UTF-8 text, Base64."""
    return base64.b64encode(public_key.encrypt(plaintext.encode("utf-8"), _OAEP)).decode("ascii")


def decrypt_sensitive(private_key: rsa.RSAPrivateKey, ciphertext: str) -> str:
    """The platform side of encrypt_sensitive (for tests and stand-ins)."""
    return private_key.decrypt(base64.b64decode(ciphertext), _OAEP).decode("utf-8")


_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id18(id_number: str) -> str:
    """An ID number upper-cased and, if it is a 15-digit first-generation number, converted
    to 18 digits (insert the century 19, append the GB 11643-1999 check character)."""
    value = (id_number or "").strip().upper()
    if len(value) == 15:
        if not value.isdigit():
            raise ValueError("a 15-character ID number must be all digits")
        body = value[:6] + "19" + value[6:]
        return body + _CHECK[sum(int(c) * w for c, w in zip(body, _WEIGHTS)) % 11]
    if len(value) != 18 or not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        raise ValueError("an ID number must have 18 characters (17 digits and a digit or X) or 15 digits")
    return value


def id_digest(id_number: str) -> str:
    """§1.5: MD5, lower-case hex, of the upper-cased 18-digit ID number (W1 开发参数 §五)."""
    return hashlib.md5(id18(id_number).encode("ascii"), usedforsecurity=False).hexdigest()
