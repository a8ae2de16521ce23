"""Mobile payment 2.0 through the tables: where each piece is, and the list of flows.

    kinds.py         the request kinds
    settings.py      [mobilepay] settings of the flows (deadlines, polls, settle window)
    payloads.py      what the HIS writes, parsed and checked before anything is sent
    centre.py        the calls the flows make to the centre (6301 query, 6401 revoke,
                     6203 refund) and how their answers are read (not_ok, the settle
                     window, a 6302 notice that 6301 contradicts)
    payment.py       mobilepay.outpatient / .registration: 1101 -> 6201 -> 6202 -> 6301
                     polls -> the HIS takes the settlement (or 6203 repair, 6401 revoke).
                     The 6202 call is PaymentFlow.step_order; what happens when its
                     answer is lost is PaymentFlow.resolve_order (6301, settle window)
    refund.py        mobilepay.refund: 6203 within what was paid
    revoke.py        mobilepay.revoke: 6401 of an unpaid order
    notice_check.py  mobilepay.notice_check: a 6302 notice for a request that ended
    client.py, messages.py, envelope.py, config.py   the centre's client (no flow logic)
    callback.py      a 6302 notice verified (daemon/notice_endpoint.py records it)

State tables: `mibridge flows`.  Tests of every decision: tests/flows_unit/test_mobilepay_*.py.

`flows(settings)` is the one list the daemon's wiring and `mibridge flows` take.  The
names below were importable from this module before it was split; they still are.
"""
from __future__ import annotations

from bridge.engine.flow import Flow

from .centre import NOTICE, PAY_TOKEN, SECRET_KEYS  # noqa: F401
from .kinds import (KIND_NOTICE_CHECK, KIND_OUTPATIENT, KIND_REFUND, KIND_REGISTRATION,  # noqa: F401
                    KIND_REVOKE, PAYMENT_KINDS)
from .notice_check import NoticeCheckFlow
from .payloads import FeeLine, PaymentRequest, RefundPayload, parse_lines, parse_payment  # noqa: F401
from .payment import PaymentFlow
from .refund import RefundFlow
from .revoke import RevokeFlow
from .settings import MobilePaySettings


def flows(settings: MobilePaySettings) -> list[Flow]:
    return [PaymentFlow(KIND_OUTPATIENT, settings), PaymentFlow(KIND_REGISTRATION, settings),
            RefundFlow(settings), RevokeFlow(settings), NoticeCheckFlow(settings)]
