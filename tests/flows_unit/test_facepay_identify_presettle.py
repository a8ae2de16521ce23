"""Every decision of facepay.identify and the pre-settlements (bridge/facepay/identify.py,
bridge/facepay/presettle.py) and of a call as the request's own operator
(bridge/facepay/fsi.py: 9001 first).  Nothing here moves money: every call is asked
again on anything but a verdict."""
from __future__ import annotations

import pytest

from bridge.engine.flow import BadInput, Fail, Finish, Goto, Retry
from bridge.engine.testing import not_sent, ok, refused, transient, unknown
from bridge.engine.testing import expect as _is
from bridge.facepay.client import FacePayClient, TerminalConfig
from bridge.facepay.identify import IdentifyFlow
from bridge.facepay.presettle import DocumentPresettleFlow, InpatientPresettleFlow, OutpatientPresettleFlow
from bridge.facepay.settings import FacePaySettings
from bridge.offline import messages as m
from bridge.terminal.messages import FaceAuthorisation, InsuredIdentity

from .conftest import NOWHERE, offline_client
from .fp import (D, ID_NO, PERSON, SETTINGS, SPLIT, TERMS, fees, identify_row, script, settled, settlement,
                 visit_doc)


AFTER_SAFE = [  # what a call that moves nothing does with each answer
    (lambda i: refused(i, "参数错误"), (Fail, "PLATFORM_-1")),
    (lambda i: transient(i), (Retry, "PLATFORM_BUSY")),
    (lambda i: not_sent(i), (Retry, "NOT_SENT")),
    (lambda i: unknown(i), (Retry, "PLATFORM_UNAVAILABLE")),
]
AFTER_SAFE_IDS = ["refused", "transient", "not-sent", "unknown"]


# ================================================================== identify

IDENT_DOC = {"his_patient_id": "HIS-1"}


@pytest.mark.parametrize("answer, want", [
    (ok("cn.nhsa.ec.auth", FaceAuthorisation(authNo="AUTH-1")), (Goto, None)),
    (refused("cn.nhsa.ec.auth", "人脸识别失败"), (Fail, "FACE_AUTH_FAILED")),
    (transient("cn.nhsa.ec.auth"), (Retry, "TERMINAL_UNAVAILABLE")),
    (not_sent("cn.nhsa.ec.auth"), (Retry, "TERMINAL_UNAVAILABLE")),
    (unknown("cn.nhsa.ec.auth"), (Retry, "TERMINAL_UNAVAILABLE")),
], ids=["ok", "refused", "transient", "not-sent", "unknown"])
def test_face_auth(facepay, answer, want):
    s = script(IdentifyFlow(SETTINGS), facepay)
    s.answer("cn.nhsa.ec.auth", answer)
    t = _is(s.step("face_auth", IDENT_DOC), *want)
    if isinstance(t, Goto):
        assert t.step == "check" and t.secrets == {"auth_no": "AUTH-1"} and t.data["out_biz_no"]


@pytest.mark.parametrize("answer, want", [
    (ok("cn.nhsa.auth.check", InsuredIdentity(authNo="AUTH-1", idNo=ID_NO, idType="01", userName="张三",
                                              ecToken="EC-1", insuOrg="440100")), (Goto, None)),
    (refused("cn.nhsa.auth.check"), (Fail, "FACE_AUTH_FAILED")),
    (unknown("cn.nhsa.auth.check"), (Retry, "TERMINAL_UNAVAILABLE")),
])
def test_check(facepay, answer, want):
    s = script(IdentifyFlow(SETTINGS), facepay)
    s.answer("cn.nhsa.auth.check", answer)
    t = _is(s.step("check", IDENT_DOC, data={"out_biz_no": "OB-1"}, secrets={"auth_no": "AUTH-1"}), *want)
    if isinstance(t, Goto):
        assert t.secrets == {"id_no": ID_NO, "user_name": "张三", "ec_token": "EC-1"}
        assert ID_NO not in str(t.data) and "张三" not in str(t.data)


def _person(stas: str):
    return ok("1101", m.PersonInfo(psn_no="PSN-1", psn_cert_type="01", insuinfo=(
        m.Insurance(insutype="310", psn_type="11", psn_insu_stas=stas, insuplc_admdvs="440100"),)))


PERSON_DATA = {"out_biz_no": "OB-1", "id_type": "01", "insu_org": "440100", "office": {"id": "", "name": ""}}
IDENT_SECRETS = {"auth_no": "AUTH-1", "id_no": ID_NO, "user_name": "张三", "ec_token": "EC-1"}


@pytest.mark.parametrize("answer, want", [
    (_person("1"), (Finish, "ok")),
    (_person("2"), (Finish, "failed")),           # known, not insured now: a clear result
    (refused("1101", "无此人员"), (Fail, "PERSON_NOT_FOUND")),
    (transient("1101"), (Retry, "PLATFORM_BUSY")),
    (not_sent("1101"), (Retry, "NOT_SENT")),
    (unknown("1101"), (Retry, "PLATFORM_UNAVAILABLE")),
], ids=["insured", "not-insured", "refused", "transient", "not-sent", "unknown"])
def test_person(facepay, answer, want):
    s = script(IdentifyFlow(SETTINGS), facepay)
    s.answer("1101", answer)
    t = _is(s.step("person", IDENT_DOC, data=PERSON_DATA, secrets=IDENT_SECRETS), want[0])
    if isinstance(t, Finish):
        [row] = t.inbox
        assert row.result_type == "identity" and row.outcome == want[1]
        assert ID_NO not in str(row.result) and "张三" not in str(row.result) and "EC-1" not in str(row.result)
        assert [(i.his_patient_id, i.psn_no) for i in t.identities] == [("HIS-1", "PSN-1")]
    else:
        assert t.code == want[1]


# ================================================================== the request's own operator (9001 first)

def _own_operator_script(tmp_path, flow):
    off = offline_client(tmp_path)
    fp = FacePayClient(off, TerminalConfig(url=NOWHERE, org_id="H44010000001"))
    s = script(flow, fp)
    off.send = s.send_direct             # the client's own 9001: scripted too
    return s, fp


@pytest.mark.parametrize("answer, want", [
    (ok("9001", m.SignInResult(sign_no="SIGN-K7")), (Finish, None)),
    (refused("9001", "操作员不存在"), (Fail, "SIGN_IN_REFUSED")),     # nothing stands: the HIS corrects it
    (transient("9001"), (Retry, "SIGN_IN_FAILED")),
    (unknown("9001"), (Retry, "SIGN_IN_FAILED")),
], ids=["signed-in", "refused", "transient", "unknown"])
def test_a_call_as_the_requests_operator_signs_it_in_first(tmp_path, answer, want):
    s, fp = _own_operator_script(tmp_path, IdentifyFlow(SETTINGS))
    s.answer("9001", answer)
    s.answer("1101", _person("1"))
    try:
        _is(s.step("person", dict(IDENT_DOC, operator={"id": "kiosk07", "type": "2"}),
                   data=dict(PERSON_DATA, operator={"id": "kiosk07", "name": "kiosk07", "type": "2"}),
                   secrets=IDENT_SECRETS), *want)
        assert s.direct == ["9001"]
        assert s.sent == (["1101"] if want[0] is Finish else [])     # nothing sent without a sign-in
    finally:
        fp.close()


# ================================================================== pre-settlement: prepare

def test_prepare_with_the_payloads_person(facepay):
    s = script(OutpatientPresettleFlow(SETTINGS), facepay)
    t = _is(s.step("prepare", visit_doc(person=PERSON)), Goto, step="register")
    assert t.secrets == {"mdtrt_cert_no": ID_NO} and ID_NO not in str(t.data)
    assert t.data["face_pay"] is True and t.data["visit"]["terms"] == TERMS
    assert _is(s.step("prepare", visit_doc(person=PERSON, mdtrt_id="MD-1")), Goto).step == "upload_visit"


@pytest.mark.parametrize("row, want", [
    (None, (Fail, "IDENTIFY_NOT_FOUND")),
    (dict(state="failed"), (Fail, "IDENTIFY_NOT_DONE")),
    (dict(insured=False), (Fail, "NOT_INSURED")),
    (dict(secrets={}), (Fail, "IDENTIFY_NOT_DONE")),           # its secrets are gone
    (dict(), (Goto, None)),
], ids=["none", "not-done", "not-insured", "no-identity", "done"])
def test_prepare_with_a_face_identification(facepay, row, want):
    s = script(OutpatientPresettleFlow(SETTINGS), facepay)
    if row is not None:
        identify_row(s.port, **row)
    t = _is(s.step("prepare", visit_doc(identify_key="F1")), *want)
    if isinstance(t, Goto):
        assert t.secrets == {"mdtrt_cert_no": ID_NO, "face.auth_no": "AUTH-1", "face.id_no": ID_NO,
                             "face.user_name": "张三"}
        assert t.data["visit"]["face"] == {"out_biz_no": "OB-1", "office": {"id": "MZ01", "name": "门诊"}}


def test_prepare_with_an_ec_token_when_configured(facepay):
    s = script(OutpatientPresettleFlow(FacePaySettings(merchant_no="1", terminal_no="1", isv_no="1",
                                                       cert_type="01")), facepay)
    identify_row(s.port)
    t = _is(s.step("prepare", visit_doc(identify_key="F1")), Goto)
    assert t.data["visit"]["mdtrt_cert_type"] == "01" and t.secrets["mdtrt_cert_no"] == "EC-1"


@pytest.mark.parametrize("settings, doc, face_pay", [
    (SETTINGS, visit_doc(person=PERSON), True),
    (SETTINGS, visit_doc(person=PERSON, face_pay=False), False),
    (FacePaySettings(enabled=False, merchant_no="1", terminal_no="1", isv_no="1"), visit_doc(person=PERSON), False),
])
def test_prepare_face_pay_mode(facepay, settings, doc, face_pay):
    s = script(OutpatientPresettleFlow(settings), facepay)
    assert _is(s.step("prepare", doc), Goto).data["face_pay"] is face_pay


def test_prepare_face_pay_without_terms_is_bad_input(facepay):
    s = script(OutpatientPresettleFlow(FacePaySettings()), facepay)
    with pytest.raises(BadInput, match="merchant_no"):
        s.step("prepare", visit_doc(person=PERSON))


# ================================================================== outpatient: register, upload, trial

def _visit(**kw):
    v = {"psn_no": "PSN-1", "insutype": "310", "insuplc_admdvs": "440100", "mdtrt_cert_type": "02",
         "total": "100.00", "chrg_bchno": "B1", "med_type": "11", "psn_setlway": "01", "mid_setl_flag": "0",
         "terms": TERMS, "mdtrt_id": None, "face": None, "dr_name": "李医生", "operator": None}
    v.update(kw)
    return v


CERT = {"mdtrt_cert_no": ID_NO}


@pytest.mark.parametrize("answer, want", [(ok("2201", m.Registration(mdtrt_id="MD-1")), (Goto, None))] + AFTER_SAFE,
                         ids=["ok"] + AFTER_SAFE_IDS)
def test_register(facepay, answer, want):
    s = script(OutpatientPresettleFlow(SETTINGS), facepay)
    s.answer("2201", answer if not callable(answer) else answer("2201"))
    t = _is(s.step("register", visit_doc(person=PERSON), data={"visit": _visit(), "face_pay": True},
                   secrets=CERT), *want)
    if isinstance(t, Goto):
        assert t.step == "upload_visit" and t.data["visit"]["mdtrt_id"] == "MD-1"


@pytest.mark.parametrize("answer, want", [(ok("2203"), (Goto, None))] + AFTER_SAFE, ids=["ok"] + AFTER_SAFE_IDS)
def test_upload_visit(facepay, answer, want):
    s = script(OutpatientPresettleFlow(SETTINGS), facepay)
    s.answer("2203", answer if not callable(answer) else answer("2203"))
    _is(s.step("upload_visit", visit_doc(person=PERSON), data={"visit": _visit(mdtrt_id="MD-1")}, secrets=CERT),
        *want)


@pytest.mark.parametrize("first, second, want, sent", [
    (ok("2205"), ok("2204"), (Goto, None), ["2205", "2204"]),
    (ok("2205"), refused("2204", "明细重复"), (Fail, "PLATFORM_-1"), ["2205", "2204"]),
    (ok("2205"), unknown("2204"), (Retry, "PLATFORM_UNAVAILABLE"), ["2205", "2204"]),
    (unknown("2205"), None, (Retry, "PLATFORM_UNAVAILABLE"), ["2205"]),     # 2204 not sent after a failed 2205
    (refused("2205"), None, (Fail, "PLATFORM_-1"), ["2205"]),
], ids=["ok", "2204-refused", "2204-unknown", "2205-unknown", "2205-refused"])
def test_upload_fees_drops_the_batch_first(facepay, first, second, want, sent):
    s = script(OutpatientPresettleFlow(SETTINGS), facepay)
    s.answer("2205", first)
    if second is not None:
        s.answer("2204", second)
    t = _is(s.step("upload_fees", visit_doc(person=PERSON), data={"visit": _visit(mdtrt_id="MD-1")}, secrets=CERT),
            *want)
    assert s.sent == sent
    if isinstance(t, Goto):
        assert t.step == "presettle"


@pytest.mark.parametrize("cls, infno", [(OutpatientPresettleFlow, "2206"), (InpatientPresettleFlow, "2303"),
                                        (DocumentPresettleFlow, "2260")])
@pytest.mark.parametrize("answer, want", [("ok", (Finish, None))] + AFTER_SAFE, ids=["ok"] + AFTER_SAFE_IDS)
def test_presettle(facepay, cls, infno, answer, want):
    s = script(cls(SETTINGS), facepay)
    s.answer(infno, settled(infno) if answer == "ok" else answer(infno))
    visit = _visit(mdtrt_id="MD-1")
    doc = visit_doc(person=PERSON)
    if cls is InpatientPresettleFlow:
        doc = {"mdtrt_id": "MD-1", "person": PERSON, "fees": fees("60.00", "40.00"), "total_amount": "100.00"}
    if cls is DocumentPresettleFlow:
        doc.pop("chrg_bchno")
        visit["document"] = {"begntime": "2024-03-01 09:30:00", "mdtrtinfo": {}, "diseinfo": [], "feedetail": []}
    t = _is(s.step("presettle", doc, data={"visit": visit, "face_pay": True}, secrets=CERT), *want)
    assert s.sent == [infno]
    if isinstance(t, Finish):
        [row] = t.inbox
        assert (row.result_type, row.total_amount, row.fund_amount, row.account_amount) == (
            "presettlement", D("100.00"), D("70.00"), D("30.00"))
        assert row.result["infno"] == infno and t.data["visit"]["presettle_split"] == SPLIT
        assert ID_NO not in str(t.data)
        assert t.secrets == {}           # the credential is in mi_secret already (moved only from old rows)


@pytest.mark.parametrize("retry, want", [(True, (Goto, None)), (False, (Fail, "NO_REAL_ACCOUNT"))])
def test_presettle_refused_for_face_pay_tries_without_only_when_asked(facepay, retry, want):
    s = script(OutpatientPresettleFlow(SETTINGS), facepay)
    s.answer("2206", refused("2206", "该人员无个人账户"))
    t = _is(s.step("presettle", visit_doc(person=PERSON, retry_without_face_pay=retry),
                   data={"visit": _visit(mdtrt_id="MD-1"), "face_pay": True}, secrets=CERT), *want)
    if isinstance(t, Goto):
        assert (t.step, t.data) == ("presettle", {"face_pay": False})
        assert t.inbox[0].result_type == "face_pay_refused"
    else:
        assert t.data == {"face_pay": True}


# ================================================================== inpatient: the stay

def test_inpatient_prepare_on_an_admitted_stay(facepay):
    s = script(InpatientPresettleFlow(SETTINGS), facepay)
    s.port.add_request(id=40, kind="facepay.inpatient.admit", business_key="A1", state="done",
                       flow_data={"stay": {"psn_no": "PSN-1", "insutype": "310", "insuplc_admdvs": "440100",
                                           "mdtrt_cert_type": "02", "mdtrt_id": "MD-7", "med_type": "21",
                                           "ipt_no": "ZY1", "begntime": "2024-03-01 09:30:00"}},
                       payload={}, secrets={"mdtrt_cert_no": ID_NO})
    doc = {"admit_key": "A1", "fees": fees("60.00", "40.00"), "total_amount": "100.00"}
    t = _is(s.step("prepare", doc), Goto, step="upload_fees")
    assert t.data["visit"]["mdtrt_id"] == "MD-7" and t.secrets == {"mdtrt_cert_no": ID_NO}
    s2 = script(InpatientPresettleFlow(SETTINGS), facepay)
    _is(s2.step("prepare", doc), Fail, code="ADMISSION_NOT_FOUND")


@pytest.mark.parametrize("first, second, want", [
    (ok("2302"), ok("2301"), (Goto, None)),
    (ok("2302"), transient("2301"), (Retry, "PLATFORM_BUSY")),
    (not_sent("2302"), None, (Retry, "NOT_SENT")),
])
def test_inpatient_upload_fees(facepay, first, second, want):
    s = script(InpatientPresettleFlow(SETTINGS), facepay)
    s.answer("2302", first)
    if second:
        s.answer("2301", second)
    doc = {"mdtrt_id": "MD-1", "person": PERSON, "fees": fees("60.00", "40.00"), "total_amount": "100.00"}
    _is(s.step("upload_fees", doc, data={"visit": _visit(mdtrt_id="MD-1", med_type="21")}, secrets=CERT), *want)


def test_document_prepare_keeps_the_one_shot_document(facepay):
    s = script(DocumentPresettleFlow(SETTINGS), facepay)
    doc = visit_doc(person=PERSON)
    doc.pop("chrg_bchno")
    t = _is(s.step("prepare", doc), Goto, step="presettle")
    d = t.data["visit"]["document"]
    assert d["mdtrtinfo"]["dscg_maindiag_code"] == "J06.900" and len(d["feedetail"]) == 2
    assert settlement().setl_id == "SETL-1"
