"""Real-account face-pay extension (facepay.md) and the face terminal (offline.md §7)."""
from __future__ import annotations

import json
from decimal import Decimal

import httpx

from .conftest import control, state
from .offline_helpers import (ADMDVS, EXP, LI, SUN, WANG, ZHANG, ZHAO, cancel_input, ok, outpatient,
                              register, settle_input, upload_fees)
from .spec_client import OfflineClient


def arm(sim, interface, fault="fail", times=1, **kw):
    control(sim, "POST", "/__sim__/faults", {"interface": interface, "fault": fault, "times": times, **kw})


def presettle(gw, psn_no, amounts, exp=EXP):
    mdtrt_id = register(gw, psn_no)
    batch = upload_fees(gw, psn_no, mdtrt_id, amounts)
    total = str(sum(Decimal(a) for a in amounts))
    return gw.call("2206", settle_input(psn_no, mdtrt_id, batch, total, "1", exp), insuplc=ADMDVS[psn_no])


def test_institution_not_enabled(sim):
    other = OfflineClient(sim.client_credentials()["offline"], "H44010600002")
    r = presettle(other, ZHANG, ["10.00"])
    assert r["infcode"] == -1 and "开通" in r["err_msg"]
    assert ok(presettle(other, ZHANG, ["10.00"], exp=None))["setlinfo"]["acct_pay"] == Decimal("3.00")


def test_person_without_real_account(gw, sim):
    assert "实账" in presettle(gw, WANG, ["10.00"])["err_msg"]     # no account at all
    assert "实账" in presettle(gw, ZHAO, ["10.00"])["err_msg"]     # notional account


def test_unionpay_balance_query_failure(gw, sim):
    arm(sim, "unionpay.balance")
    r = presettle(gw, ZHANG, ["10.00"])
    assert r["infcode"] == -1 and "银联" in r["err_msg"]
    assert ok(presettle(gw, ZHANG, ["10.00"]))["setlinfo"]["acct_pay"] == Decimal("3.00")


def test_zero_balance_is_success_with_zero_account_payment(gw, sim):
    s = ok(outpatient(gw, LI, ["10.00"], exp=EXP)[0])["setlinfo"]
    assert s["acct_pay"] == Decimal("0.00") and s["psn_cash_pay"] == Decimal("3.00")
    assert state(sim)["counts"]["account.deduction"] == 0


def test_deduction_failure_means_no_settlement(gw, sim):
    arm(sim, "unionpay.deduct")
    r = outpatient(gw, ZHANG, ["10.00"], exp=EXP)[0]
    assert r["infcode"] == -1
    st = state(sim)
    assert st["counts"]["offline.settlement"] == 0 and st["persons"][ZHANG] == "1000.00"


def test_refund_failure_keeps_settlement_then_mpc004_refunds_idempotently(gw, sim):
    s = ok(outpatient(gw, SUN, ["200.00"], exp=EXP)[0])["setlinfo"]
    assert s["acct_pay"] == Decimal("60.00")
    assert state(sim)["persons"][SUN] == "2940.00"
    arm(sim, "unionpay.refund", times=2)
    r = gw.call("2208", cancel_input(SUN, s, EXP), insuplc=ADMDVS[SUN])
    assert r["infcode"] == -1 and "退款" in r["err_msg"]
    assert state(sim)["settlements"][s["setl_id"]]["valid"] is True           # not cancelled
    q = ok(gw.call("fpy001", {"data": {"setl_id": s["setl_id"], "psn_no": SUN}}, insuplc=ADMDVS[SUN]))["data"]
    assert q["setl_stas"] == "1" and q["acct_stas"] == "3" and q["platformSeqId"]
    assert q["acct_pay"] == Decimal("60.00")
    # mpc004 is sent like an offline interface, infno tgdupc004, to its own path
    url = gw.c["unionrefund_url"]
    body = {"data": {"setl_id": s["setl_id"], "psn_no": SUN, "origPlatformSeqId": q["platformSeqId"]}}
    r = gw.call("tgdupc004", body, url=url, insuplc=ADMDVS[SUN])
    assert r["infcode"] == -1                                                  # second armed failure
    first = ok(gw.call("tgdupc004", body, url=url, insuplc=ADMDVS[SUN]))["data"]
    again = ok(gw.call("tgdupc004", body, url=url, insuplc=ADMDVS[SUN]))["data"]
    assert first == again and first["acct_refd_amt"] == Decimal("60.00")
    st = state(sim)
    assert st["persons"][SUN] == "3000.00" and st["counts"]["account.refund"] == 1
    q = ok(gw.call("fpy001", {"data": {"setl_id": s["setl_id"]}}, insuplc=ADMDVS[SUN]))["data"]
    assert q["acct_stas"] == "2" and q["platformSeqId"] == first["origPlatformSeqId"]
    # the settlement can now be cancelled; the account is not refunded twice
    ok(gw.call("2208", cancel_input(SUN, s, EXP), insuplc=ADMDVS[SUN]))
    assert state(sim)["persons"][SUN] == "3000.00"


def test_cancel_without_extension_leaves_account_for_mpc004(gw, sim):
    s = ok(outpatient(gw, ZHANG, ["100.00"], exp=EXP)[0])["setlinfo"]
    ok(gw.call("2208", cancel_input(ZHANG, s)))
    st = state(sim)
    assert st["persons"][ZHANG] == "970.00" and st["settlements"][s["setl_id"]]["valid"] is False
    out = ok(gw.call("tgdupc004", {"data": {"setl_id": s["setl_id"]}}, url=gw.c["unionrefund_url"]))["data"]
    assert out["acct_refd_amt"] == Decimal("30.00") and state(sim)["persons"][ZHANG] == "1000.00"


def test_face_terminal_identity_and_notice(gw, sim):
    term = sim.client_credentials()["terminal"]["url"]

    def trans(name, data):
        r = httpx.post(term, json={"orgId": gw.code, "transType": name, "data": data, "extra": None}).json()
        return r["code"], (json.loads(r["data"]) if r["data"] else None), r["message"]

    code, _, msg = trans("cn.nhsa.ec.auth", {"orgId": gw.code, "outBizNo": "OB1", "businessType": "01101"})
    assert code != 0                                           # nobody in front of the terminal
    control(sim, "POST", "/__sim__/face/present", {"psn_no": SUN})
    code, auth, _ = trans("cn.nhsa.ec.auth", {"orgId": gw.code, "outBizNo": "OB1", "businessType": "01101"})
    assert code == 0 and auth["authNo"]
    code, ident, _ = trans("cn.nhsa.auth.check", {"orgId": gw.code, "outBizNo": "OB1", "authNo": auth["authNo"]})
    assert ident["insuOrg"] == "442000" and ident["userName"] == "孙八"
    # offline.md §7.3: insuOrg is the envelope's insuplc_admdvs
    out = ok(gw.call("1101", {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": ident["ecToken"]}},
                     insuplc=ident["insuOrg"]))
    assert out["baseinfo"]["psn_no"] == SUN
    code, _, _ = trans("cn.nhsa.settle.notify", {"orgId": gw.code, "outBizNo": "OB1",
                                                 "medicalSettleState": "SUCCESS", "totalFee": "12.30"})
    assert code == 0
    code, _, _ = trans("cn.nhsa.settle.notify", {"orgId": gw.code, "outBizNo": "OB-unknown",
                                                 "medicalSettleState": "SUCCESS", "totalFee": "1.00"})
    assert code != 0
    assert [n["outBizNo"] for n in state(sim)["terminal_notices"]] == ["OB1"]


def test_reversal_of_facepay_settlement_refunds_through_unionpay(gw, sim):
    msgid = "H44010600001202601010000000999"
    ok(outpatient(gw, ZHANG, ["10.00"], exp=EXP, msgid=msgid)[0])
    rev = {"data": {"psn_no": ZHANG, "omsgid": msgid, "oinfno": "2207"}}
    arm(sim, "unionpay.refund")
    assert gw.call("2601", rev)["infcode"] == -1                 # UnionPay failed: nothing reversed
    assert state(sim)["persons"][ZHANG] == "997.00"
    ok(gw.call("2601", rev))
    assert state(sim)["persons"][ZHANG] == "1000.00"
