"""Every decision of identity.lookup (bridge/identity/lookup.py): the region check, the
kiosk's QR and card reads, 1101 by each credential, 2001 per insurance, the `identity`
row and the writeback.  Nothing here moves money: a call is asked again on anything but
a verdict - and a busy or signature refusal is never taken as "person not found"."""
from __future__ import annotations

import dataclasses
import json

import pytest

from bridge.calls import CallResult, Outcome
from bridge.engine.flow import BadInput, Fail, Finish, Goto, Retry
from bridge.engine.testing import FlowScript, not_sent, ok, refused, transient, unknown
from bridge.facepay.client import FacePayClient, TerminalConfig
from bridge.identity.lookup import LookupFlow
from bridge.offline.envelope import dumps
from bridge.terminal import messages as t

from .conftest import NOWHERE
from .idt import BY_ID, CERTNO, SETTINGS, TWO, WU, benefit, envelope, insurance, is_, person, regions


@pytest.fixture(scope="module")
def kiosk(offline):
    fp = FacePayClient(offline, TerminalConfig(url=NOWHERE, org_id="H44010000001",
                                               card_reader_url=NOWHERE + "/card"))
    yield fp
    fp.close()


def script(fp, settings=SETTINGS) -> FlowScript:
    s = FlowScript(LookupFlow(settings), services={"facepay": fp})
    regions(s.port, "440100", "440300")
    return s


# ------------------------------------------------------------------ start: region and route

@pytest.mark.parametrize("doc, nxt", [
    (BY_ID, "person"), ({"pay_auth_no": "PAY-1"}, "person"), ({"ec_token": "EC-1"}, "person"),
    ({"terminal": "qr"}, "read_qr"), ({"terminal": "card"}, "read_card"),
], ids=["id-card", "pay-auth-no", "ec-token", "qr", "card"])
def test_start_takes_the_route(kiosk, doc, nxt):
    s = script(kiosk)
    t = is_(s.step("start", doc), Goto, step=nxt)
    assert s.sent == []
    if "terminal" in doc:      # a kiosk read runs as the kiosk (operator type 2)
        assert t.data["operator"] == {"id": "KIOSK01", "name": "自助机1号", "type": "2"}


@pytest.mark.parametrize("region, channel, ok_", [
    (dict(), None, True),
    (dict(enabled=False), None, False),
    (dict(channels=("wechat",)), "kiosk", False),
    (dict(channels=("wechat",)), "wechat", True),
    (None, None, False),                                     # not listed at all
], ids=["listed", "disabled", "not-on-channel", "on-channel", "not-listed"])
def test_start_refuses_a_region_the_hospital_does_not_offer(kiosk, region, channel, ok_):
    s = FlowScript(LookupFlow(SETTINGS), services={"facepay": kiosk})
    if region is not None:
        s.port.set_region("440100", "广州市", **region)
    doc = dict(BY_ID, **({"channel": channel} if channel else {}))
    tr = s.step("start", doc)
    if ok_:
        is_(tr, Goto, step="person")
    else:
        is_(tr, Fail, code="REGION_NOT_OFFERED")
        assert [(r.result_type, r.outcome, r.error_code) for r in tr.inbox] == \
            [("identity", "failed", "REGION_NOT_OFFERED")]
    assert s.sent == []


def test_start_without_a_region_list_when_the_site_keeps_none(kiosk):
    s = FlowScript(LookupFlow(dataclasses.replace(SETTINGS, require_listed_region=False)),
                   services={"facepay": kiosk})
    is_(s.step("start", BY_ID), Goto, step="person")


# ------------------------------------------------------------------ the kiosk's reads

QR = t.InsuredIdentity(authNo=None, idNo=CERTNO, idType="01", userName="吴十", ecToken="EC-TOKEN-1",
                       insuOrg="440100")
CARD = t.CardBasics(issuing_area="440100", ssn=CERTNO, card_no="X00000007", card_sn="440100D156ABC", name="吴十")
READS = [  # what a read that moves nothing does with each answer
    (lambda i: refused(i, "未读取到医保电子凭证"), (Fail, "READ_FAILED")),
    (lambda i: transient(i), (Retry, "TERMINAL_UNAVAILABLE")),
    (lambda i: not_sent(i), (Retry, "TERMINAL_UNAVAILABLE")),
    (lambda i: unknown(i), (Retry, "TERMINAL_UNAVAILABLE")),
]


def test_qr_read_gives_the_token_to_mi_secret(kiosk):
    s = script(kiosk)
    s.answer(t.EC_QUERY, ok(t.EC_QUERY, QR))
    tr = is_(s.step("read_qr", {"terminal": "qr"}, {"route": "qr", "operator": {"id": "KIOSK01", "name": "k"}}),
             Goto, step="person")
    assert tr.secrets == {"ec_token": "EC-TOKEN-1"} and tr.data == {"insu_org": "440100"}
    sent = json.loads(s.prepared[0].body)
    assert sent["transType"] == "ec.query" and sent["data"]["deviceType"] == "SelfService"
    assert sent["data"]["operatorId"] == "KIOSK01"


@pytest.mark.parametrize("answer, want", READS, ids=["refused", "transient", "not-sent", "unknown"])
def test_qr_read_answers(kiosk, answer, want):
    s = script(kiosk)
    s.answer(t.EC_QUERY, answer(t.EC_QUERY))
    tr = is_(s.step("read_qr", {"terminal": "qr"}, {"route": "qr"}), *want)
    if isinstance(tr, Fail):
        assert tr.inbox[0].result_type == "identity" and tr.inbox[0].error_code == "READ_FAILED"


def test_card_read_gives_the_card_to_mi_secret(kiosk):
    s = script(kiosk)
    s.answer(t.CARD_READ, ok(t.CARD_READ, CARD))
    tr = is_(s.step("read_card", {"terminal": "card"}, {"route": "card"}), Goto, step="person")
    assert tr.secrets == {"card_no": "X00000007", "card_sn": "440100D156ABC", "card_name": "吴十"}
    assert "吴十" not in json.dumps(tr.data) and CERTNO not in json.dumps(tr.data)


@pytest.mark.parametrize("answer, want", READS, ids=["refused", "transient", "not-sent", "unknown"])
def test_card_read_answers(kiosk, answer, want):
    s = script(kiosk)
    s.answer(t.CARD_READ, answer(t.CARD_READ))
    is_(s.step("read_card", {"terminal": "card"}, {"route": "card"}), *want)


def test_reads_without_a_configured_terminal_fail_before_any_call(offline):
    no_card = FacePayClient(offline, TerminalConfig(url="", org_id="H44010000001"))
    s = FlowScript(LookupFlow(SETTINGS), services={"facepay": no_card})
    is_(s.step("read_card", {"terminal": "card"}, {"route": "card"}), Fail, code="TERMINAL_NOT_CONFIGURED")
    is_(s.step("read_qr", {"terminal": "qr"}, {"route": "qr"}), Fail, code="TERMINAL_NOT_CONFIGURED")
    none = FacePayClient(offline, None)
    s = FlowScript(LookupFlow(SETTINGS), services={"facepay": none})
    is_(s.step("read_qr", {"terminal": "qr"}, {"route": "qr"}), Fail, code="TERMINAL_NOT_CONFIGURED")
    assert s.sent == []


# ------------------------------------------------------------------ person: 1101

@pytest.mark.parametrize("doc, data, secrets, cert, region", [
    (BY_ID, {"route": "id_card"}, None, ("02", CERTNO), "440100"),
    ({"pay_auth_no": "PAY-1"}, {"route": "pay_auth_no"}, None, ("01", "PAY-1"), None),
    ({"ec_token": "EC-1", "insuplc_admdvs": "440300"}, {"route": "ec_token"}, None, ("01", "EC-1"), "440300"),
    ({"terminal": "qr"}, {"route": "qr"}, {"ec_token": "EC-Q"}, ("01", "EC-Q"), None),
    ({"terminal": "card"}, {"route": "card"}, {"card_no": "X7", "card_sn": "SN7", "card_name": "吴十"}, ("03", "X7"),
     None),
], ids=["id-card", "pay-auth-no", "ec-token", "qr", "card"])
def test_1101_by_each_credential(kiosk, doc, data, secrets, cert, region):
    s = script(kiosk)
    s.answer("1101", person(*TWO))
    is_(s.step("person", doc, data, secrets=secrets), Goto, step="benefits")
    env = envelope(s)
    inp = env["input"]["data"]
    assert (inp["mdtrt_cert_type"], inp["mdtrt_cert_no"]) == cert
    # The chosen region only: a read without one lists every insurance of the person.
    assert env.get("insuplc_admdvs") in (region, None, "") and (env.get("insuplc_admdvs") or None) == region
    if cert[0] == "03":
        assert inp["card_sn"] == "SN7"


def test_1101_found_two_insurances_keeps_them_and_the_id_number_in_mi_secret(kiosk):
    s = script(kiosk)
    s.answer("1101", person(*TWO))
    tr = is_(s.step("person", {"pay_auth_no": "PAY-1"}, {"route": "pay_auth_no"}), Goto, step="benefits")
    assert tr.secrets == {"certno": CERTNO, "psn_name": "吴十"}
    assert [(r["insutype"], r["insuplc_admdvs"], r["selectable"]) for r in tr.data["insurances"]] == \
        [("310", "440100", True), ("390", "440300", True)]
    assert tr.data["certno_masked"] == "4401**********0071" and tr.data["psn_name_masked"] == "吴*"
    assert CERTNO not in json.dumps(tr.data) and "吴十" not in json.dumps(tr.data)


@pytest.mark.parametrize("insurances, asked, regions_, want", [
    ((insurance("310", "440100", stas="2"),), None, ("440100",), "not in force"),
    (TWO, "440500", ("440100", "440300", "440500"), "not in the region chosen"),
    ((insurance("310", "440600"),), None, ("440100",), "not in the hospital's region list"),
], ids=["suspended", "other-region", "region-not-listed"])
def test_1101_nothing_usable_is_not_insured(kiosk, insurances, asked, regions_, want):
    s = FlowScript(LookupFlow(SETTINGS), services={"facepay": kiosk})
    regions(s.port, *regions_)
    s.answer("1101", person(*insurances))
    doc = {"pay_auth_no": "PAY-1", **({"insuplc_admdvs": asked} if asked else {})}
    tr = is_(s.step("person", doc, {"route": "pay_auth_no"}), Fail, code="NOT_INSURED")
    (row,) = tr.inbox
    assert (row.result_type, row.outcome, row.error_code) == ("identity", "failed", "NOT_INSURED")
    assert want in tr.message and row.result["insurances"] and row.result["choices"] == 0


def test_1101_type_not_accepted_in_the_region_is_listed_but_not_usable(kiosk):
    s = FlowScript(LookupFlow(SETTINGS), services={"facepay": kiosk})
    s.port.set_region("440100", "广州市")
    s.port.set_region("440300", "深圳市", insutypes=("310",))
    s.answer("1101", person(*TWO))
    tr = is_(s.step("person", {"pay_auth_no": "PAY-1"}, {"route": "pay_auth_no"}), Goto, step="benefits")
    assert [(r["insutype"], r["selectable"]) for r in tr.data["insurances"]] == [("310", True), ("390", False)]
    assert "not accepted" in tr.data["insurances"][1]["why_not"]


@pytest.mark.parametrize("answer, want", [
    (refused("1101", "未查询到人员信息"), (Fail, "PERSON_NOT_FOUND")),
    (refused("1101", "证件号码与姓名不符"), (Fail, "PERSON_NOT_FOUND")),
    (refused("1101", "参保地440300未查询到该人员参保信息"), (Fail, "NOT_INSURED")),
    (transient("1101", "系统繁忙,请稍后再试"), (Retry, "PLATFORM_BUSY")),
    (transient("1101", "签名验证失败"), (Retry, "PLATFORM_BUSY")),
    (not_sent("1101", "not sent: gateway: x-tif-signature 校验失败"), (Retry, "NOT_SENT")),
    (unknown("1101"), (Retry, "PLATFORM_UNAVAILABLE")),
], ids=["unknown-person", "name-mismatch", "not-in-region", "busy", "signature", "gateway-not-sent", "lost"])
def test_1101_refusals(kiosk, answer, want):
    s = script(kiosk)
    s.answer("1101", answer)
    tr = is_(s.step("person", BY_ID, {"route": "id_card"}), *want)
    if isinstance(tr, Fail):
        assert tr.inbox[0].result_type == "identity" and tr.inbox[0].error_code == want[1]


def _decoded(kiosk, status: int, body: dict) -> CallResult:
    """What the real offline client makes of a raw answer to a real 1101."""
    from bridge.offline import messages as m
    prepared = kiosk.offline.prepare_person_info(m.PersonInfoRequest.by_id_card(CERTNO, "吴十"))
    return prepared.decode(status, dumps(body))


@pytest.mark.parametrize("status, body, want", [
    (200, {"code": "-1", "message": "签名验证失败 x-tif-signature"}, (Retry, "NOT_SENT")),
    (200, {"infcode": -1, "err_msg": "系统繁忙,请稍后再试"}, (Retry, "PLATFORM_BUSY")),
    (200, {"infcode": -1, "err_msg": "请求过于频繁"}, (Retry, "PLATFORM_BUSY")),
    (200, {"infcode": -1, "err_msg": "签名错误"}, (Retry, "PLATFORM_BUSY")),
    (429, {}, (Retry, "NOT_SENT")),
    (502, {}, (Retry, "PLATFORM_UNAVAILABLE")),
    (200, {"infcode": -1, "err_msg": "未查询到人员信息"}, (Fail, "PERSON_NOT_FOUND")),
], ids=["gateway-signature", "busy", "rate-limited", "signature", "429", "502", "verdict"])
def test_a_gateway_signature_refusal_or_busy_is_never_person_not_found(kiosk, status, body, want):
    r = _decoded(kiosk, status, body)
    s = script(kiosk)
    s.answer("1101", dataclasses.replace(r, interface="1101"))
    is_(s.step("person", BY_ID, {"route": "id_card"}), *want)


def test_1101_without_the_benefit_check_finishes_at_once(kiosk):
    s = script(kiosk, dataclasses.replace(SETTINGS, benefit_check=False))
    s.answer("1101", person(insurance("310", "440100")))
    tr = is_(s.step("person", BY_ID, {"route": "id_card"}), Finish)
    (row,) = tr.inbox
    assert row.result["insurances"][0]["benefit"]["status"] == "not_checked" and s.sent == ["1101"]
    # One insurance and a patient id: nothing to choose, written back at once.
    (ident,) = tr.identities
    assert (ident.his_patient_id, ident.insutype, ident.chosen, ident.certno_masked) == \
        ("HIS-7", "310", False, "4401**********0071")


# ------------------------------------------------------------------ benefits: 2001

FOUND = {"route": "id_card", "psn_no": WU, "psn_cert_type": "01", "gend": "1", "certno_masked": "4401**********0071",
         "psn_name_masked": "吴*", "psn_idet_type": None, "insu_org": None, "operator": None,
         "insurances": [
             {"insutype": "310", "psn_type": "11", "insuplc_admdvs": "440100", "region_name": "区440100",
              "balc": "800.00", "psn_insu_stas": "1", "cvlserv_flag": None, "selectable": True, "why_not": None},
             {"insutype": "390", "psn_type": "14", "insuplc_admdvs": "440300", "region_name": "区440300",
              "balc": "0.00", "psn_insu_stas": "1", "cvlserv_flag": None, "selectable": True, "why_not": None},
             {"insutype": "510", "psn_type": "11", "insuplc_admdvs": "440100", "region_name": "区440100",
              "balc": None, "psn_insu_stas": "2", "cvlserv_flag": None, "selectable": False,
              "why_not": "not in force (psn_insu_stas 2)"}]}
SECRETS = {"certno": CERTNO, "psn_name": "吴十"}


def test_2001_for_each_usable_insurance_then_the_identity_row(kiosk):
    s = script(kiosk)
    s.answer("2001", benefit(), benefit("390100"))
    tr = is_(s.step("benefits", BY_ID, FOUND, secrets=SECRETS), Finish)
    assert s.sent == ["2001", "2001"]       # not for the suspended 510
    assert [(e["input"]["data"]["insutype"], e["insuplc_admdvs"]) for e in (envelope(s, 0), envelope(s, 1))] == \
        [("310", "440100"), ("390", "440300")]
    (row,) = tr.inbox
    assert (row.result_type, row.outcome) == ("identity", "ok")
    r = row.result
    assert [(i["insutype"], i["benefit"]["status"]) for i in r["insurances"]] == \
        [("310", "enjoyed"), ("390", "restricted"), ("510", "not_checked")]
    assert r["insurances"][1]["benefit"]["restrictions"] == [
        {"fund_pay_type": "390100", "reason": "待遇未激活", "begndate": None, "enddate": None}]
    assert (r["choices"], r["choose"], r["certno"], r["psn_name"]) == (2, True, "4401**********0071", "吴*")
    assert tr.identities == []          # two to choose from: nothing written back yet
    assert CERTNO not in json.dumps(r) and "吴十" not in json.dumps(r)


def test_2001_refused_shows_the_check_failed_not_a_failed_lookup(kiosk):
    s = script(kiosk)
    s.answer("2001", refused("2001", "该人员无此险种待遇信息"), benefit())
    tr = is_(s.step("benefits", BY_ID, FOUND, secrets=SECRETS), Finish)
    b = tr.inbox[0].result["insurances"][0]["benefit"]
    assert b["status"] == "check_failed" and "无此险种" in b["message"]


@pytest.mark.parametrize("answer, want", [
    (transient("2001"), "PLATFORM_BUSY"), (not_sent("2001"), "NOT_SENT"), (unknown("2001"), "PLATFORM_UNAVAILABLE"),
], ids=["transient", "not-sent", "unknown"])
def test_2001_without_an_answer_asks_again(kiosk, answer, want):
    s = script(kiosk)
    s.answer("2001", benefit(), answer)
    is_(s.step("benefits", BY_ID, FOUND, secrets=SECRETS), Retry, code=want)


def test_one_usable_insurance_is_written_back_at_once(kiosk):
    s = script(kiosk)
    found = dict(FOUND, insurances=FOUND["insurances"][:1], psn_idet_type="1101")
    s.answer("2001", benefit())
    tr = is_(s.step("benefits", BY_ID, found, secrets=SECRETS), Finish)
    (ident,) = tr.identities
    assert (ident.his_patient_id, ident.psn_no, ident.insutype, ident.insuplc_admdvs, ident.psn_type,
            ident.benefit, ident.benefit_status, ident.med_type, ident.chosen) == \
        ("HIS-7", WU, "310", "440100", "11", "1101", "enjoyed", "11", False)
    assert tr.inbox[0].result["written_back"] is True


def test_a_terminal_lookup_gives_the_his_the_whole_identity_and_no_other_does(kiosk):
    s = script(kiosk)
    s.answer("2001", benefit(), benefit())
    tr = is_(s.step("benefits", {"terminal": "qr"}, dict(FOUND, route="qr"), secrets=SECRETS), Finish)
    assert (tr.inbox[0].result["certno"], tr.inbox[0].result["psn_name"]) == (CERTNO, "吴十")
    s = script(kiosk, dataclasses.replace(SETTINGS, whole_identity_on_terminal=False))
    s.answer("2001", benefit(), benefit())
    tr = is_(s.step("benefits", {"terminal": "qr"}, dict(FOUND, route="qr"), secrets=SECRETS), Finish)
    assert (tr.inbox[0].result["certno"], tr.inbox[0].result["psn_name"]) == ("4401**********0071", "吴*")


# ------------------------------------------------------------------ payloads

@pytest.mark.parametrize("doc, says", [
    ({}, "exactly one of"),
    ({"certno": CERTNO, "pay_auth_no": "P"}, "exactly one of"),
    ({"certno": CERTNO, "psn_name": "吴十"}, "needs 'insuplc_admdvs'"),
    ({"certno": "44010619850202007", "psn_name": "吴十", "insuplc_admdvs": "440100"}, "resident ID number"),
    ({"certno": CERTNO, "insuplc_admdvs": "440100"}, "'psn_name' is required"),
    ({"pay_auth_no": "P", "psn_name": "吴十"}, "goes with 'certno'"),
    ({"pay_auth_no": "P", "insuplc_admdvs": "4401"}, "6-digit"),
    ({"terminal": "face"}, "\"qr\""),
    ({"terminal": "qr", "channel": "fax"}, "channel"),
    ({"terminal": "qr", "operator": {"id": "K1", "type": "1"}}, "must be 2"),
    ({"pay_auth_no": "P", "payauthno": "x"}, "unknown payload field"),
], ids=["none", "two", "no-region", "short-id", "no-name", "name-alone", "bad-region", "bad-terminal",
        "bad-channel", "staff-at-kiosk", "typo"])
def test_lookup_payloads_refused_before_any_call(kiosk, doc, says):
    with pytest.raises(BadInput) as e:
        script(kiosk).step("start", doc)
    assert says in str(e.value)


def test_an_id_number_is_taken_with_a_small_x(kiosk):
    s = script(kiosk)
    s.answer("1101", person(*TWO))
    s.step("person", dict(BY_ID, certno="44010619850202007x"), {"route": "id_card"})
    assert envelope(s)["input"]["data"]["mdtrt_cert_no"] == "44010619850202007X"
