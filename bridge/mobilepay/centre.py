"""What the mobile-pay flows ask the centre, and how they read its answers.

    query_order     6301: the order's state (ordStas), its amounts; how every lost
                    6202 / 6203 / 6401 is resolved (§7.3)
    revoke_order    6401: cancel an unpaid order
    refund_order    6203: refund (a refund request, or the 单边账 repair)
    not_ok          an unsafe call that did not succeed: not sent or busy -> Retry; a
                    verdict -> the caller's refusal; anything else -> InDoubt (query next)
    not_settled_yet inside the settle window "not booked" is no answer yet: wait
    contradicted    a verified 6302 notice that 6301 does not confirm: held for a person
    payment_row     the payment a refund, revoke or notice check names

Also the centre's amounts as flow_data text (split_of), its field formats (now14,
org_biz_ser), the patient and payToken each call needs (patient_of, pay_token,
payment_secrets, held_patient).
"""
from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal
from typing import Any, Optional

from bridge.calls import CallResult, Outcome
from bridge.engine.flow import Fail, Hold, InDoubt, Retry

from .kinds import PAYMENT_KINDS
from .messages import OrdStas, QueryOrderRequest, RefundRequest, RevokeOrderRequest, SetlType
from .payloads import PaymentRequest
from .settings import MobilePaySettings

NOTICE = "6302"
# The payment's payToken (6201) is kept in mi_secret, never in flow_data: §7.1 step 2
# "store payOrdId and payToken server-side only".  A done payment keeps it for its
# refunds (6301) and revokes; nothing else of the patient is stored by mibridge.
PAY_TOKEN = "payToken"
# A payAuthNo mibridge obtained itself (Alipay's auth query, channels.md §7.1): kept in
# mi_secret like the payToken, for 6201/6202 and, as the payment's authorisation, its refunds'
# 6203.  One the HIS gave stays in the payment's payload, which the HIS wrote.
PAY_AUTH = "payAuthNo"
# What must never stay in a final row's flow_data (rows written before mi_secret).
SECRET_KEYS = ("payToken", "pay_auth_no", "id_no", "user_name", "patient")
PATIENT = ("id_no", "user_name", "id_type")


def money_text(v: Optional[Decimal]) -> Optional[str]:
    return None if v is None else str(v)


def dec(v: Any) -> Optional[Decimal]:
    return None if v in (None, "") else Decimal(str(v))


def split_of(total, fund, acct, cash) -> dict:
    """The four amounts as text (flow_data is JSON)."""
    return {"total": money_text(total), "fund": money_text(fund), "account": money_text(acct), "cash": money_text(cash)}


def fen(v: Optional[str]) -> Optional[int]:
    return None if v is None else int(Decimal(v) * 100)


def now14() -> str:
    return time.strftime("%Y%m%d%H%M%S")


def org_biz_ser() -> str:
    # §5.2: unique per 6202 call and not the medOrgOrd; S6b uses BIZ<epoch-ms>.  The
    # random tail keeps two workers in one millisecond apart.
    return f"BIZ{int(time.time() * 1000)}{secrets.randbelow(10 ** 6):06d}"


def centre(ctx):
    return ctx.service("mobilepay")


def settings_of(ctx) -> MobilePaySettings:
    return ctx.service("mobilepay.settings")


def pay_token(ctx, order: dict) -> str:
    """This request's payToken: mi_secret (a refund or revoke holds its payment's copy),
    or flow_data written before mi_secret existed."""
    token = order.get(PAY_TOKEN) or ctx.secret(PAY_TOKEN)
    if not token:
        raise RuntimeError(f"no payToken on record for payOrdId {order.get('payOrdId')}")
    return token


def pay_auth_no(ctx) -> Optional[str]:
    """The payment's payAuthNo: the payload's, or the one mibridge asked Alipay for (mi_secret)."""
    return ctx.payload.pay_auth_no or ctx.secret(PAY_AUTH)


def query_order(ctx, order: dict, patient: dict) -> CallResult:
    """6301 for an order (§5.4); `patient` holds id_no, user_name, id_type."""
    client = centre(ctx)
    return ctx.call(client.send, client.prepare_query_order(QueryOrderRequest(
        payOrdId=order["payOrdId"], payToken=pay_token(ctx, order), idNo=patient["id_no"],
        userName=patient["user_name"], idType=patient["id_type"])))


def patient_of(payload: PaymentRequest) -> dict:
    return {"id_no": payload.id_no, "user_name": payload.user_name, "id_type": payload.id_type}


def payment_secrets(ctx, pay: dict, default_id_type: str) -> dict:
    """What a refund or revoke needs of its payment for 6301/6401 (§5.4, §5.5): the
    payToken and the patient.  Held in the refund's or revoke's own mi_secret from the
    moment it is needed until it is final, so it does not depend on the payment's row
    (a payment revoked under it fails and keeps nothing; a done one may be purged)."""
    doc = json.loads(pay["payload"])
    fd = pay["flow_data"]
    token = ctx.port.secrets(pay["id"]).get(PAY_TOKEN) or fd.get(PAY_TOKEN) or \
        (fd.get("settled") or {}).get(PAY_TOKEN)          # the last two: rows from before mi_secret
    out = {PAY_TOKEN: token, "id_no": doc.get("id_no"), "user_name": doc.get("user_name"),
           "id_type": doc.get("id_type") or default_id_type}
    auth = ctx.port.secrets(pay["id"]).get(PAY_AUTH)
    if auth:                                   # a payAuthNo mibridge asked Alipay for (§7.1)
        out[PAY_AUTH] = auth
    return out


def held_patient(ctx, data: dict) -> dict:
    """The patient a refund or revoke holds (mi_secret), or its flow_data from before."""
    if data.get("patient"):
        return data["patient"]
    return {k: ctx.secret(k) for k in PATIENT}


def order_status(result: CallResult) -> Optional[OrdStas]:
    return result.data.ordStas if result.outcome is Outcome.OK else None


def retry_later(r: CallResult) -> Retry:
    """Nothing happened (not sent, or refused as busy/rate-limited/signature:
    bridge/refusals.py): send again after the backoff."""
    code = "NOT_SENT" if r.outcome is Outcome.NOT_SENT else "CENTRE_BUSY"
    return Retry(code, f"{r.interface}: {r.message or 'centre unreachable'}")


def not_ok(r: CallResult, unknown_code: str, refused):
    """An unsafe call (6202, 6203, 6401) that did not succeed: not sent at all, or
    refused for a transient reason -> send again later; refused (a verdict) ->
    `refused()`; anything else -> in doubt, to be resolved by 6301 before anything is
    sent again (§7.3)."""
    if r.try_again:
        return retry_later(r)
    if r.refused:
        return refused()
    return InDoubt(unknown_code, r.message or f"{r.interface} outcome unknown")


def not_settled_yet(ctx, what: str) -> Optional[InDoubt]:
    """Inside the settle window "not booked" is not an answer yet: a wait until the window
    ends, which uses none of the row's attempts (the engine's settle_window_wait)."""
    return ctx.settle_window_wait(settings_of(ctx).settle_seconds, "NOT_SETTLED_YET",
                                  f"{what} not seen by the centre yet")


def refund_in_progress(ctx, what: str):
    """6301 says 17 (退款中) after a lost 6203: the centre has the refund and is still at it.
    Waiting, not failing (InDoubt waiting: no attempt used), for refund_progress_wait_seconds
    after the 6203 by the database clock; past that a person looks.  (The call's age unknown:
    an ordinary doubt, held when its attempts run out.)"""
    s = settings_of(ctx)
    age = ctx.doubt_age_seconds()
    if age is None:
        return InDoubt("REFUND_IN_PROGRESS", f"the centre is still refunding {what}")
    if age >= s.refund_progress_wait_seconds:
        return Hold("REFUND_STILL_IN_PROGRESS", f"6301 still says ordStas 17 (退款中) {age:.0f} s after {what}, "
                                                f"longer than refund_progress_wait_seconds "
                                                f"({s.refund_progress_wait_seconds:.0f} s): check the refund in the "
                                                f"centre; requeue once it shows it refunded (6301 is asked first), "
                                                f"never refund again by hand meanwhile")
    return InDoubt("REFUND_IN_PROGRESS", f"the centre is still refunding {what} (ordStas 17): asking again",
                   delay=min(s.refund_progress_poll_seconds, s.refund_progress_wait_seconds - age + 0.5),
                   waiting=True)


def notice_split(notice: Optional[dict]) -> Optional[dict]:
    if not notice:
        return None
    return {"total": notice.get("feeSumamt"), "fund": notice.get("fundPay"),
            "account": notice.get("psnAcctPay"), "cash": notice.get("ownPayAmt")}


def notice_text(notice: dict) -> str:
    """A recorded notice, for a person: what it says was paid, and when."""
    stale = f"; stale: {notice['stale']}" if notice.get("stale") else ""
    return (f"{notice.get('payOrdId')} was paid {notice.get('feeSumamt')} (fund {notice.get('fundPay')}, "
            f"account {notice.get('psnAcctPay')}, cash {notice.get('ownPayAmt')}; traceTime "
            f"{notice.get('traceTime')}{stale})")


def contradicted(notice: dict, stas: OrdStas, when: str = "") -> Hold:
    """A verified notice says paid; 6301 says the order is not (still processing
    past the settle window, revoked, failed).  Money may have moved on one side
    only: a person looks, with both answers (issue 10 #1)."""
    return Hold("NOTICE_CONTRADICTS_STATUS", f"the 6302 notice says {notice_text(notice)}, but 6301 says ordStas "
                                             f"{stas.value} ({stas.name}){' ' + when if when else ''}: check the "
                                             f"order in the centre before billing or refunding")


def revoke_order(ctx, order: dict, patient: dict) -> CallResult:
    client = centre(ctx)
    return ctx.call(client.send, client.prepare_revoke_order(RevokeOrderRequest(
        payOrdId=order["payOrdId"], payToken=pay_token(ctx, order), idNo=patient["id_no"],
        userName=patient["user_name"], idType=patient["id_type"])))


def refund_order(ctx, settled: dict, sn: str, at: str, kind: SetlType, fund: Decimal, acct: Decimal,
            cash: Decimal, pay_auth_no: str) -> CallResult:
    """6203 (§5.3).  The same appRefdSn and appRefdTime on every send (§7.3).
    The authorisation: §5.3 wants ecToken or payAuthNo; we send the payment's
    payAuthNo unless the HIS gave a fresh one (our choice, docs/platform-choices.md)."""
    client = centre(ctx)
    return ctx.call(client.send, client.prepare_refund(RefundRequest(
        payOrdId=settled["payOrdId"], appRefdSn=sn, appRefdTime=at, totlRefdAmt=fund + acct + cash,
        cashRefdAmt=cash, psnAcctRefdAmt=acct, fundRefdAmt=fund, refdType=kind, payAuthNo=pay_auth_no)))


def refund_state(paid: dict, refunded: dict) -> str:
    """ordStas after refunds (§6.1 codes 6-11), from what was paid and what the centre
    refunded: {"fund", "account", "cash"} each (Decimal for refunded, text for paid)."""
    hi_paid = Decimal(paid["fund"]) + Decimal(paid["account"])
    hi_ref = refunded["fund"] + refunded["account"]
    cash_paid, cash_ref = Decimal(paid["cash"]), refunded["cash"]
    hi_all, hi_none = hi_ref == hi_paid and hi_paid > 0, hi_ref == 0
    cash_all, cash_none = cash_ref == cash_paid and cash_paid > 0, cash_ref == 0
    if hi_none and cash_none:
        return "6"
    if (hi_all or hi_paid == 0) and (cash_all or cash_paid == 0):
        return "7"
    if hi_all and cash_none:
        return "8"
    if hi_all:
        return "11"
    if hi_none and cash_all:
        return "9"
    return "10"


def payment_row(ctx, key: str):
    """The payment a refund or revoke names.  Business keys are per kind in the
    outbox, but they are medOrgOrd at the centre: the same key as both an
    outpatient bill and a registration is refused rather than guessed."""
    rows = [r for r in (ctx.port.find_request((k,), key) for k in PAYMENT_KINDS) if r]
    if len(rows) > 1:
        # A payment refused at authorize because the other kind had the key (channel_payment.py
        # _key_clash) never reached the centre: it names nothing to refund or revoke.
        rows = [r for r in rows if r["state"] != "failed" or (r.get("flow_data") or {}).get("payOrdId")] or rows
    if len(rows) > 1:
        return Fail("AMBIGUOUS_PAYMENT", f"business key {key!r} names both an outpatient payment and a "
                                         f"registration; refund or revoke it by hand")
    return rows[0] if rows else None
