"""The orders mibridge places in the patient's channel after the centre's 6202, and what the
mini-program gets to open the cashier.

    wechat_prepay(...)       channels.md §2.1: the JSAPI self-pay order for the cash part
                             (only when cash > 0); gives prepay_id
    wechat_mixed_order(...)  §2.2: the 医保 mixed order; mix_pay_type by the 6202 split:
                             INSURANCE_ONLY when there is no cash, else CASH_AND_INSURANCE
    alipay_order(...)        §7.2 alipay.commerce.medical.payment.createandpay (or the §7.3
                             trade variant, by [alipay] order_api: the client chooses)
    wechat_cashier(...)      what wx.requestMedicalInsurancePay takes (§1.7): mixTradeNo, and
                             with cash timeStamp, nonceStr, package, signType, paySign
    alipay_cashier(...)      {"pay_url"}: the 支付宝中间页 the mini-program opens (§7.2)

Numbers: out_trade_no from bridge/channels/keys.py (the same in the prepay and the mixed
order, §2.1; the Alipay order and its cash trade); serial_no / med_org_ord = the payment's
business key (= 6201 medOrgOrd, mobilepay.md §10).

A payment whose split has no insurance part still goes through the centre (the visit is
settled under insurance, at zero): it is CASH_AND_INSURANCE with zero insurance fees, which
W1 allows ("each fee may be 0", channels.md §2.2 table), not CASH_ONLY, which forbids the
centre's order fields and would leave the centre order unpaid (docs/platform-choices.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional

from bridge.alipay.messages import MedicalOrderRequest
from bridge.engine.flow import BadInput
from bridge.wechatpay.messages import (CardType, JsapiPrepayRequest, MedInsOrderRequest, MixPayType, OrderType,
                                       Person)

from .payer import ChannelPayer

ZERO = Decimal("0.00")

# 6201 idType (mobilepay.md §6.2: 01 居民身份证) -> WeChat payer.card_type (mobilepay.md §10).
# Only the resident ID card is mapped: no source pairs the other national certificate codes
# with WeChat's card types, so a payment with another id_type is refused before any call.
CARD_TYPES = {"01": CardType.ID_CARD}


@dataclass(frozen=True)
class OrderFacts:
    """What the channel order is built from: the payment and the centre's 6202 answer."""

    business_key: str            # = 6201 medOrgOrd
    registration: bool           # mobilepay.registration -> REG_PAY, else DIAG_PAY
    out_trade_no: str
    pay_ord_id: str
    pay_auth_no: str
    fund: Decimal                # 6202 fundPay
    account: Decimal             # 6202 psnAcctPay
    cash: Decimal                # 6202 ownPayAmt
    payer: ChannelPayer
    user_name: str
    id_no: str
    id_type: str
    created_at: datetime         # the order's creation time, kept in flow_data: a resend is the same order
    geo_location: str            # "lng,lat": the payer's, else [mobilepay] location
    chrg_bchno: Optional[str] = None

    @property
    def total(self) -> Decimal:
        return self.fund + self.account + self.cash


def check_card_type(id_type: str) -> CardType:
    try:
        return CARD_TYPES[id_type]
    except KeyError:
        raise BadInput(f"id_type {id_type!r} has no WeChat card_type (only 01, the resident ID card, is "
                       f"mapped): pay this bill without the WeChat channel") from None


def _description(f: OrderFacts) -> str:
    return f.payer.description or ("挂号费" if f.registration else "门诊缴费")


def wechat_prepay(f: OrderFacts) -> JsapiPrepayRequest:
    """§2.1: amount.total = wechat_pay_cash_fee, out_trade_no = the mixed order's."""
    return JsapiPrepayRequest(out_trade_no=f.out_trade_no, description=_description(f), amount=f.cash,
                              openid=f.payer.openid)


def wechat_mixed_order(f: OrderFacts, prepay_id: Optional[str]) -> MedInsOrderRequest:
    """§2.2 / mobilepay.md §10.  The fees in yuan (the client sends fen): gov = fundPay,
    self = psnAcctPay, other = 0, med_ins_cash_fee = wechat_pay_cash_fee = ownPayAmt (no
    cash additions or reductions).  passthrough_request_content carries payAuthNo, payOrdId
    and setlLatlnt, without which the bureau answers 未找到对应授权信息 (mobilepay.md §10)."""
    has_cash = f.cash > 0
    if has_cash and not prepay_id:
        raise ValueError("a mixed order with cash needs the JSAPI prepay_id")
    passthrough = json.dumps({"payAuthNo": f.pay_auth_no, "payOrdId": f.pay_ord_id, "setlLatlnt": f.geo_location},
                             ensure_ascii=False, separators=(",", ":"))
    return MedInsOrderRequest(
        mix_pay_type=MixPayType.CASH_AND_INSURANCE if has_cash else MixPayType.INSURANCE_ONLY,
        order_type=OrderType.REG_PAY if f.registration else OrderType.DIAG_PAY,
        openid=f.payer.openid, payer=Person(name=f.user_name, id_number=f.id_no, card_type=check_card_type(f.id_type)),
        out_trade_no=f.out_trade_no, serial_no=f.business_key, total_fee=f.total, med_ins_gov_fee=f.fund,
        med_ins_self_fee=f.account, med_ins_other_fee=ZERO, med_ins_cash_fee=f.cash, wechat_pay_cash_fee=f.cash,
        pay_order_id=f.pay_ord_id, pay_auth_no=f.pay_auth_no, geo_location=f.geo_location,
        med_ins_order_create_time=f.created_at, prepay_id=prepay_id if has_cash else None,
        passthrough_request_content=passthrough)


def alipay_order(f: OrderFacts) -> MedicalOrderRequest:
    """§7.2: gov_amount = fundPay, account_amount = psnAcctPay, real_amount = ownPayAmt (the
    digest's mapping, [uncertain: field names only])."""
    return MedicalOrderRequest(
        med_org_ord=f.business_key, pay_order_id=f.pay_ord_id, pay_auth_no=f.pay_auth_no,
        out_trade_no=f.out_trade_no, total_amount=f.total, gov_amount=f.fund, account_amount=f.account,
        real_amount=f.cash, alipay_user_id=f.payer.alipay_user_id, open_id=f.payer.alipay_open_id,
        gmt_out_create=f.created_at, subject=_description(f), chrg_bch_no=f.chrg_bchno)


def wechat_cashier(client, mix_trade_no: str, prepay_id: Optional[str]) -> dict:
    """§1.7 (WechatPayClient.cashier_params): paySign over appId, timeStamp, nonceStr and
    package with the merchant key; no secret goes in it."""
    return client.cashier_params(mix_trade_no=mix_trade_no, prepay_id=prepay_id)


def alipay_cashier(pay_url: str) -> dict:
    return {"pay_url": pay_url}
