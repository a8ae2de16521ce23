"""A verified channel callback, recorded once in ``mi_notice`` and waking its request.

The HTTP side (daemon/channel_callbacks.py) verifies a callback first (WeChat:
bridge/wechatpay/callback.py, Alipay: bridge/alipay/notify.py) and hands the typed event
here.  This module decides what is kept, under which key, and whose request it is:

    interface        notice_key (the channel's natural key)      whose request
    wechat.medins    mix_trade_no                                 payment (out_trade_no, §2.5)
    wechat.trade     out_trade_no                                 payment (TRANSACTION.SUCCESS, §2.1)
    wechat.refund    out_refund_no|status                         refund or reversal (REFUND.*, §2.6)
    wechat.other     event id                                     none (an event type we do not act on)
    alipay.trade     out_trade_no|trade_status|medical_pay_status payment (§6.4, §7.2)
    alipay.refund    out_trade_no|out_biz_no                      refund or reversal (§7.5)

(A key longer than mi_notice.notice_key's 64 characters is replaced by its SHA-256; the
natural ids are in the record either way.)  A repeat only counts (Store.record_notice).
The request is found by decoding our own number (bridge/channels/keys.py): the payment's
business key from out_trade_no, the refund's from out_refund_no / out_request_no.

Recording never moves a request on: an open request is made due now (Store.poke) so that
its flow compares the callback with its own query; a disagreement holds, never settles.
A callback for a request that has ended, or one we cannot place, is recorded and handed
to ``on_unmatched`` (the flows' notice check, as bridge/mobilepay/notice_check.py does for
6302), called on every delivery, so it must be idempotent.

What is kept: ids, statuses, amounts (yuan, as text) and times.  Never pay_auth_no, the
payer's encrypted name and ID digest, openid, or the passthrough contents.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping, Optional

from bridge.alipay.notify import TradeNotice
from bridge.wechatpay.callback import CashPaid, Event, MedInsPaid, OtherEvent, RefundChanged

from . import keys

WECHAT_MEDINS = "wechat.medins"
WECHAT_TRADE = "wechat.trade"
WECHAT_REFUND = "wechat.refund"
WECHAT_OTHER = "wechat.other"
ALIPAY_TRADE = "alipay.trade"
ALIPAY_REFUND = "alipay.refund"
INTERFACES = (WECHAT_MEDINS, WECHAT_TRADE, WECHAT_REFUND, WECHAT_OTHER, ALIPAY_TRADE, ALIPAY_REFUND)

# The request kinds a channel number may belong to: the channel legs are steps of the
# mobile-pay payment and refund flows (bridge/mobilepay/kinds.py; a test checks they agree).
# Written out, not imported: the mobile-pay flows use this package (keys, the leg modules),
# so it must not use them back (import-linter: no cycles between packages).
CHANNEL_PAYMENT_KINDS: tuple[str, ...] = ("mobilepay.outpatient", "mobilepay.registration")
CHANNEL_REFUND_KINDS: tuple[str, ...] = ("mobilepay.refund",)

CLOSED = ("done", "failed", "resolved")
NOTICE_KEY_MAX = 64


@dataclass(frozen=True)
class Target:
    """The request a callback is about."""

    kinds: tuple[str, ...]
    business_key: str
    what: str                 # "payment", "refund", "reversal"
    attempt: int = 0


@dataclass(frozen=True)
class ChannelNotice:
    interface: str
    notice_key: str
    natural: str                          # the natural key, for the log
    target: Optional[Target]              # None: not one of our numbers
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    new: bool                             # False: a repeat, only counted
    outbox_id: Optional[int]
    state: Optional[str]                  # the request's state, when found
    verdict: str                          # "woken" (made due), "open" (running or held), "closed", "unknown"
    note: Optional[str] = None            # what on_unmatched said


Unmatched = Callable[[Any, ChannelNotice, Optional[dict]], Optional[str]]


def notice_key(*parts: Optional[str]) -> str:
    text = "|".join("" if p is None else str(p) for p in parts)
    if len(text) <= NOTICE_KEY_MAX:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:NOTICE_KEY_MAX - 7]


def _text(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return str(v.quantize(Decimal("0.01")))
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "value"):             # an enum
        return str(v.value)
    return str(v)


def _pick(obj: Any, names: tuple[str, ...]) -> dict:
    return {n: _text(getattr(obj, n)) for n in names if getattr(obj, n, None) is not None}


def _payment(number: Optional[str], prefix: str) -> Optional[Target]:
    ref = keys.parse(number, prefix)
    if ref is None or ref.tag != keys.PAYMENT:
        return None
    return Target(CHANNEL_PAYMENT_KINDS, ref.business_key, "payment", ref.attempt)


def _refund(number: Optional[str], prefix: str) -> Optional[Target]:
    ref = keys.parse(number, prefix)
    if ref is None or ref.tag == keys.PAYMENT:
        return None
    if ref.tag == keys.REVERSAL:      # made by the payment's own flow
        return Target(CHANNEL_PAYMENT_KINDS, ref.business_key, "reversal", ref.attempt)
    return Target(CHANNEL_REFUND_KINDS, ref.business_key, "refund", ref.attempt)


def _envelope(event) -> dict:
    e = event.envelope
    return {"event_id": e.event_id, "event_type": e.event_type, "create_time": _text(e.create_time)}


# ---------------------------------------------------------------- WeChat Pay

_MEDINS_FIELDS = ("mix_trade_no", "out_trade_no", "serial_no", "pay_order_id", "mix_pay_type", "mix_pay_status",
                  "self_pay_status", "med_ins_pay_status", "paid_time", "total_fee", "med_ins_gov_fee",
                  "med_ins_self_fee", "med_ins_other_fee", "med_ins_cash_fee", "wechat_pay_cash_fee")
_TRADE_FIELDS = ("out_trade_no", "transaction_id", "trade_state", "success_time", "total", "payer_total")
_REFUND_FIELDS = ("out_refund_no", "refund_id", "out_trade_no", "transaction_id", "status", "refund", "total",
                  "payer_refund", "success_time", "create_time", "channel")


def wechat_notice(event: Event, prefix: str = keys.DEFAULT_PREFIX) -> ChannelNotice:
    """The mi_notice record of a verified WeChat Pay callback."""
    if isinstance(event, MedInsPaid):
        o = event.order
        record = dict(_envelope(event), **_pick(o, _MEDINS_FIELDS))
        target = _payment(o.out_trade_no, prefix)
        if target is not None and o.serial_no not in (None, keys.serial_no(target.business_key)):
            # Our mixed orders carry serial_no = medOrgOrd = the business key: a person must see this.
            record["serial_no_differs"] = True
        return ChannelNotice(WECHAT_MEDINS, notice_key(o.mix_trade_no), f"mix_trade_no {o.mix_trade_no}",
                             target, record)
    if isinstance(event, CashPaid):
        t = event.transaction
        return ChannelNotice(WECHAT_TRADE, notice_key(t.out_trade_no), f"out_trade_no {t.out_trade_no}",
                             _payment(t.out_trade_no, prefix), dict(_envelope(event), **_pick(t, _TRADE_FIELDS)))
    if isinstance(event, RefundChanged):
        r = event.refund
        record = dict(_envelope(event), **_pick(r, _REFUND_FIELDS))
        return ChannelNotice(WECHAT_REFUND, notice_key(r.out_refund_no, r.status.value),
                             f"out_refund_no {r.out_refund_no} {r.status.value}", _refund(r.out_refund_no, prefix),
                             record)
    if isinstance(event, OtherEvent):
        return ChannelNotice(WECHAT_OTHER, notice_key(event.envelope.event_id),
                             f"{event.envelope.event_type} {event.envelope.event_id}", None, _envelope(event))
    raise TypeError(f"not a WeChat Pay event: {type(event).__name__}")


# ---------------------------------------------------------------- Alipay

_ALIPAY_FIELDS = ("notify_id", "notify_type", "out_trade_no", "trade_no", "trade_status", "total_amount",
                  "receipt_amount", "refund_fee", "out_biz_no", "gmt_payment", "gmt_refund")
# The medical order's fields of a notify (§7.2: the format of the call_url notify is not
# public; these are the §7.4 query's names, kept when present).
_MEDICAL_PARAMS = ("pay_order_id", "med_org_ord", "chnl_ord_sn", "medical_pay_status", "own_pay_status",
                   "gov_amount", "account_amount", "real_amount", "seller_id")


def alipay_notice(notice: TradeNotice, prefix: str = keys.DEFAULT_PREFIX) -> ChannelNotice:
    """The mi_notice record of a verified Alipay notify."""
    record = _pick(notice, _ALIPAY_FIELDS)
    record.update({n: notice.params[n] for n in _MEDICAL_PARAMS if notice.params.get(n)})
    status = notice.trade_status.value if notice.trade_status else None
    if notice.is_refund:
        if notice.out_biz_no:
            key = notice_key(notice.out_trade_no, notice.out_biz_no)
            natural = f"out_trade_no {notice.out_trade_no} out_request_no {notice.out_biz_no}"
        else:
            # A refund made without an out_request_no is none of ours (we always send one).
            key = notice_key(notice.out_trade_no, f"refund_fee={_text(notice.refund_fee)}")
            natural = f"out_trade_no {notice.out_trade_no} refund without out_request_no"
        return ChannelNotice(ALIPAY_REFUND, key, natural, _refund(notice.out_biz_no, prefix), record)
    medical = notice.params.get("medical_pay_status") or None
    return ChannelNotice(ALIPAY_TRADE, notice_key(notice.out_trade_no, status, medical),
                         f"out_trade_no {notice.out_trade_no} {status or ''} {medical or ''}".strip(),
                         _payment(notice.out_trade_no, prefix), record)


# ---------------------------------------------------------------- record and wake

def record_and_wake(store, notice: ChannelNotice, on_unmatched: Optional[Unmatched] = None) -> Recorded:
    """Record the notice once (a repeat only counts) and make its open request due now.
    Raises what the database raises: the caller answers 5xx so that the channel resends."""
    t = notice.target
    row = store.find_request(t.kinds, t.business_key) if t is not None else None
    new = store.record_notice(notice.interface, notice.notice_key, t.business_key if t else None,
                              row["id"] if row else None, notice.record)
    if row is not None and row["state"] not in CLOSED:
        # pending / in_doubt: due now.  running: its flow is at work and reads the notice at
        # its next query; held: a person's (the notice is there for them to see).
        woken = store.poke(t.kinds, t.business_key) > 0
        return Recorded(new, row["id"], row["state"], "woken" if woken else "open")
    verdict = "closed" if row is not None else "unknown"
    note = on_unmatched(store, notice, row) if on_unmatched is not None else None
    return Recorded(new, row["id"] if row else None, row["state"] if row else None, verdict, note)


def describe(notice: ChannelNotice, result: Recorded) -> str:
    """One log line's worth: what arrived and what became of it."""
    t = notice.target
    whose = f"{t.what} {t.business_key!r}" if t else "no request of ours"
    where = f"request #{result.outbox_id} ({result.state})" if result.outbox_id else "no such request"
    again = "" if result.new else " again"
    return f"{notice.interface} {notice.natural} recorded{again}: {whose}, {where}, {result.verdict}" + \
        (f"; {result.note}" if result.note else "")


def records_of(store, interface: str, business_key: str) -> list[Mapping[str, Any]]:
    """Every recorded notice of one interface for one business key, oldest first (for the
    flows and for people)."""
    rows = store.query("""SELECT notice_key, notice_json, received_count FROM mi_notice
                           WHERE interface = :i AND business_key = :b ORDER BY id""",
                       {"i": interface, "b": business_key})
    return [{"notice_key": r[0], "notice": json.loads(r[1]), "received_count": int(r[2])} for r in rows]
