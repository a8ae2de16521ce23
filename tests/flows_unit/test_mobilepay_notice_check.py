"""Every decision of mobilepay.notice_check (bridge/mobilepay/notice_check.py): a verified
6302 notice for a payment request that already ended - quiet when money is matched,
held for a person when it may not be."""
from __future__ import annotations

import pytest

from bridge.engine.flow import Fail, Finish, Hold, Retry
from bridge.engine.testing import not_sent, refused, unknown
from bridge.mobilepay.kinds import KIND_REGISTRATION
from bridge.mobilepay.messages import OrdStas
from bridge.mobilepay.notice_check import NoticeCheckFlow

from .mp import ORDER, ORDERED, SETTLED, SHIPPED, add_payment, notice, query, script

CHECK = {"payment_key": "PAY-1", "payOrdId": ORDER}


@pytest.fixture
def s(mp_client):
    s = script(NoticeCheckFlow(SHIPPED), mp_client, key="PAY-1")
    s.port.set_notice("6302", ORDER, notice())
    return s


def _is(t, kind, code=None):
    assert isinstance(t, kind), t
    if code is not None:
        assert t.code == code, t
    return t


@pytest.mark.parametrize("state, answer, want", [
    ("done", query(OrdStas.SETTLED), (Finish, None)),                         # the HIS took it
    ("done", query(OrdStas.SELF_PAY_PARTLY_REFUNDED_ONLY), (Finish, None)),   # took it, refunded a part since
    ("failed", query(OrdStas.REFUNDED), (Finish, None)),                      # refunded in full: no news
    ("failed", query(OrdStas.SETTLED), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ("resolved", query(OrdStas.SETTLED), (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
    ("failed", query(OrdStas.REVOKED), (Hold, "NOTICE_CONTRADICTS_STATUS")),
    ("failed", query(OrdStas.REFUND_IN_PROGRESS), (Retry, "REFUND_IN_PROGRESS")),
    ("failed", unknown("6301"), (Retry, "QUERY_FAILED")),           # 6301 is a read: asked again
    ("failed", refused("6301"), (Retry, "QUERY_FAILED")),
    ("failed", not_sent("6301"), (Retry, "QUERY_FAILED")),
])
def test_check_by_what_6301_says(s, state, answer, want):
    add_payment(s.port, state=state, step="await_payment", flow_data=ORDERED)
    s.answer("6301", answer)
    t = _is(s.step("check", CHECK), *want)
    assert s.sent == ["6301"]
    if isinstance(t, Finish):
        assert t.inbox == [] and "matched" in t.data          # quiet: nobody is alerted


def test_check_after_a_reversal_the_centre_still_paid_is_held(s):
    add_payment(s.port, state="failed", step="repair")
    s.port.set_inbox(50, "reversal", consumed=False)
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(s.step("check", CHECK), Hold, code="NOTICE_FOR_CLOSED_PAYMENT")
    assert "check the refund" in t.message


@pytest.mark.parametrize("state, reversal, want", [
    ("done", False, (Finish, None)),
    ("failed", True, (Finish, None)),
    ("failed", False, (Hold, "NOTICE_FOR_CLOSED_PAYMENT")),
])
def test_check_without_a_token_decides_from_the_record(s, state, reversal, want):
    add_payment(s.port, state=state, token=None)
    if reversal:
        s.port.set_inbox(50, "reversal")
    _is(s.step("check", CHECK), *want)
    assert s.sent == []


@pytest.mark.parametrize("setup, want", [
    (lambda p: None, (Hold, "NOTICE_FOR_UNKNOWN_PAYMENT")),
    (lambda p: add_payment(p, flow_data={"payOrdId": "ORD-OTHER"}), (Hold, "NOTICE_FOR_UNKNOWN_ORDER")),
    (lambda p: (add_payment(p), add_payment(p, id=51, kind=KIND_REGISTRATION)), (Hold, "AMBIGUOUS_PAYMENT")),
    (lambda p: add_payment(p, state="pending", step="await_payment", flow_data=ORDERED), (Finish, None)),
], ids=["unknown-payment", "unknown-order", "ambiguous", "open-again"])
def test_check_which_payment(s, setup, want):
    setup(s.port)
    _is(s.step("check", CHECK), *want)
    assert s.sent == []


def test_check_without_a_recorded_notice_fails(mp_client):
    s = script(NoticeCheckFlow(SHIPPED), mp_client, key="PAY-1")
    add_payment(s.port, flow_data=SETTLED)
    _is(s.step("check", CHECK), Fail, code="NO_NOTICE")
