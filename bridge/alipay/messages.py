"""Typed Alipay messages for 医保 payments (spec digest channels.md §7-§9, mobilepay.md §5.7).

Amounts are Decimal yuan, sent as strings with two decimals.  Field names are the wire
names of the official SDK model classes the digest cites (A3), re-read in
alipay-sdk-python 3.7.1411 (``AlipayCommerceMedicalPaymentCreateandpayModel``,
``MedicalOnlineCreateAndPayInfo``, ``MedicalPaymentQueryResponse``,
``MedicalNationalPayAuthInfo``, ``AlipayCommerceMedicalTradeCreateandpayModel``,
``InsurancePayExtendParams``, ``AlipayOpenAppMiniTemplatemessageSendModel``).
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Optional

CHINA = timezone(timedelta(hours=8))
_CENT = Decimal("0.01")
NATIONAL_EVOUCHER_INST = "NATHSA"     # §7.3 medical_card_inst_id for the national e-voucher
ONLINE_PAY_BIZ_TYPE = "04107"         # §7.1 ol_biz_type_code: mobile payment


def yuan(name: str, value: Decimal) -> str:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal, not {value!r}")
    if value.quantize(_CENT) != value:
        raise ValueError(f"{name}={value} has more than two decimals")
    if value < 0:
        raise ValueError(f"{name}={value} is negative")
    return str(value.quantize(_CENT))


def money(name: str, value: Any) -> Optional[Decimal]:
    if value is None or value == "":
        return None
    if isinstance(value, (bool, float)):
        raise ValueError(f"{name} is not an exact amount: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{name} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{name} is not an amount: {value!r}")
    return amount


def alipay_time(moment: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in China time (§6.1 timestamp; GMT+8 assumed)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(CHINA)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _text(data: Mapping[str, Any], name: str, required: bool = False) -> Optional[str]:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {name}")
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _drop_empty(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if v is not None and v != "" and v != {}}


def _user(alipay_user_id: Optional[str], open_id: Optional[str]) -> dict:
    if bool(alipay_user_id) == bool(open_id):
        raise ValueError("give exactly one of alipay_user_id and open_id")
    return {"alipay_user_id": alipay_user_id} if alipay_user_id else {"open_id": open_id}


# ---------------------------------------------------------------- §7.1 payAuthNo

@dataclass(kw_only=True)
class AuthQueryRequest:
    alipay_user_id: Optional[str] = None
    open_id: Optional[str] = None
    req_biz_no: Optional[str] = None
    ol_biz_type_code: str = ONLINE_PAY_BIZ_TYPE
    call_url: Optional[str] = None
    extend_params: Optional[dict] = None

    def biz_content(self, *, org_code: str, org_app_id: str, org_chnl_crtf_code: str, ins_code: str) -> dict:
        user = _user(self.alipay_user_id, self.open_id)
        if self.ol_biz_type_code == ONLINE_PAY_BIZ_TYPE and not org_app_id:
            raise ValueError("org_app_id is required for ol_biz_type_code 04107 (§7.1)")
        return _drop_empty({**user, "org_code": org_code, "org_app_id": org_app_id,
                            "org_chnl_crtf_code": org_chnl_crtf_code, "ins_code": ins_code,
                            "ol_biz_type_code": self.ol_biz_type_code, "req_biz_no": self.req_biz_no,
                            "call_url": self.call_url, "extend_params": self.extend_params})


@dataclass(frozen=True)
class AuthInfo:
    """MedicalNationalPayAuthInfo (mobilepay.md §5.7).  ``pay_auth_no`` only when
    ``auth_stas`` is 1; otherwise ``auth_url`` is the page the patient must confirm."""

    auth_stas: Optional[str]
    pay_auth_no: Optional[str] = field(default=None, repr=False)
    auth_url: Optional[str] = None
    auth_no: Optional[str] = None
    auth_time: Optional[str] = None
    insu_org: Optional[str] = None
    medical_card_id: Optional[str] = field(default=None, repr=False)
    medical_card_inst_id: Optional[str] = None
    medical_card_status: Optional[str] = None
    rels_pay_flag: Optional[str] = None            # 0 self, 1 family account
    rels_pay_user_name: Optional[str] = None
    req_biz_no: Optional[str] = None

    @property
    def authorised(self) -> bool:
        return self.auth_stas == "1" and bool(self.pay_auth_no)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AuthInfo":
        return cls(**{f: _text(data, f) for f in cls.__dataclass_fields__})


# ---------------------------------------------------------------- §7.2 / §7.3 the medical order

@dataclass(kw_only=True)
class MedicalOrderRequest:
    med_org_ord: str                 # 6201 medOrgOrd, unique per app id
    pay_order_id: str                # 6201 payOrdId
    pay_auth_no: str
    out_trade_no: str
    total_amount: Decimal            # feeSumamt
    gov_amount: Decimal              # fundPay
    account_amount: Decimal          # psnAcctPay
    real_amount: Decimal             # ownPayAmt: the cash the patient pays in Alipay
    other_amount: Optional[Decimal] = None
    alipay_user_id: Optional[str] = None
    open_id: Optional[str] = None
    gmt_out_create: Optional[datetime] = None
    subject: str = "医保支付"         # §7.3 trade variant only
    request_content: Optional[str] = None   # 医保透传体 (TradeExtendParams.request_content), region-specific
    chrg_bch_no: Optional[str] = None       # §7.3 trade variant (6201 chrgBchno)

    def validate(self) -> None:
        _user(self.alipay_user_id, self.open_id)
        for name in ("med_org_ord", "pay_order_id", "pay_auth_no", "out_trade_no"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        parts = [self.gov_amount, self.account_amount, self.real_amount, self.other_amount or Decimal("0")]
        for n, v in (("total_amount", self.total_amount), ("gov_amount", self.gov_amount),
                     ("account_amount", self.account_amount), ("real_amount", self.real_amount)):
            yuan(n, v)
        if sum(parts, Decimal("0")) != self.total_amount:
            raise ValueError("total_amount != gov_amount + account_amount + real_amount (+ other_amount)")

    def _amounts(self) -> dict:
        out = {"total_amount": yuan("total_amount", self.total_amount),
               "gov_amount": yuan("gov_amount", self.gov_amount),
               "account_amount": yuan("account_amount", self.account_amount),
               "real_amount": yuan("real_amount", self.real_amount)}
        if self.other_amount is not None:
            out["other_amount"] = yuan("other_amount", self.other_amount)
        return out

    def medical_biz_content(self, *, org_no: str, merchant_name: str, payment_city_code: str,
                            call_url: str) -> dict:
        """§7.2 alipay.commerce.medical.payment.createandpay."""
        extend = _drop_empty({"request_content": self.request_content})
        return _drop_empty({
            **_user(self.alipay_user_id, self.open_id), "org_no": org_no, "merchant_name": merchant_name,
            "med_org_ord": self.med_org_ord, "pay_order_id": self.pay_order_id, "pay_auth_no": self.pay_auth_no,
            "out_trade_no": self.out_trade_no, "payment_city_code": payment_city_code, **self._amounts(),
            "gmt_out_create": alipay_time(self.gmt_out_create) if self.gmt_out_create else None,
            "call_url": call_url, "extend_params": extend or None})

    def trade_biz_content(self, *, org_no: str, call_url: str, notify_url: str,
                          sys_service_provider_id: str) -> dict:
        """§7.3 variant: alipay.commerce.medical.trade.createandpay with InsurancePayExtendParams
        {medical_card_id = the e-voucher authorisation, medical_card_inst_id = NATHSA}."""
        extend = _drop_empty({"medical_card_id": self.pay_auth_no, "medical_card_inst_id": NATIONAL_EVOUCHER_INST,
                              "sys_service_provider_id": sys_service_provider_id})
        return _drop_empty({
            **_user(self.alipay_user_id, self.open_id), "org_no": org_no, "subject": self.subject,
            "out_trade_no": self.out_trade_no, "med_org_ord": self.med_org_ord, "pay_order_id": self.pay_order_id,
            "pay_auth_no": self.pay_auth_no, "chrg_bch_no": self.chrg_bch_no, **self._amounts(),
            "gmt_out_create": alipay_time(self.gmt_out_create) if self.gmt_out_create else None,
            "callback_url": call_url, "result_notify_url": notify_url, "request_content": self.request_content,
            "extend_params": extend})


@dataclass(frozen=True)
class MedicalOrder:
    """MedicalOnlineCreateAndPayInfo (§7.2), or the §7.3 variant's answer."""

    pay_url: str                     # the cashier page the mini-program opens
    out_trade_no: Optional[str] = None
    med_org_ord: Optional[str] = None
    pay_order_id: Optional[str] = None
    chnl_ord_sn: Optional[str] = None
    status: Optional[str] = None     # enum unknown (§10.4.10)
    trade_no: Optional[str] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MedicalOrder":
        return cls(pay_url=_text(data, "pay_url", True), out_trade_no=_text(data, "out_trade_no"),
                   med_org_ord=_text(data, "med_org_ord"), pay_order_id=_text(data, "pay_order_id"),
                   chnl_ord_sn=_text(data, "chnl_ord_sn"), status=_text(data, "status"),
                   trade_no=_text(data, "trade_no") or _text(data, "alipay_trade_no"))


@dataclass(kw_only=True)
class MedicalQueryRequest:
    """§7.4: by any of the keys; ``chnl_order_sn`` is spelled with "order" here (§10.4.11)."""

    med_org_ord: Optional[str] = None
    out_trade_no: Optional[str] = None
    pay_order_id: Optional[str] = None
    chnl_order_sn: Optional[str] = None
    trade_no: Optional[str] = None
    alipay_user_id: Optional[str] = None
    open_id: Optional[str] = None
    out_biz_type: Optional[str] = None

    def biz_content(self, *, org_no: str) -> dict:
        keys = ("med_org_ord", "out_trade_no", "pay_order_id", "chnl_order_sn", "trade_no")
        if not any(getattr(self, k) for k in keys):
            raise ValueError(f"give at least one of {', '.join(keys)}")
        return _drop_empty({k: getattr(self, k) for k in keys + ("alipay_user_id", "open_id", "out_biz_type")}
                           | {"org_no": org_no})


@dataclass(frozen=True)
class MedicalPayment:
    """MedicalPaymentQueryResponse (§7.4, wrapped in ``result_data``).  Status enums are
    not public (§10.4.10): kept as text."""

    medical_pay_status: Optional[str]
    own_pay_status: Optional[str]
    med_org_ord: Optional[str] = None
    pay_order_id: Optional[str] = None
    out_trade_no: Optional[str] = None
    trade_no: Optional[str] = None          # the cash (自费) trade
    chnl_ord_sn: Optional[str] = None
    pay_type: Optional[str] = None          # MEDICAL_PAYMENT | MIXED_PAYMENT
    total_amount: Optional[Decimal] = None
    gov_amount: Optional[Decimal] = None
    account_amount: Optional[Decimal] = None
    other_amount: Optional[Decimal] = None
    real_amount: Optional[Decimal] = None
    medical_refund_amount: Optional[Decimal] = None
    real_refund_amount: Optional[Decimal] = None
    gmt_paid: Optional[str] = None
    error_reason: Optional[str] = None

    _MONEY = ("total_amount", "gov_amount", "account_amount", "other_amount", "real_amount",
              "medical_refund_amount", "real_refund_amount")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MedicalPayment":
        kwargs = {}
        for f in cls.__dataclass_fields__:
            if f.startswith("_"):
                continue
            kwargs[f] = money(f, data.get(f)) if f in cls._MONEY else _text(data, f)
        return cls(**kwargs)


# ---------------------------------------------------------------- §7.6 trade query

class TradeStatus(str, enum.Enum):
    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    TRADE_CLOSED = "TRADE_CLOSED"
    TRADE_SUCCESS = "TRADE_SUCCESS"
    TRADE_FINISHED = "TRADE_FINISHED"


@dataclass(frozen=True)
class Trade:
    trade_no: str
    out_trade_no: Optional[str]
    trade_status: TradeStatus
    total_amount: Optional[Decimal] = None
    receipt_amount: Optional[Decimal] = None
    buyer_pay_amount: Optional[Decimal] = None
    send_pay_date: Optional[str] = None
    industry_sepc_detail: Optional[str] = None       # (sic) §7.6; inner JSON unknown, kept as text
    industry_sepc_detail_gov: Optional[str] = None
    industry_sepc_detail_acc: Optional[str] = None
    medical_insurance_info: Optional[str] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Trade":
        status = _text(data, "trade_status", True)
        try:
            trade_status = TradeStatus(status)
        except ValueError:
            raise ValueError(f"unknown trade_status {status!r}") from None
        return cls(trade_no=_text(data, "trade_no", True), out_trade_no=_text(data, "out_trade_no"),
                   trade_status=trade_status, total_amount=money("total_amount", data.get("total_amount")),
                   receipt_amount=money("receipt_amount", data.get("receipt_amount")),
                   buyer_pay_amount=money("buyer_pay_amount", data.get("buyer_pay_amount")),
                   send_pay_date=_text(data, "send_pay_date"),
                   industry_sepc_detail=_text(data, "industry_sepc_detail"),
                   industry_sepc_detail_gov=_text(data, "industry_sepc_detail_gov"),
                   industry_sepc_detail_acc=_text(data, "industry_sepc_detail_acc"),
                   medical_insurance_info=_text(data, "medical_insurance_info"))


# ---------------------------------------------------------------- §7.5 refunds

@dataclass(kw_only=True)
class RefundRequest:
    out_request_no: str              # the idempotency key: the same on every retry (§7.5)
    refund_amount: Decimal
    out_trade_no: Optional[str] = None
    trade_no: Optional[str] = None
    refund_reason: Optional[str] = None

    def validate(self) -> None:
        if bool(self.out_trade_no) == bool(self.trade_no):
            raise ValueError("give exactly one of out_trade_no and trade_no")
        if not self.out_request_no or len(self.out_request_no) > 64:
            raise ValueError("out_request_no must be 1-64 characters")
        if Decimal(yuan("refund_amount", self.refund_amount)) <= 0:
            raise ValueError("refund_amount must be positive")

    def biz_content(self) -> dict:
        return _drop_empty({"out_trade_no": self.out_trade_no, "trade_no": self.trade_no,
                            "refund_amount": yuan("refund_amount", self.refund_amount),
                            "out_request_no": self.out_request_no, "refund_reason": self.refund_reason,
                            "query_options": ["gmt_refund_pay"]})


@dataclass(frozen=True)
class RefundResult:
    trade_no: Optional[str]
    out_trade_no: Optional[str]
    fund_change: Optional[str]       # Y: money moved by this call; N: an idempotent repeat (§7.5)
    refund_fee: Optional[Decimal]    # cumulative refunded amount of the trade
    gmt_refund_pay: Optional[str] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RefundResult":
        return cls(trade_no=_text(data, "trade_no"), out_trade_no=_text(data, "out_trade_no"),
                   fund_change=_text(data, "fund_change"), refund_fee=money("refund_fee", data.get("refund_fee")),
                   gmt_refund_pay=_text(data, "gmt_refund_pay"))


@dataclass(frozen=True)
class RefundState:
    """alipay.trade.fastpay.refund.query (§7.5)."""

    out_request_no: Optional[str]
    refund_amount: Optional[Decimal]
    refund_status: Optional[str]
    trade_no: Optional[str] = None
    out_trade_no: Optional[str] = None
    total_amount: Optional[Decimal] = None
    gmt_refund_pay: Optional[str] = None

    @property
    def succeeded(self) -> bool:
        """REFUND_SUCCESS; an answer without refund_status but with the refund in it is the
        older documented form of success (§7.5, §10.4.13)."""
        if self.refund_status is not None:
            return self.refund_status == "REFUND_SUCCESS"
        return self.refund_amount is not None

    @property
    def found(self) -> bool:
        return self.out_request_no is not None or self.refund_amount is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RefundState":
        return cls(out_request_no=_text(data, "out_request_no"),
                   refund_amount=money("refund_amount", data.get("refund_amount")),
                   refund_status=_text(data, "refund_status"), trade_no=_text(data, "trade_no"),
                   out_trade_no=_text(data, "out_trade_no"),
                   total_amount=money("total_amount", data.get("total_amount")),
                   gmt_refund_pay=_text(data, "gmt_refund_pay"))


# ---------------------------------------------------------------- §8 bills, §9 messages

@dataclass(frozen=True)
class BillUrl:
    bill_download_url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BillUrl":
        url = _text(data, "bill_download_url", True)
        if not url.startswith(("https://", "http://")):
            raise ValueError("bill_download_url is not an http(s) URL")
        return cls(url)


@dataclass(frozen=True)
class DownloadedBill:
    path: str
    size: int


@dataclass(kw_only=True)
class TemplateMessageRequest:
    event: str                      # a key of config.templates
    to_user: str                    # 2088… user id or open_id, as config.message_user_id says
    values: Mapping[str, Any]
    page: Optional[str] = None
    form_id: Optional[str] = None   # trade no / form id; presumably absent for subscriptions (§9)
