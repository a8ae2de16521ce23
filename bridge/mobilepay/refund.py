"""mobilepay.refund: a full or partial refund of a settled payment (6203, §5.3).

    check    find the payment (payment_row), what is left to refund (inbox_sums of the
             earlier refunds), the split (refund_split) -> refund; Wait while the
             payment is open; Fail on bad amounts; Hold after a refund closed by hand
    refund   6203 (centre.refund_order).  Its lost answer: resolve_refund asks 6301
             (centre.query_order): ordStas shows the refund (done), or not yet (inside
             the settle window: wait; after it: send 6203 now, a first send), or
             cannot show it (held: REFUND_UNKNOWN)

A refund of a payment made in a channel (WeChat Pay, Alipay) refunds each leg once
(bridge/channels/refund_legs.py): 6203 for the insurance part (only that part, unless the
payment's cash_by says the centre returns the cash), then the cash through the channel
(cash_refund, await_cash_refund: bridge/mobilepay/channel_refund.py), then for WeChat the
insurance refund notify (refund_notify).  When it completes, the patient's "refund done"
message is added to the outbox if a template is configured (it never affects the money).
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Optional

from bridge.calls import Outcome
from bridge.channels import keys, patient_messages, refund_legs
from bridge.engine.flow import BadInput, Fail, Finish, Flow, Goto, Hold, InboxRow, InDoubt, Step, Wait

from .centre import (PAY_AUTH, SECRET_KEYS, held_patient, not_ok, not_settled_yet, now14, order_status,
                     payment_row, payment_secrets, query_order, refund_in_progress, refund_order, refund_state)
from .channel_refund import (CASH_REFUND_CALLS, CASH_REFUND_QUERIES, NOTIFY_CALLS, ChannelRefundSteps, cash_spec,
                             client_of, now_rfc3339, prefix_of)
from .kinds import KIND_REFUND
from .messages import OrdStas, SetlType
from .payloads import ZERO, RefundPayload, parse_refund
from .settings import MobilePaySettings


class RefundFlow(ChannelRefundSteps, Flow):
    """A full or partial refund of a settled payment; its business key is the
    HIS's refund serial (sent as appRefdSn)."""

    kind = KIND_REFUND
    initial = "check"
    secret_keys = SECRET_KEYS
    steps = {
        # may Wait on itself while the payment is open
        "check": Step("check", next=("refund", "cash_refund")),
        "refund": Step("refund", calls=("6203",), safe_to_repeat=False, resolves_with=("6301",),
                       next=("refund", "cash_refund", "refund_notify")),
        "cash_refund": Step("cash_refund", calls=CASH_REFUND_CALLS, safe_to_repeat=False,
                            resolves_with=CASH_REFUND_QUERIES,
                            next=("cash_refund", "await_cash_refund", "refund_notify")),
        "await_cash_refund": Step("await_cash_refund", calls=CASH_REFUND_QUERIES,
                                  next=("cash_refund", "refund_notify")),
        "refund_notify": Step("refund_notify", calls=NOTIFY_CALLS),
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
        channel = settled.get("channel")
        legs = refund_legs.split(channel, settled.get("cash_by"), kind.value, fund, acct, cash)
        # The centre's view: with the cash refunded through the channel, the centre never
        # books cash refunds (bridge/channels/refund_legs.py), so its ordStas counts none.
        centre_cash = legs.centre_cash if channel else cash
        booked = before["cash"] if not channel or settled.get("cash_by") == refund_legs.CENTRE else ZERO
        data = {"settled": {k: v for k, v in settled.items() if k not in SECRET_KEYS},
                "type": legs.centre_type or kind.value, "fund": str(fund), "account": str(acct),
                "cash": str(cash), "appRefdTime": now14(),
                "state_before": refund_state(settled, {"fund": before["fund"], "account": before["account"],
                                                       "cash": booked}),
                "state_after": refund_state(settled, {"fund": before["fund"] + fund,
                                                      "account": before["account"] + acct,
                                                      "cash": booked + centre_cash})}
        if channel:
            try:
                data["legs"] = {"centre": legs.centre_type, "centre_cash": str(legs.centre_cash),
                                "channel_cash": str(legs.channel_cash), "notify": legs.notify}
                if legs.channel_cash > 0:
                    data["cash_leg"] = cash_spec(ctx, channel=channel, tag=keys.REFUND, key=ctx.row.business_key,
                                                 out_trade_no=settled["out_trade_no"], amount=legs.channel_cash,
                                                 paid=Decimal(settled["cash"]), purpose="refund", reason=p.reason)
            except keys.UnmappableKey as exc:
                return Fail("BAD_INPUT", str(exc))
        # The payment's payToken and patient go to this refund's mi_secret (never to
        # flow_data); its payAuthNo is read from the payment's payload when 6203 goes out.
        first = "refund" if not channel or legs.centre_type else "cash_refund"
        return Goto(first, data=data, secrets=payment_secrets(ctx, pay, self.settings.default_id_type))

    def _auth(self, ctx) -> Optional[str]:
        """6203's authorisation (§5.3): a fresh payAuthNo from this refund's payload, else
        the payment's (docs/platform-choices.md), read from the payment's payload now, or
        the one mibridge asked Alipay for (copied from the payment's mi_secret at check)."""
        d = ctx.data
        if ctx.payload.pay_auth_no or d.get("pay_auth_no"):
            return ctx.payload.pay_auth_no or d["pay_auth_no"]
        pay = payment_row(ctx, ctx.payload.payment_key)
        given = json.loads(pay["payload"]).get("pay_auth_no") if isinstance(pay, dict) else None
        return given or ctx.secret(PAY_AUTH)

    def _order(self, ctx) -> dict:
        return ctx.data["settled"]

    def _patient(self, ctx) -> dict:
        return held_patient(ctx, ctx.data)

    def _centre_amounts(self, ctx) -> tuple[Decimal, Decimal, Decimal]:
        """What the 6203 carries: the whole refund, or for a channel payment its centre legs."""
        d = ctx.data
        if d.get("legs"):
            return Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["legs"]["centre_cash"])
        return Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["cash"])

    def step_refund(self, ctx):
        d = ctx.data
        fund, acct, cash = self._centre_amounts(ctx)
        r = refund_order(ctx, d["settled"], ctx.row.business_key, d["appRefdTime"], SetlType(d["type"]),
                         fund, acct, cash, self._auth(ctx))
        if r.outcome is Outcome.OK:
            return self._centre_done(ctx, r.data.refdSn, r.data.hiRefdSn, _hi_time(r.data))
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
            return refund_in_progress(ctx, f"refund {ctx.row.business_key}")
        before, after = d["state_before"], d["state_after"]
        if before == after:
            return Hold("REFUND_UNKNOWN", f"6203 {ctx.row.business_key}: outcome lost, and the order status "
                                          f"({stas.value}) cannot show it. Check in the centre, finish the "
                                          f"refund by hand if needed, then resolve this row")
        if stas.value == after:
            return self._centre_done(ctx, None, None, None)
        if stas.value == before:
            return not_settled_yet(ctx, "the refund") or Goto("refund")
        return Hold("REFUND_UNCLEAR", f"after refund {ctx.row.business_key} the order is {stas.value}, "
                                      f"expected {before} or {after}: check in the centre")

    # -- after the centre's part: the channel's legs (channel_refund.py) ----------------------
    def _centre_done(self, ctx, refd_sn: Optional[str], hi_refd_sn: Optional[str], hi_time: Optional[str]):
        d = ctx.data
        if not d.get("legs"):
            return self._done(ctx, refd_sn, hi_refd_sn, data={"hi_time": hi_time})
        data = {"refdSn": refd_sn, "hiRefdSn": hi_refd_sn, "centre_done": ctx.row.business_key,
                "hi_time": hi_time}
        if d.get("cash_leg"):
            return Goto("cash_refund", data=data)
        return self._after_cash(ctx, data, None)

    def _after_cash(self, ctx, data: dict, cash_done: Optional[dict]):
        d = {**ctx.data, **data}
        if d["legs"]["notify"] and d["settled"].get("mix_trade_no"):
            number = (cash_done or {}).get("number") or keys.refund_no(ctx.row.business_key,
                                                                       prefix_of(ctx, d["settled"]["channel"]))
            when = (cash_done or {}).get("success_time") or d.get("hi_time") or now_rfc3339()
            return Goto("refund_notify", data={**data, "cash_done": cash_done, "notify": {
                "mix_trade_no": d["settled"]["mix_trade_no"], "out_refund_no": number, "fund": d["fund"],
                "account": d["account"], "refund_time": when}})
        return self._done(ctx, d.get("refdSn"), d.get("hiRefdSn"), cash_done, data=data)

    def _cash_refunded(self, ctx, done: dict):
        return self._after_cash(ctx, {"cash_done": done}, done)

    def _notified(self, ctx, note: Optional[str]):
        d = ctx.data
        return self._done(ctx, d.get("refdSn"), d.get("hiRefdSn"), d.get("cash_done"), note=note)

    def _done(self, ctx, refd_sn: Optional[str], hi_refd_sn: Optional[str], cash_done: Optional[dict] = None,
              note: Optional[str] = None, data: Optional[dict] = None):
        d = {**ctx.data, **(data or {})}
        fund, acct, cash = Decimal(d["fund"]), Decimal(d["account"]), Decimal(d["cash"])
        result = {"appRefdSn": ctx.row.business_key, "refdSn": refd_sn, "hiRefdSn": hi_refd_sn,
                  "refdType": d["type"], "payment_key": ctx.payload.payment_key}
        enqueue = []
        settled = d["settled"]
        channel = settled.get("channel")
        if channel:
            number = (cash_done or {}).get("number") or keys.refund_no(ctx.row.business_key, prefix_of(ctx, channel))
            refund_time = (cash_done or {}).get("success_time") or d.get("hi_time") or now_rfc3339()
            result.update(channel=channel, out_trade_no=settled.get("out_trade_no"), out_refund_no=number,
                          refund_time=refund_time, insurance_refunded_by="6203" if d["legs"]["centre"] else None,
                          cash_refunded_by=(channel if cash_done else
                                            "6203" if Decimal(d["legs"]["centre_cash"]) > 0 else None))
            if cash_done:
                result["refund_id"] = cash_done.get("refund_id")
            if note:
                result["note"] = note
            enqueue = self._message(ctx, channel, fund + acct + cash, fund + acct, cash, refund_time)
        elif d.get("hi_time"):
            # The centre's own time of the refund (6203 hiTrnsDate/hiTrnsTime): the order book
            # books the refund on that day, not on the day the row happened to be written.
            result["refund_time"] = d["hi_time"]
        return Finish([InboxRow(
            result_type="refund", outcome="ok", order_id=settled["payOrdId"],
            settlement_id=refd_sn or ctx.row.business_key, total_amount=fund + acct + cash,
            fund_amount=fund, account_amount=acct, cash_amount=cash,
            result={k: v for k, v in result.items() if v is not None or k in ("refdSn", "hiRefdSn")})],
            data=data or {}, enqueue=enqueue)

    def _message(self, ctx, channel: str, total, insurance, cash, refund_time: str) -> list:
        """The patient's "refund done" message, when a template is configured (never money)."""
        fields = patient_messages.template_fields(getattr(client_of(ctx, channel), "config", None), "refund_done")
        if fields is None:
            return []
        pay = payment_row(ctx, ctx.payload.payment_key)
        if not isinstance(pay, dict):
            return []
        doc = json.loads(pay["payload"])
        recipient = ({"openid": doc.get("openid")} if channel == "wechat" else
                     {"user_id": doc["alipay_user_id"]} if doc.get("alipay_user_id") else
                     {"open_id": doc.get("alipay_open_id")})
        values = {"patient_name": doc.get("user_name"), "dept_name": doc.get("dept_name"),
                  "doctor_name": doc.get("doctor_name"), "visit_time": doc.get("visit_time"),
                  "business_key": ctx.row.business_key, "order_no": ctx.data["settled"].get("out_trade_no"),
                  "amount": str(total), "insurance_amount": str(insurance), "cash_amount": str(cash),
                  "refund_time": refund_time, "refund_reason": ctx.payload.reason}
        return [patient_messages.message_request(
            event="refund_done", channel=channel, source_kind=ctx.row.kind, source_key=ctx.row.business_key,
            source_outbox_id=ctx.row.id, recipient=recipient, values=values, fields=fields)]


def _hi_time(answer) -> Optional[str]:
    """6203's hiTrnsDate + hiTrnsTime (yyyyMMdd, HHmmss) as RFC 3339 China time, or None."""
    date, at = getattr(answer, "hiTrnsDate", None), getattr(answer, "hiTrnsTime", None)
    if not (date and at and len(date) == 8 and len(at) == 6 and (date + at).isdigit()):
        return None
    return f"{date[:4]}-{date[4:6]}-{date[6:]}T{at[:2]}:{at[2:4]}:{at[4:]}+08:00"


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
