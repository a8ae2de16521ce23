"""Alipay OpenAPI RSA2 signatures (spec digest channels.md §6.2-§6.4).

* Requests: every parameter except ``sign`` with a non-empty value, sorted by key (ASCII),
  joined ``k=v`` with ``&``, values raw (not URL-encoded); SHA256withRSA with the app
  private key, Base64 (§6.2; A1 ``sign_data``, A2 ``getSignContent``).
* Synchronous responses: the signature covers the exact raw text of the
  ``<method>_response`` (or ``error_response``) value, from its ``{`` to the matching
  ``}`` (§6.3, A1).  We locate that span with the JSON decoder itself, so braces inside
  strings cannot fool it (python-alipay-sdk's brace counter can be: a ``sub_msg``
  containing ``}`` cuts the span short).
* Async notifies: drop ``sign`` and ``sign_type``, sort, join ``k=v`` with ``&`` keeping
  empty values as sent, verify (§6.4, A2 ``rsaCheckV1``).

python-alipay-sdk (A1) and the official alipay-sdk-python do the same arithmetic but
couple it to their own HTTP calls (``urlopen`` inside ``verified_sync_response``), which
our prepare/send split cannot use; the tests check interoperability with
python-alipay-sdk both ways.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ERROR_NODE = "error_response"


class KeyFormatError(ValueError):
    pass


class VerificationError(Exception):
    """An Alipay answer or notify whose signature does not check out."""


# ---------------------------------------------------------------- keys

def _der(text: str, what: str) -> bytes:
    body = "".join(text.split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what}: neither PEM nor Base64 key text") from None


def load_private_key(text: str, what: str = "app private key") -> rsa.RSAPrivateKey:
    """PEM (PKCS#8 or PKCS#1) or the bare Base64 that Alipay's key tool writes."""
    text = (text or "").strip()
    if not text:
        raise KeyFormatError(f"{what}: empty")
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            key = serialization.load_der_private_key(_der(text, what), password=None)
    except KeyFormatError:
        raise
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise KeyFormatError(f"{what}: not a readable unencrypted RSA private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError(f"{what}: must be RSA")
    if key.key_size < 2048:
        raise KeyFormatError(f"{what}: RSA2 needs at least 2048 bits, got {key.key_size}")
    return key


def load_public_key(text: str, what: str = "Alipay public key") -> rsa.RSAPublicKey:
    """PEM "PUBLIC KEY" or the bare Base64 (X.509 SubjectPublicKeyInfo) Alipay shows."""
    text = (text or "").strip()
    if not text:
        raise KeyFormatError(f"{what}: empty")
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(_der(text, what))
    except KeyFormatError:
        raise
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise KeyFormatError(f"{what}: not a readable RSA public key ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError(f"{what}: must be RSA")
    return key


# ---------------------------------------------------------------- requests

def sign_content(params: Mapping[str, Any]) -> str:
    """§6.2 steps 1-2."""
    items = sorted((k, str(v)) for k, v in params.items() if k != "sign" and v is not None and str(v) != "")
    return "&".join(f"{k}={v}" for k, v in items)


def rsa2_sign(private_key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(private_key.sign(content.encode("utf-8"), padding.PKCS1v15(),
                                             hashes.SHA256())).decode("ascii")


def rsa2_verify(public_key: rsa.RSAPublicKey, content: bytes, signature: str) -> None:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("sign is not Base64") from None
    try:
        public_key.verify(raw, content, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise VerificationError("signature does not verify") from None


# ---------------------------------------------------------------- synchronous responses

def response_node_name(method: str) -> str:
    """``alipay.trade.query`` -> ``alipay_trade_query_response`` (§6.3)."""
    return method.replace(".", "_") + "_response"


def top_level_spans(text: str) -> dict[str, tuple[str, Any]]:
    """Each top-level member of a JSON object: name -> (exact raw text, parsed value)."""
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    i, n = 0, len(text)
    while i < n and text[i] in ws:
        i += 1
    if i >= n or text[i] != "{":
        raise ValueError("not a JSON object")
    i += 1
    members: dict[str, tuple[str, Any]] = {}
    while True:
        while i < n and text[i] in ws:
            i += 1
        if i < n and text[i] == "}" and not members:
            return members
        if i >= n or text[i] != '"':
            raise ValueError("expected a member name")
        name, i = json.decoder.scanstring(text, i + 1)
        while i < n and text[i] in ws:
            i += 1
        if i >= n or text[i] != ":":
            raise ValueError("expected ':'")
        i += 1
        while i < n and text[i] in ws:
            i += 1
        value, end = decoder.raw_decode(text, i)
        if name in members:
            raise ValueError(f"duplicate member {name!r}")   # an ambiguity we refuse to sign-check
        members[name] = (text[i:end], value)
        i = end
        while i < n and text[i] in ws:
            i += 1
        if i < n and text[i] == ",":
            i += 1
            continue
        if i < n and text[i] == "}":
            i += 1
            while i < n and text[i] in ws:
                i += 1
            if i != n:
                raise ValueError("text after the JSON object")
            return members
        raise ValueError("expected ',' or '}'")


class SignedResponse:
    """A synchronous answer split into its node and signature; ``verify`` checks it."""

    def __init__(self, text: str, method: str):
        members = top_level_spans(text)
        node_name = response_node_name(method)
        name = node_name if node_name in members else ERROR_NODE if ERROR_NODE in members else None
        if name is None:
            raise ValueError(f"no {node_name} in the answer")
        raw, value = members[name]
        if not isinstance(value, dict):
            raise ValueError(f"{name} is not an object")
        self.node_name: str = name
        self.raw_node: str = raw
        self.node: dict = value
        sign = members.get("sign")
        self.sign: Optional[str] = sign[1] if sign and isinstance(sign[1], str) and sign[1] else None

    def verify(self, public_key: rsa.RSAPublicKey) -> None:
        if self.sign is None:
            raise VerificationError("the answer is not signed")
        rsa2_verify(public_key, self.raw_node.encode("utf-8"), self.sign)


# ---------------------------------------------------------------- async notifies

def notify_content(params: Mapping[str, str]) -> str:
    """§6.4 (rsaCheckV1): everything but sign and sign_type, sorted, empty values kept."""
    items = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type"))
    return "&".join(f"{k}={v}" for k, v in items)


def verify_notify(public_key: rsa.RSAPublicKey, params: Mapping[str, str]) -> None:
    sign = params.get("sign")
    if not sign:
        raise VerificationError("the notify has no sign")
    sign_type = params.get("sign_type")
    if sign_type not in (None, "", "RSA2"):
        raise VerificationError(f"sign_type {sign_type!r} is not RSA2")
    rsa2_verify(public_key, notify_content(params).encode("utf-8"), sign)
