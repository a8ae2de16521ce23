"""Keys, config and canned Alipay answers.  Signatures are computed here with
``cryptography`` directly from channels.md §6.2-§6.4, not with the client's code."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.channel_wechatpay.loopback import Canned, Loopback

APP_ID = "2021004100000001"


def b64_der_public(key) -> str:
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def pem_private(key, fmt=serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def sign(key, text: str) -> str:
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture(scope="session")
def akeys():
    return {"app": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "alipay": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "other": rsa.generate_private_key(public_exponent=65537, key_size=2048)}


@pytest.fixture(scope="session")
def _configs():
    return {}


@pytest.fixture
def make_config(akeys, _configs):
    """An AlipayConfig; the same settings give the same (frozen) object for the whole
    session (checking the RSA keys at construction costs tens of milliseconds)."""
    from bridge.alipay.config import AlipayConfig

    def make(gateway_url: str = "https://openapi.alipay.com/gateway.do", **kw):
        memo = (gateway_url, repr(sorted(kw.items())))
        if memo not in _configs:
            _configs[memo] = build(gateway_url, **kw)
        return _configs[memo]

    def build(gateway_url: str, **kw):
        fields = dict(app_id=APP_ID, app_private_key=pem_private(akeys["app"]),
                      alipay_public_key=b64_der_public(akeys["alipay"]), gateway_url=gateway_url,
                      notify_url="https://hospital.example/alipay/notify", call_url="https://hospital.example/alipay/medical",
                      org_no="H53010000001", org_app_id="ORGAPP1", org_chnl_crtf_code="crtf/+code",
                      merchant_name="昆明市第一人民医院", payment_city_code="530100",
                      timeout_seconds=1.0, connect_timeout_seconds=1.0)
        fields.update(kw)
        return AlipayConfig(**fields)
    return make


@pytest.fixture(scope="session")
def _loopback():
    s = Loopback()
    yield s
    s.close()


@pytest.fixture
def server(_loopback):
    _loopback.reset()
    return _loopback


@pytest.fixture
def ali(akeys):
    class Ali:
        def answer(self, method: str, node: dict, *, signed: bool = True, key=None, node_name: str = None,
                   status: int = 200, raw_node: str = None, extra: str = "") -> Canned:
            name = node_name or method.replace(".", "_") + "_response"
            raw = raw_node if raw_node is not None else json.dumps(node, ensure_ascii=False)
            text = '{"%s":%s%s' % (name, raw, extra)
            if signed:
                text += ',"sign":"%s"' % sign(key or akeys["alipay"], raw)
            text += "}"
            return Canned(status, {"Content-Type": "text/html;charset=utf-8"}, text.encode("utf-8"))
    return Ali()


def verify_request(akeys, seen) -> dict:
    """Check a received request as the gateway would (§6.2); returns its parameters."""
    params = dict(parse_qsl(seen.body.decode("ascii"), keep_blank_values=True, strict_parsing=True))
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
    akeys["app"].public_key().verify(base64.b64decode(params["sign"]), content.encode("utf-8"),
                                     padding.PKCS1v15(), hashes.SHA256())
    return params
