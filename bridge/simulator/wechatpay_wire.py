"""WeChat Pay APIv3 on the wire, platform side: request signatures, signed answers, callbacks.

channels.md §1.2 (the merchant's `Authorization: WECHATPAY2-SHA256-RSA2048 …` over five lines),
§1.3 (the platform signs `timestamp\\nnonce\\nbody\\n` and names its key in `Wechatpay-Serial`),
§1.4 (callback envelope, resource sealed with AEAD_AES_256_GCM under the APIv3 key),
§1.6 (error bodies `{code, message, detail}`; the med-ins reason is the tail of `Request-ID`).
"""
from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from . import channel_clock, channel_crypto
from .config import SimulatorConfig
from .wire import dumps

SCHEME = "WECHATPAY2-SHA256-RSA2048"
_PARAM = re.compile(r'(\w+)="([^"]*)"')
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"


class WireError(Exception):
    """An answer the platform gives instead of doing the call: HTTP status + §1.6 body."""

    def __init__(self, status: int, code: str, message: str, number: Optional[str] = None,
                 detail: Optional[dict] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.number = number      # the /v3/med-ins/* reason (§2.9), appended to Request-ID
        self.detail = detail

    def body(self) -> bytes:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return dumps(out).encode("utf-8")


@dataclass
class SignedRequest:
    mchid: str
    serial_no: str
    timestamp: int
    nonce: str


def parse_authorization(header: str) -> dict[str, str]:
    if not header or not header.startswith(SCHEME + " "):
        raise WireError(401, "SIGN_ERROR", "Authorization头缺失或认证类型不是" + SCHEME,
                        detail={"location": "authorization"})
    return dict(_PARAM.findall(header[len(SCHEME) + 1:]))


def sign_string(method: str, raw_path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """§1.2: five lines, each ending in \\n; raw_path is path + "?" + query exactly as sent."""
    return (f"{method}\n{raw_path}\n{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n")


def verify_request(cfg: SimulatorConfig, method: str, raw_path: str, body: bytes,
                   headers: Any) -> SignedRequest:
    """Check the merchant's signature; raise WireError(401 SIGN_ERROR) when it does not hold."""
    p = parse_authorization(str(headers.get("Authorization") or ""))
    missing = [k for k in ("mchid", "nonce_str", "signature", "timestamp", "serial_no") if not p.get(k)]
    if missing:
        raise WireError(401, "SIGN_ERROR", "Authorization缺少参数: " + ",".join(missing),
                        detail={"location": "authorization"})
    if p["mchid"] != cfg.wechat_mchid:
        raise WireError(401, "SIGN_ERROR", "商户号与Authorization不匹配", detail={"location": "authorization"})
    if p["serial_no"].upper() != cfg.wechat_merchant_serial.upper():
        raise WireError(401, "SIGN_ERROR", "商户API证书序列号不存在或已失效",
                        detail={"location": "authorization", "field": "serial_no"})
    try:
        ts = int(p["timestamp"])
    except ValueError:
        raise WireError(401, "SIGN_ERROR", "时间戳格式错误", detail={"location": "authorization"}) from None
    if abs(time.time() - ts) > cfg.wechat_max_skew_seconds:
        raise WireError(401, "SIGN_ERROR", "请求时间戳与服务器时间相差过大",
                        detail={"location": "authorization", "field": "timestamp"})
    message = sign_string(method, raw_path, p["timestamp"], p["nonce_str"], body)
    if not channel_crypto.rsa_verify(cfg.wechat_merchant_public_key or "", message, p["signature"]):
        # §1.6 / W6: SIGN_ERROR echoes the string the server signed, so the caller can compare.
        raise WireError(401, "SIGN_ERROR", "签名错误，请检查后再试",
                        detail={"location": "authorization", "detail": {
                            "sign_information": {"method": method, "url": raw_path,
                                                 "truncated_sign_message": message.decode("utf-8", "replace")[:512]}}})
    return SignedRequest(p["mchid"], p["serial_no"], ts, p["nonce_str"])


def request_id(number: Optional[str] = None) -> str:
    rid = secrets.token_hex(16).upper()
    return f"{rid}-{number}" if number else rid


def signed_headers(cfg: SimulatorConfig, body: bytes, *, fault: Optional[str] = None,
                   number: Optional[str] = None) -> dict[str, str]:
    """§1.3 headers over `timestamp\\nnonce\\nbody\\n`.

    fault: "bad_signature" (a flipped bit), "wrong_serial" (names a key the client does not
    have), "skew" (a timestamp 10 minutes old), "probe" (a WECHATPAY/SIGNTEST/ signature)."""
    ts = str(int(time.time()) - (600 if fault == "skew" else 0))
    nonce = channel_crypto.random_text(32)
    message = f"{ts}\n{nonce}\n".encode("utf-8") + body + b"\n"
    signature = channel_crypto.rsa_sign(cfg.wechat_platform_private_key or "", message)
    if fault == "bad_signature":
        signature = _corrupt(signature)
    elif fault == "probe":
        signature = PROBE_PREFIX + signature[len(PROBE_PREFIX):]
    serial = cfg.wechat_platform_serial
    if fault == "wrong_serial":
        serial = "PUB_KEY_ID_SIM" + "0" * 18
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
            "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": SCHEME, "Request-ID": request_id(number)}


def _corrupt(signature_b64: str) -> str:
    raw = bytearray(base64.b64decode(signature_b64))
    raw[7] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")




def callback(cfg: SimulatorConfig, event_type: str, resource: dict, original_type: Optional[str],
             associated_data: str, summary: str, *, event_id: str,
             fault: Optional[str] = None) -> tuple[bytes, dict[str, str]]:
    """A signed, encrypted §1.4 callback: (body, headers).

    fault: "wrong_key" seals with another APIv3 key (the tag check fails), "empty_aad" seals with
    associated_data "", "tampered" changes the body after signing, and the signature faults of
    signed_headers()."""
    key = cfg.wechat_apiv3_key if fault != "wrong_key" else channel_crypto.random_text(32)
    aad = "" if fault == "empty_aad" else associated_data
    sealed = channel_crypto.gcm_encrypt(key, dumps(resource).encode("utf-8"), aad)
    if original_type:
        sealed["original_type"] = original_type
    envelope = {"id": event_id, "create_time": channel_clock.rfc3339(datetime.now()), "resource_type": "encrypt-resource",
                "event_type": event_type, "summary": summary, "resource": sealed}
    body = dumps(envelope).encode("utf-8")
    sig_fault = fault if fault in ("bad_signature", "wrong_serial", "skew", "probe") else None
    headers = signed_headers(cfg, body, fault=sig_fault)
    headers.pop("Request-ID", None)
    headers["Content-Type"] = "application/json"
    if fault == "tampered":   # changed after signing: the signature no longer covers it
        body = body.replace(event_id.encode("utf-8"), (event_id + "0").encode("utf-8"), 1)
    return body, headers
