"""Every decision of the mobile-pay payment flow (bridge/mobilepay/payment.py), one
method at a time: the centre's answer in, the transition out.  No daemon, database or
centre (bridge/engine/testing.py); the real client builds every request."""
from __future__ import annotations

import pytest

from bridge.engine.flow import Fail, Finish, Goto, Hold, InDoubt, Retry, Wait
from bridge.engine.testing import FlowScript, not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.mobilepay.kinds import KIND_OUTPATIENT, KIND_REGISTRATION
from bridge.mobilepay.messages import OrdStas
from bridge.mobilepay.payment import PaymentFlow, repair_serial
from bridge.mobilepay.settings import MobilePaySettings
from bridge.offline import messages as m

from .mp import (D, IDENTITY, INSIDE, ORDER, ORDER_MSG, ORDERED, PAST, PLACED, SETTLED, SHIPPED, SPLIT, TOKEN,
                 notice, ordered, payment_doc, query, refunded, revoked, script, uploaded)

DOC = payment_doc()
NO_IDENTITY = payment_doc(psn_no=None, insutype=None, insuplc_admdvs=None)


@pytest.fixture
def flow():
    return PaymentFlow(KIND_OUTPATIENT, SHIPPED)


@pytest.fixture
def s(flow, mp_client):
    return script(flow, mp_client)


# ------------------------------------------------------------------ identify (1101)

def test_identify_with_the_identity_given_makes_no_call(s):
    t = _is(s.step("identify", DOC), Goto, step="upload")
    assert t.data == IDENTITY and s.sent == []


def _person(*insurances):
    return ok("1101", m.PersonInfo(psn_no="PSN-9", psn_cert_type="01",
                                   insuinfo=tuple(m.Insurance(insutype=i, psn_insu_stas=st, insuplc_admdvs="440300")
                                                  for i, st in insurances)))


@pytest.mark.parametrize("answer, want", [
    (_person(("310", "1")), (Goto, None)),
    (_person(("310", "2")), (Fail, "NOT_INSURED")),                     # suspended: none active
    (refused("1101", "无此人员"), (Fail, "IDENTIFY_REJECTED")),
    (transient("1101"), (Retry, "IDENTIFY_FAILED")),
    (not_sent("1101"), (Retry, "IDENTIFY_FAILED")),
    (unknown("1101"), (Retry, "IDENTIFY_FAILED")),                      # a read: asked again
], ids=["ok", "not-insured", "refused", "transient", "not-sent", "unknown"])
def test_identify_by_pay_auth_no(flow, mp_client, offline, answer, want):
    s = script(flow, mp_client, more={"offline": offline})
    s.answer("1101", answer)
    t = _is(s.step("identify", NO_IDENTITY), want[0], code=want[1])
    assert s.sent == ["1101"]
    if isinstance(t, Goto):
        assert t.step == "upload" and t.data == {"psn_no": "PSN-9", "insutype": "310", "insuplc_admdvs": "440300"}
        assert [(i.his_patient_id, i.psn_no, i.insutype) for i in t.identities] == [("P1", "PSN-9", "310")]


def test_identify_without_identity_or_offline_section_fails_before_any_call(s):
    _is(s.step("identify", NO_IDENTITY), Fail, code="NO_IDENTITY")
    assert s.sent == []


# ------------------------------------------------------------------ upload (6201, safe)

@pytest.mark.parametrize("answer, want", [
    (uploaded(), (Goto, None)),
    (refused("6201", "费用明细有误"), (Fail, "UPLOAD_REJECTED")),
    (transient("6201"), (Retry, "UPLOAD_FAILED")),
    (not_sent("6201"), (Retry, "UPLOAD_FAILED")),
    (unknown("6201"), (Retry, "UPLOAD_FAILED")),      # 6201 is re-sent with the same medOrgOrd (§7.3)
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_upload(s, answer, want):
    s.answer("6201", answer)
    t = _is(s.step("upload", DOC, data=IDENTITY), want[0], code=want[1])
    assert s.sent == ["6201"]
    if isinstance(t, Goto):
        assert t.step == "order" and t.data == {"payOrdId": ORDER, "mdtrtId": "MD-1", "chrgBchno": "PAY-1"}
        assert t.secrets == {"payToken": TOKEN}                 # never in flow_data


# ------------------------------------------------------------------ order (6202, NOT safe)

@pytest.mark.parametrize("answer, want", [
    (ordered(), (Goto, None)),
    (refused("6202", "支付授权码已失效"), (Fail, "ORDER_REJECTED")),
    (transient("6202"), (Retry, "CENTRE_BUSY")),
    (not_sent("6202"), (Retry, "NOT_SENT")),
    (unknown("6202"), (InDoubt, "ORDER_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_order(s, answer, want):
    s.answer("6202", answer)
    t = _is(s.step("order", DOC, data=PLACED, secrets={"payToken": TOKEN}), want[0], code=want[1])
    assert s.sent == ["6202"]
    if isinstance(t, Goto):
        assert t.step == "await_payment"
        assert t.data == {"order_msg": s.prepared[0].msg_id, "split": SPLIT, "polls": 0, "ordStas": "2"}
        [row] = t.inbox
        assert (row.result_type, row.outcome, row.order_id, row.total_amount, row.fund_amount,
                row.account_amount, row.cash_amount) == ("order", "ok", ORDER, D("120.00"), D("84.00"),
                                                         D("36.00"), D("0.00"))
        assert row.result["wechat"] == {"serial_no": "PAY-1", "pay_order_id": ORDER, "total_fee": 12000,
                                        "med_ins_gov_fee": 8400, "med_ins_self_fee": 3600, "med_ins_cash_fee": 0}
        assert "payToken" not in str(row.result)
        assert [(i.psn_no, i.insutype) for i in t.identities] == [("PSN-1", "310")]


# resolve_order: the lost 6202, asked with 6301, inside and past the settle window.
@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("stas, want", [
    (OrdStas.SETTLED, (Goto, None, "await_his")),
    (OrdStas.PRE_SETTLED, (Goto, None, "await_payment")),
    (OrdStas.AWAITING_PAYMENT, (Goto, None, "await_payment")),
    (OrdStas.REVOKED, (Fail, "REVOKED", None)),
    (OrdStas.SETTLEMENT_FAILED, (Fail, "PAYMENT_FAILED", None)),
    (OrdStas.EXCEPTION, (Hold, "PAYMENT_ANOMALY", None)),
    (OrdStas.REFUNDED, (Hold, "UNEXPECTED_STATE", None)),
])
def test_resolve_order_by_the_order_state(s, age, stas, want):
    s.answer("6301", query(stas))
    t = _is(s.resolve("order", DOC, data=PLACED, doubt_age=age, secrets={"payToken": TOKEN}), want[0],
            code=want[1], step=want[2])
    assert s.sent == ["6301"]                        # asked, never sent 6202 again
    if isinstance(t, Goto):
        assert t.data["order_msg"] == s.ctx.in_doubt_msg_id


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_order_never_placed_waits_out_the_window_then_sends(s, age, want):
    s.answer("6301", query(OrdStas.SAVED))
    t = _is(s.resolve("order", DOC, data=PLACED, doubt_age=age, secrets={"payToken": TOKEN}), want)
    if want is InDoubt:
        assert t.code == "NOT_SETTLED_YET" and t.waiting          # a wait: the row keeps its attempts
        assert 0 < t.delay <= SHIPPED.settle_seconds
    else:
        assert t.step == "order"                                 # a first send as far as the centre knows


@pytest.mark.parametrize("answer", [unknown("6301"), refused("6301"), not_sent("6301"), transient("6301")],
                         ids=["unknown", "refused", "not-sent", "transient"])
@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
def test_resolve_order_that_cannot_ask_stays_in_doubt(s, answer, age):
    s.answer("6301", answer)
    t = _is(s.resolve("order", DOC, data=PLACED, doubt_age=age, secrets={"payToken": TOKEN}), InDoubt,
            code="QUERY_FAILED")
    assert not t.waiting


def test_resolve_order_a_notice_never_settles_and_is_held_when_6301_says_never_placed(s):
    s.port.set_notice("6302", ORDER, notice())
    s.answer("6301", unknown("6301"))
    t = _is(s.resolve("order", DOC, data=PLACED, doubt_age=PAST, secrets={"payToken": TOKEN}), InDoubt,
            code="QUERY_FAILED")
    assert "a 6302 notice says paid" in t.message
    s.answer("6301", query(OrdStas.SAVED))
    _is(s.resolve("order", DOC, data=PLACED, doubt_age=PAST, secrets={"payToken": TOKEN}), Hold,
        code="NOTICE_CONTRADICTS_STATUS")
    s.answer("6301", query(OrdStas.REVOKED))
    _is(s.resolve("order", DOC, data=PLACED, doubt_age=PAST, secrets={"payToken": TOKEN}), Hold,
        code="NOTICE_CONTRADICTS_STATUS")


# ------------------------------------------------------------------ await_payment (6301 polls)

def _await(s, age: float = 5.0, **data):
    s.port.call_ages[ORDER_MSG] = age
    return s.step("await_payment", DOC, data=dict(ORDERED, **data), secrets={"payToken": TOKEN})


def test_await_payment_settled_writes_the_settlement_for_the_his(s):
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(_await(s), Goto, step="await_his")
    [row] = t.inbox
    assert (row.result_type, row.outcome, row.order_id, row.settlement_id, row.total_amount, row.fund_amount,
            row.account_amount, row.cash_amount) == ("settlement", "ok", ORDER, ORDER, D("120.00"), D("84.00"),
                                                     D("36.00"), D("0.00"))
    assert row.result["confirmed_by"] == "6301" and row.result["notice"] is False
    assert t.data["settled"]["payOrdId"] == ORDER and "payToken" not in t.data["settled"]


def test_await_payment_amounts_that_differ_from_6202_are_held(s):
    s.answer("6301", query(OrdStas.SETTLED, fund="80.00", account="40.00"))
    _is(_await(s), Hold, code="AMOUNT_MISMATCH")


def test_await_payment_settled_without_amounts_stays_in_doubt(s):
    s.answer("6301", query(OrdStas.SETTLED, total=None))
    _is(_await(s), InDoubt, code="SETTLED_WITHOUT_AMOUNTS")


@pytest.mark.parametrize("stas, want", [(OrdStas.REVOKED, (Fail, "REVOKED")),
                                        (OrdStas.SETTLEMENT_FAILED, (Fail, "PAYMENT_FAILED")),
                                        (OrdStas.INSURANCE_FAILED_REVERSAL_FAILED, (Hold, "PAYMENT_ANOMALY"))])
def test_await_payment_the_order_ended(s, stas, want):
    s.answer("6301", query(stas))
    _is(_await(s), *want)


def test_await_payment_polls_with_growing_pauses(s):
    s.answer("6301", query(OrdStas.AWAITING_PAYMENT), query(OrdStas.AWAITING_PAYMENT))
    t = _is(_await(s, polls=0), Wait, step="await_payment")
    assert (t.delay, t.data) == (SHIPPED.poll_first_seconds, {"polls": 1})
    t = _is(_await(s, polls=10), Wait)
    assert t.delay == SHIPPED.poll_cap_seconds


@pytest.mark.parametrize("on_deadline, want", [("revoke", (Goto, None, "revoke")),
                                               ("hold", (Hold, "PAYMENT_DEADLINE", None))])
def test_await_payment_past_the_deadline(flow, mp_client, on_deadline, want):
    s = script(PaymentFlow(KIND_OUTPATIENT, MobilePaySettings(on_deadline=on_deadline)), mp_client,
               MobilePaySettings(on_deadline=on_deadline))
    s.answer("6301", query(OrdStas.AWAITING_PAYMENT))
    _is(_await(s, age=SHIPPED.payment_deadline_seconds + 1), want[0], code=want[1], step=want[2])


@pytest.mark.parametrize("answer, want", [(refused("6301"), (Retry, "QUERY_REJECTED")),
                                          (unknown("6301"), (Wait, None))])
def test_await_payment_a_failed_poll(s, answer, want):
    s.answer("6301", answer)
    _is(_await(s), *want)


def test_await_payment_a_notice_wakes_but_only_6301_settles(s):
    s.port.set_notice("6302", ORDER, notice(), age_seconds=5.0)
    s.answer("6301", query(OrdStas.AWAITING_PAYMENT))
    t = _is(_await(s), Wait)
    assert t.delay == SHIPPED.poll_first_seconds                  # asks again soon
    s.port.set_notice("6302", ORDER, notice(), age_seconds=SHIPPED.settle_seconds + 1)
    s.answer("6301", query(OrdStas.AWAITING_PAYMENT))
    _is(_await(s), Hold, code="NOTICE_CONTRADICTS_STATUS")       # 6301 still says unpaid
    s.answer("6301", unknown("6301"))
    _is(_await(s, age=SHIPPED.payment_deadline_seconds + 1), Hold, code="NOTICE_UNCONFIRMED")
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(_await(s), Goto, step="await_his")
    assert t.inbox[0].settlement_id == "SETL-9" and t.inbox[0].result["notice"] is True


def test_await_payment_a_notice_that_differs_from_6301_is_held_unless_stale(s):
    s.port.set_notice("6302", ORDER, notice(fundPay="80.00", psnAcctPay="40.00"))
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(_await(s), Hold, code="AMOUNT_MISMATCH")
    assert "6302 notice" in t.message
    s.port.set_notice("6302", ORDER, notice(fundPay="80.00", psnAcctPay="40.00", stale="sent an hour ago"))
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(_await(s), Goto, step="await_his")
    assert t.inbox[0].settlement_id == ORDER                       # a stale notice's setlId is not used


# ------------------------------------------------------------------ revoke at the deadline (6401, NOT safe)

@pytest.mark.parametrize("answers, want", [
    ([revoked()], (Fail, "EXPIRED")),
    ([transient("6401")], (Retry, "CENTRE_BUSY")),
    ([not_sent("6401")], (Retry, "NOT_SENT")),
    ([unknown("6401")], (InDoubt, "REVOKE_UNKNOWN")),
    # refused: the patient may have paid at the last moment - 6301 at once
    ([refused("6401"), query(OrdStas.SETTLED)], (Goto, None)),
    ([refused("6401"), query(OrdStas.REVOKED)], (Fail, "EXPIRED")),
    ([refused("6401"), query(OrdStas.AWAITING_PAYMENT)], (Hold, "DEADLINE_REVOKE_REJECTED")),
    ([refused("6401"), unknown("6301")], (Hold, "DEADLINE_REVOKE_REJECTED")),
], ids=["ok", "transient", "not-sent", "unknown", "refused-paid", "refused-revoked", "refused-unpaid",
        "refused-unknown"])
def test_revoke_at_the_deadline(s, answers, want):
    for a in answers:
        s.answer(a.interface, a)
    t = _is(s.step("revoke", DOC, data=ORDERED, secrets={"payToken": TOKEN}), want[0], code=want[1])
    assert s.sent == [a.interface for a in answers]
    if isinstance(t, Goto):
        assert t.step == "await_his"


def test_revoke_at_the_deadline_with_a_paid_notice_is_held(s):
    s.port.set_notice("6302", ORDER, notice())
    s.answer("6401", revoked())
    _is(s.step("revoke", DOC, data=ORDERED, secrets={"payToken": TOKEN}), Hold, code="NOTICE_CONTRADICTS_STATUS")


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (query(OrdStas.SETTLED), (Goto, None, "await_his")),
    (query(OrdStas.REVOKED), (Fail, "EXPIRED", None)),
    (query(OrdStas.SETTLEMENT_FAILED), (Fail, "PAYMENT_FAILED", None)),
    (query(OrdStas.EXCEPTION), (Hold, "PAYMENT_ANOMALY", None)),
    (unknown("6301"), (InDoubt, "QUERY_FAILED", None)),
], ids=["settled", "revoked", "failed", "anomaly", "unknown"])
def test_resolve_revoke(s, age, answer, want):
    s.answer("6301", answer)
    _is(s.resolve("revoke", DOC, data=ORDERED, doubt_age=age, secrets={"payToken": TOKEN}), want[0],
        code=want[1], step=want[2])
    assert s.sent == ["6301"]


@pytest.mark.parametrize("age, with_notice, want", [
    (INSIDE, False, (InDoubt, "NOT_SETTLED_YET")),
    (PAST, False, (Goto, None)),                           # never revoked: send 6401 (a first send)
    (INSIDE, True, (InDoubt, "NOT_SETTLED_YET")),
    (PAST, True, (Hold, "NOTICE_CONTRADICTS_STATUS")),
])
def test_resolve_revoke_still_payable(s, age, with_notice, want):
    if with_notice:
        s.port.set_notice("6302", ORDER, notice())
    s.answer("6301", query(OrdStas.AWAITING_PAYMENT))
    t = _is(s.resolve("revoke", DOC, data=ORDERED, doubt_age=age, secrets={"payToken": TOKEN}), *want)
    if isinstance(t, Goto):
        assert t.step == "revoke"
    if isinstance(t, InDoubt):
        assert t.waiting


# ------------------------------------------------------------------ await_his (the 单边账 guard)

@pytest.mark.parametrize("inbox, want", [
    (None, (Hold, "NO_SETTLEMENT_ROW")),
    (dict(consumed=True, his_ack="accepted", age_seconds=3), (Finish, None)),
    (dict(consumed=True, his_ack=None, age_seconds=3), (Finish, None)),
    (dict(consumed=False, age_seconds=3), (Wait, None)),
    (dict(consumed=True, his_ack="rejected", age_seconds=3), (Goto, None)),
    (dict(consumed=False, age_seconds=SHIPPED.his_take_window_seconds + 1), (Goto, None)),
], ids=["missing", "accepted", "taken-without-ack", "waiting", "rejected", "not-taken"])
def test_await_his(s, inbox, want):
    if inbox is not None:
        s.port.set_inbox(1, "settlement", id=77, **inbox)
    t = _is(s.step("await_his", DOC, data=SETTLED), *want)
    if isinstance(t, Goto):
        assert t.step == "repair" and t.data["appRefdSn"] == repair_serial(ORDER)
        assert ("rejected" in t.data["repair_reason"]) == inbox["consumed"]
        assert s.port.withdrawn == ([] if inbox["consumed"] else [77])     # taken back before the refund
    if isinstance(t, Wait):
        assert t.delay <= SHIPPED.his_poll_seconds
    if isinstance(t, Finish):
        assert t.inbox == [] and t.secrets == {}


def test_await_his_a_settlement_the_his_consumes_while_it_is_taken_back_is_looked_at_again(s):
    s.port.set_inbox(1, "settlement", id=77, consumed=False, age_seconds=SHIPPED.his_take_window_seconds + 1)
    s.port.consumed_first.add(77)
    t = _is(s.step("await_his", DOC, data=SETTLED), Wait, step="await_his")
    assert t.delay == 0.1 and s.port.withdrawn == []


def test_await_his_moves_a_legacy_token_from_flow_data_to_mi_secret(s):
    s.port.set_inbox(1, "settlement", consumed=True, his_ack="accepted")
    t = _is(s.step("await_his", DOC, data=dict(SETTLED, payToken="OLD-TOKEN")), Finish)
    assert t.secrets == {"payToken": "OLD-TOKEN"}


# ------------------------------------------------------------------ repair (6203 ALL, NOT safe)

REPAIRING = dict(SETTLED, repair_reason="the HIS rejected the settlement", appRefdSn=repair_serial(ORDER),
                 appRefdTime="20260101130000")


@pytest.mark.parametrize("answer, want", [
    (refunded(), (Fail, "REVERSED")),
    (refused("6203", "退费失败"), (Hold, "REPAIR_FAILED")),        # the patient paid: a person refunds
    (transient("6203"), (Retry, "CENTRE_BUSY")),
    (not_sent("6203"), (Retry, "NOT_SENT")),
    (unknown("6203"), (InDoubt, "REPAIR_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_repair(s, answer, want):
    s.answer("6203", answer)
    t = _is(s.step("repair", DOC, data=REPAIRING, secrets={"payToken": TOKEN}), *want)
    assert s.sent == ["6203"]
    if isinstance(t, Fail):
        [row] = t.inbox
        assert (row.result_type, row.outcome, row.error_code, row.order_id, row.settlement_id, row.total_amount,
                row.fund_amount, row.account_amount, row.cash_amount) == (
            "reversal", "failed", "REVERSED", ORDER, "RSN-1", D("120.00"), D("84.00"), D("36.00"), D("0.00"))


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (query(OrdStas.REFUNDED), (Fail, "REVERSED")),
    (query(OrdStas.REFUND_IN_PROGRESS), (InDoubt, "REFUND_IN_PROGRESS")),
    (query(OrdStas.SELF_PAY_PARTLY_REFUNDED_ONLY), (Hold, "REPAIR_UNCLEAR")),
    (unknown("6301"), (InDoubt, "QUERY_FAILED")),
], ids=["refunded", "in-progress", "partly", "unknown"])
def test_resolve_repair(s, age, answer, want):
    s.answer("6301", answer)
    t = _is(s.resolve("repair", DOC, data=REPAIRING, doubt_age=age, secrets={"payToken": TOKEN}), *want)
    assert s.sent == ["6301"]
    if isinstance(t, InDoubt):
        # the centre still refunding (17) is a wait that uses no attempt; a failed query is not
        assert t.waiting is (t.code == "REFUND_IN_PROGRESS")


def test_resolve_repair_the_centre_refunding_for_too_long_is_held(s):
    s.answer("6301", query(OrdStas.REFUND_IN_PROGRESS))
    t = _is(s.resolve("repair", DOC, data=REPAIRING, doubt_age=SHIPPED.refund_progress_wait_seconds + 1,
                      secrets={"payToken": TOKEN}), Hold, code="REFUND_STILL_IN_PROGRESS")
    assert REPAIRING["appRefdSn"] in t.message


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_repair_still_paid_waits_out_the_window_then_refunds(s, age, want):
    s.answer("6301", query(OrdStas.SETTLED))
    t = _is(s.resolve("repair", DOC, data=REPAIRING, doubt_age=age, secrets={"payToken": TOKEN}), want)
    assert (t.waiting if want is InDoubt else t.step == "repair")


# ------------------------------------------------------------------ the table itself

def test_registration_is_the_same_flow_and_every_call_is_declared(mp_client):
    flow = PaymentFlow(KIND_REGISTRATION, SHIPPED)
    s = FlowScript(flow, services={"mobilepay": mp_client, "mobilepay.settings": SHIPPED})
    s.answer("6202", ordered())
    _is(s.step("order", DOC, data=PLACED, secrets={"payToken": TOKEN}), Goto, step="await_payment")
    assert flow.steps["revoke"].calls == ("6401", "6301")
    # The centre's unsafe calls are resolved by 6301; the channels' by their own queries
    # (tests/flows_unit/test_channel_payment.py).
    assert all(st.resolves_with == ("6301",) for st in flow.steps.values()
               if st.needs_resolution and st.calls[0][0].isdigit())
