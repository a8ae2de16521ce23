"""Every decision of identity.choose, the kiosk's registration and its settlement
(bridge/identity/choose.py, registration.py, kiosk.py), and of mobile pay's 1101 path
choosing the insurance (bridge/mobilepay/payment.py step_identify): a person with several
insurances is never given the first one."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bridge.engine.flow import BadInput, Fail, Finish, Goto, InDoubt, Retry
from bridge.engine.testing import LOST_MSG, FlowScript, not_sent, ok, refused, transient, unknown
from bridge.identity.choose import ChooseFlow
from bridge.identity.kiosk import KioskCancelFlow, KioskPresettleFlow, KioskSettleFlow
from bridge.identity.registration import RegisterCancelFlow, RegisterFlow
from bridge.mobilepay.kinds import KIND_OUTPATIENT
from bridge.mobilepay.payment import PaymentFlow
from bridge.offline import messages as m

from .fp import SETTINGS as FACEPAY, SPLIT, TERMS, fees, settled, settlement
from .idt import (CERTNO, NOW, SETTINGS, TWO, VISIT, WU, envelope, insurance, is_, lookup_row, person,
                  registration_row, row)
from .mp import SHIPPED, payment_doc, script as mp_script

PLAIN = SETTINGS.kiosk_settlement(None)      # no [facepay]: the plain settlement only


# ================================================================== identity.choose

def choose(doc, **port):
    s = FlowScript(ChooseFlow())
    lookup_row(s.port, **port)
    return s, s.step("choose", doc)


def test_choose_writes_the_identity_back():
    s, t = choose({"lookup_key": "LK-1", "insutype": "390"})
    is_(t, Finish)
    (ident,) = t.identities
    assert (ident.his_patient_id, ident.psn_no, ident.insutype, ident.insuplc_admdvs, ident.psn_type, ident.benefit,
            ident.benefit_status, ident.chosen, ident.certno_masked, ident.psn_name_masked) == \
        ("HIS-7", WU, "390", "440300", "14", "14", "enjoyed", True, "4401**********0071", "吴*")
    (r,) = t.inbox
    assert (r.result_type, r.outcome, r.result["insutype"], r.result["region_name"]) == \
        ("identity_choice", "ok", "390", "区440300")
    assert CERTNO not in json.dumps(r.result) and s.sent == []


@pytest.mark.parametrize("doc, port, code", [
    ({"lookup_key": "LK-1"}, {}, "CHOOSE_INSURANCE"),
    ({"lookup_key": "LK-1", "insutype": "510"}, {}, "NOT_A_CHOICE"),
    ({"lookup_key": "LK-1", "insutype": "390", "insuplc_admdvs": "440100"}, {}, "NOT_A_CHOICE"),
    ({"lookup_key": "LK-1", "insutype": "390"},
     {"rows": [row("310", "440100"), row("390", "440300", selectable=False, why="not in force")]}, "NOT_A_CHOICE"),
    ({"lookup_key": "LK-2", "insutype": "310"}, {}, "LOOKUP_NOT_FOUND"),
    ({"lookup_key": "LK-1", "insutype": "310"}, {"state": "running"}, "LOOKUP_NOT_DONE"),
    ({"lookup_key": "LK-1", "insutype": "310"}, {"state": "failed"}, "LOOKUP_NOT_DONE"),
    ({"lookup_key": "LK-1", "insutype": "310"}, {"payload": {"pay_auth_no": "P"}}, "BAD_INPUT"),
], ids=["none-chosen", "not-held", "wrong-region", "not-usable", "no-lookup", "lookup-running", "lookup-failed",
        "no-patient"])
def test_choose_refusals(doc, port, code):
    _, t = choose(doc, **port)
    is_(t, Fail, code=code)
    if code in ("CHOOSE_INSURANCE", "NOT_A_CHOICE"):
        assert [i["insutype"] for i in t.inbox[0].result["insurances"]] == \
            [r["insutype"] for r in (port.get("rows") or [row("310", "440100"), row("390", "440300")])]


def test_choose_one_insurance_needs_no_insutype_and_takes_the_patient_of_the_request():
    _, t = choose({"lookup_key": "LK-1", "his_patient_id": "HIS-8"}, rows=[row("310", "440100")])
    assert [(i.his_patient_id, i.insutype, i.chosen) for i in is_(t, Finish).identities] == [("HIS-8", "310", True)]


# ================================================================== kiosk.register (2201)

REG_DOC = {"lookup_key": "LK-1", "insutype": "390", "visit": VISIT}


def register(facepay, doc=REG_DOC, **port):
    s = FlowScript(RegisterFlow(SETTINGS), services={"facepay": facepay})
    lookup_row(s.port, **port)
    return s


def test_register_prepare_takes_the_chosen_insurance_and_the_id_credential(facepay):
    s = register(facepay)
    t = is_(s.step("prepare", REG_DOC), Goto, step="register")
    assert t.data["person"] == {"psn_no": WU, "insutype": "390", "insuplc_admdvs": "440300", "mdtrt_cert_type": "02"}
    assert t.secrets == {"mdtrt_cert_no": CERTNO}
    assert t.data["operator"] == {"id": "KIOSK01", "name": "自助机1号", "type": "2"}


@pytest.mark.parametrize("doc, port, code", [
    (dict(REG_DOC, insutype=None), {}, "CHOOSE_INSURANCE"),
    (REG_DOC, {"secrets": {}}, "LOOKUP_NOT_DONE"),
    (REG_DOC, {"state": "failed"}, "LOOKUP_NOT_DONE"),
], ids=["not-chosen", "identity-gone", "lookup-failed"])
def test_register_prepare_refusals(facepay, doc, port, code):
    s = register(facepay, **port)
    is_(s.step("prepare", doc), Fail, code=code)


PREPARED = {"person": {"psn_no": WU, "insutype": "390", "insuplc_admdvs": "440300", "mdtrt_cert_type": "02"},
            "operator": {"id": "KIOSK01", "name": "自助机1号", "type": "2"}}
OWN = {"mdtrt_cert_no": CERTNO}


def test_register_sends_2201_as_the_kiosk_and_reports_the_visit(facepay):
    facepay.offline.signin.invalidate("KIOSK01")
    s = register(facepay)
    s.answer("9001", ok("9001", m.SignInResult(sign_no="SIGN-K")))
    s.answer("2201", ok("2201", m.Registration(mdtrt_id="MD-9", psn_no=WU, ipt_otp_no="OP1")))
    facepay.offline.send = s.send_direct      # the kiosk's own 9001 (a new operator)
    try:
        t = is_(s.step("register", REG_DOC, PREPARED, secrets=OWN), Finish)
    finally:
        del facepay.offline.send
    assert s.direct == ["9001"]      # the kiosk signs in as itself first (offline.md §4)
    env = envelope(s)
    assert (env["opter"], env["opter_type"], env["insuplc_admdvs"]) == ("KIOSK01", "2", "440300")
    assert (env["input"]["data"]["mdtrt_cert_type"], env["input"]["data"]["mdtrt_cert_no"]) == ("02", CERTNO)
    (r,) = t.inbox
    assert (r.result_type, r.result["mdtrt_id"], r.result["insutype"]) == ("registration", "MD-9", "390")
    assert "lost_msgids" not in r.result and t.data["registration"]["mdtrt_id"] == "MD-9"


@pytest.mark.parametrize("answer, want", [
    (refused("2201", "人员参保状态异常"), (Fail, "PLATFORM_-1")),
    (transient("2201"), (Retry, "PLATFORM_BUSY")),
    (not_sent("2201"), (Retry, "NOT_SENT")),
    (unknown("2201"), (InDoubt, "REGISTER_UNKNOWN")),
], ids=["refused", "transient", "not-sent", "unknown"])
def test_register_answers(facepay, answer, want):
    s = register(facepay)
    _sign_in(facepay, "KIOSK01")
    s.answer("2201", answer)
    t = is_(s.step("register", REG_DOC, PREPARED, secrets=OWN), *want)
    if want[1] == "REGISTER_UNKNOWN":
        # Never sent again from the step: the resolver asks 5201 first.
        assert not t.waiting and s.flow.steps["register"].resolves_with == ("5201",)


# A lost 2201 (LOST_MSG) of 吴十's 390 visit OP1 on 2024-03-01: what 5201 lists decides.
def visits(*rows):
    return ok("5201", m.VisitList(visits=tuple(m.VisitInfo(mdtrt_id=i, psn_no=WU, ipt_otp_no=o, insutype="390",
                                                           med_type="11", begntime=NOW) for i, o in rows)))


def resolve_register(facepay, answer, *, doubt_age, settings=SETTINGS, data=PREPARED):
    s = FlowScript(RegisterFlow(settings), services={"facepay": facepay})
    _sign_in(facepay, "KIOSK01")
    if answer is not None:
        s.answer("5201", answer)
    return s, s.resolve("register", REG_DOC, data, doubt_age=doubt_age, secrets=OWN)


def test_a_lost_2201_that_5201_lists_is_the_registration(facepay):
    s, t = resolve_register(facepay, visits(("MD-8", "OP0"), ("MD-9", "OP1")), doubt_age=5.0)
    (r,) = is_(t, Finish).inbox
    assert (r.result_type, r.result["mdtrt_id"], t.data["registration"]["mdtrt_id"]) == \
        ("registration", "MD-9", "MD-9")
    assert "5201" in r.result["confirmed_by"] and "lost_msgids" not in r.result and "other_visits" not in r.result
    assert s.sent == ["5201"]                     # never 2201 again
    env = envelope(s)
    assert env["input"]["data"] == {"psn_no": WU, "begntime": "2024-02-29 00:00:00",
                                    "endtime": "2024-03-02 23:59:59", "med_type": "11"}
    assert (env["insuplc_admdvs"], env["opter"], env["opter_type"]) == ("440300", "KIOSK01", "2")


def test_two_visits_with_our_number_take_the_first_and_name_the_other(facepay):
    _, t = resolve_register(facepay, visits(("MD-9", "OP1"), ("MD-10", "OP1")), doubt_age=500.0)
    (r,) = is_(t, Finish).inbox
    assert (r.result["mdtrt_id"], r.result["other_visits"]) == ("MD-9", ["MD-10"])


@pytest.mark.parametrize("age, want", [(5.0, InDoubt), (SETTINGS.registration_window_seconds + 1, Goto)],
                         ids=["inside-window", "after-window"])
def test_a_lost_2201_that_5201_does_not_list(facepay, age, want):
    s, t = resolve_register(facepay, visits(("MD-8", "OP0")), doubt_age=age)
    is_(t, want)
    if want is InDoubt:
        assert t.waiting and t.code == "REGISTER_NOT_SEEN_YET"       # not yet an answer: no attempt used
    else:
        # Never registered: the next 2201 is the first the centre sees; nothing to name.
        assert t.step == "register" and "lost_msgids" not in t.data
    assert s.sent == ["5201"]


@pytest.mark.parametrize("answer", [unknown("5201"), transient("5201"), not_sent("5201")],
                         ids=["unknown", "transient", "not-sent"])
def test_a_5201_without_an_answer_stays_in_doubt(facepay, answer):
    _, t = resolve_register(facepay, answer, doubt_age=500.0)
    assert is_(t, InDoubt, code="REGISTER_QUERY_FAILED").waiting is False


@pytest.mark.parametrize("settings, answer", [
    (SETTINGS, refused("5201", "交易编号5201不存在")),
    (replace(SETTINGS, registration_query="none"), None),
], ids=["5201-refused", "no-query-configured"])
def test_without_5201_the_registration_is_sent_again_after_the_window_and_the_lost_one_named(
        facepay, settings, answer):
    window = settings.registration_window_seconds
    s, t = resolve_register(facepay, answer, doubt_age=window - 1, settings=settings)
    assert is_(t, InDoubt, code="REGISTER_NOT_SEEN_YET").waiting
    if answer is not None:
        s.answer("5201", answer)
    t = s.resolve("register", REG_DOC, dict(PREPARED, lost_msgids=["M-0"]), doubt_age=window + 1, secrets=OWN)
    # No hold: a registration moves no money (module text); the office gets the lost ones.
    assert is_(t, Goto, step="register").data == {"lost_msgids": ["M-0", LOST_MSG]}
    assert s.sent == ([] if answer is None else ["5201"])


def test_the_registration_after_a_lost_one_names_it(facepay):
    s = register(facepay)
    _sign_in(facepay, "KIOSK01")
    s.answer("2201", ok("2201", m.Registration(mdtrt_id="MD-9")))
    t = is_(s.step("register", REG_DOC, dict(PREPARED, lost_msgids=["M-1", "M-2"]), secrets=OWN), Finish)
    assert t.inbox[0].result["lost_msgids"] == ["M-1", "M-2"]


def test_a_refused_2201_after_a_lost_one_names_the_lost_messages(facepay):
    """The lost 2201 may stand at the centre (mdtrt_id unknown): the failed row says which
    messages, as the registration row does, so the office can look them up."""
    s = register(facepay)
    _sign_in(facepay, "KIOSK01")
    s.answer("2201", refused("2201", "该人员已在本机构挂号"))
    t = is_(s.step("register", REG_DOC, dict(PREPARED, lost_msgids=["M-1"]), secrets=OWN), Fail, code="PLATFORM_-1")
    assert "M-1" in t.message                          # (flow_data keeps lost_msgids: the Fail changes none)
    (r,) = t.inbox
    assert (r.result_type, r.outcome, r.error_code, r.result["lost_msgids"]) == ("error", "failed", "PLATFORM_-1",
                                                                                  ["M-1"])


def _sign_in(facepay, opter: str) -> None:
    facepay.offline.signin.accept(opter, "SIGN-" + opter)


# ================================================================== kiosk.register_cancel (2202)

def reg_cancel(facepay, **port):
    s = FlowScript(RegisterCancelFlow(SETTINGS), services={"facepay": facepay})
    registration_row(s.port, **port)
    _sign_in(facepay, "KIOSK01")
    return s


CANCEL_DOC = {"register_key": "REG-1"}
CANCEL_DATA = {"registration": {"psn_no": WU, "insutype": "310", "insuplc_admdvs": "440100", "mdtrt_cert_type": "02",
                                "mdtrt_id": "MD-9", "ipt_otp_no": "OP1", "begntime": "x", "dr_name": "y",
                                "register_key": "REG-1", "operator": None},
               "operator": {"id": "KIOSK01", "name": "自助机1号", "type": "2"}}


def test_register_cancel_start_reads_the_registration_without_its_credential(facepay):
    s = reg_cancel(facepay)
    t = is_(s.step("start", CANCEL_DOC), Goto, step="cancel")
    assert t.data["registration"]["mdtrt_id"] == "MD-9" and "mdtrt_cert_no" not in json.dumps(t.data)
    assert t.data["operator"]["type"] == "2"


@pytest.mark.parametrize("state, code", [("running", "REGISTRATION_NOT_DONE"), ("failed", "REGISTRATION_NOT_DONE")])
def test_register_cancel_needs_a_done_registration(facepay, state, code):
    is_(reg_cancel(facepay, state=state).step("start", CANCEL_DOC), Fail, code=code)
    s = FlowScript(RegisterCancelFlow(SETTINGS), services={"facepay": facepay})
    is_(s.step("start", CANCEL_DOC), Fail, code="REGISTRATION_NOT_FOUND")


@pytest.mark.parametrize("answer, maybe, want", [
    (ok("2202"), False, (Finish, None)),
    (refused("2202", "该就诊存在有效结算,不能撤销挂号"), False, (Fail, "SETTLEMENT_STANDS")),
    (refused("2202", "就诊信息不存在或已撤销"), False, (Fail, "REGISTRATION_NOT_ACTIVE")),
    (refused("2202", "就诊信息不存在或已撤销"), True, (Finish, None)),
    (refused("2202", "门诊号与挂号信息不符"), False, (Fail, "PLATFORM_-1")),
    (transient("2202"), False, (Retry, "PLATFORM_BUSY")),
    (not_sent("2202"), False, (Retry, "NOT_SENT")),
    (unknown("2202"), False, (Retry, "CANCEL_UNKNOWN")),
], ids=["ok", "settled", "gone", "gone-after-lost", "other", "transient", "not-sent", "unknown"])
def test_register_cancel_answers(facepay, answer, maybe, want):
    s = reg_cancel(facepay)
    s.answer("2202", answer)
    data = dict(CANCEL_DATA, **({"maybe_cancelled": True} if maybe else {}))
    t = is_(s.step("cancel", CANCEL_DOC, data), *want)
    if isinstance(t, Finish):
        (r,) = t.inbox
        assert (r.result_type, r.result["mdtrt_id"]) == ("registration_cancellation", "MD-9")
        assert ("confirmed_by" in r.result) == maybe
    if want[1] == "SETTLEMENT_STANDS":
        assert "kiosk.cancel" in t.message
    if want[1] == "CANCEL_UNKNOWN":
        assert t.data == {"maybe_cancelled": True}


# ================================================================== kiosk.presettle / settle / cancel

PRE_DOC = {"register_key": "REG-1", "chrg_bchno": "B1", "fees": fees("10.00"), "total_amount": "10.00"}


@pytest.mark.parametrize("settings, doc, face_pay", [
    (PLAIN, PRE_DOC, False),                                   # no [facepay]: plain
    (FACEPAY, PRE_DOC, True),                                  # [facepay]: the real account
    (FACEPAY, dict(PRE_DOC, face_pay=False), False),
], ids=["no-facepay-section", "facepay", "facepay-off"])
def test_kiosk_presettle_prepare_takes_the_registered_visit(facepay, settings, doc, face_pay):
    s = FlowScript(KioskPresettleFlow(settings, SETTINGS), services={"facepay": facepay})
    registration_row(s.port)
    t = is_(s.step("prepare", doc), Goto, step="upload_fees")
    v = t.data["visit"]
    assert (v["mdtrt_id"], v["psn_no"], v["insutype"], v["chrg_bchno"], v["total"]) == \
        ("MD-9", WU, "310", "B1", "10.00")
    assert t.data["face_pay"] is face_pay and (v["terms"] == TERMS) is face_pay
    assert t.data["operator"]["type"] == "2" and t.secrets == {"mdtrt_cert_no": CERTNO}


def test_kiosk_presettle_needs_a_done_registration(facepay):
    s = FlowScript(KioskPresettleFlow(PLAIN, SETTINGS), services={"facepay": facepay})
    registration_row(s.port, state="running")
    is_(s.step("prepare", PRE_DOC), Fail, code="REGISTRATION_NOT_DONE")


def test_kiosk_presettle_runs_face_pays_upload_and_trial(facepay):
    s = FlowScript(KioskPresettleFlow(PLAIN, SETTINGS), services={"facepay": facepay})
    registration_row(s.port)
    data = s.step("prepare", PRE_DOC).data
    s.answer("2205", ok("2205"))
    s.answer("2204", ok("2204", ()))
    is_(s.step("upload_fees", PRE_DOC, data, secrets={"mdtrt_cert_no": CERTNO}), Goto, step="presettle")
    assert s.sent == ["2205", "2204"] and envelope(s)["opter_type"] == "2"
    s.answer("2206", settled("2206"))
    t = is_(s.step("presettle", PRE_DOC, data, secrets={"mdtrt_cert_no": CERTNO}), Finish)
    assert envelope(s)["input"]["data"]["acct_used_flag"] == "0"      # plain: the account is not touched
    assert t.inbox[0].result_type == "presettlement"


VISIT_DONE = {"psn_no": WU, "insutype": "310", "insuplc_admdvs": "440100", "mdtrt_cert_type": "02", "total": "100.00",
              "chrg_bchno": "B1", "med_type": "11", "psn_setlway": "01", "mid_setl_flag": "0", "terms": None,
              "mdtrt_id": "MD-1", "face": None, "dr_name": "李医生",
              "operator": {"id": "KIOSK01", "name": "自助机1号", "type": "2"}, "face_pay": False,
              "presettle_split": SPLIT}


def settle_script(facepay):
    s = FlowScript(KioskSettleFlow(PLAIN, SETTINGS), services={"facepay": facepay})
    s.port.add_request(id=50, kind="kiosk.presettle", business_key="PRE-1", state="done",
                       flow_data={"visit": VISIT_DONE}, payload={"register_key": "REG-1"},
                       secrets={"mdtrt_cert_no": CERTNO})
    return s


def test_kiosk_settle_reads_the_kiosk_presettlement_and_tags_its_rows(facepay):
    s = settle_script(facepay)
    t = is_(s.step("start", {"presettle_key": "PRE-1"}), Goto, step="settle")
    assert t.data["operator"]["type"] == "2" and t.data["face_pay"] is False
    s.answer("2207", ok("2207", replace(settlement(), insutype="310", clr_type="11", clr_optins="440100")))
    t = is_(s.step("settle", {"presettle_key": "PRE-1"}, t.data, secrets={"mdtrt_cert_no": CERTNO}), Goto,
            step="await_his")
    (r,) = t.inbox
    assert (r.result_type, r.settlement_id, r.result["platform"]) == ("settlement", "SETL-1", "kiosk")
    # What the order book (mi_order) and 3201/3202 group and list the fee by, in the row itself.
    assert {k: r.result[k] for k in ("psn_no", "mdtrt_id", "insutype", "clr_type", "clr_optins", "setl_time")} == {
        "psn_no": "PSN-1", "mdtrt_id": "MD-1", "insutype": "310", "clr_type": "11", "clr_optins": "440100",
        "setl_time": "2024-03-01 10:00:00"}
    env = envelope(s)
    assert (env["opter_type"], env["input"]["data"]["acct_used_flag"]) == ("2", "0")


def test_kiosk_settle_does_not_read_a_face_pay_presettlement(facepay):
    s = FlowScript(KioskSettleFlow(PLAIN, SETTINGS), services={"facepay": facepay})
    s.port.add_request(id=50, kind="facepay.outpatient.presettle", business_key="PRE-1", state="done",
                       flow_data={"visit": VISIT_DONE}, payload={})
    is_(s.step("start", {"presettle_key": "PRE-1"}), Fail, code="PRESETTLE_NOT_FOUND")


SETTLE_DATA = {"visit": {k: v for k, v in VISIT_DONE.items()}, "face_pay": False, "retry_plain": False,
               "reversals": 0, "operator": {"id": "KIOSK01", "name": "自助机1号", "type": "2"}}


@pytest.mark.parametrize("answer, want", [
    (refused("2207", "医疗费总额与明细合计不符"), (Fail, "PLATFORM_-1")),
    (transient("2207"), (Retry, "PLATFORM_BUSY")),
    (not_sent("2207"), (Retry, "NOT_SENT")),
    (unknown("2207"), (InDoubt, "SETTLE_UNKNOWN")),
], ids=["refused", "transient", "not-sent", "unknown"])
def test_kiosk_settle_answers(facepay, answer, want):
    s = settle_script(facepay)
    s.answer("2207", answer)
    is_(s.step("settle", {"presettle_key": "PRE-1"}, SETTLE_DATA, secrets={"mdtrt_cert_no": CERTNO}), *want)


def test_kiosk_settle_lost_answer_is_reversed_by_2601_and_reported_as_the_kiosks(facepay):
    s = settle_script(facepay)
    s.answer("2601", ok("2601"))
    t = is_(s.resolve("settle", {"presettle_key": "PRE-1"}, SETTLE_DATA, doubt_age=1.0), Goto, step="settle")
    assert s.sent == ["2601"] and envelope(s)["input"]["data"]["oinfno"] == "2207"
    (r,) = t.inbox
    assert (r.result_type, r.result["platform"]) == ("settlement_reversed", "kiosk")
    s.answer("2601", refused("2601", "原交易不存在"))
    is_(s.resolve("settle", {"presettle_key": "PRE-1"}, SETTLE_DATA, doubt_age=1.0), InDoubt, code="SETTLE_NOT_SEEN_YET")
    s.answer("2601", refused("2601", "原交易不存在"))
    is_(s.resolve("settle", {"presettle_key": "PRE-1"}, SETTLE_DATA, doubt_age=PLAIN.settle_window_seconds + 1),
        Goto, step="settle")


def test_kiosk_cancel_reads_the_kiosk_settlement_and_tags_the_cancellation(facepay):
    target = {"setl_id": "SETL-1", "mdtrt_id": "MD-1", "psn_no": WU, "insuplc_admdvs": "440100", "face_pay": False,
              "terms": None, "split": SPLIT, "setl_time": "2024-03-01 10:00:00", "infno": "2207",
              "medins_setl_id": "MS-1", "operator": {"id": "KIOSK01", "name": "自助机1号", "type": "2"}}
    s = FlowScript(KioskCancelFlow(PLAIN, SETTINGS), services={"facepay": facepay})
    s.port.add_request(id=60, kind="kiosk.settle", business_key="SET-1", state="done", flow_data={"target": target},
                       payload={"presettle_key": "PRE-1"})
    t = is_(s.step("start", {"settle_key": "SET-1"}), Goto, step="cancel")
    s.answer("2208", ok("2208", m.Settlement(setl_id="SETL-1")))
    t = is_(s.step("cancel", {"settle_key": "SET-1"}, t.data), Finish)
    (r,) = t.inbox
    assert (r.result_type, r.result["platform"], r.result["account_refund"]) == ("cancellation", "kiosk", "none")
    assert envelope(s)["opter_type"] == "2"


@pytest.mark.parametrize("doc, says", [
    ({"register_key": "R", "chrg_bchno": "B", "fees": fees("10.00"), "total_amount": "11.00"}, "sum of the fee"),
    ({"register_key": "R", "chrg_bchno": "B", "fees": fees("10.00"), "total_amount": "10.00",
      "operator": {"id": "K", "type": "3"}}, "must be 2"),
    ({"register_key": "R", "chrg_bchno": "B", "fees": fees("10.00"), "total_amount": "10.00", "facepay": False},
     "unknown payload field"),
], ids=["sum", "mobile-operator", "typo"])
def test_kiosk_presettle_payloads(facepay, doc, says):
    with pytest.raises(BadInput) as e:
        FlowScript(KioskPresettleFlow(PLAIN, SETTINGS), services={"facepay": facepay}).step("prepare", doc)
    assert says in str(e.value)


@pytest.mark.parametrize("doc, says", [
    ({"visit": VISIT}, "exactly one of"),
    ({"lookup_key": "L", "visit": dict(VISIT, begntime="2024-03-01")}, "begntime"),
    ({"lookup_key": "L", "visit": dict(VISIT, room="3")}, "unknown field"),
    ({"person": {"psn_no": "P"}, "visit": VISIT}, "required"),
], ids=["no-person", "bad-time", "typo", "short-person"])
def test_register_payloads(facepay, doc, says):
    with pytest.raises(BadInput) as e:
        FlowScript(RegisterFlow(SETTINGS), services={"facepay": facepay}).step("prepare", doc)
    assert says in str(e.value)


def test_register_needs_an_operator_when_none_is_configured(facepay):
    from dataclasses import replace
    with pytest.raises(BadInput, match="operator"):
        FlowScript(RegisterFlow(replace(SETTINGS, kiosk_operator_id=None)),
                   services={"facepay": facepay}).step("prepare", REG_DOC)


# ================================================================== mobile pay: the 1101 path

NO_IDENTITY = payment_doc(psn_no=None, insutype=None, insuplc_admdvs=None)


@pytest.mark.parametrize("doc, insurances, want", [
    (NO_IDENTITY, TWO, (Fail, "CHOOSE_INSURANCE")),
    (dict(NO_IDENTITY, insutype="390"), TWO, (Goto, ("390", "440300"))),
    (dict(NO_IDENTITY, insutype="310"), TWO, (Goto, ("310", "440100"))),
    (dict(NO_IDENTITY, insutype="510"), TWO, (Fail, "NOT_A_CHOICE")),
    (NO_IDENTITY, (insurance("310", "440100"), insurance("390", "440300", stas="2")), (Goto, ("310", "440100"))),
    (NO_IDENTITY, (insurance("310", "440100", stas="4"),), (Fail, "NOT_INSURED")),
    (dict(NO_IDENTITY, insutype="310"), (insurance("310", "440100"), insurance("310", "440300")),
     (Goto, ("310", "440100"))),
], ids=["two-none-chosen", "second-chosen", "first-chosen", "not-held", "one-in-force", "none", "first-of-same-type"])
def test_mobile_pay_never_takes_the_first_of_several_insurances(mp_client, offline, doc, insurances, want):
    s = mp_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp_client, more={"offline": offline})
    s.answer("1101", person(*insurances))
    if want == (Goto, ("310", "440100")) and doc.get("insutype") == "310" and len(insurances) == 2 \
            and insurances[1].insutype == "310":
        doc = dict(doc, insuplc_admdvs="440100")       # the same type twice: the region tells them apart
    t = is_(s.step("identify", doc), want[0])
    assert s.sent == ["1101"]
    if isinstance(t, Fail):
        assert t.code == want[1]
        (r,) = t.inbox
        assert (r.result_type, r.error_code) == ("error", want[1])
        assert [i["insutype"] for i in r.result["insurances"]] == [i.insutype for i in insurances]
    else:
        assert (t.data["insutype"], t.data["insuplc_admdvs"]) == want[1]
        (ident,) = t.identities
        assert (ident.insutype, ident.chosen, ident.certno_masked) == \
            (want[1][0], "insutype" in doc and doc["insutype"] is not None, "4401**********1234")


def test_mobile_pay_same_type_in_two_regions_without_the_region_asks_for_it(mp_client, offline):
    s = mp_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp_client, more={"offline": offline})
    s.answer("1101", person(insurance("310", "440100"), insurance("310", "440300")))
    t = is_(s.step("identify", dict(NO_IDENTITY, insutype="310")), Fail, code="CHOOSE_INSURANCE")
    assert "give the region" in t.message


@pytest.mark.parametrize("answer, want", [
    (refused("1101", "签到编号无效"), (Retry, "SIGN_IN_INVALID")),      # the client signs in again
    (refused("1101", "无此授权码"), (Fail, "IDENTIFY_REJECTED")),
    (transient("1101", "系统繁忙"), (Retry, "IDENTIFY_FAILED")),
    (not_sent("1101", "not sent: gateway: 签名错误"), (Retry, "IDENTIFY_FAILED")),
], ids=["sign-in-gone", "verdict", "busy", "gateway-signature"])
def test_mobile_pay_1101_refusals(mp_client, offline, answer, want):
    s = mp_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp_client, more={"offline": offline})
    s.answer("1101", answer)
    is_(s.step("identify", NO_IDENTITY), *want)


@pytest.mark.parametrize("stored, insurances, want", [
    ((WU, "390", "440300", True), TWO, (Goto, ("390", "440300"))),
    ((WU, "310", "440100", True), TWO, (Goto, ("310", "440100"))),
    ((WU, "390", "440300", False), TWO, (Fail, "CHOOSE_INSURANCE")),          # taken by mibridge, not chosen
    (("OTHER-PSN", "390", "440300", True), TWO, (Fail, "CHOOSE_INSURANCE")),  # another person's identity
    ((WU, "390", "440300", True), (insurance("310", "440100"), insurance("390", "440300", stas="2"),
                                   insurance("510", "440100")), (Fail, "CHOOSE_INSURANCE")),   # no longer in force
    (None, TWO, (Fail, "CHOOSE_INSURANCE")),
], ids=["chose-390", "chose-310", "not-chosen", "other-person", "choice-lapsed", "nothing-written-back"])
def test_mobile_pay_without_insutype_runs_under_the_insurance_the_patient_chose(mp_client, offline, stored,
                                                                                insurances, want):
    s = mp_script(PaymentFlow(KIND_OUTPATIENT, SHIPPED), mp_client, more={"offline": offline})
    if stored is not None:
        psn, insutype, region, chosen = stored
        s.port.set_identity("P1", psn, insutype, region, chosen=chosen)
    s.answer("1101", person(*insurances))
    t = is_(s.step("identify", NO_IDENTITY), want[0])
    if isinstance(t, Goto):
        assert (t.data["insutype"], t.data["insuplc_admdvs"]) == want[1]
        (ident,) = t.identities
        assert (ident.insutype, ident.chosen) == (want[1][0], True)
    else:
        assert t.code == want[1]
        assert ("cannot be used now" in t.message) == (stored is not None and len(insurances) == 3)
