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

Where the digest leaves a detail open, the decompiled SDK (digest source S3:
``com.openhis.utils.SignUtil``, ``HseEncAndDecUtil``, ``StringUtil``) was read and
followed; each such place says so.  Three of its rules the digest does not state:

* a top-level value whose text, trimmed as Java's String.trim() does (every char
  <= U+0020), is empty or ``null`` is left out of the string (getSignText's second
  filter, StringUtil.isEmpty(String)); inside ``data`` only null and "" go;
* numbers are java.math.BigDecimal there, which has no negative zero: ``-0.00``
  signs as ``0.00``;
* an array whose elements are not all objects makes the SDK throw
  (HseEncAndDecUtil.removeEmpty casts every element to JSONObject; SignUtil.treeJsonArray
  calls toString() on a null element), and its catch-all then signs the raw JSON
  text instead.  No signing string of ours can match that, so ``seal`` refuses such
  data with UnsignableData.  ``open`` still reads such arrays the §3.2 way (null and
  "" elements dropped): a centre that signed something else fails verification, which
  is the safe side.

The string is built in one pass over the data: each object is reduced to its
non-empty members with string leaves, and the C JSON encoder sorts and writes it.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from collections.abc import Mapping
from typing import Any, Optional

from bridge.crypto import sm2, sm4

from .config import MobilePayConfig

ENC_TYPE = "SM4"
SIGN_TYPE = "SM2"
# §3.1 rule 1: never part of the signing string.
UNSIGNED_FIELDS = frozenset({"signData", "encData", "extra"})
# China Standard Time, for the 14-digit timestamp style; the centre runs on it.
_CST = timezone(timedelta(hours=8))
# Java's String.trim() strips every char up to U+0020, not Unicode white space.
_JAVA_TRIM = "".join(map(chr, range(0x21)))


class EnvelopeError(Exception):
    """A message that cannot be trusted: malformed, undecryptable or badly signed."""


class MalformedEnvelope(EnvelopeError):
    pass


class DecryptionFailed(EnvelopeError):
    pass


class SignatureInvalid(EnvelopeError):
    pass


class UnsignableData(ValueError):
    """Outgoing data the centre's SDK cannot sign the way we do (see the module docstring)."""


# ---------------------------------------------------------------- signing string

def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list) and not value)


def remove_empty(value: Any) -> Any:
    """Drop null, "" and empty arrays, recursively (§3.2 "Empty-value removal").

    Null and "" elements inside arrays go too (the "some ports" variant of §3.2;
    the SDK cannot sign such arrays at all, see UnsignableData).  An empty array
    that is an array *element* stays: §3.2 removes empty arrays only as the value
    of a key (found against the simulator, which follows §3.2 literally and so
    signed ``[[]]`` differently).  Empty objects stay: SignUtil.treeParams keeps a
    nested empty map as ``{}``.  0 and "0" stay.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = remove_empty(v)
            if not _is_empty(v):
                out[k] = v
        return out
    if isinstance(value, list):
        return [remove_empty(v) for v in value if v is not None and v != ""]
    return value


def _decimal_text(value: Decimal) -> str:
    # str(Decimal) keeps the literal's scale ("12.50") and, like Java's
    # BigDecimal.toString(), switches to E-notation only for tiny/huge exponents.
    # BigDecimal has no negative zero: -0.00 is 0.00 there.
    if value.is_zero() and value.is_signed():
        value = value.copy_abs()
    return str(value)


def _scalar_text(value: Any) -> str:
    if value.__class__ is str:
        return value
    if isinstance(value, bool):          # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, float):
        raise TypeError("float in a money message; parse JSON with parse_float=Decimal")
    raise TypeError(f"cannot sign a value of type {type(value).__name__}")


def _tree(value: Any, strict: bool, path: str) -> Any:
    """value with empties removed and every leaf a string, keys unsorted (json sorts them).

    strict (sealing): an array must hold objects only, or UnsignableData names it.
    The exact-class tests come first: this runs on every leaf of every message.
    """
    cls = value.__class__
    if cls is str:
        return value
    if cls is dict:
        return _tree_object(value, strict, path)
    if cls is list or cls is tuple:
        return _tree_array(value, strict, path)
    if cls is bool or cls is int or cls is Decimal:
        return _scalar_text(value)
    if isinstance(value, Mapping):
        return _tree_object(value, strict, path)
    if isinstance(value, (list, tuple)):
        return _tree_array(value, strict, path)
    return _scalar_text(value)


def _tree_object(value: Mapping, strict: bool, path: str) -> dict:
    out = {}
    for k, v in value.items():
        if v is None or v == "":
            continue
        if not isinstance(k, str):
            raise TypeError(f"JSON object keys must be strings, not {type(k).__name__}")
        t = _tree(v, strict, f"{path}.{k}" if strict else path)
        if t.__class__ is list and not t:
            continue
        out[k] = t
    return out


def _tree_array(value, strict: bool, path: str) -> list:
    if not strict:
        return [_tree(v, False, path) for v in value if v is not None and v != ""]
    for i, v in enumerate(value):
        if not isinstance(v, Mapping):
            shown = "null" if v is None else f"{type(v).__name__} {v!r:.40}"
            raise UnsignableData(
                f"{path}[{i}] is {shown}: the centre's SDK signs arrays of objects only (it fails on "
                f"strings, numbers, nulls and arrays as elements), so this data cannot be sent")
    return [_tree_object(v, True, f"{path}[{i}]") for i, v in enumerate(value)]


# Built once: json.dumps with arguments builds a new encoder on every call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_COMPACT_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_DECODER = json.JSONDecoder(parse_float=Decimal)
# Stands in for a Decimal while the C encoder writes the rest (U+E000 is private use;
# a text holding it is written the slow way instead).
_MARK = "\ue000"
_MARKED = re.compile('"' + _MARK + r'(\d+)' + _MARK + '"')


def _dumps(value: Any, sort_keys: bool = False) -> str:
    return (_COMPACT_SORTED if sort_keys else _COMPACT).encode(value)


_PLAIN, _DECIMALS, _SLOW = 0, 1, 2


def _kind(value: Any) -> int:
    """What compact_json needs for value: _PLAIN (the C encoder alone), _DECIMALS (the C
    encoder with Decimals marked) or _SLOW (the exact writer).  TypeError for what JSON
    must not carry here: a float, a key that is not a string, another type."""
    cls = value.__class__
    if cls is str:
        return _SLOW if _MARK in value else _PLAIN
    if value is None or cls is int or cls is bool:
        return _PLAIN
    if cls is dict:
        kind = _PLAIN
        for k, v in value.items():
            if k.__class__ is not str:
                if not isinstance(k, str):
                    raise TypeError(f"JSON object keys must be strings, not {type(k).__name__}")
            elif _MARK in k:
                kind = _SLOW
            kind = max(kind, _kind(v))
        return kind
    if cls is list or cls is tuple:
        kind = _PLAIN
        for v in value:
            kind = max(kind, _kind(v))
        return kind
    if cls is Decimal:
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return _DECIMALS
    if isinstance(value, float):
        raise TypeError("float in a money message; use Decimal")
    # subclasses and other mappings: checked like the rest, written by the exact writer
    if isinstance(value, Mapping):
        _kind(dict(value))
        return _SLOW
    if isinstance(value, (list, tuple)):
        _kind(list(value))
        return _SLOW
    if isinstance(value, (str, int, Decimal)):
        return _SLOW
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _write_exact(value: Any) -> str:
    """Compact JSON writing each Decimal with its exact literal text."""
    if isinstance(value, Mapping):
        return "{" + ",".join(_string(k) + ":" + _write_exact(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_write_exact(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def compact_json(value: Any) -> str:
    """fastjson/Newtonsoft default output: no spaces, non-ASCII raw (§3.2).

    A Decimal is written as a JSON number with its exact literal text, which the
    json module cannot do (it would need float); without Decimals the C encoder
    writes it.  A float is refused: money is never float.
    """
    kind = _kind(value)
    if kind == _PLAIN:
        return _COMPACT.encode(value)
    if kind == _SLOW:
        return _write_exact(value)
    decimals: list[Decimal] = []

    def mark(o: Any) -> str:
        if o.__class__ is not Decimal:
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
        decimals.append(o)
        return f"{_MARK}{len(decimals) - 1}{_MARK}"
    text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=mark).encode(value)
    return _MARKED.sub(lambda m: str(decimals[int(m.group(1))]), text)


def _string(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    return json.dumps(key, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """The text an object value contributes to the signing string."""
    return _dumps(_tree(value, False, "data"), sort_keys=True)


def _java_fold(text: str) -> str:
    # String.CASE_INSENSITIVE_ORDER compares char by char after toUpperCase then
    # toLowerCase; Python's multi-char case mappings (e.g. "ß") are left alone as Java does.
    if text.isascii():
        return text.lower()
    out = []
    for ch in text:
        up = ch.upper()
        up = up if len(up) == 1 else ch
        low = up.lower()
        out.append(low if len(low) == 1 else up)
    return "".join(out)


def _top_text(value: Any, strict: bool, name: str) -> Optional[str]:
    """SignUtil.getSignText's text of one top-level value; None when it is left out."""
    if value is None or value == "":                 # first filter, StringUtil.isEmpty(Object)
        return None
    if value.__class__ is str:
        text = value
    elif isinstance(value, (dict, list, tuple)) or isinstance(value, Mapping):
        tree = _tree(value, strict, name)
        if tree.__class__ is list and not tree:      # treeJsonArray gives null: "null"
            return None
        text = _dumps(tree, sort_keys=True)
    else:
        text = _scalar_text(value)
    stripped = text.strip(_JAVA_TRIM)
    if not stripped or stripped == "null":           # second filter, StringUtil.isEmpty(String)
        return None
    return text


def _signing_string(fields: Mapping[str, Any], app_secret: str, strict: bool) -> str:
    items = []
    for name, value in fields.items():
        if name in UNSIGNED_FIELDS:
            continue
        text = _top_text(value, strict, name)
        if text is not None:
            items.append((name, text))
    # The k=v& items sorted with String.CASE_INSENSITIVE_ORDER.  While no name holds
    # "=" and no two names fold alike, the order is decided by fold(name) + "=",
    # so the values (all of data's JSON) need not be folded.
    keys = [_java_fold(name) + "=" for name, _ in items]
    if len(set(keys)) == len(keys) and not any("=" in name for name, _ in items):
        order = sorted(range(len(items)), key=keys.__getitem__)
    else:
        order = sorted(range(len(items)), key=lambda i: _java_fold(f"{items[i][0]}={items[i][1]}&"))
    return "".join(f"{items[i][0]}={items[i][1]}&" for i in order) + "key=" + app_secret


def signing_string(fields: Mapping[str, Any], app_secret: str) -> str:
    """``k=v&...&key=<appSecret>`` over every non-empty, non-ignored top-level field.

    Follows SignUtil.getSignText (S3): string values as they are, objects and
    arrays as canonical JSON, other scalars by their text; values that are blank or
    "null" once trimmed left out; the ``k=v&`` items sorted with
    String.CASE_INSENSITIVE_ORDER; then ``key=`` and the secret.
    """
    return _signing_string(fields, app_secret, strict=False)


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
    if isinstance(text, (bytes, bytearray)):
        text = text.decode(json.detect_encoding(text), "surrogatepass")   # as json.loads does
    elif not isinstance(text, str):
        raise TypeError(f"the JSON object must be str or bytes, not {type(text).__name__}")
    return _DECODER.decode(text)


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
        """signData over fields; UnsignableData for data the centre's SDK cannot sign."""
        text = _signing_string(fields, self._config.app_secret, strict=True)
        return base64.b64encode(self._private_key.sign(text.encode("utf-8"), uid=self._sign_uid)).decode("ascii")

    def seal(self, data: Mapping[str, Any], extra_fields: Optional[Mapping[str, Any]] = None) -> dict:
        """Build the wire envelope around ``data`` (§2.1).

        ``extra_fields`` adds signed top-level fields (the callback acknowledgement
        carries ``code``/``message``).  The encrypted payload is ``data`` exactly as
        serialised here; the signature covers its normalised form (§3.2).  Raises
        UnsignableData for an array of non-objects anywhere, TypeError for a float.
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
        sign_data = self.sign({**head, "data": data})
        enc_data = encrypt_data(self._sm4_key, compact_json(data), self._config.hex_case)
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
        signed = fields if data is None else {**fields, "data": data}
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
