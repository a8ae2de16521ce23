"""What the HIS writes in mi_outbox.payload for each mobile-pay kind, parsed and checked
before anything is sent (docs/mobilepay.md "Payloads").  Bad input raises BadInput:
the row fails with the reason, nothing is sent."""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from bridge.channels.payer import ALIPAY, WECHAT, ChannelPayer, parse_payer
from bridge.engine.flow import BadInput, check_line_amount, require_amount, require_text

from .messages import SetlType

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class FeeLine:
    line_no: str
    item_code: str          # hospital catalogue code (medinsListCodg)
    item_name: str
    national_code: str      # national catalogue code (medListCodg)
    quantity: Decimal
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class PaymentRequest:
    patient_id: str
    visit_id: str
    # None only for a channel payment whose payAuthNo mibridge asks the channel for (Alipay
    # §7.1, WeChat's auth_code §5): read it with centre.pay_auth_no(ctx), which also knows
    # the exchanged one.
    pay_auth_no: Optional[str]
    id_no: str
    user_name: str
    id_type: str
    dept_code: str
    dept_name: str
    caty: str
    total_amount: Decimal
    lines: tuple[FeeLine, ...]
    med_type: str
    use_personal_account: Optional[bool]
    psn_no: Optional[str]
    insutype: Optional[str]
    insuplc_admdvs: Optional[str]
    charge_batch: Optional[str]
    visit_time: Optional[str]
    doctor_code: Optional[str]
    doctor_name: Optional[str]
    diagnosis_code: Optional[str]
    diagnosis_name: Optional[str]
    # The channel the patient pays in (bridge/channels/payer.py); None: the mini-program's
    # back end deals with the channel itself, as before.
    channel: Optional[ChannelPayer] = None
    # WeChat only, instead of pay_auth_no: the code the 医保 authorisation mini-program gave
    # back, which mibridge exchanges for the payAuthNo ([wechatpay] auth_query_url, §5).
    auth_code: Optional[str] = None


def optional_text(doc: dict, name: str, max_len: int = 64) -> Optional[str]:
    if doc.get(name) in (None, ""):
        return None
    return require_text(doc, name, max_len)


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise BadInput(f"{what} is required (a number like \"2\" or \"12.50\")")
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise BadInput(f"{what} is not a number: {value!r}") from None
    if not d.is_finite():
        raise BadInput(f"{what} is not a number: {value!r}")
    return d


def parse_lines(doc: dict, total: Decimal) -> tuple[FeeLine, ...]:
    raw = doc.get("lines")
    if not isinstance(raw, list) or not raw:
        raise BadInput("payload field 'lines' is required: a non-empty list of fee lines")
    seen: set[str] = set()
    lines = []
    for i, item in enumerate(raw, 1):
        where = f"lines[{i}]"
        if not isinstance(item, dict):
            raise BadInput(f"{where} must be an object")
        no = item.get("line_no")
        if isinstance(no, bool) or no in (None, "") or isinstance(no, (dict, list, float)):
            raise BadInput(f"{where}.line_no is required (an integer or a code)")
        no = str(no)
        if no in seen:
            raise BadInput(f"duplicate line_no {no!r}: each fee line needs its own number")
        seen.add(no)
        try:
            amount = require_amount(item, "amount")
            code = require_text(item, "item_code", 50)
            name = require_text(item, "item_name", 200)
        except BadInput as exc:
            raise BadInput(f"{where}: {exc}") from None
        qty = _decimal(item.get("quantity"), f"{where}.quantity")
        price = _decimal(item.get("price"), f"{where}.price")
        if qty <= 0:
            raise BadInput(f"{where}.quantity must be positive, got {qty}")
        if price < 0:
            raise BadInput(f"{where}.price must not be negative, got {price}")
        check_line_amount(qty, price, amount, where, ("quantity", "price", "amount"))
        national = item.get("national_code") or code
        if not isinstance(national, str) or len(national) > 50:
            raise BadInput(f"{where}.national_code must be text of at most 50 characters")
        lines.append(FeeLine(no, code, name, national, qty, price, amount))
    lines_sum = sum((ln.amount for ln in lines), ZERO)
    if lines_sum != total:
        raise BadInput(f"the lines sum to {lines_sum} but total_amount is {total}")
    return tuple(lines)


def _is_datetime(text: str) -> bool:
    try:
        time.strptime(text, "%Y-%m-%d %H:%M:%S")
        return True
    except ValueError:
        return False


def parse_payment(doc: dict, med_type: str, default_id_type: str) -> PaymentRequest:
    total = require_amount(doc, "total_amount")
    if total <= 0:
        raise BadInput("total_amount must be positive")
    use_acct = doc.get("use_personal_account")
    if use_acct is not None and not isinstance(use_acct, bool):
        raise BadInput("use_personal_account must be true or false")
    payer = parse_payer(doc)
    code = optional_text(doc, "auth_code", 128)
    if code is not None and (payer is None or payer.channel != WECHAT):
        raise BadInput("payload field 'auth_code' is for \"channel\": \"wechat\" (the WeChat 医保 authorisation's "
                       "code); Alipay's payAuthNo is asked for with the buyer's id")
    if code is not None and doc.get("pay_auth_no") not in (None, ""):
        raise BadInput("give pay_auth_no or auth_code, not both")
    exchanged = {ALIPAY: "mibridge asks Alipay for it", WECHAT: "mibridge exchanges auth_code for it"}
    if payer is not None and doc.get("pay_auth_no") in (None, "") and (payer.channel == ALIPAY or code):
        # mibridge asks the channel for the payAuthNo (Alipay §7.1, WeChat §5).  The 1101
        # lookup of the identity (no psn_no given) is keyed by the payAuthNo the HIS gives,
        # so with an exchanged one the identity must come with the payload.
        if not (doc.get("psn_no") and doc.get("insutype") and doc.get("insuplc_admdvs")):
            raise BadInput(f"a {payer.channel} payment without pay_auth_no ({exchanged[payer.channel]}) must give "
                           f"psn_no, insutype and insuplc_admdvs")
        auth = None
    else:
        auth = require_text(doc, "pay_auth_no", 128)
    req = PaymentRequest(
        patient_id=require_text(doc, "patient_id"), visit_id=require_text(doc, "visit_id"),
        pay_auth_no=auth,
        id_no=require_text(doc, "id_no", 32), user_name=require_text(doc, "user_name", 64),
        id_type=optional_text(doc, "id_type", 6) or default_id_type,
        dept_code=require_text(doc, "dept_code", 30), dept_name=require_text(doc, "dept_name", 100),
        caty=require_text(doc, "caty", 30), total_amount=total, lines=parse_lines(doc, total),
        med_type=optional_text(doc, "med_type", 6) or med_type, use_personal_account=use_acct,
        psn_no=optional_text(doc, "psn_no", 30), insutype=optional_text(doc, "insutype", 6),
        insuplc_admdvs=optional_text(doc, "insuplc_admdvs", 6),
        charge_batch=optional_text(doc, "charge_batch", 30),
        visit_time=optional_text(doc, "visit_time", 19),
        doctor_code=optional_text(doc, "doctor_code", 30), doctor_name=optional_text(doc, "doctor_name", 50),
        diagnosis_code=optional_text(doc, "diagnosis_code", 30),
        diagnosis_name=optional_text(doc, "diagnosis_name", 100), channel=payer, auth_code=code)
    if req.visit_time and not _is_datetime(req.visit_time):
        raise BadInput("visit_time must be 'YYYY-MM-DD HH:MM:SS' (§5.1 begntime)")
    if req.psn_no and not (req.insutype and req.insuplc_admdvs):
        raise BadInput("with psn_no, also give insutype and insuplc_admdvs (or leave all three out "
                       "and mibridge looks them up with 1101)")
    return req


@dataclass(frozen=True)
class RefundPayload:
    payment_key: str
    amount: Optional[Decimal]
    refund_type: Optional[SetlType]
    reason: Optional[str]
    pay_auth_no: Optional[str]


def parse_refund(doc: dict) -> RefundPayload:
    amount = require_amount(doc, "amount") if doc.get("amount") not in (None, "") else None
    if amount is not None and amount <= 0:
        raise BadInput("amount must be positive (leave it out to refund everything still refundable)")
    rtype = doc.get("refund_type")
    if rtype not in (None, "", "ALL", "CASH", "HI"):
        raise BadInput("refund_type must be ALL, CASH or HI (or left out)")
    return RefundPayload(payment_key=require_text(doc, "payment_key"), amount=amount,
                         refund_type=SetlType(rtype) if rtype else None,
                         reason=optional_text(doc, "reason", 200),
                         pay_auth_no=optional_text(doc, "pay_auth_no", 128))


def parse_revoke(doc: dict) -> dict:
    return {"payment_key": require_text(doc, "payment_key")}
