"""fpy001's UnionPay references after a settlement that deducted the real account (issue 14,
bridge/facepay/references.py): every answer of fpy001 ends in the settlement row (with the
references, or `references: "unavailable"`) or in a bounded wait - never a failure, a hold,
a retry that spends the row's attempts, or a second settling call."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.engine.flow import Goto, Wait
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.facepay.settings import FacePaySettings
from bridge.facepay.settle import DocumentSettleFlow, InpatientSettleFlow, OutpatientSettleFlow
from bridge.identity.kiosk import KioskSettleFlow

from .fp import (ACCT_STAS_DEDUCTED, D, FACE, FACE_SECRETS, VISIT, VISIT_SECRETS, account, script, settled,
                 settlement, target)
from .idt import SETTINGS as IDENTITY

WAIT = 5.0
SETTINGS = FacePaySettings(merchant_no="102440100000004", terminal_no="00000143", isv_no="123456",
                           references_wait_seconds=WAIT)
DOC = {"presettle_key": "P1"}
SETTLE_INFNO = {OutpatientSettleFlow: "2207", InpatientSettleFlow: "2304", DocumentSettleFlow: "2260"}
REFS = {"refNo": "REF-000001", "termSeqNo": "T000000001", "platformSeqId": "UP-1"}


def _is(t, kind, step=None):
    assert isinstance(t, kind), t
    if step is not None:
        assert t.step == step, t
    return t


def deducted(**kw):
    kw = dict({"ref_no": REFS["refNo"], "term_seq_no": REFS["termSeqNo"], "seq": REFS["platformSeqId"]}, **kw)
    return account("1", ACCT_STAS_DEDUCTED, **kw)


def ref_data(**kw):
    """flow_data as step_settle leaves it for step_references (2207 answered, account 30.00)."""
    d = {"visit": VISIT, "face_pay": True, "retry_plain": False, "reversals": 0, "operator": None,
         "target": target(), "settle_msg": "MSG-2207",
         "settlement_result": {"setl_id": "SETL-1", "mdtrt_id": "MD-1", "setl_time": "2024-03-01 10:00:00",
                               "face_pay": True, "medins_setl_id": "MS-1", "presettle_split": None}}
    d.update(kw)
    return d


def settlement_row(t):
    rows = [r for r in t.inbox if r.result_type == "settlement"]
    assert len(rows) == 1, t.inbox
    return rows[0]


# ------------------------------------------------------------------ which settlements ask fpy001

@pytest.mark.parametrize("cls", [OutpatientSettleFlow, InpatientSettleFlow, DocumentSettleFlow])
def test_every_settlement_that_deducts_through_unionpay_asks_fpy001_then_writes_the_row(facepay, cls):
    # facepay.md step 4: 2207 / 2304 / 2260 setl_flag 1 deduct the personal account through UnionPay.
    infno = SETTLE_INFNO[cls]
    s = script(cls(SETTINGS), facepay)
    visit = VISIT if cls is not DocumentSettleFlow else dict(
        VISIT, chrg_bchno=None, document={"begntime": "2024-03-01 09:30:00", "mdtrtinfo": {}, "diseinfo": [],
                                          "feedetail": []})
    s.answer(infno, settled(infno))
    t = _is(s.step("settle", DOC, data=ref_data(visit=visit, target=None, settlement_result=None),
                   secrets=VISIT_SECRETS), Goto, step="references")
    assert t.inbox == [] and s.sent == [infno]
    s.answer("fpy001", deducted())
    t = _is(s.step("references", DOC, data=ref_data(visit=visit, **t.data)), Goto, step="await_his")
    assert s.sent == ["fpy001"]                           # a query; the settlement is never sent again
    row = settlement_row(t)
    assert (row.settlement_id, row.total_amount, row.fund_amount, row.account_amount, row.cash_amount) == \
        ("SETL-1", D("100.00"), D("70.00"), D("30.00"), D("0.00"))
    assert {k: row.result[k] for k in REFS} == REFS and row.result["references"] == "ok"
    assert row.result["split"]["account"] == "30.00" and row.result["setl_id"] == "SETL-1"
    assert t.data["settlement_result"] is None and "target" not in t.data     # kept since the settle step
    # fpy001 names the settlement by its offline identifiers.
    assert '"SETL-1"' in s.prepared[0].masked_request


@pytest.mark.parametrize("settings, face_pay, acct", [
    (SETTINGS, False, "30.00"),                                  # plain settlement: a notional account
    (SETTINGS, True, "0.00"),                                    # balance 0: nothing deducted
    (replace(SETTINGS, fetch_references=False), True, "30.00"),  # switched off
], ids=["plain", "account-0", "switched-off"])
def test_no_fpy001_without_a_unionpay_deduction_or_when_switched_off(facepay, settings, face_pay, acct):
    s = script(OutpatientSettleFlow(settings), facepay)
    s.answer("2207", settled("2207", account=acct, cash=str(D("30.00") - D(acct))))
    t = _is(s.step("settle", DOC, data=ref_data(face_pay=face_pay, target=None, settlement_result=None),
                   secrets=VISIT_SECRETS), Goto, step="await_his")
    row = settlement_row(t)
    assert "references" not in row.result and "refNo" not in row.result
    assert s.sent == ["2207"]                     # FlowScript fails any unscripted fpy001 too


def test_kiosk_without_face_pay_asks_no_fpy001(facepay):
    # No [facepay] section: the kiosk settles the plain way (FacePaySettings(enabled=False)).
    s = script(KioskSettleFlow(IDENTITY.kiosk_settlement(None), IDENTITY), facepay)
    s.port.add_request(id=50, kind="kiosk.presettle", business_key="P1", state="done",
                       flow_data={"visit": dict(VISIT, face_pay=True)}, payload={}, secrets=VISIT_SECRETS)
    t = _is(s.step("start", DOC), Goto, step="settle")
    assert t.data["face_pay"] is False
    s.answer("2207", settled("2207"))
    t = _is(s.step("settle", DOC, data=t.data, secrets=VISIT_SECRETS), Goto, step="await_his")
    assert "refNo" not in settlement_row(t).result and s.sent == ["2207"]


def test_kiosk_with_face_pay_books_the_references_with_its_own_facts(facepay):
    s = script(KioskSettleFlow(SETTINGS, IDENTITY), facepay)
    s.answer("2207", ok("2207", replace(settlement(), insutype="310", clr_type="11", clr_optins="440100")))
    t = _is(s.step("settle", DOC, data=ref_data(target=None, settlement_result=None), secrets=VISIT_SECRETS),
            Goto, step="references")
    s.answer("fpy001", deducted())
    row = settlement_row(_is(s.step("references", DOC, data=ref_data(**t.data)), Goto, step="await_his"))
    assert row.result["platform"] == "kiosk" and row.result["clr_type"] == "11" and row.result["refNo"] == REFS["refNo"]


def test_a_face_identified_patient_gets_the_terminal_notice_after_the_references(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", deducted())
    t = _is(s.step("references", DOC, data=ref_data(visit=dict(VISIT, face=FACE)), secrets=FACE_SECRETS),
            Goto, step="notify")
    assert settlement_row(t).result["references"] == "ok"


# ------------------------------------------------------------------ every answer of fpy001

@pytest.mark.parametrize("answer", [not_sent("fpy001"), transient("fpy001"), unknown("fpy001")],
                         ids=["not-sent", "transient", "unknown"])
def test_a_failed_first_try_waits_and_asks_again_within_the_wait(facepay, answer):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    t = _is(s.step("references", DOC, data=ref_data()), Wait, step="references")
    assert t.inbox == [] and 0 < t.delay <= WAIT
    # The clock starts at the first fpy001's journal row (database clock).
    assert t.data == {"references_since": s.prepared[0].msg_id, "references_tries": 1}


def test_transient_then_ok_writes_the_references(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", transient("fpy001"), deducted())
    t = _is(s.step("references", DOC, data=ref_data()), Wait, step="references")
    s.port.call_ages[t.data["references_since"]] = 2.0            # inside the wait
    t = _is(s.step("references", DOC, data=ref_data(**t.data)), Goto, step="await_his")
    row = settlement_row(t)
    assert {k: row.result[k] for k in REFS} == REFS and row.result["references"] == "ok"
    assert t.data["references_since"] is None and t.data["references_tries"] is None


@pytest.mark.parametrize("answer", [not_sent("fpy001"), transient("fpy001"), unknown("fpy001")],
                         ids=["not-sent", "transient", "unknown"])
def test_over_the_wait_the_row_is_written_without_references(facepay, answer):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    s.port.call_ages["MSG-FPY-1"] = WAIT + 0.5
    t = _is(s.step("references", DOC, data=ref_data(references_since="MSG-FPY-1", references_tries=3)),
            Goto, step="await_his")
    row = settlement_row(t)
    assert row.result["references"] == "unavailable" and "fpy001" in row.result["references_error"]
    assert "refNo" not in row.result and row.account_amount == D("30.00")


def test_a_wait_is_never_longer_than_the_time_left(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", not_sent("fpy001"))
    s.port.call_ages["MSG-FPY-1"] = WAIT - 0.3
    t = _is(s.step("references", DOC, data=ref_data(references_since="MSG-FPY-1", references_tries=6)),
            Wait, step="references")
    assert t.delay <= 0.3 + 1e-9 and t.data["references_tries"] == 7


def test_refused_is_a_verdict_the_row_is_written_at_once(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", refused("fpy001", "结算信息不存在"))
    t = _is(s.step("references", DOC, data=ref_data()), Goto, step="await_his")
    row = settlement_row(t)
    assert row.result["references"] == "unavailable" and "结算信息不存在" in row.result["references_error"]
    assert s.sent == ["fpy001"]


def test_one_try_only_when_the_wait_is_0(facepay):
    s = script(OutpatientSettleFlow(replace(SETTINGS, references_wait_seconds=0)), facepay)
    s.answer("fpy001", unknown("fpy001"))
    t = _is(s.step("references", DOC, data=ref_data()), Goto, step="await_his")
    assert settlement_row(t).result["references"] == "unavailable"


def test_no_journal_age_gives_up_rather_than_waiting_blind(facepay):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", not_sent("fpy001"))
    t = _is(s.step("references", DOC, data=ref_data(references_since="MSG-GONE", references_tries=1)),
            Goto, step="await_his")
    assert settlement_row(t).result["references"] == "unavailable"


@pytest.mark.parametrize("answer, want, present", [
    (deducted(term_seq_no=None), "incomplete", {"refNo", "platformSeqId"}),
    (account("1", "0", seq=None), "unavailable", set()),              # fpy001 shows no deduction
], ids=["no-termSeqNo", "no-deduction"])
def test_an_answer_without_some_references_says_which(facepay, answer, want, present):
    s = script(OutpatientSettleFlow(SETTINGS), facepay)
    s.answer("fpy001", answer)
    row = settlement_row(_is(s.step("references", DOC, data=ref_data()), Goto, step="await_his"))
    assert row.result["references"] == want and {k for k in REFS if k in row.result} == present
    assert "without" in row.result["references_error"]


def test_a_sign_in_that_fails_waits_from_the_settling_call(tmp_path):
    # fpy001 could not be sent (the request's operator has no sign-in and 9001 is busy):
    # the clock runs from the settling call's journal row.
    from bridge.facepay.client import FacePayClient, TerminalConfig
    from .conftest import NOWHERE, offline_client
    off = offline_client(tmp_path)
    fp = FacePayClient(off, TerminalConfig(url=NOWHERE, org_id="H44010000001"))
    try:
        s = script(OutpatientSettleFlow(SETTINGS), fp)
        off.send = s.send_direct
        s.answer("9001", transient("9001"), transient("9001"))
        data = ref_data(operator={"id": "op777", "name": "op777", "type": "1"})
        s.port.call_ages["MSG-2207"] = 1.0
        t = _is(s.step("references", DOC, data=data), Wait, step="references")
        assert t.data["references_since"] == "MSG-2207" and s.sent == []
        s.port.call_ages["MSG-2207"] = WAIT + 1
        t = _is(s.step("references", DOC, data=dict(data, **t.data)), Goto, step="await_his")
        assert settlement_row(t).result["references"] == "unavailable"
        assert "SIGN_IN_FAILED" in settlement_row(t).result["references_error"]
    finally:
        fp.close()


# ------------------------------------------------------------------ the [facepay] settings

@pytest.mark.parametrize("raw, want", [
    ({}, (True, 10.0)),                                          # the shipped defaults
    ({"fetch_references": False, "references_wait_seconds": 0}, (False, 0.0)),
    ({"references_wait_seconds": -1}, "references_wait_seconds must not be negative"),
    ({"references_wait_seconds": "soon"}, "references_wait_seconds"),
])
def test_the_references_settings(raw, want):
    from daemon.config import Config, ConfigError
    from daemon.platforms_facepay import facepay_parts
    cfg = Config()
    cfg.platforms = {"facepay": raw}
    if isinstance(want, str):
        with pytest.raises(ConfigError, match=want):
            facepay_parts(cfg)
    else:
        s = facepay_parts(cfg).settings
        assert (s.fetch_references, s.references_wait_seconds) == want
