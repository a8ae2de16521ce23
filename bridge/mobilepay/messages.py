"""Typed business messages of the mobile-payment centre (spec digest mobilepay.md §5, §6).

Attribute names are the wire field names exactly as the digest gives them
(camelCase), so that no mapping table can drift from the spec.  Amounts are
Decimal yuan.  On the wire, requests carry amounts as JSON strings with two
decimals ("12.50"): §5 allows strings or numbers, and a string survives any
receiver that would parse a number as a double and so break the signature text.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

_CENT = Decimal("0.01")


# ---------------------------------------------------------------- dictionaries (§6)

class OrdStas(str, enum.Enum):
    """订单状态 (§6.1, source S18 cross-checked with S6's grouping)."""

    SAVED = "0"                                   # 已保存
    PRE_SETTLED = "1"                             # 预结算完成
    AWAITING_PAYMENT = "2"                        # 待支付 (one doc: 结算中)
    SELF_PAY_DONE = "3"                           # 自费完成
    INSURANCE_PAID = "4"                          # 医保支付完成
    HOSPITAL_SETTLED = "5"                        # 院内结算完成
    SETTLED = "6"                                 # 结算完成 (final success)
    REFUNDED = "7"                                # 已退款
    INSURANCE_FULLY_REFUNDED = "8"                # 已医保全部退款
    SELF_PAY_FULLY_REFUNDED_ONLY = "9"            # 仅自费全部退款
    SELF_PAY_PARTLY_REFUNDED_ONLY = "10"          # 仅自费部分退款
    INSURANCE_FULL_SELF_PAY_PARTLY_REFUNDED = "11"  # 医保全部退自费部分退款
    REVOKED = "12"                                # 已撤销
    INSURANCE_REVOKED = "13"                      # 医保已撤销
    EXCEPTION = "14"                              # 异常
    SETTLEMENT_FAILED = "15"                      # 结算失败
    INSURANCE_FAILED_REVERSAL_FAILED = "16"       # 医保结算失败自费冲正失败
    REFUND_IN_PROGRESS = "17"                     # 退款中 [U]: one source only

    @property
    def is_processing(self) -> bool:
        """Keep polling 6301 (§7.3); 17 counts as in progress (S6d treats 17+ so)."""
        return self in (OrdStas.SAVED, OrdStas.PRE_SETTLED, OrdStas.AWAITING_PAYMENT, OrdStas.REFUND_IN_PROGRESS)

    @property
    def is_settled(self) -> bool:
        """3-6: the settlement candidates; 6 is the final success."""
        return self in (OrdStas.SELF_PAY_DONE, OrdStas.INSURANCE_PAID, OrdStas.HOSPITAL_SETTLED, OrdStas.SETTLED)

    @property
    def is_refunded(self) -> bool:
        return self.value in ("7", "8", "9", "10", "11")

    @property
    def is_revoked(self) -> bool:
        return self in (OrdStas.REVOKED, OrdStas.INSURANCE_REVOKED)

    @property
    def is_failed(self) -> bool:
        return self in (OrdStas.EXCEPTION, OrdStas.SETTLEMENT_FAILED, OrdStas.INSURANCE_FAILED_REVERSAL_FAILED)


class SetlType(str, enum.Enum):
    """refdType (6203) and setlType (6301/6302): what the money movement covers."""

    ALL = "ALL"     # insurance and cash
    CASH = "CASH"   # cash only
    HI = "HI"       # insurance only



class RefStatus(str, enum.Enum):
    """6203 refStatus.  EXP: outcome unknown, query 6301 before anything else (§7.2)."""

    SUCC = "SUCC"
    FAIL = "FAIL"
    EXP = "EXP"


# ---------------------------------------------------------------- field kinds

def money(default: Any = dataclasses.MISSING) -> Any:
    """A yuan amount: Decimal in Python, two decimals on the wire."""
    return field(default=default, metadata={"kind": "money"})


def _format_money(name: str, value: Decimal) -> str:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal, not {value!r}")
    cents = value.quantize(_CENT)
    if cents != value:
        raise ValueError(f"{name}={value} has more than two decimals")
    return str(cents)


def parse_money(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{name} is not an exact decimal amount: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{name} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{name} is not an amount: {value!r}")
    return amount


def to_data(obj: Any) -> Any:
    """A request dataclass as the JSON-ready ``data`` object; None fields are left out."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                continue
            if f.metadata.get("kind") == "money":
                out[f.name] = _format_money(f.name, value)
            else:
                out[f.name] = to_data(value)
        return out
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, list):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):            # extData: free-form, same scalar rules
        return {k: to_data(v) for k, v in obj.items()}
    if isinstance(obj, Decimal):
        # Quantities and unit prices (cnt, pric) keep their own scale.
        return str(obj)
    return obj


def from_data(cls: type, data: dict) -> Any:
    """Build a response dataclass from the decrypted business object.

    Unknown fields are ignored (regions add their own); a missing required field,
    a non-decimal amount or an unknown enum value raises ValueError.
    """
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data or data[f.name] is None or data[f.name] == "":
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"missing {f.name}")
            continue
        value = data[f.name]
        kind = f.metadata.get("kind")
        if kind == "money":
            kwargs[f.name] = parse_money(f.name, value)
        elif kind == "enum":
            enum_cls = f.metadata["enum"]
            text = "true" if value is True else "false" if value is False else str(value)
            try:
                kwargs[f.name] = enum_cls(text)
            except ValueError:
                raise ValueError(f"unknown {f.name} {text!r}") from None
        elif kind == "text":
            if isinstance(value, (dict, list)):
                raise ValueError(f"{f.name} is not a scalar")
            kwargs[f.name] = str(value)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def enum_field(enum_cls: type, default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"kind": "enum", "enum": enum_cls})


def text_field(default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"kind": "text"})


def _sum(*amounts: Optional[Decimal]) -> Decimal:
    return sum((a for a in amounts if a is not None), Decimal("0"))


# ---------------------------------------------------------------- 6201 费用明细上传

@dataclass(kw_only=True)
class FeeDetail:
    """One feedetailList[] item (§5.1; S8 FeeDetailDTO, S6b)."""

    feedetlSn: str
    detItemFeeSumamt: Decimal = money()
    mdtrtId: Optional[str] = None
    psnNo: Optional[str] = None
    chrgBchno: Optional[str] = None
    diseCodg: Optional[str] = None
    rxno: Optional[str] = None
    rxCircFlag: Optional[str] = None
    feeOcurTime: Optional[str] = None
    medListCodg: Optional[str] = None
    medinsListCodg: Optional[str] = None
    cnt: Optional[Decimal] = None
    pric: Optional[Decimal] = None
    sinDosDscr: Optional[str] = None
    usedFrquDscr: Optional[str] = None
    prdDays: Optional[str] = None
    medcWayDscr: Optional[str] = None
    bilgDeptCodg: Optional[str] = None
    bilgDeptName: Optional[str] = None
    bilgDrCodg: Optional[str] = None
    bilgDrName: Optional[str] = None
    acordDeptCodg: Optional[str] = None
    acordDeptName: Optional[str] = None
    ordersDrCode: Optional[str] = None
    ordersDrName: Optional[str] = None
    hospApprFlag: Optional[str] = None
    tcmdrugUsedWay: Optional[str] = None
    etipFlag: Optional[str] = None
    etipHospCode: Optional[str] = None
    dscgTkdrugFlag: Optional[str] = None
    matnFeeFlag: Optional[str] = None
    initFeedetlSn: Optional[str] = None
    drordNo: Optional[str] = None
    medType: Optional[str] = None
    memo: Optional[str] = None
    expContent: Optional[str] = None
    medListName: Optional[str] = None
    medListSpc: Optional[str] = None


@dataclass(kw_only=True)
class DiseInfo:
    """One diseinfoList[] item (§5.1; S8 DiseInfoDTO, S6b)."""

    diagType: Optional[str] = None
    diagSrtNo: Optional[int] = None
    diagCode: Optional[str] = None
    diagName: Optional[str] = None
    diagDept: Optional[str] = None
    diseDorNo: Optional[str] = None
    diseDorName: Optional[str] = None
    diagTime: Optional[str] = None
    valiFlag: Optional[str] = None


@dataclass(kw_only=True)
class UploadFeeRequest:
    """6201 input (§5.1).  Required fields are those S6's validator requires;
    the fields §12.9 says regions disagree on (ecToken, mdtrtId, insuplcAdmdvs,
    uldLatlnt) are optional.  orgCodg/orgId default to the configuration."""

    psnNo: str
    insutype: str
    medOrgOrd: str
    begntime: str
    idNo: str
    userName: str
    idType: str
    insuCode: str
    iptOtpNo: str
    deptCode: str
    deptName: str
    caty: str
    medType: str
    feeType: str
    medfeeSumamt: Decimal = money()
    psnSetlway: str
    chrgBchno: str
    pubHospRfomFlag: str
    feedetailList: list[FeeDetail]
    orgCodg: Optional[str] = None
    orgId: Optional[str] = None
    ecToken: Optional[str] = None
    payAuthNo: Optional[str] = None
    initRxOrd: Optional[str] = None
    rxCircFlag: Optional[str] = None
    insuplcAdmdvs: Optional[str] = None
    atddrNo: Optional[str] = None
    drName: Optional[str] = None
    mdtrtId: Optional[str] = None
    acctUsedFlag: Optional[str] = None
    mainCondDscr: Optional[str] = None
    diseCodg: Optional[str] = None
    diseName: Optional[str] = None
    invono: Optional[str] = None
    endtime: Optional[str] = None
    fulamtOwnpayAmt: Optional[Decimal] = money(None)
    overlmtSelfpay: Optional[Decimal] = money(None)
    preselfpayAmt: Optional[Decimal] = money(None)
    inscpScpAmt: Optional[Decimal] = money(None)
    oprnOprtCode: Optional[str] = None
    oprnOprtName: Optional[str] = None
    fpscNo: Optional[str] = None
    latechbFlag: Optional[str] = None
    gesoVal: Optional[str] = None
    fetts: Optional[str] = None
    fetusCnt: Optional[str] = None
    pretFlag: Optional[str] = None
    birctrlType: Optional[str] = None
    birctrlMatnDate: Optional[str] = None
    copFlag: Optional[str] = None
    matnType: Optional[str] = None
    dscgDeptCodg: Optional[str] = None
    dscgDeptName: Optional[str] = None
    dscgDed: Optional[str] = None          # sic, as the source spells it
    dscgWay: Optional[str] = None
    dieDate: Optional[str] = None
    midSetlFlag: Optional[str] = None
    admDiagDscr: Optional[str] = None
    admDeptCodg: Optional[str] = None
    admDeptName: Optional[str] = None
    admBed: Optional[str] = None
    uldLatlnt: Optional[str] = None
    mdtrtCertType: Optional[str] = None
    expContent: Optional[str] = None
    extData: Optional[dict] = None
    diseinfoList: Optional[list[DiseInfo]] = None
    # Channel extras seen in one Alipay-side front end [U: S16].
    medicalCardInstId: Optional[str] = None
    medicalCardId: Optional[str] = None
    backUrl: Optional[str] = None
    spbillCreateIp: Optional[str] = None
    obid: Optional[str] = None

    def validate(self) -> None:
        """The money and authorisation rules of §5.1 (S6 validator)."""
        if not self.feedetailList:
            raise ValueError("6201 feedetailList must not be empty")
        if not (self.ecToken or self.payAuthNo):
            raise ValueError("6201 needs ecToken or payAuthNo")
        details = _sum(*(d.detItemFeeSumamt for d in self.feedetailList))
        if details != self.medfeeSumamt:
            raise ValueError(f"6201 details sum to {details}, medfeeSumamt is {self.medfeeSumamt}")
        parts = (self.fulamtOwnpayAmt, self.preselfpayAmt, self.inscpScpAmt)
        if all(p is not None for p in parts) and _sum(*parts) != self.medfeeSumamt:
            raise ValueError("6201 fulamtOwnpayAmt + preselfpayAmt + inscpScpAmt != medfeeSumamt")


@dataclass(kw_only=True)
class UploadFeeResponse:
    payOrdId: str = text_field()
    payToken: str = text_field()
    mdtrtId: Optional[str] = text_field(None)   # some regions return it, most do not [U]
    extData: Any = None


# ---------------------------------------------------------------- 6202 支付下单

@dataclass(kw_only=True)
class PayOrderRequest:
    """6202 input (§5.2).  orgBizSer is unique per call and must not reuse medOrgOrd."""

    payAuthNo: str
    payOrdId: str
    payToken: str
    orgBizSer: str
    mdtrtId: str
    chrgBchno: str
    feeType: str
    acctUsedFlag: Optional[str] = None
    orgCodg: Optional[str] = None
    extData: Optional[dict] = None


def amounts_add_up(total: Optional[Decimal], own: Optional[Decimal],
                        acct: Optional[Decimal], fund: Optional[Decimal]) -> bool:
    """ownPayAmt + psnAcctPay + fundPay == feeSumamt (§5.2 invariant, S6); a missing part counts 0."""
    return total is None or _sum(own, acct, fund) == total


@dataclass(kw_only=True)
class PayOrderResponse:
    """6202 output.  Not proof of payment: confirm with 6302 or 6301 (§5.2)."""

    payOrdId: str = text_field()
    ordStas: OrdStas = enum_field(OrdStas)
    feeSumamt: Optional[Decimal] = money(None)
    ownPayAmt: Optional[Decimal] = money(None)
    psnAcctPay: Optional[Decimal] = money(None)
    fundPay: Optional[Decimal] = money(None)
    deposit: Optional[Decimal] = money(None)
    acctMulaidPay: Optional[Decimal] = money(None)
    hospPartAmt: Optional[Decimal] = money(None)
    othFeeAmt: Optional[Decimal] = money(None)
    selfAcctPay: Optional[Decimal] = money(None)
    extData: Any = None      # extData.preSetl: FSI-style snake_case pre-settlement, kept as received

    def amounts_consistent(self) -> bool:
        return amounts_add_up(self.feeSumamt, self.ownPayAmt, self.psnAcctPay, self.fundPay)


# ---------------------------------------------------------------- 6203 医保退费

@dataclass(kw_only=True)
class RefundRequest:
    """6203 input (§5.3).  Keep appRefdSn and appRefdTime when retrying (§7.3)."""

    payOrdId: str
    appRefdSn: str
    appRefdTime: str                      # yyyyMMddHHmmss
    totlRefdAmt: Decimal = money()
    cashRefdAmt: Decimal = money()
    refdType: SetlType
    psnAcctRefdAmt: Optional[Decimal] = money(None)
    fundRefdAmt: Optional[Decimal] = money(None)
    ecToken: Optional[str] = None
    payAuthNo: Optional[str] = None
    extData: Optional[dict] = None

    def validate(self) -> None:
        """The client-side constraints of §5.3 (S6) that need no original order."""
        if bool(self.ecToken) == bool(self.payAuthNo):
            raise ValueError("6203 needs exactly one of ecToken and payAuthNo")
        if len(self.appRefdTime) != 14 or not self.appRefdTime.isdigit():
            raise ValueError("6203 appRefdTime must be yyyyMMddHHmmss")
        amounts = (self.totlRefdAmt, self.cashRefdAmt, self.psnAcctRefdAmt, self.fundRefdAmt)
        if any(a is not None and a < 0 for a in amounts):
            raise ValueError("6203 refund amounts must not be negative")
        if _sum(self.cashRefdAmt, self.psnAcctRefdAmt, self.fundRefdAmt) != self.totlRefdAmt:
            raise ValueError("6203 cashRefdAmt + psnAcctRefdAmt + fundRefdAmt != totlRefdAmt")
        if self.totlRefdAmt <= 0:
            raise ValueError("6203 totlRefdAmt must be positive")
        if self.refdType is SetlType.CASH and _sum(self.psnAcctRefdAmt, self.fundRefdAmt) != 0:
            raise ValueError("6203 refdType CASH refunds cash only")
        if self.refdType is SetlType.HI and self.cashRefdAmt != 0:
            raise ValueError("6203 refdType HI refunds no cash")


@dataclass(kw_only=True)
class RefundResponse:
    refStatus: RefStatus = enum_field(RefStatus)
    refdSn: Optional[str] = text_field(None)
    # §12.7: the C# DTO spells it hiFefdSn; the client accepts both (see client).
    hiRefdSn: Optional[str] = text_field(None)
    hiTrnsDate: Optional[str] = text_field(None)
    hiTrnsTime: Optional[str] = text_field(None)
    extData: Any = None


# ---------------------------------------------------------------- 6301 / 6401

@dataclass(kw_only=True)
class QueryOrderRequest:
    """6301 input (§5.4)."""

    payOrdId: str
    payToken: str
    idNo: str
    userName: str
    idType: str
    orgCodg: Optional[str] = None
    extData: Optional[dict] = None


@dataclass(kw_only=True)
class QueryOrderResponse:
    """6301 output: amounts and tokens only once ordStas is 3-6 (§5.4)."""

    payOrdId: str = text_field()
    ordStas: OrdStas = enum_field(OrdStas)
    feeSumamt: Optional[Decimal] = money(None)
    ownPayAmt: Optional[Decimal] = money(None)
    psnAcctPay: Optional[Decimal] = money(None)
    fundPay: Optional[Decimal] = money(None)
    setlType: Optional[SetlType] = enum_field(SetlType, None)
    callType: Optional[str] = text_field(None)
    medOrgOrd: Optional[str] = text_field(None)
    traceTime: Optional[str] = text_field(None)
    revsToken: Optional[str] = text_field(None)
    extData: Any = None

    def amounts_consistent(self) -> bool:
        return amounts_add_up(self.feeSumamt, self.ownPayAmt, self.psnAcctPay, self.fundPay)


@dataclass(kw_only=True)
class RevokeOrderRequest:
    """6401 input (§5.5): cancel an upload that has not been paid."""

    payOrdId: str
    payToken: str
    idNo: str
    userName: str
    idType: str
    orgCodg: Optional[str] = None
    extData: Optional[dict] = None


@dataclass(kw_only=True)
class RevokeOrderResponse:
    """6401 output: ``success`` plus ``message`` (§5.5, S6)."""

    success: bool
    message: Optional[str] = None
