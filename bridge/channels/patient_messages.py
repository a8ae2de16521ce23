"""The vocabulary of patient messages (issue 12, seed items 10, 11, 25, 26): the events a
template may be configured for, and the values a template's fields may be filled with.

The configuration ([wechatpay.templates.<event>], [alipay.templates.<event>]) is checked
against these lists at start, so a misspelt event or value stops the daemon instead of
silently sending nothing.  The flows supply exactly these values when they send
(bridge/wechatpay/messenger.py PatientMessage.values, bridge/alipay/messages.py
TemplateMessageRequest.values); a value a flow cannot supply for an event is an empty
field, which the clients refuse before sending.
"""
from __future__ import annotations

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


# ---------------------------------------------------------------- the request a flow adds

KIND = "patient.message"        # the flow that sends it is bridge/channels' patient-message flow


def business_key(event: str, source_outbox_id: int) -> str:
    """One message per event of one request: the outbox refuses a second request with this
    kind and key, so a repeated transition sends nothing twice."""
    return f"msg:{event}:{source_outbox_id}"


def template_fields(config, event: str) -> Optional[Mapping[str, str]]:
    """The template's field map for ``event`` in a channel client's config (WechatPayConfig /
    AlipayConfig ``templates``), or None when no message is configured for it."""
    templates = getattr(config, "templates", None) or {}
    template = templates.get(event)
    return None if template is None else template.fields


def message_request(*, event: str, channel: str, source_kind: str, source_key: str, source_outbox_id: int,
                    recipient: Mapping[str, str], values: Mapping[str, Any],
                    fields: Optional[Mapping[str, str]] = None) -> NewRequest:
    """The patient.message request for one event (the contract with its flow):

        kind          patient.message
        business_key  msg:<event>:<source outbox id>   (serial key the same)
        payload       {"event", "channel", "source_kind", "source_key", "source_outbox_id",
                       "recipient": {"openid"} | {"user_id"} | {"open_id"}, "values": {...}}

    ``values`` keeps only names of VALUES, and only those the template uses when ``fields``
    (its key -> value name map) is given: the outbox row holds no more of the patient than
    the message shows.  No ID number is ever a value."""
    if event not in EVENTS:
        raise ValueError(f"unknown message event {event!r}")
    wanted = set(fields.values()) if fields is not None else set(VALUES)
    kept = {k: str(v) for k, v in values.items() if k in VALUES and k in wanted and v not in (None, "")}
    key = business_key(event, source_outbox_id)
    return NewRequest(KIND, key, {"event": event, "channel": channel, "source_kind": source_kind,
                                  "source_key": source_key, "source_outbox_id": source_outbox_id,
                                  "recipient": dict(recipient), "values": kept}, serial_key=key)
