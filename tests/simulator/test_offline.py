"""Offline gateway: x-tif check, envelope, 1101, outpatient and inpatient settlement, msgid
idempotency, cancellation, 2601 reversal, 2260/2261, reconciliation."""
from __future__ import annotations

import base64
import io
import zipfile
from decimal import Decimal

from .conftest import control, state
from .offline_helpers import (ADMDVS, QIAN, WANG, ZHANG, ZHAO, cancel_input, ok, outpatient, register,
                              upload_fees, settle_input)
from .spec_client import tif_headers


def test_gateway_rejects_bad_tif_signature(gw, sim):
    env = gw.envelope("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": "x"}})
    h = tif_headers(gw.c["paasid"], "wrong-secret")
    body = gw.post("1101", env, headers=h).json()
    assert body["code"] != "0" and "infcode" not in body and body["data"] is None
    h = tif_headers("other-paasid", gw.c["secret"])
    assert "infcode" not in gw.post("1101", env, headers=h).json()


def test_sign_in_and_person_lookup(gw, sim):
    out = ok(gw.call("9001", {"signIn": {"opter_no": "0001", "mac": "00", "ip": "127.0.0.1"}}))
    assert out["signinoutb"]["sign_no"]
    persons = control(sim, "GET", "/__sim__/persons")["persons"]
    zhang = next(p for p in persons if p["psn_no"] == ZHANG)
    out = ok(gw.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": zhang["certno"]}}))
    assert out["baseinfo"]["psn_no"] == ZHANG
    assert out["insuinfo"][0]["balc"] == Decimal("1000.00") and out["insuinfo"][0]["insuplc_admdvs"] == "440100"
    resp = gw.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": "110101199001011234"}})
    assert resp["infcode"] == -1 and resp["err_msg"] and "output" not in resp
    env = gw.envelope("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": zhang["certno"]}})
    env["sign_no"] = "not-a-sign-no"
    assert gw.post("1101", env).json()["infcode"] == -1


def test_outpatient_settlement_split_and_identities(gw, sim):
    resp, mdtrt_id, batch, inp = outpatient(gw, ZHANG, ["60.25", "39.76"])
    s = ok(resp)["setlinfo"]
    assert s["medfee_sumamt"] == Decimal("100.01")
    assert s["fund_pay_sumamt"] == Decimal("70.01")          # 70% half-up
    assert s["acct_pay"] == Decimal("30.00") and s["psn_cash_pay"] == Decimal("0.00")
    assert s["medfee_sumamt"] == s["fund_pay_sumamt"] + s["psn_part_amt"] + s["hosp_part_amt"]
    assert s["psn_part_amt"] == s["acct_pay"] + s["psn_cash_pay"]
    assert s["medins_setl_id"] == resp_msgid(sim, s["setl_id"])
    assert s["balc"] == Decimal("970.00")
    assert state(sim)["persons"][ZHANG] == "970.00"


def resp_msgid(sim, setl_id):
    return state(sim)["settlements"][setl_id]["msgid"]


def test_total_must_match_details_and_uninsured_rejected(gw, sim):
    mdtrt_id = register(gw, ZHANG)
    batch = upload_fees(gw, ZHANG, mdtrt_id, ["10.00"])
    resp = gw.call("2207", settle_input(ZHANG, mdtrt_id, batch, "10.01"))
    assert resp["infcode"] == -1
    resp = gw.call("2201", {"data": {
        "psn_no": QIAN, "insutype": "310", "begntime": "2026-01-01 09:00:00", "mdtrt_cert_type": "02",
        "mdtrt_cert_no": "x", "ipt_otp_no": "1", "atddr_no": "D", "dr_name": "d", "dept_code": "1",
        "dept_name": "n", "caty": "A"}})
    assert resp["infcode"] == -1 and "参保" in resp["err_msg"]


def test_resident_without_account_pays_cash(gw, sim):
    s = ok(outpatient(gw, WANG, ["20.00"])[0])["setlinfo"]
    assert (s["fund_pay_sumamt"], s["acct_pay"], s["psn_cash_pay"]) == (
        Decimal("11.00"), Decimal("0.00"), Decimal("9.00"))


def test_same_msgid_is_idempotent_new_msgid_settles_again(gw, sim):
    resp, mdtrt_id, batch, inp = outpatient(gw, ZHANG, ["10.00"], msgid="H44010600001202601010000000001")
    first = ok(resp)["setlinfo"]
    again = ok(gw.call("2207", inp, msgid="H44010600001202601010000000001"))["setlinfo"]
    assert again["setl_id"] == first["setl_id"]
    assert state(sim)["counts"]["offline.settlement"] == 1
    blind = ok(gw.call("2207", inp))["setlinfo"]                # a blind resend with a fresh msgid
    assert blind["setl_id"] != first["setl_id"]
    st = state(sim)
    assert st["counts"]["offline.settlement"] == 2               # the double charge is visible
    assert st["persons"][ZHANG] == "994.00"


def test_cancel_negates_and_restores_balance_once(gw, sim):
    s = ok(outpatient(gw, ZHAO, ["100.00"])[0])["setlinfo"]
    assert state(sim)["persons"][ZHAO] == "470.00"
    c = ok(gw.call("2208", cancel_input(ZHAO, s), insuplc=ADMDVS[ZHAO]))["setlinfo"]
    assert c["medfee_sumamt"] == Decimal("-100.00") and c["acct_pay"] == Decimal("-30.00")
    assert c["balc"] == Decimal("500.00")
    resp = gw.call("2208", cancel_input(ZHAO, s), insuplc=ADMDVS[ZHAO])
    assert resp["infcode"] == -1
    assert state(sim)["persons"][ZHAO] == "500.00"


def test_reversal_of_settlement_and_of_cancellation(gw, sim):
    msgid = "H44010600001202601010000000777"
    s = ok(outpatient(gw, ZHAO, ["50.00"], msgid=msgid)[0])["setlinfo"]
    assert state(sim)["persons"][ZHAO] == "485.00"
    rev = {"data": {"psn_no": ZHAO, "omsgid": msgid, "oinfno": "2207"}}
    ok(gw.call("2601", rev, insuplc="440600"))
    assert state(sim)["persons"][ZHAO] == "500.00"
    assert state(sim)["settlements"][s["setl_id"]]["valid"] is False
    ok(gw.call("2601", rev, insuplc="440600"))                  # repeated: no second effect
    assert state(sim)["persons"][ZHAO] == "500.00"
    assert state(sim)["counts"]["offline.reversal"] == 1
    assert gw.call("2601", {"data": {"psn_no": ZHAO, "omsgid": "nope", "oinfno": "2207"}},
                   insuplc="440600")["infcode"] == -1
    assert gw.call("2601", {"data": {"psn_no": ZHAO, "omsgid": msgid, "oinfno": "2204"}},
                   insuplc="440600")["infcode"] == -1           # 2204 is not reversible
    # reversing a cancellation brings the settlement back
    s2 = ok(outpatient(gw, ZHAO, ["10.00"])[0])["setlinfo"]
    cmsg = "H44010600001202601010000000778"
    ok(gw.call("2208", cancel_input(ZHAO, s2), msgid=cmsg, insuplc="440600"))
    assert state(sim)["persons"][ZHAO] == "500.00"
    ok(gw.call("2601", {"data": {"psn_no": ZHAO, "omsgid": cmsg, "oinfno": "2208"}}, insuplc="440600"))
    assert state(sim)["settlements"][s2["setl_id"]]["valid"] is True
    assert state(sim)["persons"][ZHAO] == "497.00"


def test_registration_cancel_blocked_by_settlement(gw, sim):
    resp, mdtrt_id, batch, inp = outpatient(gw, WANG, ["5.00"])
    r = gw.call("2202", {"data": {"psn_no": WANG, "mdtrt_id": mdtrt_id, "ipt_otp_no": "x"}})
    assert r["infcode"] == -1


def test_guangzhou_node_names_accepted(gw, sim):
    mdtrt_id = register(gw, WANG)
    batch = upload_fees(gw, WANG, mdtrt_id, ["8.00"])
    inp = settle_input(WANG, mdtrt_id, batch, "8.00")
    assert ok(gw.call("2206", {"mdtrtinfo": inp["data"]}))["setlinfo"]["setl_id"] is None
    assert ok(gw.call("2207", {"mdtrtinfo": inp["data"]}))["setlinfo"]["setl_id"]


def test_inpatient_flow(gw, sim):
    out = ok(gw.call("2401", {"mdtrtinfo": {
        "psn_no": ZHANG, "insutype": "310", "begntime": "2026-01-01 08:00:00", "med_type": "21",
        "ipt_no": "ZY001", "atddr_no": "D1", "chfpdr_name": "主任", "adm_diag_dscr": "肺炎",
        "adm_dept_codg": "02", "adm_dept_name": "呼吸科", "adm_bed": "12", "dscg_maindiag_code": "J18.9",
        "dscg_maindiag_name": "肺炎"}, "diseinfo": []}))
    mdtrt_id = out["result"]["mdtrt_id"]
    rows = [{"feedetl_sn": f"Z{i}", "mdtrt_id": mdtrt_id, "psn_no": ZHANG, "med_type": "21",
             "fee_ocur_time": "2026-01-02 10:00:00", "med_list_codg": "X", "medins_list_codg": "H",
             "det_item_fee_sumamt": a, "cnt": "1", "pric": a} for i, a in enumerate(["1000.00", "234.56"])]
    ok(gw.call("2301", {"feedetail": rows}))
    ok(gw.call("2302", {"data": {"feedetl_sn": "Z1", "mdtrt_id": mdtrt_id, "psn_no": ZHANG}}))
    node = {"psn_no": ZHANG, "mdtrt_id": mdtrt_id, "medfee_sumamt": "1000.00", "acct_used_flag": "0",
            "insutype": "310", "mid_setl_flag": "0", "mdtrt_cert_type": "02", "mdtrt_cert_no": "x",
            "psn_setlway": "01"}
    pre = ok(gw.call("2303", {"data": node}))["setlinfo"]
    assert pre["setl_id"] is None and pre["psn_cash_pay"] == Decimal("300.00")
    s = ok(gw.call("2304", {"data": node}))["setlinfo"]
    assert s["clr_type"] == "21" and s["fund_pay_sumamt"] == Decimal("700.00")
    c = ok(gw.call("2305", {"data": {"mdtrt_id": mdtrt_id, "setl_id": s["setl_id"], "psn_no": ZHANG}}))
    assert c["setlinfo"]["psn_cash_pay"] == Decimal("-300.00")


def test_2260_trial_then_settle_and_2261(gw, sim):
    def node(flag):
        return {"mdtrtinfo": {"psn_no": WANG, "mdtrt_cert_type": "02", "mdtrt_cert_no": "x", "setl_flag": flag,
                              "insutype": "390", "med_type": "11", "begntime": "2026-01-01 09:00:00",
                              "ipt_op_no": "MZ9", "acct_used_flag": "0", "clnc_flag": "0"},
                "diseinfo": [], "feedetail": {"rows": [{"feedetl_sn": "1", "det_item_fee_sumamt": "40.00"}]}}
    trial = ok(gw.call("2260", node("0")))
    assert trial["setlInfo"]["setl_id"] is None and state(sim)["counts"]["offline.settlement"] == 0
    s = ok(gw.call("2260", node("1")))["setlInfo"]
    assert s["fund_pay_sumamt"] == Decimal("22.00")
    c = ok(gw.call("2261", {"mdtrtinfo": {"setl_id": s["setl_id"], "mdtrt_id": s["mdtrt_id"], "psn_no": WANG}}))
    assert c["setlInfo"]["medfee_sumamt"] == Decimal("-40.00")
    assert state(sim)["counts"]["offline.cancellation"] == 1


def test_3201_totals(gw, sim):
    s1 = ok(outpatient(gw, ZHANG, ["100.00"])[0])["setlinfo"]
    s2 = ok(outpatient(gw, ZHANG, ["10.00"])[0])["setlinfo"]
    ok(gw.call("2208", cancel_input(ZHANG, s2)))
    day = s1["setl_time"][:10]
    q = {"insutype": "310", "clr_type": "11", "setl_optins": "440100", "stmt_begndate": day, "stmt_enddate": day,
         "medfee_sumamt": "100.00", "fund_pay_sumamt": "70.00", "acct_pay": "30.00", "fixmedins_setl_cnt": "1"}
    assert ok(gw.call("3201", {"data": q}))["stmtinfo"]["stmt_rslt"] == "0"
    r = ok(gw.call("3201", {"data": {**q, "fixmedins_setl_cnt": "2", "medfee_sumamt": "110.00"}}))
    assert r["stmtinfo"]["stmt_rslt"] == "1"


def test_3202_details_via_9101_9102(gw, sim):
    s1 = ok(outpatient(gw, ZHANG, ["100.00"])[0])["setlinfo"]
    s2 = ok(outpatient(gw, ZHANG, ["20.00"])[0])["setlinfo"]
    lines = [f"{s1['setl_id']}\t{s1['mdtrt_id']}\t{ZHANG}\t100.00\t70.00\t30.00\t0",
             f"{s2['setl_id']}\t{s2['mdtrt_id']}\t{ZHANG}\t20.00\t14.00\t5.00\t0",      # acct differs
             f"999999999999\tM\t{ZHANG}\t1.00\t0.70\t0.30\t0"]                          # unknown to centre
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("detail.txt", "\n".join(lines))
    up = ok(gw.call("9101", {"fsUploadIn": {"in": base64.b64encode(buf.getvalue()).decode(),
                                            "filename": "detail.zip", "fixmedins_code": gw.code}}))
    day = s1["setl_time"][:10]
    res = ok(gw.call("3202", {"data": {"setl_optins": "440100", "file_qury_no": up["file_qury_no"],
                                       "stmt_begndate": day, "stmt_enddate": day, "medfee_sumamt": "121.00",
                                       "fund_pay_sumamt": "84.70", "cash_payamt": "0.00",
                                       "fixmedins_setl_cnt": "3"}}))
    env = gw.envelope("9102", {"fsDownloadIn": {"file_qury_no": res["fileinfo"]["file_qury_no"],
                                                 "filename": "result.zip", "fixmedins_code": gw.code}})
    raw = gw.post("9102", env).content
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        rows = [line.split("\t") for line in z.read(z.namelist()[0]).decode().splitlines()]
    by_setl = {r[2]: r[4] for r in rows}
    assert by_setl == {s1["setl_id"]: "0", s2["setl_id"]: "3", "999999999999": "1"}


def test_seed_persons_match_their_documentation(sim):
    import bridge.simulator.persons as persons_module
    doc = persons_module.__doc__
    for p in control(sim, "GET", "/__sim__/persons")["persons"]:
        assert f"| {p['psn_no']} | {p['certno']} | {p['psn_name']}" in doc
