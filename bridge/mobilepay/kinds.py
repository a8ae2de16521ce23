"""The mobile-pay request kinds: what the HIS writes in mi_outbox.kind."""
from __future__ import annotations

KIND_OUTPATIENT = "mobilepay.outpatient"        # bridge/mobilepay/payment.py
KIND_REGISTRATION = "mobilepay.registration"    # the same flow, for a registration fee
KIND_REFUND = "mobilepay.refund"                # bridge/mobilepay/refund.py
KIND_REVOKE = "mobilepay.revoke"                # bridge/mobilepay/revoke.py
KIND_NOTICE_CHECK = "mobilepay.notice_check"    # bridge/mobilepay/notice_check.py (enqueued by the 6302 endpoint)
PAYMENT_KINDS = (KIND_OUTPATIENT, KIND_REGISTRATION)
