"""The real channel clients for the unit tables of bridge/channels/ (patient messages and
the late-callback check): built once per session, never sending (bridge/engine/testing.py
hands back the scripted answer), so each step builds and signs its real request.

Answers are made with the clients' own classification tables (bridge/wechatpay/outcomes.py,
bridge/alipay/outcomes.py), so a code the client reads otherwise fails the table too."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.alipay import outcomes as ali
from bridge.alipay.client import AlipayClient
from bridge.alipay.config import AlipayConfig, AlipayTemplate
from bridge.channels.settings import AlipayChannelSettings, WechatChannelSettings
from bridge.wechatpay import outcomes as wx
from bridge.wechatpay.client import WechatPayClient
from bridge.wechatpay.config import MessageTemplate, WechatPayConfig
from bridge.wechatpay.messenger import WechatMessenger

NOWHERE = "http://127.0.0.1:9"          # nothing is ever sent there
APPID = "wx0123456789abcdef"
OFFICIAL_APPID = "wx00000000000000aa"
PATIENT = "张三丰"

WECHAT_TEMPLATES = {
    # registration_paid: a mini-program subscribe message; refund_done: an official-account
    # template message; outpatient_paid: none configured on WeChat.
    "registration_paid": MessageTemplate(template_id="TPL-REG", page="pages/reg/detail",
                                         fields={"thing1": "patient_name", "amount2": "amount",
                                                 "time3": "paid_time"}),
    "refund_done": MessageTemplate(template_id="TPL-RF", kind="official", page="pages/refund",
                                   fields={"keyword1": "patient_name", "keyword2": "amount"}),
}
ALIPAY_TEMPLATES = {
    "outpatient_paid": AlipayTemplate(template_id="ATPL-OUT", page="pages/bill",
                                      fields={"keyword1": "patient_name", "keyword2": "amount"}),
}


def _pem_private(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="session")
def ch_clients():
    merchant, platform = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    app, alipay = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    wcfg = WechatPayConfig(
        mchid="1900000109", appid=APPID, merchant_serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        merchant_private_key=_pem_private(merchant), apiv3_key="0123456789abcdefABCDEF0123456789",
        platform_public_key=_pem_public(platform), platform_serial="PUB_KEY_ID_0114232134912410000000000000",
        base_url=NOWHERE, message_base_url=NOWHERE, notify_url="https://h.example/wx/pay",
        callback_url="https://h.example/wx/medins", refund_notify_url="https://h.example/wx/refund",
        med_inst_no="H53010000001", med_inst_name="测试医院", city_id="530100", app_secret="s",
        official_appid=OFFICIAL_APPID, official_app_secret="s2", templates=WECHAT_TEMPLATES)
    acfg = AlipayConfig(
        app_id="2021004100000001", app_private_key=_pem_private(app),
        alipay_public_key=base64.b64encode(alipay.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode(),
        gateway_url=NOWHERE + "/gateway.do", notify_url="https://h.example/ali", org_no="H53010000001",
        templates=ALIPAY_TEMPLATES)
    clients = {"wechatpay": WechatPayClient(wcfg), "wechatpay.messenger": WechatMessenger(wcfg),
               "wechatpay.settings": WechatChannelSettings(), "alipay": AlipayClient(acfg),
               "alipay.settings": AlipayChannelSettings()}
    yield clients
    for name in ("wechatpay", "wechatpay.messenger", "alipay"):
        clients[name].close()


def wx_answer(interface: str, code: str, message: str = "x", http_status=None):
    """What the WeChat client makes of an error answer with this code."""
    return wx.result(interface, "", code, message, http_status=http_status)


def ali_answer(interface: str, code: str, message: str = "x"):
    return ali.result(interface, "", code, message)
