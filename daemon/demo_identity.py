"""The identity part of `mibridge demo` (daemon/demo.py wires it in): before the payment.

    identity_config(creds) -> dict              # the [identity] and [regions] sections
    run_identity_demo_part(store, http, out=print) -> int     # 0 when every request ended as expected

Needs the demo's daemon running with [offline], [identity] and [regions] (identity_config)
against the simulator `http` talks to.  Plays the HIS and the mini-program backend:

  * the region list (mi_v_insured_regions) the mini-program shows;
  * 吴十 looks himself up with a payAuthNo: two insurances (职工 310 in 广州, 居民 390 in 深圳),
    each with its benefit check;
  * he chooses the 390: identity.choose writes mi_identity back for the HIS;
  * at the kiosk 张三 inserts his social-security card: lookup by card, kiosk registration
    (2201 as a self-service terminal), the registration fee pre-settled and settled.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Callable

import httpx

from bridge.db.store import Store
from daemon.tables import table

WU = "44010000000000000007"
ZHANG = "44010000000000000001"
NOW = "2024-03-01 09:30:00"
REGIONS = [{"admdvs": "440100", "name": "广州市", "sort_order": 1},
           {"admdvs": "440300", "name": "深圳市", "sort_order": 2}]
FINAL = ("done", "failed", "held", "resolved")


def identity_config(creds: dict) -> dict:
    """platforms["identity"] and platforms["regions"] of the demo's config."""
    term = creds["terminal"]
    return {"identity": {"terminal_url": term["url"], "card_reader_url": term["card_reader_url"],
                         "kiosk_operator_id": "KIOSK01", "kiosk_operator_name": "1号自助机",
                         "office_id": "MZ01", "office_name": "门诊大厅"},
            "regions": {"region": REGIONS}}


def run_identity_demo_part(store: Store, http: httpx.Client, *, timeout: float = 40.0,
                           out: Callable[[str], None] = print) -> int:
    tag = uuid.uuid4().hex[:6].upper()
    deadline = time.monotonic() + timeout
    bad = 0

    def run(kind: str, key: str, payload: dict, serial: str, want: str = "done") -> str:
        nonlocal bad
        store.enqueue(kind, key, payload, serial_key=serial)
        state = None
        while time.monotonic() < deadline:
            for (iid,) in store.query("SELECT id FROM mi_inbox WHERE business_key = :b AND result_type = 'settlement' "
                                      "AND consumed_at IS NULL", {"b": key}):
                store.execute(f"UPDATE mi_inbox SET consumed_at = {store.dialect.now}, his_ack = 'accepted' "
                              "WHERE id = :i AND consumed_at IS NULL", {"i": int(iid)})
            state = store.query("SELECT state FROM mi_outbox WHERE kind = :k AND business_key = :b",
                                {"k": kind, "b": key})[0][0]
            if state in FINAL:
                break
            time.sleep(0.1)
        if state != want:
            bad += 1
            out(f"  !! {kind} {key} ended {state}, expected {want}")
        return state

    def result(key: str, rtype: str) -> dict:
        rows = store.query("SELECT result_json FROM mi_inbox WHERE business_key = :b AND result_type = :t",
                           {"b": key, "t": rtype})
        return json.loads(rows[0][0]) if rows and rows[0][0] else {}

    while time.monotonic() < deadline and not store.query("SELECT admdvs FROM mi_v_insured_regions"):
        time.sleep(0.1)          # the daemon applies [regions] when it starts
    out("\nThe insured regions the hospital offers (mi_v_insured_regions, what the mini-program shows):")
    out(table(store.query("""SELECT admdvs, name, on_wechat, on_alipay, on_kiosk, source FROM mi_v_insured_regions
                             ORDER BY CASE WHEN sort_order IS NULL THEN 1 ELSE 0 END, sort_order, admdvs"""),
              ["admdvs", "name", "wechat", "alipay", "kiosk", "source"]))

    # 1. A lookup in the mini-program: the payAuthNo the channel gave.
    serial = f"WU-{tag}"
    auth = http.post("/__sim__/mobilepay/authorize", json={"psn_no": WU}).json()["payAuthNo"]
    run("identity.lookup", f"LK-{tag}", {"pay_auth_no": auth, "his_patient_id": f"P-WU-{tag}", "channel": "wechat"},
        serial)
    r = result(f"LK-{tag}", "identity")
    out(f"\nidentity.lookup LK-{tag} (吴十, by payAuthNo): {r.get('choices')} insurance(s) to choose from; "
        f"ID {r.get('certno')}, name {r.get('psn_name')} (masked)")
    out(table([(i["insutype"], i["psn_type"], f"{i['insuplc_admdvs']} {i.get('region_name') or ''}", i["balc"],
                i["benefit"]["status"], "; ".join(x["reason"] or "" for x in i["benefit"]["restrictions"]))
               for i in r.get("insurances", [])],
              ["insutype", "psn_type", "region", "balance", "benefit", "restrictions"], align="llllll"))

    # 2. The patient chooses the 390; mibridge writes it back for the HIS.
    run("identity.choose", f"CH-{tag}", {"lookup_key": f"LK-{tag}", "insutype": "390"}, serial)
    out(f"\nidentity.choose CH-{tag}: the patient chose 390; mi_identity (what the HIS reads):")
    out(table(store.query("""SELECT his_patient_id, psn_no, insutype, insuplc_admdvs, psn_type, benefit_status,
                                    certno_masked, psn_name_masked, chosen, source_kind
                               FROM mi_identity WHERE his_patient_id = :p""", {"p": f"P-WU-{tag}"}),
              ["his_patient_id", "psn_no", "insutype", "region", "psn_type", "benefit", "ID (masked)", "name",
               "chosen", "written by"]))

    # 3. At the kiosk: card, lookup, registration, the registration fee.
    http.post("/__sim__/card/present", json={"psn_no": ZHANG}).raise_for_status()
    serial = f"KIOSK-{tag}"
    run("identity.lookup", f"KLK-{tag}", {"terminal": "card"}, serial)
    run("kiosk.register", f"KREG-{tag}", {"lookup_key": f"KLK-{tag}", "insutype": "310", "visit": {
        "ipt_otp_no": f"OP{tag}", "begntime": NOW, "atddr_no": "D001", "dr_name": "李医生", "dept_code": "NK01",
        "dept_name": "内科", "caty": "A03"}}, serial)
    fee = {"register_key": f"KREG-{tag}", "chrg_bchno": f"GH{tag}", "total_amount": "10.00",
           "fees": [{"feedetl_sn": f"GH{tag}-1", "fee_ocur_time": NOW, "med_list_codg": "110200001",
                     "medins_list_codg": "GH-001", "det_item_fee_sumamt": "10.00", "cnt": "1", "pric": "10.00",
                     "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001",
                     "bilg_dr_name": "李医生"}]}
    run("kiosk.presettle", f"KPRE-{tag}", fee, serial)
    run("kiosk.settle", f"KSET-{tag}", {"presettle_key": f"KPRE-{tag}"}, serial)
    out(f"\nKiosk (张三's social-security card, operator KIOSK01 type 2): lookup, registration, fee")
    out(table(store.query("""SELECT i.business_key, o.kind, i.result_type, i.outcome, i.settlement_id,
                                    i.total_amount, i.fund_amount, i.account_amount, i.cash_amount
                               FROM mi_inbox i JOIN mi_outbox o ON o.id = i.outbox_id
                              WHERE o.serial_key = :s ORDER BY i.id""", {"s": serial}),
              ["business key", "kind", "type", "outcome", "settlement", "total", "fund", "account", "cash"],
              align="lllllrrrr"))
    reg = result(f"KREG-{tag}", "registration")
    out(f"registration mdtrt_id {reg.get('mdtrt_id')}; the settlement is booked in the order book as "
        + ", ".join(r[0] for r in store.query("SELECT platform FROM mi_order WHERE business_key = :b",
                                              {"b": f"KSET-{tag}"})))
    return 1 if bad else 0
