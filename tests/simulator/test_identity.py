"""Identity at the kiosk and the counter, written from the digest (offline.md §5.1-§5.3, §7):
1101 by each certificate and region, 2001 per person and insutype, 1901 region list, QR and
card reads through the terminal front, registration state."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import pytest

from .conftest import control, state
from .offline_helpers import ADMDVS, QIAN, WANG, ZHANG, cancel_input, ok, outpatient, register

WU = "44010000000000000007"       # 310 in 440100 (real account 800.00) + 390 in 440300
ZHENG = "44010000000000000008"    # 390; 2001: outpatient pooled fund not enjoyed for med_type 11
FENG = "44010000000000000009"     # known, no insurance at all


def person(sim, psn_no):
    return next(p for p in control(sim, "GET", "/__sim__/persons")["persons"] if p["psn_no"] == psn_no)


def trans(sim, code, name, data):
    """The e-credential library exchange (offline.md §7.1): data answered as a JSON string."""
    r = httpx.post(sim.client_credentials()["terminal"]["url"],
                   json={"orgId": code, "transType": name, "data": {"orgId": code, **data}, "extra": ""}).json()
    return r["code"], (json.loads(r["data"]) if r["data"] else None), r["message"]


QR_IN = {"businessType": "01101", "operatorId": "KIOSK01", "operatorName": "自助机", "officeId": "01",
         "officeName": "门诊"}


def p1101(gw, data, insuplc=""):
    return gw.call("1101", {"data": data}, insuplc=insuplc)


# ------------------------------------------------------------------ 1101

def test_1101_by_id_number_and_name(gw, sim):
    zhang = person(sim, ZHANG)
    out = ok(p1101(gw, {"mdtrt_cert_type": "02", "mdtrt_cert_no": zhang["certno"], "psn_cert_type": "01",
                        "certno": zhang["certno"], "psn_name": "张三"}))
    assert out["baseinfo"]["psn_no"] == ZHANG and out["baseinfo"]["psn_name"] == "张三"
    wrong = p1101(gw, {"mdtrt_cert_type": "02", "mdtrt_cert_no": zhang["certno"], "psn_name": "李四"})
    assert wrong["infcode"] == -1 and "姓名" in wrong["err_msg"]


def test_1101_several_insurances_and_regions(gw, sim):
    wu = person(sim, WU)
    data = {"mdtrt_cert_type": "02", "mdtrt_cert_no": wu["certno"]}
    insu = ok(p1101(gw, data))["insuinfo"]
    assert [(i["insutype"], i["insuplc_admdvs"], i["psn_insu_stas"]) for i in insu] == [
        ("310", "440100", "1"), ("390", "440300", "1")]
    assert insu[0]["balc"] == Decimal("800.00") and insu[1]["balc"] == Decimal("0.00")
    # the region the patient chose (envelope insuplc_admdvs) narrows the answer
    assert [i["insutype"] for i in ok(p1101(gw, data, "440300"))["insuinfo"]] == ["390"]
    elsewhere = p1101(gw, data, "440600")
    assert elsewhere["infcode"] == -1 and "440600" in elsewhere["err_msg"]


def test_1101_uninsured_and_unknown(gw, sim):
    feng, qian = person(sim, FENG), person(sim, QIAN)
    out = ok(p1101(gw, {"mdtrt_cert_type": "02", "mdtrt_cert_no": feng["certno"]}))
    assert out["baseinfo"]["psn_no"] == FENG and out["insuinfo"] == []
    (q,) = ok(p1101(gw, {"mdtrt_cert_type": "02", "mdtrt_cert_no": qian["certno"]}))["insuinfo"]
    assert q["psn_insu_stas"] != "1" and q["paus_insu_date"]
    unknown = p1101(gw, {"mdtrt_cert_type": "02", "mdtrt_cert_no": "110101199001011237"})
    assert unknown["infcode"] == -1 and "output" not in unknown


def test_1101_by_pay_auth_no(gw, sim):
    auth = control(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": ZHANG})["payAuthNo"]
    out = ok(p1101(gw, {"mdtrt_cert_type": "01", "mdtrt_cert_no": auth}, "440100"))
    assert out["baseinfo"]["psn_no"] == ZHANG
    assert p1101(gw, {"mdtrt_cert_type": "01", "mdtrt_cert_no": "AUTHnope"})["infcode"] == -1


@pytest.mark.parametrize("trans_type, extra", [("ec.query", {"deviceType": "SelfService"}),
                                              ("cn.nhsa.qrcode.get", {})])
def test_qr_read_then_1101_with_the_token(gw, sim, trans_type, extra):
    code, _, msg = trans(sim, gw.code, trans_type, {**QR_IN, **extra})
    assert code != 0 and "电子凭证" in msg                         # no QR shown yet
    control(sim, "POST", "/__sim__/qrcode/present", {"psn_no": WU, "orgId": gw.code})
    code, ident, _ = trans(sim, gw.code, trans_type, {**QR_IN, **extra})
    assert code == 0 and ident["userName"] == "吴十" and ident["insuOrg"] == "440100"
    assert ident["ecToken"] and ident["idNo"] == person(sim, WU)["certno"]
    out = ok(p1101(gw, {"mdtrt_cert_type": "01", "mdtrt_cert_no": ident["ecToken"]}, ident["insuOrg"]))
    assert out["baseinfo"]["psn_no"] == WU and [i["insutype"] for i in out["insuinfo"]] == ["310"]
    assert trans(sim, gw.code, trans_type, {**QR_IN, **extra})[0] != 0   # the QR was consumed
    reads = state(sim)["terminal_reads"]
    assert reads[-1]["kind"] == trans_type and reads[-1]["deviceType"] == extra.get("deviceType")


def read_card(sim, code):
    r = httpx.post(sim.client_credentials()["terminal"]["card_reader_url"], json={"orgId": code}).json()
    return r["code"], r["message"], r["data"]


def test_card_read_then_1101_by_card(gw, sim):
    code, msg, _ = read_card(sim, gw.code)
    assert code != 0 and "社保卡" in msg
    control(sim, "POST", "/__sim__/card/present", {"psn_no": ZHANG})
    code, _, line = read_card(sim, gw.code)
    assert code == 0 and line.endswith("|")
    # ReadCardBas layout: area|social security no.|card no.|card id code|name|reset|version|issued|expires|term|dev
    f = line.rstrip("|").split("|")
    assert len(f) == 11 and f[1] == person(sim, ZHANG)["certno"] and f[4] == "张三" and f[3][:6] == f[0]
    out = ok(p1101(gw, {"mdtrt_cert_type": "03", "mdtrt_cert_no": f[2], "card_sn": f[3], "psn_name": f[4]}))
    assert out["baseinfo"]["psn_no"] == ZHANG
    bad = p1101(gw, {"mdtrt_cert_type": "03", "mdtrt_cert_no": f[2], "card_sn": "440100D156" + "0" * 22})
    assert bad["infcode"] == -1 and "卡识别码" in bad["err_msg"]
    no_sn = p1101(gw, {"mdtrt_cert_type": "03", "mdtrt_cert_no": f[2]})
    assert no_sn["infcode"] == -1 and "card_sn" in no_sn["err_msg"]
    # the ID number is not a card number
    assert p1101(gw, {"mdtrt_cert_type": "03", "mdtrt_cert_no": f[1], "card_sn": f[3]})["infcode"] == -1
    control(sim, "POST", "/__sim__/card/remove", {})
    assert read_card(sim, gw.code)[0] != 0


def test_card_read_fault(gw, sim):
    control(sim, "POST", "/__sim__/card/present", {"psn_no": ZHANG})
    control(sim, "POST", "/__sim__/faults", {"interface": "ReadCardBas", "fault": "business_error",
                                             "message": "读卡器未连接"})
    assert read_card(sim, gw.code)[:2] == (-1, "读卡器未连接")
    assert read_card(sim, gw.code)[0] == 0


# ------------------------------------------------------------------ 2001

def p2001(gw, psn_no, insutype, med_type="11", insuplc=None, **kw):
    data = {"psn_no": psn_no, "insutype": insutype, "fixmedins_code": gw.code, "med_type": med_type,
            "begntime": "2026-01-02 09:00:00", **kw}
    return gw.call("2001", {"data": data}, insuplc=insuplc or ADMDVS.get(psn_no, "440100"))


def test_2001_enjoyed_and_restricted(gw, sim):
    (row,) = ok(p2001(gw, ZHANG, "310"))["trtinfo"]
    assert row["trt_enjymnt_flag"] == "1" and row["psn_no"] == ZHANG and row["trt_chk_rslt"] is None
    rows = ok(p2001(gw, ZHENG, "390", "11", "440100"))["trtinfo"]
    refused = [r for r in rows if r["trt_enjymnt_flag"] != "1"]
    assert len(refused) == 1 and refused[0]["fund_pay_type"] == "390100" and refused[0]["trt_chk_rslt"]
    assert all(r["trt_enjymnt_flag"] == "1" for r in ok(p2001(gw, ZHENG, "390", "14", "440100"))["trtinfo"])
    (q,) = ok(p2001(gw, QIAN, "310"))["trtinfo"]
    assert q["trt_enjymnt_flag"] == "0" and "参保" in q["trt_chk_rslt"]


def test_2001_per_insutype_and_region(gw, sim):
    assert ok(p2001(gw, WU, "390", insuplc="440300"))["trtinfo"][0]["fund_pay_type"] == "390100"
    wrong_region = p2001(gw, WU, "390", insuplc="440100")
    assert wrong_region["infcode"] == -1
    assert p2001(gw, WU, "510", insuplc="440100")["infcode"] == -1         # not held
    assert p2001(gw, FENG, "310", insuplc="440100")["infcode"] == -1
    assert p2001(gw, ZHANG, "310", fixmedins_code="H99999999999")["infcode"] == -1
    missing = gw.call("2001", {"data": {"psn_no": ZHANG, "insutype": "310"}})
    assert missing["infcode"] == -1 and "med_type" in missing["err_msg"]


def test_add_person_with_insurances_and_restrictions(gw, sim):
    p = {"psn_no": "44010000000000000077", "certno": "440106199912120077", "psn_name": "新人",
         "insutype": "310", "insuplc_admdvs": "440100", "account": "notional", "balc": "50.00",
         "insurances": [{"insutype": "390", "insuplc_admdvs": "440600", "psn_insu_stas": "4"}],
         "restrictions": [{"insutype": "310", "fund_pay_type": "310100", "trt_chk_rslt": "欠费"}],
         "card_no": "X12345678", "card_sn": "440100D156ABCDEF0123456789ABCDEF"}
    control(sim, "POST", "/__sim__/persons", p)
    insu = ok(p1101(gw, {"mdtrt_cert_type": "03", "mdtrt_cert_no": "X12345678",
                         "card_sn": "440100D156ABCDEF0123456789ABCDEF"}))["insuinfo"]
    assert [(i["insutype"], i["psn_insu_stas"]) for i in insu] == [("310", "1"), ("390", "4")]
    assert ok(p2001(gw, p["psn_no"], "310", insuplc="440100"))["trtinfo"][0]["trt_chk_rslt"] == "欠费"
    none = {"psn_no": "44010000000000000078", "certno": "440106199912120078", "psn_name": "无保",
            "no_insurance": True}
    control(sim, "POST", "/__sim__/persons", none)
    assert ok(p1101(gw, {"mdtrt_cert_type": "02", "mdtrt_cert_no": none["certno"]}))["insuinfo"] == []


# ------------------------------------------------------------------ 1901

def test_1901_region_list(gw, sim):
    q = {"type": "admdvs", "admdvs": "440100", "date": "2026-01-02", "valiFlag": "1"}
    rows = ok(gw.call("1901", {"data": q}))["list"]
    assert {r["value"]: r["label"] for r in rows} == {"440100": "广州市", "440300": "深圳市",
                                                      "440600": "佛山市", "442000": "中山市"}
    assert all(r["type"] == "admdvs" and r["valiFlag"] == "1" for r in rows)
    assert ok(gw.call("1901", {"data": {**q, "type": "insutype"}}))["list"] == []
    assert gw.call("1901", {"data": {"type": "admdvs"}})["infcode"] == -1


# ------------------------------------------------------------------ registration state

def reg(gw, psn_no, insutype, insuplc, opter_type="2"):
    env = gw.envelope("2201", {"data": {
        "psn_no": psn_no, "insutype": insutype, "begntime": "2026-01-02 09:00:00", "mdtrt_cert_type": "02",
        "mdtrt_cert_no": "x", "ipt_otp_no": "K" + uuid.uuid4().hex[:10], "atddr_no": "D001", "dr_name": "医生",
        "dept_code": "01", "dept_name": "内科", "caty": "A03"}}, insuplc=insuplc)
    env["opter_type"], env["opter"], env["opter_name"] = opter_type, "KIOSK01", "自助机1号"
    r = gw.post("2201", env).json()
    return r, env["input"]["data"]["ipt_otp_no"]


def test_kiosk_registration_under_the_chosen_insurance(gw, sim):
    r, otp = reg(gw, WU, "390", "440300")
    mdtrt_id = ok(r)["data"]["mdtrt_id"]
    v = state(sim)["visit_identity"][mdtrt_id]
    assert (v["insutype"], v["insuplc_admdvs"], v["opter_type"], v["ipt_otp_no"]) == ("390", "440300", "2", otp)
    assert reg(gw, QIAN, "310", "440100")[0]["infcode"] == -1          # suspended
    assert reg(gw, FENG, "310", "440100")[0]["infcode"] == -1          # no insurance
    assert reg(gw, WU, "510", "440100")[0]["infcode"] == -1            # not held


def test_cancel_registration_rules(gw, sim):
    mdtrt_id = register(gw, WANG)
    otp = state(sim)["visit_identity"][mdtrt_id]["ipt_otp_no"]
    unknown = gw.call("2202", {"data": {"psn_no": WANG, "mdtrt_id": "999999999999", "ipt_otp_no": otp}})
    assert unknown["infcode"] == -1
    other = gw.call("2202", {"data": {"psn_no": WANG, "mdtrt_id": mdtrt_id, "ipt_otp_no": "other"}})
    assert other["infcode"] == -1 and state(sim)["visits"][mdtrt_id]["active"]
    ok(gw.call("2202", {"data": {"psn_no": WANG, "mdtrt_id": mdtrt_id, "ipt_otp_no": otp}}))
    assert not state(sim)["visits"][mdtrt_id]["active"]
    again = gw.call("2202", {"data": {"psn_no": WANG, "mdtrt_id": mdtrt_id, "ipt_otp_no": otp}})
    assert again["infcode"] == -1


def test_cancel_registration_after_settlement_only_once_the_settlement_is_cancelled(gw, sim):
    resp, mdtrt_id, _, _ = outpatient(gw, WANG, ["5.00"])
    s = ok(resp)["setlinfo"]
    otp = state(sim)["visit_identity"][mdtrt_id]["ipt_otp_no"]
    cancel_reg = {"data": {"psn_no": WANG, "mdtrt_id": mdtrt_id, "ipt_otp_no": otp}}
    refused = gw.call("2202", cancel_reg)
    assert refused["infcode"] == -1 and "结算" in refused["err_msg"]
    ok(gw.call("2208", cancel_input(WANG, s)))
    ok(gw.call("2202", cancel_reg))


def test_settlement_under_the_second_insurance_has_its_region_and_no_account(gw, sim):
    r, _ = reg(gw, WU, "390", "440300")
    mdtrt_id = ok(r)["data"]["mdtrt_id"]
    batch = "B" + uuid.uuid4().hex[:8]
    rows = [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": WU, "chrg_bchno": batch, "rx_circ_flag": "0",
             "fee_ocur_time": "2026-01-02 09:10:00", "med_list_codg": "X", "medins_list_codg": "H",
             "det_item_fee_sumamt": "20.00", "cnt": "1", "pric": "20.00"}]
    ok(gw.call("2204", {"feedetail": rows}, insuplc="440300"))
    data = {"psn_no": WU, "mdtrt_cert_type": "02", "mdtrt_cert_no": "x", "med_type": "11",
            "medfee_sumamt": "20.00", "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": batch,
            "acct_used_flag": "1", "insutype": "390"}
    s = ok(gw.call("2207", {"data": data}, insuplc="440300"))["setlinfo"]
    assert (s["insutype"], s["clr_optins"], s["acct_pay"]) == ("390", "440300", Decimal("0.00"))
    assert s["fund_pay_sumamt"] == Decimal("11.00")                     # the 390 fund ratio
    assert state(sim)["persons"][WU] == "800.00"
    wrong = gw.call("2207", {"data": {**data, "insutype": "310"}}, insuplc="440100")
    assert wrong["infcode"] == -1



# ------------------------------------------------------------------ 5201 visit query

def q5201(gw, psn_no, insuplc, **data):
    body = {"psn_no": psn_no, "begntime": "2026-01-02 00:00:00", "endtime": "2026-01-02 23:59:59",
            "med_type": "11", **data}
    return gw.call("5201", {"data": body}, insuplc=insuplc)


def test_5201_lists_the_persons_active_registrations_in_the_window(gw, sim):
    r1, otp1 = reg(gw, WU, "390", "440300")
    r2, otp2 = reg(gw, WU, "310", "440100")
    m1, m2 = ok(r1)["data"]["mdtrt_id"], ok(r2)["data"]["mdtrt_id"]
    rows = ok(q5201(gw, WU, "440100"))["mdtrtinfo"]
    mine = {r["mdtrt_id"]: r for r in rows if r["mdtrt_id"] in (m1, m2)}
    assert {k: (v["ipt_otp_no"], v["insutype"], v["begntime"], v["med_type"]) for k, v in mine.items()} == {
        m1: (otp1, "390", "2026-01-02 09:00:00", "11"), m2: (otp2, "310", "2026-01-02 09:00:00", "11")}
    assert [r["mdtrt_id"] for r in ok(q5201(gw, WU, "440100", mdtrt_id=m1))["mdtrtinfo"]] == [m1]
    # another day, another medical type: not listed
    assert ok(q5201(gw, WU, "440100", begntime="2026-01-03 00:00:00", endtime="2026-01-03 23:59:59"))[
        "mdtrtinfo"] == []
    assert not [r for r in ok(q5201(gw, WU, "440100", med_type="14"))["mdtrtinfo"] if r["mdtrt_id"] == m1]
    # a cancelled registration is gone
    ok(gw.call("2202", {"data": {"psn_no": WU, "mdtrt_id": m1, "ipt_otp_no": otp1}}, insuplc="440300"))
    assert m1 not in [r["mdtrt_id"] for r in ok(q5201(gw, WU, "440100"))["mdtrtinfo"]]


def test_5201_refuses_what_the_table_requires(gw, sim):
    assert q5201(gw, WU, "440100", med_type="")["infcode"] == -1
    assert q5201(gw, WU, "440100", begntime="2026/01/02")["infcode"] == -1
    assert q5201(gw, "NOBODY", "440100")["infcode"] == -1
