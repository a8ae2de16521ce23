"""Every decision of the face-pay settlement and cancellation (bridge/facepay/settle.py,
bridge/facepay/cancel.py): 2207/2304/2260 and its 2601 resolver, the terminal notice, the
HIS's take, 2208/2305/2261 with fpy001 and mpc004.  No daemon, database or platform."""
from __future__ import annotations

import json

import pytest

from bridge.engine.flow import Fail, Finish, Goto, Hold, InDoubt, Retry, Wait
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.facepay.cancel import OutpatientCancelFlow, DocumentCancelFlow, InpatientCancelFlow
from bridge.facepay.settings import FacePaySettings
from bridge.facepay.settle import DocumentSettleFlow, InpatientSettleFlow, OutpatientSettleFlow

from .fp import (ACCT_STAS_DEDUCTED, ACCT_STAS_REFUND_FAILED, ACCT_STAS_REFUNDED, D, FACE, FACE_SECRETS, INSIDE,
                 PAST, SETTINGS, VISIT, VISIT_SECRETS, account, account_refunded, script, settled, target)

SETTLE_INFNO = {OutpatientSettleFlow: "2207", InpatientSettleFlow: "2304", DocumentSettleFlow: "2260"}
CANCEL_INFNO = {OutpatientCancelFlow: "2208", InpatientCancelFlow: "2305", DocumentCancelFlow: "2261"}
NOT_FOUND = "原交易不存在"          # FacePaySettings.reversal_not_found_markers
NOT_REVERSIBLE = "不允许冲正"       # FacePaySettings.reversal_refused_markers


def envelope_data(s) -> dict:
    """input.data of the last call the script made, as sent."""
    return json.loads(s.prepared[-1].body)["input"]["data"]


def settle_data(**kw):
    d = {"visit": VISIT, "face_pay": True, "retry_plain": False, "reversals": 0, "operator": None}
    d.update(kw)
    return d


SETTLE_DOC = {"presettle_key": "P1"}


# ================================================================== settle: start

@pytest.mark.parametrize("row, want", [
    (None, (Fail, "PRESETTLE_NOT_FOUND")),
    (dict(state="failed", flow_data={}), (Fail, "PRESETTLE_NOT_DONE")),
    (dict(state="done", flow_data={"visit": VISIT}), (Goto, None)),
])
def test_settle_start_reads_the_done_presettlement(facepay, row, want):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    if row:
        s.port.add_request(id=30, kind="facepay.outpatient.presettle", business_key="P1", payload={},
                           secrets=VISIT_SECRETS, **row)
    t = _is(s.step("start", SETTLE_DOC), *want)
    if isinstance(t, Goto):
        assert t.step == "settle" and t.data["face_pay"] is True and t.secrets == VISIT_SECRETS
        assert "mdtrt_cert_no" not in str(t.data)


def test_settle_start_with_face_pay_switched_off(facepay):
    s = script(OutpatientSettleFlow(FacePaySettings(enabled=False)), facepay)
    s.port.add_request(id=30, kind="facepay.outpatient.presettle", business_key="P1", state="done",
                       flow_data={"visit": VISIT}, payload={}, secrets=VISIT_SECRETS)
    assert _is(s.step("start", SETTLE_DOC), Goto).data["face_pay"] is False


# ================================================================== settle: the call that moves money

@pytest.mark.parametrize("cls", [OutpatientSettleFlow, InpatientSettleFlow])
@pytest.mark.parametrize("answer, want", [
    ("ok", (Goto, None)),
    (lambda i: refused(i, "结算失败"), (Fail, "PLATFORM_-1")),
    (lambda i: refused(i, "机构未开通医保码实账一次刷脸支付功能"), (Fail, "FACEPAY_NOT_ENABLED")),
    (lambda i: transient(i), (Retry, "PLATFORM_BUSY")),
    (lambda i: not_sent(i), (Retry, "NOT_SENT")),
    (lambda i: unknown(i), (InDoubt, "SETTLE_UNKNOWN")),
], ids=["ok", "refused", "refused-facepay", "transient", "not-sent", "unknown"])
def test_settle(facepay, cls, answer, want):
    infno = SETTLE_INFNO[cls]
    s = script(cls(SETTINGS), facepay)
    s.answer(infno, settled(infno) if answer == "ok" else answer(infno))
    t = _is(s.step("settle", SETTLE_DOC, data=settle_data(), secrets=VISIT_SECRETS), *want)
    assert s.sent == [infno]
    if isinstance(t, Goto):
        # The real account paid 30.00: fpy001's UnionPay references first (test_facepay_references.py),
        # then the settlement row.  The settlement is kept at once (target).
        assert t.step == "references" and t.inbox == []
        assert t.data["target"]["infno"] == infno and t.data["target"]["terms"]
        assert t.data["target"]["split"]["account"] == "30.00"
        assert t.data["settlement_result"]["setl_id"] == "SETL-1" and t.data["settle_msg"] == s.prepared[0].msg_id


@pytest.mark.parametrize("cls", [OutpatientSettleFlow, InpatientSettleFlow, DocumentSettleFlow])
def test_settle_without_a_real_account_deduction_writes_the_row_at_once(facepay, cls):
    # Account part 0: nothing was deducted through UnionPay, so no fpy001.
    infno = SETTLE_INFNO[cls]
    s = script(cls(SETTINGS), facepay)
    s.answer(infno, settled(infno, account="0.00", cash="30.00"))
    visit = VISIT if cls is not DocumentSettleFlow else dict(
        VISIT, chrg_bchno=None, document={"begntime": "2024-03-01 09:30:00", "mdtrtinfo": {}, "diseinfo": [],
                                          "feedetail": []})
    t = _is(s.step("settle", SETTLE_DOC, data=settle_data(visit=visit), secrets=VISIT_SECRETS), Goto,
            step="await_his")                                  # no face identified: no terminal notice
    [row] = t.inbox
    assert (row.result_type, row.settlement_id, row.total_amount, row.fund_amount, row.account_amount,
            row.cash_amount) == ("settlement", "SETL-1", D("100.00"), D("70.00"), D("0.00"), D("30.00"))
    assert "references" not in row.result and "refNo" not in row.result
    assert t.data["target"]["infno"] == infno and s.sent == [infno]


def test_settle_one_shot_2260(facepay):
    s = script(DocumentSettleFlow(SETTINGS), facepay)
    visit = dict(VISIT, chrg_bchno=None, document={"begntime": "2024-03-01 09:30:00", "mdtrtinfo": {},
                                                   "diseinfo": [], "feedetail": []})
    s.answer("2260", unknown("2260"))
    _is(s.step("settle", SETTLE_DOC, data=settle_data(visit=visit), secrets=VISIT_SECRETS), InDoubt,
        code="SETTLE_UNKNOWN")
    assert s.sent == ["2260"]


def test_settle_a_face_identified_patient_notifies_the_terminal(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("2207", settled("2207"))
    t = _is(s.step("settle", SETTLE_DOC, data=settle_data(visit=dict(VISIT, face=FACE)), secrets=FACE_SECRETS),
            Goto, step="references")
    assert "auth_no" not in str(t.data) and "张三" not in str(t.data)
    s.answer("fpy001", account("1", ACCT_STAS_DEDUCTED, ref_no="R1", term_seq_no="T1"))
    t = _is(s.step("references", SETTLE_DOC, data=settle_data(visit=dict(VISIT, face=FACE), **t.data),
                   secrets=FACE_SECRETS), Goto, step="notify")
    assert [r.result_type for r in t.inbox] == ["settlement"]


@pytest.mark.parametrize("retry_plain, want", [(True, (Goto, None, "without_face_pay")),
                                               (False, (Fail, "NO_REAL_ACCOUNT", None))])
def test_settle_refused_for_face_pay_falls_back_only_when_asked(facepay, retry_plain, want):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("2207", refused("2207", "该人员无个人账户"))
    t = _is(s.step("settle", SETTLE_DOC, data=settle_data(retry_plain=retry_plain), secrets=VISIT_SECRETS),
            want[0], code=want[1], step=want[2])
    if isinstance(t, Goto):
        assert t.inbox[0].result_type == "face_pay_refused"
        t2 = _is(s.step("without_face_pay", SETTLE_DOC, data=settle_data()), Goto, step="settle")
        assert t2.data == {"face_pay": False} and s.sent == []


# ------------------------------------------------------------------ resolve_settle: 2601 of the lost message

@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, reversals, want", [
    (ok("2601"), 0, (Goto, None)),                                          # undone: settle again
    (ok("2601"), SETTINGS.max_reversals, (Hold, "TOO_MANY_REVERSALS")),
    (refused("2601", NOT_REVERSIBLE), 0, (Hold, "SETTLE_UNRESOLVED")),
    (refused("2601", "其他错误"), 0, (InDoubt, "REVERSAL_FAILED")),
    (unknown("2601"), 0, (InDoubt, "REVERSAL_FAILED")),
    (not_sent("2601"), 0, (InDoubt, "REVERSAL_FAILED")),
], ids=["reversed", "too-many", "not-reversible", "other-refusal", "unknown", "not-sent"])
def test_resolve_settle(facepay, age, answer, reversals, want):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("2601", answer)
    t = _is(s.resolve("settle", SETTLE_DOC, data=settle_data(reversals=reversals), doubt_age=age,
                      secrets=VISIT_SECRETS), *want)
    assert s.sent == ["2601"]                                   # never 2207 from the resolver
    assert s.ctx.in_doubt_msg_id in s.prepared[0].masked_request      # 2601 of THE lost message
    if isinstance(t, Goto):
        assert t.step == "settle" and t.data == {"reversals": 1}
        assert t.inbox[0].result_type == "settlement_reversed"


@pytest.mark.parametrize("cls, age, want", [
    (OutpatientSettleFlow, INSIDE, (InDoubt, "SETTLE_NOT_SEEN_YET")),
    (OutpatientSettleFlow, PAST, (Goto, None)),                       # never booked: send it (a first send)
    (DocumentSettleFlow, INSIDE, (Hold, "SETTLE_UNRESOLVED")),        # 2601 may not know 2260 at all
    (DocumentSettleFlow, PAST, (Hold, "SETTLE_UNRESOLVED")),
], ids=["2207-inside", "2207-past", "2260-inside", "2260-past"])
def test_resolve_settle_original_not_found(facepay, cls, age, want):
    s = script(cls(SETTINGS), facepay)
    s.answer("2601", refused("2601", NOT_FOUND))
    t = _is(s.resolve("settle", SETTLE_DOC, data=settle_data(), doubt_age=age, secrets=VISIT_SECRETS), *want)
    if isinstance(t, InDoubt):
        assert t.waiting and t.delay <= SETTINGS.resolve_retry_seconds
    if isinstance(t, Goto):
        assert t.step == "settle" and t.inbox == []


# ------------------------------------------------------------------ notify the terminal (safe)

@pytest.mark.parametrize("answer, tries, want", [
    (ok("cn.nhsa.settle.notify"), 0, (Goto, "ok")),
    (unknown("cn.nhsa.settle.notify"), 0, (Wait, None)),
    (unknown("cn.nhsa.settle.notify"), SETTINGS.notify_attempts - 1, (Goto, "failed")),
    (refused("cn.nhsa.settle.notify"), 0, (Goto, "failed")),
])
def test_notify(facepay, answer, tries, want):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("cn.nhsa.settle.notify", answer)
    data = settle_data(visit=dict(VISIT, face=FACE), target=target(), notify_tries=tries)
    t = _is(s.step("notify", SETTLE_DOC, data=data, secrets=FACE_SECRETS), want[0])
    if isinstance(t, Goto):                           # the settlement stands whatever the screen shows
        assert t.step == "await_his" and t.inbox[0].outcome == want[1]


# ------------------------------------------------------------------ await_his (单边账)

@pytest.mark.parametrize("inbox, want", [
    (None, (Hold, "NO_SETTLEMENT_ROW")),
    (dict(consumed=True, his_ack="accepted"), (Finish, None)),
    (dict(consumed=False, age_seconds=1), (Wait, None)),
    (dict(consumed=True, his_ack="rejected"), (Goto, "his_rejected")),
    (dict(consumed=False, age_seconds=SETTINGS.his_ack_timeout_seconds + 1), (Goto, "his_not_taken")),
])
def test_settle_await_his(facepay, inbox, want):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    if inbox:
        s.port.set_inbox(1, "settlement", id=5, **inbox)
    t = _is(s.step("await_his", SETTLE_DOC, data=settle_data(target=target())), want[0])
    if isinstance(t, Goto):
        assert (t.step, t.data["cancel_reason"], t.data["with_extension"]) == ("cancel", want[1], True)
    if isinstance(t, Hold):
        assert t.code == want[1]


def test_settle_await_his_switched_off(facepay):
    s = script(OutpatientSettleFlow(FacePaySettings(his_ack_timeout_seconds=0)), facepay)
    _is(s.step("await_his", SETTLE_DOC, data=settle_data(target=target())), Finish)


# ================================================================== cancel: start

@pytest.mark.parametrize("row, want", [
    (None, (Fail, "SETTLEMENT_NOT_FOUND")),
    (dict(state="failed", flow_data={}), (Fail, "NOT_SETTLED")),
    (dict(state="in_doubt", flow_data={"target": target()}), (Fail, "SETTLEMENT_BUSY")),
    (dict(state="done", flow_data={"target": target()}), (Goto, None)),
])
def test_cancel_start(facepay, row, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    if row:
        s.port.add_request(id=31, kind="facepay.outpatient.settle", business_key="S1", payload={}, **row)
    t = _is(s.step("start", {"settle_key": "S1"}), *want)
    if isinstance(t, Goto):
        assert t.data["target"] == target() and t.data["cancel_reason"] == "his_request"


# ================================================================== cancel steps (cancel flows and 单边账)

CANCEL_DOC = {"settle_key": "S1"}


def cancel_data(face_pay=True, **kw):
    d = {"target": target(face_pay=face_pay), "with_extension": True, "cancel_reason": "his_request",
         "operator": None}
    d.update(kw)
    return d


@pytest.mark.parametrize("cls", [OutpatientCancelFlow, InpatientCancelFlow, DocumentCancelFlow])
@pytest.mark.parametrize("answer, want", [
    ("ok", (Finish, None)),
    (lambda i: refused(i, "撤销失败"), (Goto, "check_cancel")),
    (lambda i: transient(i), (Retry, "PLATFORM_BUSY")),
    (lambda i: not_sent(i), (Retry, "NOT_SENT")),
    (lambda i: unknown(i), (InDoubt, "CANCEL_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_cancel(facepay, cls, answer, want):
    infno = CANCEL_INFNO[cls]
    s = script(cls(SETTINGS), facepay)
    s.answer(infno, settled(infno) if answer == "ok" else answer(infno))
    t = _is(s.step("cancel", CANCEL_DOC, data=cancel_data()), want[0])
    assert s.sent == [infno]
    if isinstance(t, Finish):
        [row] = t.inbox
        assert (row.result_type, row.settlement_id, row.account_amount) == ("cancellation", "SETL-1", D("30.00"))
        assert row.result["account_refund"] == "core"
    elif isinstance(t, Goto):
        assert t.step == want[1] and t.data["cancel_rejected"][0] == "PLATFORM_-1"
    else:
        assert t.code == want[1]


@pytest.mark.parametrize("face_pay, with_ext, want", [
    (True, False, (Goto, "query_account")),          # the core cancelled the insurance part only
    (False, True, (Finish, "none")),                 # a plain settlement: no account to refund
])
def test_cancel_without_the_extension(facepay, face_pay, with_ext, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("2208", settled("2208"))
    t = _is(s.step("cancel", CANCEL_DOC, data=cancel_data(face_pay=face_pay, with_extension=with_ext)), want[0])
    if isinstance(t, Goto):
        assert t.step == want[1]
    else:
        assert t.inbox[0].result["account_refund"] == want[1]


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (account("0", ACCT_STAS_REFUNDED), (Finish, "core")),                # cancelled with the account: done
    (account("0", ACCT_STAS_DEDUCTED), (Hold, "ACCOUNT_STATE_UNCLEAR")),  # never refund blindly on top
    (account("1", ACCT_STAS_REFUND_FAILED), (Goto, "refund_account")),   # UnionPay refund failed: mpc004
    (unknown("fpy001"), (InDoubt, "QUERY_FAILED")),
    (refused("fpy001"), (InDoubt, "QUERY_FAILED")),
], ids=["cancelled", "deducted", "refund-failed", "unknown", "refused"])
def test_resolve_cancel(facepay, age, answer, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    t = _is(s.resolve("cancel", CANCEL_DOC, data=cancel_data(), doubt_age=age), want[0])
    assert s.sent == ["fpy001"]
    if isinstance(t, Finish):
        assert t.inbox[0].result["account_refund"] == want[1]
    elif isinstance(t, Goto):
        assert t.step == want[1] and t.data["cancelled"] is False and t.data["refund_sn"]
    else:
        assert t.code == want[1]


# Where face pay is not enabled (a kiosk with no [facepay] section: IdentitySettings.kiosk_settlement)
# there is no fpy001: a lost cancel is resolved by 2601 of its msgid (offline.md §9.2, §9.3).
PLAIN = FacePaySettings(enabled=False, notify_terminal=False)


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, reversals, want", [
    (ok("2601"), 0, (Goto, None)),                                     # undone: the settlement stands, cancel again
    (ok("2601"), PLAIN.max_reversals, (Hold, "TOO_MANY_REVERSALS")),
    (refused("2601", NOT_REVERSIBLE), 0, (Hold, "CANCEL_UNRESOLVED")),
    (refused("2601", "其他错误"), 0, (InDoubt, "REVERSAL_FAILED")),
    (unknown("2601"), 0, (InDoubt, "REVERSAL_FAILED")),
    (not_sent("2601"), 0, (InDoubt, "REVERSAL_FAILED")),
], ids=["reversed", "too-many", "not-reversible", "other-refusal", "unknown", "not-sent"])
@pytest.mark.parametrize("cls", [OutpatientCancelFlow, InpatientCancelFlow, OutpatientSettleFlow])
def test_resolve_cancel_without_face_pay_reverses_the_lost_cancel(facepay, cls, age, answer, reversals, want):
    s = script(cls(PLAIN), facepay)
    s.answer("2601", answer)
    t = _is(s.resolve("cancel", CANCEL_DOC if "Cancel" in cls.__name__ else SETTLE_DOC,
                      data=cancel_data(face_pay=False, cancel_reversals=reversals), doubt_age=age), *want)
    assert s.sent == ["2601"]                                   # never fpy001, never 2208 from the resolver
    infno = CANCEL_INFNO.get(cls, "2208")
    data = envelope_data(s)
    assert (data["omsgid"], data["oinfno"]) == (s.ctx.in_doubt_msg_id, infno)     # 2601 of THE lost cancel
    if isinstance(t, Goto):
        assert t.step == "cancel" and t.data == {"cancel_reversals": 1}
        [note] = t.inbox
        assert note.result_type == "cancel_progress" and note.result["oinfno"] == infno   # not a settlement reversal


def test_a_kiosk_without_facepay_resolves_a_lost_2208_by_2601(facepay):
    """The kiosk's settings when the daemon has no [facepay] section (face pay not enabled): a
    lost 2208 used to be asked with fpy001 only, which such a kiosk cannot answer (held
    QUERY_FAILED once the attempts ran out)."""
    from bridge.identity.kiosk import KioskCancelFlow, KioskSettleFlow
    from bridge.identity.settings import IdentitySettings
    identity = IdentitySettings()
    plain = identity.kiosk_settlement(None)
    for flow, doc in ((KioskCancelFlow(plain, identity), CANCEL_DOC),
                      (KioskSettleFlow(plain, identity), SETTLE_DOC)):           # the 单边账 cancel too
        s = script(flow, facepay)
        s.answer("2601", ok("2601"))
        t = _is(s.resolve("cancel", doc, data=cancel_data(face_pay=False), doubt_age=PAST), Goto, step="cancel")
        assert s.sent == ["2601"] and envelope_data(s)["oinfno"] == "2208"
        assert t.inbox[0].result["platform"] == "kiosk"


@pytest.mark.parametrize("cls, age, want", [
    (OutpatientCancelFlow, INSIDE, (InDoubt, "CANCEL_NOT_SEEN_YET")),
    (OutpatientCancelFlow, PAST, (Goto, None)),                     # never booked: send it (a first send)
    (DocumentCancelFlow, PAST, (Hold, "CANCEL_UNRESOLVED")),        # 2261 is not known to be reversible
], ids=["2208-inside", "2208-past", "2261-past"])
def test_resolve_cancel_without_face_pay_original_not_found(facepay, cls, age, want):
    s = script(cls(PLAIN), facepay)
    s.answer("2601", refused("2601", NOT_FOUND))
    t = _is(s.resolve("cancel", CANCEL_DOC, data=cancel_data(face_pay=False), doubt_age=age), *want)
    if isinstance(t, InDoubt):
        assert t.waiting
    if isinstance(t, Goto):
        assert t.step == "cancel" and t.inbox == []


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_cancel_still_valid_waits_out_the_window_then_cancels(facepay, age, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", account("1", ACCT_STAS_DEDUCTED))
    t = _is(s.resolve("cancel", CANCEL_DOC, data=cancel_data(), doubt_age=age), want)
    assert (t.waiting and t.code == "CANCEL_NOT_SEEN_YET") if want is InDoubt else t.step == "cancel"


@pytest.mark.parametrize("answer, want", [
    (account("1", ACCT_STAS_REFUND_FAILED), (Goto, "refund_account")),
    (account("1", ACCT_STAS_DEDUCTED), (Fail, "PLATFORM_-1")),          # the cancel's own refusal
    (refused("fpy001"), (Fail, "PLATFORM_-1")),
    (unknown("fpy001"), (Retry, "QUERY_FAILED")),
])
def test_check_cancel(facepay, answer, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    data = cancel_data(cancel_rejected=["PLATFORM_-1", "2208: 撤销失败"])
    t = _is(s.step("check_cancel", CANCEL_DOC, data=data), want[0])
    if isinstance(t, Goto):
        assert t.step == want[1] and t.data["platform_seq_id"] == "UP-1"
        assert t.inbox[0].error_code == "UNIONPAY_REFUND_FAILED"
    else:
        assert t.code == want[1]


def test_check_cancel_of_a_settlement_the_his_did_not_keep_is_held_not_failed(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", account("1", ACCT_STAS_DEDUCTED))
    data = settle_data(target=target(), cancel_rejected=["PLATFORM_-1", "2208: 撤销失败"])
    _is(s.step("check_cancel", SETTLE_DOC, data=data), Hold, code="UNILATERAL_SETTLEMENT")


@pytest.mark.parametrize("flow", ["cancel", "settle"])
@pytest.mark.parametrize("answer, want", [
    # Someone else cancelled it and the account came back: this request moved nothing,
    # and says so with no amounts (never a second cancellation of the full split).
    (account("0", ACCT_STAS_REFUNDED), (Fail, "ALREADY_CANCELLED")),
    # ... and the account still deducted: another cancel may be refunding it right now.
    (account("0", ACCT_STAS_DEDUCTED), (Hold, "CANCELLED_ELSEWHERE")),
])
def test_check_cancel_of_a_settlement_someone_else_cancelled(facepay, flow, answer, want):
    if flow == "cancel":
        s = script(OutpatientCancelFlow(SETTINGS), facepay)
        doc, data = CANCEL_DOC, cancel_data(cancel_rejected=["PLATFORM_-1", "2208: 该结算已撤销"])
    else:
        s = script(OutpatientSettleFlow(SETTINGS), facepay)
        doc, data = SETTLE_DOC, settle_data(target=target(), cancel_rejected=["PLATFORM_-1", "2208: 该结算已撤销"])
    s.answer("fpy001", answer)
    t = _is(s.step("check_cancel", doc, data=data), want[0], code=want[1])
    if isinstance(t, Fail):
        assert all(r.total_amount is None and r.result_type != "cancellation" for r in t.inbox)


@pytest.mark.parametrize("answer, want", [
    (account("0", ACCT_STAS_DEDUCTED), (Goto, "refund_account")),
    (account("0", ACCT_STAS_REFUNDED), (Finish, "core")),
    (account("1", ACCT_STAS_DEDUCTED), (Hold, "SETTLEMENT_STILL_VALID")),
    (unknown("fpy001"), (Retry, "QUERY_FAILED")),
])
def test_query_account(facepay, answer, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    t = _is(s.step("query_account", CANCEL_DOC, data=cancel_data(with_extension=False)), want[0])
    if isinstance(t, Goto):
        assert t.step == want[1] and t.data["cancelled"] is True
    elif isinstance(t, Finish):
        assert t.inbox[0].result["account_refund"] == want[1] and t.data == {"platform_seq_id": "UP-1"}
    else:
        assert t.code == want[1]


REFUNDING = dict(cancel_data(), refund_sn="RF000000000001", platform_seq_id="UP-1")


@pytest.mark.parametrize("cancelled, answer, tries, want", [
    (True, account_refunded(), 0, (Finish, None)),
    (False, account_refunded(), 0, (Goto, "cancel_plain")),
    (True, refused("tgdupc004", "银联退款失败"), 0, (Wait, None)),
    (True, refused("tgdupc004", "银联退款失败"), len(SETTINGS.refund_retry_delays), (Hold, "ACCOUNT_REFUND_FAILED")),
    (True, transient("tgdupc004"), 0, (Retry, "PLATFORM_BUSY")),
    (True, not_sent("tgdupc004"), 0, (Retry, "NOT_SENT")),
    (True, unknown("tgdupc004"), 0, (InDoubt, "REFUND_UNKNOWN")),
], ids=["ok", "ok-then-cancel", "refused", "refused-last", "transient", "not-sent", "unknown"])
def test_refund_account(facepay, cancelled, answer, tries, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("tgdupc004", answer)
    t = _is(s.step("refund_account", CANCEL_DOC, data=dict(REFUNDING, cancelled=cancelled, refund_tries=tries)),
            want[0])
    assert s.sent == ["tgdupc004"]
    if isinstance(t, Finish):
        assert [r.result_type for r in t.inbox] == ["account_refund", "cancellation"]
        assert t.inbox[1].result["account_refund"] == "mpc004" and t.data["refund_seq_id"] == "RF-SEQ-1"
    elif isinstance(t, Goto):
        assert t.step == want[1] and t.data["refund_seq_id"] == "RF-SEQ-1"
    elif isinstance(t, Wait):
        assert (t.step, t.delay, t.data) == ("refund_account", SETTINGS.refund_retry_delays[0], {"refund_tries": 1})
    else:
        assert t.code == want[1]


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (account("0", ACCT_STAS_REFUNDED, refund_seq="RF-SEQ-9"), (Finish, None)),
    (account("1", ACCT_STAS_REFUNDED, refund_seq="RF-SEQ-9"), (Goto, "cancel_plain")),
    (unknown("fpy001"), (InDoubt, "QUERY_FAILED")),
], ids=["refunded-cancelled", "refunded-valid", "unknown"])
def test_resolve_refund_account(facepay, age, answer, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    t = _is(s.resolve("refund_account", CANCEL_DOC, data=REFUNDING, doubt_age=age), want[0])
    assert s.sent == ["fpy001"]                           # never mpc004 from the resolver
    if isinstance(t, (Finish, Goto)):
        assert t.data["refund_seq_id"] == "RF-SEQ-9"
        assert t.data["cancelled"] is isinstance(t, Finish)
    if isinstance(t, Goto):
        assert t.step == want[1]


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_refund_account_not_refunded_waits_then_sends_the_same_refund(facepay, age, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", account("1", ACCT_STAS_DEDUCTED))
    t = _is(s.resolve("refund_account", CANCEL_DOC, data=REFUNDING, doubt_age=age), want)
    assert (t.waiting and t.code == "REFUND_NOT_SEEN_YET") if want is InDoubt else t.step == "refund_account"


@pytest.mark.parametrize("answer, want", [
    (settled("2208"), (Finish, None)),
    (refused("2208", "撤销失败"), (Hold, "CANCEL_AFTER_REFUND_FAILED")),
    (transient("2208"), (Retry, "PLATFORM_BUSY")),
    (not_sent("2208"), (Retry, "NOT_SENT")),
    (unknown("2208"), (InDoubt, "CANCEL_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_cancel_plain(facepay, answer, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("2208", answer)
    t = _is(s.step("cancel_plain", CANCEL_DOC, data=dict(REFUNDING, refund_seq_id="RF-SEQ-1")), *want)
    assert s.sent == ["2208"]
    if isinstance(t, Finish):
        assert t.inbox[0].result["account_refund"] == "mpc004" and t.inbox[0].result["refund_seq_id"] == "RF-SEQ-1"


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, want", [
    (account("0", ACCT_STAS_REFUNDED), (Finish, None)),
    (unknown("fpy001"), (InDoubt, "QUERY_FAILED")),
])
def test_resolve_cancel_plain(facepay, age, answer, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    _is(s.resolve("cancel_plain", CANCEL_DOC, data=REFUNDING, doubt_age=age), *want)
    assert s.sent == ["fpy001"]


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_cancel_plain_still_valid_waits_then_cancels(facepay, age, want):
    s = script(OutpatientCancelFlow(SETTINGS), facepay)
    s.answer("fpy001", account("1", ACCT_STAS_REFUNDED))
    t = _is(s.resolve("cancel_plain", CANCEL_DOC, data=REFUNDING, doubt_age=age), want)
    assert t.waiting if want is InDoubt else t.step == "cancel_plain"



# ------------------------------------------------------------------ more decisions the end-to-end cases had

def test_resolve_settle_of_a_2260_the_centre_reverses_settles_again(facepay):
    # A centre that does reverse 2260 (offline.md §9.2 "may be longer"): booked and lost,
    # 2601 undoes it, it is sent again as a new message.
    s = script(DocumentSettleFlow(SETTINGS), facepay)
    s.answer("2601", ok("2601"))
    t = _is(s.resolve("settle", SETTLE_DOC, data=settle_data(), doubt_age=INSIDE, secrets=VISIT_SECRETS), Goto,
            step="settle")
    assert t.inbox[0].result["oinfno"] == "2260"


@pytest.mark.parametrize("message, code", [("银联扣款失败", "UNIONPAY_FAILED"), ("该人员无个人账户", "NO_REAL_ACCOUNT"),
                                           ("机构未开通医保码实账一次刷脸支付功能", "FACEPAY_NOT_ENABLED")])
def test_settle_face_pay_refusals_are_named(facepay, message, code):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("2207", refused("2207", message))
    _is(s.step("settle", SETTLE_DOC, data=settle_data(), secrets=VISIT_SECRETS), Fail, code=code)


@pytest.mark.parametrize("face_pay", [True, False])
def test_settle_sends_the_account_flag_and_expcontent_only_with_face_pay(facepay, face_pay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("2207", settled("2207"))
    _is(s.step("settle", SETTLE_DOC, data=settle_data(face_pay=face_pay), secrets=VISIT_SECRETS), Goto)
    sent = s.prepared[0].masked_request
    assert ('"acct_used_flag": "1"' in sent or '"acct_used_flag":"1"' in sent) is face_pay
    assert ("expContent" in sent) is face_pay


def test_a_cancel_whose_operator_is_refused_at_9001_is_carried_out_by_the_daemons_operator(tmp_path):
    # A settlement stands: a cancel is never stranded because the HIS named an unknown operator.
    from bridge.facepay.client import FacePayClient, TerminalConfig
    from .conftest import NOWHERE, offline_client
    off = offline_client(tmp_path)
    fp = FacePayClient(off, TerminalConfig(url=NOWHERE, org_id="H44010000001"))
    try:
        s = script(OutpatientCancelFlow(SETTINGS), fp)
        off.send = s.send_direct
        s.answer("9001", refused("9001", "操作员不存在"))
        s.answer("2208", settled("2208"))
        data = cancel_data(operator={"id": "op404", "name": "op404", "type": "1"})
        _is(s.step("cancel", dict(CANCEL_DOC, operator={"id": "op404"}), data=data), Finish)
        assert s.direct == ["9001"] and s.sent == ["2208"]
        assert '"opter": "op001"' in s.prepared[0].masked_request or '"opter":"op001"' in s.prepared[0].masked_request
        assert "op404" not in [o.opter for o in off.operators()]      # the sign-in job stops trying it
    finally:
        fp.close()
