"""Keys, config and canned WeChat answers for the WeChat Pay client tests.

Response signatures are computed here with ``cryptography`` directly from channels.md
§1.3 (``timestamp\\nnonce\\nbody\\n``, SHA256withRSA), not with the client's code."""
from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .loopback import Canned, Loopback

MCHID = "1900000109"
APPID = "wx0123456789abcdef"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PLATFORM_SERIAL = "PUB_KEY_ID_0114232134912410000000000000"
APIV3_KEY = "0123456789abcdefABCDEF0123456789"


def pem_private(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="session")
def keys():
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"merchant": merchant, "platform": platform, "other": other}


@pytest.fixture(scope="session")
def _configs():
    return {}


@pytest.fixture
def make_config(keys, _configs):
    """A WechatPayConfig; the same settings give the same (frozen) object for the whole
    session, because checking the RSA keys at construction costs tens of milliseconds."""
    from bridge.wechatpay.config import WechatPayConfig

    def make(base_url: str = "https://api.mch.weixin.qq.com", **kw):
        memo = (base_url, repr(sorted(kw.items())))
        if memo not in _configs:
            _configs[memo] = build(base_url, **kw)
        return _configs[memo]

    def build(base_url: str, **kw):
        fields = dict(mchid=MCHID, appid=APPID, merchant_serial=MERCHANT_SERIAL,
                      merchant_private_key=pem_private(keys["merchant"]), apiv3_key=APIV3_KEY,
                      platform_public_key=pem_public(keys["platform"]), platform_serial=PLATFORM_SERIAL,
                      base_url=base_url, notify_url="https://hospital.example/wx/pay",
                      callback_url="https://hospital.example/wx/medins", refund_notify_url="https://hospital.example/wx/refund",
                      med_inst_no="H53010000001", med_inst_name="昆明市第一人民医院", city_id="530100",
                      timeout_seconds=1.0, connect_timeout_seconds=1.0)
        fields.update(kw)
        return WechatPayConfig(**fields)
    return make


def platform_sign(key, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture
def wx(keys):
    """Builds canned WeChat answers, signed by the platform key unless told otherwise."""

    class Wx:
        def answer(self, status: int, body=None, *, key=None, serial: str = PLATFORM_SERIAL,
                   timestamp=None, signed: bool = True, request_id: str = "08F78BB5AF0610A6-0",
                   signature: str = None) -> Canned:
            raw = body if isinstance(body, bytes) else b"" if body is None else \
                json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers = {"Request-ID": request_id}
            if raw:
                headers["Content-Type"] = "application/json"
            if signed:
                ts = str(int(time.time())) if timestamp is None else str(timestamp)
                nonce = secrets.token_hex(16)
                headers.update({"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
                                "Wechatpay-Signature": signature or platform_sign(key or keys["platform"], ts,
                                                                                   nonce, raw),
                                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"})
            return Canned(status=status, headers=headers, body=raw)

    return Wx()


@pytest.fixture(scope="session")
def _loopback():
    s = Loopback()
    yield s
    s.close()


@pytest.fixture
def server(_loopback):
    """One loopback server for the session (starting and stopping one per test costs),
    reset for each test."""
    _loopback.reset()
    return _loopback


def verify_request(keys, seen) -> dict:
    """Check the Authorization header of a received request as WeChat would (§1.2),
    recomputed here from the raw request; returns its items."""
    value = seen.headers["Authorization"]
    assert value.startswith("WECHATPAY2-SHA256-RSA2048 ")
    items = dict(part.split("=", 1) for part in value[len("WECHATPAY2-SHA256-RSA2048 "):].split(","))
    items = {k: v.strip('"') for k, v in items.items()}
    message = (f"{seen.method}\n{seen.path}\n{items['timestamp']}\n{items['nonce_str']}\n").encode() + seen.body + b"\n"
    keys["merchant"].public_key().verify(base64.b64decode(items["signature"]), message, padding.PKCS1v15(),
                                         hashes.SHA256())
    return items
