"""The channel legs of a payment, as steps of PaymentFlow (bridge/mobilepay/payment.py), for a
payload that names its channel (bridge/channels/payer.py).  A payment without one never
enters them.

    authorize      first step of every payment.  Its business key must not be one another payment
                   kind already used (an outpatient bill and a registration with one key would
                   share medOrgOrd at the centre and out_trade_no at the channel): the later one
                   is refused BAD_INPUT before any call.  Channel payments: the channel is configured
                   (else held CHANNEL_NOT_CONFIGURED), the business key makes an out_trade_no
                   (else BAD_INPUT), and without pay_auth_no the channel gives it (kept in
                   mi_secret): Alipay's auth query (§7.1), or WeChat's exchange of the
                   payload's auth_code (§5, bridge/wechatpay/authquery.py; [wechatpay]
                   auth_query_url).  Both move no money; a lost exchange is asked again (a code
                   already exchanged is then refused: the patient authorises again)
    prepay         WeChat with cash: the JSAPI prepay (§2.1).  WeChat answers a repeat with
                   the same out_trade_no and body with the same prepay_id: safe to repeat
    channel_order  the WeChat mixed order (§2.2) or the Alipay medical order (§7.2/§7.3): the
                   patient can pay it, so NOT safe to repeat; its lost answer is resolved by
                   the channel's query by out_trade_no (resolve_channel_order).  Then the
                   HIS's `order` row carries the cashier: WeChat mixTradeNo, timeStamp,
                   nonceStr, package, signType, paySign; Alipay pay_url
    close_channel  after the centre's order was revoked (6401): WeChat closes the JSAPI
                   prepay (§2.1; the mixed order's own close endpoint is not public, §2.4),
                   Alipay has no close in the digest; then the channel is asked once more, so
                   that cash taken at the last moment is refunded, never kept

await_payment (payment.py) asks the centre (6301) and the channel; bridge/channels/status.py
judges the two answers: only both together settle, a disagreement is held with both, and a
leg that succeeded alone is refunded (cash_refund, bridge/mobilepay/channel_refund.py).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

from bridge.alipay import outcomes as ali_oc
from bridge.alipay.messages import AuthQueryRequest, MedicalQueryRequest
from bridge.calls import CallResult, Outcome
from bridge.channels import keys, notices, orders
from bridge.channels.payer import ALIPAY, WECHAT
from bridge.channels.status import ChannelStatus, alipay_status, wechat_status
from bridge.engine.flow import BadInput, Fail, Goto, Hold, InboxRow, InDoubt, Retry, Wait
from bridge.wechatpay import outcomes as wx_oc
from bridge.wechatpay.authquery import AUTH_QUERY as WECHAT_AUTH_QUERY
from bridge.wechatpay.messages import CHINA

from .centre import PAY_AUTH, pay_auth_no, settings_of
from .kinds import PAYMENT_KINDS
from .channel_refund import cash_spec

_ali = ali_oc.interface_of        # the journal's names of Alipay's methods
AUTH_CALLS = (_ali(ali_oc.AUTH_QUERY), WECHAT_AUTH_QUERY)
PREPAY_CALLS = (wx_oc.PREPAY,)
ORDER_CALLS = (wx_oc.MEDINS_CREATE, _ali(ali_oc.MEDICAL_CREATE), _ali(ali_oc.MEDICAL_TRADE_CREATE))
ORDER_QUERIES = (wx_oc.MEDINS_QUERY, _ali(ali_oc.MEDICAL_QUERY), _ali(ali_oc.MEDICAL_TRADE_QUERY))
CLOSE_CALLS = (wx_oc.TRANSACTION_CLOSE,)
# await_payment: the channel's order query, and WeChat's cash payment (for its transaction_id).
STATUS_CALLS = ORDER_QUERIES + (wx_oc.TRANSACTION_QUERY,)


def service_name(channel: str) -> str:
    return "wechatpay" if channel == WECHAT else "alipay"


def channel_client(ctx, channel: str):
    return ctx.service(service_name(channel))


def channel_settings(ctx, channel: str):
    return ctx.service(service_name(channel) + ".settings")


def busy(r: CallResult) -> Retry:
    return Retry("NOT_SENT" if r.outcome is Outcome.NOT_SENT else "CHANNEL_BUSY",
                 f"{r.interface}: {r.message or 'channel unreachable'}")


def rfc3339_now() -> str:
    return datetime.now(CHINA).isoformat(timespec="seconds")


class ChannelPaymentSteps:
    """Mixin of PaymentFlow: the steps above, and the channel's answers for await_payment."""

    # -- authorize --------------------------------------------------------------------------
    def step_authorize(self, ctx):
        p = ctx.payload
        payer = p.channel
        clash = self._key_clash(ctx)
        if clash is not None:
            return clash
        if payer is None:
            return Goto("identify")
        try:
            client = channel_client(ctx, payer.channel)
            settings = channel_settings(ctx, payer.channel)
        except RuntimeError:
            section = "[wechatpay]" if payer.channel == WECHAT else "[alipay]"
            return Hold("CHANNEL_NOT_CONFIGURED", f"the payment is to be paid in {payer.channel}, but this daemon has "
                                                  f"no {section} section; add it and requeue (nothing was sent)")
        try:
            otn = keys.out_trade_no(ctx.row.business_key, settings.order_prefix)
            if payer.channel == WECHAT:
                orders.check_card_type(p.id_type)
        except (keys.UnmappableKey, BadInput) as exc:
            return Fail("BAD_INPUT", str(exc))
        data = {"channel": payer.channel, "out_trade_no": otn}
        if p.pay_auth_no:
            return Goto("identify", data=data)
        if payer.channel == WECHAT:
            return self._exchange_auth_code(ctx, data)
        r = ctx.call(client.send, client.prepare_auth_query(AuthQueryRequest(
            alipay_user_id=payer.alipay_user_id, open_id=payer.alipay_open_id, req_biz_no=otn)))
        if r.ok and r.data.authorised:
            return Goto("identify", data=data, secrets={PAY_AUTH: r.data.pay_auth_no})
        if r.ok:
            msg = (f"the patient has not authorised the insurance payment in Alipay (auth_stas "
                   f"{r.data.auth_stas}): open auth_url in the mini-program, then enqueue the bill again")
            return Fail("NOT_AUTHORISED", msg, inbox=[InboxRow(
                result_type="error", outcome="failed", error_code="NOT_AUTHORISED", error_message=msg,
                result={"channel": ALIPAY, "auth_url": r.data.auth_url})])
        if r.refused:
            return Fail("AUTH_REJECTED", f"Alipay refused the payAuthNo query: {r.code} {r.message}")
        return Retry("AUTH_QUERY_FAILED", f"{r.interface}: {r.message}")

    def _exchange_auth_code(self, ctx, data: dict):
        """WeChat: the payload's auth_code -> payAuthNo at the user query service (§5)."""
        p = ctx.payload
        try:
            q = ctx.service("wechatpay.auth_query")
        except RuntimeError:
            return Fail("AUTH_EXCHANGE_OFF", "the payment gives auth_code, but this daemon does not exchange WeChat "
                                             "auth codes ([wechatpay] auth_query_url is not set): give pay_auth_no "
                                             "(nothing was sent)")
        r = ctx.call(q.send, q.prepare(p.auth_code, p.channel.openid))
        if r.ok:
            # A relative's authorisation (亲情付) is kept visible: WeChat checks the payer
            # against the card holder's binding.
            return Goto("identify", data={**data, "auth_family": r.data.family},
                        secrets={PAY_AUTH: r.data.pay_auth_no})
        if r.refused:
            return Fail("AUTH_REJECTED", f"WeChat's 医保 authorisation refused the auth code ({r.code} {r.message}): "
                                         f"the patient authorises again, then the bill is enqueued again")
        return Retry("AUTH_QUERY_FAILED", f"{r.interface}: {r.message}")

    # -- after 6202 ---------------------------------------------------------------------------
    def _to_channel(self, ctx, data: dict, identities: list):
        """From the centre's 6202 answer to the channel's order (the order row comes with the
        cashier, once the channel's order exists)."""
        cash = Decimal(data["split"]["cash"] or "0")
        data = {**data, "channel_time": rfc3339_now()}
        if ctx.payload.channel.channel == WECHAT and cash > 0:
            return Goto("prepay", data=data, identities=identities)
        return Goto("channel_order", data=data, identities=identities)

    def _facts(self, ctx) -> orders.OrderFacts:
        p, d = ctx.payload, ctx.data
        split = d["split"]
        return orders.OrderFacts(
            business_key=ctx.row.business_key, registration=ctx.row.kind.endswith("registration"),
            out_trade_no=d["out_trade_no"], pay_ord_id=d["payOrdId"], pay_auth_no=pay_auth_no(ctx),
            fund=Decimal(split["fund"] or "0"), account=Decimal(split["account"] or "0"),
            cash=Decimal(split["cash"] or "0"), payer=p.channel, user_name=p.user_name, id_no=p.id_no,
            id_type=p.id_type, created_at=datetime.fromisoformat(d["channel_time"]),
            geo_location=p.channel.geo_location or settings_of(ctx).geo_location, chrg_bchno=d.get("chrgBchno"))

    def _stop_before_payment(self, ctx, code: str, message: str):
        """The channel refused the order: the centre's order is placed and payable, so it is
        revoked (6401) before the payment ends failed."""
        return Goto("revoke", data={"end": {"code": code, "message": message}})

    # -- prepay (WeChat, cash > 0) -------------------------------------------------------------
    def step_prepay(self, ctx):
        client = ctx.service("wechatpay")
        r = ctx.call(client.send, client.prepare_jsapi_prepay(orders.wechat_prepay(self._facts(ctx))))
        if r.ok:
            return Goto("channel_order", data={"prepay_id": r.data.prepay_id})
        if r.refused:
            return self._stop_before_payment(ctx, "CHANNEL_ORDER_REJECTED",
                                             f"WeChat refused the cash prepay: {r.code} {r.message}")
        return busy(r) if r.try_again else Retry("PREPAY_FAILED", r.message or "the prepay failed")

    # -- channel_order (NOT safe to repeat) ------------------------------------------------------
    def step_channel_order(self, ctx):
        channel = ctx.data["channel"]
        client = channel_client(ctx, channel)
        f = self._facts(ctx)
        if channel == WECHAT:
            prepared = client.prepare_medins_order(orders.wechat_mixed_order(f, ctx.data.get("prepay_id")))
        else:
            prepared = client.prepare_medical_order(orders.alipay_order(f))
        r = ctx.call(client.send, prepared)
        if r.ok:
            return self._cashier_ready(ctx, r.data)
        if r.try_again:
            return busy(r)
        if r.refused:
            return self._stop_before_payment(ctx, "CHANNEL_ORDER_REJECTED",
                                             f"{channel} refused the order: {r.code} {r.message}")
        return InDoubt("CHANNEL_ORDER_UNKNOWN", r.message or f"{r.interface} outcome unknown")

    def resolve_channel_order(self, ctx):
        d = ctx.data
        channel = d["channel"]
        r = self._query_channel(ctx)
        if r.ok:
            foreign = self._foreign_order(ctx, r.data)
            if foreign:
                return foreign
            if channel == WECHAT:
                return self._cashier_ready(ctx, r.data)
            # Alipay's query has no pay_url (§7.4): the order exists, so the same create
            # again (same out_trade_no and body) gives its answer back; it cannot make a
            # second order under one out_trade_no.
            return Goto("channel_order")
        if (wx_oc if channel == WECHAT else ali_oc).is_not_found(r) or _alipay_no_order(r):
            return ctx.settle_window_wait(settings_of(ctx).settle_seconds, "NOT_SETTLED_YET",
                                          f"the {channel} order {d['out_trade_no']} not seen yet") \
                or Goto("channel_order")      # never booked: a first send as far as the channel knows
        return InDoubt("QUERY_FAILED", f"{r.interface} after a lost channel order failed: {r.message}")

    def _query_channel(self, ctx) -> CallResult:
        d = ctx.data
        client = channel_client(ctx, d["channel"])
        if d["channel"] == WECHAT:
            if d.get("mix_trade_no"):
                return ctx.call(client.send, client.prepare_query_medins_order(mix_trade_no=d["mix_trade_no"]))
            return ctx.call(client.send, client.prepare_query_medins_order(out_trade_no=d["out_trade_no"]))
        return ctx.call(client.send, client.prepare_medical_query(MedicalQueryRequest(out_trade_no=d["out_trade_no"])))

    def _foreign_order(self, ctx, order) -> Optional[Hold]:
        """The channel's order under our out_trade_no must be this payment's: its pay_order_id
        (and serial_no / med_org_ord) ours.  Another one (a payment of the other kind under the
        same business key, from before authorize refused such keys) is held: its cashier is
        not this payment's, and money may be unmatched."""
        d = ctx.data
        theirs = {"pay_order_id": (getattr(order, "pay_order_id", None), d["payOrdId"]),
                  "serial_no": (getattr(order, "serial_no", None), ctx.row.business_key),
                  "med_org_ord": (getattr(order, "med_org_ord", None), ctx.row.business_key)}
        odd = {k: v for k, (v, ours) in theirs.items() if v is not None and v != ours}
        if not odd:
            return None
        said = ", ".join(f"{k} {v}" for k, v in odd.items())
        return Hold("CHANNEL_ORDER_MISMATCH", f"the {d['channel']} order under {d['out_trade_no']} is another "
                                              f"payment's ({said}; this payment's payOrdId is {d['payOrdId']}): "
                                              f"money may be unmatched; check both payments at the channel and the "
                                              f"centre, revoke this payment's order {d['payOrdId']} if unpaid, then "
                                              f"resolve this row")

    def _cashier_ready(self, ctx, order):
        d = ctx.data
        foreign = self._foreign_order(ctx, order)
        if foreign:
            return foreign
        if d["channel"] == WECHAT:
            client = ctx.service("wechatpay")
            cashier = orders.wechat_cashier(client, order.mix_trade_no, d.get("prepay_id"))
            ids = {"mix_trade_no": order.mix_trade_no}
        else:
            cashier = orders.alipay_cashier(order.pay_url)
            ids = {k: v for k, v in (("chnl_ord_sn", order.chnl_ord_sn),) if v}
        channel = {"channel": d["channel"], "out_trade_no": d["out_trade_no"], **ids, "cashier": cashier}
        row = self._order_row(ctx, self._ordered_status(d), d["split"], channel)
        # Nobody can pay before the mini-program has this row, which commits with this
        # transition: the first look at both sides is after [mobilepay] poll_first_seconds, or
        # sooner when a callback (6302, the channel's) wakes the request.
        return Wait("await_payment", settings_of(ctx).poll_first_seconds,
                    data={**ids, "channel_ordered": True, "polls": 0}, inbox=[row])

    # -- the channel's view, for await_payment ------------------------------------------------
    def _channel_status(self, ctx) -> tuple[CallResult, Optional[ChannelStatus]]:
        r = self._query_channel(ctx)
        if not r.ok:
            return r, None
        if ctx.data["channel"] == WECHAT:
            return r, wechat_status(r.data)
        return r, alipay_status(r.data, has_insurance=True)

    def _transaction_id(self, ctx) -> Optional[str]:
        """WeChat's mixed order carries no transaction_id (§2.3): the cash payment's
        TRANSACTION.SUCCESS callback has it (recorded once its signature verified, §2.1), else
        the cash payment's query.  Only the order book reads it (the bill's trade number); the
        payment was judged paid by 6301 and the mixed order's query.  A failed query changes
        nothing."""
        paid = ctx.port.notice(notices.WECHAT_TRADE, notices.notice_key(ctx.data["out_trade_no"]))
        if paid and paid.get("trade_state") == "SUCCESS" and paid.get("transaction_id"):
            return paid["transaction_id"]
        client = ctx.service("wechatpay")
        r = ctx.call(client.send, client.prepare_query_transaction(ctx.data["out_trade_no"]))
        return r.data.transaction_id if r.ok else None

    # -- close_channel ---------------------------------------------------------------------------
    def step_close_channel(self, ctx):
        d = ctx.data
        end = d.get("end") or {"code": "EXPIRED", "message": "the order was revoked"}
        note = ""
        if d["channel"] == WECHAT and d.get("prepay_id") and not end.get("no_close"):
            client = ctx.service("wechatpay")
            r = ctx.call(client.send, client.prepare_close_transaction(d["out_trade_no"]))
            if r.try_again or r.outcome is Outcome.UNKNOWN:
                return Retry("CLOSE_FAILED", f"{r.interface}: {r.message}")
            if r.refused and not wx_oc.is_not_found(r):
                note = f"; closing the WeChat cash order answered {r.code} {r.message}"
        elif d["channel"] == ALIPAY:
            note = "; Alipay has no close for the medical order (channels.md §7.2): it cannot be paid once the " \
                   "centre's order is revoked"
        r, status = self._channel_status(ctx)
        if status is None and not ((wx_oc if d["channel"] == WECHAT else ali_oc).is_not_found(r)
                                   or _alipay_no_order(r)):
            return Retry("QUERY_FAILED", f"{r.interface}: {r.message}")
        if status is not None and status.insurance == "paid":
            return Hold("CHANNEL_DISAGREES", f"the centre's order is revoked, but {status.text}: check both "
                                             f"before refunding or billing")
        if status is not None and status.cash == "paid" and not d.get("cash_done"):
            # (With cash_done the cash is back already: the channel's order view lags its refund.)
            spec = cash_spec(ctx, channel=d["channel"], tag=keys.REVERSAL, key=ctx.row.business_key,
                             out_trade_no=d["out_trade_no"], amount=Decimal(d["split"]["cash"]),
                             paid=Decimal(d["split"]["cash"]), purpose="failed_payment",
                             reason="医保支付未完成，退还自费部分")
            return Goto("cash_refund", data={"cash_leg": spec, "end": {
                "code": end["code"], "message": end["message"] + "; the cash taken meanwhile was refunded",
                "no_close": True, "closed": True}})
        return self._end_failed(ctx, end["code"], end["message"] + note, d.get("cash_done"))

    def _end_failed(self, ctx, code: str, message: str, cash_done: Optional[dict]):
        """The payment ends failed.  When mibridge gave the cash back itself (``cash_done``: the
        insurance part failed after the cash was taken, or the cash was paid after the centre's
        order ended), the failed row names that refund (the HIS and finance see the cash went
        back, and under which number) and flow_data keeps ``cash_done``: a late callback of that
        cash or of its refund is then matched, not held (bridge/channels/notice_check.py)."""
        if not cash_done:
            return Fail(code, message)
        d = ctx.data
        c = d["cash_leg"]
        message = f"{message} ({c['channel']} refund {cash_done['number']})"
        result = {"payOrdId": d["payOrdId"], "channel": c["channel"], "out_trade_no": c["out_trade_no"],
                  "out_refund_no": cash_done["number"], "refund_id": cash_done.get("refund_id"),
                  "refund_time": cash_done.get("success_time"), "cash_refunded": c["amount"]}
        return Fail(code, message, data={"cash_done": cash_done}, inbox=[InboxRow(
            result_type="error", outcome="failed", error_code=code, error_message=message, order_id=d["payOrdId"],
            result=result)])

    @staticmethod
    def _key_clash(ctx) -> Optional[Fail]:
        """Business keys are per kind in the outbox, but one key is one medOrgOrd at the centre
        and one out_trade_no at the channel (bridge/channels/keys.py): a second payment of the
        other kind under it would meet the first one's order there (6201 answers a repeated
        medOrgOrd with the same order, §9; a channel query by out_trade_no finds the first's).
        The earlier request keeps the key (docs/mobilepay.md "Business keys")."""
        key = ctx.row.business_key
        other = ctx.port.find_request(tuple(k for k in PAYMENT_KINDS if k != ctx.row.kind), key)
        if other is None or other["id"] > ctx.row.id:
            return None
        return Fail("BAD_INPUT", f"business key {key!r} is already used by {other['kind']} request #{other['id']} "
                                 f"({other['state']}): the key is the order number at the centre and the channel, "
                                 f"unique across payment kinds; enqueue this payment under a new business key "
                                 f"(nothing was sent)")

    @staticmethod
    def _ordered_status(d: dict):
        from .messages import OrdStas
        return OrdStas(d.get("ordStas") or OrdStas.AWAITING_PAYMENT.value)


def _alipay_no_order(r: CallResult) -> bool:
    """Alipay's medical query answers "no such order" with a business code (the real sub_code is
    not public: §10.4 item 10); a 40004 refusal of the query by out_trade_no is read as not found."""
    return r.interface in (_ali(ali_oc.MEDICAL_QUERY), _ali(ali_oc.MEDICAL_TRADE_QUERY)) and r.refused \
        and ((r.code or "").endswith("NOT_EXIST") or "不存在" in (r.message or ""))


__all__ = ["ChannelPaymentSteps", "AUTH_CALLS", "PREPAY_CALLS", "ORDER_CALLS", "ORDER_QUERIES", "CLOSE_CALLS",
           "STATUS_CALLS"]
