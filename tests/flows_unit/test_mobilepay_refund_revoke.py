"""Every decision of mobilepay.refund (bridge/mobilepay/refund.py) and mobilepay.revoke
(bridge/mobilepay/revoke.py): the payment they name, the centre's answers, the
transition.  No daemon, database or centre."""
from __future__ import annotations

import pytest

from bridge.engine.flow import Fail, Finish, Goto, Hold, InDoubt, Retry, Wait
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REFUND, KIND_REGISTRATION, PAYMENT_KINDS
from bridge.mobilepay.messages import OrdStas, RefStatus, RefundResponse
from bridge.mobilepay.refund import RefundFlow
from bridge.mobilepay.revoke import RevokeFlow

from .mp import (D, INSIDE, ORDER, ORDERED, PAST, PATIENT_SECRETS, SETTLED, SHIPPED, TOKEN, add_payment, query,
                 refunded, revoked, script)

PAID = {"fund": "84.00", "account": "36.00", "cash": "0.00"}       # SETTLED's split: 120.00


# ================================================================== refund: check

def refund_script(mp_client, key="RF-1", serial="PAY-1"):
    return script(RefundFlow(SHIPPED), mp_client, key=key, serial_key=serial)


def _check(s, **doc):
    return s.step("check", dict({"payment_key": "PAY-1"}, **doc))


def test_check_takes_the_payments_token_and_patient_into_its_own_secrets(mp_client):
    s = refund_script(mp_client)
    add_payment(s.port)
    t = _is(_check(s), Goto, step="refund")
    assert t.secrets == PATIENT_SECRETS                       # the refund's own mi_secret
    # all of it, and no cash was paid: the insurance part, whole (HI)
    assert (t.data["type"], t.data["fund"], t.data["account"], t.data["cash"]) == ("HI", "84.00", "36.00", "0.00")
    assert (t.data["state_before"], t.data["state_after"]) == ("6", "7")
    assert "payToken" not in str(t.data) and "patient" not in t.data
    assert s.sent == []


@pytest.mark.parametrize("doc, earlier, want", [
    ({"amount": "10.00"}, None, (Fail, "REFUND_SPLIT")),           # no cash to refund: HI is whole
    ({"amount": "120.00"}, None, (Goto, None)),
    ({"amount": "999.00"}, None, (Fail, "REFUND_EXCEEDS_PAID")),
    ({"refund_type": "HI"}, None, (Goto, None)),
    ({"refund_type": "CASH"}, None, (Fail, "NOTHING_LEFT")),
    ({}, dict(PAID), (Fail, "NOTHING_LEFT")),                       # refunded in full already
], ids=["partial-hi", "all", "too-much", "hi", "no-cash", "nothing-left"])
def test_check_refuses_what_cannot_be_refunded_before_any_call(mp_client, doc, earlier, want):
    s = refund_script(mp_client)
    add_payment(s.port)
    if earlier:
        s.port.set_sums("refund", ORDER, **earlier)
    _is(_check(s, **doc), *want)
    assert s.sent == []


def test_check_a_cash_refund_within_what_is_left(mp_client):
    s = refund_script(mp_client)
    add_payment(s.port, flow_data=dict(SETTLED, settled=dict(SETTLED["settled"], fund="66.00", account="0.00",
                                                             cash="54.00")))
    s.port.set_sums("refund", ORDER, cash="10.00")
    t = _is(_check(s, amount="44.00"), Goto)
    assert (t.data["type"], t.data["cash"], t.data["state_before"], t.data["state_after"]) == (
        "CASH", "44.00", "10", "9")


@pytest.mark.parametrize("setup, want", [
    (lambda p: None, (Fail, "NO_SUCH_PAYMENT")),
    (lambda p: add_payment(p, state="pending", step="await_payment"), (Wait, None)),
    (lambda p: add_payment(p, state="in_doubt", step="order"), (Wait, None)),
    (lambda p: add_payment(p, state="failed", step="order"), (Fail, "NOT_PAID")),
    (lambda p: add_payment(p, state="done", flow_data={}), (Fail, "NOT_PAID")),
    (lambda p: (add_payment(p), add_payment(p, id=51, kind=KIND_REGISTRATION)), (Fail, "AMBIGUOUS_PAYMENT")),
    # the registration refused at authorize (the key was the outpatient bill's): it never reached
    # the centre and names nothing to refund; the bill is the payment
    (lambda p: (add_payment(p), add_payment(p, id=51, kind=KIND_REGISTRATION, state="failed", step="authorize",
                                            flow_data={})), (Goto, None)),
    (lambda p: (add_payment(p), p.add_request(id=60, kind=KIND_REFUND, business_key="RF-0", state="resolved",
                                             serial_key="PAY-1")), (Hold, "PRIOR_REFUND_UNRECONCILED")),
], ids=["none", "open", "in-doubt", "failed", "done-unsettled", "ambiguous", "other-kind-refused-at-authorize",
        "prior-resolved"])
def test_check_the_payment(mp_client, setup, want):
    s = refund_script(mp_client)
    setup(s.port)
    _is(_check(s), *want)
    assert s.sent == []


@pytest.mark.parametrize("key, serial, code", [("R" * 31, "PAY-1", "BAD_INPUT"), ("RF-1", "RF-1", "BAD_INPUT")],
                         ids=["serial-too-long", "not-behind-its-payment"])
def test_check_the_refunds_own_keys(mp_client, key, serial, code):
    s = refund_script(mp_client, key=key, serial=serial)
    add_payment(s.port)
    _is(_check(s), Fail, code=code)


# ================================================================== refund: 6203 (NOT safe)

REFUNDING = {"settled": SETTLED["settled"], "type": "ALL", "fund": "84.00", "account": "36.00", "cash": "0.00",
             "appRefdTime": "20260101130000", "state_before": "6", "state_after": "7"}


@pytest.mark.parametrize("answer, want", [
    (refunded(), (Finish, None)),
    (refused("6203", "退费失败"), (Fail, "REFUND_REJECTED")),
    (transient("6203"), (Retry, "CENTRE_BUSY")),
    (not_sent("6203"), (Retry, "NOT_SENT")),
    (unknown("6203"), (InDoubt, "REFUND_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_refund(mp_client, answer, want):
    s = refund_script(mp_client)
    add_payment(s.port)
    s.answer("6203", answer)
    t = _is(s.step("refund", {"payment_key": "PAY-1"}, data=REFUNDING, secrets=PATIENT_SECRETS), *want)
    assert s.sent == ["6203"]
    if isinstance(t, Finish):
        [row] = t.inbox
        assert (row.result_type, row.outcome, row.order_id, row.settlement_id, row.total_amount, row.fund_amount,
                row.account_amount, row.cash_amount) == ("refund", "ok", ORDER, "RSN-1", D("120.00"), D("84.00"),
                                                         D("36.00"), D("0.00"))
        assert row.result["appRefdSn"] == "RF-1" and row.result["refdType"] == "ALL"


@pytest.mark.parametrize("date, at, want", [
    ("20260101", "131502", "2026-01-01T13:15:02+08:00"),
    (None, None, None),                                    # no time in the answer: none invented
], ids=["centre-time", "no-time"])
def test_refund_row_carries_the_centres_refund_time(mp_client, date, at, want):
    s = refund_script(mp_client)
    add_payment(s.port)
    s.answer("6203", ok("6203", RefundResponse(refStatus=RefStatus.SUCC, refdSn="RSN-1", hiRefdSn="HI-1",
                                               hiTrnsDate=date, hiTrnsTime=at)))
    t = _is(s.step("refund", {"payment_key": "PAY-1"}, data=REFUNDING, secrets=PATIENT_SECRETS), Finish)
    assert t.inbox[0].result.get("refund_time") == want


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, data, want", [
    (query(OrdStas.REFUNDED), REFUNDING, (Finish, None)),
    (query(OrdStas.SELF_PAY_PARTLY_REFUNDED_ONLY), REFUNDING, (Hold, "REFUND_UNCLEAR")),
    (unknown("6301"), REFUNDING, (InDoubt, "QUERY_FAILED")),
    # this refund would not change ordStas (10 -> 10): 6301 cannot tell, a person checks
    (query(OrdStas.SELF_PAY_PARTLY_REFUNDED_ONLY), dict(REFUNDING, state_before="10", state_after="10"),
     (Hold, "REFUND_UNKNOWN")),
], ids=["refunded", "unclear", "unknown", "cannot-tell"])
def test_resolve_refund(mp_client, age, answer, data, want):
    s = refund_script(mp_client)
    s.answer("6301", answer)
    _is(s.resolve("refund", {"payment_key": "PAY-1"}, data=data, doubt_age=age, secrets=PATIENT_SECRETS), *want)
    assert s.sent == ["6301"]                        # never 6203 again from here


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_refund_not_refunded_waits_out_the_window_then_sends(mp_client, age, want):
    s = refund_script(mp_client)
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(s.resolve("refund", {"payment_key": "PAY-1"}, data=REFUNDING, doubt_age=age, secrets=PATIENT_SECRETS),
            want)
    assert t.waiting if want is InDoubt else t.step == "refund"


@pytest.mark.parametrize("age, want", [
    (INSIDE, (InDoubt, "REFUND_IN_PROGRESS")),
    (SHIPPED.refund_progress_wait_seconds - 1.0, (InDoubt, "REFUND_IN_PROGRESS")),
    (SHIPPED.refund_progress_wait_seconds, (Hold, "REFUND_STILL_IN_PROGRESS")),
], ids=["just-sent", "nearly-a-day", "past-the-bound"])
def test_resolve_refund_the_centre_still_refunding_is_waited_for_then_held(mp_client, age, want):
    """ordStas 17 (退款中): the centre has the refund.  Waiting, not failing: no attempt used (it
    was held after ~17 minutes of backoff), asked again every refund_progress_poll_seconds, held
    with a clear reason only past refund_progress_wait_seconds after the 6203."""
    s = refund_script(mp_client)
    s.answer("6301", query(OrdStas.REFUND_IN_PROGRESS))
    t = _is(s.resolve("refund", {"payment_key": "PAY-1"}, data=REFUNDING, doubt_age=age, secrets=PATIENT_SECRETS),
            *want)
    assert s.sent == ["6301"]                        # never 6203 again from here
    if isinstance(t, InDoubt):
        assert t.waiting and 0 < t.delay <= SHIPPED.refund_progress_poll_seconds
    else:
        assert "17" in t.message and "requeue" in t.message


# ================================================================== revoke: locate

def revoke_script(mp_client):
    return script(RevokeFlow(SHIPPED), mp_client, key="RV-1", serial_key="RV-1")


@pytest.mark.parametrize("setup, want", [
    (lambda p: add_payment(p, state="pending", step="await_payment", flow_data=ORDERED), (Goto, None)),
    (lambda p: None, (Fail, "NO_SUCH_PAYMENT")),
    (lambda p: add_payment(p, state="failed", step="await_payment"), (Finish, None)),
    (lambda p: add_payment(p, state="done"), (Fail, "ALREADY_PAID")),
    (lambda p: add_payment(p, state="pending", step="await_his"), (Fail, "ALREADY_PAID")),
    # its own 6401 is on the way (revoke step, running, in doubt): wait, never a second one
    (lambda p: add_payment(p, state="pending", step="revoke", flow_data=ORDERED), (Wait, None)),
    (lambda p: add_payment(p, state="in_doubt", step="await_payment", flow_data=ORDERED), (Wait, None)),
    (lambda p: add_payment(p, state="running", step="order", flow_data={}), (Wait, None)),
], ids=["payable", "none", "ended", "paid", "settled", "own-revoke", "in-doubt", "not-placed"])
def test_locate(mp_client, setup, want):
    s = revoke_script(mp_client)
    setup(s.port)
    t = _is(s.step("locate", {"payment_key": "PAY-1"}), *want)
    assert s.sent == []
    if isinstance(t, Goto):
        assert t.data == {"payOrdId": ORDER, "payment_id": 50} and t.secrets == PATIENT_SECRETS


def test_locate_gives_up_on_a_payment_that_never_reaches_the_centre(mp_client):
    s = revoke_script(mp_client)
    add_payment(s.port, state="pending", step="upload", flow_data={})
    waits = int(SHIPPED.revoke_wait_seconds / 2.0) + 1
    _is(s.step("locate", {"payment_key": "PAY-1"}, data={"waits": waits}), Hold, code="PAYMENT_NOT_PLACED")


def test_locate_refuses_a_revoke_queued_behind_its_payment(mp_client):
    s = script(RevokeFlow(SHIPPED), mp_client, key="RV-1", serial_key="PAY-1")
    _is(s.step("locate", {"payment_key": "PAY-1"}), Fail, code="BAD_INPUT")


# ================================================================== revoke: 6401 (NOT safe)

REVOKING = {"payOrdId": ORDER, "payment_id": 50}


@pytest.mark.parametrize("answer, want", [
    (revoked(), (Finish, None)),
    (transient("6401"), (Retry, "CENTRE_BUSY")),
    (not_sent("6401"), (Retry, "NOT_SENT")),
    (unknown("6401"), (InDoubt, "REVOKE_UNKNOWN")),
], ids=["ok", "transient", "not-sent", "unknown"])
def test_revoke(mp_client, answer, want):
    s = revoke_script(mp_client)
    s.answer("6401", answer)
    t = _is(s.step("revoke", {"payment_key": "PAY-1"}, data=REVOKING, secrets=PATIENT_SECRETS), *want)
    assert s.sent == ["6401"]
    # Only a revoke that went through wakes the payment.
    assert s.port.pokes == ([(PAYMENT_KINDS, "PAY-1")] if isinstance(t, Finish) else [])


@pytest.mark.parametrize("answer, want", [
    # the payment's own deadline 6401 revoked it a moment before: this revoke is done
    (query(OrdStas.REVOKED), (Finish, None)),
    (query(OrdStas.INSURANCE_REVOKED), (Finish, None)),
    (query(OrdStas.SETTLED), (Fail, "ALREADY_PAID")),
    (query(OrdStas.AWAITING_PAYMENT), (Fail, "REVOKE_REJECTED")),
    # a refusal alone decides nothing: 6301 is asked again (resolve_revoke)
    (unknown("6301"), (InDoubt, "QUERY_FAILED")),
    (not_sent("6301"), (InDoubt, "QUERY_FAILED")),
], ids=["revoked", "insurance-revoked", "paid", "payable", "unknown", "not-sent"])
def test_revoke_refused_asks_6301(mp_client, answer, want):
    """The payment's deadline 6401 and the HIS's can race: the loser is refused although the
    order is revoked.  Never 'REVOKE_REJECTED: if the patient paid, enqueue a refund' for an
    order that is revoked."""
    s = revoke_script(mp_client)
    s.answer("6401", refused("6401", "订单状态不允许撤销"))
    s.answer("6301", answer)
    t = _is(s.step("revoke", {"payment_key": "PAY-1"}, data=REVOKING, secrets=PATIENT_SECRETS), *want)
    assert s.sent == ["6401", "6301"]
    if isinstance(t, Finish):
        [row] = t.inbox
        assert row.result_type == "revoke" and row.outcome == "ok" and "already revoked" in row.result["note"]
        assert s.port.pokes == [(PAYMENT_KINDS, "PAY-1")]


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (query(OrdStas.REVOKED), (Finish, None)),
    (query(OrdStas.SETTLED), (Fail, "ALREADY_PAID")),
    (query(OrdStas.EXCEPTION), (Hold, "REVOKE_UNCLEAR")),
    (unknown("6301"), (InDoubt, "QUERY_FAILED")),
], ids=["revoked", "paid", "anomaly", "unknown"])
def test_resolve_revoke(mp_client, age, answer, want):
    s = revoke_script(mp_client)
    s.answer("6301", answer)
    _is(s.resolve("revoke", {"payment_key": "PAY-1"}, data=REVOKING, doubt_age=age, secrets=PATIENT_SECRETS),
        *want)
    assert s.sent == ["6301"]


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_revoke_still_payable_waits_out_the_window_then_sends(mp_client, age, want):
    s = revoke_script(mp_client)
    s.answer("6301", query(OrdStas.AWAITING_PAYMENT))
    t = _is(s.resolve("revoke", {"payment_key": "PAY-1"}, data=REVOKING, doubt_age=age, secrets=PATIENT_SECRETS),
            want)
    assert t.waiting if want is InDoubt else t.step == "revoke"


def test_a_refund_reads_its_token_from_before_mi_secret(mp_client):
    # A payment done before migration 003 kept its payToken in flow_data["settled"].
    s = refund_script(mp_client)
    add_payment(s.port, token=None, flow_data=dict(SETTLED, settled=dict(SETTLED["settled"], payToken="OLD")))
    t = _is(_check(s), Goto)
    assert t.secrets["payToken"] == "OLD" and "payToken" not in t.data["settled"]


def test_kinds_are_the_ones_the_his_writes():
    assert (KIND_OUTPATIENT, KIND_REGISTRATION, KIND_REFUND) == (
        "mobilepay.outpatient", "mobilepay.registration", "mobilepay.refund")
    assert TOKEN not in str(REFUNDING)
