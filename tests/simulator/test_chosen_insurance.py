"""The insurance a payment runs under is the one the request names, not the person's first
(mobilepay.md §5.1 `insutype` with the region in `insuCode` / `insuplcAdmdvs`; offline.md §2 #4
the envelope's `insuplc_admdvs`, §5.2-§5.4 `insutype`).  Written from the digest with the
spec-written clients: a person insured twice pays under either; an insutype the person does
not hold, or holds in another region, or holds suspended, is refused; the personal account
belongs to the first insurance only."""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

from .conftest import control, state
from .offline_helpers import ok
from .test_mobilepay import ORG

WU = "44010000000000000007"        # 310 in 440100 (real account 800.00) + 390 in 440300
FENG = "44010000000000000009"      # known, no insurance
QIAN = "44010000000000000005"      # 310 in 440100, suspended
TWICE = "44010000000000000070"     # added below: 310 in 440100 (account 300.00) and 310 in 440300


def person(sim, psn_no):
    return next(p for p in control(sim, "GET", "/__sim__/persons")["persons"] if p["psn_no"] == psn_no)


def add_twice(sim, second_stas="1"):
    control(sim, "POST", "/__sim__/persons", {
        "psn_no": TWICE, "certno": "440106198707070070", "psn_name": "两地人", "insutype": "310",
        "insuplc_admdvs": "440100", "account": "real", "balc": "300.00",
        "insurances": [{"insutype": "310", "psn_type": "12", "insuplc_admdvs": "440300",
                        "psn_insu_stas": second_stas}]})


# ------------------------------------------------------------------ mobile pay (6201/6202/6302)

def upload(mpc, sim, psn_no, insutype, insu_code, total="100.00", **extra):
    p = person(sim, psn_no)
    auth = control(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": psn_no})["payAuthNo"]
    data = {
        "orgCodg": ORG, "psnNo": psn_no, "insutype": insutype, "medOrgOrd": uuid.uuid4().hex,
        "begntime": "2026-01-01 09:00:00", "idNo": p["certno"], "userName": p["psn_name"], "idType": "01",
        "payAuthNo": auth, "insuCode": insu_code, "iptOtpNo": "MZ0001", "deptCode": "01",
        "deptName": "内科", "caty": "A03", "mdtrtId": "", "medType": "11", "feeType": "01",
        "medfeeSumamt": total, "acctUsedFlag": "1", "psnSetlway": "01", "chrgBchno": "B" + uuid.uuid4().hex[:10],
        "pubHospRfomFlag": "0",
        "feedetailList": [{"feedetlSn": "D1", "detItemFeeSumamt": total, "cnt": "1", "pric": total,
                           "medListCodg": "X001", "medinsListCodg": "H001"}], **extra}
    env, out = mpc.call("6201", data)
    return data, env, out


def place_and_pay(mpc, sim, hospital, data, out):
    auth = control(sim, "POST", "/__sim__/mobilepay/authorize", {"psn_no": data["psnNo"]})["payAuthNo"]
    env, split = mpc.call("6202", {"payAuthNo": auth, "payOrdId": out["payOrdId"], "payToken": out["payToken"],
                                   "orgCodg": ORG, "orgBizSer": "BIZ" + str(time.time_ns()),
                                   "mdtrtId": out["mdtrtId"], "chrgBchno": data["chrgBchno"], "feeType": "01",
                                   "acctUsedFlag": "1"})
    assert env["code"] == 0, env
    hospital.event.clear()
    hospital.received.clear()
    control(sim, "POST", "/__sim__/mobilepay/pay", {"payOrdId": out["payOrdId"]})
    assert hospital.event.wait(5)
    notice = mpc.open(hospital.received[-1])[1]
    return split, notice


def test_6201_pays_under_the_second_insurance_with_its_region_and_no_account(mpc, sim, hospital):
    data, env, out = upload(mpc, sim, WU, "390", "440300", insuplcAdmdvs="440300")
    assert env["code"] == 0, env
    assert out["payOrdId"].startswith("ORD440300")
    split, notice = place_and_pay(mpc, sim, hospital, data, out)
    # 390 -> 55% fund; the account (on the 310) is not used although acctUsedFlag is 1.
    assert (split["fundPay"], split["psnAcctPay"], split["ownPayAmt"]) == (
        Decimal("55.00"), Decimal("0.00"), Decimal("45.00"))
    pre = split["extData"]["preSetl"]
    assert (pre["insutype"], pre["psn_type"]) == ("390", "14")
    (setl,) = notice["extData"]["setlinfo"]
    assert (setl["insutype"], setl["psnType"]) == ("390", "14")
    assert state(sim)["persons"][WU] == "800.00"


def test_6201_under_the_first_insurance_uses_its_account(mpc, sim, hospital):
    data, env, out = upload(mpc, sim, WU, "310", "440100")
    assert env["code"] == 0, env
    split, notice = place_and_pay(mpc, sim, hospital, data, out)
    assert (split["fundPay"], split["psnAcctPay"], split["ownPayAmt"]) == (
        Decimal("70.00"), Decimal("30.00"), Decimal("0.00"))
    assert notice["extData"]["setlinfo"][0]["insutype"] == "310"
    assert state(sim)["persons"][WU] == "770.00"


def test_6201_refuses_an_insutype_not_held_another_region_or_no_insurance(mpc, sim):
    env, _ = upload(mpc, sim, WU, "510", "440100")[1:]
    assert env["code"] != 0 and "险种" in env["message"]
    # 390 is held, but in 440300
    env, _ = upload(mpc, sim, WU, "390", "440100")[1:]
    assert env["code"] != 0 and "440100" in env["message"]
    env, _ = upload(mpc, sim, WU, "390", "440300", insuplcAdmdvs="440100")[1:]
    assert env["code"] != 0 and "440100" in env["message"]
    env, _ = upload(mpc, sim, FENG, "310", "440100")[1:]
    assert env["code"] != 0 and "参保" in env["message"]
    env, _ = upload(mpc, sim, QIAN, "310", "440100")[1:]
    assert env["code"] != 0 and "参保状态" in env["message"]
    assert state(sim)["orders"] == {}


def test_6201_same_insutype_in_two_regions_is_told_apart_by_the_region(mpc, sim, hospital):
    add_twice(sim)
    data, env, out = upload(mpc, sim, TWICE, "310", "440300")
    assert env["code"] == 0 and out["payOrdId"].startswith("ORD440300")
    split, notice = place_and_pay(mpc, sim, hospital, data, out)
    # the account belongs to the 310 in 440100, not to this one
    assert split["psnAcctPay"] == Decimal("0.00") and notice["extData"]["setlinfo"][0]["psnType"] == "12"
    assert state(sim)["persons"][TWICE] == "300.00"


def test_6201_refuses_the_chosen_insurance_when_it_is_suspended(mpc, sim):
    add_twice(sim, second_stas="2")
    env = upload(mpc, sim, TWICE, "310", "440300")[1]
    assert env["code"] != 0 and "参保状态" in env["message"]
    assert upload(mpc, sim, TWICE, "310", "440100")[1]["code"] == 0


# ------------------------------------------------------------------ offline (2201/2206/2207)

def register(gw, psn_no, insutype, insuplc):
    return gw.call("2201", {"data": {
        "psn_no": psn_no, "insutype": insutype, "begntime": "2026-01-02 09:00:00", "mdtrt_cert_type": "02",
        "mdtrt_cert_no": "x", "ipt_otp_no": "K" + uuid.uuid4().hex[:10], "atddr_no": "D001", "dr_name": "医生",
        "dept_code": "01", "dept_name": "内科", "caty": "A03"}}, insuplc=insuplc)


def settle_inputs(gw, psn_no, mdtrt_id, insutype, insuplc, total="20.00"):
    batch = "B" + uuid.uuid4().hex[:8]
    rows = [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "chrg_bchno": batch, "rx_circ_flag": "0",
             "fee_ocur_time": "2026-01-02 09:10:00", "med_list_codg": "X", "medins_list_codg": "H",
             "det_item_fee_sumamt": total, "cnt": "1", "pric": total}]
    ok(gw.call("2204", {"feedetail": rows}, insuplc=insuplc))
    return {"data": {"psn_no": psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": "x", "med_type": "11",
                     "medfee_sumamt": total, "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": batch,
                     "acct_used_flag": "1", "insutype": insutype}}


def test_2201_refuses_an_insurance_of_another_region(gw, sim):
    r = register(gw, WU, "390", "440100")            # WU's 390 is in 440300
    assert r["infcode"] == -1 and "440100" in r["err_msg"]
    r = register(gw, WU, "310", "440300")            # WU's 310 is in 440100
    assert r["infcode"] == -1
    assert ok(register(gw, WU, "390", "440300"))["data"]["mdtrt_id"]


def test_2206_2207_under_the_chosen_insurance_and_its_region(gw, sim):
    mdtrt_id = ok(register(gw, WU, "390", "440300"))["data"]["mdtrt_id"]
    inp = settle_inputs(gw, WU, mdtrt_id, "390", "440300")
    pre = ok(gw.call("2206", inp, insuplc="440300"))["setlinfo"]
    assert (pre["insutype"], pre["clr_optins"], pre["acct_pay"]) == ("390", "440300", Decimal("0.00"))
    # the same visit settled with another region in the envelope, or another insutype: refused
    wrong_region = gw.call("2207", inp, insuplc="440100")
    assert wrong_region["infcode"] == -1
    wrong_type = gw.call("2207", {"data": dict(inp["data"], insutype="310")}, insuplc="440100")
    assert wrong_type["infcode"] == -1 and "就诊信息" in wrong_type["err_msg"]
    assert state(sim)["settlements"] == {}
    s = ok(gw.call("2207", inp, insuplc="440300"))["setlinfo"]
    assert (s["insutype"], s["clr_optins"], s["fund_pay_sumamt"]) == ("390", "440300", Decimal("11.00"))
    assert state(sim)["persons"][WU] == "800.00"


def test_2207_same_insutype_in_two_regions(gw, sim):
    add_twice(sim)
    mdtrt_id = ok(register(gw, TWICE, "310", "440300"))["data"]["mdtrt_id"]
    s = ok(gw.call("2207", settle_inputs(gw, TWICE, mdtrt_id, "310", "440300"), insuplc="440300"))["setlinfo"]
    # under the second 310: its region, its person type, and not the first one's account
    assert (s["clr_optins"], s["psn_type"], s["acct_pay"]) == ("440300", "12", Decimal("0.00"))
    first = ok(register(gw, TWICE, "310", "440100"))["data"]["mdtrt_id"]
    s = ok(gw.call("2207", settle_inputs(gw, TWICE, first, "310", "440100"), insuplc="440100"))["setlinfo"]
    assert (s["clr_optins"], s["acct_pay"]) == ("440100", Decimal("6.00"))
    assert state(sim)["persons"][TWICE] == "294.00"
