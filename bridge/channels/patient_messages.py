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
