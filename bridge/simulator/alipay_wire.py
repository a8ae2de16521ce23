"""Alipay OpenAPI on the wire, gateway side (channels.md §6).

* Requests (§6.2): form or query parameters; the signed text is every parameter except `sign`,
  empty values dropped, sorted by key, `k=v` joined with `&`, values raw; RSA2 = SHA256withRSA
  with the app's key. `sign_type` is part of the signed text.
* Answers (§6.3): `{"<method with _>_response": {...}, "sign": "..."}`; the signature covers the
  exact bytes of the `..._response` object as written. Gateway-level errors use `error_response`.
* Notifies (§6.4): a form POST signed over every parameter except `sign` and `sign_type`.

Gateway-level error codes (40001 missing argument, 40002 invalid argument with
`isv.invalid-signature`, `isv.invalid-app-id`, `isv.invalid-method`, ...) follow the
documented pattern (§6.3: 40002 and the sub_code format are confirmed, the rest general knowledge).
"""
from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode

from . import channel_crypto
from .config import SimulatorConfig
from .wire import dumps

MESSAGES = {"10000": "Success", "20000": "Service Currently Unavailable", "40001": "Missing Required Arguments",
            "40002": "Invalid Arguments", "40004": "Business Failed", "40006": "Insufficient Permissions"}


class AlipayError(Exception):
    """An answer with code != 10000. `gateway` errors go under error_response."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, gateway: bool = False) -> None:
        super().__init__(sub_msg)
        self.code = code
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.gateway = gateway

    def inner(self) -> dict:
        return {"code": self.code, "msg": MESSAGES.get(self.code, "Business Failed"),
                "sub_code": self.sub_code, "sub_msg": self.sub_msg}


def sign_content(params: dict, exclude: tuple[str, ...] = ("sign",), keep_empty: bool = False) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k not in exclude and (keep_empty or v not in (None, "")))
    return "&".join(f"{k}={v}" for k, v in pairs)


def parse_params(raw_query: str, body: bytes, content_type: str) -> dict[str, str]:
    """GET query and/or form body, URL-decoded (§6.2 step 4)."""
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    if body and "json" not in (content_type or "").lower():
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    return params


def verify_request(cfg: SimulatorConfig, params: dict[str, str]) -> dict:
    """Check the common parameters and the RSA2 signature; return the parsed biz_content."""
    for name in ("app_id", "method", "sign_type", "sign", "timestamp", "charset", "version"):
        if not params.get(name):
            raise AlipayError("40001", f"isv.missing-{name.replace('_', '-')}", f"缺少必选参数{name}", gateway=True)
    if params["app_id"] != cfg.alipay_app_id:
        raise AlipayError("40002", "isv.invalid-app-id", "无效的AppID参数", gateway=True)
    if params["sign_type"] != "RSA2":
        raise AlipayError("40002", "isv.invalid-signature-type", "无效的签名类型", gateway=True)
    if params["charset"].lower() != "utf-8":
        raise AlipayError("40002", "isv.invalid-charset", "字符集错误", gateway=True)
    try:
        datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise AlipayError("40002", "isv.invalid-timestamp", "非法的时间戳参数", gateway=True) from None
    text = sign_content(params).encode("utf-8")
    if not channel_crypto.rsa_verify(cfg.alipay_app_public_key or "", text, params["sign"]):
        raise AlipayError("40002", "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
                          gateway=True)
    raw = params.get("biz_content") or "{}"
    try:
        biz = json.loads(raw)
    except ValueError:
        raise AlipayError("40002", "isv.invalid-parameter", "biz_content不是合法的JSON", gateway=True) from None
    if not isinstance(biz, dict):
        raise AlipayError("40002", "isv.invalid-parameter", "biz_content须为JSON对象", gateway=True)
    return biz


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def answer(cfg: SimulatorConfig, key: str, inner: dict, *, signed: bool = True, bad: bool = False) -> bytes:
    """`{"<key>":<inner>,"sign":"..."}`; the sign covers exactly the bytes written for inner."""
    text = dumps(inner)
    if not signed:
        return ('{"' + key + '":' + text + '}').encode("utf-8")
    sign = channel_crypto.rsa_sign(cfg.alipay_private_key or "", text.encode("utf-8"))
    if bad:
        raw = bytearray(base64.b64decode(sign))
        raw[3] ^= 0x01
        sign = base64.b64encode(bytes(raw)).decode("ascii")
    return ('{"' + key + '":' + text + ',"sign":' + json.dumps(sign) + '}').encode("utf-8")


def notify(cfg: SimulatorConfig, params: dict[str, Any], defect: Optional[str] = None) -> tuple[bytes, dict]:
    """A signed async notify (§6.4): form body and headers. defect: "bad_signature" / "tampered"
    (any other defect is treated as a bad signature: Alipay has no other kind)."""
    fields = {k: str(v) for k, v in params.items() if v is not None}
    fields["sign_type"] = "RSA2"
    text = sign_content(fields, exclude=("sign", "sign_type"), keep_empty=True).encode("utf-8")
    sign = channel_crypto.rsa_sign(cfg.alipay_private_key or "", text)
    if defect and defect != "tampered":
        raw = bytearray(base64.b64decode(sign))
        raw[5] ^= 0x01
        sign = base64.b64encode(bytes(raw)).decode("ascii")
    fields["sign"] = sign
    if defect == "tampered":     # a changed amount the signature does not cover
        for name in ("total_amount", "refund_fee", "receipt_amount"):
            if name in fields:
                fields[name] = fields[name] + "1"
                break
    body = urlencode(fields).encode("utf-8")
    return body, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
