"""What a channel says about a payment, leg by leg, and how that is judged against the centre.

The channel's query (WeChat: GET /v3/med-ins/orders/…, channels.md §2.3; Alipay:
alipay.commerce.medical.payment.query, §7.4, or the §7.3 variant's query) is read into a
ChannelStatus: the state of the cash leg (what the patient pays in the channel) and of the
insurance leg (what the centre settles), each one of

    none      the order has no such leg (no cash part)
    pending   not paid yet (created, the patient is entering the password)
    paid      paid
    failed    will not be paid (failed, closed, reversed)
    refunded  paid and given back
    unknown   a status this module does not know: never read as paid or failed

§2.4: "do not judge only on mix_pay_status": the cash part may succeed while the insurance
part fails (MIX_PAY_FAIL with SELF_PAY_SUCCESS), so each leg is read from its own status.

judge(centre, status) is the decision table of the payment flow's await_payment step; the
centre is the 6301 answer (settled / processing / ended).  Only queries are judged (a
callback only wakes the payment, docs/engine.md):

    centre      channel                                  verdict
    settled     insurance paid, cash paid (or none)      SETTLE
    settled     a leg pending or unknown                 LAG: wait, after the settle window DISAGREE
    settled     anything else                            DISAGREE (held with both answers)
    processing  nothing paid, something pending          PENDING (keep polling, deadline as before)
    processing  cash paid, insurance failed              CASH_ONLY (after the window: refund the cash)
    processing  nothing paid, both failed or closed      FAILED (after the window: revoke, end failed)
    processing  insurance paid, or unknown               LAG: wait, after the window DISAGREE
    ended       cash paid, insurance failed              CASH_ONLY (after the window: refund the cash; the
                                                         centre's order is over, so no 6401)
    ended       any other leg paid                       DISAGREE
    ended       nothing paid                             ENDED (the centre's answer decides, as before)

"ended, cash paid, insurance failed": the HIS revoked (6401) or the deadline did, and the
patient paid the cash just before the WeChat cash order was closed (the close was refused,
bridge/mobilepay/revoke.py); the insurance part could not be paid any more.  The cash is
the hospital's to give back, as in CASH_ONLY while the centre still processes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from bridge.wechatpay.messages import MedInsOrder, MedInsPayStatus, MixPayStatus, SelfPayStatus

NONE, PENDING, PAID, FAILED, REFUNDED, UNKNOWN = "none", "pending", "paid", "failed", "refunded", "unknown"


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    cash: str
    insurance: str
    text: str                                   # the channel's own words, for a person
    ids: dict = field(default_factory=dict)     # mix_trade_no / trade_no / chnl_ord_sn ...
    amounts: dict = field(default_factory=dict)  # what the channel says was ordered: total/fund/account/cash
    paid_time: Optional[str] = None

    @property
    def anything_paid(self) -> bool:
        return PAID in (self.cash, self.insurance) or REFUNDED in (self.cash, self.insurance)


# ---------------------------------------------------------------- WeChat (§2.3, §2.4)

_SELF = {SelfPayStatus.CREATED: PENDING, SelfPayStatus.SUCCESS: PAID, SelfPayStatus.REFUND: REFUNDED,
         SelfPayStatus.FAIL: FAILED, SelfPayStatus.NONE: NONE}
_MED = {MedInsPayStatus.CREATED: PENDING, MedInsPayStatus.SUCCESS: PAID, MedInsPayStatus.REFUND: REFUNDED,
        MedInsPayStatus.FAIL: FAILED, MedInsPayStatus.NONE: NONE}


def _y(v: Optional[Decimal]) -> Optional[str]:
    return None if v is None else str(Decimal(v).quantize(Decimal("0.01")))


def wechat_status(o: MedInsOrder) -> ChannelStatus:
    cash = _SELF.get(o.self_pay_status, UNKNOWN) if o.self_pay_status else UNKNOWN
    ins = _MED.get(o.med_ins_pay_status, UNKNOWN) if o.med_ins_pay_status else UNKNOWN
    if o.mix_pay_status in (MixPayStatus.FAIL, MixPayStatus.REVERSED):
        # Final: a leg still "created" will never be paid.  A paid leg stays paid (§2.4).
        cash = FAILED if cash == PENDING else cash
        ins = FAILED if ins == PENDING else ins
    elif o.mix_pay_status in (MixPayStatus.CREATED, MixPayStatus.USER_PAYING):
        # Not paid as a whole yet; a leg that says success before the order does is news
        # to a person, not a payment (kept as said).
        pass
    text = (f"WeChat mixed order {o.mix_trade_no}: {o.mix_pay_status.value}, "
            f"{o.self_pay_status.value if o.self_pay_status else '-'}, "
            f"{o.med_ins_pay_status.value if o.med_ins_pay_status else '-'}"
            + (f" ({o.med_ins_fail_reason})" if o.med_ins_fail_reason else ""))
    amounts = {"total": _y(o.total_fee), "fund": _y(o.med_ins_gov_fee), "account": _y(o.med_ins_self_fee),
               "cash": _y(o.wechat_pay_cash_fee if o.wechat_pay_cash_fee is not None else Decimal(0))}
    return ChannelStatus("wechat", cash, ins, text, ids={"mix_trade_no": o.mix_trade_no},
                         amounts={k: v for k, v in amounts.items() if v is not None},
                         paid_time=o.paid_time.isoformat() if o.paid_time else None)


# ---------------------------------------------------------------- Alipay (§7.4, §7.3)

# §10.4 item 10: the enums of medical_pay_status / own_pay_status are not public.  Known
# words are read; anything else is UNKNOWN and never settles or fails a payment.
_ALIPAY_WORDS = {
    PENDING: ("WAIT_PAY", "WAIT_BUYER_PAY", "INIT", "PAYING", "WAIT", "CREATED", "PROCESSING"),
    PAID: ("PAY_SUCCESS", "SUCCESS", "TRADE_SUCCESS", "TRADE_FINISHED", "PAID"),
    FAILED: ("PAY_FAIL", "FAIL", "FAILED", "CLOSED", "TRADE_CLOSED", "CANCEL", "CANCELLED"),
    REFUNDED: ("REFUND_SUCCESS", "REFUND", "REFUNDED"),
}


def _word(status: Optional[str]) -> str:
    s = (status or "").upper()
    for state, words in _ALIPAY_WORDS.items():
        if s in words:
            return state
    return UNKNOWN


def alipay_status(p, has_insurance: bool) -> ChannelStatus:
    """``p``: bridge.alipay.messages.MedicalPayment (or the trade variant's query read into
    it).  A cash trade closed after a refund is REFUNDED, not FAILED (TRADE_CLOSED means
    both, §7.6)."""
    real = p.real_amount if p.real_amount is not None else None
    cash = NONE if real is not None and real == 0 else _word(p.own_pay_status)
    if cash == FAILED and p.real_refund_amount and p.real_refund_amount > 0:
        cash = REFUNDED
    if cash == UNKNOWN and not p.own_pay_status and real is not None and real > 0:
        cash = PENDING if _word(p.medical_pay_status) == PENDING else UNKNOWN
    ins = _word(p.medical_pay_status) if has_insurance else NONE
    if ins == REFUNDED and cash == PAID and not (p.medical_refund_amount and p.medical_refund_amount > 0):
        ins = UNKNOWN
    text = (f"Alipay medical order {p.chnl_ord_sn or p.out_trade_no}: medical_pay_status {p.medical_pay_status}, "
            f"own_pay_status {p.own_pay_status or '-'}" + (f" ({p.error_reason})" if p.error_reason else ""))
    amounts = {"total": _y(p.total_amount), "fund": _y(p.gov_amount), "account": _y(p.account_amount),
               "cash": _y(p.real_amount)}
    return ChannelStatus("alipay", cash, ins, text,
                         ids={k: v for k, v in (("chnl_ord_sn", p.chnl_ord_sn), ("trade_no", p.trade_no)) if v},
                         amounts={k: v for k, v in amounts.items() if v is not None}, paid_time=p.gmt_paid)


# ---------------------------------------------------------------- judged against the centre

class Verdict(str, enum.Enum):
    SETTLE = "settle"
    PENDING = "pending"
    LAG = "lag"              # the two sides differ in a way time may mend: wait the settle window
    DISAGREE = "disagree"    # held with both answers
    CASH_ONLY = "cash_only"  # cash taken, insurance failed (§2.4): refund the cash
    FAILED = "failed"        # the channel says nothing was or will be paid
    ENDED = "ended"          # the centre ended the order and the channel took nothing

    @property
    def needs_window(self) -> bool:
        """Decided only once the state has lasted the settle window (the other side may lag)."""
        return self in (Verdict.LAG, Verdict.CASH_ONLY, Verdict.FAILED)


def judge(centre: str, s: ChannelStatus, cash_due: bool) -> Verdict:
    """``centre``: "settled" (6301 3-6), "processing" (0-2) or "ended" (anything else);
    ``cash_due``: the 6202 split has a cash part."""
    cash_ok = s.cash == PAID if cash_due else s.cash in (NONE, PAID)
    if centre == "settled":
        if s.insurance == PAID and cash_ok:
            return Verdict.SETTLE
        if PENDING in (s.cash, s.insurance) or UNKNOWN in (s.cash, s.insurance):
            return Verdict.LAG
        return Verdict.DISAGREE
    if centre == "processing":
        if s.insurance in (PAID, REFUNDED) or s.cash == REFUNDED:
            return Verdict.LAG
        if s.cash == PAID:
            return Verdict.CASH_ONLY if s.insurance == FAILED else Verdict.LAG
        if UNKNOWN in (s.cash, s.insurance):
            return Verdict.LAG
        if PENDING in (s.cash, s.insurance):
            return Verdict.PENDING
        return Verdict.FAILED
    if s.cash == PAID and s.insurance == FAILED:
        return Verdict.CASH_ONLY
    return Verdict.DISAGREE if s.anything_paid else Verdict.ENDED
