"""Builders for offline-gateway inputs used across the simulator tests (offline.md §5)."""
from __future__ import annotations

import json
import uuid

ZHANG = "44010000000000000001"     # 310, real account 1000.00, 440100
LI = "44030000000000000002"        # 310, real account 0.00, 440300
WANG = "44010000000000000003"      # 390, no account
ZHAO = "44060000000000000004"      # 310, notional account 500.00, 440600
QIAN = "44010000000000000005"      # insurance suspended
SUN = "44200000000000000006"       # 310, real account 3000.00, 442000

ADMDVS = {ZHANG: "440100", LI: "440300", WANG: "440100", ZHAO: "440600", QIAN: "440100", SUN: "442000"}
INSUTYPE = {ZHANG: "310", LI: "310", WANG: "390", ZHAO: "310", QIAN: "310", SUN: "310"}

EXP = {"merchantNo": "102440100000004", "terminalNo": "00000143", "isvNo": "123456", "acctType": "A02",
       "down_payment": 0.0}


def ok(resp: dict) -> dict:
    assert resp.get("infcode") == 0, resp
    return resp["output"]


def register(gw, psn_no: str) -> str:
    out = ok(gw.call("2201", {"data": {
        "psn_no": psn_no, "insutype": INSUTYPE[psn_no], "begntime": "2026-01-01 09:00:00",
        "mdtrt_cert_type": "02", "mdtrt_cert_no": "x", "ipt_otp_no": uuid.uuid4().hex[:12],
        "atddr_no": "D001", "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}},
        insuplc=ADMDVS[psn_no]))
    return out["data"]["mdtrt_id"]


def upload_fees(gw, psn_no: str, mdtrt_id: str, amounts: list[str], batch: str | None = None) -> str:
    batch = batch or "B" + uuid.uuid4().hex[:8]
    rows = [{"feedetl_sn": uuid.uuid4().hex[:10], "mdtrt_id": mdtrt_id, "psn_no": psn_no, "chrg_bchno": batch,
             "rx_circ_flag": "0", "fee_ocur_time": "2026-01-01 09:10:00", "med_list_codg": "X001",
             "medins_list_codg": "H001", "det_item_fee_sumamt": a, "cnt": "1", "pric": a,
             "bilg_dept_codg": "01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001", "bilg_dr_name": "医生"}
            for a in amounts]
    ok(gw.call("2204", {"feedetail": rows}, insuplc=ADMDVS[psn_no]))
    return batch


def settle_input(psn_no: str, mdtrt_id: str, batch: str, total: str, acct: str = "1",
                 exp: dict | None = None) -> dict:
    data = {"psn_no": psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": "x", "med_type": "11",
            "medfee_sumamt": total, "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": batch,
            "acct_used_flag": acct, "insutype": INSUTYPE[psn_no]}
    if exp is not None:
        data["exp_content"] = json.dumps(exp)
    return {"data": data}


def outpatient(gw, psn_no: str, amounts: list[str], acct: str = "1", exp: dict | None = None,
               msgid: str | None = None) -> tuple[dict, str, str, dict]:
    """Register, upload, settle; returns (2207 response, mdtrt_id, batch, settle input)."""
    mdtrt_id = register(gw, psn_no)
    batch = upload_fees(gw, psn_no, mdtrt_id, amounts)
    total = str(sum(__import__("decimal").Decimal(a) for a in amounts))
    inp = settle_input(psn_no, mdtrt_id, batch, total, acct, exp)
    return gw.call("2207", inp, msgid=msgid, insuplc=ADMDVS[psn_no]), mdtrt_id, batch, inp


def cancel_input(psn_no: str, setlinfo: dict, exp: dict | None = None) -> dict:
    data = {"setl_id": setlinfo["setl_id"], "mdtrt_id": setlinfo["mdtrt_id"], "psn_no": psn_no}
    if exp is not None:
        data["exp_content"] = json.dumps(exp)
    return {"data": data}
