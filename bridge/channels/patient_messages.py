"""The vocabulary of patient messages (issue 12, seed items 10, 11, 25, 26): the events a
template may be configured for, and the values a template's fields may be filled with.

The configuration ([wechatpay.templates.<event>], [alipay.templates.<event>]) is checked
against these lists at start, so a misspelt event or value stops the daemon instead of
silently sending nothing.  The flows supply exactly these values when they send
(bridge/wechatpay/messenger.py PatientMessage.values, bridge/alipay/messages.py
TemplateMessageRequest.values); a value a flow cannot supply for an event is an empty
field, which the clients refuse before sending.

``message_request(...)`` builds the ``patient.message`` request a payment flow adds with
its transition (bridge/engine/flow.py ``enqueue=[...]``); bridge/channels/message_flow.py
sends it, at most once per event.  The request:

    kind          patient.message
    business_key  msg:<event>:<source outbox id>   (also the serial key): one per event
    payload       {"event", "channel": "wechat"|"alipay", "source_kind", "source_key",
                   "source_outbox_id", "recipient": {"openid"[, "official_openid"]} (WeChat)
                   or {"user_id" | "open_id"} (Alipay), "values": {<VALUES name>: text}}
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping, Optional

from bridge.db.rows import NewRequest

EVENTS = {
    "registration_paid": "a registration (挂号) the HIS took",
    "outpatient_paid": "an outpatient settlement the HIS took",
    "refund_done": "a refund that completed (both legs)",
}

VALUES = {
    "patient_name": "the patient's name (masked in the journal)",
    "hospital_name": "the hospital's name",
    "dept_name": "department",
    "doctor_name": "doctor",
    "visit_time": "time of the visit or appointment",
    "business_key": "the HIS's business key of the payment or refund",
    "order_no": "the channel order number (out_trade_no)",
    "amount": "the amount paid, or refunded (yuan, e.g. 12.50)",
    "insurance_amount": "the insurance part of it (fund + personal account)",
    "cash_amount": "the self-pay (cash) part of it",
    "paid_time": "when it was paid",
    "refund_time": "when the refund completed",
    "refund_reason": "the refund's reason as the HIS gave it",
}

# ---------------------------------------------------------------- the request

KIND_MESSAGE = KIND = "patient.message"
CHANNELS = ("wechat", "alipay")
# What names the patient on each channel (the builder's `recipient`): WeChat the
# mini-program's openid, and for an official-account (公众号) template the account's own
# openid (channels.md §4.3: a mini-program openid is refused there); Alipay the 2088… user
# id or the open_id, as [alipay] message_user_id says (§9).
RECIPIENT_KEYS = {"wechat": ("openid", "official_openid"), "alipay": ("user_id", "open_id")}
SOURCE_KEY_MAX = 64
VALUE_MAX = 200        # a template field is short text (WeChat thing: 20 characters, §4.2)


def business_key(event: str, source_outbox_id: int) -> str:
    """One message per event of one source request: a repeated transition adds nothing
    (bridge/db/rows.py NewRequest)."""
    return f"msg:{event}:{int(source_outbox_id)}"


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, date, datetime)):
        raise ValueError(f"value {name!r} must be text, a whole number, a Decimal or a date/time, "
                         f"not {type(value).__name__}")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.01'))}"
    return str(value).strip()


def check_message(doc: Mapping[str, Any], *, building: bool = False) -> dict:
    """The payload of a patient.message request, checked; raises ValueError naming the field.
    The builder and the flow (bridge/channels/message_flow.py) check with this one function.

    ``building``: only what a flow's code decides (the event, the channel, value names and
    types, the source, the recipient's keys) - the builder runs inside a payment's transition,
    and a problem of the patient's data (no openid, an overlong value) must not stop a
    payment: the message fails on its own (NO_RECIPIENT, BAD_INPUT) and money goes on."""
    event, channel = doc.get("event"), doc.get("channel")
    if event not in EVENTS:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    for name in ("source_kind", "source_key"):
        v = doc.get(name)
        if not isinstance(v, str) or not v.strip() or len(v) > SOURCE_KEY_MAX:
            raise ValueError(f"{name} must be 1-{SOURCE_KEY_MAX} characters, not {v!r}")
    source_id = doc.get("source_outbox_id")
    if isinstance(source_id, bool) or not isinstance(source_id, int) or source_id <= 0:
        raise ValueError(f"source_outbox_id must be the source request's outbox id, not {source_id!r}")
    recipient = doc.get("recipient")
    allowed = RECIPIENT_KEYS[channel]
    if not isinstance(recipient, Mapping):
        raise ValueError(f"recipient must be an object: {{{' or '.join(repr(k) for k in allowed)}: ...}}")
    unknown = [k for k in recipient if k not in allowed]
    if unknown:
        raise ValueError(f"recipient of a {channel} message takes {', '.join(allowed)}, not {', '.join(unknown)}")
    who = {k: v for k, v in recipient.items() if v not in (None, "")}
    if not all(isinstance(v, str) for v in who.values()):
        raise ValueError(f"recipient must give {' or '.join(allowed)} as text")
    values = doc.get("values")
    if not isinstance(values, Mapping):
        raise ValueError("values must be an object: {value name: text}")
    bad = [k for k in values if k not in VALUES]
    if bad:
        raise ValueError(f"unknown value name(s) {', '.join(map(repr, sorted(bad)))}; known: {', '.join(VALUES)}")
    texts = {k: _text(k, v) for k, v in values.items() if v not in (None, "")}
    texts = {k: v for k, v in texts.items() if v}
    if not building:
        if any(len(v) > 128 for v in who.values()):
            raise ValueError("recipient ids are at most 128 characters")
        long = sorted(k for k, v in texts.items() if len(v) > VALUE_MAX)
        if long:
            raise ValueError(f"value(s) {', '.join(long)} longer than {VALUE_MAX} characters")
    return {"event": event, "channel": channel, "source_kind": doc["source_kind"], "source_key": doc["source_key"],
            "source_outbox_id": source_id, "recipient": who, "values": texts}


def template_fields(config: Any, event: str) -> Optional[Mapping[str, str]]:
    """The template's field map (template key -> value name) for ``event`` in a channel
    client's config (WechatPayConfig / AlipayConfig ``templates``), or None when no message
    is configured for it."""
    template = (getattr(config, "templates", None) or {}).get(event)
    return None if template is None else template.fields


def message_request(event: str, *, channel: str, source_kind: str, source_key: str, source_outbox_id: int,
                    recipient: Mapping[str, Any], values: Mapping[str, Any],
                    fields: Optional[Mapping[str, str]] = None) -> NewRequest:
    """The patient.message request a payment flow adds with its transition (``enqueue=[...]``)
    when the HIS takes a registration or an outpatient settlement, or a refund completes.

    Raises ValueError at build time for an event not in EVENTS, a value name not in VALUES,
    a channel, value type or recipient key that does not fit: a flow bug shows where it is
    made.  Never for the patient's data (check_message ``building``).  Values are kept as text
    (Decimal amounts with 2 places); an empty one is left out.  With ``fields`` (the template's
    map, ``template_fields``) only the values the template shows are kept: the outbox row holds
    no more of the patient than the message does.
    """
    if fields is not None:
        wanted = set(fields.values())
        values = {k: v for k, v in values.items() if k in wanted}
    payload = check_message({"event": event, "channel": channel, "source_kind": source_kind,
                             "source_key": source_key, "source_outbox_id": source_outbox_id,
                             "recipient": recipient, "values": values}, building=True)
    key = business_key(event, source_outbox_id)
    return NewRequest(KIND_MESSAGE, key, payload, serial_key=key)
