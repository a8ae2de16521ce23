"""The mobile-payment centre's message envelope: signing string, SM4, SM2.

Implements spec digest mobilepay.md §2-§4 as written:

* request on the wire: {appId, encType, signType, timestamp, version, encData, signData};
  the plaintext ``data`` takes part in the signature only (§2.1);
* signing string (§3): recursive empty-value removal, ordinal key sort at every
  depth, every scalar leaf stringified (Decimal text kept: "12.50" stays "12.50"),
  compact JSON with raw non-ASCII, top-level ``k=v&`` items sorted
  case-insensitively, ``key=<appSecret>`` appended;
* SM3withSM2 signature as Base64 of raw 64-byte r||s (§3.3);
* SM4-ECB-PKCS7 with the key derived from appId/appSecret, hex encData (§4);
* response verification (§2.2): drop signData/encData, put the decrypted object
  in as ``data``, rebuild the string and verify with the platform key.

Where the digest leaves a detail open, the decompiled SDK ``com.openhis.utils.SignUtil``
(digest source S3) was read and followed; each such place says so.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping, Optional

from bridge.crypto import sm2, sm4

from .config import MobilePayConfig

ENC_TYPE = "SM4"
SIGN_TYPE = "SM2"
# §3.1 rule 1: never part of the signing string.
UNSIGNED_FIELDS = frozenset({"signData", "encData", "extra"})
# China Standard Time, for the 14-digit timestamp style; the centre runs on it.
_CST = timezone(timedelta(hours=8))


class EnvelopeError(Exception):
    """A message that cannot be trusted: malformed, undecryptable or badly signed."""


class MalformedEnvelope(EnvelopeError):
    pass


class DecryptionFailed(EnvelopeError):
    pass


class SignatureInvalid(EnvelopeError):
    pass


# ---------------------------------------------------------------- signing string

def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list) and not value)


def remove_empty(value: Any) -> Any:
    """Drop null, "" and empty arrays, recursively (§3.2 "Empty-value removal").

    Null and "" elements inside arrays go too (the "some ports" variant of §3.2:
    the Java SDK drops "" elements and would crash on null ones).  An empty array
    that is an array *element* stays: §3.2 removes empty arrays only as the value
    of a key (found against the simulator, which follows §3.2 literally and so
    signed ``[[]]`` differently).  Empty objects stay: SignUtil.treeParams keeps a
    nested empty map as ``{}``.  0 and "0" stay.
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            v = remove_empty(v)
            if not _is_empty(v):
                out[k] = v
        return out
    if isinstance(value, list):
        return [remove_empty(v) for v in value if v is not None and v != ""]
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):          # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        # str(Decimal) keeps the literal's scale ("12.50") and, like Java's
        # BigDecimal.toString(), switches to E-notation only for tiny/huge exponents.
        return str(value)
    if isinstance(value, float):
        raise TypeError("float in a money message; parse JSON with parse_float=Decimal")
    raise TypeError(f"cannot sign a value of type {type(value).__name__}")


def normalise(value: Any) -> Any:
    """Ordinal key sort at every depth, arrays in order, every scalar leaf a string (§3.2)."""
    if isinstance(value, Mapping):
        # Python sorts str by code point: ordinal like Java's TreeMap for the
        # BMP-only (in practice ASCII) keys the interfaces use.
        return {k: normalise(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return _scalar_text(value)


def compact_json(value: Any) -> str:
    """fastjson/Newtonsoft default output: no spaces, non-ASCII raw (§3.2).

    A Decimal is written as a JSON number with its exact literal text, which the
    json module cannot do (it would need float).
    """
    if isinstance(value, Mapping):
        return "{" + ",".join(_string(k) + ":" + compact_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(compact_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, float):
        raise TypeError("float in a money message; use Decimal")
    return json.dumps(value, ensure_ascii=False)


def _string(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    return json.dumps(key, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """The text an object value contributes to the signing string."""
    return compact_json(normalise(remove_empty(value)))


def _java_case_insensitive_key(text: str) -> tuple[int, ...]:
    # String.CASE_INSENSITIVE_ORDER compares char by char after toUpperCase then
    # toLowerCase; Python's multi-char case mappings (e.g. "ß") are left alone as Java does.
    key = []
    for ch in text:
        up = ch.upper()
        up = up if len(up) == 1 else ch
        low = up.lower()
        low = low if len(low) == 1 else up
        key.append(ord(low))
    return tuple(key)


def signing_string(fields: Mapping[str, Any], app_secret: str) -> str:
    """``k=v&...&key=<appSecret>`` over every non-empty, non-ignored top-level field.

    Follows SignUtil.getSignText (S3): string values as they are, objects and
    arrays as canonical JSON, other scalars by their text; the ``k=v&`` items
    sorted with String.CASE_INSENSITIVE_ORDER; then ``key=`` and the secret.
    """
    items = []
    for name, value in fields.items():
        if name in UNSIGNED_FIELDS or _is_empty(value):
            continue
        if isinstance(value, (Mapping, list)):
            text = canonical_json(value)
        else:
            text = _scalar_text(value)
        if text == "":
            continue
        items.append(f"{name}={text}&")
    items.sort(key=_java_case_insensitive_key)
    return "".join(items) + "key=" + app_secret


# ---------------------------------------------------------------- SM4

def derive_sm4_key(app_id: str, app_secret: str) -> bytes:
    """§4 steps 1-3: SM4(appId[:16], appSecret) -> first 16 upper-case hex chars as the key."""
    seed = app_id[:16].encode("utf-8")
    if len(seed) != 16:
        raise ValueError("the first 16 characters of appId must be 16 bytes in UTF-8")
    tmp = sm4.encrypt_ecb(seed, app_secret.encode("utf-8"))
    return tmp.hex().upper()[:16].encode("ascii")


def encrypt_data(key: bytes, plaintext: str, hex_case: str = "upper") -> str:
    out = sm4.encrypt_ecb(key, plaintext.encode("utf-8")).hex()
    return out.upper() if hex_case == "upper" else out


def decrypt_data(key: bytes, enc_data: str) -> str:
    """Accepts upper- or lower-case hex (§4 step 4)."""
    try:
        raw = bytes.fromhex(enc_data)
    except (ValueError, TypeError) as exc:
        raise DecryptionFailed("encData is not hex") from exc
    try:
        plain = sm4.decrypt_ecb(key, raw)
    except ValueError as exc:
        raise DecryptionFailed(f"encData does not decrypt: {exc}") from exc
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionFailed("decrypted encData is not UTF-8") from exc


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping decimal literals exact (money is never float)."""
    return json.loads(text, parse_float=Decimal)


# ---------------------------------------------------------------- the envelope

@dataclass(frozen=True)
class Opened:
    """A verified incoming envelope."""

    fields: dict            # top-level fields as received, minus encData/signData
    data: Optional[dict]    # decrypted business object (as parsed; empties not removed)

    @property
    def code(self) -> Optional[str]:
        # §2.2: code may be a JSON number or a string; compare its text.
        code = self.fields.get("code")
        return None if code is None else _scalar_text(code)

    @property
    def message(self) -> Optional[str]:
        message = self.fields.get("message")
        return None if message is None else str(message)


class Envelope:
    """Seals outgoing and opens incoming messages for one institution's credentials."""

    def __init__(self, config: MobilePayConfig):
        self._config = config
        self._private_key = sm2.load_private_key(config.org_private_key)
        self._platform_key = sm2.load_public_key(config.platform_public_key)
        self._sm4_key = derive_sm4_key(config.app_id, config.app_secret)
        secret_uid = config.app_secret.encode("utf-8")
        if config.sm2_uid_mode == "appSecret":
            self._sign_uid, self._other_uid = secret_uid, sm2.DEFAULT_UID
        else:
            self._sign_uid, self._other_uid = sm2.DEFAULT_UID, secret_uid

    def timestamp(self) -> str:
        if self._config.timestamp_style == "yyyyMMddHHmmss":
            return datetime.now(_CST).strftime("%Y%m%d%H%M%S")
        return str(time.time_ns() // 1_000_000)

    def sign(self, fields: Mapping[str, Any]) -> str:
        text = signing_string(fields, self._config.app_secret)
        return base64.b64encode(self._private_key.sign(text.encode("utf-8"), uid=self._sign_uid)).decode("ascii")

    def seal(self, data: Mapping[str, Any], extra_fields: Optional[Mapping[str, Any]] = None) -> dict:
        """Build the wire envelope around ``data`` (§2.1).

        ``extra_fields`` adds signed top-level fields (the callback acknowledgement
        carries ``code``/``message``).  The encrypted payload is ``data`` exactly as
        serialised here; the signature covers its normalised form (§3.2).
        """
        head: dict[str, Any] = {
            "appId": self._config.app_id,
            "encType": ENC_TYPE,
            "signType": SIGN_TYPE,
            "timestamp": self.timestamp(),
            "version": self._config.version,
        }
        if extra_fields:
            head.update(extra_fields)
        sign_data = self.sign({**head, "data": dict(data)})
        enc_data = encrypt_data(self._sm4_key, compact_json(dict(data)), self._config.hex_case)
        return {**head, "encData": enc_data, "signData": sign_data}

    def open(self, message: Any) -> Opened:
        """Decrypt and verify an envelope from the platform (§2.2).

        Raises MalformedEnvelope, DecryptionFailed or SignatureInvalid; nothing
        that comes back from here unverified.
        """
        if not isinstance(message, dict):
            raise MalformedEnvelope("the response is not a JSON object")
        sign_data = message.get("signData")
        if not isinstance(sign_data, str) or not sign_data:
            raise SignatureInvalid("the response carries no signData")
        fields = {k: v for k, v in message.items() if k not in ("signData", "encData")}
        data = None
        enc_data = message.get("encData")
        if enc_data not in (None, ""):
            if not isinstance(enc_data, str):
                raise MalformedEnvelope("encData is not a string")
            if fields.get("data") not in (None, ""):
                raise MalformedEnvelope("the response has both encData and a plaintext data")
            try:
                data = loads(decrypt_data(self._sm4_key, enc_data))
            except ValueError as exc:   # JSONDecodeError is a ValueError
                raise DecryptionFailed(f"decrypted encData is not JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise MalformedEnvelope("the decrypted business data is not a JSON object")
        try:
            signature = base64.b64decode(sign_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SignatureInvalid("signData is not Base64") from exc
        signed = dict(fields)
        if data is not None:
            signed["data"] = remove_empty(data)
        try:
            text = signing_string(signed, self._config.app_secret).encode("utf-8")
        except TypeError as exc:
            raise MalformedEnvelope(f"the response cannot be canonicalised: {exc}") from exc
        # The configured user id first, then the other one: either way the signature
        # proves possession of the platform's private key (§3.3 leaves the id [U];
        # the digest suggests the same fallback for the simulator).
        if not any(self._verifies(text, signature, uid) for uid in (self._sign_uid, self._other_uid)):
            raise SignatureInvalid("the response signature does not verify against the platform key")
        return Opened(fields=fields, data=data)

    def _verifies(self, text: bytes, signature: bytes, uid: bytes) -> bool:
        try:
            return bool(self._platform_key.verify(text, signature, uid=uid))
        except ValueError:      # wrong length or out-of-range r/s: simply not valid
            return False
