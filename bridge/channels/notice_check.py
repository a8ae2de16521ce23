"""channel.notice_check: a verified WeChat Pay / Alipay callback arrived for a request
that had ended, or for one of our numbers no request has.  Is money unmatched?

The callback endpoint records the callback (bridge/channels/notices.py) and, instead of
alerting at once, enqueues this request (bridge/channels/unmatched.py), as the 6302
endpoint does for the centre (bridge/mobilepay/notice_check.py): a late "paid" callback
for a payment whose own reversal already refunded the cash is no news, and an alert
telling staff to refund it by hand would have them refund it twice.  Deciding needs the
channel's present state, which is a query: a flow's work, with the journal and retries.

    check   the channel's query (all reads, safe to repeat) -> done quietly, or held

What the check is about: the CASH, the money the channel holds for the hospital.  The
insurance parts of a mixed order are the centre's; their late notices are the 6302
endpoint's and bridge/mobilepay/notice_check.py's (one alarm per problem: two held rows
about one order could have two people refund it twice).

    payment number (out_trade_no; wechat.medins, wechat.trade, alipay.trade)
        WeChat: the cash transaction query (§2.1); Alipay: alipay.trade.query (§7.6)
        * quiet: the payment ended done (the HIS took it) and names this number; the
          callback is of an order with no cash part; nothing is paid at the channel (never
          paid, closed, or with Alipay refunded in full: TRADE_CLOSED); the payment ended
          with a reversal and the reversal's cash refund succeeded (its refund query).  "A
          reversal": the payment's `reversal` inbox row (the 单边账 repair), or the cash
          refund a payment that ended failed made itself (its flow_data ``cash_done``: the
          insurance part failed after the cash was taken, or the cash was paid after the
          centre's order was revoked) - the cash is back under the payment's F number;
        * held NOTICE_FOR_CLOSED_PAYMENT: cash paid (or, WeChat REFUND, paid and partly
          refunded by someone) for a payment that ended failed/resolved without a reversal,
          or whose reversal did not bring the cash back;
        * held NOTICE_FOR_UNKNOWN_ORDER / _PAYMENT: cash paid on a number the done payment
          does not name (another attempt), or on one of our numbers no request has;
        * held NOTICE_CONTRADICTS_STATUS: the callback says paid, the query says never paid,
          still so once the settle window (database clock, from the callback's arrival) has
          passed; inside it the check waits.
    refund number (out_refund_no / out_request_no; wechat.refund, alipay.refund)
        WeChat: the refund query (§2.6); Alipay: alipay.trade.fastpay.refund.query (§7.5)
        * quiet: the refund request ended done and names this number (a reversal: the
          payment ended with its reversal, as above, and names it); the refund was CLOSED
          (no money moved);
        * held NOTICE_FOR_CLOSED_REFUND: cash refunded for a refund request that ended
          failed/resolved (the HIS believes nothing was refunded);
        * held NOTICE_FOR_UNKNOWN_REFUND: refunded on a number the done refund does not name
          (a second refund), or on one of our numbers no request has;
        * held REVERSAL_AFTER_HIS_TOOK: a reversal refunded the cash of a payment the HIS took;
        * held REFUND_ABNORMAL: WeChat could not pay the refund out (ABNORMAL): the money is
          with neither side until someone acts (apply-abnormal-refund, §2.6);
        * a refund still PROCESSING, or a query that fails: asked again with the backoff (the
          engine holds the row when its attempts run out).

"Names this number": a text anywhere in the request's flow_data (under any key, at any
depth) that is one of our numbers of the same kind for the same business key
(bridge/channels/keys.py ``parse``: payment P, refund R, reversal F); a request that names
none of that kind is taken to have used attempt 0, the number without a suffix.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Optional

from loguru import logger

from bridge.alipay import outcomes as ali
from bridge.calls import CallResult
from bridge.engine.flow import BadInput, Finish, Flow, Hold, Retry, Step, Wait
from bridge.wechatpay import outcomes as wx
from bridge.wechatpay.messages import RefundStatus, TradeState

from . import keys
from .notices import (ALIPAY_REFUND, ALIPAY_TRADE, CHANNEL_PAYMENT_KINDS, CHANNEL_REFUND_KINDS, CLOSED,
                      WECHAT_MEDINS, WECHAT_REFUND, WECHAT_TRADE)

KIND_CHANNEL_NOTICE_CHECK = "channel.notice_check"
CHANNEL_OF = {WECHAT_MEDINS: "wechat", WECHAT_TRADE: "wechat", WECHAT_REFUND: "wechat",
              ALIPAY_TRADE: "alipay", ALIPAY_REFUND: "alipay"}
WHATS = ("payment", "refund", "reversal")
# A channel's query may lag its own callback: "not paid" against a "paid" callback is an
# answer only this long after the callback first arrived (database clock).  OUR CHOICE:
# channels.md gives no figure; WeChat retries its callbacks over about 30 s (§10.3).
DEFAULT_SETTLE_SECONDS = 300.0
TAGS = {"payment": keys.PAYMENT, "refund": keys.REFUND, "reversal": keys.REVERSAL}
ZERO = Decimal("0.00")

__all__ = ["KIND_CHANNEL_NOTICE_CHECK", "ChannelNoticeCheckFlow", "check_key", "check_payload", "quiet_reason",
           "is_reversed"]


# ---------------------------------------------------------------- shared with the endpoint

def check_key(channel: str, number: str) -> str:
    """One check per channel number (the payment's out_trade_no, a refund's number): the
    mixed-order and the cash callbacks of one order, and every repeat, share it."""
    text = f"chk:{channel}:{number}"
    if len(text) <= 64:
        return text
    return f"chk:{channel}:sha256:" + hashlib.sha256(number.encode("utf-8")).hexdigest()[:40]


def check_payload(interface: str, notice_key: str, what: str, business_key: str, attempt: int,
                  record: Mapping[str, Any]) -> Optional[dict]:
    """The request's payload for a recorded callback, or None when the callback names no
    number to ask the channel about."""
    channel = CHANNEL_OF.get(interface)
    if channel is None or what not in WHATS:
        return None
    if interface == WECHAT_REFUND:
        number = record.get("out_refund_no")
    elif interface == ALIPAY_REFUND:
        number = record.get("out_biz_no")
    else:
        number = record.get("out_trade_no")
    if not number:
        return None
    payload = {"channel": channel, "interface": interface, "notice_key": notice_key, "what": what,
               "business_key": business_key, "number": number, "attempt": int(attempt)}
    if record.get("out_trade_no"):
        payload["out_trade_no"] = record["out_trade_no"]
    return payload


def named_numbers(flow_data: Any, what: str, business_key: str, prefix: str) -> list[str]:
    """Our numbers of one kind (payment, refund, reversal) for one business key that the
    request's flow_data holds, anywhere, in order (keys.parse reads only what keys.py
    writes, so nothing else is taken for one)."""
    tag, out = TAGS[what], []

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v not in out:
            ref = keys.parse(v, prefix)
            if ref is not None and ref.tag == tag and ref.business_key == business_key:
                out.append(v)
    walk(flow_data)
    return out


def cash_refund_no(request: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The cash refund a payment that ended failed made itself and saw succeed (flow_data
    ``cash_done``, bridge/mobilepay/payment.py): its number, or None."""
    if request is None or request["state"] not in ("failed", "resolved"):
        return None
    done = (request.get("flow_data") or {}).get("cash_done")
    number = done.get("number") if isinstance(done, Mapping) else None
    return number if isinstance(number, str) and number else None


def is_reversed(inbox_state: Callable[[int, str], Any], request: Optional[Mapping[str, Any]], what: str) -> bool:
    """Did the payment end with its cash given back by mibridge: a `reversal` inbox row (the
    单边账 repair), or the cash refund of a payment that ended failed (cash_refund_no)?
    ``inbox_state``: the Store's or the FlowPort's."""
    if request is None or what == "refund":
        return False
    return cash_refund_no(request) is not None or inbox_state(request["id"], "reversal") is not None


def accounted(flow_data: Any, payload: Mapping[str, Any], prefix: str) -> bool:
    """Does the request's own record name the callback's number (module note)?"""
    named = named_numbers(flow_data, payload["what"], payload["business_key"], prefix)
    return payload["number"] in named if named else int(payload.get("attempt") or 0) == 0


def claims_money(interface: str, record: Mapping[str, Any]) -> bool:
    """Does the callback say money moved (paid, or refunded)?"""
    if interface == WECHAT_MEDINS:
        return record.get("mix_pay_status") in (None, "MIX_PAY_SUCCESS")
    if interface == WECHAT_TRADE:
        return record.get("trade_state") in (None, "SUCCESS")
    if interface == WECHAT_REFUND:
        return record.get("status") == "SUCCESS"
    if interface == ALIPAY_TRADE:
        return record.get("trade_status") in ("TRADE_SUCCESS", "TRADE_FINISHED")
    if interface == ALIPAY_REFUND:
        return _amount(record.get("refund_fee")) not in (None, ZERO)
    return False


def no_cash(interface: str, record: Mapping[str, Any]) -> bool:
    """A payment callback of an order without a cash part: nothing at the channel."""
    if interface == WECHAT_MEDINS:
        return record.get("mix_pay_type") == "INSURANCE_ONLY" or _amount(record.get("wechat_pay_cash_fee")) == ZERO
    if interface == ALIPAY_TRADE:
        return _amount(record.get("real_amount")) == ZERO
    return False


def quiet_reason(payload: Mapping[str, Any], record: Mapping[str, Any], request: Optional[Mapping[str, Any]],
                 reversed_: bool, prefix: str) -> Optional[str]:
    """Why this callback needs no query at all, or None.  The endpoint asks before it
    enqueues a check (most late callbacks are of payments the HIS took); the check asks
    again when it runs (the request may have moved on since)."""
    what, interface = payload["what"], payload["interface"]
    if what == "payment" and no_cash(interface, record):
        return "the order has no cash part at the channel (its insurance part is the centre's 6302 check)"
    if request is None:
        return None
    state, fd = request["state"], request.get("flow_data") or {}
    if state not in CLOSED:
        return f"request #{request['id']} is {state} again: its own flow compares the callback with its query"
    mine = accounted(fd, payload, prefix)
    if what == "payment" and state == "done" and mine:
        return f"payment request #{request['id']} is done (the HIS took it) and names {payload['number']}"
    if not claims_money(interface, record):
        return None
    if what == "refund" and state == "done" and mine:
        return f"refund request #{request['id']} is done and names {payload['number']}"
    if what == "reversal" and state in ("failed", "resolved") and reversed_ and mine:
        return f"payment request #{request['id']} ended with its reversal, {payload['number']}"
    return None


def _amount(value: Any) -> Optional[Decimal]:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value)).quantize(ZERO)
    except ArithmeticError:
        return None


# ---------------------------------------------------------------- the channel's answers

@dataclass(frozen=True)
class Cash:
    """The cash part of an order as the channel's query shows it."""

    state: str            # "paid", "part_refunded" (WeChat REFUND), "closed" (Alipay TRADE_CLOSED), "unpaid"
    said: str             # for a person: what the channel answered


@dataclass(frozen=True)
class RefundSeen:
    state: str            # "success", "processing", "abnormal", "closed", "absent"
    said: str


def _cash_query(ctx, channel: str, out_trade_no: str) -> Optional[Cash]:
    if channel == "wechat":
        client = ctx.service("wechatpay")
        r = ctx.call(client.send, client.prepare_query_transaction(out_trade_no))
        if r.ok:
            t = r.data
            said = f"WeChat Pay: trade_state {t.trade_state.value}" + (f", {t.total} yuan" if t.total is not None
                                                                        else "")
            state = {TradeState.SUCCESS: "paid", TradeState.REFUND: "part_refunded"}.get(t.trade_state, "unpaid")
            return Cash(state, said)
        if wx.is_not_found(r):
            return Cash("unpaid", f"WeChat Pay: no such transaction ({r.code})")
        return _failed(r)
    client = ctx.service("alipay")
    r = ctx.call(client.send, client.prepare_trade_query(out_trade_no=out_trade_no, medical_info=False))
    if r.ok:
        t = r.data
        said = f"Alipay: trade_status {t.trade_status.value}" + (f", {t.total_amount} yuan"
                                                                 if t.total_amount is not None else "")
        state = {"TRADE_SUCCESS": "paid", "TRADE_FINISHED": "paid", "TRADE_CLOSED": "closed"}.get(
            t.trade_status.value, "unpaid")
        return Cash(state, said)
    if ali.is_not_found(r):
        return Cash("unpaid", f"Alipay: no such trade ({r.code})")
    return _failed(r)


def _refund_query(ctx, channel: str, number: str, out_trade_no: Optional[str]) -> Optional[RefundSeen]:
    if channel == "wechat":
        client = ctx.service("wechatpay")
        r = ctx.call(client.send, client.prepare_query_refund(number))
        if r.ok:
            f = r.data
            said = f"WeChat Pay: refund {number} {f.status.value}" + (f", {f.refund} yuan" if f.refund is not None
                                                                      else "")
            return RefundSeen({RefundStatus.SUCCESS: "success", RefundStatus.PROCESSING: "processing",
                               RefundStatus.ABNORMAL: "abnormal", RefundStatus.CLOSED: "closed"}[f.status], said)
        if wx.is_not_found(r):
            return RefundSeen("absent", f"WeChat Pay: no refund {number} ({r.code})")
        return _failed(r)
    if not out_trade_no:
        return RefundSeen("absent", f"Alipay: refund {number} cannot be asked without its out_trade_no")
    client = ctx.service("alipay")
    r = ctx.call(client.send, client.prepare_refund_query(out_request_no=number, out_trade_no=out_trade_no))
    if r.ok:
        s = r.data
        said = f"Alipay: refund {number} {s.refund_status or 'found'}" + (
            f", {s.refund_amount} yuan" if s.refund_amount is not None else "")
        return RefundSeen("success" if s.succeeded else "processing", said)
    if ali.is_not_found(r):
        return RefundSeen("absent", f"Alipay: no refund {number} ({r.code})")
    return _failed(r)


def _failed(r: CallResult) -> None:
    logger.info("notice check: {} failed: {} {} {}", r.interface, r.outcome.value, r.code, r.message)
    return None


# ---------------------------------------------------------------- the flow

class ChannelNoticeCheckFlow(Flow):
    kind = KIND_CHANNEL_NOTICE_CHECK
    initial = "check"
    steps = {"check": Step("check", calls=(wx.TRANSACTION_QUERY, wx.REFUND_QUERY, ali.TRADE_QUERY,
                                           ali.REFUND_QUERY), next=())}

    def __init__(self, settle_seconds: float = DEFAULT_SETTLE_SECONDS):
        self.settle_seconds = settle_seconds

    def parse(self, doc: dict) -> dict:
        channel, what, interface = doc.get("channel"), doc.get("what"), doc.get("interface")
        if CHANNEL_OF.get(interface) != channel or what not in WHATS:
            raise BadInput(f"channel notice check: interface {interface!r}, channel {channel!r} and what {what!r} "
                           f"do not fit together")
        for name in ("notice_key", "business_key", "number"):
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise BadInput(f"channel notice check: {name} is required")
        attempt = doc.get("attempt", 0)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise BadInput(f"channel notice check: attempt must be a whole number, not {attempt!r}")
        return dict(doc, attempt=attempt)

    def step_check(self, ctx):
        p = ctx.payload
        record = ctx.port.notice(p["interface"], p["notice_key"]) or {}
        kinds = CHANNEL_REFUND_KINDS if p["what"] == "refund" else CHANNEL_PAYMENT_KINDS
        req = ctx.port.find_request(kinds, p["business_key"])
        reversed_ = is_reversed(ctx.port.inbox_state, req, p["what"])
        prefix = _settings(ctx, p["channel"]).order_prefix
        why = quiet_reason(p, record, req, reversed_, prefix)
        if why:
            return self._quiet(p, why)
        if p["what"] == "payment":
            return self._payment(ctx, p, record, req, reversed_, prefix)
        return self._refund(ctx, p, record, req, reversed_, prefix)

    # -- a payment's number ------------------------------------------------------------
    def _payment(self, ctx, p, record, req, reversed_, prefix: str):
        number = p["number"]
        cash = _cash_query(ctx, p["channel"], number)
        if cash is None:
            return Retry("QUERY_FAILED", f"the channel could not be asked about {number}; asking again")
        if cash.state == "closed":
            return self._quiet(p, f"{cash.said}: never paid, or refunded in full")
        if cash.state == "unpaid":
            return self._not_booked(ctx, p, record, cash.said)
        ended = _ended(req)
        if req is None:
            return Hold("NOTICE_FOR_UNKNOWN_PAYMENT", f"{cash.said} for {number}, one of mibridge's numbers, but no "
                                                      f"payment request has business key {p['business_key']!r}: "
                                                      f"find whose money this is before refunding it")
        if req["state"] == "done":
            ours = ", ".join(named_numbers(req.get("flow_data"), "payment", p["business_key"], prefix)) or \
                keys.out_trade_no(p["business_key"], prefix)
            return Hold("NOTICE_FOR_UNKNOWN_ORDER", f"{cash.said} for {number}, but {ended} with {ours}: a second "
                                                    f"order of this payment was paid; refund that one by hand unless "
                                                    f"the HIS billed it too, then resolve this row")
        if reversed_:
            named = named_numbers(req.get("flow_data"), "reversal", p["business_key"], prefix)
            refund_no = cash_refund_no(req) or (named[-1] if named else keys.reversal_no(p["business_key"], prefix))
            seen = _refund_query(ctx, p["channel"], refund_no, number)
            if seen is None:
                return Retry("QUERY_FAILED", f"the reversal {refund_no} could not be asked about; asking again")
            if seen.state == "success":
                return self._quiet(p, f"{cash.said}; {ended} with its reversal, and {seen.said}")
            if seen.state == "processing":
                return Retry("REFUND_IN_PROGRESS", f"{seen.said}: asking again")
            return Hold("NOTICE_FOR_CLOSED_PAYMENT", f"{cash.said}; {ended} with a reversal, but {seen.said}: the "
                                                     f"cash is still with the hospital; refund it by hand (once), "
                                                     f"then resolve this row")
        refunded = " and partly refunded by someone other than mibridge" if cash.state == "part_refunded" else ""
        return Hold("NOTICE_FOR_CLOSED_PAYMENT", f"{cash.said}: the cash of {number} was paid{refunded}, but {ended} "
                                                 f"without the HIS taking it: refund it by hand unless the HIS billed "
                                                 f"it, then resolve this row")

    # -- a refund's number ---------------------------------------------------------------
    def _refund(self, ctx, p, record, req, reversed_, prefix: str):
        number = p["number"]
        seen = _refund_query(ctx, p["channel"], number, p.get("out_trade_no"))
        if seen is None:
            return Retry("QUERY_FAILED", f"the channel could not be asked about refund {number}; asking again")
        if seen.state == "processing":
            return Retry("REFUND_IN_PROGRESS", f"{seen.said}: asking again")
        if seen.state == "abnormal":
            return Hold("REFUND_ABNORMAL", f"{seen.said}: WeChat could not pay the refund back to the patient; the "
                                           f"money is with neither side: use the merchant platform's abnormal refund "
                                           f"(apply-abnormal-refund) or pay the patient otherwise, then resolve")
        if seen.state == "closed":
            return self._quiet(p, f"{seen.said}: no money moved")
        if seen.state == "absent":
            return self._not_booked(ctx, p, record, seen.said)
        ended = _ended(req)
        what = "reversal" if p["what"] == "reversal" else "refund"
        if req is None:
            return Hold("NOTICE_FOR_UNKNOWN_REFUND", f"{seen.said}: a {what} on one of mibridge's numbers, but no "
                                                     f"request has business key {p['business_key']!r}: check whose "
                                                     f"money went back")
        mine = accounted(req.get("flow_data"), p, prefix)
        if what == "refund" and req["state"] == "done" and mine:
            return self._quiet(p, f"{seen.said}; {ended} and names {number}")
        if what == "reversal" and req["state"] in ("failed", "resolved") and reversed_ and mine:
            return self._quiet(p, f"{seen.said}; {ended} with this reversal")
        if what == "refund":
            if req["state"] == "done":
                ours = ", ".join(named_numbers(req.get("flow_data"), "refund", p["business_key"], prefix)) or \
                    keys.refund_no(p["business_key"], prefix)
                return Hold("NOTICE_FOR_UNKNOWN_REFUND", f"{seen.said}, but {ended} with {ours}: the cash may have "
                                                         f"been refunded twice; check the payment's refunds, then "
                                                         f"resolve this row")
            return Hold("NOTICE_FOR_CLOSED_REFUND", f"{seen.said}, but {ended}: the HIS was told nothing was "
                                                    f"refunded. Do NOT refund again; tell the HIS the refund went "
                                                    f"through, then resolve this row")
        if req["state"] == "done":
            return Hold("REVERSAL_AFTER_HIS_TOOK", f"{seen.said}: the cash of a payment the HIS took ({ended}) was "
                                                   f"refunded in full; the HIS still bills it: settle it with the "
                                                   f"patient, then resolve this row")
        return Hold("NOTICE_FOR_CLOSED_PAYMENT", f"{seen.said}, but {ended} without a reversal on record: check the "
                                                 f"payment's money at the channel and the centre, then resolve")

    # -- helpers -----------------------------------------------------------------------------
    def _not_booked(self, ctx, p, record, said: str):
        """The query shows no money though the callback may say it moved."""
        if not claims_money(p["interface"], record):
            return self._quiet(p, f"{said}: no money moved")
        age = ctx.port.notice_age_seconds(p["interface"], p["notice_key"])
        if age is not None and age < self.settle_seconds:
            return Wait("check", max(1.0, self.settle_seconds - age),
                        data={"waiting": f"{said}, though the callback says it moved; asking again after the settle "
                                         f"window"})
        return Hold("NOTICE_CONTRADICTS_STATUS", f"a verified callback ({p['interface']}) says money moved for "
                                                 f"{p['number']}, but {said}: check it at the channel")

    @staticmethod
    def _quiet(p, why: str) -> Finish:
        logger.info("late {} callback for {}: money is matched ({}); recorded, nobody alerted", p["channel"],
                    p["number"], why)
        return Finish([], data={"matched": why})


def _settings(ctx, channel: str):
    return ctx.service("wechatpay.settings" if channel == "wechat" else "alipay.settings")


def _ended(req: Optional[Mapping[str, Any]]) -> str:
    return "no request" if req is None else f"request #{req['id']} ({req['kind']}) ended {req['state']}"
