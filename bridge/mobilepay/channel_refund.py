"""The channel legs of a refund, as steps: shared by mobilepay.refund (a refund the HIS asked
for) and the payment flow (its full reversal: the 单边账 repair, or the cash of a payment whose
insurance part failed in the channel).

    cash_refund        the cash back through the channel (bridge/channels/cash_refunds.py).
                       NOT safe to repeat: journalled first; a lost answer is resolved by the
                       channel's refund query by out_refund_no / out_request_no (the same
                       number on every send), "not found" final only after the settle window
    await_cash_refund  WeChat's refund is PROCESSING: ask again (its REFUND.* callback wakes
                       the request); CLOSED -> a new number (attempt + 1, in flow_data);
                       ABNORMAL -> held for a person
    refund_notify      WeChat only: tell WeChat about the insurance refund the centre made
                       (POST /v3/med-ins/refunds/notify, §2.7), with the cash refund's
                       out_refund_no.  No money moves: safe to repeat; a refusal is noted, not
                       held (the money is back either way)

The flow keeps what the leg needs in flow_data["cash_leg"] (cash_spec below) and
flow_data["notify"]; it says what comes after with _cash_refunded(ctx, done) and
_notified(ctx, note).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

from bridge.alipay import outcomes as ali_oc
from bridge.calls import Outcome
from bridge.channels import cash_refunds as cr
from bridge.channels.notices import WECHAT_REFUND, notice_key
from bridge.channels.payer import WECHAT
from bridge.engine.flow import Goto, Hold, InDoubt, Retry, Wait
from bridge.wechatpay import outcomes as wx_oc
from bridge.wechatpay.messages import CHINA, MedInsRefundNotifyRequest

from .centre import settings_of

# The interfaces of these steps (Step.calls / Step.resolves_with in the flows' tables).
CASH_REFUND_CALLS = (wx_oc.REFUND_CREATE, ali_oc.REFUND)
CASH_REFUND_QUERIES = (wx_oc.REFUND_QUERY, ali_oc.REFUND_QUERY)
NOTIFY_CALLS = (wx_oc.MEDINS_REFUND_NOTIFY,)
# A PROCESSING refund (WeChat: 1-3 working days, §2.6) is asked again after pauses growing from
# [mobilepay] poll_first_seconds up to this; its REFUND.* callback wakes it sooner.
POLL_CAP = 300.0


def client_of(ctx, channel: str):
    return ctx.service("wechatpay" if channel == WECHAT else "alipay")


def prefix_of(ctx, channel: str) -> str:
    return ctx.service("wechatpay.settings" if channel == WECHAT else "alipay.settings").order_prefix


def cash_spec(ctx, *, channel: str, tag: str, key: str, out_trade_no: str, amount: Decimal, paid: Decimal,
              purpose: str, reason: Optional[str] = None) -> dict:
    """flow_data["cash_leg"]: one cash refund.  ``tag``/``key``: keys.REFUND and the HIS refund's
    key, or keys.REVERSAL and the payment's key; ``paid``: the cash the patient paid (WeChat's
    amount.total); ``purpose``: "refund", "reversal" or "failed_payment"."""
    return {"channel": channel, "tag": tag, "key": key, "attempt": 0,
            "number": cr.number(tag, key, prefix_of(ctx, channel), 0), "out_trade_no": out_trade_no,
            "amount": str(amount), "paid": str(paid), "purpose": purpose, "reason": reason}


def now_rfc3339() -> str:
    return datetime.now(CHINA).isoformat(timespec="seconds")


class ChannelRefundSteps:
    """Mixin of the flows that give cash back through a channel."""

    # -- what comes next: the flow's ------------------------------------------------------
    def _cash_refunded(self, ctx, done: dict):
        raise NotImplementedError

    def _notified(self, ctx, note: Optional[str]):
        raise NotImplementedError

    # -- cash_refund ------------------------------------------------------------------------
    def step_cash_refund(self, ctx):
        c = ctx.data["cash_leg"]
        client = client_of(ctx, c["channel"])
        if c["channel"] == WECHAT:
            prepared = client.prepare_refund(cr.wechat_request(c["number"], c["out_trade_no"], Decimal(c["amount"]),
                                                               Decimal(c["paid"]), c.get("reason")))
        else:
            prepared = client.prepare_refund(cr.alipay_request(c["number"], c["out_trade_no"], Decimal(c["amount"]),
                                                               c.get("reason")))
        r = ctx.call(client.send, prepared)
        if r.ok:
            state = cr.from_wechat(r.data) if c["channel"] == WECHAT else cr.from_alipay_refund(r.data)
            if state.state == cr.CLOSED:
                # A new number is only ever chosen after a query shows this one closed.
                return Goto("await_cash_refund")
            return self._cash_state(ctx, state)
        if r.try_again:
            return Retry("NOT_SENT" if r.outcome is Outcome.NOT_SENT else "CHANNEL_BUSY",
                         f"{r.interface}: {r.message or 'channel unreachable'}")
        if r.refused:
            return Hold("CASH_REFUND_REFUSED", f"the {c['channel']} cash refund {c['number']} of {c['amount']} was "
                                               f"refused ({r.code} {r.message}); the cash is still owed to the "
                                               f"patient: refund it by hand, then resolve this row"
                        + self._legs_note(ctx))
        return InDoubt("CASH_REFUND_UNKNOWN", r.message or f"{r.interface} outcome unknown")

    def resolve_cash_refund(self, ctx):
        c = ctx.data["cash_leg"]
        r, state = self._query_cash_refund(ctx, c)
        if state is not None:
            if state.state == cr.CLOSED:
                return self._new_number(ctx, c)
            return self._cash_state(ctx, state)
        if self._not_found(c, r):
            return ctx.settle_window_wait(settings_of(ctx).settle_seconds, "NOT_SETTLED_YET",
                                          f"cash refund {c['number']} not seen by the channel yet") \
                or Goto("cash_refund")        # never booked: the same number again, a first send
        return InDoubt("QUERY_FAILED", f"{r.interface} after a lost cash refund failed: {r.message}")

    # -- await_cash_refund --------------------------------------------------------------------
    def step_await_cash_refund(self, ctx):
        c = ctx.data["cash_leg"]
        r, state = self._query_cash_refund(ctx, c)
        if state is not None:
            if state.state == cr.CLOSED:
                return self._new_number(ctx, c)
            return self._cash_state(ctx, state)
        if self._not_found(c, r):
            return Hold("CASH_REFUND_MISSING", f"the channel does not know cash refund {c['number']}, which it "
                                               f"accepted: check in the merchant platform" + self._legs_note(ctx))
        return Retry("QUERY_FAILED", f"{r.interface}: {r.message}")

    # -- helpers ------------------------------------------------------------------------------
    def _query_cash_refund(self, ctx, c: dict):
        client = client_of(ctx, c["channel"])
        if c["channel"] == WECHAT:
            r = ctx.call(client.send, client.prepare_query_refund(c["number"]))
            return r, (cr.from_wechat(r.data) if r.ok else None)
        r = ctx.call(client.send, client.prepare_refund_query(out_request_no=c["number"],
                                                             out_trade_no=c["out_trade_no"]))
        return r, (cr.from_alipay_query(r.data) if r.ok else None)

    @staticmethod
    def _not_found(c: dict, r) -> bool:
        return (wx_oc if c["channel"] == WECHAT else ali_oc).is_not_found(r)

    def _new_number(self, ctx, c: dict):
        """§2.6: a CLOSED refund moved no money; retry under a new number."""
        attempt = int(c.get("attempt", 0)) + 1
        if attempt > cr.MAX_CLOSED:
            return Hold("CASH_REFUND_CLOSED", f"the channel closed {attempt - 1} cash refunds of {c['amount']} in a "
                                              f"row (last {c['number']}): refund by hand, then resolve this row"
                        + self._legs_note(ctx))
        number = cr.number(c["tag"], c["key"], prefix_of(ctx, c["channel"]), attempt)
        return Goto("cash_refund", data={"cash_leg": {**c, "attempt": attempt, "number": number}})

    def _cash_state(self, ctx, state: cr.CashRefund):
        c = ctx.data["cash_leg"]
        if state.state == cr.SUCCESS:
            done = {"number": c["number"], "refund_id": state.refund_id,
                    "success_time": state.success_time or now_rfc3339()}
            return self._cash_refunded(ctx, done)
        if state.state == cr.ABNORMAL:
            return Hold("CASH_REFUND_ABNORMAL", f"WeChat could not pay cash refund {c['number']} ({c['amount']}) back "
                                                f"(ABNORMAL, §2.6): apply for the abnormal refund in the merchant "
                                                f"platform, then resolve this row" + self._legs_note(ctx))
        polls = int(ctx.data.get("cash_polls", 0))
        first = settings_of(ctx).poll_first_seconds
        if ctx.port.notice(WECHAT_REFUND, notice_key(c["number"], "SUCCESS")) is not None:
            # Its callback came while this row was at work (it could not wake it): ask again now.
            return Wait("await_cash_refund", min(first, 0.2), data={"cash_polls": polls + 1})
        return Wait("await_cash_refund", min(POLL_CAP, first * (2 ** min(polls, 12))),
                    data={"cash_polls": polls + 1})

    def _legs_note(self, ctx) -> str:
        """What of this refund already happened, for the person who finishes it."""
        done = ctx.data.get("centre_done")
        return f" (the insurance part was refunded by 6203 {done})" if done else ""

    # -- refund_notify (WeChat §2.7) -----------------------------------------------------------
    def step_refund_notify(self, ctx):
        n = ctx.data["notify"]
        client = ctx.service("wechatpay")
        at = datetime.fromisoformat(n["refund_time"])
        fund, account = Decimal(n["fund"]), Decimal(n["account"])
        r = ctx.call(client.send, client.prepare_medins_refund_notify(MedInsRefundNotifyRequest(
            mix_trade_no=n["mix_trade_no"], out_refund_no=n["out_refund_no"], med_refund_total_fee=fund + account,
            med_refund_gov_fee=fund, med_refund_self_fee=account, med_refund_other_fee=Decimal("0"),
            refund_time=at)))
        if r.ok:
            return self._notified(ctx, None)
        if r.refused:
            return self._notified(ctx, f"WeChat refused the insurance refund notify: {r.code} {r.message}")
        if ctx.row.attempts + 1 >= ctx.row.max_attempts:
            # The money is back; only WeChat's order view lags.  Not a reason to hold.
            return self._notified(ctx, f"the insurance refund notify could not be sent: {r.message}")
        return Retry("NOTIFY_FAILED", f"{r.interface}: {r.message}")
