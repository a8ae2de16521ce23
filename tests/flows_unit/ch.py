"""Payloads, flow_data and channel answers for the channel-leg unit tables: the real WeChat Pay
and Alipay clients (they build and sign every request; nothing is sent), and the answers
built from the clients' own message types."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Optional

from bridge.alipay.client import AlipayClient
from bridge.alipay.config import AlipayConfig
from bridge.alipay.messages import AuthInfo, MedicalOrder, MedicalPayment, RefundResult, RefundState
from bridge.alipay import outcomes as ali_oc
from bridge.channels import keys
from bridge.channels.settings import AlipayChannelSettings, WechatChannelSettings
from bridge.engine.testing import FlowScript, ok, refused
from bridge.simulator import channel_crypto
from bridge.wechatpay.client import WechatError, WechatPayClient
from bridge.wechatpay.config import WechatPayConfig
from bridge.wechatpay.messages import JsapiPrepay, MedInsOrder, Refund, Transaction
from bridge.wechatpay import outcomes as wx_oc

from .mp import ORDER, PLACED, SHIPPED, SPLIT, TOKEN, payment_doc, services

D = Decimal
NOWHERE = "http://127.0.0.1:9"
KEY = "PAY-1"
OTN = keys.out_trade_no(KEY)
MIX = "MIX-0001"
PREPAY = "wx-prepay-1"
OPENID = "o-patient-1"
BUYER = "2088000000000077"
ALI_QUERY = ali_oc.interface_of(ali_oc.MEDICAL_QUERY)
ALI_CREATE = ali_oc.interface_of(ali_oc.MEDICAL_CREATE)
ALI_AUTH = ali_oc.interface_of(ali_oc.AUTH_QUERY)
CASH_SPLIT = {"total": "120.00", "fund": "84.00", "account": "0.00", "cash": "36.00"}


def wechat_client() -> WechatPayClient:
    platform = channel_crypto.process_key("wechat.platform")
    return WechatPayClient(WechatPayConfig(
        mchid="1900000109", appid="wx0123456789abcdef", merchant_serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        merchant_private_key=channel_crypto.process_key("wechat.merchant"), apiv3_key="0123456789abcdefABCDEF0123456789",
        platform_public_key=channel_crypto.public_pem(platform), platform_serial="PUB_KEY_ID_0114232134912410000000000000",
        base_url=NOWHERE, notify_url="https://h.example/wx/pay", callback_url="https://h.example/wx/medins",
        refund_notify_url="https://h.example/wx/refund", med_inst_no="H0001", med_inst_name="测试医院",
        city_id="440100"))


_TEMPLATED: dict = {}


def wechat_client_with_templates() -> WechatPayClient:
    """The WeChat client with a patient message configured for each event (built once: a
    config checks its RSA keys at construction)."""
    if "wx" not in _TEMPLATED:
        from dataclasses import replace

        from bridge.wechatpay.config import MessageTemplate
        plain = wechat_client()
        _TEMPLATED["wx"] = WechatPayClient(replace(plain.config, app_secret="s" * 32, templates={
            "outpatient_paid": MessageTemplate(template_id="T1", fields={
                "thing1": "patient_name", "amount2": "amount", "time3": "paid_time"}),
            "registration_paid": MessageTemplate(template_id="T2", fields={"thing1": "dept_name"}),
            "refund_done": MessageTemplate(template_id="T3", fields={
                "amount1": "amount", "thing2": "refund_reason", "time3": "refund_time"})}))
    return _TEMPLATED["wx"]


def alipay_client(order_api: str = "medical") -> AlipayClient:
    return AlipayClient(AlipayConfig(
        app_id="2021004100000001", app_private_key=channel_crypto.process_key("alipay.app"),
        alipay_public_key=channel_crypto.public_pem(channel_crypto.process_key("alipay.platform")),
        gateway_url=NOWHERE, notify_url="https://h.example/ali/notify", call_url="https://h.example/ali/notify",
        org_no="H0001", org_app_id="ORGAPP1", merchant_name="测试医院", payment_city_code="440100",
        order_api=order_api))


def channel_services(wx, ali, cash_after: str = "hospital_refunds_cash") -> dict:
    return {"wechatpay": wx, "wechatpay.settings": WechatChannelSettings(cash_after_6203=cash_after),
            "alipay": ali, "alipay.settings": AlipayChannelSettings()}


def ch_script(flow, mp_client, wx, ali, key: str = KEY, cash_after: str = "hospital_refunds_cash",
              more: Optional[dict] = None, **kw):
    return FlowScript(flow, services={**services(mp_client), **channel_services(wx, ali, cash_after), **(more or {})},
                      business_key=key, **kw)


def wechat_auth_query(wx: WechatPayClient):
    """WeChat's 医保 authorisation exchange (auth code -> payAuthNo), configured; never sends."""
    from dataclasses import replace

    from bridge.wechatpay.authquery import PayAuthQuery
    return PayAuthQuery(replace(wx.config, auth_query_url=NOWHERE + "/api/mipuserquery/userQuery/50010828",
                                auth_partner_id="50010828", auth_partner_secret="partner-secret"))


def wx_doc(**kw) -> dict:
    return payment_doc(channel="wechat", openid=OPENID, **kw)


def ali_doc(**kw) -> dict:
    return payment_doc(channel="alipay", alipay_user_id=BUYER, **kw)


def placed(channel: str, split: dict = CASH_SPLIT, **more) -> dict:
    """flow_data after 6202 of a channel payment, before its channel order."""
    return dict(PLACED, channel=channel, out_trade_no=OTN, order_msg="MSG-6202", split=split, polls=0,
                ordStas="2", channel_time="2026-01-01T10:00:00+08:00", **more)


def ordered(channel: str, split: dict = CASH_SPLIT, **more) -> dict:
    """flow_data once the channel's order exists (the HIS has the cashier)."""
    ids = {"mix_trade_no": MIX, "prepay_id": PREPAY if D(split["cash"]) > 0 else None} if channel == "wechat" \
        else {"chnl_ord_sn": "MED-1"}
    return placed(channel, split, channel_ordered=True, **{k: v for k, v in ids.items() if v}, **more)


# ---------------------------------------------------------------- WeChat answers

def wx_error(interface: str, code: str, message: str = "refused", status: int = 400):
    return refused(interface, message, code=code, data=WechatError(status, code, message))


def mix(mix_status="MIX_PAY_CREATED", self_status="SELF_PAY_CREATED", med="MED_INS_PAY_CREATED",
        split: dict = CASH_SPLIT, interface: str = wx_oc.MEDINS_QUERY, fail_reason: Optional[str] = None,
        pay_order_id: str = ORDER, serial_no: str = KEY):
    fen = {k: int(D(v) * 100) for k, v in split.items()}
    return ok(interface, MedInsOrder.from_json({
        "mix_trade_no": MIX, "mix_pay_status": mix_status, "self_pay_status": self_status,
        "med_ins_pay_status": med, "out_trade_no": OTN, "serial_no": serial_no, "pay_order_id": pay_order_id,
        "total_fee": fen["total"], "med_ins_gov_fee": fen["fund"], "med_ins_self_fee": fen["account"],
        "med_ins_other_fee": 0, "med_ins_cash_fee": fen["cash"], "wechat_pay_cash_fee": fen["cash"],
        "paid_time": "2026-01-01T10:05:00+08:00" if mix_status == "MIX_PAY_SUCCESS" else None,
        **({"med_ins_fail_reason": fail_reason} if fail_reason else {})}))


def paid_mix(split: dict = CASH_SPLIT, interface: str = wx_oc.MEDINS_QUERY):
    cash = D(split["cash"]) > 0
    return mix("MIX_PAY_SUCCESS", "SELF_PAY_SUCCESS" if cash else "NO_SELF_PAY", "MED_INS_PAY_SUCCESS", split,
               interface)


def created_mix(split: dict = CASH_SPLIT):
    return mix(self_status="SELF_PAY_CREATED" if D(split["cash"]) > 0 else "NO_SELF_PAY", split=split,
               interface=wx_oc.MEDINS_CREATE)


def prepaid():
    return ok(wx_oc.PREPAY, JsapiPrepay(prepay_id=PREPAY))


def transaction(state: str = "SUCCESS"):
    return ok(wx_oc.TRANSACTION_QUERY, Transaction.from_json({
        "out_trade_no": OTN, "trade_state": state, "transaction_id": "4200000001" if state == "SUCCESS" else None,
        "amount": {"total": 3600}}))


def wx_refund(status: str, number: str, amount: str = "36.00", interface: str = wx_oc.REFUND_CREATE):
    return ok(interface, Refund.from_json({
        "out_refund_no": number, "status": status, "refund_id": "50RF1", "out_trade_no": OTN,
        "amount": {"refund": int(D(amount) * 100), "total": 3600},
        "success_time": "2026-01-01T11:00:00+08:00" if status == "SUCCESS" else None}))


# ---------------------------------------------------------------- Alipay answers

def auth(authorised: bool = True):
    return ok(ALI_AUTH, AuthInfo.from_json({"auth_stas": "1" if authorised else "0",
                                             "pay_auth_no": "AUTH-ALI-1" if authorised else None,
                                             "auth_url": None if authorised else "https://auth.example/x"}))


def ali_order():
    return ok(ALI_CREATE, MedicalOrder.from_json({"pay_url": "https://ali.example/cashier?sn=MED-1",
                                                   "chnl_ord_sn": "MED-1", "out_trade_no": OTN,
                                                   "med_org_ord": KEY, "pay_order_id": ORDER}))


def ali_status(medical="WAIT_PAY", own="WAIT_BUYER_PAY", split: dict = CASH_SPLIT, **more):
    return ok(ALI_QUERY, MedicalPayment.from_json({
        "medical_pay_status": medical, "own_pay_status": own if D(split["cash"]) > 0 else None,
        "out_trade_no": OTN, "med_org_ord": KEY, "pay_order_id": ORDER, "chnl_ord_sn": "MED-1",
        "trade_no": "2026ALITRADE1" if D(split["cash"]) > 0 else None, "total_amount": split["total"],
        "gov_amount": split["fund"], "account_amount": split["account"], "real_amount": split["cash"],
        "gmt_paid": "2026-01-01 10:05:00" if medical == "PAY_SUCCESS" else None, **more}))


def ali_not_found(interface: str = ALI_QUERY):
    return refused(interface, "40004 Business Failed SIM_ORDER_NOT_EXIST 订单不存在", code="SIM_ORDER_NOT_EXIST")


def ali_refunded(amount: str = "36.00"):
    return ok(ali_oc.REFUND, RefundResult(trade_no="2026ALITRADE1", out_trade_no=OTN, fund_change="Y",
                                          refund_fee=D(amount), gmt_refund_pay="2026-01-01 11:00:00"))


def ali_refund_state(status: Optional[str] = "REFUND_SUCCESS", number: str = "N"):
    return ok(ali_oc.REFUND_QUERY, RefundState(out_request_no=number, refund_amount=D("36.00"), refund_status=status,
                                                trade_no="2026ALITRADE1", out_trade_no=OTN,
                                                gmt_refund_pay="2026-01-01 11:00:00"))


def payment_json(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False)


__all__ = ["SHIPPED", "SPLIT", "TOKEN", "ORDER"]
