"""Every decision of facepay.inpatient.admit / .admit_cancel (bridge/facepay/admission.py):
2401 makes a stay and is NOT safe to repeat (resolved by 2601 of the lost message); 2404
is safe to ask again, and a refused repeat of a 2404 that may have gone through is read
as done."""
from __future__ import annotations

import pytest

from bridge.engine.flow import Fail, Finish, Goto, Hold, InDoubt, Retry
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.facepay.admission import AdmitCancelFlow, AdmitFlow
from bridge.offline import messages as m

from .fp import ID_NO, INSIDE, NOW, PAST, PERSON, SETTINGS, identify_row, script

NOT_FOUND = "原交易不存在"
STAY = {"ipt_no": "ZY1", "begntime": NOW, "atddr_no": "D001", "chfpdr_name": "李医生", "adm_diag_dscr": "肺炎",
        "adm_dept_codg": "NK01", "adm_dept_name": "内科", "adm_bed": "12", "dscg_maindiag_code": "J18.900",
        "dscg_maindiag_name": "肺炎",
        "diagnoses": [{"diag_type": "1", "maindiag_flag": "1", "diag_srt_no": "1", "diag_code": "J18.900",
                       "diag_name": "肺炎", "diag_dept": "内科", "dise_dor_no": "D001", "dise_dor_name": "李医生",
                       "diag_time": NOW}]}
ADMIT_DOC = {"person": PERSON, "stay": STAY}
PUBLIC_PERSON = {k: v for k, v in PERSON.items() if k != "mdtrt_cert_no"}
CERT = {"mdtrt_cert_no": ID_NO}


# ------------------------------------------------------------------ admit: prepare

def test_prepare_with_the_payloads_person(facepay):
    s = script(AdmitFlow(SETTINGS), facepay)
    t = _is(s.step("prepare", ADMIT_DOC), Goto, step="admit")
    assert t.data["person"] == PUBLIC_PERSON and t.secrets == CERT and t.data["reversals"] == 0


@pytest.mark.parametrize("row, want", [(None, (Fail, "IDENTIFY_NOT_FOUND")), (dict(), (Goto, None))])
def test_prepare_with_a_face_identification(facepay, row, want):
    s = script(AdmitFlow(SETTINGS), facepay)
    if row is not None:
        identify_row(s.port, **row)
    t = _is(s.step("prepare", {"identify_key": "F1", "stay": STAY}), *want)
    if isinstance(t, Goto):
        assert t.secrets["face.id_no"] == ID_NO and ID_NO not in str(t.data)


# ------------------------------------------------------------------ admit: 2401 (NOT safe)

ADMITTING = {"person": PUBLIC_PERSON, "reversals": 0, "operator": None}


@pytest.mark.parametrize("answer, want", [
    (ok("2401", m.Admission(mdtrt_id="MD-9")), (Finish, None)),
    (refused("2401", "暂停参保"), (Fail, "PLATFORM_-1")),
    (transient("2401"), (Retry, "PLATFORM_BUSY")),
    (not_sent("2401"), (Retry, "NOT_SENT")),
    (unknown("2401"), (InDoubt, "ADMIT_UNKNOWN")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_admit(facepay, answer, want):
    s = script(AdmitFlow(SETTINGS), facepay)
    s.answer("2401", answer)
    t = _is(s.step("admit", ADMIT_DOC, data=ADMITTING, secrets=CERT), *want)
    assert s.sent == ["2401"]
    if isinstance(t, Finish):
        [row] = t.inbox
        assert (row.result_type, row.result) == ("admission", {"mdtrt_id": "MD-9"})
        assert t.data["stay"]["mdtrt_id"] == "MD-9" and ID_NO not in str(t.data)


@pytest.mark.parametrize("age", [INSIDE, PAST], ids=["inside", "past"])
@pytest.mark.parametrize("answer, reversals, want", [
    (ok("2601"), 0, (Goto, None)),
    (ok("2601"), SETTINGS.max_reversals, (Hold, "TOO_MANY_REVERSALS")),
    (refused("2601", "不允许冲正"), 0, (Hold, "ADMIT_UNRESOLVED")),
    (unknown("2601"), 0, (InDoubt, "REVERSAL_FAILED")),
], ids=["reversed", "too-many", "not-reversible", "unknown"])
def test_resolve_admit(facepay, age, answer, reversals, want):
    s = script(AdmitFlow(SETTINGS), facepay)
    s.answer("2601", answer)
    t = _is(s.resolve("admit", ADMIT_DOC, data=dict(ADMITTING, reversals=reversals), doubt_age=age, secrets=CERT),
            *want)
    assert s.sent == ["2601"]                         # never a second 2401 from here
    if isinstance(t, Goto):
        assert (t.step, t.data) == ("admit", {"reversals": 1})


@pytest.mark.parametrize("age, want", [(INSIDE, InDoubt), (PAST, Goto)], ids=["inside", "past"])
def test_resolve_admit_never_booked_waits_out_the_window_then_admits(facepay, age, want):
    s = script(AdmitFlow(SETTINGS), facepay)
    s.answer("2601", refused("2601", NOT_FOUND))
    t = _is(s.resolve("admit", ADMIT_DOC, data=ADMITTING, doubt_age=age, secrets=CERT), want)
    assert (t.waiting and t.code == "ADMIT_NOT_SEEN_YET") if want is InDoubt else (t.step, t.data) == ("admit", {})


# ------------------------------------------------------------------ admit_cancel: 2404 (safe to ask again)

def _admission(port, state="done"):
    port.add_request(id=41, kind="facepay.inpatient.admit", business_key="A1", state=state,
                     flow_data={"stay": dict(PUBLIC_PERSON, mdtrt_id="MD-9", med_type="21", ipt_no="ZY1",
                                             begntime=NOW)}, payload={}, secrets=CERT)


@pytest.mark.parametrize("state, want", [("done", (Goto, None)), ("failed", (Fail, "ADMISSION_NOT_DONE")),
                                         (None, (Fail, "ADMISSION_NOT_FOUND"))])
def test_admit_cancel_start(facepay, state, want):
    s = script(AdmitCancelFlow(SETTINGS), facepay)
    if state:
        _admission(s.port, state)
    t = _is(s.step("start", {"admit_key": "A1"}), *want)
    if isinstance(t, Goto):
        assert t.data["stay"]["mdtrt_id"] == "MD-9" and ID_NO not in str(t.data)


CANCELLING = {"stay": dict(PUBLIC_PERSON, mdtrt_id="MD-9", admit_key="A1"), "operator": None}
GONE = "就诊信息不存在或已撤销"


@pytest.mark.parametrize("maybe, answer, want", [
    (False, ok("2404"), (Finish, None)),
    (False, refused("2404", "该住院存在有效结算,不能撤销入院"), (Fail, "STAY_SETTLED")),
    (False, refused("2404", GONE), (Fail, "STAY_NOT_ACTIVE")),
    (True, refused("2404", GONE), (Finish, None)),              # an earlier 2404 went through
    (False, refused("2404", "其他"), (Fail, "PLATFORM_-1")),
    (False, transient("2404"), (Retry, "PLATFORM_BUSY")),
    (False, not_sent("2404"), (Retry, "NOT_SENT")),
    (False, unknown("2404"), (Retry, "CANCEL_UNKNOWN")),
], ids=["ok", "settled", "gone", "gone-after-an-unknown-2404", "refused", "transient", "not-sent", "unknown"])
def test_admit_cancel(facepay, maybe, answer, want):
    s = script(AdmitCancelFlow(SETTINGS), facepay)
    s.answer("2404", answer)
    data = dict(CANCELLING, maybe_cancelled=True) if maybe else CANCELLING
    t = _is(s.step("cancel", {"admit_key": "A1"}, data=data), *want)
    if isinstance(t, Finish):
        assert t.inbox[0].result_type == "admission_cancellation"
        assert ("confirmed_by" in t.inbox[0].result) == maybe
    if want[1] == "CANCEL_UNKNOWN":
        assert t.data == {"maybe_cancelled": True}          # kept for the next try


def test_admit_cancel_after_a_crash_during_2404_reads_the_refused_repeat_as_done(facepay):
    # The daemon died during a 2404 (its answer never written): the row's current_call.
    s = script(AdmitCancelFlow(SETTINGS), facepay)
    s.answer("2404", refused("2404", GONE))
    t = _is(s.step("cancel", {"admit_key": "A1"}, data=CANCELLING, current_call="MSG-2404-1"), Finish)
    assert "repeat refused" in t.inbox[0].result["confirmed_by"] and t.data == {"maybe_cancelled": True}
