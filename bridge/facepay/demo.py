"""One face-pay settlement for `mibridge demo` (daemon/demo.py wires it in).

    run_facepay_demo_part(store, sim_url, *, patient="44010000000000000001", timeout=30.0,
                          out=print) -> int      # 0 when the settlement went through

Needs a daemon already running with [offline] and [facepay] pointing at the simulator at
`sim_url` (the terminal URL included).  Plays the HIS: presents the patient's face to the
simulated terminal, enqueues facepay.identify -> facepay.outpatient.presettle ->
facepay.outpatient.settle, accepts the settlement row as an HIS would, and prints every
inbox row of the three requests.
"""
from __future__ import annotations

import time
import uuid
from typing import Callable

import httpx

from bridge.db.store import Store

NOW = "2024-03-01 09:30:00"


def demo_payloads(tag: str) -> tuple[dict, dict, dict]:
    identify = {"his_patient_id": f"DEMO-{tag}"}
    fees = [{"feedetl_sn": f"{tag}-{i}", "fee_ocur_time": NOW, "med_list_codg": "XJ01",
             "medins_list_codg": "H-XJ01", "det_item_fee_sumamt": a, "cnt": "1", "pric": a,
             "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001",
             "bilg_dr_name": "李医生"} for i, a in enumerate(("60.00", "40.00"), 1)]
    presettle = {"identify_key": f"FACE-{tag}", "chrg_bchno": f"B{tag}", "fees": fees, "total_amount": "100.00",
                 "visit": {"ipt_otp_no": f"OP{tag}", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生",
                           "dept_code": "NK01", "dept_name": "内科", "caty": "A03",
                           "diagnoses": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900",
                                          "diag_name": "上呼吸道感染", "diag_dept": "内科",
                                          "dise_dor_no": "D001", "dise_dor_name": "李医生",
                                          "diag_time": NOW, "vali_flag": "1"}]}}
    settle = {"presettle_key": f"PRE-{tag}"}
    return identify, presettle, settle


def run_facepay_demo_part(store: Store, sim_url: str, *, patient: str = "44010000000000000001",
                          timeout: float = 30.0, out: Callable[[str], None] = print) -> int:
    tag = uuid.uuid4().hex[:8].upper()
    identify, presettle, settle = demo_payloads(tag)
    httpx.post(sim_url + "/__sim__/face/present", json={"psn_no": patient}, timeout=5).raise_for_status()
    out("\nFace-pay (the HIS enqueues; the patient has scanned their face on the terminal):")
    store.enqueue("facepay.identify", f"FACE-{tag}", identify, serial_key=f"VISIT-{tag}")
    store.enqueue("facepay.outpatient.presettle", f"PRE-{tag}", presettle, serial_key=f"VISIT-{tag}")
    store.enqueue("facepay.outpatient.settle", f"SET-{tag}", settle, serial_key=f"VISIT-{tag}")
    deadline = time.monotonic() + timeout
    final = ("done", "failed", "held", "resolved")
    state = None
    while time.monotonic() < deadline:
        for (iid,) in store.query("""SELECT id FROM mi_inbox WHERE business_key = :b AND result_type = 'settlement'
                                        AND consumed_at IS NULL""", {"b": f"SET-{tag}"}):
            store.execute(f"UPDATE mi_inbox SET consumed_at = {store.dialect.now}, his_ack = 'accepted' "
                          "WHERE id = :i AND consumed_at IS NULL", {"i": int(iid)})
        state = store.query("SELECT state FROM mi_outbox WHERE kind = 'facepay.outpatient.settle' "
                            "AND business_key = :b", {"b": f"SET-{tag}"})[0][0]
        if state in final:
            break
        time.sleep(0.2)
    rows = store.query("""SELECT id, kind, business_key, result_type, outcome, settlement_id, total_amount,
                                 fund_amount, account_amount, cash_amount, error_code
                            FROM mi_inbox WHERE business_key IN (:a, :b, :c) ORDER BY id""",
                       {"a": f"FACE-{tag}", "b": f"PRE-{tag}", "c": f"SET-{tag}"})
    for r in rows:
        out("  " + "  ".join("" if v is None else str(v) for v in r))
    return 0 if state == "done" else 1
