"""WeChat Pay APIv3 and Alipay OpenAPI requests for the simulator tests, written from channels.md.

§1.2 (the five-line string and the Authorization header), §1.3 (verifying answers and callbacks),
§1.4 (AEAD_AES_256_GCM), §1.5 (RSA-OAEP SHA-1), §1.7 (paySign); §6.2-§6.4 (RSA2 over sorted
parameters, the raw `..._response` substring, notifies without sign and sign_type).
Kept apart from bridge/simulator/*_wire.py on purpose, so that one mistake cannot be on both sides,
and from mibridge's own clients, which these tests must not depend on.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
from decimal import Decimal
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@functools.lru_cache(maxsize=16)
def _private(pem: str):
    return serialization.load_pem_private_key(pem.encode(), password=None)


@functools.lru_cache(maxsize=16)
def _public(pem: str):
    return serialization.load_pem_public_key(pem.encode())


def rsa_sign(pem: str, data: bytes) -> str:
    return base64.b64encode(_private(pem).sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(pem: str, data: bytes, sig: str) -> bool:
    try:
        _public(pem).verify(base64.b64decode(sig), data, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WeChatClient:
    def __init__(self, creds: dict, private_key: Optional[str] = None, serial: Optional[str] = None) -> None:
        self.c = creds
        self.base = creds["base_url"]
        self.key = private_key or creds["merchant_private_key"]
        self.serial = serial or creds["merchant_serial"]

    # §1.2
    def authorization(self, method: str, url: str, body: bytes, timestamp: Optional[int] = None) -> str:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = secrets.token_hex(16)
        message = f"{method}\n{url}\n{ts}\n{nonce}\n".encode() + body + b"\n"
        sig = rsa_sign(self.key, message)
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{self.c["mchid"]}",nonce_str="{nonce}",'
                f'signature="{sig}",timestamp="{ts}",serial_no="{self.serial}"')

    def request(self, method: str, url: str, body: Any = None, *, timestamp: Optional[int] = None,
                extra_headers: Optional[dict] = None, timeout: float = 5.0, raw: Optional[bytes] = None,
                tamper: bool = False) -> httpx.Response:
        data = raw if raw is not None else (b"" if body is None else compact(body))
        headers = {"Accept": "application/json", "Authorization": self.authorization(method, url, data, timestamp)}
        if method == "POST":
            headers["Content-Type"] = "application/json"
        headers.update(extra_headers or {})
        if tamper:
            data = data.replace(b'"total":', b'"total": ', 1)
        return httpx.request(method, self.base + url, content=data if method == "POST" else None,
                             headers=headers, timeout=timeout)

    # §1.3
    def verified(self, r: httpx.Response) -> bool:
        h = r.headers
        if h.get("Wechatpay-Serial") != self.c["platform_serial"]:
            return False
        if abs(time.time() - int(h.get("Wechatpay-Timestamp", "0"))) >= 300:
            return False
        message = f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n".encode() + r.content + b"\n"
        return rsa_verify(self.c["platform_public_key"], message, h.get("Wechatpay-Signature", ""))

    def call(self, method: str, url: str, body: Any = None, **kw) -> tuple[int, Any]:
        r = self.request(method, url, body, **kw)
        assert self.verified(r), f"answer signature does not verify: {r.status_code} {r.text}"
        return r.status_code, (json.loads(r.content, parse_float=Decimal) if r.content else None)

    # §1.5
    def encrypt(self, text: str) -> str:
        ct = _public(self.c["platform_public_key"]).encrypt(
            text.encode(), padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        return base64.b64encode(ct).decode()

    # §1.7
    def pay_sign(self, prepay_id: str) -> dict:
        ts, nonce = str(int(time.time())), secrets.token_hex(8)
        package = "prepay_id=" + prepay_id
        sig = rsa_sign(self.key, f"{self.c['appid']}\n{ts}\n{nonce}\n{package}\n".encode())
        return {"timeStamp": ts, "nonceStr": nonce, "package": package, "signType": "RSA", "paySign": sig}

    # §1.3 + §1.4 for callbacks
    def open_callback(self, headers: dict, body: bytes) -> tuple[dict, dict]:
        h = {k.lower(): v for k, v in headers.items()}
        if h.get("wechatpay-serial") != self.c["platform_serial"]:
            raise ValueError("unknown serial")
        sig = h.get("wechatpay-signature", "")
        if sig.startswith("WECHATPAY/SIGNTEST/"):
            raise ValueError("probe")
        if abs(time.time() - int(h.get("wechatpay-timestamp", "0"))) >= 300:
            raise ValueError("stale")
        message = f"{h['wechatpay-timestamp']}\n{h['wechatpay-nonce']}\n".encode() + body + b"\n"
        if not rsa_verify(self.c["platform_public_key"], message, sig):
            raise ValueError("bad signature")
        env = json.loads(body)
        res = env["resource"]
        try:
            plain = AESGCM(self.c["apiv3_key"].encode()).decrypt(
                res["nonce"].encode(), base64.b64decode(res["ciphertext"]), (res.get("associated_data") or "").encode())
        except InvalidTag:
            raise ValueError("tag check failed") from None
        return env, json.loads(plain)


def id_digest(certno: str) -> str:
    """§1.5: MD5 (lowercase hex) of the upper-cased ID."""
    return hashlib.md5(certno.upper().encode()).hexdigest()


# --- Alipay -----------------------------------------------------------------------------
def sign_content(params: dict, drop: tuple = ("sign",), keep_empty: bool = False) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k not in drop and (keep_empty or params[k] not in (None, "")))


def response_substring(text: str, key: str) -> Optional[str]:
    """§6.3: the exact raw text of the `key` object, from its `{` to the matching `}`."""
    start = text.find(f'"{key}"')
    if start < 0:
        return None
    i = text.index("{", start)
    depth, in_str, esc = 0, False, False
    for j in range(i, len(text)):
        ch = text[j]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i:j + 1]
    return None


class AlipayClient:
    def __init__(self, creds: dict, private_key: Optional[str] = None) -> None:
        self.c = creds
        self.key = private_key or creds["app_private_key"]

    def params(self, method: str, biz: dict) -> dict:
        p = {"app_id": self.c["app_id"], "method": method, "format": "JSON", "charset": "utf-8",
             "sign_type": "RSA2", "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
             "biz_content": compact(biz).decode()}
        p["sign"] = rsa_sign(self.key, sign_content(p).encode())
        return p

    def post(self, params: dict, via: str = "POST") -> httpx.Response:
        if via == "GET":
            return httpx.get(self.c["gateway_url"] + "?" + urlencode(params), timeout=5)
        return httpx.post(self.c["gateway_url"], content=urlencode(params).encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, timeout=5)

    def call(self, method: str, biz: dict, via: str = "POST") -> dict:
        """The verified inner object of `..._response` (or of error_response)."""
        r = self.post(self.params(method, biz), via)
        assert r.status_code == 200, r.text
        return self.open(r.text, method)

    def open(self, text: str, method: str) -> dict:
        doc = json.loads(text)
        key = method.replace(".", "_") + "_response"
        if key not in doc:
            key = "error_response"
        raw = response_substring(text, key)
        assert raw is not None and "sign" in doc, f"unsigned answer: {text}"
        assert rsa_verify(self.c["alipay_public_key"], raw.encode(), doc["sign"]), "answer sign does not verify"
        return doc[key]

    def notify_ok(self, body: bytes) -> tuple[bool, dict]:
        """§6.4 rsaCheckV1 on a form notify."""
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        text = sign_content(fields, drop=("sign", "sign_type"), keep_empty=True)
        return rsa_verify(self.c["alipay_public_key"], text.encode(), fields.get("sign", "")), fields


def query_of(url: str) -> dict:
    return dict(parse_qsl(urlsplit(url).query))
