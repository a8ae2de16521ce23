"""The mobile-pay centre's envelope, written from mobilepay.md §2-§4 (not from any client).

Request on the wire: {appId, encType, signType, timestamp, version, encData, signData}.
encData = hex(SM4-ECB-PKCS7(k, data JSON)) with k derived from appId/appSecret (§4);
signData = Base64(raw r||s) of SM2/SM3 over the signing string (§3):
    sorted "name=value&" pairs of the non-empty envelope fields except signData/encData/extra,
    with data = the decrypted object normalised (empties removed recursively, keys sorted
    ordinally, every scalar leaf a string, compact JSON), then "key=<appSecret>".
Responses and 6302 notices use the same construction, signed with the platform key.

Two rules the digest does not state, from the decompiled SDK it cites (S3) as issue 10
item 12 reports them: a top-level value whose text, trimmed like Java's String.trim()
(chars up to U+0020), is empty or "null" is not signed (StringUtil.isEmpty(String) in
SignUtil.getSignText); numbers are BigDecimal there, which has no negative zero, so
-0.00 is signed as 0.00.  "Non-empty" at the top level otherwise means what §3.2's
empty-value removal says: an empty object {} is signed.
"""
from __future__ import annotations

import base64
import binascii
import json
import time
from decimal import Decimal
from typing import Any, Optional

from bridge.crypto import sm2, sm4

from .config import SimulatorConfig
from .wire import dumps, loads

IGNORED = ("signData", "encData", "extra")   # §3.1 rule 1
_TRIMMED = "".join(chr(c) for c in range(0x21))   # what Java's String.trim() removes


class EnvelopeError(ValueError):
    """The request cannot be opened or does not verify."""


def derive_key(app_id: str, app_secret: str) -> bytes:
    k0 = app_id[:16].encode("utf-8")                               # §4 step 1
    tmp = sm4.encrypt_ecb(k0, app_secret.encode("utf-8"))          # step 2
    return tmp.hex().upper()[:16].encode("ascii")                  # step 3


def remove_empty(value: Any) -> Any:
    """§3.2: drop null, "" and empty arrays, recursively (numeric 0 and "0" stay)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = remove_empty(v)
            if v is None or v == "" or (isinstance(v, list) and not v):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [remove_empty(v) for v in value if v is not None and v != ""]
    return value


def _leaf(value: Any) -> Any:
    """§3.2 treeParams: objects sorted ordinally, arrays keep order, scalars become strings."""
    if isinstance(value, dict):
        return {k: _leaf(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_leaf(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(abs(value)) if value == 0 else str(value)   # BigDecimal: no -0.00
    return str(value)


def _top_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(_leaf(remove_empty(value)), ensure_ascii=False, separators=(",", ":"))
    return _leaf(value)


def signing_string(fields: dict, app_secret: str) -> str:
    items = []
    for k, v in fields.items():
        if k in IGNORED or v is None or v == "" or (isinstance(v, list) and not remove_empty(v)):
            continue
        text = _top_value(v)
        if text.strip(_TRIMMED) in ("", "null"):
            continue
        items.append(f"{k}={text}&")
    items.sort(key=str.lower)   # §3.2: case-insensitive comparator over the "k=v&" items
    return "".join(items) + "key=" + app_secret


def _uid(mode: str, cfg: SimulatorConfig) -> bytes:
    return sm2.DEFAULT_UID if mode == "default" else cfg.app_secret.encode("utf-8")


def open_request(body: bytes, cfg: SimulatorConfig) -> tuple[dict, dict]:
    """Decrypt and verify a request; returns (envelope without encData/signData, data)."""
    try:
        env = loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("请求报文不是合法的JSON") from None
    if not isinstance(env, dict):
        raise EnvelopeError("请求报文不是JSON对象")
    if env.get("appId") != cfg.app_id:
        raise EnvelopeError("appId不存在或不匹配")
    enc, sig = env.get("encData"), env.get("signData")
    if not isinstance(enc, str) or not isinstance(sig, str) or not enc or not sig:
        raise EnvelopeError("encData或signData缺失")
    if str(env.get("encType", "")).upper() != "SM4" or str(env.get("signType", "")).upper() != "SM2":
        raise EnvelopeError("encType/signType不支持")
    key = derive_key(cfg.app_id, cfg.app_secret)
    try:
        plain = sm4.decrypt_ecb(key, bytes.fromhex(enc))    # upper or lower hex (§4 step 4)
        data = loads(plain.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("encData解密失败") from None
    if not isinstance(data, dict):
        raise EnvelopeError("data不是JSON对象")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("signData不是Base64") from None
    fields = {k: v for k, v in env.items() if k not in ("encData", "signData")}
    fields["data"] = data
    message = signing_string(fields, cfg.app_secret).encode("utf-8")
    public = sm2.load_public_key(cfg.institution_public_key)
    for mode in cfg.sm2_uid_modes:
        if public.verify(message, signature, _uid(mode, cfg)):
            return fields, data
    raise EnvelopeError("验签失败")


def timestamp(cfg: SimulatorConfig) -> str:
    if cfg.timestamp_style == "14":
        return time.strftime("%Y%m%d%H%M%S")
    return str(int(time.time() * 1000))


def seal(cfg: SimulatorConfig, data: Optional[dict], top: dict) -> dict:
    """Sign and encrypt an outgoing message (response or 6302 notice).

    top: the plain top-level fields besides the fixed envelope ones (code, message, success).
    """
    env: dict[str, Any] = {"appId": cfg.app_id, **top, "encType": "SM4", "signType": "SM2",
                           "timestamp": timestamp(cfg), "version": "2.0.1"}
    fields = dict(env)
    if data:
        fields["data"] = data
    message = signing_string(fields, cfg.app_secret).encode("utf-8")
    key = sm2.load_private_key(cfg.platform_private_key)
    signature = key.sign(message, _uid(cfg.response_uid_mode, cfg))
    if data:
        cipher = sm4.encrypt_ecb(derive_key(cfg.app_id, cfg.app_secret), dumps(data).encode("utf-8"))
        env["encData"] = cipher.hex().upper() if cfg.enc_hex_upper else cipher.hex()
    env["signData"] = base64.b64encode(signature).decode("ascii")
    return env


def code_value(cfg: SimulatorConfig, code: int) -> Any:
    return str(code) if cfg.code_as_string else code
