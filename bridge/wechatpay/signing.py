"""WeChat Pay APIv3 signatures: our requests, WeChat's responses and callbacks, and paySign.

Spec digest channels.md §1.2 (request), §1.3 (responses and callbacks), §1.7 (paySign).
The arithmetic is the same as in wechatpayv3's ``utils.build_authorization`` /
``rsa_verify`` (W2); we keep our own few lines over ``cryptography`` because its
``build_authorization`` reads the clock and serialises the body itself, while our
prepare/send split must sign, journal and then send exactly the same bytes, and its
verifier has no timestamp window.  The test suite checks interoperability with
wechatpayv3 both ways (tests/channel_wechatpay/test_interop_wechatpayv3.py).
"""
from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
# §1.3: the official sample refuses |now - Wechatpay-Timestamp| >= 5 min; H1 uses 300 s.
DEFAULT_WINDOW_SECONDS = 300
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"

HEADER_TIMESTAMP = "Wechatpay-Timestamp"
HEADER_NONCE = "Wechatpay-Nonce"
HEADER_SIGNATURE = "Wechatpay-Signature"
HEADER_SERIAL = "Wechatpay-Serial"
HEADER_SIGNATURE_TYPE = "Wechatpay-Signature-Type"
SIGNATURE_HEADERS = (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL)


class KeyFormatError(ValueError):
    """A key or certificate text that cannot be used; the message says why."""


class VerificationError(Exception):
    """A response or callback whose WeChat Pay signature does not check out."""


# ---------------------------------------------------------------- keys

def load_private_key(pem: str, what: str = "merchant private key") -> rsa.RSAPrivateKey:
    """An RSA private key in PEM (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")."""
    text = (pem or "").strip()
    if "-----BEGIN" not in text:
        raise KeyFormatError(f"{what}: expected PEM text (-----BEGIN PRIVATE KEY-----)")
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise KeyFormatError(f"{what}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError(f"{what}: must be an RSA key, not {type(key).__name__}")
    if key.key_size < 2048:
        raise KeyFormatError(f"{what}: RSA key of {key.key_size} bits; at least 2048 required")
    return key


@dataclass(frozen=True)
class PlatformKey:
    """The key that WeChat signs with and that we encrypt sensitive fields for."""

    serial: str                    # PUB_KEY_ID_... or the platform certificate serial (upper-case hex)
    public_key: rsa.RSAPublicKey


def load_platform_key(pem: str, serial: str = "") -> PlatformKey:
    """The WeChat Pay public key (PEM "PUBLIC KEY", with its PUB_KEY_ID_ id) or a
    platform certificate (PEM "CERTIFICATE"; its own serial is used and must match
    ``serial`` when one is given)."""
    text = (pem or "").strip()
    serial = (serial or "").strip()
    if "-----BEGIN CERTIFICATE-----" in text:
        try:
            cert = x509.load_pem_x509_certificate(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise KeyFormatError(f"platform certificate: not readable ({exc})") from None
        cert_serial = format(cert.serial_number, "X")
        if serial and normalise_serial(serial) != cert_serial:
            raise KeyFormatError(f"platform certificate serial is {cert_serial}, configured {serial}")
        key = cert.public_key()
        serial = cert_serial
    elif "-----BEGIN PUBLIC KEY-----" in text:
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise KeyFormatError(f"WeChat Pay public key: not readable ({exc})") from None
        if not serial:
            raise KeyFormatError("WeChat Pay public key: its id (PUB_KEY_ID_...) is required")
    else:
        raise KeyFormatError("platform key: expected PEM PUBLIC KEY or CERTIFICATE")
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError(f"platform key must be RSA, not {type(key).__name__}")
    check_serial(serial, "platform key serial")
    return PlatformKey(serial=serial if serial.startswith(PUBLIC_KEY_ID_PREFIX) else normalise_serial(serial),
                       public_key=key)


def normalise_serial(serial: str) -> str:
    """Certificate serials compare as hex numbers (case and leading zeros do not matter)."""
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        return serial
    try:
        return format(int(serial, 16), "X")
    except ValueError:
        return serial


def check_serial(serial: str, what: str) -> None:
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        if len(serial) <= len(PUBLIC_KEY_ID_PREFIX):
            raise KeyFormatError(f"{what}: {serial!r} has nothing after {PUBLIC_KEY_ID_PREFIX}")
        return
    try:
        int(serial, 16)
    except ValueError:
        raise KeyFormatError(f"{what}: {serial!r} is neither PUB_KEY_ID_... nor a hex certificate serial") \
            from None


# ---------------------------------------------------------------- signing our requests

def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def request_message(method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """§1.2: five lines, each ending in \\n; the body as the exact bytes sent."""
    head = f"{method.upper()}\n{path_and_query}\n{timestamp}\n{nonce}\n".encode("utf-8")
    return head + body + b"\n"


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def authorization(*, mchid: str, serial: str, private_key: rsa.RSAPrivateKey, method: str,
                  path_and_query: str, body: bytes, timestamp: Optional[str] = None,
                  nonce: Optional[str] = None) -> str:
    """The ``Authorization`` header value for one request."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    signature = rsa_sign(private_key, request_message(method, path_and_query, timestamp, nonce, body))
    return (f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial}"')


def parse_authorization(value: str) -> dict[str, str]:
    """The five items of an Authorization header (for tests and the simulator's use)."""
    if not value.startswith(SCHEMA + " "):
        raise ValueError("not a WECHATPAY2-SHA256-RSA2048 header")
    items = {}
    for part in value[len(SCHEMA) + 1:].split(","):
        key, _, raw = part.strip().partition("=")
        items[key] = raw.strip('"')
    return items


def pay_sign(private_key: rsa.RSAPrivateKey, *, appid: str, timestamp: str, nonce: str, package: str) -> str:
    """§1.7: ``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` signed SHA256withRSA with the merchant key.
    ``mixTradeNo`` and ``signType`` are not signed."""
    message = f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode("utf-8")
    return rsa_sign(private_key, message)


# ---------------------------------------------------------------- verifying WeChat

def header(headers: Mapping[str, str], name: str) -> Optional[str]:
    """Case-insensitive header lookup over any mapping (httpx, http.server, dict)."""
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is not None:
        return value
    lname = name.lower()
    for key, v in headers.items():
        if key.lower() == lname:
            return v
    return None


def has_signature(headers: Mapping[str, str]) -> bool:
    return header(headers, HEADER_SIGNATURE) is not None


class PlatformVerifier:
    """Checks Wechatpay-* signatures against the configured platform keys (§1.3).

    The key is chosen by ``Wechatpay-Serial``: an unknown serial is refused (a rotated
    platform certificate must be configured first).  The timestamp must lie within
    ``window_seconds`` of our clock, either way, so a captured callback cannot be
    replayed later.
    """

    def __init__(self, keys: Union[PlatformKey, list[PlatformKey]], *,
                 window_seconds: int = DEFAULT_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time):
        keys = [keys] if isinstance(keys, PlatformKey) else list(keys)
        if not keys:
            raise KeyFormatError("no platform key configured")
        self._keys = {k.serial: k.public_key for k in keys}
        self._window = window_seconds
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        timestamp = header(headers, HEADER_TIMESTAMP)
        nonce = header(headers, HEADER_NONCE)
        signature = header(headers, HEADER_SIGNATURE)
        serial = header(headers, HEADER_SERIAL)
        missing = [n for n, v in zip(SIGNATURE_HEADERS, (timestamp, nonce, signature, serial)) if not v]
        if missing:
            raise VerificationError(f"missing {', '.join(missing)}")
        sig_type = header(headers, HEADER_SIGNATURE_TYPE)
        if sig_type and sig_type != SCHEMA:
            raise VerificationError(f"unsupported {HEADER_SIGNATURE_TYPE} {sig_type!r}")
        key = self._keys.get(normalise_serial(serial.strip()))
        if key is None:
            raise VerificationError(f"{HEADER_SERIAL} {serial!r} is not a configured platform key")
        try:
            ts = int(timestamp)
        except ValueError:
            raise VerificationError(f"{HEADER_TIMESTAMP} {timestamp!r} is not a number") from None
        skew = abs(self._clock() - ts)
        if skew >= self._window:
            raise VerificationError(f"{HEADER_TIMESTAMP} is {int(skew)} s away from our clock "
                                    f"(limit {self._window} s)")
        if signature.startswith(PROBE_PREFIX):
            # W1: probe traffic goes through normal verification and fails; say so plainly.
            raise VerificationError("WeChat signature probe (WECHATPAY/SIGNTEST/): refused by design")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise VerificationError(f"{HEADER_SIGNATURE} is not Base64") from None
        message = f"{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"
        try:
            key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise VerificationError("signature does not verify") from None
