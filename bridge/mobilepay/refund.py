"""mobilepay.refund: a full or partial refund of a settled payment (6203, §5.3).

    check    find the payment (payment_row), what is left to refund (inbox_sums of the
             earlier refunds), the split (refund_split) -> refund; Wait while the
             payment is open; Fail on bad amounts; Hold after a refund closed by hand
    refund   6203 (centre.refund_order).  Its lost answer: resolve_refund asks 6301
             (centre.query_order): ordStas shows the refund (done), or not yet (inside
             the settle window: wait; after it: send 6203 now, a first send), or
             cannot show it (held: REFUND_UNKNOWN)
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Optional

from bridge.calls import Outcome
from bridge.engine.flow import BadInput, Fail, Finish, Flow, Goto, Hold, InboxRow, InDoubt, Step, Wait

from .centre import (SECRET_KEYS, held_patient, not_ok, not_settled_yet, now14, order_status,
                     payment_row, payment_secrets, query_order, refund_order)
from .kinds import KIND_REFUND
from .messages import OrdStas, SetlType
from .payloads import ZERO, RefundPayload, parse_refund
from .settings import MobilePaySettings


class RefundFlow(Flow):
    """A full or partial refund of a settled payment; its business key is the
    HIS's refund serial (sent as appRefdSn)."""

    kind = KIND_REFUND
    initial = "check"
    secret_keys = SECRET_KEYS
    steps = {
        "check": Step("check", next=("refund",)),      # may Wait on itself while the payment is open
        "refund": Step("refund", calls=("6203",), safe_to_repeat=False, resolves_with=("6301",),
                       next=("refund",)),
    }

    def __init__(self, settings: MobilePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> RefundPayload:
        return parse_refund(doc)

    def step_check(self, ctx):
        p: RefundPayload = ctx.payload
        if len(ctx.row.business_key) > 30:
            return Fail("BAD_INPUT", "the refund serial (business key) is sent as appRefdSn: at most 30 characters")
        if ctx.row.serial_key != p.payment_key:
            return Fail("BAD_INPUT", f"enqueue refunds with serial_key = the payment's business key "
                                     f"({p.payment_key!r}), so that they wait for the payment and run one "
                                     f"at a time; got {ctx.row.serial_key!r}")
        pay = payment_row(ctx, p.payment_key)
        if isinstance(pay, Fail):
            return pay
        if pay is None:
            return Fail("NO_SUCH_PAYMENT", f"no mobile-pay payment with business key {p.payment_key!r}")
        if pay["state"] in ("pending", "running", "in_doubt", "held"):
            # Normally the serial key holds a refund back; this covers a payment
            # enqueued under another serial key (a visit number, say).
            return Wait("check", 5.0)
        if pay["state"] != "done" or "settled" not in pay["flow_data"]:
            return Fail("NOT_PAID", f"payment {p.payment_key} is {pay['state']} (step {pay['step']}): "
                                    f"nothing was paid that could be refunded")
        settled = pay["flow_data"]["settled"]
        unreconciled = ctx.port.count_requests(KIND_REFUND, p.payment_key, ("resolved", "held"),
                                                exclude_id=ctx.row.id)
        if unreconciled:
            # A refund closed by hand has no amounts on record: what is left is unknown.
            return Hold("PRIOR_REFUND_UNRECONCILED", f"{unreconciled} earlier refund(s) of {p.payment_key} were "
                                                     f"held or resolved by hand, so what is left to refund is not "
                                                     f"known here: refund by hand, then resolve this row")
        before = ctx.port.inbox_sums("refund", settled["payOrdId"])
        left = {k: Decimal(settled[k]) - before[k] for k in ("fund", "account", "cash")}
        try:
            kind, fund, acct, cash = _refund_split(p, left)
        except BadInput as exc:
            return Fail(exc.code, str(exc))
        # The payment's payToken and patient go to this refund's mi_secret (never to
        # flow_data); its payAuthNo is read from the payment's payload when 6203 goes out.
        return Goto("refund", data={
            "settled": {k: v for k, v in settled.items() if k not in SECRET_KEYS},
            "type": kind.value, "fund": str(fund), "account": str(acct),
            "cash": str(cash), "appRefdTime": now14(),
            "state_before": _refund_state(settled, before),
            "state_after": _refund_state(settled, {"fund": before["fund"] + fund,
                                                   "account": before["account"] + acct,
                                                   "cash": before["cash"] + cash})},
                    secrets=payment_secrets(ctx, pay, self.settings.default_id_type))

    def _auth(self, ctx) -> Optional[str]:
        """6203's authorisation (§5.3): a fresh payAuthNo from this refund's payload, else
        the payment's (docs/platform-choices.md), read from the payment's payload now."""
        d = ctx.data
        if ctx.payload.pay_auth_no or d.get("pay_auth_no"):
            return ctx.payload.pay_auth_no or d["pay_auth_no"]
        pay = payment_row(ctx, ctx.payload.payment_key)
        return json.loads(pay["payload"]).get("pay_auth_no") if isinstance(pay, dict) else None

    def _order(self, ctx) -> dict:
        return ctx.data["settled"]

    def _patient(self, ctx) -> dict:
        return held_patient(ctx, ctx.data)

    def step_refund(self, ctx):
        d = ctx.data
        r = refund_order(ctx, d["settled"], ctx.row.business_key, d["appRefdTime"], SetlType(d["type"]),
                    Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["cash"]), self._auth(ctx))
        if r.outcome is Outcome.OK:
            return self._done(ctx, r.data.refdSn, r.data.hiRefdSn)
        return not_ok(r, "REFUND_UNKNOWN", lambda: Fail("REFUND_REJECTED", f"6203 refused: {r.code} {r.message}"))

    def resolve_refund(self, ctx):
        """§7.2: after EXP or a lost answer, 6301 first.  Its ordStas (7-11) shows
        refund progress; when this refund would not change it, 6301 cannot tell and
        a person checks (never a resend on a guess)."""
        d = ctx.data
        r = query_order(ctx, self._order(ctx), self._patient(ctx))
        stas = order_status(r)
        if stas is None:
            return InDoubt("QUERY_FAILED", f"6301 after a lost 6203 failed: {r.message}")
        if stas is OrdStas.REFUND_IN_PROGRESS:
            return InDoubt("REFUND_IN_PROGRESS", "the centre is still refunding")
        before, after = d["state_before"], d["state_after"]
        if before == after:
            return Hold("REFUND_UNKNOWN", f"6203 {ctx.row.business_key}: outcome lost, and the order status "
                                          f"({stas.value}) cannot show it. Check in the centre, finish the "
                                          f"refund by hand if needed, then resolve this row")
        if stas.value == after:
            return self._done(ctx, None, None)
        if stas.value == before:
            return not_settled_yet(ctx, "the refund") or Goto("refund")
        return Hold("REFUND_UNCLEAR", f"after refund {ctx.row.business_key} the order is {stas.value}, "
                                      f"expected {before} or {after}: check in the centre")

    def _done(self, ctx, refd_sn: Optional[str], hi_refd_sn: Optional[str]):
        d = ctx.data
        fund, acct, cash = Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["cash"])
        return Finish([InboxRow(
            result_type="refund", outcome="ok", order_id=d["settled"]["payOrdId"],
            settlement_id=refd_sn or ctx.row.business_key, total_amount=fund + acct + cash,
            fund_amount=fund, account_amount=acct, cash_amount=cash,
            result={"appRefdSn": ctx.row.business_key, "refdSn": refd_sn, "hiRefdSn": hi_refd_sn,
                    "refdType": d["type"], "payment_key": ctx.payload.payment_key})])


def _refund_split(p: RefundPayload, left: dict) -> tuple[SetlType, Decimal, Decimal, Decimal]:
    """What a refund of `amount` sends, within what is left (§5.3): ALL refunds
    every remaining part (insurance and self-pay together), CASH only cash, HI the
    whole insurance part (the centre cancels the insurance settlement whole)."""
    fund, acct, cash = left["fund"], left["account"], left["cash"]
    hi, everything = fund + acct, fund + acct + cash
    if everything <= 0:
        raise BadInput("the payment has been refunded in full already", "NOTHING_LEFT")
    if p.amount is None and p.refund_type is not None and {SetlType.CASH: cash, SetlType.HI: hi}.get(
            p.refund_type, everything) <= 0:
        raise BadInput(f"nothing left to refund as {p.refund_type.value}", "NOTHING_LEFT")
    default = {SetlType.CASH: cash, SetlType.HI: hi}.get(p.refund_type, everything)
    amount = default if p.amount is None else p.amount
    if amount > everything:
        raise BadInput(f"refund {amount} exceeds what is left to refund ({everything})", "REFUND_EXCEEDS_PAID")
    kind = p.refund_type
    if kind is None:
        if amount == everything:
            kind = SetlType.ALL if hi and cash else (SetlType.HI if hi else SetlType.CASH)
        elif amount <= cash:
            kind = SetlType.CASH
        elif amount == hi:
            kind = SetlType.HI
        else:
            raise BadInput(f"a partial refund of {amount} cannot be split: the self-pay part can be refunded "
                           f"up to {cash}, the insurance part ({hi}) only whole", "REFUND_SPLIT")
    if kind is SetlType.ALL:
        if amount != everything:
            raise BadInput(f"refund_type ALL refunds everything left ({everything}), not {amount}", "REFUND_SPLIT")
        return kind, fund, acct, cash
    if kind is SetlType.HI:
        if hi <= 0 or amount != hi:
            raise BadInput(f"refund_type HI refunds the whole insurance part ({hi}), not {amount}", "REFUND_SPLIT")
        return kind, fund, acct, ZERO
    if amount > cash:
        raise BadInput(f"refund_type CASH refunds at most the self-pay left ({cash}), not {amount}", "REFUND_SPLIT")
    return kind, ZERO, ZERO, amount


def _refund_state(paid: dict, refunded: dict) -> str:
    """ordStas after refunds (§6.1 codes 6-11), from what was paid and refunded."""
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
