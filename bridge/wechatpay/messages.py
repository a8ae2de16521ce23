"""Typed WeChat Pay messages: the self-pay JSAPI order, the 医保 mixed order, cash refunds,
the insurance refund notify and the trade bill (spec digest channels.md §2, §3;
mobilepay.md §10).

Amounts are Decimal yuan on the Python side, like everywhere in mibridge, and integer
fen on the wire (§1.1).  A yuan amount with more than two decimals is refused, never
rounded.  Attribute names are the wire names.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Optional

CHINA = timezone(timedelta(hours=8))
_FEN = Decimal("0.01")


# ---------------------------------------------------------------- amounts and times

def to_fen(name: str, value: Decimal) -> int:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal (yuan), not {value!r}")
    if value.quantize(_FEN) != value:
        raise ValueError(f"{name}={value} has more than two decimals")
    if value < 0:
        raise ValueError(f"{name}={value} is negative")
    return int(value * 100)


def from_fen(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer number of fen, not {value!r}")
    return Decimal(value) / 100


def opt_fen(name: str, value: Any) -> Optional[Decimal]:
    return None if value is None else from_fen(name, value)


def rfc3339(moment: datetime) -> str:
    """WeChat times: RFC 3339 with an offset, e.g. 2018-06-08T10:34:56+08:00 (§1.1)."""
    if moment.tzinfo is None:
        raise ValueError("a WeChat time needs a timezone")
    return moment.isoformat(timespec="seconds")


def parse_time(name: str, value: Any) -> Optional[datetime]:
    """RFC 3339, or yyyyMMddHHmmss (China time): §2.2 lists both for ``paid_time``."""
    if value in (None, ""):
        return None
    text = str(value)
    if len(text) == 14 and text.isdigit():
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} is not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} has no timezone: {text!r}")
    return moment


def _text(data: dict, name: str, required: bool = False) -> Optional[str]:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {name}")
        return None
    if isinstance(value, (dict, list)):
        raise ValueError(f"{name} is not a scalar")
    return str(value)


def _enum(cls: type, data: dict, name: str, required: bool = False):
    text = _text(data, name, required)
    if text is None:
        return None
    try:
        return cls(text)
    except ValueError:
        raise ValueError(f"unknown {name} {text!r}") from None


def _drop_none(obj: Any) -> Any:
    """W1 §2.8 B: leave absent fields out; never send "" keys or nulls."""
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


# ---------------------------------------------------------------- enumerations (§2.4, mobilepay.md §10)

class MixPayType(str, enum.Enum):
    CASH_ONLY = "CASH_ONLY"
    INSURANCE_ONLY = "INSURANCE_ONLY"
    CASH_AND_INSURANCE = "CASH_AND_INSURANCE"

    @property
    def has_cash(self) -> bool:
        return self is not MixPayType.INSURANCE_ONLY

    @property
    def has_insurance(self) -> bool:
        return self is not MixPayType.CASH_ONLY


class OrderType(str, enum.Enum):
    REG_PAY = "REG_PAY"
    DIAG_PAY = "DIAG_PAY"
    COVID_EXAM_PAY = "COVID_EXAM_PAY"
    IN_HOSP_PAY = "IN_HOSP_PAY"
    PHARMACY_PAY = "PHARMACY_PAY"
    INSURANCE_PAY = "INSURANCE_PAY"
    INT_REG_PAY = "INT_REG_PAY"
    INT_RE_DIAG_PAY = "INT_RE_DIAG_PAY"
    INT_RX_PAY = "INT_RX_PAY"
    COVID_ANTIGEN_PAY = "COVID_ANTIGEN_PAY"
    MED_PAY = "MED_PAY"


class CardType(str, enum.Enum):
    ID_CARD = "ID_CARD"
    HOUSEHOLD_REGISTRATION = "HOUSEHOLD_REGISTRATION"
    FOREIGNER_PASSPORT = "FOREIGNER_PASSPORT"
    MAINLAND_TRAVEL_PERMIT_FOR_TW = "MAINLAND_TRAVEL_PERMIT_FOR_TW"
    MAINLAND_TRAVEL_PERMIT_FOR_MO = "MAINLAND_TRAVEL_PERMIT_FOR_MO"
    MAINLAND_TRAVEL_PERMIT_FOR_HK = "MAINLAND_TRAVEL_PERMIT_FOR_HK"
    FOREIGN_PERMANENT_RESIDENT = "FOREIGN_PERMANENT_RESIDENT"


class MixPayStatus(str, enum.Enum):
    CREATED = "MIX_PAY_CREATED"
    SUCCESS = "MIX_PAY_SUCCESS"
    REFUND = "MIX_PAY_REFUND"
    FAIL = "MIX_PAY_FAIL"
    # W1 排障手册 only [uncertain]: the user is entering the password; reversed (final).
    USER_PAYING = "MIX_PAY_USER_PAYING"
    REVERSED = "MIX_PAY_REVERSED"


class SelfPayStatus(str, enum.Enum):
    CREATED = "SELF_PAY_CREATED"
    SUCCESS = "SELF_PAY_SUCCESS"
    REFUND = "SELF_PAY_REFUND"
    FAIL = "SELF_PAY_FAIL"
    NONE = "NO_SELF_PAY"


class MedInsPayStatus(str, enum.Enum):
    CREATED = "MED_INS_PAY_CREATED"
    SUCCESS = "MED_INS_PAY_SUCCESS"
    REFUND = "MED_INS_PAY_REFUND"
    FAIL = "MED_INS_PAY_FAIL"
    NONE = "NO_MED_INS_PAY"


class TradeState(str, enum.Enum):
    """§2.1 [uncertain, §10.4.15]: not read in a source; general knowledge."""

    SUCCESS = "SUCCESS"
    REFUND = "REFUND"
    NOTPAY = "NOTPAY"
    CLOSED = "CLOSED"
    REVOKED = "REVOKED"
    USERPAYING = "USERPAYING"
    PAYERROR = "PAYERROR"


class RefundStatus(str, enum.Enum):
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"          # retry with a NEW out_refund_no (§2.6)
    PROCESSING = "PROCESSING"
    ABNORMAL = "ABNORMAL"      # needs apply-abnormal-refund or a person

    @property
    def is_final(self) -> bool:
        return self in (RefundStatus.SUCCESS, RefundStatus.CLOSED)


# ---------------------------------------------------------------- §2.1 self-pay JSAPI prepay

@dataclass(kw_only=True)
class JsapiPrepayRequest:
    out_trade_no: str               # the same as the mixed order's (§2.1)
    description: str                # shown in the bill's 商品名称 (§3.3)
    amount: Decimal                 # = the mixed order's wechat_pay_cash_fee
    openid: str
    notify_url: Optional[str] = None   # default: config.notify_url
    time_expire: Optional[datetime] = None
    attach: Optional[str] = None

    def validate(self) -> None:
        if not self.out_trade_no or len(self.out_trade_no) > 32:
            raise ValueError("out_trade_no must be 1-32 characters")
        if not self.description:
            raise ValueError("description is required")
        if not self.openid:
            raise ValueError("openid is required")
        if to_fen("amount", self.amount) <= 0:
            raise ValueError("amount must be positive: a prepay is only for a cash part > 0")

    def body(self, *, appid: str, mchid: str, notify_url: str) -> dict:
        return _drop_none({
            "appid": appid, "mchid": mchid, "description": self.description,
            "out_trade_no": self.out_trade_no,
            "time_expire": rfc3339(self.time_expire) if self.time_expire else None,
            "attach": self.attach, "notify_url": self.notify_url or notify_url,
            "amount": {"total": to_fen("amount", self.amount), "currency": "CNY"},
            "payer": {"openid": self.openid},
        })


@dataclass(frozen=True)
class JsapiPrepay:
    prepay_id: str

    @classmethod
    def from_json(cls, data: dict) -> "JsapiPrepay":
        return cls(prepay_id=_text(data, "prepay_id", True))


@dataclass(frozen=True)
class Transaction:
    """A JSAPI payment as the query and TRANSACTION.SUCCESS show it (§2.1)."""

    out_trade_no: str
    trade_state: TradeState
    transaction_id: Optional[str] = None
    success_time: Optional[datetime] = None
    openid: Optional[str] = None
    total: Optional[Decimal] = None
    payer_total: Optional[Decimal] = None
    trade_state_desc: Optional[str] = None
    attach: Optional[str] = None

    @classmethod
    def from_json(cls, data: dict) -> "Transaction":
        amount = data.get("amount") or {}
        payer = data.get("payer") or {}
        if not isinstance(amount, dict) or not isinstance(payer, dict):
            raise ValueError("amount and payer must be objects")
        return cls(out_trade_no=_text(data, "out_trade_no", True),
                   trade_state=_enum(TradeState, data, "trade_state", True),
                   transaction_id=_text(data, "transaction_id"),
                   success_time=parse_time("success_time", data.get("success_time")),
                   openid=_text(payer, "openid"),
                   total=opt_fen("amount.total", amount.get("total")),
                   payer_total=opt_fen("amount.payer_total", amount.get("payer_total")),
                   trade_state_desc=_text(data, "trade_state_desc"), attach=_text(data, "attach"))


# ---------------------------------------------------------------- §2.2 the mixed order

@dataclass(kw_only=True)
class Person:
    """payer / relative: the name and the ID digest travel RSA-OAEP encrypted (§1.5)."""

    name: str
    id_number: str                  # the plain ID number: only its MD5 digest is sent, encrypted
    card_type: CardType = CardType.ID_CARD


@dataclass(kw_only=True)
class CashAdjustment:
    fee: Decimal
    type: str                       # cash_add_type / cash_reduce_type enum value (mobilepay.md §10)


_ADD_TYPES = {"DEFAULT_ADD_TYPE", "FREIGHT", "OTHER_MEDICAL_EXPENSES"}
_REDUCE_TYPES = {"DEFAULT_REDUCE_TYPE", "HOSPITAL_REDUCE", "PHARMACY_DISCOUNT", "DISCOUNT", "PRE_PAYMENT",
                 "DEPOSIT_DEDUCTION"}


@dataclass(kw_only=True)
class MedInsOrderRequest:
    mix_pay_type: MixPayType
    order_type: OrderType
    openid: str
    payer: Person
    out_trade_no: str
    serial_no: str                  # = 6201 medOrgOrd
    total_fee: Decimal
    med_ins_gov_fee: Decimal = Decimal("0")      # fundPay
    med_ins_self_fee: Decimal = Decimal("0")     # psnAcctPay
    med_ins_other_fee: Decimal = Decimal("0")
    med_ins_cash_fee: Decimal = Decimal("0")     # ownPayAmt
    wechat_pay_cash_fee: Decimal = Decimal("0")  # what the patient pays by WeChat
    pay_order_id: Optional[str] = None           # = 6201 payOrdId
    pay_auth_no: Optional[str] = None
    geo_location: Optional[str] = None           # "lng,lat"
    med_ins_order_create_time: Optional[datetime] = None
    prepay_id: Optional[str] = None
    pay_for_relatives: bool = False
    relative: Optional[Person] = None
    cash_add_detail: list[CashAdjustment] = field(default_factory=list)
    cash_reduce_detail: list[CashAdjustment] = field(default_factory=list)
    passthrough_request_content: Optional[str] = None   # JSON text ≤ 2048 bytes (bureau-defined)
    extends: Optional[str] = None
    attach: Optional[str] = None
    # Defaults come from the config when left None.
    callback_url: Optional[str] = None
    city_id: Optional[str] = None
    med_inst_name: Optional[str] = None
    med_inst_no: Optional[str] = None
    channel_no: Optional[str] = None

    def validate(self) -> None:
        """The §2.2 field-presence rules and the mobilepay.md §10 amount formulas, checked
        locally (W1 recommends it: a failure here costs no call and no pay_auth_no)."""
        t = MixPayType(self.mix_pay_type)
        OrderType(self.order_type)
        if not self.out_trade_no or len(self.out_trade_no) > 32:
            raise ValueError("out_trade_no must be 1-32 characters")
        if not self.serial_no:
            raise ValueError("serial_no (= medOrgOrd) is required")
        if not self.openid:
            raise ValueError("openid is required")
        if self.pay_for_relatives != (self.relative is not None):
            raise ValueError("relative must be given exactly when pay_for_relatives is true")
        fees = {n: to_fen(n, getattr(self, n)) for n in (
            "total_fee", "med_ins_gov_fee", "med_ins_self_fee", "med_ins_other_fee",
            "med_ins_cash_fee", "wechat_pay_cash_fee")}
        adds = sum(to_fen("cash_add_fee", a.fee) for a in self.cash_add_detail)
        reduces = sum(to_fen("cash_reduce_fee", r.fee) for r in self.cash_reduce_detail)
        for a in self.cash_add_detail:
            if a.type not in _ADD_TYPES:
                raise ValueError(f"unknown cash_add_type {a.type!r}")
        for r in self.cash_reduce_detail:
            if r.type not in _REDUCE_TYPES:
                raise ValueError(f"unknown cash_reduce_type {r.type!r}")
        insurance = fees["med_ins_gov_fee"] + fees["med_ins_self_fee"] + fees["med_ins_other_fee"]
        if fees["total_fee"] != insurance + fees["wechat_pay_cash_fee"] + reduces:
            raise ValueError("total_fee != gov + self + other + wechat_pay_cash_fee + Σreduce (268529477)")
        if fees["total_fee"] != insurance + fees["med_ins_cash_fee"] + adds:
            raise ValueError("total_fee != gov + self + other + med_ins_cash_fee + Σadd (268529477)")
        if fees["wechat_pay_cash_fee"] != fees["med_ins_cash_fee"] + adds - reduces:
            raise ValueError("wechat_pay_cash_fee != med_ins_cash_fee + Σadd − Σreduce (268529476)")
        order_fields = ("pay_order_id", "pay_auth_no", "geo_location", "med_ins_order_create_time")
        if t.has_cash:
            if fees["wechat_pay_cash_fee"] <= 0 or not self.prepay_id:
                raise ValueError(f"{t.value}: wechat_pay_cash_fee > 0 and prepay_id are required")
        elif fees["wechat_pay_cash_fee"] != 0 or self.prepay_id:
            raise ValueError("INSURANCE_ONLY: wechat_pay_cash_fee must be 0 and prepay_id absent")
        if t.has_insurance:
            missing = [n for n in order_fields if not getattr(self, n)]
            if missing:
                raise ValueError(f"{t.value}: {', '.join(missing)} required")
        else:
            # W1 开发参数 §四: for CASH_ONLY "4 个医保金额字段之和必须为 0" and 排障手册 268529474: no
            # med_ins_* field may be sent.  Read literally (the four med_ins_*_fee include the cash
            # one), the cash of a CASH_ONLY order is carried by cash_add_detail.
            if insurance + fees["med_ins_cash_fee"] != 0:
                raise ValueError("CASH_ONLY: the four med_ins_*_fee must be 0 (the cash goes in cash_add_detail)")
            present = [n for n in order_fields if getattr(self, n)]
            if present:
                raise ValueError(f"CASH_ONLY: {', '.join(present)} must be absent (268529474)")
        if self.passthrough_request_content is not None and \
                len(self.passthrough_request_content.encode("utf-8")) > 2048:
            raise ValueError("passthrough_request_content is longer than 2048 bytes")

    def body(self, *, appid: str, encrypt, defaults: dict) -> dict:
        """The wire body; ``encrypt(text)`` is RSA-OAEP with the platform key (§1.5)."""
        from .cipher import id_digest

        def person(p: Person) -> dict:
            return {"name": encrypt(p.name), "id_digest": encrypt(id_digest(p.id_number)),
                    "card_type": CardType(p.card_type).value}

        t = MixPayType(self.mix_pay_type)
        body: dict[str, Any] = {
            "mix_pay_type": t.value, "order_type": OrderType(self.order_type).value,
            "appid": appid, "openid": self.openid, "payer": person(self.payer),
            "pay_for_relatives": self.pay_for_relatives,
            "relative": person(self.relative) if self.relative else None,
            "out_trade_no": self.out_trade_no, "serial_no": self.serial_no,
            "pay_order_id": self.pay_order_id, "pay_auth_no": self.pay_auth_no,
            "geo_location": self.geo_location,
            "city_id": self.city_id or defaults.get("city_id"),
            "med_inst_name": self.med_inst_name or defaults.get("med_inst_name"),
            "med_inst_no": self.med_inst_no or defaults.get("med_inst_no"),
            "med_ins_order_create_time": (rfc3339(self.med_ins_order_create_time)
                                          if self.med_ins_order_create_time else None),
            "total_fee": to_fen("total_fee", self.total_fee),
        }
        if t.has_insurance:
            for n in ("med_ins_gov_fee", "med_ins_self_fee", "med_ins_other_fee", "med_ins_cash_fee"):
                body[n] = to_fen(n, getattr(self, n))
        if t.has_cash:
            body["wechat_pay_cash_fee"] = to_fen("wechat_pay_cash_fee", self.wechat_pay_cash_fee)
            body["prepay_id"] = self.prepay_id
        elif defaults.get("insurance_only_cash_fee") == "zero":
            # W1 开发参数 §四 says "必须为 0", 排障手册 Q4 says "禁传": configurable, omitted by default.
            body["wechat_pay_cash_fee"] = 0
        if self.cash_add_detail:
            body["cash_add_detail"] = [{"cash_add_fee": to_fen("cash_add_fee", a.fee), "cash_add_type": a.type}
                                       for a in self.cash_add_detail]
        if self.cash_reduce_detail:
            body["cash_reduce_detail"] = [{"cash_reduce_fee": to_fen("cash_reduce_fee", r.fee),
                                           "cash_reduce_type": r.type} for r in self.cash_reduce_detail]
        body.update({
            "callback_url": self.callback_url or defaults.get("callback_url"),
            "passthrough_request_content": self.passthrough_request_content,
            "extends": self.extends, "attach": self.attach,
            "channel_no": self.channel_no or defaults.get("channel_no") or None,
            "med_ins_test_env": bool(defaults.get("med_ins_test_env", False)),
        })
        if not body["callback_url"]:
            raise ValueError("callback_url is required on every mixed order (§2.2)")
        return _drop_none(body)


@dataclass(frozen=True)
class MedInsOrder:
    """The mixed order as create, both queries and MEDICAL_INSURANCE.SUCCESS show it (§2.2-§2.5).
    There is never a transaction_id here (§2.3)."""

    mix_trade_no: str
    mix_pay_status: MixPayStatus
    self_pay_status: Optional[SelfPayStatus]
    med_ins_pay_status: Optional[MedInsPayStatus]
    out_trade_no: Optional[str] = None
    serial_no: Optional[str] = None
    pay_order_id: Optional[str] = None
    mix_pay_type: Optional[MixPayType] = None
    paid_time: Optional[datetime] = None
    total_fee: Optional[Decimal] = None
    med_ins_gov_fee: Optional[Decimal] = None
    med_ins_self_fee: Optional[Decimal] = None
    med_ins_other_fee: Optional[Decimal] = None
    med_ins_cash_fee: Optional[Decimal] = None
    wechat_pay_cash_fee: Optional[Decimal] = None
    prepay_id: Optional[str] = None
    openid: Optional[str] = None
    med_ins_fail_reason: Optional[str] = None
    passthrough_response_content: Optional[str] = None
    attach: Optional[str] = None

    @classmethod
    def from_json(cls, data: dict) -> "MedInsOrder":
        return cls(
            mix_trade_no=_text(data, "mix_trade_no", True),
            mix_pay_status=_enum(MixPayStatus, data, "mix_pay_status", True),
            self_pay_status=_enum(SelfPayStatus, data, "self_pay_status"),
            med_ins_pay_status=_enum(MedInsPayStatus, data, "med_ins_pay_status"),
            out_trade_no=_text(data, "out_trade_no"), serial_no=_text(data, "serial_no"),
            pay_order_id=_text(data, "pay_order_id"),
            mix_pay_type=_enum(MixPayType, data, "mix_pay_type"),
            paid_time=parse_time("paid_time", data.get("paid_time")),
            total_fee=opt_fen("total_fee", data.get("total_fee")),
            med_ins_gov_fee=opt_fen("med_ins_gov_fee", data.get("med_ins_gov_fee")),
            med_ins_self_fee=opt_fen("med_ins_self_fee", data.get("med_ins_self_fee")),
            med_ins_other_fee=opt_fen("med_ins_other_fee", data.get("med_ins_other_fee")),
            med_ins_cash_fee=opt_fen("med_ins_cash_fee", data.get("med_ins_cash_fee")),
            wechat_pay_cash_fee=opt_fen("wechat_pay_cash_fee", data.get("wechat_pay_cash_fee")),
            prepay_id=_text(data, "prepay_id"), openid=_text(data, "openid"),
            med_ins_fail_reason=_text(data, "med_ins_fail_reason"),
            passthrough_response_content=_text(data, "passthrough_response_content"),
            attach=_text(data, "attach"))

    @property
    def cash_taken(self) -> bool:
        """§2.4: the cash part may have succeeded even when the mixed order failed."""
        return self.self_pay_status is SelfPayStatus.SUCCESS


# ---------------------------------------------------------------- §2.6 cash refunds

@dataclass(kw_only=True)
class RefundRequest:
    out_refund_no: str              # the idempotency key: reuse it on every retry (§2.6)
    refund: Decimal
    total: Decimal                  # the cash prepay's amount.total
    out_trade_no: Optional[str] = None
    transaction_id: Optional[str] = None
    reason: Optional[str] = None
    notify_url: Optional[str] = None
    funds_account: Optional[str] = None   # AVAILABLE | UNSETTLED

    def validate(self) -> None:
        if bool(self.out_trade_no) == bool(self.transaction_id):
            raise ValueError("give exactly one of out_trade_no and transaction_id")
        if not self.out_refund_no or len(self.out_refund_no) > 64:
            raise ValueError("out_refund_no must be 1-64 characters")
        refund, total = to_fen("refund", self.refund), to_fen("total", self.total)
        if refund <= 0:
            raise ValueError("refund must be positive")
        if refund > total:
            raise ValueError(f"refund {self.refund} exceeds the order total {self.total}")
        if self.funds_account not in (None, "AVAILABLE", "UNSETTLED"):
            raise ValueError("funds_account must be AVAILABLE or UNSETTLED")

    def body(self, *, notify_url: str) -> dict:
        return _drop_none({
            "transaction_id": self.transaction_id, "out_trade_no": self.out_trade_no if not self.transaction_id
            else None, "out_refund_no": self.out_refund_no, "reason": self.reason,
            "notify_url": self.notify_url or notify_url or None, "funds_account": self.funds_account,
            "amount": {"refund": to_fen("refund", self.refund), "total": to_fen("total", self.total),
                       "currency": "CNY"},
        })


@dataclass(frozen=True)
class Refund:
    """The Refund object of create and query, and the REFUND.* callback resource (§2.6;
    the callback says ``refund_status`` where the API says ``status``)."""

    out_refund_no: str
    status: RefundStatus
    refund_id: Optional[str] = None
    transaction_id: Optional[str] = None
    out_trade_no: Optional[str] = None
    refund: Optional[Decimal] = None
    total: Optional[Decimal] = None
    payer_refund: Optional[Decimal] = None
    success_time: Optional[datetime] = None
    create_time: Optional[datetime] = None
    channel: Optional[str] = None
    user_received_account: Optional[str] = None

    @classmethod
    def from_json(cls, data: dict) -> "Refund":
        amount = data.get("amount") or {}
        if not isinstance(amount, dict):
            raise ValueError("amount must be an object")
        status_field = "status" if "status" in data else "refund_status"
        return cls(out_refund_no=_text(data, "out_refund_no", True),
                   status=_enum(RefundStatus, data, status_field, True),
                   refund_id=_text(data, "refund_id"), transaction_id=_text(data, "transaction_id"),
                   out_trade_no=_text(data, "out_trade_no"),
                   refund=opt_fen("amount.refund", amount.get("refund")),
                   total=opt_fen("amount.total", amount.get("total")),
                   payer_refund=opt_fen("amount.payer_refund", amount.get("payer_refund")),
                   success_time=parse_time("success_time", data.get("success_time")),
                   create_time=parse_time("create_time", data.get("create_time")),
                   channel=_text(data, "channel"),
                   user_received_account=_text(data, "user_received_account"))


# ---------------------------------------------------------------- §2.7 insurance refund notify

@dataclass(kw_only=True)
class MedInsRefundNotifyRequest:
    mix_trade_no: str
    out_refund_no: str              # the cash refund's out_refund_no, or our own refund number (§2.7)
    med_refund_total_fee: Decimal
    med_refund_gov_fee: Decimal
    med_refund_self_fee: Decimal
    med_refund_other_fee: Decimal
    refund_time: datetime

    def validate(self) -> None:
        if not self.mix_trade_no or not self.out_refund_no:
            raise ValueError("mix_trade_no and out_refund_no are required")
        for n in ("med_refund_total_fee", "med_refund_gov_fee", "med_refund_self_fee", "med_refund_other_fee"):
            to_fen(n, getattr(self, n))

    def body(self) -> dict:
        return {"med_refund_total_fee": to_fen("med_refund_total_fee", self.med_refund_total_fee),
                "med_refund_gov_fee": to_fen("med_refund_gov_fee", self.med_refund_gov_fee),
                "med_refund_self_fee": to_fen("med_refund_self_fee", self.med_refund_self_fee),
                "med_refund_other_fee": to_fen("med_refund_other_fee", self.med_refund_other_fee),
                "refund_time": rfc3339(self.refund_time), "out_refund_no": self.out_refund_no}


# ---------------------------------------------------------------- §3 bills

class BillType(str, enum.Enum):
    ALL = "ALL"
    SUCCESS = "SUCCESS"
    REFUND = "REFUND"


@dataclass(frozen=True)
class BillTicket:
    """§3.1: where to download the day's bill, and the SHA1 of the (decompressed) file."""

    download_url: str
    hash_type: str
    hash_value: str

    @classmethod
    def from_json(cls, data: dict) -> "BillTicket":
        ticket = cls(download_url=_text(data, "download_url", True),
                     hash_type=_text(data, "hash_type", True), hash_value=_text(data, "hash_value", True))
        if ticket.hash_type.upper() != "SHA1":
            raise ValueError(f"unsupported bill hash_type {ticket.hash_type!r}")
        if not ticket.download_url.startswith(("https://", "http://")):
            raise ValueError("download_url is not an http(s) URL")
        return ticket


@dataclass(frozen=True)
class BillFile:
    """A downloaded bill on disk, checked against its ticket's hash."""

    path: str
    gzipped: bool
    sha1: str
    size: int
